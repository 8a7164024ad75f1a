/*-------------------------------------------------------------------------
 *
 * tiktok.c
 *	  TikTok Shop connector: Partner API, version 202309.
 *
 * Stock push: POST /product/202309/products/{product_id}/inventory/update
 * with {"skus": [{"id": sku_id, "inventory": [{"warehouse_id"?, "quantity"}]}]}.
 * The endpoint takes the SKUs of ONE product, so the connector's push_group
 * is the listing's product_id: the worker queues one job per TikTok product
 * (up to TIKTOK_BATCH of its SKUs; a product has at most 100), and a push
 * costs one request per product changed, sent in parallel.  warehouse_id
 * (listing key) is sent when the listing names one: the API wants every
 * warehouse of a multi-warehouse SKU, which one listing per SKU cannot
 * express, so only single-warehouse SKUs are supported.  Quantities above
 * the API's 99 999 are sent as 99 999.
 *
 * Answers: envelope {code, message, request_id, data}; code 0 is success,
 * per-SKU failures come in data.errors[] (detail.sku_id, extra_errors[] per
 * warehouse); business errors come with HTTP 200 and a non-zero code.
 * Throttling: HTTP 429 (the worker retries) or code 36009002 inside a 2xx
 * answer (the throttled hook).  Expired token: code 105002.
 *
 * Order pull: Get Order List, POST /order/202309/orders/search?page_size=50
 * &sort_field=update_time&sort_order=ASC[&page_token=] with the body
 * {"update_time_ge": since, "update_time_lt": until} (Unix seconds), every
 * page until data.next_page_token is empty (or a page is empty); one order
 * by id: Get Order Detail, GET /order/202309/orders?ids=<id>.  Both answer
 * data.orders[].  Not imported: UNPAID orders (no payment), ON_HOLD orders
 * (the buyer may still cancel them freely and TikTok gives no address yet:
 * they come with the pull that sees them AWAITING_SHIPMENT), orders
 * fulfilled by TikTok (fulfillment_type FULFILLMENT_BY_TIKTOK: shipped from
 * TikTok's warehouses, not the merchant's), and CANCELLED orders that were
 * never paid (no paid_time).  "status" is TikTok's verbatim (AWAITING_SHIPMENT,
 * PARTIALLY_SHIPPING, AWAITING_COLLECTION, IN_TRANSIT, DELIVERED, COMPLETED,
 * CANCELLED); "cancelled" when CANCELLED.
 *
 * Every purchased unit is its own line item (there is no quantity): the
 * units are summed per SKU (seller_sku, else sku_id) into one line with the
 * unit count as quantity; units whose display_status is CANCELLED are left
 * out unless the whole order is cancelled.  A unit's sale_price is what the
 * buyer paid for it, after its seller_discount and platform_discount: the
 * line's unit_price is sale_price plus those discounts, and its "discount"
 * their sum, so that Odoo's line less the promotion line is exactly what
 * was paid; its tax is the sum of item_tax[].tax_amount.  The line's
 * external_id is its first line item id.  totals: items and discount = the
 * lines' sums, shipping = payment.shipping_fee, tax = payment.tax, total =
 * payment.total_amount.  Buyer: id = user_id, e-mail = buyer_email (relay),
 * name and phone from recipient_address (a cancelled order without an
 * address is named "TikTok buyer <user_id>"); address: address_line1/2,
 * postal_code, region_code, state = district_info level L1, city = level
 * L3 (else L2).  SLA: fulfillment_priority_level 100-300 (instant, same
 * day) sets "same_day", 400 "next_day"; a delivery option named Express
 * sets "expedited".  Money fields are decimal strings.
 *
 * Cancellation by the merchant: Cancel Order, POST
 * /return_refund/202309/cancellations with {"order_id", "order_line_item_ids"
 * (the units not cancelled yet), "cancel_reason":
 * "seller_cancel_reason_out_of_stock"} (reason name (unverified): it is not
 * in MARKETPLACE_APIS.md; body from the public SDKs), answered data
 * {cancel_id, cancel_status}; refused here for orders TikTok already shows
 * as shipped.  A non-zero envelope code is a refusal.
 *
 * Auth: every request carries the query parameters app_key, timestamp
 * (seconds), shop_cipher (channel setting) and sign, and the header
 * x-tts-access-token (the access_token credential).  The signature is
 * computed at send time (authorize), MARKETPLACE_APIS.md section 5.1:
 * hex(HMAC-SHA256(app_secret, app_secret + path + sorted key+value pairs
 * (without sign and access_token, the request's own ones included) + body
 * + app_secret)).  No token refresh
 * is implemented: the access_token credential is used as it is, and its
 * expiry (105002) is reported as a credentials error on the listings.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <time.h>

#include "lib/stringinfo.h"

#include "../connector.h"

/* listings per push job (a product has at most 100 SKUs) */
#define TIKTOK_BATCH		50
/* the API's upper bound of a warehouse quantity (update-inventory reference) */
#define TIKTOK_MAX_QTY		99999

