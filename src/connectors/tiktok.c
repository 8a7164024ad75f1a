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
 * Auth: every request carries the query parameters app_key, timestamp
 * (seconds), shop_cipher (channel setting) and sign, and the header
 * x-tts-access-token (the access_token credential).  The signature is
 * computed at send time (authorize), MARKETPLACE_APIS.md section 5.1:
 * hex(HMAC-SHA256(app_secret, app_secret + path + sorted key+value pairs
 * (without sign and access_token) + body + app_secret)).  No token refresh
 * is implemented: the access_token credential is used as it is, and its
 * expiry (105002) is reported as a credentials error on the listings.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

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

const Connector TikTokConnector = {
	.kind = "tiktok",
	.push_batch = TIKTOK_BATCH,
	.build_push = TikTokBuildPush,
	.parse_push = TikTokParsePush,
	.throttled = TikTokThrottled,
	.needs_token = false,
	.authorize = TikTokAuthorize,
	.push_group = "product_id",
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

/*
 * TikTokAuthorize
 *		Query parameters and signature, access token header: at send time
 *		only (the job row keeps the unsigned URL).
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
	char	   *sign;
	MemoryContext old;

	/* the URL as queued, without any query */
	q = strchr(req->url, '?');
	base = q ? pnstrdup(req->url, q - req->url) : pstrdup(req->url);
	scheme = strstr(base, "://");
	path = scheme ? strchr(scheme + 3, '/') : NULL;
	if (path == NULL)
		path = "/";

	/* app_secret + path + sorted key+value pairs + body + app_secret */
	initStringInfo(&s);
	appendStringInfoString(&s, app_secret);
	appendStringInfoString(&s, path);
	appendStringInfo(&s, "app_key%s", app_key);
	if (cipher != NULL)
		appendStringInfo(&s, "shop_cipher%s", cipher);
	appendStringInfo(&s, "timestamp%s", timestamp);
	if (req->body != NULL && req->body_len > 0)
		appendBinaryStringInfo(&s, req->body, (int) req->body_len);
	appendStringInfoString(&s, app_secret);
	sign = HmacSha256Hex(app_secret, strlen(app_secret), s.data, s.len);

	old = MemoryContextSwitchTo(req->cxt);
	req->url = psprintf("%s?app_key=%s%s%s&sign=%s&timestamp=%s", base, UrlEncode(app_key),
						cipher ? "&shop_cipher=" : "", cipher ? UrlEncode(cipher) : "",
						sign, timestamp);
	MemoryContextSwitchTo(old);
	HttpAddHeader(req, "x-tts-access-token: %s", access_token);

	/* the signed string holds the secret: do not leave it around */
	memset(s.data, 0, s.len);
	pfree(s.data);
}
