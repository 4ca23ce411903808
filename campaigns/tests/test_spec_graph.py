"""The recipient machine against the specification (spec 000) and its docs.

The seed's edges, states, skip reasons and error messages are read from the
spec file itself (``../shared/spec/000_*.txt``; CI always has it beside the
checkout), and the edges the model adds to the seed from the table of
``docs/state-machines.md``: code, spec and docs cannot drift apart.  The
literal ``SEED_EDGES`` below is only the fallback for a checkout without the
spec, and is itself checked against the spec.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings

from campaigns.enums import CampaignRecipientSkipReason, CampaignRecipientStatus, ErrorMessages
from campaigns.models import CampaignRecipient
from common.fsm import edges, transition_table

SPEC_DIR = Path(settings.BASE_DIR).parent / "shared" / "spec"
DOC = Path(settings.BASE_DIR) / "docs" / "state-machines.md"
ADDITIONS_HEADING = "### Additions to the seed, and why"

# graph LR of spec 000, for a checkout without ../shared (checked against the spec when it is there).
SEED_EDGES = frozenset(
    {
        ("Pending", "ProofingStaged"),
        ("Pending", "AddressEnrichable"),
        ("Pending", "Skipped"),
        ("Pending", "Holdout"),
        ("ProofingStaged", "Proofing"),
        ("Proofing", "Proofed"),
        ("Proofing", "Error"),
        ("Proofed", "SendingStaged"),
        ("Proofed", "Scheduled"),
        ("SendingStaged", "Sending"),
        ("Sending", "Sent"),
        ("Sending", "SendingStaged"),
        ("Sending", "Error"),
        ("Sent", "Received"),
        ("Scheduled", "Sent"),
        ("AddressEnrichable", "AddressEnriching"),
        ("AddressEnriching", "Pending"),
        ("AddressEnriching", "Skipped"),
    }
)


def spec_text() -> str | None:
    files = sorted(SPEC_DIR.glob("000_*.txt"))
    return files[0].read_text(encoding="utf-8") if files else None


@pytest.fixture(scope="module")
def spec() -> str:
    text = spec_text()
    if text is None:
        pytest.skip(f"spec 000 not found under {SPEC_DIR}: CI has ../shared beside the checkout")
    return text


def parse_seed_edges(text: str) -> set[tuple[str, str]]:
    """The ``A --> B`` lines right after the spec's ``graph LR``."""
    lines = text.split("graph LR", 1)[1].strip().splitlines()
    found: set[tuple[str, str]] = set()
    for line in lines:
        m = re.fullmatch(r"\s*(\w+)\s*-->\s*(\w+)\s*", line)
        if not m:
            break
        found.add((m[1], m[2]))
    return found


def parse_states(text: str) -> list[str]:
    """The state headings ("Pending¶") between the diagram and the skip reasons."""
    body = text.split("graph LR", 1)[1].split("Skip Reasons¶", 1)[0]
    return re.findall(r"^(\w+)¶$", body, flags=re.M)


def parse_skip_reasons(text: str) -> list[str]:
    table = text.split("Skip Reasons¶", 1)[1]
    rows = re.findall(r"^\|\s*(\w+)\s*\|", table, flags=re.M)
    return [r for r in rows if r != "Reason"]


def parse_error_messages(text: str) -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+) = '([^']*)'$", text, flags=re.M))


def parse_documented_additions(doc: str) -> dict[tuple[str, str], set[str]]:
    """{edge: methods} from the additions table of docs/state-machines.md.

    An edge cell lists ``A → B`` pairs separated by commas; sources listed
    before an arrow share its target (``A, B → C`` is A → C and B → C)."""
    table = doc.split(ADDITIONS_HEADING, 1)[1].strip().split("\n\n", 1)[0]
    documented: dict[tuple[str, str], set[str]] = {}
    for row in table.splitlines()[2:]:  # the header and its --- line
        cell, methods_cell = (c.strip() for c in row.strip().strip("|").split("|")[:2])
        methods = set(re.findall(r"`(\w+)`", methods_cell))
        assert methods, f"no method named in the row {row!r}"
        waiting: list[str] = []
        for part in (p.strip() for p in cell.split(",")):
            if "→" not in part:
                waiting.append(part)
                continue
            source, target = (s.strip() for s in part.split("→"))
            for s in (*waiting, source):
                documented.setdefault((s, target), set()).update(methods)
            waiting = []
        assert not waiting, f"sources without a target in the row {row!r}"
    return documented


