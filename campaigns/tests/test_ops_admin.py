"""The ops admin (issue 11): permissions on actions and buttons, the recipient
page, the changelist's filters, the actions' messages and the queue, the
campaign list and funnel."""

from __future__ import annotations

from http import HTTPStatus
from unittest import mock

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.urls import reverse

from campaigns import admin as campaigns_admin
from campaigns.models import Campaign, CampaignRecipient, ErrorMessages, RecipientTransition
from campaigns.tests.factories import BlocklistEntryFactory, CampaignFactory, CampaignRecipientFactory
from common.permissions import OPS, READ_ONLY
from mailpieces.models import MailpieceEvent
from mailpieces.tests.factories import MailpieceFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
CHANGELIST = "admin:campaigns_campaignrecipient_changelist"
PROOF_ERROR = ErrorMessages.FAILED_TO_MAKE_PROOF


def change_url(r: CampaignRecipient) -> str:
    return reverse("admin:campaigns_campaignrecipient_change", args=[r.pk])


def form_post(r: CampaignRecipient, **changes: object) -> dict[str, object]:
    """The change form as a browser posts it, with ``changes`` typed in."""
    fields = ("first_name", "last_name", "company", "email", "external_id")
    address = ("address1", "address2", "city", "state", "zip", "country")
    return {**{f: getattr(r, f) for f in (*fields, *address)}, **changes}


def shown(response) -> str:
    return " | ".join(str(m) for m in response.context["messages"])


@pytest.fixture
def user_in(django_user_model):
    def make(*groups: str, perms: tuple[str, ...] = (), **extra):
        user = django_user_model.objects.create_user(
            username=f"u{django_user_model.objects.count()}", password="x", is_staff=True, **extra
        )
        user.groups.set(Group.objects.filter(name__in=groups))
        user.user_permissions.set(Permission.objects.filter(codename__in=perms))
        return django_user_model.objects.get(pk=user.pk)

    return make


@pytest.fixture
def as_user(client, user_in):
    def login(*groups: str, **kwargs):
        user = user_in(*groups, **kwargs)
        client.force_login(user)
        return client

    return login


# --- A. permissions ------------------------------------------------------------------


def test_read_only_sees_the_list_and_the_page_but_no_action_and_no_button(as_user):
    client = as_user(READ_ONLY)
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    listing = client.get(reverse(CHANGELIST))
    assert listing.status_code == HTTPStatus.OK
    assert b"retry_proofing" not in listing.content
    page = client.get(change_url(r))
    assert page.status_code == HTTPStatus.OK
    assert b"_fsm_transition_to" not in page.content
    # Nor can it be posted.
    client.post(reverse(CHANGELIST), {"action": "retry_proofing", "_selected_action": [r.pk]})
    assert client.post(change_url(r), {**form_post(r), "_fsm_transition_to": "retry_proofing"}).status_code == 403
    r.refresh_from_db()
    assert r.status == S.ERROR


def test_change_permission_alone_neither_shows_nor_runs_the_retry_button(as_user):
    client = as_user(perms=("view_campaignrecipient", "change_campaignrecipient"))
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    page = client.get(change_url(r))
    assert b'value="retry_proofing"' not in page.content
    response = client.post(change_url(r), {**form_post(r), "_fsm_transition_to": "retry_proofing"}, follow=True)
    assert "is not yours to run here" in shown(response)
    r.refresh_from_db()
    assert r.status == S.ERROR
    listing = client.get(reverse(CHANGELIST))
    assert b'value="retry_proofing"' not in listing.content


@pytest.mark.parametrize(
    ("perm", "button", "status", "extra"),
    [
        ("retry_recipient", "retry_proofing", S.ERROR, {"error_message": PROOF_ERROR}),
        ("revalidate_recipient", "revalidate", S.SKIPPED, {"skip_reason": "NoAddress"}),
        ("cancel_recipient", "archive", S.SKIPPED, {"skip_reason": "NoAddress"}),
    ],
)
def test_each_button_shows_with_its_own_permission(as_user, perm, button, status, extra):
    r = CampaignRecipientFactory(status=status, **extra)
    client = as_user(perms=("view_campaignrecipient", "change_campaignrecipient", perm))
    page = client.get(change_url(r)).content.decode()
    assert f'value="{button}"' in page
    assert 'title="None"' not in page
    response = client.post(change_url(r), {**form_post(r), "_fsm_transition_to": button}, follow=True)
    r.refresh_from_db()
    assert r.status != status, shown(response)


