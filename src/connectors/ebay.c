/*-------------------------------------------------------------------------
 *
 * ebay.c
 *	  eBay connector: Sell Inventory API.
 *
 * Stock push: POST /sell/inventory/v1/bulk_update_price_quantity, up to 25
 * SKUs per call, each with shipToLocationAvailability.quantity (and the
 * merchant location's availabilityDistributions when the channel names one,
 * and the offer's availableQuantity when the listing has an offer id).  The
 * answer is 200 (all done) or 207 Multi-Status with a statusCode and errors
 * per SKU.
 *
 * Order pull: Fulfillment API getOrders, GET /sell/fulfillment/v1/order with
 * filter=lastmodifieddate:[since..until], limit=200 and offset pagination
 * (until an answer has no "next"); one order by id: GET .../order/{orderId}.
 * Orders whose payment is PENDING or FAILED are not imported (no money, no
 * address yet); status = orderFulfillmentStatus (NOT_STARTED, IN_PROGRESS,
 * FULFILLED), cancelled when cancelStatus.cancelState is CANCELED.  Money is
 * {value (a decimal string), currency}; a line's lineItemCost is for its
 * whole quantity (unit price = lineItemCost / quantity), its tax the sum of
 * its taxes, its discount the sum of its appliedPromotions; the order's
 * totals come from pricingSummary, its fee from totalMarketplaceFee.  A
 * shipping service code naming one-day / overnight delivery sets "next_day",
 * an expedited one "expedited".
 *
 * Cancellation by the merchant: Post-Order API POST /post-order/v2/cancellation
 * (legacyOrderId, cancelReason OUT_OF_STOCK_OR_CANNOT_FULFILL, buyerPaid),
 * which takes the OAuth token as "IAF <token>" and the marketplace id in
 * its hyphenated form (EBAY-US); an answer that says the order is not
 * eligible (already shipped, past the cutoff) is a refusal.
 *
 * Auth: user access token from the refresh-token grant at the channel's
 * token endpoint (Basic client_id:client_secret, form-encoded body), sent as
 * "Authorization: Bearer".
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "../connector.h"

#define EBAY_BATCH	25
#define EBAY_SCOPES "https://api.ebay.com/oauth/api_scope/sell.inventory " \
	"https://api.ebay.com/oauth/api_scope/sell.fulfillment"

static void EbayBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void EbayParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static void EbayBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req);
static bool EbayParseToken(HttpRequest *req, char **token, int *expires_in, char **error);
static void EbayAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);
static void EbayBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool EbayParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
						  OutRequest *next, char **error);
static bool EbayBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
static bool EbayParseCancel(ChannelConfig *ch, HttpRequest *req, char **error);

const Connector EbayConnector = {
	.kind = "ebay",
	.push_batch = EBAY_BATCH,
	.build_push = EbayBuildPush,
	.parse_push = EbayParsePush,
	.needs_token = true,
	.build_token = EbayBuildToken,
	.parse_token = EbayParseToken,
	.authorize = EbayAuthorize,
	.pull_operation = "order_pull",
	.pull_lag_s = 0,
	.build_pull = EbayBuildPull,
	.parse_pull = EbayParsePull,
	.build_cancel = EbayBuildCancel,
	.parse_cancel = EbayParseCancel,
};

#define EBAY_ORDERS_LIMIT	200

/*
 * EbayBuildPush
 *		One bulk_update_price_quantity request for up to 25 listings.
 */
static void
EbayBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *requests = OcJsonSetArray(body, "requests");
	const char *location = SettingString(ch, "merchant_location_key");
	int			i;

	for (i = 0; i < n; i++)
	{
		OcJson	   *r = OcJsonAppendObject(requests);
		OcJson	   *avail;
		const char *offer = OcJsonString(OcJsonGet(items[i].external, "offer_id"));

		OcJsonSetString(r, "sku", items[i].sku);
		avail = OcJsonSetObject(r, "shipToLocationAvailability");
		OcJsonSetInt(avail, "quantity", items[i].quantity);
		if (location != NULL)
		{
			OcJson	   *dist = OcJsonAppendObject(OcJsonSetArray(avail, "availabilityDistributions"));

			OcJsonSetString(dist, "merchantLocationKey", location);
			OcJsonSetInt(dist, "quantity", items[i].quantity);
		}
		if (offer != NULL)
		{
			OcJson	   *o = OcJsonAppendObject(OcJsonSetArray(r, "offers"));

			OcJsonSetString(o, "offerId", offer);
			OcJsonSetInt(o, "availableQuantity", items[i].quantity);
		}
	}
	out->operation = "stock_push";
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, "/sell/inventory/v1/bulk_update_price_quantity");
	OutRequestHeader(out, "Content-Type: application/json");
	OutRequestHeader(out, "Accept: application/json");
	if (SettingString(ch, "marketplace_id") != NULL)
		OutRequestHeader(out, "X-EBAY-C-MARKETPLACE-ID: %s", SettingString(ch, "marketplace_id"));
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
}

