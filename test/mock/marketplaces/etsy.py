"""Etsy Open API v3 mock (see MARKETPLACE_APIS.md section 6).

Errors: ``{"error": "<message>"}``.  Throttling: HTTP 429 with
``retry-after`` and the quota headers ``x-limit-per-second``,
``x-remaining-this-second``, ``x-limit-per-day``, ``x-remaining-today``
(a per-second throttle: today's quota is not exhausted; override with the
rule's ``headers`` to simulate the daily limit).

Endpoints (paths, methods and schemas from specs/etsy/etsy_oas_v3.json):

* ``POST /v3/public/oauth/token`` — refresh-token grant (form
  ``grant_type=refresh_token``, ``client_id=<keystring>``,
  ``refresh_token``) -> ``{access_token, token_type, expires_in,
  refresh_token}``.  Refresh tokens rotate: the answer's replaces the one
  used, which is refused afterwards (third-party client documentation says
  so; unverified).  OAuth error bodies ``{"error", "error_description"}``
  (standard OAuth 2.0; Etsy's exact texts unverified).
* ``GET /v3/application/listings/{listing_id}/inventory``
  (getListingInventory) and ``PUT`` of the same path
  (updateListingInventory, the whole inventory replaced).  The PUT body is
  checked against the spec's request schema: ``products`` required, each
  product with ``offerings`` (``price`` a number, ``quantity``,
  ``is_enabled``, ``readiness_state_id`` all required), property values
  with ``property_id``, ``value_ids``, ``values``; keys the schema does not
  have are refused (Etsy refuses the GET's ``product_id``, ``is_deleted``,
  ``scale_name`` and Money prices: etsy/open-api#159); the
  ``*_on_property`` arrays must name properties every product has, and a
  price / quantity / SKU that does not vary by property must be the same on
  every product (the spec: "fails if ... incompatible with values in
  *_on_property fields"; messages unverified).  Like Etsy, an update gives
  the products and offerings new ids (etsy/open-api#523).
* Every call: ``x-api-key: <keystring>:<shared_secret>`` (403 otherwise)
  and ``Authorization: Bearer <access token>`` (401 when missing, unknown
  or expired).  Error texts are unverified.

* ``GET /v3/application/shops/{shop_id}/receipts`` (getShopReceipts):
  min/max_created and min/max_last_modified (unix seconds, at least
  946684800), was_paid / was_shipped / was_canceled / was_delivered,
  sort_on created|updated|receipt_id (default created), sort_order
  (default desc), limit 1..100 (default 25), offset; ``{count, results}``
  with ShopReceipts (Money = {amount, divisor, currency_code}); a shop_id
  other than the seeded one is refused (403).
  ``GET .../receipts/{receipt_id}`` (getShopReceipt): one ShopReceipt or
  404.  Etsy has no endpoint to cancel a receipt, neither has the mock.
  Successful receipt answers carry the quota headers.

State (seedable): ``credentials`` {keystring, shared_secret,
refresh_token}; ``token_ttl``; ``tokens`` (access token -> expiry, epoch
seconds); ``listings``: listing id (string) -> inventory in the GET's shape
(``products`` with ``product_id``, ``sku``, ``is_deleted``, ``offerings``
[{offering_id, quantity, is_enabled, is_deleted, price {amount, divisor,
currency_code}, readiness_state_id}], ``property_values`` [{property_id,
property_name, scale_id, scale_name, value_ids, values}]) plus
``price_on_property``, ``quantity_on_property``, ``sku_on_property``,
``readiness_state_on_property``; ``updates``: listing id -> number of
accepted PUTs; ``shop_id``; ``receipts``: receipt id (string) ->
ShopReceipt (seed ``{"orders": [ShopReceipt, ...]}``: missing fields get
defaults, ``update_timestamp`` defaults to now).
"""

import copy
import math
import secrets
import time

from core import Route, json_response
from marketplaces.base import Marketplace, reason

