/*-------------------------------------------------------------------------
 *
 * shopify.c
 *	  Shopify connector: GraphQL Admin API.
 *
 * Stock push: POST <endpoint>/admin/api/<api_version>/graphql.json with the
 * inventorySetQuantities mutation, up to 250 quantities per call: the
 * "available" quantity of each listing's inventory item at the channel's
 * location, reason "correction", as absolute values without a compare check
 * (this database is the source of truth for the stock it publishes):
 *
 *	- before 2026-04: input.ignoreCompareQuantity = true;
 *	- 2026-04 and later: every quantity carries "changeFromQuantity": null
 *	  (the explicit opt-out; omitting it is an error there);
 *	- 2026-01 and later: the @idempotent(key:) directive on the mutation
 *	  field (optional in 2026-01, required from 2026-04), with a UUID chosen
 *	  when the push is queued, so every retry of that job is the same request
 *	  for Shopify; older versions do not know the directive.
 *
 * Results: GraphQL answers HTTP 200.  userErrors name the failing quantity
 * by their field path (["input", "quantities", "<index>", ...]).  When a
 * call has userErrors, Shopify applies none of its quantities (no
 * inventoryAdjustmentGroup; all-or-nothing (unverified)): the rejected items
 * keep Shopify's message and the others are sent again at once without them
 * (next_step), so one bad listing does not hold back its batch.
 *
 * Throttling is cost-based: a THROTTLED error comes as HTTP 200 with
 * extensions.cost.throttleStatus; the wait is (requestedQueryCost -
 * currentlyAvailable) / restoreRate seconds.
 *
 * Order pull (GraphQL; the REST Admin API is legacy since 2024-10): the
 * orders connection, sortKey UPDATED_AT, query "updated_at:>='since' AND
 * updated_at:<'until'", SHOPIFY_ORDERS_PAGE orders per page followed with
 * pageInfo.hasNextPage / endCursor (the cursor is kept in the pull state).
 * Shopify caps a query's cost (1000 points, connections weighing first x
 * their nodes), so a page asks for the first SHOPIFY_ORDER_LINES line
 * items of each order only: an order with more (lineItems.pageInfo.
 * hasNextPage) waits in the state ("waiting") while its other lines are
 * read with order(id:) { lineItems(first: 100, after:) } requests, and is
 * stored once complete (raw = the order with all its lines).  fetch_order:
 * order(id: "gid://shopify/Order/<id>") (a numeric id or a gid).  The
 * cost-based throttle (THROTTLED, HTTP 200) of these answers is the one
 * ShopifyThrottled handles for the push.  GraphQL "errors" on an answer
 * fail it (nothing stored).
 *
 * What is imported: external_id = the order's numeric id
 * (legacyResourceId; the "#1001" name stays in raw).  Orders with
 * test = true are never imported; an order neither cancelled nor
 * AUTHORIZED, PAID, PARTIALLY_PAID, PARTIALLY_REFUNDED or REFUNDED
 * (displayFinancialStatus: PENDING, EXPIRED, VOIDED: no money yet) is
 * skipped.  "status" = displayFulfillmentStatus verbatim (UNFULFILLED,
 * PARTIALLY_FULFILLED, FULFILLED...); "cancelled" when cancelledAt is set
 * or the order was fully REFUNDED.  Money is the shopMoney of each
 * MoneyBag (the shop's currency = currencyCode): lines = sku, quantity,
 * unit_price = originalUnitPriceSet (before discounts), discount = the sum
 * of its discountAllocations, tax = the sum of its taxLines; totals: items
 * = sum of unit_price x quantity, shipping = totalShippingPriceSet,
 * discount = totalDiscountsSet, tax = totalTaxSet, total = totalPriceSet.
 * buyer: id = customer.id (a gid), name = the customer's displayName (else
 * the billing / shipping name), email and phone of the customer, else of
 * the order.  Addresses: address1/2, city, zip, provinceCode (else
 * province), countryCodeV2 (ISO alpha-2), phone.  sla: a shipping line's
 * title or code naming same-day, next-day / overnight or two-day delivery
 * (same_day, next_day, two_day), else express (expedited).
 *
 * Cancellation by the merchant: the orderCancel mutation (orderId, reason
 * OTHER, restock true, notifyCustomer true, a staff note; refund to the
 * original payment method: refund: true before 2025-07, refundMethod
 * {originalPaymentMethodsRefund: true} from 2025-07 (the version boundary
 * is unverified)).  Shopify cancels asynchronously (a job); an answer with
 * orderCancelUserErrors is a refusal, except one saying the order is
 * already cancelled (a retried request).
 *
 * Auth: X-Shopify-Access-Token (an offline Admin API token; no token
 * exchange), added at send time.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "../connector.h"

#define SHOPIFY_BATCH	250
#define SHOPIFY_DEFAULT_VERSION "2025-01"

/* keys an earlier step leaves on a payload item it rejected */
#define CARRIED_ERROR	"_omnichan_error"
#define CARRIED_CLASS	"_omnichan_class"

static void ShopifyBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void ShopifyParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static bool ShopifyNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
							PushItem *items, int n, OutRequest *next);
static double ShopifyThrottled(ChannelConfig *ch, HttpRequest *req);
static void ShopifyAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);
static void ShopifyBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool ShopifyParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
							 OutRequest *next, char **error);
static bool ShopifyBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
static bool ShopifyParseCancel(ChannelConfig *ch, HttpRequest *req, char **error);

const Connector ShopifyConnector = {
	.kind = "shopify",
	.push_batch = SHOPIFY_BATCH,
	.build_push = ShopifyBuildPush,
	.parse_push = ShopifyParsePush,
	.next_step = ShopifyNextStep,
	.throttled = ShopifyThrottled,
	.needs_token = false,
	.authorize = ShopifyAuthorize,
	.pull_operation = "order_pull",
	.pull_lag_s = 0,
	.build_pull = ShopifyBuildPull,
	.parse_pull = ShopifyParsePull,
	.build_cancel = ShopifyBuildCancel,
	.parse_cancel = ShopifyParseCancel,
};

