/*-------------------------------------------------------------------------
 *
 * amazon.c
 *	  Amazon connector: Selling Partner API (SP-API).
 *
 * Stock push sets the merchant-fulfilled quantity of a listing, the
 * /attributes/fulfillment_availability attribute with fulfillment channel
 * code DEFAULT (FBA quantities are Amazon's and are never touched), in one of
 * two ways, chosen per job by the number of listings it carries:
 *
 *	- fewer than the channel's feed_threshold: Listings Items API 2021-08-01,
 *	  PATCH /listings/2021-08-01/items/{sellerId}/{sku}, one listing per
 *	  request; the requests of a job are chained with next_step, each one's
 *	  verdict (ACCEPTED, or INVALID with issues) kept in the payload;
 *
 *	- otherwise: a JSON_LISTINGS_FEED through the Feeds API 2021-06-30, as a
 *	  chain of jobs: createFeedDocument, upload of the feed to the presigned
 *	  URL, createFeed, getFeed polled every feed_poll_interval until the feed
 *	  is DONE, FATAL or CANCELLED, getFeedDocument of its processing report,
 *	  download of the report, whose issues are mapped back to listings by
 *	  messageId (message i+1 is the job's listing i).
 *
 * Each step has its own operation name (its own token bucket, which the
 * x-amzn-RateLimit-Limit header of that SP-API operation tightens): stock_push
 * (patchListingsItem), feed_document (createFeedDocument), feed_upload, feed
 * (createFeed: omnichan.rate_limit's 'feed' row), feed_status (getFeed),
 * feed_report_document (getFeedDocument), feed_report.
 *
 * Auth: Login with Amazon access token from the refresh-token grant at the
 * channel's token endpoint (client id and secret in the form body), sent as
 * "x-amz-access-token" with x-amz-date; no AWS SigV4 signature (no longer
 * required by SP-API).  The presigned document URLs carry their own
 * signature: the access token is never sent there.  Amazon answers an
 * expired token with 403 Unauthorized, which sync.c treats like a 401.
 *
 * Order pull: Orders API v0.  A pull is a chain of jobs:
 *
 *	- createRestrictedDataToken (operation "auth_rdt", 1 rps, burst 10):
 *	  POST /tokens/2021-03-01/restrictedDataToken, sent with the LWA token,
 *	  for the restricted resources GET /orders/v0/orders and GET
 *	  /orders/v0/orders/{orderId} (dataElements buyerInfo, shippingAddress)
 *	  and GET /orders/v0/orders/{orderId}/orderItems (buyerInfo), the
 *	  generic {orderId} paths the Tokens API accepts, so one token covers
 *	  every order of the chain (see "Restricted data" below);
 *	- getOrders (operation "order_pull", 0.0167 rps): GET /orders/v0/orders
 *	  with the channel's MarketplaceIds, LastUpdatedAfter = the window's
 *	  since, LastUpdatedBefore = its until (pull_lag_s = 120: Amazon refuses
 *	  a LastUpdatedBefore later than two minutes before now), OrderStatuses
 *	  Unshipped, PartiallyShipped, Shipped, InvoiceUnconfirmed, Canceled and
 *	  MaxResultsPerPage=100; every page, by payload.NextToken (the next
 *	  request carries MarketplaceIds and NextToken only);
 *	- getOrderItems (operation "order_items", its own usage plan, 0.5 rps)
 *	  for each order of a page that is to be imported, every page of its
 *	  items by NextToken as well.  The page's orders waiting for their items
 *	  ("queue", "queue_pos") and the items read so far ("items",
 *	  "items_token") are kept in the pull state, beside "next_token" (the
 *	  next page of orders) and "step" (what the answer is); an order is
 *	  emitted with the answer that completes its items;
 *	- omnichan.fetch_order: getOrder (operation "order_get", 0.5 rps),
 *	  GET /orders/v0/orders/{orderId}, then its items as above.
 *
 * Which orders are imported (the rules of Odoo's own Amazon connector):
 * Pending and PendingAvailability (not paid, no address) never; FBA orders
 * (FulfillmentChannel AFN) only once Shipped (or InvoiceUnconfirmed, shipped
 * with the invoice not yet confirmed) or Canceled; merchant-fulfilled orders
 * (MFN) when Unshipped, PartiallyShipped or Canceled.  Other orders of a
 * page are left out.
 *
 * Mapping: "status" = OrderStatus verbatim, "cancelled" when it is
 * Canceled; "ordered_at" = PurchaseDate; "currency" = OrderTotal's (else the
 * items'); "buyer" = BuyerInfo (id and email: the buyer's anonymized
 * BuyerEmail, stable per buyer and seller; name: BuyerName; phone: the
 * shipping address's); "shipping_address" = ShippingAddress (AddressLine2
 * and AddressLine3 joined as street2; CountryCode is ISO 3166 alpha-2); no
 * billing address (Orders API v0 has none).  "sla": IsPrime -> prime,
 * IsBusinessOrder -> business, IsPremiumOrder -> premium,
 * ShipmentServiceLevelCategory Expedited -> expedited, NextDay -> next_day,
 * SameDay -> same_day, SecondDay -> two_day, Priority -> priority, Scheduled
 * -> scheduled (Standard and FreeEconomy: none).  Lines per SellerSKU (the
 * ASIN when an item has none): quantity = QuantityOrdered (items with 0 are
 * left out, except that a Canceled order whose items all have 0 keeps them
 * with quantity 1, so the cancellation still reaches the inbox), unit_price
 * = ItemPrice / QuantityOrdered (ItemPrice is the line total), tax = ItemTax,
 * discount = PromotionDiscount.  "totals": items = sum of ItemPrice,
 * shipping = sum of ShippingPrice, gift_wrap = sum of the items'
 * BuyerInfo.GiftWrapPrice, discount = PromotionDiscount + ShippingDiscount,
 * tax = ItemTax + ShippingTax + GiftWrapTax - PromotionDiscountTax -
 * ShippingDiscountTax, total = OrderTotal.  "gift_message" = the items'
 * BuyerInfo.GiftMessageText.  "raw" = the order object of getOrders /
 * getOrder verbatim, with the getOrderItems OrderItems (verbatim) added
 * under "OrderItems".  No fees (they are in the Finances API).
 *
 * Restricted data: ShippingAddress (Name, AddressLine1-3, Phone...),
 * BuyerInfo (BuyerName...) and the items' BuyerInfo (GiftMessageText) are
 * answered only to a request whose x-amz-access-token is a Restricted Data
 * Token (RDT) covering it; with the LWA token Amazon leaves them out.  Every
 * pull chain and every fetch_order chain therefore starts with
 * createRestrictedDataToken (authorized with the LWA token); its answer
 * {restrictedDataToken, expiresIn} is kept only in the sync worker's memory
 * (RdtCache: per channel, in TopMemoryContext, with its expiry), never in
 * the job's payload or state, and its response body is not stored (worker.c
 * keeps no body of an "auth" or "auth_*" operation).  The state remembers
 * the request to make once the token is there ("resume": step and path).
 * authorize() sends the cached RDT instead of the LWA token on getOrders,
 * getOrder and getOrderItems.  Before each later request of the chain, a
 * cached RDT that expires within AMAZON_RDT_MARGIN_S (10 min: a getOrders
 * request may wait a minute and more for its 0.0167 rps slot) is renewed
 * first: the chain asks for a new one and resumes with that request (the
 * request that follows a new token always uses it, so a token shorter-lived
 * than the margin cannot make the chain loop).
 *
 * When the worker has no RDT for the channel at send time (it restarted in
 * the middle of a chain: the queued or re-queued getOrders / getOrderItems
 * job outlived the token), or the token expired while the request waited
 * for its rate-limit slot, authorize() raises an ERROR: SyncPrepare makes
 * it a permanent failure of that job ("credentials: no Restricted Data
 * Token ..."), the chain ends there with the error on the channel, its
 * cursor does not move, and the next pull covers the window again, starting
 * with a new RDT (orders already stored by the interrupted chain are upserted
 * again without duplicates).  A 403 on a request sent with an RDT is
 * retried once by sync.c like any expired token, with the same RDT (the
 * connector sees no failed answer), so a revoked RDT also ends the chain.
 *
 * Cancellation back (build_cancel): not implemented.  Orders API v0 has no
 * operation by which a seller cancels an order (getOrders, getOrder,
 * getOrderItems, getOrderAddress, getOrderBuyerInfo, updateShipmentStatus,
 * confirmShipment, regulated info only), and the reference we follow
 * (MARKETPLACE_APIS.md, the saved SP-API models) documents no other way;
 * Amazon's order acknowledgement feed is a multi-step Feeds API upload that
 * one cancel request cannot carry.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <zlib.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "utils/memutils.h"

#include "../connector.h"

/* most listings per job: a feed takes up to 25 000 messages */
#define AMAZON_BATCH			10000
/* defaults of the feed_threshold and feed_poll_interval settings */
#define AMAZON_FEED_THRESHOLD	20
#define AMAZON_POLL_S			15.0
/* getFeed polls before a feed is given up (and its listings pushed again) */
#define AMAZON_MAX_POLLS		2000
/* largest processing report inflated from GZIP */
#define AMAZON_MAX_REPORT		(64 * 1024 * 1024)

