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
 * Order pull: getShopReceipts, GET /v3/application/shops/{shop_id}/receipts
 * ?min_last_modified=&max_last_modified=&sort_on=updated&sort_order=asc
 * &limit=100&offset= (unix seconds; both bounds inclusive, so a receipt
 * modified in the window's last second may be read twice: harmless).
 * Pages follow one another until a short page; to be immune to receipts
 * that move in the list while it is read (a receipt updated meanwhile
 * leaves the window, which would shift every later one by one place), each
 * next page starts at the last receipt's update_timestamp, with the offset
 * of the receipts of that second already read (state "min", "skip").
 * fetch_order: getShopReceipt, GET .../receipts/{receipt_id}.
 *
 * What is imported: receipts not paid (is_paid false: status "open" or
 * "payment processing") are skipped unless cancelled.  "status" = Etsy's
 * status verbatim (paid, completed, open, payment processing, canceled,
 * fully refunded, partially refunded); "cancelled" = status canceled or
 * fully refunded.  Money is Etsy's {amount, divisor, currency_code}, made a
 * decimal exactly (DecimalScaled): lines = the transactions (sku,
 * quantity, unit_price = price, external_id = transaction_id; rows of
 * quantity 0 are left out); totals: items = total_price (price x quantity
 * of the listings), shipping = total_shipping_cost, discount = discount_amt
 * (coupons; free-shipping coupons are not in it), tax = total_tax_cost +
 * total_vat_cost, gift_wrap = gift_wrap_price, total = grandtotal.
 * buyer: id = buyer_user_id, name = the recipient's name, email =
 * buyer_email (null unless Etsy granted access); the shipping address is
 * name, first_line, second_line, city, state, zip, country_iso (ISO
 * alpha-2).  gift_message when is_gift.  sla: a transaction's
 * shipping_upgrade or shipping_method naming next-day / overnight delivery
 * (next_day) or express (expedited).
 *
 * Cancellation by the merchant: Etsy's Open API v3 has no endpoint to
 * cancel a receipt (MARKETPLACE_APIS.md section 6; cancellation is done in
 * Etsy's shop manager): build_cancel is NULL, and the core records that
 * the cancellation could not be reported.
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
static void EtsyBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool EtsyParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
						  OutRequest *next, char **error);

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
	.pull_operation = "order_pull",
	.pull_lag_s = 0,
	.build_pull = EtsyBuildPull,
	.parse_pull = EtsyParsePull,
	/* no build_cancel: the Open API has no seller cancellation */
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

/*
 * Order pull.
 */
#define ETSY_RECEIPTS_LIMIT	100

/* EtsyShopId: the channel's shop_id setting (0 when missing) */
static int64
EtsyShopId(ChannelConfig *ch)
{
	int64		id = 0;

	(void) OcJsonInt(OcJsonGet(ch->settings, "shop_id"), &id);
	return id;
}

/*
 * EtsyReceiptsRequest
 *		One page of getShopReceipts from the state's "min" second, skipping
 *		the "skip" receipts of that second already read.
 */
static void
EtsyReceiptsRequest(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	int64		min = 0,
				max = 0,
				skip = 0;

	(void) OcJsonInt(OcJsonGet(state, "min"), &min);
	(void) OcJsonInt(OcJsonGet(state, "until_epoch"), &max);
	(void) OcJsonInt(OcJsonGet(state, "skip"), &skip);
	/* the API refuses times before 2000-01-01 */
	min = Max(min, INT64CONST(946684800));
	max = Max(max, min);
	out->method = "GET";
	out->url = psprintf("%s?min_last_modified=" INT64_FORMAT "&max_last_modified=" INT64_FORMAT
						"&sort_on=updated&sort_order=asc&limit=%d&offset=" INT64_FORMAT,
						JoinUrl(ch->endpoint,
								psprintf("/v3/application/shops/" INT64_FORMAT "/receipts",
										 EtsyShopId(ch))),
						min, max, ETSY_RECEIPTS_LIMIT, skip);
	OutRequestHeader(out, "Accept: application/json");
}

/*
 * EtsyBuildPull
 *		The first page of the window, or the one receipt asked for.
 */
static void
EtsyBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = OcJsonString(OcJsonGet(state, "order_id"));
	int64		since = 0;

	if (order_id != NULL)
	{
		out->method = "GET";
		out->url = JoinUrl(ch->endpoint,
						   psprintf("/v3/application/shops/" INT64_FORMAT "/receipts/%s",
									EtsyShopId(ch), UrlEncode(order_id)));
		OutRequestHeader(out, "Accept: application/json");
		return;
	}
	(void) OcJsonInt(OcJsonGet(state, "since_epoch"), &since);
	OcJsonSetInt(state, "min", since);
	OcJsonSetInt(state, "skip", 0);
	EtsyReceiptsRequest(ch, state, out);
}

/*
 * EtsyMoney
 *		An Etsy Money {amount, divisor, currency_code} as a decimal, or NULL
 *		when it is not one.
 */
