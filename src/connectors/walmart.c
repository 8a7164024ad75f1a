/*-------------------------------------------------------------------------
 *
 * walmart.c
 *	  Walmart connector: Marketplace API (US), inventory.
 *
 * Stock push, up to 500 listings per push:
 *
 *	- one listing: PUT /v3/inventory?sku=<sku>[&shipNode=<ship_node>] with
 *	  {"sku", "quantity": {"unit": "EACH", "amount": n}}, answered 200 with
 *	  the same document, or an error {"errors": [{code, message, ...}]};
 *	- more: the inventory feed (spec 1.4), POST /v3/feeds?feedType=inventory
 *	  [&shipNode=] with a multipart/form-data "file" part holding
 *	  {"InventoryHeader": {"version": "1.4"}, "Inventory": [...]}, answered
 *	  {"feedId"}; then the feed's status is polled (next_step, every
 *	  feed_poll_interval) with GET /v3/feeds/{feedId}?includeDetails=true&offset=
 *	  &limit=50 until it is PROCESSED (or ERROR), reading every page of
 *	  itemDetails.itemIngestionStatus[] (sku, ingestionStatus,
 *	  ingestionErrors.ingestionError[]) back onto the listings.  Results of
 *	  earlier pages ride along in the job payload.
 *
 * Auth: client-credentials token, POST /v3/token (Basic client_id:secret,
 * form grant_type=client_credentials), 900 s; every call carries
 * WM_SEC.ACCESS_TOKEN, WM_SVC.NAME and a fresh WM_QOS.CORRELATION_ID (a
 * random UUID per request, retries included), added at send time.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "lib/stringinfo.h"

#include "../connector.h"

#define WALMART_BATCH		500
#define WALMART_PAGE		50	/* itemIngestionStatus entries per status page (max 50) */
#define WALMART_MAX_POLLS	120 /* status polls before giving up on a feed */
#define WALMART_DEFAULT_POLL_S 10.0
#define WALMART_SVC_NAME	"Walmart Marketplace"

/* keys a status page leaves on payload items (results of earlier pages) */
#define CARRIED_STATUS	"_omnichan_wm_status"
#define CARRIED_ERROR	"_omnichan_wm_error"

static void WalmartBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void WalmartParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static bool WalmartNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
							PushItem *items, int n, OutRequest *next);
static void WalmartBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req);
static bool WalmartParseToken(HttpRequest *req, char **token, int *expires_in, char **error);
static void WalmartAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);

const Connector WalmartConnector = {
	.kind = "walmart",
	.push_batch = WALMART_BATCH,
	.build_push = WalmartBuildPush,
	.parse_push = WalmartParsePush,
	.next_step = WalmartNextStep,
	.needs_token = true,
	.build_token = WalmartBuildToken,
	.parse_token = WalmartParseToken,
	.authorize = WalmartAuthorize,
};

/*
 * NewUuid
 *		A random (version 4) UUID from pg_strong_random, for correlation ids
 *		and multipart boundaries.
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

/* CommonHeaders: the non-secret headers of every API call */
static void
CommonHeaders(OutRequest *out)
{
	OutRequestHeader(out, "WM_SVC.NAME: %s", WALMART_SVC_NAME);
	OutRequestHeader(out, "Accept: application/json");
}

/* ShipNodeQuery: "&shipNode=<node>" when the channel names one, else "" */
static char *
ShipNodeQuery(ChannelConfig *ch)
{
	const char *node = SettingString(ch, "ship_node");

	return node ? psprintf("&shipNode=%s", UrlEncode(node)) : "";
}

/* StatusUrl: a feed status page */
static char *
StatusUrl(ChannelConfig *ch, const char *feed_id, int offset)
{
	return JoinUrl(ch->endpoint,
				   psprintf("/v3/feeds/%s?includeDetails=true&offset=%d&limit=%d",
							UrlEncode(feed_id), offset, WALMART_PAGE));
}

/* PollDelayMs: the channel's feed_poll_interval (seconds), in ms */
static int
PollDelayMs(ChannelConfig *ch)
{
	double		secs = WALMART_DEFAULT_POLL_S;

	(void) OcJsonNumber(OcJsonGet(ch->settings, "feed_poll_interval"), &secs);
	return (int) (Min(Max(secs, 0.1), 3600.0) * 1000);
}

