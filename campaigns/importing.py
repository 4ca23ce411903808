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
from itertools import chain
from typing import IO, Any, TypedDict, cast

from campaigns.models import Campaign
from campaigns.sync import ImportReport, SyncError, recipients_sync
from campaigns.validation import RECIPIENT_FIELDS
from common.fsm import Actor
from common.geo import country_normalize

# Header spellings understood without a mapping, compared squashed
# (casefolded, letters and digits only): "Postal Code" == "postalcode".
# Besides the usual names: Shopify's customer export ("Default Address
# Address1", "Default Address Province Code"; older exports "Address1",
# "Province Code", "Country Code", "Zip"), HubSpot's contacts ("Street Address",
# "State/Region", "Postal Code", "Country/Region") and Salesforce's ("Mailing
# Street", "Mailing State/Province", "Mailing Zip/Postal Code").
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("externalid", "id", "customerid", "recipientid", "contactid", "crmid", "recordid"),
    "first_name": (
        "firstname",
        "first",
        "givenname",
        "fname",
        "forename",
        "defaultaddressfirstname",
        "mailingfirstname",
    ),
    "last_name": ("lastname", "last", "surname", "familyname", "lname", "defaultaddresslastname"),
    "company": (
        "company",
        "companyname",
        "organization",
        "organisation",
        "business",
        "defaultaddresscompany",
        "accountname",
    ),
    "address1": (
        "address1",
        "address",
        "addressline1",
        "street",
        "streetaddress",
        "streetaddress1",
        "line1",
        "address1line",
        "defaultaddressaddress1",
        "mailingstreet",
        "mailingaddress",
        "mailingaddress1",
        "mailingaddressline1",
    ),
    "address2": (
        "address2",
        "addressline2",
        "line2",
        "apt",
        "suite",
        "unit",
        "streetaddress2",
        "defaultaddressaddress2",
        "mailingaddress2",
        "mailingaddressline2",
    ),
    "city": ("city", "town", "locality", "defaultaddresscity", "mailingcity"),
    "state": (
        "state",
        "province",
        "provincecode",
        "region",
        "stateprovince",
        "stateregion",
        "statecode",
        "county",
        "defaultaddressprovincecode",
        "mailingstateprovince",
        "mailingstate",
        "mailingstateprovincecode",
        "mailingstatecode",
    ),
    "zip": (
        "zip",
        "zipcode",
        "postcode",
        "postalcode",
        "postal",
        "zippostalcode",
        "defaultaddresszip",
        "mailingzippostalcode",
        "mailingpostalcode",
        "mailingzip",
    ),
    "country": (
        "country",
        "countrycode",
        "countryiso",
        "countryregion",
        "defaultaddresscountrycode",
        "mailingcountry",
        "mailingcountrycode",
    ),
    "email": ("email", "emailaddress", "mail"),
}
# How the admin names each field (the dry run's column list, the pickers, errors).
FIELD_LABELS: dict[str, str] = {
    "external_id": "Customer ID",
    "first_name": "First name",
    "last_name": "Last name",
    "company": "Company",
    "address1": "Street address",
    "address2": "Address line 2",
    "city": "City",
    "state": "State / province",
    "zip": "ZIP / postal code",
    "country": "Country",
    "email": "Email",
}
_FIELD_NAMES = "|".join(sorted(FIELD_LABELS, key=len, reverse=True))
# A field name opening a check's message, or after "…: " (the Why column's
# "reason: detail"), and "first_name and last_name".
_FIELD_AT_START = re.compile(rf"(^|: )({_FIELD_NAMES})\b(?: and ({_FIELD_NAMES})\b)?")


def field_words(message: str) -> str:
    """A check's message with the field names people see on the import page
    ("address1 is empty" → "Street address is empty"; "first_name and
    last_name are both empty" → "First name and last name are both empty").
    The stored messages keep the names; pages and reports show these."""

    def label(m: re.Match[str]) -> str:
        text = m.group(1) + FIELD_LABELS[m.group(2)]
        return text + (f" and {FIELD_LABELS[m.group(3)].lower()}" if m.group(3) else "")

    return _FIELD_AT_START.sub(label, message)