/* order pull: the window ends 2 minutes before now (Amazon's rule) */
#define AMAZON_PULL_LAG_S		120
/* getOrders MaxResultsPerPage (the largest Amazon allows) */
#define AMAZON_ORDERS_PAGE		100
/* most items an answer of getOrderItems may carry, and an order may keep */
#define AMAZON_ITEMS_PAGE		1000
#define AMAZON_MAX_ITEMS		501
/* longest NextToken, and longest text field, taken from an answer */
#define AMAZON_MAX_TOKEN		8192
#define AMAZON_MAX_TEXT			4000
/* a Restricted Data Token is renewed when it expires within this */
#define AMAZON_RDT_MARGIN_S		600
/* longest RDT taken from an answer; longest lifetime believed */
#define AMAZON_MAX_RDT			8192
#define AMAZON_MAX_RDT_LIFE_S	86400
#define AMAZON_RDT_PATH			"/tokens/2021-03-01/restrictedDataToken"
/* the order statuses asked for (Pending ones are never imported) */
#define AMAZON_ORDER_STATUSES	"Unshipped,PartiallyShipped,Shipped,InvoiceUnconfirmed,Canceled"

#define AMAZON_FEED_CTYPE		"application/json; charset=UTF-8"
#define AMAZON_USER_AGENT		"omnichan/" OMNICHAN_VERSION " (Language=C)"

static void AmazonBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void AmazonParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static bool AmazonNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
						   PushItem *items, int n, OutRequest *next);
static void AmazonBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req);
static bool AmazonParseToken(HttpRequest *req, char **token, int *expires_in, char **error);
static void AmazonAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);
static void AmazonBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool AmazonParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state,
							OcJson *orders, OutRequest *next, char **error);

const Connector AmazonConnector = {
	.kind = "amazon",
	.push_batch = AMAZON_BATCH,
	.build_push = AmazonBuildPush,
	.parse_push = AmazonParsePush,
	.next_step = AmazonNextStep,
	.needs_token = true,
	.build_token = AmazonBuildToken,
	.parse_token = AmazonParseToken,
	.authorize = AmazonAuthorize,
	.pull_operation = "order_pull",
	.pull_lag_s = AMAZON_PULL_LAG_S,
	.build_pull = AmazonBuildPull,
	.parse_pull = AmazonParsePull,
};

/* FeedThreshold: listings from which a job goes through a feed */
static int
FeedThreshold(ChannelConfig *ch)
{
	int64		v = AMAZON_FEED_THRESHOLD;

	(void) OcJsonInt(OcJsonGet(ch->settings, "feed_threshold"), &v);
	return (int) Max(v, 2);
}

/* PollDelayMs: the wait between two getFeed calls */
static int
PollDelayMs(ChannelConfig *ch)
{
	double		s = AMAZON_POLL_S;

	(void) OcJsonNumber(OcJsonGet(ch->settings, "feed_poll_interval"), &s);
	return (int) Min(Max(s * 1000.0, 0.0), 3600.0 * 1000.0);
}

/* ProductType: the listing's productType, "PRODUCT" when not given */
static const char *
ProductType(PushItem *item)
{
	const char *t = OcJsonString(OcJsonGet(item->external, "product_type"));

	/* "PRODUCT" for offer-only patches: common practice (unverified) */
	return (t != NULL && *t != '\0') ? t : "PRODUCT";
}

/* MarketplaceIdsCsv: the channel's marketplace ids, URL-encoded, comma-separated */
static char *
MarketplaceIdsCsv(ChannelConfig *ch)
{
	OcJson	   *ids = OcJsonGet(ch->settings, "marketplace_ids");
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	for (i = 0; i < OcJsonLength(ids); i++)
	{
		const char *id = OcJsonString(OcJsonAt(ids, i));

		if (id == NULL)
			continue;
		if (buf.len > 0)
			appendStringInfoChar(&buf, ',');
		appendStringInfoString(&buf, UrlEncode(id));
	}
	return buf.data;
}

/* AddPatches: the patches[] setting the MFN quantity */
static void
AddPatches(OcJson *parent, int32 quantity)
{
	OcJson	   *patch = OcJsonAppendObject(OcJsonSetArray(parent, "patches"));
	OcJson	   *avail;

	OcJsonSetString(patch, "op", "replace");
	OcJsonSetString(patch, "path", "/attributes/fulfillment_availability");
	avail = OcJsonAppendObject(OcJsonSetArray(patch, "value"));
	OcJsonSetString(avail, "fulfillment_channel_code", "DEFAULT");
	OcJsonSetInt(avail, "quantity", Max(quantity, 0));
}

/* ApiRequest: an SP-API request (the token is added at send time) */
static void
ApiRequest(ChannelConfig *ch, OutRequest *out, const char *operation,
		   const char *method, char *path, OcJson *body)
{
	out->operation = operation;
	out->method = method;
	out->url = JoinUrl(ch->endpoint, path);
	OutRequestHeader(out, "Accept: application/json");
	OutRequestHeader(out, "User-Agent: %s", AMAZON_USER_AGENT);
	if (body != NULL)
	{
		OutRequestHeader(out, "Content-Type: application/json");
		out->body = OcJsonDump(body);
		out->body_len = strlen(out->body);
	}
}

/*
 * BuildPatch
 *		patchListingsItem for one listing.
 */
static void
BuildPatch(ChannelConfig *ch, PushItem *item, OutRequest *out)
{
	OcJson	   *body = OcJsonNewObject();
	const char *seller = SettingString(ch, "seller_id");

	OcJsonSetString(body, "productType", ProductType(item));
	AddPatches(body, item->quantity);
	ApiRequest(ch, out, "stock_push", "PATCH",
			   psprintf("/listings/2021-08-01/items/%s/%s?marketplaceIds=%s&issueLocale=en_US",
						UrlEncode(seller ? seller : ""), UrlEncode(item->sku),
						MarketplaceIdsCsv(ch)),
			   body);
}

/*
 * FeedDocument
 *		The JSON_LISTINGS_FEED of a job: message i+1 patches listing i.
 */
static char *
FeedDocument(ChannelConfig *ch, PushItem *items, int n)
{
	OcJson	   *doc = OcJsonNewObject();
	OcJson	   *header = OcJsonSetObject(doc, "header");
	OcJson	   *messages;
	const char *seller = SettingString(ch, "seller_id");
	int			i;

	OcJsonSetString(header, "sellerId", seller ? seller : "");
	OcJsonSetString(header, "version", "2.0");
	OcJsonSetString(header, "issueLocale", "en_US");
	messages = OcJsonSetArray(doc, "messages");
	for (i = 0; i < n; i++)
	{
		OcJson	   *m = OcJsonAppendObject(messages);

		OcJsonSetInt(m, "messageId", i + 1);
		OcJsonSetString(m, "sku", items[i].sku);
		OcJsonSetString(m, "operationType", "PATCH");
		OcJsonSetString(m, "productType", ProductType(&items[i]));
		AddPatches(m, items[i].quantity);
	}
	return OcJsonDump(doc);
}

/*
 * AmazonBuildPush
 *		The first request of a job: the first listing's patch, or the
 *		creation of a feed document.
 */
static void
AmazonBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	OcJson	   *body;

	if (n < FeedThreshold(ch))
	{
		BuildPatch(ch, &items[0], out);
		return;
	}
	body = OcJsonNewObject();
	OcJsonSetString(body, "contentType", AMAZON_FEED_CTYPE);
	ApiRequest(ch, out, "feed_document", "POST", pstrdup("/feeds/2021-06-30/documents"), body);
}

/* ResponseJson: the response body as JSON, or NULL */
static OcJson *
ResponseJson(HttpRequest *req)
{
	char	   *error;

	if (req->response.len == 0)
		return NULL;
	return OcJsonParse(req->response.data, req->response.len, &error);
}

/* PayloadInt: an integer of the payload, or dflt */
static int64
PayloadInt(OcJson *payload, const char *key, int64 dflt)
{
	int64		v = dflt;

	(void) OcJsonInt(OcJsonGet(payload, key), &v);
	return v;
}

