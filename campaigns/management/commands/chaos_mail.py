"""``manage.py chaos_mail``: the mailing stage under crashes and printer faults.

Why: the one property the mailing stage is judged by (no recipient mailed
twice) must hold when everything goes wrong at once, not only in the fault
tests that break one thing at a time.  This command stages recipients of five
approved campaigns, one per printer kind, and mails them with real worker
processes (``manage.py run_pipeline``) to a printer simulator served by this
process that fails about ``--fault-rate`` of all calls (429, 503, a 503 after
the piece was created, a timeout after the piece was created).  Meanwhile it
SIGKILLs a random worker at random moments while rows are in flight and starts
it again.  When nothing is in flight it stops the workers and checks, against
the simulator's own count of physical pieces:

- no key has more than one physical piece;
- every Sent recipient has exactly one physical piece, and its Mailpiece
  carries that piece's id;
- every physical piece belongs to a Sent recipient;
- every other recipient is in a state that says why (an Error with its
  message, or still waiting with the last failure);
- every recipient's history is one unbroken chain from its creation to its
  status.

It prints the counts and exits non-zero when an invariant fails
(docs/chaos.md).  The simulator fails calls by policy, not by queued faults:
``ChaosSimulator.take_fault`` draws one for each request.

Time is compressed in two ways, both documented in the output: the mailing
lease is the shortest the settings allow (``MAILING_LEASE_S``, with a short
printer timeout, so a killed worker's rows come back within seconds), and the
backoff of rows waiting after a failure is skipped (the clock "moves on")
unless ``--real-backoff`` is given.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient, Organization, ProofApproval, RecipientTransition
from campaigns.proofing.design import campaign_approval, campaign_design
from campaigns.services import recipients_record_created
from common.fsm import Actor
from mailpieces.models import Mailpiece, MailpieceTransition
from mailpieces.status import MailpieceStatus
from printers.keys import submission_key
from printers.simulator import Fault, Piece, Simulator

S = CampaignRecipient.Status
KINDS = ("sandbox", "lob", "stannp", "intelliprint", "taylor")
ORG_NAME = "Chaos run"
ACTOR = Actor("command:chaos_mail")
ROOT = Path(settings.BASE_DIR)
IN_FLIGHT = (S.PROOFED, S.SENDING_STAGED, S.SENDING, S.SCHEDULED)
# The worker's printer timeout: short, so a "timeout after create" costs a
# second and the mailing lease (sized from it) stays short too.
PRINTER_TIMEOUT_S = 1.0
HANG_S = PRINTER_TIMEOUT_S + 0.5
LEASE_S = 10  # MAILING_LEASE_S's floor
WORKER_BATCH = 25
CONCURRENCY = 8  # MAILING_CONCURRENCY: the default
# Generous limits: the run is about crashes, not about waiting for permits
# (the shared limiter is still taken for every call).
RATE_LIMITS = {kind: [200, 1] for kind in KINDS}
# An address each printer mails to (IntelliPrint is a UK printer).
ADDRESSES: dict[str, dict[str, str]] = {
    "intelliprint": {"city": "London", "state": "", "zip": "SW1A 1AA", "country": "GB"},
}
US_ADDRESS = {"city": "Springfield", "state": "IL", "zip": "62701", "country": "US"}


# ---------------------------------------------------------------- the printer simulator's fault policy
def _faults() -> list[tuple[str, Fault]]:
    """One of each fault a call may suffer, by name (a fresh Fault per draw)."""
    return [
        ("429 rate limited", Fault.status(429)),
        ("503 unavailable", Fault.status(503)),
        ("503 after the piece was created", Fault.status_after_create(503)),
        ("timeout after the piece was created", Fault.timeout_after_create(HANG_S)),
    ]


class ChaosSimulator(Simulator):
    """The simulator, failing each call with probability ``fault_rate``.

    The server asks ``take_fault`` once per request; a queued fault
    (``inject``) still wins, else one is drawn here.  Counts what it did."""

    def __init__(self, *, fault_rate: float, seed: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fault_rate = fault_rate
        self._rng = random.Random(seed)
        self._draw_lock = threading.Lock()
        self.calls: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.resets = 0
        # A killed worker resets its connections; socketserver would print a
        # traceback for each.  Counted instead (no public hook for it).
        self._server.handle_error = self._connection_error  # type: ignore[method-assign]

    def _connection_error(self, request: Any, client_address: Any) -> None:
        self.resets += 1

    def take_fault(self, vendor: str, method: str, path: str) -> Fault | None:
        queued = super().take_fault(vendor, method, path)
        with self._draw_lock:
            self.calls[vendor] += 1
            if queued is not None or self._rng.random() >= self.fault_rate:
                return queued
            name, fault = self._rng.choice(_faults())
            self.faults[name] += 1
        return fault


def _continue_stannp_numbers(sim: Simulator) -> None:
    """Stannp's simulator numbers its pieces from a fixed start, so a second
    run on one database would hand out ids that Mailpiece rows hold already
    (unique per printer): the worker's record fails, again at every retry.
    Real Stannp ids never repeat; continue past the highest one we hold."""
    held = Mailpiece.objects.filter(printer="stannp").values_list("printer_id", flat=True)
    numbers = [int(x) for x in held if x.isdigit()]
    handler = sim.handlers.get("stannp")
    if numbers and handler is not None and hasattr(handler, "_numbers"):
        handler._numbers = itertools.count(max(numbers) + 1)


# ---------------------------------------------------------------- set-up
def _organization() -> Organization:
    org, _ = Organization.objects.get_or_create(name=ORG_NAME)
    # Billable (the local billing backend reads these), whatever an earlier run left.
    org.billing_customer_id = org.billing_customer_id or "cus_chaos"
    org.subscription_active = True
    org.billing_subscription_item_id = org.billing_subscription_item_id or "si_chaos"
    org.billing_price_id = str(settings.BILLING["price_id"])
    org.save()
    return org


def _campaigns(org: Organization) -> dict[str, Campaign]:
    """One approved, unpaused campaign per printer kind, reused by name."""
    out = {}
    for kind in KINDS:
        campaign, _ = Campaign.objects.get_or_create(
            organization=org, name=f"Chaos run: {kind}", defaults={"printer": kind}
        )
        Campaign.objects.filter(pk=campaign.pk).update(printer=kind, paused=False, mail_date=None)
        campaign.refresh_from_db()
        version = campaign_design(campaign).version
        if campaign_approval(campaign, version=version) is None:
            ProofApproval.objects.create(campaign=campaign, design_version=version)
        out[kind] = campaign
    return out


def _stage(campaigns: dict[str, Campaign], n: int, tag: str) -> list[int]:
    """``n`` recipients spread over the campaigns, straight into SendingStaged
    with a proof of the approved design (what the proofing stage leaves)."""
    ids: list[int] = []
    kinds = list(campaigns)
    with transaction.atomic():
        for k, kind in enumerate(kinds):
            campaign = campaigns[kind]
            version = campaign_design(campaign).version
            address = ADDRESSES.get(kind, US_ADDRESS)
            rows = [
                CampaignRecipient(
                    campaign=campaign,
                    natural_key=f"chaos-{tag}-{i}",
                    first_name=f"Pat{i}",
                    last_name=f"Chaos{i % 97}",
                    address1=f"{100 + i} High Street",
                    email=f"pat{i}@example.com",
                    status=S.SENDING_STAGED,
                    proof_url=f"proofs/chaos/{tag}/{i}-front.png",
                    proof_back_url=f"proofs/chaos/{tag}/{i}-back.png",
                    proof_version=version,
                    **address,
                )
                for i in range(k, n, len(kinds))
            ]
            created = CampaignRecipient.objects.bulk_create(rows, batch_size=500)
            recipients_record_created(recipients=created, actor=ACTOR, reason="created by the chaos run")
            ids.extend(r.pk for r in created)
    return ids


# ---------------------------------------------------------------- the workers
def _database_url() -> str:
    """This process's database, for the workers (the test database in tests)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{Path(str(db['NAME'])).resolve()}"
    auth = str(db["USER"] or "") + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _worker_env(sim: Simulator) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_ENV="development",
        DEBUG="false",
        LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
        DATABASE_URL=_database_url(),
        Q_BROKER="orm",
        RATE_LIMIT_BACKEND="database",
        ENABLED_PRINTERS=",".join(KINDS),
        PRINTER_TIMEOUT_S=str(PRINTER_TIMEOUT_S),
        PRINTER_RATE_LIMITS=json.dumps(RATE_LIMITS),
        MAILING_LEASE_S=str(LEASE_S),
        MAILING_CONCURRENCY=str(CONCURRENCY),
        BILLING_BACKEND="local",
        BILLING_PRICE_ID=str(settings.BILLING["price_id"]),
        SECRET_KEY=str(settings.SECRET_KEY),
    )
    for kind in KINDS:
        env[f"{kind.upper()}_BASE_URL"] = sim.url(kind)
        if kind != "sandbox":
            env[f"{kind.upper()}_API_KEY"] = f"chaos_{kind}_key"
    return env


