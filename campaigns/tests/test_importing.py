from __future__ import annotations

import io
import tracemalloc
from pathlib import Path

import pytest

from campaigns.importing import (
    UNCLOSED_QUOTE,
    CsvSource,
    ImportFileError,
    columns_resolve,
    mapping_parse,
    recipients_import_csv,
)
from campaigns.models import Campaign, CampaignRecipient
from campaigns.sync import ImportReport
from campaigns.tests.factories import CampaignFactory
from common.fsm import Actor

DATA = Path(__file__).parent / "data"
ACTOR = Actor("test")
Status = CampaignRecipient.Status


def import_file(campaign: Campaign, name: str, **kwargs: object) -> ImportReport:
    with (DATA / name).open("rb") as f:
        return recipients_import_csv(campaign=campaign, stream=f, actor=ACTOR, source=name, **kwargs)


def rows_of(data: bytes, **kwargs: object) -> tuple[list[dict[str, object]], ImportReport]:
    report = ImportReport()
    rows = list(CsvSource(io.BytesIO(data), report, **kwargs))
    return rows, report


# --- column mapping -----------------------------------------------------------------------


def test_it_maps_common_header_spellings_by_default() -> None:
    cols = columns_resolve(["First Name", "SURNAME", "Street Address", "Postal Code", "Country Code", "Notes"])
    assert dict(cols.fields) == {"first_name": 0, "last_name": 1, "address1": 2, "zip": 3, "country": 4}
    assert cols.extras == [("Notes", 5)]


def test_an_explicit_mapping_wins_over_the_defaults() -> None:
    cols = columns_resolve(
        ["Name", "Line", "Postcode", "zip", "Land"],
        mapping=mapping_parse("first_name=Name, address1=Line,zip=Postcode,country=land"),
    )
    assert dict(cols.fields) == {"first_name": 0, "address1": 1, "zip": 2, "country": 4}
    assert cols.extras == [("zip", 3)]


@pytest.mark.parametrize(
    ("text", "message"),
    [("zip", "is not field=Column"), ("postcode=Zip", "unknown field 'postcode'"), ("zip=", "is not field=Column")],
)
def test_a_bad_mapping_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ImportFileError, match=message):
        mapping_parse(text)


def test_a_mapping_to_an_absent_column_names_the_columns_there_are() -> None:
    with pytest.raises(ImportFileError, match="no column 'Postcode'"):
        columns_resolve(["first_name", "address1", "zip", "country"], mapping={"zip": "Postcode"})


def test_two_columns_that_look_like_the_same_field_are_an_error_naming_the_fix() -> None:
    with pytest.raises(ImportFileError, match=r"'zip' and 'Postcode' both look like zip; choose one with --mapping"):
        columns_resolve(["first_name", "address1", "zip", "Postcode", "country"])


def test_a_default_country_stands_in_for_a_missing_country_column() -> None:
    with pytest.raises(ImportFileError, match="no column for country"):
        columns_resolve(["first_name", "address1", "zip"])
    rows, _ = rows_of(b"first_name,address1,zip\nAda,1 Main,62701\n", default_country="US")
    assert rows[0]["country"] == "US"


def test_enrichment_campaigns_may_import_a_file_without_address_columns() -> None:
    with pytest.raises(ImportFileError, match="no column for address1, zip"):
        columns_resolve(["first_name", "email", "country"])
    assert columns_resolve(["first_name", "email", "country"], enrichment=True).width == 3


# --- bad input, file by file --------------------------------------------------------------


@pytest.mark.django_db
def test_a_plain_file_imports_with_aliases_extras_and_skips() -> None:
    campaign = CampaignFactory()
    report = import_file(campaign, "basic.csv")
    assert report.status == "complete"
    assert (report.rows_read, report.created, report.unparseable_count) == (4, 4, 0)
    assert report.by_status == {"Pending": 2, "Skipped": 2}
    ada = campaign.recipients.get(first_name="Ada")
    assert ada.json == {"extra": {"Favourite": "tea"}}
    assert campaign.recipients.get(first_name="Grace").country == "US"
    kate = campaign.recipients.get(last_name="Johnson")
    assert kate.json["validation_errors"] == [{"field": "first_name", "message": "first_name contains an asterisk"}]


@pytest.mark.django_db
def test_re_importing_the_same_file_creates_no_duplicates() -> None:
    campaign = CampaignFactory()
    import_file(campaign, "basic.csv")
    report = import_file(campaign, "basic.csv")
    assert (report.created, report.already_present) == (0, 4)
    assert campaign.recipients.count() == 4
    campaign.refresh_from_db()
    assert campaign.import_report["already_present"] == 4


@pytest.mark.django_db
def test_a_bom_crlf_and_a_quoted_newline_are_read_as_data() -> None:
    campaign = CampaignFactory()
    report = import_file(campaign, "bom_crlf_quoted_newline.csv")
    assert (report.created, report.unparseable_count) == (2, 0)
    ada = campaign.recipients.get(first_name="Ada")  # no "\ufefffirst_name" header
    assert ada.address2 == "Floor 2\r\nRoom 7"


