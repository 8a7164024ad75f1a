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
 * Order pull: GET /v3/orders?lastModifiedStartDate=<since>&lastModifiedEndDate=
 * <until>&createdStartDate=<until - 179 days>&limit=200 (createdStartDate:
 * the API's default is now - 7 days, which would hide older orders modified
 * in the window; orders older than 180 days cannot be listed at all), then
 * every page by appending list.meta.nextCursor (a query string beginning
 * with "?") verbatim to /v3/orders, until an answer has no nextCursor; one
 * order by id: GET /v3/orders/{purchaseOrderId} ({"order": {...}}).  The
 * default shipNodeType (SellerFulfilled) leaves Walmart-fulfilled (WFS)
 * orders out; one that comes anyway (shipNode.type WFSFulfilled) is skipped:
 * Walmart ships it from its own stock, not from the merchant's warehouses.
 * Dates are epoch milliseconds; money is {currency, amount (a JSON number)}.
 *
 * Walmart has no order status, only line statuses
 * (orderLineStatuses.orderLineStatus[]: Created, Acknowledged, Shipped,
 * Delivered, Cancelled, Refund, each with a statusQuantity).  The order's
 * "status" is derived from them: "Cancelled" (and "cancelled": true) when
 * every unit of every line is cancelled; otherwise the cancelled units are
 * left out of the lines (a fully cancelled line is dropped) and the status
 * is "Delivered" when every remaining unit is delivered, "Shipped" when any
 * unit is shipped or delivered (or refunded, which happens after shipment),
 * "Acknowledged" when any line is acknowledged, else "Created".  Walmart
 * only releases paid orders, so none is skipped for payment.
 *
 * Charges are per line: a PRODUCT charge (ItemPrice) is the amount of the
 * line's whole orderLineQuantity (unit price = amount / quantity; what the
 * spec says of chargeAmount and MARKETPLACE_APIS.md section 4.3: "per line");
 * a negative PRODUCT charge (e.g. SubscriptionDiscount) is a discount;
 * SHIPPING charges go to totals.shipping; every charge's tax.taxAmount is
 * tax (of the line for PRODUCT charges).  A partly cancelled line keeps the
 * share of its amounts of its remaining units.  Lines of the same SKU
 * (legacy orders have one line per unit) are summed into one line whose
 * external_id is the first lineNumber.  totals = the sums of the lines kept
 * (items, shipping, tax, discount; total = items + shipping + tax -
 * discount).  The address's 3-letter country ("USA") becomes ISO alpha-2.
 * shippingInfo.methodCode OneDay / NextDay sets "next_day", TwoDay
 * "two_day", Express "expedited"; a line's fulfillment.shippingProgramType
 * TWO_DAY / ONE_DAY / NEXT_DAY / SAME_DAY sets the same flags.  Buyer: id =
 * buyerId (else the relay e-mail customerEmailId), name = the shipping
 * name, e-mail = customerEmailId, phone = shippingInfo.phone.
 *
 * Cancellation by the merchant: POST /v3/orders/{purchaseOrderId}/cancel with
 * {"orderCancellation": {"orderLines": {"orderLine": [{lineNumber,
 * orderLineStatuses: {orderLineStatus: [{status: "Cancelled",
 * cancellationReason: "SELLER_CANCEL_OUT_OF_STOCK", statusQuantity}]}}]}}}
 * for every unit of the stored order not already shipped or cancelled; the
 * answer is the order with its cancelled lines.
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
static void WalmartBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool WalmartParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
							 OutRequest *next, char **error);
static bool WalmartBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
static bool WalmartParseCancel(ChannelConfig *ch, HttpRequest *req, char **error);

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
	.pull_operation = "order_pull",
	.pull_lag_s = 0,
	.build_pull = WalmartBuildPull,
	.parse_pull = WalmartParsePull,
	.build_cancel = WalmartBuildCancel,
	.parse_cancel = WalmartParseCancel,
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

