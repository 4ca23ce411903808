"""Services that change recipients.  Every status change goes through here (or
``common.fsm``), so every change writes its history row."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

from django.db import connection, models
from django.utils import timezone

from campaigns.models import CampaignRecipient, RecipientTransition, waiting_detail
from common.fsm import Actor, bulk_transition, insert_history, run_transition
from common.models import JSONRemove


def recipient_transition(
    *,
    recipient: CampaignRecipient,
    method: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> CampaignRecipient:
    """Run one transition method on one recipient, save it and log it.

    Raises ``django_fsm.TransitionNotAllowed`` or ``ConcurrentTransition``.
    """
    run_transition(
        recipient,
        method,
        history=RecipientTransition,
        obj_field="recipient",
        actor=actor,
        reason=reason,
        payload=payload,
        **kwargs,
    )
    return recipient


def recipients_bulk_transition(
    *,
    queryset: models.QuerySet[CampaignRecipient],
    method: str,
    actor: Actor,
    reason: str = "",
    payload: Mapping[str, Any] | None = None,
    **transition_kwargs: Any,
) -> list[int]:
    """Move every eligible recipient of ``queryset`` along ``method``'s edges in
    one CAS per source state; ineligible rows are left alone.  Returns the ids
    moved.

    ``transition_kwargs`` are the method's own keyword arguments (``skip``'s
    ``skip_reason``, a claim's ``claim_token`` and ``lease_until``): the UPDATE
    sets what the method's declared sets compute from them.  A missing required
    argument, or one the method applies one object at a time only (``skip``'s
    ``details``), raises ``common.fsm.TransitionArgumentError`` before any row
    moves."""
    return bulk_transition(
        queryset,
        method,
        history=RecipientTransition,
        obj_field="recipient",
        actor=actor,
        reason=reason,
        payload=payload,
        **transition_kwargs,
    )


def recipients_bulk_transition_chunked(
    *,
    rows: models.QuerySet[CampaignRecipient],
    method: str,
    actor: Actor,
    reason: str = "",
    chunk: int = 1000,
    **transition_kwargs: Any,
) -> int:
    """:func:`recipients_bulk_transition` over every row of ``rows``, ``chunk``
    ids a transaction (a campaign's 4,000 waiting rows are not one long write
    lock), oldest first; each chunk is ``rows`` again, so its conditions hold
    when the chunk moves.  Stops when a chunk moves nothing.  The number moved."""
    total = 0
    while True:
        ids = list(rows.order_by("id").values_list("id", flat=True)[:chunk])
        if not ids:
            return total
        moved = recipients_bulk_transition(
            queryset=rows.filter(pk__in=ids), method=method, actor=actor, reason=reason, **transition_kwargs
        )
        total += len(moved)
        if not moved:
            return total


def recipients_fail_queued(
    *, rows: models.QuerySet[CampaignRecipient], message: str, detail: str, actor: Actor, chunk: int = 1000
) -> int:
    """Every recipient of ``rows`` that may take ``fail_queued`` to Error(message),
    in chunks (:func:`recipients_bulk_transition_chunked`).  The number moved."""
    return recipients_bulk_transition_chunked(
        rows=rows, method="fail_queued", actor=actor, reason=message, chunk=chunk, message=message, detail=detail
    )


def recipients_new_submission(*, queryset: models.QuerySet[CampaignRecipient]) -> int:
    """A new submission generation for rows whose printer holds nothing under
    their key (the caller checked ``may_be_at_printer``): the next key, no
    saved request, no first attempt (so the next attempt submits without
    looking first), built again from the data as it is then."""
    return queryset.update(
        submission_gen=models.F("submission_gen") + 1,
        idempotency_key="",
        first_attempt_at=None,
        json=JSONRemove("json", [("submission",)]),
    )


def recipients_wait_saying(*, queryset: models.QuerySet[CampaignRecipient], why: str) -> int:
    """Rows sent before that stay where they are, waiting (their piece may be
    at the printer, so they are never failed): the reason their Why shows."""
    return queryset.update(error_detail=waiting_detail(why), updated=timezone.now())


def recipients_write_rows(*, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Per-row values in one ``executemany``: each row is ``fields``' values
    then the recipient's id.  For values that differ per row (a batch's proof
    names, keys, payloads): Django's ``bulk_update`` builds a CASE per row and
    field, which costs more than the rest of a batch.  No status moves here;
    the caller holds the rows (its claim, checked in its transaction)."""
    if not rows:
        return
    meta = CampaignRecipient._meta
    model_fields = [meta.get_field(f) for f in fields]
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(f.column)} = %s" for f in model_fields)
    # Only our own column names, quoted; the values travel as parameters.
    sql = f"UPDATE {quote(meta.db_table)} SET {columns} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    params = [
        [f.get_db_prep_save(v, connection) for f, v in zip(model_fields, row, strict=False)] + [row[-1]] for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, params)


class CreatedRecipient(Protocol):
    """What the creation log needs of a new recipient: a model instance or a
    lighter row object from a raw insert."""

    pk: Any
    status: str
    skip_reason: str


def recipients_record_created(*, recipients: Iterable[CreatedRecipient], actor: Actor, reason: str = "created") -> None:
    """History rows for recipients just created (e.g. by a bulk insert) in
    their initial status: the log starts at creation, not at the first move.
    One ``INSERT … SELECT`` per (status, skip reason) group."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for r in recipients:
        groups[(r.status, r.skip_reason or "")].append(r.pk)
    now = timezone.now()
    for (status, skip_reason), ids in groups.items():
        insert_history(
            RecipientTransition,
            obj_field="recipient",
            ids=ids,
            from_status="",
            to_status=status,
            actor=actor,
            reason=reason,
            payload={"skip_reason": skip_reason} if skip_reason else None,
            at=now,
        )
