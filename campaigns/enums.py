"""The recipient vocabulary of the specification (000: campaign recipients).

Names, values and message strings are the contract: they are spelled exactly as
the spec spells them, and a test pins them.  Nothing here imports Django models,
so printers, importers and docs can use the enums cheaply.
"""

from __future__ import annotations

from django.db import models

# Labels are the spec's names too: the admin, the history, the docs and the
# error messages all say "ProofingStaged", never a second spelling.


class CampaignRecipientStatus(models.TextChoices):
    PENDING = "Pending", "Pending"  # Synced from integration. Ready for proofing.
    PROOFING_STAGED = "ProofingStaged", "ProofingStaged"  # Queued awaiting proof generation.
    PROOFING = "Proofing", "Proofing"  # Proof generation in progress.
    PROOFED = "Proofed", "Proofed"  # Proof generated. Ready for mailing.
    SENDING_STAGED = "SendingStaged", "SendingStaged"  # Queued awaiting mailpiece creation.
    SENDING = "Sending", "Sending"  # Mailpiece creation in progress.
    SENT = "Sent", "Sent"  # Mailpiece submitted to printer.
    RECEIVED = "Received", "Received"  # Mailpiece delivered (printer webhooks).
    SCHEDULED = "Scheduled", "Scheduled"  # Awaiting future mail date.
    HOLDOUT = "Holdout", "Holdout"  # Control group member. Not mailed intentionally.
    SKIPPED = "Skipped", "Skipped"  # Validation failed (see skip reason).
    ADDRESS_ENRICHABLE = "AddressEnrichable", "AddressEnrichable"  # Missing address, enrichment on.
    ADDRESS_ENRICHING = "AddressEnriching", "AddressEnriching"  # Enrichment in progress.
    ERROR = "Error", "Error"  # Fatal error in proof/mailer/queue.
    ARCHIVED = "Archived", "Archived"  # Excluded from campaign (legacy).
    BLACKLISTED = "Blacklisted", "Blacklisted"  # On organization blocklist.


class CampaignRecipientSkipReason(models.TextChoices):
    NO_ADDRESS = "NoAddress", "NoAddress"  # No address1 provided, or enrichment failed.
    INTERNATIONAL = "International", "International"  # Country check or address validation failed.
    CAP_EXCEEDED = "CapExceeded", "CapExceeded"  # Billing recipient cap reached.
    ENRICHMENT_FAILED = "EnrichmentFailed", "EnrichmentFailed"  # Faraday returned no result.
    PRINTER_APPROVAL_FAILED = "PrinterApprovalFailed", "PrinterApprovalFailed"  # Printer rules.


class ErrorMessages:
    """Error messages set on campaign recipients (``CampaignRecipient.error_message``)."""

    BILLING_NOT_READY = "Org billing is not ready to send"
    """Preflight error: no usable billing path for the org (no customer, no active
    subscription, ...). Fails closed at the proofing/sending stage so no proof
    credits are burnt and nothing is printed against an un-billable org."""

    COULD_NOT_GENERATE_CREATIVE = "Could not generate creative for recipient"
    """Printer error (Taylor): personalization service unavailable, incomplete
    template data, creative generation timeout, missing front/back assets."""

    FAILED_SUBMISSION_TO_MAILING_QUEUE = "Failed submission to Mailing Queue"
    """Mailing error: the mailing queue is down, unauthorized, rejects the data
    format or its quota is exceeded."""

    FAILED_SUBMISSION_TO_PRINTER = "Failed submission to Printer"
    """Printer error: the printer API is down, rejects our credentials or the
    piece's data, or its quota is exceeded."""

    FAILED_SUBMISSION_TO_PROOFING_QUEUE = "Failed submission to Proofing Queue"
    """Proofing error: the proofing queue is down, unauthorized, rejects the
    data format or its quota is exceeded."""

    FAILED_TO_APPLY_DISCOUNT_CODE = "Failed to apply discount code"
    """Proofing error: the discount code service or the shop platform failed,
    or the campaign's discount configuration is invalid."""

    FAILED_TO_MAKE_MAIL_PIECE = "Failed to make mail piece for this recipient"
    """Mailing error: the printer API failed, the address data is invalid, the
    mail piece template could not be generated, or the network failed."""

    FAILED_TO_MAKE_PROOF = "Failed to make proof for this recipient"
    """Proofing error: image generation, personalization or template rendering
    failed, or the proof service is unavailable."""

    @classmethod
    def all(cls) -> dict[str, str]:
        return {k: v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str)}