/*
 * WalmartBuildPush
 *		One listing: a PUT of its inventory; more: an inventory feed.
 */
static void
WalmartBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	out->operation = "stock_push";
	if (n == 1)
	{
		OcJson	   *body = OcJsonNewObject();
		OcJson	   *q;

		OcJsonSetString(body, "sku", items[0].sku);
		q = OcJsonSetObject(body, "quantity");
		OcJsonSetString(q, "unit", "EACH");
		OcJsonSetInt(q, "amount", items[0].quantity);
		out->method = "PUT";
		out->url = JoinUrl(ch->endpoint, psprintf("/v3/inventory?sku=%s%s",
												  UrlEncode(items[0].sku), ShipNodeQuery(ch)));
		CommonHeaders(out);
		OutRequestHeader(out, "Content-Type: application/json");
		out->body = OcJsonDump(body);
		out->body_len = strlen(out->body);
	}
	else
	{
		OcJson	   *feed = OcJsonNewObject();
		OcJson	   *inventory;
		char	   *boundary = psprintf("omnichan-%s", NewUuid());
		StringInfoData body;
		int			i;

		OcJsonSetString(OcJsonSetObject(feed, "InventoryHeader"), "version", "1.4");
		inventory = OcJsonSetArray(feed, "Inventory");
		for (i = 0; i < n; i++)
		{
			OcJson	   *e = OcJsonAppendObject(inventory);
			OcJson	   *q;

			OcJsonSetString(e, "sku", items[i].sku);
			q = OcJsonSetObject(e, "quantity");
			OcJsonSetString(q, "unit", "EACH");
			OcJsonSetInt(q, "amount", items[i].quantity);
		}
		initStringInfo(&body);
		appendStringInfo(&body,
						 "--%s\r\n"
						 "Content-Disposition: form-data; name=\"file\"; filename=\"inventory.json\"\r\n"
						 "Content-Type: application/json\r\n\r\n"
						 "%s\r\n"
						 "--%s--\r\n",
						 boundary, OcJsonDump(feed), boundary);
		out->method = "POST";
		out->url = JoinUrl(ch->endpoint, psprintf("/v3/feeds?feedType=inventory%s", ShipNodeQuery(ch)));
		CommonHeaders(out);
		OutRequestHeader(out, "Content-Type: multipart/form-data; boundary=%s", boundary);
		out->body = body.data;
		out->body_len = body.len;
	}
}

/*
 * IngestionError
 *		The message of a failed itemIngestionStatus entry.
 */
static char *
IngestionError(OcJson *entry, const char *status)
{
	OcJson	   *e = OcJsonPath(entry, "ingestionErrors.ingestionError.0");
	const char *code = OcJsonString(OcJsonGet(e, "code"));
	const char *desc = OcJsonString(OcJsonGet(e, "description"));

	if (e == NULL)
		return psprintf("Walmart feed: %s", status);
	return psprintf("Walmart feed %s%s%s: %s", status, code ? " " : "", code ? code : "",
					desc ? desc : "no description");
}

/*
 * RecordPage
 *		Copies a status page's itemIngestionStatus results onto the items
 *		(their payload entries), matched by SKU.
 */
static void
RecordPage(OcJson *doc, PushItem *items, int n)
{
	OcJson	   *list = OcJsonPath(doc, "itemDetails.itemIngestionStatus");
	int			count = OcJsonLength(list);
	int			i,
				k;

	for (i = 0; i < count; i++)
	{
		OcJson	   *entry = OcJsonAt(list, i);
		const char *sku = OcJsonString(OcJsonGet(entry, "sku"));
		const char *status = OcJsonString(OcJsonGet(entry, "ingestionStatus"));

		if (sku == NULL || status == NULL)
			continue;
		for (k = 0; k < n; k++)
		{
			if (strcmp(items[k].sku, sku) != 0)
				continue;
			OcJsonSetString(items[k].external, CARRIED_STATUS, status);
			if (strcmp(status, "SUCCESS") != 0)
				OcJsonSetString(items[k].external, CARRIED_ERROR, IngestionError(entry, status));
		}
	}
}