/* envelope codes (MARKETPLACE_APIS.md section 5.6) */
#define TTS_THROTTLED		36009002
#define TTS_TIMEOUT			36009007
#define TTS_INTERNAL		36009003

static void TikTokBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void TikTokParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static double TikTokThrottled(ChannelConfig *ch, HttpRequest *req);
static void TikTokAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);
static void TikTokBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool TikTokParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
							OutRequest *next, char **error);
static bool TikTokBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
static bool TikTokParseCancel(ChannelConfig *ch, HttpRequest *req, char **error);

const Connector TikTokConnector = {
	.kind = "tiktok",
	.push_batch = TIKTOK_BATCH,
	.build_push = TikTokBuildPush,
	.parse_push = TikTokParsePush,
	.throttled = TikTokThrottled,
	.needs_token = false,
	.authorize = TikTokAuthorize,
	.push_group = "product_id",
	.pull_operation = "order_pull",
	.pull_lag_s = 0,
	.build_pull = TikTokBuildPull,
	.parse_pull = TikTokParsePull,
	.build_cancel = TikTokBuildCancel,
	.parse_cancel = TikTokParseCancel,
};

/* ItemString: a string key of a listing's external ids, "" when absent */
static const char *
ItemString(PushItem *item, const char *key)
{
	const char *v = OcJsonString(OcJsonGet(item->external, key));

	return v ? v : "";
}

/*
 * BuildProductRequest
 *		The inventory update of the items of one product.  The query
 *		parameters (app_key, timestamp, shop_cipher, sign) are added at send
 *		time by TikTokAuthorize.
 */
static void
BuildProductRequest(ChannelConfig *ch, PushItem *items, int n, const char *pid, OutRequest *out)
{
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *skus = OcJsonSetArray(body, "skus");
	int			i;

	for (i = 0; i < n; i++)
	{
		OcJson	   *sku;
		OcJson	   *inv;
		const char *warehouse = ItemString(&items[i], "warehouse_id");

		if (strcmp(ItemString(&items[i], "product_id"), pid) != 0)
			continue;
		sku = OcJsonAppendObject(skus);
		OcJsonSetString(sku, "id", ItemString(&items[i], "sku_id"));
		inv = OcJsonAppendObject(OcJsonSetArray(sku, "inventory"));
		if (*warehouse != '\0')
			OcJsonSetString(inv, "warehouse_id", warehouse);
		OcJsonSetInt(inv, "quantity", Min(Max(items[i].quantity, 0), TIKTOK_MAX_QTY));
	}
	out->operation = "stock_push";
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, psprintf("/product/202309/products/%s/inventory/update",
											  UrlEncode(pid)));
	OutRequestHeader(out, "Content-Type: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
}

/* TikTokBuildPush: the request of the job's product (push_group) */
static void
TikTokBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	BuildProductRequest(ch, items, n, ItemString(&items[0], "product_id"), out);
}

/*
 * ClassOfCode
 *		How a request-level failure is handled, and whether it concerns every
 *		listing of the job (credentials, throttling: the next products would
 *		fail the same way) rather than the product of the request only.
 */
static ItemErrorClass
ClassOfCode(int status, int64 code, bool *whole_job)
{
	*whole_job = true;
	if (status == 401 || status == 403 ||
		code == 105001 || code == 105002 || code == 105005 || code == 106001 ||
		code == 36009004 || code == 106013 || code == 36009033)
		return ITEM_ERROR_CREDENTIALS;
	if (status == 429 || status >= 500 || status == 0 ||
		code == TTS_THROTTLED || code == TTS_TIMEOUT || code == TTS_INTERNAL)
		return ITEM_ERROR_RETRY;
	*whole_job = false;
	return ITEM_ERROR_FIX;
}

/*
 * ReadAnswer
 *		The outcome of the items of product pid from one answer.  Returns true
 *		when the failure concerns every listing of the job (*error, *cls set).
 */