/*
 * PatchVerdict
 *		A ListingsItemSubmissionResponse as an item outcome.
 */
static void
PatchVerdict(OcJson *doc, PushItem *item)
{
	const char *status = OcJsonString(OcJsonGet(doc, "status"));
	OcJson	   *issues = OcJsonGet(doc, "issues");
	int			i;

	if (status != NULL && strcmp(status, "ACCEPTED") == 0)
	{
		item->ok = true;
		return;
	}
	item->ok = false;
	item->error_class = ITEM_ERROR_FIX;
	for (i = 0; i < OcJsonLength(issues); i++)
	{
		OcJson	   *issue = OcJsonAt(issues, i);
		const char *sev = OcJsonString(OcJsonGet(issue, "severity"));

		if (sev != NULL && strcmp(sev, "ERROR") == 0)
		{
			const char *code = OcJsonString(OcJsonGet(issue, "code"));
			const char *msg = OcJsonString(OcJsonGet(issue, "message"));

			item->error = psprintf("Amazon %s %s: %s", status ? status : "INVALID",
								   code ? code : "", msg ? msg : "no message");
			return;
		}
	}
	item->error = psprintf("Amazon %s: %s", status ? status : "no status",
						   status ? "no issue reported" : "unreadable answer");
	if (status == NULL)
		item->error_class = ITEM_ERROR_RETRY;
}

/*
 * AmazonNextStep
 *		The next request of a job, with its state in the payload.
 */
static bool
AmazonNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
			   PushItem *items, int n, OutRequest *next)
{
	OcJson	   *doc = ResponseJson(req);
	const char *op = req->operation;

	if (strcmp(op, "stock_push") == 0)
	{
		/* a listing's patch: keep its verdict, then patch the next one */
		int			idx = (int) PayloadInt(payload, "index", 0);
		OcJson	   *results = OcJsonGet(payload, "results");
		OcJson	   *r;
		PushItem	verdict;

		if (idx + 1 >= n || idx < 0)
			return false;		/* the last one: parse_push */
		if (results == NULL)
			results = OcJsonSetArray(payload, "results");
		memset(&verdict, 0, sizeof(verdict));
		PatchVerdict(doc, &verdict);
		r = OcJsonAppendObject(results);
		OcJsonSetBool(r, "ok", verdict.ok);
		if (!verdict.ok)
		{
			OcJsonSetString(r, "error", verdict.error);
			OcJsonSetString(r, "class", verdict.error_class == ITEM_ERROR_FIX ? "fix" : "retry");
		}
		OcJsonSetInt(payload, "index", idx + 1);
		BuildPatch(ch, &items[idx + 1], next);
		return true;
	}
	if (strcmp(op, "feed_document") == 0)
	{
		/* createFeedDocument: upload the feed to the presigned URL */
		const char *id = OcJsonString(OcJsonGet(doc, "feedDocumentId"));
		const char *url = OcJsonString(OcJsonGet(doc, "url"));

		if (id == NULL || url == NULL)
			return false;
		OcJsonSetString(payload, "feed_document_id", id);
		next->operation = "feed_upload";
		next->method = "PUT";
		next->url = pstrdup(url);
		OutRequestHeader(next, "Content-Type: %s", AMAZON_FEED_CTYPE);
		next->body = FeedDocument(ch, items, n);
		next->body_len = strlen(next->body);
		return true;
	}
	if (strcmp(op, "feed_upload") == 0)
	{
		/* uploaded: createFeed */
		OcJson	   *body = OcJsonNewObject();
		OcJson	   *ids = OcJsonGet(ch->settings, "marketplace_ids");
		const char *docid = OcJsonString(OcJsonGet(payload, "feed_document_id"));

		if (docid == NULL)
			return false;
		OcJsonSetString(body, "feedType", "JSON_LISTINGS_FEED");
		if (ids != NULL)
			OcJsonSetCopy(body, "marketplaceIds", ids);
		else
			(void) OcJsonSetArray(body, "marketplaceIds");
		OcJsonSetString(body, "inputFeedDocumentId", docid);
		ApiRequest(ch, next, "feed", "POST", pstrdup("/feeds/2021-06-30/feeds"), body);
		return true;
	}
	if (strcmp(op, "feed") == 0 || strcmp(op, "feed_status") == 0)
	{
		/* createFeed, or a getFeed whose feed is not finished yet: poll */
		const char *id;
		const char *status = NULL;
		int64		polls = PayloadInt(payload, "polls", 0);

		if (strcmp(op, "feed") == 0)
		{
			id = OcJsonString(OcJsonGet(doc, "feedId"));
			if (id == NULL)
				return false;
			OcJsonSetString(payload, "feed_id", id);
		}
		else
		{
			const char *report;

			id = OcJsonString(OcJsonGet(payload, "feed_id"));
			status = OcJsonString(OcJsonGet(doc, "processingStatus"));
			if (id == NULL || status == NULL)
				return false;
			OcJsonSetString(payload, "processing_status", status);
			report = OcJsonString(OcJsonGet(doc, "resultFeedDocumentId"));
			if ((strcmp(status, "DONE") == 0 || strcmp(status, "FATAL") == 0) && report != NULL)
			{
				/* finished with a processing report: where is it */
				OcJsonSetString(payload, "report_document_id", report);
				ApiRequest(ch, next, "feed_report_document", "GET",
						   psprintf("/feeds/2021-06-30/documents/%s", UrlEncode(report)), NULL);
				return true;
			}
			if (strcmp(status, "IN_QUEUE") != 0 && strcmp(status, "IN_PROGRESS") != 0)
				return false;	/* CANCELLED, or finished without a report */
			if (polls >= AMAZON_MAX_POLLS)
				return false;
		}
		OcJsonSetInt(payload, "polls", polls + 1);
		ApiRequest(ch, next, "feed_status", "GET",
				   psprintf("/feeds/2021-06-30/feeds/%s", UrlEncode(id)), NULL);
		next->delay_ms = PollDelayMs(ch);
		return true;
	}
	if (strcmp(op, "feed_report_document") == 0)
	{
		/* getFeedDocument: download the report from the presigned URL */
		const char *url = OcJsonString(OcJsonGet(doc, "url"));
		const char *comp = OcJsonString(OcJsonGet(doc, "compressionAlgorithm"));

		if (url == NULL)
			return false;
		if (comp != NULL)
			OcJsonSetString(payload, "compression", comp);
		next->operation = "feed_report";
		next->method = "GET";
		next->url = pstrdup(url);
		return true;
	}
	return false;				/* feed_report: parse_push */
}

/*
 * Gunzip
 *		A GZIP document inflated (zlib), or NULL with *error set.
 */
static char *
Gunzip(const char *data, size_t len, size_t *outlen, char **error)
{
	z_stream	zs;
	StringInfoData buf;
	int			rc;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
	{
		*error = pstrdup("could not start inflating");
		return NULL;
	}
	initStringInfo(&buf);
	zs.next_in = (Bytef *) data;
	zs.avail_in = (uInt) len;
	do
	{
		enlargeStringInfo(&buf, 65536);
		zs.next_out = (Bytef *) (buf.data + buf.len);
		zs.avail_out = (uInt) (buf.maxlen - buf.len - 1);
		rc = inflate(&zs, Z_NO_FLUSH);
		buf.len = (int) ((char *) zs.next_out - buf.data);
		if (rc != Z_OK && rc != Z_STREAM_END)
		{
			*error = psprintf("corrupt GZIP data (%s)", zs.msg ? zs.msg : "zlib error");
			inflateEnd(&zs);
			return NULL;
		}
		if (buf.len > AMAZON_MAX_REPORT)
		{
			*error = pstrdup("inflated report too large");
			inflateEnd(&zs);
			return NULL;
		}
		if (rc == Z_OK && zs.avail_in == 0 && zs.avail_out > 0)
		{
			*error = pstrdup("truncated GZIP data");
			inflateEnd(&zs);
			return NULL;
		}
	} while (rc != Z_STREAM_END);
	inflateEnd(&zs);
	buf.data[buf.len] = '\0';
	*outlen = buf.len;
	return buf.data;
}

/* FailAll: every item not yet decided fails with one message */
static void
FailAll(PushItem *items, int n, ItemErrorClass cls, char *error)
{
	int			k;

	for (k = 0; k < n; k++)
		if (!items[k].ok && items[k].error == NULL)
		{
			items[k].error = error;
			items[k].error_class = cls;
		}
}

/*
 * ParseReport
 *		A JSON_LISTINGS_FEED processing report: the ERROR issues of message
 *		i+1 fail listing i; issues without a messageId fail the whole feed.
 */
