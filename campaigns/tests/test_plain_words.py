"""What a new user read in the admin, said in words: statuses as the rest of
the admin says them, field labels rather than field names, counts in the
right number, and messages that say what to do next.  The stored values and
the spec's strings stay as they are."""

from __future__ import annotations

import csv
import io
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from campaigns.admin_import import UPLOAD_DIR, import_message, size_words
from campaigns.models import Campaign, CampaignRecipient, ErrorMessages
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from campaigns.validation import recipient_validate

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
DATA = Path(__file__).parent / "data"
# The first bytes of a PNG: a picture renamed .csv.
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00\x5c\x72\xa8\x66"


def upload(name: str, data: bytes | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (DATA / name).read_bytes() if data is None else data, content_type="text/csv")


def kept_files() -> set[str]:
    """The uploads kept for a later "Import this file"."""
    try:
        return set(default_storage.listdir(UPLOAD_DIR)[1])
    except FileNotFoundError:
        return set()


def shown(response: Any) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def import_basic(client: Client, campaign: Campaign) -> None:
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    assert client.post(url, {"file": upload("basic.csv")}).status_code == HTTPStatus.FOUND


def person(campaign: Campaign, first_name: str) -> CampaignRecipient:
    return campaign.recipients.get(first_name=first_name)


# --- 1. import results name statuses in words; "in flight" only for a card on its way -----------


def test_the_dry_run_says_in_words_where_rows_already_in_the_campaign_are(admin_client: Client) -> None:
    campaign = CampaignFactory()
    import_basic(admin_client, campaign)
    moves = {"Ada": S.RECEIVED, "Grace": S.HOLDOUT, "Alan": S.PROOFING_STAGED}
    for name, status in moves.items():
        campaign.recipients.filter(first_name=name).update(status=status)
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])

    page = admin_client.post(url, {"file": upload("basic.csv"), "update": "on"}).content.decode()
    assert "Not updated: already in the campaign as Delivered; left as is" in page
    assert "Not updated: already in the campaign as Control group (not mailed); left as is" in page
    assert "Not updated: already in flight (in the campaign as Queued for proofing); left as is" in page
    for internal in ("as Received", "as Holdout", "as ProofingStaged", "in flight (in the campaign as Delivered"):
        assert internal not in page
    totals = page.split('id="dry-run-totals"')[1].split("</table>")[0]
    assert "<th>Not updated: already in the campaign</th><td>2</td>" in totals
    assert "<th>Not updated: already in flight</th><td>1</td>" in totals

    # Without "update", the rows already there say where they are in words too.
    page = admin_client.post(url, {"file": upload("basic.csv")}).content.decode()
    assert "Already imported: in the campaign as Queued for proofing; left as is" in page
    assert "Already imported: in the campaign as Delivered; left as is" in page
    assert "ProofingStaged" not in page.split('id="dry-run-rows"')[1]

    # The CSV of the dry run is the page's words.
    response = admin_client.post(url, {"file": upload("basic.csv"), "update": "on", "as_csv": "1"})
    rows = {r[1]: r for r in csv.reader(io.StringIO(response.content.decode()))}
    assert rows["Ada Lovelace"][2:] == ["Not updated: already in the campaign", "", rows["Ada Lovelace"][4]]
    assert rows["Ada Lovelace"][4] == "Not updated: already in the campaign as Delivered; left as is"
    assert campaign.recipients.filter(status=S.RECEIVED).count() == 1  # nothing written


def test_the_import_message_says_which_rows_an_update_leaves_alone() -> None:
    """The real import counts a control-group or delivered row as "in flight";
    its message said "already being printed or mailed", untrue of them."""
    report = {"source": "x.csv", "status": "complete", "rows_read": 1, "updated": 1, "in_flight": 1}
    message = import_message(report)
    assert "1 row read: 0 new, 1 updated, 1 not updated (an import updates only recipients waiting to be " in message
    assert "being printed or mailed" not in message
    assert "in flight" not in message
    assert "2 rows read" in import_message({**report, "rows_read": 2})
    nothing = {**report, "created": 0, "updated": 0, "rows_read": 2, "already_present": 1}
    message = import_message(nothing)
    assert message.startswith(
        "Import of x.csv: nothing imported (every row is already in the campaign, some past the point where an "
        "import may change them). 2 rows read: 0 new, 1 already in the campaign, 1 not updated"
    )
    assert "being printed or mailed" not in message


# --- 2. a recipient added by hand is refused in the import page's words ------------------------