def seed_edges() -> set[tuple[str, str]]:
    text = spec_text()
    return parse_seed_edges(text) if text is not None else set(SEED_EDGES)


# --- the seed ---------------------------------------------------------------------


def test_the_fallback_literal_is_the_specs_diagram(spec):
    assert parse_seed_edges(spec) == SEED_EDGES


def test_every_seed_edge_exists_in_the_model():
    missing = seed_edges() - edges(CampaignRecipient)
    assert missing == set(), f"seed edges missing from CampaignRecipient: {sorted(missing)}"


def test_states_are_exactly_the_specs(spec):
    assert [s.value for s in CampaignRecipientStatus] == parse_states(spec)


def test_every_edge_joins_declared_states():
    states = {s.value for s in CampaignRecipientStatus}
    assert {s for edge in edges(CampaignRecipient) for s in edge} <= states


def test_received_is_never_left():
    assert [e for e in edges(CampaignRecipient) if e[0] == "Received"] == []


def test_skip_reasons_are_exactly_the_specs(spec):
    assert [r.value for r in CampaignRecipientSkipReason] == parse_skip_reasons(spec)


def test_error_messages_match_the_spec_character_for_character(spec):
    assert ErrorMessages.all() == parse_error_messages(spec)


def test_every_error_message_documents_its_meaning():
    # Docstrings of class attributes are not introspectable; the source keeps one
    # under each message.  Check the source instead.
    import inspect

    source = inspect.getsource(ErrorMessages)
    for name, value in ErrorMessages.all().items():
        after = source.split(f'{name} = "{value}"', 1)[1]
        assert after.lstrip().startswith('"""'), f"{name} has no docstring"


# --- the additions, against the documented table --------------------------------------


def test_the_model_adds_exactly_the_documented_edges():
    documented = parse_documented_additions(DOC.read_text(encoding="utf-8"))
    assert set(documented) & seed_edges() == set(), "a seed edge is listed as an addition"
    assert edges(CampaignRecipient) - seed_edges() == set(documented)


def test_each_documented_addition_is_made_by_the_method_its_row_names():
    table = transition_table(CampaignRecipient)
    for (source, target), methods in parse_documented_additions(DOC.read_text(encoding="utf-8")).items():
        assert any(table.get(m, {}).get(source) == target for m in methods), (source, target, methods)


def test_the_doc_parser_reads_shared_targets_and_pairs():
    doc = f"""{ADDITIONS_HEADING}

| Edge | Method | Why |
|---|---|---|
| A → B | `m` | x |
| C → D, E → D | `n`, `o` | y |
| F, G → H | `p` | z |

after
"""
    assert parse_documented_additions(doc) == {
        ("A", "B"): {"m"},
        ("C", "D"): {"n", "o"},
        ("E", "D"): {"n", "o"},
        ("F", "H"): {"p"},
        ("G", "H"): {"p"},
    }


def test_the_spec_parsers_read_a_small_spec():
    text = (
        "States¶\ngraph LR\nA --> B\nB --> C\nclassDef x;\nA¶\nFirst.\nB¶\nC¶\n"
        "Skip Reasons¶\n| Reason | M |\n|---|---|\n| R1 | m |\nK = 'v'\n"
    )
    assert parse_seed_edges(text) == {("A", "B"), ("B", "C")}
    assert parse_states(text) == ["A", "B", "C"]
    assert parse_skip_reasons(text) == ["R1"]
    assert parse_error_messages(text) == {"K": "v"}
