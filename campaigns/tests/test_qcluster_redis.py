"""Many machines: two real ``qcluster`` processes on PostgreSQL + Redis mail
2,000 recipients to the printer simulator, and the simulator holds exactly
2,000 physical pieces (docs/deploy.md).

What runs is what production runs: ``python manage.py qcluster`` with
``config.settings`` (not the test settings, whose queue is synchronous), the
Redis broker, the Redis rate limiter (it follows the broker), the sandbox
printer client, the mailing stage and the runner.  The processes talk to the
test database (``DATABASE_URL``), so the data is committed
(``transactional_db``); they mail to a simulator served by this process.

How the doorbell is rung: the test process has the synchronous test queue
(``Q_CLUSTER["sync"]``, ORM broker) loaded already, and django-q2 reads its
configuration once at import.  So the ring runs in a short ``python -c`` with
the clusters' environment: the production ``campaign_ring`` enqueues through
django-q2 to the same Redis list the clusters pull from.

Both clusters must do part of the work.  One ring is one task, which one
worker runs until the campaign has nothing left, so the test rings
``RINGS`` times (one per worker slot of the two clusters), a little apart:
Redis hands each push to the pusher that has waited longest, so the tasks
alternate between the clusters, and the claims split the rows between the
tasks running at once.  Each cluster's log says what its tasks moved
("campaign N: M rows moved", from ``campaigns.tasks``): both must be > 0,
and together 2,000.

Redis: database 5 by default (``QCLUSTER_TEST_REDIS_URL`` overrides it), emptied
(FLUSHDB, that database only) before and after.  Skipped unless the database
is PostgreSQL and Redis answers PING; with ``QCLUSTER_TEST_REQUIRED=1`` (CI)
a Redis that does not answer fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import factory
import pytest
from django.conf import settings
from django.db import connection

from campaigns.models import Campaign, CampaignRecipient, ProofApproval, RecipientTransition
from campaigns.proofing.design import campaign_design
from campaigns.services import recipients_record_created
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory, OrganizationFactory
from common.fsm import Actor
from mailpieces.models import Mailpiece
from mailpieces.status import MailpieceStatus
from printers.keys import submission_key
from printers.sandbox.simulator import SandboxHandler
from printers.simulator import Simulator

pytestmark = [
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL: several machines cannot share one SQLite file (set DATABASE_URL=postgres://…)",
    ),
    pytest.mark.slow,
]

S = CampaignRecipient.Status
ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("QCLUSTER_TEST_REDIS_URL", "redis://127.0.0.1:6379/5")
RECIPIENTS = 2000
CLUSTERS = 2
WORKERS = 2  # per cluster
RINGS = CLUSTERS * WORKERS
# Requests per second at the sandbox: high enough to finish in seconds, and
# still a limit the two clusters share through Redis.
RATE_LIMIT = (400, 1)
START_TIMEOUT_S = 60
MAIL_TIMEOUT_S = 120
STOP_TIMEOUT_S = 30
MOVED = re.compile(r"campaign (\d+): (\d+) rows moved")


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def redis_db() -> Iterator[Any]:
    """The broker's Redis database, empty before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        reason = f"needs Redis at {REDIS_URL} as the task queue (it did not answer: {exc})"
        if os.environ.get("QCLUSTER_TEST_REQUIRED"):
            pytest.fail(reason)
        pytest.skip(reason)
    client.flushdb()
    try:
        yield client
    finally:
        client.flushdb()
        left = client.dbsize()
        client.close()
        assert left == 0, f"{left} keys appeared in {REDIS_URL} after the final flush: is a cluster still running?"


