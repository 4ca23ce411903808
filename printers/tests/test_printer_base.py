"""What every printer client shares through ``printers/base.py`` and ``printers/http.py``:
the constructor, the size check and the reading of a 2xx answer."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest

from printers import http
from printers.base import Printer, PrinterError
from printers.keys import submission_key
from printers.lob.client import LobPrinter
from printers.sandbox.client import DEFAULT_BASE_URL, SandboxPrinter
from printers.stannp.client import StannpPrinter
from printers.taylor.client import TaylorPrinter
from printers.testing import make_request

CLIENTS: list[type[Printer]] = [LobPrinter, StannpPrinter, TaylorPrinter, SandboxPrinter]
KEY = submission_key(org_id=7, recipient_id=4242, gen=0)


def answer(monkeypatch: pytest.MonkeyPatch, response: httpx.Response) -> list[str]:
    """Every printer call answered with ``response``; returns the URLs called."""
    called: list[str] = []

    def fake_request(method: str, url: str, **kwargs: Any) -> httpx.Response:
        called.append(url)
        return response

    monkeypatch.setattr(http, "request", fake_request)
    return called


def client(cls: type[Printer]) -> Printer:
    return cls({"base_url": f"http://127.0.0.1:9/{cls.kind}/", "api_key": "k"})


def test_the_base_url_comes_from_the_settings_else_the_printers_default() -> None:
    assert client(LobPrinter).base_url == "http://127.0.0.1:9/lob"  # the trailing slash goes
    assert LobPrinter({}).base_url == "https://api.lob.com/v1"
    assert SandboxPrinter({}).base_url == DEFAULT_BASE_URL
    # No public default: a missing address is a configuration error, found by the seam and the system check.
    assert (StannpPrinter({}).base_url, TaylorPrinter({}).base_url) == ("", "")
    assert TaylorPrinter({"api_key": "k"}).conf == {"api_key": "k"}


@pytest.mark.parametrize("cls", [LobPrinter, StannpPrinter, TaylorPrinter])
def test_an_unknown_size_is_refused_for_good_naming_the_sizes_the_printer_makes(
    cls: type[Printer], monkeypatch: pytest.MonkeyPatch
) -> None:
    called = answer(monkeypatch, httpx.Response(500))
    with pytest.raises(PrinterError) as refused:
        client(cls).submit(make_request(KEY, size="A3"))
    assert refused.value.permanent is True
    assert all(size in refused.value.message for size in cls.sizes)
    assert "'A3'" in refused.value.message
    assert called == []


def test_json_body_reads_json_and_an_empty_body_as_an_empty_object() -> None:
    assert http.json_body(httpx.Response(200, json={"id": 1}), vendor="lob") == {"id": 1}
    assert http.json_body(httpx.Response(204), vendor="lob") == {}


def test_json_body_calls_a_non_json_answer_a_transient_error_naming_the_vendor() -> None:
    with pytest.raises(PrinterError, match="taylor answered HTTP 200 with a non-JSON body") as info:
        http.json_body(httpx.Response(200, text="<html>proxy</html>"), vendor="taylor")
    assert info.value.permanent is False


@pytest.mark.parametrize("cls", [LobPrinter, SandboxPrinter, TaylorPrinter])
def test_a_cancel_answered_with_an_empty_body_succeeds(cls: type[Printer], monkeypatch: pytest.MonkeyPatch) -> None:
    called = answer(monkeypatch, httpx.Response(204))
    client(cls).cancel("piece_1")
    assert len(called) == 1


@pytest.mark.parametrize("cls", CLIENTS)
@pytest.mark.parametrize("body", [b"", b"{}", b'{"success": true, "data": {}}'])
def test_a_create_answered_without_a_piece_id_is_retried_with_the_same_key_never_an_error(
    cls: type[Printer], body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The piece may exist: an Error would invite a resubmit under a new key and a second print.
    answer(monkeypatch, httpx.Response(200, content=body))
    request = make_request(KEY, idempotency_key=KEY, size="A6" if cls is StannpPrinter else "4x6")
    with pytest.raises(PrinterError) as info:
        client(cls).submit(request)
    assert info.value.permanent is False


def test_an_events_raw_is_the_models_dump_made_when_first_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """``PrinterEvent.raw`` reads like the vendor model's JSON dump, but the
    dump is made only when someone reads it (processing never does)."""
    from pydantic import BaseModel

    from printers.base import ModelDump

    class Item(BaseModel):
        id: str
        when: dt.datetime

    dumps: list[str] = []
    real = Item.model_dump

    def counting(self: Item, **kwargs: Any) -> dict[str, Any]:
        dumps.append(kwargs.get("mode", "python"))
        return real(self, **kwargs)

    monkeypatch.setattr(Item, "model_dump", counting)
    raw = ModelDump(Item(id="x", when=dt.datetime(2026, 1, 2, tzinfo=dt.UTC)))
    assert dumps == []
    assert raw["when"] == "2026-01-02T00:00:00Z"
    assert dict(raw) == {"id": "x", "when": "2026-01-02T00:00:00Z"}
    assert len(raw) == 2
    assert dumps == ["json"]  # once, then kept


def test_vendor_times_are_held_in_utc_as_the_same_instant():
    """aware(): a naive time is read as UTC; a zoned one (pydantic's own zone
    object, or an offset) becomes the same instant in ``dt.UTC``."""
    from pydantic import TypeAdapter

    from printers.base import aware

    parsed = TypeAdapter(dt.datetime).validate_python("2026-03-04T12:00:00.5Z")
    offset = dt.datetime(2026, 3, 4, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    naive = dt.datetime(2026, 3, 4, 12, 0)
    assert aware(parsed).tzinfo is dt.UTC
    assert aware(parsed) == parsed
    assert aware(offset).tzinfo is dt.UTC
    assert aware(offset) == offset
    assert aware(offset).hour == 12
    assert aware(naive) == dt.datetime(2026, 3, 4, 12, 0, tzinfo=dt.UTC)
    assert aware(None) is None


@pytest.mark.parametrize(
    ("body", "wrong"),
    [(b'{"id": "e1", "body": null}', "an object"), ({"id": "e1", "body": None}, "a valid dictionary")],
)
def test_a_body_that_does_not_fit_names_the_field_in_words_not_our_model(body: Any, wrong: str) -> None:
    """What ops read on a quarantined webhook: the vendor's field and what is
    wrong with it; not our model's class name nor pydantic's documentation link."""
    from pydantic import BaseModel

    from printers.base import load_webhook_body

    class VendorEvent(BaseModel):
        id: str
        body: dict[str, Any]
        date: str

    with pytest.raises(ValueError, match="not a Lob event") as caught:
        load_webhook_body(VendorEvent, body, vendor="lob", what="a Lob event")
    assert str(caught.value) == (
        f"lob webhook body is not a Lob event: body: input should be {wrong}; date: field required"
    )
