"""FSM helpers shared by the recipient and mailpiece machines.

Per-object transitions run the django-fsm-2 method, save with the
``ConcurrentTransitionMixin`` guard and write the history row in one
transaction.  Bulk moves are one UPDATE per source state, with the sources
read from the FSM's own table, plus one ``INSERT … SELECT`` of history rows:
the same graph, the same log, no per-row queries.  What a transition sets
besides the status is declared once (``custom["sets"]``) and applied by both
paths.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connection, connections, models, router, transaction
from django.db.models.expressions import RawSQL
from django.db.models.sql import UpdateQuery
from django.utils import timezone
from django_fsm import ConcurrentTransition


def transition_table(model: Any, field: str = "status") -> dict[str, dict[str, str]]:
    """``{method name: {source: target}}`` read from django-fsm-2's registry."""
    instance = model()
    table: dict[str, dict[str, str]] = {}
    for t in getattr(instance, f"get_all_{field}_transitions")():
        table.setdefault(t.name, {})[str(t.source)] = str(t.target)
    return table


# What a transition sets besides the status, declared once in the
# transition's ``custom["sets"]``: either a mapping of field values, or a
# callable taking the transition's keyword arguments and returning them.  The
# per-object method applies it (``apply_sets``) and ``bulk_transition`` puts
# the same values in its UPDATE, so both paths end the same.
Sets = Mapping[str, Any] | Callable[..., Mapping[str, Any]]


class FieldEdit:
    """A value in a transition's sets that edits the field's current value
    instead of replacing it (e.g. removing keys from a JSON object).  It knows
    how to do so on an instance (``apply``) and inside an UPDATE
    (``expression``), which is what lets the bulk path match the per-object one."""

    def apply(self, current: Any) -> Any:
        raise NotImplementedError

    def expression(self, field: str) -> Any:
        raise NotImplementedError


class TransitionArgumentError(TypeError):
    """The keyword arguments given to a transition do not fit what its sets
    declare: a required one is missing, or one cannot be applied in bulk."""


def _declared_sets(model: Any, method: str) -> Sets | None:
    meta = getattr(model, method)._django_fsm
    declared = {id(s): s for t in meta.transitions.values() if (s := t.custom.get("sets")) is not None}
    if len(declared) > 1:
        # One method, one declaration: two would let the sources of one method
        # end differently, which no caller expects.
        raise ValueError(f"{model.__name__}.{method} declares different sets per source")
    return next(iter(declared.values()), None)


def transition_guard(model: Any, method: str, source: str) -> models.Q | None:
    """What a row in ``source`` must also satisfy to take ``method``
    (``custom["guard"]``: ``{source: Q}``), or None.  A bulk move puts it in
    the statement that locks and moves the rows, so PostgreSQL checks it
    again on a row another transaction changed meanwhile; the per-object
    method's ``conditions`` say the same in Python."""
    meta = getattr(model, method)._django_fsm
    guards = {id(g): g for t in meta.transitions.values() if (g := t.custom.get("guard")) is not None}
    if len(guards) > 1:
        raise ValueError(f"{model.__name__}.{method} declares different guards per source")
    guard = next(iter(guards.values()), None)
    return None if guard is None else guard.get(source)


def transition_sets(model: Any, method: str, /, **kwargs: Any) -> dict[str, Any]:
    """The field values ``method`` sets besides the status, computed from the
    transition's keyword arguments ``kwargs``.

    Raises ``TransitionArgumentError`` when ``kwargs`` do not match the
    declaration: a missing required argument, or one the sets do not take
    (an argument the method only applies one object at a time)."""
    declared = _declared_sets(model, method)
    if not callable(declared):
        if kwargs:
            raise TransitionArgumentError(
                f"{model.__name__}.{method} sets no values from arguments, so it cannot take {sorted(kwargs)}"
            )
        return dict(declared or {})
    try:
        inspect.signature(declared).bind(**kwargs)
    except TypeError as exc:
        raise TransitionArgumentError(f"{model.__name__}.{method}: {exc}") from None
    return dict(declared(**kwargs))


def apply_sets(obj: Any, values: Mapping[str, Any]) -> None:
    """Set ``values`` (from ``transition_sets``) on ``obj``, the per-object path."""
    for name, value in values.items():
        setattr(obj, name, value.apply(getattr(obj, name)) if isinstance(value, FieldEdit) else value)


