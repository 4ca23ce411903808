from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from campaigns.enrichment.base import EnrichmentError, EnrichmentQuery, EnrichmentResult, get_enrichment_client
from campaigns.enrichment.faraday import FaradayClient
from campaigns.enrichment.local import LocalEnrichmentClient, sample_addresses
from campaigns.enrichment.service import MAX_ATTEMPTS, campaign_enrich
from campaigns.models import CampaignRecipient, RecipientTransition
from campaigns.qualification import campaign_qualify
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from common.fsm import Actor
from common.http import OutboundError

ACTOR = Actor("test")
Status = CampaignRecipient.Status


def enrichable(**kwargs: Any) -> CampaignRecipient:
    campaign = kwargs.pop("campaign", None) or CampaignFactory(address_enrichment=True)
    fields = {"address1": "", "city": "", "state": "", "zip": "", **kwargs}
    return CampaignRecipientFactory.create(campaign=campaign, status=Status.ADDRESS_ENRICHABLE, **fields)


# --- local backend ------------------------------------------------------------------------


def test_the_local_backend_is_deterministic_and_fills_some_and_fails_others() -> None:
    client = LocalEnrichmentClient()
    queries = [EnrichmentQuery(first_name="P", email=f"person{i}@example.com") for i in range(200)]
    first = [client.lookup(q) for q in queries]
    assert first == [client.lookup(q) for q in queries]
    matched = [r for r in first if r.address is not None]
    assert 100 < len(matched) < 200  # about 80 %
    assert {r.outcome for r in first} == {"matched", "no_match"}
    assert all(r.address in sample_addresses() for r in matched)


def test_the_local_backend_never_matches_nomatch_and_needs_a_name_or_email() -> None:
    client = LocalEnrichmentClient()
    assert client.lookup(EnrichmentQuery(email="x.nomatch@example.com")).outcome == "no_match"
    assert client.lookup(EnrichmentQuery()).outcome == "no_address"


def test_the_bundled_sample_is_readable() -> None:
    assert len(sample_addresses()) == 40
    assert all(a.country == "US" and len(a.zip) == 5 for a in sample_addresses())


@override_settings(ENRICHMENT={"backend": "local"})
def test_settings_pick_the_backend() -> None:
    assert isinstance(get_enrichment_client(), LocalEnrichmentClient)
    with (
        override_settings(ENRICHMENT={"backend": "faraday", "api_key": "", "target_id": "t"}),
        pytest.raises(EnrichmentError, match="FARADAY_API_KEY"),
    ):
        get_enrichment_client()


# --- the service through the local backend ------------------------------------------------


def _email_with(outcome: str) -> str:
    client = LocalEnrichmentClient()
    for i in range(100):
        email = f"probe{i}@example.com"
        if client.lookup(EnrichmentQuery(email=email)).outcome == outcome:
            return email
    raise AssertionError(outcome)


@pytest.mark.django_db
def test_it_fills_the_address_and_returns_the_recipient_to_pending() -> None:
    r = enrichable(email=_email_with("matched"))
    counts = campaign_enrich(campaign=r.campaign, actor=ACTOR)
    r.refresh_from_db()
    assert counts == {"Pending": 1}
    assert r.status == Status.PENDING
    assert r.address1
    assert r.city
    assert len(r.zip) == 5
    assert (r.claim_token, r.lease_until) == (None, None)
    assert r.json["enrichment"]["backend"] == "local"
    path = list(RecipientTransition.objects.filter(recipient=r).order_by("id").values_list("from_status", "to_status"))
    assert path == [("AddressEnrichable", "AddressEnriching"), ("AddressEnriching", "Pending")]
    campaign_qualify(campaign=r.campaign, actor=ACTOR)
    r.refresh_from_db()
    assert r.status == Status.PROOFING_STAGED


@pytest.mark.django_db
def test_no_match_is_skipped_enrichment_failed() -> None:
    r = enrichable(email="someone.nomatch@example.com")
    campaign_enrich(campaign=r.campaign, actor=ACTOR)
    r.refresh_from_db()
    assert (r.status, r.skip_reason) == (Status.SKIPPED, "EnrichmentFailed")
    assert r.json["enrichment"]["outcome"] == "no_match"


@pytest.mark.django_db
def test_nothing_to_look_up_is_skipped_no_address() -> None:
    r = enrichable(first_name="", last_name="", company="Acme", email="")
    campaign_enrich(campaign=r.campaign, actor=ACTOR)
    r.refresh_from_db()
    assert (r.status, r.skip_reason) == (Status.SKIPPED, "NoAddress")


