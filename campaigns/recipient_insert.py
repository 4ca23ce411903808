"""How an import writes its new recipients: fast inserts with exact ids.

``recipients_sync`` (``campaigns/sync.py``) decides what to create; this module
writes it.  PostgreSQL gets its ids from the sequence and one ``COPY``; SQLite
one ``executemany`` and a read-back by natural key.  ``CreatedIds`` remembers
what this import created, so a repeat within the input is told apart from a
row another import created meanwhile.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from django.db import connections, router
from django.db.models import F
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from common.models import EqualsAny


class CreatedIds:
    """The ids this import created, to tell a repeat within the input from a
    recipient that was already there (another import may create rows at the
    same time, so no id range can say it).  Sorted 8-byte integers: 800 kB for
    a million rows, where a set would take tens of MB."""

    def __init__(self) -> None:
        self._ids = array("q")

    def add(self, ids: Iterable[int]) -> None:
        new = sorted(ids)
        if new and self._ids and new[0] < self._ids[-1]:
            # Interleaved with another import's ids: rare, so a full re-sort is fine.
            self._ids = array("q", sorted([*self._ids, *new]))
        else:
            self._ids.extend(new)

    def __contains__(self, pk: object) -> bool:
        if not isinstance(pk, int):
            return False
        at = bisect_left(self._ids, pk)
        return at < len(self._ids) and self._ids[at] == pk


@dataclass(slots=True)
class NewRecipient:
    """A row about to be inserted.  Not a model instance on purpose: building
    100k CampaignRecipient objects (FSM state tracking included) and letting
    ``bulk_create`` prepare every field costs more than the insert itself."""

    natural_key: str
    data: dict[str, str]
    status: str
    skip_reason: str
    json: dict[str, Any]
    pk: int | None = None


def recipients_insert(*, campaign: Campaign, rows: list[NewRecipient]) -> None:
    """Insert ``rows`` and set their ids; must run inside a transaction.

    PostgreSQL: the ids are drawn from the table's sequence first, then one
    ``COPY`` carries every row (no round trip per row, no read-back).
    SQLite: one ``executemany`` (in-process, already as fast as it gets), then
    the ids are read back by natural key.  Both are exact while other imports
    insert at the same time: a sequence never hands out an id twice, and the
    unique (campaign, natural key) constraint makes each key's row this
    insert's own (an id watermark would catch the other import's rows too).

    Columns are read from the model, and every column not coming from the row
    gets its model default (auto_now fields: now), prepared once per batch with
    the field's own ``get_db_prep_save``: a field added later is filled the
    same way ``bulk_create`` would fill it.
    """
    if not rows:
        return
    connection = connections[router.db_for_write(CampaignRecipient)]
    meta = CampaignRecipient._meta
    fields = [f for f in meta.concrete_fields if not f.primary_key]
    params = _row_params(campaign, rows, fields, connection)
    qn = connection.ops.quote_name
    # Only quoted model identifiers are interpolated; every value is a parameter.
    table, pk = qn(meta.db_table), qn(meta.pk.column)
    columns = ", ".join(qn(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
                [meta.db_table, meta.pk.column, len(rows)],
            )
            for r, (pk_value,) in zip(rows, cursor.fetchall(), strict=True):
                r.pk = pk_value
            # The raw psycopg cursor: its errors are wrapped by hand, so a key
            # conflict is Django's IntegrityError as with executemany.
            with (
                connection.wrap_database_errors,
                cursor.cursor.copy(f"COPY {table} ({pk}, {columns}) FROM STDIN") as copy,
            ):
                for r, values in zip(rows, params, strict=True):
                    copy.write_row((r.pk, *values))
            return
        cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", params)  # noqa: S608
    ids = recipient_ids_by_key(campaign=campaign, keys=[r.natural_key for r in rows])
    for r in rows:
        r.pk = ids[r.natural_key]


def _row_params(
    campaign: Campaign, rows: list[NewRecipient], fields: list[Any], connection: Any
) -> list[tuple[Any, ...]]:
    """Each row's column values, prepared for ``connection``, in ``fields`` order."""
    now = timezone.now()
    constant: dict[str, Any] = {}
    for f in fields:
        if f.attname == "campaign_id":
            value: Any = campaign.pk
        elif getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False):
            value = now
        else:
            value = f.get_default()
        constant[f.attname] = f.get_db_prep_save(value, connection)
    json_field = CampaignRecipient._meta.get_field("json")
    row_values = itemgetter(*(f.attname for f in fields))
    params = []
    for r in rows:
        values = {
            **constant,
            **r.data,
            "natural_key": r.natural_key,
            "status": r.status,
            "skip_reason": r.skip_reason,
        }
        if r.json:
            values["json"] = json_field.get_db_prep_save(r.json, connection)
        params.append(row_values(values))
    return params


def recipient_ids_by_key(*, campaign: Campaign, keys: Collection[str]) -> dict[str, int]:
    """``{natural key: id}`` of the campaign's recipients among ``keys``."""
    connection = connections[router.db_for_write(CampaignRecipient)]
    if connection.vendor == "postgresql":
        # One array parameter: an IN list of 2000 placeholders costs more to
        # build and parse than the lookup itself on the unique index.
        recipients = CampaignRecipient.objects.filter(EqualsAny(F("natural_key"), list(keys)), campaign=campaign)
        return dict(recipients.values_list("natural_key", "id"))
    found: dict[str, int] = {}
    ordered = list(keys)
    for start in range(0, len(ordered), 500):  # within SQLite's parameter limit
        chunk = ordered[start : start + 500]
        found.update(
            CampaignRecipient.objects.filter(campaign=campaign, natural_key__in=chunk).values_list("natural_key", "id")
        )
    return found


def recipients_refresh_statistics() -> None:
    """``ANALYZE`` the recipients table after a large import (PostgreSQL).

    Autovacuum refreshes the planner's statistics only later, and until then
    it plans from the table as it was: qualification, which runs right after,
    then walks every Pending row of the table for each batch of ids instead of
    looking the ids up (measured: 11 s for one batch of 2000 on a freshly
    loaded table, 7 ms once analyzed).  Bounded cost: PostgreSQL samples a
    fixed number of rows whatever the table's size."""
    connection = connections[router.db_for_write(CampaignRecipient)]
    if connection.vendor != "postgresql":
        return  # SQLite's planner reads no statistics unless asked to keep them
    with connection.cursor() as cursor:
        # Only the columns qualification filters on: the sample is the same,
        # the work per column is not.
        qn = connection.ops.quote_name
        meta = CampaignRecipient._meta
        columns = ", ".join(qn(meta.get_field(name).column) for name in ("campaign", "status"))
        cursor.execute(f"ANALYZE {qn(meta.db_table)} ({columns})")
