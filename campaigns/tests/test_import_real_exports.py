"""Issue 11, deliverable 5: real CRM and Shopify exports through the admin and the command."""

from __future__ import annotations

import io
import re
from http import HTTPStatus
from pathlib import Path
from unittest import mock

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from campaigns.admin_import import UPLOAD_DIR, upload_find, upload_keep
from campaigns.audience import campaign_import_file, report_lines
from campaigns.dry_run import DUPLICATE, IN_FLIGHT, UPDATED, recipients_dry_run_csv
from campaigns.importing import ImportFileError, columns_resolve, csv_headers
from campaigns.models import CampaignRecipient
from campaigns.tests.factories import CampaignFactory
from common.fsm import Actor

EXPORTS = Path(__file__).parent / "data" / "exports"
ACTOR = Actor("test")
Status = CampaignRecipient.Status
pytestmark = pytest.mark.django_db


def upload(name: str, data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if data is not None else (EXPORTS / name).read_bytes(), "text/csv")


def import_export(campaign, name: str, **kwargs):
    with (EXPORTS / name).open("rb") as f:
        return campaign_import_file(campaign=campaign, file=f, actor=ACTOR, source=name, **kwargs)


def dry_run(campaign, name: str, **kwargs):
    with (EXPORTS / name).open("rb") as f:
        return recipients_dry_run_csv(campaign=campaign, stream=f, actor=ACTOR, source=name, **kwargs)


# --- headers of real exports ------------------------------------------------------------------


def test_a_shopify_customer_export_is_recognised_column_by_column() -> None:
    with (EXPORTS / "shopify_customers_export.csv").open("rb") as f:
        headers = csv_headers(f)
    cols = columns_resolve(headers)
    assert cols.chosen() == {
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "Email",
        "company": "Default Address Company",
        "address1": "Default Address Address1",
        "address2": "Default Address Address2",
        "city": "Default Address City",
        "state": "Default Address Province Code",
        "country": "Default Address Country Code",
        "zip": "Default Address Zip",
    }
    assert "Total Spent" in cols.ignored()
    assert "Default Address Phone" in cols.ignored()


def test_an_older_shopify_export_takes_the_code_columns_over_the_names() -> None:
    report = import_export(CampaignFactory(), "shopify_legacy_export.csv", qualify=False)
    assert report.created == 2
    gideon = CampaignRecipient.objects.get(last_name="Farrow")
    assert (gideon.state, gideon.country, gideon.zip) == ("CO", "US", "80203")
    assert gideon.json["extra"]["Province"] == "Colorado"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            ["Street Address", "State/Region", "Postal Code", "Country/Region", "First Name"],
            {"address1", "state", "zip", "country", "first_name"},
        ),
        (
            [
                "Mailing Street",
                "Mailing City",
                "Mailing State/Province",
                "Mailing Zip/Postal Code",
                "Mailing Country",
                "Last Name",
            ],
            {"address1", "city", "state", "zip", "country", "last_name"},
        ),
        (["Address1", "Province Code", "Country Code", "Zip", "First Name"], {"address1", "state", "country", "zip"}),
    ],
)
def test_crm_headers_are_recognised(headers: list[str], expected: set[str]) -> None:
    assert expected <= set(columns_resolve(headers).chosen())


@pytest.mark.parametrize(
    "headers",
    [
        # A Salesforce report with state and country picklists: names and codes.
        [
            "Contact ID",
            "First Name",
            "Last Name",
            "Mailing Address Line 1",
            "Mailing City",
            "Mailing State/Province",
            "Mailing State/Province Code",
            "Mailing Zip/Postal Code",
            "Mailing Country",
            "Mailing Country Code",
        ],
        # Data Loader's API names.
        [
            "Id",
            "FirstName",
            "LastName",
            "MailingStreet",
            "MailingCity",
            "MailingState",
            "MailingStateCode",
            "MailingPostalCode",
            "MailingCountry",
            "MailingCountryCode",
        ],
    ],
)
def test_salesforce_name_and_code_columns_take_the_code_and_keep_the_name(headers: list[str]) -> None:
    """docs/recipient-sync.md: with both a name and a code column, the code is
    used and the name kept as extra.  Salesforce's code columns were not listed
    as preferred, so these exports were refused whole."""
    cols = columns_resolve(headers)
    chosen = {field: headers[i] for field, i in cols.fields}
    assert chosen["state"] == headers[6]
    assert chosen["country"] == headers[9]
    assert chosen["address1"] == headers[3]
    assert {h for h, _ in cols.extras} >= {headers[5], headers[8]}


