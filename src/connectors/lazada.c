/*-------------------------------------------------------------------------
 *
 * lazada.c
 *	  Lazada / Daraz connector: Open Platform (IOP) REST gateway.
 *
 * Stock push: POST <endpoint>/product/price_quantity/update with the form
 * parameter payload = <Request><Product><Skus><Sku>[<ItemId>][<SkuId>]
 * <SellerSku>..</SellerSku><Quantity>N</Quantity></Sku>...</Skus></Product>
 * </Request>, up to 50 SKUs per call (every value XML-escaped).  The
 * channel's country picks the endpoint (Lazada or Daraz host, see the SQL
 * defaults); Daraz runs the same protocol.
 *
 * Answers: envelope {code, type, message, request_id, detail[]}; code "0" is
 * success; per-SKU failures come as detail[] entries {field, seller_sku,
 * message} (detail shape (unverified) in MARKETPLACE_APIS.md section 7.2),
 * the SKUs not listed there were updated.  The gateway reports throttling
 * inside a 200 answer (code ApiCallLimit (unverified)): the throttled hook
 * retries the request.
 *
 * Auth: system parameters app_key, timestamp (milliseconds), access_token,
 * sign_method=sha256 and sign in the query string, the business parameter
 * (payload) in the form body, as the IOP SDKs send them.  sign = upper-case
 * hex HMAC-SHA256(app_secret, API path + the sorted name+value pairs of all
 * parameters but sign), values raw (section 7.1); computed at send time
 * (authorize).  No token refresh is implemented: the access_token credential
 * is used as it is, and a refused token is reported as a credentials error.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/time.h>

#include "lib/stringinfo.h"

#include "../connector.h"

/* SKUs per price_quantity/update call (the API's maximum) */
#define LAZADA_BATCH	50
#define LAZADA_API		"/product/price_quantity/update"

static void LazadaBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void LazadaParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static double LazadaThrottled(ChannelConfig *ch, HttpRequest *req);
static void LazadaAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);

const Connector LazadaConnector = {
	.kind = "lazada",
	.push_batch = LAZADA_BATCH,
	.build_push = LazadaBuildPush,
	.parse_push = LazadaParsePush,
	.throttled = LazadaThrottled,
	.needs_token = false,
	.authorize = LazadaAuthorize,
};

/* AppendXmlEscaped: text content, with & < > " ' escaped */
static void
AppendXmlEscaped(StringInfo buf, const char *s)
{
	for (; *s; s++)
	{
		switch (*s)
		{
			case '&':
				appendStringInfoString(buf, "&amp;");
				break;
			case '<':
				appendStringInfoString(buf, "&lt;");
				break;
			case '>':
				appendStringInfoString(buf, "&gt;");
				break;
			case '"':
				appendStringInfoString(buf, "&quot;");
				break;
			case '\'':
				appendStringInfoString(buf, "&apos;");
				break;
			default:
				appendStringInfoChar(buf, *s);
		}
	}
}

/* AppendElement: <name>escaped value</name> */
static void
AppendElement(StringInfo buf, const char *name, const char *value)
{
	appendStringInfo(buf, "<%s>", name);
	AppendXmlEscaped(buf, value);
	appendStringInfo(buf, "</%s>", name);
}

/*
 * LazadaBuildPush
 *		One price_quantity/update call for up to 50 SKUs; the signature and
 *		system parameters are added at send time.
 */
static void
LazadaBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out)
{
	StringInfoData xml;
	int			i;

	initStringInfo(&xml);
	appendStringInfoString(&xml, "<Request><Product><Skus>");
	for (i = 0; i < n; i++)
	{
		const char *item_id = OcJsonString(OcJsonGet(items[i].external, "item_id"));
		const char *sku_id = OcJsonString(OcJsonGet(items[i].external, "sku_id"));

		appendStringInfoString(&xml, "<Sku>");
		if (item_id != NULL)
			AppendElement(&xml, "ItemId", item_id);
		if (sku_id != NULL)
			AppendElement(&xml, "SkuId", sku_id);
		AppendElement(&xml, "SellerSku", items[i].sku);
		appendStringInfo(&xml, "<Quantity>%d</Quantity>", Max(items[i].quantity, 0));
		appendStringInfoString(&xml, "</Sku>");
	}
	appendStringInfoString(&xml, "</Skus></Product></Request>");

	out->operation = "stock_push";
	out->method = "POST";
	out->url = JoinUrl(ch->endpoint, LAZADA_API);
	OutRequestHeader(out, "Content-Type: application/x-www-form-urlencoded;charset=utf-8");
	out->body = psprintf("payload=%s", UrlEncode(xml.data));
	out->body_len = strlen(out->body);
}

