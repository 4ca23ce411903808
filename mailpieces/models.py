from __future__ import annotations

import datetime as dt

import django_fsm as fsm
from django.db import models

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