def _lease_s() -> int:
    """The workers' mailing lease: MAILING_LEASE_S, or the batch's worst case
    when longer (the rule of campaigns.mailing.service.campaign_mail, with the
    default concurrency of 8 the workers run with)."""
    per_call = PRINTER_TIMEOUT_S * 2
    return max(LEASE_S, int(-(-WORKER_BATCH // CONCURRENCY) * per_call * 2))


@dataclass
class Worker:
    slot: int
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0


class Workers:
    """``run_pipeline`` processes, each in its own process group."""

    def __init__(self, count: int, env: dict[str, str], campaign_ids: list[int], logs: Path) -> None:
        self.env = env
        self.args = [sys.executable, "manage.py", "run_pipeline", "--no-progress", "--interval", "0.5"]
        self.args += ["--batch-size", str(WORKER_BATCH)]
        for pk in campaign_ids:
            self.args += ["--campaign", str(pk)]
        self.slots = [Worker(i, logs / f"worker-{i}.log") for i in range(count)]
        self.unexpected_exits: list[str] = []

    def start(self, w: Worker) -> None:
        with w.log.open("ab") as out:
            out.write(f"\n===== start {w.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            out.flush()
            # Our own interpreter and manage.py, arguments built here: no outside input.
            w.proc = subprocess.Popen(  # noqa: S603
                self.args, cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        w.starts += 1

    def start_all(self) -> None:
        for w in self.slots:
            self.start(w)

    def kill(self, w: Worker) -> None:
        """SIGKILL the worker (its whole process group), then start it again."""
        if w.proc is not None and w.proc.poll() is None:
            os.killpg(w.proc.pid, signal.SIGKILL)
            w.proc.wait()
        with w.log.open("ab") as out:
            out.write(f"\n===== SIGKILL at {time.strftime('%H:%M:%S')}\n".encode())
        self.start(w)

    def keep_alive(self) -> None:
        """A worker that exited by itself is a finding: note it, start it again."""
        for w in self.slots:
            if w.proc is not None and w.proc.poll() is not None:
                self.unexpected_exits.append(f"worker {w.slot} exited with status {w.proc.returncode}")
                self.start(w)

    def stop(self) -> None:
        for w in self.slots:
            if w.proc is not None and w.proc.poll() is None:
                os.killpg(w.proc.pid, signal.SIGTERM)
        for w in self.slots:
            if w.proc is None:
                continue
            try:
                w.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(w.proc.pid, signal.SIGKILL)
                w.proc.wait()


# ---------------------------------------------------------------- the checks
@dataclass
class Findings:
    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def say(self, text: str = "") -> None:
        self.lines.append(text)

    def must_be_zero(self, label: str, n: int, examples: Iterable[str] = ()) -> None:
        shown = list(examples)[:5]
        self.say(f"{label}: {n}" + ("" if n == 0 else "   <-- MUST BE 0; e.g. " + "; ".join(shown)))
        if n:
            self.failures.append(f"{label}: {n}")


def _key(r: CampaignRecipient, org_id: int) -> str:
    return r.idempotency_key or submission_key(org_id=org_id, recipient_id=r.pk, gen=r.submission_gen)


def _piece_key(p: Piece) -> str:
    return p.key or p.reference


def check(sim: Simulator, campaigns: dict[str, Campaign], ids: list[int], out: Findings) -> None:
    """Everything the run must leave true, printed as counts."""
    recipients = list(CampaignRecipient.objects.filter(pk__in=ids).select_related("campaign").order_by("pk"))
    org_id = next(iter(campaigns.values())).organization_id
    by_key = {_key(r, org_id): r for r in recipients}
    pieces = Mailpiece.objects.filter(recipient_id__in=ids)
    pieces_of: defaultdict[int, list[Mailpiece]] = defaultdict(list)
    for mp in pieces:
        pieces_of[mp.recipient_id].append(mp)

    out.say("Recipients by status, per printer:")
    total: Counter[str] = Counter()
    physical_all: list[Piece] = []
    for kind, campaign in campaigns.items():
        counts = Counter(r.status for r in recipients if r.campaign_id == campaign.pk)
        total.update(counts)
        physical = [p for p in sim.pieces(kind) if p.physical]
        physical_all.extend(physical)
        out.say(
            f"  {kind:<13} {sum(counts.values()):>6} recipients  {dict(sorted(counts.items()))}  "
            f"physical pieces {len(physical)}"
        )
    out.say(f"  {'total':<13} {sum(total.values()):>6} recipients  {dict(sorted(total.items()))}")
    sent = [r for r in recipients if r.status == S.SENT]
    out.say(f"Physical pieces at the simulator: {len(physical_all)}")
    out.say(f"Sent recipients: {len(sent)}")
    mp_counts = Counter(mp.status for mp in pieces)
    out.say(f"Mailpieces: {sum(mp_counts.values())} {dict(sorted(mp_counts.items()))}")

    per_key = Counter(_piece_key(p) for p in physical_all)
    dups = {k: n for k, n in per_key.items() if n > 1}
    out.must_be_zero(
        "Duplicates (keys with more than one physical piece)", len(dups), (f"{k} x{n}" for k, n in dups.items())
    )
    # Keys name their recipient (pc:<org>:<recipient>:<generation>): a second
    # piece under a new key is a duplicate too.
    per_recipient = Counter(k.split(":")[2] for k in (_piece_key(p) for p in physical_all) if k.count(":") == 3)
    multi = {rid: n for rid, n in per_recipient.items() if n > 1}
    out.must_be_zero(
        "Recipients with more than one physical piece (any key)",
        len(multi),
        (f"recipient {int(rid)} x{n}" for rid, n in multi.items()),
    )
    bad_sent = [r for r in sent if per_key.get(_key(r, org_id), 0) != 1]
    out.must_be_zero(
        "Sent recipients with other than one physical piece",
        len(bad_sent),
        (f"recipient {r.pk} ({r.campaign.printer}) has {per_key.get(_key(r, org_id), 0)}" for r in bad_sent),
    )
    ids_at_printer = {_piece_key(p): p.id for p in physical_all}
    wrong_record = []
    for r in sent:
        live = [mp for mp in pieces_of[r.pk] if mp.status != MailpieceStatus.ERROR]
        expected = ids_at_printer.get(_key(r, org_id))
        if len(live) != 1 or (live[0].status != MailpieceStatus.TEST and live[0].printer_id != expected):
            wrong_record.append(
                f"recipient {r.pk}: mailpieces {[(m.status, m.printer_id) for m in live]}, printer {expected}"
            )
    out.must_be_zero("Sent recipients whose Mailpiece is not the printer's one piece", len(wrong_record), wrong_record)
    sent_keys = {_key(r, org_id) for r in sent}
    orphans = [p for p in physical_all if _piece_key(p) not in sent_keys]
    in_flight = [p for p in orphans if (r := by_key.get(_piece_key(p))) is not None and r.status in IN_FLIGHT]
    out.must_be_zero(
        "Physical pieces with no Sent recipient (recipient not in flight)",
        len(orphans) - len(in_flight),
        (
            f"{p.vendor} {p.id} key {_piece_key(p)} recipient {getattr(by_key.get(_piece_key(p)), 'status', '?')}"
            for p in orphans
            if p not in in_flight
        ),
    )
    out.say(f"Physical pieces of recipients still in flight (found by their next lookup): {len(in_flight)}")

    unexplained = [r for r in recipients if r.status == S.ERROR and not r.error_message]
    unexplained += [r for r in recipients if r.status not in (S.SENT, S.ERROR, *IN_FLIGHT)]
    out.must_be_zero(
        "Recipients in a state that does not explain itself",
        len(unexplained),
        (f"recipient {r.pk} {r.status} {r.error_message!r}" for r in unexplained),
    )
    errors = Counter((r.campaign.printer, r.error_message, r.error_detail) for r in recipients if r.status == S.ERROR)
    out.say(f"Error recipients: {sum(errors.values())}")
    for (kind, message, detail), n in sorted(errors.items()):
        out.say(f"  {n:>5} {kind}: {message} — {detail}")
    waiting = Counter((r.status, r.error_detail) for r in recipients if r.status in IN_FLIGHT)
    for (status, detail), n in sorted(waiting.items()):
        out.say(f"  {n:>5} still {status}: {detail or 'no failure yet'}")
    error_with_piece = [r for r in recipients if r.status == S.ERROR and per_key.get(_key(r, org_id))]
    out.must_be_zero(
        "Error recipients with a physical piece",
        len(error_with_piece),
        (f"recipient {r.pk} ({r.campaign.printer})" for r in error_with_piece),
    )
    _check_history(recipients, pieces, out)


def _check_history(recipients: list[CampaignRecipient], pieces: Any, out: Findings) -> None:
    """Every recipient's transitions chain from creation ("" → first status)
    to its current status, each row's from the previous row's to."""
    chains: defaultdict[int, list[tuple[str, str]]] = defaultdict(list)
    rows = RecipientTransition.objects.filter(recipient_id__in=[r.pk for r in recipients])
    edges: Counter[tuple[str, str]] = Counter()
    for rid, src, dst in rows.order_by("recipient_id", "pk").values_list("recipient_id", "from_status", "to_status"):
        chains[rid].append((src, dst))
        edges[(src, dst)] += 1
    broken = []
    for r in recipients:
        chain = chains.get(r.pk, [])
        ok = bool(chain) and chain[0][0] == "" and chain[-1][1] == r.status
        ok = ok and all(chain[i][0] == chain[i - 1][1] for i in range(1, len(chain)))
        if not ok:
            steps = " | ".join(f"{a or 'created'}→{b}" for a, b in chain)
            broken.append(f"recipient {r.pk} {r.status}: {steps}")
    swept = rows.filter(reason__startswith="lease expired").count()
    out.say(f"Rows the sweeper returned to the queue after a worker died (lease expired): {swept}")
    out.say(
        f"History rows: {sum(edges.values())} "
        + ", ".join(f"{a or 'created'}→{b} {n}" for (a, b), n in sorted(edges.items()))
    )
    out.must_be_zero("Recipients whose history is not one chain from creation to their status", len(broken), broken)
    logged = set(MailpieceTransition.objects.filter(mailpiece__in=pieces).values_list("mailpiece_id", flat=True))
    missing = [mp.pk for mp in pieces if mp.pk not in logged]
    out.must_be_zero("Mailpieces without a history row", len(missing), (f"mailpiece {pk}" for pk in missing))


def scan_logs(workers: Workers, out: Findings) -> None:
    """What the workers' logs say went wrong (they are kept for reading)."""
    locked, tracebacks, examples = 0, 0, []
    for w in workers.slots:
        text = w.log.read_text(errors="replace")
        locked += text.count("database is locked")
        tracebacks += text.count("Traceback (most recent call last)")
        examples += [line for line in text.splitlines() if "database is locked" in line][:3]
    out.say(f"Worker logs: {tracebacks} traceback(s), {locked} 'database is locked' line(s)")
    for line in examples[:3]:
        out.say(f"  {line[:300]}")


# ---------------------------------------------------------------- the command
class Command(BaseCommand):
    help = (
        "Mail recipients of five printers with worker processes killed at random and printers failing "
        "a share of calls, then check that no recipient was mailed twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--recipients", type=int, default=1000, help="Recipients in all (default 1000).")
        parser.add_argument("--workers", type=int, default=2, help="Worker processes (default 2).")
        parser.add_argument("--fault-rate", type=float, default=0.2, help="Share of printer calls that fail (0.2).")
        parser.add_argument("--kills", type=int, default=6, help="Workers killed during the run (default 6).")
        parser.add_argument("--seed", type=int, default=None, help="Seed for faults and kill moments.")
        parser.add_argument("--time-limit", type=float, default=600.0, help="Give up waiting after this many s.")
        parser.add_argument("--real-backoff", action="store_true", help="Wait out every retry backoff.")

    def handle(self, *args: Any, **options: Any) -> None:
        n, n_workers, kills = options["recipients"], options["workers"], options["kills"]
        rate = options["fault_rate"]
        if n < len(KINDS) or n_workers < 1 or kills < 0 or not 0 <= rate < 1:
            raise CommandError("Give at least 5 recipients, one worker, no negative kills and a fault rate below 1.")
        seed = options["seed"] if options["seed"] is not None else random.randrange(1 << 30)
        rng = random.Random(seed)
        org = _organization()
        campaigns = _campaigns(org)
        left = CampaignRecipient.objects.filter(campaign__in=list(campaigns.values()), status__in=IN_FLIGHT)
        if left.exists():
            raise CommandError(
                f"An earlier chaos run left {left.count()} recipient(s) in flight in the chaos campaigns; "
                "run on a fresh database."
            )
        tag = uuid.uuid4().hex[:8]
        ids = _stage(campaigns, n, tag)
        self.stdout.write(
            f"Chaos run {tag}, seed {seed}: {len(ids)} recipients over {', '.join(KINDS)}; {n_workers} workers, "
            f"{kills} kills, printer faults on {rate:.0%} of calls, database {connection.vendor}; "
            f"mailing lease {_lease_s()} s, printer timeout {PRINTER_TIMEOUT_S:g} s."
        )
        logs = Path(tempfile.mkdtemp(prefix=f"chaos-{tag}-"))
        sim = ChaosSimulator(fault_rate=rate, seed=seed, secrets={k: f"chaos-{k}-secret" for k in KINDS})
        _continue_stannp_numbers(sim)
        sim.start()
        workers = Workers(n_workers, _worker_env(sim), [c.pk for c in campaigns.values()], logs)
        started = time.monotonic()
        try:
            workers.start_all()
            done, killed, skipped = self._run(workers, ids, kills, rng, options)
        finally:
            workers.stop()
            sim.stop()
        took = time.monotonic() - started
        out = Findings()
        out.say(
            f"Finished in {took:.0f} s ({'nothing in flight' if done else 'TIME LIMIT reached with rows in flight'}); "
            f"{killed} worker(s) SIGKILLed and restarted; backoffs skipped for {skipped} row wait(s)."
        )
        out.say(
            f"Printer calls {sum(sim.calls.values())} {dict(sim.calls)}; faults {sum(sim.faults.values())} "
            f"{dict(sim.faults)}"
        )
        out.say(f"Connections reset at the simulator (killed workers): {sim.resets}")
        out.say(f"Worker logs: {logs}")
        for note in workers.unexpected_exits:
            out.say(f"  {note}")
        if workers.unexpected_exits:
            out.failures.append("a worker exited by itself")
        scan_logs(workers, out)
        check(sim, campaigns, ids, out)
        if not done:
            out.failures.append("rows still in flight at the time limit")
        self.stdout.write("\n".join(out.lines))
        if out.failures:
            raise CommandError("Chaos run FAILED: " + "; ".join(out.failures))
        self.stdout.write("Chaos run passed: every Sent recipient has exactly one physical piece, no duplicates.")

    def _run(
        self, workers: Workers, ids: list[int], kills: int, rng: random.Random, options: dict[str, Any]
    ) -> tuple[bool, int, int]:
        """Watch until nothing is in flight, killing a worker now and then.
        A kill waits for rows in Sending (a batch at the printer), then a
        random moment within that batch."""
        deadline = time.monotonic() + options["time_limit"]
        killed = skipped = 0
        next_kill = time.monotonic() + rng.uniform(0.5, 3.0)
        kill_at: float | None = None
        rows = CampaignRecipient.objects.filter(pk__in=ids)
        while time.monotonic() < deadline:
            workers.keep_alive()
            counts = Counter(rows.filter(status__in=IN_FLIGHT).values_list("status", flat=True))
            if not counts:
                return True, killed, skipped
            if not options["real_backoff"]:
                # The clock moves on: rows waiting out a backoff are due now.
                now = timezone.now()
                skipped += rows.filter(status=S.SENDING_STAGED, lease_until__gt=now).update(lease_until=now)
            now_m = time.monotonic()
            if killed < kills and now_m >= next_kill:
                if kill_at is None and counts[S.SENDING]:
                    kill_at = now_m + rng.uniform(0.0, 1.5)
                if kill_at is not None and now_m >= kill_at:
                    victim = rng.choice(workers.slots)
                    workers.kill(victim)
                    killed += 1
                    self.stdout.write(f"  SIGKILL worker {victim.slot} ({dict(counts)} in flight)")
                    kill_at, next_kill = None, now_m + rng.uniform(2.0, 8.0)
            time.sleep(0.2)
        return False, killed, skipped
