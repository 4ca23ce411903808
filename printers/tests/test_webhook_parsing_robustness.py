"""parse_webhook of every printer on hostile input: only ValueError may escape, and every
time it returns is timezone-aware.  The webhook layer quarantines a ValueError; anything
else would be a 500 and a vendor retry loop (Stannp pauses a webhook after 5 failures)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailpieces.status import MailpieceStatus
from printers.base import Printer, PrinterEvent
from printers.registry import get_printer_class

KINDS = ("lob", "stannp", "intelliprint", "taylor", "sandbox")
CONTENT_TYPES = ("application/json", "application/x-www-form-urlencoded", "")

# A valid-looking body per printer: the fuzzer swaps fields for hostile values, so it
# reaches the code past the schema check (timestamps, ids, status conversion).
TEMPLATES: dict[str, dict[str, Any]] = {
    "lob": {
        "id": "evt_1",
        "object": "event",
        "date_created": "2026-05-01T12:00:00.000Z",
        "event_type": {"id": "postcard.delivered", "object": "event_type"},
        "reference_id": "psc_1",
        "body": {
            "id": "psc_1",
            "metadata": {"reference": "pc:1:2:0"},
            "tracking_events": [{"name": "Delivered", "time": "2026-05-01T11:00:00.000Z"}],
        },
    },
    "stannp": {
        "webhook_id": 1,
        "event": "mailpiece_status",
        "created": "2026-05-01 10:00:00",
        "retries": "0",
        "mailpieces": [{"id": 52000001, "status": "delivered", "tags": "pc:1:2:0"}],
    },
    "intelliprint": {
        "type": "letter.updated",
        "id": "ltr_1",
        "print_id": "print_1",
        "status": "returned",
        "reference": "pc:1:2:0",
        "shipped_date": 1_780_000_000,
        "returned": {"date": 1_780_100_000, "reason": "Gone away"},
    },
    "taylor": {
        "id": "tev_1",
        "type": "mailpiece.status",
        "mailpiece_id": "tay_1",
        "reference": "pc:1:2:0",
        "status": 12,
        "occurred_at": "2026-05-01T10:00:00Z",
    },
    "sandbox": {
        "id": "evt_1",
        "type": "piece.status_changed",
        "data": {"id": "sbx_1", "reference": "pc:1:2:0", "status": "Delivered", "occurred_at": "2026-05-01T10:00:00"},
    },
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["2026-05-01T10:00:00", "2026-05-01 10:00:00", "0000-00-00 00:00:00", "9", "1_2", "", " "]),
)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
)


@st.composite
def mutated(draw: st.DrawFn, kind: str) -> bytes:
    """The printer's template with some fields (top level or one level down) replaced or dropped."""
    body = json.loads(json.dumps(TEMPLATES[kind]))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        target = body
        nested = [k for k, v in body.items() if isinstance(v, dict)]
        if nested and draw(st.booleans()):
            target = body[draw(st.sampled_from(nested))]
        if not target:
            break
        key = draw(st.sampled_from(sorted(target)))
        if draw(st.booleans()):
            target[key] = draw(json_values)
        else:
            del target[key]
    return json.dumps(body).encode()


def bodies(kind: str) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda value: json.dumps(value).encode()),
        mutated(kind),
    )


def printer(kind: str) -> Printer:
    cls: Any = get_printer_class(kind)
    return cls({"webhook_secret": f"test-{kind}-secret"})  # parse_webhook needs no other configuration


def check_events(events: Any) -> None:
    assert isinstance(events, list)
    for event in events:
        assert isinstance(event, PrinterEvent)
        assert isinstance(event.status, MailpieceStatus)
        assert event.occurred_at is None or event.occurred_at.tzinfo is not None


@pytest.mark.parametrize("kind", KINDS)
def test_it_only_ever_raises_value_error_or_returns_events_on_any_body(kind: str) -> None:
    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(body=bodies(kind), content_type=st.sampled_from(CONTENT_TYPES))
    def run(body: bytes, content_type: str) -> None:
        try:
            events = printer(kind).parse_webhook(body, content_type)
        except ValueError:
            return
        check_events(events)

    run()


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "body",
    [b"[" * 100_000, b'{"a":' * 5_000 + b"1" + b"}" * 5_000],
    ids=["deep-array", "deep-object"],
)
def test_it_refuses_a_deeply_nested_body_with_a_value_error(kind: str, body: bytes) -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        printer(kind).parse_webhook(body)


def test_it_refuses_a_deeply_nested_stannp_form_body_with_a_value_error() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        printer("stannp").parse_webhook(b"a" + b"[x" * 3_000 + b"=1", "application/x-www-form-urlencoded")


@pytest.mark.parametrize("when", [10**18, 10**15])
@pytest.mark.parametrize("field", ["shipped_date", "returned"])
def test_it_refuses_an_intelliprint_epoch_out_of_range_with_a_value_error(when: int, field: str) -> None:
    body = dict(TEMPLATES["intelliprint"])
    if field == "returned":
        body["returned"] = {"date": when, "reason": "x"}
    else:
        body["status"], body["shipped_date"] = "shipping", when
    with pytest.raises(ValueError, match="out of range"):
        printer("intelliprint").parse_webhook(json.dumps(body).encode())


def test_it_reads_zone_less_lob_event_and_scan_times_as_utc() -> None:
    body = json.loads(json.dumps(TEMPLATES["lob"]))
    body["date_created"] = "2026-05-01T12:00:00"
    body["body"]["tracking_events"][0]["time"] = "2026-05-01T11:00:00"
    [event] = printer("lob").parse_webhook(json.dumps(body).encode())
    assert event.occurred_at == dt.datetime(2026, 5, 1, 11, tzinfo=dt.UTC)

    body["event_type"]["id"] = "postcard.created"  # no scan: the event's own time
    [event] = printer("lob").parse_webhook(json.dumps(body).encode())
    assert event.occurred_at == dt.datetime(2026, 5, 1, 12, tzinfo=dt.UTC)


def test_it_reads_a_zone_less_sandbox_time_as_utc() -> None:
    [event] = printer("sandbox").parse_webhook(json.dumps(TEMPLATES["sandbox"]).encode())
    assert event.occurred_at == dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC)
