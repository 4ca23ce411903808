"""The pipeline as ops and engineers see it: the sample proofs page and its
Approve button, proof images served to staff only, the campaign controls,
the template form, and ``manage.py run_pipeline``."""

from __future__ import annotations

import io
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from campaigns.models import CampaignRecipient, ProofApproval, ProofTemplate
from campaigns.proofing.design import SAMPLE_SIZE
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status


def staged(n: int = 5, **campaign_fields: object):
    campaign = CampaignFactory(**campaign_fields)
    CampaignRecipientFactory.create_batch(n, campaign=campaign, status=S.PROOFING_STAGED)
    return campaign


def run(*args: str) -> str:
    out = StringIO()
    call_command("run_pipeline", "--once", "--no-progress", *args, stdout=out)
    return out.getvalue()


# ---------------------------------------------------------------- run_pipeline
def test_run_pipeline_makes_samples_then_waits_for_a_person():
    campaign = staged(6)
    text = run("--campaign", str(campaign.pk))
    assert f"“{campaign}”: proofing {SAMPLE_SIZE}." in text
    assert "waiting for a person to approve the sample proofs" in text
    assert campaign.recipients.filter(status=S.PROOFED).count() == SAMPLE_SIZE
    # Real images, at print size.
    r = campaign.recipients.filter(status=S.PROOFED).first()
    from django.core.files.storage import default_storage

    with default_storage.open(r.proof_url) as f, Image.open(f) as image:
        assert image.size == (1875, 1275)


def test_run_pipeline_qualifies_pending_rows_first():
    campaign = CampaignFactory()
    CampaignRecipientFactory.create_batch(2, campaign=campaign)  # Pending
    text = run()
    assert "qualification 2" in text
    assert campaign.recipients.filter(status=S.PROOFED).count() == 2


def test_run_pipeline_leaves_a_paused_campaign_alone_and_says_so():
    campaign = staged(2, paused=True)
    text = run("--campaign", str(campaign.pk))
    assert "is paused: nothing moved" in text
    assert campaign.recipients.filter(status=S.PROOFING_STAGED).count() == 2


def test_run_pipeline_names_an_unknown_campaign():
    with pytest.raises(CommandError, match="No campaign with id 999"):
        run("--campaign", "999")


def test_run_pipeline_with_nothing_to_do():
    assert "Nothing to do" in run()


def test_run_pipeline_reports_billing_in_words():
    campaign = staged(2, organization=OrganizationFactory(billing_customer_id=""))
    text = run()
    assert "billing is not ready: no billing customer" in text
    assert set(campaign.recipients.values_list("status", flat=True)) == {S.ERROR}


# ---------------------------------------------------------------- the sample proofs page
def test_the_samples_page_shows_them_side_by_side_and_approves(admin_client, admin_user):
    campaign = staged(5)
    run()
    url = reverse("admin:campaigns_campaign_proofs", args=[campaign.pk])
    page = admin_client.get(url).content.decode()
    assert page.count('alt="front of the proof"') == SAMPLE_SIZE
    assert page.count('alt="back of the proof"') == SAMPLE_SIZE
    assert "Approve these proofs" in page
    response = admin_client.post(url, follow=True)
    assert "the rest of" in response.content.decode()
    approval = ProofApproval.objects.get(campaign=campaign)
    assert approval.approved_by == admin_user
    assert "Approve these proofs" not in admin_client.get(url).content.decode()
    # The campaign page says who approved, and links the samples.
    change = admin_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert f"Approved by {admin_user.username}" in change
    assert "Sample proofs" in change


def test_approving_without_samples_is_a_clear_message(admin_client):
    campaign = staged(0)
    url = reverse("admin:campaigns_campaign_proofs", args=[campaign.pk])
    response = admin_client.post(url, follow=True)
    assert "There are no sample proofs of the current design yet" in response.content.decode()
    assert not ProofApproval.objects.exists()


def test_proof_images_are_for_staff_only(client, admin_client):
    campaign = staged(1)
    run()
    r = campaign.recipients.get()
    url = reverse("admin:campaigns_campaignrecipient_proof", args=[r.pk, "front"])
    assert client.get(url).status_code == 302  # to the login page
    full = admin_client.get(url)
    assert full["Content-Type"] == "image/png"
    assert Image.open(io.BytesIO(full.content)).size == (1875, 1275)
    thumb = admin_client.get(url, {"thumb": "1"})
    assert thumb["Content-Type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(thumb.content)).size) == 480
    assert (
        admin_client.get(reverse("admin:campaigns_campaignrecipient_proof", args=[r.pk, "inside"])).status_code == 404
    )
    # The recipient page shows both thumbnails, each linking to full size.
    page = admin_client.get(reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])).content.decode()
    assert "?thumb=1" in page
    assert r.discount_code == "" or r.discount_code in page