static char *
EtsyMoney(OcJson *money)
{
	int64		amount,
				divisor;

	if (!OcJsonInt(OcJsonGet(money, "amount"), &amount) ||
		!OcJsonInt(OcJsonGet(money, "divisor"), &divisor) ||
		divisor <= 0 || divisor > INT64CONST(1000000000) ||
		amount > INT64CONST(1000000000000000) || amount < -INT64CONST(1000000000000000))
		return NULL;
	return DecimalScaled(amount, divisor);
}

/* EtsyIsTrue: a JSON true */
static bool
EtsyIsTrue(OcJson *value)
{
	return value != NULL && strcmp(OcJsonDump(value), "true") == 0;
}

/* EtsySetString: copy a non-empty string member, bounded */
static void
EtsySetString(OcJson *dst, const char *key, OcJson *value, size_t max)
{
	const char *s = OcJsonString(value);

	if (s != NULL && *s != '\0')
		OcJsonSetString(dst, key, strlen(s) > max ? pnstrdup(s, max) : s);
}

/* EtsySetId: an integer id as a string member */
static void
EtsySetId(OcJson *dst, const char *key, OcJson *value)
{
	int64		id;

	if (OcJsonInt(value, &id) && id > 0)
		OcJsonSetString(dst, key, psprintf(INT64_FORMAT, id));
}

/* EtsyContains: s contains word, ignoring case */
static bool
EtsyContains(const char *s, const char *word)
{
	size_t		n = strlen(word);

	for (; s != NULL && *s; s++)
		if (pg_strncasecmp(s, word, n) == 0)
			return true;
	return false;
}

/*
 * EtsyNormalize
 *		One ShopReceipt as a normalized order; false (with *error) when it is
 *		not a receipt at all, *skip when it is not to be imported.
 */
static bool
EtsyNormalize(OcJson *r, OcJson *out, bool *skip, char **error)
{
	int64		receipt_id = 0;
	int64		created = 0;
	const char *status = OcJsonString(OcJsonGet(r, "status"));
	OcJson	   *transactions = OcJsonGet(r, "transactions");
	OcJson	   *buyer,
			   *addr,
			   *totals,
			   *lines,
			   *sla;
	const char *flag = NULL;
	char	   *v;
	char	   *tax;
	bool		cancelled;
	int			i,
				n = OcJsonLength(transactions);

	*skip = false;
	if (!OcJsonIsObject(r) || !OcJsonInt(OcJsonGet(r, "receipt_id"), &receipt_id) ||
		receipt_id <= 0 || n < 0 || status == NULL)
	{
		*error = "a receipt without receipt_id, status or transactions";
		return false;
	}
	cancelled = strcmp(status, "canceled") == 0 || strcmp(status, "fully refunded") == 0;
	if (!cancelled && (!EtsyIsTrue(OcJsonGet(r, "is_paid")) ||
					   strcmp(status, "open") == 0 || strcmp(status, "payment processing") == 0))
	{
		*skip = true;			/* not paid yet */
		return true;
	}

	OcJsonSetString(out, "external_id", psprintf(INT64_FORMAT, receipt_id));
	OcJsonSetString(out, "status", strlen(status) > 64 ? pnstrdup(status, 64) : status);
	OcJsonSetBool(out, "cancelled", cancelled);
	if (OcJsonInt(OcJsonGet(r, "create_timestamp"), &created) && created > 0)
		OcJsonSetString(out, "ordered_at", IsoFromEpoch(created));
	EtsySetString(out, "currency", OcJsonPath(r, "grandtotal.currency_code"), 8);

	buyer = OcJsonSetObject(out, "buyer");
	EtsySetId(buyer, "id", OcJsonGet(r, "buyer_user_id"));
	EtsySetString(buyer, "name", OcJsonGet(r, "name"), 255);
	EtsySetString(buyer, "email", OcJsonGet(r, "buyer_email"), 254);

	addr = OcJsonSetObject(out, "shipping_address");
	EtsySetString(addr, "name", OcJsonGet(r, "name"), 255);
	EtsySetString(addr, "street", OcJsonGet(r, "first_line"), 255);
	EtsySetString(addr, "street2", OcJsonGet(r, "second_line"), 255);
	EtsySetString(addr, "city", OcJsonGet(r, "city"), 128);
	EtsySetString(addr, "zip", OcJsonGet(r, "zip"), 32);
	EtsySetString(addr, "state", OcJsonGet(r, "state"), 128);
	EtsySetString(addr, "country", OcJsonGet(r, "country_iso"), 64);

	if (EtsyIsTrue(OcJsonGet(r, "is_gift")))
		EtsySetString(out, "gift_message", OcJsonGet(r, "gift_message"), 4000);

	totals = OcJsonSetObject(out, "totals");
	if ((v = EtsyMoney(OcJsonGet(r, "total_price"))) != NULL)
		OcJsonSetString(totals, "items", v);
	if ((v = EtsyMoney(OcJsonGet(r, "total_shipping_cost"))) != NULL)
		OcJsonSetString(totals, "shipping", v);
	if ((v = EtsyMoney(OcJsonGet(r, "gift_wrap_price"))) != NULL)
		OcJsonSetString(totals, "gift_wrap", v);
	if ((v = EtsyMoney(OcJsonGet(r, "discount_amt"))) != NULL)
		OcJsonSetString(totals, "discount", v);
	tax = EtsyMoney(OcJsonGet(r, "total_tax_cost"));
	if ((v = EtsyMoney(OcJsonGet(r, "total_vat_cost"))) != NULL)
		tax = DecimalAdd(tax, v);
	if (tax != NULL)
		OcJsonSetString(totals, "tax", tax);
	if ((v = EtsyMoney(OcJsonGet(r, "grandtotal"))) != NULL)
		OcJsonSetString(totals, "total", v);

	lines = OcJsonSetArray(out, "lines");
	for (i = 0; i < n; i++)
	{
		OcJson	   *t = OcJsonAt(transactions, i);
		OcJson	   *l;
		int64		qty = -1;
		char	   *price = EtsyMoney(OcJsonGet(t, "price"));
		const char *texts[2];
		int			k;

		if (!OcJsonInt(OcJsonGet(t, "quantity"), &qty) || qty < 0 || qty > 1000000 ||
			price == NULL)
		{
			*error = psprintf("receipt " INT64_FORMAT ": transaction %d has no valid quantity or price",
							  receipt_id, i + 1);
			return false;
		}
		if (qty == 0)
			continue;
		l = OcJsonAppendObject(lines);
		EtsySetId(l, "external_id", OcJsonGet(t, "transaction_id"));
		EtsySetString(l, "sku", OcJsonGet(t, "sku"), 255);
		OcJsonSetInt(l, "quantity", qty);
		OcJsonSetString(l, "unit_price", price);

		texts[0] = OcJsonString(OcJsonGet(t, "shipping_upgrade"));
		texts[1] = OcJsonString(OcJsonGet(t, "shipping_method"));
		for (k = 0; k < 2 && flag == NULL; k++)
		{
			if (EtsyContains(texts[k], "next day") || EtsyContains(texts[k], "next-day") ||
				EtsyContains(texts[k], "overnight"))
				flag = "next_day";
			else if (EtsyContains(texts[k], "express"))
				flag = "expedited";
		}
	}
	sla = OcJsonSetArray(out, "sla");
	if (flag != NULL)
		OcJsonAppendString(sla, flag);

	OcJsonSetCopy(out, "raw", r);
	return true;
}

