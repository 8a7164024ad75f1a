"""TikTok Shop Partner API (202309) mock (see MARKETPLACE_APIS.md section 5).

Every response uses the envelope ``{"code", "message", "request_id",
"data"}``; ``code`` 0 is success.  Throttling: HTTP 429 with code
``36009002`` (no retry header is documented, so a rule's ``retry_after`` is
not expressed).  Business errors normally come with HTTP 200 and a non-zero
code - use a ``status`` fault with ``"status": 200, "code": ...`` for those.
Where no TikTok code is known for a status, ``code`` is the HTTP status.

Endpoint: ``POST /product/202309/products/{product_id}/inventory/update``
(Update Inventory).  Every call is checked as the API does (section 5.1):
query ``app_key``, ``timestamp`` (seconds, within -5 min .. +30 s of the
server's clock), ``sign`` and ``shop_cipher``, header ``x-tts-access-token``;
the signature is recomputed with hmac/hashlib (app_secret + path + sorted
key+value pairs without sign/access_token + body + app_secret, HMAC-SHA256
under app_secret, lower-case hex).  Authentication failures answer HTTP 401
with the TikTok code (the HTTP status of those answers is (unverified): the
reference only documents the codes); business errors answer HTTP 200 with a
non-zero code; per-SKU failures come in ``data.errors[]`` with ``code`` 0.

Orders (section 5.3, orders_get-order-list.spec.json), same gateway checks:

* ``POST /order/202309/orders/search?page_size=&sort_field=&sort_order=
  [&page_token=]`` with a JSON body of filters (``order_status``,
  ``create_time_ge/lt``, ``update_time_ge/lt`` (Unix seconds, integers),
  ``shipping_type``, ``buyer_user_id``) -> ``data{next_page_token (empty on
  the last page), total_count, orders[]}``; ``page_size`` is required,
  1..100; ``sort_field`` create_time (default) or update_time,
  ``sort_order`` ASC or DESC (default); ``page_token`` is opaque and bound to
  the filters and sort it was issued for (another one is refused);
* ``GET /order/202309/orders?ids=a,b`` (Get Order Detail, at most 50 ids) ->
  ``data{orders[]}`` (unknown ids are left out);
* ``POST /return_refund/202309/cancellations`` (Cancel Order) with
  ``{"order_id", "order_line_item_ids"?, "skus"?, "cancel_reason"}``: only
  orders not shipped yet (UNPAID, ON_HOLD, AWAITING_SHIPMENT) can be
  cancelled by the seller; the line items become CANCELLED (the order too
  when none is left), ``cancellation_initiator`` SELLER, ``update_time``
  now; answers ``data{cancel_id, cancel_status}``; recorded in
  ``cancellations``.

Seed ``{"orders": [...]}`` with orders in TikTok's format (one line item per
unit, money as strings); each replaces the order with the same ``id``;
``update_time`` defaults to now.  Error codes of parameter errors and of
refused cancellations: (unverified).
"""

import base64
import copy
import hashlib
import hmac
import json
import time

from core import Route, json_response
from marketplaces.base import Marketplace, reason, request_id

KNOWN_CODES = {
    401: (105002, "Access token is expired"),
    429: (36009002, "Too many requests"),
    504: (36009007, "Request timeout"),
}

INVENTORY_PATH = r"/product/202309/products/(?P<product_id>[^/]+)/inventory/update"
MAX_SKUS = 100           # "A single product cannot have more than 100 different SKUs"
MAX_QTY = 99999
SEARCH_PATH = r"/order/202309/orders/search"
DETAIL_PATH = r"/order/202309/orders"
CANCEL_PATH = r"/return_refund/202309/cancellations"
BAD_PARAM = 36009003          # (unverified)
NOT_CANCELLABLE = 64000011    # (unverified)
ORDER_NOT_FOUND = 64000004    # (unverified)
SELLER_CANCELLABLE = ("UNPAID", "ON_HOLD", "AWAITING_SHIPMENT")


def sign(secret, path, query, body):
    """The request signature of section 5.1 (query: name -> value)."""
    pairs = "".join(k + query[k] for k in sorted(query)
                    if k not in ("sign", "access_token"))
    text = secret + path + pairs + body + secret
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def envelope(code, message, data=None, status=200):
    return json_response({"code": code, "message": message,
                          "request_id": request_id(), "data": data}, status)


