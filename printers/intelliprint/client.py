"""IntelliPrint (UK, Royal Mail): two-step print jobs and Svix-signed webhooks.

IntelliPrint has no idempotency keys, so a job is created unconfirmed under our
``reference`` and confirmed in a second call, after a reconcile that keeps one
job per reference (``reconcile.py``).  Wire facts are in ``shared/docs/vendors.md``
§3; our choices in ``docs/printers/intelliprint.md``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, cast

from pydantic import BaseModel, ConfigDict, ValidationError
from svix.webhooks import Webhook

from printers import http
from printers.base import (
    ModelDump,
    Printer,
    PrinterError,
    PrinterEvent,
    Submission,
    SubmitRequest,
    WebhookRequest,
    WebhookVerificationError,
    load_webhook_body,
)
from printers.intelliprint.address import intelliprint_address, intelliprint_address_problems
from printers.intelliprint.approval import INTELLIPRINT_COUNTRIES, IntelliprintRecipientApproval
from printers.intelliprint.reconcile import SETTLE_S, Job, job_submit, job_winner
from printers.intelliprint.status import STATUS_MAP
from printers.kinds import PrinterKind

# Jobs listed per reference: one in normal life, a handful after a race.
LIST_LIMIT = 100

# Sizes we accept, as IntelliPrint's postcard envelopes.
ENVELOPES = {"A6": "postcard_a6", "4x6": "postcard_a6", "A5": "postcard_a5", "6x9": "postcard_a5"}


class LetterReturned(BaseModel):
    date: int | None = None
    reason: str | None = None


class LetterUpdated(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    id: str = ""
    print_id: str = ""
    status: str = ""
    reference: str | None = ""
    shipped_date: int | None = None
    returned: LetterReturned | None = None


class _Envelope(BaseModel):
    type: str


def _event_type(raw: bytes) -> str | None:
    """The event's ``type`` when the body is a JSON object that has one."""
    try:
        return _Envelope.model_validate_json(raw).type
    except ValidationError:
        return None