def test_a_semicolon_separated_hubspot_export_with_a_bom_imports() -> None:
    campaign = CampaignFactory()
    report = import_export(campaign, "hubspot_contacts_semicolon.csv", qualify=False)
    assert (report.created, report.unparseable_count) == (3, 0)
    annika = campaign.recipients.get(external_id="5101")
    assert (annika.first_name, annika.company, annika.state, annika.zip) == (
        "Annika",
        "Fjord Design; Studio",  # a quoted semicolon stays in its cell
        "IL",
        "62704",
    )
    assert annika.json["extra"]["Lifecycle Stage"] == "customer"


def test_a_salesforce_mailing_street_on_two_lines_fills_both_address_lines() -> None:
    campaign = CampaignFactory()
    import_export(campaign, "salesforce_contacts.csv", qualify=False)
    lorna = campaign.recipients.get(last_name="Whitcombe")
    assert (lorna.address1, lorna.address2, lorna.company) == ("500 Market St", "Suite 200", "Whitcombe Dental")
    assert lorna.external_id == "0035g00000AbCdEAAZ"


# --- the dry run ------------------------------------------------------------------------------


def test_the_dry_run_of_a_shopify_export_says_what_went_where_and_warns() -> None:
    result = dry_run(CampaignFactory(), "shopify_customers_export.csv")
    assert result.delimiter == ","
    assert ("Default Address Province Code", "State / province") in result.columns.used()
    assert "Tags" in result.columns.ignored()
    # Theo (line 3) is in the US without a state.
    assert len(result.warnings) == 1
    assert "1 row in the United States has no state (line 3)" in result.warnings[0]
    by_line = {e.line: e for e in result.lines}
    # Shopify's "'02134" is a ZIP with its leading zero, not a bad postcode.
    assert not by_line[2].message.startswith("Skipped")
    assert by_line[5].message == "Skipped: First name starts with “=” like a spreadsheet formula"
    assert by_line[6].outcome == DUPLICATE
    assert by_line[6].message.endswith("(line 2)")


def test_formula_like_names_are_skipped_but_kept() -> None:
    campaign = CampaignFactory()
    import_export(campaign, "shopify_customers_export.csv")
    r = campaign.recipients.get(last_name="Ortega")
    assert r.status == Status.SKIPPED
    assert r.first_name.startswith("=HYPERLINK")
    assert [e["field"] for e in r.json["validation_errors"]] == ["first_name"]
    marisol = campaign.recipients.get(last_name="Quenby")
    assert marisol.zip == "02134"


# --- nothing imported never says complete ------------------------------------------------------


def test_an_import_that_created_nothing_does_not_say_complete() -> None:
    campaign = CampaignFactory()
    with pytest.raises(ImportFileError):
        campaign_import_file(campaign=campaign, file=io.BytesIO(b""), actor=ACTOR)
    only_header = io.BytesIO(b"First Name,Address1,Zip,Country\n")
    report = campaign_import_file(campaign=campaign, file=only_header, actor=ACTOR, source="h.csv")
    assert (
        report_lines(report.as_dict())[0] == "Import of h.csv: nothing imported (the file has column names but no rows)"
    )
    import_export(campaign, "salesforce_contacts.csv")
    again = import_export(campaign, "salesforce_contacts.csv")
    headline = report_lines(again.as_dict())[0]
    assert headline == "Import of salesforce_contacts.csv: nothing imported (every row is already in the campaign)"


