"""CSV import: a streaming reader, the column mapping, and the glue to sync.

The reader decodes UTF-8 (a BOM is skipped) with ``surrogateescape`` so a
row holding bytes that are not UTF-8 is reported by line number instead of
killing the import; quoted newlines and CRLF are handled by opening with
``newline=""``; Python's csv field limit (128 KiB) stays, so an unmatched
quote cannot swallow the file and an oversized field is one reported line.
Rows are yielded one at a time: memory does not grow with the file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypedDict

from campaigns.models import Campaign
from campaigns.sync import ImportReport, SyncError, recipients_sync
from campaigns.validation import RECIPIENT_FIELDS
from common.fsm import Actor

# Header spellings understood without a mapping, compared squashed
# (casefolded, letters and digits only): "Postal Code" == "postalcode".
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("externalid", "id", "customerid", "recipientid", "contactid", "crmid"),
    "first_name": ("firstname", "first", "givenname", "fname", "forename"),
    "last_name": ("lastname", "last", "surname", "familyname", "lname"),
    "company": ("company", "companyname", "organization", "organisation", "business"),
    "address1": ("address1", "address", "addressline1", "street", "streetaddress", "line1", "address1line"),
    "address2": ("address2", "addressline2", "line2", "apt", "suite", "unit"),
    "city": ("city", "town", "locality"),
    "state": ("state", "province", "region", "stateprovince", "county"),
    "zip": ("zip", "zipcode", "postcode", "postalcode", "postal"),
    "country": ("country", "countrycode", "countryiso"),
    "email": ("email", "emailaddress", "mail"),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in DEFAULT_ALIASES.items() for alias in aliases}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


class CsvReading(TypedDict, total=False):
    """How to read a CSV file, as the admin form and the command collect it."""

    source: str  # the file's name, for the report
    mapping: Mapping[str, str] | None  # recipient field -> column, for unusual headers
    default_country: str  # for rows without a country


class ImportFileError(SyncError):
    """The file as a whole cannot be imported; the message says why and how to fix it."""


def _squash(header: str) -> str:
    return re.sub(r"[^0-9a-z]", "", header.casefold())


def mapping_parse(text: str) -> dict[str, str]:
    """``"first_name=First,zip=Postcode"`` -> ``{"first_name": "First", "zip": "Postcode"}``."""
    mapping: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, column = part.partition("=")
        name, column = name.strip(), column.strip()
        if not sep or not name or not column:
            raise ImportFileError(f"mapping {part!r} is not field=Column")
        if name not in RECIPIENT_FIELDS:
            raise ImportFileError(f"mapping {part!r}: unknown field {name!r} (fields: {', '.join(RECIPIENT_FIELDS)})")
        mapping[name] = column
    return mapping


@dataclass
class Columns:
    fields: list[tuple[str, int]]  # (recipient field, column index)
    extras: list[tuple[str, int]]  # (header, column index) of unmapped, named columns
    width: int


def columns_resolve(
    headers: list[str], *, mapping: Mapping[str, str] | None = None, enrichment: bool = False, default_country: str = ""
) -> Columns:
    """Which column feeds which field: explicit mapping first, then the default
    aliases.  Ambiguity and missing required columns are errors that name the fix."""
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise ImportFileError("the header row is empty: the first line must name the columns")
    by_name: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        by_name.setdefault(h.casefold(), []).append(i)
    chosen: dict[str, int] = {}
    for name, column in (mapping or {}).items():
        found = by_name.get(column.strip().casefold())
        if not found:
            raise ImportFileError(f"mapping {name}={column}: the file has no column {column!r} (columns: {headers})")
        if len(found) > 1:
            raise ImportFileError(f"column {column!r} appears {len(found)} times in the header; rename one")
        chosen[name] = found[0]
    used = set(chosen.values())
    for i, h in enumerate(headers):
        alias = _ALIAS_TO_FIELD.get(_squash(h))
        if alias is None or alias in (mapping or {}) or i in used:
            continue
        if alias in chosen:
            first = headers[chosen[alias]]
            what = (
                f"column {h!r} appears twice"
                if first.casefold() == h.casefold()
                else (f"columns {first!r} and {h!r} both look like {alias}")
            )
            raise ImportFileError(f"{what}; choose one with --mapping {alias}=<column>")
        chosen[alias] = i
    missing = []
    if "first_name" not in chosen and "last_name" not in chosen:
        missing.append("first_name or last_name")
    required = ["country"] if not default_country else []
    if not enrichment:
        required = ["address1", "zip", *required]
    missing += [name for name in required if name not in chosen]
    if missing:
        raise ImportFileError(
            f"no column for {', '.join(missing)} (columns: {headers}); name them with --mapping field=Column"
            + (" or give --default-country" if "country" in missing else "")
        )
    taken = set(chosen.values())
    extras = []
    for i, h in enumerate(headers):
        if i not in taken and h:
            n = by_name[h.casefold()].index(i)
            extras.append((h if n == 0 else f"{h} ({n + 1})", i))
    return Columns(fields=sorted(chosen.items(), key=lambda kv: kv[1]), extras=extras, width=len(headers))


class _CountingReader(io.RawIOBase):
    """Counts the bytes handed to the decoder, for the progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.count += n
        return n


