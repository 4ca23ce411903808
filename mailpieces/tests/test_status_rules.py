"""The mailpiece machine against the specification (spec 001) and the printer
realities: forward only, skips allowed, terminal states never left, Unknown
never overwriting a known status."""

from __future__ import annotations

import itertools

import pytest

from common.fsm import edges
from mailpieces.models import TRANSITION_FOR_STATUS, Mailpiece
from mailpieces.status import RANK, TERMINAL, MailpieceStatus, can_move, coerce

S = MailpieceStatus

# graph LR of spec 001: one chain, edge for edge.
SEED_CHAIN = [
    "Submitted",
    "Received",
    "Producing",
    "HandedOver",
    "InTransit",
    "LocalDelivery",
    "Delivered",
    "Returned",
    "Cancelled",
]
SEED_EDGES = list(itertools.pairwise(SEED_CHAIN))
# The spec's states, in its order: the chain's, then those off the diagram.
SEED_STATES = [*SEED_CHAIN, "Test", "Error", "Sent", "Processed", "Unknown"]
ALL = [s.value for s in S]


def test_states_are_exactly_the_specs():
    assert ALL == SEED_STATES


@pytest.mark.parametrize(("source", "target"), SEED_EDGES)
def test_every_seed_edge_is_allowed(source, target):
    assert can_move(source, target) is True
    assert (source, target) in edges(Mailpiece)


def test_the_fsm_table_is_exactly_the_rules():
    expected = {(a, b) for a, b in itertools.product(ALL, ALL) if can_move(a, b)}
    assert edges(Mailpiece) == expected


def test_the_progress_chain_allows_skips_forward():
    for i, source in enumerate(SEED_CHAIN):
        for target in SEED_CHAIN[i + 1 :]:
            assert can_move(source, target) is True, (source, target)


# Where the statuses the seed diagram leaves out sit: Sent (IntelliPrint
# "rendered") after Received and before Producing; Processed (Taylor 9/10)
# after Producing and before HandedOver (Taylor 11).  docs/state-machines.md
# says the same.
PROGRESS_ORDER = list(SEED_CHAIN)
PROGRESS_ORDER.insert(PROGRESS_ORDER.index("Received") + 1, "Sent")
PROGRESS_ORDER.insert(PROGRESS_ORDER.index("Producing") + 1, "Processed")


def test_sent_and_processed_sit_between_their_neighbours():
    assert sorted(RANK, key=RANK.__getitem__) == PROGRESS_ORDER
    for i, earlier in enumerate(PROGRESS_ORDER):
        for later in PROGRESS_ORDER[i + 1 :]:
            assert (can_move(earlier, later), can_move(later, earlier)) == (True, False), (earlier, later)


@pytest.mark.parametrize("status", ALL)
def test_a_repeated_status_is_never_a_move(status):
    assert can_move(status, status) is False


def test_nothing_returns_to_submitted():
    assert [s for s in ALL if can_move(s, "Submitted")] == []


def test_it_never_moves_backwards():
    for a, b in itertools.product(RANK, RANK):
        if RANK[b] < RANK[a]:
            assert can_move(a, b) is False, (a, b)


@pytest.mark.parametrize("terminal", sorted(TERMINAL))
def test_terminal_states_are_never_left(terminal):
    assert [t for t in ALL if can_move(terminal, t)] == []


@pytest.mark.parametrize("current", [s for s in ALL if s != "Unknown"])
def test_unknown_never_overwrites_a_known_status(current):
    assert can_move(current, "Unknown") is False


def test_any_reported_status_replaces_unknown():
    for target in ALL:
        if target not in ("Unknown", "Submitted"):
            assert can_move("Unknown", target) is True


def test_error_is_reachable_until_delivery_only():
    assert can_move("Submitted", "Error") is True
    assert can_move("LocalDelivery", "Error") is True
    assert can_move("Delivered", "Error") is False
    assert can_move("Returned", "Error") is False


def test_returned_and_cancelled_are_reachable_from_the_whole_chain():
    for source in ["Submitted", "Received", "Producing", "HandedOver", "InTransit", "LocalDelivery", "Delivered"]:
        assert can_move(source, "Returned") is True
        assert can_move(source, "Cancelled") is True


def test_test_pieces_come_only_from_submitted():
    assert [s for s in ALL if can_move(s, "Test")] == ["Submitted", "Unknown"]


def test_every_target_has_one_transition_method():
    targets = {b for _, b in edges(Mailpiece)}
    assert targets == set(TRANSITION_FOR_STATUS)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("Delivered", S.DELIVERED), ("delivered", S.UNKNOWN), ("", S.UNKNOWN), (None, S.UNKNOWN)],
)
def test_coerce_falls_back_to_unknown(value, expected):
    assert coerce(value) == expected


def test_django_fsm_graph_transitions_renders_both_machines():
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("graph_transitions", "campaigns.CampaignRecipient", "mailpieces.Mailpiece", stdout=out)
    dot = out.getvalue()
    assert "campaigns.campaign_recipient.status.AddressEnriching" in dot
    assert "mailpieces.mailpiece.status.LocalDelivery" in dot