# --- re-import with update ---------------------------------------------------------------------


def _fixed_file() -> bytes:
    """The Shopify export again, with Theo's state filled in and Marisol's email changed."""
    text = (EXPORTS / "shopify_customers_export.csv").read_text()
    text = text.replace("Portland,,US", "Portland,OR,US").replace("marisol.quenby@example.com", "mq@example.com")
    return text.encode()


def test_a_re_import_with_update_changes_recipients_not_yet_in_flight() -> None:
    campaign = CampaignFactory()
    import_export(campaign, "shopify_customers_export.csv", qualify=False)
    theo = campaign.recipients.get(last_name="Brannagh")
    marisol = campaign.recipients.get(last_name="Quenby")
    CampaignRecipient.objects.filter(pk=marisol.pk).update(status=Status.PROOFING)  # claimed by the pipeline
    CampaignRecipient.objects.filter(pk=theo.pk).update(status=Status.SKIPPED, skip_reason="International")

    plain = campaign_import_file(campaign=campaign, file=io.BytesIO(_fixed_file()), actor=ACTOR, qualify=False)
    assert (plain.updated, plain.created) == (0, 0)
    theo.refresh_from_db()
    assert theo.state == ""

    report = campaign_import_file(
        campaign=campaign, file=io.BytesIO(_fixed_file()), actor=ACTOR, qualify=False, update=True
    )
    assert (report.created, report.updated, report.in_flight) == (0, 1, 1)
    theo.refresh_from_db()
    marisol.refresh_from_db()
    assert (theo.state, theo.status, theo.skip_reason) == ("OR", Status.PENDING, "")
    assert marisol.email == "marisol.quenby@example.com"  # in flight: left alone
    assert any("already in flight" in line for line in report_lines(report.as_dict()))


def test_an_update_whose_new_data_fails_skips_the_recipient_with_the_new_errors() -> None:
    campaign = CampaignFactory()
    data = b"Contact ID,First Name,Address1,Zip,Country\nC1,Ada,1 Main St,62701,US\n"
    campaign_import_file(campaign=campaign, file=io.BytesIO(data), actor=ACTOR, qualify=False)
    bad = data.replace(b"62701", b"6270#")
    campaign_import_file(campaign=campaign, file=io.BytesIO(bad), actor=ACTOR, qualify=False, update=True)
    r = campaign.recipients.get()
    assert (r.status, r.zip) == (Status.SKIPPED, "6270#")
    assert r.json["validation_errors"][0]["field"] == "zip"


def test_the_dry_run_and_the_command_take_update() -> None:
    campaign = CampaignFactory()
    import_export(campaign, "salesforce_contacts.csv", qualify=False)
    path = EXPORTS / "salesforce_contacts.csv"
    changed = path.read_text().replace("desmond.a@example.com", "desmond@example.org")
    result = recipients_dry_run_csv(campaign=campaign, stream=io.BytesIO(changed.encode()), actor=ACTOR, update=True)
    assert [e.outcome for e in result.lines if e.outcome in (UPDATED, IN_FLIGHT)] == [UPDATED]
    assert campaign.recipients.get(last_name="Achebe").email == "desmond.a@example.com"


def test_the_command_updates_with_update(tmp_path: Path) -> None:
    campaign = CampaignFactory()
    import_export(campaign, "salesforce_contacts.csv", qualify=False)
    path = tmp_path / "contacts.csv"
    path.write_text((EXPORTS / "salesforce_contacts.csv").read_text().replace("Columbus", "Dublin"))
    out = io.StringIO()
    call_command("import_recipients", str(campaign.pk), str(path), "--no-progress", "--update", stdout=out)
    assert campaign.recipients.get(last_name="Achebe").city == "Dublin"
    assert "updated 1" in out.getvalue()


# --- the admin ----------------------------------------------------------------------------------


def _dry_run_page(client: Client, campaign, name: str, data: bytes | None = None, **extra: str):
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])
    return client.post(url, {"file": upload(name, data), "qualify": "on", **extra})


