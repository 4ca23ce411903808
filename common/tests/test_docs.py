from __future__ import annotations

from pathlib import Path

from django.conf import settings

from campaigns.management.commands.mermaid_transitions import BEGIN, END, render


def test_state_machine_docs_match_the_code():
    doc = (Path(settings.BASE_DIR) / "docs" / "state-machines.md").read_text()
    block = doc.split(BEGIN, 1)[1].split(END, 1)[0]
    assert block.strip() == render().strip(), "docs/state-machines.md is stale: run `make graphs`"
