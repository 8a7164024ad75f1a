"""Amazon Selling Partner API mock (see MARKETPLACE_APIS.md section 1).

Errors: ``{"errors": [{"code", "message", "details"}]}`` (Error definition in
the SP-API models) with ``x-amzn-RequestId`` on every response and
``x-amzn-ErrorType`` on errors.  Throttling: HTTP 429, code ``QuotaExceeded``;
SP-API sends no ``Retry-After`` - clients back off by the usage-plan rate in
``x-amzn-RateLimit-Limit`` (requests per second), so a rule's ``retry_after``
is expressed as the rate 1/retry_after.

Endpoints (stock push):

* ``POST /auth/o2/token`` - Login with Amazon refresh-token grant (client id
  and secret in the form body); errors ``{"error", "error_description"}``.
* ``PATCH /listings/2021-08-01/items/{sellerId}/{sku}?marketplaceIds=`` -
  patchListingsItem: ``x-amz-access-token`` (403 Unauthorized when missing,
  unknown or expired), the seller id of the token's authorization,
  marketplaceIds, a JSON body with productType and patches; answers
  ListingsItemSubmissionResponse ACCEPTED, or INVALID with issues.
* Feeds API 2021-06-30: ``POST /feeds/2021-06-30/documents``
  (createFeedDocument, 201 with a presigned URL served by this mock under
  ``/mock-s3/``), ``PUT`` of the document to that URL (S3: the signature and
  expiry are checked, the Content-Type must be the one given to
  createFeedDocument, unsigned ``x-amz-*`` headers such as an access token are
  refused), ``POST /feeds/2021-06-30/feeds`` (createFeed, 202),
  ``GET /feeds/2021-06-30/feeds/{feedId}`` (getFeed: IN_QUEUE, then
  IN_PROGRESS, then DONE or FATAL once ``feed_processing_seconds`` have
  passed; the JSON_LISTINGS_FEED is applied then) and
  ``GET /feeds/2021-06-30/documents/{feedDocumentId}`` (getFeedDocument of the
  processing report, GZIP-compressed when ``report_compression`` is "GZIP").
  The processing report follows listings-feed-processing-report-schema-v2:
  ``header``, ``issues`` (per messageId), ``summary``.

Endpoints (order pull, Orders API v0, ordersV0.json):

* ``GET /orders/v0/orders`` - getOrders: MarketplaceIds (required, known,
  at most 50), exactly one of CreatedAfter / LastUpdatedAfter (ISO 8601;
  Created* and LastUpdated* cannot be mixed), the Before bound at or after
  the After one and at least two minutes before now (400 InvalidInput
  otherwise), OrderStatuses / FulfillmentChannels / AmazonOrderIds filters,
  MaxResultsPerPage 1-100; answers ``{"payload": {"Orders", "NextToken"?,
  "LastUpdatedBefore" | "CreatedBefore"}}``, oldest update first.  A page
  holds at most MaxResultsPerPage and at most the state's
  ``orders_page_size`` orders (Amazon may return fewer than asked); the
  NextToken request carries MarketplaceIds and NextToken (other filters are
  the first request's); an unknown NextToken is a 400.
* ``GET /orders/v0/orders/{orderId}`` - getOrder: ``{"payload": Order}``,
  404 for an unknown order.
* ``GET /orders/v0/orders/{orderId}/orderItems[?NextToken=]`` -
  getOrderItems: ``{"payload": {"AmazonOrderId", "OrderItems", "NextToken"?}}``,
  ``items_page_size`` items a page.

ShippingAddress is only answered for Unshipped, PartiallyShipped, Shipped
and InvoiceUnconfirmed orders (as the model says).  No cancel endpoint:
Orders API v0 has no seller cancellation.

Restricted data (Tokens API 2021-03-01, tokens_2021-03-01.json):

* ``POST /tokens/2021-03-01/restrictedDataToken`` - createRestrictedDataToken:
  an LWA access token (403 otherwise; an RDT cannot ask for another), a JSON
  body ``{"restrictedResources": [{"method", "path", "dataElements"?}]}``
  (1 to 50 resources, method GET/PUT/POST/DELETE, a path starting with "/",
  dataElements among buyerInfo, shippingAddress, buyerTaxInformation and
  required for the Orders API paths), ``targetApplication`` optional; 400
  ``InvalidRequest`` otherwise (the spec's sandbox error).  Answers
  ``{"restrictedDataToken": "Atz.sprdt|...", "expiresIn": rdt_ttl}``.
* getOrders, getOrder and getOrderItems accept the LWA token (restricted
  fields left out, as Amazon does: ShippingAddress Name, AddressLine1-3,
  Phone, AddressType, ExtendedFields; BuyerInfo BuyerName, BuyerTaxInfo,
  PurchaseOrderNumber; BuyerTaxInformation; the items' BuyerInfo
  GiftMessageText and BuyerCustomizedInfo) or an RDT: an expired or unknown
  one is a 403 like any token, one that does not cover the request's method
  and path is a 403 (an RDT is valid for its restricted resources only; a
  ``{orderId}``-style segment of a resource path matches any order); the
  restricted fields are answered for the resource's dataElements
  (buyerInfo: BuyerInfo and the items' BuyerInfo; shippingAddress:
  ShippingAddress; buyerTaxInformation: BuyerTaxInformation).
"""