static void
ParseReport(OcJson *payload, HttpRequest *req, PushItem *items, int n)
{
	const char *comp = OcJsonString(OcJsonGet(payload, "compression"));
	const char *pstatus = OcJsonString(OcJsonGet(payload, "processing_status"));
	const char *data = req->response.data;
	size_t		len = req->response.len;
	char	   *error = NULL;
	char	   *feed_error = NULL;
	OcJson	   *doc;
	OcJson	   *issues;
	int			i,
				k;

	if (comp != NULL && pg_strcasecmp(comp, "GZIP") == 0)
	{
		data = Gunzip(data, len, &len, &error);
		if (data == NULL)
		{
			FailAll(items, n, ITEM_ERROR_RETRY,
					psprintf("Amazon feed processing report: %s", error));
			return;
		}
	}
	doc = OcJsonParse(data, len, &error);
	issues = OcJsonGet(doc, "issues");
	if (doc == NULL || (OcJsonGet(doc, "header") == NULL && issues == NULL))
	{
		FailAll(items, n, ITEM_ERROR_RETRY,
				psprintf("Amazon feed processing report is unreadable (%s)",
						 doc == NULL ? error : "no header or issues"));
		return;
	}
	for (i = 0; i < OcJsonLength(issues); i++)
	{
		OcJson	   *issue = OcJsonAt(issues, i);
		const char *sev = OcJsonString(OcJsonGet(issue, "severity"));
		const char *code = OcJsonString(OcJsonGet(issue, "code"));
		const char *msg = OcJsonString(OcJsonGet(issue, "message"));
		int64		mid;
		char	   *text;

		if (sev == NULL || strcmp(sev, "ERROR") != 0)
			continue;
		text = psprintf("Amazon %s: %s", code ? code : "ERROR", msg ? msg : "no message");
		if (!OcJsonInt(OcJsonGet(issue, "messageId"), &mid))
		{
			if (feed_error == NULL)
				feed_error = text;
			continue;
		}
		if (mid < 1 || mid > n || items[mid - 1].error != NULL)
			continue;			/* keep the first error of a message */
		items[mid - 1].ok = false;
		items[mid - 1].error = text;
		items[mid - 1].error_class = ITEM_ERROR_FIX;
	}
	if (feed_error == NULL && pstatus != NULL && strcmp(pstatus, "DONE") != 0)
		feed_error = psprintf("Amazon feed %s", pstatus);
	if (feed_error != NULL)
	{
		/* the feed as a whole was refused: nothing of it was applied */
		FailAll(items, n, ITEM_ERROR_RETRY, feed_error);
		return;
	}
	for (k = 0; k < n; k++)
		if (items[k].error == NULL)
			items[k].ok = true;
}

/* ErrorsMessage: the first entry of an SP-API {"errors": [...]} body, or NULL */
static char *
ErrorsMessage(OcJson *doc)
{
	OcJson	   *e = OcJsonPath(doc, "errors.0");
	const char *code = OcJsonString(OcJsonGet(e, "code"));
	const char *msg = OcJsonString(OcJsonGet(e, "message"));

	if (e == NULL)
		return NULL;
	return psprintf("%s: %s", code ? code : "error", msg ? msg : "no message");
}

/*
 * AmazonParsePush
 *		The outcome of a job's last request (or of a failed one).
 */
static void
AmazonParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	char	   *perr;
	OcJson	   *payload = req->payload ? OcJsonParse(req->payload, strlen(req->payload), &perr) : NULL;
	OcJson	   *doc;
	const char *op = req->operation;
	int			idx,
				k;

	if (strcmp(op, "feed_report") == 0 && req->status >= 200 && req->status < 300)
	{
		ParseReport(payload, req, items, n);
		return;
	}

	doc = ResponseJson(req);
	if (strcmp(op, "stock_push") == 0)
	{
		OcJson	   *results = OcJsonGet(payload, "results");

		/* the verdicts of the listings patched before this one */
		idx = (int) PayloadInt(payload, "index", 0);
		for (k = 0; k < idx && k < n && k < OcJsonLength(results); k++)
		{
			OcJson	   *r = OcJsonAt(results, k);
			const char *cls = OcJsonString(OcJsonGet(r, "class"));
			const char *err = OcJsonString(OcJsonGet(r, "error"));

			if (OcJsonIsObject(r) && OcJsonGet(r, "error") == NULL)
			{
				items[k].ok = true;
				continue;
			}
			items[k].error = pstrdup(err ? err : "rejected");
			items[k].error_class = (cls && strcmp(cls, "fix") == 0) ? ITEM_ERROR_FIX : ITEM_ERROR_RETRY;
		}
		if (idx >= 0 && idx < n && req->status >= 200 && req->status < 300)
		{
			PatchVerdict(doc, &items[idx]);
			return;
		}
		for (k = 0; k < idx && k < n; k++)
			if (items[k].ok)
			{
				/* the job fails as a whole: push these again soon */
				items[k].ok = false;
				items[k].error = psprintf("Amazon accepted this quantity, but a later request of "
										  "the same push failed with HTTP %d", req->status);
				items[k].error_class = ITEM_ERROR_RETRY;
			}
	}

	/* a failed request: Amazon's message for what is not decided yet */
	{
		char	   *msg = ErrorsMessage(doc);
		ItemErrorClass cls = (req->status == 401 || req->status == 403) ? ITEM_ERROR_CREDENTIALS
			: (req->status == 429 || req->status >= 500 || req->status < 400) ? ITEM_ERROR_RETRY
			: ITEM_ERROR_FIX;

		if (req->status >= 200 && req->status < 300)
		{
			/* a step answered, but not as expected (or a cancelled feed) */
			const char *pstatus = OcJsonString(OcJsonGet(doc, "processingStatus"));

			if (pstatus != NULL)
				msg = psprintf("Amazon feed %s", pstatus);
			else
				msg = psprintf("Amazon %s answered HTTP %d without the expected fields",
							   op, req->status);
			FailAll(items, n, ITEM_ERROR_RETRY, msg);
			return;
		}
		if (msg != NULL)
			FailAll(items, n, cls, psprintf("Amazon %d %s", req->status, msg));
		else if (strcmp(op, "feed_upload") == 0 || strcmp(op, "feed_report") == 0)
			FailAll(items, n, ITEM_ERROR_RETRY,
					psprintf("Amazon feed document %s failed: HTTP %d",
							 strcmp(op, "feed_upload") == 0 ? "upload" : "download", req->status));
	}
}

/*
 * AmazonBuildToken
 *		LWA refresh-token grant: client credentials in the form body.
 */
static void
AmazonBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req)
{
	char	   *body = psprintf("grant_type=refresh_token&refresh_token=%s&client_id=%s&client_secret=%s",
								UrlEncode(SecretString(secrets, "refresh_token")),
								UrlEncode(SecretString(secrets, "lwa_client_id")),
								UrlEncode(SecretString(secrets, "lwa_client_secret")));

	HttpAddHeader(req, "Content-Type: application/x-www-form-urlencoded;charset=UTF-8");
	HttpAddHeader(req, "Accept: application/json");
	HttpSetBody(req, body, strlen(body));
}

/* AmazonParseToken: {"access_token", "token_type", "expires_in", "refresh_token"} */
static bool
AmazonParseToken(HttpRequest *req, char **token, int *expires_in, char **error)
{
	static const char *const errors[] = {"error_description", "error", NULL};

	return ParseAccessToken(req, "LWA", 3600, errors, token, expires_in, error);
}

/*
 * The Restricted Data Tokens of the channels' order pulls: in the sync
 * worker's memory only (TopMemoryContext), one per channel, never in a job.
 */
typedef struct RdtEntry
{
	int32		channel_id;
	char	   *token;			/* NULL: none */
	time_t		expires;
} RdtEntry;

static RdtEntry *RdtCache = NULL;
static int	RdtCount = 0;
static int	RdtAllocated = 0;

/* RdtLookup: the channel's RDT entry, or NULL when it has none */
static RdtEntry *
RdtLookup(int32 channel_id)
{
	int			i;

	for (i = 0; i < RdtCount; i++)
		if (RdtCache[i].channel_id == channel_id)
			return RdtCache[i].token != NULL ? &RdtCache[i] : NULL;
	return NULL;
}

/*
 * RdtKeep
 *		The channel's new RDT, valid for expires_in seconds from now; the
 *		previous one is wiped.
 */
