/*-------------------------------------------------------------------------
 *
 * etsy.c
 *	  Etsy connector: Open API v3.
 *
 * Stock push: Etsy has no quantity-only update; a listing's inventory is
 * replaced as a whole (updateListingInventory).  So a push is two requests
 * per Etsy listing, through the next_step hook:
 *
 *	1. GET /v3/application/listings/{listing_id}/inventory
 *	   (getListingInventory: products, offerings, property values and the
 *	   *_on_property arrays);
 *	2. PUT /v3/application/listings/{listing_id}/inventory with every
 *	   product of that answer, where only the quantities of the offerings of
 *	   the pushed products change.  Everything else is sent back as read:
 *	   SKUs, property values, is_enabled, readiness_state_id, prices
 *	   (converted from the GET's Money object {amount, divisor, currency_code}
 *	   to the float amount / divisor the PUT takes), price_on_property,
 *	   quantity_on_property, sku_on_property, readiness_state_on_property.
 *	   The read-only fields of the GET (product_id, offering_id, is_deleted,
 *	   scale_name) are not sent: the PUT's schema has none of them.
 *
 * Grouping: the omnichan listings of one channel are Etsy products (one
 * variation each: external {"listing_id", "product_id"}).  push_group =
 * "listing_id", so one job carries the due products of one Etsy listing
 * (up to ETSY_BATCH of them), and a listing with a push in flight waits for
 * it: two read-modify-writes of one inventory never overlap.  Requests:
 * 2 per Etsy listing with changes (1 when the GET shows the quantities
 * already right, or no product matched).
 *
 * Products are found by the listing's product_id, else by its SKU: Etsy
 * gives an inventory's products and offerings new ids on every update
 * (etsy/open-api#523, Etsy staff), so after the first push only the SKU
 * still identifies a product.  Products without SKUs can be pushed only
 * while their linked product_id is current.
 *
 * Errors are per Etsy listing (all or nothing): {"error": "..."}, kept on
 * every pushed product of that listing.
 *
 * Auth: OAuth 2.0 refresh-token grant at the channel's token endpoint (form
 * grant_type=refresh_token, client_id=<keystring>, refresh_token) answering
 * {access_token, token_type, expires_in, refresh_token}.  Etsy rotates
 * refresh tokens: the answer's refresh_token replaces the one used, which
 * stops working (stated by third-party client documentation, not by the
 * reference: unverified), so it is handed to the worker to store
 * (rotated_secret).  Every call carries "x-api-key: keystring:shared_secret"
 * (the spec's api_key scheme) and "Authorization: Bearer <access token>",
 * both added at send time only.
 *
 * Known limit: between the GET and the PUT (normally milliseconds, longer
 * when the PUT is throttled and retried) a sale on Etsy may lower another
 * product's quantity; the PUT writes back the quantity read.  Etsy offers
 * no conditional update to prevent it.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "../connector.h"

/* most products of one Etsy listing per job (the others wait for it) */
#define ETSY_BATCH	100

static void EtsyBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static bool EtsyNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
						 PushItem *items, int n, OutRequest *next);
static void EtsyParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static void EtsyBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req);
static bool EtsyParseToken(HttpRequest *req, char **token, int *expires_in, char **error);
static bool EtsyRotatedSecret(HttpRequest *req, const char **key, char **value);
static void EtsyAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);

const Connector EtsyConnector = {
	.kind = "etsy",
	.push_batch = ETSY_BATCH,
	.build_push = EtsyBuildPush,
	.parse_push = EtsyParsePush,
	.next_step = EtsyNextStep,
	.needs_token = true,
	.build_token = EtsyBuildToken,
	.parse_token = EtsyParseToken,
	.authorize = EtsyAuthorize,
	.push_group = "listing_id",
	.rotated_secret = EtsyRotatedSecret,
};

/* what the GET answer means for a push: the PUT to send, per-item outcomes */
typedef struct EtsyPlan
{
	OcJson	   *put;			/* the PUT body, NULL = none needed or possible */
	char	  **errors;			/* per item: NULL = found (and set by the PUT) */
	char	   *fatal;			/* the answer cannot be used at all */
	ItemErrorClass fatal_class;
} EtsyPlan;

