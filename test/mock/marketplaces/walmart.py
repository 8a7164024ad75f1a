"""Walmart US Marketplace API mock (see MARKETPLACE_APIS.md section 4).

Errors: ``{"errors": [{"code", "message", "category", "severity"}]}``.
Throttling: HTTP 429 with the token-bucket headers ``x-current-token-count``
(0) and ``x-next-replenish-time`` (epoch milliseconds of the next refill =
now + retry_after; header spelling and format (unverified)).

Endpoints:

* ``POST /v3/token``: ``Authorization: Basic base64(client_id:client_secret)``,
  ``WM_SVC.NAME``, ``WM_QOS.CORRELATION_ID``, form body
  ``grant_type=client_credentials`` -> ``{"access_token", "token_type":
  "Bearer", "expires_in": 900}``;
* every other call needs ``WM_SEC.ACCESS_TOKEN`` (an issued, unexpired
  token: 401 otherwise), ``WM_SVC.NAME`` and ``WM_QOS.CORRELATION_ID``
  (400 ``INVALID_REQUEST_HEADER`` when missing);
* ``PUT /v3/inventory?sku=[&shipNode=]`` with ``{"sku", "quantity": {"unit":
  "EACH", "amount"}}`` -> the same document; unknown SKU -> 404;
* ``GET /v3/inventory?sku=`` -> the SKU's inventory;
* ``POST /v3/feeds?feedType=inventory[&shipNode=]``: ``multipart/form-data``
  with a ``file`` part holding the 1.4 JSON feed ``{"InventoryHeader":
  {"version": "1.4"}, "Inventory": [...]}`` -> ``{"feedId"}``; the feed is
  processed once ``feed_processing_s`` has passed (RECEIVED, then
  INPROGRESS, then PROCESSED);
* ``GET /v3/feeds/{feedId}?includeDetails=true&offset=&limit=`` (limit at
  most 50) -> the feed status with ``itemDetails.itemIngestionStatus``; an
  unknown SKU is a ``DATA_ERROR`` with ``ingestionErrors`` (the error code
  and text of such an entry: (unverified)).

Orders (MARKETPLACE_APIS.md section 4.3, us_mp_orders.json):

* ``GET /v3/orders?lastModifiedStartDate=&lastModifiedEndDate=&createdStartDate=
  &createdEndDate=&limit=[&status=][&shipNodeType=][&purchaseOrderId=]`` ->
  ``{"list": {"meta": {"totalCount", "limit", "nextCursor"?}, "elements":
  {"order": [...]}}}``; ``limit`` at most 200 (400 beyond); dates ISO 8601
  or yyyy-MM-dd (400 otherwise); ``createdStartDate`` defaults to now - 7
  days, as the spec says, and only orders created in the last 180 days are
  listed; ``shipNodeType`` defaults to SellerFulfilled (an order's
  ``shipNode.type``, SellerFulfilled when absent); the next page is
  ``nextCursor`` (a query string carrying the filters, ``hasMoreElements``,
  ``soIndex`` and ``poIndex`` = the offset), absent on the last page; an empty
  result is an empty list (the real API may answer 404 (unverified));
* ``GET /v3/orders/{purchaseOrderId}`` -> ``{"order": {...}}`` (404 unknown);
* ``POST /v3/orders/{purchaseOrderId}/cancel`` with ``{"orderCancellation":
  {"orderLines": {"orderLine": [{lineNumber, orderLineStatuses:
  {orderLineStatus: [{status: "Cancelled", cancellationReason,
  statusQuantity: {unitOfMeasurement, amount}}]}}]}}}`` -> ``{"order"}`` with
  the lines cancelled; a line that is not open (shipped, delivered,
  cancelled) or a quantity beyond its open units -> 400 (error code
  (unverified)); recorded in ``cancellations``.

Order responses carry the token-bucket headers ``x-current-token-count`` and
``x-next-replenish-time`` (spelling (unverified)).  The last-modified time of
an order is not part of Walmart's order object: the mock keeps it in
``order_modified`` (purchaseOrderId -> epoch ms); a seeded order may give it
as ``"_modified"`` (epoch ms or ISO 8601; removed from the order), else it is
the time of seeding.  Seed ``{"orders": [...]}`` replaces orders by
purchaseOrderId (re-seed an order to change it, e.g. to cancel its lines).

Error codes other than those named in MARKETPLACE_APIS.md: (unverified).
"""