/* order pull limits */
#define WALMART_ORDERS_LIMIT	200		/* orders per page (the API's maximum) */
#define WALMART_MAX_PAGES		250		/* 20 000 orders per query, with slack */
#define WALMART_MAX_LINES		1000	/* order lines read per order */
#define WALMART_MAX_UNITS		100000	/* units per line */
#define WALMART_CREATED_DAYS	179		/* orders created longer ago cannot be listed */
#define WALMART_CURSOR_MAX		4096

/*
 * WalmartBuildPull
 *		The first page of the window, or the one order asked for.
 */
static void
WalmartBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = OcJsonString(OcJsonGet(state, "order_id"));
	int64		until = 0;

	out->method = "GET";
	CommonHeaders(out);
	if (order_id != NULL)
	{
		out->url = JoinUrl(ch->endpoint, psprintf("/v3/orders/%s", UrlEncode(order_id)));
		return;
	}
	(void) OcJsonInt(OcJsonGet(state, "until_epoch"), &until);
	OcJsonSetInt(state, "pages", 1);
	out->url = JoinUrl(ch->endpoint,
					   psprintf("/v3/orders?lastModifiedStartDate=%s&lastModifiedEndDate=%s"
								"&createdStartDate=%s&limit=%d",
								UrlEncode(OcJsonString(OcJsonGet(state, "since"))),
								UrlEncode(OcJsonString(OcJsonGet(state, "until"))),
								UrlEncode(IsoFromEpoch(until - WALMART_CREATED_DAYS * 86400)),
								WALMART_ORDERS_LIMIT));
}

/* WmSetString: copy a string member (bounded) when present and not empty */
static void
WmSetString(OcJson *dst, const char *key, OcJson *value, size_t max)
{
	const char *s = OcJsonString(value);

	if (s != NULL && *s != '\0')
		OcJsonSetString(dst, key, strlen(s) > max ? pnstrdup(s, max) : s);
}

/* WmText: a string or an integer member as text, or NULL */
static char *
WmText(OcJson *value)
{
	const char *s = OcJsonString(value);
	int64		v;

	if (s != NULL)
		return pstrdup(s);
	if (OcJsonInt(value, &v))
		return psprintf("%lld", (long long) v);
	return NULL;
}

/*
 * WmCountry
 *		ISO 3166-1 alpha-2 of the country Walmart sends ("USA"); other
 *		values are passed on as they are (inbox_upsert names a wrong one).
 */
static const char *
WmCountry(const char *c)
{
	static const char *const map[][2] = {
		{"USA", "US"}, {"PRI", "PR"}, {"CAN", "CA"}, {"MEX", "MX"}, {"CHL", "CL"},
		{"GUM", "GU"}, {"VIR", "VI"}, {"ASM", "AS"}, {"MNP", "MP"}, {"GBR", "GB"},
		{"CRI", "CR"}, {"GTM", "GT"}, {"HND", "HN"}, {"NIC", "NI"}, {"SLV", "SV"},
		{"IND", "IN"}, {"ZAF", "ZA"}, {"CHN", "CN"}, {"JPN", "JP"}
	};
	int			i;

	for (i = 0; i < (int) lengthof(map); i++)
		if (pg_strcasecmp(c, map[i][0]) == 0)
			return map[i][1];
	return c;
}

/* WmAddFlag: append an SLA flag once */
static void
WmAddFlag(OcJson *sla, const char *flag)
{
	int			i;

	for (i = 0; i < OcJsonLength(sla); i++)
		if (strcmp(OcJsonString(OcJsonAt(sla, i)), flag) == 0)
			return;
	OcJsonAppendString(sla, flag);
}

