"""The chaos run at a small size: ``manage.py chaos_mail`` mails 100
recipients of five printers with two worker processes, three of them killed
mid-batch, the printers failing a fifth of all calls, and must find no
duplicate and no broken invariant (docs/chaos.md).

The command runs in this process (it serves the simulator and checks); its
workers are real ``run_pipeline`` processes on the test database, so the data
is committed (``transactional_db``).  On SQLite the test database is a file
(config/test_settings.py), which the workers open by its path."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.slow


def test_chaos_run_mails_each_recipient_at_most_once(transactional_db: None) -> None:
    out = io.StringIO()
    call_command("chaos_mail", recipients=100, workers=2, kills=3, seed=20261130, time_limit=90, stdout=out)
    text = out.getvalue()
    assert "Duplicates (keys with more than one physical piece): 0\n" in text, text
    assert "Recipients with more than one physical piece (any key): 0\n" in text, text
    assert "Sent recipients with other than one physical piece: 0\n" in text, text
    assert "Recipients whose history is not one chain from creation to their status: 0\n" in text, text
    # Up to 3 kills, each while a batch is at the printer; a run that finishes
    # first has fewer (seen: the workers done after the second kill).  None at
    # all would mean the run tested nothing.
    killed = re.search(r"(\d+) worker\(s\) SIGKILLed and restarted", text)
    assert killed is not None, text
    assert 1 <= int(killed.group(1)) <= 3, text
    assert text.count("SIGKILL worker") == int(killed.group(1)), text
    assert "Chaos run passed" in text, text