import calendar
import datetime
import gzip
import hashlib
import hmac
import json
import secrets
import time
import uuid

from core import Route, json_response, raw_response, xml_response
from marketplaces.base import Marketplace, deep_merge, reason, request_id

# Codes seen in the SP-API models / docs; other statuses fall back to the
# HTTP reason phrase without spaces.
ERROR_CODES = {
    400: "InvalidInput",
    403: "Unauthorized",
    404: "NotFound",
    429: "QuotaExceeded",
    500: "InternalFailure",
    503: "ServiceUnavailable",
}
ERROR_MESSAGES = {
    403: "Access to requested resource is denied.",
    429: "You exceeded your quota for the requested resource.",
}

TOKEN_PATH = r"/auth/o2/token"
RDT_PATH = r"/tokens/2021-03-01/restrictedDataToken"
LISTING_PATH = r"/listings/2021-08-01/items/(?P<seller>[^/]+)/(?P<sku>[^/]+)"
DOCS_PATH = r"/feeds/2021-06-30/documents"
DOC_PATH = r"/feeds/2021-06-30/documents/(?P<doc>[^/]+)"
FEEDS_PATH = r"/feeds/2021-06-30/feeds"
FEED_PATH = r"/feeds/2021-06-30/feeds/(?P<feed>[^/]+)"
S3_PATH = r"/mock-s3/(?P<doc>[^/]+)"
ORDERS_PATH = r"/orders/v0/orders"
ORDER_PATH = r"/orders/v0/orders/(?P<order>[^/]+)"
ORDER_ITEMS_PATH = r"/orders/v0/orders/(?P<order>[^/]+)/orderItems"

# usage plans (requests per second) sent in x-amzn-RateLimit-Limit
RATES = {"patchListingsItem": "5.0", "createFeedDocument": "0.5",
         "createFeed": "0.0083", "getFeed": "2.0", "getFeedDocument": "0.0222",
         "getOrders": "0.0167", "getOrder": "0.5", "getOrderItems": "0.5",
         "createRestrictedDataToken": "1.0"}
MAX_MESSAGES = 25000
URL_TTL = 300
PATCH_OPS = ("add", "replace", "merge", "delete")
QTY_PATH = "/attributes/fulfillment_availability"
ORDER_STATUSES = ("PendingAvailability", "Pending", "Unshipped", "PartiallyShipped",
                  "Shipped", "InvoiceUnconfirmed", "Canceled", "Unfulfillable")
ADDRESS_STATUSES = ("Unshipped", "PartiallyShipped", "Shipped", "InvoiceUnconfirmed")
# LastUpdatedBefore / CreatedBefore must be this long before now
BEFORE_LAG_S = 120
# restricted data (ordersV0.json descriptions): what an RDT's dataElements unlock
DATA_ELEMENTS = ("buyerInfo", "shippingAddress", "buyerTaxInformation")
RESTRICTED_ADDRESS = ("Name", "AddressLine1", "AddressLine2", "AddressLine3", "Phone",
                      "AddressType", "ExtendedFields")
RESTRICTED_BUYER = ("BuyerName", "BuyerTaxInfo", "PurchaseOrderNumber")
RESTRICTED_ITEM_BUYER = ("GiftMessageText", "BuyerCustomizedInfo")
ORDERS_API = "/orders/v0/orders"


def _now_iso(t=None):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t or time.time()))