# When a file has both spellings (older Shopify exports: "Province" and
# "Province Code", "Country" and "Country Code"), the code wins and the other
# column is kept as extra information.
PREFERRED_ALIASES = frozenset(
    {
        "provincecode",
        "statecode",
        "countrycode",
        "defaultaddressprovincecode",
        "defaultaddresscountrycode",
        # Salesforce reports and Data Loader exports with state and country picklists.
        "mailingstateprovincecode",
        "mailingstatecode",
        "mailingcountrycode",
    }
)
_ALIAS_TO_FIELD = {alias: name for name, aliases in DEFAULT_ALIASES.items() for alias in aliases}
_NOT_UTF8 = re.compile("[\udc80-\udcff]")


class CsvReading(TypedDict, total=False):
    """How to read a CSV file, as the admin form and the command collect it."""

    source: str  # the file's name, for the report
    mapping: Mapping[str, str] | None  # recipient field -> column, for unusual headers
    default_country: str  # for rows without a country


class ImportFileError(SyncError):
    """The file as a whole cannot be imported; the message says why and how to
    fix it.  ``plain`` is the same in words for the admin (no field names, no
    command-line options); ``headers`` the file's column names when they are
    known, so the admin can offer them to pick from."""

    def __init__(self, message: str, *, plain: str = "", headers: list[str] | None = None) -> None:
        super().__init__(message)
        self.plain = plain or message
        self.headers = headers


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


# The parts of a combined address cell, as Mailchimp exports its address
# field (and asks for it on import): street, second line, city, state, ZIP
# and country, each separated by two spaces.
COMBINED_ADDRESS_WORDS = "the whole address: street, city, state, ZIP and country, separated by two spaces"
_COMBINED_PARTS = ("address1", "address2", "city", "state", "zip", "country")


def combined_address(cell: str) -> dict[str, str] | None:
    """The fields of a combined address cell ("1701 Bristol Ave.  Barrington
    RI  02806  USA"), or None when it does not split into one.  Six parts are
    Mailchimp's six slots in order, empty ones kept (an empty last part is a
    missing country).  With the empty ones left out, the last part is the
    country only when it names one: then five are street, city, state, ZIP,
    country and four street, city, ZIP, country; without one, five are
    street, second line, city, state, ZIP and four street, city, state, ZIP
    (the default country fills it)."""
    parts = [p.strip() for p in cell.split("  ")]
    while len(parts) > len(_COMBINED_PARTS) and not parts[-1]:
        parts.pop()  # spaces after the last part
    while len(parts) > len(_COMBINED_PARTS) and not parts[0]:
        parts.pop(0)  # spaces before the street
    given = [p for p in parts if p]
    ends_in_country = bool(given) and country_normalize(given[-1]) is not None
    # Six parts with an empty last one are the slots with no country, unless
    # the last given part is a country: then it is five parts and trailing spaces.
    if len(parts) == len(_COMBINED_PARTS) and parts[0] and parts[4] and (parts[5] or not ends_in_country):
        return dict(zip(_COMBINED_PARTS, parts, strict=True))
    if ends_in_country:
        names: tuple[str, ...] = {
            5: ("address1", "city", "state", "zip", "country"),
            4: ("address1", "city", "zip", "country"),
        }.get(len(given), ())
    else:
        names = {5: ("address1", "address2", "city", "state", "zip"), 4: ("address1", "city", "state", "zip")}.get(
            len(given), ()
        )
    return dict(zip(names, given, strict=True)) if names else None


@dataclass
class Columns:
    fields: list[tuple[str, int]]  # (recipient field, column index)
    extras: list[tuple[str, int]]  # (header, column index) of unmapped, named columns
    width: int
    headers: list[str] = field(default_factory=list)
    # The street column holds the whole address (no city or ZIP column).
    combined_address: bool = False

    def used(self) -> list[tuple[str, str]]:
        """(column, what it fills, in words), in the file's order."""
        return [
            (
                self.headers[i],
                COMBINED_ADDRESS_WORDS if self.combined_address and name == "address1" else FIELD_LABELS[name],
            )
            for name, i in self.fields
        ]

    def ignored(self) -> list[str]:
        """The named columns that fill no field (kept with the recipient as extra data)."""
        return [h for h, _ in self.extras]

    def chosen(self) -> dict[str, str]:
        """field -> column, as a mapping that picks the same columns again."""
        return {name: self.headers[i] for name, i in self.fields}


def _quoted_list(headers: list[str]) -> str:
    return ", ".join(f"\u201c{h}\u201d" for h in headers if h)