/* ApiVersion: the channel's Admin API version ("YYYY-MM") */
static const char *
ApiVersion(ChannelConfig *ch)
{
	const char *v = SettingString(ch, "api_version");

	return v != NULL ? v : SHOPIFY_DEFAULT_VERSION;
}

/*
 * NewUuid
 *		A random (version 4) UUID from pg_strong_random.
 */
static char *
NewUuid(void)
{
	uint8		b[16];

	if (!pg_strong_random(b, sizeof(b)))
		elog(ERROR, "could not generate random bytes");
	b[6] = (b[6] & 0x0f) | 0x40;
	b[8] = (b[8] & 0x3f) | 0x80;
	return psprintf("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
					b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7],
					b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Carried: the error an earlier step recorded on an item, or NULL */
static const char *
Carried(PushItem *item)
{
	return OcJsonString(OcJsonGet(item->external, CARRIED_ERROR));
}

/*
 * BuildMutation
 *		One inventorySetQuantities call for the items without a carried
 *		error, in their order (the quantities' indexes refer to it).
 */
static void
BuildMutation(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	const char *version = ApiVersion(ch);
	bool		idempotent = strcmp(version, "2026-01") >= 0;
	bool		change_from = strcmp(version, "2026-04") >= 0;
	const char *location = SettingString(ch, "location_id");
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *vars;
	OcJson	   *input;
	OcJson	   *quantities;
	OcJson	   *null_value = NULL;
	char	   *perr;
	int			i;

	if (location == NULL)
		elog(ERROR, "Shopify channel \"%s\" has no location_id", ch->name);
	if (change_from)
		null_value = OcJsonGet(OcJsonParse("{\"v\":null}", 10, &perr), "v");

	OcJsonSetString(body, "query", idempotent
					? "mutation SetAvailable($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) {"
					" inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) {"
					" inventoryAdjustmentGroup { createdAt reason changes { name delta quantityAfterChange } }"
					" userErrors { code field message } } }"
					: "mutation SetAvailable($input: InventorySetQuantitiesInput!) {"
					" inventorySetQuantities(input: $input) {"
					" inventoryAdjustmentGroup { createdAt reason changes { name delta quantityAfterChange } }"
					" userErrors { code field message } } }");
	vars = OcJsonSetObject(body, "variables");
	input = OcJsonSetObject(vars, "input");
	OcJsonSetString(input, "name", "available");
	OcJsonSetString(input, "reason", "correction");
	if (!change_from)
		OcJsonSetBool(input, "ignoreCompareQuantity", true);
	quantities = OcJsonSetArray(input, "quantities");
	for (i = 0; i < n; i++)
	{
		OcJson	   *q;
		const char *item_id;

		if (Carried(&items[i]) != NULL)
			continue;
		item_id = OcJsonString(OcJsonGet(items[i].external, "inventory_item_id"));
		q = OcJsonAppendObject(quantities);
		/* listing_link requires the id; an empty one gets Shopify's own error */
		OcJsonSetString(q, "inventoryItemId", item_id ? item_id : "");
		OcJsonSetString(q, "locationId", location);
		OcJsonSetInt(q, "quantity", items[i].quantity);
		if (change_from)
			OcJsonSetCopy(q, "changeFromQuantity", null_value);
	}
	if (idempotent)
		OcJsonSetString(vars, "idempotencyKey", NewUuid());

	out->operation = "stock_push";
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, psprintf("/admin/api/%s/graphql.json", version));
	OutRequestHeader(out, "Content-Type: application/json");
	OutRequestHeader(out, "Accept: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
}

/*
 * ShopifyBuildPush
 *		One inventorySetQuantities call for up to 250 listings.
 */
static void
ShopifyBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	BuildMutation(ch, items, n, out);
}

/*
 * ErrorClassOf
 *		How to handle an item Shopify refused, from the error code.
 */
static ItemErrorClass
ErrorClassOf(const char *code)
{
	if (code == NULL)
		return ITEM_ERROR_FIX;
	if (strcmp(code, "THROTTLED") == 0 || strcmp(code, "INTERNAL_SERVER_ERROR") == 0 ||
		strcmp(code, "COMPARE_QUANTITY_STALE") == 0 || strcmp(code, "CHANGE_FROM_QUANTITY_STALE") == 0 ||
		strncmp(code, "IDEMPOTENCY_", 12) == 0)
		return ITEM_ERROR_RETRY;
	if (strcmp(code, "ACCESS_DENIED") == 0 || strcmp(code, "UNAUTHORIZED") == 0)
		return ITEM_ERROR_CREDENTIALS;
	return ITEM_ERROR_FIX;
}

/*
 * QuantityIndex
 *		The quantities index a userError's field path names, or -1.
 */
static int
QuantityIndex(OcJson *field)
{
	const char *a = OcJsonString(OcJsonAt(field, 0));
	const char *b = OcJsonString(OcJsonAt(field, 1));
	const char *c = OcJsonString(OcJsonAt(field, 2));
	char	   *end;
	long		idx;

	if (a == NULL || b == NULL || c == NULL ||
		strcmp(a, "input") != 0 || strcmp(b, "quantities") != 0 || *c == '\0')
		return -1;
	idx = strtol(c, &end, 10);
	if (*end != '\0' || idx < 0 || idx > SHOPIFY_BATCH)
		return -1;
	return (int) idx;
}

/*
 * SentItem
 *		The item at position idx of the call (items with a carried error were
 *		not sent), or -1.
 */
static int
SentItem(PushItem *items, int n, int idx)
{
	int			k;

	for (k = 0; k < n; k++)
	{
		if (Carried(&items[k]) != NULL)
			continue;
		if (idx-- == 0)
			return k;
	}
	return -1;
}