def test_ops_runs_the_actions_and_sees_the_buttons(as_user):
    client = as_user(OPS)
    errors = CampaignRecipientFactory.create_batch(2, status=S.ERROR, error_message=PROOF_ERROR)
    page = client.get(change_url(errors[0])).content.decode()
    assert "Retry from proofing" in page
    response = client.post(
        reverse(CHANGELIST), {"action": "retry_proofing", "_selected_action": [r.pk for r in errors]}, follow=True
    )
    assert "2 sent back to proofing" in shown(response)


def test_ops_cannot_edit_the_address_of_a_mailed_recipient_but_can_before(as_user):
    client = as_user(OPS)
    sent = CampaignRecipientFactory(status=S.SENT, address1="1 Main St")
    page = client.get(change_url(sent))
    assert "address1" not in page.context["adminform"].form.fields
    client.post(change_url(sent), form_post(sent, address1="2 Other St"))
    sent.refresh_from_db()
    assert sent.address1 == "1 Main St"
    error = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR, address1="1 Main St")
    assert "address1" in client.get(change_url(error)).context["adminform"].form.fields
    client.post(change_url(error), form_post(error, address1="2 Other St"))
    error.refresh_from_db()
    assert error.address1 == "2 Other St"


@pytest.mark.parametrize(
    "url",
    [
        "admin:campaigns_campaignrecipient_delete",
        "admin:mailpieces_mailpiece_delete",
        "admin:mailpieces_inboundwebhook_delete",
        "admin:mailpieces_mailpieceevent_delete",
    ],
)
def test_nothing_ops_look_at_can_be_deleted_even_by_a_superuser(admin_client, url):
    piece = MailpieceFactory()
    event = MailpieceEvent.objects.create(
        printer="sandbox",
        printer_id=piece.printer_id,
        event_key="e1",
        mailpiece=piece,
        status="Sent",
        outcome="applied",
    )
    from mailpieces.models import InboundWebhook

    inbox = InboundWebhook.objects.create(printer="sandbox", event_id="x", body=b"{}")
    obj = {
        "campaignrecipient": piece.recipient,
        "mailpiece": piece,
        "inboundwebhook": inbox,
        "mailpieceevent": event,
    }[url.split("_")[-2]]
    assert admin_client.post(reverse(url, args=[obj.pk])).status_code == HTTPStatus.FORBIDDEN
    changelist = reverse(url.replace("_delete", "_changelist"))
    assert b"delete_selected" not in admin_client.get(changelist).content
    assert b"deletelink" not in admin_client.get(reverse(url.replace("_delete", "_change"), args=[obj.pk])).content


def test_the_mailpiece_page_offers_no_hand_moved_status(admin_client):
    piece = MailpieceFactory()
    page = admin_client.get(reverse("admin:mailpieces_mailpiece_change", args=[piece.pk]))
    assert b"_fsm_transition_to" not in page.content


def test_a_mailpiece_cannot_be_moved_or_made_by_hand(admin_client):
    """A superuser could move a piece to another recipient (a 500 when that
    one had a live piece; silently, without history, onto a Pending one) or
    to another printer, and add one by hand."""
    piece = MailpieceFactory()
    other = CampaignRecipientFactory(status=S.PENDING)
    url = reverse("admin:mailpieces_mailpiece_change", args=[piece.pk])
    before = (piece.recipient_id, piece.printer)
    response = admin_client.post(url, {"recipient": other.pk, "printer": "lob", "_save": "Save"}, follow=True)
    assert response.status_code == HTTPStatus.FORBIDDEN  # a view page: nothing on it is saved
    piece.refresh_from_db()
    assert (piece.recipient_id, piece.printer) == before
    page = admin_client.get(url).content.decode()
    assert 'name="recipient"' not in page
    assert 'name="printer"' not in page
    assert 'name="_save"' not in page  # no Save button that saves nothing
    assert admin_client.get(reverse("admin:mailpieces_mailpiece_add")).status_code == HTTPStatus.FORBIDDEN