/* EtsyListingId: the Etsy listing id of an item, 0 if missing */
static int64
EtsyListingId(PushItem *item)
{
	int64		id = 0;

	if (!OcJsonInt(OcJsonGet(item->external, "listing_id"), &id))
		return 0;
	return id;
}

/* EtsyInventoryUrl: the inventory resource of the items' Etsy listing */
static char *
EtsyInventoryUrl(ChannelConfig *ch, PushItem *items)
{
	return JoinUrl(ch->endpoint,
				   psprintf("/v3/application/listings/" INT64_FORMAT "/inventory",
							EtsyListingId(&items[0])));
}

/* EtsyIsDeleted: a product or offering the GET marks deleted */
static bool
EtsyIsDeleted(OcJson *value)
{
	OcJson	   *d = OcJsonGet(value, "is_deleted");

	return d != NULL && strcmp(OcJsonDump(d), "true") == 0;
}

/*
 * EtsyBuildPush
 *		Step 1: read the inventory of the items' Etsy listing.
 */
static void
EtsyBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	out->operation = "stock_push";
	out->method = "GET";
	out->url = EtsyInventoryUrl(ch, items);
	OutRequestHeader(out, "Accept: application/json");
}

/*
 * EtsyCopyKeys
 *		Copies the listed keys of src that are present into dst.
 */
static void
EtsyCopyKeys(OcJson *dst, OcJson *src, const char *const *keys)
{
	for (; *keys != NULL; keys++)
	{
		OcJson	   *v = OcJsonGet(src, *keys);

		if (v != NULL)
			OcJsonSetCopy(dst, *keys, v);
	}
}

/*
 * EtsyMakePlan
 *		Matches the items with the products of a getListingInventory answer
 *		(product_id first, then SKU) and builds the PUT body: every product
 *		as read, the matched ones with their new quantity.  No PUT when no
 *		item matched or every matched quantity is already right.
 */