/* UserErrorMessage: "Shopify CODE: message" */
static char *
UserErrorMessage(OcJson *e)
{
	const char *code = OcJsonString(OcJsonGet(e, "code"));
	const char *msg = OcJsonString(OcJsonGet(e, "message"));

	return psprintf("Shopify %s: %s", code ? code : "error", msg ? msg : "no message");
}

/*
 * RequestErrorMessage
 *		The message of a whole-request failure: GraphQL "errors" (an array)
 *		or REST-style "errors" (a string or an object), NULL when none.
 */
static char *
RequestErrorMessage(OcJson *doc, const char **code)
{
	OcJson	   *errors = OcJsonGet(doc, "errors");
	const char *s;

	*code = NULL;
	if (errors == NULL)
		return NULL;
	if ((s = OcJsonString(errors)) != NULL)
		return psprintf("Shopify: %s", s);
	if (OcJsonLength(errors) > 0)
	{
		const char *msg = OcJsonString(OcJsonPath(errors, "0.message"));

		*code = OcJsonString(OcJsonPath(errors, "0.extensions.code"));
		return psprintf("Shopify %s: %s", *code ? *code : "error", msg ? msg : "no message");
	}
	if (OcJsonIsObject(errors))
		return psprintf("Shopify: %s", OcJsonDump(errors));
	return NULL;
}

/*
 * ShopifyNextStep
 *		A call rejected because of some of its quantities applied none of
 *		them: keep the rejected items' errors in the payload and send the
 *		others again, at once, in a new call (a new idempotency key: it is a
 *		different request).
 */
static bool
ShopifyNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
				PushItem *items, int n, OutRequest *next)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	OcJson	   *result = OcJsonPath(doc, "data.inventorySetQuantities");
	OcJson	   *errors = OcJsonGet(result, "userErrors");
	int			count = OcJsonLength(errors);
	int		   *rejected;
	int			nrejected = 0,
				remaining = 0;
	int			i,
				k;

	if (result == NULL || count <= 0 ||
		(OcJsonGet(result, "inventoryAdjustmentGroup") != NULL &&
		 !OcJsonIsNull(OcJsonGet(result, "inventoryAdjustmentGroup"))))
		return false;

	/* every userError must name a quantity, or the whole call is at fault */
	rejected = palloc(sizeof(int) * count);
	for (i = 0; i < count; i++)
	{
		int			idx = QuantityIndex(OcJsonGet(OcJsonAt(errors, i), "field"));

		k = idx < 0 ? -1 : SentItem(items, n, idx);
		if (k < 0)
			return false;
		rejected[nrejected++] = k;
	}
	for (i = 0; i < nrejected; i++)
	{
		OcJson	   *e = OcJsonAt(errors, i);
		PushItem   *item = &items[rejected[i]];

		if (Carried(item) != NULL)
			continue;			/* two errors on one quantity: keep the first */
		OcJsonSetString(item->external, CARRIED_ERROR, UserErrorMessage(e));
		OcJsonSetInt(item->external, CARRIED_CLASS,
					 (int64) ErrorClassOf(OcJsonString(OcJsonGet(e, "code"))));
	}
	for (k = 0; k < n; k++)
		if (Carried(&items[k]) == NULL)
			remaining++;
	if (remaining == 0)
		return false;			/* nothing left to send: parse_push records it */

	OcJsonSetString(payload, "step", "resend");
	BuildMutation(ch, items, n, next);
	return true;
}

/*
 * ShopifyParsePush
 *		The mutation's userErrors per quantity; whole-request errors (GraphQL
 *		"errors", or an HTTP error's body) for every item.
 */
static void
ShopifyParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	OcJson	   *result = OcJsonPath(doc, "data.inventorySetQuantities");
	OcJson	   *errors = OcJsonGet(result, "userErrors");
	OcJson	   *group = OcJsonGet(result, "inventoryAdjustmentGroup");
	bool		applied;
	char	   *general = NULL;
	ItemErrorClass general_class = ITEM_ERROR_FIX;
	const char *code;
	char	   *request_error;
	int			count,
				i,
				k;

	/* errors carried from an earlier step of the same push */
	for (k = 0; k < n; k++)
	{
		int64		cls = ITEM_ERROR_FIX;

		if (Carried(&items[k]) == NULL)
			continue;
		(void) OcJsonInt(OcJsonGet(items[k].external, CARRIED_CLASS), &cls);
		items[k].error = pstrdup(Carried(&items[k]));
		items[k].error_class = (ItemErrorClass) cls;
	}

	request_error = doc ? RequestErrorMessage(doc, &code) : NULL;
	if (doc == NULL || req->status >= 300 || (result == NULL && request_error != NULL) ||
		result == NULL)
	{
		ItemErrorClass cls;

		if (req->status == 401 || req->status == 403)
			cls = ITEM_ERROR_CREDENTIALS;
		else if (req->status == 429 || req->status >= 500 || doc == NULL)
			cls = ITEM_ERROR_RETRY;
		else if (req->status >= 400)
			cls = ITEM_ERROR_FIX;
		else
			cls = request_error ? ErrorClassOf(code) : ITEM_ERROR_RETRY;
		for (k = 0; k < n; k++)
		{
			if (items[k].error != NULL)
				continue;
			items[k].ok = false;
			items[k].error = request_error ? request_error
				: psprintf("Shopify answered HTTP %d with an unreadable body (%s)", req->status,
						   doc == NULL ? error : "no inventorySetQuantities result");
			items[k].error_class = cls;
		}
		return;
	}

	count = Max(OcJsonLength(errors), 0);
	applied = count == 0 || (group != NULL && !OcJsonIsNull(group));
	for (i = 0; i < count; i++)
	{
		OcJson	   *e = OcJsonAt(errors, i);
		int			idx = QuantityIndex(OcJsonGet(e, "field"));

		k = idx < 0 ? -1 : SentItem(items, n, idx);
		if (k < 0)
		{
			/* not about one quantity: the whole call */
			if (general == NULL)
			{
				general = UserErrorMessage(e);
				general_class = ErrorClassOf(OcJsonString(OcJsonGet(e, "code")));
			}
			continue;
		}
		if (items[k].error == NULL)
		{
			items[k].error = UserErrorMessage(e);
			items[k].error_class = ErrorClassOf(OcJsonString(OcJsonGet(e, "code")));
		}
	}
	for (k = 0; k < n; k++)
	{
		if (items[k].error != NULL)
			continue;
		if (general != NULL)
		{
			items[k].error = general;
			items[k].error_class = general_class;
		}
		else if (applied)
			items[k].ok = true;
		else
		{
			items[k].error = "Shopify applied none of the call's quantities (another quantity was refused)";
			items[k].error_class = ITEM_ERROR_RETRY;
		}
	}
}