def test_adding_a_recipient_without_a_zip_says_zip_in_words(admin_client: Client) -> None:
    campaign = CampaignFactory()
    row = {"first_name": "Ada", "last_name": "Lovelace", "address1": "1 Main St", "zip": "", "country": "US"}
    response = admin_client.post(reverse("admin:campaigns_campaignrecipient_add"), {"campaign": campaign.pk, **row})
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "ZIP / postal code is empty" in page
    assert "zip is empty" not in page
    assert not CampaignRecipient.objects.exists()
    # Not a spec string: the stored message keeps the field's name (validation's own).
    assert recipient_validate(row).errors == [{"field": "zip", "message": "zip is empty"}]


# --- 3. the recipient page: tooltips, technical details, field labels ------------------------


def test_the_recipient_page_speaks_words_and_folds_the_technical_details(admin_client: Client) -> None:
    r = CampaignRecipientFactory(
        status=S.ERROR,
        error_message=ErrorMessages.FAILED_TO_MAKE_PROOF,
        idempotency_key="idem-123",
        json={"source_row": {"first_name": "Adah"}},
    )
    page = admin_client.get(reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])).content.decode()
    # The buttons' tooltips name the status as the badges do.
    assert "Moves it to “Queued for proofing”" in page
    assert "Moves it to ProofingStaged" not in page
    # The engineers' fields stay, folded away under a title in words, each labelled in words.
    technical = page.split("Technical details (for engineers)")[1].split("</fieldset>")[0]
    fieldset = page.split("Technical details (for engineers)")[0].rsplit("<fieldset", 1)[1]
    assert "collapse" in fieldset
    for label in (
        "Duplicate-check key",
        "Worker claim",
        "Held by a worker until",
        "Submission number",
        "Printer idempotency key",
    ):
        assert f"{label}:</label>" in technical, label
    assert str(r.natural_key) in technical
    assert "idem-123" in technical
    assert "None" not in technical  # an empty value is "-", as elsewhere on the page
    for name in ("Natural key", "Claim token", "Lease until", "Submission gen", "Idempotency key:"):
        assert name not in page, name
    assert ">Pipeline<" not in page
    # The data table names each field by its label.
    table = page.split("<th>As imported</th>")[1].split("</table>")[0]
    assert "<td>First name</td><td>Adah</td>" in table
    assert "<td>Last name</td>" in table
    assert "<td>Street address</td>" in table
    for name in ("first_name", "last_name", "address1"):
        assert f"<td>{name}</td>" not in table


# --- 4. billing: what is wrong and what to do, in words ------------------------------------------


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        (
            {"billing_subscription_item_id": ""},
            "Not ready: the organization has no subscription item for postcards; add the postcard price "
            "(price_postcard) to the organization&#x27;s Stripe subscription",
        ),
        (
            {"billing_price_id": ""},
            "Not ready: postcards cannot be billed at the postcard price: the organization&#x27;s subscription item "
            "has no price; put the item on price_postcard in Stripe",
        ),
    ],
)
def test_the_organization_billing_check_says_what_to_do(
    admin_client: Client, settings: Any, fields: dict[str, Any], said: str
) -> None:
    settings.BILLING = {"backend": "local", "price_id": "price_postcard"}
    ready = {
        "billing_customer_id": "cus_1",
        "subscription_active": True,
        "billing_subscription_item_id": "si_1",
        "billing_price_id": "price_postcard",
    }
    org = OrganizationFactory(**{**ready, **fields})
    page = admin_client.get(reverse("admin:campaigns_organization_change", args=[org.pk])).content.decode()
    assert said in page
    for jargon in ("legacy", "price drift", "price price_postcard."):
        assert jargon not in page


# --- 5. deleting campaigns: refused in words, or done --------------------------------------------


def test_deleting_a_campaign_with_recipients_is_refused_in_words(admin_client: Client) -> None:
    busy = CampaignFactory(name="Spring")
    CampaignRecipientFactory(campaign=busy)
    changelist = reverse("admin:campaigns_campaign_changelist")
    assert b'value="delete_selected"' in admin_client.get(changelist).content
    response = admin_client.post(changelist, {"action": "delete_selected", "_selected_action": [busy.pk]}, follow=True)
    said = shown(response)
    assert "Nothing was deleted: 1 selected campaign has recipients (“Spring”)" in said
    assert "pause it" in said
    assert "permission" not in response.content.decode()
    assert Campaign.objects.filter(pk=busy.pk).exists()


