"""One submission key for every printer: accepted by each simulator, small ids and huge ones."""

from __future__ import annotations

import itertools

import pytest

from printers.base import Address, SubmitRequest
from printers.keys import MAX_ID, MAX_LENGTH, MIN_LENGTH, submission_key
from printers.registry import PRINTERS, get_printer
from printers.simulator import Simulator
from printers.testing import UK_ADDRESS, US_ADDRESS, make_request

# Each printer's own limits on the key and the reference (vendors.md §1.3, §2.2, §3.1; taylor.md).
LIMITS = {
    "lob": (1, 256),  # Idempotency-Key <= 256; metadata values <= 500
    "stannp": (10, 1024),  # X-Idempotency-Key
    "taylor": (10, 255),  # Idempotency-Key
    "intelliprint": (1, 1000),  # reference: free text
    "sandbox": (1, 1000),
}
# (address, size) each printer mails to.
HOMES: dict[str, tuple[Address, str]] = {
    "lob": (US_ADDRESS, "4x6"),
    "stannp": (UK_ADDRESS, "A6"),
    "intelliprint": (UK_ADDRESS, "A6"),
    "taylor": (US_ADDRESS, "4x6"),
    "sandbox": (US_ADDRESS, "4x6"),
}
IDS = {
    "small": {"org_id": 1, "recipient_id": 1, "gen": 0},
    "huge": {"org_id": MAX_ID, "recipient_id": MAX_ID, "gen": 2**31 - 1},
}


def request_for(kind: str, key: str, recipient_id: int) -> SubmitRequest:
    address, size = HOMES[kind]
    return make_request(key, idempotency_key=key, to=address, size=size, metadata={"recipient_id": str(recipient_id)})


def test_every_printer_is_checked():
    assert set(HOMES) == set(PRINTERS) == set(LIMITS)


@pytest.mark.parametrize("ids", sorted(IDS))
@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_each_printer_accepts_the_key_of_small_and_huge_ids(kind: str, ids: str, simulator: Simulator) -> None:
    key = submission_key(**IDS[ids])
    printer = get_printer(kind)
    submission = printer.submit(request_for(kind, key, IDS[ids]["recipient_id"]))
    assert submission.printer_id
    assert simulator.physical_pieces(kind, key) == 1
    found = printer.lookup(key)
    assert found is not None
    assert found.printer_id == submission.printer_id


@pytest.mark.parametrize("kind", sorted(LIMITS))
def test_the_key_length_fits_every_printer(kind: str) -> None:
    low, high = LIMITS[kind]
    assert low <= MIN_LENGTH
    assert high >= MAX_LENGTH
    assert MAX_LENGTH <= 100  # CampaignRecipient.idempotency_key and Mailpiece.reference columns


def test_the_shortest_and_longest_keys_are_the_documented_bounds() -> None:
    assert len(submission_key(**IDS["small"])) == MIN_LENGTH == 15
    assert len(submission_key(org_id=MAX_ID, recipient_id=MAX_ID, gen=MAX_ID)) == MAX_LENGTH == 62
    assert submission_key(org_id=7, recipient_id=4242, gen=1) == "pc:7:00004242:1"


def test_the_key_is_plain_ascii_safe_in_headers_tags_and_metadata() -> None:
    for ids in IDS.values():
        key = submission_key(**ids)
        assert key.isascii()
        assert key.isprintable()
        assert not set(key) & set(',"\\ /')


def test_the_key_is_unique_per_org_recipient_and_generation() -> None:
    values = [0, 1, 9, 10, 11, 99999999, 100000000, 123456789, MAX_ID]
    triples = list(itertools.product(values, values, [0, 1, 10]))
    keys = {submission_key(org_id=o, recipient_id=r, gen=g) for o, r, g in triples}
    assert len(keys) == len(triples)


@pytest.mark.parametrize(
    ("ids", "error"),
    [
        ({"org_id": -1, "recipient_id": 1, "gen": 0}, ValueError),
        ({"org_id": 1, "recipient_id": MAX_ID + 1, "gen": 0}, ValueError),
        ({"org_id": 1, "recipient_id": 1, "gen": True}, TypeError),
        ({"org_id": "1", "recipient_id": 1, "gen": 0}, TypeError),
    ],
)
def test_it_refuses_ids_that_could_break_uniqueness_or_length(ids, error) -> None:
    with pytest.raises(error):
        submission_key(**ids)


@pytest.mark.parametrize("kind", sorted(PRINTERS))
def test_a_lookup_reports_where_the_simulators_webhooks_left_the_piece(kind: str, simulator: Simulator) -> None:
    """``refresh_mailpieces`` asks the printer (``lookup``) about pieces whose
    webhooks never came: against the simulator, what the lookup says must be
    where the piece's webhooks left it, for every printer, or a refresh
    learns nothing (Taylor's and IntelliPrint's answered the status of the
    piece's creation for ever)."""
    key = submission_key(org_id=1, recipient_id=7, gen=0)
    printer = get_printer(kind)
    submission = printer.submit(request_for(kind, key, 7))
    steps = simulator.timeline(kind, submission.printer_id)
    simulator.build_webhooks("http://127.0.0.1:9/webhooks/", steps)  # advances the piece; nothing is sent
    found = printer.lookup(key)
    assert found is not None
    report = printer.lookup_report(found)
    assert report is not None
    last, first = (printer.convert_status(step.status) for step in (steps[-1], steps[0]))
    assert report.status == last != first