def _bulk_sets(model: Any, method: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """``transition_sets`` for an UPDATE, refusing arguments the per-object
    method takes but the sets cannot express (they would be dropped silently)."""
    declared = _declared_sets(model, method)
    takes = set(inspect.signature(declared).parameters) if callable(declared) else set()
    per_object = sorted(set(kwargs) - takes)
    if per_object:
        raise TransitionArgumentError(
            f"{model.__name__}.{method} applies {per_object} one object at a time only, "
            f"so a bulk move cannot take it; bulk moves accept {sorted(takes) or 'no arguments'}"
        )
    values = transition_sets(model, method, **kwargs)
    return {name: value.expression(name) if isinstance(value, FieldEdit) else value for name, value in values.items()}


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
        self.user = user if user is not None and user.is_authenticated else None

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
    object's table (SQLite) or from the ids unnested (PostgreSQL): the same
    row for every object except its id, so only the ids travel as parameters
    (``bulk_create`` would build and bind a model per row, which dominated the
    100k-row import).  Values are prepared by the fields themselves."""
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
        if conn.vendor == "postgresql":
            # One statement whatever the number of ids, passed as one array
            # of the pk's own type, and no read of the object's table.
            cursor.execute(
                f"INSERT INTO {qn(meta.db_table)} ({columns}) "  # noqa: S608
                f"SELECT id, {select} FROM unnest(%s::{obj_meta.pk.rel_db_type(conn)}[]) AS id ORDER BY id",
                [*params, list(ids)],
            )
            return
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


def _move_locked(rows: models.QuerySet[Any], fields: Mapping[str, Any]) -> list[int]:
    """PostgreSQL: ``UPDATE … WHERE pk IN (<rows> FOR UPDATE SKIP LOCKED)
    RETURNING pk``, the ids moved.  Locking and moving in one statement leaves
    no gap for another writer and writes each row once (a locking SELECT
    first would write every row's header, and its WAL, before the UPDATE).  Django's UPDATE compiler renders the
    values, so the sets' expressions (``JSONRemove``) work as in ``update()``."""
    try:
        locked = rows.select_for_update(skip_locked=True).values("pk").query
        sql, params = locked.get_compiler(connection=connection).as_sql()
    except EmptyResultSet:  # e.g. ``pk__in=[]``: nothing to move
        return []
    # RawSQL only carries the SELECT Django compiled just above.
    update = rows.model.objects.filter(pk__in=RawSQL(sql, params)).query.chain(UpdateQuery)  # noqa: S611
    update.add_update_values(fields)
    sql, params = update.get_compiler(connection=connection).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} RETURNING {connection.ops.quote_name(rows.model._meta.pk.column)}", params)
        return sorted(pk for (pk,) in cursor.fetchall())


def _move_checked(rows: models.QuerySet[Any], source: str, fields: Mapping[str, Any]) -> list[int]:
    """SQLite: read the ids, then one compare-and-swap UPDATE per 500 of them.
    The IMMEDIATE transaction already holds the write lock, so nothing moves
    between the two; if something does, the whole batch rolls back rather
    than log moves that were not made."""
    ids = list(rows.order_by("pk").values_list("pk", flat=True))
    for chunk_start in range(0, len(ids), 500):
        chunk = ids[chunk_start : chunk_start + 500]
        n = rows.model.objects.filter(pk__in=chunk, status=source).update(**fields)
        if n != len(chunk):
            raise ConcurrentTransition(f"{n} of {len(chunk)} {rows.model.__name__} rows moved under us")
    return ids


def bulk_transition(
    queryset: models.QuerySet[Any],
    method: str,
    *,
    history: type[models.Model],
    obj_field: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    **transition_kwargs: Any,
) -> list[int]:
    """Move every row of ``queryset`` that may take ``method`` to its target.

    One UPDATE per source state (so each history row knows its ``from``) of
    rows locked first (PostgreSQL, in the same statement) or under the
    database's write lock (SQLite): rows another worker holds or moved
    meanwhile are simply not touched.  The UPDATE sets what the method's
    declared sets compute from ``transition_kwargs``, exactly what the method
    sets one object at a time.  Returns the ids that moved, and logs exactly
    those.
    """
    model: Any = queryset.model
    table = transition_table(model)[method]
    # Computed before anything moves: a missing or per-object-only argument
    # fails the call whole, even when no row is eligible.
    sets = _bulk_sets(model, method, transition_kwargs)
    moved: list[int] = []
    now = timezone.now()
    with transaction.atomic():
        for source, target in table.items():
            # A subquery, so DISTINCT or joins of the caller's queryset (admin
            # searches) never meet FOR UPDATE.
            rows = model.objects.filter(pk__in=queryset.values("pk"), status=source)
            guard = transition_guard(model, method, source)
            if guard is not None:
                rows = rows.filter(guard)
            fields = {"status": target, "updated": now, **sets}
            if connection.vendor == "postgresql":
                # A concurrent mover skips the rows locked here instead of
                # waiting and double-counting.
                ids = _move_locked(rows, fields)
            else:
                ids = _move_checked(rows, source, fields)
            if not ids:
                continue
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