def test_a_campaign_without_recipients_is_still_deleted(admin_client: Client) -> None:
    empty = CampaignFactory(name="Typo")
    changelist = reverse("admin:campaigns_campaign_changelist")
    data = {"action": "delete_selected", "_selected_action": [empty.pk]}
    confirm = admin_client.post(changelist, data)
    assert confirm.status_code == HTTPStatus.OK
    assert b"Are you sure" in confirm.content
    admin_client.post(changelist, {**data, "post": "yes"})
    assert not Campaign.objects.filter(pk=empty.pk).exists()


# --- 6. retry and pause messages say the next step -----------------------------------------------


def test_retry_sending_on_billing_errors_points_to_the_right_next_step(admin_client: Client) -> None:
    rows = [CampaignRecipientFactory(status=S.ERROR, error_message=ErrorMessages.BILLING_NOT_READY) for _ in range(4)]
    changelist = reverse("admin:campaigns_campaignrecipient_changelist")
    data = {"action": "retry_sending", "_selected_action": [r.pk for r in rows]}
    said = shown(admin_client.post(changelist, data, follow=True))
    assert "4 not eligible: 4 not a mailing error." in said
    assert "use “Retry from proofing” or the campaign's “Retry all errors”" in said
    assert "fix the organization's billing first" in said
    assert set(CampaignRecipient.objects.values_list("status", flat=True)) == {S.ERROR}


def test_pausing_a_paused_campaign_says_already_paused(admin_client: Client) -> None:
    paused, running = CampaignFactory(paused=True), CampaignFactory(paused=False)
    changelist = reverse("admin:campaigns_campaign_changelist")

    def act(action: str, *campaigns: Campaign) -> str:
        data = {"action": action, "_selected_action": [c.pk for c in campaigns]}
        return shown(admin_client.post(changelist, data, follow=True))

    said = act("pause", paused)
    assert "Nothing to pause: the selected campaign is already paused." in said
    assert "Paused 0" not in said
    said = act("pause", paused, running)
    assert "Paused 1 campaign. Work already claimed finishes its batch. 1 was already paused." in said
    said = act("resume", CampaignFactory(paused=False))
    assert "Nothing to resume: the selected campaign is not paused." in said
    assert "Resumed 2 campaigns." in act("resume", paused, running)
    assert "campaign(s)" not in act("run_now", paused)


# --- 7. the dry run's skip reasons have their own heading; counts in the right number -----------


def test_the_dry_run_lists_skip_reasons_under_their_own_heading(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])
    page = admin_client.post(url, {"file": upload("basic.csv")}).content.decode()
    totals = page.split('id="dry-run-totals"')[1].split("</table>")[0]
    outcomes, reasons = totals.split('id="dry-run-skip-reasons"')
    assert "No usable address or name" not in outcomes
    assert "Skipped rows, by reason" in reasons
    assert "No usable address or name" in reasons


def test_the_campaign_list_counts_one_error_as_one(admin_client: Client) -> None:
    campaign = CampaignFactory()
    CampaignRecipientFactory(campaign=campaign, status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    page = admin_client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    assert "0 / 1 mailed · 1 error" in page
    assert "1 errors" not in page


# --- 8. the size limit in words ------------------------------------------------------------------


def test_the_import_page_says_the_size_limit_as_people_say_it(admin_client: Client, settings: Any) -> None:
    settings.CSV_UPLOAD_MAX_BYTES = 200 * 1024 * 1024
    campaign = CampaignFactory()
    page = admin_client.get(reverse("admin:campaigns_campaign_import", args=[campaign.pk])).content.decode()
    assert "at most 200 MB)" in page
    assert "200.0" not in page
    assert [size_words(n) for n in (1, 812, 1536, 200 * 1024 * 1024, 3 << 30)] == [
        "1 byte",
        "812 bytes",
        "1.5 KB",
        "200 MB",
        "3 GB",
    ]


# --- 9. a rejected file neither hides the last import nor stays "already uploaded" --------------


@pytest.mark.parametrize(("name", "data"), [("fake_image.csv", PNG), ("blank.csv", b"\n\n")])
def test_a_rejected_file_keeps_the_last_import_and_is_not_offered_again(
    admin_client: Client, name: str, data: bytes
) -> None:
    campaign = CampaignFactory()
    import_basic(admin_client, campaign)
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    before = kept_files()
    response = admin_client.post(url, {"file": upload(name, data)})
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()
    assert "Nothing was imported. Choose another file." in page
    assert "already uploaded" not in page
    assert 'id="kept-file"' not in page
    assert kept_files() == before  # the rejected file is not kept

    campaign.refresh_from_db()
    assert (campaign.import_report["source"], campaign.import_report["status"]) == ("basic.csv", "complete")
    assert campaign.import_report["rejected_since"]["source"] == name
    change = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    panel = change.split("Last import", 2)[-1]
    assert "Import of basic.csv: complete" in panel
    assert f"Since then, {name} was rejected" in panel
    assert "nothing of it was imported" in panel


def test_a_rejected_dry_run_file_is_not_offered_again(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])
    before = kept_files()
    page = admin_client.post(url, {"file": upload("fake_image.csv", PNG)}).content.decode()
    assert "not UTF-8" in page
    assert "Choose another file." in page
    assert 'id="kept-file"' not in page
    assert kept_files() == before
    campaign.refresh_from_db()
    assert campaign.import_report == {}  # a dry run writes nothing


