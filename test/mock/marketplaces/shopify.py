"""Shopify Admin API mock (see MARKETPLACE_APIS.md section 2).

REST throttling: HTTP 429 with ``Retry-After`` and
``X-Shopify-Shop-Api-Call-Limit`` (bucket full), body ``{"errors": "..."}``.
GraphQL (``.../graphql.json``) throttling: HTTP 200 with
``errors[].extensions.code == "THROTTLED"`` and ``extensions.cost`` whose
``throttleStatus`` says how long to wait: (requestedQueryCost -
currentlyAvailable) / restoreRate == retry_after.
Other errors: REST shape ``{"errors": "<message>"}``.

GraphQL endpoint ``POST /admin/api/{version}/graphql.json`` serving the
``inventorySetQuantities`` mutation (the only operation the connector uses;
the query text is checked, not fully parsed):

* ``X-Shopify-Access-Token`` must be the shop's token (401 otherwise);
* ``Content-Type: application/json`` with ``query`` (and ``variables``);
* versions before 2026-01 do not know the ``@idempotent`` directive; from
  2026-04 it is required (a runtime error without it); a key seen before
  with the same input replays the first answer, with another input it is an
  error (error codes/messages of the directive: (unverified));
* ``input.name`` is ``available`` or ``on_hand``, ``reason`` a documented
  reason, ``quantities`` 1..250 entries (more: ``MAX_INPUT_SIZE_EXCEEDED``);
* before 2026-04 ``ignoreCompareQuantity: true`` or a ``compareQuantity``
  per quantity (checked against the stored level); from 2026-04 every
  quantity needs ``changeFromQuantity`` (explicit null opts out);
* each quantity's ``inventoryItemId`` and ``locationId`` must exist and the
  item be stocked there; userErrors carry ``field`` =
  ``["input", "quantities", "<i>", "<field>"]``;
* the call is all-or-nothing: with any userError nothing is applied and
  ``inventoryAdjustmentGroup`` is null (unverified, see the connector).
"""

import hashlib
import json
import re
import time

from core import Route, json_response
from marketplaces.base import Marketplace, reason, request_id

GRAPHQL_PATH = re.compile(r"/admin/api/[^/]+/graphql\.json")
GRAPHQL_ROUTE = r"/admin/api/(?P<version>[^/]+)/graphql\.json"
REST_BUCKET_SIZE = 40          # Standard plan bucket (unverified size)
GRAPHQL_MAXIMUM_AVAILABLE = 2000.0   # (unverified)
GRAPHQL_RESTORE_RATE = 100.0         # Standard plan points/second
MUTATION_COST = 10                   # a mutation's requested cost (unverified)
MAX_QUANTITIES = 250
REST_THROTTLE_MESSAGE = ("Exceeded 2 calls per second for api client. "
                         "Reduce request rates to resume uninterrupted "
                         "service.")
INVALID_TOKEN_MESSAGE = ("[API] Invalid API key or access token "
                         "(unrecognized login or wrong password)")
# documented reasons (list (unverified))
REASONS = {"correction", "cycle_count_available", "damaged", "movement_created",
           "movement_updated", "movement_received", "movement_canceled", "other",
           "promotion", "quality_control", "received", "reservation_created",
           "reservation_deleted", "reservation_updated", "restock", "safety_stock",
           "shrinkage"}
SUPPORTED_VERSIONS = {"2024-10", "2025-01", "2025-04", "2025-07", "2025-10",
                      "2026-01", "2026-04", "2026-07"}


def _cost(available=GRAPHQL_MAXIMUM_AVAILABLE - MUTATION_COST):
    return {"cost": {"requestedQueryCost": MUTATION_COST,
                     "actualQueryCost": MUTATION_COST,
                     "throttleStatus": {"maximumAvailable": GRAPHQL_MAXIMUM_AVAILABLE,
                                        "currentlyAvailable": available,
                                        "restoreRate": GRAPHQL_RESTORE_RATE}}}


def _graphql_error(message, code, status=200):
    return json_response({"errors": [{"message": message,
                                      "extensions": {"code": code}}],
                          "extensions": _cost()}, status,
                         {"X-Request-Id": request_id()})


