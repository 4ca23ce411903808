"""The recipient changelist at scale (issue 11): search by shape on indexes,
filters that keep their rows, and a paginator that never counts the table.
The timings themselves are bench/bench_admin.py's."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import CampaignRecipient, ErrorMessages
from campaigns.search import recipients_search
from campaigns.tests.factories import CampaignFactory, CampaignRecipientFactory
from common.paginator import EstimatedCountPaginator
from mailpieces.models import Mailpiece
from mailpieces.tests.factories import MailpieceFactory

pytestmark = pytest.mark.django_db
S = CampaignRecipient.Status
URL = "admin:campaigns_campaignrecipient_changelist"


def shown(admin_client, **params) -> set[int]:
    response = admin_client.get(reverse(URL), params)
    assert response.status_code == 200, response.status_code
    return {r.pk for r in response.context["cl"].result_list}


def person(last_name="Doe", **fields):
    return CampaignRecipientFactory(last_name=last_name, **{"zip": "00000", **fields})


# --- search: each shape, and only its rows ----------------------------------------------


def test_a_word_finds_last_names_starting_with_it_in_any_case(admin_client):
    smith = person("Smith")
    smithson = person("SMITHSON")
    blacksmith = person("Blacksmith")
    first_only = person("Doe", first_name="Smitty")
    assert shown(admin_client, q="smi") == {smith.pk, smithson.pk}
    assert shown(admin_client, q="SMITHS") == {smithson.pk}
    assert blacksmith.pk not in shown(admin_client, q="smith")
    assert first_only.pk not in shown(admin_client, q="smi")


def test_two_words_find_first_and_last_name_starts(admin_client):
    pat = person("Smith", first_name="Pat")
    sam = person("Smith", first_name="Sam")
    van = person("van der Berg", first_name="Ann")
    assert shown(admin_client, q="pat smi") == {pat.pk}
    assert shown(admin_client, q="  PAT   Smith ") == {pat.pk}
    assert shown(admin_client, q="van der") == {van.pk}
    assert sam.pk not in shown(admin_client, q="pat smi")


def test_an_email_matches_whole_and_in_any_case(admin_client):
    ann = person(email="ann.lee@example.com")
    lee = person(email="lee@example.com")
    longer = person(email="ann.lee@example.com.au")
    assert shown(admin_client, q="Ann.Lee@EXAMPLE.com") == {ann.pk}
    assert shown(admin_client, q="lee@example.com") == {lee.pk}
    assert shown(admin_client, q="ann.lee@") == set()
    assert longer.pk not in shown(admin_client, q="ann.lee@example.com")


def test_digits_find_zip_starts_external_ids_and_printer_ids(admin_client):
    zip_ = person(zip="62701")
    other_zip = person(zip="12627")
    ext = person(external_id="A-9001")
    ext_longer = person(external_id="A-90012")
    piece = MailpieceFactory(printer_id="psc_5f2a91", recipient=person())
    MailpieceFactory(printer_id="psc_5f2a912", recipient=person())
    assert shown(admin_client, q="627") == {zip_.pk}
    assert other_zip.pk not in shown(admin_client, q="627")
    assert shown(admin_client, q="a-9001") == {ext.pk}
    assert ext_longer.pk not in shown(admin_client, q="A-9001")
    assert shown(admin_client, q="psc_5f2a91") == {piece.recipient_id}
    assert shown(admin_client, q="psc_5f2a9") == set()


def test_a_letters_only_external_id_is_found(admin_client):
    ext = person("Doe", external_id="abcd")
    assert shown(admin_client, q="ABCD") == {ext.pk}


@pytest.mark.parametrize(
    ("name", "term", "decoy"), [("O_Brien", "o_b", "Oxbrien"), ("Al%bert", "al%", "Alxbert"), ("A\\B", "a\\", "Ab")]
)
def test_percent_underscore_and_backslash_in_a_term_are_plain_characters(admin_client, name, term, decoy):
    hit = person(name)
    person(decoy)
    assert shown(admin_client, q=term) == {hit.pk}


def test_a_term_that_matches_nothing_shows_nothing(admin_client):
    person("Smith", email="pat@example.com", zip="62701", external_id="X1")
    assert shown(admin_client, q="zzqx") == set()
    assert shown(admin_client, q="99999") == set()


def test_search_keeps_the_campaign_filter(admin_client):
    here = person("Smith")
    person("Smith")  # another campaign
    assert shown(admin_client, q="smi", campaign__id__exact=here.campaign_id) == {here.pk}


def test_a_printer_id_search_with_many_pieces_adds_no_duplicates(admin_client):
    r = person()
    MailpieceFactory(recipient=r, printer_id="lob_1", status=Mailpiece.Status.CANCELLED)
    MailpieceFactory(recipient=r, printer="lob", printer_id="lob_1")
    response = admin_client.get(reverse(URL), {"q": "lob_1"})
    assert [x.pk for x in response.context["cl"].result_list] == [r.pk]


# --- filters keep their rows ---------------------------------------------------------------


def test_each_filter_shows_its_rows_only(admin_client):
    lob = CampaignFactory(printer="lob")
    sandbox = CampaignFactory(printer="sandbox")
    error = person(campaign=lob, status=S.ERROR, error_message=ErrorMessages.FAILED_SUBMISSION_TO_PRINTER)
    other_error = person(campaign=sandbox, status=S.ERROR, error_message=ErrorMessages.BILLING_NOT_READY)
    skipped = person(campaign=sandbox, status=S.SKIPPED, skip_reason="International")
    refused = person(
        campaign=sandbox,
        status=S.SKIPPED,
        skip_reason="PrinterApprovalFailed",
        json={"approval_errors": [{"msg": "zip must be 5 digits"}]},
    )
    sent = person(campaign=sandbox, status=S.SENT)
    MailpieceFactory(recipient=sent, status=Mailpiece.Status.RETURNED)
    everyone = {error.pk, other_error.pk, skipped.pk, refused.pk, sent.pk}

    assert shown(admin_client) == everyone
    assert shown(admin_client, status__exact="Error") == {error.pk, other_error.pk}
    assert shown(admin_client, campaign__id__exact=lob.pk) == {error.pk}
    assert shown(admin_client, campaign__id__exact=sandbox.pk, status__exact="Skipped") == {skipped.pk, refused.pk}
    assert shown(admin_client, skip_reason__exact="International") == {skipped.pk}
    assert shown(admin_client, error_message__exact=ErrorMessages.BILLING_NOT_READY) == {other_error.pk}
    assert shown(admin_client, problem="error") == {error.pk, other_error.pk}
    assert shown(admin_client, problem="skipped") == {skipped.pk, refused.pk}
    assert shown(admin_client, approval_errors="yes") == {refused.pk}
    assert shown(admin_client, approval_errors="no") == everyone - {refused.pk}
    assert shown(admin_client, campaign__printer__exact="lob") == {error.pk}
    assert shown(admin_client, campaign__printer__exact="stannp") == set()
    assert shown(admin_client, mailpieces__status__exact="Returned") == {sent.pk}
    assert shown(admin_client, mailpieces__status__exact="Delivered") == set()


def test_created_filter_shows_the_range(admin_client):
    old = person()
    new = person()
    CampaignRecipient.objects.filter(pk=old.pk).update(created=timezone.now() - dt.timedelta(days=40))
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    params = {"created__gte": str(today - dt.timedelta(days=7)), "created__lt": str(today + dt.timedelta(days=1))}
    assert shown(admin_client, **params) == {new.pk}


def test_filter_choices_are_not_read_from_the_table(admin_client):
    person(status=S.ERROR)
    with CaptureQueriesContext(connection) as ctx:
        admin_client.get(reverse(URL))
    assert not [q["sql"] for q in ctx.captured_queries if "DISTINCT" in q["sql"].upper()]


# --- the paginator ------------------------------------------------------------------------------


def _counts(ctx: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in ctx.captured_queries if "COUNT(" in q["sql"].upper()]


@pytest.mark.parametrize(
    "params", [{}, {"status__exact": "Error"}, {"q": "smi"}, {"mailpieces__status__exact": "Returned"}, {"p": "2"}]
)
def test_the_changelist_never_counts_the_whole_table(admin_client, params):
    for _ in range(3):
        person("Smith", status=S.ERROR)
    with CaptureQueriesContext(connection) as ctx:
        response = admin_client.get(reverse(URL), params)
    assert response.status_code in (200, 302)
    counts = _counts(ctx)
    assert counts, "the page shows how many rows there are"
    unbounded = [sql for sql in counts if "LIMIT" not in sql.upper()]
    assert unbounded == []


@pytest.mark.parametrize(
    "model",
    ["campaigns_recipienttransition", "mailpieces_mailpiece", "mailpieces_inboundwebhook", "mailpieces_mailpieceevent"],
)
def test_the_other_big_changelists_never_count_their_table(admin_client, model):
    MailpieceFactory()
    with CaptureQueriesContext(connection) as ctx:
        assert admin_client.get(reverse(f"admin:{model}_changelist")).status_code == 200
    assert [sql for sql in _counts(ctx) if "LIMIT" not in sql.upper()] == []


def test_the_paginator_counts_small_results_exactly_and_bounds_big_ones():
    campaign = CampaignFactory()
    for i in range(30):
        person(f"P{i}", campaign=campaign)
    qs = CampaignRecipient.objects.filter(campaign=campaign).order_by("-pk")

    class Small(EstimatedCountPaginator):
        pages_ahead = 1

    few = Small(qs[:0].model.objects.filter(pk__in=list(qs.values_list("pk", flat=True)[:3])).order_by("-pk"), 2)
    assert few.count == 3
    with CaptureQueriesContext(connection) as ctx:
        many = Small(qs, 2, page_number=1)
        assert many.count >= 5  # bound (1 + 1) * 2 + 1 counted; PostgreSQL may add its estimate
    assert all("LIMIT 5" in sql for sql in _counts(ctx))
    if connection.vendor == "sqlite":
        assert many.count == 5
    deep = Small(qs, 2, page_number=7)
    assert deep.count >= 17
    assert [r.pk for r in deep.page(7).object_list] == list(qs.values_list("pk", flat=True)[12:14])


def test_a_page_past_the_last_link_shows_no_error(admin_client):
    for _ in range(3):
        person()
    response = admin_client.get(reverse(URL), {"p": "9"})
    assert response.status_code in (200, 302)  # Django's last page, or its "?e=1"


# --- the plans: each lookup on its index ----------------------------------------------------------


def _plan(qs) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # A test table is tiny: forbid the sequential scan so the plan
            # shows whether an index *can* answer the lookup.
            cursor.execute("SET LOCAL enable_seqscan = off")
    return qs.explain()


@pytest.mark.parametrize(
    ("term", "index"),
    [
        ("smi", "recipient_name_prefix"),
        ("pat smi", "recipient_name_prefix"),
        ("ann@example.com", "recipient_email_prefix"),
        ("627", "recipient_zip_prefix"),
        ("627", "recipient_external_id_prefix"),
    ],
)
def test_each_search_shape_runs_on_its_index(term, index):
    person("Smith", email="ann@example.com", zip="62701")
    plan = _plan(recipients_search(CampaignRecipient.objects.order_by(), term))
    assert index in plan, plan


@pytest.mark.parametrize(
    ("params", "indexes"),
    [
        ({"status": "Error"}, ["recipient_status_id"]),
        ({"campaign_id": 1}, ["recipient_campaign_id"]),
        # Either serves it in order; the planner picks by size.
        ({"campaign_id": 1, "status": "Error"}, ["recipient_campaign_status_id", "recipient_status_id"]),
    ],
)
def test_each_filter_runs_on_an_index_in_the_list_order(params, indexes):
    person(status=S.ERROR)
    plan = _plan(CampaignRecipient.objects.filter(**params).order_by("-pk")[:100])
    assert any(index in plan for index in indexes), plan
    # No sort of the matching rows: the index gives the list's order.
    assert "TEMP B-TREE" not in plan, plan
    assert "Sort" not in plan, plan


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"skip_reason__exact": "International"}, "recipient_skip_reason"),
        ({"error_message__exact": ErrorMessages.BILLING_NOT_READY}, "recipient_error_message"),
        ({"approval_errors": "yes"}, "recipient_approval_errors"),
    ],
)
def test_the_partial_index_filters_name_their_index(admin_client, params, index):
    """The filters' querysets, as the changelist builds them, match the
    partial indexes' conditions (SQLite needs the condition spelled out)."""
    person(status=S.SKIPPED, skip_reason="International")
    response = admin_client.get(reverse(URL), params)
    qs = response.context["cl"].queryset
    assert index in _plan(qs), _plan(qs)


# --- what the list shows ------------------------------------------------------------------------


def test_long_campaign_names_are_cut_with_the_whole_name_in_the_tooltip(admin_client):
    long_name = "Spring welcome-back postcards for lapsed customers"
    person(campaign=CampaignFactory(name=long_name))
    content = admin_client.get(reverse(URL)).content.decode()
    assert f'title="{long_name}"' in content
    assert f">{long_name}<" not in content