/*
 * ShopifyThrottled
 *		A GraphQL THROTTLED error (HTTP 200): seconds until the bucket holds
 *		the query's cost again, or -1.
 */
static double
ShopifyThrottled(ChannelConfig *ch, HttpRequest *req)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	OcJson	   *errors = OcJsonGet(doc, "errors");
	OcJson	   *status;
	double		requested = 0,
				available = 0,
				restore = 0,
				wait;
	int			count = OcJsonLength(errors);
	int			i;
	bool		throttled = false;

	for (i = 0; i < count; i++)
	{
		const char *code = OcJsonString(OcJsonPath(OcJsonAt(errors, i), "extensions.code"));

		if (code != NULL && strcmp(code, "THROTTLED") == 0)
			throttled = true;
	}
	if (!throttled)
		return -1;

	status = OcJsonPath(doc, "extensions.cost.throttleStatus");
	if (!OcJsonNumber(OcJsonPath(doc, "extensions.cost.requestedQueryCost"), &requested) ||
		!OcJsonNumber(OcJsonGet(status, "currentlyAvailable"), &available) ||
		!OcJsonNumber(OcJsonGet(status, "restoreRate"), &restore) || restore <= 0)
		return 1.0;				/* no cost information: wait a second */
	wait = (requested - available) / restore;
	return Min(Max(wait, 0.0), 60.0);
}

/* ShopifyAuthorize: the Admin API access token */
static void
ShopifyAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	HttpAddHeader(req, "X-Shopify-Access-Token: %s", SecretString(secrets, "access_token"));
}

/*
 * Order pull.
 *
 * Page sizes keep a query's requested cost under Shopify's 1000-point cap:
 * an orders page costs about 2 + SHOPIFY_ORDERS_PAGE x (the order's objects
 * + SHOPIFY_ORDER_LINES x a line's objects).
 */
#define SHOPIFY_ORDERS_PAGE	10
#define SHOPIFY_ORDER_LINES	5
#define SHOPIFY_LINES_PAGE	100
#define SHOPIFY_MAX_LINES	2000	/* more lines than this: a malformed answer */

#define SHOPIFY_MONEY "{ shopMoney { amount currencyCode } }"
#define SHOPIFY_ADDRESS "{ name firstName lastName address1 address2 city province provinceCode " \
	"zip countryCodeV2 phone }"

/* the selection of a line item */
#define SHOPIFY_LINE_FIELDS \
	"fragment OmnichanLine on LineItem { id sku name quantity" \
	" originalUnitPriceSet " SHOPIFY_MONEY \
	" discountAllocations { allocatedAmountSet " SHOPIFY_MONEY " }" \
	" taxLines { priceSet " SHOPIFY_MONEY " } }"

/* the selection of an order, with its first line items */
#define SHOPIFY_ORDER_FIELDS \
	"fragment OmnichanOrder on Order { id legacyResourceId name email phone createdAt updatedAt" \
	" cancelledAt cancelReason test displayFinancialStatus displayFulfillmentStatus currencyCode" \
	" totalShippingPriceSet " SHOPIFY_MONEY " totalDiscountsSet " SHOPIFY_MONEY \
	" totalTaxSet " SHOPIFY_MONEY " totalPriceSet " SHOPIFY_MONEY \
	" customer { id email firstName lastName displayName phone }" \
	" shippingAddress " SHOPIFY_ADDRESS " billingAddress " SHOPIFY_ADDRESS \
	" shippingLines(first: 5) { nodes { title code originalPriceSet " SHOPIFY_MONEY " } }" \
	" lineItems(first: " CppAsString2(SHOPIFY_ORDER_LINES) ") { pageInfo { hasNextPage endCursor }" \
	" nodes { ...OmnichanLine } } } "

static const char ShopifyOrdersQuery[] =
"query OmnichanOrders($first: Int!, $after: String, $query: String) {"
" orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {"
" pageInfo { hasNextPage endCursor } nodes { ...OmnichanOrder } } } "
SHOPIFY_ORDER_FIELDS SHOPIFY_LINE_FIELDS;

static const char ShopifyOrderQuery[] =
"query OmnichanOrder($id: ID!) { order(id: $id) { ...OmnichanOrder } } "
SHOPIFY_ORDER_FIELDS SHOPIFY_LINE_FIELDS;

static const char ShopifyLinesQuery[] =
"query OmnichanOrderLines($id: ID!, $after: String) { order(id: $id) {"
" lineItems(first: " CppAsString2(SHOPIFY_LINES_PAGE) ", after: $after) {"
" pageInfo { hasNextPage endCursor } nodes { ...OmnichanLine } } } } "
SHOPIFY_LINE_FIELDS;

/*
 * ShopifyGraphql
 *		A GraphQL request: the query and its variables (the object is sent
 *		as it is).
 */
static void
ShopifyGraphql(ChannelConfig *ch, OutRequest *out, const char *query, OcJson *variables)
{
	OcJson	   *body = OcJsonNewObject();

	OcJsonSetString(body, "query", query);
	OcJsonSetCopy(body, "variables", variables);
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, psprintf("/admin/api/%s/graphql.json", ApiVersion(ch)));
	OutRequestHeader(out, "Content-Type: application/json");
	OutRequestHeader(out, "Accept: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
}

