"""The one interface every printer implements.

A printer module is small: it turns a :class:`SubmitRequest` into the vendor's
wire format, sends it through :mod:`printers.http`, and turns vendor webhooks
into :class:`PrinterEvent` values.  It never touches the database: services in
``mailpieces`` and ``campaigns`` do that with what the printer returns.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, overload

from pydantic import BaseModel, ValidationError

from common.http import OutboundError
from mailpieces.status import MailpieceStatus


class PrinterError(OutboundError):
    """A vendor call failed: the printers' name for :class:`common.http.OutboundError`.

    ``permanent`` is False for outcomes that may succeed on a retry with the
    same idempotency key (network errors, timeouts, 408, 429, 5xx) and True for
    a definitive rejection (other 4xx) or a configuration error (no base URL,
    a key that is not plain ASCII): the recipient then goes to Error.
    """


class WebhookVerificationError(Exception):
    """The webhook is not authentic (bad, missing or stale signature, no secret)."""


@dataclass(frozen=True)
class Address:
    name: str
    address1: str
    address2: str = ""
    city: str = ""
    state: str = ""
    zip: str = ""
    country: str = "US"
    company: str = ""


@dataclass(frozen=True)
class SubmitRequest:
    """Everything a printer needs to create one postcard, exactly once."""

    # Both are printers.keys.submission_key(org_id=..., recipient_id=..., gen=...), e.g.
    # "pc:7:00004242:0": the one format every printer accepts (10+ chars for Stannp and
    # Taylor, <= 62 chars, ASCII), persisted before the first attempt and reused by every retry.
    reference: str  # ours, put where the printer lets us find the piece again (metadata, tags)
    idempotency_key: str  # the printer's replay key, where it has one
    to: Address
    front: str  # URL (or data URI) of the personalized front image
    back: str  # URL (or data URI) of the back image
    size: str = "4x6"
    mail_date: dt.date | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)  # recipient_id, campaign_id, ...
    test: bool = False


@dataclass(frozen=True)
class Submission:
    """What the printer says it created."""

    printer_id: str  # psc_..., Stannp numeric id, print_..., ...
    status: MailpieceStatus = MailpieceStatus.SUBMITTED
    reference: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict)
    extra_ids: Mapping[str, str] = field(default_factory=dict)  # e.g. IntelliPrint letter ids


@dataclass(frozen=True)
class PrinterEvent:
    """One status report about one piece, from a webhook."""

    printer_id: str
    vendor_status: str
    status: MailpieceStatus  # converted with the printer's table; Unknown when unmapped
    occurred_at: dt.datetime | None
    event_id: str  # the vendor's id for dedupe, namespaced by the caller per printer
    reference: str = ""  # ours, when the vendor echoes it
    raw: Mapping[str, Any] = field(default_factory=dict)
    # Why the printer's report about this piece could not be read ("" when it could).
    # A problem event has status Unknown, so it is never applied; it is recorded and
    # shown to a person instead of vanishing.
    problem: str = ""


class ModelDump(Mapping[str, Any]):
    """A pydantic model's ``model_dump`` as a mapping, made on first read.

    ``PrinterEvent.raw`` is for people and tests; processing never reads it,
    and dumping every event eagerly cost a tenth of applying 100k webhooks
    (bench/README.md, webhooks)."""

    __slots__ = ("_data", "_mode", "_model")

    def __init__(self, model: BaseModel, mode: str = "json") -> None:
        self._model = model
        self._mode = mode
        self._data: dict[str, Any] | None = None

    def _dump(self) -> dict[str, Any]:
        if self._data is None:
            self._data = self._model.model_dump(mode=self._mode)
        return self._data

    def __getitem__(self, key: str) -> Any:
        return self._dump()[key]

    def __iter__(self) -> Any:
        return iter(self._dump())

    def __len__(self) -> int:
        return len(self._dump())

    def __repr__(self) -> str:
        return repr(self._dump())


@dataclass(frozen=True)
class WebhookRequest:
    """The parts of an inbound HTTP request a printer needs to verify it."""

    body: bytes
    headers: Mapping[str, str]  # case-insensitive lookups: use ``header()``
    _lowered: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Built once: a delivery's headers are looked up several times (signature,
        # timestamp, id, the ones the inbox keeps).  The first of two spellings wins.
        lowered: dict[str, str] = {}
        for key, value in self.headers.items():
            lowered.setdefault(key.lower(), value)
        object.__setattr__(self, "_lowered", lowered)

    def header(self, name: str) -> str | None:
        return self._lowered.get(name.lower())


_M = TypeVar("_M", bound=BaseModel)


def errors_in_words(exc: ValidationError, *, most: int = 5) -> str:
    """pydantic's errors as ops read them on a quarantined webhook: the field
    of the vendor's body (dotted, as in the payload) and what is wrong with
    it; without our model's name or pydantic's links."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'the body'}: {e['msg'].lower()}" for e in errors[:most]]
    if len(errors) > most:
        parts.append(f"and {len(errors) - most} more")
    return "; ".join(parts)