@pytest.mark.parametrize(
    "url", ["admin:mailpieces_mailpiece_changelist", "admin:campaigns_recipienttransition_changelist"]
)
@pytest.mark.parametrize("term", ["9400111899223100012345", str(2**63), "²"])
def test_a_number_too_big_for_an_id_searches_without_a_500(admin_client, url, term):
    MailpieceFactory()
    assert admin_client.get(reverse(url), {"q": term}).status_code == HTTPStatus.OK


# --- B. the recipient page -------------------------------------------------------------


def test_only_the_ops_transitions_are_buttons_and_a_forged_one_is_refused(admin_client):
    r = CampaignRecipientFactory(status=S.PENDING)
    page = admin_client.get(change_url(r)).content.decode()
    assert 'value="stage_proofing"' not in page
    assert 'value="mark_enrichable"' not in page
    assert 'value="archive"' in page
    assert "Archive (exclude from campaign)" in page
    for forged in ("stage_proofing", "mark_enrichable", "hold_out", "no_such_thing", "save"):
        response = admin_client.post(change_url(r), {**form_post(r), "_fsm_transition_to": forged}, follow=True)
        assert response.status_code == HTTPStatus.OK
        assert shown(response)
    r.refresh_from_db()
    assert r.status == S.PENDING
    assert not RecipientTransition.objects.filter(recipient=r).exists()


def test_the_page_shows_checks_data_and_blocklist_in_words_never_a_json_box(admin_client):
    r = CampaignRecipientFactory(
        status=S.SKIPPED,
        skip_reason="PrinterApprovalFailed",
        json={
            "approval_errors": [{"loc": ["zip"], "msg": "zip must be 5 digits", "type": "value_error"}],
            "validation_errors": [{"field": "state", "message": "state is not a US state"}],
            "source_row": {"zip": "6270"},
            "extra": {"Loyalty tier": "gold"},
        },
    )
    content = admin_client.get(change_url(r)).content.decode()
    assert 'name="json"' not in content
    assert "zip: zip must be 5 digits" in content
    assert "State / province is not a US state" in content
    assert "Refused by the printer&#x27;s address rules (PrinterApprovalFailed)" in content
    assert "Loyalty tier: gold" in content
    assert "6270" in content  # as imported
    assert "Matches no entry" in content


def test_a_blacklisted_recipient_names_the_entry_it_matches(admin_client):
    r = CampaignRecipientFactory(status=S.BLACKLISTED, address1="12 Oak Street", zip="62701", country="US")
    entry = BlocklistEntryFactory(
        organization=r.campaign.organization, address1="12 oak st", zip="62701", country="US", reason="asked us"
    )
    content = admin_client.get(change_url(r)).content.decode()
    assert reverse("admin:campaigns_blocklistentry_change", args=[entry.pk]) in content
    assert "asked us" in content


