from __future__ import annotations

import datetime as dt

import django_fsm as fsm
from django.db import models
from django.utils import timezone

from campaigns.models import CampaignRecipient
from common.models import TransitionLog
from mailpieces.status import RANK, TERMINAL, MailpieceStatus, can_move
from printers.kinds import PrinterKind

S = MailpieceStatus

# States that no longer stand for a piece in the mail: a recipient may get a
# new mailpiece only when every earlier one is in one of these.
DEAD_STATUSES = (S.CANCELLED, S.ERROR)


def _sources(target: MailpieceStatus) -> list[str]:
    """Every status from which ``target`` may be reached: the FSM's sources are
    derived from :func:`mailpieces.status.can_move`, never listed by hand."""
    return [s.value for s in MailpieceStatus if can_move(s, target)]


class Mailpiece(fsm.ConcurrentTransitionMixin, models.Model):
    Status = MailpieceStatus
    RANK = RANK
    TERMINAL = TERMINAL

    recipient = models.ForeignKey(CampaignRecipient, on_delete=models.PROTECT, related_name="mailpieces")
    printer = models.CharField(max_length=20, choices=PrinterKind.choices)
    printer_id = models.CharField(max_length=100, blank=True, db_index=True)
    reference = models.CharField(max_length=100, blank=True, help_text="Our reference sent to the printer.")
    status = fsm.FSMField(
        choices=MailpieceStatus.choices, default=S.SUBMITTED, protected=True, db_index=True, max_length=32
    )
    # When the printer says the latest applied status happened: an older event
    # never overwrites a newer one.
    status_at = models.DateTimeField(null=True, blank=True)
    last_vendor_status = models.CharField(max_length=100, blank=True)
    # When ``refresh_mailpieces`` last had an answer from the printer about
    # this piece: a piece whose answer changed nothing is not asked again
    # until it has been quiet for the stale days once more.
    checked_at = models.DateTimeField(
        null=True, blank=True, help_text="When a lookup at the printer last answered about this piece."
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            # One live mailpiece per recipient: the database, not the code,
            # stops a second piece from being recorded.
            models.UniqueConstraint(
                fields=["recipient"],
                condition=~models.Q(status__in=DEAD_STATUSES),
                name="mailpiece_one_live_per_recipient",
            ),
            models.UniqueConstraint(
                fields=["printer", "printer_id"],
                condition=~models.Q(printer_id=""),
                name="mailpiece_unique_printer_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.printer}:{self.printer_id or '-'}"

    def _stamp(self, at: dt.datetime | None, vendor_status: str) -> None:
        if at is not None:
            self.status_at = at
        if vendor_status:
            self.last_vendor_status = vendor_status[:100]

    # One transition per target status; sources from the shared rank rules.

    @fsm.transition(field=status, source=_sources(S.RECEIVED), target=S.RECEIVED)
    def mark_received(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.SENT), target=S.SENT)
    def mark_sent(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.PRODUCING), target=S.PRODUCING)
    def mark_producing(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.PROCESSED), target=S.PROCESSED)
    def mark_processed(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.HANDED_OVER), target=S.HANDED_OVER)
    def mark_handed_over(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.IN_TRANSIT), target=S.IN_TRANSIT)
    def mark_in_transit(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.LOCAL_DELIVERY), target=S.LOCAL_DELIVERY)
    def mark_local_delivery(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.DELIVERED), target=S.DELIVERED)
    def mark_delivered(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.RETURNED), target=S.RETURNED)
    def mark_returned(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.CANCELLED), target=S.CANCELLED)
    def mark_cancelled(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.ERROR), target=S.ERROR)
    def mark_error(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)

    @fsm.transition(field=status, source=_sources(S.TEST), target=S.TEST)
    def mark_test(self, *, at: dt.datetime | None = None, vendor_status: str = "") -> None:
        self._stamp(at, vendor_status)


# The transition method that moves a piece to each status: webhook processing
# looks the method up here instead of keeping its own mapping.
TRANSITION_FOR_STATUS: dict[str, str] = {
    S.RECEIVED: "mark_received",
    S.SENT: "mark_sent",
    S.PRODUCING: "mark_producing",
    S.PROCESSED: "mark_processed",
    S.HANDED_OVER: "mark_handed_over",
    S.IN_TRANSIT: "mark_in_transit",
    S.LOCAL_DELIVERY: "mark_local_delivery",
    S.DELIVERED: "mark_delivered",
    S.RETURNED: "mark_returned",
    S.CANCELLED: "mark_cancelled",
    S.ERROR: "mark_error",
    S.TEST: "mark_test",
}