def _token(body: str) -> str:
    found = re.search(r'name="upload" value="([^"]+)"', body)
    assert found, "the page carries the kept file's token"
    return found.group(1)


def test_admin_dry_run_then_import_this_file_without_a_second_upload(admin_client: Client) -> None:
    campaign = CampaignFactory()
    response = _dry_run_page(admin_client, campaign, "shopify_customers_export.csv")
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert "Default Address Province Code" in body
    assert "State / province" in body
    assert "has no state (line 3)" in body
    assert "Import this file" in body
    token = _token(body)
    assert len(default_storage.listdir(UPLOAD_DIR)[1]) >= 1
    assert campaign.recipients.count() == 0

    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    response = admin_client.post(url, {"upload": token, "qualify": "on"})
    assert response.status_code == HTTPStatus.FOUND
    assert campaign.recipients.count() == 4
    campaign.refresh_from_db()
    assert campaign.import_report["source"] == "shopify_customers_export.csv"
    # The kept file is gone after the import: the same token cannot import twice.
    response = admin_client.post(url, {"upload": token})
    assert response.status_code == HTTPStatus.OK
    assert "already imported or has expired" in response.content.decode()


def test_admin_unrecognised_headers_offer_the_files_columns_to_pick(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    response = admin_client.post(url, {"file": upload("unusual_headers.csv")})
    body = response.content.decode()
    assert "Nothing was imported." in body
    assert "No column was recognised for a first or last name, the street address and the country" in body
    error = re.search(r'<ul class="errorlist[^"]*">(.*?)</ul>', body, re.S)
    assert error is not None
    assert "--mapping" not in error.group(1)
    assert "address1" not in error.group(1)
    assert "_" not in error.group(1)
    assert '<option value="Postcode">Postcode</option>' in body
    token = _token(body)
    picks = {"column_first_name": "Given", "column_last_name": "Family", "column_address1": "Line"}
    response = admin_client.post(url, {"upload": token, "column_country": "Land", **picks})
    assert response.status_code == HTTPStatus.FOUND
    wren = campaign.recipients.get()
    assert (wren.first_name, wren.address1, wren.zip, wren.country) == ("Wren", "12 Quarry Road", "05401", "US")


def test_admin_semicolon_file_says_how_it_was_separated(admin_client: Client) -> None:
    response = _dry_run_page(admin_client, CampaignFactory(), "hubspot_contacts_semicolon.csv")
    body = response.content.decode()
    assert "separated by semicolons" in body
    assert "State/Region" in body


def test_a_kept_file_is_for_its_campaign_and_user_only_and_expires(admin_user) -> None:
    campaign, other = CampaignFactory(), CampaignFactory()
    kept = upload_keep(upload("salesforce_contacts.csv"), campaign, admin_user)
    assert upload_find(kept.token, campaign, admin_user).name == kept.name
    with pytest.raises(Exception, match="another import"):
        upload_find(kept.token, other, admin_user)
    with pytest.raises(Exception, match="could not be found"):
        upload_find(kept.token + "x", campaign, admin_user)
    with (
        mock.patch("django.core.signing.time.time", return_value=__import__("time").time() + 25 * 3600),
        pytest.raises(Exception, match="expired"),
    ):
        upload_find(kept.token, campaign, admin_user)


def test_admin_update_checkbox_reaches_the_import(admin_client: Client) -> None:
    campaign = CampaignFactory()
    import_export(campaign, "shopify_customers_export.csv", qualify=False)
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    admin_client.post(url, {"file": upload("fixed.csv", _fixed_file()), "update": "on"})
    assert campaign.recipients.get(last_name="Brannagh").state == "OR"


def test_the_command_dry_run_lists_the_columns_and_warns() -> None:
    campaign = CampaignFactory()
    out = io.StringIO()
    path = EXPORTS / "shopify_customers_export.csv"
    call_command("import_recipients", str(campaign.pk), str(path), "--no-progress", "--dry-run", stdout=out)
    text = out.getvalue()
    assert "'Default Address Zip' -> ZIP / postal code" in text
    assert "Warning: 1 row in the United States has no state (line 3)" in text


MAILCHIMP = (
    "Email Address,First Name,Last Name,Address,Phone Number,MEMBER_RATING,OPTIN_TIME,TAGS\n"
    'ada@example.com,Ada,Lovelace,"1701 Bristol Ave.  Barrington  RI  02806  USA",,2,2024-01-02 10:00:00,\n'
    'bo@example.com,Bo,Diaz,"512 Means St.  Suite 400  Atlanta  GA  30318  US",,3,2024-01-02 10:00:00,"VIP"\n'
    'cy@example.com,Cy,Moss,"1 Main St    Springfield  IL  62701  US",,1,2024-01-02 10:00:00,\n'
    "di@example.com,Di,Empty,,,1,2024-01-02 10:00:00,\n"
)


def test_a_mailchimp_audience_export_splits_its_combined_address() -> None:
    """Mailchimp keeps the whole address in one field and exports it with two
    spaces between the parts; the file has no ZIP, city or country column."""
    campaign = CampaignFactory()
    report = campaign_import_file(
        campaign=campaign, file=io.BytesIO(MAILCHIMP.encode()), actor=ACTOR, source="members_export.csv"
    )
    assert report.created == 4
    got = {
        r.last_name: (r.address1, r.address2, r.city, r.state, r.zip, r.country, r.status)
        for r in campaign.recipients.all()
    }
    assert got["Lovelace"] == ("1701 Bristol Ave.", "", "Barrington", "RI", "02806", "US", Status.PROOFING_STAGED)
    assert got["Diaz"] == ("512 Means St.", "Suite 400", "Atlanta", "GA", "30318", "US", Status.PROOFING_STAGED)
    assert got["Moss"][:6] == ("1 Main St", "", "Springfield", "IL", "62701", "US")
    assert got["Empty"][-1] == Status.SKIPPED  # no address at all: skipped, kept, says why


def test_the_dry_run_says_the_address_column_holds_the_whole_address() -> None:
    result = recipients_dry_run_csv(
        campaign=CampaignFactory(), stream=io.BytesIO(MAILCHIMP.encode()), actor=ACTOR, source="members_export.csv"
    )
    assert result.columns is not None
    used = result.columns.used()
    assert ("Address", "the whole address: street, city, state, ZIP and country, separated by two spaces") in used


@pytest.mark.parametrize(
    ("cell", "fields"),
    [
        # Six slots with the country empty: the last part is not dropped.
        ("1701 Bristol Ave.    Barrington  RI  02806  ", ("1701 Bristol Ave.", "", "Barrington", "RI", "02806", "")),
        (
            "512 Means St.  Suite 400  Atlanta  GA  30318  ",
            ("512 Means St.", "Suite 400", "Atlanta", "GA", "30318", ""),
        ),
        # Empty slots left out: the last part is the country only when it names one.
        ("1 Main St  Springfield  IL  62701", ("1 Main St", "", "Springfield", "IL", "62701", "")),
        ("10 Downing St  London  SW1A 2AA  GB", ("10 Downing St", "", "London", "", "SW1A 2AA", "GB")),
        # Spaces after the last part are not an empty slot.
        ("1 Main St  Springfield  IL  62701  US  ", ("1 Main St", "", "Springfield", "IL", "62701", "US")),
        (
            "512 Means St.  Suite 400  Atlanta  GA  30318  USA  ",
            ("512 Means St.", "Suite 400", "Atlanta", "GA", "30318", "USA"),
        ),
    ],
)
def test_a_combined_address_without_a_country_leaves_it_to_the_default(cell: str, fields: tuple[str, ...]) -> None:
    from campaigns.importing import combined_address

    parts = combined_address(cell)
    assert parts is not None
    names = ("address1", "address2", "city", "state", "zip", "country")
    assert tuple(parts.get(name, "") for name in names) == fields