def test_one_timeline_merges_moves_pieces_and_printer_reports_newest_first(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    admin_client.post(change_url(r), {**form_post(r), "_fsm_transition_to": "retry_proofing"})
    piece = MailpieceFactory(recipient=r, printer_id="sbx_tl")
    MailpieceEvent.objects.create(
        printer="sandbox",
        printer_id="sbx_tl",
        event_key="tl1",
        mailpiece=piece,
        vendor_status="InTransit",
        status="InTransit",
        outcome="ignored",
        note="a piece never moves back",
    )
    content = admin_client.get(change_url(r)).content.decode()
    assert "Error → Queued for proofing" in content
    assert "Printer reported “InTransit”" in content
    assert "a piece never moves back" in content
    assert content.index("Printer reported") < content.index("Error → Queued for proofing")
    assert "Transition history" not in content  # one timeline, not a second table


def test_adding_a_recipient_by_hand_is_validated_like_an_import(admin_client):
    c = CampaignFactory()
    add = reverse("admin:campaigns_campaignrecipient_add")
    bad = {"campaign": c.pk, "first_name": "Bl*nk", "address1": "", "zip": "62701", "country": "US"}
    response = admin_client.post(add, bad)
    assert response.status_code == HTTPStatus.OK
    # In the import page's words, not the stored field names ("address1 is empty").
    assert "First name contains an asterisk" in response.content.decode()
    assert "Street address is empty" in response.content.decode()
    assert not CampaignRecipient.objects.exists()
    good = {
        "campaign": c.pk,
        "first_name": " Ada ",
        "last_name": "Lovelace",
        "address1": "1 Main St",
        "city": "Springfield",
        "state": "Illinois",
        "zip": "62701",
        "country": "united states",
    }
    response = admin_client.post(add, good, follow=True)
    r = CampaignRecipient.objects.get()
    assert (r.status, r.first_name, r.country, r.state) == (S.PENDING, "Ada", "US", "IL")
    assert r.natural_key
    assert RecipientTransition.objects.get(recipient=r).reason == "added by hand in the admin"
    # The same person twice is refused, naming the first.
    response = admin_client.post(add, good)
    assert f"recipient #{r.pk}" in response.content.decode()
    assert CampaignRecipient.objects.count() == 1


def test_an_edit_that_breaks_the_data_is_refused_with_the_validators_words(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    response = admin_client.post(change_url(r), form_post(r, country="Atlantis"))
    assert response.status_code == HTTPStatus.OK
    assert "country" in response.content.decode()
    r.refresh_from_db()
    assert r.country == "US"


@pytest.mark.parametrize("status", [S.ERROR, S.SENDING_STAGED, S.PROOFED])
def test_an_address_left_to_enrichment_only_before_qualification(admin_client, status):
    """A campaign that enriches addresses forgives an empty street only on a
    row qualification will still send to the lookup; a row past it (in Error,
    about to be sent back to the printer) was saved without one, and "Retry
    sending" then queued it for the printer."""
    campaign = CampaignFactory(address_enrichment=True)
    r = CampaignRecipientFactory(campaign=campaign, status=status, error_message=PROOF_ERROR)
    response = admin_client.post(change_url(r), form_post(r, address1=""))
    assert response.status_code == HTTPStatus.OK
    assert "Street address is empty" in response.content.decode()
    r.refresh_from_db()
    assert r.address1 != ""
    pending = CampaignRecipientFactory(campaign=campaign, status=S.PENDING)
    response = admin_client.post(change_url(pending), form_post(pending, address1="", zip=""))
    assert response.status_code == HTTPStatus.FOUND
    pending.refresh_from_db()
    assert pending.address1 == ""


def test_a_field_too_long_is_said_once_not_also_empty(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    response = admin_client.post(change_url(r), form_post(r, zip="1" * 40))
    body = response.content.decode()
    assert "at most 20 characters" in body
    assert "zip is empty" not in body


def test_fixing_a_skipped_recipient_revalidates_it_through_the_same_service(admin_client):
    r = CampaignRecipientFactory(
        status=S.SKIPPED,
        skip_reason="NoAddress",
        address1="",
        json={"validation_errors": [{"field": "address1", "message": "address1 is empty"}]},
    )
    response = admin_client.post(change_url(r), form_post(r, address1="1 Main St"), follow=True)
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED, shown(response)
    assert "Saved and re-validated: now Queued for proofing" in shown(response)
    assert RecipientTransition.objects.filter(recipient=r, reason="re-validate").exists()


# --- C. the changelist -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "shown_name"),
    [
        ({"status__exact": "Error"}, "Erring"),
        ({"skip_reason__exact": "International"}, "Abroad"),
        ({"error_message__exact": PROOF_ERROR}, "Erring"),
        ({"approval_errors": "yes"}, "Refused"),
        ({"campaign__printer__exact": "lob"}, "Lobbed"),
        ({"mailpieces__status__exact": "Submitted"}, "Mailed"),
        ({"problem": "skipped"}, "Abroad"),
    ],
)
def test_each_filter_narrows_the_list(admin_client, params, shown_name):
    CampaignRecipientFactory(first_name="Erring", status=S.ERROR, error_message=PROOF_ERROR)
    CampaignRecipientFactory(first_name="Abroad", status=S.SKIPPED, skip_reason="International")
    CampaignRecipientFactory(
        first_name="Refused", status=S.SKIPPED, skip_reason="PrinterApprovalFailed", json={"approval_errors": [{}]}
    )
    CampaignRecipientFactory(first_name="Lobbed", campaign=CampaignFactory(printer="lob"))
    MailpieceFactory(recipient=CampaignRecipientFactory(first_name="Mailed", status=S.SENT))
    CampaignRecipientFactory(first_name="Bystander")
    response = admin_client.get(reverse(CHANGELIST), params)
    assert response.status_code == HTTPStatus.OK
    content = response.content.decode()
    assert shown_name in content
    assert "Bystander" not in content


def test_campaign_and_created_filters_and_search(admin_client):
    c = CampaignFactory()
    CampaignRecipientFactory(first_name="Inside", campaign=c, zip="10001")
    CampaignRecipientFactory(first_name="Outside")
    content = admin_client.get(reverse(CHANGELIST), {"campaign__id__exact": c.pk}).content.decode()
    assert "Inside" in content
    assert "Outside" not in content
    assert (
        admin_client.get(reverse(CHANGELIST), {"created__gte": "2000-01-01 00:00:00+00:00"}).status_code
        == HTTPStatus.OK
    )
    content = admin_client.get(reverse(CHANGELIST), {"q": "10001"}).content.decode()
    assert "Inside" in content
    assert "Outside" not in content


def test_the_list_shows_states_in_words_with_colour_and_no_view_site(admin_client):
    CampaignRecipientFactory(status=S.PROOFING_STAGED)
    content = admin_client.get(reverse(CHANGELIST)).content.decode()
    assert 'class="status-badge" title="Status: ProofingStaged"' in content
    assert "Queued for proofing" in content
    assert "View site" not in content


def test_add_page_renders_without_status_or_json(admin_client):
    response = admin_client.get(reverse("admin:campaigns_campaignrecipient_add"))
    assert response.status_code == HTTPStatus.OK
    fields = response.context["adminform"].form.fields
    assert "status" not in fields
    assert "json" not in fields


# --- D. action messages and the queue --------------------------------------------------


def test_revalidate_says_why_rows_were_not_eligible(admin_client):
    skipped = CampaignRecipientFactory(status=S.SKIPPED, skip_reason="NoAddress")
    sent = CampaignRecipientFactory(status=S.SENT)
    error = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    ids = [skipped.pk, sent.pk, error.pk]
    response = admin_client.post(reverse(CHANGELIST), {"action": "revalidate", "_selected_action": ids}, follow=True)
    text = shown(response)
    assert "Re-validated 1 recipient(s): 1 queued for proofing." in text
    assert "2 not eligible (only Skipped and Blacklisted rows are): " in text
    assert "1 already Mailed" in text
    assert "1 already Error" in text
    assert "left as they were" not in text


def test_archive_needs_the_cancel_permission_and_reports_by_status(admin_client):
    pending = CampaignRecipientFactory()
    sent = CampaignRecipientFactory(status=S.SENT)
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "archive", "_selected_action": [pending.pk, sent.pk]}, follow=True
    )
    assert "Archive: 1 archived; 1 not eligible: 1 already Mailed." in shown(response)
    # Twice is safe.
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "archive", "_selected_action": [pending.pk, sent.pk]}, follow=True
    )
    assert "Archive: 0 archived; 2 not eligible" in shown(response)