class TikTok(Marketplace):
    """State (seedable):

    ``app``: ``app_key`` / ``app_secret`` the gateway accepts;
    ``shop_cipher``: the shop's cipher; ``tokens``: access token -> expiry
    (epoch seconds); ``products``: product_id -> ``{"status": "ACTIVATE",
    "skus": {sku_id: {"quantity": n, "warehouse_id": optional}}}`` (only
    seeded products and SKUs exist); ``updates``: successful calls.
    """
    name = "tiktok"

    def initial_state(self):
        return {"app": {"app_key": "tts-app", "app_secret": "tts-secret"},
                "shop_cipher": "ROW_mockshop",
                "tokens": {"TTP_mock_token": 4102444800},
                "products": {}, "updates": 0, "orders": {}, "cancellations": []}

    def seed(self, data, seed):
        seed = dict(seed)
        orders = seed.pop("orders", None)
        super().seed(data, seed)
        if isinstance(orders, dict):
            orders = list(orders.values())
        for order in orders or []:
            order = copy.deepcopy(order)
            order.setdefault("update_time", int(time.time()))
            data.setdefault("orders", {})[order["id"]] = order

    def routes(self):
        return [Route("POST", INVENTORY_PATH, self.update_inventory, "update_inventory"),
                Route("POST", SEARCH_PATH, self.search_orders, "get_order_list"),
                Route("GET", DETAIL_PATH, self.order_detail, "get_order_detail"),
                Route("POST", CANCEL_PATH, self.cancel_order, "cancel_order")]

    # -- Orders -------------------------------------------------------------

    def search_orders(self, request, state):
        with state.lock:
            data = state.data
            refused = self._check_request(request, data)
            if refused is not None:
                return refused
            q = {k: v[0] for k, v in request.query.items()}
            try:
                size = int(q.get("page_size", ""))
            except ValueError:
                return envelope(BAD_PARAM, "Invalid parameter: page_size is required")
            if not 1 <= size <= 100:
                return envelope(BAD_PARAM, "Invalid parameter: page_size must be within [1, 100]")
            field = q.get("sort_field", "create_time")
            order = q.get("sort_order", "DESC")
            if field not in ("create_time", "update_time") or order not in ("ASC", "DESC"):
                return envelope(BAD_PARAM, "Invalid parameter: sort_field or sort_order")
            body = request.json if request.body else {}
            if request.body and (request.json_error is not None or not isinstance(body, dict)):
                return envelope(BAD_PARAM, "Invalid parameter: the body is not a JSON object")
            for k in ("create_time_ge", "create_time_lt", "update_time_ge", "update_time_lt"):
                if k in body and (not isinstance(body[k], int) or isinstance(body[k], bool)):
                    return envelope(BAD_PARAM, f"Invalid parameter: {k} must be a Unix timestamp")
            filt = json.dumps([body, field, order], sort_keys=True)
            offset = 0
            if q.get("page_token"):
                try:
                    tok = json.loads(base64.b64decode(q["page_token"], validate=True))
                    assert tok["f"] == hashlib.sha256(filt.encode()).hexdigest()[:16]
                    offset = int(tok["o"])
                except Exception:
                    return envelope(BAD_PARAM, "Invalid parameter: page_token is invalid")

            def keep(o):
                if "order_status" in body and o.get("status") != body["order_status"]:
                    return False
                for k, attr, lo in (("create_time_ge", "create_time", True),
                                    ("create_time_lt", "create_time", False),
                                    ("update_time_ge", "update_time", True),
                                    ("update_time_lt", "update_time", False)):
                    if k in body:
                        v = o.get(attr, 0)
                        if (lo and v < body[k]) or (not lo and v >= body[k]):
                            return False
                if "shipping_type" in body and o.get("shipping_type") != body["shipping_type"]:
                    return False
                if "buyer_user_id" in body and o.get("user_id") != body["buyer_user_id"]:
                    return False
                return True
            found = [o for o in data["orders"].values() if keep(o)]
            found.sort(key=lambda o: (o.get(field, 0), o["id"]), reverse=(order == "DESC"))
            page = [copy.deepcopy(o) for o in found[offset:offset + size]]
            token = ""
            if offset + size < len(found):
                token = base64.b64encode(json.dumps(
                    {"o": offset + size,
                     "f": hashlib.sha256(filt.encode()).hexdigest()[:16]}).encode()).decode()
        return envelope(0, "Success", {"next_page_token": token, "total_count": len(found),
                                       "orders": page})

    def order_detail(self, request, state):
        with state.lock:
            data = state.data
            refused = self._check_request(request, data)
            if refused is not None:
                return refused
            ids = [i for v in request.query.get("ids", []) for i in v.split(",") if i]
            if not ids or len(ids) > 50:
                return envelope(BAD_PARAM, "Invalid parameter: ids must name 1 to 50 orders")
            orders = [copy.deepcopy(data["orders"][i]) for i in ids if i in data["orders"]]
        return envelope(0, "Success", {"orders": orders})

    def cancel_order(self, request, state):
        with state.lock:
            data = state.data
            refused = self._check_request(request, data)
            if refused is not None:
                return refused
            body = request.json
            if request.json_error is not None or not isinstance(body, dict):
                return envelope(BAD_PARAM, "Invalid parameter: the body is not a JSON object")
            order = data["orders"].get(body.get("order_id"))
            if order is None:
                return envelope(ORDER_NOT_FOUND, "The order does not exist")
            reason_ = body.get("cancel_reason")
            if not isinstance(reason_, str) or not reason_:
                return envelope(BAD_PARAM, "Invalid parameter: cancel_reason is required")
            if order.get("status") not in SELLER_CANCELLABLE:
                return envelope(NOT_CANCELLABLE, "The order cannot be canceled in its current "
                                                 f"status {order.get('status')}")
            items = order.get("line_items", [])
            wanted = body.get("order_line_item_ids")
            if wanted is None:
                wanted = [li["id"] for li in items if li.get("display_status") != "CANCELLED"]
            known = {li["id"] for li in items}
            if not isinstance(wanted, list) or not wanted or any(w not in known for w in wanted):
                return envelope(BAD_PARAM, "Invalid parameter: order_line_item_ids")
            now = int(time.time())
            for li in items:
                if li["id"] in wanted:
                    li["display_status"] = "CANCELLED"
                    li["cancel_user"] = "SELLER"
                    li["cancel_reason"] = reason_
            if all(li.get("display_status") == "CANCELLED" for li in items):
                order["status"] = "CANCELLED"
                order["cancel_time"] = now
                order["cancellation_initiator"] = "SELLER"
                order["cancel_reason"] = reason_
            order["update_time"] = now
            cancel_id = str(4000000000 + len(data["cancellations"]) + 1)
            data["cancellations"].append({"cancel_id": cancel_id, "order_id": order["id"],
                                          "order_line_item_ids": list(wanted),
                                          "cancel_reason": reason_})
        return envelope(0, "Success", {"cancel_id": cancel_id,
                                       "cancel_status": "CANCELLATION_REQUEST_COMPLETE"})

    # -- gateway checks -----------------------------------------------------

    def _check_request(self, request, data):
        """None when the call is authentic, else the error response."""
        query = {k: v[0] for k, v in request.query.items()}
        for name in ("app_key", "timestamp", "sign"):
            if not query.get(name):
                return envelope(36009004, f"Invalid credentials: the query parameter "
                                          f"{name} is missing", status=401)
        if query["app_key"] != data["app"]["app_key"]:
            return envelope(36009004, "Invalid credentials: app_key is invalid", status=401)
        try:
            ts = int(query["timestamp"])
        except ValueError:
            return envelope(36009004, "Invalid credentials: timestamp is invalid", status=401)
        now = time.time()
        if ts < now - 300 or ts > now + 30:
            return envelope(36009004, "Invalid credentials: timestamp is expired or "
                                      "out of range", status=401)
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            body = request.body.decode("latin-1")
        expected = sign(data["app"]["app_secret"], request.path, query, body)
        if not hmac.compare_digest(expected, query["sign"]):
            return envelope(106001, "Invalid sign: the signature does not match", status=401)
        token = request.header("x-tts-access-token")
        if not token:
            return envelope(105001, "Invalid access token: the header x-tts-access-token "
                                    "is missing", status=401)
        expiry = data["tokens"].get(token)
        if expiry is None:
            return envelope(105001, "Invalid access token", status=401)
        if expiry <= now:
            return envelope(105002, "Access token is expired", status=401)
        if not query.get("shop_cipher"):
            return envelope(106013, "shop_cipher is required for this API")
        if query["shop_cipher"] != data["shop_cipher"]:
            return envelope(106013, "shop_cipher is invalid or not authorized for this app")
        return None

    # -- Update Inventory ---------------------------------------------------

    def update_inventory(self, request, state):
        with state.lock:
            data = state.data
            refused = self._check_request(request, data)
            if refused is not None:
                return refused
            ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return envelope(12052990, "The check failed: content-type must be "
                                          "application/json")
            if request.json_error is not None or not isinstance(request.json, dict):
                return envelope(12052990, "The check failed: the body is not a JSON object")
            skus = request.json.get("skus")
            if not isinstance(skus, list) or not skus:
                return envelope(12052902, "The SKU list is empty. Either omit the list "
                                          "entirely, or provide all required details.")
            if len(skus) > MAX_SKUS:
                return envelope(12052050, "A single product cannot have more than 100 "
                                          "different SKUs")
            product = data["products"].get(request.params["product_id"])
            if product is None:
                return envelope(12052032, "The product does not exist")
            if product.get("status", "ACTIVATE") != "ACTIVATE":
                return envelope(12052901, "The product in its current status is not "
                                          "available for this operation. Change the "
                                          "product status and try again.")
            errors, seen = [], set()
            for sku in skus:
                error = self._update_sku(sku, product, seen)
                if error is not None:
                    errors.append(error)
            data["updates"] += 1
        return envelope(0, "Success", {"errors": errors} if errors else {})

    @staticmethod
    def _update_sku(sku, product, seen):
        sku_id = sku.get("id") if isinstance(sku, dict) else None
        if not isinstance(sku_id, str) or not sku_id:
            return {"code": 12052036, "message": "The SKU ID is necessary", "detail": {}}
        if sku_id in seen:
            return {"code": 12052553, "message": "Sku id duplicate",
                    "detail": {"sku_id": sku_id}}
        seen.add(sku_id)
        item = product["skus"].get(sku_id)
        if item is None:
            return {"code": 12052556, "message": "The SKU id not exist.",
                    "detail": {"sku_id": sku_id}}
        inventory = sku.get("inventory")
        if not isinstance(inventory, list) or len(inventory) != 1 or \
                not isinstance(inventory[0], dict):
            return {"code": 12019022, "message": "SKU must contain a valid warehouse.",
                    "detail": {"sku_id": sku_id}}
        inv = inventory[0]
        wid = inv.get("warehouse_id")
        if wid is not None and wid != item.get("warehouse_id"):
            return {"code": 12052990, "message": "Check failed",
                    "detail": {"sku_id": sku_id, "extra_errors": [
                        {"warehouse_id": wid, "code": 12052097,
                         "message": "The warehouse does not exist"}]}}
        qty = inv.get("quantity")
        # the reference says [1, 99999]; 0 (sold out) is accepted here, as
        # MARKETPLACE_APIS.md section 5.2 says "non-negative" (unverified)
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 0 or qty > MAX_QTY:
            return {"code": 12052990, "message": "Check failed",
                    "detail": {"sku_id": sku_id, "extra_errors": [
                        {"warehouse_id": item.get("warehouse_id", ""), "code": 12052055,
                         "message": "The SKU inventory quantity for the warehouse must "
                                    "be within allowed limits."}]}}
        item["quantity"] = qty
        item["updates"] = item.get("updates", 0) + 1
        return None

    def rate_limit(self, request, retry_after):
        return self.error(request, 429)

    def error(self, request, status, code=None, message=None):
        known_code, known_message = KNOWN_CODES.get(
            status, (status, reason(status)))
        return json_response({
            "code": known_code if code is None else code,
            "message": message or known_message,
            "request_id": request_id(), "data": None}, status)


def make(name):
    return TikTok(name)