class Amazon(Marketplace):
    """State (seedable):

    ``credentials``: ``client_id``, ``client_secret``, ``refresh_token`` the
    LWA endpoint accepts; ``token_ttl`` (s); ``tokens``: issued access token ->
    expiry (epoch s; seed 0 to expire one); ``seller_id`` the tokens are for;
    ``marketplace_ids`` known; ``listings``: sku -> ``{"product_type",
    "quantity", "fba_quantity", "updates"}`` (only seeded SKUs exist: others
    are INVALID); ``feed_processing_seconds``; ``report_compression``
    ("GZIP" or null); ``feeds`` and ``documents`` (created by the client).

    Orders: seed ``{"orders": [Order, ...]}``, each an Orders API v0 Order
    with its items under ``"OrderItems"`` (OrderItem objects); an order whose
    AmazonOrderId exists is deep-merged into it (a runtime change), and its
    LastUpdateDate becomes now unless the seed gives one (PurchaseDate
    defaults to now too).  ``orders_page_size`` / ``items_page_size``: most
    orders (items) the mock puts in one page; ``next_tokens`` are its
    pagination tokens.

    Restricted data: ``rdt_ttl`` (s, default 3600) is the lifetime of the
    RDTs createRestrictedDataToken issues; ``rdts``: issued RDT ->
    ``{"expires", "resources"}`` (seed an expiry of 0 to expire one).
    """
    name = "amazon"

    def initial_state(self):
        return {"credentials": {"client_id": "amzn1.application-oa2-client.mock",
                                "client_secret": "amazon-secret",
                                "refresh_token": "Atzr|amazon-refresh"},
                "token_ttl": 3600, "tokens": {},
                "seller_id": "A2EXAMPLE1234",
                "marketplace_ids": ["ATVPDKIKX0DER", "A2EUQ1WTGCTBG"],
                "listings": {},
                "feed_processing_seconds": 0.3,
                "report_compression": "GZIP",
                "url_key": secrets.token_hex(16),
                "feeds": {}, "documents": {},
                "orders": {}, "orders_page_size": 100, "items_page_size": 100,
                "next_tokens": {}, "rdt_ttl": 3600, "rdts": {}}

    def seed(self, data, seed):
        seed = dict(seed)
        orders = seed.pop("orders", None)
        deep_merge(data, seed)
        if isinstance(orders, dict):
            orders = list(orders.values())
        now = _now_iso()
        for order in orders or []:
            oid = order["AmazonOrderId"]
            current = data["orders"].get(oid)
            if current is None:
                current = {"PurchaseDate": order.get("PurchaseDate", now),
                           "OrderItems": []}
                data["orders"][oid] = current
            deep_merge(current, order)
            current["LastUpdateDate"] = order.get("LastUpdateDate", now)

    def routes(self):
        return [Route("POST", TOKEN_PATH, self.token, "lwa_token"),
                Route("POST", RDT_PATH, self.create_rdt, "createRestrictedDataToken"),
                Route("PATCH", LISTING_PATH, self.patch_listing, "patchListingsItem"),
                Route("POST", DOCS_PATH, self.create_document, "createFeedDocument"),
                Route("GET", DOC_PATH, self.get_document, "getFeedDocument"),
                Route("POST", FEEDS_PATH, self.create_feed, "createFeed"),
                Route("GET", FEED_PATH, self.get_feed, "getFeed"),
                Route("PUT", S3_PATH, self.s3_put, "s3_put"),
                Route("GET", S3_PATH, self.s3_get, "s3_get"),
                Route("GET", ORDERS_PATH, self.get_orders, "getOrders"),
                Route("GET", ORDER_PATH, self.get_order, "getOrder"),
                Route("GET", ORDER_ITEMS_PATH, self.get_order_items, "getOrderItems")]

    # ------------------------------------------------------------------
    # Login with Amazon
    # ------------------------------------------------------------------

    def token(self, request, state):
        form = request.form
        if form is None:
            return _lwa_error(400, "invalid_request",
                              "The request is missing a required parameter or is otherwise malformed.")
        with state.lock:
            creds = state.data["credentials"]
            if (form.get("client_id") != [creds["client_id"]]
                    or form.get("client_secret") != [creds["client_secret"]]):
                return _lwa_error(401, "invalid_client",
                                  "Client authentication failed")
            if form.get("grant_type") != ["refresh_token"]:
                return _lwa_error(400, "unsupported_grant_type",
                                  "The authorization grant type is not supported by the authorization server")
            if form.get("refresh_token") != [creds["refresh_token"]]:
                return _lwa_error(400, "invalid_grant",
                                  "The request has an invalid grant parameter : refresh_token")
            token = "Atza|" + secrets.token_urlsafe(24)
            ttl = int(state.data["token_ttl"])
            state.data["tokens"][token] = time.time() + ttl
        return json_response({"access_token": token, "refresh_token": creds["refresh_token"],
                              "token_type": "bearer", "expires_in": ttl})

    def _unauthorized(self, request, state):
        """403 Unauthorized unless the request carries a valid access token
        (state.lock held)."""
        token = request.header("x-amz-access-token")
        if not token:
            return self.error(request, 403, details="The request has no x-amz-access-token header.")
        expiry = state.data["tokens"].get(token)
        if expiry is None:
            return self.error(request, 403, details="The access token you provided is revoked, malformed or invalid.")
        if expiry <= time.time():
            return self.error(request, 403, details="The access token you provided has expired.")
        return None

    # ------------------------------------------------------------------
    # Tokens API: Restricted Data Tokens
    # ------------------------------------------------------------------

    def create_rdt(self, request, state):
        def invalid(details):
            return self.error(request, 400, "InvalidRequest",
                              "Request is missing or has invalid parameters", details)

        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            body, refused = self._json_body(request)
            if refused:
                return refused
            resources = body.get("restrictedResources")
            if not isinstance(resources, list) or not resources:
                return invalid("Resource not provided.")
            if len(resources) > 50:
                return invalid("restrictedResources can have at most 50 resources.")
            if "targetApplication" in body and not isinstance(body["targetApplication"], str):
                return invalid("targetApplication must be a string.")
            kept = []
            for r in resources:
                if not isinstance(r, dict) or r.get("method") not in ("GET", "PUT", "POST", "DELETE"):
                    return invalid("Resource method must be one of GET, PUT, POST, DELETE.")
                path = r.get("path")
                if not isinstance(path, str) or not path.startswith("/") or "?" in path:
                    return invalid(f"Invalid resource path: {path}")
                elements = r.get("dataElements")
                if elements is not None and (not isinstance(elements, list) or not all(
                        isinstance(e, str) and e in DATA_ELEMENTS for e in elements)):
                    return invalid(f"Invalid dataElements for resource {path}.")
                if path.startswith(ORDERS_API) and not elements:
                    return invalid(f"dataElements is required for resource {path}.")
                kept.append({"method": r["method"], "path": path,
                             "dataElements": list(elements or [])})
            token = "Atz.sprdt|" + secrets.token_urlsafe(36)
            ttl = int(state.data["rdt_ttl"])
            state.data["rdts"][token] = {"expires": time.time() + ttl, "resources": kept}
        return json_response({"restrictedDataToken": token, "expiresIn": ttl}, 200,
                             _headers("createRestrictedDataToken"))

    def _restricted(self, request, state):
        """(refusal, data elements) of a request to a restricted operation:
        an LWA token unlocks nothing, an RDT the dataElements of its
        resource covering this request (state.lock held)."""
        token = request.header("x-amz-access-token")
        rdt = state.data["rdts"].get(token) if token else None
        if rdt is None:
            return self._unauthorized(request, state), set()
        if rdt["expires"] <= time.time():
            return self.error(request, 403, details="The access token you provided has expired."), set()
        path = request.path.split("?")[0]
        for r in rdt["resources"]:
            if r["method"] == request.method and _path_covers(r["path"], path):
                return None, set(r["dataElements"])
        return self.error(request, 403, details="The restricted data token does not cover "
                          f"{request.method} {path}."), set()

    def _marketplaces(self, request, state, values):
        """400 unless values is a non-empty list of known marketplace ids."""
        if not values:
            return self.error(request, 400, message="Missing required parameter: marketplaceIds")
        for mid in values:
            if mid not in state.data["marketplace_ids"]:
                return self.error(request, 400, message=f"Invalid marketplaceIds: {mid}")
        return None

    def _json_body(self, request):
        ctype = (request.header("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/json":
            return None, self.error(request, 415, "UnsupportedMediaType",
                                    "The request content type is not supported.")
        if not isinstance(request.json, dict):
            return None, self.error(request, 400, message="The request body is not a JSON object.")
        return request.json, None

    # ------------------------------------------------------------------
    # Listings Items API
    # ------------------------------------------------------------------

    def patch_listing(self, request, state):
        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            if request.params["seller"] != state.data["seller_id"]:
                return self.error(request, 403, details="The seller id does not match the authorization.")
            mids = [m for v in request.query.get("marketplaceIds", []) for m in v.split(",") if m]
            refused = self._marketplaces(request, state, mids)
            if refused:
                return refused
            body, refused = self._json_body(request)
            if refused:
                return refused
            sku = request.params["sku"]
            if not isinstance(body.get("productType"), str) or not body["productType"]:
                return self.error(request, 400, message="Missing required field: productType")
            patches = body.get("patches")
            if not isinstance(patches, list) or not patches:
                return self.error(request, 400, message="patches must contain at least one patch operation.")
            for p in patches:
                if (not isinstance(p, dict) or p.get("op") not in PATCH_OPS
                        or not isinstance(p.get("path"), str)):
                    return self.error(request, 400, message="Invalid patch operation: op and path are required.")
            issues = self._apply(sku, body["productType"], patches, state)
            status = "INVALID" if issues else "ACCEPTED"
        return json_response({"sku": sku, "status": status,
                              "submissionId": uuid.uuid4().hex, "issues": issues},
                             200, _headers("patchListingsItem"))

    @staticmethod
    def _apply(sku, product_type, patches, state):
        """Applies fulfillment_availability patches to a listing; the issues
        (ERROR) that make the submission INVALID, nothing applied then."""
        listing = state.data["listings"].get(sku)
        if listing is None:
            # code and text (unverified): the real listing is simply absent
            return [_issue("4000003", f"The SKU '{sku}' does not exist in the seller's catalog.",
                           [])]
        if product_type != listing.get("product_type", "PRODUCT"):
            return [_issue("90000900", f"The product type '{product_type}' does not match the "
                           f"listing's product type '{listing.get('product_type', 'PRODUCT')}'.",
                           [])]
        qty = None
        for p in patches:
            if p.get("path") != QTY_PATH:
                continue
            value = p.get("value")
            if p["op"] not in ("add", "replace", "merge") or not isinstance(value, list) or not value:
                return [_issue("90000900", "The attributes are invalid.", ["fulfillment_availability"])]
            for entry in value:
                if not isinstance(entry, dict):
                    return [_issue("90000900", "The attributes are invalid.", ["fulfillment_availability"])]
                code = entry.get("fulfillment_channel_code")
                q = entry.get("quantity")
                if code != "DEFAULT":
                    # FBA quantities are Amazon's (message (unverified))
                    return [_issue("90000900", f"The fulfillment channel '{code}' is managed by Amazon; "
                                   "only DEFAULT (merchant-fulfilled) quantities can be set.",
                                   ["fulfillment_availability"])]
                if not isinstance(q, int) or isinstance(q, bool) or q < 0:
                    return [_issue("90000900", "The value of 'quantity' must be a non-negative integer.",
                                   ["fulfillment_availability"])]
                qty = q
        if qty is not None:
            listing["quantity"] = qty
            listing["updates"] = listing.get("updates", 0) + 1
        return []

    # ------------------------------------------------------------------
    # Feeds API
    # ------------------------------------------------------------------

    def _url(self, request, state, doc_id, method):
        """A presigned URL of this mock's S3 stand-in (state.lock held)."""
        date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        sig = _sign(state.data["url_key"], method, doc_id, date)
        host = request.header("Host") or "127.0.0.1"
        return (f"http://{host}/mock-s3/{doc_id}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Date={date}&X-Amz-Expires={URL_TTL}"
                f"&X-Amz-SignedHeaders=content-type%3Bhost&X-Amz-Signature={sig}")

    def create_document(self, request, state):
        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            body, refused = self._json_body(request)
            if refused:
                return refused
            ctype = body.get("contentType")
            if not isinstance(ctype, str) or not ctype:
                return self.error(request, 400, message="Missing required field: contentType")
            doc_id = "amzn1.tortuga.4." + uuid.uuid4().hex
            state.data["documents"][doc_id] = {"kind": "feed", "content_type": ctype,
                                               "content": None, "compression": None}
            url = self._url(request, state, doc_id, "PUT")
        return json_response({"feedDocumentId": doc_id, "url": url}, 201,
                             _headers("createFeedDocument"))

    def _s3_check(self, request, state, method):
        """S3's refusals of a presigned request (state.lock held)."""
        doc_id = request.params["doc"]
        date = request.query.get("X-Amz-Date", [""])[0]
        sig = request.query.get("X-Amz-Signature", [""])[0]
        if not hmac.compare_digest(sig, _sign(state.data["url_key"], method, doc_id, date)):
            return _s3_error(403, "SignatureDoesNotMatch",
                             "The request signature we calculated does not match the signature you provided.")
        issued = calendar.timegm(time.strptime(date, "%Y%m%dT%H%M%SZ"))
        if issued + URL_TTL < time.time():
            return _s3_error(403, "AccessDenied", "Request has expired")
        unsigned = [n for n, _ in request.header_items if n.lower().startswith("x-amz-")]
        if unsigned:
            return _s3_error(403, "AccessDenied",
                             "There were headers present in the request which were not signed: "
                             + ", ".join(sorted(n.lower() for n in unsigned)))
        if doc_id not in state.data["documents"]:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        return None

    def s3_put(self, request, state):
        with state.lock:
            refused = self._s3_check(request, state, "PUT")
            if refused:
                return refused
            doc = state.data["documents"][request.params["doc"]]
            if doc["kind"] != "feed":
                return _s3_error(403, "AccessDenied", "Access Denied")
            if (request.header("Content-Type") or "") != doc["content_type"]:
                return _s3_error(403, "SignatureDoesNotMatch",
                                 "The Content-Type is not the one the URL was signed for.")
            doc["content"] = request.body.decode("utf-8", "replace")
        return raw_response(b"", 200, "application/xml", {"ETag": '"%s"' % hashlib.md5(request.body).hexdigest()})

    def s3_get(self, request, state):
        with state.lock:
            refused = self._s3_check(request, state, "GET")
            if refused:
                return refused
            doc = state.data["documents"][request.params["doc"]]
            data = (doc["content"] or "").encode("utf-8")
        if doc.get("compression") == "GZIP":
            data = gzip.compress(data)
        return raw_response(data, 200, "application/octet-stream" if doc.get("compression")
                            else "application/json")

    def create_feed(self, request, state):
        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            body, refused = self._json_body(request)
            if refused:
                return refused
            for field in ("feedType", "marketplaceIds", "inputFeedDocumentId"):
                if field not in body:
                    return self.error(request, 400, message=f"Missing required field: {field}")
            if body["feedType"] != "JSON_LISTINGS_FEED":
                return self.error(request, 400, message=f"Invalid feedType: {body['feedType']}")
            mids = body["marketplaceIds"]
            if not isinstance(mids, list) or len(mids) > 25:
                return self.error(request, 400, message="marketplaceIds must be an array of 1 to 25 ids.")
            refused = self._marketplaces(request, state, mids)
            if refused:
                return refused
            doc = state.data["documents"].get(body["inputFeedDocumentId"])
            if doc is None or doc["kind"] != "feed":
                return self.error(request, 400, message="Invalid inputFeedDocumentId.")
            feed_id = str(50000000000 + len(state.data["feeds"]) + 1)
            state.data["feeds"][feed_id] = {
                "feedId": feed_id, "feedType": body["feedType"], "marketplaceIds": mids,
                "createdTime": _now_iso(), "created": time.time(),
                "processingStatus": "IN_QUEUE", "inputFeedDocumentId": body["inputFeedDocumentId"]}
        return json_response({"feedId": feed_id}, 202, _headers("createFeed"))

    def get_feed(self, request, state):
        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            feed = state.data["feeds"].get(request.params["feed"])
            if feed is None:
                return self.error(request, 404, message="The requested feed was not found.")
            age = time.time() - feed["created"]
            wait = float(state.data["feed_processing_seconds"])
            if feed["processingStatus"] in ("IN_QUEUE", "IN_PROGRESS"):
                if age >= wait:
                    self._process(feed, state)
                elif age >= wait / 2:
                    feed["processingStatus"] = "IN_PROGRESS"
                    feed.setdefault("processingStartTime", _now_iso())
            answer = {k: v for k, v in feed.items()
                      if k not in ("created", "inputFeedDocumentId")}
        return json_response(answer, 200, _headers("getFeed"))

    def _process(self, feed, state):
        """Applies a JSON_LISTINGS_FEED and writes its processing report."""
        doc = state.data["documents"][feed["inputFeedDocumentId"]]
        issues = []
        processed = accepted = 0
        fatal = None
        try:
            content = json.loads(doc["content"]) if doc["content"] is not None else None
        except ValueError as exc:
            content = None
            fatal = f"The feed is not valid JSON: {exc}"
        if content is None and fatal is None:
            fatal = "The feed document was not uploaded."
        if fatal is None:
            fatal = self._check_feed(content, state)
        if fatal is not None:
            issues.append({"code": "4000001", "severity": "ERROR", "message": fatal})
        else:
            for m in content["messages"]:
                processed += 1
                problem = _check_message(m)
                if problem:
                    found = [_issue("4000001", problem, [])]
                else:
                    found = self._apply(m["sku"], m["productType"], m["patches"], state)
                for issue in found:
                    entry = {"messageId": m.get("messageId"), "sku": m.get("sku"),
                             "code": issue["code"], "severity": "ERROR", "message": issue["message"]}
                    if issue.get("attributeNames"):
                        entry["attributeName"] = issue["attributeNames"][0]
                    issues.append(entry)
                if not found:
                    accepted += 1
        report_id = "amzn1.tortuga.4." + uuid.uuid4().hex
        report = {"header": {"sellerId": state.data["seller_id"], "version": "2.0",
                             "feedId": feed["feedId"]},
                  "issues": issues,
                  "summary": {"errors": len(issues), "warnings": 0,
                              "messagesProcessed": processed, "messagesAccepted": accepted,
                              "messagesInvalid": processed - accepted}}
        state.data["documents"][report_id] = {
            "kind": "report", "content_type": "application/json",
            "content": json.dumps(report), "compression": state.data.get("report_compression")}
        feed["processingStatus"] = "FATAL" if fatal else "DONE"
        feed.setdefault("processingStartTime", _now_iso())
        feed["processingEndTime"] = _now_iso()
        feed["resultFeedDocumentId"] = report_id

    @staticmethod
    def _check_feed(content, state):
        """Why a feed is refused as a whole (FATAL), or None."""
        if not isinstance(content, dict):
            return "The feed must be a JSON object."
        header = content.get("header")
        if not isinstance(header, dict) or header.get("version") != "2.0":
            return "The feed header is missing or its version is not 2.0."
        if header.get("sellerId") != state.data["seller_id"]:
            return f"The header sellerId '{header.get('sellerId')}' does not match the submitting seller."
        messages = content.get("messages")
        if not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            return f"The feed must have 1 to {MAX_MESSAGES} messages."
        ids = [m.get("messageId") if isinstance(m, dict) else None for m in messages]
        if len(set(map(str, ids))) != len(ids):
            return "messageId values must be unique within the feed."
        return None

    def get_document(self, request, state):
        with state.lock:
            refused = self._unauthorized(request, state)
            if refused:
                return refused
            doc_id = request.params["doc"]
            doc = state.data["documents"].get(doc_id)
            if doc is None or doc["kind"] != "report":
                return self.error(request, 404, message="The requested feed document was not found.")
            answer = {"feedDocumentId": doc_id, "url": self._url(request, state, doc_id, "GET")}
            if doc.get("compression"):
                answer["compressionAlgorithm"] = doc["compression"]
        return json_response(answer, 200, _headers("getFeedDocument"))

    # ------------------------------------------------------------------
    # Orders API v0
    # ------------------------------------------------------------------

    @staticmethod
    def _order_view(order, elements):
        """An order as getOrders / getOrder answer it, with the restricted
        data of the RDT's dataElements only."""
        view = json.loads(json.dumps({k: v for k, v in order.items() if k != "OrderItems"}))
        if view.get("OrderStatus") not in ADDRESS_STATUSES:
            view.pop("ShippingAddress", None)
        if "shippingAddress" not in elements and isinstance(view.get("ShippingAddress"), dict):
            for k in RESTRICTED_ADDRESS:
                view["ShippingAddress"].pop(k, None)
        if "buyerInfo" not in elements and isinstance(view.get("BuyerInfo"), dict):
            for k in RESTRICTED_BUYER:
                view["BuyerInfo"].pop(k, None)
        if "buyerTaxInformation" not in elements:
            view.pop("BuyerTaxInformation", None)
        return view

    @staticmethod
    def _item_view(item, elements):
        """An order item as getOrderItems answers it."""
        view = json.loads(json.dumps(item))
        if "buyerInfo" not in elements and isinstance(view.get("BuyerInfo"), dict):
            for k in RESTRICTED_ITEM_BUYER:
                view["BuyerInfo"].pop(k, None)
        return view

    def _token(self, state, entry):
        token = secrets.token_urlsafe(48) + "=="
        state.data["next_tokens"][token] = entry
        return token

    def get_orders(self, request, state):
        q = request.query
        with state.lock:
            refused, elements = self._restricted(request, state)
            if refused:
                return refused
            mids = _csv(q, "MarketplaceIds")
            if not mids:
                return self.error(request, 400, message="Missing required parameter: MarketplaceIds")
            if len(mids) > 50:
                return self.error(request, 400, message="MarketplaceIds can have at most 50 values.")
            for mid in mids:
                if mid not in state.data["marketplace_ids"]:
                    return self.error(request, 400, message=f"Invalid MarketplaceIds: {mid}")
            token = q.get("NextToken", [None])[0]
            if token is not None:
                entry = state.data["next_tokens"].get(token)
                if entry is None or entry["kind"] != "orders" or entry["marketplaces"] != mids:
                    return self.error(request, 400, message="Invalid NextToken.")
            else:
                entry, refused = self._orders_query(request, state, q, mids)
                if refused:
                    return refused
            ids = entry["ids"]
            offset = entry["offset"]
            page = ids[offset:offset + entry["size"]]
            payload = {"Orders": [self._order_view(state.data["orders"][i], elements)
                                  for i in page if i in state.data["orders"]]}
            if offset + len(page) < len(ids):
                payload["NextToken"] = self._token(state, dict(entry, offset=offset + len(page)))
            payload[entry["before_key"]] = entry["before"]
        return json_response({"payload": payload}, 200, _headers("getOrders"))

    def _orders_query(self, request, state, q, mids):
        """The matching orders of a first getOrders request, or an error."""
        def fail(message):
            return None, self.error(request, 400, message=message)

        created = "CreatedAfter" in q or "CreatedBefore" in q
        updated = "LastUpdatedAfter" in q or "LastUpdatedBefore" in q
        if created and updated:
            return fail("CreatedAfter/CreatedBefore and LastUpdatedAfter/LastUpdatedBefore "
                        "cannot be specified together.")
        key = "Created" if created else "LastUpdated"
        if f"{key}After" not in q:
            return fail("Either CreatedAfter or LastUpdatedAfter must be specified.")
        after = _parse_iso(q[f"{key}After"][0])
        if after is None:
            return fail(f"{key}After is not a valid ISO 8601 date.")
        limit = time.time() - BEFORE_LAG_S
        if f"{key}Before" in q:
            before = _parse_iso(q[f"{key}Before"][0])
            if before is None:
                return fail(f"{key}Before is not a valid ISO 8601 date.")
            if before < after:
                return fail(f"{key}Before must be on or after {key}After.")
            if before > limit:
                # message text (unverified); the rule is the model's
                return fail(f"{key}Before must be at least 2 minutes before the current time.")
        else:
            before = limit
        if after > limit:
            return fail(f"{key}After must be at least 2 minutes before the current time.")
        size = q.get("MaxResultsPerPage", ["100"])[0]
        if not size.isdigit() or not 1 <= int(size) <= 100:
            return fail("MaxResultsPerPage must be between 1 and 100.")
        statuses = _csv(q, "OrderStatuses")
        for st in statuses:
            if st not in ORDER_STATUSES:
                return fail(f"Invalid OrderStatuses: {st}")
        channels = _csv(q, "FulfillmentChannels")
        for ch in channels:
            if ch not in ("AFN", "MFN"):
                return fail(f"Invalid FulfillmentChannels: {ch}")
        wanted = _csv(q, "AmazonOrderIds")
        if len(wanted) > 50:
            return fail("AmazonOrderIds can have at most 50 values.")
        field = "PurchaseDate" if created else "LastUpdateDate"
        found = []
        for oid, order in state.data["orders"].items():
            t = _parse_iso(order.get(field, ""))
            if (t is None or not after <= t <= before
                    or order.get("MarketplaceId", mids[0]) not in mids
                    or (statuses and order.get("OrderStatus") not in statuses)
                    or (channels and order.get("FulfillmentChannel", "MFN") not in channels)
                    or (wanted and oid not in wanted)):
                continue
            found.append((t, oid))
        found.sort()
        return {"kind": "orders", "marketplaces": mids, "ids": [oid for _, oid in found],
                "offset": 0,
                "size": min(int(size), int(state.data["orders_page_size"])),
                "before_key": f"{key}Before", "before": _now_iso(before)}, None

    def get_order(self, request, state):
        with state.lock:
            refused, elements = self._restricted(request, state)
            if refused:
                return refused
            order = state.data["orders"].get(request.params["order"])
            if order is None:
                return self.error(request, 404, message="Order not found.",
                                  details=f"Invalid AmazonOrderId: {request.params['order']}")
            view = self._order_view(order, elements)
        return json_response({"payload": view}, 200, _headers("getOrder"))

    def get_order_items(self, request, state):
        oid = request.params["order"]
        with state.lock:
            refused, elements = self._restricted(request, state)
            if refused:
                return refused
            order = state.data["orders"].get(oid)
            if order is None:
                return self.error(request, 404, message="Order not found.",
                                  details=f"Invalid AmazonOrderId: {oid}")
            offset = 0
            token = request.query.get("NextToken", [None])[0]
            if token is not None:
                entry = state.data["next_tokens"].get(token)
                if entry is None or entry["kind"] != "items" or entry["order"] != oid:
                    return self.error(request, 400, message="Invalid NextToken.")
                offset = entry["offset"]
            items = order.get("OrderItems", [])
            size = int(state.data["items_page_size"])
            payload = {"AmazonOrderId": oid,
                       "OrderItems": [self._item_view(i, elements) for i in items[offset:offset + size]]}
            if offset + size < len(items):
                payload["NextToken"] = self._token(state, {"kind": "items", "order": oid,
                                                           "offset": offset + size})
        return json_response({"payload": payload}, 200, _headers("getOrderItems"))

    # ------------------------------------------------------------------
    # fault framework
    # ------------------------------------------------------------------

    def rate_limit(self, request, retry_after):
        response = self.error(request, 429)
        if retry_after > 0:
            response.add_headers(
                {"x-amzn-RateLimit-Limit": f"{1 / retry_after:.4g}"})
        return response

    def error(self, request, status, code=None, message=None, details=""):
        code = code or ERROR_CODES.get(status) or reason(status).replace(" ", "")
        message = message or ERROR_MESSAGES.get(status) or reason(status)
        return json_response(
            {"errors": [{"code": str(code), "message": message,
                         "details": details}]},
            status, {"x-amzn-RequestId": request_id(),
                     "x-amzn-ErrorType": str(code)})


def _path_covers(pattern, path):
    """Whether a restricted resource path covers a request path: equal, a
    ``{name}`` segment matching any one segment (a generic path)."""
    want = pattern.rstrip("/").split("/")
    got = path.rstrip("/").split("/")
    if len(want) != len(got):
        return False
    return all(w == g or (w.startswith("{") and w.endswith("}") and g)
               for w, g in zip(want, got))


def _csv(query, name):
    """An array query parameter: comma-separated and/or repeated."""
    return [v for item in query.get(name, []) for v in item.split(",") if v]


def _parse_iso(text):
    """Unix seconds of an ISO 8601 date-time (Z or offset, optional
    fractional seconds), or None."""
    try:
        t = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (ValueError, AttributeError, TypeError):
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t.timestamp()


def _check_message(m):
    """Why a feed message is invalid (schema level), or None."""
    if not isinstance(m, dict):
        return "The message must be a JSON object."
    mid = m.get("messageId")
    if not isinstance(mid, int) or isinstance(mid, bool) or mid < 1:
        return "messageId must be a positive integer."
    if not isinstance(m.get("sku"), str) or not m["sku"]:
        return "sku is required."
    if m.get("operationType") != "PATCH":
        return "Only PATCH messages are accepted by this mock."
    if not isinstance(m.get("productType"), str) or not m["productType"]:
        return "productType is required for PATCH messages."
    patches = m.get("patches")
    if not isinstance(patches, list) or not patches:
        return "patches is required for PATCH messages."
    for p in patches:
        if not isinstance(p, dict) or p.get("op") not in PATCH_OPS or not isinstance(p.get("path"), str):
            return "Invalid patch operation: op and path are required."
    return None


def _issue(code, message, attributes):
    return {"code": code, "message": message, "severity": "ERROR",
            "attributeNames": attributes, "categories": ["INVALID_ATTRIBUTE"]}


def _headers(operation):
    return {"x-amzn-RequestId": request_id(),
            "x-amzn-RateLimit-Limit": RATES[operation]}


def _sign(key, method, doc_id, date):
    return hmac.new(key.encode(), f"{method}\n{doc_id}\n{date}".encode(),
                    hashlib.sha256).hexdigest()


def _lwa_error(status, error, description):
    return json_response({"error_description": description, "error": error}, status)


def _s3_error(status, code, message):
    return xml_response('<?xml version="1.0" encoding="UTF-8"?>\n'
                        f"<Error><Code>{code}</Code><Message>{message}</Message>"
                        f"<RequestId>{uuid.uuid4().hex[:16].upper()}</RequestId></Error>",
                        status)


def make(name):
    return Amazon(name)