static bool
ReadAnswer(HttpRequest *req, PushItem *items, int n, const char *pid,
		   char **job_error, ItemErrorClass *job_class)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	int64		code = -1;
	OcJson	   *errors;
	int			count,
				i,
				k;

	if (doc == NULL || !OcJsonInt(OcJsonGet(doc, "code"), &code))
	{
		char	   *msg = psprintf("TikTok answered HTTP %d with an unreadable body (%s)",
								   req->status, doc == NULL ? perr : "no \"code\"");
		bool		whole;
		ItemErrorClass cls = ClassOfCode(req->status, -1, &whole);

		if (cls == ITEM_ERROR_FIX)
			cls = ITEM_ERROR_RETRY;
		*job_error = msg;
		*job_class = cls;
		return true;
	}
	if (code != 0 || req->status < 200 || req->status >= 300)
	{
		const char *m = OcJsonString(OcJsonGet(doc, "message"));
		char	   *msg = psprintf("TikTok %lld: %s", (long long) code, m ? m : "no message");
		bool		whole;
		ItemErrorClass cls = ClassOfCode(req->status, code, &whole);

		if (whole)
		{
			*job_error = msg;
			*job_class = cls;
			return true;
		}
		for (k = 0; k < n; k++)
			if (strcmp(ItemString(&items[k], "product_id"), pid) == 0)
			{
				items[k].ok = false;
				items[k].error = msg;
				items[k].error_class = cls;
			}
		return false;
	}

	/* success, with per-SKU failures in data.errors[] */
	for (k = 0; k < n; k++)
		if (strcmp(ItemString(&items[k], "product_id"), pid) == 0)
		{
			items[k].ok = true;
			items[k].error = NULL;
		}
	errors = OcJsonPath(doc, "data.errors");
	count = OcJsonLength(errors);
	for (i = 0; i < count; i++)
	{
		OcJson	   *e = OcJsonAt(errors, i);
		const char *sku_id = OcJsonString(OcJsonPath(e, "detail.sku_id"));
		const char *m = OcJsonString(OcJsonGet(e, "message"));
		const char *extra = OcJsonString(OcJsonPath(e, "detail.extra_errors.0.message"));
		int64		ecode = 0;
		int64		xcode = 0;
		char	   *msg;

		(void) OcJsonInt(OcJsonGet(e, "code"), &ecode);
		(void) OcJsonInt(OcJsonPath(e, "detail.extra_errors.0.code"), &xcode);
		msg = extra ? psprintf("TikTok %lld: %s (%lld: %s)", (long long) ecode, m ? m : "no message",
							   (long long) xcode, extra)
			: psprintf("TikTok %lld: %s", (long long) ecode, m ? m : "no message");
		for (k = 0; k < n; k++)
		{
			if (strcmp(ItemString(&items[k], "product_id"), pid) != 0)
				continue;
			/* an error without a SKU id concerns the whole product */
			if (sku_id != NULL && strcmp(ItemString(&items[k], "sku_id"), sku_id) != 0)
				continue;
			items[k].ok = false;
			items[k].error = msg;
			items[k].error_class = (ecode == TTS_INTERNAL || ecode == TTS_TIMEOUT ||
									ecode == TTS_THROTTLED) ? ITEM_ERROR_RETRY : ITEM_ERROR_FIX;
		}
	}
	return false;
}

/*
 * TikTokParsePush
 *		The answer of one product's request; a failure of the whole request
 *		(credentials, throttling, unreadable answer) applies to every listing.
 */
static void
TikTokParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	const char *pid = ItemString(&items[0], "product_id");
	char	   *job_error = NULL;
	ItemErrorClass job_class = ITEM_ERROR_RETRY;
	int			k;

	if (ReadAnswer(req, items, n, pid, &job_error, &job_class))
		for (k = 0; k < n; k++)
		{
			items[k].ok = false;
			items[k].error = job_error;
			items[k].error_class = job_class;
		}
	/* listings of another product (never, with push_group) were not sent */
	for (k = 0; k < n; k++)
		if (strcmp(ItemString(&items[k], "product_id"), pid) != 0)
		{
			items[k].ok = false;
			items[k].error = "not sent: the request carried another TikTok product";
			items[k].error_class = ITEM_ERROR_RETRY;
		}
}

/*
 * TikTokThrottled
 *		Code 36009002 (too many requests) or a gateway timeout/internal error
 *		inside a 2xx answer: retry the request after the backoff.
 */
static double
TikTokThrottled(ChannelConfig *ch, HttpRequest *req)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	int64		code = 0;

	if (doc == NULL || !OcJsonInt(OcJsonGet(doc, "code"), &code))
		return -1;
	if (code == TTS_THROTTLED || code == TTS_TIMEOUT || code == TTS_INTERNAL)
		return 0;
	return -1;
}

/* a query parameter of a request being signed */
typedef struct TtsParam
{
	char	   *key;			/* decoded */
	char	   *value;			/* decoded */
} TtsParam;

