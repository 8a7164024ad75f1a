"""Lazada / Daraz Open Platform (IOP) mock (see MARKETPLACE_APIS.md
section 7).  The same module serves ``daraz`` (same protocol).

Every response uses the envelope ``{"code", "type", "message",
"request_id"}``; ``code`` "0" is success.  The gateway reports throttling
inside the envelope, not with HTTP 429: the ``rate_limit`` fault answers
HTTP 200 with code ``ApiCallLimit`` (unverified code; set the rule's
``status`` to 429 to test the other case).  Where no IOP code is known for a
status, ``code`` is the HTTP status as a string.

Endpoint: ``POST [/rest]/product/price_quantity/update`` with the form (or
query) parameter ``payload`` = ``<Request><Product><Skus><Sku>...``.  Every
call is checked as the gateway does (section 7.1): ``app_key``,
``timestamp`` (milliseconds, within 7200 s of the server's clock),
``access_token``, ``sign_method`` = sha256 and ``sign``, recomputed with
hmac/hashlib: upper-case hex HMAC-SHA256(app_secret, API path (without the
gateway's /rest) + the sorted name+value pairs of every query and form
parameter but sign).  Gateway errors (signature, token, parameters) answer
HTTP 200 with the IOP code (the HTTP status is (unverified)); a request with
unknown SKUs answers code ``E501`` with one ``detail`` entry
``{field, seller_sku, message}`` per failed SKU (detail shape (unverified)),
the other SKUs being updated.

Orders (sections 7.3 and the order API pages in specs/lazada-daraz):

* ``GET [/rest]/orders/get`` (GetOrders): ``update_after`` or
  ``created_after`` is mandatory, ``update_before`` / ``created_before``
  optional, all ISO 8601 with an offset (``YYYY-MM-DDTHH:mm:ss+08:00``,
  code ``17`` "Invalid Date Format" otherwise); bounds are inclusive ("after
  or on", "before or on"); ``sort_by`` created_at|updated_at (code ``75``),
  ``sort_direction`` ASC|DESC (code ``74``), ``status`` one of the item
  statuses (code ``36``), ``offset`` 0..4500 (code ``14``), ``limit`` 1..100
  (code ``19``).  Answer ``data {count (orders on this page), countTotal,
  orders[]}``, the orders without their items, ``statuses`` = the distinct
  item statuses, ``items_count`` = the number of item rows.
* ``GET [/rest]/order/get?order_id=`` (GetOrder): ``data`` = the order;
  code ``16`` "Invalid Order ID" when unknown.
* ``GET [/rest]/orders/items/get?order_ids=[1,2]`` (GetMultipleOrderItems):
  ``data [{order_id, order_number, order_items[]}]``, one row per unit (no
  quantity field); at most 50 ids (code ``38``), the list must be
  ``[n,...]`` (code ``56``), every id must exist (code ``37``).
* ``GET|POST [/rest]/order/reverse/cancel/create`` (InitReverseOrderCancel):
  ``order_id``, ``order_item_id_list`` (JSON array), ``reason_id``; codes
  ``115`` (no order id), ``104`` (no reason), ``102`` (no item list),
  ``122`` (unknown order), ``123`` (an item not of the order, or already
  handed to the carrier: shipped, delivered...); success cancels the items
  (status ``canceled``, ``cancel_return_initiator`` cancellation-seller,
  ``updated_at`` now) and records the call in ``cancellations``.

Seeding orders: ``{"orders": [order, ...]}`` where an order is the
GetOrders object plus ``order_items`` (the GetMultipleOrderItems rows); an
order whose ``order_id`` exists is merged into it (its ``order_items`` merged
by ``order_item_id``, new ones appended) instead of replacing the list, and
its ``updated_at`` becomes now (+08:00) unless the seed gives one; ``statuses``
and ``items_count`` are always derived from the items.
"""

import copy
import datetime
import hashlib
import hmac
import json
import re
import time
import xml.etree.ElementTree as ET

from core import Route, json_response
from marketplaces.base import Marketplace, deep_merge, reason, request_id