/* WmFlagOf: the SLA flag of a methodCode or shippingProgramType, or NULL */
static const char *
WmFlagOf(const char *code)
{
	if (code == NULL)
		return NULL;
	if (pg_strcasecmp(code, "OneDay") == 0 || pg_strcasecmp(code, "NextDay") == 0 ||
		pg_strcasecmp(code, "ONE_DAY") == 0 || pg_strcasecmp(code, "NEXT_DAY") == 0)
		return "next_day";
	if (pg_strcasecmp(code, "TwoDay") == 0 || pg_strcasecmp(code, "TWO_DAY") == 0)
		return "two_day";
	if (pg_strcasecmp(code, "SameDay") == 0 || pg_strcasecmp(code, "SAME_DAY") == 0)
		return "same_day";
	if (pg_strcasecmp(code, "Express") == 0)
		return "expedited";
	return NULL;
}

/* units of a line, by line status */
typedef struct WmUnits
{
	int64		ordered;
	int64		cancelled;
	int64		shipped;		/* Shipped, Delivered or Refund */
	int64		delivered;
	bool		acknowledged;
} WmUnits;

/*
 * WmLineUnits
 *		A line's quantity and its units per status; false when the line has
 *		no valid quantity.
 */
static bool
WmLineUnits(OcJson *line, WmUnits *u)
{
	OcJson	   *statuses = OcJsonPath(line, "orderLineStatuses.orderLineStatus");
	int			i,
				n = OcJsonLength(statuses);

	memset(u, 0, sizeof(*u));
	if (!OcJsonInt(OcJsonPath(line, "orderLineQuantity.amount"), &u->ordered) ||
		u->ordered <= 0 || u->ordered > WALMART_MAX_UNITS)
		return false;
	for (i = 0; i < n && i < 100; i++)
	{
		OcJson	   *st = OcJsonAt(statuses, i);
		const char *status = OcJsonString(OcJsonGet(st, "status"));
		int64		q;

		if (status == NULL)
			continue;
		if (!OcJsonInt(OcJsonPath(st, "statusQuantity.amount"), &q) || q < 0 || q > u->ordered)
			q = u->ordered;
		if (strcmp(status, "Cancelled") == 0)
			u->cancelled += q;
		else if (strcmp(status, "Delivered") == 0)
		{
			u->shipped += q;
			u->delivered += q;
		}
		else if (strcmp(status, "Shipped") == 0 || strcmp(status, "Refund") == 0)
			u->shipped += q;
		else if (strcmp(status, "Acknowledged") == 0)
			u->acknowledged = true;
	}
	u->cancelled = Min(u->cancelled, u->ordered);
	return true;
}

/* one output line (the lines of one SKU) */
typedef struct WmLine
{
	const char *sku;
	char	   *external_id;
	int64		quantity;
	char	   *amount;			/* item price of the units kept */
	char	   *tax;
	char	   *discount;
} WmLine;

/* WmShare: amount * part / whole (the share of the units kept) */
static char *
WmShare(const char *amount, int64 part, int64 whole)
{
	if (amount == NULL || part == whole)
		return (char *) amount;
	return DecimalDivInt(DecimalMulInt(amount, part), whole, 6);
}

/*
 * WalmartNormalize
 *		One Walmart purchase order as a normalized order; false (with *error)
 *		when it is not an order at all, *skip when it is not to be imported.
 */