def _epoch(value: int | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        return dt.datetime.fromtimestamp(value, dt.UTC)
    except (OverflowError, OSError) as exc:  # 10**18 is no date: a malformed body, not a crash
        raise ValueError(f"intelliprint webhook timestamp {value} is out of range") from exc


class IntelliPrintPrinter(Printer):
    kind = PrinterKind.INTELLIPRINT
    # Svix's names, and the Standard Webhooks names Svix also sends.
    webhook_headers = (
        "svix-id",
        "svix-timestamp",
        "svix-signature",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    )
    label = "IntelliPrint"
    approval_model = IntelliprintRecipientApproval
    status_map = STATUS_MAP
    countries = INTELLIPRINT_COUNTRIES
    sizes = frozenset(ENVELOPES)
    # A lookup lists live and test jobs (2); a submit lists, creates, lists
    # again and confirms (4), more when it deletes losing jobs.
    max_requests_per_row = 6

    # ------------------------------------------------------------------ outbound
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.conf.get('api_key') or ''}"}
        response = http.request(method, self.base_url + path, headers=headers, **kwargs)
        http.raise_for_status(response, vendor="intelliprint")
        return http.json_body(response, vendor="intelliprint")

    def payload(self, request: SubmitRequest) -> dict[str, Any]:
        self.check_size(request.size)
        to = request.to
        address = intelliprint_address(
            name=to.name,
            company=to.company,
            address1=to.address1,
            address2=to.address2,
            city=to.city,
            postcode=to.zip,
            country=to.country,
        )
        # The approval model checks the same builder's output; this is the last guard
        # before the wire, for an address that reached here without being approved.
        problems = intelliprint_address_problems(address)
        if problems:
            raise PrinterError(f"intelliprint address refused: {'; '.join(problems)}", permanent=True)
        postage: dict[str, Any] = {"service": "uk_second_class", "ideal_envelope": ENVELOPES[request.size]}
        if request.mail_date:
            postage["mail_date"] = int(dt.datetime.combine(request.mail_date, dt.time(), dt.UTC).timestamp())
        return {
            "type": "postcard",
            # IntelliPrint takes one file: the proof renderer makes it two-sided.
            "file": {"url": request.front},
            "recipients": [{"address": address.as_payload()}],
            "postage": {k: v for k, v in postage.items() if v},
            "reference": request.reference,
            "metadata": dict(request.metadata),
            "testmode": request.test,
            "confirmed": False,
        }

    def submit(self, request: SubmitRequest) -> Submission:
        # No idempotency keys: exactly once comes from the post-create reconcile
        # (printers/intelliprint/reconcile.py, which lists every interleaving).
        job = job_submit(
            self,
            reference=request.reference,
            testmode=request.test,
            payload=self.payload(request),
            settle_s=float(self.conf.get("settle_s", SETTLE_S)),
        )
        return self._submission(job)

    def lookup(self, reference: str) -> Submission | None:
        """The confirmed job of ``reference``, live or testmode.  An unconfirmed job is no
        piece (it never prints): ``submit`` with the same reference adopts and confirms it."""
        for testmode in (False, True):  # testmode jobs are listed only when asked for
            winner = job_winner(self.jobs(reference, testmode=testmode))
            if winner is not None and winner.get("confirmed"):
                return self._submission(winner)
        return None

    def lookup_report(self, submission: Submission) -> PrinterEvent | None:
        """The job's letter status: a job (``{id: print_…, letters: [{id, status, …}],
        …}``) has no status of its own, and ours hold one letter (one recipient).
        Times as the webhooks read them, where the letter has them: ``returned.date``
        for returned, ``shipped_date`` for shipping, sent and returned."""
        letters = [x for x in submission.raw.get("letters") or [] if isinstance(x, dict) and x.get("status")]
        if not letters:
            return None
        letter = letters[0]
        vendor_status = str(letter["status"]).strip()
        returned = letter.get("returned")
        returned_date = returned.get("date") if isinstance(returned, dict) else None
        shipped = letter.get("shipped_date")
        try:
            if vendor_status == "returned" and returned_date:
                when = _epoch(int(returned_date))
            elif vendor_status in ("shipping", "sent", "returned") and shipped:
                when = _epoch(int(shipped))
            else:
                when = None
        except (TypeError, ValueError):  # not a number, or out of range
            when = None
        return self.lookup_event(submission, vendor_status, when)

    def cancel(self, printer_id: str) -> None:
        self._call("DELETE", f"/prints/{printer_id}")

    # ------------------------------------------------------------------ the reconcile's calls (JobApi)
    def jobs(self, reference: str, *, testmode: bool) -> list[Job]:
        """Every job of ``reference`` in that mode, unconfirmed ones included."""
        params = {
            "reference": reference,
            "testmode": "true" if testmode else "false",
            "limit": LIST_LIMIT,
            "sort_field": "created",
            "sort_order": "asc",
        }
        found = self._call("GET", "/prints", params=params)
        if not isinstance(found, dict):
            # Transient, as every answer below: none proves the printer holds
            # nothing, and "nothing there" (permanent) would let a retry mint
            # a new reference and print the card a second time.
            raise PrinterError(f"intelliprint answered a job list that is not an object: {found!r}")
        if found.get("has_more"):
            # The winner rule needs every job of the reference; that many is a mess for a person.
            raise PrinterError(
                f"intelliprint holds more than {LIST_LIMIT} jobs under reference {reference!r}: "
                "check them at IntelliPrint; the card waits until they are sorted out"
            )
        return [
            job
            for job in found.get("data") or []
            if isinstance(job, dict)
            and job.get("reference") == reference
            and bool(job.get("testmode", testmode)) == testmode
            and self._id(job)
        ]

    def create(self, payload: Mapping[str, Any]) -> Job:
        job = self._call("POST", "/prints", json=dict(payload))
        self._id(job)
        return cast(Job, job)

    def confirm(self, job: Job) -> Job:
        """Confirm ``job``; one that is confirmed already (by a racing worker) is success."""
        if job.get("confirmed"):
            return job
        print_id = self._id(job)
        try:
            return cast(Job, self._call("POST", f"/prints/{print_id}", json={"confirmed": True}))
        except PrinterError as exc:
            if not exc.permanent:
                raise  # outcome unknown: the retry lists the job, confirmed or not
            # A refusal, most likely "a confirmed job cannot be updated": whatever its
            # code, the job's own state says whether it is confirmed.
            current = self._call("GET", f"/prints/{print_id}")
            if isinstance(current, dict) and current.get("confirmed"):
                return current
            raise

    def delete(self, job: Job) -> Job:
        return cast(Job, self._call("DELETE", f"/prints/{self._id(job)}"))

    def _id(self, job: Any) -> str:
        # Transient: an answer without the job's id (to a create, a confirm)
        # may come for a job that exists and prints; the next attempt looks
        # it up by our reference instead of creating another.
        if not isinstance(job, dict) or not str(job.get("id") or "").startswith("print_"):
            raise PrinterError(f"intelliprint answered without a print id: {job!r}")
        return str(job["id"])

    def _submission(self, job: Job) -> Submission:
        letters = [str(letter.get("id")) for letter in job.get("letters") or [] if isinstance(letter, dict)]
        return Submission(
            printer_id=self._id(job),
            reference=str(job.get("reference") or ""),
            raw=job,
            extra_ids={"letter_ids": ",".join(letters)} if letters else {},
        )

    # ------------------------------------------------------------------ webhooks
    def delivery_id(self, request: WebhookRequest) -> str:
        """Svix's ``svix-id`` (or ``webhook-id``): the same across Svix's retries of one message."""
        message_id = (request.header("svix-id") or request.header("webhook-id") or "").strip()
        if 0 < len(message_id) <= 150 and message_id.isprintable():
            return message_id
        return super().delivery_id(request)

    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = str(self.conf.get("webhook_secret") or "")
        if not secret:
            raise WebhookVerificationError("no IntelliPrint webhook secret is configured: refusing every webhook")
        try:
            Webhook(secret).verify(request.body, dict(request.headers))
        except Exception as exc:
            # svix raises its own error, but also ValueError/binascii.Error on a
            # malformed header or secret: every one of them is a rejection.
            raise WebhookVerificationError(f"IntelliPrint webhook signature is not valid: {exc}") from exc

    def parse_webhook(self, raw: bytes, content_type: str = "application/json") -> list[PrinterEvent]:
        """One event per ``letter.updated``; other event types give ``[]``.

        The event id is letter:status[:when]; the body has no event id, so the
        webhook view should dedupe on the ``svix-id`` header when it has it.
        Raises ``ValueError`` with a clear message on a malformed body.
        """
        try:
            letter = load_webhook_body(LetterUpdated, raw, vendor="intelliprint", what="an IntelliPrint event")
        except ValueError:
            # Another event type may use a letter field's name for something
            # else ("status": {"valid": 9}): it is not ours to read, not broken.
            if _event_type(raw) not in (None, "letter.updated"):
                return []
            raise
        if letter.type != "letter.updated":
            return []
        if not letter.id or not letter.print_id or not letter.status:
            raise ValueError("intelliprint letter.updated names no letter id, print_id or status")
        returned = letter.returned.date if letter.returned else None
        when = _epoch(returned) if letter.status == "returned" and returned else _epoch(letter.shipped_date)
        if letter.status not in ("shipping", "sent", "returned"):
            when = None  # shipped_date is not the time of an earlier status
        stamp = f":{int(when.timestamp())}" if when else ""
        return [
            PrinterEvent(
                printer_id=letter.print_id,
                vendor_status=letter.status,
                status=self.convert_status(letter.status),
                occurred_at=when,
                event_id=f"{letter.id}:{letter.status}{stamp}",
                reference=letter.reference or "",
                raw=ModelDump(letter, mode="python"),
            )
        ]