class Shopify(Marketplace):
    """State (seedable):

    ``access_token``: the token the shop accepts; ``locations``: location
    gids; ``levels``: inventory item gid -> {location gid: available} (an
    item exists when it has an entry; it is stocked at the locations it has
    a level for); ``idempotency``: key -> {"input": hash, "answer": body};
    ``mutations``: count of applied inventorySetQuantities calls.
    """
    name = "shopify"

    def initial_state(self):
        return {"access_token": "shpat_mock", "locations": ["gid://shopify/Location/1"],
                "levels": {}, "idempotency": {}, "mutations": 0}

    def routes(self):
        return [Route("POST", GRAPHQL_ROUTE, self.graphql, "graphql")]

    def graphql(self, request, state):
        version = request.params["version"]
        with state.lock:
            token = request.header("X-Shopify-Access-Token")
            if token is None or token != state.data["access_token"]:
                return self.error(request, 401, message=INVALID_TOKEN_MESSAGE)
        if version not in SUPPORTED_VERSIONS:
            return self.error(request, 404, message="Not Found")
        ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return self.error(request, 415, message="Unsupported Media Type: use application/json")
        body = request.json
        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return json_response({"errors": {"query": "Required parameter missing or invalid"}},
                                 400, {"X-Request-Id": request_id()})
        query = body["query"]
        variables = body.get("variables") or {}
        if "inventorySetQuantities" not in query or not query.lstrip().startswith("mutation"):
            return _graphql_error("This mock only serves the inventorySetQuantities mutation",
                                  "BAD_REQUEST")

        # the @idempotent directive
        m = re.search(r"@idempotent\s*\(\s*key\s*:\s*(\$(\w+)|\"([^\"]*)\")\s*\)", query)
        key = None
        if m:
            if version < "2026-01":
                return json_response({"errors": [{
                    "message": "Directive 'idempotent' is not defined",
                    "locations": [{"line": 1, "column": 1}],
                    "path": ["mutation"],
                    "extensions": {"code": "undefinedDirective", "directiveName": "idempotent"}}]},
                    200, {"X-Request-Id": request_id()})
            key = variables.get(m.group(2)) if m.group(2) else m.group(3)
            if not isinstance(key, str) or not key:
                return _graphql_error("Variable $%s of type String! was provided invalid value"
                                      % (m.group(2) or "key"), "INVALID_VARIABLE")
        elif version >= "2026-04":
            return json_response({"data": {"inventorySetQuantities": None}, "errors": [{
                "message": "The @idempotent directive is required for this mutation.",
                "path": ["inventorySetQuantities"],
                "extensions": {"code": "BAD_REQUEST"}}], "extensions": _cost()},
                200, {"X-Request-Id": request_id()})

        inp = variables.get("input")
        if not isinstance(inp, dict):
            return _graphql_error("Variable $input of type InventorySetQuantitiesInput! "
                                  "was provided invalid value", "INVALID_VARIABLE")
        quantities = inp.get("quantities")
        if not isinstance(quantities, list):
            return _graphql_error("Variable $input of type InventorySetQuantitiesInput! was "
                                  "provided invalid value for quantities (Expected value to "
                                  "not be null)", "INVALID_VARIABLE")
        if len(quantities) > MAX_QUANTITIES:
            return _graphql_error(f"The input array size of {len(quantities)} is greater than "
                                  f"the maximum allowed of {MAX_QUANTITIES}.",
                                  "MAX_INPUT_SIZE_EXCEEDED")
        digest = hashlib.sha256(json.dumps(inp, sort_keys=True).encode()).hexdigest()
        with state.lock:
            if key is not None:
                seen = state.data["idempotency"].get(key)
                if seen is not None:
                    if seen["input"] != digest:
                        return _graphql_error("The same idempotency key was used with "
                                              "different parameters.",
                                              "IDEMPOTENCY_KEY_PARAMETER_MISMATCH")
                    return json_response(seen["answer"], 200, {"X-Request-Id": request_id()})
            answer = self._set_quantities(version, inp, quantities, state.data)
            if key is not None:
                state.data["idempotency"][key] = {"input": digest, "answer": answer}
        return json_response(answer, 200, {"X-Request-Id": request_id()})

    @staticmethod
    def _set_quantities(version, inp, quantities, data):
        errors = []

        def err(field, code, message):
            errors.append({"field": field, "code": code, "message": message})

        name = inp.get("name")
        if name not in ("available", "on_hand"):
            err(["input", "name"], "INVALID_NAME",
                "The quantity name must be either 'available' or 'on_hand'.")
        if inp.get("reason") not in REASONS:
            err(["input", "reason"], "INVALID_REASON", "The specified reason is invalid.")
        if not quantities:
            err(["input", "quantities"], "NO_QUANTITIES",
                "At least one quantity is required.")   # (unverified)
        cas_2026 = version >= "2026-04"
        ignore = inp.get("ignoreCompareQuantity") is True
        if cas_2026 and "ignoreCompareQuantity" in inp:
            err(["input", "ignoreCompareQuantity"], "INVALID",
                "ignoreCompareQuantity is not supported in this version; "
                "pass changeFromQuantity: null instead.")   # (unverified)
        seen_pairs = set()
        for i, q in enumerate(quantities):
            path = ["input", "quantities", str(i)]
            if not isinstance(q, dict):
                err(path, "INVALID", "Invalid quantity.")
                continue
            item, loc, qty = q.get("inventoryItemId"), q.get("locationId"), q.get("quantity")
            levels = data["levels"].get(item) if isinstance(item, str) else None
            if levels is None:
                err(path + ["inventoryItemId"], "INVALID_INVENTORY_ITEM",
                    "The specified inventory item could not be found.")
                continue
            if loc not in data["locations"]:
                err(path + ["locationId"], "INVALID_LOCATION",
                    "The specified location could not be found.")
                continue
            if loc not in levels:
                err(path + ["locationId"], "ITEM_NOT_STOCKED_AT_LOCATION",
                    "The specified inventory item is not stocked at the location.")
                continue
            if (item, loc) in seen_pairs:
                err(path, "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                    "The combination of inventoryItemId and locationId must be unique.")
                continue
            seen_pairs.add((item, loc))
            if not isinstance(qty, int) or isinstance(qty, bool):
                err(path + ["quantity"], "INVALID_QUANTITY_TOO_LOW", "The quantity is invalid.")
                continue
            if qty > 1_000_000_000:
                err(path + ["quantity"], "INVALID_QUANTITY_TOO_HIGH",
                    "The quantity can't be higher than 1,000,000,000.")
                continue
            if qty < -1_000_000_000:
                err(path + ["quantity"], "INVALID_QUANTITY_TOO_LOW",
                    "The quantity can't be lower than -1,000,000,000.")
                continue
            if cas_2026:
                if "changeFromQuantity" not in q:
                    err(path + ["changeFromQuantity"], "CHANGE_FROM_QUANTITY_STALE",
                        "changeFromQuantity is required; pass null to opt out "
                        "of the compare check.")   # (unverified code)
                elif q["changeFromQuantity"] is not None and q["changeFromQuantity"] != levels[loc]:
                    err(path + ["changeFromQuantity"], "CHANGE_FROM_QUANTITY_STALE",
                        "The specified changeFromQuantity does not match the current quantity.")
            elif not ignore:
                if "compareQuantity" not in q:
                    err(path + ["compareQuantity"], "COMPARE_QUANTITY_REQUIRED",
                        "The compareQuantity argument must be given to each quantity or "
                        "ignored using ignoreCompareQuantity.")
                elif q["compareQuantity"] != levels[loc]:
                    err(path + ["compareQuantity"], "COMPARE_QUANTITY_STALE",
                        "The compareQuantity argument no longer matches the persisted quantity.")

        if errors:
            result = {"inventoryAdjustmentGroup": None, "userErrors": errors}
        else:
            changes = []
            for q in quantities:
                levels = data["levels"][q["inventoryItemId"]]
                before = levels[q["locationId"]]
                levels[q["locationId"]] = q["quantity"]
                changes.append({"name": name, "delta": q["quantity"] - before,
                                "quantityAfterChange": None})
            data["mutations"] += 1
            result = {"inventoryAdjustmentGroup": {
                "createdAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "reason": inp["reason"], "changes": changes}, "userErrors": []}
        return {"data": {"inventorySetQuantities": result}, "extensions": _cost()}

    def rate_limit(self, request, retry_after):
        if GRAPHQL_PATH.fullmatch(request.path):
            cost = max(1, round(GRAPHQL_RESTORE_RATE * retry_after))
            return json_response({
                "errors": [{"message": "Throttled",
                            "extensions": {"code": "THROTTLED"}}],
                "extensions": {"cost": {
                    "requestedQueryCost": cost, "actualQueryCost": None,
                    "throttleStatus": {
                        "maximumAvailable": GRAPHQL_MAXIMUM_AVAILABLE,
                        "currentlyAvailable": 0,
                        "restoreRate": GRAPHQL_RESTORE_RATE}}},
            }, 200, {"X-Request-Id": request_id()})
        return json_response({"errors": REST_THROTTLE_MESSAGE}, 429, {
            "Retry-After": f"{float(retry_after):.1f}",
            "X-Shopify-Shop-Api-Call-Limit":
                f"{REST_BUCKET_SIZE}/{REST_BUCKET_SIZE}",
            "X-Request-Id": request_id()})

    def error(self, request, status, code=None, message=None):
        return json_response({"errors": message or reason(status)}, status,
                             {"X-Request-Id": request_id()})


def make(name):
    return Shopify(name)