/* UrlDecode: %XX escapes and '+' (a space, as form decoding reads it) */
static char *
UrlDecode(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		i,
				o = 0;

	for (i = 0; i < len; i++)
	{
		if (s[i] == '%' && i + 2 < len &&
			isxdigit((unsigned char) s[i + 1]) && isxdigit((unsigned char) s[i + 2]))
		{
			char		hex[3] = {s[i + 1], s[i + 2], '\0'};

			out[o++] = (char) strtol(hex, NULL, 16);
			i += 2;
		}
		else if (s[i] == '+')
			out[o++] = ' ';
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* TtsParamCmp: parameters by key (bytewise, as the reference's sort) */
static int
TtsParamCmp(const void *a, const void *b)
{
	return strcmp(((const TtsParam *) a)->key, ((const TtsParam *) b)->key);
}

/*
 * TikTokAuthorize
 *		Query parameters and signature, access token header: at send time
 *		only (the job row keeps the unsigned URL).  The request's own query
 *		parameters (page_size, page_token, ids...) are kept and signed with
 *		app_key, shop_cipher and timestamp: every parameter but sign and
 *		access_token, sorted by name, as decoded values.
 */
static void
TikTokAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	const char *app_key = SecretString(secrets, "app_key");
	const char *app_secret = SecretString(secrets, "app_secret");
	const char *access_token = SecretString(secrets, "access_token");
	const char *cipher = SettingString(ch, "shop_cipher");
	char	   *base;
	const char *q;
	const char *path;
	const char *scheme;
	char	   *timestamp = psprintf("%lld", (long long) time(NULL));
	StringInfoData s;
	StringInfoData url;
	char	   *sign;
	MemoryContext old;
	TtsParam   *params;
	int			nparams = 0,
				maxparams = 3,
				i;

	/* the URL as queued: its path and its own query parameters */
	q = strchr(req->url, '?');
	base = q ? pnstrdup(req->url, q - req->url) : pstrdup(req->url);
	scheme = strstr(base, "://");
	path = scheme ? strchr(scheme + 3, '/') : NULL;
	if (path == NULL)
		path = "/";
	for (i = 0; q != NULL && q[i] != '\0'; i++)
		if (q[i] == '&')
			maxparams++;
	params = palloc0(sizeof(TtsParam) * (maxparams + 1));
	if (q != NULL)
	{
		const char *p = q + 1;

		while (*p)
		{
			const char *end = strchr(p, '&');
			const char *eq;
			size_t		len = end ? (size_t) (end - p) : strlen(p);
			char	   *key,
					   *value;

			eq = memchr(p, '=', len);
			key = UrlDecode(p, eq ? (size_t) (eq - p) : len);
			value = eq ? UrlDecode(eq + 1, len - (eq + 1 - p)) : pstrdup("");
			if (*key != '\0' && strcmp(key, "app_key") != 0 && strcmp(key, "timestamp") != 0 &&
				strcmp(key, "sign") != 0 && strcmp(key, "access_token") != 0 &&
				strcmp(key, "shop_cipher") != 0)
			{
				params[nparams].key = key;
				params[nparams].value = value;
				nparams++;
			}
			p += len;
			if (*p == '&')
				p++;
		}
	}
	params[nparams].key = "app_key";
	params[nparams++].value = (char *) app_key;
	if (cipher != NULL)
	{
		params[nparams].key = "shop_cipher";
		params[nparams++].value = (char *) cipher;
	}
	params[nparams].key = "timestamp";
	params[nparams++].value = timestamp;
	qsort(params, nparams, sizeof(TtsParam), TtsParamCmp);

	/* app_secret + path + sorted key+value pairs + body + app_secret */
	initStringInfo(&s);
	appendStringInfoString(&s, app_secret);
	appendStringInfoString(&s, path);
	for (i = 0; i < nparams; i++)
		appendStringInfo(&s, "%s%s", params[i].key, params[i].value);
	if (req->body != NULL && req->body_len > 0)
		appendBinaryStringInfo(&s, req->body, (int) req->body_len);
	appendStringInfoString(&s, app_secret);
	sign = HmacSha256Hex(app_secret, strlen(app_secret), s.data, s.len);

	initStringInfo(&url);
	appendStringInfoString(&url, base);
	for (i = 0; i < nparams; i++)
		appendStringInfo(&url, "%c%s=%s", i == 0 ? '?' : '&', UrlEncode(params[i].key),
						 UrlEncode(params[i].value));
	appendStringInfo(&url, "&sign=%s", sign);
	old = MemoryContextSwitchTo(req->cxt);
	req->url = pstrdup(url.data);
	MemoryContextSwitchTo(old);
	HttpAddHeader(req, "x-tts-access-token: %s", access_token);

	/* the signed string holds the secret: do not leave it around */
	memset(s.data, 0, s.len);
	pfree(s.data);
}

/* order pull limits */
#define TIKTOK_PAGE_SIZE	50		/* orders per page (1-100) */
#define TIKTOK_MAX_PAGES	2000
#define TIKTOK_MAX_UNITS	1000	/* line items read per order */
#define TIKTOK_TOKEN_MAX	4096

/* OrdersSearchUrl: a page of Get Order List (the token URL-encoded) */
static char *
OrdersSearchUrl(ChannelConfig *ch, const char *page_token)
{
	char	   *url = JoinUrl(ch->endpoint,
							  psprintf("/order/202309/orders/search?page_size=%d"
									   "&sort_field=update_time&sort_order=ASC", TIKTOK_PAGE_SIZE));

	if (page_token != NULL && *page_token != '\0')
		url = psprintf("%s&page_token=%s", url, UrlEncode(page_token));
	return url;
}

/* SearchRequest: a Get Order List request of the state's window */
static void
SearchRequest(ChannelConfig *ch, OcJson *state, const char *page_token, OutRequest *out)
{
	OcJson	   *body = OcJsonNewObject();
	int64		since = 0,
				until = 0;

	(void) OcJsonInt(OcJsonGet(state, "since_epoch"), &since);
	(void) OcJsonInt(OcJsonGet(state, "until_epoch"), &until);
	OcJsonSetInt(body, "update_time_ge", since);
	OcJsonSetInt(body, "update_time_lt", until);
	out->method = "POST";
	out->url = OrdersSearchUrl(ch, page_token);
	OutRequestHeader(out, "Content-Type: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
}

/*
 * TikTokBuildPull
 *		The first page of the window, or the one order asked for.
 */
static void
TikTokBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = OcJsonString(OcJsonGet(state, "order_id"));

	if (order_id != NULL)
	{
		out->method = "GET";
		out->url = JoinUrl(ch->endpoint, psprintf("/order/202309/orders?ids=%s", UrlEncode(order_id)));
		OutRequestHeader(out, "Content-Type: application/json");
		return;
	}
	OcJsonSetInt(state, "pages", 1);
	OcJsonSetString(state, "page_token", "");
	SearchRequest(ch, state, NULL, out);
}

/* TtsSetString: copy a string member (bounded) when present and not blank */
static void
TtsSetString(OcJson *dst, const char *key, OcJson *value, size_t max)
{
	const char *s = OcJsonString(value);
	const char *p;

	if (s == NULL)
		return;
	for (p = s; *p == ' '; p++)
		;
	if (*p != '\0')
		OcJsonSetString(dst, key, strlen(s) > max ? pnstrdup(s, max) : s);
}

/* TtsIs: a string member equals v */
static bool
TtsIs(OcJson *value, const char *v)
{
	const char *s = OcJsonString(value);

	return s != NULL && strcmp(s, v) == 0;
}

/* TtsDistrict: the address_name of a district_info level ("L1"), or NULL */
static OcJson *
TtsDistrict(OcJson *addr, const char *level)
{
	OcJson	   *info = OcJsonGet(addr, "district_info");
	int			i;

	for (i = 0; i < OcJsonLength(info) && i < 16; i++)
		if (TtsIs(OcJsonGet(OcJsonAt(info, i), "address_level"), level))
			return OcJsonGet(OcJsonAt(info, i), "address_name");
	return NULL;
}

/* TtsMoney: a money member as a decimal string, 0 when absent or blank */
static bool
TtsMoney(OcJson *value, char **out)
{
	const char *s = OcJsonString(value);

	if (value == NULL || (s != NULL && *s == '\0'))
	{
		*out = "0";
		return true;
	}
	*out = DecimalOf(value);
	return *out != NULL;
}

/* one output line: the units of one SKU */
typedef struct TtsLine
{
	const char *key;			/* sku_id, else seller_sku */
	const char *sku;
	const char *external_id;
	int64		quantity;
	char	   *gross;			/* sale prices + discounts */
	char	   *tax;
	char	   *discount;
} TtsLine;

/*
 * TikTokNormalize
 *		One TikTok order as a normalized order; false (with *error) when it
 *		is not an order at all, *skip when it is not to be imported.
 */
static bool
TikTokNormalize(OcJson *o, OcJson *out, bool *skip, char **error)
{
	const char *id = OcJsonString(OcJsonGet(o, "id"));
	const char *status = OcJsonString(OcJsonGet(o, "status"));
	OcJson	   *items = OcJsonGet(o, "line_items");
	OcJson	   *pay = OcJsonGet(o, "payment");
	OcJson	   *ra = OcJsonGet(o, "recipient_address");
	const char *user = OcJsonString(OcJsonGet(o, "user_id"));
	const char *option = OcJsonString(OcJsonGet(o, "delivery_option_name"));
	int			n = OcJsonLength(items);
	int			i,
				k,
				nout = 0;
	int64		created,
				paid = 0,
				priority = 0;
	bool		cancelled;
	TtsLine    *acc;
	char	   *sum_items = NULL,
			   *sum_disc = NULL,
			   *sum_tax = NULL,
			   *v;
	OcJson	   *buyer,
			   *addr,
			   *totals,
			   *outlines,
			   *sla;

	*skip = false;
	if (id == NULL || *id == '\0' || strlen(id) > 255 || status == NULL || strlen(status) > 64)
	{
		*error = "an order without an id or a status";
		return false;
	}
	if (n <= 0 || n > TIKTOK_MAX_UNITS)
	{
		*error = psprintf("order %s: no line_items array, or more than %d line items", id,
						  TIKTOK_MAX_UNITS);
		return false;
	}
	if (!OcJsonInt(OcJsonGet(o, "create_time"), &created) || created <= 0)
	{
		*error = psprintf("order %s: no valid create_time", id);
		return false;
	}
	cancelled = strcmp(status, "CANCELLED") == 0;
	if (strcmp(status, "UNPAID") == 0 || strcmp(status, "ON_HOLD") == 0 ||
		TtsIs(OcJsonGet(o, "fulfillment_type"), "FULFILLMENT_BY_TIKTOK") ||
		(cancelled && !(OcJsonInt(OcJsonGet(o, "paid_time"), &paid) && paid > 0)))
	{
		*skip = true;
		return true;
	}

	/* the units, summed per SKU */
	acc = palloc0(sizeof(TtsLine) * n);
	for (i = 0; i < n; i++)
	{
		OcJson	   *li = OcJsonAt(items, i);
		OcJson	   *taxes = OcJsonGet(li, "item_tax");
		const char *sku_id = OcJsonString(OcJsonGet(li, "sku_id"));
		const char *seller_sku = OcJsonString(OcJsonGet(li, "seller_sku"));
		const char *lid = OcJsonString(OcJsonGet(li, "id"));
		const char *key;
		char	   *price,
				   *sd,
				   *pd,
				   *tax = NULL;
		TtsLine    *l = NULL;

		if (!cancelled && TtsIs(OcJsonGet(li, "display_status"), "CANCELLED"))
			continue;
		if (seller_sku != NULL && *seller_sku == '\0')
			seller_sku = NULL;
		key = sku_id && *sku_id ? sku_id : seller_sku;
		if (key == NULL || strlen(key) > 255 || (seller_sku && strlen(seller_sku) > 255) ||
			lid == NULL || strlen(lid) > 255 ||
			OcJsonGet(li, "sale_price") == NULL || !TtsMoney(OcJsonGet(li, "sale_price"), &price) ||
			!TtsMoney(OcJsonGet(li, "seller_discount"), &sd) ||
			!TtsMoney(OcJsonGet(li, "platform_discount"), &pd))
		{
			*error = psprintf("order %s: line item %d has no id, SKU or valid prices", id, i + 1);
			return false;
		}
		for (k = 0; k < OcJsonLength(taxes) && k < 16; k++)
		{
			char	   *t;

			if (!TtsMoney(OcJsonGet(OcJsonAt(taxes, k), "tax_amount"), &t))
			{
				*error = psprintf("order %s: line item %d has an invalid tax_amount", id, i + 1);
				return false;
			}
			tax = DecimalAdd(tax, t);
		}
		for (k = 0; k < nout; k++)
			if (strcmp(acc[k].key, key) == 0)
				l = &acc[k];
		if (l == NULL)
		{
			l = &acc[nout++];
			l->key = key;
			l->sku = seller_sku ? seller_sku : sku_id;
			l->external_id = lid;
		}
		l->quantity++;
		l->gross = DecimalAdd(l->gross, DecimalAdd(price, DecimalAdd(sd, pd)));
		l->discount = DecimalAdd(l->discount, DecimalAdd(sd, pd));
		if (tax != NULL)
			l->tax = DecimalAdd(l->tax, tax);
	}
	if (nout == 0)
	{
		*error = psprintf("order %s (%s) has no line item left", id, status);
		return false;
	}

	OcJsonSetString(out, "external_id", id);
	OcJsonSetString(out, "status", status);
	OcJsonSetBool(out, "cancelled", cancelled);
	OcJsonSetString(out, "ordered_at", IsoFromEpoch(created));
	TtsSetString(out, "currency", OcJsonGet(pay, "currency"), 8);

	buyer = OcJsonSetObject(out, "buyer");
	TtsSetString(buyer, "id", OcJsonGet(o, "user_id"), 255);
	TtsSetString(buyer, "name", OcJsonGet(ra, "name"), 255);
	if (OcJsonGet(buyer, "name") == NULL && cancelled && user != NULL && strlen(user) < 200)
		OcJsonSetString(buyer, "name", psprintf("TikTok buyer %s", user));
	TtsSetString(buyer, "email", OcJsonGet(o, "buyer_email"), 254);
	TtsSetString(buyer, "phone", OcJsonGet(ra, "phone_number"), 64);

	if (OcJsonIsObject(ra))
	{
		OcJson	   *city = TtsDistrict(ra, "L3");

		addr = OcJsonSetObject(out, "shipping_address");
		TtsSetString(addr, "name", OcJsonGet(ra, "name"), 255);
		if (OcJsonString(OcJsonGet(ra, "address_line1")) != NULL)
			TtsSetString(addr, "street", OcJsonGet(ra, "address_line1"), 255);
		else
			TtsSetString(addr, "street", OcJsonGet(ra, "address_detail"), 255);
		TtsSetString(addr, "street2", OcJsonGet(ra, "address_line2"), 255);
		TtsSetString(addr, "city", city ? city : TtsDistrict(ra, "L2"), 128);
		TtsSetString(addr, "state", TtsDistrict(ra, "L1"), 128);
		TtsSetString(addr, "zip", OcJsonGet(ra, "postal_code"), 32);
		TtsSetString(addr, "country", OcJsonGet(ra, "region_code"), 64);
		TtsSetString(addr, "phone", OcJsonGet(ra, "phone_number"), 64);
	}

	sla = OcJsonSetArray(out, "sla");
	(void) OcJsonInt(OcJsonGet(o, "fulfillment_priority_level"), &priority);
	if (priority > 0 && priority <= 300)
		OcJsonAppendString(sla, "same_day");
	else if (priority == 400)
		OcJsonAppendString(sla, "next_day");
	else if (option != NULL && strstr(option, "Express") != NULL)
		OcJsonAppendString(sla, "expedited");

	outlines = OcJsonSetArray(out, "lines");
	for (k = 0; k < nout; k++)
	{
		OcJson	   *l = OcJsonAppendObject(outlines);

		OcJsonSetString(l, "external_id", acc[k].external_id);
		OcJsonSetString(l, "sku", acc[k].sku);
		OcJsonSetInt(l, "quantity", acc[k].quantity);
		OcJsonSetString(l, "unit_price", DecimalDivInt(acc[k].gross, acc[k].quantity, 6));
		if (acc[k].tax != NULL)
			OcJsonSetString(l, "tax", acc[k].tax);
		if (DecimalCmp(acc[k].discount, "0") != 0)
			OcJsonSetString(l, "discount", acc[k].discount);
		sum_items = DecimalAdd(sum_items, acc[k].gross);
		sum_disc = DecimalAdd(sum_disc, acc[k].discount);
		if (acc[k].tax != NULL)
			sum_tax = DecimalAdd(sum_tax, acc[k].tax);
	}

	totals = OcJsonSetObject(out, "totals");
	OcJsonSetString(totals, "items", sum_items);
	if (DecimalCmp(sum_disc, "0") != 0)
		OcJsonSetString(totals, "discount", sum_disc);
	if (OcJsonGet(pay, "shipping_fee") != NULL && TtsMoney(OcJsonGet(pay, "shipping_fee"), &v) &&
		DecimalCmp(v, "0") != 0)
		OcJsonSetString(totals, "shipping", v);
	if (OcJsonGet(pay, "tax") != NULL && TtsMoney(OcJsonGet(pay, "tax"), &v))
		OcJsonSetString(totals, "tax", v);
	else if (sum_tax != NULL)
		OcJsonSetString(totals, "tax", sum_tax);
	if (OcJsonGet(pay, "total_amount") != NULL && TtsMoney(OcJsonGet(pay, "total_amount"), &v))
		OcJsonSetString(totals, "total", v);
	OcJsonSetCopy(out, "raw", o);
	return true;
}

/*
 * TtsEnvelopeError
 *		The message of a non-zero envelope code (or an unreadable answer),
 *		NULL when the answer is a success.
 */
static char *
TtsEnvelopeError(OcJson *doc, const char *perr)
{
	int64		code = -1;
	const char *m;

	if (doc == NULL)
		return psprintf("TikTok answered with an unreadable body: %s", perr);
	if (!OcJsonInt(OcJsonGet(doc, "code"), &code))
		return "TikTok's answer has no \"code\"";
	if (code == 0)
		return NULL;
	m = OcJsonString(OcJsonGet(doc, "message"));
	return psprintf("TikTok %lld: %s", (long long) code, m ? m : "no message");
}

/*
 * TikTokParsePull
 *		A page of Get Order List (or the Get Order Detail answer): its
 *		orders, and the next page while next_page_token is not empty.
 */
static bool
TikTokParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
				OutRequest *next, char **error)
{
	char	   *perr = NULL;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	char	   *bad = TtsEnvelopeError(doc, perr);
	OcJson	   *data;
	OcJson	   *list;
	const char *token;
	int			i,
				n;
	int64		pages = 1;

	if (bad != NULL)
	{
		*error = bad;
		return false;
	}
	data = OcJsonGet(doc, "data");
	list = OcJsonGet(data, "orders");
	n = list == NULL ? 0 : OcJsonLength(list);
	if (!OcJsonIsObject(data) || n < 0 || n > 100)
	{
		*error = "TikTok's answer has no data object with an orders array of at most 100";
		return false;
	}
	for (i = 0; i < n; i++)
	{
		OcJson	   *out = OcJsonNewObject();
		bool		skip;

		if (!TikTokNormalize(OcJsonAt(list, i), out, &skip, error))
			return false;
		if (!skip)
			OcJsonAppendCopy(orders, out);
	}
	if (OcJsonGet(state, "order_id") != NULL)
		return false;

	PullPageCounted(state, OcJsonGet(data, "total_count"), n);
	token = OcJsonString(OcJsonGet(data, "next_page_token"));
	if (token == NULL || *token == '\0' || n == 0)
		return false;
	(void) OcJsonInt(OcJsonGet(state, "pages"), &pages);
	if (strlen(token) > TIKTOK_TOKEN_MAX || pages >= TIKTOK_MAX_PAGES)
	{
		*error = psprintf("TikTok's order list goes on after %lld pages, or its next_page_token is too long",
						  (long long) pages);
		return false;
	}
	OcJsonSetInt(state, "pages", pages + 1);
	OcJsonSetString(state, "page_token", token);
	SearchRequest(ch, state, token, next);
	return true;
}

/*
 * TikTokBuildCancel
 *		Cancel Order for the units of the stored order not cancelled yet;
 *		refused when TikTok already shows the order as shipped.
 */
static bool
TikTokBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error)
{
	static const char *const shipped[] = {"PARTIALLY_SHIPPING", "AWAITING_COLLECTION", "IN_TRANSIT",
	"DELIVERED", "COMPLETED", NULL};
	OcJson	   *raw = OcJsonGet(order, "raw");
	const char *id = OcJsonString(OcJsonGet(raw, "id"));
	const char *status = OcJsonString(OcJsonGet(raw, "status"));
	OcJson	   *items = OcJsonGet(raw, "line_items");
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *ids;
	int			i;

	if (id == NULL)
		id = OcJsonString(OcJsonGet(order, "external_id"));
	if (id == NULL)
	{
		*error = "the order has no id";
		return false;
	}
	for (i = 0; status != NULL && shipped[i] != NULL; i++)
		if (strcmp(status, shipped[i]) == 0)
		{
			*error = psprintf("TikTok does not let a seller cancel an order once shipped (%s)", status);
			return false;
		}
	OcJsonSetString(body, "order_id", id);
	ids = OcJsonSetArray(body, "order_line_item_ids");
	for (i = 0; i < OcJsonLength(items) && i < TIKTOK_MAX_UNITS; i++)
	{
		OcJson	   *li = OcJsonAt(items, i);
		const char *lid = OcJsonString(OcJsonGet(li, "id"));

		if (lid != NULL && !TtsIs(OcJsonGet(li, "display_status"), "CANCELLED"))
			OcJsonAppendString(ids, lid);
	}
	if (OcJsonLength(ids) == 0)
	{
		*error = "TikTok: every line item of the order is cancelled already";
		return false;
	}
	OcJsonSetString(body, "cancel_reason", "seller_cancel_reason_out_of_stock");
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, "/return_refund/202309/cancellations");
	OutRequestHeader(out, "Content-Type: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
	return true;
}

/* TikTokParseCancel: envelope code 0 with data.cancel_id = done */
static bool
TikTokParseCancel(ChannelConfig *ch, HttpRequest *req, char **error)
{
	char	   *perr = NULL;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	char	   *bad = TtsEnvelopeError(doc, perr);

	if (bad != NULL)
	{
		*error = psprintf("TikTok refused the cancellation: %s", bad);
		return false;
	}
	return true;
}
