"""Discount codes: derived once per recipient, minted once, never somebody else's.

Local backend against the database (the race runs on real connections, on
SQLite and PostgreSQL); the Shopify client against the in-memory shop served
by the local simulator.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from functools import partial

import pytest

from campaigns.discounts import local as local_module
from campaigns.discounts.base import CODE_CHARS, DiscountError, discount_code_for, get_discount_client
from campaigns.discounts.local import LocalDiscountClient
from campaigns.discounts.service import parse_discount_value, recipient_discount_code
from campaigns.discounts.shopify import ShopifyDiscountClient
from campaigns.discounts.shopify_stub import ShopifyHandler
from campaigns.models import Campaign, LocalDiscountCode
from campaigns.tests.factories import CampaignFactory
from common.testing import race
from printers.simulator import Fault, Simulator

TOKEN = "shpat_test_token"


# ---------------------------------------------------------------- fixtures
@pytest.fixture
def shop_sim() -> Iterator[Simulator]:
    sim = Simulator(handlers={"shopify": ShopifyHandler}, secrets={"shopify": TOKEN}).start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def shop(shop_sim: Simulator) -> ShopifyHandler:
    handler = shop_sim.handlers["shopify"]
    assert isinstance(handler, ShopifyHandler)
    return handler


def shopify(sim: Simulator, token: str = TOKEN) -> ShopifyDiscountClient:
    return ShopifyDiscountClient(shop_url=f"{sim.base_url}/shopify", access_token=token, timeout=2)


def discounted(**kwargs):
    return CampaignFactory(discount_enabled=True, discount_prefix="SPRING", discount_value="10%", **kwargs)


def mint(client, campaign: Campaign, recipient_id: int) -> str:
    return client.mint(campaign=campaign, recipient_id=recipient_id, code=discount_code_for(campaign, recipient_id))


# ---------------------------------------------------------------- derived codes
@pytest.mark.django_db
def test_derived_codes_are_deterministic_and_differ_per_recipient_and_campaign() -> None:
    one, two = discounted(), discounted()
    code = discount_code_for(one, 7)
    assert code == discount_code_for(Campaign.objects.get(pk=one.pk), 7)  # a retry in another process
    assert code.startswith("SPRING-")
    assert len(code) == len("SPRING-") + CODE_CHARS
    assert code != discount_code_for(one, 8)
    assert code != discount_code_for(two, 7)


@pytest.mark.django_db
def test_the_prefix_is_sanitized_to_plain_letters_and_digits() -> None:
    campaign = CampaignFactory(discount_prefix="spr íng-10! ")
    assert discount_code_for(campaign, 1).startswith("SPRNG10-")
    assert "-" not in discount_code_for(CampaignFactory(discount_prefix="--"), 1)


@pytest.mark.django_db
def test_the_secret_changes_every_code(settings) -> None:
    campaign = discounted()
    settings.DISCOUNTS = {"backend": "local", "code_secret": "one"}
    first = discount_code_for(campaign, 1)
    settings.DISCOUNTS = {"backend": "local", "code_secret": "two"}
    assert discount_code_for(campaign, 1) != first


@pytest.mark.django_db
def test_ten_thousand_recipients_get_ten_thousand_codes() -> None:
    campaign = discounted()
    codes = {discount_code_for(campaign, recipient_id) for recipient_id in range(10_000)}
    assert len(codes) == 10_000
    allowed = set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert all(set(code.removeprefix("SPRING-")) <= allowed for code in codes)


# ---------------------------------------------------------------- discount values
@pytest.mark.parametrize(
    ("text", "value_type", "value", "amount"),
    [
        ("10%", "percentage", "-10.0", Decimal("10")),
        (" 12.5 % ", "percentage", "-12.5", Decimal("12.5")),
        ("12.25%", "percentage", "-12.25", Decimal("12.25")),
        ("100%", "percentage", "-100.0", Decimal("100")),
        ("5.00", "fixed_amount", "-5.00", Decimal("5.00")),
        ("$5", "fixed_amount", "-5.00", Decimal("5")),
    ],
)
def test_discount_values_in_shopifys_terms(text: str, value_type: str, value: str, amount: Decimal) -> None:
    parsed = parse_discount_value(text)
    assert (parsed.value_type, parsed.value, parsed.amount) == (value_type, value, amount)


@pytest.mark.parametrize("text", ["", "ten percent", "-10%", "0%", "0", "150%", "5.001", "10%%", "5,00"])
def test_an_unreadable_discount_value_is_a_permanent_error(text: str) -> None:
    with pytest.raises(DiscountError) as info:
        parse_discount_value(text)
    assert info.value.permanent is True
    assert "discount value" in info.value.message


# ---------------------------------------------------------------- local backend
@pytest.mark.django_db
def test_local_mint_stores_the_code_on_the_recipient_and_campaign() -> None:
    campaign = discounted()
    code = mint(LocalDiscountClient(), campaign, 42)
    row = LocalDiscountCode.objects.get()
    assert (row.code, row.campaign_id, row.recipient_id, row.value) == (code, campaign.pk, 42, "10%")


@pytest.mark.django_db
def test_local_re_mint_finds_the_code_instead_of_adding_one() -> None:
    campaign = discounted()
    client = LocalDiscountClient()
    assert mint(client, campaign, 42) == mint(client, campaign, 42)
    assert LocalDiscountCode.objects.count() == 1


@pytest.mark.django_db
def test_local_lost_insert_race_reads_the_winners_row(monkeypatch) -> None:
    """The other worker inserted between our look and our insert: the unique
    index refuses ours and we return the code it stored."""
    campaign = discounted()
    code = mint(LocalDiscountClient(), campaign, 42)
    real_filter = LocalDiscountCode.objects.filter
    looks: list[int] = []

    def first_look_misses(*args, **kwargs):
        looks.append(1)
        return real_filter(pk=-1) if len(looks) == 1 else real_filter(*args, **kwargs)

    monkeypatch.setattr(local_module.LocalDiscountCode.objects, "filter", first_look_misses)
    assert mint(LocalDiscountClient(), campaign, 42) == code
    assert len(looks) == 2  # the pre-check and the re-read after IntegrityError
    assert LocalDiscountCode.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_workers_minting_the_same_code_leave_one_row() -> None:
    campaign = discounted()
    code = discount_code_for(campaign, 42)

    def worker() -> str:
        return LocalDiscountClient().mint(campaign=campaign, recipient_id=42, code=code)

    assert race([worker] * 4, timeout=30) == [code] * 4
    assert LocalDiscountCode.objects.filter(code=code).count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("other", ["recipient", "campaign"])
def test_local_code_of_somebody_else_is_never_handed_out(other: str) -> None:
    campaign = discounted()
    code = discount_code_for(campaign, 42)
    owner = discounted() if other == "campaign" else campaign
    LocalDiscountCode.objects.create(code=code, campaign=owner, recipient_id=42 if other == "campaign" else 43)
    with pytest.raises(DiscountError, match="belongs to another recipient") as info:
        LocalDiscountClient().mint(campaign=campaign, recipient_id=42, code=code)
    assert info.value.permanent is True


@pytest.mark.django_db
def test_local_bad_discount_value_is_permanent_and_stores_nothing() -> None:
    campaign = CampaignFactory(discount_enabled=True, discount_value="lots")
    with pytest.raises(DiscountError) as info:
        mint(LocalDiscountClient(), campaign, 1)
    assert info.value.permanent is True
    assert LocalDiscountCode.objects.count() == 0


# ---------------------------------------------------------------- Shopify against the stub
@pytest.mark.django_db
def test_shopify_creates_the_price_rule_once_and_a_code_per_recipient(shop_sim, shop) -> None:
    campaign = discounted()
    client = shopify(shop_sim)
    codes = [mint(client, campaign, 1), mint(client, Campaign.objects.get(pk=campaign.pk), 2)]

    assert shop.price_rules_created == 1
    rule_id = Campaign.objects.get(pk=campaign.pk).discount_price_rule_id
    assert rule_id
    assert shop.codes_of(rule_id) == sorted(codes)
    (sent,) = [r for r in shop_sim.captured("shopify", "POST") if r.path.endswith("/price_rules.json")]
    assert sent.path == "/admin/api/2025-01/price_rules.json"
    assert sent.headers["x-shopify-access-token"] == TOKEN
    rule = json.loads(sent.body)["price_rule"]
    assert rule["value_type"] == "percentage"
    assert rule["value"] == "-10.0"
    assert (rule["once_per_customer"], rule["usage_limit"], rule["customer_selection"]) == (True, 1, "all")
    assert f"campaign {campaign.pk}" in rule["title"]


@pytest.mark.django_db
def test_shopify_fixed_amount(shop_sim, shop) -> None:
    campaign = CampaignFactory(discount_enabled=True, discount_value="5.00")
    mint(shopify(shop_sim), campaign, 1)
    (rule,) = shop.price_rules.values()
    assert (rule["value_type"], rule["value"]) == ("fixed_amount", "-5.00")


@pytest.mark.django_db
def test_shopify_mint_twice_creates_one_code(shop_sim, shop) -> None:
    campaign = discounted()
    client = shopify(shop_sim)
    assert mint(client, campaign, 1) == mint(client, campaign, 1)
    assert shop.codes_created == 1
    assert len(shop_sim.captured("shopify", "GET")) == 1  # the second call confirmed it by lookup


@pytest.mark.django_db
@pytest.mark.parametrize("fault", [Fault.status_after_create(503), Fault.drop_after_create()])
def test_crash_after_the_code_was_created_finds_it_on_retry(shop_sim, shop, fault: Fault) -> None:
    """The shop created the code but we never heard back (as if we crashed
    before our commit): the retry derives the same code and finds it."""
    campaign = discounted()
    client = shopify(shop_sim)
    client.price_rule_for(campaign, parse_discount_value(campaign.discount_value))
    fault.path_contains = "/discount_codes"
    shop_sim.inject("shopify", fault)
    with pytest.raises(DiscountError) as info:
        mint(client, campaign, 1)
    assert info.value.permanent is False
    assert shop.codes_created == 1

    fresh = Campaign.objects.get(pk=campaign.pk)  # a retry in another worker
    assert mint(shopify(shop_sim), fresh, 1) == discount_code_for(campaign, 1)
    assert shop.codes_created == 1
    assert shop.price_rules_created == 1


@pytest.mark.django_db
def test_a_code_under_another_price_rule_is_never_handed_out(shop_sim, shop) -> None:
    campaign = discounted()
    shop.add_code(discount_code_for(campaign, 1).lower(), shop.add_price_rule())  # codes are case-insensitive
    with pytest.raises(DiscountError, match="under another discount") as info:
        mint(shopify(shop_sim), campaign, 1)
    assert info.value.permanent is True
    assert shop.codes_created == 0


@pytest.mark.django_db
def test_a_rate_limit_is_transient_with_shopifys_wait(shop_sim, shop) -> None:
    shop_sim.inject("shopify", 429)
    with pytest.raises(DiscountError) as info:
        mint(shopify(shop_sim), discounted(), 1)
    assert (info.value.permanent, info.value.status_code, info.value.retry_after) == (False, 429, 1.0)


@pytest.mark.django_db
@pytest.mark.parametrize("status", [500, 502, 503])
def test_a_server_error_is_transient(shop_sim, shop, status: int) -> None:
    campaign = discounted()
    shop_sim.inject("shopify", Fault.status(status, path_contains="/discount_codes"))
    with pytest.raises(DiscountError) as info:
        mint(shopify(shop_sim), campaign, 1)
    assert (info.value.permanent, info.value.status_code) == (False, status)
    assert mint(shopify(shop_sim), campaign, 1)  # and the retry goes through on the same rule
    assert shop.price_rules_created == 1


@pytest.mark.django_db
def test_a_timeout_after_the_code_was_created_is_transient_and_the_retry_finds_it(shop_sim, shop) -> None:
    campaign = discounted()
    shop_sim.inject("shopify", Fault.timeout_after_create(1.0, path_contains="/discount_codes"))
    client = ShopifyDiscountClient(shop_url=f"{shop_sim.base_url}/shopify", access_token=TOKEN, timeout=0.3)
    with pytest.raises(DiscountError, match="timed out") as info:
        mint(client, campaign, 1)
    assert info.value.permanent is False
    assert mint(client, campaign, 1) == discount_code_for(campaign, 1)
    assert shop.codes_created == 1


@pytest.mark.django_db
def test_a_wrong_access_token_is_permanent(shop_sim, shop) -> None:
    with pytest.raises(DiscountError, match="access token") as info:
        mint(shopify(shop_sim, token="shpat_wrong"), discounted(), 1)
    assert (info.value.permanent, info.value.status_code) == (True, 401)
    assert shop.price_rules_created == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", [403, 404])
def test_forbidden_or_not_found_are_permanent(shop_sim, shop, status: int) -> None:
    shop_sim.inject("shopify", status)
    with pytest.raises(DiscountError) as info:
        mint(shopify(shop_sim), discounted(), 1)
    assert (info.value.permanent, info.value.status_code) == (True, status)


@pytest.mark.django_db
def test_a_price_rule_deleted_in_the_shop_is_permanent(shop_sim, shop) -> None:
    campaign = discounted(discount_price_rule_id="999999")
    with pytest.raises(DiscountError, match="no longer has") as info:
        mint(shopify(shop_sim), campaign, 1)
    assert info.value.permanent is True


@pytest.mark.django_db
def test_shopify_bad_discount_value_is_permanent_and_sends_nothing(shop_sim, shop) -> None:
    campaign = CampaignFactory(discount_enabled=True, discount_value="half off")
    with pytest.raises(DiscountError, match="not understood") as info:
        mint(shopify(shop_sim), campaign, 1)
    assert info.value.permanent is True
    assert shop_sim.captured("shopify") == []


@pytest.mark.django_db
def test_the_loser_of_the_price_rule_race_uses_the_winners_and_deletes_its_own(shop_sim, shop, monkeypatch) -> None:
    campaign = discounted()
    client = shopify(shop_sim)
    winner = str(shop.add_price_rule("the other worker's rule"))
    real_create = client._create_price_rule

    def other_worker_stores_first(*args, **kwargs) -> str:
        created = real_create(*args, **kwargs)
        Campaign.objects.filter(pk=campaign.pk).update(discount_price_rule_id=winner)
        return created

    monkeypatch.setattr(client, "_create_price_rule", other_worker_stores_first)
    code = mint(client, campaign, 1)
    assert campaign.discount_price_rule_id == winner
    assert Campaign.objects.get(pk=campaign.pk).discount_price_rule_id == winner
    assert shop.codes_of(winner) == [code]
    assert (shop.price_rules_created, shop.price_rules_deleted, len(shop.price_rules)) == (1, 1, 1)


@pytest.mark.django_db(transaction=True)
def test_two_workers_on_a_fresh_campaign_share_one_price_rule(shop_sim, shop) -> None:
    campaign = discounted()

    def worker(recipient_id: int) -> str:
        return mint(shopify(shop_sim), Campaign.objects.get(pk=campaign.pk), recipient_id)

    codes = race([partial(worker, i) for i in range(4)], timeout=30)
    rule_id = Campaign.objects.get(pk=campaign.pk).discount_price_rule_id
    assert shop.codes_of(rule_id) == sorted(codes)
    assert list(shop.price_rules) == [int(rule_id)]  # every loser deleted its own rule
    assert shop.price_rules_created - shop.price_rules_deleted == 1


def test_shopify_needs_its_address_and_token() -> None:
    with pytest.raises(DiscountError, match="not configured") as info:
        ShopifyDiscountClient.from_settings({"shop_url": "my-shop.myshopify.com", "access_token": ""})
    assert info.value.permanent is True
    client = ShopifyDiscountClient.from_settings({"shop_url": "my-shop.myshopify.com", "access_token": "t"})
    assert client.api == "https://my-shop.myshopify.com/admin/api/2025-01"


def test_the_backend_switch(settings) -> None:
    settings.DISCOUNTS = {"backend": "local"}
    assert get_discount_client().name == "local"
    settings.DISCOUNTS = {"backend": "shopify", "shop_url": "https://s.example", "access_token": "t"}
    assert get_discount_client().name == "shopify"


# ---------------------------------------------------------------- the service
class CountingClient:
    name = "counting"

    def __init__(self) -> None:
        self.calls: list[tuple[int, int, str]] = []

    def mint(self, *, campaign: Campaign, recipient_id: int, code: str) -> str:
        self.calls.append((campaign.pk, recipient_id, code))
        return code


@pytest.mark.django_db
def test_a_recipient_with_a_code_is_never_re_minted() -> None:
    client = CountingClient()
    got = recipient_discount_code(campaign=discounted(), recipient_id=1, existing_code="OLD-CODE", client=client)
    assert got == "OLD-CODE"
    assert client.calls == []


@pytest.mark.django_db
def test_a_recipient_without_a_code_gets_the_derived_one_minted() -> None:
    campaign, client = discounted(), CountingClient()
    got = recipient_discount_code(campaign=campaign, recipient_id=5, existing_code="", client=client)
    assert got == discount_code_for(campaign, 5)
    assert client.calls == [(campaign.pk, 5, got)]


@pytest.mark.django_db
def test_the_service_uses_the_configured_backend(settings) -> None:
    settings.DISCOUNTS = {"backend": "local"}
    campaign = discounted()
    got = recipient_discount_code(campaign=campaign, recipient_id=5, existing_code="")
    assert LocalDiscountCode.objects.get().code == got


@pytest.mark.django_db
def test_mint_many_creates_each_code_once_and_refuses_another_recipients_code():
    campaign = CampaignFactory(discount_enabled=True, discount_value="10%")
    client = LocalDiscountClient()
    codes = {1: "A-1", 2: "A-2"}
    assert client.mint_many(campaign=campaign, codes=codes) == codes
    assert client.mint_many(campaign=campaign, codes=codes) == codes  # a retry finds them
    assert LocalDiscountCode.objects.count() == 2
    out = client.mint_many(campaign=campaign, codes={3: "A-1", 4: "A-4"})
    assert out[4] == "A-4"
    assert isinstance(out[3], DiscountError)
    assert out[3].permanent
    assert LocalDiscountCode.objects.get(code="A-1").recipient_id == 1