/*
 * EbayParsePush
 *		200 or 207: one entry per SKU with its statusCode and errors.
 */
static void
EbayParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	OcJson	   *responses = OcJsonGet(doc, "responses");
	int			count = OcJsonLength(responses);
	int			i,
				k;

	if (doc == NULL || count < 0)
	{
		for (k = 0; k < n; k++)
		{
			items[k].error = psprintf("eBay answered HTTP %d with an unreadable body (%s)",
									  req->status, doc == NULL ? error : "no \"responses\" array");
			items[k].error_class = ITEM_ERROR_RETRY;
		}
		return;
	}
	for (i = 0; i < count; i++)
	{
		OcJson	   *r = OcJsonAt(responses, i);
		const char *sku = OcJsonString(OcJsonGet(r, "sku"));
		int64		status = 0;

		if (sku == NULL)
			continue;
		(void) OcJsonInt(OcJsonGet(r, "statusCode"), &status);
		for (k = 0; k < n; k++)
		{
			const char *msg;

			if (strcmp(items[k].sku, sku) != 0)
				continue;
			if (status >= 200 && status < 300)
			{
				items[k].ok = true;
				continue;
			}
			msg = OcJsonString(OcJsonPath(r, "errors.0.longMessage"));
			if (msg == NULL)
				msg = OcJsonString(OcJsonPath(r, "errors.0.message"));
			items[k].error = psprintf("eBay %lld: %s", (long long) status,
									  msg ? msg : "no message");
			items[k].error_class = (status >= 500 || status == 429) ? ITEM_ERROR_RETRY
				: (status == 401 || status == 403) ? ITEM_ERROR_CREDENTIALS : ITEM_ERROR_FIX;
		}
	}
}

/*
 * EbayBuildToken
 *		Refresh-token grant: Basic client credentials, form body.
 */
static void
EbayBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req)
{
	const char *id = SecretString(secrets, "client_id");
	const char *secret = SecretString(secrets, "client_secret");
	char	   *pair = psprintf("%s:%s", id, secret);
	char	   *body = psprintf("grant_type=refresh_token&refresh_token=%s&scope=%s",
								UrlEncode(SecretString(secrets, "refresh_token")),
								UrlEncode(EBAY_SCOPES));

	HttpAddHeader(req, "Authorization: Basic %s", Base64Encode(pair, strlen(pair)));
	HttpAddHeader(req, "Content-Type: application/x-www-form-urlencoded");
	HttpSetBody(req, body, strlen(body));
}

/* EbayParseToken: {"access_token", "expires_in", "token_type"} */
static bool
EbayParseToken(HttpRequest *req, char **token, int *expires_in, char **error)
{
	static const char *const errors[] = {"error_description", "error", NULL};

	return ParseAccessToken(req, "eBay", 7200, errors, token, expires_in, error);
}

/*
 * EbayAuthorize
 *		Bearer user access token; the Post-Order API takes the same OAuth
 *		token with the "IAF" scheme.
 */
static void
EbayAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	if (strstr(req->url, "/post-order/") != NULL)
		HttpAddHeader(req, "Authorization: IAF %s", token);
	else
		HttpAddHeader(req, "Authorization: Bearer %s", token);
}

/*
 * EbayOrdersUrl
 *		One page of getOrders for the state's window and offset.
 */
static char *
EbayOrdersUrl(ChannelConfig *ch, OcJson *state)
{
	int64		offset = 0;
	char	   *filter;

	(void) OcJsonInt(OcJsonGet(state, "offset"), &offset);
	filter = psprintf("lastmodifieddate:[%s..%s]",
					  OcJsonString(OcJsonGet(state, "since")),
					  OcJsonString(OcJsonGet(state, "until")));
	return psprintf("%s?filter=%s&limit=%d&offset=%lld",
					JoinUrl(ch->endpoint, "/sell/fulfillment/v1/order"),
					UrlEncode(filter), EBAY_ORDERS_LIMIT, (long long) offset);
}

