from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import django_fsm as fsm
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import connection, models, transaction

from campaigns.enums import CampaignRecipientSkipReason, CampaignRecipientStatus, ErrorMessages
from campaigns.recipient_json import APPROVAL_ERRORS, PRINTER_MAY_HAVE_IT, PROBLEM_KEYS, SKIP_DETAILS, skip_details
from campaigns.search import HasKey, PrefixIndex
from campaigns.validation import blocklist_entry_key, country_normalize
from common.fsm import apply_sets, transition_sets
from common.models import TransitionLog, WithoutKeys
from printers.kinds import PrinterKind

__all__ = [
    "BlocklistEntry",
    "Campaign",
    "CampaignRecipient",
    "CampaignRecipientSkipReason",
    "CampaignRecipientStatus",
    "ErrorMessages",
    "LocalDiscountCode",
    "Organization",
    "ProofApproval",
    "ProofTemplate",
    "RecipientTransition",
]


class Organization(models.Model):
    name = models.CharField(max_length=200, unique=True)
    # Billing, read by the preflight (campaigns.billing) before anything is
    # proofed or printed.  With the Stripe backend these are the ids looked up
    # at Stripe; with the local backend the fields themselves are the truth.
    billing_customer_id = models.CharField(
        max_length=100, blank=True, help_text="Stripe customer id (cus_…). Empty = the org cannot be billed."
    )
    subscription_active = models.BooleanField(
        default=False, help_text="Local billing only: the org has an active subscription."
    )
    # The spec's "legacy SubscriptionItem"; the help texts say it in the billing check's words.
    billing_subscription_item_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="The item (si_…) of the organization's Stripe subscription that postcards are billed to: the "
        "postcard price, added to its subscription.",
    )
    billing_price_id = models.CharField(
        max_length=100,
        blank=True,
        help_text="Local billing only: the price (price_…) of that subscription item. It must be the postcard "
        "price, or billing is not ready.",
    )
    recipient_cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Most recipients the org may mail per campaign; empty = no cap."
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class BlocklistEntry(models.Model):
    """An address (or email) the org never mails.  Matching is done on the
    normalized ``key`` written by the import code, so spelling variants of the
    same address match."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="blocklist")
    address1 = models.CharField(max_length=200, blank=True)
    zip = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True)
    key = models.CharField(max_length=64, editable=False, help_text="Normalized address or email, set on save.")
    reason = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "blocklist entries"
        constraints = [
            models.UniqueConstraint(fields=["organization", "key"], name="blocklist_unique_key"),
        ]

    def __str__(self) -> str:
        return self.email or f"{self.address1}, {self.zip}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        self._derive_key()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if not (self.email or self.address1):
            raise ValidationError("Give an address or an email to block.")
        if self.country and not country_normalize(self.country):
            raise ValidationError({"country": f"Unknown country {self.country!r}: use a 2-letter code such as US."})
        self._derive_key()
        # Forms do not see the derived key, so the unique constraint is checked here.
        others = BlocklistEntry.objects.filter(organization_id=self.organization_id, key=self.key)
        if self.organization_id and others.exclude(pk=self.pk).exists():
            raise ValidationError("This address or email is already on the organization's blocklist.")

    def _derive_key(self) -> None:
        # The key is derived, never typed: spelling variants of one address
        # share it, and the unique constraint then refuses a duplicate entry.
        self.country = country_normalize(self.country) or self.country
        self.key = blocklist_entry_key(address1=self.address1, zip=self.zip, country=self.country, email=self.email)


class Campaign(models.Model):
    class Size(models.TextChoices):
        S4X6 = "4x6", "4x6"
        S6X9 = "6x9", "6x9"
        S6X11 = "6x11", "6x11"

    organization = models.ForeignKey(Organization, on_delete=models.PROTECT, related_name="campaigns")
    name = models.CharField(max_length=200)
    printer = models.CharField(max_length=20, choices=PrinterKind.choices, default=PrinterKind.SANDBOX)
    size = models.CharField(max_length=8, choices=Size.choices, default=Size.S4X6)
    mail_date = models.DateField(null=True, blank=True, help_text="Empty = mail as soon as proofed.")
    holdout_percent = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        default=Decimal("0"),
        validators=[MinValueValidator(Decimal("0")), MaxValueValidator(Decimal("100"))],
    )
    # The holdout draw hashes (seed, recipient key): fixed at creation so a
    # re-run, a re-import or an audit reproduces the same split.
    holdout_seed = models.CharField(max_length=64, default=uuid.uuid4, editable=False)
    address_enrichment = models.BooleanField(default=False)
    discount_enabled = models.BooleanField(default=False)
    discount_prefix = models.CharField(max_length=20, blank=True)
    discount_value = models.CharField(max_length=40, blank=True, help_text='e.g. "10%" or "5.00"')
    # Shopify price rule the campaign's codes belong to, created on the first
    # code and reused (campaigns.discounts).
    discount_price_rule_id = models.CharField(max_length=64, blank=True, editable=False)
    proof_template = models.ForeignKey(
        "ProofTemplate",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        help_text="The postcard design; empty = the built-in design.",
    )
    # A paused campaign claims nothing: the runner skips it at every batch.
    paused = models.BooleanField(default=False, help_text="Paused campaigns move no recipient forward.")
    # The doorbell (design principle 1): when a task for this campaign was
    # last enqueued, and how many enqueues in a row failed.
    doorbell_rung_at = models.DateTimeField(null=True, blank=True, editable=False)
    doorbell_failures = models.PositiveIntegerField(default=0, editable=False)
    import_report = models.JSONField(default=dict, blank=True, editable=False)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Saves; a printer switch is checked again here, under a lock on the
        campaign's row that the mailing claim shares (``campaign_printer_locked``):
        a worker that claimed cards between the form's check and this save
        is seen here (and the switch refused), and one that claims after it
        finds the new printer and claims nothing for the old one."""
        fields = kwargs.get("update_fields")
        if self.pk is None or (fields is not None and "printer" not in fields):
            super().save(*args, **kwargs)
            return
        with transaction.atomic():
            old = campaign_printer_locked(self.pk, for_update=True)
            if old is not None and old != self.printer:
                self._refuse_switch_in_flight()
            super().save(*args, **kwargs)

    def clean(self) -> None:
        self._clean_printer()
        # A discount the shop cannot be given is refused here, not when the
        # first proof is made.
        if self.discount_enabled:
            from campaigns.discounts.base import DiscountError
            from campaigns.discounts.service import parse_discount_value

            try:
                parse_discount_value(self.discount_value)
            except DiscountError as exc:
                raise ValidationError({"discount_value": exc.message}) from None

    def _clean_printer(self) -> None:
        """A printer this server cannot mail through, or a size it does not
        make, is refused when it is chosen: the campaign was proofed and
        approved, then sat in "Queued for mailing" (or failed every row)
        with the reason only in the worker's log.  Checked when the printer or
        the size is set or changed, so a printer disabled later does not
        block other edits of the campaign."""
        from printers.base import PrinterError
        from printers.registry import get_printer, get_printer_class

        old = type(self).objects.filter(pk=self.pk).values("printer", "size").first() if self.pk else None
        if old is not None and (old["printer"], old["size"]) == (self.printer, self.size):
            return
        try:
            cls = get_printer_class(self.printer)
        except PrinterError:  # an unknown kind: the field's choices say so
            return
        label = getattr(cls, "label", self.printer)
        try:
            get_printer(self.printer)
        except PrinterError:
            raise ValidationError(
                {
                    "printer": f"{label} is not set up on this server (not enabled, or no API key): choose "
                    "another printer, or ask whoever runs the server to set it up."
                }
            ) from None
        sizes = getattr(cls, "sizes", None)  # the sandbox makes any size
        if sizes is not None and self.size not in sizes:
            raise ValidationError(
                {"size": f"{label} does not make {self.size} postcards: choose one of {', '.join(sorted(sizes))}."}
            )
        if old is not None and old["printer"] != self.printer:
            self._clean_printer_switch(cls, label)

    def _refuse_switch_in_flight(self) -> None:
        in_flight = CampaignRecipient.objects.filter(
            models.Q(campaign_id=self.pk)
            & (
                models.Q(status=CampaignRecipientStatus.SENDING)
                | (
                    models.Q(
                        status__in=[
                            CampaignRecipientStatus.SENDING_STAGED,
                            CampaignRecipientStatus.SCHEDULED,
                            CampaignRecipientStatus.ERROR,
                        ]
                    )
                    & MAY_BE_AT_PRINTER
                )
            )
        ).count()
        if in_flight:
            raise ValidationError(
                {
                    "printer": f"{in_flight} card(s) of this campaign are being sent to the current printer, or "
                    "waiting to be tried again there, and it may already have them: changing the printer now "
                    "could print them twice. Change it once they are mailed (retry those in Error first: a "
                    "retry looks each card up at the printer)."
                }
            )

    def _clean_printer_switch(self, cls: Any, label: str) -> None:
        """Another printer for a campaign that has recipients.  Refused while
        a card may be at the old printer with its outcome unknown (being
        sent, or waiting to be tried again): its next attempt looks the piece
        up at the campaign's printer, and the new one would find nothing and
        print it a second time.  Refused too when recipients already checked
        against the old printer's address rules, and waiting to be proofed or
        mailed, fail the new one's: each would fail at the printer."""
        from campaigns.qualification import APPROVAL_FIELDS

        rows = CampaignRecipient.objects.filter(campaign_id=self.pk)
        self._refuse_switch_in_flight()
        waiting = rows.filter(
            status__in=[
                CampaignRecipientStatus.PROOFING_STAGED,
                CampaignRecipientStatus.PROOFING,
                CampaignRecipientStatus.PROOFED,
                CampaignRecipientStatus.SENDING_STAGED,
                CampaignRecipientStatus.SCHEDULED,
            ]
        )
        refused = 0
        example = ""
        for row in waiting.values(*APPROVAL_FIELDS).iterator():
            errors = cls.approval_errors(row)
            if errors:
                refused += 1
                example = example or f"{row['first_name']} {row['last_name']}".strip() + f": {errors[0]['msg']}"
        if refused:
            raise ValidationError(
                {
                    "printer": f"{refused} recipient(s) waiting to be proofed or mailed do not meet {label}'s "
                    f"address rules (for example {example}). Choose another printer, or archive those "
                    "recipients first."
                }
            )