def load_webhook_body(model: type[_M], body: bytes | Any, *, vendor: str, what: str) -> _M:
    """Validate a webhook body (raw JSON bytes, or data already decoded) with
    the vendor's pydantic model; any problem is a ``ValueError`` naming the
    vendor, which the webhook layer quarantines instead of failing."""
    if isinstance(body, bytes):
        # pydantic reads the bytes itself (in Rust): several times faster than
        # json.loads and then validating, which mattered at 100k webhooks.
        try:
            return model.model_validate_json(body)
        except ValidationError as exc:
            broken = [e["msg"] for e in exc.errors(include_url=False) if e["type"] == "json_invalid"]
            if broken and "recursion limit" in broken[0]:  # "[[[[…" thousands deep
                raise ValueError(f"{vendor} webhook body is nested too deeply to be one of its events") from None
            if broken:
                raise ValueError(f"{vendor} webhook body is not JSON: {broken[0]}") from None
            raise ValueError(f"{vendor} webhook body is not {what}: {errors_in_words(exc)}") from exc
        except RecursionError:
            raise ValueError(f"{vendor} webhook body is nested too deeply to be {what}") from None
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ValueError(f"{vendor} webhook body is not {what}: {errors_in_words(exc)}") from exc
    except RecursionError:
        raise ValueError(f"{vendor} webhook body is nested too deeply to be {what}") from None


@overload
def aware(moment: dt.datetime) -> dt.datetime: ...
@overload
def aware(moment: None) -> None: ...
def aware(moment: dt.datetime | None) -> dt.datetime | None:
    """``moment`` in UTC: a zone-less vendor time is read as UTC, never compared
    naive; one with a zone is the same instant in ``dt.UTC``.  One zone object
    for every time we hold keeps comparisons and conversions on CPython's fast
    path (pydantic's own zone objects answered each offset query in a call)."""
    if moment is None or moment.tzinfo is dt.UTC:
        return moment
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