def test_line_numbers_count_physical_lines_across_quoted_newlines() -> None:
    rows, _ = rows_of((DATA / "bom_crlf_quoted_newline.csv").read_bytes())
    assert [r["_line"] for r in rows] == [2, 4]


@pytest.mark.django_db
def test_latin_1_bytes_in_a_utf8_file_report_the_line_and_keep_the_others() -> None:
    campaign = CampaignFactory()
    report = import_file(campaign, "latin1_bytes.csv")
    assert report.created == 2
    assert report.unparseable_count == 1
    assert report.unparseable[0]["line"] == 3
    assert "byte 0xE9, which is not UTF-8" in report.unparseable[0]["message"]
    assert "'first_name'" in report.unparseable[0]["message"]


def test_a_200_kb_field_is_one_reported_line_and_the_next_rows_still_import() -> None:
    big = "x" * 200_000
    data = f'first_name,address1,zip,country\nAda,"{big}",1,US\nGrace,1 Main,2,US\n'.encode()
    rows, report = rows_of(data)
    assert [r["first_name"] for r in rows] == ["Grace"]
    assert report.unparseable == [{"line": 2, "message": "not valid CSV: field larger than field limit (131072)"}]


@pytest.mark.django_db
def test_a_100_kb_field_becomes_a_skipped_recipient_with_its_value_kept() -> None:
    campaign = CampaignFactory()
    big = "y" * 100_000
    data = f"first_name,address1,zip,country\nAda,{big},1,US\n".encode()
    recipients_import_csv(campaign=campaign, stream=io.BytesIO(data), actor=ACTOR)
    r = campaign.recipients.get()
    assert (r.status, r.skip_reason) == (Status.SKIPPED, "International")
    assert r.json["validation_errors"] == [{"field": "address1", "message": "address1 is longer than 200 characters"}]
    assert r.json["source_row"]["address1"] == big


@pytest.mark.django_db
def test_rows_with_the_wrong_number_of_fields_are_reported_by_line() -> None:
    campaign = CampaignFactory()
    report = import_file(campaign, "wrong_width.csv")
    assert report.created == 2
    assert report.unparseable == [
        {"line": 3, "message": "has 8 columns; the header has 7"},
        {"line": 4, "message": "has 3 columns; the header has 7"},
    ]
    campaign.refresh_from_db()
    assert campaign.import_report["unparseable_count"] == 2


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "message", "saved"),
    [
        ("empty.csv", "the file is empty", "the file is empty"),
        (
            "missing_headers.csv",
            "no column for address1, zip",
            "no column was recognised for the street address and the zip / postal code",
        ),
        ("duplicated_headers.csv", "column 'zip' appears twice", "the column 'zip' appears twice in the first line"),
    ],
)
def test_a_file_level_problem_is_a_clear_error_and_a_rejected_report(name: str, message: str, saved: str) -> None:
    """The command's error names its options; the saved report, which the
    admin shows as the campaign's last import, says it in words."""
    campaign = CampaignFactory()
    with pytest.raises(ImportFileError, match=message):
        import_file(campaign, name)
    assert campaign.recipients.count() == 0
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "rejected"
    assert saved in campaign.import_report["errors"][0]
    assert "--" not in campaign.import_report["errors"][0]


def test_a_file_of_only_a_bom_and_blank_lines_is_empty() -> None:
    with pytest.raises(ImportFileError, match="the file is empty"):
        rows_of(b"\xef\xbb\xbf\r\n\r\n  \n")


def test_duplicated_unused_headers_are_kept_as_numbered_extras() -> None:
    rows, _ = rows_of(b"first_name,address1,zip,country,tag,tag\nAda,1 Main,1,US,a,b\n")
    assert rows[0]["extra"] == {"tag": "a", "tag (2)": "b"}


@pytest.mark.django_db
def test_formula_like_cells_are_stored_as_plain_data() -> None:
    campaign = CampaignFactory()
    import_file(campaign, "formula_cells.csv")
    hacker = campaign.recipients.get(last_name="Hacker")
    assert hacker.first_name == "=cmd|' /C calc'!A0"
    assert hacker.json["extra"] == {"note": "@SUM(A1)"}
    plus = campaign.recipients.get(first_name="+Plus")
    assert plus.last_name == "-Minus"


def test_an_unmatched_quote_cannot_swallow_the_file_silently() -> None:
    """The quote runs on past the reader's cell size limit (131,072 characters):
    only its own line is lost, and said so; the 20,000 rows after it import."""
    data = b'first_name,address1,zip,country\nAda,"1 Main,1,US\n' + b"Grace,2 Main,2,US\n" * 20_000
    rows, report = rows_of(data)
    assert [(u["line"], u["message"]) for u in report.unparseable] == [(2, UNCLOSED_QUOTE)]
    assert len(rows) == 20_000
    assert (rows[0]["_line"], rows[-1]["_line"]) == (3, 20_002)