def campaign_printer_locked(campaign_id: int, *, for_update: bool = False) -> str | None:
    """The campaign's printer as stored, read under a lock on its row that
    lasts until the caller's transaction ends (call it inside one): shared
    for a mailing claim (claims of one campaign run side by side), exclusive
    for a printer switch, which so waits for the claims under way and makes
    the later ones wait for it.  SQLite needs no row lock: its transactions
    start IMMEDIATE, one writer at a time.  None when the campaign is gone."""
    if not connection.in_atomic_block:
        raise RuntimeError("campaign_printer_locked must run inside a transaction")
    table = connection.ops.quote_name(Campaign._meta.db_table)
    lock = ""
    if connection.vendor == "postgresql":
        lock = " FOR UPDATE" if for_update else " FOR SHARE"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT printer FROM {table} WHERE id = %s{lock}", [campaign_id])  # noqa: S608
        row = cursor.fetchone()
    return None if row is None else str(row[0])


# Field values a transition sets besides the status.  A transition declares
# them in its ``custom["sets"]`` (a dict, or a function of the transition's
# keyword arguments) and applies them with ``_apply_sets``; bulk moves
# (``common.fsm.bulk_transition``) compute the same values from the same
# arguments, so a row moved in bulk ends exactly like a row moved one by one.
# Clearing a problem clears every trace of it, the json's problem keys too.
ERROR_DETAIL_MAX = 500
CLEAR_PROBLEM: dict[str, Any] = {
    "skip_reason": "",
    "error_message": "",
    "lease_until": None,
    "claim_token": None,
    "error_detail": "",
    "attempt": 0,
    "json": WithoutKeys(*PROBLEM_KEYS),
}
RELEASE_CLAIM: dict[str, Any] = {"lease_until": None, "claim_token": None}


