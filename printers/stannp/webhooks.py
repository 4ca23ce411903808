"""Stannp webhook bodies: an envelope whose array is named by its event, read item by item.

A delivery carries up to 50 items (vendors.md §2.3).  One odd item (no id, a float
id, a null status) must not cost the others: good items become events, and each odd
one becomes a *problem event* (status Unknown, so never applied; ``problem`` says
what is wrong, ``raw`` holds the item) that the inbox records like any unmapped
status, under a stable ``problem:…`` event id so Stannp's retries dedupe.  What
cannot be read as a whole (not JSON, no event, no array where the event puts one,
an event nobody knows) raises ``ValueError``: the webhook layer quarantines the
delivery with that message.  Nothing is dropped without a trace.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict

from mailpieces.status import MailpieceStatus
from printers.base import PrinterEvent, aware, load_webhook_body

# Where each event puts its items; "test_url" (the validation call) carries none.
ARRAY_KEYS = {"mailpiece_status": "mailpieces", "campaign_status": "campaigns", "recipient_events": "events"}
VALIDATION_EVENT = "test_url"
PROBLEM_PREFIX = "problem:"  # event ids of problem events, so they never collide with "<id>:<status>"


class StannpEnvelope(BaseModel):
    model_config = ConfigDict(extra="allow")

    webhook_id: int | str | None = None
    event: str
    created: str | None = None
    retries: int | str | None = None  # "0" or 0


def parse_created(value: str | None) -> dt.datetime | None:
    """Stannp's zone-less "YYYY-MM-DD HH:MM:SS" as UTC; None for blanks and "0000-00-00 …"."""
    if not value:
        return None
    try:
        return aware(dt.datetime.fromisoformat(value.strip()))
    except ValueError:
        return None


def form_to_nested(body: str) -> dict[str, Any]:
    """``a[0][b]=x`` form fields as ``{"a": [{"b": "x"}]}`` (Stannp's form content type)."""
    root: dict[str, Any] = {}
    for key, value in parse_qsl(body, keep_blank_values=True):
        parts = key.replace("]", "").split("[")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"form field {key!r} clashes with a plain field")
        node[parts[-1]] = value
    nested = _listify(root)
    if not isinstance(nested, dict):
        raise ValueError("form body has no named fields")
    return nested


def _listify(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    items = {key: _listify(item) for key, item in value.items()}
    # ASCII only: "²".isdigit() is True, but int("²") fails.
    if items and all(key.isascii() and key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def decode_body(raw: bytes, content_type: str) -> Any:
    """The body as JSON data, from JSON or from Stannp's form encoding."""
    try:
        text = raw.decode("utf-8")
        return form_to_nested(text) if "form-urlencoded" in content_type.lower() else json.loads(text)
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError included
        raise ValueError(f"stannp webhook body is not JSON or form data: {exc}") from exc
    except RecursionError:  # "[[[[…" or "a[x[x[x…" thousands deep
        raise ValueError("stannp webhook body is nested too deeply to be a Stannp envelope") from None


def mailpiece_items(body: Any) -> tuple[StannpEnvelope, list[Any]]:
    """The envelope and its raw mailpiece items (``[]`` for events about anything else).

    Raises ``ValueError`` for an envelope whose items are not where its event puts them."""
    envelope = load_webhook_body(StannpEnvelope, body, vendor="stannp", what="a Stannp envelope")
    if envelope.event == VALIDATION_EVENT:
        return envelope, []
    key = ARRAY_KEYS.get(envelope.event)
    if key is None:
        raise ValueError(f"stannp event {envelope.event[:80]!r} is not one this integration reads")
    items = body.get(key)
    if not isinstance(items, list):
        found = ", ".join(sorted(str(k)[:40] for k in body)[:20])
        raise ValueError(f"stannp {envelope.event} envelope has no '{key}' list (its fields: {found})")
    return envelope, items if key == "mailpieces" else []


def _text(value: Any) -> str | None:
    """Ids and statuses arrive as "123" or 123: as stripped text, None for anything else."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def item_problem(item: Any) -> str:
    """What makes one mailpiece item unreadable; "" when it reads."""
    if not isinstance(item, dict):
        return "the item is not an object"
    if item.get("id") is None:
        return "the item has no id"
    piece_id = _text(item["id"])
    if piece_id is None:
        return f"the item's id is not a string or an integer: {str(item['id'])[:40]}"
    if not piece_id:
        return "the item's id is empty"
    status = _text(item.get("status"))
    if status is None:
        return "the item has no status" if item.get("status") is None else "the item's status is not text"
    return "" if status else "the item's status is empty"


def item_events(
    items: list[Any], *, created: str | None, convert: Callable[[str], MailpieceStatus]
) -> list[PrinterEvent]:
    """One event per item, in order: a status event when the item reads, else a problem event."""
    occurred_at = parse_created(created)
    events = []
    for item in items:
        fields = item if isinstance(item, dict) else {}
        piece_id, status = _text(fields.get("id")) or "", _text(fields.get("status")) or ""
        tags = fields.get("tags")
        reference = tags.split(",")[0].strip() if isinstance(tags, str) else ""
        problem = item_problem(item)
        events.append(
            PrinterEvent(
                printer_id=piece_id,
                vendor_status=status,
                status=MailpieceStatus.UNKNOWN if problem else convert(status),
                occurred_at=occurred_at,
                event_id=problem_id(item, created) if problem else f"{piece_id}:{status}",
                reference=reference,
                raw={"problem": problem, "item": item} if problem else dict(fields),
                problem=problem,
            )
        )
    return events


def problem_id(item: Any, created: str | None) -> str:
    """A stable id for an odd item: the same across Stannp's retries of the delivery, so dedupe holds."""
    try:
        canonical = json.dumps([created, item], sort_keys=True, default=str)
    except (RecursionError, ValueError):
        raise ValueError("stannp mailpiece item is nested too deeply to record") from None
    return PROBLEM_PREFIX + hashlib.sha256(canonical.encode()).hexdigest()[:32]