/* ShopifyOrderGid: an order's global id from a numeric id or a gid */
static char *
ShopifyOrderGid(const char *id)
{
	if (strncmp(id, "gid://", 6) == 0)
		return pstrdup(id);
	return psprintf("gid://shopify/Order/%s", id);
}

/*
 * ShopifyOrdersRequest
 *		The next page of the window's orders (after the state's cursor).
 */
static void
ShopifyOrdersRequest(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	OcJson	   *vars = OcJsonNewObject();
	const char *after = OcJsonString(OcJsonGet(state, "after"));

	OcJsonSetInt(vars, "first", SHOPIFY_ORDERS_PAGE);
	if (after != NULL)
		OcJsonSetString(vars, "after", after);
	OcJsonSetString(vars, "query",
					psprintf("updated_at:>='%s' AND updated_at:<'%s'",
							 OcJsonString(OcJsonGet(state, "since")),
							 OcJsonString(OcJsonGet(state, "until"))));
	OcJsonSetString(state, "phase", "orders");
	ShopifyGraphql(ch, out, ShopifyOrdersQuery, vars);
}

/*
 * ShopifyLinesRequest
 *		The next line items of the first order waiting for them.
 */
static void
ShopifyLinesRequest(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	OcJson	   *vars = OcJsonNewObject();
	OcJson	   *order = OcJsonAt(OcJsonGet(state, "waiting"), 0);

	OcJsonSetString(vars, "id", OcJsonString(OcJsonGet(order, "id")));
	OcJsonSetString(vars, "after", OcJsonString(OcJsonPath(order, "lineItems.pageInfo.endCursor")));
	OcJsonSetString(state, "phase", "lines");
	ShopifyGraphql(ch, out, ShopifyLinesQuery, vars);
}

/*
 * ShopifyBuildPull
 *		The first page of the window, or the one order asked for.
 */
static void
ShopifyBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = OcJsonString(OcJsonGet(state, "order_id"));

	if (order_id != NULL)
	{
		OcJson	   *vars = OcJsonNewObject();

		OcJsonSetString(vars, "id", ShopifyOrderGid(order_id));
		OcJsonSetString(state, "phase", "order");
		ShopifyGraphql(ch, out, ShopifyOrderQuery, vars);
		return;
	}
	ShopifyOrdersRequest(ch, state, out);
}

/* ShopifyMoney: the shop-currency amount of a MoneyBag, or NULL */
static char *
ShopifyMoney(OcJson *bag)
{
	return DecimalOf(OcJsonPath(bag, "shopMoney.amount"));
}

/* ShopifySetString: copy a non-empty string member, bounded */
static void
ShopifySetString(OcJson *dst, const char *key, const char *s, size_t max)
{
	if (s != NULL && *s != '\0')
		OcJsonSetString(dst, key, strlen(s) > max ? pnstrdup(s, max) : s);
}

/* ShopifyAddress: a MailingAddress as a normalized address */
static void
ShopifyAddress(OcJson *out, const char *key, OcJson *a)
{
	OcJson	   *addr;
	const char *name;
	const char *state;

	if (a == NULL || !OcJsonIsObject(a))
		return;
	addr = OcJsonSetObject(out, key);
	name = OcJsonString(OcJsonGet(a, "name"));
	if (name == NULL || *name == '\0')
	{
		const char *first = OcJsonString(OcJsonGet(a, "firstName"));
		const char *last = OcJsonString(OcJsonGet(a, "lastName"));

		if (first != NULL || last != NULL)
			name = psprintf("%s%s%s", first ? first : "", first && last ? " " : "", last ? last : "");
	}
	ShopifySetString(addr, "name", name, 255);
	ShopifySetString(addr, "street", OcJsonString(OcJsonGet(a, "address1")), 255);
	ShopifySetString(addr, "street2", OcJsonString(OcJsonGet(a, "address2")), 255);
	ShopifySetString(addr, "city", OcJsonString(OcJsonGet(a, "city")), 128);
	ShopifySetString(addr, "zip", OcJsonString(OcJsonGet(a, "zip")), 32);
	state = OcJsonString(OcJsonGet(a, "provinceCode"));
	if (state == NULL || *state == '\0')
		state = OcJsonString(OcJsonGet(a, "province"));
	ShopifySetString(addr, "state", state, 128);
	ShopifySetString(addr, "country", OcJsonString(OcJsonGet(a, "countryCodeV2")), 64);
	ShopifySetString(addr, "phone", OcJsonString(OcJsonGet(a, "phone")), 64);
}

/* ShopifyContains: s contains word, ignoring case */
static bool
ShopifyContains(const char *s, const char *word)
{
	size_t		n = strlen(word);

	for (; s != NULL && *s; s++)
		if (pg_strncasecmp(s, word, n) == 0)
			return true;
	return false;
}

/* ShopifySla: the delivery promise a shipping line's title or code names */
static void
ShopifySla(OcJson *out, OcJson *shipping_lines)
{
	OcJson	   *sla = OcJsonSetArray(out, "sla");
	int			i,
				n = OcJsonLength(shipping_lines);
	const char *flag = NULL;

	for (i = 0; i < n && i < 16 && flag == NULL; i++)
	{
		OcJson	   *sl = OcJsonAt(shipping_lines, i);
		const char *texts[2] = {OcJsonString(OcJsonGet(sl, "title")),
		OcJsonString(OcJsonGet(sl, "code"))};
		int			k;

		for (k = 0; k < 2 && flag == NULL; k++)
		{
			const char *t = texts[k];

			if (t == NULL)
				continue;
			if (ShopifyContains(t, "same day") || ShopifyContains(t, "same-day") ||
				ShopifyContains(t, "same_day"))
				flag = "same_day";
			else if (ShopifyContains(t, "next day") || ShopifyContains(t, "next-day") ||
					 ShopifyContains(t, "next_day") || ShopifyContains(t, "overnight"))
				flag = "next_day";
			else if (ShopifyContains(t, "two day") || ShopifyContains(t, "2 day") ||
					 ShopifyContains(t, "2-day") || ShopifyContains(t, "two-day") ||
					 ShopifyContains(t, "two_day"))
				flag = "two_day";
			else if (ShopifyContains(t, "express"))
				flag = "expedited";
		}
	}
	if (flag != NULL)
		OcJsonAppendString(sla, flag);
}