# status -> (code, type, message)
KNOWN_ERRORS = {
    401: ("IllegalAccessToken", "ISV", "The specified access token is "
                                       "invalid or expired"),
    500: ("E006", "ISP", "Unexpected internal error"),
    503: ("E006", "ISP", "Unexpected internal error"),
}

PRICE_QUANTITY_PATH = r"(?:/rest)?/product/price_quantity/update"
MAX_SKUS = 50
TIMESTAMP_WINDOW_S = 7200

ORDERS_PATH = r"(?:/rest)?/orders/get"
ORDER_PATH = r"(?:/rest)?/order/get"
ORDER_ITEMS_PATH = r"(?:/rest)?/orders/items/get"
CANCEL_PATH = r"(?:/rest)?/order/reverse/cancel/create"
MAX_LIMIT = 100
MAX_OFFSET = 4500
MAX_ORDER_IDS = 50
ORDER_STATUSES = ("unpaid", "pending", "packed", "repacked", "canceled",
                  "ready_to_ship", "delivered", "returned", "shipped",
                  "failed", "topack", "toship", "shipping", "lost")
# item statuses after the handover to the carrier: no seller cancellation
HANDED_OVER = ("shipped", "delivered", "returned", "failed", "lost",
               "shipped_back", "shipped_back_success", "shipped_back_failed")
ISO_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}")
LOCAL_TZ = datetime.timezone(datetime.timedelta(hours=8))


def sign(secret, api, params):
    """The request signature of section 7.1 (params: name -> value)."""
    text = api + "".join(k + params[k] for k in sorted(params) if k != "sign")
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest().upper()