static EtsyPlan
EtsyMakePlan(HttpRequest *req, PushItem *items, int n)
{
	static const char *const pv_keys[] = {"property_id", "property_name", "scale_id",
	"value_ids", "values", NULL};
	static const char *const top_keys[] = {"price_on_property", "quantity_on_property",
	"sku_on_property", "readiness_state_on_property", NULL};
	EtsyPlan	plan = {NULL, palloc0(sizeof(char *) * n), NULL, ITEM_ERROR_RETRY};
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	OcJson	   *products = OcJsonGet(doc, "products");
	int			nproducts = OcJsonLength(products);
	int		   *owner;
	bool		change = false;
	bool		matched = false;
	OcJson	   *out_products;
	int			i,
				k;

	if (doc == NULL || nproducts < 0)
	{
		plan.fatal = psprintf("Etsy answered HTTP %d with an unreadable inventory (%s)",
							  req->status, doc == NULL ? error : "no \"products\" array");
		return plan;
	}

	/* owner[k]: the item whose quantity product k gets, -1 = none */
	owner = palloc(sizeof(int) * Max(nproducts, 1));
	for (k = 0; k < nproducts; k++)
		owner[k] = -1;
	for (i = 0; i < n; i++)
	{
		int64		want = 0;
		bool		found = false;

		if (OcJsonInt(OcJsonGet(items[i].external, "product_id"), &want))
			for (k = 0; k < nproducts && !found; k++)
			{
				OcJson	   *p = OcJsonAt(products, k);
				int64		id = 0;

				if (owner[k] < 0 && !EtsyIsDeleted(p) &&
					OcJsonInt(OcJsonGet(p, "product_id"), &id) && id == want)
				{
					owner[k] = i;
					found = true;
				}
			}
		/* ids change on every update: the SKU (every product carrying it) */
		if (!found && items[i].sku != NULL && items[i].sku[0] != '\0')
			for (k = 0; k < nproducts; k++)
			{
				OcJson	   *p = OcJsonAt(products, k);
				const char *sku = OcJsonString(OcJsonGet(p, "sku"));

				if (owner[k] < 0 && !EtsyIsDeleted(p) && sku != NULL &&
					strcmp(sku, items[i].sku) == 0)
				{
					owner[k] = i;
					found = true;
				}
			}
		if (!found)
			plan.errors[i] = psprintf("Etsy listing " INT64_FORMAT " has no product " INT64_FORMAT
									  " nor one with SKU \"%s\" in its inventory",
									  EtsyListingId(&items[i]), want, items[i].sku ? items[i].sku : "");
		else
			matched = true;
	}
	if (!matched)
		return plan;

	/* the complete replacement, quantities of the matched products changed */
	plan.put = OcJsonNewObject();
	out_products = OcJsonSetArray(plan.put, "products");
	for (k = 0; k < nproducts; k++)
	{
		OcJson	   *p = OcJsonAt(products, k);
		OcJson	   *q;
		OcJson	   *pvs = OcJsonGet(p, "property_values");
		OcJson	   *offerings = OcJsonGet(p, "offerings");
		OcJson	   *out_pvs;
		OcJson	   *out_offerings;
		int			j;

		if (EtsyIsDeleted(p))
			continue;
		q = OcJsonAppendObject(out_products);
		if (OcJsonGet(p, "sku") != NULL)
			OcJsonSetCopy(q, "sku", OcJsonGet(p, "sku"));
		out_pvs = OcJsonSetArray(q, "property_values");
		for (j = 0; j < OcJsonLength(pvs); j++)
			EtsyCopyKeys(OcJsonAppendObject(out_pvs), OcJsonAt(pvs, j), pv_keys);
		out_offerings = OcJsonSetArray(q, "offerings");
		for (j = 0; j < OcJsonLength(offerings); j++)
		{
			OcJson	   *o = OcJsonAt(offerings, j);
			OcJson	   *r;
			int64		amount = 0,
						divisor = 0,
						qty = 0;

			if (EtsyIsDeleted(o))
				continue;
			if (!OcJsonInt(OcJsonPath(o, "price.amount"), &amount) ||
				!OcJsonInt(OcJsonPath(o, "price.divisor"), &divisor) || divisor <= 0)
			{
				plan.fatal = psprintf("Etsy's inventory has an offering without a usable price "
									  "(product %d of %d): not sent back", k + 1, nproducts);
				plan.fatal_class = ITEM_ERROR_FIX;
				plan.put = NULL;
				return plan;
			}
			r = OcJsonAppendObject(out_offerings);
			/* the PUT takes a float equal to amount / divisor (spec) */
			OcJsonSetNumber(r, "price", (double) amount / (double) divisor);
			if (owner[k] >= 0)
			{
				if (!OcJsonInt(OcJsonGet(o, "quantity"), &qty) || qty != items[owner[k]].quantity)
					change = true;
				OcJsonSetInt(r, "quantity", items[owner[k]].quantity);
			}
			else if (OcJsonGet(o, "quantity") != NULL)
				OcJsonSetCopy(r, "quantity", OcJsonGet(o, "quantity"));
			if (OcJsonGet(o, "is_enabled") != NULL)
				OcJsonSetCopy(r, "is_enabled", OcJsonGet(o, "is_enabled"));
			/* required by the PUT, nullable: null when the GET has none */
			if (OcJsonGet(o, "readiness_state_id") != NULL)
				OcJsonSetCopy(r, "readiness_state_id", OcJsonGet(o, "readiness_state_id"));
			else
				OcJsonSetString(r, "readiness_state_id", NULL);
		}
	}
	EtsyCopyKeys(plan.put, doc, top_keys);
	if (!change)
		plan.put = NULL;		/* Etsy already shows these quantities */
	return plan;
}

/*
 * EtsyNextStep
 *		After the GET: queue the PUT (step 2), unless nothing is to be
 *		written.  Items not found are marked in the payload, for
 *		EtsyParsePush to report after the PUT.
 */
static bool
EtsyNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
			 PushItem *items, int n, OutRequest *next)
{
	int64		step = 1;
	EtsyPlan	plan;
	OcJson	   *plist = OcJsonGet(payload, "items");
	int			i;

	(void) OcJsonInt(OcJsonGet(payload, "step"), &step);
	if (step != 1 || strcmp(req->method, "GET") != 0)
		return false;
	plan = EtsyMakePlan(req, items, n);
	if (plan.put == NULL)
		return false;			/* EtsyParsePush reads the GET's answer */

	OcJsonSetInt(payload, "step", 2);
	for (i = 0; i < n && i < OcJsonLength(plist); i++)
		if (plan.errors[i] != NULL)
			OcJsonSetString(OcJsonAt(plist, i), "error", plan.errors[i]);
	next->operation = "stock_push";
	next->method = "PUT";
	next->url = EtsyInventoryUrl(ch, items);
	OutRequestHeader(next, "Content-Type: application/json");
	OutRequestHeader(next, "Accept: application/json");
	next->body = OcJsonDump(plan.put);
	next->body_len = strlen(next->body);
	return true;
}

