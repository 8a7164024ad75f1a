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
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <time.h>
#include <zlib.h>

#include "lib/stringinfo.h"

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

#define AMAZON_FEED_CTYPE		"application/json; charset=UTF-8"
#define AMAZON_USER_AGENT		"omnichan/" OMNICHAN_VERSION " (Language=C)"

static void AmazonBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void AmazonParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static bool AmazonNextStep(ChannelConfig *ch, HttpRequest *req, OcJson *payload,
						   PushItem *items, int n, OutRequest *next);
static void AmazonBuildToken(ChannelConfig *ch, OcJson *secrets, HttpRequest *req);
static bool AmazonParseToken(HttpRequest *req, char **token, int *expires_in, char **error);
static void AmazonAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);

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
 * AmazonAuthorize
 *		x-amz-access-token and x-amz-date on SP-API calls; nothing on the
 *		presigned document URLs (S3 refuses unsigned x-amz-* headers, and
 *		the token must not leave SP-API).
 */
static void
AmazonAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	time_t		now = time(NULL);
	struct tm	tm;
	char		stamp[32];

	if (strcmp(req->operation, "feed_upload") == 0 || strcmp(req->operation, "feed_report") == 0)
		return;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	HttpAddHeader(req, "x-amz-access-token: %s", token);
	HttpAddHeader(req, "x-amz-date: %s", stamp);
}