static void
RdtKeep(int32 channel_id, const char *token, int64 expires_in)
{
	RdtEntry   *e = NULL;
	int			i;

	for (i = 0; i < RdtCount && e == NULL; i++)
		if (RdtCache[i].channel_id == channel_id)
			e = &RdtCache[i];
	if (e == NULL)
	{
		if (RdtCount == RdtAllocated)
		{
			RdtAllocated = Max(8, RdtAllocated * 2);
			RdtCache = RdtCache == NULL
				? MemoryContextAlloc(TopMemoryContext, sizeof(RdtEntry) * RdtAllocated)
				: repalloc(RdtCache, sizeof(RdtEntry) * RdtAllocated);
		}
		e = &RdtCache[RdtCount++];
		e->channel_id = channel_id;
		e->token = NULL;
	}
	if (e->token != NULL)
	{
		explicit_bzero(e->token, strlen(e->token));
		pfree(e->token);
	}
	e->token = MemoryContextStrdup(TopMemoryContext, token);
	e->expires = time(NULL) + (time_t) expires_in;
}

/* StepOperation: the operation of a restricted-data request of a pull step */
static const char *
StepOperation(const char *step)
{
	if (step == NULL)
		return NULL;
	if (strcmp(step, "orders") == 0)
		return "order_pull";
	if (strcmp(step, "order") == 0)
		return "order_get";
	if (strcmp(step, "items") == 0)
		return "order_items";
	return NULL;
}

/* RestrictedOperation: whether an operation is sent with the RDT */
static bool
RestrictedOperation(const char *operation)
{
	return strcmp(operation, "order_pull") == 0 || strcmp(operation, "order_get") == 0 ||
		strcmp(operation, "order_items") == 0;
}

/*
 * AmazonAuthorize
 *		x-amz-access-token and x-amz-date on SP-API calls: the LWA token, or
 *		on getOrders, getOrder and getOrderItems the channel's cached
 *		Restricted Data Token (an ERROR when there is none or it expired:
 *		the job fails, its pull chain ends); nothing on the presigned
 *		document URLs (S3 refuses unsigned x-amz-* headers, and the token
 *		must not leave SP-API).
 */
static void
AmazonAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	time_t		now = time(NULL);
	struct tm	tm;
	char		stamp[32];

	if (strcmp(req->operation, "feed_upload") == 0 || strcmp(req->operation, "feed_report") == 0)
		return;
	if (RestrictedOperation(req->operation))
	{
		RdtEntry   *e = RdtLookup(ch->id);

		if (e == NULL)
			ereport(ERROR,
					(errmsg("no Restricted Data Token for this Amazon order pull request "
							"(the sync worker restarted during the pull): the pull ends here, "
							"the next one starts over with a new token")));
		if (e->expires <= now)
			ereport(ERROR,
					(errmsg("the Restricted Data Token of this Amazon order pull expired before "
							"the request could be sent: the pull ends here, the next one starts "
							"over with a new token")));
		token = e->token;
	}
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	HttpAddHeader(req, "x-amz-access-token: %s", token);
	HttpAddHeader(req, "x-amz-date: %s", stamp);
}

/*
 * Order pull
 */

/* PullString: a string of an object (the pull state), NULL when absent or empty */
static const char *
PullString(OcJson *state, const char *key)
{
	const char *s = OcJsonString(OcJsonGet(state, key));

	return (s != NULL && *s != '\0') ? s : NULL;
}

/* JsonTrue: a JSON true, or the string "true" (IsGift is a string) */
static bool
JsonTrue(OcJson *value)
{
	const char *s = OcJsonString(value);

	if (s != NULL)
		return pg_strcasecmp(s, "true") == 0;
	return value != NULL && strcmp(OcJsonDump(value), "true") == 0;
}

/*
 * RdtRequest
 *		createRestrictedDataToken for the restricted resources of a pull,
 *		generic paths ({orderId}) so one token covers every order; the
 *		request to make with the token waits in the state ("resume").
 */
static void
RdtRequest(ChannelConfig *ch, OcJson *state, const char *step, const char *path,
		   OutRequest *out)
{
	static const char *const paths[] = {"/orders/v0/orders", "/orders/v0/orders/{orderId}",
	"/orders/v0/orders/{orderId}/orderItems", NULL};
	OcJson	   *body = OcJsonNewObject();
	OcJson	   *resources = OcJsonSetArray(body, "restrictedResources");
	OcJson	   *resume;
	int			i;

	for (i = 0; paths[i] != NULL; i++)
	{
		OcJson	   *r = OcJsonAppendObject(resources);
		OcJson	   *elements;

		OcJsonSetString(r, "method", "GET");
		OcJsonSetString(r, "path", paths[i]);
		elements = OcJsonSetArray(r, "dataElements");
		OcJsonAppendString(elements, "buyerInfo");
		/* order items carry no address */
		if (strstr(paths[i], "orderItems") == NULL)
			OcJsonAppendString(elements, "shippingAddress");
	}
	resume = OcJsonSetObject(state, "resume");
	OcJsonSetString(resume, "step", step);
	OcJsonSetString(resume, "path", path);
	OcJsonSetString(state, "step", "rdt");
	ApiRequest(ch, out, "auth_rdt", "POST", pstrdup(AMAZON_RDT_PATH), body);
}

/*
 * RestrictedRequest
 *		A request whose answer holds restricted data (step "orders", "order"
 *		or "items"), sent with the cached RDT: a new RDT first when there is
 *		none or it expires within AMAZON_RDT_MARGIN_S.
 */
static void
RestrictedRequest(ChannelConfig *ch, OcJson *state, const char *step, char *path,
				  OutRequest *out)
{
	RdtEntry   *e = RdtLookup(ch->id);

	if (e == NULL || e->expires - AMAZON_RDT_MARGIN_S <= time(NULL))
	{
		RdtRequest(ch, state, step, path, out);
		return;
	}
	OcJsonSetString(state, "step", step);
	ApiRequest(ch, out, StepOperation(step), "GET", path, NULL);
}

/* OrdersPath: getOrders, the first page of the window or a NextToken's */
static char *
OrdersPath(ChannelConfig *ch, OcJson *state, const char *token)
{
	char	   *path;

	if (token != NULL)
		path = psprintf("/orders/v0/orders?MarketplaceIds=%s&NextToken=%s",
						MarketplaceIdsCsv(ch), UrlEncode(token));
	else
	{
		const char *since = OcJsonString(OcJsonGet(state, "since"));
		const char *until = OcJsonString(OcJsonGet(state, "until"));

		path = psprintf("/orders/v0/orders?MarketplaceIds=%s&LastUpdatedAfter=%s%s%s"
						"&OrderStatuses=%s&MaxResultsPerPage=%d",
						MarketplaceIdsCsv(ch), UrlEncode(since ? since : ""),
						until ? "&LastUpdatedBefore=" : "", until ? UrlEncode(until) : "",
						AMAZON_ORDER_STATUSES, AMAZON_ORDERS_PAGE);
	}
	return path;
}

/* OrdersRequest: getOrders, the first page of the window or a NextToken's */
static void
OrdersRequest(ChannelConfig *ch, OcJson *state, const char *token, OutRequest *out)
{
	RestrictedRequest(ch, state, "orders", OrdersPath(ch, state, token), out);
}

/* ItemsRequest: getOrderItems of an order, the first page or a NextToken's */
static void
ItemsRequest(ChannelConfig *ch, OcJson *state, const char *order_id,
			 const char *token, OutRequest *out)
{
	char	   *path = psprintf("/orders/v0/orders/%s/orderItems", UrlEncode(order_id));

	if (token != NULL)
		path = psprintf("%s?NextToken=%s", path, UrlEncode(token));
	RestrictedRequest(ch, state, "items", path, out);
}

/*
 * AmazonBuildPull
 *		The first request of a pull, always a new Restricted Data Token; then
 *		getOrders of the window, or getOrder of the order
 *		omnichan.fetch_order asked for.
 */
static void
AmazonBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	const char *order_id = PullString(state, "order_id");

	if (order_id != NULL)
		RdtRequest(ch, state, "order",
				   psprintf("/orders/v0/orders/%s", UrlEncode(order_id)), out);
	else
		RdtRequest(ch, state, "orders", OrdersPath(ch, state, NULL), out);
}

/*
 * ParseRdt
 *		The answer of createRestrictedDataToken: the token kept in the
 *		worker's memory only, then the request that waited for it (sent with
 *		it, however short its life).  Nothing of the token goes into the
 *		state or an error message.
 */