static bool
WalmartNormalize(OcJson *o, OcJson *out, bool *skip, char **error)
{
	const char *id = OcJsonString(OcJsonGet(o, "purchaseOrderId"));
	OcJson	   *lines = OcJsonPath(o, "orderLines.orderLine");
	OcJson	   *info = OcJsonGet(o, "shippingInfo");
	OcJson	   *pa = OcJsonGet(info, "postalAddress");
	const char *node_type = OcJsonString(OcJsonPath(o, "shipNode.type"));
	const char *currency = NULL;
	const char *country;
	int			n = OcJsonLength(lines);
	int			i,
				k,
				nout = 0;
	int64		ordered_at;
	bool		all_cancelled = true,
				any_shipped = false,
				all_delivered = true,
				any_ack = false;
	char	   *items = NULL,
			   *shipping = NULL,
			   *tax = NULL,
			   *discount = NULL;
	WmLine	   *acc;
	OcJson	   *buyer,
			   *addr,
			   *totals,
			   *outlines,
			   *sla;

	*skip = false;
	if (id == NULL || *id == '\0' || strlen(id) > 255)
	{
		*error = "an order without a purchaseOrderId";
		return false;
	}
	if (n <= 0 || n > WALMART_MAX_LINES)
	{
		*error = psprintf("order %s: no orderLines.orderLine array, or more than %d lines",
						  id, WALMART_MAX_LINES);
		return false;
	}
	if (!OcJsonInt(OcJsonGet(o, "orderDate"), &ordered_at) || ordered_at <= 0)
	{
		*error = psprintf("order %s: no valid orderDate", id);
		return false;
	}
	if (node_type != NULL && strcmp(node_type, "WFSFulfilled") == 0)
	{
		*skip = true;
		return true;
	}

	/* is every unit cancelled? */
	for (i = 0; i < n; i++)
	{
		WmUnits		u;

		if (!WmLineUnits(OcJsonAt(lines, i), &u))
		{
			*error = psprintf("order %s: line %d has no valid orderLineQuantity", id, i + 1);
			return false;
		}
		if (u.cancelled < u.ordered)
			all_cancelled = false;
	}

	acc = palloc0(sizeof(WmLine) * n);
	sla = OcJsonNewArray();
	for (i = 0; i < n; i++)
	{
		OcJson	   *li = OcJsonAt(lines, i);
		OcJson	   *charges = OcJsonPath(li, "charges.charge");
		const char *sku = OcJsonString(OcJsonPath(li, "item.sku"));
		const char *flag = WmFlagOf(OcJsonString(OcJsonPath(li, "fulfillment.shippingProgramType")));
		char	   *number = WmText(OcJsonGet(li, "lineNumber"));
		char	   *amount = NULL,
				   *ltax = NULL,
				   *ldisc = NULL,
				   *lship = NULL;
		int64		kept;
		WmUnits		u;
		WmLine	   *l = NULL;

		(void) WmLineUnits(li, &u);
		kept = all_cancelled ? u.ordered : u.ordered - u.cancelled;
		if (kept <= 0)
			continue;			/* a cancelled line of an order that goes on */
		if (sku == NULL || *sku == '\0' || strlen(sku) > 255)
		{
			*error = psprintf("order %s: line %d has no item.sku", id, i + 1);
			return false;
		}
		if (u.shipped > 0)
			any_shipped = true;
		if (u.delivered < kept)
			all_delivered = false;
		if (u.acknowledged)
			any_ack = true;
		if (flag != NULL)
			WmAddFlag(sla, flag);

		for (k = 0; k < OcJsonLength(charges) && k < 100; k++)
		{
			OcJson	   *c = OcJsonAt(charges, k);
			const char *type = OcJsonString(OcJsonGet(c, "chargeType"));
			char	   *value = DecimalOf(OcJsonPath(c, "chargeAmount.amount"));
			char	   *ctax = DecimalOf(OcJsonPath(c, "tax.taxAmount.amount"));

			if (type == NULL || value == NULL)
			{
				*error = psprintf("order %s: line %d has a charge without chargeType or amount",
								  id, i + 1);
				return false;
			}
			if (currency == NULL)
				currency = OcJsonString(OcJsonPath(c, "chargeAmount.currency"));
			if (strcmp(type, "PRODUCT") == 0)
			{
				if (DecimalCmp(value, "0") < 0)
					ldisc = DecimalSub(ldisc, value);
				else
					amount = DecimalAdd(amount, value);
				if (ctax != NULL)
					ltax = DecimalAdd(ltax, ctax);
			}
			else if (strcmp(type, "SHIPPING") == 0)
			{
				lship = DecimalAdd(lship, value);
				if (ctax != NULL)
					tax = DecimalAdd(tax, WmShare(ctax, kept, u.ordered));
			}
			/* other charge types (none documented) stay in raw only */
		}
		amount = WmShare(amount ? amount : "0", kept, u.ordered);
		ltax = WmShare(ltax, kept, u.ordered);
		ldisc = WmShare(ldisc, kept, u.ordered);
		if (lship != NULL)
			shipping = DecimalAdd(shipping, WmShare(lship, kept, u.ordered));

		/* the line of this SKU, new or earlier */
		for (k = 0; k < nout; k++)
			if (strcmp(acc[k].sku, sku) == 0)
				l = &acc[k];
		if (l == NULL)
		{
			l = &acc[nout++];
			l->sku = sku;
			l->external_id = number ? (strlen(number) > 255 ? pnstrdup(number, 255) : number)
				: psprintf("%d", i + 1);
		}
		l->quantity += kept;
		l->amount = DecimalAdd(l->amount, amount);
		if (ltax != NULL)
			l->tax = DecimalAdd(l->tax, ltax);
		if (ldisc != NULL)
			l->discount = DecimalAdd(l->discount, ldisc);
	}

	OcJsonSetString(out, "external_id", id);
	if (all_cancelled)
		OcJsonSetString(out, "status", "Cancelled");
	else if (any_shipped && all_delivered)
		OcJsonSetString(out, "status", "Delivered");
	else if (any_shipped)
		OcJsonSetString(out, "status", "Shipped");
	else
		OcJsonSetString(out, "status", any_ack ? "Acknowledged" : "Created");
	OcJsonSetBool(out, "cancelled", all_cancelled);
	OcJsonSetString(out, "ordered_at", IsoFromEpoch(ordered_at));
	if (currency != NULL && strlen(currency) <= 8)
		OcJsonSetString(out, "currency", currency);

	buyer = OcJsonSetObject(out, "buyer");
	if (OcJsonString(OcJsonGet(o, "buyerId")) != NULL)
		WmSetString(buyer, "id", OcJsonGet(o, "buyerId"), 255);
	else
		WmSetString(buyer, "id", OcJsonGet(o, "customerEmailId"), 255);
	WmSetString(buyer, "name", OcJsonGet(pa, "name"), 255);
	WmSetString(buyer, "email", OcJsonGet(o, "customerEmailId"), 254);
	WmSetString(buyer, "phone", OcJsonGet(info, "phone"), 64);

	if (OcJsonIsObject(pa))
	{
		addr = OcJsonSetObject(out, "shipping_address");
		WmSetString(addr, "name", OcJsonGet(pa, "name"), 255);
		WmSetString(addr, "street", OcJsonGet(pa, "address1"), 255);
		WmSetString(addr, "street2", OcJsonGet(pa, "address2"), 255);
		WmSetString(addr, "city", OcJsonGet(pa, "city"), 128);
		WmSetString(addr, "zip", OcJsonGet(pa, "postalCode"), 32);
		WmSetString(addr, "state", OcJsonGet(pa, "state"), 128);
		country = OcJsonString(OcJsonGet(pa, "country"));
		if (country != NULL && *country != '\0' && strlen(country) <= 64)
			OcJsonSetString(addr, "country", WmCountry(country));
		WmSetString(addr, "phone", OcJsonGet(info, "phone"), 64);
	}

	if (WmFlagOf(OcJsonString(OcJsonGet(info, "methodCode"))) != NULL)
		WmAddFlag(sla, WmFlagOf(OcJsonString(OcJsonGet(info, "methodCode"))));
	OcJsonSetCopy(out, "sla", sla);

	outlines = OcJsonSetArray(out, "lines");
	for (k = 0; k < nout; k++)
	{
		OcJson	   *l = OcJsonAppendObject(outlines);

		OcJsonSetString(l, "external_id", acc[k].external_id);
		OcJsonSetString(l, "sku", acc[k].sku);
		OcJsonSetInt(l, "quantity", acc[k].quantity);
		OcJsonSetString(l, "unit_price", DecimalDivInt(acc[k].amount, acc[k].quantity, 6));
		if (acc[k].tax != NULL)
			OcJsonSetString(l, "tax", acc[k].tax);
		if (acc[k].discount != NULL)
			OcJsonSetString(l, "discount", acc[k].discount);
		items = DecimalAdd(items, acc[k].amount);
		if (acc[k].tax != NULL)
			tax = DecimalAdd(tax, acc[k].tax);
		if (acc[k].discount != NULL)
			discount = DecimalAdd(discount, acc[k].discount);
	}

	totals = OcJsonSetObject(out, "totals");
	OcJsonSetString(totals, "items", DecimalAdd(items, "0"));
	if (shipping != NULL && DecimalCmp(shipping, "0") != 0)
		OcJsonSetString(totals, "shipping", shipping);
	if (discount != NULL && DecimalCmp(discount, "0") != 0)
		OcJsonSetString(totals, "discount", discount);
	if (tax != NULL)
		OcJsonSetString(totals, "tax", tax);
	OcJsonSetString(totals, "total",
					DecimalSub(DecimalAdd(DecimalAdd(items, shipping), tax), discount));
	OcJsonSetCopy(out, "raw", o);
	return true;
}