/* FeedPending: the feed is still being processed */
static bool
FeedPending(OcJson *doc)
{
	const char *status = OcJsonString(OcJsonGet(doc, "feedStatus"));
	int64		processing = 0;

	if (status == NULL)
		return false;
	if (strcmp(status, "RECEIVED") == 0 || strcmp(status, "INPROGRESS") == 0)
		return true;
	(void) OcJsonInt(OcJsonGet(doc, "itemsProcessing"), &processing);
	return strcmp(status, "PROCESSED") == 0 && processing > 0;
}

/*
 * WalmartNextStep
 *		Feed submitted: poll its status; status pending: poll again later;
 *		processed: read the next page of item results, if any.
 */
static bool
WalmartNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
				PushItem *items, int n, OutRequest *next)
{
	char	   *error;
	OcJson	   *doc;
	const char *feed_id;
	int64		polls = 0,
				offset = 0,
				received = 0;

	if (strcmp(req->method, "PUT") == 0)
		return false;
	doc = OcJsonParse(req->response.data, req->response.len, &error);
	if (doc == NULL)
		return false;

	next->operation = "stock_push";
	next->method = "GET";
	CommonHeaders(next);

	if (strcmp(req->method, "POST") == 0)
	{
		feed_id = OcJsonString(OcJsonGet(doc, "feedId"));
		if (feed_id == NULL || *feed_id == '\0')
			return false;
		OcJsonSetString(payload, "step", "status");
		OcJsonSetString(payload, "feed_id", feed_id);
		OcJsonSetInt(payload, "polls", 0);
		OcJsonSetInt(payload, "offset", 0);
		next->url = StatusUrl(ch, feed_id, 0);
		next->delay_ms = PollDelayMs(ch);
		return true;
	}

	/* a status page */
	feed_id = OcJsonString(OcJsonGet(payload, "feed_id"));
	if (feed_id == NULL)
		return false;
	(void) OcJsonInt(OcJsonGet(payload, "polls"), &polls);
	(void) OcJsonInt(OcJsonGet(payload, "offset"), &offset);
	if (FeedPending(doc))
	{
		if (polls + 1 >= WALMART_MAX_POLLS)
			return false;		/* parse_push says it is still pending */
		OcJsonSetInt(payload, "polls", polls + 1);
		next->url = StatusUrl(ch, feed_id, (int) offset);
		next->delay_ms = PollDelayMs(ch);
		return true;
	}
	RecordPage(doc, items, n);
	(void) OcJsonInt(OcJsonGet(doc, "itemsReceived"), &received);
	if (OcJsonLength(OcJsonPath(doc, "itemDetails.itemIngestionStatus")) > 0 &&
		offset + WALMART_PAGE < Min(received, (int64) n))
	{
		OcJsonSetInt(payload, "offset", offset + WALMART_PAGE);
		next->url = StatusUrl(ch, feed_id, (int) (offset + WALMART_PAGE));
		next->delay_ms = 0;
		return true;
	}
	return false;
}

/* ClassOfStatus: retry throttles, server errors; credentials on 401/403 */
static ItemErrorClass
ClassOfStatus(int status)
{
	if (status == 401 || status == 403)
		return ITEM_ERROR_CREDENTIALS;
	if (status == 429 || status >= 500 || status < 400)
		return ITEM_ERROR_RETRY;
	return ITEM_ERROR_FIX;
}

/*
 * WalmartParsePush
 *		PUT: the answer as a whole; feed: the items' ingestion results.
 */
