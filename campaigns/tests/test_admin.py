from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from campaigns.models import CampaignRecipient, ErrorMessages, RecipientTransition
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory, CampaignRecipientFactory
from mailpieces.tests.factories import MailpieceFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status


def change_form_data(r: CampaignRecipient) -> dict[str, object]:
    """What the recipient change form posts when nothing is edited (every
    person and address field as stored: a field posted empty is an edit, and
    an edit is validated like an import)."""
    fields = ("first_name", "last_name", "company", "email", "external_id")
    address = ("address1", "address2", "city", "state", "zip", "country")
    return {
        "campaign": r.campaign_id,
        **{f: getattr(r, f) for f in (*fields, *address)},
        "transitions-TOTAL_FORMS": 0,
        "transitions-INITIAL_FORMS": 0,
    }


@pytest.mark.parametrize(
    "model",
    [
        "campaigns_organization",
        "campaigns_campaign",
        "campaigns_campaignrecipient",
        "campaigns_blocklistentry",
        "campaigns_recipienttransition",
        "mailpieces_mailpiece",
        "mailpieces_mailpiecetransition",
    ],
)
def test_changelists_and_searches_render(admin_client, model):
    CampaignRecipientFactory()
    MailpieceFactory()
    BlocklistEntryFactory()
    url = reverse(f"admin:{model}_changelist")
    assert admin_client.get(url).status_code == HTTPStatus.OK
    assert admin_client.get(url, {"q": "someone@example.com"}).status_code == HTTPStatus.OK


def test_recipient_change_page_shows_status_read_only_and_history(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message="Failed to make proof for this recipient")
    response = admin_client.get(reverse("admin:campaigns_campaignrecipient_change", args=[r.pk]))
    assert response.status_code == HTTPStatus.OK
    form = response.context["adminform"].form
    assert "status" not in form.fields
    assert b"Retry from proofing" in response.content


def test_recipient_filters_by_status(admin_client):
    CampaignRecipientFactory(status=S.ERROR, first_name="Erring")
    CampaignRecipientFactory(first_name="Fine")
    response = admin_client.get(reverse("admin:campaigns_campaignrecipient_changelist"), {"status__exact": "Error"})
    assert b"Erring" in response.content
    assert b"Fine" not in response.content


def test_a_posted_status_is_ignored(admin_client):
    r = CampaignRecipientFactory()
    url = reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])
    data = {**change_form_data(r), "status": "Sent", "first_name": "X"}
    admin_client.post(url, data)
    r.refresh_from_db()
    assert r.status == S.PENDING


def test_the_transition_button_logs_the_admin_user(admin_client, admin_user):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    url = reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])
    data = {**change_form_data(r), "_fsm_transition_to": "retry_proofing"}
    response = admin_client.post(url, data)
    assert response.status_code == HTTPStatus.FOUND
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED
    log = RecipientTransition.objects.get(recipient=r)
    assert (log.source, log.acting_user) == ("admin", admin_user)


def test_bulk_retry_action_moves_only_errors_and_says_so(admin_client, admin_user):
    errors = CampaignRecipientFactory.create_batch(3, status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    sent = CampaignRecipientFactory(status=S.SENT)
    url = reverse("admin:campaigns_campaignrecipient_changelist")
    ids = [str(r.pk) for r in [*errors, sent]]
    response = admin_client.post(url, {"action": "retry_proofing", "_selected_action": ids}, follow=True)
    text = response.content.decode()
    assert "Retry from proofing: 3 sent back to proofing; 1 not eligible: 1 already Mailed." in text
    assert CampaignRecipient.objects.filter(status=S.PROOFING_STAGED).count() == 3
    assert RecipientTransition.objects.filter(acting_user=admin_user).count() == 3
    # Twice is safe: nothing left to move.
    response = admin_client.post(url, {"action": "retry_proofing", "_selected_action": ids}, follow=True)
    assert (
        "Retry from proofing: 0 sent back to proofing; 4 not eligible: 3 already Queued for proofing, 1 already Mailed."
        in (response.content.decode())
    )
    assert RecipientTransition.objects.count() == 3


def test_delete_selected_is_not_offered(admin_client):
    CampaignRecipientFactory()
    response = admin_client.get(reverse("admin:campaigns_campaignrecipient_changelist"))
    assert b"delete_selected" not in response.content


def test_users_without_change_permission_do_not_see_bulk_actions(client):
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_campaignrecipient"))
    client.force_login(user)
    CampaignRecipientFactory()
    response = client.get(reverse("admin:campaigns_campaignrecipient_changelist"))
    assert response.status_code == HTTPStatus.OK
    assert b"action_retry_proofing" not in response.content


def test_campaign_page_shows_counts_per_status(admin_client):
    c = CampaignFactory()
    CampaignRecipientFactory.create_batch(2, campaign=c, status=S.HOLDOUT)
    response = admin_client.get(reverse("admin:campaigns_campaign_change", args=[c.pk]))
    assert b"Control group (not mailed): 2" in response.content


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        # The same address as the existing "12 Oak Street", spelled differently.
        ({"address1": "12 oak st", "zip": "62701", "country": "US"}, b"already on the organization"),
        ({"address1": "1 Elm St", "zip": "1", "country": "Atlantis"}, b"Unknown country"),
    ],
)
def test_a_bad_blocklist_entry_is_a_form_error_not_a_500(admin_client, entry, message):
    existing = BlocklistEntryFactory(address1="12 Oak Street", zip="62701", country="US")
    response = admin_client.post(
        reverse("admin:campaigns_blocklistentry_add"), {"organization": existing.organization_id, **entry}
    )
    assert response.status_code == HTTPStatus.OK
    assert message in response.content


