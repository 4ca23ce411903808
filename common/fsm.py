"""FSM helpers shared by the recipient and mailpiece machines.

Per-object transitions run the django-fsm-2 method, save with the
``ConcurrentTransitionMixin`` guard and write the history row in one
transaction.  Bulk moves are one compare-and-swap UPDATE whose allowed sources
come from the FSM's own table, plus one ``bulk_create`` of history rows: the
same graph, the same log, no per-row queries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db import connection, connections, models, router, transaction
from django.utils import timezone
from django_fsm import ConcurrentTransition


def transition_table(model: Any, field: str = "status") -> dict[str, dict[str, str]]:
    """``{method name: {source: target}}`` read from django-fsm-2's registry."""
    instance = model()
    table: dict[str, dict[str, str]] = {}
    for t in getattr(instance, f"get_all_{field}_transitions")():
        table.setdefault(t.name, {})[str(t.source)] = str(t.target)
    return table


def transition_sets(model: Any, method: str, field: str = "status") -> dict[str, Any]:
    """The field values ``method`` sets besides the status (its ``custom["sets"]``):
    read by the method itself and by bulk moves, so both end the same."""
    meta = getattr(model, method)._django_fsm
    sets: dict[str, Any] = {}
    for t in meta.transitions.values():
        sets.update(t.custom.get("sets") or {})
    return sets


def edges(model: type[models.Model], field: str = "status") -> set[tuple[str, str]]:
    """Every (source, target) pair the model's FSM allows."""
    return {
        (source, target) for sources in transition_table(model, field).values() for source, target in sources.items()
    }


def sources_of(model: type[models.Model], method: str, field: str = "status") -> list[str]:
    """The states from which ``method`` may run: the source list of a bulk CAS."""
    return sorted(transition_table(model, field)[method])


def target_of(model: type[models.Model], method: str, field: str = "status") -> str:
    targets = set(transition_table(model, field)[method].values())
    if len(targets) != 1:
        raise ValueError(f"{model.__name__}.{method} has no single target: {targets}")
    return targets.pop()


class Actor:
    """Who or what caused a transition: ``source`` is "admin", "task",
    "webhook:lob", "command:import_recipients"...; ``user`` is set for people."""

    __slots__ = ("source", "user")

    def __init__(self, source: str, user: Any = None) -> None:
        self.source = source
        self.user = user if getattr(user, "is_authenticated", False) else None

    def __repr__(self) -> str:
        return f"Actor({self.source!r}, user={self.user!r})"


def insert_history(
    history: type[models.Model],
    *,
    obj_field: str,
    ids: Sequence[int],
    from_status: str,
    to_status: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    at: Any = None,
) -> None:
    """One history row per id, written by ``INSERT … SELECT`` from the
    object's table: the same row for every object except its id, so only the
    ids travel as parameters (``bulk_create`` would build and bind a model per
    row, which dominated the 100k-row import).  Portable to SQLite and
    PostgreSQL; values are prepared by the fields themselves."""
    if not ids:
        return
    meta = history._meta
    fk: Any = meta.get_field(obj_field)
    obj_meta = fk.related_model._meta
    conn = connections[router.db_for_write(history)]
    qn = conn.ops.quote_name
    constants = {
        "from_status": from_status,
        "to_status": to_status,
        "source": actor.source,
        "acting_user": actor.user.pk if actor.user is not None else None,
        "reason": reason[:500],
        "payload": dict(payload or {}),
        "created": at or timezone.now(),
    }
    fields: list[Any] = [meta.get_field(name) for name in constants]
    params = [f.get_db_prep_save(constants[f.name], conn) for f in fields]
    columns = ", ".join(qn(c) for c in [fk.column, *(f.column for f in fields)])
    pk = qn(obj_meta.pk.column)
    select = ", ".join(["%s"] * len(fields))
    with conn.cursor() as cursor:
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            # Only quoted model identifiers are interpolated; values are parameters.
            sql = (
                f"INSERT INTO {qn(meta.db_table)} ({columns}) "  # noqa: S608
                f"SELECT {pk}, {select} FROM {qn(obj_meta.db_table)} "
                f"WHERE {pk} IN ({', '.join(['%s'] * len(chunk))}) ORDER BY {pk}"
            )
            cursor.execute(sql, [*params, *chunk])


def run_transition(
    obj: Any,
    method: str,
    *,
    history: type[models.Model],
    obj_field: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    update_fields: Iterable[str] | None = None,
    **kwargs: Any,
) -> Any:
    """Run ``obj.<method>(**kwargs)``, save and log, atomically.

    Raises ``TransitionNotAllowed`` when the edge does not exist and
    ``ConcurrentTransition`` when another writer moved the row first.
    """
    with transaction.atomic():
        before = obj.status
        result = getattr(obj, method)(**kwargs)
        obj.save(update_fields=list(update_fields) if update_fields is not None else None)
        insert_history(
            history,
            obj_field=obj_field,
            ids=[obj.pk],
            from_status=before,
            to_status=obj.status,
            actor=actor,
            reason=reason,
            payload=payload,
        )
    return result


def bulk_transition(
    queryset: models.QuerySet[Any],
    method: str,
    *,
    history: type[models.Model],
    obj_field: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    updates: Mapping[str, Any] | None = None,
) -> list[int]:
    """Move every row of ``queryset`` that may take ``method`` to its target.

    One conditional UPDATE per source state (so each history row knows its
    ``from``) on rows locked first: rows another worker holds or moved
    meanwhile are simply not touched.  Returns the ids that moved.
    """
    model: Any = queryset.model
    table = transition_table(model)[method]
    moved: list[int] = []
    now = timezone.now()
    with transaction.atomic():
        for source, target in table.items():
            # A subquery, so DISTINCT or joins of the caller's queryset (admin
            # searches) never meet FOR UPDATE.
            rows = model.objects.filter(pk__in=queryset.values("pk"), status=source)
            if connection.features.has_select_for_update_skip_locked:
                # PostgreSQL: lock the rows we take; a concurrent mover skips
                # them instead of waiting and double-counting.  SQLite needs
                # nothing: an IMMEDIATE transaction already holds the write lock.
                rows = rows.select_for_update(skip_locked=True)
            ids = list(rows.order_by("pk").values_list("pk", flat=True))
            if not ids:
                continue
            fields = {"status": target, "updated": now, **transition_sets(model, method), **(updates or {})}
            for chunk_start in range(0, len(ids), 500):
                chunk = ids[chunk_start : chunk_start + 500]
                n = model.objects.filter(pk__in=chunk, status=source).update(**fields)
                if n != len(chunk):
                    # Cannot happen while the rows are locked; if it does, roll
                    # the whole batch back rather than log moves we did not make.
                    raise ConcurrentTransition(f"{n} of {len(chunk)} {model.__name__} rows moved under us")
            insert_history(
                history,
                obj_field=obj_field,
                ids=ids,
                from_status=source,
                to_status=target,
                actor=actor,
                reason=reason,
                payload=payload,
                at=now,
            )
            moved.extend(ids)
    return moved
