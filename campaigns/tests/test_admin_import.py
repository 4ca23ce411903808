from __future__ import annotations

import csv
import io
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from campaigns.admin import CampaignAdmin
from campaigns.admin_import import CampaignImportAdminMixin
from campaigns.models import CampaignRecipient
from campaigns.tests.factories import CampaignFactory

DATA = Path(__file__).parent / "data"


def test_campaign_admin_includes_the_import_mixin():
    assert issubclass(CampaignAdmin, CampaignImportAdminMixin)


pytestmark = pytest.mark.django_db


def upload(name: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, (DATA / name).read_bytes(), content_type="text/csv")


def test_the_change_form_shows_the_import_button_and_the_last_report(admin_client: Client) -> None:
    campaign = CampaignFactory(import_report={"source": "x.csv", "status": "complete", "rows_read": 3})
    response = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert reverse("admin:campaigns_campaign_import", args=[campaign.pk]) in body
    assert "Import of x.csv: complete" in body


def test_the_import_form_renders(admin_client: Client) -> None:
    campaign = CampaignFactory()
    response = admin_client.get(reverse("admin:campaigns_campaign_import", args=[campaign.pk]))
    assert response.status_code == HTTPStatus.OK
    assert b"Dry run as CSV" in response.content


def test_uploading_imports_qualifies_and_keeps_the_report(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    response = admin_client.post(url, {"file": upload("basic.csv"), "qualify": "on"})
    assert response.status_code == HTTPStatus.FOUND
    assert campaign.recipients.filter(status=CampaignRecipient.Status.PROOFING_STAGED).count() == 2
    campaign.refresh_from_db()
    assert campaign.import_report["source"] == "basic.csv"
    assert campaign.import_report["qualification"] == {"ProofingStaged": 2}
    history = CampaignRecipient.objects.filter(campaign=campaign).first().transitions.first()
    assert history is not None
    assert history.source == "admin"
    assert history.acting_user is not None


def test_a_bad_file_is_a_form_error_not_a_500(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    response = admin_client.post(url, {"file": upload("duplicated_headers.csv")})
    assert response.status_code == HTTPStatus.OK
    assert b"column &#x27;zip&#x27; appears twice" in response.content
    assert b"Nothing was imported." in response.content
    response = admin_client.post(url, {"file": upload("basic.csv"), "mapping": "nonsense"})
    assert b"is not field=Column" in response.content
    assert campaign.recipients.count() == 0


def test_the_dry_run_page_explains_each_row_and_writes_nothing(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])
    response = admin_client.post(url, {"file": upload("basic.csv")})
    assert response.status_code == HTTPStatus.OK
    body = response.content.decode()
    assert "Dry run: nothing was written." in body
    assert "Will be staged for printer sandbox" in body
    assert "Skipped: First name contains an asterisk" in body
    # The totals name skip reasons as the rest of the admin does, not by the spec's names.
    totals = body.split('id="dry-run-totals"')[1].split("</table>")[0]
    assert "No usable address or name" in totals
    assert "NoAddress" not in totals
    assert campaign.recipients.count() == 0


def test_the_dry_run_downloads_as_an_escaped_csv(admin_client: Client) -> None:
    campaign = CampaignFactory()
    url = reverse("admin:campaigns_campaign_import_dry_run", args=[campaign.pk])
    response = admin_client.post(url, {"file": upload("formula_cells.csv"), "as_csv": "1"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[1][1].startswith("'=cmd")
    assert campaign.recipients.count() == 0


def test_import_pages_need_change_permission(client: Client, django_user_model: Any) -> None:
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    client.force_login(user)
    campaign = CampaignFactory()
    response = client.get(reverse("admin:campaigns_campaign_import", args=[campaign.pk]))
    assert response.status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize(("group", "may"), [("Ops", True), ("Read-only", False)])
def test_ops_may_import_and_read_only_is_neither_offered_nor_let_in(django_user_model, group: str, may: bool) -> None:
    """The campaign page offers "Import recipients" exactly to those the import
    page lets in: Ops were offered it and refused with a 403."""
    from django.contrib.auth.models import Group

    user = django_user_model.objects.create_user(username=f"u-{group}", password="x", is_staff=True)
    user.groups.set([Group.objects.get(name=group)])
    client = Client()
    client.force_login(user)
    campaign = CampaignFactory()
    import_url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    page = client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
    assert page.status_code == HTTPStatus.OK
    assert (import_url in page.content.decode()) is may
    assert client.get(import_url).status_code == (HTTPStatus.OK if may else HTTPStatus.FORBIDDEN)
    if may:
        response = client.post(import_url, {"file": upload("basic.csv"), "qualify": "on"})
        assert response.status_code == HTTPStatus.FOUND
        assert campaign.recipients.filter(status=CampaignRecipient.Status.PROOFING_STAGED).count() == 2


def test_the_message_after_an_import_counts_where_every_row_is_in_words(admin_client: Client) -> None:
    """Qualification's printer-rule skips and enrichment's moves were left out
    or shown as "skipped:printerapprovalfailed"; the message's counts are the
    database's, in words."""
    from django.contrib.messages import get_messages

    from campaigns.admin import STATUS_WORDS

    campaign = CampaignFactory(printer="lob", address_enrichment=True)
    data = (
        b"First Name,Last Name,Email,Address1,City,Province Code,Country Code,Zip\n"
        b"Ada,Good,ada@example.com,1 Main St,Austin,TX,US,78701\n"
        b"Bo,Nozip,bo@example.com,2 Main St,Boston,MA,US,12\n"
        b"Cy,Noaddress,cy@example.com,,,,,\n"
        b"Di,Abroad,di@example.com,3 Rue,Paris,,FR,75001\n"
    )
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    response = admin_client.post(url, {"file": SimpleUploadedFile("x.csv", data), "qualify": "on"})
    assert response.status_code == HTTPStatus.FOUND
    [message] = [str(m) for m in get_messages(response.wsgi_request)]
    assert "skipped:" not in message.lower().replace("(skipped:", "")
    now = message.split("Now: ")[1].split(" (skipped")[0].rstrip(".")
    said = {words: int(count) for count, words in (part.split(" ", 1) for part in now.split(", "))}
    counts: dict[str, int] = {}
    for status in campaign.recipients.values_list("status", flat=True):
        words = STATUS_WORDS[status][0].lower()
        counts[words] = counts.get(words, 0) + 1
    assert said == counts
    assert sum(said.values()) == 4
    assert campaign.recipients.filter(skip_reason="PrinterApprovalFailed").exists()


def test_the_last_import_panel_speaks_the_admins_words(admin_client: Client) -> None:
    """The campaign page's "Last import" said "by status: Pending 1,
    ProofingStaged 2" and "skip reasons: NoAddress 1": the spec's names, not
    the words the rest of the admin uses."""
    campaign = CampaignFactory()
    data = (
        b"First Name,Last Name,Address1,City,Province Code,Country Code,Zip\n"
        b"Ada,Good,1 Main St,Austin,TX,US,78701\n"
        b"Cy,Noaddress,,,,,\n"
        b'"Broken,line\n'
    )
    url = reverse("admin:campaigns_campaign_import", args=[campaign.pk])
    admin_client.post(url, {"file": SimpleUploadedFile("x.csv", data), "qualify": "on"})
    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    panel = page.split("Last import", 2)[-1]
    for internal in ("by status", "ProofingStaged", "NoAddress", "skip reasons", "qualified:"):
        assert internal not in panel
    assert "queued for proofing" in panel
    assert "Line 4:" in panel