def test_a_scheduled_card_is_archived_unless_it_is_already_being_sent(admin_client):
    """Scheduled cards wait with us for their day: archiving one cancels it.
    One a worker holds, or one already attempted, may be at the printer."""
    import uuid

    from django.utils import timezone

    untouched = CampaignRecipientFactory(status=S.SCHEDULED)
    held = CampaignRecipientFactory(status=S.SCHEDULED, claim_token=uuid.uuid4(), lease_until=timezone.now())
    tried = CampaignRecipientFactory(status=S.SCHEDULED, first_attempt_at=timezone.now())
    ids = [untouched.pk, held.pk, tried.pk]
    response = admin_client.post(reverse(CHANGELIST), {"action": "archive", "_selected_action": ids}, follow=True)
    assert "Archive: 1 archived; 2 not eligible: 2 scheduled but already being sent to the printer." in shown(response)
    assert dict(CampaignRecipient.objects.filter(pk__in=ids).values_list("pk", "status")) == {
        untouched.pk: S.ARCHIVED,
        held.pk: S.SCHEDULED,
        tried.pk: S.SCHEDULED,
    }


def test_the_archive_button_of_a_scheduled_card(admin_client):
    import uuid

    card = CampaignRecipientFactory(status=S.SCHEDULED)
    held = CampaignRecipientFactory(status=S.SCHEDULED, claim_token=uuid.uuid4())
    assert 'value="archive"' in admin_client.get(change_url(card)).content.decode()
    assert 'value="archive"' not in admin_client.get(change_url(held)).content.decode()
    response = admin_client.post(change_url(card), {**form_post(card), "_fsm_transition_to": "archive"}, follow=True)
    card.refresh_from_db()
    assert card.status == S.ARCHIVED
    assert shown(response) == "Archive (exclude from campaign): now archived (excluded)."