class Printer:
    """Base class of every printer module.  Subclasses set the class attributes
    and implement the methods; the registry builds them from settings."""

    kind: ClassVar[str]
    label: ClassVar[str]
    approval_model: ClassVar[type[BaseModel]]
    status_map: ClassVar[Mapping[str, MailpieceStatus]]
    countries: ClassVar[frozenset[str]]  # ISO-3166 alpha-2 codes this printer mails to
    sizes: ClassVar[frozenset[str]]  # postcard sizes the printer makes, checked by check_size()
    # Where the API lives when the settings name no base_url; "" for printers
    # whose address must be configured (a missing one is a configuration error).
    default_base_url: ClassVar[str] = ""
    # False only for a printer that takes no credentials (the sandbox, served locally):
    # the registry refuses to build any other printer without an API key.
    requires_api_key: ClassVar[bool] = True
    # The most HTTP requests one recipient's attempt makes here, a lookup and
    # a submit together: each takes a rate-limit permit, so the mailing stage
    # sizes a batch's claim lease by it (campaigns/mailing/service.py).
    max_requests_per_row: ClassVar[int] = 2

    def __init__(self, conf: Mapping[str, Any]) -> None:
        self.conf = dict(conf)
        self.base_url = str(self.conf.get("base_url") or self.default_base_url).rstrip("/")

    def check_size(self, size: str) -> None:
        """Refuse, permanently, a size the printer does not make: no retry makes it one."""
        if size not in self.sizes:
            raise PrinterError(
                f"{self.label} postcard size must be one of {', '.join(sorted(self.sizes))}, got {size!r}",
                permanent=True,
            )

    def submit(self, request: SubmitRequest) -> Submission:
        raise NotImplementedError

    def lookup(self, reference: str) -> Submission | None:
        raise NotImplementedError

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """The status the printer's own object (``submission.raw``, from :meth:`lookup`)
        says the piece is in, as a report for the webhooks' monotonic path
        (``refresh_mailpieces``): the vendor status converted with
        :meth:`convert_status`, the time the object gives for it (else None), and
        ``event_id`` ``lookup:<printer id>:<vendor status>[:<epoch s>]``, stable
        for one answer so asking twice records it once.  None when the object
        names no status."""
        return None

    def lookup_event(
        self, submission: Submission, vendor_status: str, when: dt.datetime | None = None, reference: str = ""
    ) -> PrinterEvent:
        """The report a :meth:`lookup_report` gives: one shape and one key for every printer."""
        stamp = f":{int(when.timestamp())}" if when else ""
        return PrinterEvent(
            printer_id=submission.printer_id,
            vendor_status=vendor_status,
            status=self.convert_status(vendor_status),
            occurred_at=when,
            event_id=f"lookup:{submission.printer_id}:{vendor_status}{stamp}",
            reference=reference or submission.reference,
            raw=submission.raw,
        )

    def cancel(self, printer_id: str) -> None:
        raise NotImplementedError

    def verify_webhook(self, request: WebhookRequest) -> None:
        """Raise :class:`WebhookVerificationError` unless the request is authentic."""
        raise NotImplementedError

    # Headers kept with a stored webhook (besides Content-Type and User-Agent):
    # the ones that prove it and name it, so a stored row can be verified again.
    webhook_headers: ClassVar[tuple[str, ...]] = ()
    # Where the vendor puts its id for one delivery in a JSON body ("" when it has none).
    webhook_id_field: ClassVar[str] = ""

    def delivery_id(self, request: WebhookRequest) -> str:
        """The vendor's id for this delivery, for the inbox's dedupe: the
        ``webhook_id_field`` of a JSON body, else ``sha256:`` of the body, so
        the same bytes delivered twice are one delivery.  Never raises."""
        if self.webhook_id_field:
            try:
                value = json.loads(request.body).get(self.webhook_id_field)
            except (ValueError, AttributeError, RecursionError):
                value = None
            if isinstance(value, str) and 0 < len(value.strip()) <= 150 and value.isprintable():
                return value.strip()
        return "sha256:" + hashlib.sha256(request.body).hexdigest()

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        raise NotImplementedError

    @classmethod
    def convert_status(cls, vendor_status: str) -> MailpieceStatus:
        """The spec's mapping of a vendor status; Unknown when unmapped (never raises)."""
        return cls.status_map.get(str(vendor_status), MailpieceStatus.UNKNOWN)

    @classmethod
    def approval_errors(cls, data: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Errors of the printer's approval model for ``data``, JSON-ready for
        ``recipient.json["approval_errors"]``; empty when approved."""
        from pydantic import ValidationError

        try:
            cls.approval_model.model_validate(dict(data))
        except ValidationError as exc:
            return [
                {"loc": [str(p) for p in err["loc"]], "msg": err["msg"], "type": err["type"]}
                for err in exc.errors(include_url=False, include_input=False)
            ]
        return []
