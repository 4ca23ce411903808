from __future__ import annotations

import factory
from django.conf import settings
from factory.django import DjangoModelFactory

from campaigns.models import BlocklistEntry, Campaign, CampaignRecipient, Organization


class OrganizationFactory(DjangoModelFactory[Organization]):
    class Meta:
        model = Organization

    name = factory.Sequence(lambda n: f"Org {n}")
    # Billable by default (the local billing backend reads these fields).
    billing_customer_id = factory.Sequence(lambda n: f"cus_{n:06d}")
    subscription_active = True
    billing_subscription_item_id = factory.Sequence(lambda n: f"si_{n:06d}")
    billing_price_id = factory.LazyFunction(lambda: settings.BILLING["price_id"])


class CampaignFactory(DjangoModelFactory[Campaign]):
    class Meta:
        model = Campaign

    organization = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Campaign {n}")
    printer = "sandbox"


class CampaignRecipientFactory(DjangoModelFactory[CampaignRecipient]):
    class Meta:
        model = CampaignRecipient

    campaign = factory.SubFactory(CampaignFactory)
    natural_key = factory.Sequence(lambda n: f"key-{n:08d}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    address1 = factory.Sequence(lambda n: f"{100 + n} Main St")
    city = "Springfield"
    state = "IL"
    zip = "62701"
    country = "US"
    email = factory.Sequence(lambda n: f"person{n}@example.com")


class BlocklistEntryFactory(DjangoModelFactory[BlocklistEntry]):
    class Meta:
        model = BlocklistEntry

    organization = factory.SubFactory(OrganizationFactory)
    address1 = factory.Sequence(lambda n: f"{n + 1} Blocked Way")
    zip = "62701"
    country = "US"
