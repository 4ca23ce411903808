"""A simulated Stripe for the billing preflight: the read endpoints it calls.

Serve it with ``Simulator(handlers={"stripe": StripeHandler})`` and point the
client at ``f"{sim.base_url}/stripe"`` (Stripe's base address has no
``/v1``; the client adds it).  Seed the in-memory account through the
handler, ``sim.handlers["stripe"]``::

    stripe = sim.handlers["stripe"]
    stripe.add_price("price_postcard")
    stripe.add_customer("cus_1")
    stripe.add_subscription("sub_1", customer="cus_1", status="active")
    stripe.add_item("si_1", subscription="sub_1", price="price_postcard")

Served: ``GET /v1/customers/{id}`` (a deleted customer answers 200 with
``"deleted": true``, as Stripe does), ``GET /v1/subscriptions`` (``customer``,
``status`` with Stripe's rule that no status means "not canceled", ``limit``,
``starting_after``) and ``GET /v1/subscription_items/{id}`` with its price
expanded.  Unknown objects get Stripe's 404 envelope with
``code: resource_missing``; unknown URLs a 404 without a code.  A request
without a bearer (or Basic) key is a 401; when ``sim.secrets["stripe"]`` is
set, only that key is accepted.  Faults (``sim.inject("stripe", 503)``) use
Stripe's error envelope too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from printers.simulator.core import Simulator, VendorHandler

Response = tuple[int, dict[str, str], bytes]
# ``status=ended`` lists these; no ``status`` lists "all subscriptions that have not been canceled".
ENDED = frozenset({"canceled", "incomplete_expired"})


class StripeHandler(VendorHandler):
    name = "stripe"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self.customers: dict[str, dict[str, Any]] = {}
        self.subscriptions: dict[str, dict[str, Any]] = {}
        self.items: dict[str, dict[str, Any]] = {}
        self.prices: dict[str, dict[str, Any]] = {}

    # ------------------------------------------------------------------ seeding, for tests
    def add_customer(self, customer_id: str, *, deleted: bool = False) -> None:
        self.customers[customer_id] = {"id": customer_id, "deleted": deleted}

    def add_price(self, price_id: str, *, active: bool = True, unit_amount: int = 89) -> None:
        self.prices[price_id] = {"id": price_id, "active": active, "unit_amount": unit_amount}

    def add_subscription(self, subscription_id: str, *, customer: str, status: str = "active") -> None:
        self.subscriptions[subscription_id] = {"id": subscription_id, "customer": customer, "status": status}

    def add_item(self, item_id: str, *, subscription: str, price: str) -> None:
        self.items[item_id] = {"id": item_id, "subscription": subscription, "price": price}

    def seed_ready(
        self,
        customer: str = "cus_ready",
        *,
        subscription: str = "sub_ready",
        item: str = "si_ready",
        price: str = "price_postcard",
    ) -> None:
        """A customer with one active subscription whose item is on ``price``."""
        self.add_price(price)
        self.add_customer(customer)
        self.add_subscription(subscription, customer=customer)
        self.add_item(item, subscription=subscription, price=price)

    # ------------------------------------------------------------------ Stripe's wire format
    def error_body(self, status: int, message: str, code: str) -> bytes:
        kind = "api_error" if status >= 500 else "invalid_request_error"
        error = {"type": kind, "message": message}
        if code:
            error["code"] = "rate_limit" if status == 429 else code
        return json.dumps({"error": error}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if not self._authorized(headers.get("authorization", "")):
            return self.error(401, "Invalid API Key provided.", "")
        parts = [unquote(p) for p in path.strip("/").split("/")]
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "customers"]:
            return self._found(self.customers.get(parts[2]), "customer", parts[2], self._customer)
        if method == "GET" and parts == ["v1", "subscriptions"]:
            return self._list_subscriptions(query)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "subscription_items"]:
            return self._found(self.items.get(parts[2]), "subscription_item", parts[2], self._item)
        return self.error(404, f"Unrecognized request URL ({method}: {path}).", "")

    def _authorized(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                credential = base64.b64decode(credential).decode().partition(":")[0]
            except (binascii.Error, UnicodeDecodeError):
                return False
        elif scheme.lower() != "bearer":
            return False
        expected = self.secret
        return credential == expected if expected else credential.startswith(("sk_", "rk_"))

    def _found(self, obj: dict[str, Any] | None, kind: str, obj_id: str, view: Any) -> Response:
        if obj is None:
            return self.error(404, f"No such {kind}: '{obj_id}'", "resource_missing")
        return self.json_response(200, view(obj))

    def _customer(self, customer: dict[str, Any]) -> dict[str, Any]:
        if customer["deleted"]:
            return {"id": customer["id"], "object": "customer", "deleted": True}
        return {"id": customer["id"], "object": "customer", "livemode": False}

    def _price(self, price_id: str) -> dict[str, Any]:
        price = self.prices.get(price_id) or {"id": price_id, "active": True, "unit_amount": 0}
        return {"object": "price", "currency": "usd", "type": "recurring", **price}

    def _item(self, item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": item["id"],
            "object": "subscription_item",
            "subscription": item["subscription"],
            "price": self._price(item["price"]),
            "quantity": 1,
        }

    def _subscription(self, subscription: dict[str, Any]) -> dict[str, Any]:
        items = [self._item(i) for i in self.items.values() if i["subscription"] == subscription["id"]]
        return {
            "object": "subscription",
            **subscription,
            "items": {"object": "list", "data": items, "has_more": False},
        }

    def _list_subscriptions(self, query: dict[str, list[str]]) -> Response:
        def first(name: str, default: str = "") -> str:
            return (query.get(name) or [default])[-1]

        customer, status = first("customer"), first("status")
        try:
            limit = int(first("limit", "10"))
        except ValueError:
            return self.error(400, "Invalid integer: limit", "parameter_invalid_integer")
        if not 1 <= limit <= 100:
            return self.error(400, "Limit must be between 1 and 100.", "parameter_invalid_integer")
        rows = [s for s in self.subscriptions.values() if not customer or s["customer"] == customer]
        if not status:
            rows = [s for s in rows if s["status"] != "canceled"]
        elif status == "ended":
            rows = [s for s in rows if s["status"] in ENDED]
        elif status != "all":
            rows = [s for s in rows if s["status"] == status]
        after = first("starting_after")
        if after:
            ids = [s["id"] for s in rows]
            if after not in ids:
                return self.error(404, f"No such subscription: '{after}'", "resource_missing")
            rows = rows[ids.index(after) + 1 :]
        page = rows[:limit]
        return self.json_response(
            200,
            {
                "object": "list",
                "url": "/v1/subscriptions",
                "data": [self._subscription(s) for s in page],
                "has_more": len(rows) > limit,
            },
        )