class Lazada(Marketplace):
    """State (seedable):

    ``app``: ``app_key`` / ``app_secret`` the gateway accepts; ``tokens``:
    access token -> expiry (epoch seconds); ``skus``: seller SKU ->
    ``{"quantity": n, "sku_id": optional, "item_id": optional}`` (only
    seeded SKUs exist); ``updates``: calls that updated something.
    """
    name = "lazada"

    def initial_state(self):
        return {"app": {"app_key": "100001", "app_secret": "lzd-secret"},
                "tokens": {"lzd-token": 4102444800},
                "skus": {}, "updates": 0, "orders": [], "cancellations": []}

    def routes(self):
        return [Route("POST|GET", PRICE_QUANTITY_PATH, self.price_quantity_update,
                      "price_quantity_update"),
                Route("GET", ORDERS_PATH, self.get_orders, "orders_get"),
                Route("GET", ORDER_PATH, self.get_order, "order_get"),
                Route("GET", ORDER_ITEMS_PATH, self.get_order_items, "orders_items_get"),
                Route("GET|POST", CANCEL_PATH, self.cancel_create, "order_cancel")]

    # -- seeding ------------------------------------------------------------

    def seed(self, data, seed):
        orders = seed.pop("orders", None)
        deep_merge(data, seed)
        if orders is None:
            return
        if not isinstance(orders, list):
            raise ValueError("orders must be a list")
        for order in orders:
            if not isinstance(order, dict) or "order_id" not in order:
                raise ValueError("every order needs an order_id")
            order = copy.deepcopy(order)
            current = _find_order(data["orders"], order["order_id"])
            if current is None:
                order.setdefault("order_items", [])
                order.setdefault("updated_at", now_iso())
                order.setdefault("created_at", order["updated_at"])
                data["orders"].append(order)
                current = order
            else:
                items = order.pop("order_items", None)
                order.setdefault("updated_at", now_iso())
                deep_merge(current, order)
                for item in items or []:
                    old = next((i for i in current["order_items"]
                                if str(i.get("order_item_id")) == str(item.get("order_item_id"))),
                               None)
                    if old is None:
                        current["order_items"].append(item)
                    else:
                        deep_merge(old, item)
            _derive(current)

    # -- gateway checks -----------------------------------------------------

    def _check_request(self, request, params, data):
        """None when the call is authentic, else the error response."""
        for name in ("app_key", "timestamp", "sign_method", "sign", "access_token"):
            if not params.get(name):
                return self._envelope(200, "MissingParameter", "ISV",
                                      f"The input parameter \"{name}\" that is "
                                      f"mandatory for processing this request is not "
                                      f"supplied")
        if params["app_key"] != data["app"]["app_key"]:
            return self._envelope(200, "InvalidAppKey", "ISV",
                                  "The specified app key is invalid")
        if params["sign_method"] != "sha256":
            return self._envelope(200, "InvalidSignatureMethod", "ISV",
                                  "The specified signature method is not supported")
        try:
            ts = int(params["timestamp"]) / 1000.0
        except ValueError:
            ts = None
        if ts is None or abs(time.time() - ts) > TIMESTAMP_WINDOW_S:
            return self._envelope(200, "InvalidTimestamp", "ISV",
                                  "The specified timestamp is invalid or expired")
        api = request.path[len("/rest"):] if request.path.startswith("/rest/") else request.path
        expected = sign(data["app"]["app_secret"], api, params)
        if not hmac.compare_digest(expected, params["sign"]):
            return self._envelope(200, "IncompleteSignature", "ISV",
                                  "The request signature does not conform to "
                                  "platform standards")
        expiry = data["tokens"].get(params["access_token"])
        if expiry is None or expiry <= time.time():
            return self._envelope(200, "IllegalAccessToken", "ISV",
                                  "The specified access token is invalid or expired")
        return None

    # -- UpdatePriceQuantity ------------------------------------------------

    def price_quantity_update(self, request, state):
        params = {k: v[0] for k, v in request.query.items()}
        for k, v in (request.form or {}).items():
            params[k] = v[0]
        with state.lock:
            data = state.data
            refused = self._check_request(request, params, data)
            if refused is not None:
                return refused
            payload = params.get("payload")
            if not payload:
                return self._envelope(200, "E030", "ISV", "Empty Request")
            try:
                root = ET.fromstring(payload)
            except ET.ParseError as exc:
                return self._envelope(200, "E005", "ISV",
                                      f"Invalid Request Format: {exc}")
            skus = root.findall("./Product/Skus/Sku") if root.tag == "Request" else None
            if not skus:
                return self._envelope(200, "E005", "ISV", "Invalid Request Format")
            if len(skus) > MAX_SKUS:
                return self._envelope(200, "E204", "ISV",
                                      "Too many SKU in one request")
            detail = []
            updates = []
            for sku in skus:
                failure, update = self._check_sku(sku, data["skus"])
                if failure is not None:
                    detail.append(failure)
                else:
                    updates.append(update)
            for seller_sku, qty in updates:
                item = data["skus"][seller_sku]
                item["quantity"] = qty
                item["updates"] = item.get("updates", 0) + 1
            if updates:
                data["updates"] += 1
        if detail:
            return json_response({"code": "E501", "type": "ISV",
                                  "message": "Update product failed",
                                  "request_id": request_id(), "detail": detail})
        return json_response({"code": "0", "request_id": request_id(), "data": {}})

    @staticmethod
    def _check_sku(sku, known):
        """(failure detail, None) or (None, (seller_sku, quantity))."""
        seller_sku = (sku.findtext("SellerSku") or "").strip()
        if not seller_sku:
            return {"field": "SellerSku", "seller_sku": "",
                    "message": "SellerSku is required"}, None
        item = known.get(seller_sku)
        if item is None:
            return {"field": "SellerSku", "seller_sku": seller_sku,
                    "message": f"SKU {seller_sku} does not exist"}, None
        for tag, key in (("SkuId", "sku_id"), ("ItemId", "item_id")):
            value = sku.findtext(tag)
            if value is not None and item.get(key) is not None and value != item[key]:
                return {"field": tag, "seller_sku": seller_sku,
                        "message": f"{tag} {value} does not match SellerSku "
                                   f"{seller_sku}"}, None
        text = sku.findtext("Quantity")
        try:
            qty = int(text)
        except (TypeError, ValueError):
            qty = -1
        if qty < 0:
            return {"field": "Quantity", "seller_sku": seller_sku,
                    "message": "Quantity must be a non-negative integer"}, None
        return None, (seller_sku, qty)

    # -- orders ---------------------------------------------------------------

    def _params(self, request):
        params = {k: v[0] for k, v in request.query.items()}
        for k, v in (request.form or {}).items():
            params[k] = v[0]
        return params

    def get_orders(self, request, state):
        params = self._params(request)
        with state.lock:
            data = state.data
            refused = self._check_request(request, params, data)
            if refused is not None:
                return refused
            bounds = {}
            for name in ("update_after", "update_before", "created_after", "created_before"):
                if name in params:
                    when = parse_iso(params[name])
                    if when is None:
                        return self._envelope(200, "17", "ISV",
                                              f"E017: \"{params[name]}\" Invalid Date Format")
                    bounds[name] = when
            if "update_after" not in bounds and "created_after" not in bounds:
                return self._envelope(200, "MissingParameter", "ISV",
                                      "Either update_after or created_after is mandatory")
            sort_by = params.get("sort_by", "created_at")
            if sort_by not in ("created_at", "updated_at"):
                return self._envelope(200, "75", "ISV", "E075: Invalid sort filter.")
            direction = params.get("sort_direction", "DESC")
            if direction not in ("ASC", "DESC"):
                return self._envelope(200, "74", "ISV", "E074: Invalid sort direction.")
            status = params.get("status")
            if status is not None and status not in ORDER_STATUSES:
                return self._envelope(200, "36", "ISV", "E036: Invalid status filter")
            try:
                offset = int(params.get("offset", "0"))
            except ValueError:
                offset = -1
            if offset < 0 or offset > MAX_OFFSET:
                return self._envelope(200, "14", "ISV",
                                      f"E014: \"{params.get('offset')}\" Invalid Offset")
            try:
                limit = int(params.get("limit", str(MAX_LIMIT)))
            except ValueError:
                limit = 0
            if limit < 1 or limit > MAX_LIMIT:
                return self._envelope(200, "19", "ISV",
                                      f"E019: \"{params.get('limit')}\" Invalid Limit")
            selected = []
            for order in data["orders"]:
                updated = parse_iso(order["updated_at"])
                created = parse_iso(order["created_at"])
                if "update_after" in bounds and updated < bounds["update_after"]:
                    continue
                if "update_before" in bounds and updated > bounds["update_before"]:
                    continue
                if "created_after" in bounds and created < bounds["created_after"]:
                    continue
                if "created_before" in bounds and created > bounds["created_before"]:
                    continue
                if status is not None and status not in order.get("statuses", []):
                    continue
                selected.append(order)
            key = "updated_at" if sort_by == "updated_at" else "created_at"
            selected.sort(key=lambda o: (parse_iso(o[key]), str(o["order_id"])),
                          reverse=direction == "DESC")
            page = [_public(o) for o in selected[offset:offset + limit]]
        return json_response({"code": "0", "data": {"count": len(page),
                                                    "countTotal": len(selected),
                                                    "orders": page},
                              "request_id": request_id()})

    def get_order(self, request, state):
        params = self._params(request)
        with state.lock:
            data = state.data
            refused = self._check_request(request, params, data)
            if refused is not None:
                return refused
            order = _find_order(data["orders"], params.get("order_id", ""))
            if order is None:
                return self._envelope(200, "16", "ISV",
                                      f"E016: \"{params.get('order_id', '')}\" Invalid Order ID")
            body = {"code": "0", "data": _public(order), "request_id": request_id()}
        return json_response(body)

    def get_order_items(self, request, state):
        params = self._params(request)
        with state.lock:
            data = state.data
            refused = self._check_request(request, params, data)
            if refused is not None:
                return refused
            text = params.get("order_ids", "")
            try:
                ids = json.loads(text)
            except ValueError:
                ids = None
            if (not isinstance(ids, list) or not ids
                    or not all(isinstance(i, int) or (isinstance(i, str) and i.isdigit())
                               for i in ids)):
                return self._envelope(200, "56", "ISV",
                                      "E056: Invalid OrdersIdList format. Must use array format [1,2]")
            if len(ids) > MAX_ORDER_IDS:
                return self._envelope(200, "38", "ISV",
                                      "E038: Too many orders were requested")
            result = []
            for oid in ids:
                order = _find_order(data["orders"], oid)
                if order is None:
                    return self._envelope(200, "37", "ISV",
                                          "E037: One or more order id in the list are incorrect")
                result.append({"order_number": order.get("order_number", order["order_id"]),
                               "order_id": int(order["order_id"]),
                               "order_items": copy.deepcopy(order["order_items"])})
        return json_response({"code": "0", "data": result, "request_id": request_id()})

    def cancel_create(self, request, state):
        params = self._params(request)
        with state.lock:
            data = state.data
            refused = self._check_request(request, params, data)
            if refused is not None:
                return refused
            if not params.get("order_id"):
                return self._envelope(200, "115", "ISV", "E0115: order id is null")
            if not params.get("reason_id"):
                return self._envelope(200, "104", "ISV", "E0104: reason is empty or invalid")
            try:
                lines = json.loads(params.get("order_item_id_list", ""))
            except ValueError:
                lines = None
            if not isinstance(lines, list) or not lines:
                return self._envelope(200, "102", "ISV",
                                      "E0102: trade order line id is empty or invalid")
            order = _find_order(data["orders"], params["order_id"])
            if order is None:
                return self._envelope(200, "122", "ISV", "E0122: invalid trade order ")
            items = []
            for line in lines:
                item = next((i for i in order["order_items"]
                             if str(i.get("order_item_id")) == str(line)), None)
                if item is None or item.get("status") in HANDED_OVER:
                    return self._envelope(200, "123", "ISV",
                                          f"E0123: invalid trade order lines {line}")
                items.append(item)
            stamp = now_iso()
            for item in items:
                item["status"] = "canceled"
                item["cancel_return_initiator"] = "cancellation-seller"
                item["updated_at"] = stamp
            order["updated_at"] = stamp
            _derive(order)
            data["cancellations"].append({"order_id": str(order["order_id"]),
                                          "order_item_id_list": [str(x) for x in lines],
                                          "reason_id": params["reason_id"],
                                          "time": time.time()})
        return json_response({"code": "0", "data": {"tip_content": "", "tip_type": "warn"},
                              "request_id": request_id()})

    def rate_limit(self, request, retry_after):
        return self._envelope(200, "ApiCallLimit", "ISP",
                              "The request has exceeded the limit of "
                              "API calls")

    def error(self, request, status, code=None, message=None):
        known_code, kind, known_message = KNOWN_ERRORS.get(
            status, (str(status), "ISV" if status < 500 else "ISP",
                     reason(status)))
        return self._envelope(status, known_code if code is None else code,
                              kind, message or known_message)

    @staticmethod
    def _envelope(status, code, kind, message):
        return json_response({"code": code, "type": kind, "message": message,
                              "request_id": request_id()}, status)


def now_iso():
    """The gateway's local time (+08:00), as Lazada writes timestamps."""
    return datetime.datetime.now(LOCAL_TZ).replace(microsecond=0).isoformat()


def parse_iso(text):
    """A datetime of "YYYY-MM-DDTHH:mm:ss+HH:MM" (the only accepted form), or None."""
    if not isinstance(text, str) or not ISO_RE.fullmatch(text):
        return None
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _find_order(orders, order_id):
    return next((o for o in orders if str(o["order_id"]) == str(order_id)), None)


def _derive(order):
    """statuses (distinct item statuses, in item order) and items_count."""
    statuses = []
    for item in order["order_items"]:
        if item.get("status") not in statuses:
            statuses.append(item.get("status"))
    order["statuses"] = statuses
    order["items_count"] = len(order["order_items"])


def _public(order):
    """The order as GetOrders / GetOrder answer it (no items)."""
    return {k: copy.deepcopy(v) for k, v in order.items() if k != "order_items"}


def make(name):
    return Lazada(name)
