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

Orders, on the same endpoint (a small GraphQL reader: operations with
variables, fragments, arguments; answers contain exactly the selected
fields, an unknown field is a GraphQL error as in Shopify):

* ``orders(first, after, sortKey, query, reverse)``: first 0..250;
  sortKey UPDATED_AT / CREATED_AT / PROCESSED_AT / ID; ``query`` in
  Shopify's search syntax, of which ``updated_at`` / ``created_at``
  comparisons (>, >=, <, <=, quoted ISO times) and ``id`` are applied, other
  terms ignored with a search warning in ``extensions``; opaque cursors
  holding the last (sort value, id) so an order updated during the
  pagination does not shift the others; ``pageInfo {hasNextPage endCursor}``,
  ``nodes`` and ``edges``;
* ``order(id: "gid://shopify/Order/N")`` (null when unknown), and the
  order's ``lineItems`` / ``shippingLines`` connections (first / after);
* a query's requested cost: objects 1, connections 2 + first x their node
  (the shape of Shopify's calculation; exact weights unverified); above
  1000 a MAX_COST_EXCEEDED error; ``extensions.cost`` on every answer;
* ``orderCancel(orderId, reason, refund | refundMethod (2025-07+),
  restock, notifyCustomer, staffNote)``: argument checks, reason in
  OrderCancelReason; userErrors (orderCancelUserErrors + deprecated
  userErrors) for an unknown order, one already cancelled, or one with
  fulfilled items (codes / messages unverified); otherwise the order is
  cancelled (cancelledAt, cancelReason, updatedAt, financial status
  REFUNDED / VOIDED), the call recorded in ``cancellations`` and a job
  returned.

Seed ``{"orders": [Order, ...]}``: GraphQL Order objects (id as a gid or a
number; lineItems and shippingLines as plain lists; MoneyBags as
``{"shopMoney": {"amount", "currencyCode"}}``); missing fields get defaults,
``updatedAt`` defaults to now.  Re-seeding an order replaces it.
"""

import base64
import copy
import datetime
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


# --------------------------------------------------------------------------
# Orders (GraphQL Admin API): a small GraphQL reader, enough for the
# queries and mutations clients send (operations with variables, fragments,
# field arguments; no aliases or directives other than @idempotent)
# --------------------------------------------------------------------------

ORDER_PAGE_MAX = 250
MAX_QUERY_COST = 1000
CANCEL_REASONS = {"CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF"}
FINANCIAL_STATUSES = {"AUTHORIZED", "EXPIRED", "PAID", "PARTIALLY_PAID", "PARTIALLY_REFUNDED",
                      "PENDING", "REFUNDED", "VOIDED"}
# fields of the mock's objects that hold connections (stored as lists)
CONNECTIONS = {"lineItems", "shippingLines", "orders"}
_TOKEN = re.compile(r'\s+|,|#[^\n]*|(?P<s>"(?:[^"\\]|\\.)*")|(?P<p>\.\.\.|[{}()\[\]:!$=@])'
                    r'|(?P<n>-?\d+(?:\.\d+)?)|(?P<w>[_A-Za-z][_0-9A-Za-z]*)')


class GraphQLError(Exception):
    def __init__(self, message, code=None):
        super().__init__(message)
        self.code = code


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise GraphQLError(f"Parse error on \"{text[pos:pos + 10]}\" at [{pos}]", "PARSE_ERROR")
        pos = m.end()
        if m.group("s") is not None:
            out.append(("str", json.loads(m.group("s"))))
        elif m.group("p"):
            out.append(("p", m.group("p")))
        elif m.group("n"):
            out.append(("num", m.group("n")))
        elif m.group("w"):
            out.append(("name", m.group("w")))
    return out


class _Parser:
    """Operations and fragments of a GraphQL document."""

    def __init__(self, text):
        self.t = _tokens(text)
        self.i = 0

    def peek(self):
        return self.t[self.i] if self.i < len(self.t) else (None, None)

    def take(self, kind=None, value=None):
        tok = self.peek()
        if tok[0] is None or (kind and tok[0] != kind) or (value and tok[1] != value):
            raise GraphQLError(f"Parse error on {tok[1]!r} (expected {value or kind})", "PARSE_ERROR")
        self.i += 1
        return tok[1]

    def document(self):
        ops, frags = [], {}
        while self.peek()[0] is not None:
            tok = self.peek()
            if tok == ("p", "{"):
                ops.append({"type": "query", "vars": {}, "sel": self.selection()})
            elif tok == ("name", "fragment"):
                self.take()
                name = self.take("name")
                self.take("name", "on")
                frags[name] = {"on": self.take("name"), "sel": self.selection()}
            elif tok[1] in ("query", "mutation"):
                op = {"type": self.take(), "vars": {}}
                if self.peek()[0] == "name":
                    op["name"] = self.take()
                if self.peek() == ("p", "("):
                    self.take()
                    while self.peek() != ("p", ")"):
                        self.take("p", "$")
                        var = self.take("name")
                        self.take("p", ":")
                        op["vars"][var] = self.type_ref()
                        if self.peek() == ("p", "="):
                            self.take()
                            self.value()
                    self.take()
                op["sel"] = self.selection()
                ops.append(op)
            else:
                raise GraphQLError(f"Parse error on {tok[1]!r}", "PARSE_ERROR")
        return ops, frags

    def type_ref(self):
        if self.peek() == ("p", "["):
            self.take()
            inner = self.type_ref()
            self.take("p", "]")
            t = "[" + inner + "]"
        else:
            t = self.take("name")
        if self.peek() == ("p", "!"):
            self.take()
            t += "!"
        return t

    def value(self):
        kind, v = self.peek()
        if (kind, v) == ("p", "$"):
            self.take()
            return ("var", self.take("name"))
        if (kind, v) == ("p", "["):
            self.take()
            items = []
            while self.peek() != ("p", "]"):
                items.append(self.value())
            self.take()
            return ("list", items)
        if (kind, v) == ("p", "{"):
            self.take()
            obj = {}
            while self.peek() != ("p", "}"):
                k = self.take("name")
                self.take("p", ":")
                obj[k] = self.value()
            self.take()
            return ("obj", obj)
        self.take()
        if kind == "str":
            return ("lit", v)
        if kind == "num":
            return ("lit", float(v) if "." in v else int(v))
        if v in ("true", "false"):
            return ("lit", v == "true")
        if v == "null":
            return ("lit", None)
        return ("enum", v)

    def selection(self):
        self.take("p", "{")
        sel = []
        while self.peek() != ("p", "}"):
            if self.peek() == ("p", "..."):
                self.take()
                if self.peek() == ("name", "on"):
                    self.take()
                    self.take("name")
                    sel.append(("inline", self.selection()))
                else:
                    sel.append(("spread", self.take("name")))
                continue
            name = self.take("name")
            if self.peek() == ("p", ":"):
                raise GraphQLError("aliases are not supported by this mock", "PARSE_ERROR")
            args = {}
            if self.peek() == ("p", "("):
                self.take()
                while self.peek() != ("p", ")"):
                    k = self.take("name")
                    self.take("p", ":")
                    args[k] = self.value()
                self.take()
            while self.peek() == ("p", "@"):
                self.take()
                self.take("name")
                if self.peek() == ("p", "("):
                    while self.take() != ")":
                        pass
            sub = self.selection() if self.peek() == ("p", "{") else None
            sel.append(("field", name, args, sub))
        self.take()
        return sel


def _resolve(value, variables):
    kind, v = value
    if kind == "var":
        return variables.get(v)
    if kind == "list":
        return [_resolve(x, variables) for x in v]
    if kind == "obj":
        return {k: _resolve(x, variables) for k, x in v.items()}
    return v


def _fields(sel, frags):
    """The selection with fragment spreads expanded."""
    out = []
    for item in sel:
        if item[0] == "spread":
            if item[1] not in frags:
                raise GraphQLError(f"Fragment {item[1]} was used, but not defined", "undefinedFragment")
            out.extend(_fields(frags[item[1]]["sel"], frags))
        elif item[0] == "inline":
            out.extend(_fields(item[1], frags))
        else:
            out.append(item)
    return out


def _query_cost(sel, frags, variables):
    """Requested cost: objects 1, connections 2 + first x their node."""
    total = 0
    for _, name, args, sub in _fields(sel, frags):
        if sub is None:
            continue
        if name in CONNECTIONS:
            first = _resolve(args.get("first", ("lit", 0)), variables) or 0
            node = [f for f in _fields(sub, frags) if f[1] in ("nodes", "edges")]
            total += 2 + int(first) * sum(1 + _query_cost(f[3] or [], frags, variables) for f in node)
        elif name in ("pageInfo",):
            continue
        else:
            total += 1 + _query_cost(sub, frags, variables)
    return total


def _cursor(key):
    return base64.b64encode(json.dumps(key).encode()).decode()


def _uncursor(cursor):
    try:
        return tuple(json.loads(base64.b64decode(cursor.encode(), validate=True)))
    except (ValueError, TypeError):
        raise GraphQLError(f"Invalid cursor for current pagination sort.", "BAD_REQUEST")


def _connection(items, args, variables, sub, frags, type_name, key=None):
    first = _resolve(args.get("first"), variables) if "first" in args else None
    if first is None:
        raise GraphQLError("you must provide one of first or last", "BAD_REQUEST")
    if not isinstance(first, int) or not 0 <= first <= ORDER_PAGE_MAX:
        raise GraphQLError(f"The first argument must be between 0 and {ORDER_PAGE_MAX}",
                           "BAD_REQUEST")   # (message unverified)
    key = key or (lambda pair: (pair[0],))
    pairs = [(i, x) for i, x in enumerate(items)]
    after = _resolve(args["after"], variables) if "after" in args else None
    if after is not None:
        last = _uncursor(after)
        pairs = [p for p in pairs if tuple(key(p)) > last]
    page = pairs[:first]
    conn = {"nodes": [x for _, x in page],
            "edges": [{"cursor": _cursor(list(key(p))), "node": p[1]} for p in page],
            "pageInfo": {"hasNextPage": len(pairs) > first,
                         "hasPreviousPage": after is not None,
                         "startCursor": _cursor(list(key(page[0]))) if page else None,
                         "endCursor": _cursor(list(key(page[-1]))) if page else None}}
    return _project(conn, sub, frags, variables, type_name + "Connection")


def _project(obj, sel, frags, variables, type_name):
    """obj restricted to the selection; unknown fields are errors as in
    GraphQL (the mock's objects hold every field the mock knows)."""
    if obj is None:
        return None
    if isinstance(obj, list):
        return [_project(x, sel, frags, variables, type_name) for x in obj]
    out = {}
    for _, name, args, sub in _fields(sel, frags):
        if name == "__typename":
            out[name] = type_name
            continue
        if name not in obj:
            raise GraphQLError(f"Field '{name}' doesn't exist on type '{type_name}'",
                               "undefinedField")
        value = obj[name]
        if name in CONNECTIONS and sub is not None:
            out[name] = _connection(value or [], args, variables, sub, frags, name[:1].upper() + name[1:-1])
        elif sub is not None:
            if value is not None and not isinstance(value, (dict, list)):
                raise GraphQLError(f"Selections can't be made on scalars (field '{name}')",
                                   "selectionMismatch")
            out[name] = _project(value, sub, frags, variables, name[:1].upper() + name[1:])
        else:
            if isinstance(value, dict):
                raise GraphQLError(f"Field must have selections (field '{name}' returns an object)",
                                   "selectionMismatch")
            out[name] = copy.deepcopy(value)
    return out


_SEARCH_TERM = re.compile(r"(?P<f>\w+):(?P<op>>=|<=|>|<)?(?P<v>'[^']*'|\"[^\"]*\"|\S+)")


def _search(orders, query):
    """Shopify search syntax, the part clients use to pull orders:
    updated_at / created_at comparisons and id, joined with AND (or
    blanks); other terms are ignored with a search warning, as Shopify
    does."""
    warnings = []
    if not query:
        return orders, warnings
    for m in _SEARCH_TERM.finditer(query):
        field, op, v = m.group("f"), m.group("op") or "=", m.group("v").strip("'\"")
        if field in ("updated_at", "created_at"):
            attr = "updatedAt" if field == "updated_at" else "createdAt"
            try:
                bound = _ts(v)
            except ValueError:
                warnings.append({"field": field, "message": f"Invalid date: {v}"})
                continue
            cmp = {">": lambda a: a > bound, ">=": lambda a: a >= bound,
                   "<": lambda a: a < bound, "<=": lambda a: a <= bound,
                   "=": lambda a: a == bound}[op]
            orders = [o for o in orders if cmp(_ts(o[attr]))]
        elif field == "id":
            orders = [o for o in orders if o["legacyResourceId"] == v]
        else:
            warnings.append({"field": field, "message": "Invalid search field for this query."})
    return orders, warnings


def _ts(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def _now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
                "levels": {}, "idempotency": {}, "mutations": 0,
                "orders": {}, "cancellations": []}

    def seed(self, data, seed):
        seed = dict(seed)
        orders = seed.pop("orders", None)
        super().seed(data, seed)
        for order in orders or []:
            order = _order_defaults(copy.deepcopy(order))
            data.setdefault("orders", {})[order["id"]] = order

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
        if "inventorySetQuantities" not in query:
            return self._orders_graphql(request, state, version, body)
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

    # ------------------------------------------------------------ orders

    def _orders_graphql(self, request, state, version, body):
        """Queries (orders, order) and the orderCancel mutation."""
        variables = body.get("variables") or {}
        if not isinstance(variables, dict):
            return _graphql_error("Variables must be an object", "INVALID_VARIABLE")
        cost = 0
        try:
            ops, frags = _Parser(body["query"]).document()
            name = body.get("operationName")
            if name:
                ops = [o for o in ops if o.get("name") == name]
            if len(ops) != 1:
                raise GraphQLError("An operation name is required when the document has "
                                   "several operations" if ops else "No operation to run",
                                   "BAD_REQUEST")
            op = ops[0]
            for var, vtype in op["vars"].items():
                if vtype.endswith("!") and variables.get(var) is None:
                    raise GraphQLError(f"Variable ${var} of type {vtype} was provided invalid value",
                                       "INVALID_VARIABLE")
            cost = _query_cost(op["sel"], frags, variables)
            if cost > MAX_QUERY_COST:
                raise GraphQLError(f"Query cost is {cost}, which exceeds the single query max "
                                   f"cost limit ({MAX_QUERY_COST}).", "MAX_COST_EXCEEDED")
            with state.lock:
                if op["type"] == "mutation":
                    data, warnings = self._mutation(op, frags, variables, version, state.data), []
                else:
                    data, warnings = self._query(op, frags, variables, state.data)
        except GraphQLError as exc:
            return _graphql_error(str(exc), exc.code)
        ext = _cost(GRAPHQL_MAXIMUM_AVAILABLE - max(cost, 1))
        ext["cost"]["requestedQueryCost"] = ext["cost"]["actualQueryCost"] = max(cost, 1)
        if warnings:
            ext["search"] = [{"path": ["orders"], "query": "", "parsed": {}, "warnings": warnings}]
        return json_response({"data": data, "extensions": ext}, 200, {"X-Request-Id": request_id()})

    def _query(self, op, frags, variables, data):
        out, warnings = {}, []
        for _, name, args, sub in _fields(op["sel"], frags):
            if sub is None:
                raise GraphQLError(f"Field must have selections (field '{name}' returns an object)",
                                   "selectionMismatch")
            if name == "orders":
                orders = list(data["orders"].values())
                query = _resolve(args["query"], variables) if "query" in args else None
                orders, w = _search(orders, query)
                warnings += w
                sort_key = _resolve(args["sortKey"], variables) if "sortKey" in args else "ID"
                attr = {"UPDATED_AT": "updatedAt", "CREATED_AT": "createdAt",
                        "PROCESSED_AT": "processedAt", "ID": None}.get(sort_key, "")
                if attr == "":
                    raise GraphQLError(f"Argument 'sortKey' on Field 'orders' has an invalid value "
                                       f"({sort_key}). Expected type 'OrderSortKeys'.",
                                       "argumentLiteralsIncompatible")

                def key(pair):
                    o = pair[1]
                    return ((_ts(o[attr]) if attr else 0), int(o["legacyResourceId"]))
                reverse = bool(_resolve(args["reverse"], variables)) if "reverse" in args else False
                orders.sort(key=lambda o: key((0, o)), reverse=reverse)
                if reverse:
                    raise GraphQLError("reverse pagination is not supported by this mock", "BAD_REQUEST")
                out[name] = _connection(orders, args, variables, sub, frags, "Order", key=key)
            elif name == "order":
                oid = _resolve(args.get("id", ("lit", None)), variables)
                if not isinstance(oid, str) or not oid.startswith("gid://shopify/Order/"):
                    raise GraphQLError(f"Invalid global id '{oid}'", "argumentLiteralsIncompatible")
                out[name] = _project(data["orders"].get(oid), sub, frags, variables, "Order")
            else:
                raise GraphQLError(f"Field '{name}' doesn't exist on type 'QueryRoot'", "undefinedField")
        return out, warnings

    def _mutation(self, op, frags, variables, version, data):
        out = {}
        for _, name, args, sub in _fields(op["sel"], frags):
            if name != "orderCancel":
                raise GraphQLError(f"Field '{name}' doesn't exist on type 'Mutation' (this mock "
                                   f"serves inventorySetQuantities and orderCancel)", "undefinedField")
            out[name] = _project(self._order_cancel(args, variables, version, data),
                                 sub or [], frags, variables, "OrderCancelPayload")
        return out

    @staticmethod
    def _order_cancel(args, variables, version, data):
        """orderCancel: asynchronous in Shopify (a job); here the order is
        cancelled at once and the job reported not done yet."""
        allowed = {"orderId", "reason", "refund", "restock", "notifyCustomer", "staffNote"}
        if version >= "2025-07":
            allowed.add("refundMethod")
        for arg in args:
            if arg not in allowed:
                raise GraphQLError(f"Field 'orderCancel' doesn't accept argument '{arg}'",
                                   "argumentNotAccepted")
        a = {k: _resolve(v, variables) for k, v in args.items()}
        required = ["orderId", "reason", "restock"] + (["refund"] if version < "2025-07" else [])
        for arg in required:
            if a.get(arg) is None:
                raise GraphQLError(f"Field 'orderCancel' is missing required arguments: {arg}",
                                   "missingRequiredArguments")
        if version >= "2025-07" and a.get("refund") is None and not isinstance(a.get("refundMethod"), dict):
            raise GraphQLError("Field 'orderCancel' is missing required arguments: refundMethod",
                               "missingRequiredArguments")
        if a["reason"] not in CANCEL_REASONS:
            raise GraphQLError(f"Argument 'reason' on Field 'orderCancel' has an invalid value "
                               f"({a['reason']}). Expected type 'OrderCancelReason!'.",
                               "argumentLiteralsIncompatible")
        refund = a.get("refund")
        if isinstance(a.get("refundMethod"), dict):
            refund = bool(a["refundMethod"].get("originalPaymentMethodsRefund"))

        def refused(code, message, field=("orderId",)):
            return {"job": None, "orderCancelUserErrors": [
                {"code": code, "field": list(field), "message": message}], "userErrors": [
                {"field": list(field), "message": message}]}

        order = data["orders"].get(a["orderId"])
        if order is None:
            return refused("NOT_FOUND", "Order does not exist")   # (code/message unverified)
        if order.get("cancelledAt"):
            return refused("INVALID", "Order has already been cancelled")
        if order.get("displayFulfillmentStatus") in ("FULFILLED", "PARTIALLY_FULFILLED"):
            return refused("INVALID", "Cannot cancel an order that has fulfilled items")
        now = _now_iso()
        order["cancelledAt"] = now
        order["cancelReason"] = a["reason"]
        order["updatedAt"] = now
        if refund and order.get("displayFinancialStatus") in ("PAID", "PARTIALLY_REFUNDED"):
            order["displayFinancialStatus"] = "REFUNDED"
        elif order.get("displayFinancialStatus") == "AUTHORIZED":
            order["displayFinancialStatus"] = "VOIDED"
        data["cancellations"].append({"orderId": a["orderId"], "reason": a["reason"],
                                      "refund": refund, "restock": a["restock"],
                                      "notifyCustomer": a.get("notifyCustomer"),
                                      "staffNote": a.get("staffNote"), "at": now})
        return {"job": {"id": f"gid://shopify/Job/{request_id()}", "done": False},
                "orderCancelUserErrors": [], "userErrors": []}

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


MONEY_FIELDS = ("subtotalPriceSet", "totalShippingPriceSet", "totalDiscountsSet", "totalTaxSet",
                "totalPriceSet")
ADDRESS_FIELDS = ("name", "firstName", "lastName", "company", "address1", "address2", "city",
                  "province", "provinceCode", "zip", "country", "countryCodeV2", "phone")


def _money(amount, currency):
    bag = {"amount": f"{float(amount):.2f}" if not isinstance(amount, str) else amount,
           "currencyCode": currency}
    return {"shopMoney": dict(bag), "presentmentMoney": dict(bag)}


def _order_defaults(o):
    """A seeded order completed with every Order field the mock serves
    (null / empty where not given); lineItems and shippingLines are lists
    (served as connections)."""
    oid = o["id"]
    if isinstance(oid, int) or oid.isdigit():
        o["id"] = oid = f"gid://shopify/Order/{oid}"
    o.setdefault("legacyResourceId", oid.rsplit("/", 1)[-1])
    now = _now_iso()
    for k, v in (("name", "#" + o["legacyResourceId"]), ("email", None), ("phone", None),
                 ("createdAt", now), ("cancelledAt", None), ("cancelReason", None),
                 ("test", False), ("displayFinancialStatus", "PAID"),
                 ("displayFulfillmentStatus", "UNFULFILLED"), ("currencyCode", "USD"),
                 ("customer", None), ("shippingAddress", None), ("billingAddress", None),
                 ("note", None), ("tags", []), ("shippingLines", []), ("lineItems", [])):
        o.setdefault(k, v)
    o.setdefault("updatedAt", now)
    o.setdefault("processedAt", o["createdAt"])
    for k in MONEY_FIELDS:
        o.setdefault(k, _money("0.00", o["currencyCode"]))
    for k in ("shippingAddress", "billingAddress"):
        if isinstance(o[k], dict):
            for f in ADDRESS_FIELDS:
                o[k].setdefault(f, None)
    if isinstance(o["customer"], dict):
        for f in ("id", "email", "firstName", "lastName", "displayName", "phone"):
            o["customer"].setdefault(f, None)
    for sl in o["shippingLines"]:
        for f in ("title", "code", "source"):
            sl.setdefault(f, None)
        sl.setdefault("originalPriceSet", _money("0.00", o["currencyCode"]))
    for n, li in enumerate(o["lineItems"], 1):
        li.setdefault("id", f"gid://shopify/LineItem/{o['legacyResourceId']}{n:03d}")
        for f, v in (("sku", None), ("name", li.get("sku") or "Item"), ("quantity", 1),
                     ("currentQuantity", li.get("quantity", 1)), ("discountAllocations", []),
                     ("taxLines", [])):
            li.setdefault(f, v)
        li.setdefault("originalUnitPriceSet", _money("0.00", o["currencyCode"]))
    return o


def make(name):
    return Shopify(name)