static bool
ParseRdt(ChannelConfig *ch, OcJson *doc, OcJson *state, OutRequest *next, char **error)
{
	const char *token = OcJsonString(OcJsonGet(doc, "restrictedDataToken"));
	OcJson	   *life = OcJsonGet(doc, "expiresIn");
	OcJson	   *resume = OcJsonGet(state, "resume");
	const char *step = PullString(resume, "step");
	const char *path = PullString(resume, "path");
	int64		expires_in = 3600;	/* Amazon's documented lifetime */

	if (token == NULL || *token == '\0' || strlen(token) > AMAZON_MAX_RDT ||
		strpbrk(token, "\r\n") != NULL)
	{
		char	   *msg = ErrorsMessage(doc);

		*error = msg ? psprintf("Amazon createRestrictedDataToken %s", msg)
			: pstrdup("Amazon createRestrictedDataToken answered no valid restrictedDataToken");
		return false;
	}
	if (!OcJsonIsNull(life) &&
		(!OcJsonInt(life, &expires_in) || expires_in < 1 || expires_in > AMAZON_MAX_RDT_LIFE_S))
	{
		*error = pstrdup("Amazon createRestrictedDataToken answered an invalid expiresIn");
		return false;
	}
	if (StepOperation(step) == NULL || path == NULL ||
		strncmp(path, "/orders/v0/orders", strlen("/orders/v0/orders")) != 0)
	{
		*error = pstrdup("the pull state has no request waiting for the restricted data token");
		return false;
	}
	RdtKeep(ch->id, token, expires_in);
	step = pstrdup(step);
	path = pstrdup(path);
	(void) OcJsonSetObject(state, "resume");
	OcJsonSetString(state, "step", step);
	ApiRequest(ch, next, StepOperation(step), "GET", (char *) path, NULL);
	return true;
}

/*
 * CheckText
 *		An optional text field: absent, null or a string of at most max
 *		bytes.  False (with *error) for anything else.
 */
static bool
CheckText(OcJson *obj, const char *key, int max, const char *what, char **error)
{
	OcJson	   *v = OcJsonGet(obj, key);
	const char *s = OcJsonString(v);

	if (OcJsonIsNull(v))
		return true;
	if (s == NULL || strlen(s) > (size_t) max)
	{
		*error = psprintf("Amazon %s has an invalid %s", what, key);
		return false;
	}
	return true;
}

/*
 * CheckMoney
 *		An optional Money field {"CurrencyCode", "Amount"}: a decimal amount,
 *		in the order's currency (*currency, set from the first amount seen
 *		when NULL).
 */
static bool
CheckMoney(OcJson *obj, const char *key, const char **currency,
		   const char *what, char **error)
{
	OcJson	   *m = OcJsonGet(obj, key);
	const char *code;

	if (OcJsonIsNull(m))
		return true;
	code = OcJsonString(OcJsonGet(m, "CurrencyCode"));
	if (!OcJsonIsObject(m) || DecimalOf(OcJsonGet(m, "Amount")) == NULL ||
		(code != NULL && strlen(code) != 3))
	{
		*error = psprintf("Amazon %s has an invalid %s", what, key);
		return false;
	}
	if (code != NULL)
	{
		if (*currency == NULL)
			*currency = code;
		else if (pg_strcasecmp(*currency, code) != 0)
		{
			*error = psprintf("Amazon %s has %s in %s, not in the order's currency %s",
							  what, key, code, *currency);
			return false;
		}
	}
	return true;
}

/* MoneyOf: the amount of a (checked) Money field, or NULL */
static char *
MoneyOf(OcJson *obj, const char *key)
{
	return DecimalOf(OcJsonGet(OcJsonGet(obj, key), "Amount"));
}

/*
 * CheckOrder
 *		An Order object of getOrders / getOrder, checked before anything of
 *		the answer is used.
 */
static bool
CheckOrder(OcJson *o, char **error)
{
	static const char *const texts[] = {"FulfillmentChannel", "MarketplaceId",
		"ShipmentServiceLevelCategory", "LastUpdateDate", NULL};
	static const char *const addr[] = {"Name", "CompanyName", "AddressLine1", "AddressLine2",
		"AddressLine3", "City", "StateOrRegion", "PostalCode", "CountryCode", "Phone", NULL};
	const char *id = OcJsonString(OcJsonGet(o, "AmazonOrderId"));
	const char *status = OcJsonString(OcJsonGet(o, "OrderStatus"));
	const char *currency = NULL;
	OcJson	   *ship;
	OcJson	   *buyer;
	char	   *what;
	int64		secs;
	int			i;

	if (!OcJsonIsObject(o) || id == NULL || *id == '\0' || strlen(id) > 64)
	{
		*error = pstrdup("Amazon answered an order without a valid AmazonOrderId");
		return false;
	}
	what = psprintf("order %s", id);
	if (status == NULL || *status == '\0' || strlen(status) > 64)
	{
		*error = psprintf("Amazon %s has no valid OrderStatus", what);
		return false;
	}
	if (!EpochFromIso(OcJsonString(OcJsonGet(o, "PurchaseDate")), &secs))
	{
		*error = psprintf("Amazon %s has no valid PurchaseDate", what);
		return false;
	}
	for (i = 0; texts[i] != NULL; i++)
		if (!CheckText(o, texts[i], 64, what, error))
			return false;
	if (!CheckMoney(o, "OrderTotal", &currency, what, error))
		return false;
	ship = OcJsonGet(o, "ShippingAddress");
	if (!OcJsonIsNull(ship))
	{
		if (!OcJsonIsObject(ship))
		{
			*error = psprintf("Amazon %s has an invalid ShippingAddress", what);
			return false;
		}
		for (i = 0; addr[i] != NULL; i++)
			if (!CheckText(ship, addr[i], AMAZON_MAX_TEXT, what, error))
				return false;
	}
	buyer = OcJsonGet(o, "BuyerInfo");
	if (!OcJsonIsNull(buyer))
	{
		if (!OcJsonIsObject(buyer) ||
			!CheckText(buyer, "BuyerEmail", AMAZON_MAX_TEXT, what, error) ||
			!CheckText(buyer, "BuyerName", AMAZON_MAX_TEXT, what, error))
		{
			if (*error == NULL)
				*error = psprintf("Amazon %s has an invalid BuyerInfo", what);
			return false;
		}
	}
	return true;
}

/*
 * CheckItem
 *		An OrderItem of getOrderItems, its amounts in the order's currency.
 */
static bool
CheckItem(OcJson *item, const char *order_id, const char **currency, char **error)
{
	static const char *const money[] = {"ItemPrice", "ItemTax", "ShippingPrice", "ShippingTax",
		"ShippingDiscount", "ShippingDiscountTax", "PromotionDiscount",
	"PromotionDiscountTax", NULL};
	const char *id = OcJsonString(OcJsonGet(item, "OrderItemId"));
	OcJson	   *buyer;
	char	   *what;
	int64		qty;
	int			i;

	if (!OcJsonIsObject(item) || id == NULL || *id == '\0' || strlen(id) > 64)
	{
		*error = psprintf("Amazon answered an item of order %s without a valid OrderItemId",
						  order_id);
		return false;
	}
	what = psprintf("item %s of order %s", id, order_id);
	if (!OcJsonInt(OcJsonGet(item, "QuantityOrdered"), &qty) || qty < 0 || qty > 1000000)
	{
		*error = psprintf("Amazon %s has no valid QuantityOrdered", what);
		return false;
	}
	if (!CheckText(item, "SellerSKU", 255, what, error) ||
		!CheckText(item, "ASIN", 255, what, error))
		return false;
	if (PullString(item, "SellerSKU") == NULL && PullString(item, "ASIN") == NULL)
	{
		*error = psprintf("Amazon %s has neither SellerSKU nor ASIN", what);
		return false;
	}
	for (i = 0; money[i] != NULL; i++)
		if (!CheckMoney(item, money[i], currency, what, error))
			return false;
	buyer = OcJsonGet(item, "BuyerInfo");
	if (!OcJsonIsNull(buyer) &&
		(!OcJsonIsObject(buyer) ||
		 !CheckText(buyer, "GiftMessageText", AMAZON_MAX_TEXT, what, error) ||
		 !CheckMoney(buyer, "GiftWrapPrice", currency, what, error) ||
		 !CheckMoney(buyer, "GiftWrapTax", currency, what, error)))
	{
		if (*error == NULL)
			*error = psprintf("Amazon %s has an invalid BuyerInfo", what);
		return false;
	}
	return true;
}

/*
 * Importable
 *		Whether an order is imported now (Odoo's Amazon connector rules):
 *		never while Pending; FBA once shipped or cancelled; merchant-fulfilled
 *		while to be shipped, or cancelled.
 */
static bool
Importable(OcJson *o)
{
	const char *status = OcJsonString(OcJsonGet(o, "OrderStatus"));
	const char *channel = OcJsonString(OcJsonGet(o, "FulfillmentChannel"));

	if (strcmp(status, "Canceled") == 0)
		return true;
	if (channel != NULL && strcmp(channel, "AFN") == 0)
		return strcmp(status, "Shipped") == 0 || strcmp(status, "InvoiceUnconfirmed") == 0;
	return strcmp(status, "Unshipped") == 0 || strcmp(status, "PartiallyShipped") == 0;
}

