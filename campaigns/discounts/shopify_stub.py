"""An in-memory Shopify shop for tests: the Admin REST endpoints the discount
client uses, served by the local simulator (never the real shop).

    sim = Simulator(handlers={"shopify": ShopifyHandler}, secrets={"shopify": "shpat_test"}).start()
    client = ShopifyDiscountClient(shop_url=f"{sim.base_url}/shopify", access_token="shpat_test")
    shop = sim.handlers["shopify"]        # shop.codes_created, shop.price_rules_created, shop.codes_of(rule)

Served: create / get / delete a price rule, create a discount code under one
(codes are unique per shop, case-insensitive: 422 "must be unique"), get a code,
and the code lookup (303 See Other with the code's address).  With a secret
configured for "shopify", any other access token gets 401.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from printers.simulator import VendorHandler

if TYPE_CHECKING:
    from printers.simulator import Simulator

_ROUTE = re.compile(r"^/admin/api/(?P<version>[^/]+)/(?P<rest>.+?)(?:\.json)?$")
_RULE_FIELDS = (
    "title",
    "target_type",
    "target_selection",
    "allocation_method",
    "value_type",
    "value",
    "customer_selection",
    "starts_at",
)

Response = tuple[int, dict[str, str], bytes]


class ShopifyHandler(VendorHandler):
    name = "shopify"

    def __init__(self, sim: Simulator) -> None:
        super().__init__(sim)
        self._lock = threading.Lock()
        self._next_id = 1000
        self.price_rules: dict[int, dict[str, Any]] = {}
        self.codes: dict[str, dict[str, Any]] = {}  # upper-cased code -> discount_code
        self.price_rules_created = 0
        self.price_rules_deleted = 0
        self.codes_created = 0

    # ------------------------------------------------------------------ for tests
    def codes_of(self, rule_id: int | str) -> list[str]:
        with self._lock:
            return sorted(c["code"] for c in self.codes.values() if c["price_rule_id"] == int(rule_id))

    def add_price_rule(self, title: str = "somebody else's discount") -> int:
        """A price rule made outside our app (e.g. by the merchant)."""
        with self._lock:
            return self._add_rule({"title": title, "value_type": "percentage", "value": "-50.0"})["id"]

    def add_code(self, code: str, rule_id: int) -> None:
        with self._lock:
            self._add_code(code, rule_id)

    # ------------------------------------------------------------------ wire
    def error_body(self, status: int, message: str, code: str) -> bytes:
        return json.dumps({"errors": message}).encode()

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        if self.secret and headers.get("x-shopify-access-token") != self.secret:
            return self.error(401, "[API] Invalid API key or access token (unrecognized login or wrong password)", "")
        route = _ROUTE.match(path)
        if route is None:
            return self.error(404, "Not Found", "")
        version, parts = route["version"], route["rest"].split("/")
        payload = json.loads(body) if body else {}
        with self._lock:
            if parts == ["price_rules"] and method == "POST":
                return self._create_rule(payload)
            if parts == ["discount_codes", "lookup"] and method == "GET":
                return self._lookup((query.get("code") or [""])[0], version, headers.get("host", ""))
            if len(parts) == 2 and parts[0] == "price_rules" and parts[1].isdigit():
                return self._rule(method, int(parts[1]))
            if len(parts) == 3 and parts[0] == "price_rules" and parts[2] == "discount_codes" and method == "POST":
                return self._create_code(int(parts[1]), payload)
            if len(parts) == 4 and parts[0] == "price_rules" and parts[2] == "discount_codes" and method == "GET":
                return self._code(int(parts[1]), int(parts[3]))
        return self.error(404, "Not Found", "")

    # ------------------------------------------------------------------ endpoints (under the lock)
    def _create_rule(self, payload: dict[str, Any]) -> Response:
        rule = payload.get("price_rule") or {}
        missing = {f: ["can't be blank"] for f in _RULE_FIELDS if rule.get(f) in (None, "")}
        if missing:
            return self.json_response(422, {"errors": missing})
        if rule["value_type"] not in ("percentage", "fixed_amount") or not str(rule["value"]).startswith("-"):
            return self.json_response(422, {"errors": {"value": ["must be negative"]}})
        self.price_rules_created += 1
        return self.json_response(201, {"price_rule": self._add_rule(rule)})

    def _rule(self, method: str, rule_id: int) -> Response:
        rule = self.price_rules.get(rule_id)
        if rule is None:
            return self.error(404, "Not Found", "")
        if method == "DELETE":
            del self.price_rules[rule_id]
            self.codes = {k: c for k, c in self.codes.items() if c["price_rule_id"] != rule_id}
            self.price_rules_deleted += 1
            return 204, {}, b""
        return self.json_response(200, {"price_rule": rule})

    def _create_code(self, rule_id: int, payload: dict[str, Any]) -> Response:
        if rule_id not in self.price_rules:
            return self.error(404, "Not Found", "")
        code = str((payload.get("discount_code") or {}).get("code") or "")
        if not code:
            return self.json_response(422, {"errors": {"code": ["can't be blank"]}})
        if code.upper() in self.codes:
            return self.json_response(422, {"errors": {"code": ["must be unique. Please try a different code."]}})
        self.codes_created += 1
        return self.json_response(201, {"discount_code": self._add_code(code, rule_id)})

    def _code(self, rule_id: int, code_id: int) -> Response:
        for found in self.codes.values():
            if found["id"] == code_id and found["price_rule_id"] == rule_id:
                return self.json_response(200, {"discount_code": found})
        return self.error(404, "Not Found", "")

    def _lookup(self, code: str, version: str, host: str) -> Response:
        found = self.codes.get(code.upper())
        if found is None:
            return self.error(404, "Not Found", "")
        location = (
            f"http://{host}/{self.name}/admin/api/{version}/price_rules/{found['price_rule_id']}"
            f"/discount_codes/{found['id']}"
        )
        return (
            303,
            {"Location": location, "Content-Type": "text/html"},
            b"<html><body>You are being redirected.</body></html>",
        )

    # ------------------------------------------------------------------ store
    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _add_rule(self, fields: dict[str, Any]) -> dict[str, Any]:
        rule = {**fields, "id": self._new_id(), "created_at": "2026-01-01T00:00:00Z"}
        self.price_rules[rule["id"]] = rule
        return rule

    def _add_code(self, code: str, rule_id: int) -> dict[str, Any]:
        found = {"id": self._new_id(), "price_rule_id": rule_id, "code": code, "usage_count": 0}
        self.codes[code.upper()] = found
        return found
