"""A reused idempotency key at Lob (issue 7 item 4): Lob returns the postcard the key made,
whatever the body (vendors.md §1.3).  That is no failure when the postcard is ours, and
when it is another reference's, ours is looked up; never a permanent error."""

from __future__ import annotations

from unittest import mock

import httpx
import pytest

from printers.lob.client import LobPrinter
from printers.simulator import Simulator
from printers.testing import configured, make_request


@pytest.fixture
def lob(simulator: Simulator) -> LobPrinter:
    return configured(LobPrinter)


def test_the_simulator_answers_a_changed_body_with_the_postcard_the_key_made(simulator: Simulator) -> None:
    url, auth, key = simulator.url("lob") + "/postcards", ("test_lob_key", ""), {"Idempotency-Key": "k-1"}
    body = LobPrinter({}).payload(make_request())
    first = httpx.post(url, json=body, headers=key, auth=auth)
    changed = httpx.post(url, json={**body, "front": "https://proofs.example/other.png"}, headers=key, auth=auth)
    assert (first.status_code, changed.status_code) == (200, 200)
    assert changed.json()["id"] == first.json()["id"]
    assert simulator.physical_pieces("lob") == 1


def test_a_key_that_made_another_references_postcard_is_looked_up_not_taken(
    lob: LobPrinter, simulator: Simulator
) -> None:
    theirs = lob.submit(make_request())
    ours = lob.submit(make_request("pc:7:4243:0", idempotency_key="pc:7:4243:0:key"))
    # Our key replayed for our reference, after a mix-up sent it with another one first.
    again = lob.submit(make_request("pc:7:4243:0", idempotency_key="pc:7:4242:0:key"))
    assert again.printer_id == ours.printer_id != theirs.printer_id
    assert simulator.physical_pieces("lob") == 2


def test_a_refusal_saying_the_key_was_already_used_is_looked_up_too() -> None:
    # Lob documents no such answer; should one come, it is read as Stannp's and Taylor's are.
    refused = httpx.Response(
        422, json={"error": {"message": "Idempotency key already used with different parameters", "code": "invalid"}}
    )
    postcard = {"id": "psc_1", "metadata": {"reference": "pc:7:4242:0"}}
    listing = httpx.Response(200, json={"data": [postcard]})
    printer = LobPrinter({"api_key": "test_k", "base_url": "https://lob.example/v1"})
    with mock.patch("printers.http.request", autospec=True, side_effect=[refused, listing]) as sent:
        found = printer.submit(make_request())
    assert found.printer_id == "psc_1"
    assert [call.args[0] for call in sent.call_args_list] == ["POST", "GET"]