def test_a_big_selection_is_queued_with_the_ids_and_the_user(admin_client, admin_user, settings):
    settings.ADMIN_ACTION_QUEUE_THRESHOLD = 2
    errors = CampaignRecipientFactory.create_batch(3, status=S.ERROR, error_message=PROOF_ERROR)
    ids = sorted(r.pk for r in errors)
    with mock.patch.object(campaigns_admin, "async_task") as enqueue:
        response = admin_client.post(
            reverse(CHANGELIST), {"action": "retry_proofing", "_selected_action": ids}, follow=True
        )
    assert "Queued: 3 recipients will be retried from proofing in the background" in shown(response)
    assert "the result appears in the history" in shown(response)
    enqueue.assert_called_once()
    path, name, queued_ids, user_id = enqueue.call_args.args
    assert (path, name, queued_ids, user_id) == (
        "campaigns.admin.recipient_action_task",
        "retry_proofing",
        ids,
        admin_user.pk,
    )
    assert CampaignRecipient.objects.filter(status=S.ERROR).count() == 3  # nothing ran in the request
    # The task runs the same service, in the user's name.
    text = campaigns_admin.recipient_action_task(name, queued_ids, user_id)
    assert text == "Retry from proofing: 3 sent back to proofing."
    assert RecipientTransition.objects.filter(acting_user=admin_user).count() == 3


def test_small_selections_run_in_the_request(admin_client):
    r = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    with mock.patch.object(campaigns_admin, "async_task") as enqueue:
        admin_client.post(reverse(CHANGELIST), {"action": "retry_proofing", "_selected_action": [r.pk]})
    enqueue.assert_not_called()
    r.refresh_from_db()
    assert r.status == S.PROOFING_STAGED


# --- E. campaigns -----------------------------------------------------------------------


def test_the_campaign_list_shows_progress_in_one_query_for_the_page(admin_client, django_assert_num_queries):
    c = CampaignFactory(name="Winter")
    CampaignRecipientFactory.create_batch(2, campaign=c, status=S.SENT)
    CampaignRecipientFactory(campaign=c, status=S.ERROR, error_message=PROOF_ERROR)
    CampaignRecipientFactory(campaign=c, status=S.SKIPPED, skip_reason="NoAddress")
    url = reverse("admin:campaigns_campaign_changelist")
    content = admin_client.get(url).content.decode()
    assert "2 / 4 mailed · 1 error · 1 skipped" in content

    def queries() -> int:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        with CaptureQueriesContext(connection) as ctx:
            admin_client.get(url)
        return len(ctx.captured_queries)

    few = queries()
    for _ in range(4):
        CampaignRecipientFactory(campaign=CampaignFactory())
    assert queries() == few  # no query per campaign


def test_the_funnel_links_every_count_and_draws_bars(admin_client):
    c = CampaignFactory()
    CampaignRecipientFactory(campaign=c, status=S.ERROR, error_message=PROOF_ERROR)
    CampaignRecipientFactory(campaign=c, status=S.SKIPPED, skip_reason="International")
    MailpieceFactory(recipient=CampaignRecipientFactory(campaign=c, status=S.SENT))
    content = admin_client.get(reverse("admin:campaigns_campaign_change", args=[c.pk])).content.decode()
    assert f"campaign__id__exact={c.pk}&amp;skip_reason__exact=International" in content
    assert "error_message__exact=Failed+to+make+proof+for+this+recipient" in content
    assert "mailpieces__status__exact=Submitted" in content
    assert "height:10px;width:33%" in content
    # Each link says it in words; the spec's name is only its tooltip.
    assert "title='International'>Country or address check failed: 1</a>" in content
    assert "title='Sent'>Mailed: 1</a>" in content
    assert ">International: 1<" not in content
    assert "<script" not in content.split('id="content"')[1].split("</form>")[0]