def _skip_sets(*, skip_reason: str) -> dict[str, Any]:
    # Required and checked against the spec's list: a skip without a reason,
    # one by one or in bulk, raises instead of leaving the reason blank.  A
    # skip from AddressEnriching also ends the enrichment claim.
    return {"skip_reason": CampaignRecipientSkipReason(skip_reason), **RELEASE_CLAIM}


def _fail_sets(*, message: str, detail: str = "") -> dict[str, Any]:
    # Only the spec's messages: a typo would hide the row from every filter.
    # ``detail`` says what happened in this case (the vendor's answer, the
    # billing problem), for ops.
    if message not in ErrorMessages.all().values():
        raise ValueError(f"{message!r} is not one of the spec's error messages")
    return {"error_message": message, "error_detail": detail[:ERROR_DETAIL_MAX], **RELEASE_CLAIM}


def _requeue_sets(*, not_before: dt.datetime | None = None) -> dict[str, Any]:
    # Back to the stage's queue: the claim ends, and ``not_before`` (the
    # backoff of a transient failure) keeps the row from being claimed early.
    return {"lease_until": not_before, "claim_token": None}


def _proofed_sets(
    *, proof_url: str | None = None, proof_back_url: str | None = None, proof_version: str | None = None
) -> dict[str, Any]:
    # One by one the proof's names come as arguments; a batch writes each
    # row's names first (they differ per row) and moves without them.
    given = {"proof_url": proof_url, "proof_back_url": proof_back_url, "proof_version": proof_version}
    return {**{k: v for k, v in given.items() if v is not None}, **RELEASE_CLAIM}


def _claim_sets(*, claim_token: uuid.UUID, lease_until: dt.datetime) -> dict[str, Any]:
    # A worker claims rows by moving them into a working state stamped with
    # its token and lease (reliability §2): the sweeper re-rings rows whose
    # lease ran out, and the token guards the worker's later writes.
    return {"claim_token": claim_token, "lease_until": lease_until}


# The spec's messages the proofing stage sets (its "Proofing error"s, the
# proofing queue's, and the billing preflight when it runs at this stage).
PROOFING_ERRORS = frozenset(
    {
        ErrorMessages.BILLING_NOT_READY,
        ErrorMessages.COULD_NOT_GENERATE_CREATIVE,
        ErrorMessages.FAILED_TO_MAKE_PROOF,
        ErrorMessages.FAILED_TO_APPLY_DISCOUNT_CODE,
        ErrorMessages.FAILED_SUBMISSION_TO_PROOFING_QUEUE,
    }
)


# A Scheduled row no worker holds and no attempt was made for: nothing of it
# is at the printer, so it may still be archived.
SCHEDULED_UNTOUCHED = models.Q(claim_token__isnull=True, first_attempt_at__isnull=True)