/*
 * EtsyParsePull
 *		A page of getShopReceipts (or one getShopReceipt answer): its
 *		receipts, and the next page while the page was full.
 */
static bool
EtsyParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
			  OutRequest *next, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	OcJson	   *results;
	int64		min = 0,
				skip = 0,
				last = 0,
				prev = 0,
				same = 0;
	int			i,
				n;

	if (doc == NULL)
	{
		*error = psprintf("Etsy answered with unreadable JSON: %s", perr);
		return false;
	}
	if (OcJsonGet(state, "order_id") != NULL)
	{
		OcJson	   *out = OcJsonNewObject();
		bool		skipped;

		if (!EtsyNormalize(doc, out, &skipped, error))
			return false;
		if (!skipped)
			OcJsonAppendCopy(orders, out);
		return false;
	}

	results = OcJsonGet(doc, "results");
	n = OcJsonLength(results);
	if (n < 0 || n > ETSY_RECEIPTS_LIMIT)
	{
		*error = "Etsy's receipts page has no \"results\" array of at most 100 receipts";
		return false;
	}
	for (i = 0; i < n; i++)
	{
		OcJson	   *r = OcJsonAt(results, i);
		OcJson	   *out = OcJsonNewObject();
		bool		skipped;
		int64		ts = 0;

		if (!EtsyNormalize(r, out, &skipped, error))
			return false;
		if (!OcJsonInt(OcJsonGet(r, "update_timestamp"), &ts) || ts < prev)
		{
			*error = "Etsy's receipts are not sorted by update_timestamp";
			return false;
		}
		prev = ts;
		if (!skipped)
			OcJsonAppendCopy(orders, out);
	}
	PullPageCounted(state, OcJsonGet(doc, "count"), n);
	if (n < ETSY_RECEIPTS_LIMIT)
		return false;			/* a short page: the last one */

	/* the next page starts at the last receipt's second */
	(void) OcJsonInt(OcJsonGet(state, "min"), &min);
	(void) OcJsonInt(OcJsonGet(state, "skip"), &skip);
	(void) OcJsonInt(OcJsonGet(OcJsonAt(results, n - 1), "update_timestamp"), &last);
	for (i = n - 1; i >= 0; i--)
	{
		int64		ts = 0;

		(void) OcJsonInt(OcJsonGet(OcJsonAt(results, i), "update_timestamp"), &ts);
		if (ts != last)
			break;
		same++;
	}
	if (last == min || (min < INT64CONST(946684800) && last <= INT64CONST(946684800)))
		skip += same;			/* the whole page was in that second */
	else
		skip = same;
	OcJsonSetInt(state, "min", last);
	OcJsonSetInt(state, "skip", skip);
	EtsyReceiptsRequest(ch, state, next);
	return true;
}