/* NextToken: a NextToken of a payload (NULL when absent or empty); false if invalid */
static bool
NextToken(OcJson *payload, const char **token, char **error)
{
	OcJson	   *v = OcJsonGet(payload, "NextToken");
	const char *s = OcJsonString(v);

	*token = NULL;
	if (OcJsonIsNull(v))
		return true;
	if (s == NULL || strlen(s) > AMAZON_MAX_TOKEN)
	{
		*error = pstrdup("Amazon answered an invalid NextToken");
		return false;
	}
	*token = *s != '\0' ? s : NULL;
	return true;
}

/*
 * Advance
 *		The next request of the chain: the items of the next order waiting
 *		in the state, else the next page of orders; false when the pull is
 *		complete.
 */
static bool
Advance(ChannelConfig *ch, OcJson *state, OutRequest *next)
{
	OcJson	   *queue = OcJsonGet(state, "queue");
	int64		pos = 0;
	char	   *token;

	(void) OcJsonInt(OcJsonGet(state, "queue_pos"), &pos);
	(void) OcJsonSetArray(state, "items");
	OcJsonSetString(state, "items_token", "");
	if (pos >= 0 && pos < OcJsonLength(queue))
	{
		ItemsRequest(ch, state, OcJsonString(OcJsonGet(OcJsonAt(queue, (int) pos), "AmazonOrderId")),
					 NULL, next);
		return true;
	}
	(void) OcJsonSetArray(state, "queue");
	OcJsonSetInt(state, "queue_pos", 0);
	if (PullString(state, "next_token") == NULL)
		return false;
	token = pstrdup(PullString(state, "next_token"));
	OcJsonSetString(state, "next_token", "");
	OrdersRequest(ch, state, token, next);
	return true;
}

/*
 * QueueOrders
 *		Keep the orders of an answer that are to be imported, after checking
 *		them all: they wait in the state for their items.
 */
static bool
QueueOrders(ChannelConfig *ch, OcJson *state, OcJson *list, const char *token,
			OutRequest *next, char **error)
{
	OcJson	   *queue;
	int			n = OcJsonLength(list);
	int			i;

	for (i = 0; i < n; i++)
		if (!CheckOrder(OcJsonAt(list, i), error))
			return false;
	queue = OcJsonSetArray(state, "queue");
	for (i = 0; i < n; i++)
		if (Importable(OcJsonAt(list, i)))
			OcJsonAppendCopy(queue, OcJsonAt(list, i));
	OcJsonSetInt(state, "queue_pos", 0);
	OcJsonSetString(state, "next_token", token ? token : "");
	return Advance(ch, state, next);
}

/* one line of a normalized order, per SKU */
typedef struct AmazonLine
{
	const char *sku;
	const char *external_id;
	int64		quantity;
	char	   *price;			/* line total */
	char	   *tax;
	char	   *discount;
} AmazonLine;

/*
 * AddLines
 *		The "lines" of an order, one per SKU; items with no quantity left
 *		out unless keep_zero (quantity 1 then).
 */
static int
AddLines(OcJson *lines, OcJson *items, bool keep_zero)
{
	int			n = OcJsonLength(items);
	AmazonLine *agg = palloc0(sizeof(AmazonLine) * Max(n, 1));
	int			nlines = 0;
	int			i,
				k;

	for (i = 0; i < n; i++)
	{
		OcJson	   *item = OcJsonAt(items, i);
		const char *sku = PullString(item, "SellerSKU");
		int64		qty = 0;

		if (sku == NULL)
			sku = PullString(item, "ASIN");
		(void) OcJsonInt(OcJsonGet(item, "QuantityOrdered"), &qty);
		if (qty == 0)
		{
			if (!keep_zero)
				continue;
			qty = 1;
		}
		for (k = 0; k < nlines; k++)
			if (strcmp(agg[k].sku, sku) == 0)
				break;
		if (k == nlines)
		{
			agg[k].sku = sku;
			agg[k].external_id = OcJsonString(OcJsonGet(item, "OrderItemId"));
			nlines++;
		}
		agg[k].quantity += qty;
		agg[k].price = DecimalAdd(agg[k].price, MoneyOf(item, "ItemPrice"));
		agg[k].tax = DecimalAdd(agg[k].tax, MoneyOf(item, "ItemTax"));
		agg[k].discount = DecimalAdd(agg[k].discount, MoneyOf(item, "PromotionDiscount"));
	}
	for (k = 0; k < nlines; k++)
	{
		OcJson	   *l = OcJsonAppendObject(lines);
		char	   *unit = DecimalDivInt(agg[k].price, agg[k].quantity, 2);

		/* ItemPrice is the line total: a unit price of more decimals if needed */
		if (DecimalCmp(DecimalMulInt(unit, agg[k].quantity), agg[k].price) != 0)
			unit = DecimalDivInt(agg[k].price, agg[k].quantity, 6);
		OcJsonSetString(l, "external_id", agg[k].external_id);
		OcJsonSetString(l, "sku", agg[k].sku);
		OcJsonSetInt(l, "quantity", agg[k].quantity);
		OcJsonSetString(l, "unit_price", unit);
		OcJsonSetString(l, "tax", agg[k].tax);
		OcJsonSetString(l, "discount", agg[k].discount);
	}
	return nlines;
}

/* SetText: key = the string of obj's field, when it has one */
static void
SetText(OcJson *out, const char *key, OcJson *obj, const char *field)
{
	const char *s = PullString(obj, field);

	if (s != NULL)
		OcJsonSetString(out, key, s);
}

/*
 * AddAddress
 *		"shipping_address" from an SP-API Address.
 */
static void
AddAddress(OcJson *order, OcJson *addr)
{
	OcJson	   *a;
	const char *l2 = PullString(addr, "AddressLine2");
	const char *l3 = PullString(addr, "AddressLine3");

	if (!OcJsonIsObject(addr))
		return;
	a = OcJsonSetObject(order, "shipping_address");
	SetText(a, "name", addr, "Name");
	SetText(a, "street", addr, "AddressLine1");
	if (l2 != NULL && l3 != NULL)
		OcJsonSetString(a, "street2", psprintf("%s, %s", l2, l3));
	else if (l2 != NULL || l3 != NULL)
		OcJsonSetString(a, "street2", l2 ? l2 : l3);
	SetText(a, "city", addr, "City");
	SetText(a, "zip", addr, "PostalCode");
	SetText(a, "state", addr, "StateOrRegion");
	SetText(a, "country", addr, "CountryCode");
	SetText(a, "phone", addr, "Phone");
}

/*
 * AddSla
 *		"sla" flags of an order.
 */
static void
AddSla(OcJson *order, OcJson *o)
{
	static const char *const categories[][2] = {
		{"Expedited", "expedited"}, {"NextDay", "next_day"}, {"SameDay", "same_day"},
		{"SecondDay", "two_day"}, {"Priority", "priority"}, {"Scheduled", "scheduled"},
		{NULL, NULL}
	};
	OcJson	   *sla = OcJsonSetArray(order, "sla");
	const char *cat = OcJsonString(OcJsonGet(o, "ShipmentServiceLevelCategory"));
	int			i;

	if (JsonTrue(OcJsonGet(o, "IsPrime")))
		OcJsonAppendString(sla, "prime");
	if (JsonTrue(OcJsonGet(o, "IsBusinessOrder")))
		OcJsonAppendString(sla, "business");
	if (JsonTrue(OcJsonGet(o, "IsPremiumOrder")))
		OcJsonAppendString(sla, "premium");
	for (i = 0; cat != NULL && categories[i][0] != NULL; i++)
		if (strcmp(cat, categories[i][0]) == 0)
			OcJsonAppendString(sla, categories[i][1]);
}

/*
 * AddOrder
 *		Append the normalized order of an Order and its (checked) items.
 */