@dataclass
class CsvSource:
    """Iterating yields one dict per data row (``_line`` = its first line);
    rows that cannot be parsed go to ``report`` with their line number."""

    stream: IO[bytes]
    report: ImportReport
    mapping: Mapping[str, str] | None = None
    enrichment: bool = False
    default_country: str = ""
    columns: Columns | None = field(default=None, init=False)
    _counter: _CountingReader | None = field(default=None, init=False)

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._counter = _CountingReader(self.stream)
        text = io.TextIOWrapper(
            io.BufferedReader(self._counter, 1 << 16), encoding="utf-8-sig", errors="surrogateescape", newline=""
        )
        reader = csv.reader(text)
        header = self._header(reader)
        if header is None:
            raise ImportFileError("the file is empty: expected a header row and data rows")
        cols = self.columns = columns_resolve(
            header, mapping=self.mapping, enrichment=self.enrichment, default_country=self.default_country
        )
        default_country = self.default_country
        last = reader.line_num
        while True:
            start = last + 1
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                last = reader.line_num
                self.report.add_unparseable(start, f"not valid CSV: {exc}")
                continue
            last = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            if len(row) != cols.width:
                self.report.add_unparseable(start, f"has {len(row)} fields; the header has {cols.width}")
                continue
            if _NOT_UTF8.search("".join(row)):
                bad = next(i for i, cell in enumerate(row) if _NOT_UTF8.search(cell))
                byte = _NOT_UTF8.search(row[bad])
                assert byte is not None
                self.report.add_unparseable(
                    start,
                    f"column {header[bad].strip()!r} holds byte 0x{ord(byte.group()) - 0xDC00:02X}, which is not "
                    "UTF-8; save the file as UTF-8 and import it again (rows already imported are not duplicated)",
                )
                continue
            out: dict[str, Any] = {name: row[i] for name, i in cols.fields}
            out["_line"] = start
            if default_country and not out.get("country", "").strip():
                out["country"] = default_country
            if cols.extras:
                extra = {h: row[i] for h, i in cols.extras if row[i]}
                if extra:
                    out["extra"] = extra
            yield out

    def _header(self, reader: Any) -> list[str] | None:
        try:
            for row in reader:
                if any(cell.strip() for cell in row):
                    if _NOT_UTF8.search("".join(row)):
                        raise ImportFileError("the header row is not UTF-8; save the file as UTF-8")
                    return list(row)
        except csv.Error as exc:
            raise ImportFileError(f"the header row is not valid CSV: {exc}") from exc
        return None


def recipients_import_csv(
    *,
    campaign: Campaign,
    stream: IO[bytes],
    actor: Actor,
    source: str = "csv",
    mapping: Mapping[str, str] | None = None,
    default_country: str = "",
    report: ImportReport | None = None,
    batch_size: int = 2000,
    progress: Callable[[CsvSource, ImportReport], None] | None = None,
) -> ImportReport:
    """The import stage alone: read a CSV byte stream and sync its rows into
    ``campaign``.  A file-level problem raises ``ImportFileError`` (and is
    saved as a rejected report); row problems end up in the report or as
    Skipped recipients.  ``campaigns.audience.campaign_import_file`` runs this
    and then the stages after it."""
    report = report or ImportReport(source=source)
    rows = CsvSource(
        stream, report, mapping=mapping, enrichment=campaign.address_enrichment, default_country=default_country
    )
    on_batch = (lambda r: progress(rows, r)) if progress else None
    return recipients_sync(
        campaign=campaign, rows=rows, actor=actor, report=report, batch_size=batch_size, progress=on_batch
    )