def test_a_recipient_without_a_proof_has_no_image(admin_client):
    r = CampaignRecipientFactory()
    url = reverse("admin:campaigns_campaignrecipient_proof", args=[r.pk, "back"])
    assert admin_client.get(url).status_code == 404


def test_pause_and_resume_actions(admin_client):
    campaign = staged(1)
    url = reverse("admin:campaigns_campaign_changelist")
    admin_client.post(url, {"action": "pause", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert campaign.paused
    admin_client.post(url, {"action": "resume", "_selected_action": [campaign.pk]})
    campaign.refresh_from_db()
    assert not campaign.paused


# ---------------------------------------------------------------- the template form
def test_a_template_with_a_broken_merge_field_is_refused_in_the_form(admin_client):
    url = reverse("admin:campaigns_prooftemplate_add")
    data = {
        "name": "Broken",
        "headline": "Hi {nickname}!",
        "subline": "",
        "message": "",
        "offer": "",
        "accent_color": "#7a3b12",
        "text_color": "white",
    }
    page = admin_client.post(url, data).content.decode()
    assert "unknown merge field {nickname}" in page
    assert "is not a colour" in page
    assert not ProofTemplate.objects.exists()


@pytest.mark.parametrize(
    ("size", "says"),
    [
        ((20000, 20000), "This picture is over 179 million pixels, far more than a postcard needs"),
        ((9000, 9000), "This picture is 9,000 x 9,000 pixels, far more than a postcard needs"),
    ],
)
def test_a_background_far_larger_than_a_card_is_refused_in_words(admin_client, size, says, settings, tmp_path):
    """Pillow's guard made Django say 'not an image or a corrupted image'."""
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    settings.MEDIA_ROOT = str(tmp_path)
    buffer = io.BytesIO()
    Image.new("1", size).save(buffer, "PNG")  # one bit a pixel: a few kB however large
    data = {
        "name": "Huge",
        "headline": "Hello {first_name|friend}!",
        "subline": "",
        "message": "",
        "offer": "",
        "accent_color": "#7a3b12",
        "text_color": "#ffffff",
        "front_background": SimpleUploadedFile("huge.png", buffer.getvalue(), "image/png"),
    }
    page = admin_client.post(reverse("admin:campaigns_prooftemplate_add"), data).content.decode()
    assert says in page
    assert "corrupted image" not in page
    assert not ProofTemplate.objects.exists()


def test_a_fallback_fills_a_missing_first_name():
    from campaigns.proofing.local import merge_text

    assert merge_text("Hello {first_name|friend}!", {"first_name": ""}, "headline") == ("Hello friend!", ())
    assert merge_text("Hello {first_name}!", {"first_name": ""}, "headline") == ("Hello !", ("first_name",))


def test_editing_a_template_in_the_admin_withdraws_approvals(admin_client):
    template = ProofTemplate.objects.create(name="Winter")
    campaign = staged(4, proof_template=template)
    run()
    admin_client.post(reverse("admin:campaigns_campaign_proofs", args=[campaign.pk]))
    url = reverse("admin:campaigns_prooftemplate_change", args=[template.pk])
    data = {
        "name": "Winter",
        "headline": "Welcome back {first_name|friend}",
        "subline": template.subline,
        "message": template.message,
        "offer": template.offer,
        "accent_color": template.accent_color,
        "text_color": template.text_color,
        "pixelixe_front_uid": "",
        "pixelixe_back_uid": "",
    }
    response = admin_client.post(url, data, follow=True)
    assert "approval(s) withdrawn" in response.content.decode()
    approval = ProofApproval.objects.get(campaign=campaign)
    assert approval.withdrawn_reason == "the template was edited (now its version 2)"


def test_a_campaign_discount_the_shop_cannot_take_is_refused_in_the_form():
    from django.core.exceptions import ValidationError

    campaign = CampaignFactory.build(discount_enabled=True, discount_value="ten percent")
    with pytest.raises(ValidationError, match="is not understood"):
        campaign.clean()
    CampaignFactory.build(discount_enabled=True, discount_value="10%").clean()
    CampaignFactory.build(discount_enabled=False, discount_value="").clean()


def test_the_samples_page_says_who_may_approve_to_a_user_who_may_not(client, django_user_model):
    from django.contrib.auth.models import Permission

    campaign = staged(5)
    run()
    viewer = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_campaign"))
    client.force_login(viewer)
    page = client.get(reverse("admin:campaigns_campaign_proofs", args=[campaign.pk])).content.decode()
    assert page.count('alt="front of the proof"') == SAMPLE_SIZE
    assert "Approve these proofs" not in page
    assert "needs permission to change campaigns" in page
    assert "ask an administrator" in " ".join(page.split())
