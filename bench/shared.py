"""What the benchmarks share: recipients inserted in bulk in a given state,
and the per-recipient-task baseline's queue work: one django-q2 task per id,
enqueued through the configured broker (real queue rows, not sync mode),
then drained in this process the way a cluster
handles each task (dequeue, unsign, run, ``save_task``, acknowledge), minus
the cluster's inter-process hops and poll sleeps: a lower bound on the
per-task cost, so a ratio against it errs in the baseline's favour."""

from __future__ import annotations

import atexit
import os
import pydoc
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path


def django_setup(prefix: str, env: Mapping[str, str]) -> None:
    """Django for a benchmark, once per process: a SQLite file in a temporary
    folder (``BENCH_SQLITE_PATH`` names one; ``DATABASE_URL`` wins as usual),
    media beside it, the ORM broker, quiet logs, no DEBUG (it keeps every SQL
    string in memory), then ``env`` (the bench's own backends and printers),
    then migrate."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from django.conf import settings

    if not settings.configured:
        tmp = tempfile.mkdtemp(prefix=f"bench-{prefix}-")
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ["SQLITE_PATH"] = os.environ.get("BENCH_SQLITE_PATH") or str(Path(tmp) / "bench.sqlite3")
        os.environ.setdefault("LOG_LEVEL", "WARNING")
        os.environ.setdefault("DEBUG", "false")
        os.environ["Q_BROKER"] = "orm"
        os.environ["MEDIA_ROOT"] = str(Path(tmp) / "media")
        os.environ.update(env)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def run_one_task_each(task: str, ids: Sequence[int], name: str) -> tuple[float, dict[str, float]]:
    """Seconds from the first enqueue to the last acknowledgement, and the time
    per phase (enqueue, broker, run, save_task).  Raises when the queue runs
    dry early or keeps tasks at the end."""
    from django.utils import timezone
    from django_q.brokers import get_broker
    from django_q.monitor import save_task
    from django_q.signing import SignedPackage
    from django_q.tasks import async_task

    broker = get_broker()
    phases: defaultdict[str, float] = defaultdict(float)
    start = time.perf_counter()
    for pk in ids:
        async_task(task, pk, broker=broker)
    phases["enqueue"] = time.perf_counter() - start
    n, done, empty = len(ids), 0, 0
    while done < n:
        t0 = time.perf_counter()
        got = broker.dequeue()  # sleeps the poll interval when the queue is empty
        phases["broker"] += time.perf_counter() - t0
        if not got:
            empty += 1
            if empty > 20:
                raise AssertionError(f"{name}: the queue ran dry after {done} of {n} tasks")
            continue
        for ack_id, payload in got:
            t1 = time.perf_counter()
            package = SignedPackage.loads(payload)
            package["ack_id"] = ack_id
            func = package["func"] if callable(package["func"]) else pydoc.locate(package["func"])
            t2 = time.perf_counter()
            try:
                package["result"], package["success"] = func(*package["args"], **package["kwargs"]), True  # type: ignore[operator]
            except Exception as exc:
                package["result"], package["success"] = f"{type(exc).__name__}: {exc}", False
            package["stopped"] = timezone.now()
            t3 = time.perf_counter()
            save_task(package, broker)
            t4 = time.perf_counter()
            broker.acknowledge(ack_id)
            t5 = time.perf_counter()
            phases["broker"] += (t2 - t1) + (t5 - t4)
            phases["run"] += t3 - t2
            phases["save_task"] += t4 - t3
            done += 1
    elapsed = time.perf_counter() - start
    if broker.queue_size() or broker.lock_size():
        raise AssertionError(f"{name}: tasks left in the queue")
    return elapsed, dict(phases)


def insert_recipients(campaign: object, n: int, status: str, *, chunk: int = 5000) -> list[int]:
    """``n`` recipients of ``campaign`` straight into ``status`` (the import's
    bulk insert, not through the pipeline); their ids."""
    from django.db import transaction

    from campaigns.recipient_insert import NewRecipient, recipients_insert

    ids: list[int] = []
    pk = getattr(campaign, "pk", None)
    for start in range(0, n, chunk):
        rows = [
            NewRecipient(
                natural_key=f"c{pk}-{i}",
                data={
                    "first_name": f"Pat{i}",
                    "last_name": f"Doe{i % 977}",
                    "address1": f"{i} Main St",
                    "city": "Springfield",
                    "state": "IL",
                    "zip": f"{10000 + i % 89999:05d}",
                    "country": "US",
                    "email": f"pat{i}@example.com",
                },
                status=status,
                skip_reason="",
                json={},
            )
            for i in range(start, min(n, start + chunk))
        ]
        with transaction.atomic():
            recipients_insert(campaign=campaign, rows=rows)  # type: ignore[arg-type]
        ids.extend(r.pk for r in rows if r.pk is not None)
    return ids


def approved_campaign(org_name: str, **fields: object) -> object:
    """A campaign of a billable org (the local billing backend's fields), with
    an approval of its current design: ready for proofing and mailing."""
    from django.conf import settings

    from campaigns.models import Campaign, Organization, ProofApproval
    from campaigns.proofing.design import campaign_design

    org, _ = Organization.objects.get_or_create(
        name=org_name,
        defaults={
            "billing_customer_id": "cus_bench",
            "subscription_active": True,
            "billing_subscription_item_id": "si_bench",
            "billing_price_id": settings.BILLING["price_id"],
        },
    )
    campaign = Campaign.objects.create(organization=org, size="4x6", **fields)
    ProofApproval.objects.create(campaign=campaign, design_version=campaign_design(campaign).version)
    return campaign
