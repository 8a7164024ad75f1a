"""eBay Sell APIs mock (see MARKETPLACE_APIS.md section 3).

Errors: ``{"errors": [{"errorId", "domain", "category", "message",
"longMessage", "parameters"}]}``; category REQUEST for 4xx, APPLICATION for
5xx.  Throttling: HTTP 429 (eBay documents no retry header, so a rule's
``retry_after`` is not expressed).  ``errorId`` defaults to the HTTP status
where no eBay id is known; a rule's ``code`` sets it.
"""

import base64
import secrets
import time

from core import Route, json_response
from marketplaces.base import Marketplace, reason

TOKEN_PATH = r"/identity/v1/oauth2/token"
BULK_PATH = r"/sell/inventory/v1/bulk_update_price_quantity"
ITEM_PATH = r"/sell/inventory/v1/inventory_item/(?P<sku>[^/]+)"
BULK_MAX = 25
REQUIRED_SCOPE = "https://api.ebay.com/oauth/api_scope/sell.inventory"

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
    seeded SKUs exist: others get eBay's per-item 404 "not found").
    """
    name = "ebay"

    def initial_state(self):
        return {"credentials": {"client_id": "ebay-client",
                                "client_secret": "ebay-secret",
                                "refresh_token": "ebay-refresh"},
                "token_ttl": 7200, "tokens": {}, "inventory": {}}

    def routes(self):
        return [Route("POST", TOKEN_PATH, self.token, "token"),
                Route("POST", BULK_PATH, self.bulk_update, "bulk_update_price_quantity"),
                Route("GET", ITEM_PATH, self.get_item, "get_inventory_item")]

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
        return json_response({"access_token": token, "expires_in": ttl,
                              "token_type": "User Access Token"})

    def _bearer_ok(self, request, state):
        auth = request.header("Authorization") or ""
        if not auth.startswith("Bearer "):
            return False
        expiry = state.data["tokens"].get(auth[len("Bearer "):])
        return expiry is not None and expiry > time.time()

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


def make(name):
    return Ebay(name)