static void
WalmartParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	char	   *error;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &error);
	const char *feed_status;
	int			k;

	/* an error answer: {"errors": [{code, message, ...}]} */
	if (req->status >= 300 || doc == NULL)
	{
		const char *code = OcJsonString(OcJsonPath(doc, "errors.0.code"));
		const char *msg = OcJsonString(OcJsonPath(doc, "errors.0.message"));
		char	   *text;

		if (msg == NULL)
			msg = OcJsonString(OcJsonPath(doc, "errors.0.description"));
		text = doc == NULL
			? psprintf("Walmart answered HTTP %d with an unreadable body (%s)", req->status, error)
			: psprintf("Walmart %d %s: %s", req->status, code ? code : "error", msg ? msg : "no message");
		for (k = 0; k < n; k++)
		{
			items[k].ok = false;
			items[k].error = text;
			items[k].error_class = doc == NULL ? ITEM_ERROR_RETRY : ClassOfStatus(req->status);
		}
		return;
	}

	if (strcmp(req->method, "PUT") == 0)
	{
		OcJson	   *amount = OcJsonPath(doc, "quantity.amount");
		int64		v;

		for (k = 0; k < n; k++)
		{
			if (OcJsonInt(amount, &v) && v == items[k].quantity)
				items[k].ok = true;
			else
			{
				items[k].error = "Walmart did not echo the quantity sent";
				items[k].error_class = ITEM_ERROR_RETRY;
			}
		}
		return;
	}

	if (strcmp(req->method, "POST") == 0)
	{
		/* a feed submission without a feedId */
		for (k = 0; k < n; k++)
		{
			items[k].error = "Walmart accepted the inventory feed without a feedId";
			items[k].error_class = ITEM_ERROR_RETRY;
		}
		return;
	}

	/* the last status page (or one still pending after every poll) */
	feed_status = OcJsonString(OcJsonGet(doc, "feedStatus"));
	if (FeedPending(doc))
	{
		for (k = 0; k < n; k++)
		{
			items[k].error = psprintf("Walmart feed still %s after %d status polls",
									  feed_status, WALMART_MAX_POLLS);
			items[k].error_class = ITEM_ERROR_RETRY;
		}
		return;
	}
	RecordPage(doc, items, n);
	for (k = 0; k < n; k++)
	{
		const char *status = OcJsonString(OcJsonGet(items[k].external, CARRIED_STATUS));
		const char *msg = OcJsonString(OcJsonGet(items[k].external, CARRIED_ERROR));

		if (status != NULL && strcmp(status, "SUCCESS") == 0)
			items[k].ok = true;
		else if (status != NULL)
		{
			items[k].error = pstrdup(msg ? msg : status);
			/* DATA_ERROR needs a fix; TIMEOUT_ERROR, SYSTEM_ERROR (unverified) may pass later */
			items[k].error_class = strcmp(status, "DATA_ERROR") == 0 ? ITEM_ERROR_FIX : ITEM_ERROR_RETRY;
		}
		else
		{
			items[k].error = psprintf("Walmart feed %s did not report on this SKU",
									  feed_status ? feed_status : "(no status)");
			items[k].error_class = ITEM_ERROR_RETRY;
		}
	}
}

/*
 * WalmartBuildToken
 *		Client-credentials grant: Basic client_id:client_secret, form body.
 */
static void
WalmartBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req)
{
	const char *id = SecretString(secrets, "client_id");
	const char *secret = SecretString(secrets, "client_secret");
	char	   *pair = psprintf("%s:%s", id, secret);
	const char *body = "grant_type=client_credentials";

	HttpAddHeader(req, "Authorization: Basic %s", Base64Encode(pair, strlen(pair)));
	HttpAddHeader(req, "WM_SVC.NAME: %s", WALMART_SVC_NAME);
	HttpAddHeader(req, "WM_QOS.CORRELATION_ID: %s", NewUuid());
	HttpAddHeader(req, "Accept: application/json");
	HttpAddHeader(req, "Content-Type: application/x-www-form-urlencoded");
	HttpSetBody(req, body, strlen(body));
}

/* WalmartParseToken: {"access_token", "token_type", "expires_in"} */
static bool
WalmartParseToken(HttpRequest *req, char **token, int *expires_in, char **error)
{
	static const char *const errors[] = {"errors.0.message", "error.0.description", NULL};

	return ParseAccessToken(req, "Walmart", 900, errors, token, expires_in, error);
}

/* WalmartAuthorize: the access token and a fresh correlation id */
static void
WalmartAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	HttpAddHeader(req, "WM_SEC.ACCESS_TOKEN: %s", token);
	HttpAddHeader(req, "WM_QOS.CORRELATION_ID: %s", NewUuid());
}