import base64
import copy
import datetime
import email.parser
import email.policy
import secrets
import time
import urllib.parse

from core import Route, json_response
from marketplaces.base import Marketplace, reason, request_id, status_name

THROTTLE_CODE = "REQUEST_THRESHOLD_VIOLATED.GMP_GATEWAY_API"  # (unverified)
TOKEN_PATH = r"/v3/token"
INVENTORY_PATH = r"/v3/inventory"
FEEDS_PATH = r"/v3/feeds"
FEED_PATH = r"/v3/feeds/(?P<feed_id>[^/]+)"
DETAIL_LIMIT = 50
ORDERS_PATH = r"/v3/orders"
ORDER_PATH = r"/v3/orders/(?P<po>[0-9A-Za-z_-]+)"
CANCEL_PATH = r"/v3/orders/(?P<po>[0-9A-Za-z_-]+)/cancel"
ORDERS_MAX_LIMIT = 200
ORDERS_DEFAULT_LIMIT = 100
CREATED_DEFAULT_DAYS = 7
CREATED_MAX_DAYS = 180
CANCEL_REASONS = {"CUSTOMER_REQUESTED_SELLER_TO_CANCEL", "SELLER_CANCEL_PRICING_ERROR",
                  "SELLER_CANCEL_OUT_OF_STOCK", "SELLER_CANCEL_FRAUD_STOP_SHIPMENT",
                  "SELLER_CANCEL_ADDRESS_NOT_SERVICEABLE"}
FEED_MAX_ITEMS = 10000          # (unverified)


