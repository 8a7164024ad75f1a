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

const Connector EbayConnector = {
	.kind = "ebay",
	.push_batch = EBAY_BATCH,
	.build_push = EbayBuildPush,
	.parse_push = EbayParsePush,
	.needs_token = true,
	.build_token = EbayBuildToken,
	.parse_token = EbayParseToken,
	.authorize = EbayAuthorize,
};

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

/* EbayAuthorize: Bearer user access token */
static void
EbayAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	HttpAddHeader(req, "Authorization: Bearer %s", token);
}
