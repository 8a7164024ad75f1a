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

const Connector ShopifyConnector = {
	.kind = "shopify",
	.push_batch = SHOPIFY_BATCH,
	.build_push = ShopifyBuildPush,
	.parse_push = ShopifyParsePush,
	.next_step = ShopifyNextStep,
	.throttled = ShopifyThrottled,
	.needs_token = false,
	.authorize = ShopifyAuthorize,
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