def columns_resolve(
    headers: list[str], *, mapping: Mapping[str, str] | None = None, enrichment: bool = False, default_country: str = ""
) -> Columns:
    """Which column feeds which field: explicit mapping first, then the default
    aliases.  Ambiguity and missing required columns are errors that name the fix."""
    headers = [h.strip() for h in headers]
    if not any(headers):
        raise ImportFileError("the header row is empty: the first line must name the columns")
    if default_country.strip() and country_normalize(default_country) is None:
        # Checked before any row: every row without a country would be Skipped with it.
        raise ImportFileError(
            f"--default-country {default_country!r} is not a recognised country (e.g. US, GB, Canada)",
            plain=f"the default country {default_country!r} is not a recognised country (e.g. US, GB, Canada)",
        )
    by_name: dict[str, list[int]] = {}
    for i, h in enumerate(headers):
        by_name.setdefault(h.casefold(), []).append(i)
    chosen: dict[str, int] = {}
    for name, column in (mapping or {}).items():
        found = by_name.get(column.strip().casefold())
        if not found:
            raise ImportFileError(
                f"mapping {name}={column}: the file has no column {column!r} (columns: {headers})",
                plain=f"the file has no column \u201c{column}\u201d (its columns: {_quoted_list(headers)})",
                headers=headers,
            )
        if len(found) > 1:
            raise ImportFileError(
                f"column {column!r} appears {len(found)} times in the header; rename one", headers=headers
            )
        chosen[name] = found[0]
    used = set(chosen.values())
    for i, h in enumerate(headers):
        alias = _ALIAS_TO_FIELD.get(_squash(h))
        if alias is None or alias in (mapping or {}) or i in used:
            continue
        if alias in chosen and alias not in (mapping or {}):
            preferred = _squash(headers[chosen[alias]]) in PREFERRED_ALIASES
            if preferred != (_squash(h) in PREFERRED_ALIASES):
                if not preferred:
                    chosen[alias] = i
                continue
        if alias in chosen:
            first = headers[chosen[alias]]
            label = FIELD_LABELS[alias].lower()
            if first.casefold() == h.casefold():
                what = f"column {h!r} appears twice"
                plain = f"the column {h!r} appears twice in the first line; rename one of them"
            else:
                what = f"columns {first!r} and {h!r} both look like {alias}"
                plain = (
                    f"the columns \u201c{first}\u201d and \u201c{h}\u201d could both be the {label}; "
                    f"pick the one to use for {FIELD_LABELS[alias]}"
                )
            raise ImportFileError(f"{what}; choose one with --mapping {alias}=<column>", plain=plain, headers=headers)
        chosen[alias] = i
    missing = []
    if "first_name" not in chosen and "last_name" not in chosen:
        missing.append("first_name or last_name")
    # A street column and no city or ZIP column: it holds the whole address
    # (Mailchimp's address field), ZIP and country included.
    combined = "address1" in chosen and "zip" not in chosen and "city" not in chosen
    required = ["country"] if not default_country and not combined else []
    if not enrichment and not combined:
        required = ["address1", "zip", *required]
    missing += [name for name in required if name not in chosen]
    if missing:
        words = [
            "a first or last name" if m == "first_name or last_name" else f"the {FIELD_LABELS[m].lower()}"
            for m in missing
        ]
        listed = words[0] if len(words) == 1 else f"{', '.join(words[:-1])} and {words[-1]}"
        plain = (
            f"no column was recognised for {listed} (the file's columns: {_quoted_list(headers)}); "
            "choose the columns to use on the import page"
            + (", or give a default country" if "country" in missing else "")
        )
        raise ImportFileError(
            f"no column for {', '.join(missing)} (columns: {headers}); name them with --mapping field=Column"
            + (" or give --default-country" if "country" in missing else ""),
            plain=plain,
            headers=headers,
        )
    taken = set(chosen.values())
    extras = []
    for i, h in enumerate(headers):
        if i not in taken and h:
            n = by_name[h.casefold()].index(i)
            extras.append((h if n == 0 else f"{h} ({n + 1})", i))
    return Columns(
        fields=sorted(chosen.items(), key=lambda kv: kv[1]),
        extras=extras,
        width=len(headers),
        headers=headers,
        combined_address=combined,
    )


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
    delimiter: str = field(default=",", init=False)
    _counter: _CountingReader | None = field(default=None, init=False)

    @property
    def bytes_read(self) -> int:
        return self._counter.count if self._counter else 0

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self._counter = _CountingReader(self.stream)
        text = _text(self._counter)
        head, self.delimiter = _sniff(text)
        lines = _Lines(chain(head, text))
        reader = csv.reader(lines, delimiter=self.delimiter)
        header = _header(reader)
        if header is None:
            raise ImportFileError("the file is empty: expected a header row and data rows")
        cols = self.columns = columns_resolve(
            header, mapping=self.mapping, enrichment=self.enrichment, default_country=self.default_country
        )
        default_country = self.default_country
        split_street = "address2" not in dict(cols.fields)
        while True:
            start = lines.count + 1
            lines.taken.clear()
            try:
                row: list[str] | None = next(reader)
                problem = ""
            except StopIteration:
                return
            except csv.Error as exc:
                row, problem = None, f"not valid CSV: {exc}"
            if len(lines.taken) > 1 and lines.swallowed(row, cols.width, self.delimiter):
                # A quote opened on this line and never closed (or closed lines
                # later) made the lines after it one cell: this line is reported,
                # and the lines it swallowed are read again as rows of their own.
                lines.give_back()
                self.report.add_unparseable(start, UNCLOSED_QUOTE)
                continue
            if row is None:
                self.report.add_unparseable(start, problem)
                continue
            if not "".join(row).strip():
                continue  # a blank line, or a row of empty cells (a spreadsheet's ",,,,,,")
            if len(row) > cols.width and not "".join(row[cols.width :]).strip():
                row = row[: cols.width]  # empty cells past the header's last column (a trailing comma)
            if len(row) != cols.width:
                cells = f"{len(row)} column{'' if len(row) == 1 else 's'}"
                self.report.add_unparseable(start, f"has {cells}; the header has {cols.width}")
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
            if cols.combined_address and (parts := combined_address(out.get("address1") or "")):
                # A column of its own (a country column) wins where it has a value.
                out.update({k: v for k, v in parts.items() if not (out.get(k) or "").strip()})
                out["address1"] = parts["address1"]
            if default_country and not out.get("country", "").strip():
                out["country"] = default_country
            zip_code = out.get("zip")
            if zip_code and zip_code.lstrip().startswith("'"):
                # Shopify writes "'02134" so a spreadsheet keeps the leading zero.
                out["zip"] = zip_code.lstrip()[1:]
            street = out.get("address1")
            if split_street and street and "\n" in street.strip():
                # Salesforce's "Mailing Street" holds every street line in one cell.
                first, _, rest = street.strip().partition("\n")
                out["address1"], out["address2"] = first.strip(), " ".join(rest.split())
            if cols.extras:
                extra = {h: row[i] for h, i in cols.extras if row[i]}
                if extra:
                    out["extra"] = extra
            yield out