# A SendingStaged row no attempt was made for: nothing of it can be at the
# printer, so its card may still be made again (``reproof``).
NEVER_SENT = models.Q(first_attempt_at__isnull=True)


def never_sent(r: Any) -> bool:
    """Not SendingStaged, or SendingStaged with no attempt made (:data:`NEVER_SENT`)."""
    return r.status != CampaignRecipientStatus.SENDING_STAGED or r.first_attempt_at is None


def scheduled_untouched(r: Any) -> bool:
    """Not Scheduled, or Scheduled with nothing at the printer (:data:`SCHEDULED_UNTOUCHED`)."""
    return r.status != CampaignRecipientStatus.SCHEDULED or (r.claim_token is None and r.first_attempt_at is None)


# ``proof_version`` of a proof whose recipient's name or address was edited
# after it was made (no design version looks like this: theirs have dots).
PROOF_OUTDATED = "data changed"


def proof_outdated(r: Any) -> bool:
    """The row's proof no longer shows its data: the name or address changed
    after the proof was made (``campaigns.proofing.retry.recipient_data_changed``)."""
    return bool(getattr(r, "proof_url", "")) and getattr(r, "proof_version", "") == PROOF_OUTDATED


def is_proofing_error(r: Any) -> bool:
    """An Error row the proofing stage set, or a mailing-stage Error row whose
    proof is outdated (the card must be made again before it is sent).
    BILLING_NOT_READY on a row that already has a proof came from the mailing
    stage's check instead."""
    message = getattr(r, "error_message", "")
    if message in MAILING_ERRORS and proof_outdated(r):
        return True
    return message in PROOFING_ERRORS and not (
        message == ErrorMessages.BILLING_NOT_READY and getattr(r, "proof_url", "")
    )


# The spec's messages the mailing stage sets (and the billing check inside its claim).
MAILING_ERRORS = frozenset(
    {
        ErrorMessages.BILLING_NOT_READY,
        ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE,
        ErrorMessages.FAILED_SUBMISSION_TO_PRINTER,
        ErrorMessages.FAILED_SUBMISSION_TO_MAILING_QUEUE,
    }
)


# The mailing stage's messages for a row whose printer call was answered
# definitively (refused, or a lookup found nothing): no piece exists under its
# key, so a retry may use a new one.  Any other Error of a row sent before
# (the queue, billing) may have its piece at the printer.
NOTHING_AT_PRINTER = frozenset({ErrorMessages.FAILED_TO_MAKE_MAIL_PIECE, ErrorMessages.FAILED_SUBMISSION_TO_PRINTER})


def may_be_at_printer(r: Any) -> bool:
    """An attempt was made for ``r`` and nothing says the printer has no piece:
    its key and saved request must stay, and its next attempt looks first."""
    if getattr(r, "first_attempt_at", None) is None:
        return False
    flagged = isinstance(r.json, dict) and bool(r.json.get(PRINTER_MAY_HAVE_IT))
    return flagged or not (r.status == CampaignRecipientStatus.ERROR and r.error_message in NOTHING_AT_PRINTER)


# The rows :func:`may_be_at_printer` is true of, as a filter.
MAY_BE_AT_PRINTER = models.Q(first_attempt_at__isnull=False) & (
    ~models.Q(status=CampaignRecipientStatus.ERROR)
    | ~models.Q(error_message__in=NOTHING_AT_PRINTER)
    | models.Q(json__has_key=PRINTER_MAY_HAVE_IT)
)


def is_mailing_error(r: Any) -> bool:
    """An Error row the mailing stage set: it has its proof (the proofing
    stage's rows have none yet), and the proof still shows its data."""
    return (
        getattr(r, "error_message", "") in MAILING_ERRORS
        and bool(getattr(r, "proof_url", ""))
        and not proof_outdated(r)
    )


# ``error_detail`` of a row sent before that waits instead of failing (its
# piece may be at the printer): ``why`` shows it as "Waiting: …".
WAITING = "waiting: "


def waiting_detail(why: str) -> str:
    return f"{WAITING}{why}"[:ERROR_DETAIL_MAX]


# ``why`` for a CapExceeded skip: the reason records no details of its own.
CAP_EXCEEDED_WHY = "the organization's recipient cap is used up"


# Merge fields a template's text may use, with what each one says.
MERGE_FIELDS = {
    "first_name": "the recipient's first name",
    "last_name": "the recipient's last name",
    "full_name": "first and last name",
    "company": "the recipient's company",
    "city": "the recipient's city",
    "discount_code": "the recipient's discount code",
    "discount_value": "the campaign's discount, e.g. 10%",
    "organization": "the organization's name",
}


MERGE_HELP = (
    "Merge fields in braces, e.g. {first_name}; {first_name|friend} writes “friend” for a recipient "
    "without a first name (without a fallback, such a recipient's proof fails)."
)