class Walmart(Marketplace):
    """State (seedable):

    ``credentials``: ``client_id``, ``client_secret``; ``token_ttl`` (900);
    ``tokens``: issued token -> expiry (epoch seconds); ``ship_nodes``: the
    seller's ship nodes (a ``shipNode`` must be one of them);
    ``inventory``: sku -> ``{"amount": n, "updates": k}`` (only seeded SKUs
    exist); ``feeds``: feedId -> feed record; ``feed_processing_s``: time
    before a feed is processed; ``correlation_ids``: every id seen.
    """
    name = "walmart"

    def initial_state(self):
        return {"credentials": {"client_id": "wm-client", "client_secret": "wm-secret"},
                "token_ttl": 900, "tokens": {}, "ship_nodes": ["10000003527"],
                "inventory": {}, "feeds": {}, "feed_processing_s": 0.3,
                "correlation_ids": [], "orders": {}, "order_modified": {},
                "cancellations": [], "token_count": 5000}

    def seed(self, data, seed):
        seed = dict(seed)
        orders = seed.pop("orders", None)
        super().seed(data, seed)
        if isinstance(orders, dict):
            orders = list(orders.values())
        for order in orders or []:
            order = copy.deepcopy(order)
            modified = order.pop("_modified", None)
            if isinstance(modified, str):
                modified = int(_parse_date(modified) * 1000)
            if modified is None:
                modified = int(time.time() * 1000)
            data.setdefault("orders", {})[order["purchaseOrderId"]] = order
            data.setdefault("order_modified", {})[order["purchaseOrderId"]] = int(modified)

    def routes(self):
        return [Route("POST", TOKEN_PATH, self.token, "token"),
                Route(["PUT", "GET"], INVENTORY_PATH, self.inventory, "inventory"),
                Route("POST", FEEDS_PATH, self.submit_feed, "feeds"),
                Route("GET", FEED_PATH, self.feed_status, "feed_status"),
                Route("GET", ORDERS_PATH, self.get_orders, "getAllOrders"),
                Route("GET", ORDER_PATH, self.get_order, "getAnOrder"),
                Route("POST", CANCEL_PATH, self.cancel_lines, "cancelOrderLines")]

    # ------------------------------------------------------------------
    # auth

    def _headers_error(self, request, state):
        """400 when a required WM_ header is missing (caller holds the lock)."""
        cid = request.header("WM_QOS.CORRELATION_ID")
        if not cid:
            return self.error(request, 400, "INVALID_REQUEST_HEADER.GMP_GATEWAY_API",
                              "WM_QOS.CORRELATION_ID header is missing")
        if not request.header("WM_SVC.NAME"):
            return self.error(request, 400, "INVALID_REQUEST_HEADER.GMP_GATEWAY_API",
                              "WM_SVC.NAME header is missing")
        state.data["correlation_ids"].append(cid)
        return None

    def token(self, request, state):
        with state.lock:
            bad = self._headers_error(request, state)
            if bad is not None:
                return bad
            creds = state.data["credentials"]
            expected = "Basic " + base64.b64encode(
                f"{creds['client_id']}:{creds['client_secret']}".encode()).decode()
            if request.header("Authorization") != expected:
                return self.error(request, 401, "UNAUTHORIZED.GMP_GATEWAY_API",
                                  "Unauthorized token or incorrect authorization header.")
            form = request.form
            if form is None:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT_TYPE",
                                  "Content-Type must be application/x-www-form-urlencoded")
            if form.get("grant_type") != ["client_credentials"]:
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  "grant_type is missing or not supported")
            tok = "eyJraWQiOi" + secrets.token_urlsafe(24)
            ttl = int(state.data["token_ttl"])
            state.data["tokens"][tok] = time.time() + ttl
        return json_response({"access_token": tok, "token_type": "Bearer", "expires_in": ttl},
                             200, {"WM_QOS.CORRELATION_ID": request.header("WM_QOS.CORRELATION_ID")})

    def _auth_error(self, request, state):
        """The answer to an unauthenticated call, or None (lock held)."""
        bad = self._headers_error(request, state)
        if bad is not None:
            return bad
        tok = request.header("WM_SEC.ACCESS_TOKEN")
        expiry = state.data["tokens"].get(tok) if tok else None
        if expiry is None or expiry <= time.time():
            return self.error(request, 401, "UNAUTHORIZED.GMP_GATEWAY_API",
                              "Unauthorized token or incorrect authorization header.")
        return None

    def _ship_node_error(self, request, state):
        node = (request.query.get("shipNode") or [None])[0]
        if node is not None and node not in state.data["ship_nodes"]:
            return self.error(request, 400, "INVALID_REQUEST_PARAM",
                              f"Invalid shipNode {node}")
        return None

    # ------------------------------------------------------------------
    # inventory

    def inventory(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state) or self._ship_node_error(request, state)
            if bad is not None:
                return bad
            sku = (request.query.get("sku") or [""])[0]
            if not sku:
                return self.error(request, 400, "INVALID_REQUEST_PARAM", "sku is required")
            item = state.data["inventory"].get(sku)
            if item is None:
                return self.error(request, 404, "CONTENT_NOT_FOUND.GMP_INVENTORY_API",
                                  f"Item not found for sku {sku}")
            if request.method == "GET":
                return json_response({"sku": sku, "quantity": {"unit": "EACH",
                                                               "amount": item["amount"]}})
            ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self.error(request, 415, "UNSUPPORTED_MEDIA_TYPE",
                                  "Content-Type must be application/json")
            body = request.json
            err = _inventory_error(body)
            if err is not None:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT", err)
            if body["sku"] != sku:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  "sku in the body does not match the sku parameter")
            item["amount"] = body["quantity"]["amount"]
            item["updates"] = item.get("updates", 0) + 1
        return json_response({"sku": sku, "quantity": body["quantity"]})

    # ------------------------------------------------------------------
    # feeds

    def submit_feed(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state) or self._ship_node_error(request, state)
            if bad is not None:
                return bad
            feed_type = (request.query.get("feedType") or [None])[0]
            if feed_type not in ("inventory", "MP_INVENTORY"):
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  "feedType is missing or invalid")
            if feed_type == "MP_INVENTORY":
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  "this mock serves feedType=inventory only")
            content, err = _multipart_file(request)
            if err is not None:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT", err)
            try:
                import json as _json
                doc = _json.loads(content)
            except ValueError:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  "the feed file is not valid JSON")
            header = doc.get("InventoryHeader") if isinstance(doc, dict) else None
            entries = doc.get("Inventory") if isinstance(doc, dict) else None
            if not isinstance(header, dict) or header.get("version") != "1.4":
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  "InventoryHeader.version must be 1.4")
            if not isinstance(entries, list) or not entries:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  "Inventory must be a non-empty array")
            if len(entries) > FEED_MAX_ITEMS:
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  f"at most {FEED_MAX_ITEMS} items per feed")
            feed_id = secrets.token_hex(16).upper() + "@AQMBAQA"
            state.data["feeds"][feed_id] = {
                "submitted": time.time(), "entries": entries, "results": None,
                "feedType": feed_type}
        return json_response({"feedId": feed_id})

    def feed_status(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state)
            if bad is not None:
                return bad
            feed_id = request.params["feed_id"]
            feed = state.data["feeds"].get(feed_id)
            if feed is None:
                return self.error(request, 404, "CONTENT_NOT_FOUND.GMP_FEED_API",
                                  f"Feed {feed_id} not found")
            details = (request.query.get("includeDetails") or ["false"])[0] == "true"
            try:
                offset = int((request.query.get("offset") or ["0"])[0])
                limit = int((request.query.get("limit") or ["50"])[0])
            except ValueError:
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  "offset and limit must be integers")
            if limit < 1 or limit > DETAIL_LIMIT or offset < 0:
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  f"limit cannot be more than {DETAIL_LIMIT}")
            age = time.time() - feed["submitted"]
            wait = float(state.data["feed_processing_s"])
            n = len(feed["entries"])
            if age < wait:
                status = "RECEIVED" if age < wait / 2 else "INPROGRESS"
                answer = {"feedId": feed_id, "feedStatus": status,
                          "feedSubmissionDate": int(feed["submitted"] * 1000),
                          "itemsReceived": n, "itemsSucceeded": 0, "itemsFailed": 0,
                          "itemsProcessing": n, "offset": offset, "limit": limit}
                if details:
                    answer["itemDetails"] = {"itemIngestionStatus": []}
                return json_response(answer)
            if feed["results"] is None:
                feed["results"] = [self._apply(i, e, state.data["inventory"])
                                   for i, e in enumerate(feed["entries"])]
            results = feed["results"]
            ok = sum(1 for r in results if r["ingestionStatus"] == "SUCCESS")
            answer = {"feedId": feed_id, "feedStatus": "PROCESSED",
                      "feedSubmissionDate": int(feed["submitted"] * 1000),
                      "itemsReceived": n, "itemsSucceeded": ok, "itemsFailed": n - ok,
                      "itemsProcessing": 0, "offset": offset, "limit": limit}
            if details:
                answer["itemDetails"] = {"itemIngestionStatus": results[offset:offset + limit]}
            return json_response(answer)

    @staticmethod
    def _apply(index, entry, inventory):
        sku = entry.get("sku") if isinstance(entry, dict) else None
        result = {"martId": 0, "sku": sku, "index": index, "ingestionStatus": "SUCCESS",
                  "ingestionErrors": {"ingestionError": None}}
        err = _inventory_error(entry)
        if err is None and sku not in inventory:
            err = f"Item not found for sku {sku}"
        if err is not None:
            result["ingestionStatus"] = "DATA_ERROR"
            result["ingestionErrors"] = {"ingestionError": [{
                "type": "DATA_ERROR", "code": "ERR_EXT_DATA_0101101",
                "field": "sku", "description": err}]}
            return result
        item = inventory[sku]
        item["amount"] = entry["quantity"]["amount"]
        item["updates"] = item.get("updates", 0) + 1
        return result

    # ------------------------------------------------------------------
    # orders

    def _bucket_headers(self, state):
        """The token-bucket headers of a successful call (lock held)."""
        state.data["token_count"] = max(0, int(state.data.get("token_count", 5000)) - 1)
        return {"x-current-token-count": str(state.data["token_count"]),
                "x-next-replenish-time": str(int((time.time() + 60) * 1000))}

    def get_orders(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state)
            if bad is not None:
                return bad
            q = {k: v[-1] for k, v in request.query.items()}
            try:
                limit = int(q.get("limit", ORDERS_DEFAULT_LIMIT))
                offset = int(q.get("poIndex", 0))
            except ValueError:
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  "limit must be a number")
            if limit < 1 or limit > ORDERS_MAX_LIMIT:
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  f"limit cannot be larger than {ORDERS_MAX_LIMIT}")
            if offset < 0:
                return self.error(request, 400, "INVALID_REQUEST_PARAM", "invalid poIndex")
            bounds = {}
            for name in ("createdStartDate", "createdEndDate", "lastModifiedStartDate",
                         "lastModifiedEndDate"):
                if name in q:
                    try:
                        bounds[name] = _parse_date(q[name]) * 1000
                    except ValueError:
                        return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                          f"{name} is not a valid date: {q[name]}")
            now_ms = time.time() * 1000
            created_lo = max(bounds.get("createdStartDate",
                                        now_ms - CREATED_DEFAULT_DAYS * 86400000),
                             now_ms - CREATED_MAX_DAYS * 86400000)
            node_type = q.get("shipNodeType", "SellerFulfilled")
            if node_type not in ("SellerFulfilled", "WFSFulfilled", "3PLFulfilled"):
                return self.error(request, 400, "INVALID_REQUEST_PARAM",
                                  f"Invalid shipNodeType {node_type}")
            modified = state.data["order_modified"]
            picked = []
            for po, order in state.data["orders"].items():
                mod = modified.get(po, 0)
                created = order.get("orderDate", 0)
                if created < created_lo:
                    continue
                if "createdEndDate" in bounds and created > bounds["createdEndDate"]:
                    continue
                if "lastModifiedStartDate" in bounds and mod < bounds["lastModifiedStartDate"]:
                    continue
                if "lastModifiedEndDate" in bounds and mod > bounds["lastModifiedEndDate"]:
                    continue
                if (order.get("shipNode") or {}).get("type", "SellerFulfilled") != node_type:
                    continue
                if "purchaseOrderId" in q and po != q["purchaseOrderId"]:
                    continue
                if "status" in q and q["status"] not in _line_statuses(order):
                    continue
                picked.append((mod, po, order))
            picked.sort(key=lambda t: (t[0], t[1]))
            total = len(picked)
            page = [copy.deepcopy(o) for _, _, o in picked[offset:offset + limit]]
            meta = {"totalCount": total, "limit": len(page)}
            if offset + limit < total:
                keep = {k: v for k, v in q.items()
                        if k not in ("hasMoreElements", "soIndex", "poIndex", "limit")}
                keep.update({"limit": limit, "hasMoreElements": "true", "soIndex": total,
                             "poIndex": offset + limit})
                meta["nextCursor"] = "?" + urllib.parse.urlencode(keep)
            headers = self._bucket_headers(state)
        return json_response({"list": {"meta": meta, "elements": {"order": page}}}, 200, headers)

    def get_order(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state)
            if bad is not None:
                return bad
            order = state.data["orders"].get(request.params["po"])
            if order is None:
                return self.error(request, 404, "CONTENT_NOT_FOUND.GMP_ORDER_API",
                                  f"Order {request.params['po']} not found")
            headers = self._bucket_headers(state)
            return json_response({"order": copy.deepcopy(order)}, 200, headers)

    def cancel_lines(self, request, state):
        with state.lock:
            bad = self._auth_error(request, state)
            if bad is not None:
                return bad
            po = request.params["po"]
            order = state.data["orders"].get(po)
            if order is None:
                return self.error(request, 404, "CONTENT_NOT_FOUND.GMP_ORDER_API",
                                  f"Order {po} not found")
            ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return self.error(request, 415, "UNSUPPORTED_MEDIA_TYPE",
                                  "Content-Type must be application/json")
            body = request.json if isinstance(request.json, dict) else None
            try:
                wanted = body["orderCancellation"]["orderLines"]["orderLine"]
                assert isinstance(wanted, list) and wanted
            except (TypeError, KeyError, AssertionError):
                return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                  "orderCancellation.orderLines.orderLine is required")
            lines = {str(l.get("lineNumber")): l
                     for l in order.get("orderLines", {}).get("orderLine", [])}
            plan = []
            for w in wanted:
                number = str(w.get("lineNumber")) if isinstance(w, dict) else None
                line = lines.get(number)
                if line is None:
                    return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                      f"lineNumber {number} is not a line of order {po}")
                try:
                    st = w["orderLineStatuses"]["orderLineStatus"][0]
                    qty = int(st["statusQuantity"]["amount"])
                except (TypeError, KeyError, IndexError, ValueError):
                    return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                      f"line {number}: orderLineStatus with statusQuantity is required")
                if st.get("status") != "Cancelled":
                    return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                      f"line {number}: status must be Cancelled")
                if st.get("cancellationReason") not in CANCEL_REASONS:
                    return self.error(request, 400, "INVALID_REQUEST_CONTENT",
                                      f"line {number}: invalid cancellationReason")
                open_units = _open_units(line)
                if qty < 1 or qty > open_units:
                    return self.error(request, 400, "INVALID_REQUEST_CONTENT.GMP_ORDER_API",
                                      f"line {number}: {qty} units cannot be cancelled "
                                      f"({open_units} open: shipped or cancelled lines cannot be cancelled)")
                plan.append((line, qty, st["cancellationReason"]))
            record = {"purchaseOrderId": po, "lines": []}
            for line, qty, why in plan:
                _cancel_units(line, qty, why)
                record["lines"].append({"lineNumber": str(line.get("lineNumber")),
                                        "quantity": qty, "reason": why})
            state.data["cancellations"].append(record)
            state.data["order_modified"][po] = int(time.time() * 1000)
            headers = self._bucket_headers(state)
            return json_response({"order": copy.deepcopy(order)}, 200, headers)

    # ------------------------------------------------------------------

    def rate_limit(self, request, retry_after):
        replenish_ms = int((time.time() + retry_after) * 1000)
        return self.error(request, 429, THROTTLE_CODE,
                          "Request threshold violated").add_headers({
                              "x-current-token-count": "0",
                              "x-next-replenish-time": str(replenish_ms)})

    def error(self, request, status, code=None, message=None):
        if code is None:
            code = "SYSTEM_ERROR" if status >= 500 else status_name(status)
        return json_response({"errors": [{
            "code": code, "message": message or reason(status),
            "category": "APPLICATION" if status >= 500 else "REQUEST",
            "severity": "ERROR"}]}, status,
            {"WM_QOS.CORRELATION_ID":
             request.header("WM_QOS.CORRELATION_ID") or request_id()})