/*
 * EbayBuildPull
 *		The first page of the window, or the one order asked for.
 */
static void
EbayBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = OcJsonString(OcJsonGet(state, "order_id"));

	out->method = "GET";
	if (order_id != NULL)
		out->url = psprintf("%s/%s", JoinUrl(ch->endpoint, "/sell/fulfillment/v1/order"),
							UrlEncode(order_id));
	else
	{
		OcJsonSetInt(state, "offset", 0);
		out->url = EbayOrdersUrl(ch, state);
	}
	OutRequestHeader(out, "Accept: application/json");
	if (SettingString(ch, "marketplace_id") != NULL)
		OutRequestHeader(out, "X-EBAY-C-MARKETPLACE-ID: %s", SettingString(ch, "marketplace_id"));
}

/* EbayMoney: the decimal value of an eBay Amount, or NULL */
static char *
EbayMoney(OcJson *amount)
{
	return amount ? DecimalOf(OcJsonGet(amount, "value")) : NULL;
}

/* EbayMoneyAbs: an amount as a positive decimal (discounts may be negative) */
static char *
EbayMoneyAbs(OcJson *amount)
{
	char	   *v = EbayMoney(amount);

	if (v != NULL && v[0] == '-')
		return pstrdup(v + 1);
	return v;
}

/* EbaySetString: copy a string member (bounded) when present */
static void
EbaySetString(OcJson *dst, const char *key, OcJson *value, size_t max)
{
	const char *s = OcJsonString(value);

	if (s != NULL && *s != '\0')
		OcJsonSetString(dst, key, strlen(s) > max ? pnstrdup(s, max) : s);
}

/*
 * EbayNormalize
 *		One Fulfillment API Order as a normalized order; false (with *error)
 *		when it is not an order at all, *skip when it is not to be imported.
 */