UNCLOSED_QUOTE = (
    'a quote (") opened in this row is never closed, so the lines after it were read as part of this row; '
    "this row was not imported and the lines after it were read on their own. Close or remove the quote and "
    "import the file again (rows already imported are not duplicated)"
)


class _Lines:
    """The file's lines as the CSV reader takes them, counted, with the lines
    of the row being read kept (``taken``) so that a row an unclosed quote ran
    on into the rows after it can hand them back to be read again
    (``give_back``).  Without it, ``"VIP, call first`` with no closing quote
    made the next thousands of lines one cell: they were lost with a single
    line reported.  A row spans at most the reader's field size limit, so
    ``taken`` stays small."""

    def __init__(self, source: Iterator[str]) -> None:
        self.source = source
        self.back: list[str] = []  # lines handed back, the next one last
        self.taken: list[str] = []
        self.count = 0  # lines read, less the ones handed back

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self.back.pop() if self.back else next(self.source)
        self.taken.append(line)
        self.count += 1
        return line

    def swallowed(self, row: list[str] | None, width: int, delimiter: str) -> bool:
        """Whether the row just read ran on over lines that look like rows of
        their own: it spans several lines, and it is broken (a CSV error, the
        wrong number of fields) or a line after its first reads, alone, as a
        row of the header's width.  A cell that really holds line breaks (a
        Salesforce street, a note) keeps the row whole."""
        if len(self.taken) < 2 or _cells(self.taken[0], delimiter) is not None:
            return False
        if row is None or len(row) != width:
            return True
        return any(len(_cells(line, delimiter) or ()) == width for line in self.taken[1:])

    def give_back(self) -> None:
        """The row's lines after its first, to be read again."""
        rest = self.taken[1:]
        self.back.extend(reversed(rest))
        self.count -= len(rest)
        self.taken.clear()


