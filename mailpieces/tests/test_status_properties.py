"""Whatever order printers report in, a piece ends where its best news says."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from mailpieces.status import RANK, TERMINAL, MailpieceStatus, can_move

STATUSES = [s.value for s in MailpieceStatus]


def replay(start: str, reports: list[str]) -> tuple[str, list[str]]:
    current, path = start, [start]
    for reported in reports:
        if can_move(current, reported):
            current = reported
            path.append(current)
    return current, path


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), max_size=30))
def test_any_report_sequence_only_moves_forward(reports):
    _, path = replay("Submitted", reports)
    ranked = [RANK[s] for s in path if s in RANK]
    # Ranks along the applied path strictly increase, until a terminal
    # non-ranked state (Error, Test) ends the walk.
    assert ranked == sorted(set(ranked))
    for state in path[:-1]:
        assert state not in TERMINAL, f"left terminal {state} in {path}"
    assert "Unknown" not in path


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([s for s in STATUSES if s in RANK and s != "Submitted"]), min_size=1, max_size=20))
def test_progress_reports_in_any_order_end_at_the_highest(reports):
    final, _ = replay("Submitted", reports)
    assert final == max(reports, key=RANK.__getitem__)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(STATUSES), max_size=20))
def test_duplicates_change_nothing(reports):
    doubled = [r for r in reports for _ in range(2)]
    assert replay("Submitted", doubled)[0] == replay("Submitted", reports)[0]