class Scripted:
    name = "scripted"

    def __init__(self, *answers: EnrichmentResult | EnrichmentError) -> None:
        self.answers = list(answers)
        self.calls = 0

    def lookup(self, query: EnrichmentQuery) -> EnrichmentResult:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, EnrichmentError):
            raise answer
        return answer


@pytest.mark.django_db
def test_an_enriched_address_that_fails_validation_is_skipped_with_the_errors() -> None:
    from campaigns.enrichment.base import EnrichedAddress

    r = enrichable()
    bad = EnrichedAddress(address1="1 Main St", city="X", state="IL", zip="", country="US")
    campaign_enrich(campaign=r.campaign, actor=ACTOR, client=Scripted(EnrichmentResult(address=bad)))
    r.refresh_from_db()
    # Address validation failed (spec: International), not a missing address1.
    assert (r.status, r.skip_reason) == (Status.SKIPPED, "International")
    assert r.json["validation_errors"] == [{"field": "zip", "message": "zip is empty"}]


@pytest.mark.django_db
def test_a_transient_error_retries_later_and_gives_up_after_max_attempts() -> None:
    r = enrichable()
    for attempt in range(1, MAX_ATTEMPTS + 1):
        counts = campaign_enrich(campaign=r.campaign, actor=ACTOR, client=Scripted(EnrichmentError("HTTP 503")))
        r.refresh_from_db()
        assert r.attempt == attempt
        if attempt < MAX_ATTEMPTS:
            assert counts == {"retry_later": 1}
            assert r.status == Status.ADDRESS_ENRICHING
            # Not re-claimed before its retry time; then the lease is due.
            assert campaign_enrich(campaign=r.campaign, actor=ACTOR, client=Scripted()) == {}
            CampaignRecipient.objects.filter(pk=r.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert (r.status, r.skip_reason) == (Status.SKIPPED, "EnrichmentFailed")
    assert r.json["enrichment"]["error"] == "HTTP 503"


@pytest.mark.django_db
def test_a_fatal_error_stops_the_run_and_releases_the_rest() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    first, second = enrichable(campaign=campaign), enrichable(campaign=campaign)
    client = Scripted(EnrichmentError("HTTP 401", permanent=True), EnrichmentResult(outcome="no_match"))
    counts = campaign_enrich(campaign=campaign, actor=ACTOR, client=client)
    assert client.calls == 1
    assert counts == {"released": 2, "stopped": "HTTP 401"}
    for r in (first, second):
        r.refresh_from_db()
        assert r.status == Status.ADDRESS_ENRICHING
        assert r.claim_token is None
    assert campaign_enrich(campaign=campaign, actor=ACTOR, client=Scripted(*[EnrichmentResult(outcome="no_match")] * 2))
    assert campaign.recipients.filter(skip_reason="EnrichmentFailed").count() == 2


@pytest.mark.django_db
def test_a_batch_claims_at_most_batch_size_rows() -> None:
    campaign = CampaignFactory(address_enrichment=True)
    for _ in range(3):
        enrichable(campaign=campaign, email="a.nomatch@example.com")
    assert campaign_enrich(campaign=campaign, actor=ACTOR, batch_size=2) == {"Skipped:EnrichmentFailed": 2}
    assert campaign.recipients.filter(status=Status.ADDRESS_ENRICHABLE).count() == 1


# --- Faraday through a local stub of its API shape ------------------------------------------


class FaradayStub(BaseHTTPRequestHandler):
    requests: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FaradayStub.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if self.headers.get("Authorization") != "Bearer fdy-key":
            return self._send(401, {"error": {"code": "INVALID_AUTHORIZATION"}, "id": "a1b2"})
        if self.path != "/v1/targets/tgt-1/lookup":
            return self._send(404, {"error": {"code": "NOT_FOUND"}})
        email = body.get("email", "")
        if email.startswith("down"):
            return self._send(503, {"error": {"code": "INTERNAL_SERVER_ERROR"}})
        if email.startswith("nobody"):
            return self._send(200, {**body, "error": "Could not match an identity with the provided information"})
        if email.startswith("weak"):
            return self._send(200, {**body, "match_type": "email_only", "house_number_and_street": "1 A St"})
        return self._send(
            200,
            {
                **body,
                "house_number_and_street": "742 Evergreen Ter",
                "city": "Springfield",
                "state": "IL",
                "postcode": "62704",
                "match_type": "email_full_name",
                "identity_provider": "fig",
                "fdy_outcome_abc_propensity_percentile": 87,
            },
        )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def faraday_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FaradayStub)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    FaradayStub.requests = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def faraday(url: str, key: str = "fdy-key", target: str = "tgt-1") -> FaradayClient:
    return FaradayClient(api_key=key, base_url=url, target_id=target, timeout=5)