LIMIT_PER_SECOND = 10
LIMIT_PER_DAY = 10_000
USER_ID = 12345678              # access tokens start with the user id (unverified)

TOKEN_PATH = r"/v3/public/oauth/token"
INVENTORY_PATH = r"/v3/application/listings/(?P<listing_id>[^/]+)/inventory"
RECEIPTS_PATH = r"/v3/application/shops/(?P<shop_id>[^/]+)/receipts"
RECEIPT_PATH = r"/v3/application/shops/(?P<shop_id>[^/]+)/receipts/(?P<receipt_id>[^/]+)"
MIN_TIMESTAMP = 946684800
RECEIPT_STATUSES = {"paid", "completed", "open", "payment processing", "canceled",
                    "fully refunded", "partially refunded"}

TOP_KEYS = {"products", "price_on_property", "quantity_on_property",
            "sku_on_property", "readiness_state_on_property"}
PRODUCT_KEYS = {"sku", "property_values", "offerings"}
OFFERING_KEYS = {"price", "quantity", "is_enabled", "readiness_state_id"}
PV_KEYS = {"property_id", "value_ids", "scale_id", "property_name", "values"}


class BadRequest(Exception):
    pass


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _oauth_error(error, description, status=400):
    return json_response({"error": error, "error_description": description}, status)


