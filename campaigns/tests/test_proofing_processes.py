"""Two real worker processes proof one campaign at the same time (PostgreSQL).

Threads in one process share the GIL and Django's connection handling; real
processes are what production runs (two ``run_pipeline`` commands, or one
django-q2 task delivered twice).  They talk to the test database: its name is
passed in ``DATABASE_URL``, and the data is committed (``transactional_db``).

Start barrier: the test holds ``LOCK TABLE campaigns_campaign`` until both
processes wait on it (seen in ``pg_stat_activity``), then lets go.  The first
thing either does is read the campaign, so both start their batches together
instead of one finishing before the other has imported Django.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, transaction

from campaigns.models import Campaign, CampaignRecipient, LocalDiscountCode, ProofApproval, RecipientTransition
from campaigns.proofing.design import campaign_design
from campaigns.services import recipients_record_created
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: two processes on one SQLite file serialise, so nothing would run at the same time",
    ),
    pytest.mark.slow,
]

S = CampaignRecipient.Status
RECIPIENTS = 300
BATCH = 20
ROOT = Path(__file__).resolve().parents[2]
TIMEOUT_S = 120


@pytest.fixture
def campaign(transactional_db: None) -> Campaign:
    """An approved, billable campaign with codes, its recipients staged."""
    org = OrganizationFactory(billing_subscription_item_id="si_procs", billing_price_id=settings.BILLING["price_id"])
    campaign = CampaignFactory(organization=org, discount_enabled=True, discount_prefix="PROC", discount_value="10%")
    rows = CampaignRecipient.objects.bulk_create(
        CampaignRecipientFactory.build_batch(RECIPIENTS, campaign=campaign, status=S.PROOFING_STAGED)
    )
    recipients_record_created(recipients=rows, actor=Actor("test:import"))
    ProofApproval.objects.create(campaign=campaign, design_version=campaign_design(campaign).version)
    return Campaign.objects.get(pk=campaign.pk)


def worker_env() -> dict[str, str]:
    """The subprocesses' environment: the test database, the fast local backends."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="config.test_settings",
        PROOFING_BACKEND="fast",
        DISCOUNTS_BACKEND="local",
        BILLING_BACKEND="local",
        BILLING_PRICE_ID=str(settings.BILLING["price_id"]),
        SECRET_KEY=str(settings.SECRET_KEY),  # the same derived codes in every process
    )
    return env


def run_together(commands: list[list[str]]) -> list[subprocess.CompletedProcess[str]]:
    """Start every command behind the table lock, release them together, and
    wait for all of them."""
    procs: list[subprocess.Popen[str]] = []
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE campaigns_campaign IN ACCESS EXCLUSIVE MODE")
            procs = [
                subprocess.Popen(
                    cmd, cwd=ROOT, env=worker_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
                )
                for cmd in commands
            ]
            waiting_for(cursor, len(procs), procs)
        out = []
        for p in procs:
            stdout, stderr = p.communicate(timeout=TIMEOUT_S)
            out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def waiting_for(cursor, n: int, procs: list[subprocess.Popen[str]]) -> None:
    """Block until ``n`` other sessions of this database wait on a lock."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        # The activity view is read once per transaction unless cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock'"
        )
        if cursor.fetchone()[0] >= n:
            return
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise AssertionError(f"a worker ended before the start: {dead[0].communicate()}")
        time.sleep(0.05)
    raise AssertionError(f"the {n} workers never reached the start line")


def assert_proofed_exactly_once(campaign: Campaign) -> None:
    ids = set(campaign.recipients.values_list("pk", flat=True))
    assert len(ids) == RECIPIENTS
    # Every recipient got past proofing; the runner goes on to the mailing
    # stage, which here has no printer to reach, so its rows wait in SendingStaged.
    statuses = Counter(campaign.recipients.values_list("status", flat=True))
    assert sum(statuses.values()) == RECIPIENTS
    assert set(statuses) <= {S.PROOFED, S.SENDING_STAGED}
    history = RecipientTransition.objects.filter(recipient__campaign=campaign)
    proofed = Counter(history.filter(to_status=S.PROOFED).values_list("recipient_id", flat=True))
    claimed = Counter(
        history.filter(from_status=S.PROOFING_STAGED, to_status=S.PROOFING).values_list("recipient_id", flat=True)
    )
    # Exactly one claim (no recipient held by both) and one proof per recipient.
    assert proofed == dict.fromkeys(ids, 1)
    assert claimed == dict.fromkeys(ids, 1)
    codes = Counter(LocalDiscountCode.objects.filter(campaign=campaign).values_list("recipient_id", flat=True))
    assert codes == dict.fromkeys(ids, 1)
    stored = dict(campaign.recipients.values_list("pk", "discount_code"))
    assert stored == dict(LocalDiscountCode.objects.filter(campaign=campaign).values_list("recipient_id", "code"))


def test_two_run_pipeline_commands_proof_one_campaign_together(campaign: Campaign) -> None:
    command = [
        sys.executable,
        "manage.py",
        "run_pipeline",
        "--once",
        "--campaign",
        str(campaign.pk),
        "--no-progress",
        "--batch-size",
        str(BATCH),
    ]
    results = run_together([command, command])

    for r in results:
        assert r.returncode == 0, r.stderr
    assert_proofed_exactly_once(campaign)
    # Each printed "“Campaign N”: proofing M." — both did part of the work.
    moved = [int(m.group(1)) if (m := re.search(r"proofing (\d+)", r.stdout)) else 0 for r in results]
    assert sum(moved) == RECIPIENTS, [r.stdout for r in results]
    assert all(n > 0 for n in moved), [(r.stdout, r.stderr[-3000:]) for r in results]


def test_one_task_delivered_twice_to_two_processes(campaign: Campaign) -> None:
    """django-q2 delivers the campaign's task twice, to two workers at once."""
    # The task runs every stage; each process prints how many it proofed.  The
    # mailing stage is left out: it has no printer to reach here, and its
    # failed calls only shift the timing of who proofs what.
    code = (
        "import django; django.setup()\n"
        "from campaigns import tasks\n"
        "from campaigns.pipeline import runner\n"
        "runner.STAGES[:] = [s for s in runner.STAGES if s.name != 'mailing']\n"
        "real, seen = tasks.campaign_advance, {}\n"
        "def spy(*args, **kwargs):\n"
        "    report = real(*args, **kwargs)\n"
        "    seen['proofed'] = report.moved.get('proofing', {}).get('Proofed', 0)\n"
        "    return report\n"
        "tasks.campaign_advance = spy\n"
        f"tasks.campaign_run_task({campaign.pk})\n"
        "print('moved', seen['proofed'])\n"
    )
    results = run_together([[sys.executable, "-c", code], [sys.executable, "-c", code]])

    for r in results:
        assert r.returncode == 0, r.stderr
    assert_proofed_exactly_once(campaign)
    moved = [int(m.group(1)) if (m := re.search(r"moved (\d+)", r.stdout)) else 0 for r in results]
    assert sum(moved) == RECIPIENTS, [r.stdout for r in results]
    # No "both did work" here: the task takes batches of 100, so with the fast
    # renderer one process may take all three before the other claims; what
    # matters is that nothing was done twice (above).  The run_pipeline test
    # (batches of 20) shows the two interleaving.
