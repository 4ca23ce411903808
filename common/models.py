from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import models

from common.fsm import FieldEdit

# A key path inside a JSON object: ("validation_errors",) or ("enrichment", "error").
JSONPath = tuple[str, ...]
# The largest primary key both databases store (a signed 64-bit integer).
MAX_ROW_ID = 2**63 - 1


def is_row_id(term: str) -> bool:
    """Whether typed text can be a row's id: ASCII digits ("²" passes
    ``isdigit``) of a value the database can compare.  A tracking number
    such as 9400111899223100012345 is not one (SQLite raised OverflowError)."""
    return term.isascii() and term.isdigit() and int(term) <= MAX_ROW_ID


class JSONRemove(models.Func):
    """``expression`` without the given key paths, computed by the database:
    ``JSON_REMOVE`` on SQLite (and MySQL), ``-``/``#-`` on PostgreSQL.  Absent
    keys are no-ops, and so is a path through something that is not an
    object, so the same UPDATE fits every row."""

    output_field = models.JSONField()

    def __init__(self, expression: Any, paths: Sequence[JSONPath]) -> None:
        if not paths or not all(paths):
            raise ValueError("JSONRemove needs at least one non-empty key path")
        if any('"' in key for path in paths for key in path):
            # SQLite's quoted path labels have no escape for a double quote.
            raise ValueError("JSONRemove cannot remove a key holding a double quote")
        self.paths = tuple(tuple(p) for p in paths)
        super().__init__(expression)

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:  # type: ignore[override]
        sql, params = compiler.compile(self.source_expressions[0])
        # Each key quoted ("$."a.b""), so a dot or a "$" in a key is not path syntax.
        json_paths = ["$" + "".join(f'."{key}"' for key in path) for path in self.paths]
        return f"JSON_REMOVE({sql}, {', '.join(['%s'] * len(json_paths))})", [*params, *json_paths]

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list[Any]]:
        sql, params = compiler.compile(self.source_expressions[0])
        out = list(params)
        # PostgreSQL raises where SQLite shrugs (removing a key from a
        # scalar, or a text key from an array): each step only runs where its
        # parent is an object, else the value is kept as it is.
        top = [p[0] for p in self.paths if len(p) == 1]
        if top:
            sql, out = (
                f"(CASE WHEN jsonb_typeof({sql}) = 'object' THEN {sql} - %s::text[] ELSE {sql} END)",
                [*out, *out, list(top), *out],
            )
        for path in (p for p in self.paths if len(p) > 1):
            sql, out = (
                f"(CASE WHEN jsonb_typeof({sql} #> %s::text[]) = 'object' THEN {sql} #- %s::text[] ELSE {sql} END)",
                [*out, list(path[:-1]), *out, list(path), *out],
            )
        return sql, out


def _without(value: Any, path: JSONPath) -> Any:
    if not isinstance(value, dict) or path[0] not in value:
        return value
    if len(path) == 1:
        return {k: v for k, v in value.items() if k != path[0]}
    return {**value, path[0]: _without(value[path[0]], path[1:])}


class WithoutKeys(FieldEdit):
    """A transition's sets value: the JSON field minus these key paths, on an
    instance (a new dict; the old one is not mutated) and in a bulk UPDATE
    (``JSONRemove``)."""

    def __init__(self, *paths: JSONPath) -> None:
        self.paths = paths

    def apply(self, current: Any) -> Any:
        for path in self.paths:
            current = _without(current, path)
        return current

    def expression(self, field: str) -> Any:
        return JSONRemove(models.F(field), self.paths)

    def __repr__(self) -> str:
        return f"WithoutKeys{self.paths!r}"


class EqualsAny(models.Lookup):
    """``column = ANY(%s)`` with the values as one array parameter (PostgreSQL
    only): an IN list binds one placeholder per value, and building and
    parsing a 2000-placeholder statement costs several times its execution.
    Used as a filter expression: ``filter(EqualsAny(F("pk"), ids))``."""

    lookup_name = "equals_any"
    prepare_rhs = False

    # The stubs type parameters as str | int; this one is a list (an array).
    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, Any]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        return f"{lhs} = ANY(%s)", (*lhs_params, list(self.rhs))


class TransitionLog(models.Model):
    """Append-only history of one state machine: one row per transition, per
    object or in bulk.  Concrete subclasses add the foreign key to their object."""

    from_status = models.CharField(max_length=50, blank=True)  # blank when the row was created
    to_status = models.CharField(max_length=50)
    source = models.CharField(max_length=64, help_text='What caused it: "admin", "task", "webhook:lob", ...')
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    payload = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(db_index=True)

    class Meta:
        abstract = True
        ordering = ("-created", "-id")

    def __str__(self) -> str:
        return f"{self.from_status or '∅'} → {self.to_status} ({self.source})"

    def save(self, *args: object, **kwargs: object) -> None:
        if self.pk is not None:
            raise ValueError("Transition history is append-only")
        super().save(*args, **kwargs)  # type: ignore[arg-type]