/* ShopifyImportable: a financial status with money received or promised */
static bool
ShopifyImportable(const char *financial)
{
	static const char *const ok[] = {"AUTHORIZED", "PAID", "PARTIALLY_PAID",
	"PARTIALLY_REFUNDED", "REFUNDED", NULL};
	int			i;

	for (i = 0; financial != NULL && ok[i] != NULL; i++)
		if (strcmp(financial, ok[i]) == 0)
			return true;
	return false;
}

/*
 * ShopifyNormalize
 *		One GraphQL Order (with all its line items) as a normalized order;
 *		false (with *error) when it is not an order at all, *skip when it is
 *		not to be imported.
 */
static bool
ShopifyNormalize(OcJson *o, OcJson *out, bool *skip, char **error)
{
	const char *gid = OcJsonString(OcJsonGet(o, "id"));
	const char *id = OcJsonString(OcJsonGet(o, "legacyResourceId"));
	const char *financial = OcJsonString(OcJsonGet(o, "displayFinancialStatus"));
	OcJson	   *cancelled_at = OcJsonGet(o, "cancelledAt");
	OcJson	   *lines = OcJsonPath(o, "lineItems.nodes");
	OcJson	   *customer = OcJsonGet(o, "customer");
	OcJson	   *test = OcJsonGet(o, "test");
	OcJson	   *buyer,
			   *totals,
			   *outlines;
	const char *name;
	const char *s;
	char	   *items = NULL;
	bool		cancelled;
	int			i,
				n = OcJsonLength(lines);

	*skip = false;
	if (!OcJsonIsObject(o) || gid == NULL || strncmp(gid, "gid://shopify/Order/", 20) != 0 ||
		strlen(gid) > 255 || n < 0)
	{
		*error = "an order without a Shopify order id or lineItems";
		return false;
	}
	if (id == NULL)
		id = gid + 20;
	if (*id == '\0' || strlen(id) > 64)
	{
		*error = "an order with an invalid legacyResourceId";
		return false;
	}
	cancelled = (cancelled_at != NULL && OcJsonString(cancelled_at) != NULL) ||
		(financial != NULL && strcmp(financial, "REFUNDED") == 0);
	if (test != NULL && !OcJsonIsNull(test) && strcmp(OcJsonDump(test), "true") == 0)
	{
		*skip = true;			/* a test order (bogus gateway) */
		return true;
	}
	if (!cancelled && !ShopifyImportable(financial))
	{
		*skip = true;			/* PENDING, EXPIRED, VOIDED: no money */
		return true;
	}

	OcJsonSetString(out, "external_id", id);
	ShopifySetString(out, "status", OcJsonString(OcJsonGet(o, "displayFulfillmentStatus")), 64);
	OcJsonSetBool(out, "cancelled", cancelled);
	ShopifySetString(out, "ordered_at", OcJsonString(OcJsonGet(o, "createdAt")), 64);
	ShopifySetString(out, "currency", OcJsonString(OcJsonGet(o, "currencyCode")), 8);

	buyer = OcJsonSetObject(out, "buyer");
	ShopifySetString(buyer, "id", OcJsonString(OcJsonGet(customer, "id")), 255);
	name = OcJsonString(OcJsonGet(customer, "displayName"));
	if (name == NULL || *name == '\0')
		name = OcJsonString(OcJsonPath(o, "billingAddress.name"));
	if (name == NULL || *name == '\0')
		name = OcJsonString(OcJsonPath(o, "shippingAddress.name"));
	ShopifySetString(buyer, "name", name, 255);
	s = OcJsonString(OcJsonGet(customer, "email"));
	ShopifySetString(buyer, "email", s && *s ? s : OcJsonString(OcJsonGet(o, "email")), 254);
	s = OcJsonString(OcJsonGet(customer, "phone"));
	ShopifySetString(buyer, "phone", s && *s ? s : OcJsonString(OcJsonGet(o, "phone")), 64);

	ShopifyAddress(out, "shipping_address", OcJsonGet(o, "shippingAddress"));
	ShopifyAddress(out, "billing_address", OcJsonGet(o, "billingAddress"));
	ShopifySla(out, OcJsonPath(o, "shippingLines.nodes"));

	outlines = OcJsonSetArray(out, "lines");
	for (i = 0; i < n; i++)
	{
		OcJson	   *li = OcJsonAt(lines, i);
		OcJson	   *l = OcJsonAppendObject(outlines);
		OcJson	   *allocs = OcJsonGet(li, "discountAllocations");
		OcJson	   *taxes = OcJsonGet(li, "taxLines");
		char	   *unit = ShopifyMoney(OcJsonGet(li, "originalUnitPriceSet"));
		char	   *tax = NULL;
		char	   *discount = NULL;
		int64		qty = 0;
		int			k;

		if (!OcJsonInt(OcJsonGet(li, "quantity"), &qty) || qty <= 0 || qty > 1000000 ||
			unit == NULL)
		{
			*error = psprintf("order %s: line %d has no valid quantity or originalUnitPriceSet",
							  id, i + 1);
			return false;
		}
		ShopifySetString(l, "external_id", OcJsonString(OcJsonGet(li, "id")), 255);
		ShopifySetString(l, "sku", OcJsonString(OcJsonGet(li, "sku")), 255);
		OcJsonSetInt(l, "quantity", qty);
		OcJsonSetString(l, "unit_price", unit);
		for (k = 0; k < OcJsonLength(taxes); k++)
		{
			char	   *v = ShopifyMoney(OcJsonGet(OcJsonAt(taxes, k), "priceSet"));

			if (v != NULL)
				tax = DecimalAdd(tax, v);
		}
		for (k = 0; k < OcJsonLength(allocs); k++)
		{
			char	   *v = ShopifyMoney(OcJsonGet(OcJsonAt(allocs, k), "allocatedAmountSet"));

			if (v != NULL)
				discount = DecimalAdd(discount, v);
		}
		if (tax != NULL)
			OcJsonSetString(l, "tax", tax);
		if (discount != NULL)
			OcJsonSetString(l, "discount", discount);
		items = DecimalAdd(items, DecimalMulInt(unit, qty));
	}

	totals = OcJsonSetObject(out, "totals");
	if (items != NULL)
		OcJsonSetString(totals, "items", items);
	if ((s = ShopifyMoney(OcJsonGet(o, "totalShippingPriceSet"))) != NULL)
		OcJsonSetString(totals, "shipping", s);
	if ((s = ShopifyMoney(OcJsonGet(o, "totalDiscountsSet"))) != NULL)
		OcJsonSetString(totals, "discount", s);
	if ((s = ShopifyMoney(OcJsonGet(o, "totalTaxSet"))) != NULL)
		OcJsonSetString(totals, "tax", s);
	if ((s = ShopifyMoney(OcJsonGet(o, "totalPriceSet"))) != NULL)
		OcJsonSetString(totals, "total", s);

	OcJsonSetCopy(out, "raw", o);
	return true;
}