/*
 * WmValidCursor
 *		A nextCursor we are willing to append to the URL: a query string
 *		("?..."), printable ASCII without spaces or fragments, bounded.
 */
static bool
WmValidCursor(const char *c)
{
	const char *p;

	if (c == NULL || c[0] != '?' || strlen(c) < 2 || strlen(c) > WALMART_CURSOR_MAX)
		return false;
	for (p = c; *p; p++)
		if (*p <= 0x20 || *p >= 0x7f || *p == '#')
			return false;
	return true;
}

/*
 * WalmartParsePull
 *		A page of orders (or one order): its orders, and the next page while
 *		the answer has a nextCursor.
 */
static bool
WalmartParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state, OcJson *orders,
				 OutRequest *next, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	OcJson	   *list;
	OcJson	   *page;
	const char *cursor;
	int			i,
				n;
	int64		pages = 1;

	if (doc == NULL)
	{
		*error = psprintf("Walmart answered with an unreadable order list: %s", perr);
		return false;
	}
	if (OcJsonGet(state, "order_id") != NULL)
	{
		OcJson	   *out = OcJsonNewObject();
		OcJson	   *o = OcJsonGet(doc, "order");
		bool		skip;

		if (!OcJsonIsObject(o))
		{
			*error = "Walmart's answer has no \"order\" object";
			return false;
		}
		if (!WalmartNormalize(o, out, &skip, error))
			return false;
		if (!skip)
			OcJsonAppendCopy(orders, out);
		return false;
	}

	list = OcJsonGet(doc, "list");
	if (!OcJsonIsObject(list))
	{
		*error = "Walmart's order list has no \"list\" object";
		return false;
	}
	page = OcJsonPath(list, "elements.order");
	n = page == NULL ? 0 : OcJsonLength(page);
	if (n < 0 || n > WALMART_ORDERS_LIMIT)
	{
		*error = "Walmart's list.elements.order is not an array of at most 200 orders";
		return false;
	}
	for (i = 0; i < n; i++)
	{
		OcJson	   *out = OcJsonNewObject();
		bool		skip;

		if (!WalmartNormalize(OcJsonAt(page, i), out, &skip, error))
			return false;
		if (!skip)
			OcJsonAppendCopy(orders, out);
	}

	PullPageCounted(state, OcJsonPath(list, "meta.totalCount"), n);
	cursor = OcJsonString(OcJsonPath(list, "meta.nextCursor"));
	if (cursor == NULL || *cursor == '\0')
		return false;
	if (!WmValidCursor(cursor))
	{
		*error = "Walmart's list.meta.nextCursor is not a query string";
		return false;
	}
	(void) OcJsonInt(OcJsonGet(state, "pages"), &pages);
	if (n == 0 || pages >= WALMART_MAX_PAGES)
	{
		*error = psprintf("Walmart's order list goes on after %lld pages (the last with %d orders)",
						  (long long) pages, n);
		return false;
	}
	OcJsonSetInt(state, "pages", pages + 1);
	OcJsonSetString(state, "next_cursor", cursor);
	next->method = "GET";
	next->url = psprintf("%s%s", JoinUrl(ch->endpoint, "/v3/orders"), cursor);
	CommonHeaders(next);
	return true;
}