def test_a_quote_closed_lines_later_loses_only_its_own_row() -> None:
    """An Excel note cell "VIP, call first with no closing quote, closed by a
    quoted cell further down: the rows between are read on their own."""
    head = b"First Name,Last Name,Address,Zip,Country,Note\n"
    good = [b"P%d,Q,1 Main St,78701,US,ok\n" % i for i in range(10)]
    unclosed = b'A,One,1 Main St,78701,US,"VIP, call first\n'
    data = head + unclosed + b"".join(good) + b'Z,Last,1 Main St,78701,US,"a ""quoted"" note"\n'
    rows, report = rows_of(data)
    assert [u["line"] for u in report.unparseable] == [2]
    assert [r["first_name"] for r in rows] == [f"P{i}" for i in range(10)] + ["Z"]
    assert [r["_line"] for r in rows] == list(range(3, 14))
    assert rows[-1]["extra"] == {"Note": 'a "quoted" note'}


def test_a_cell_that_really_holds_line_breaks_keeps_its_row_whole() -> None:
    data = b'first_name,address1,zip,country\nAda,"1 Main St\nSuite 4\nBack door",62701,US\nGrace,2 Main,62701,US\n'
    rows, report = rows_of(data)
    assert report.unparseable_count == 0
    assert [(r["first_name"], r["_line"]) for r in rows] == [("Ada", 2), ("Grace", 5)]
    assert (rows[0]["address1"], rows[0]["address2"]) == ("1 Main St", "Suite 4 Back door")


def test_rows_of_empty_cells_are_blank_lines_and_trailing_empty_cells_are_dropped() -> None:
    """What a spreadsheet saves: ",,,,," under the data, a comma after the last
    column.  Neither is a recipient nor an error; a row one cell short is."""
    data = (
        b"First Name,Last Name,Address,Zip,Country\r\n"
        b"A,One,1 Main St,78701,US,\r\n"
        b"B,Two,2 Main St,78701,US,, ,\r\n"
        b",,,,\r\n"
        b",,,,,,\r\n"
        b"C,Three,3 Main St,78701\r\n"
        b"D,Four,4 Main St,78701,US,extra\r\n"
    )
    rows, report = rows_of(data)
    assert [r["first_name"] for r in rows] == ["A", "B"]
    assert [(u["line"], u["message"]) for u in report.unparseable] == [
        (6, "has 4 columns; the header has 5"),
        (7, "has 6 columns; the header has 5"),
    ]


# --- streaming ----------------------------------------------------------------------------


@pytest.mark.slow
def test_a_million_rows_stream_with_flat_memory(tmp_path: Path) -> None:
    """The reader holds one row at a time (tracemalloc makes this ~10x slower,
    so validation, a per-row pure function, is left out; the database side is
    covered by the next test)."""
    path = tmp_path / "million.csv"
    line = "Pat,Doe,{} Main St,Springfield,IL,62701,US,pat{}@example.com\n"
    with path.open("w", encoding="utf-8") as f:
        f.write("first_name,last_name,address1,city,state,zip,country,email\n")
        for start in range(0, 1_000_000, 10_000):
            f.write("".join(line.format(i, i) for i in range(start, start + 10_000)))
    report = ImportReport()
    tracemalloc.start()
    try:
        count = 0
        with path.open("rb") as f:
            for row in CsvSource(f, report):
                count += 1
                last = row
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, report.unparseable_count) == (1_000_000, 0)
    assert last["address1"] == "999999 Main St"
    # The file is ~70 MB; a reader that kept rows would peak at hundreds of MB.
    assert peak < 5 * 1024 * 1024


@pytest.mark.django_db
def test_the_database_import_memory_does_not_grow_with_the_file() -> None:
    def peak_for(n: int) -> int:
        campaign = CampaignFactory()
        body = "".join(f"Pat{i},Doe,{i} Main St,62701,US\n" for i in range(n))
        data = ("first_name,last_name,address1,zip,country\n" + body).encode()
        tracemalloc.start()
        try:
            recipients_import_csv(campaign=campaign, stream=io.BytesIO(data), actor=ACTOR, batch_size=500)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak_for(2_000), peak_for(8_000)
    # The input bytes themselves grow (~0.3 MB); the working set must not.
    assert large < small + 1024 * 1024


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("address1 is empty", "Street address is empty"),
        ("first_name and last_name are both empty", "First name and last name are both empty"),
        (
            "No usable address or name: first_name contains an asterisk",
            "No usable address or name: First name contains an asterisk",
        ),
        ("state 'ZZ' is not a US state", "State / province 'ZZ' is not a US state"),
        ("the address1 column", "the address1 column"),  # only a field opening the message
    ],
)
def test_a_checks_message_is_shown_with_the_import_pages_field_names(stored: str, shown: str) -> None:
    from campaigns.importing import field_words

    assert field_words(stored) == shown