class ProofTemplate(models.Model):
    """A postcard design: a background per side and text with merge fields.

    The local renderer draws it with Pillow (``campaigns.proofing.local``);
    with Pixelixe the two document ids name the vendor's templates and the
    texts travel as modifications.  Every change to the design bumps
    ``version``, which withdraws the approval of the campaigns that use it
    (``campaigns.proofing.approval``)."""

    name = models.CharField(max_length=200, unique=True)
    version = models.PositiveIntegerField(default=1, editable=False)
    front_background = models.ImageField(
        upload_to="proof-templates/", blank=True, help_text="Empty = the built-in artwork."
    )
    back_background = models.ImageField(upload_to="proof-templates/", blank=True, help_text="Empty = plain paper.")
    headline = models.CharField(max_length=120, default="Hello {first_name|friend}!", help_text=MERGE_HELP)
    subline = models.CharField(max_length=200, blank=True, default="We saved you a seat by the window.")
    message = models.TextField(
        blank=True,
        default="It has been a while, {first_name|friend}. Come back for a cup on us this winter.",
        help_text=MERGE_HELP,
    )
    offer = models.CharField(max_length=200, blank=True, default="Show code {discount_code} for {discount_value} off")
    accent_color = models.CharField(max_length=7, default="#7a3b12", help_text="#rrggbb")
    text_color = models.CharField(max_length=7, default="#ffffff", help_text="#rrggbb, on the front")
    pixelixe_front_uid = models.CharField(
        max_length=100, blank=True, help_text="Pixelixe document for the front (Pixelixe backend only)."
    )
    pixelixe_back_uid = models.CharField(max_length=100, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    # The fields that make the design: a change to any of them is a new version.
    DESIGN_FIELDS = (
        "front_background",
        "back_background",
        "headline",
        "subline",
        "message",
        "offer",
        "accent_color",
        "text_color",
        "pixelixe_front_uid",
        "pixelixe_back_uid",
    )

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return f"{self.name} (v{self.version})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A change to the design is a new version, whoever saves it: the
        # approval of every campaign using the old version no longer applies.
        if self.pk is not None:
            old = type(self).objects.filter(pk=self.pk).values(*self.DESIGN_FIELDS).first()
            if old is not None and any(str(old[f] or "") != str(getattr(self, f) or "") for f in self.DESIGN_FIELDS):
                self.version += 1
                if kwargs.get("update_fields") is not None:
                    kwargs["update_fields"] = {*kwargs["update_fields"], "version"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        # A design that cannot be filled is refused here, not at proofing time.
        from campaigns.proofing.base import ProofError
        from campaigns.proofing.local import TEXT_ROLES, check_background, check_drawable, merge_text

        sample = dict.fromkeys(MERGE_FIELDS, "x")
        errors = {}
        # The local renderer's fonts, for the text the design itself writes
        # (a recipient's own characters are checked on their proof).
        local = settings.PROOFING.get("backend", "local") != "pixelixe"
        for name, role in TEXT_ROLES.items():
            try:
                text, _ = merge_text(getattr(self, name), sample, name)
                if local:
                    check_drawable(text, role, name)
            except ProofError as exc:
                errors[name] = exc.message
        for name in ("accent_color", "text_color"):
            value = getattr(self, name)
            if not (len(value) == 7 and value[0] == "#" and all(c in "0123456789abcdefABCDEF" for c in value[1:])):
                errors[name] = f"{value!r} is not a colour: write it as #rrggbb, e.g. #7a3b12."
        for name in ("front_background", "back_background"):
            picture = getattr(self, name)
            if picture and not getattr(picture, "_committed", True):  # a new upload: read it whole once
                try:
                    check_background(picture.file)
                except ValueError as exc:
                    errors[name] = str(exc)
        if errors:
            raise ValidationError(errors)


class ProofApproval(models.Model):
    """A person approved a campaign's sample proofs for one design version.

    Valid while the campaign still uses that template at that version and
    size and ``withdrawn`` is empty; nothing of the campaign is proofed past
    the samples, or mailed, without a valid one."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="approvals")
    template = models.ForeignKey(ProofTemplate, on_delete=models.PROTECT, null=True, blank=True)
    design_version = models.CharField(max_length=40, help_text="The version of the design the samples were made from.")
    sample_recipient_ids = models.JSONField(default=list)
    approved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, related_name="+")
    approved_at = models.DateTimeField(auto_now_add=True)
    withdrawn_at = models.DateTimeField(null=True, blank=True)
    withdrawn_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ("-approved_at",)
        indexes = [models.Index(fields=["campaign", "approved_at"], name="approval_by_campaign")]

    def __str__(self) -> str:
        return f"{self.campaign} approved {self.design_version}"


class LocalDiscountCode(models.Model):
    """The local discount backend's store: what Shopify's discount codes are
    in production.  A code is created once (unique) and found again by a retry."""

    code = models.CharField(max_length=64, unique=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="+")
    recipient_id = models.BigIntegerField()
    value = models.CharField(max_length=40, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.code


class CampaignRecipient(fsm.ConcurrentTransitionMixin, models.Model):
    """One person of a campaign's audience, walked through the spec's machine.

    Transition methods only set fields on this row; the services in
    ``campaigns.services`` run them, save, and write the history row.
    """

    Status = CampaignRecipientStatus
    SkipReason = CampaignRecipientSkipReason
    ErrorMessages = ErrorMessages

    # No index of its own: recipient_campaign_status_id and the natural-key
    # constraint both lead with the campaign, and serve every query on it.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients", db_index=False)
    # Natural key of a recipient inside its campaign: the source's external id
    # when it has one, else a hash of the normalized name and address (see
    # docs).  Re-importing the same row finds the same recipient.
    natural_key = models.CharField(max_length=64)
    external_id = models.CharField(max_length=200, blank=True)
    first_name = models.CharField(max_length=200, blank=True)
    last_name = models.CharField(max_length=200, blank=True)
    company = models.CharField(max_length=200, blank=True)
    address1 = models.CharField(max_length=200, blank=True)
    address2 = models.CharField(max_length=200, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(max_length=100, blank=True)
    zip = models.CharField(max_length=20, blank=True)
    country = models.CharField(max_length=100, blank=True)
    email = models.CharField(max_length=254, blank=True)
    json = models.JSONField(default=dict, blank=True)  # spec's recipient.json: approval_errors, ...

    # No index of its own either (nor PostgreSQL's LIKE twin): the status
    # alone is served by recipient_status_lease, which leads with it.  Every
    # index is rewritten by every move, so none is kept twice.
    status = fsm.FSMField(choices=Status.choices, default=Status.PENDING, protected=True, max_length=32)
    skip_reason = models.CharField(max_length=32, choices=SkipReason.choices, blank=True)
    error_message = models.CharField(max_length=200, blank=True)
    error_detail = models.CharField(max_length=ERROR_DETAIL_MAX, blank=True)

    # Work claims (design principle 2 and reliability §2): a batch is claimed
    # with one CAS that stamps a token and a lease; the sweeper re-rings rows
    # whose lease ran out.
    claim_token = models.UUIDField(null=True, blank=True, db_index=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    attempt = models.PositiveIntegerField(default=0)
    # Exactly-once printing: the key is saved before the first printer call
    # and reused by every retry; a new generation only after proving the old
    # key created nothing.
    submission_gen = models.PositiveIntegerField(default=0)
    idempotency_key = models.CharField(max_length=100, blank=True)
    # When the key was first sent: past the printer's key window a retry looks
    # the piece up before it submits again.
    first_attempt_at = models.DateTimeField(null=True, blank=True)
    # Storage names (Django's storage API) of the proof's two sides, and the
    # template version they were rendered from.
    proof_url = models.CharField(max_length=500, blank=True)
    proof_back_url = models.CharField(max_length=500, blank=True)
    proof_version = models.CharField(max_length=40, blank=True)
    discount_code = models.CharField(max_length=64, blank=True)

    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "natural_key"], name="recipient_unique_natural_key"),
        ]
        indexes = [
            # Stage batches: "rows of this campaign in state X"; with the id,
            # also the admin's campaign + status filter in its order (newest
            # first) without sorting the rows.
            models.Index(fields=["campaign", "status", "id"], name="recipient_campaign_status_id"),
            # The sweeper: working rows whose lease ran out.
            models.Index(fields=["status", "lease_until"], name="recipient_status_lease"),
            # The admin's changelist at a million rows (docs/ops.md): each
            # filter in the list's order (newest first), so a page reads 100
            # index entries instead of sorting every matching row.
            models.Index(fields=["campaign", "id"], name="recipient_campaign_id"),
            models.Index(fields=["status", "id"], name="recipient_status_id"),
            # Only rows with a skip reason / an error message / printer
            # approval errors are indexed: small, and free for the others.
            models.Index(
                fields=["skip_reason", "id"], name="recipient_skip_reason", condition=~models.Q(skip_reason="")
            ),
            models.Index(
                fields=["error_message", "id"], name="recipient_error_message", condition=~models.Q(error_message="")
            ),
            models.Index(
                fields=["id"],
                name="recipient_approval_errors",
                condition=models.Q(HasKey(models.F("json"), APPROVAL_ERRORS)),
            ),
            # The admin's search (campaigns/search.py): case-insensitive
            # prefix and whole-value lookups.
            PrefixIndex(fields=["last_name", "first_name"], name="recipient_name_prefix"),
            PrefixIndex(fields=["email"], name="recipient_email_prefix"),
            PrefixIndex(fields=["zip"], name="recipient_zip_prefix"),
            PrefixIndex(fields=["external_id"], name="recipient_external_id_prefix"),
        ]

    def __str__(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip() or self.company or f"#{self.pk}"
        return name

    @property
    def why(self) -> str:
        """One line saying why the recipient is where it is, for ops: the error
        message, or the skip reason with the first recorded detail."""
        if self.status == self.Status.ERROR:
            message = self.error_message or "Error (no message recorded)"
            return f"{message}: {self.error_detail}" if self.error_detail else message
        if self.status == self.Status.BLACKLISTED:
            return "On the organization's blocklist"
        if self.status == self.Status.HOLDOUT:
            return "Control group (holdout)"
        if self.status in (self.Status.SENDING_STAGED, self.Status.SCHEDULED) and self.error_detail:
            # Waiting after a transient failure (timeout, 429, 5xx) or for
            # billing: the last failure, until the row moves on.
            detail = self.error_detail
            if detail.startswith(WAITING):
                return f"Waiting: {detail.removeprefix(WAITING)}"
            tries = f"{self.attempt} attempt{'s' if self.attempt != 1 else ''} so far"
            return f"Will try again ({tries}): {detail}"
        if self.status != self.Status.SKIPPED:
            return ""
        # Only the details of the current reason: a row re-validated and then
        # skipped for another reason never shows the old reason's details.
        details = skip_details(self.json, self.skip_reason)
        if not details and self.skip_reason == self.SkipReason.CAP_EXCEEDED:
            details = [CAP_EXCEEDED_WHY]
        if not details:
            return self.skip_reason or "Skipped"
        more = f" (+{len(details) - 1} more)" if len(details) > 1 else ""
        return f"{self.skip_reason}: {details[0]}{more}"

    # --- the seed's edges (spec 000) ------------------------------------------------

    @fsm.transition(field=status, source=Status.PENDING, target=Status.PROOFING_STAGED, custom={"sets": CLEAR_PROBLEM})
    def stage_proofing(self) -> None:
        self._apply_sets("stage_proofing")

    @fsm.transition(field=status, source=Status.PENDING, target=Status.ADDRESS_ENRICHABLE)
    def mark_enrichable(self) -> None:
        pass

    @fsm.transition(
        field=status,
        source=[Status.PENDING, Status.ADDRESS_ENRICHING],
        target=Status.SKIPPED,
        custom={"admin": False, "sets": _skip_sets},
    )
    def skip(self, *, skip_reason: str, details: Any = None) -> None:
        # ``skip_reason`` (not ``reason``): the services' ``reason`` is the history note.
        # ``details`` is per object only: a bulk move refuses it.
        self._apply_sets("skip", skip_reason=skip_reason)
        if details is not None:
            self.json = {**self.json, SKIP_DETAILS: details}

    @fsm.transition(field=status, source=Status.PENDING, target=Status.HOLDOUT, custom={"admin": False})
    def hold_out(self) -> None:
        pass

    @fsm.transition(
        field=status,
        source=Status.PROOFING_STAGED,
        target=Status.PROOFING,
        custom={"admin": False, "sets": _claim_sets},
    )
    def start_proofing(self, *, claim_token: uuid.UUID, lease_until: dt.datetime) -> None:
        self._apply_sets("start_proofing", claim_token=claim_token, lease_until=lease_until)

    @fsm.transition(
        field=status, source=Status.PROOFING, target=Status.PROOFED, custom={"admin": False, "sets": _proofed_sets}
    )
    def mark_proofed(
        self, *, proof_url: str | None = None, proof_back_url: str | None = None, proof_version: str | None = None
    ) -> None:
        self._apply_sets(
            "mark_proofed", proof_url=proof_url, proof_back_url=proof_back_url, proof_version=proof_version
        )

    @fsm.transition(
        field=status,
        source=[Status.PROOFING, Status.SENDING],
        target=Status.ERROR,
        custom={"admin": False, "sets": _fail_sets},
    )
    def fail(self, *, message: str, detail: str = "") -> None:
        self._apply_sets("fail", message=message, detail=detail)

    @fsm.transition(field=status, source=Status.PROOFED, target=Status.SENDING_STAGED, custom={"admin": False})
    def stage_sending(self) -> None:
        pass

    @fsm.transition(field=status, source=Status.PROOFED, target=Status.SCHEDULED, custom={"admin": False})
    def schedule(self) -> None:
        pass

    @fsm.transition(
        field=status,
        source=Status.SENDING_STAGED,
        target=Status.SENDING,
        custom={"admin": False, "sets": _claim_sets},
    )
    def start_sending(self, *, claim_token: uuid.UUID, lease_until: dt.datetime) -> None:
        self._apply_sets("start_sending", claim_token=claim_token, lease_until=lease_until)

    @fsm.transition(
        field=status,
        source=[Status.SENDING, Status.SCHEDULED],
        target=Status.SENT,
        # The printer has it: a failure kept from an earlier attempt no longer explains anything.
        custom={"admin": False, "sets": {**RELEASE_CLAIM, "error_detail": ""}},
    )
    def mark_sent(self) -> None:
        self._apply_sets("mark_sent")

    @fsm.transition(
        field=status,
        source=Status.SENDING,
        target=Status.SENDING_STAGED,
        custom={"admin": False, "sets": _requeue_sets},
    )
    def requeue_sending(self, *, not_before: dt.datetime | None = None) -> None:
        """Transient printer failure, or a lease that ran out: back to the
        queue with the same key, claimable from ``not_before``."""
        self._apply_sets("requeue_sending", not_before=not_before)

    @fsm.transition(field=status, source=Status.SENT, target=Status.RECEIVED, custom={"admin": False})
    def mark_received(self) -> None:
        pass

    @fsm.transition(
        field=status,
        source=Status.ADDRESS_ENRICHABLE,
        target=Status.ADDRESS_ENRICHING,
        custom={"admin": False, "sets": _claim_sets},
    )
    def start_enriching(self, *, claim_token: uuid.UUID, lease_until: dt.datetime) -> None:
        self._apply_sets("start_enriching", claim_token=claim_token, lease_until=lease_until)

    @fsm.transition(
        field=status,
        source=Status.ADDRESS_ENRICHING,
        target=Status.PENDING,
        custom={"admin": False, "sets": RELEASE_CLAIM},
    )
    def mark_enriched(self) -> None:
        self._apply_sets("mark_enriched")

    # --- additions: see docs/state-machines.md ----------------------------------------

    @fsm.transition(field=status, source=Status.PENDING, target=Status.BLACKLISTED, custom={"admin": False})
    def blacklist(self) -> None:
        pass

    @fsm.transition(
        field=status,
        source=[Status.PROOFING_STAGED, Status.SENDING_STAGED, Status.SCHEDULED],
        target=Status.ERROR,
        custom={"admin": False, "sets": _fail_sets},
    )
    def fail_queued(self, *, message: str, detail: str = "") -> None:
        """Queue-level failures and the billing preflight, which fails closed
        before a staged row is claimed."""
        self._apply_sets("fail_queued", message=message, detail=detail)

    @fsm.transition(
        field=status,
        source=Status.PROOFING,
        target=Status.PROOFING_STAGED,
        custom={"admin": False, "sets": _requeue_sets},
    )
    def requeue_proofing(self, *, not_before: dt.datetime | None = None) -> None:
        """The proofing lease ran out (worker died), or a transient failure
        asks for a later try: stage again, claimable from ``not_before``."""
        self._apply_sets("requeue_proofing", not_before=not_before)

    @fsm.transition(
        field=status,
        source=[Status.PROOFED, Status.SENDING_STAGED, Status.SCHEDULED],
        target=Status.PROOFING_STAGED,
        # A row tried before may be at the printer as it was sent: it
        # finishes under its saved request, never made again; so does a
        # Scheduled row a worker holds.
        conditions=[never_sent, scheduled_untouched],
        custom={
            "admin": False,
            "sets": RELEASE_CLAIM,
            "guard": {Status.SENDING_STAGED: NEVER_SENT, Status.SCHEDULED: SCHEDULED_UNTOUCHED},
        },
    )
    def reproof(self) -> None:
        """The campaign's design changed after this proof was made, or the
        recipient's name or address did before the card went to the printer:
        make it again (the discount code is kept).  A Scheduled card too: its
        day has not come, nothing of it is at the printer, and it must not
        go out with a design (or a card size) no longer approved."""
        self._apply_sets("reproof")

    @fsm.transition(
        field=status,
        source=Status.ERROR,
        target=Status.PROOFING_STAGED,
        conditions=[is_proofing_error],
        custom={"label": "Retry from proofing", "sets": CLEAR_PROBLEM},
    )
    def retry_proofing(self) -> None:
        self._apply_sets("retry_proofing")

    @fsm.transition(
        field=status,
        source=Status.ERROR,
        target=Status.SENDING_STAGED,
        conditions=[is_mailing_error],
        custom={"label": "Retry sending (keeps the proof)", "sets": CLEAR_PROBLEM},
    )
    def retry_sending(self) -> None:
        self._apply_sets("retry_sending")

    @fsm.transition(
        field=status,
        source=[Status.SKIPPED, Status.BLACKLISTED],
        target=Status.PENDING,
        custom={"label": "Re-validate", "sets": CLEAR_PROBLEM},
    )
    def revalidate(self) -> None:
        self._apply_sets("revalidate")

    @fsm.transition(
        field=status,
        source=[
            Status.PENDING,
            Status.SKIPPED,
            Status.HOLDOUT,
            Status.ERROR,
            Status.BLACKLISTED,
            Status.ADDRESS_ENRICHABLE,
            Status.PROOFED,
            Status.SCHEDULED,
        ],
        # A Scheduled card is ours until its day (docs/mailing.md): nothing at
        # the printer to cancel, unless a worker holds it now or an attempt
        # was made (the printer may have the piece): those stay.
        conditions=[scheduled_untouched],
        target=Status.ARCHIVED,
        custom={"label": "Archive (exclude from campaign)", "guard": {Status.SCHEDULED: SCHEDULED_UNTOUCHED}},
    )
    def archive(self) -> None:
        pass

    def _apply_sets(self, method: str, **kwargs: Any) -> None:
        apply_sets(self, transition_sets(type(self), method, **kwargs))


class RecipientTransition(TransitionLog):
    # Indexed by recipient_transition_by_obj, which leads with it.
    recipient = models.ForeignKey(
        CampaignRecipient, on_delete=models.CASCADE, related_name="transitions", db_index=False
    )

    class Meta(TransitionLog.Meta):
        # One object's history, newest first; also the recipient's own lookups.
        indexes = [models.Index(fields=["recipient", "created"], name="recipient_transition_by_obj")]
