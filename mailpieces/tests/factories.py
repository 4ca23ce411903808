from __future__ import annotations

import factory
from factory.django import DjangoModelFactory

from campaigns.tests.factories import CampaignRecipientFactory
from mailpieces.models import Mailpiece


class MailpieceFactory(DjangoModelFactory[Mailpiece]):
    class Meta:
        model = Mailpiece

    recipient = factory.SubFactory(CampaignRecipientFactory)
    printer = "sandbox"
    printer_id = factory.Sequence(lambda n: f"sbx_{n:08d}")
    reference = factory.LazyAttribute(lambda o: f"pc:test:{o.recipient.pk}:0")