static void
AddOrder(OcJson *orders, OcJson *o, OcJson *items)
{
	OcJson	   *order = OcJsonAppendObject(orders);
	const char *status = OcJsonString(OcJsonGet(o, "OrderStatus"));
	bool		cancelled = strcmp(status, "Canceled") == 0;
	OcJson	   *buyer = OcJsonGet(o, "BuyerInfo");
	OcJson	   *ship = OcJsonGet(o, "ShippingAddress");
	const char *currency = OcJsonString(OcJsonPath(o, "OrderTotal.CurrencyCode"));
	char	   *sums[7] = {NULL};
	enum
	{
		S_ITEMS, S_SHIP, S_WRAP, S_DISC, S_TAX, S_NTAX, S_GIFT
	};
	StringInfoData gift;
	OcJson	   *lines;
	OcJson	   *totals;
	OcJson	   *raw;
	int64		secs = 0;
	int			n = OcJsonLength(items);
	int			i;

	OcJsonSetString(order, "external_id", OcJsonString(OcJsonGet(o, "AmazonOrderId")));
	OcJsonSetString(order, "status", status);
	OcJsonSetBool(order, "cancelled", cancelled);
	(void) EpochFromIso(OcJsonString(OcJsonGet(o, "PurchaseDate")), &secs);
	OcJsonSetString(order, "ordered_at", IsoFromEpoch(secs));

	/* amounts */
	initStringInfo(&gift);
	for (i = 0; i < n; i++)
	{
		OcJson	   *item = OcJsonAt(items, i);
		OcJson	   *ib = OcJsonGet(item, "BuyerInfo");
		const char *msg = PullString(ib, "GiftMessageText");

		if (currency == NULL)
			currency = OcJsonString(OcJsonPath(item, "ItemPrice.CurrencyCode"));
		sums[S_ITEMS] = DecimalAdd(sums[S_ITEMS], MoneyOf(item, "ItemPrice"));
		sums[S_SHIP] = DecimalAdd(sums[S_SHIP], MoneyOf(item, "ShippingPrice"));
		sums[S_WRAP] = DecimalAdd(sums[S_WRAP], MoneyOf(ib, "GiftWrapPrice"));
		sums[S_DISC] = DecimalAdd(DecimalAdd(sums[S_DISC], MoneyOf(item, "PromotionDiscount")),
								  MoneyOf(item, "ShippingDiscount"));
		sums[S_TAX] = DecimalAdd(DecimalAdd(DecimalAdd(sums[S_TAX], MoneyOf(item, "ItemTax")),
											MoneyOf(item, "ShippingTax")),
								 MoneyOf(ib, "GiftWrapTax"));
		sums[S_NTAX] = DecimalAdd(DecimalAdd(sums[S_NTAX], MoneyOf(item, "PromotionDiscountTax")),
								  MoneyOf(item, "ShippingDiscountTax"));
		if (msg != NULL && strstr(gift.data, msg) == NULL)
		{
			/* one message per order, usually repeated on every item */
			if (gift.len > 0)
				appendStringInfoChar(&gift, '\n');
			appendStringInfoString(&gift, msg);
		}
	}
	if (currency != NULL)
		OcJsonSetString(order, "currency", currency);

	/* buyer and address (restricted data: may be absent) */
	if (OcJsonIsObject(buyer) || OcJsonIsObject(ship))
	{
		OcJson	   *b = OcJsonSetObject(order, "buyer");

		SetText(b, "id", buyer, "BuyerEmail");
		SetText(b, "name", buyer, "BuyerName");
		if (PullString(buyer, "BuyerEmail") && strchr(PullString(buyer, "BuyerEmail"), '@'))
			SetText(b, "email", buyer, "BuyerEmail");
		SetText(b, "phone", ship, "Phone");
	}
	AddAddress(order, ship);

	totals = OcJsonSetObject(order, "totals");
	OcJsonSetString(totals, "items", sums[S_ITEMS] ? sums[S_ITEMS] : "0");
	OcJsonSetString(totals, "shipping", sums[S_SHIP] ? sums[S_SHIP] : "0");
	OcJsonSetString(totals, "gift_wrap", sums[S_WRAP] ? sums[S_WRAP] : "0");
	OcJsonSetString(totals, "discount", sums[S_DISC] ? sums[S_DISC] : "0");
	OcJsonSetString(totals, "tax", DecimalSub(sums[S_TAX], sums[S_NTAX]));
	if (MoneyOf(o, "OrderTotal") != NULL)
		OcJsonSetString(totals, "total", MoneyOf(o, "OrderTotal"));

	AddSla(order, o);
	if (gift.len > 0)
		OcJsonSetString(order, "gift_message",
						pnstrdup(gift.data, pg_mbcliplen(gift.data, gift.len, AMAZON_MAX_TEXT)));

	lines = OcJsonSetArray(order, "lines");
	if (AddLines(lines, items, false) == 0 && cancelled)
		(void) AddLines(lines, items, true);

	OcJsonSetCopy(order, "raw", o);
	raw = OcJsonGet(order, "raw");
	OcJsonSetCopy(raw, "OrderItems", items);
}

/*
 * ParseItems
 *		A page of getOrderItems for the order at queue_pos: keep its items;
 *		when it is the last page, emit the order and go on.
 */
static bool
ParseItems(ChannelConfig *ch, OcJson *payload, OcJson *state, OcJson *orders,
		   OutRequest *next, char **error)
{
	int64		pos = -1;
	OcJson	   *o;
	OcJson	   *list = OcJsonGet(payload, "OrderItems");
	OcJson	   *items = OcJsonGet(state, "items");
	const char *order_id;
	const char *answered = OcJsonString(OcJsonGet(payload, "AmazonOrderId"));
	const char *currency;
	const char *token;
	int			n = OcJsonLength(list);
	int			i;

	(void) OcJsonInt(OcJsonGet(state, "queue_pos"), &pos);
	o = pos >= 0 ? OcJsonAt(OcJsonGet(state, "queue"), (int) pos) : NULL;
	order_id = OcJsonString(OcJsonGet(o, "AmazonOrderId"));
	if (order_id == NULL || OcJsonLength(items) < 0)
	{
		*error = pstrdup("the pull state has no order waiting for its items");
		return false;
	}
	if (answered != NULL && strcmp(answered, order_id) != 0)
	{
		*error = psprintf("Amazon answered the items of order %s for order %s", answered, order_id);
		return false;
	}
	if (n < 0 || n > AMAZON_ITEMS_PAGE)
	{
		*error = psprintf("Amazon answered no valid OrderItems for order %s", order_id);
		return false;
	}
	if (!NextToken(payload, &token, error))
		return false;
	currency = OcJsonString(OcJsonPath(o, "OrderTotal.CurrencyCode"));
	for (i = 0; i < OcJsonLength(items); i++)
		if (!CheckItem(OcJsonAt(items, i), order_id, &currency, error))
			return false;
	for (i = 0; i < n; i++)
		if (!CheckItem(OcJsonAt(list, i), order_id, &currency, error))
			return false;

	/* past 501 items the order cannot be imported anyway: keep no more */
	for (i = 0; i < n && OcJsonLength(items) < AMAZON_MAX_ITEMS; i++)
		OcJsonAppendCopy(items, OcJsonAt(list, i));
	if (token != NULL)
	{
		char	   *t = pstrdup(token);

		OcJsonSetString(state, "items_token", t);
		ItemsRequest(ch, state, order_id, t, next);
		return true;
	}
	AddOrder(orders, o, items);
	OcJsonSetInt(state, "queue_pos", pos + 1);
	return Advance(ch, state, next);
}

/*
 * AmazonParsePull
 *		One answer of the chain: a Restricted Data Token, a page of
 *		getOrders, the order of getOrder, or a page of an order's items
 *		("step" of the state says which).
 */
static bool
AmazonParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state,
				OcJson *orders, OutRequest *next, char **error)
{
	OcJson	   *doc = ResponseJson(req);
	OcJson	   *payload = OcJsonGet(doc, "payload");
	const char *step = PullString(state, "step");

	*error = NULL;
	if (step != NULL && strcmp(step, "rdt") == 0)
		return ParseRdt(ch, doc, state, next, error);
	if (!OcJsonIsObject(payload))
	{
		char	   *msg = ErrorsMessage(doc);

		*error = msg ? psprintf("Amazon %s", msg)
			: psprintf("Amazon %s answered without a payload object", req->operation);
		return false;
	}
	if (step != NULL && strcmp(step, "orders") == 0)
	{
		OcJson	   *list = OcJsonGet(payload, "Orders");
		const char *token;
		int			n = OcJsonLength(list);

		if (n < 0 || n > AMAZON_ORDERS_PAGE)
		{
			*error = pstrdup("Amazon getOrders answered no valid Orders array");
			return false;
		}
		if (!NextToken(payload, &token, error))
			return false;
		return QueueOrders(ch, state, list, token ? pstrdup(token) : NULL, next, error);
	}
	if (step != NULL && strcmp(step, "order") == 0)
	{
		/* getOrder: the payload is the order */
		OcJson	   *list = OcJsonNewArray();

		OcJsonAppendCopy(list, payload);
		return QueueOrders(ch, state, list, NULL, next, error);
	}
	if (step != NULL && strcmp(step, "items") == 0)
		return ParseItems(ch, payload, state, orders, next, error);
	*error = psprintf("the pull state has an unknown step \"%s\"", step ? step : "");
	return false;
}
