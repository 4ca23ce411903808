"""The recipient machine against the specification (spec 000).

The seed's diagram is transcribed below as data, once.  The model's FSM table
must contain every seed edge, and anything beyond the seed must be one of the
documented additions (docs/state-machines.md), so code and spec cannot drift.
"""

from __future__ import annotations

from campaigns.enums import CampaignRecipientSkipReason, CampaignRecipientStatus, ErrorMessages
from campaigns.models import CampaignRecipient
from common.fsm import edges

# graph LR of spec 000, edge for edge.
SEED_EDGES = {
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

# Our additions, each explained in docs/state-machines.md.
ADDITIONS = {
    ("Pending", "Blacklisted"),  # org blocklist (the spec's Blacklisted state had no edge in)
    ("ProofingStaged", "Error"),  # proofing queue / billing preflight failures
    ("SendingStaged", "Error"),  # mailing queue / billing preflight failures
    ("Scheduled", "Error"),  # a scheduled submission fails definitively
    ("Proofing", "ProofingStaged"),  # proofing lease expired: stage again
    ("Error", "ProofingStaged"),  # ops: retry from proofing
    ("Error", "SendingStaged"),  # ops: retry sending, keeping the proof
    ("Skipped", "Pending"),  # ops: re-validate
    ("Blacklisted", "Pending"),  # ops: re-validate after the blocklist changed
    ("Pending", "Archived"),  # ops: exclude from campaign
    ("Skipped", "Archived"),
    ("Holdout", "Archived"),
    ("Error", "Archived"),
    ("Blacklisted", "Archived"),
    ("AddressEnrichable", "Archived"),
    ("Proofed", "Archived"),
    ("Scheduled", "Archived"),
}

SEED_STATES = {
    "Pending",
    "ProofingStaged",
    "Proofing",
    "Proofed",
    "SendingStaged",
    "Sending",
    "Sent",
    "Received",
    "Scheduled",
    "Holdout",
    "Skipped",
    "AddressEnrichable",
    "AddressEnriching",
    "Error",
    "Archived",
    "Blacklisted",
}


def test_every_seed_edge_exists_in_the_model():
    missing = SEED_EDGES - edges(CampaignRecipient)
    assert missing == set(), f"seed edges missing from CampaignRecipient: {sorted(missing)}"


def test_the_model_adds_only_documented_edges():
    extra = edges(CampaignRecipient) - SEED_EDGES
    assert extra == ADDITIONS


def test_the_seed_has_eighteen_edges():
    assert len(SEED_EDGES) == 18


def test_states_are_exactly_the_specs():
    assert {s.value for s in CampaignRecipientStatus} == SEED_STATES
    assert len(CampaignRecipientStatus) == 16


def test_every_edge_joins_declared_states():
    for source, target in edges(CampaignRecipient):
        assert source in SEED_STATES
        assert target in SEED_STATES


def test_received_is_never_left():
    assert [e for e in edges(CampaignRecipient) if e[0] == "Received"] == []


def test_skip_reasons_are_exactly_the_specs():
    assert [r.value for r in CampaignRecipientSkipReason] == [
        "NoAddress",
        "International",
        "CapExceeded",
        "EnrichmentFailed",
        "PrinterApprovalFailed",
    ]


def test_error_messages_match_the_spec_character_for_character():
    assert ErrorMessages.all() == {
        "BILLING_NOT_READY": "Org billing is not ready to send",
        "COULD_NOT_GENERATE_CREATIVE": "Could not generate creative for recipient",
        "FAILED_SUBMISSION_TO_MAILING_QUEUE": "Failed submission to Mailing Queue",
        "FAILED_SUBMISSION_TO_PRINTER": "Failed submission to Printer",
        "FAILED_SUBMISSION_TO_PROOFING_QUEUE": "Failed submission to Proofing Queue",
        "FAILED_TO_APPLY_DISCOUNT_CODE": "Failed to apply discount code",
        "FAILED_TO_MAKE_MAIL_PIECE": "Failed to make mail piece for this recipient",
        "FAILED_TO_MAKE_PROOF": "Failed to make proof for this recipient",
    }


def test_every_error_message_documents_its_meaning():
    # Docstrings of class attributes are not introspectable; the source keeps one
    # under each message.  Check the source instead.
    import inspect

    source = inspect.getsource(ErrorMessages)
    for name, value in ErrorMessages.all().items():
        after = source.split(f'{name} = "{value}"', 1)[1]
        assert after.lstrip().startswith('"""'), f"{name} has no docstring"
