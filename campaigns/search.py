"""The recipient changelist's search, and the indexes it runs on.

A term is read by its shape and looked up only where an index can answer it
(the admin's default, ``icontains`` over eight columns and a join, read all
of a million rows; docs/ops.md says what each shape matches):

- with an ``@``: the email, whole, in any case;
- with a digit: the start of the zip, a whole external id (any case), or a
  whole mailpiece id of a printer (exact);
- one word: the start of the last name, or a whole external id; two or more
  words: the first and the last name's starts ("pat smi"), or the last
  name's or the zip's start ("van der", "SW1A 1AA").

"Any case" and "start" are Django's ``iexact``/``istartswith``, so ``%`` and
``_`` in a term are plain characters.  :class:`PrefixIndex` makes them index
lookups on both databases.
"""

from __future__ import annotations

from typing import Any

from django.db import connections, models
from django.db.backends.ddl_references import Statement, Table
from django.db.models import Q, QuerySet

SEARCH_HELP = (
    "Search by: an email (whole, any case); a last name's start (“smi”; “pat smi” = first and last name); "
    "a zip's start; an external id or a printer's mailpiece id (whole). Nothing else is searched."
)
# Mailpieces found by one printer id: a piece id is unique per printer.
PRINTER_ID_MATCHES = 50


class PrefixIndex(models.Index):
    """An index for case-insensitive prefix and exact lookups on text columns
    (``istartswith``, ``iexact``), in the form each database needs:

    - PostgreSQL: Django writes ``UPPER("col"::text) LIKE UPPER(%s)``, so the
      index is on that expression with ``text_pattern_ops`` (LIKE can use a
      btree under any collation only with the pattern operator class);
    - SQLite: Django writes ``"col" LIKE %s ESCAPE '\\'``; LIKE is
      case-insensitive there, and its prefix optimisation needs the column
      indexed ``COLLATE NOCASE``.

    With a second column, a condition on it is checked in the index, before
    the row is read ("pat smi": the first name of every "Smi…").  The
    migration state is a plain index of the fields, so the autodetector sees
    no difference."""

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Statement:
        parts = []
        for field_name in self.fields:
            column = schema_editor.quote_name(model._meta.get_field(field_name).column)
            if schema_editor.connection.vendor == "postgresql":
                parts.append(f"(UPPER({column}::text)) text_pattern_ops")
            else:
                parts.append(f"{column} COLLATE NOCASE")
        return Statement(
            "CREATE INDEX %(name)s ON %(table)s (%(expression)s)",
            name=schema_editor.quote_name(self.name),
            table=Table(model._meta.db_table, schema_editor.quote_name),
            expression=", ".join(parts),
        )


class HasKey(models.Func):
    """``expression`` (a JSON object) has ``key``, with the key written into
    the SQL: SQLite uses a partial index only when the query's condition is
    the index's, literal for literal (Django's ``has_key`` binds the path as
    a parameter, which SQLite's planner cannot see through)."""

    output_field = models.BooleanField()
    conditional = True

    def __init__(self, expression: Any, key: str) -> None:
        if not key.replace("_", "").isalnum():
            raise ValueError(f"HasKey takes a plain key, not {key!r}")
        self.key = key
        super().__init__(expression)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        sql, params = compiler.compile(self.source_expressions[0])
        return f"JSON_TYPE({sql}, '$.\"{self.key}\"') IS NOT NULL", list(params)

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        return f"({sql} ? '{self.key}')", list(params)


def _has_digit(term: str) -> bool:
    return any(c.isdigit() for c in term)


def _printer_recipient_ids(term: str) -> list[int]:
    from mailpieces.models import Mailpiece

    # A separate, indexed lookup (mailpiece.printer_id): a join in the search
    # would make the changelist add DISTINCT/EXISTS over the whole table.
    return list(Mailpiece.objects.filter(printer_id=term).values_list("recipient_id", flat=True)[:PRINTER_ID_MATCHES])


def recipients_search_q(term: str) -> Q | None:
    """The filter for one search box entry; ``None`` for an empty one."""
    term = " ".join(term.split())
    if not term:
        return None
    if "@" in term:
        return Q(email__iexact=term)
    words = term.split(" ")
    if len(words) > 1:
        first, rest = words[0], " ".join(words[1:])
        return (
            Q(first_name__istartswith=first, last_name__istartswith=rest)
            | Q(last_name__istartswith=term)
            | Q(zip__istartswith=term)
        )
    q = Q(external_id__iexact=term)
    if _has_digit(term):
        q |= Q(zip__istartswith=term)
        ids = _printer_recipient_ids(term)
        if ids:
            q |= Q(pk__in=ids)
        return q
    # The last name only: a first name alone would need an index of its own
    # on a table whose every index each status move rewrites.
    return q | Q(last_name__istartswith=term)


def recipients_search(queryset: QuerySet[Any], term: str) -> QuerySet[Any]:
    q = recipients_search_q(term)
    if q is None:
        return queryset
    if connections[queryset.db].vendor != "sqlite":
        return queryset.filter(q)
    # SQLite: the matching ids first (read from the indexes alone), then the
    # rows: a plain filter joined and sorted every matching row (27k for
    # "smi" at 1M: 80 ms) before keeping a page; the id list is walked in the
    # list's order instead (14 ms).  PostgreSQL sorts the plain filter's
    # bitmap well, and the subquery made it merge-join along the primary key.
    return queryset.filter(pk__in=queryset.model._default_manager.filter(q).values("pk"))