def test_an_empty_upload_is_refused_and_not_kept(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    before = kept_files()
    page = admin_client.post(url, {"file": upload("empty.csv", b"")}).content.decode()
    assert "The submitted file is empty." in page
    assert "already uploaded" not in page
    assert kept_files() == before


def test_a_file_whose_columns_can_be_picked_stays_uploaded(admin_client: Client) -> None:
    """A file with column names the import did not recognise is kept: its
    columns are picked on the page, it is not uploaded again."""
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    page = admin_client.post(url, {"file": upload("missing_headers.csv")}).content.decode()
    assert "Nothing was imported." in page
    assert "Choose another file" not in page
    assert 'id="kept-file"' in page


def test_a_first_import_rejected_is_still_the_last_import_shown(admin_client: Client) -> None:
    """With no import before it, the rejected file's report is all there is to show."""
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    admin_client.post(url, {"file": upload("blank.csv", b"\n\n")})
    campaign.refresh_from_db()
    assert campaign.import_report["status"] == "rejected"
    assert "rejected_since" not in campaign.import_report


# --- the funnel's mailpiece bars ---------------------------------------------------------------------


def test_a_failed_or_returned_mailpiece_is_not_drawn_green_in_the_funnel() -> None:
    from campaigns.admin import GREEN, ORANGE, RED, campaign_funnel
    from mailpieces.models import Mailpiece
    from mailpieces.status import MailpieceStatus

    campaign = CampaignFactory()
    for i, status in enumerate([MailpieceStatus.DELIVERED, MailpieceStatus.ERROR, MailpieceStatus.RETURNED]):
        r = CampaignRecipientFactory(campaign=campaign, status=S.SENT)
        Mailpiece.objects.create(
            recipient=r, printer="sandbox", printer_id=f"sbx_{i}", reference=f"ref{i}", status=status
        )
    html = str(campaign_funnel(campaign))
    pieces = html.split("Mailpieces, by the printer")[1]
    for label, colour in (("Delivered", GREEN), ("Error", RED), ("Returned", ORANGE)):
        row = next(line for line in pieces.split("<tr>") if f">{label}: 1<" in line)
        assert f"background:{colour}" in row


def test_the_printer_list_says_which_printers_are_not_set_up(admin_client: Client, settings) -> None:
    conf = {kind: dict(value) for kind, value in settings.PRINTERS_CONF.items()}
    conf["lob"].update(enabled=True, api_key="key")
    conf["stannp"].update(enabled=False)
    settings.PRINTERS_CONF = conf
    page = admin_client.get(reverse("admin:campaigns_campaign_add")).content.decode()
    assert ">Lob<" in page
    assert ">Stannp (not set up on this server)<" in page


def test_the_progress_line_counts_the_blocklisted_apart_as_the_funnel_does() -> None:
    from collections import Counter

    from campaigns.admin import progress_line

    line = progress_line(Counter({S.SENT: 2, S.SKIPPED: 3, S.BLACKLISTED: 1}))
    assert line == "2 / 6 mailed · 3 skipped · 1 on the blocklist"


def test_adding_a_recipient_picks_its_campaign_by_name_not_by_number(admin_client: Client) -> None:
    campaign = CampaignFactory(name="Winter welcome-back postcards")
    page = admin_client.get(reverse("admin:campaigns_campaignrecipient_add")).content.decode()
    assert 'class="admin-autocomplete' in page
    found = admin_client.get(
        reverse("admin:autocomplete"),
        {"term": "winter", "app_label": "campaigns", "model_name": "campaignrecipient", "field_name": "campaign"},
    ).json()
    assert [r["text"] for r in found["results"]] == [campaign.name]