def _cells(line: str, delimiter: str) -> list[str] | None:
    """The line's cells read alone, or None when it ends inside a quoted cell."""
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error:
        return None


def _text(raw: io.RawIOBase | IO[bytes]) -> io.TextIOWrapper:
    """UTF-8 text (a BOM skipped), bytes that are not UTF-8 kept as surrogates."""
    buffered = io.BufferedReader(cast(io.RawIOBase, raw), 1 << 16)
    return io.TextIOWrapper(buffered, encoding="utf-8-sig", errors="surrogateescape", newline="")


DELIMITERS = (",", ";", "\t", "|")


def _outside_quotes(line: str) -> str:
    return re.sub(r'"[^"]*("|$)', "", line)


def _sniff(text: IO[str]) -> tuple[list[str], str]:
    """The lines up to the header (read ahead, handed back) and the file's
    delimiter: whichever of comma, semicolon (Excel in most of Europe), tab or
    pipe the header line holds most often outside quotes; a comma on a tie."""
    lines: list[str] = []
    for line in text:
        lines.append(line)
        if line.strip() or len(lines) > 1000:
            break
    header = _outside_quotes(lines[-1]) if lines else ""
    counts = {d: header.count(d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: (counts[d], d == ","))
    return lines, best if counts[best] else ","


def _header(reader: Any) -> list[str] | None:
    try:
        for row in reader:
            if any(cell.strip() for cell in row):
                if _NOT_UTF8.search("".join(row)):
                    raise ImportFileError("the header row is not UTF-8; save the file as UTF-8")
                return list(row)
    except csv.Error as exc:
        raise ImportFileError(f"the header row is not valid CSV: {exc}") from exc
    return None


def csv_headers(stream: IO[bytes]) -> list[str]:
    """The column names of a CSV byte stream (its first non-blank line), for
    the admin's column pickers; empty when there is none to read."""
    text = _text(_CountingReader(stream))
    try:
        lines, delimiter = _sniff(text)
        header = _header(csv.reader(chain(lines, text), delimiter=delimiter))
    except (ImportFileError, UnicodeError, OSError):
        return []
    finally:
        text.detach()
        if stream.seekable():
            stream.seek(0)
    return [h.strip() for h in header or [] if h.strip()]


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
    update: bool = False,
) -> ImportReport:
    """The import stage alone: read a CSV byte stream and sync its rows into
    ``campaign``.  A file-level problem raises ``ImportFileError`` (nothing
    of the file is imported; see ``campaign_keep_last_import`` for what the
    campaign keeps as its last import); row problems end up in the report or
    as Skipped recipients; ``update`` lets rows change the recipients they
    match while those are not yet in flight.
    ``campaigns.audience.campaign_import_file`` runs this and then the stages
    after it."""
    report = report or ImportReport(source=source)
    rows = CsvSource(
        stream, report, mapping=mapping, enrichment=campaign.address_enrichment, default_country=default_country
    )
    on_batch = (lambda r: progress(rows, r)) if progress else None
    last = dict(campaign.import_report or {})
    try:
        return recipients_sync(
            campaign=campaign,
            rows=rows,
            actor=actor,
            report=report,
            batch_size=batch_size,
            progress=on_batch,
            update=update,
        )
    except ImportFileError:
        campaign_keep_last_import(campaign=campaign, last=last, rejected=report)
        raise


# The note a rejected file leaves on the campaign's last import report.
REJECTED_SINCE = "rejected_since"


def campaign_keep_last_import(*, campaign: Campaign, last: Mapping[str, Any], rejected: ImportReport) -> None:
    """After a file was rejected as a whole (not a CSV, empty, no usable
    columns), the campaign's last import stays the one that imported rows:
    the sync saved the rejected file's report over it, which hid the real
    import's summary.  The rejection is kept beside it as a note
    (``REJECTED_SINCE``: the file's name, when, why).  With no earlier
    import (or only rejected ones), the rejected report stays: it is all
    there is to say."""
    if not last or last.get("status") == "rejected":
        return
    kept = {
        **last,
        REJECTED_SINCE: {
            "source": rejected.source,
            "finished": rejected.finished,
            "errors": list(rejected.errors),
        },
    }
    # Only over the rejected report: an import that finished meanwhile stays.
    if Campaign.objects.filter(pk=campaign.pk, import_report__status="rejected").update(import_report=kept):
        campaign.import_report = kept