def test_a_button_pressed_on_a_stale_page_is_a_clean_message(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=ErrorMessages.FAILED_TO_MAKE_PROOF)
    url = reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])
    assert b"Retry from proofing" in admin_client.get(url).content
    # Meanwhile someone else retried it.
    CampaignRecipient.objects.filter(pk=r.pk).update(status=S.PROOFING_STAGED)
    data = {**change_form_data(r), "_fsm_transition_to": "retry_proofing"}
    response = admin_client.post(url, data, follow=True)
    assert response.status_code == HTTPStatus.OK
    assert "is not allowed from queued for proofing" in response.content.decode()
    assert RecipientTransition.objects.filter(recipient=r).count() == 0


def test_the_changelist_says_why_in_one_line(admin_client):
    CampaignRecipientFactory(
        status=S.SKIPPED,
        skip_reason="NoAddress",
        json={"validation_errors": [{"field": "zip", "message": "zip is empty"}, {"field": "x", "message": "y"}]},
    )
    CampaignRecipientFactory(status=S.ERROR, error_message="Failed to make proof for this recipient")
    CampaignRecipientFactory(
        status=S.SKIPPED,
        skip_reason="PrinterApprovalFailed",
        json={"approval_errors": [{"msg": "zip must be 5 digits"}]},
    )
    content = admin_client.get(reverse("admin:campaigns_campaignrecipient_changelist")).content.decode()
    # The skip reason in words; a long line is cut, whole in its tooltip.
    assert 'title="No usable address or name: ZIP / postal code is empty (+1 more)"' in content
    assert "Failed to make proof for this recipient" in content
    assert "Refused by the printer&#x27;s address rules: ZIP / postal code must be 5 digits" in content
    assert "NoAddress:" not in content


def test_status_counts_link_to_the_filtered_recipients(admin_client):
    c = CampaignFactory()
    CampaignRecipientFactory.create_batch(3, campaign=c, status=S.ERROR)
    content = admin_client.get(reverse("admin:campaigns_campaign_change", args=[c.pk])).content.decode()
    assert f"campaign__id__exact={c.pk}&amp;status__exact=Error" in content
    assert "Error: 3" in content


def test_a_campaign_with_recipients_cannot_be_deleted_from_the_admin(admin_client):
    c = CampaignFactory()
    assert admin_client.get(reverse("admin:campaigns_campaign_delete", args=[c.pk])).status_code == HTTPStatus.OK
    CampaignRecipientFactory(campaign=c)
    assert admin_client.get(reverse("admin:campaigns_campaign_delete", args=[c.pk])).status_code == HTTPStatus.FORBIDDEN


def recipient_post(r: CampaignRecipient) -> dict[str, object]:
    """The change form as posted with every person and address field kept."""
    fields = ("first_name", "last_name", "company", "email", "external_id")
    address = ("address1", "address2", "city", "state", "zip", "country")
    return {**change_form_data(r), **{f: getattr(r, f) for f in (*fields, *address)}}


def shown(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


def test_the_revalidate_button_checks_the_data_like_the_bulk_action(admin_client):
    """The button runs the whole re-validation: an invalid name is Skipped again, never left Pending."""
    bad = CampaignRecipientFactory(status=S.SKIPPED, skip_reason="NoAddress", first_name="Bl*nk")
    url = reverse("admin:campaigns_campaignrecipient_change", args=[bad.pk])
    data = {**recipient_post(bad), "_fsm_transition_to": "revalidate"}
    response = admin_client.post(url, data, follow=True)
    bad.refresh_from_db()
    assert bad.status == S.SKIPPED
    assert "first_name contains an asterisk" in bad.why
    assert "Re-validate: now skipped. No usable address or name: First name contains an asterisk" in shown(response)


def test_the_revalidate_button_qualifies_a_fixed_recipient_and_says_so_in_words(admin_client):
    good = CampaignRecipientFactory(status=S.SKIPPED, skip_reason="NoAddress")
    url = reverse("admin:campaigns_campaignrecipient_change", args=[good.pk])
    data = {**recipient_post(good), "_fsm_transition_to": "revalidate"}
    response = admin_client.post(url, data, follow=True)
    good.refresh_from_db()
    assert good.status == S.PROOFING_STAGED, good.why
    assert "Re-validate: now queued for proofing." in shown(response)
    assert "revalidate" not in shown(response)
