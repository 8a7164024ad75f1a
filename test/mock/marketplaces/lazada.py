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
"""

import hashlib
import hmac
import time
import xml.etree.ElementTree as ET

from core import Route, json_response
from marketplaces.base import Marketplace, reason, request_id

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
                "skus": {}, "updates": 0}

    def routes(self):
        return [Route("POST|GET", PRICE_QUANTITY_PATH, self.price_quantity_update,
                      "price_quantity_update")]

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


def make(name):
    return Lazada(name)