/* EtsyErrorClass: how an Etsy HTTP status is handled */
static ItemErrorClass
EtsyErrorClass(int status)
{
	if (status == 401 || status == 403)
		return ITEM_ERROR_CREDENTIALS;
	if (status == 429 || status >= 500 || status == 0)
		return ITEM_ERROR_RETRY;
	return ITEM_ERROR_FIX;
}

/*
 * EtsyParsePush
 *		A failed GET or PUT: Etsy's {"error": "..."} on every item (all or
 *		nothing per listing).  A PUT that succeeded: the items found are set,
 *		the others keep the reason recorded after the GET.  A GET that needed
 *		no PUT: quantities already right, or products not found.
 */
static void
EtsyParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	int			i;

	if (req->status < 200 || req->status >= 300)
	{
		char	   *error;
		OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
		const char *msg = OcJsonString(OcJsonGet(doc, "error"));

		if (msg == NULL)
			return;				/* the worker's own message */
		for (i = 0; i < n; i++)
		{
			items[i].error = psprintf("Etsy %d: %s", req->status, msg);
			items[i].error_class = EtsyErrorClass(req->status);
		}
		return;
	}

	if (strcmp(req->method, "PUT") == 0)
	{
		char	   *error;
		OcJson	   *payload = req->payload
			? OcJsonParse(req->payload, strlen(req->payload), &error) : NULL;
		OcJson	   *plist = OcJsonGet(payload, "items");

		for (i = 0; i < n; i++)
		{
			const char *why = OcJsonString(OcJsonGet(OcJsonAt(plist, i), "error"));

			if (why != NULL)
			{
				items[i].error = pstrdup(why);
				items[i].error_class = ITEM_ERROR_FIX;
			}
			else
				items[i].ok = true;
		}
		return;
	}

	/* the GET ended the push */
	{
		EtsyPlan	plan = EtsyMakePlan(req, items, n);

		for (i = 0; i < n; i++)
		{
			if (plan.fatal != NULL)
			{
				items[i].error = plan.fatal;
				items[i].error_class = plan.fatal_class;
			}
			else if (plan.errors[i] != NULL)
			{
				items[i].error = plan.errors[i];
				items[i].error_class = ITEM_ERROR_FIX;
			}
			else if (plan.put == NULL)
				items[i].ok = true; /* Etsy already shows this quantity */
			else
			{
				items[i].error = "the inventory update was not sent";
				items[i].error_class = ITEM_ERROR_RETRY;
			}
		}
	}
}

/*
 * EtsyBuildToken
 *		Refresh-token grant, form body; the keystring is the client id.
 */
static void
EtsyBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req)
{
	char	   *body = psprintf("grant_type=refresh_token&client_id=%s&refresh_token=%s",
								UrlEncode(SecretString(secrets, "keystring")),
								UrlEncode(SecretString(secrets, "refresh_token")));

	HttpAddHeader(req, "Content-Type: application/x-www-form-urlencoded");
	HttpAddHeader(req, "Accept: application/json");
	HttpSetBody(req, body, strlen(body));
}

/* EtsyParseToken: {"access_token", "token_type", "expires_in", "refresh_token"} */
static bool
EtsyParseToken(HttpRequest *req, char **token, int *expires_in, char **error)
{
	static const char *const errors[] = {"error_description", "error", NULL};

	return ParseAccessToken(req, "Etsy", 3600, errors, token, expires_in, error);
}

/* EtsyRotatedSecret: the refresh token that replaces the one just used */
static bool
EtsyRotatedSecret(HttpRequest *req, const char **key, char **value)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	const char *t = OcJsonString(OcJsonGet(doc, "refresh_token"));

	if (t == NULL || *t == '\0')
		return false;
	*key = "refresh_token";
	*value = pstrdup(t);
	return true;
}

/* EtsyAuthorize: x-api-key keystring:shared_secret, Bearer access token */
static void
EtsyAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	HttpAddHeader(req, "x-api-key: %s:%s", SecretString(secrets, "keystring"),
				  SecretString(secrets, "shared_secret"));
	HttpAddHeader(req, "Authorization: Bearer %s", token);
}