def test_retry_all_errors_uses_the_services_and_the_permission(admin_client, as_user):
    c = CampaignFactory()
    errors = CampaignRecipientFactory.create_batch(2, campaign=c, status=S.ERROR, error_message=PROOF_ERROR)
    other = CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    url = reverse("admin:campaigns_campaign_retry_errors", args=[c.pk])
    page = admin_client.get(reverse("admin:campaigns_campaign_change", args=[c.pk])).content.decode()
    assert url in page
    assert "Retry all errors" in page
    assert admin_client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    reader = as_user(READ_ONLY)
    assert reader.post(url).status_code == HTTPStatus.FORBIDDEN
    assert url not in reader.get(reverse("admin:campaigns_campaign_change", args=[c.pk])).content.decode()
    response = admin_client.post(url, follow=True)
    assert "Retry all errors: 2 retried (2 to proofing, 0 to mailing)." in shown(response)
    assert CampaignRecipient.objects.filter(pk__in=[r.pk for r in errors], status=S.PROOFING_STAGED).count() == 2
    other.refresh_from_db()
    assert other.status == S.ERROR
    response = admin_client.post(url, follow=True)
    assert "has no recipient in Error" in shown(response)


def test_the_last_import_report_is_open(admin_client, rf, admin_user):
    c = CampaignFactory()
    model_admin = campaigns_admin.admin.site._registry[Campaign]
    request = rf.get("/")
    request.user = admin_user
    fieldsets = model_admin.get_fieldsets(request, c)
    (opts,) = [o for _, o in fieldsets if "last_import_report" in o["fields"]]
    assert "collapse" not in opts.get("classes", ())


def test_every_model_admin_changelist_and_add_page_answer(admin_client):
    CampaignRecipientFactory()
    for model, _opts in campaigns_admin.admin.site._registry.items():
        label = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        assert admin_client.get(reverse(f"{label}_changelist")).status_code == HTTPStatus.OK, label
        assert admin_client.get(reverse(f"{label}_changelist"), {"q": "x"}).status_code == HTTPStatus.OK, label
        add = admin_client.get(reverse(f"{label}_add"))
        assert add.status_code in (HTTPStatus.OK, HTTPStatus.FORBIDDEN), label


def test_every_filter_choice_of_every_model_admin_answers(admin_client):
    """Each sidebar link of each changelist (as the page offers it) answers 200,
    never a 400 for a lookup the admin does not allow, nor a 500."""
    CampaignRecipientFactory(status=S.ERROR, error_message=PROOF_ERROR)
    MailpieceFactory(recipient=CampaignRecipientFactory(status=S.SENT))
    clicked = 0
    for model in campaigns_admin.admin.site._registry:
        url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        page = admin_client.get(url)
        assert page.status_code == HTTPStatus.OK, url
        changelist = page.context["cl"]
        for spec in changelist.filter_specs:
            for choice in spec.choices(changelist):
                response = admin_client.get(url + choice["query_string"])
                assert response.status_code == HTTPStatus.OK, (url, spec.title, choice["query_string"])
                clicked += 1
    assert clicked > 50  # the recipients' filters alone offer more


def test_users_without_staff_rights_are_sent_to_login(client):
    User.objects.create_user("nobody", password="x")
    client.login(username="nobody", password="x")
    assert client.get(reverse(CHANGELIST)).status_code == HTTPStatus.FOUND


@pytest.mark.parametrize(
    ("info", "words"),
    [
        (
            {"backend": "local", "outcome": "matched", "detail": "", "match": "email_full_name"},
            "the built-in sample lookup found an address, matched on the email and the full name",
        ),
        (
            {"backend": "faraday", "outcome": "no_match", "detail": "no identity matched", "match": ""},
            "Faraday found nobody matching (no identity matched)",
        ),
        ({"backend": "faraday", "error": "Faraday answered 503"}, "Faraday could not be asked: Faraday answered 503"),
    ],
)
def test_the_address_lookup_is_told_in_words_not_codes(info, words):
    from campaigns.admin import enrichment_words

    assert enrichment_words(info) == words