static bool
EbayNormalize(OcJson *o, OcJson *out, bool *skip, char **error)
{
	const char *id = OcJsonString(OcJsonGet(o, "orderId"));
	const char *payment = OcJsonString(OcJsonGet(o, "orderPaymentStatus"));
	const char *cancel = OcJsonString(OcJsonPath(o, "cancelStatus.cancelState"));
	OcJson	   *ps = OcJsonGet(o, "pricingSummary");
	OcJson	   *ship = OcJsonPath(o, "fulfillmentStartInstructions.0.shippingStep");
	OcJson	   *lines = OcJsonGet(o, "lineItems");
	OcJson	   *buyer,
			   *addr,
			   *totals,
			   *outlines,
			   *sla;
	const char *service;
	bool		cancelled = (cancel != NULL && strcmp(cancel, "CANCELED") == 0);
	int			i,
				n = OcJsonLength(lines);

	*skip = false;
	if (id == NULL || *id == '\0' || strlen(id) > 255 || n < 0)
	{
		*error = "an order without an orderId or lineItems";
		return false;
	}
	if (!cancelled && payment != NULL &&
		(strcmp(payment, "PENDING") == 0 || strcmp(payment, "FAILED") == 0))
	{
		*skip = true;
		return true;
	}

	OcJsonSetString(out, "external_id", id);
	EbaySetString(out, "status", OcJsonGet(o, "orderFulfillmentStatus"), 64);
	OcJsonSetBool(out, "cancelled", cancelled);
	EbaySetString(out, "ordered_at", OcJsonGet(o, "creationDate"), 64);
	EbaySetString(out, "currency", OcJsonPath(ps, "total.currency"), 8);

	buyer = OcJsonSetObject(out, "buyer");
	EbaySetString(buyer, "id", OcJsonPath(o, "buyer.username"), 255);
	EbaySetString(buyer, "name", OcJsonPath(o, "buyer.buyerRegistrationAddress.fullName"), 255);
	EbaySetString(buyer, "email", OcJsonPath(o, "buyer.buyerRegistrationAddress.email"), 254);
	EbaySetString(buyer, "phone", OcJsonPath(o, "buyer.buyerRegistrationAddress.primaryPhone.phoneNumber"), 64);

	if (ship != NULL && OcJsonGet(ship, "shipTo") != NULL)
	{
		OcJson	   *to = OcJsonGet(ship, "shipTo");

		addr = OcJsonSetObject(out, "shipping_address");
		EbaySetString(addr, "name", OcJsonGet(to, "fullName"), 255);
		EbaySetString(addr, "street", OcJsonPath(to, "contactAddress.addressLine1"), 255);
		EbaySetString(addr, "street2", OcJsonPath(to, "contactAddress.addressLine2"), 255);
		EbaySetString(addr, "city", OcJsonPath(to, "contactAddress.city"), 128);
		EbaySetString(addr, "zip", OcJsonPath(to, "contactAddress.postalCode"), 32);
		EbaySetString(addr, "state", OcJsonPath(to, "contactAddress.stateOrProvince"), 128);
		EbaySetString(addr, "country", OcJsonPath(to, "contactAddress.countryCode"), 64);
		EbaySetString(addr, "phone", OcJsonPath(to, "primaryPhone.phoneNumber"), 64);
	}

	totals = OcJsonSetObject(out, "totals");
	if (EbayMoney(OcJsonGet(ps, "priceSubtotal")))
		OcJsonSetString(totals, "items", EbayMoney(OcJsonGet(ps, "priceSubtotal")));
	if (EbayMoney(OcJsonGet(ps, "deliveryCost")))
		OcJsonSetString(totals, "shipping", EbayMoney(OcJsonGet(ps, "deliveryCost")));
	if (EbayMoneyAbs(OcJsonGet(ps, "priceDiscount")))
		OcJsonSetString(totals, "discount", EbayMoneyAbs(OcJsonGet(ps, "priceDiscount")));
	if (EbayMoney(OcJsonGet(ps, "tax")))
		OcJsonSetString(totals, "tax", EbayMoney(OcJsonGet(ps, "tax")));
	if (EbayMoney(OcJsonGet(ps, "total")))
		OcJsonSetString(totals, "total", EbayMoney(OcJsonGet(ps, "total")));
	if (EbayMoney(OcJsonGet(o, "totalMarketplaceFee")))
		OcJsonSetString(OcJsonSetObject(out, "fees"), "marketplace_fee",
						EbayMoney(OcJsonGet(o, "totalMarketplaceFee")));

	service = OcJsonString(OcJsonGet(ship, "shippingServiceCode"));
	sla = OcJsonSetArray(out, "sla");
	if (service != NULL)
	{
		if (strstr(service, "OneDay") || strstr(service, "Overnight") || strstr(service, "NextDay"))
			OcJsonAppendString(sla, "next_day");
		else if (strstr(service, "Expedited"))
			OcJsonAppendString(sla, "expedited");
	}

	outlines = OcJsonSetArray(out, "lines");
	for (i = 0; i < n; i++)
	{
		OcJson	   *li = OcJsonAt(lines, i);
		OcJson	   *l = OcJsonAppendObject(outlines);
		OcJson	   *taxes = OcJsonGet(li, "taxes");
		OcJson	   *promos = OcJsonGet(li, "appliedPromotions");
		int64		qty = 0;
		char	   *cost = EbayMoney(OcJsonGet(li, "lineItemCost"));
		char	   *tax = NULL;
		char	   *discount = NULL;
		int			k;

		(void) OcJsonInt(OcJsonGet(li, "quantity"), &qty);
		if (qty <= 0 || qty > 1000000 || cost == NULL)
		{
			*error = psprintf("order %s: line %d has no valid quantity or lineItemCost", id, i + 1);
			return false;
		}
		EbaySetString(l, "external_id", OcJsonGet(li, "lineItemId"), 255);
		EbaySetString(l, "sku", OcJsonGet(li, "sku"), 255);
		OcJsonSetInt(l, "quantity", qty);
		OcJsonSetString(l, "unit_price", DecimalDivInt(cost, qty, 6));
		for (k = 0; k < OcJsonLength(taxes); k++)
			if (EbayMoney(OcJsonPath(OcJsonAt(taxes, k), "amount")))
				tax = DecimalAdd(tax, EbayMoney(OcJsonPath(OcJsonAt(taxes, k), "amount")));
		for (k = 0; k < OcJsonLength(promos); k++)
			if (EbayMoneyAbs(OcJsonPath(OcJsonAt(promos, k), "discountAmount")))
				discount = DecimalAdd(discount, EbayMoneyAbs(OcJsonPath(OcJsonAt(promos, k), "discountAmount")));
		if (tax != NULL)
			OcJsonSetString(l, "tax", tax);
		if (discount != NULL)
			OcJsonSetString(l, "discount", discount);
	}
	OcJsonSetCopy(out, "raw", o);
	return true;
}