def test_faraday_sends_the_lookup_shape_and_reads_the_address(faraday_url: str) -> None:
    result = faraday(faraday_url).lookup(EnrichmentQuery(first_name="Homer", last_name="S", email="homer@example.com"))
    assert result.address is not None
    assert (result.address.address1, result.address.zip, result.match_type) == (
        "742 Evergreen Ter",
        "62704",
        "email_full_name",
    )
    sent = FaradayStub.requests[0]
    assert sent["path"] == "/v1/targets/tgt-1/lookup"
    assert sent["auth"] == "Bearer fdy-key"
    assert sent["body"] == {"person_first_name": "Homer", "person_last_name": "S", "email": "homer@example.com"}


def test_faraday_no_match_is_a_200_with_an_error_field(faraday_url: str) -> None:
    result = faraday(faraday_url).lookup(EnrichmentQuery(email="nobody@example.com"))
    assert (result.outcome, result.address) == ("no_match", None)
    assert result.detail.startswith("Could not match")


def test_faraday_low_confidence_matches_are_not_used(faraday_url: str) -> None:
    result = faraday(faraday_url).lookup(EnrichmentQuery(email="weak@example.com"))
    assert (result.outcome, result.address) == ("no_address", None)


def test_faraday_is_not_called_without_the_required_identifiers(faraday_url: str) -> None:
    result = faraday(faraday_url).lookup(EnrichmentQuery(first_name="Homer", last_name="S", phone=""))
    assert result.outcome == "no_address"
    assert FaradayStub.requests == []


def test_faraday_errors_are_transient_or_fatal(faraday_url: str) -> None:
    with pytest.raises(EnrichmentError) as transient:
        faraday(faraday_url).lookup(EnrichmentQuery(email="down@example.com"))
    assert transient.value.fatal is False
    with pytest.raises(EnrichmentError, match="INVALID_AUTHORIZATION") as fatal:
        faraday(faraday_url, key="wrong").lookup(EnrichmentQuery(email="a@example.com"))
    assert fatal.value.fatal is True
    with pytest.raises(EnrichmentError) as missing_target:
        faraday(faraday_url, target="nope").lookup(EnrichmentQuery(email="a@example.com"))
    assert missing_target.value.fatal is True


def test_faraday_unreachable_is_transient() -> None:
    with pytest.raises(EnrichmentError, match="Faraday is unreachable") as exc:
        faraday("http://127.0.0.1:9/v1").lookup(EnrichmentQuery(email="a@example.com"))
    assert exc.value.fatal is False


def test_an_enrichment_error_is_an_outbound_error_whose_fatal_flag_is_its_permanent_flag() -> None:
    fatal, transient = EnrichmentError("HTTP 401", permanent=True), EnrichmentError("HTTP 503")
    assert isinstance(fatal, OutboundError)
    assert (fatal.fatal, fatal.permanent, transient.fatal, transient.permanent) == (True, True, False, False)
    with pytest.raises(AttributeError):
        fatal.fatal = False  # one flag, set in one place: permanent=


def test_the_seam_raises_faradays_error_itself_with_no_translation_in_between() -> None:
    with pytest.raises(EnrichmentError, match="Faraday is misconfigured") as exc:
        faraday("").lookup(EnrichmentQuery(email="a@example.com"))
    assert exc.value.fatal is True
    assert exc.value.__cause__ is None
    assert exc.value.__context__ is None


@pytest.mark.django_db
def test_the_service_enriches_through_faraday_both_ways(faraday_url: str) -> None:
    campaign = CampaignFactory(address_enrichment=True)
    found = enrichable(campaign=campaign, email="homer@example.com")
    lost = enrichable(campaign=campaign, email="nobody@example.com")
    conf = {"backend": "faraday", "api_key": "fdy-key", "base_url": faraday_url, "target_id": "tgt-1"}
    with override_settings(ENRICHMENT=conf):
        counts = campaign_enrich(campaign=campaign, actor=ACTOR)
    assert counts == {"Pending": 1, "Skipped:EnrichmentFailed": 1}
    found.refresh_from_db()
    lost.refresh_from_db()
    assert (found.status, found.address1, found.zip) == (Status.PENDING, "742 Evergreen Ter", "62704")
    assert (lost.status, lost.skip_reason) == (Status.SKIPPED, "EnrichmentFailed")