/*
 * ShopifyEmit
 *		Normalize one complete order into the answer's orders (unless it is
 *		not imported).
 */
static bool
ShopifyEmit(OcJson *o, OcJson *orders, char **error)
{
	OcJson	   *out = OcJsonNewObject();
	bool		skip;

	if (!ShopifyNormalize(o, out, &skip, error))
		return false;
	if (!skip)
		OcJsonAppendCopy(orders, out);
	return true;
}

/* ShopifyHasMoreLines: the order's lineItems page says more follow */
static bool
ShopifyHasMoreLines(OcJson *order)
{
	OcJson	   *more = OcJsonPath(order, "lineItems.pageInfo.hasNextPage");

	return more != NULL && strcmp(OcJsonDump(more), "true") == 0 &&
		OcJsonString(OcJsonPath(order, "lineItems.pageInfo.endCursor")) != NULL;
}

/*
 * ShopifyTake
 *		An order of an answer: stored at once when its line items are all
 *		there, else kept in the state's "waiting" list until they are.
 */
static bool
ShopifyTake(OcJson *order, OcJson *state, OcJson *orders, char **error)
{
	if (!OcJsonIsObject(order) || OcJsonLength(OcJsonPath(order, "lineItems.nodes")) < 0)
	{
		*error = "Shopify answered an order without lineItems";
		return false;
	}
	if (ShopifyHasMoreLines(order))
	{
		OcJson	   *waiting = OcJsonGet(state, "waiting");

		if (waiting == NULL)
			waiting = OcJsonSetArray(state, "waiting");
		OcJsonAppendCopy(waiting, order);
		return true;
	}
	return ShopifyEmit(order, orders, error);
}

/*
 * ShopifyNext
 *		What follows in the chain: the lines of a waiting order, the next
 *		orders page, or nothing.
 */
static bool
ShopifyNext(ChannelConfig *ch, OcJson *state, OutRequest *next)
{
	OcJson	   *more = OcJsonGet(state, "more");

	if (OcJsonLength(OcJsonGet(state, "waiting")) > 0)
	{
		ShopifyLinesRequest(ch, state, next);
		return true;
	}
	if (OcJsonGet(state, "order_id") == NULL && more != NULL &&
		strcmp(OcJsonDump(more), "true") == 0)
	{
		ShopifyOrdersRequest(ch, state, next);
		return true;
	}
	return false;
}

/*
 * ShopifyAnswerError
 *		A GraphQL answer that carries no data: its "errors", or why it is
 *		unreadable.  NULL when the answer has data.
 */
static char *
ShopifyAnswerError(HttpRequest *req, OcJson *doc, const char *perr, const char *field)
{
	const char *code;
	char	   *msg;

	if (doc == NULL)
		return psprintf("Shopify answered with unreadable JSON: %s", perr);
	msg = RequestErrorMessage(doc, &code);
	if (msg != NULL)
		return msg;
	/* present, possibly null (an order that does not exist) */
	if (OcJsonGet(OcJsonGet(doc, "data"), field) == NULL)
		return psprintf("Shopify's answer (HTTP %d) has no data.%s", req->status, field);
	return NULL;
}

/*
 * ShopifyParsePull
 *		One answer of the chain: an orders page, one order (fetch_order), or
 *		more line items of a waiting order.
 */
