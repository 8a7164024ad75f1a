"""eBay Sell APIs mock (see MARKETPLACE_APIS.md section 3).

Errors: ``{"errors": [{"errorId", "domain", "category", "message",
"longMessage", "parameters"}]}``; category REQUEST for 4xx, APPLICATION for
5xx.  Throttling: HTTP 429 (eBay documents no retry header, so a rule's
``retry_after`` is not expressed).  ``errorId`` defaults to the HTTP status
where no eBay id is known; a rule's ``code`` sets it.
"""

import base64
import copy
import datetime
import json
import re
import secrets
import time
import urllib.parse

from core import Route, json_response, raw_response
from marketplaces.base import Marketplace, reason

TOKEN_PATH = r"/identity/v1/oauth2/token"
BULK_PATH = r"/sell/inventory/v1/bulk_update_price_quantity"
ITEM_PATH = r"/sell/inventory/v1/inventory_item/(?P<sku>[^/]+)"
BULK_MAX = 25
REQUIRED_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.inventory"
FULFILLMENT_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.fulfillment"
ORDERS_PATH = r"/sell/fulfillment/v1/order"
ORDER_PATH = r"/sell/fulfillment/v1/order/(?P<order_id>[^/]+)"
CANCEL_PATH = r"/post-order/v2/cancellation/?"
ORDERS_MAX_LIMIT = 200
# seller cancel reasons of the Post-Order API (CancelReasonEnum)
SELLER_CANCEL_REASONS = {"ADDRESS_ISSUES", "BUYER_ASKED_CANCEL", "OUT_OF_STOCK_OR_CANNOT_FULFILL"}
POST_ORDER_MARKETPLACES = {"EBAY-US", "EBAY-UK", "EBAY-DE"}

# status -> (errorId, domain, message); general knowledge, (unverified)
KNOWN_ERRORS = {
    401: (1001, "OAuth", "Invalid access token"),
    429: (2001, "ACCESS", "Too many requests. The request limit has been "
                          "reached for the resource."),
}


