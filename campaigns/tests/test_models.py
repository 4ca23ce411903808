"""What a recipient transition sets, declared once: the per-object method and
the bulk move compute it from the same arguments and end the same; the json's
problem keys go with the problem; ``why`` explains the current reason only."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, RecipientTransition
from campaigns.recipient_json import PROBLEM_KEYS
from campaigns.services import recipient_transition, recipients_bulk_transition
from campaigns.tests.factories import CampaignRecipientFactory
from common.fsm import Actor, TransitionArgumentError
from common.models import JSONRemove, WithoutKeys

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
ACTOR = Actor("test")


def bulk(r: CampaignRecipient, method: str, **kwargs) -> list[int]:
    return recipients_bulk_transition(
        queryset=CampaignRecipient.objects.filter(pk=r.pk), method=method, actor=ACTOR, **kwargs
    )


def test_a_bulk_skip_without_a_reason_is_impossible_and_moves_nothing():
    r = CampaignRecipientFactory()
    with pytest.raises(TransitionArgumentError, match="skip_reason"):
        bulk(r, "skip")
    r.refresh_from_db()
    assert (r.status, RecipientTransition.objects.count()) == (S.PENDING, 0)


@pytest.mark.parametrize("bad", ["", "Bogus"])
def test_a_bulk_skip_with_a_reason_outside_the_spec_is_refused(bad):
    r = CampaignRecipientFactory()
    with pytest.raises(ValueError, match="is not a valid"):
        bulk(r, "skip", skip_reason=bad)
    r.refresh_from_db()
    assert r.status == S.PENDING


def test_a_bulk_move_refuses_an_argument_it_can_only_apply_one_by_one():
    r = CampaignRecipientFactory()
    with pytest.raises(TransitionArgumentError, match=r"applies \['details'\] one object at a time only"):
        bulk(r, "skip", skip_reason="NoAddress", details={"zip": "empty"})
    with pytest.raises(
        TransitionArgumentError, match=r"so a bulk move cannot take it; bulk moves accept no arguments$"
    ):
        bulk(r, "archive", skip_reason="NoAddress")
    r.refresh_from_db()
    assert r.status == S.PENDING


def test_a_bulk_skip_ends_like_a_skip_one_by_one_and_releases_the_enrichment_claim():
    claim = {"claim_token": uuid.uuid4(), "lease_until": timezone.now()}
    one = CampaignRecipientFactory(status=S.ADDRESS_ENRICHING, **claim)
    many = CampaignRecipientFactory(status=S.ADDRESS_ENRICHING, **claim)
    recipient_transition(recipient=one, method="skip", actor=ACTOR, skip_reason="EnrichmentFailed")
    assert bulk(many, "skip", skip_reason="EnrichmentFailed") == [many.pk]
    one.refresh_from_db()
    many.refresh_from_db()
    fields = ("status", "skip_reason", "claim_token", "lease_until")
    assert [getattr(many, f) for f in fields] == [getattr(one, f) for f in fields]
    assert [getattr(many, f) for f in fields] == [S.SKIPPED, "EnrichmentFailed", None, None]


@pytest.mark.parametrize(
    ("method", "source", "target"),
    [
        ("start_enriching", S.ADDRESS_ENRICHABLE, S.ADDRESS_ENRICHING),
        ("start_proofing", S.PROOFING_STAGED, S.PROOFING),
        ("start_sending", S.SENDING_STAGED, S.SENDING),
    ],
)
def test_a_claim_stamps_its_token_and_lease_on_both_paths(method, source, target):
    one = CampaignRecipientFactory(status=source)
    many = CampaignRecipientFactory(status=source)
    token, lease = uuid.uuid4(), timezone.now() + timedelta(minutes=10)
    recipient_transition(recipient=one, method=method, actor=ACTOR, claim_token=token, lease_until=lease)
    assert bulk(many, method, claim_token=token, lease_until=lease) == [many.pk]
    for r in (one, many):
        r.refresh_from_db()
        assert (r.status, r.claim_token, r.lease_until) == (target, token, lease)


def test_a_bulk_claim_without_its_token_is_refused():
    r = CampaignRecipientFactory(status=S.ADDRESS_ENRICHABLE)
    with pytest.raises(TransitionArgumentError, match="claim_token"):
        bulk(r, "start_enriching", lease_until=timezone.now())


def test_mark_enriched_releases_the_claim_on_both_paths():
    claim = {"claim_token": uuid.uuid4(), "lease_until": timezone.now()}
    one = CampaignRecipientFactory(status=S.ADDRESS_ENRICHING, **claim)
    many = CampaignRecipientFactory(status=S.ADDRESS_ENRICHING, **claim)
    recipient_transition(recipient=one, method="mark_enriched", actor=ACTOR)
    bulk(many, "mark_enriched")
    for r in (one, many):
        r.refresh_from_db()
        assert (r.status, r.claim_token, r.lease_until) == (S.PENDING, None, None)


# --- the json's problem keys ----------------------------------------------------------


def test_the_problem_keys_are_the_schemas():
    assert {p[0] for p in PROBLEM_KEYS} == {
        "validation_errors",
        "approval_errors",
        "skip_details",
        "altered_fields",
        "enrichment",
    }


@pytest.mark.parametrize(
    "value",
    [
        # Keys with path syntax in them ("a.b", "$", "[0]") are keys, not paths.
        {"a.b": 1, "$": 3, "[0]": 4, "keep": {"x": 1, "y": 2}, "list": [1], "text": "s"},
        # Paths through a list or a scalar are left alone (PostgreSQL would raise).
        {"keep": [1, 2], "list": {"0": 1}, "text": {"x": 1}},
        {"keep": "scalar", "a.b": None},
        [1, 2],
        "just text",
    ],
)
def test_json_remove_removes_the_same_keys_in_the_database_as_on_an_instance(value):
    r = CampaignRecipientFactory(json=value)
    edit = WithoutKeys(("a.b",), ("$",), ("[0]",), ("keep", "x"), ("missing",), ("list", "0"), ("text", "x"))
    CampaignRecipient.objects.filter(pk=r.pk).update(json=edit.expression("json"))
    r.refresh_from_db()
    assert r.json == edit.apply(value)


def test_json_remove_keeps_what_it_does_not_name_and_builds_a_new_dict():
    value = {"a.b": 1, "keep": {"x": 1, "y": 2}, "list": [1]}
    assert WithoutKeys(("a.b",), ("keep", "x")).apply(value) == {"keep": {"y": 2}, "list": [1]}
    assert value == {"a.b": 1, "keep": {"x": 1, "y": 2}, "list": [1]}
    assert WithoutKeys(("a",)).apply(None) is None


def test_json_remove_needs_a_path_without_a_double_quote():
    for paths in ([], [()], [('q"',)]):
        with pytest.raises(ValueError, match="JSONRemove"):
            JSONRemove("json", paths)


def test_json_remove_compiles_to_the_databases_own_operator():
    qs = CampaignRecipient.objects.filter(pk=1).annotate(j=JSONRemove("json", [("a", "b")]))
    sql = str(qs.query)
    assert ("#-" if connection.vendor == "postgresql" else "JSON_REMOVE") in sql


# --- why ---------------------------------------------------------------------------


def test_why_shows_only_the_details_of_the_current_skip_reason():
    stale = {
        "approval_errors": [{"loc": ["zip"], "msg": "zip must have 5 digits", "type": "lob_zip"}],
        "validation_errors": [{"field": "zip", "message": "zip is empty"}],
        "enrichment": {"backend": "local", "outcome": "no_match", "detail": "nothing found"},
    }
    cases = {
        "CapExceeded": "CapExceeded: the organization's recipient cap is used up",
        "PrinterApprovalFailed": "PrinterApprovalFailed: zip must have 5 digits",
        "International": "International: zip is empty",
        "NoAddress": "NoAddress: zip is empty (+1 more)",
        "EnrichmentFailed": "EnrichmentFailed: nothing found",
    }
    for reason, why in cases.items():
        assert CampaignRecipient(status=S.SKIPPED, skip_reason=reason, json=stale).why == why
    r = CampaignRecipient(status=S.SKIPPED, skip_reason="International", json={"skip_details": {"zip": "empty"}})
    assert r.why == "International: zip: empty"
    assert CampaignRecipient(status=S.SKIPPED, skip_reason="International", json={}).why == "International"


def test_a_fixed_revalidated_recipient_over_the_cap_shows_the_cap_not_the_old_approval_error():
    from campaigns.qualification import campaign_qualify
    from campaigns.revalidation import recipients_revalidate
    from campaigns.tests.factories import CampaignFactory

    campaign = CampaignFactory(printer="lob", organization__recipient_cap=1)
    bad = CampaignRecipientFactory(campaign=campaign, zip="ABC")
    campaign_qualify(campaign=campaign, actor=ACTOR)
    bad.refresh_from_db()
    assert bad.why.startswith("PrinterApprovalFailed: ")
    # Fixed, but meanwhile another recipient took the org's only slot.
    CampaignRecipient.objects.filter(pk=bad.pk).update(zip="62701")
    CampaignRecipientFactory(campaign=campaign, status=S.PROOFING_STAGED)
    recipients_revalidate(queryset=CampaignRecipient.objects.filter(pk=bad.pk), actor=ACTOR)
    bad.refresh_from_db()
    assert (bad.status, bad.skip_reason) == (S.SKIPPED, "CapExceeded")
    assert "approval_errors" not in bad.json
    assert bad.why == "CapExceeded: the organization's recipient cap is used up"


@pytest.mark.django_db
def test_a_printer_this_server_cannot_mail_through_or_a_size_it_does_not_make_is_refused(settings) -> None:
    """A campaign on a disabled printer (or one without its key) was proofed and
    approved, then sat in "Queued for mailing" with the reason only in the
    worker's log; IntelliPrint at 6x11 failed every row at the printer."""
    from django.core.exceptions import ValidationError

    from campaigns.tests.factories import CampaignFactory

    conf = {kind: dict(value) for kind, value in settings.PRINTERS_CONF.items()}
    conf["taylor"]["enabled"] = False
    conf["lob"]["api_key"] = ""
    conf["intelliprint"].update(enabled=True, api_key="key")
    settings.PRINTERS_CONF = conf
    campaign = Campaign.objects.get(pk=CampaignFactory().pk)  # sandbox, 4x6
    cases: list[tuple[str, str, str, str]] = [
        ("taylor", "4x6", "printer", "is not set up on this server"),
        ("lob", "4x6", "printer", "is not set up on this server"),
        ("intelliprint", "6x11", "size", "does not make 6x11 postcards"),
    ]
    for printer, size, field, words in cases:
        campaign.printer, campaign.size = printer, size
        with pytest.raises(ValidationError) as info:
            campaign.clean()
        assert words in " ".join(info.value.message_dict[field])
    campaign.printer, campaign.size = "intelliprint", "6x9"
    campaign.clean()
    campaign.save()
    conf["intelliprint"]["enabled"] = False  # disabled later: other edits of the campaign still pass
    campaign.name = "renamed"
    campaign.clean()