/* HexValue: a hex digit's value, or -1 */
static int
HexValue(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* FormDecode: a form-urlencoded value ("+" and %XX) */
static char *
FormDecode(const char *s, size_t len)
{
	char	   *out = palloc(len + 1);
	size_t		i,
				o = 0;

	for (i = 0; i < len; i++)
	{
		if (s[i] == '+')
			out[o++] = ' ';
		else if (s[i] == '%' && i + 2 < len &&
				 HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0)
		{
			out[o++] = (char) (HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
			i += 2;
		}
		else
			out[o++] = s[i];
	}
	out[o] = '\0';
	return out;
}

/* FormParam: the decoded value of a form body's parameter, or NULL */
static char *
FormParam(const char *body, size_t len, const char *name)
{
	size_t		nlen = strlen(name);
	size_t		pos = 0;

	while (pos < len)
	{
		const char *p = body + pos;
		const char *amp = memchr(p, '&', len - pos);
		size_t		plen = amp ? (size_t) (amp - p) : len - pos;

		if (plen > nlen && p[nlen] == '=' && strncmp(p, name, nlen) == 0)
			return FormDecode(p + nlen + 1, plen - nlen - 1);
		pos += plen + 1;
	}
	return NULL;
}

/*
 * LazadaAuthorize
 *		System parameters and the signature, at send time only (the job row
 *		keeps the unsigned URL).
 */
static void
LazadaAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req)
{
	const char *app_key = SecretString(secrets, "app_key");
	const char *app_secret = SecretString(secrets, "app_secret");
	const char *access_token = SecretString(secrets, "access_token");
	const char *q = strchr(req->url, '?');
	char	   *base = q ? pnstrdup(req->url, q - req->url) : pstrdup(req->url);
	size_t		elen = strlen(ch->endpoint);
	const char *api;
	char	   *payload = NULL;
	struct timeval tv;
	char	   *timestamp;
	StringInfoData s;
	char	   *sign;
	char	   *c;
	MemoryContext old;

	/* the API name: the path below the gateway's base URL (e.g. /rest) */
	while (elen > 0 && ch->endpoint[elen - 1] == '/')
		elen--;
	if (strncmp(base, ch->endpoint, elen) == 0)
		api = base + elen;
	else
	{
		const char *scheme = strstr(base, "://");

		api = scheme ? strchr(scheme + 3, '/') : NULL;
		if (api == NULL)
			api = "/";
	}
	if (req->body != NULL && req->body_len > 0)
		payload = FormParam(req->body, req->body_len, "payload");

	gettimeofday(&tv, NULL);
	timestamp = psprintf("%lld", (long long) tv.tv_sec * 1000 + tv.tv_usec / 1000);

	/* API path + sorted name+value pairs (access_token < app_key < payload < sign_method < timestamp) */
	initStringInfo(&s);
	appendStringInfoString(&s, api);
	appendStringInfo(&s, "access_token%s", access_token);
	appendStringInfo(&s, "app_key%s", app_key);
	if (payload != NULL)
		appendStringInfo(&s, "payload%s", payload);
	appendStringInfoString(&s, "sign_methodsha256");
	appendStringInfo(&s, "timestamp%s", timestamp);
	sign = HmacSha256Hex(app_secret, strlen(app_secret), s.data, s.len);
	for (c = sign; *c; c++)
		*c = pg_toupper((unsigned char) *c);

	old = MemoryContextSwitchTo(req->cxt);
	req->url = psprintf("%s?access_token=%s&app_key=%s&sign=%s&sign_method=sha256&timestamp=%s",
						base, UrlEncode(access_token), UrlEncode(app_key), sign, timestamp);
	MemoryContextSwitchTo(old);
	memset(s.data, 0, s.len);
	pfree(s.data);
}

/*
 * ClassOfCode
 *		How a request-level error code is handled.
 */
static ItemErrorClass
ClassOfCode(int status, const char *code)
{
	static const char *const credentials[] = {
		"IllegalAccessToken", "IncompleteSignature", "InvalidSignature", "InvalidAppKey",
		"AppKeyNotExist", "AccessDenied", "InsufficientPermission", "AppWhiteIpLimit",
		NULL
	};
	static const char *const retry[] = {
		"ApiCallLimit", "E006", "6", "40011", "SYSTEM_ERROR", "RPC_ERROR", "ServiceTimeout",
		"ServiceUnavailable", "InternalError", NULL
	};
	int			i;

	if (status == 401 || status == 403)
		return ITEM_ERROR_CREDENTIALS;
	for (i = 0; credentials[i] != NULL; i++)
		if (strcmp(code, credentials[i]) == 0)
			return ITEM_ERROR_CREDENTIALS;
	if (status == 429 || status >= 500 || status == 0)
		return ITEM_ERROR_RETRY;
	for (i = 0; retry[i] != NULL; i++)
		if (strcmp(code, retry[i]) == 0)
			return ITEM_ERROR_RETRY;
	return ITEM_ERROR_FIX;
}

/* EnvelopeCode: the envelope's code as text ("0" = success), or NULL */
static const char *
EnvelopeCode(OcJson *doc)
{
	OcJson	   *c = OcJsonGet(doc, "code");
	int64		v;

	if (OcJsonString(c) != NULL)
		return OcJsonString(c);
	if (OcJsonInt(c, &v))
		return psprintf(INT64_FORMAT, v);
	return NULL;
}

/*
 * LazadaParsePush
 *		code "0": every SKU updated; otherwise the SKUs named in detail[] get
 *		their message, and when detail[] names none the error is the whole
 *		request's.
 */
static void
LazadaParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	const char *code = doc ? EnvelopeCode(doc) : NULL;
	const char *message;
	OcJson	   *detail;
	int			count,
				i,
				k;
	bool		any = false;

	if (code == NULL)
	{
		for (k = 0; k < n; k++)
		{
			items[k].error = psprintf("Lazada answered HTTP %d with an unreadable body (%s)",
									  req->status, doc == NULL ? perr : "no \"code\"");
			items[k].error_class = (req->status == 401 || req->status == 403)
				? ITEM_ERROR_CREDENTIALS : ITEM_ERROR_RETRY;
		}
		return;
	}
	if (strcmp(code, "0") == 0 && req->status >= 200 && req->status < 300)
	{
		for (k = 0; k < n; k++)
			items[k].ok = true;
		return;
	}

	message = OcJsonString(OcJsonGet(doc, "message"));
	detail = OcJsonGet(doc, "detail");
	count = OcJsonLength(detail);
	for (i = 0; i < count; i++)
	{
		OcJson	   *d = OcJsonAt(detail, i);
		const char *sku = OcJsonString(OcJsonGet(d, "seller_sku"));
		const char *m = OcJsonString(OcJsonGet(d, "message"));
		const char *field = OcJsonString(OcJsonGet(d, "field"));

		if (sku == NULL)
			continue;
		for (k = 0; k < n; k++)
		{
			if (strcmp(items[k].sku, sku) != 0)
				continue;
			items[k].ok = false;
			items[k].error = field
				? psprintf("Lazada %s: %s (%s)", code, m ? m : (message ? message : "no message"), field)
				: psprintf("Lazada %s: %s", code, m ? m : (message ? message : "no message"));
			items[k].error_class = ITEM_ERROR_FIX;
			any = true;
		}
	}
	if (any && req->status >= 200 && req->status < 300)
	{
		/* a per-SKU failure list: the SKUs it does not name were updated */
		for (k = 0; k < n; k++)
			if (items[k].error == NULL)
				items[k].ok = true;
		return;
	}
	for (k = 0; k < n; k++)
	{
		if (items[k].error != NULL)
			continue;
		items[k].ok = false;
		items[k].error = psprintf("Lazada %s: %s", code, message ? message : "no message");
		items[k].error_class = ClassOfCode(req->status, code);
	}
}

/*
 * LazadaThrottled
 *		ApiCallLimit (and the gateway's transient codes) inside a 200 answer:
 *		retry the whole request after the backoff (at least a second for a
 *		call limit).
 */
static double
LazadaThrottled(ChannelConfig *ch, HttpRequest *req)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	const char *code = doc ? EnvelopeCode(doc) : NULL;

	if (code == NULL || strcmp(code, "0") == 0)
		return -1;
	if (strcmp(code, "ApiCallLimit") == 0)
		return 1.0;
	if (strcmp(code, "E006") == 0 || strcmp(code, "6") == 0 || strcmp(code, "40011") == 0 ||
		strcmp(code, "SYSTEM_ERROR") == 0 || strcmp(code, "RPC_ERROR") == 0 ||
		strcmp(code, "ServiceTimeout") == 0)
		return 0;
	return -1;
}
