"""Benchmark: the admin's big changelists at a million recipients (issue 11).

``BENCH_ADMIN_N`` recipients (default 1,000,000) are generated with set-based
SQL (one ``INSERT … SELECT`` per table from a number series: a recursive CTE
on SQLite, ``generate_series`` on PostgreSQL), spread like a real account:
eight campaigns of four printers in contiguous id blocks (one import each),
every status (most rows Received or Sent), each skip reason with its details,
printer approval errors, each error message, names from ~1,500 surnames,
creation times over a year in id order; a mailpiece with a printer id for
every fifth mailed row (~120k at 1M), a history row per recipient, and
100k webhook deliveries with a report each.  PostgreSQL then gets ``VACUUM
ANALYZE`` (what autovacuum does after a load); SQLite gets nothing (Django
never runs ``ANALYZE``), so its plans are the ones a fresh install gets.

Each changelist URL (plain, each filter, each kind of search, and the history,
mailpiece, webhook and report lists) is requested through
``django.test.Client`` as a superuser, once to warm up and then ``RUNS``
times; the metric is the median in milliseconds against a fixed budget of
300 ms (``budget``: the ratio is p50 / 300 ms, goal <= 1).  The response must
be 200 and list the expected number of rows (a filter that silently matched
nothing would be fast for the wrong reason).

Standalone: ``python bench/bench_admin.py``; ``bench/run.py bench_admin``
runs it on both databases.  ``BENCH_ADMIN_RUNS`` changes the runs per URL.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

N = int(os.environ.get("BENCH_ADMIN_N", "1000000"))
RUNS = int(os.environ.get("BENCH_ADMIN_RUNS", "7"))
BUDGET_MS = 300.0
WEBHOOKS = max(1000, N // 10)

PRINTERS = ["sandbox", "lob", "intelliprint", "stannp", "lob", "sandbox"]
CAMPAIGNS = [("Spring welcome-back postcards for lapsed customers", "lob"), ("Summer sale", "stannp")] + [
    (f"Campaign {k}", printer) for k, printer in enumerate(PRINTERS)
]
# Names cut from fixed-width lists by SQL's substr(): 10 first names of 5
# characters, last names of a 4-character start (37) and a 5-character end (31).
FIRST = "Pat  Sam  Alex Kim  Jo   Lee  Max  Ana  Eva  Tom  "
LAST_A = (
    "Smi Joh Wil Bro Jon Mil Dav Gar Rod Mar Her Lop Gon Tho And Tay Moo Jac Whi Har San Cla Ram Lew Rob Wal You "
    "All Kin Wri Sco Tor Ngu Hil Flo Gre Ada "
)
LAST_B = (
    "th   son  ley  ton  ez   er   ard  man  ins  ell  ers  ick  ford wood by   ing  es   well more ham  ner  "
    "kins mond land ett  ow   an   o    ie   ock  en   "
)
# Status by (i * 37) % 100: most rows mailed, every status present.
STATUS_CASE = """CASE
  WHEN m < 40 THEN 'Received' WHEN m < 60 THEN 'Sent' WHEN m < 70 THEN 'Skipped' WHEN m < 75 THEN 'Error'
  WHEN m < 80 THEN 'Holdout' WHEN m < 82 THEN 'Blacklisted' WHEN m < 85 THEN 'Pending'
  WHEN m < 88 THEN 'ProofingStaged' WHEN m < 90 THEN 'Proofed' WHEN m < 92 THEN 'SendingStaged'
  WHEN m < 94 THEN 'Archived' WHEN m < 95 THEN 'Scheduled' WHEN m < 96 THEN 'AddressEnrichable'
  WHEN m < 97 THEN 'Proofing' WHEN m < 98 THEN 'Sending' ELSE 'AddressEnriching' END"""
SKIPS = ["NoAddress", "International", "CapExceeded", "EnrichmentFailed", "PrinterApprovalFailed"]


def _sql(vendor: str) -> dict[str, str]:
    """The few expressions the two databases spell differently."""
    if vendor == "postgresql":
        return {
            "series": "SELECT g AS i FROM generate_series(1::bigint, %(n)s) AS g",
            "zip": "lpad(((i * 7919) %% 99991)::text, 5, '0')",
            "ago": "now() - make_interval(secs => (%(n)s - i) * %(step)s)",
            "now": "now()",
            "json": "::jsonb",
            "text": "::text",
            "bytes": "convert_to('{}', 'UTF8')",
        }
    return {
        "series": ("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %(n)s) SELECT i FROM s"),
        "zip": "substr('0000' || ((i * 7919) %% 99991), -5, 5)",
        "ago": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now', '-' || ((%(n)s - i) * %(step)s) || ' seconds')",
        "now": "strftime('%%Y-%%m-%%d %%H:%%M:%%f', 'now')",
        "json": "",
        "text": "",
        "bytes": "CAST('{}' AS BLOB)",
    }


def _messages() -> list[str]:
    from campaigns.models import ErrorMessages

    return sorted(ErrorMessages.all().values())


def generate(n: int) -> dict[str, Any]:
    """The rows, by table; returns what the URLs need (ids, one value of each kind)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction

    from campaigns.models import Campaign, Organization

    x = _sql(connection.vendor)
    org = Organization.objects.create(name="Bench Org")
    campaigns = [Campaign.objects.create(organization=org, name=name, printer=printer) for name, printer in CAMPAIGNS]
    first_campaign = campaigns[0].pk
    k = len(campaigns)
    messages = _messages()
    skip_case = "CASE i %% 5 " + " ".join(f"WHEN {j} THEN '{r}'" for j, r in enumerate(SKIPS)) + " END"
    error_case = (
        f"CASE i %% {len(messages)} " + " ".join(f"WHEN {j} THEN '{m}'" for j, m in enumerate(messages)) + " END"
    )
    step = 31_536_000 // n or 1  # a year
    last_name = (
        f"trim(substr('{LAST_A}', CAST((i %% 37) * 4 + 1 AS INTEGER), 4))"
        f" || trim(substr('{LAST_B}', CAST(((i / 37) %% 31) * 5 + 1 AS INTEGER), 5))"
    )
    first_name = f"trim(substr('{FIRST}', CAST((i %% 10) * 5 + 1 AS INTEGER), 5))"
    recipients = f"""
        INSERT INTO campaigns_campaignrecipient (
            id, campaign_id, natural_key, external_id, first_name, last_name, company, address1, address2, city,
            state, zip, country, email, json, status, skip_reason, error_message, error_detail, attempt,
            submission_gen, idempotency_key, proof_url, proof_back_url, proof_version, discount_code, created, updated)
        SELECT i, {first_campaign} + ((i - 1) * {k}) / %(n)s, 'k' || i,
            CASE WHEN i %% 2 = 0 THEN 'EXT-' || i ELSE '' END,
            {first_name}, {last_name}, '', i || ' Main St', '', 'Springfield', 'IL', {x["zip"]}, 'US',
            lower({first_name}) || '.' || i || '@example.com',
            (CASE WHEN st = 'Skipped' AND i %% 5 = 4
                THEN '{{"approval_errors": [{{"loc": ["zip"], "msg": "zip not deliverable"}}]}}'
                ELSE '{{}}' END){x["json"]},
            st, CASE WHEN st = 'Skipped' THEN {skip_case} ELSE '' END,
            CASE WHEN st = 'Error' THEN {error_case} ELSE '' END, '', 0, 0, '', '', '', '', '', ts, ts
        FROM (SELECT i, {STATUS_CASE} AS st, {x["ago"]} AS ts
              FROM (SELECT i, (i * 37) %% 100 AS m FROM ({x["series"]}) s0) s1) s2
    """
    mailpieces = f"""
        INSERT INTO mailpieces_mailpiece (id, recipient_id, printer, printer_id, reference, status, last_vendor_status,
                                          status_at, created, updated)
        SELECT r.id, r.id, c.printer, 'psc_' || (r.id * 7919){x["text"]}, 'ref-' || r.id,
            CASE WHEN r.status = 'Sent' THEN 'InTransit' WHEN r.id %% 7 = 0 THEN 'Returned' ELSE 'Delivered' END,
            '', r.created, r.created, r.created
        FROM campaigns_campaignrecipient r JOIN campaigns_campaign c ON c.id = r.campaign_id
        WHERE r.status IN ('Sent', 'Received') AND r.id %% 5 = 0
    """
    history = """
        INSERT INTO campaigns_recipienttransition (
            recipient_id, from_status, to_status, source, reason, payload, created)
        SELECT id, 'Pending', status, CASE WHEN id %% 10 = 0 THEN 'admin' ELSE 'task:pipeline' END, '', '{}', created
        FROM campaigns_campaignrecipient
    """
    webhooks = f"""
        INSERT INTO mailpieces_inboundwebhook (id, printer, event_id, body, headers, content_type, received_at, state,
                                               events_count, attempts, error)
        SELECT i, 'lob', 'evt_' || i, {x["bytes"]}, '{{}}'{x["json"]}, 'application/json', {x["ago"]},
            CASE WHEN i %% 50 = 0 THEN 'quarantined' ELSE 'processed' END, 1, 0, ''
        FROM ({x["series"]}) s
    """
    events = """
        INSERT INTO mailpieces_mailpieceevent (inbox_id, printer, printer_id, event_key, vendor_status, status, outcome,
                                               note, reference, created, occurred_at, mailpiece_id)
        SELECT w.id, 'lob', COALESCE(m.printer_id, ''), w.event_id, 'delivered', 'Delivered',
            CASE WHEN m.id IS NULL THEN 'waiting' ELSE 'applied' END, '', '', w.received_at, w.received_at, m.id
        FROM mailpieces_inboundwebhook w LEFT JOIN mailpieces_mailpiece m ON m.id = w.id * 5
    """
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(recipients % {"n": n, "step": step})
        cursor.execute(mailpieces % {})
        cursor.execute(history % {})
        cursor.execute(webhooks % {"n": WEBHOOKS, "step": 31_536_000 // WEBHOOKS})
        cursor.execute(events % {})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in ("campaigns_campaignrecipient", "mailpieces_mailpiece", "campaigns_recipienttransition"):
                cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
            cursor.execute("VACUUM ANALYZE")
    elapsed = time.perf_counter() - started
    user = get_user_model().objects.create_superuser("bench", "bench@example.com", "x")
    return {
        "seconds": elapsed,
        "user": user,
        "first_campaign": first_campaign,
        "campaigns": campaigns,
        "message": messages[0],
    }


def _expected(model: Any, **filters: Any) -> int:
    return min(int(model.objects.filter(**filters).count()), 100)


def urls(data: dict[str, Any]) -> list[tuple[str, str, int | None]]:
    """(metric key, URL, rows expected on the page or None)."""
    from django.utils import timezone

    from campaigns.models import CampaignRecipient as R
    from campaigns.search import recipients_search
    from mailpieces.models import InboundWebhook as W
    from mailpieces.models import Mailpiece
    from mailpieces.models import MailpieceEvent as E

    base = "/admin/campaigns/campaignrecipient/"
    c0 = data["first_campaign"]
    # As DateFieldListFilter's links spell them: aware local midnights.
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    week = quote(str(today - timezone.timedelta(days=7)))
    tomorrow = quote(str(today + timezone.timedelta(days=1)))
    today = quote(str(today))
    piece = Mailpiece.objects.order_by("id").first()
    assert piece is not None
    ext = R.objects.exclude(external_id="").order_by("-id").values_list("external_id", flat=True).first()
    email = R.objects.order_by("id").values_list("email", flat=True)[N // 3]
    lob = [c.pk for c in data["campaigns"] if c.printer == "lob"]
    message = data["message"]

    def search(term: str) -> int:
        return min(recipients_search(R.objects.all(), term).count(), 100)

    full = min(N, 100)
    return [
        ("plain", base, full),
        ("page_50", f"{base}?p=50", full),
        ("status_error", f"{base}?status__exact=Error", _expected(R, status="Error")),
        ("status_received", f"{base}?status__exact=Received", full),
        ("campaign_oldest", f"{base}?campaign__id__exact={c0}", full),
        (
            "campaign_status",
            f"{base}?campaign__id__exact={c0}&status__exact=Skipped",
            _expected(R, campaign_id=c0, status="Skipped"),
        ),
        ("skip_reason", f"{base}?skip_reason__exact=International", _expected(R, skip_reason="International")),
        ("error_message", f"{base}?error_message__exact={quote(message)}", _expected(R, error_message=message)),
        ("problem_error", f"{base}?problem=error", full),
        ("problem_skipped", f"{base}?problem=skipped", full),
        ("approval_errors_yes", f"{base}?approval_errors=yes", full),
        ("approval_errors_no", f"{base}?approval_errors=no", full),
        ("printer_lob", f"{base}?campaign__printer__exact=lob", _expected(R, campaign_id__in=lob)),
        (
            "mailpiece_returned",
            f"{base}?mailpieces__status__exact=Returned",
            _expected(R, mailpieces__status="Returned"),
        ),
        ("created_today", f"{base}?created__gte={today}&created__lt={tomorrow}", None),
        ("created_7_days", f"{base}?created__gte={week}&created__lt={tomorrow}", None),
        ("search_name", f"{base}?q=smi", search("smi")),
        ("search_first_last", f"{base}?q=pat+smi", search("pat smi")),
        ("search_email", f"{base}?q={email}", 1),
        ("search_zip", f"{base}?q=1234", search("1234")),
        ("search_external_id", f"{base}?q={ext}", 1),
        ("search_printer_id", f"{base}?q={piece.printer_id}", 1),
        ("search_no_match", f"{base}?q=zzqx", 0),
        ("search_name_in_campaign", f"{base}?campaign__id__exact={c0}&q=joh", None),
        ("history", "/admin/campaigns/recipienttransition/", full),
        ("history_to_status", "/admin/campaigns/recipienttransition/?to_status__exact=Error", full),
        ("history_source", "/admin/campaigns/recipienttransition/?source_kind=admin", full),
        ("history_search", f"/admin/campaigns/recipienttransition/?q={piece.recipient_id}", 1),
        ("mailpieces", "/admin/mailpieces/mailpiece/", full),
        (
            "mailpieces_returned",
            "/admin/mailpieces/mailpiece/?status__exact=Returned",
            _expected(Mailpiece, status="Returned"),
        ),
        ("mailpieces_search", f"/admin/mailpieces/mailpiece/?q={piece.printer_id}", None),
        ("webhooks", "/admin/mailpieces/inboundwebhook/", full),
        (
            "webhooks_quarantined",
            "/admin/mailpieces/inboundwebhook/?state__exact=quarantined",
            _expected(W, state="quarantined"),
        ),
        ("reports", "/admin/mailpieces/mailpieceevent/", full),
        (
            "reports_waiting",
            "/admin/mailpieces/mailpieceevent/?outcome__exact=waiting",
            _expected(E, outcome="waiting"),
        ),
        ("reports_search", f"/admin/mailpieces/mailpieceevent/?q={piece.printer_id}", None),
    ]


def time_url(client: Any, url: str, expected: int | None) -> float:
    response = client.get(url)  # warm-up, and the checks
    if response.status_code != 200:
        raise AssertionError(f"{url}: HTTP {response.status_code}")
    if expected is not None:
        shown = len(response.context["cl"].result_list)
        if shown != expected:
            raise AssertionError(f"{url}: {shown} rows on the page, expected {expected}")
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def run() -> list[dict[str, Any]]:
    from shared import django_setup

    django_setup("admin", {"ALLOWED_HOSTS": "testserver,localhost"})
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()  # response.context for the row checks
    data = generate(N)
    client = Client()
    client.force_login(data["user"])
    metrics: list[dict[str, Any]] = [
        {
            "name": "admin_generate_rows",
            "value": round(data["seconds"], 1),
            "unit": "s",
            "baseline": None,
            "notes": f"{N} recipients + mailpieces, history, {WEBHOOKS} webhooks on {connection.vendor}",
        }
    ]
    for key, url, expected in urls(data):
        p50 = time_url(client, url, expected)
        metrics.append(
            {
                "name": f"admin_{key}_p50",
                "value": round(p50, 1),
                "unit": "ms",
                "baseline": BUDGET_MS,
                "budget": True,
                "goal": 1.0,
                "notes": url,
            }
        )
        print(f"  {key}: {p50:.0f} ms  {url}", flush=True)
    return metrics


if __name__ == "__main__":
    for metric in run():
        print(metric)