@pytest.fixture
def campaign(transactional_db: None) -> Campaign:
    """A billable org's approved sandbox campaign, its recipients proofed and
    staged for the printer (what the proofing stage leaves), committed."""
    org = OrganizationFactory()
    campaign = CampaignFactory(organization=org, printer="sandbox")
    version = campaign_design(campaign).version
    rows = CampaignRecipient.objects.bulk_create(
        CampaignRecipientFactory.build_batch(
            RECIPIENTS,
            campaign=campaign,
            status=S.SENDING_STAGED,
            proof_url=factory.Sequence(lambda n: f"proofs/qcluster/{n}-front.png"),
            proof_back_url=factory.Sequence(lambda n: f"proofs/qcluster/{n}-back.png"),
            proof_version=version,
        )
    )
    recipients_record_created(recipients=rows, actor=Actor("test:import"))
    ProofApproval.objects.create(campaign=campaign, design_version=version)
    return Campaign.objects.get(pk=campaign.pk)


class TimedSandboxHandler(SandboxHandler):
    """The sandbox, noting when each create request arrived (for the peak rate)."""

    arrivals: list[float]

    def handle(self, method: str, path: str, query: Any, headers: Mapping[str, str], body: bytes) -> Any:
        if method == "POST":
            self.arrivals.append(time.monotonic())
        return super().handle(method, path, query, headers, body)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    TimedSandboxHandler.arrivals = []
    simulator = Simulator(
        handlers={"sandbox": TimedSandboxHandler},
        secrets={"sandbox": str(settings.PRINTERS_CONF["sandbox"]["webhook_secret"])},
    ).start()
    try:
        yield simulator
    finally:
        simulator.stop()


# ---------------------------------------------------------------- processes
def cluster_env(sim: Simulator) -> dict[str, str]:
    """Production settings on the test database, the Redis broker and the simulator."""
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    url = f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ENV="development",
        DEBUG="false",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=url,
        Q_BROKER=REDIS_URL,
        Q_WORKERS=str(WORKERS),
        ENABLED_PRINTERS="sandbox",
        SANDBOX_BASE_URL=sim.url("sandbox"),
        PRINTER_RATE_LIMITS=json.dumps({"sandbox": list(RATE_LIMIT)}),
        PRINTER_TIMEOUT_S="10",
        BILLING_BACKEND="local",
        BILLING_PRICE_ID=str(settings.BILLING["price_id"]),
        SECRET_KEY=str(settings.SECRET_KEY),  # django-q2 signs task payloads with it
    )
    return env


def start_clusters(env: dict[str, str], logs: list[Path]) -> list[subprocess.Popen[bytes]]:
    procs = []
    for log in logs:
        with log.open("wb") as out:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "qcluster"],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: the fallback kill reaches its children
                )
            )
    return procs