class Etsy(Marketplace):
    name = "etsy"

    def initial_state(self):
        return {"credentials": {"keystring": "etsy-keystring",
                                "shared_secret": "etsy-shared-secret",
                                "refresh_token": f"{USER_ID}.etsy-refresh"},
                "token_ttl": 3600, "tokens": {}, "listings": {}, "updates": {},
                "next_id": 900000000, "shop_id": 5550001, "receipts": {},
                "requests_today": 0}

    def seed(self, data, seed):
        """``orders``: a list of ShopReceipts (each replaces the receipt with
        the same receipt_id; missing fields get defaults, update_timestamp
        now)."""
        seed = dict(seed)
        orders = seed.pop("orders", None)
        super().seed(data, seed)
        for r in orders or []:
            r = _receipt_defaults(copy.deepcopy(r))
            data.setdefault("receipts", {})[str(r["receipt_id"])] = r

    def routes(self):
        return [Route("POST", TOKEN_PATH, self.token, "token"),
                Route("GET", INVENTORY_PATH, self.get_inventory, "getListingInventory"),
                Route("PUT", INVENTORY_PATH, self.update_inventory, "updateListingInventory"),
                Route("GET", RECEIPTS_PATH, self.get_receipts, "getShopReceipts"),
                Route("GET", RECEIPT_PATH, self.get_receipt, "getShopReceipt")]

    # ---------------------------------------------------------------- auth

    def token(self, request, state):
        form = request.form or {}

        def one(name):
            v = form.get(name)
            return v[0] if v else None

        with state.lock:
            creds = state.data["credentials"]
            if one("grant_type") != "refresh_token":
                return _oauth_error("unsupported_grant_type",
                                    "grant_type must be authorization_code or refresh_token")
            if one("client_id") != creds["keystring"]:
                return _oauth_error("invalid_client", "Invalid client_id", 401)
            if one("refresh_token") is None:
                return _oauth_error("invalid_request", "refresh_token is required")
            if one("refresh_token") != creds["refresh_token"]:
                return _oauth_error("invalid_grant", "Invalid refresh_token")
            access = f"{USER_ID}." + secrets.token_urlsafe(24)
            refresh = f"{USER_ID}." + secrets.token_urlsafe(24)
            creds["refresh_token"] = refresh       # the old one stops working
            ttl = int(state.data["token_ttl"])
            state.data["tokens"][access] = time.time() + ttl
        return json_response({"access_token": access, "token_type": "Bearer",
                              "expires_in": ttl, "refresh_token": refresh})

    def _auth_error(self, request, state):
        """None when the call is authorized, else Etsy's error answer."""
        creds = state.data["credentials"]
        key = request.header("x-api-key") or ""
        keystring, _, shared = key.partition(":")
        if keystring != creds["keystring"]:
            return self.error(request, 403, message="Invalid API key")
        if shared != creds["shared_secret"]:
            return self.error(request, 403, message="Shared secret is required in x-api-key header.")
        auth = request.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            return self.error(request, 401, message="Missing access token")
        expiry = state.data["tokens"].get(auth[len("Bearer "):])
        if expiry is None or expiry <= time.time():
            return self.error(request, 401, message="invalid_token")
        return None

    def _listing(self, request, state):
        raw = request.params["listing_id"]
        if not raw.isdigit() or int(raw) < 1:
            return None, self.error(request, 400, message="Expected int value for 'listing_id'")
        inv = state.data["listings"].get(str(int(raw)))
        if inv is None:
            return None, self.error(request, 404,
                                    message=f"Could not find a Listing with listing_id = {int(raw)}")
        return inv, None

    # ----------------------------------------------------------- inventory

    def get_inventory(self, request, state):
        with state.lock:
            err = self._auth_error(request, state)
            if err is None:
                inv, err = self._listing(request, state)
            if err is not None:
                return err
            return json_response(_visible(inv))

    def update_inventory(self, request, state):
        with state.lock:
            err = self._auth_error(request, state)
            if err is None:
                inv, err = self._listing(request, state)
            if err is not None:
                return err
            ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self.error(request, 400, message="Content-Type must be application/json")
            if request.json_error is not None or not isinstance(request.json, dict):
                return self.error(request, 400, message="Invalid JSON body")
            try:
                _check_update(request.json)
            except BadRequest as exc:
                return self.error(request, 400, message=str(exc))
            lid = str(int(request.params["listing_id"]))
            state.data["listings"][lid] = self._apply(inv, request.json, state.data)
            state.data["updates"][lid] = state.data["updates"].get(lid, 0) + 1
            return json_response(_visible(state.data["listings"][lid]))

    @staticmethod
    def _apply(old, body, data):
        """The new inventory: what was sent, in the GET's shape, new ids."""
        currency, divisor = "USD", 100
        scale_names = {}
        for p in old.get("products", []):
            for o in p.get("offerings", []):
                price = o.get("price") or {}
                currency = price.get("currency_code", currency)
                divisor = price.get("divisor", divisor)
            for pv in p.get("property_values", []):
                scale_names[(pv.get("property_id"), pv.get("scale_id"))] = pv.get("scale_name")

        def new_id():
            data["next_id"] += 1
            return data["next_id"]

        products = []
        for p in body["products"]:
            pvs = []
            for pv in p.get("property_values", []):
                pvs.append({"property_id": pv["property_id"],
                            "property_name": pv.get("property_name"),
                            "scale_id": pv.get("scale_id"),
                            "scale_name": scale_names.get((pv["property_id"], pv.get("scale_id"))),
                            "value_ids": list(pv["value_ids"]),
                            "values": list(pv["values"])})
            offerings = [{"offering_id": new_id(),
                          "quantity": o["quantity"],
                          "is_enabled": o["is_enabled"],
                          "is_deleted": False,
                          "price": {"amount": int(round(o["price"] * divisor)),
                                    "divisor": divisor, "currency_code": currency},
                          "readiness_state_id": o["readiness_state_id"]}
                         for o in p["offerings"]]
            products.append({"product_id": new_id(), "sku": p.get("sku") or "",
                             "is_deleted": False, "offerings": offerings,
                             "property_values": pvs})
        return {"products": products,
                "price_on_property": list(body.get("price_on_property") or []),
                "quantity_on_property": list(body.get("quantity_on_property") or []),
                "sku_on_property": list(body.get("sku_on_property") or []),
                "readiness_state_on_property": list(body.get("readiness_state_on_property") or [])}

    # ------------------------------------------------------------ receipts

    def _quota(self, state, response):
        """The rate-limit headers Etsy sends on every answer."""
        state.data["requests_today"] += 1
        return response.add_headers({
            "x-limit-per-second": str(LIMIT_PER_SECOND),
            "x-remaining-this-second": str(LIMIT_PER_SECOND - 1),
            "x-limit-per-day": str(LIMIT_PER_DAY),
            "x-remaining-today": str(max(0, LIMIT_PER_DAY - state.data["requests_today"]))})

    def _shop(self, request, state):
        raw = request.params["shop_id"]
        if not raw.isdigit() or int(raw) < 1:
            return self.error(request, 400, message="Expected int value for 'shop_id'")
        if int(raw) != int(state.data["shop_id"]):
            return self.error(request, 403, message="You do not have permission to view this shop's receipts")
        return None

    def get_receipts(self, request, state):
        """getShopReceipts: filters min/max_created, min/max_last_modified
        (unix seconds, >= 946684800), was_paid / was_shipped / was_canceled,
        sort_on created|updated|receipt_id, sort_order, limit 1..100 (default
        25), offset.  {count (all matching), results}."""
        with state.lock:
            err = self._auth_error(request, state) or self._shop(request, state)
            if err is not None:
                return err
            q = {k: v[-1] for k, v in request.query.items()}
            ints = {}
            for name, lo, hi, default in (("min_created", MIN_TIMESTAMP, None, None),
                                          ("max_created", MIN_TIMESTAMP, None, None),
                                          ("min_last_modified", MIN_TIMESTAMP, None, None),
                                          ("max_last_modified", MIN_TIMESTAMP, None, None),
                                          ("limit", 1, 100, 25), ("offset", 0, None, 0)):
                v = q.get(name)
                if v is None:
                    ints[name] = default
                    continue
                try:
                    n = int(v)
                except ValueError:
                    return self.error(request, 400, message=f"Expected int value for '{name}'")
                if n < lo or (hi is not None and n > hi):
                    bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
                    return self.error(request, 400, message=f"{name} must be {bound}")
                ints[name] = n
            sort_on = q.get("sort_on", "created")
            sort_order = q.get("sort_order", "desc")
            if sort_on not in ("created", "updated", "receipt_id"):
                return self.error(request, 400, message="sort_on must be one of created, updated, receipt_id")
            if sort_order not in ("asc", "ascending", "desc", "descending", "up", "down"):
                return self.error(request, 400, message="sort_order must be one of asc, ascending, desc, descending, up, down")
            flags = {}
            for name in ("was_paid", "was_shipped", "was_canceled", "was_delivered"):
                v = q.get(name)
                if v is not None:
                    if v not in ("true", "false", "1", "0"):
                        return self.error(request, 400, message=f"Expected boolean value for '{name}'")
                    flags[name] = v in ("true", "1")
            rs = list(state.data["receipts"].values())

            def within(value, lo, hi):
                return (lo is None or value >= lo) and (hi is None or value <= hi)
            rs = [r for r in rs
                  if within(r["create_timestamp"], ints["min_created"], ints["max_created"])
                  and within(r["update_timestamp"], ints["min_last_modified"], ints["max_last_modified"])]
            if "was_paid" in flags:
                rs = [r for r in rs if bool(r["is_paid"]) == flags["was_paid"]]
            if "was_shipped" in flags:
                rs = [r for r in rs if bool(r["is_shipped"]) == flags["was_shipped"]]
            if "was_canceled" in flags:
                rs = [r for r in rs if (r["status"] == "canceled") == flags["was_canceled"]]
            field = {"created": "create_timestamp", "updated": "update_timestamp",
                     "receipt_id": "receipt_id"}[sort_on]
            rs.sort(key=lambda r: (r[field], r["receipt_id"]),
                    reverse=sort_order in ("desc", "descending", "down"))
            page = rs[ints["offset"]:ints["offset"] + ints["limit"]]
            return self._quota(state, json_response({"count": len(rs), "results": copy.deepcopy(page)}))

    def get_receipt(self, request, state):
        with state.lock:
            err = self._auth_error(request, state) or self._shop(request, state)
            if err is not None:
                return err
            raw = request.params["receipt_id"]
            if not raw.isdigit() or int(raw) < 1:
                return self.error(request, 400, message="Expected int value for 'receipt_id'")
            r = state.data["receipts"].get(str(int(raw)))
            if r is None:
                return self.error(request, 404, message=f"Could not find a Receipt with receipt_id = {int(raw)}")
            return self._quota(state, json_response(copy.deepcopy(r)))

    # ----------------------------------------------------- faults / errors

    def rate_limit(self, request, retry_after):
        return self.error(request, 429).add_headers({
            "retry-after": str(math.ceil(retry_after)),
            "x-limit-per-second": str(LIMIT_PER_SECOND),
            "x-remaining-this-second": "0",
            "x-limit-per-day": str(LIMIT_PER_DAY),
            "x-remaining-today": str(LIMIT_PER_DAY // 2)})

    def error(self, request, status, code=None, message=None):
        return json_response({"error": message or reason(status)}, status)


def _money(amount, currency="USD", divisor=100):
    return {"amount": int(amount), "divisor": divisor, "currency_code": currency}


def _receipt_defaults(r):
    """A seeded ShopReceipt completed with the schema's fields."""
    now = int(time.time())
    cur = (r.get("grandtotal") or {}).get("currency_code", "USD")
    for k, v in (("receipt_type", 0), ("seller_user_id", USER_ID), ("seller_email", None),
                 ("buyer_user_id", 1), ("buyer_email", None), ("name", ""), ("first_line", None),
                 ("second_line", None), ("city", None), ("state", None), ("zip", None),
                 ("status", "paid"), ("formatted_address", None), ("country_iso", None),
                 ("payment_method", "cc"), ("payment_email", None), ("message_from_seller", None),
                 ("message_from_buyer", None), ("message_from_payment", None), ("is_paid", True),
                 ("is_shipped", False), ("create_timestamp", now), ("is_gift", False),
                 ("gift_message", ""), ("gift_sender", ""), ("shipments", []), ("transactions", []),
                 ("refunds", [])):
        r.setdefault(k, v)
    r.setdefault("created_timestamp", r["create_timestamp"])
    r.setdefault("update_timestamp", now)
    r["updated_timestamp"] = r["update_timestamp"]
    for k in ("grandtotal", "subtotal", "total_price", "total_shipping_cost", "total_tax_cost",
              "total_vat_cost", "discount_amt", "gift_wrap_price"):
        r.setdefault(k, _money(0, cur))
    for t in r["transactions"]:
        t.setdefault("receipt_id", r["receipt_id"])
        t.setdefault("buyer_user_id", r["buyer_user_id"])
        t.setdefault("quantity", 1)
        t.setdefault("sku", None)
        t.setdefault("price", _money(0, cur))
        t.setdefault("shipping_cost", _money(0, cur))
        t.setdefault("variations", [])
    return r


def _visible(inv):
    """getListingInventory's answer: products not deleted (show_deleted is
    false by default)."""
    out = copy.deepcopy(inv)
    out["products"] = [p for p in out.get("products", []) if not p.get("is_deleted")]
    return out


def _check_update(body):
    """updateListingInventory's request schema and *_on_property rules."""
    unknown = set(body) - TOP_KEYS
    if unknown:
        raise BadRequest(f"Unexpected input parameter(s): {sorted(unknown)}")
    products = body.get("products")
    if not isinstance(products, list) or not products:
        raise BadRequest("Missing input parameter: [products]")
    for name in TOP_KEYS - {"products"}:
        arr = body.get(name)
        if arr is None and name == "readiness_state_on_property":
            continue
        if arr is not None and (not isinstance(arr, list) or not all(_is_int(x) for x in arr)):
            raise BadRequest(f"{name} must be an array of integers")
    for i, p in enumerate(products):
        where = f"products[{i}]"
        if not isinstance(p, dict):
            raise BadRequest(f"{where} must be an object")
        unknown = set(p) - PRODUCT_KEYS
        if unknown:
            raise BadRequest(f"{where}: unexpected field(s) {sorted(unknown)}")
        if "sku" in p and p["sku"] is not None and not isinstance(p["sku"], str):
            raise BadRequest(f"{where}.sku must be a string")
        pvs = p.get("property_values", [])
        if not isinstance(pvs, list):
            raise BadRequest(f"{where}.property_values must be an array")
        for j, pv in enumerate(pvs):
            pwhere = f"{where}.property_values[{j}]"
            if not isinstance(pv, dict):
                raise BadRequest(f"{pwhere} must be an object")
            unknown = set(pv) - PV_KEYS
            if unknown:
                raise BadRequest(f"{pwhere}: unexpected field(s) {sorted(unknown)}")
            for req in ("property_id", "value_ids", "values"):
                if req not in pv:
                    raise BadRequest(f"{pwhere}: missing {req}")
            if not _is_int(pv["property_id"]) or pv["property_id"] < 1:
                raise BadRequest(f"{pwhere}.property_id must be a positive integer")
            if not isinstance(pv["value_ids"], list) or not all(_is_int(v) and v >= 1 for v in pv["value_ids"]):
                raise BadRequest(f"{pwhere}.value_ids must be an array of positive integers")
            if not isinstance(pv["values"], list) or not all(isinstance(v, str) for v in pv["values"]):
                raise BadRequest(f"{pwhere}.values must be an array of strings")
            if any("(" in v or ")" in v for v in pv["values"]):
                raise BadRequest(f"{pwhere}.values: parenthesis characters are not allowed")
            sid = pv.get("scale_id")
            if sid is not None and (not _is_int(sid) or sid < 1):
                raise BadRequest(f"{pwhere}.scale_id must be a positive integer or null")
        offerings = p.get("offerings")
        if not isinstance(offerings, list) or not offerings:
            raise BadRequest(f"{where}: missing input parameter offerings")
        for j, o in enumerate(offerings):
            owhere = f"{where}.offerings[{j}]"
            if not isinstance(o, dict):
                raise BadRequest(f"{owhere} must be an object")
            unknown = set(o) - OFFERING_KEYS
            if unknown:
                raise BadRequest(f"{owhere}: unexpected field(s) {sorted(unknown)}")
            for req in sorted(OFFERING_KEYS):
                if req not in o:
                    raise BadRequest(f"{owhere}: missing {req}")
            if not _is_number(o["price"]) or o["price"] <= 0:
                raise BadRequest(f"{owhere}.price must be a positive number (amount / divisor)")
            if not _is_int(o["quantity"]) or o["quantity"] < 0:
                raise BadRequest(f"{owhere}.quantity must be a non-negative integer")
            if not isinstance(o["is_enabled"], bool):
                raise BadRequest(f"{owhere}.is_enabled must be a boolean")
            rs = o["readiness_state_id"]
            if rs is not None and (not _is_int(rs) or rs < 1):
                raise BadRequest(f"{owhere}.readiness_state_id must be a positive integer or null")

    # *_on_property: properties every product has; what does not vary by
    # property must be the same on every product
    def props(p):
        return {pv["property_id"] for pv in p.get("property_values", [])}

    for name, field in (("price_on_property", "price"), ("quantity_on_property", "quantity"),
                        ("sku_on_property", "sku")):
        on = body.get(name) or []
        for pid in on:
            if any(pid not in props(p) for p in products):
                raise BadRequest(f"{name} names property {pid}, which not every product has")
        if not on and len(products) > 1:
            if field == "sku":
                values = {p.get("sku") or "" for p in products}
            else:
                values = {o[field] for p in products for o in p["offerings"]}
            if len(values) > 1:
                raise BadRequest(f"The {field} of every product must be the same "
                                 f"when {name} is empty")


def make(name):
    return Etsy(name)