static bool
ShopifyParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
				 OutRequest *next, char **error)
{
	char	   *perr = NULL;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	const char *phase = OcJsonString(OcJsonGet(state, "phase"));

	if (phase == NULL)
		phase = OcJsonGet(state, "order_id") != NULL ? "order" : "orders";

	if (strcmp(phase, "orders") == 0)
	{
		OcJson	   *conn;
		OcJson	   *nodes;
		OcJson	   *has_next;
		const char *cursor;
		int			i,
					n;

		if ((*error = ShopifyAnswerError(req, doc, perr, "orders")) != NULL)
			return false;
		conn = OcJsonPath(doc, "data.orders");
		nodes = OcJsonGet(conn, "nodes");
		n = OcJsonLength(nodes);
		has_next = OcJsonPath(conn, "pageInfo.hasNextPage");
		cursor = OcJsonString(OcJsonPath(conn, "pageInfo.endCursor"));
		if (n < 0 || n > 250 || has_next == NULL)
		{
			*error = "Shopify's orders page has no nodes or pageInfo";
			return false;
		}
		for (i = 0; i < n; i++)
			if (!ShopifyTake(OcJsonAt(nodes, i), state, orders, error))
				return false;
		if (strcmp(OcJsonDump(has_next), "true") == 0 && cursor != NULL && n > 0)
		{
			OcJsonSetString(state, "after", cursor);
			OcJsonSetBool(state, "more", true);
		}
		else
			OcJsonSetBool(state, "more", false);
		return ShopifyNext(ch, state, next);
	}
	else if (strcmp(phase, "order") == 0)
	{
		OcJson	   *order;

		if ((*error = ShopifyAnswerError(req, doc, perr, "order")) != NULL)
			return false;
		order = OcJsonPath(doc, "data.order");
		if (order == NULL || OcJsonIsNull(order))
		{
			*error = psprintf("Shopify has no order %s",
							  OcJsonString(OcJsonGet(state, "order_id")));
			return false;
		}
		if (!ShopifyTake(order, state, orders, error))
			return false;
		return ShopifyNext(ch, state, next);
	}
	else
	{
		OcJson	   *waiting = OcJsonGet(state, "waiting");
		OcJson	   *order = OcJsonAt(waiting, 0);
		OcJson	   *page;
		OcJson	   *nodes;
		OcJson	   *have;
		OcJson	   *rest;
		int			i,
					n,
					count = OcJsonLength(waiting);

		if ((*error = ShopifyAnswerError(req, doc, perr, "order")) != NULL)
			return false;
		page = OcJsonPath(doc, "data.order.lineItems");
		nodes = OcJsonGet(page, "nodes");
		n = OcJsonLength(nodes);
		have = OcJsonPath(order, "lineItems.nodes");
		if (order == NULL || have == NULL || n < 0 || n > 250 ||
			OcJsonPath(page, "pageInfo.hasNextPage") == NULL)
		{
			*error = "Shopify's line items page has no nodes or pageInfo";
			return false;
		}
		if (OcJsonLength(have) + n > SHOPIFY_MAX_LINES)
		{
			*error = psprintf("Shopify order %s has more than %d line items",
							  OcJsonString(OcJsonGet(order, "id")), SHOPIFY_MAX_LINES);
			return false;
		}
		for (i = 0; i < n; i++)
			OcJsonAppendCopy(have, OcJsonAt(nodes, i));
		OcJsonSetCopy(OcJsonGet(order, "lineItems"), "pageInfo", OcJsonGet(page, "pageInfo"));
		if (ShopifyHasMoreLines(order) && n > 0)
			return ShopifyNext(ch, state, next);

		/* complete: store it, and take it off the waiting list */
		if (!ShopifyEmit(order, orders, error))
			return false;
		rest = OcJsonNewArray();
		for (i = 1; i < count; i++)
			OcJsonAppendCopy(rest, OcJsonAt(waiting, i));
		OcJsonSetCopy(state, "waiting", rest);
		return ShopifyNext(ch, state, next);
	}
}

/*
 * ShopifyBuildCancel
 *		The orderCancel mutation for an order the merchant cancelled in
 *		Odoo: refund to the original payment method, restock, notify.
 */
static bool
ShopifyBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error)
{
	const char *gid = OcJsonString(OcJsonPath(order, "raw.id"));
	const char *ext = OcJsonString(OcJsonGet(order, "external_id"));
	bool		refund_method = strcmp(ApiVersion(ch), "2025-07") >= 0;
	OcJson	   *vars = OcJsonNewObject();

	if (gid == NULL && ext == NULL)
	{
		*error = "the order has no Shopify id";
		return false;
	}
	OcJsonSetString(vars, "orderId", gid ? gid : ShopifyOrderGid(ext));
	OcJsonSetString(vars, "reason", "OTHER");
	OcJsonSetBool(vars, "restock", true);
	OcJsonSetBool(vars, "notifyCustomer", true);
	OcJsonSetString(vars, "staffNote", "Cancelled by the merchant in Odoo (omnichan)");
	if (refund_method)
		OcJsonSetBool(OcJsonSetObject(vars, "refundMethod"), "originalPaymentMethodsRefund", true);
	else
		OcJsonSetBool(vars, "refund", true);
	ShopifyGraphql(ch, out, refund_method
				   ? "mutation OmnichanCancel($orderId: ID!, $reason: OrderCancelReason!,"
				   " $refundMethod: OrderCancelRefundMethodInput!, $restock: Boolean!,"
				   " $notifyCustomer: Boolean, $staffNote: String) {"
				   " orderCancel(orderId: $orderId, reason: $reason, refundMethod: $refundMethod,"
				   " restock: $restock, notifyCustomer: $notifyCustomer, staffNote: $staffNote) {"
				   " job { id done } orderCancelUserErrors { code field message } } }"
				   : "mutation OmnichanCancel($orderId: ID!, $reason: OrderCancelReason!,"
				   " $refund: Boolean!, $restock: Boolean!, $notifyCustomer: Boolean,"
				   " $staffNote: String) {"
				   " orderCancel(orderId: $orderId, reason: $reason, refund: $refund,"
				   " restock: $restock, notifyCustomer: $notifyCustomer, staffNote: $staffNote) {"
				   " job { id done } orderCancelUserErrors { code field message } } }",
				   vars);
	out->operation = "order_cancel";
	return true;
}

/*
 * ShopifyParseCancel
 *		orderCancel's answer: a job = accepted; orderCancelUserErrors = a
 *		refusal (unless the order is already cancelled).
 */
static bool
ShopifyParseCancel(ChannelConfig *ch, HttpRequest *req, char **error)
{
	char	   *perr = NULL;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	OcJson	   *result;
	OcJson	   *errors;

	if ((*error = ShopifyAnswerError(req, doc, perr, "orderCancel")) != NULL)
		return false;
	result = OcJsonPath(doc, "data.orderCancel");
	errors = OcJsonGet(result, "orderCancelUserErrors");
	if (OcJsonLength(errors) > 0)
	{
		OcJson	   *e = OcJsonAt(errors, 0);
		const char *msg = OcJsonString(OcJsonGet(e, "message"));

		if (msg != NULL && ShopifyContains(msg, "already") && ShopifyContains(msg, "cancel"))
			return true;
		*error = UserErrorMessage(e);
		return false;
	}
	if (result == NULL || OcJsonIsNull(result))
	{
		*error = "Shopify answered orderCancel without a result";
		return false;
	}
	return true;
}