def _inventory_error(body):
    """Why an inventory document is invalid, or None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    sku = body.get("sku")
    if not isinstance(sku, str) or not sku:
        return "sku is required"
    q = body.get("quantity")
    if not isinstance(q, dict):
        return "quantity is required"
    if q.get("unit") != "EACH":
        return "quantity.unit must be EACH"
    amount = q.get("amount")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 0:
        return "quantity.amount must be a non-negative integer"
    return None


def _multipart_file(request):
    """The content of the ``file`` part of a multipart/form-data body, or
    (None, why)."""
    ctype = request.header("Content-Type") or ""
    if not ctype.lower().startswith("multipart/form-data") or "boundary=" not in ctype:
        return None, "Content-Type must be multipart/form-data with a boundary"
    raw = b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + request.body
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not msg.is_multipart():
        return None, "the body is not a multipart document"
    for part in msg.iter_parts():
        if part.get_param("name", header="content-disposition") == "file":
            return part.get_payload(decode=True), None
    return None, "the multipart body has no \"file\" part"


def _parse_date(text):
    """Epoch seconds of an ISO 8601 timestamp or a yyyy-MM-dd date (UTC)."""
    text = text.strip()
    if len(text) == 10:
        text += "T00:00:00Z"
    dt = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp()


def _statuses(line):
    return line.setdefault("orderLineStatuses", {}).setdefault("orderLineStatus", [])


def _line_statuses(order):
    return {s.get("status") for line in order.get("orderLines", {}).get("orderLine", [])
            for s in _statuses(line)}


def _open_units(line):
    """Units of a line still Created or Acknowledged."""
    return sum(int(s.get("statusQuantity", {}).get("amount", 0)) for s in _statuses(line)
               if s.get("status") in ("Created", "Acknowledged"))


def _cancel_units(line, qty, why):
    """Move qty open units of a line to Cancelled."""
    left = qty
    for s in _statuses(line):
        if left and s.get("status") in ("Created", "Acknowledged"):
            n = int(s["statusQuantity"]["amount"])
            take = min(n, left)
            s["statusQuantity"]["amount"] = str(n - take)
            left -= take
    line["orderLineStatuses"]["orderLineStatus"] = [
        s for s in _statuses(line)
        if s.get("status") not in ("Created", "Acknowledged") or int(s["statusQuantity"]["amount"]) > 0]
    _statuses(line).append({"status": "Cancelled", "cancellationReason": why,
                            "statusQuantity": {"unitOfMeasurement": "EACH", "amount": str(qty)}})
    line["statusDate"] = int(time.time() * 1000)


def make(name):
    return Walmart(name)