/*
 * EbayParsePull
 *		A page of getOrders (or one getOrder answer): its orders, and the
 *		next page while the answer has a "next" link.
 */
static bool
EbayParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
			  OutRequest *next, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	OcJson	   *list;
	int			i,
				n;
	int64		offset = 0;

	if (doc == NULL)
	{
		*error = psprintf("eBay answered with an unreadable order list: %s", perr);
		return false;
	}
	if (OcJsonGet(state, "order_id") != NULL)
	{
		OcJson	   *out = OcJsonNewObject();
		bool		skip;

		if (!EbayNormalize(doc, out, &skip, error))
			return false;
		if (!skip)
			OcJsonAppendCopy(orders, out);
		return false;
	}

	list = OcJsonGet(doc, "orders");
	n = OcJsonLength(list);
	if (n < 0)
	{
		*error = "eBay's order list has no \"orders\" array";
		return false;
	}
	for (i = 0; i < n; i++)
	{
		OcJson	   *out = OcJsonNewObject();
		bool		skip;

		if (!EbayNormalize(OcJsonAt(list, i), out, &skip, error))
			return false;
		if (!skip)
			OcJsonAppendCopy(orders, out);
	}

	PullPageCounted(state, OcJsonGet(doc, "total"), n);
	if (OcJsonString(OcJsonGet(doc, "next")) == NULL || n == 0)
		return false;
	(void) OcJsonInt(OcJsonGet(state, "offset"), &offset);
	OcJsonSetInt(state, "offset", offset + n);
	next->method = "GET";
	next->url = EbayOrdersUrl(ch, state);
	OutRequestHeader(next, "Accept: application/json");
	if (SettingString(ch, "marketplace_id") != NULL)
		OutRequestHeader(next, "X-EBAY-C-MARKETPLACE-ID: %s", SettingString(ch, "marketplace_id"));
	return true;
}

/*
 * EbayBuildCancel
 *		Post-Order API cancellation on behalf of the seller.
 */
static bool
EbayBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error)
{
	OcJson	   *raw = OcJsonGet(order, "raw");
	const char *legacy = OcJsonString(OcJsonGet(raw, "legacyOrderId"));
	const char *mkt = SettingString(ch, "marketplace_id");
	const char *payment = OcJsonString(OcJsonGet(raw, "orderPaymentStatus"));
	OcJson	   *body = OcJsonNewObject();
	char	   *hyphenated;
	char	   *p;

	if (legacy == NULL)
		legacy = OcJsonString(OcJsonGet(order, "external_id"));
	if (legacy == NULL)
	{
		*error = "the order has no id";
		return false;
	}
	OcJsonSetString(body, "legacyOrderId", legacy);
	OcJsonSetString(body, "cancelReason", "OUT_OF_STOCK_OR_CANNOT_FULFILL");
	OcJsonSetBool(body, "buyerPaid", payment == NULL || strcmp(payment, "PAID") == 0);

	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, "/post-order/v2/cancellation");
	OutRequestHeader(out, "Content-Type: application/json");
	OutRequestHeader(out, "Accept: application/json");
	/* the Post-Order API names marketplaces EBAY-US, not EBAY_US */
	hyphenated = pstrdup(mkt ? mkt : "EBAY_US");
	for (p = hyphenated; *p; p++)
		if (*p == '_')
			*p = '-';
	OutRequestHeader(out, "X-EBAY-C-MARKETPLACE-ID: %s", hyphenated);
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
	return true;
}

/*
 * EbayParseCancel
 *		A cancellation answer: refused when eBay says the order is not
 *		eligible.
 */
static bool
EbayParseCancel(ChannelConfig *ch, HttpRequest *req, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	OcJson	   *eligible = OcJsonPath(doc, "orderEligibilityResult.eligible");
	int64		v = 1;

	if (doc != NULL && OcJsonGet(doc, "cancelId") != NULL)
		return true;
	if (eligible != NULL && OcJsonInt(eligible, &v) && v == 0)
	{
		const char *why = OcJsonString(OcJsonPath(doc, "orderEligibilityResult.failureReason.0"));

		*error = psprintf("eBay: the order is not eligible for cancellation (%s)", why ? why : "no reason given");
		return false;
	}
	return true;
}