class Ebay(Marketplace):
    """State (seedable):

    ``credentials``: ``client_id``, ``client_secret``, ``refresh_token`` the
    token endpoint accepts; ``token_ttl``: lifetime of access tokens in
    seconds; ``tokens``: issued token -> expiry (epoch seconds);
    ``inventory``: sku -> ``{"quantity": n, "offers": {offer_id: n}}`` (only
    seeded SKUs exist: others get eBay's per-item 404 "not found");
    ``orders``: orderId -> a Fulfillment API ``Order`` (seed a list of orders:
    each replaces the order with the same ``orderId``; ``lastModifiedDate``
    defaults to now); ``cancellations``: Post-Order cancellation requests
    received (cancelId, legacyOrderId, cancelReason).
    """
    name = "ebay"

    def initial_state(self):
        return {"credentials": {"client_id": "ebay-client",
                                "client_secret": "ebay-secret",
                                "refresh_token": "ebay-refresh"},
                "token_ttl": 7200, "tokens": {}, "token_scopes": {}, "inventory": {},
                "orders": {}, "cancellations": []}

    def __init__(self, name=None):
        super().__init__(name)
        # getOrders caches (the order list must stay fast with 10,000s of
        # orders: bench/orders.sh): per order its parsed dates and its JSON
        # text, per filter the matching orders in page order.  Valid while
        # the order object is the one in the state (a seed replaces it) and
        # the generation is unchanged (seeds and cancellations bump it).
        self._gen = 0
        self._order_cache = {}
        self._list_cache = (None, None, None)

    def _order_entry(self, order):
        entry = self._order_cache.get(order["orderId"])
        if entry is None or entry[0] is not order:
            entry = (order, _parse(order["creationDate"]), _parse(order["lastModifiedDate"]),
                     json.dumps(order, separators=(",", ":")))
            self._order_cache[order["orderId"]] = entry
        return entry

    def _changed(self, order_id=None):
        self._gen += 1
        if order_id is not None:
            self._order_cache.pop(order_id, None)

    def seed(self, data, seed):
        seed = dict(seed)
        orders = seed.pop("orders", None)
        super().seed(data, seed)
        self._changed()
        if isinstance(orders, list):
            for order in orders:
                order = copy.deepcopy(order)
                order.setdefault("lastModifiedDate", _iso(time.time()))
                data.setdefault("orders", {})[order["orderId"]] = order
        elif isinstance(orders, dict):
            data.setdefault("orders", {}).update(copy.deepcopy(orders))
        if orders:
            # serialized now rather than by the first getOrders
            for order in data["orders"].values():
                try:
                    self._order_entry(order)
                except (KeyError, TypeError, ValueError):
                    pass        # an incomplete order fails in getOrders as before

    def routes(self):
        return [Route("POST", TOKEN_PATH, self.token, "token"),
                Route("POST", BULK_PATH, self.bulk_update, "bulk_update_price_quantity"),
                Route("GET", ITEM_PATH, self.get_item, "get_inventory_item"),
                Route("GET", ORDERS_PATH, self.get_orders, "getOrders"),
                Route("GET", ORDER_PATH, self.get_order, "getOrder"),
                Route("POST", CANCEL_PATH, self.create_cancellation, "createCancellation")]

    # OAuth refresh-token grant (Basic client credentials, form body)
    def token(self, request, state):
        auth = request.header("Authorization") or ""
        with state.lock:
            creds = state.data["credentials"]
            expected = "Basic " + base64.b64encode(
                f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
            if auth != expected:
                return json_response({"error": "invalid_client",
                                      "error_description": "client authentication failed"}, 401)
            form = request.form or {}
            if form.get("grant_type") != ["refresh_token"]:
                return json_response({"error": "unsupported_grant_type",
                                      "error_description": "grant type in request is not supported by the authorization server"}, 400)
            if form.get("refresh_token") != [creds["refresh_token"]]:
                return json_response({"error": "invalid_grant",
                                      "error_description": "the provided authorization refresh token is invalid or was issued to another client"}, 400)
            scopes = (form.get("scope") or [""])[0].split()
            if REQUIRED_SCOPE not in scopes:
                return json_response({"error": "invalid_scope",
                                      "error_description": "the requested scope is invalid, unknown, malformed, or exceeds the scope granted to the client"}, 400)
            token = "v^1.1#i^1#" + secrets.token_hex(16)
            ttl = int(state.data["token_ttl"])
            state.data["tokens"][token] = time.time() + ttl
            state.data.setdefault("token_scopes", {})[token] = scopes
        return json_response({"access_token": token, "expires_in": ttl,
                              "token_type": "User Access Token"})

    def _bearer_ok(self, request, state):
        auth = request.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            return False
        expiry = state.data["tokens"].get(auth[len("Bearer "):])
        return expiry is not None and expiry > time.time()

    def _scope_ok(self, request, state, scope):
        token = (request.header("Authorization") or "").split(" ", 1)[-1]
        return scope in state.data.get("token_scopes", {}).get(token, [])

    # Fulfillment API: getOrders (filter, limit, offset) and getOrder
    def get_orders(self, request, state):
        with state.lock:
            if not self._bearer_ok(request, state):
                return self.error(request, 401)
            if not self._scope_ok(request, state, FULFILLMENT_SCOPE):
                return self.error(request, 403, 1100, "Access denied. Insufficient permissions to fulfill the request.")
            q = request.query
            try:
                limit = int(q.get("limit", ["50"])[-1])
                offset = int(q.get("offset", ["0"])[-1])
            except ValueError:
                return self.error(request, 400, 30700, "Invalid limit or offset.")
            if not 1 <= limit <= ORDERS_MAX_LIMIT or offset < 0:
                return self.error(request, 400, 30700,
                                  f"The 'limit' value must be between 1 and {ORDERS_MAX_LIMIT}, and 'offset' non-negative.")
            ids = q.get("orderIds")
            if ids:
                wanted = [i for v in ids for i in v.split(",") if i]
                if len(wanted) > 50:
                    return self.error(request, 400, 30750, "The maximum number of order IDs is 50.")
                entries = [self._order_entry(o) for o in state.data["orders"].values()
                           if o["orderId"] in wanted]
            else:
                flt = q.get("filter", [""])[-1]
                crit = dict(m.groups() for m in re.finditer(r"(\w+):\[([^\]]*)\]", flt))
                field = "creationDate" if "creationdate" in crit else "lastModifiedDate" \
                    if "lastmodifieddate" in crit else None
                if flt and field is None:
                    return self.error(request, 400, 30800, "Invalid filter: " + flt)
                lo_t = hi_t = None
                if field is not None:
                    rng = crit["creationdate" if field == "creationDate" else "lastmodifieddate"]
                    lo, _, hi = rng.partition("..")
                    try:
                        lo_t = _parse(lo) if lo else None
                        hi_t = _parse(hi) if hi else None
                    except ValueError:
                        return self.error(request, 400, 30810, "Invalid date in filter: " + rng)
                key = (self._gen, field, lo_t, hi_t)
                if self._list_cache[0] is state.data["orders"] and self._list_cache[1] == key:
                    entries = self._list_cache[2]
                else:
                    entries = [self._order_entry(o) for o in state.data["orders"].values()]
                    if field is not None:
                        k = 1 if field == "creationDate" else 2
                        entries = [e for e in entries
                                   if (lo_t is None or e[k] >= lo_t) and (hi_t is None or e[k] <= hi_t)]
                    entries.sort(key=lambda e: (e[1], e[0]["orderId"]))
                    self._list_cache = (state.data["orders"], key, entries)
            total = len(entries)
            page = entries[offset:offset + limit]
            base = "https://api.ebay.com" + ORDERS_PATH
            keep = {k: v[-1] for k, v in q.items() if k not in ("offset", "limit")}
            def href(off):
                return base + "?" + urllib.parse.urlencode({**keep, "limit": limit, "offset": off})
            # json.dumps of {"href", "limit", "offset", "total", "orders",
            # "warnings", "next", "prev"} with the orders' cached JSON text
            parts = ['{"href":', json.dumps(href(offset)), ',"limit":', str(limit),
                     ',"offset":', str(offset), ',"total":', str(total),
                     ',"orders":[', ",".join(e[3] for e in page), '],"warnings":[]']
            if offset + limit < total:
                parts += [',"next":', json.dumps(href(offset + limit))]
            if offset > 0:
                parts += [',"prev":', json.dumps(href(max(0, offset - limit)))]
            parts.append("}")
            body = "".join(parts).encode("utf-8")
        return raw_response(body, 200, "application/json")

    def get_order(self, request, state):
        with state.lock:
            if not self._bearer_ok(request, state):
                return self.error(request, 401)
            order = state.data["orders"].get(request.params["order_id"])
            if order is None:
                return self.error(request, 404, 32100, "Order not found.")
            return json_response(copy.deepcopy(order))

    # Post-Order API: a seller-initiated cancellation (OAuth token as "IAF")
    def create_cancellation(self, request, state):
        with state.lock:
            auth = request.header("Authorization") or ""
            expiry = state.data["tokens"].get(auth[len("IAF "):]) if auth.startswith("IAF ") else None
            if expiry is None or expiry <= time.time():
                return self.error(request, 401)
            if request.header("X-EBAY-C-MARKETPLACE-ID") not in POST_ORDER_MARKETPLACES:
                return self.error(request, 400, 1700, "Invalid or missing X-EBAY-C-MARKETPLACE-ID header.")
            body = request.json if isinstance(request.json, dict) else {}
            legacy = body.get("legacyOrderId")
            reason_ = body.get("cancelReason")
            order = next((o for o in state.data["orders"].values()
                          if legacy in (o.get("legacyOrderId"), o["orderId"])), None)
            if order is None:
                return self.error(request, 400, 1702, "The order ID is invalid.")
            if reason_ not in SELLER_CANCEL_REASONS:
                return self.error(request, 400, 1703, "The cancel reason is invalid for a seller.")
            if order.get("orderFulfillmentStatus") == "FULFILLED":
                return json_response({"orderEligibilityResult": {
                    "eligible": False, "failureReason": ["ORDER_ALREADY_SHIPPED"]}}, 200)
            cancel_id = str(5000000000 + len(state.data["cancellations"]) + 1)
            state.data["cancellations"].append({"cancelId": cancel_id, "legacyOrderId": legacy,
                                                "cancelReason": reason_})
            order["cancelStatus"] = {"cancelState": "CANCELED", "cancelledDate": _iso(time.time()),
                                     "cancelRequests": [{"cancelRequestId": cancel_id,
                                                         "cancelInitiator": "SELLER",
                                                         "cancelReason": reason_}]}
            order["lastModifiedDate"] = _iso(time.time())
            self._changed(order["orderId"])
        return json_response({"cancelId": cancel_id,
                              "orderEligibilityResult": {"eligible": True}}, 201)

    def bulk_update(self, request, state):
        with state.lock:
            if not self._bearer_ok(request, state):
                return self.error(request, 401)
            ctype = (request.header("Content-Type") or "").split(";")[0].strip()
            if ctype != "application/json":
                return self.error(request, 415, 25101,
                                  "The Content-Type header is missing or invalid.")
            body = request.json
            reqs = body.get("requests") if isinstance(body, dict) else None
            if not isinstance(reqs, list) or not reqs:
                return self.error(request, 400, 25709,
                                  "Invalid value for requests. The request payload is missing or malformed.")
            if len(reqs) > BULK_MAX:
                return self.error(request, 400, 25709,
                                  f"Invalid value for requests. At most {BULK_MAX} requests are allowed.")
            responses = []
            for r in reqs:
                responses.append(self._update_one(r, state.data["inventory"]))
        status = 200 if all(r["statusCode"] == 200 for r in responses) else 207
        return json_response({"responses": responses}, status)

    @staticmethod
    def _update_one(r, inventory):
        sku = r.get("sku") if isinstance(r, dict) else None
        if not isinstance(sku, str) or not sku:
            return {"statusCode": 400, "errors": [_error(25707, "Invalid sku.")]}
        item = inventory.get(sku)
        if item is None:
            return {"statusCode": 404, "sku": sku, "errors": [
                _error(25702, f"SKU {sku} is not available in the system.")]}
        avail = r.get("shipToLocationAvailability")
        qty = avail.get("quantity") if isinstance(avail, dict) else None
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0:
            return {"statusCode": 400, "sku": sku, "errors": [
                _error(25604, "Invalid quantity. The quantity must be a non-negative integer.")]}
        offers = r.get("offers") or []
        for offer in offers:
            oid = offer.get("offerId") if isinstance(offer, dict) else None
            if oid not in item.setdefault("offers", {}):
                return {"statusCode": 404, "sku": sku, "offerId": oid, "errors": [
                    _error(25713, f"Offer {oid} is not available.")]}
        item["quantity"] = qty
        item["updates"] = item.get("updates", 0) + 1
        for offer in offers:
            item["offers"][offer["offerId"]] = offer.get("availableQuantity", qty)
        result = {"statusCode": 200, "sku": sku, "errors": [], "warnings": []}
        if offers:
            result["offerId"] = offers[0]["offerId"]
        return result

    def get_item(self, request, state):
        with state.lock:
            if not self._bearer_ok(request, state):
                return self.error(request, 401)
            item = state.data["inventory"].get(request.params["sku"])
            if item is None:
                return self.error(request, 404, 25702, "SKU is not available in the system.")
            return json_response({"sku": request.params["sku"], "availability": {
                "shipToLocationAvailability": {"quantity": item["quantity"]}}})

    def rate_limit(self, request, retry_after):
        return self.error(request, 429)

    def error(self, request, status, code=None, message=None):
        error_id, domain, known_message = KNOWN_ERRORS.get(
            status, (status, "API_MOCK", reason(status)))
        message = message or known_message
        return json_response({"errors": [{
            "errorId": code if code is not None else error_id,
            "domain": domain,
            "category": "REQUEST" if status < 500 else "APPLICATION",
            "message": message, "longMessage": message, "parameters": []}]},
            status)


def _error(error_id, message):
    return {"errorId": error_id, "domain": "API_INVENTORY", "subdomain": "Selling",
            "category": "REQUEST", "message": message, "longMessage": message,
            "parameters": []}


def _iso(t):
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(t * 1000) % 1000:03d}Z"


def _parse(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def make(name):
    return Ebay(name)