/*
 * WalmartBuildCancel
 *		Cancels every unit of the stored order that is neither shipped nor
 *		cancelled yet.
 */
static bool
WalmartBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error)
{
	OcJson	   *raw = OcJsonGet(order, "raw");
	const char *po = OcJsonString(OcJsonGet(raw, "purchaseOrderId"));
	OcJson	   *lines = OcJsonPath(raw, "orderLines.orderLine");
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *outlines;
	int			i,
				count = 0;

	if (po == NULL)
		po = OcJsonString(OcJsonGet(order, "external_id"));
	if (po == NULL || OcJsonLength(lines) <= 0)
	{
		*error = "the stored order has no purchaseOrderId or order lines";
		return false;
	}
	outlines = OcJsonSetArray(OcJsonSetObject(OcJsonSetObject(body, "orderCancellation"),
											  "orderLines"), "orderLine");
	for (i = 0; i < OcJsonLength(lines) && i < WALMART_MAX_LINES; i++)
	{
		OcJson	   *li = OcJsonAt(lines, i);
		char	   *number = WmText(OcJsonGet(li, "lineNumber"));
		WmUnits		u;
		int64		open;
		OcJson	   *l,
				   *st,
				   *q;

		if (number == NULL || !WmLineUnits(li, &u))
			continue;
		open = u.ordered - u.cancelled - u.shipped;
		if (open <= 0)
			continue;
		l = OcJsonAppendObject(outlines);
		OcJsonSetString(l, "lineNumber", number);
		st = OcJsonAppendObject(OcJsonSetArray(OcJsonSetObject(l, "orderLineStatuses"),
											   "orderLineStatus"));
		OcJsonSetString(st, "status", "Cancelled");
		OcJsonSetString(st, "cancellationReason", "SELLER_CANCEL_OUT_OF_STOCK");
		q = OcJsonSetObject(st, "statusQuantity");
		OcJsonSetString(q, "unitOfMeasurement", "EACH");
		OcJsonSetString(q, "amount", psprintf("%lld", (long long) open));
		count++;
	}
	if (count == 0)
	{
		*error = "Walmart: nothing left to cancel, every unit of the order is shipped or cancelled";
		return false;
	}
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, psprintf("/v3/orders/%s/cancel", UrlEncode(po)));
	CommonHeaders(out);
	OutRequestHeader(out, "Content-Type: application/json");
	out->body = OcJsonDump(body);
	out->body_len = strlen(out->body);
	return true;
}

/*
 * WalmartParseCancel
 *		The answer is the order with its cancelled lines; an "errors" answer
 *		is a refusal.
 */
static bool
WalmartParseCancel(ChannelConfig *ch, HttpRequest *req, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	const char *msg;

	if (doc != NULL && OcJsonIsObject(OcJsonGet(doc, "order")))
		return true;
	msg = OcJsonString(OcJsonPath(doc, "errors.0.message"));
	if (msg == NULL)
		msg = OcJsonString(OcJsonPath(doc, "errors.0.description"));
	*error = psprintf("Walmart did not confirm the cancellation: %s",
					  msg ? msg : (doc == NULL ? perr : "no \"order\" in the answer"));
	return false;
}