def wait_running(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    """Until every cluster logged that it runs (its pusher then waits on Redis)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        assert_alive(procs, logs)
        if all("running." in log.read_text(errors="replace") for log in logs):
            return
        time.sleep(0.1)
    raise AssertionError(f"the clusters did not start within {START_TIMEOUT_S} s: {tails(logs)}")


def ring(env: dict[str, str], campaign_id: int, times: int) -> None:
    """``campaign_ring`` in a process with the clusters' settings (Redis broker)."""
    code = (
        "import time, django; django.setup(); from campaigns.pipeline.doorbell import campaign_ring\n"
        f"rung = 0\nfor _ in range({times}):\n    rung += campaign_ring({campaign_id}); time.sleep(0.2)\n"
        "print('rung', rung)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"rung {times}" in done.stdout, (done.stdout, done.stderr[-3000:])


def wait_all_sent(campaign: Campaign, procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> float:
    started = time.monotonic()
    while time.monotonic() - started < MAIL_TIMEOUT_S:
        assert_alive(procs, logs)
        counts = Counter(campaign.recipients.values_list("status", flat=True))
        if counts[S.SENT] == RECIPIENTS:
            return time.monotonic() - started
        assert counts[S.ERROR] == 0, (counts, list(campaign.recipients.filter(status=S.ERROR)[:3].values()))
        time.sleep(0.5)
    raise AssertionError(f"not all Sent after {MAIL_TIMEOUT_S} s: {dict(counts)}; {tails(logs)}")


def stop_clusters(procs: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM (the cluster finishes its running tasks and stops its
    children), then SIGKILL to the process group of any that did not end."""
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    for p in procs:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        with contextlib.suppress(ProcessLookupError):  # children a killed cluster left behind
            os.killpg(p.pid, signal.SIGKILL)


def assert_alive(procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    dead = [i for i, p in enumerate(procs) if p.poll() is not None]
    assert not dead, f"cluster {dead[0]} exited with {procs[dead[0]].returncode}: {tails(logs)}"


def tails(logs: list[Path]) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in logs)


def moved_by(log: Path, campaign_id: int) -> int:
    """Rows the cluster's tasks moved for the campaign, from its log."""
    return sum(int(n) for c, n in MOVED.findall(log.read_text(errors="replace")) if int(c) == campaign_id)


def peak(arrivals: list[float], period_s: float) -> int:
    """The most requests that arrived within any ``period_s`` window."""
    arrivals = sorted(arrivals)
    best, first = 0, 0
    for last, moment in enumerate(arrivals):
        while arrivals[first] <= moment - period_s:
            first += 1
        best = max(best, last - first + 1)
    return best


# ---------------------------------------------------------------- the test
def test_two_qclusters_on_redis_mail_2000_recipients_exactly_once(
    redis_db: Any, campaign: Campaign, sim: Simulator, tmp_path: Path
) -> None:
    env = cluster_env(sim)
    logs = [tmp_path / f"qcluster-{i}.log" for i in range(CLUSTERS)]
    procs = start_clusters(env, logs)
    try:
        wait_running(procs, logs)
        ring(env, campaign.pk, RINGS)
        took = wait_all_sent(campaign, procs, logs)
    finally:
        stop_clusters(procs)

    recipients = list(campaign.recipients.order_by("pk"))
    org = campaign.organization_id
    # Every recipient: Sent, its key the one saved before the first attempt,
    # exactly one physical piece under it at the printer.
    assert Counter(r.status for r in recipients) == {S.SENT: RECIPIENTS}
    assert all(r.idempotency_key == submission_key(org_id=org, recipient_id=r.pk, gen=0) for r in recipients)
    assert sim.physical_pieces("sandbox") == RECIPIENTS
    assert all(sim.physical_pieces("sandbox", r.idempotency_key) == 1 for r in recipients)
    # One Mailpiece per recipient, Submitted, carrying the printer's id.
    pieces = Mailpiece.objects.filter(recipient__campaign=campaign)
    assert Counter(pieces.values_list("recipient_id", flat=True)) == {r.pk: 1 for r in recipients}
    assert set(pieces.values_list("status", flat=True)) == {MailpieceStatus.SUBMITTED}
    assert set(pieces.values_list("printer_id", flat=True)) == {p.id for p in sim.pieces("sandbox")}
    # The history: one move to Sent per recipient.
    sent = RecipientTransition.objects.filter(recipient__campaign=campaign, to_status=S.SENT)
    assert Counter(sent.values_list("recipient_id", flat=True)) == {r.pk: 1 for r in recipients}
    # Both clusters did part of the work.
    moved = [moved_by(log, campaign.pk) for log in logs]
    assert sum(moved) == RECIPIENTS, (moved, tails(logs))
    assert all(n > 0 for n in moved), (moved, tails(logs))
    print(
        f"\n{RECIPIENTS} recipients mailed by {CLUSTERS} clusters in {took:.1f} s, rows moved per cluster {moved}; "
        f"peak {peak(TimedSandboxHandler.arrivals, RATE_LIMIT[1])} creates in {RATE_LIMIT[1]} s "
        f"(limit {RATE_LIMIT[0]}), {len(TimedSandboxHandler.arrivals)} creates in all"
    )