class MailpieceTransition(TransitionLog):
    # Indexed by mailpiece_transition_by_obj, which leads with it.
    mailpiece = models.ForeignKey(Mailpiece, on_delete=models.CASCADE, related_name="transitions", db_index=False)

    class Meta(TransitionLog.Meta):
        # One object's history, newest first; also the mailpiece's own lookups.
        indexes = [models.Index(fields=["mailpiece", "created"], name="mailpiece_transition_by_obj")]


# ---------------------------------------------------------------------------- webhooks
class InboundWebhook(models.Model):
    """The inbox: one authentic webhook delivery, stored raw before anything reads it.

    Written by the webhook view after the signature checks out, and never
    deleted by processing.  ``event_id`` is the vendor's id for the delivery
    (Lob's ``evt_…``, IntelliPrint's ``svix-id``, Taylor's and the sandbox's
    event id) or ``sha256:<hex>`` of the body where the vendor has none
    (Stannp): a delivery seen twice is one row.  Processing turns a row into
    :class:`MailpieceEvent` rows and marks it processed, or quarantines it with
    the reason its body could not be read.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Waiting to be processed"
        PROCESSED = "processed", "Processed"
        QUARANTINED = "quarantined", "Quarantined (could not be read)"

    printer = models.CharField(max_length=20, choices=PrinterKind.choices)
    event_id = models.CharField(max_length=200)
    body = models.BinaryField(help_text="The request body, byte for byte as it was signed.")
    headers = models.JSONField(default=dict, blank=True, help_text="The headers that matter (signature, ids, type).")
    content_type = models.CharField(max_length=200, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING)
    processed_at = models.DateTimeField(null=True, blank=True)
    events_count = models.PositiveIntegerField(default=0, help_text="Status reports read from this delivery.")
    attempts = models.PositiveIntegerField(default=0, help_text="Processing runs that failed on this row.")
    error = models.TextField(blank=True, help_text="Why the row is quarantined, or why the last run failed.")
    # A processing run holds the row until lease_until (claim token guard).
    claim_token = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "inbound webhook"
        constraints = [
            models.UniqueConstraint(fields=["printer", "event_id"], name="inbound_webhook_unique_event"),
        ]
        indexes = [
            # The processing queue: only pending rows are indexed, in arrival order.
            models.Index(fields=["id"], name="inbound_webhook_pending", condition=models.Q(state="pending")),
            models.Index(fields=["printer", "received_at"], name="inbound_webhook_by_printer"),
        ]

    def __str__(self) -> str:
        return f"{self.printer} {self.event_id[:40]}"


class MailpieceEvent(models.Model):
    """One status report about one piece, read from an inbox row, with what
    became of it: applied, ignored (and why), waiting for its piece, or a
    problem (an item that could not be read).  Every report is kept: this and
    the transitions are the piece's history."""

    class Outcome(models.TextChoices):
        APPLIED = "applied", "Applied"
        IGNORED = "ignored", "Ignored"
        WAITING = "waiting", "Waiting for its mailpiece"
        PROBLEM = "problem", "Could not be read"

    # The delivery it was read from; empty for what a lookup at the printer
    # reported (``refresh_mailpieces``).
    inbox = models.ForeignKey(
        InboundWebhook, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    printer = models.CharField(max_length=20, choices=PrinterKind.choices)
    printer_id = models.CharField(max_length=100, blank=True)
    # The vendor's id for this report, unique per printer: the same report in
    # two deliveries (Stannp's retries) is recorded once.
    event_key = models.CharField(max_length=200)
    mailpiece = models.ForeignKey(
        Mailpiece, null=True, blank=True, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    vendor_status = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=32, choices=MailpieceStatus.choices)
    occurred_at = models.DateTimeField(null=True, blank=True, help_text="When the printer says it happened.")
    outcome = models.CharField(max_length=20, choices=Outcome.choices)
    note = models.CharField(max_length=300, blank=True, help_text="Why it was ignored, or what is wrong with it.")
    reference = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(default=timezone.now)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["printer", "event_key"], name="mailpiece_event_unique_key"),
        ]
        indexes = [
            models.Index(fields=["mailpiece", "occurred_at"], name="mailpiece_event_by_piece"),
            models.Index(fields=["inbox"], name="mailpiece_event_by_inbox"),
            # Reports that arrived before their piece: looked up by the piece's id.
            models.Index(
                fields=["printer", "printer_id"],
                name="mailpiece_event_waiting",
                condition=models.Q(outcome="waiting"),
            ),
            # Reports that could not be read have no piece: the admin's search
            # by printer id finds them here (few rows, rarely written).
            models.Index(
                fields=["printer", "printer_id"],
                name="mailpiece_event_problem",
                condition=models.Q(outcome="problem"),
            ),
        ]
        ordering = ("occurred_at", "id")

    def __str__(self) -> str:
        return f"{self.printer}:{self.printer_id} {self.vendor_status} ({self.outcome})"
