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
 * (authorize); the same signing covers the GET calls of the order pull,
 * whose business parameters travel in the query string.  No token refresh
 * is implemented: the access_token credential is used as it is, and a
 * refused token is reported as a credentials error.
 *
 * Order pull (section 7.3 and specs/lazada-daraz/order-api_*.json):
 * GET /orders/get?update_after=&update_before=&sort_by=updated_at
 * &sort_direction=ASC&offset=&limit=50 (ISO 8601 times with an offset, here
 * +00:00; both bounds inclusive), then for each page one
 * GET /orders/items/get?order_ids=[...] (operation "order_items"; at most 50
 * ids per call, hence pages of 50): the page's orders wait in the state
 * ("page") until their items arrive.  A full page is followed by another,
 * restarted at the page's last updated_at with the offset of the orders of
 * that second already read (NextPage: immune to orders moving in the list
 * during the pull, and to GetOrders' 4500 offset cap); a short page, or
 * offset + page >= countTotal, ends the pull.  fetch_order: GET /order/get
 * then the same items call.  An envelope code other than "0" fails the
 * answer with Lazada's code and message; ApiCallLimit and the transient
 * codes are retried by the throttled hook, as for the push.  pull_lag_s is 0
 * (the core's window overlap covers orders indexed late).
 *
 * Statuses: Lazada has no order status, only one status per item row (each
 * row is one unit): unpaid, pending, packed, repacked, ready_to_ship,
 * shipped, delivered, canceled, returned, failed, lost...  Rows "unpaid" are
 * ignored; an order with only unpaid rows is not imported (nor asked for
 * its items), nor is a paid, not cancelled order without address_shipping.
 * "status" = the distinct statuses of the rows imported, comma-separated as
 * Lazada writes them; "cancelled" = every paid row is canceled (those rows
 * are then the lines); otherwise canceled rows are left out of the lines.
 * sla: item fulfillment_sla (e.g. next_day), order_flag other than NORMAL
 * (guarantee), shipping_provider_type express, lower-cased.
 *
 * Money (decimal strings as sent): lines group the rows by seller SKU and
 * item_price: quantity = rows, unit_price = item_price, tax = tax_amount,
 * discount = voucher_seller (the seller-funded voucher; voucher_platform is
 * Lazada's and paid back to the seller).  totals: items = the item_prices,
 * discount = the seller vouchers, tax = the tax_amounts, shipping = the
 * order's shipping_fee, total = the paid_prices (after every voucher) +
 * shipping_fee, i.e. what the buyer paid (an order with a platform voucher
 * shows it as a total mismatch).  Currency: the items' currency, else the
 * country's.  buyer: id = the items' buyer_id, name = customer_first_name +
 * customer_last_name, phone = the shipping phone; Lazada gives no e-mail.
 * Addresses: address1 street, address5 (else address2) street2, city (else
 * address4), address3 state, post_code, country names (Malaysia, Sri
 * Lanka...) to ISO codes, else the channel's country.  raw = the order
 * object verbatim plus "order_items" = its GetMultipleOrderItems rows.
 *
 * Cancellation by the merchant: GET /order/reverse/cancel/create
 * (InitReverseOrderCancel) with order_id, order_item_id_list (the order's
 * rows neither canceled nor unpaid, from raw) and reason_id 1000017 ("out
 * of stock", the one id Lazada's pages show; ids come from
 * /order/reverse/cancel/validate per order, and Lazada sets the item's
 * stock to 0 with this reason (unverified)).  Refused without a call when a
 * row was already handed to the carrier (shipped, delivered...).  The
 * endpoint is from Lazada's API pages (not in MARKETPLACE_APIS.md).
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <sys/time.h>
#include <time.h>

#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"

#include "../connector.h"

/* SKUs per price_quantity/update call (the API's maximum) */
#define LAZADA_BATCH	50
#define LAZADA_API		"/product/price_quantity/update"

/* order pull */
#define LAZADA_ORDERS_API	"/orders/get"
#define LAZADA_ORDER_API	"/order/get"
#define LAZADA_ITEMS_API	"/orders/items/get"
#define LAZADA_CANCEL_API	"/order/reverse/cancel/create"
/* orders per GetOrders page = order ids per GetMultipleOrderItems call (its maximum) */
#define LAZADA_PAGE			50
#define LAZADA_MAX_OFFSET	4500	/* GetOrders' largest offset */
#define LAZADA_MAX_ORDERS	100		/* GetOrders' largest page: more is malformed */
#define LAZADA_PULL_LAG		0		/* the core's window overlap covers late indexing */
/* InitReverseOrderCancel reason "out of stock" (the one id the docs show) */
#define LAZADA_CANCEL_REASON "1000017"

static void LazadaBuildPush(ChannelConfig *ch, PushItem *items, int n, OutRequest *out);
static void LazadaParsePush(ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);
static double LazadaThrottled(ChannelConfig *ch, HttpRequest *req);
static void LazadaAuthorize(ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);
static void LazadaBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out);
static bool LazadaParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state,
							OcJson *orders, OutRequest *next, char **error);
static bool LazadaBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
static bool LazadaParseCancel(ChannelConfig *ch, HttpRequest *req, char **error);

const Connector LazadaConnector = {
	.kind = "lazada",
	.push_batch = LAZADA_BATCH,
	.build_push = LazadaBuildPush,
	.parse_push = LazadaParsePush,
	.throttled = LazadaThrottled,
	.needs_token = false,
	.authorize = LazadaAuthorize,
	.pull_operation = "order_pull",
	.pull_lag_s = LAZADA_PULL_LAG,
	.build_pull = LazadaBuildPull,
	.parse_pull = LazadaParsePull,
	.build_cancel = LazadaBuildCancel,
	.parse_cancel = LazadaParseCancel,
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

/* a request parameter to sign: name and raw (decoded) value */
typedef struct SignParam
{
	char	   *name;
	char	   *value;
} SignParam;

/* SignParamCmp: qsort order of the signature (names in ASCII order) */
static int
SignParamCmp(const void *a, const void *b)
{
	return strcmp(((const SignParam *) a)->name, ((const SignParam *) b)->name);
}

/*
 * AddQueryParams
 *		The decoded name=value pairs of a query string (or form body) of len
 *		bytes, appended to params[*n ..] (at most max in all).
 */
static void
AddQueryParams(const char *query, size_t len, SignParam *params, int *n, int max)
{
	size_t		pos = 0;

	while (pos < len && *n < max)
	{
		const char *p = query + pos;
		const char *amp = memchr(p, '&', len - pos);
		size_t		plen = amp ? (size_t) (amp - p) : len - pos;
		const char *eq = memchr(p, '=', plen);

		if (plen > 0)
		{
			size_t		nlen = eq ? (size_t) (eq - p) : plen;

			params[*n].name = FormDecode(p, nlen);
			params[*n].value = eq ? FormDecode(eq + 1, plen - nlen - 1) : pstrdup("");
			(*n)++;
		}
		pos += plen + 1;
	}
}

/*
 * LazadaAuthorize
 *		System parameters and the signature, at send time only (the job row
 *		keeps the unsigned URL).  Every parameter is signed: the business
 *		parameters of the query string (GET calls: orders, items, cancel)
 *		and of a form body (payload), with the system parameters.
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
	struct timeval tv;
	char	   *timestamp;
	SignParam	params[64];
	int			n = 0;
	int			i;
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

	gettimeofday(&tv, NULL);
	timestamp = psprintf("%lld", (long long) tv.tv_sec * 1000 + tv.tv_usec / 1000);

	params[n].name = "access_token";
	params[n++].value = (char *) access_token;
	params[n].name = "app_key";
	params[n++].value = (char *) app_key;
	params[n].name = "sign_method";
	params[n++].value = "sha256";
	params[n].name = "timestamp";
	params[n++].value = timestamp;
	if (q != NULL)
		AddQueryParams(q + 1, strlen(q + 1), params, &n, lengthof(params));
	if (req->body != NULL && req->body_len > 0)
		AddQueryParams(req->body, req->body_len, params, &n, lengthof(params));
	qsort(params, n, sizeof(SignParam), SignParamCmp);

	/* API path + the sorted name+value pairs, values raw */
	initStringInfo(&s);
	appendStringInfoString(&s, api);
	for (i = 0; i < n; i++)
	{
		appendStringInfoString(&s, params[i].name);
		appendStringInfoString(&s, params[i].value);
	}
	sign = HmacSha256Hex(app_secret, strlen(app_secret), s.data, s.len);
	for (c = sign; *c; c++)
		*c = pg_toupper((unsigned char) *c);

	old = MemoryContextSwitchTo(req->cxt);
	req->url = psprintf("%s?%s%saccess_token=%s&app_key=%s&sign=%s&sign_method=sha256&timestamp=%s",
						base, q ? q + 1 : "", (q && q[1] != '\0') ? "&" : "",
						UrlEncode(access_token), UrlEncode(app_key), sign, timestamp);
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

/* ------------------------------------------------------------------------
 * Order pull
 * ------------------------------------------------------------------------
 */

/* the item statuses after the handover to the carrier */
static const char *const HandedOver[] = {
	"shipped", "delivered", "returned", "failed", "lost", "shipped_back",
	"shipped_back_success", "shipped_back_failed", "failed_delivery", NULL
};

/* Lazada and Daraz countries: the names the API writes, ISO codes, currencies */
static const struct
{
	const char *name;
	const char *code;
	const char *currency;
}			Countries[] = {
	{"Malaysia", "MY", "MYR"},
	{"Singapore", "SG", "SGD"},
	{"Thailand", "TH", "THB"},
	{"Philippines", "PH", "PHP"},
	{"Indonesia", "ID", "IDR"},
	{"Vietnam", "VN", "VND"},
	{"Viet Nam", "VN", "VND"},
	{"Pakistan", "PK", "PKR"},
	{"Bangladesh", "BD", "BDT"},
	{"Sri Lanka", "LK", "LKR"},
	{"Nepal", "NP", "NPR"},
	{"Myanmar", "MM", "MMK"},
	{"Burma", "MM", "MMK"},
};

/* InList: s is one of the NULL-terminated list */
static bool
InList(const char *s, const char *const *list)
{
	int			i;

	for (i = 0; list[i] != NULL; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Text: a non-empty JSON string, trimmed, or NULL */
static char *
Text(OcJson *value)
{
	const char *s = OcJsonString(value);
	size_t		len;

	if (s == NULL)
		return NULL;
	while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
		s++;
	len = strlen(s);
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t' ||
					   s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	return len > 0 ? pnstrdup(s, len) : NULL;
}

/*
 * IdText
 *		An id the API sends as a number or a string of digits, as text (at
 *		most 30 digits: ids go into URLs), or NULL.
 */
static char *
IdText(OcJson *value)
{
	const char *s = OcJsonString(value);
	int64		v;
	const char *p;

	if (s == NULL)
	{
		if (OcJsonInt(value, &v) && v >= 0)
			return psprintf(INT64_FORMAT, v);
		return NULL;
	}
	if (*s == '\0' || strlen(s) > 30)
		return NULL;
	for (p = s; *p; p++)
		if (*p < '0' || *p > '9')
			return NULL;
	return pstrdup(s);
}

/* Truthy: true, 1, "1", "true" */
static bool
Truthy(OcJson *value)
{
	const char *s = OcJsonString(value);
	int64		v;

	if (s != NULL)
		return strcmp(s, "1") == 0 || pg_strcasecmp(s, "true") == 0;
	if (OcJsonInt(value, &v))
		return v != 0;
	return value != NULL && strcmp(OcJsonDump(value), "true") == 0;
}

/*
 * LazadaEpoch
 *		Unix seconds of a Lazada timestamp: "2018-02-09T22:44:30+08:00", or
 *		GetOrder's "2014-10-15 18:36:05 +0800" (space before the offset).
 */
static bool
LazadaEpoch(OcJson *value, int64 *secs)
{
	const char *s = OcJsonString(value);
	char	   *t;
	size_t		len;

	if (s == NULL || (len = strlen(s)) < 16 || len > 40)
		return false;
	t = pstrdup(s);
	if (len > 6 && t[len - 6] == ' ' && (t[len - 5] == '+' || t[len - 5] == '-'))
		memmove(t + len - 6, t + len - 5, 6);
	return EpochFromIso(t, secs);
}

/* LazadaTime: ISO 8601 with the offset GetOrders requires (UTC: +00:00) */
static char *
LazadaTime(int64 secs)
{
	char	   *iso = IsoFromEpoch(secs);

	iso[strlen(iso) - 1] = '\0';	/* the "Z" */
	return psprintf("%s+00:00", iso);
}

/* StateInt: an integer key of the pull state, or def */
static int64
StateInt(OcJson *state, const char *key, int64 def)
{
	int64		v;

	return OcJsonInt(OcJsonGet(state, key), &v) ? v : def;
}

/* OrdersRequest: the GetOrders call of the state's window, offset and page */
static void
OrdersRequest(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	char	   *after = LazadaTime(StateInt(state, "after_epoch", 0));
	char	   *before = LazadaTime(StateInt(state, "before_epoch", 0));

	out->operation = LazadaConnector.pull_operation;
	out->method = "GET";
	out->url = psprintf("%s?update_after=%s&update_before=%s&sort_by=updated_at"
						"&sort_direction=ASC&offset=" INT64_FORMAT "&limit=%d",
						JoinUrl(ch->endpoint, LAZADA_ORDERS_API), UrlEncode(after),
						UrlEncode(before), StateInt(state, "offset", 0), LAZADA_PAGE);
	OcJsonSetString(state, "step", "orders");
}

/* ItemsRequest: one GetMultipleOrderItems call for the orders kept in "page" */
static void
ItemsRequest(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	OcJson	   *page = OcJsonGet(state, "page");
	StringInfoData ids;
	int			n = OcJsonLength(page);
	int			i;

	initStringInfo(&ids);
	appendStringInfoChar(&ids, '[');
	for (i = 0; i < n; i++)
		appendStringInfo(&ids, "%s%s", i > 0 ? "," : "",
						 IdText(OcJsonGet(OcJsonAt(page, i), "order_id")));
	appendStringInfoChar(&ids, ']');

	out->operation = "order_items";
	out->method = "GET";
	out->url = psprintf("%s?order_ids=%s", JoinUrl(ch->endpoint, LAZADA_ITEMS_API),
						UrlEncode(ids.data));
	OcJsonSetString(state, "step", "items");
}

/*
 * LazadaBuildPull
 *		The first request of a pull: GetOrders from the window's start
 *		(updated_at ascending, offset 0), or GetOrder for fetch_order.
 */
static void
LazadaBuildPull(ChannelConfig *ch, OcJson *state, OutRequest *out)
{
	char	   *order_id = IdText(OcJsonGet(state, "order_id"));
	int64		since,
				until;

	if (OcJsonGet(state, "order_id") != NULL)
	{
		/* a non-numeric id is sent as 0: Lazada answers "Invalid Order ID" */
		out->operation = LazadaConnector.pull_operation;
		out->method = "GET";
		out->url = psprintf("%s?order_id=%s", JoinUrl(ch->endpoint, LAZADA_ORDER_API),
							order_id ? order_id : "0");
		OcJsonSetString(state, "step", "order");
		return;
	}
	if (!OcJsonInt(OcJsonGet(state, "since_epoch"), &since) &&
		!EpochFromIso(OcJsonString(OcJsonGet(state, "since")), &since))
		since = 0;
	if (!OcJsonInt(OcJsonGet(state, "until_epoch"), &until) &&
		!EpochFromIso(OcJsonString(OcJsonGet(state, "until")), &until))
		until = (int64) time(NULL);
	OcJsonSetInt(state, "after_epoch", since);
	OcJsonSetInt(state, "before_epoch", until);
	OcJsonSetInt(state, "offset", 0);
	OrdersRequest(ch, state, out);
}

/*
 * ParseEnvelope
 *		The answer's JSON document when its code is "0", else NULL with
 *		*error set (Lazada's code and message).
 */
static OcJson *
ParseEnvelope(HttpRequest *req, const char *what, char **error)
{
	char	   *perr;
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, &perr);
	const char *code = doc ? EnvelopeCode(doc) : NULL;
	const char *message;

	if (doc == NULL || !OcJsonIsObject(doc))
	{
		*error = psprintf("Lazada %s answer is not a JSON object (%s)", what,
						  doc == NULL ? perr : "another JSON value");
		return NULL;
	}
	if (code == NULL)
	{
		*error = psprintf("Lazada %s answer has no \"code\"", what);
		return NULL;
	}
	if (strcmp(code, "0") != 0)
	{
		message = OcJsonString(OcJsonGet(doc, "message"));
		*error = psprintf("Lazada %s: %.64s: %.500s", what, code, message ? message : "no message");
		return NULL;
	}
	return doc;
}

/*
 * OnlyUnpaid
 *		The order's statuses[] (the distinct statuses of its items) are all
 *		"unpaid": nothing to import, its items are not even asked for.
 */
static bool
OnlyUnpaid(OcJson *order)
{
	OcJson	   *statuses = OcJsonGet(order, "statuses");
	int			n = OcJsonLength(statuses);
	int			i;

	if (n <= 0)
		return false;
	for (i = 0; i < n; i++)
	{
		const char *st = OcJsonString(OcJsonAt(statuses, i));

		if (st == NULL || strcmp(st, "unpaid") != 0)
			return false;
	}
	return true;
}

/* CountryCode: ISO alpha-2 of a Lazada country name (or code), or NULL */
static const char *
CountryCode(const char *name, const char **currency)
{
	int			i;

	if (name == NULL)
		return NULL;
	for (i = 0; i < (int) lengthof(Countries); i++)
		if (pg_strcasecmp(name, Countries[i].name) == 0 ||
			pg_strcasecmp(name, Countries[i].code) == 0)
		{
			if (currency)
				*currency = Countries[i].currency;
			return Countries[i].code;
		}
	return NULL;
}

/* JoinName: "first last" (either may be missing), or NULL */
static char *
JoinName(OcJson *first, OcJson *last)
{
	char	   *f = Text(first);
	char	   *l = Text(last);

	if (f && l)
		return psprintf("%s %s", f, l);
	return f ? f : l;
}

/*
 * SetAddress
 *		A normalized address from address_shipping / address_billing:
 *		name = first + last name, street = address1, street2 = address5 (the
 *		third-level area) else address2, city = city else address4, state =
 *		address3, zip = post_code, country = ISO code of the country name
 *		(else the channel's country), phone.  False when there is no
 *		address (no object, or neither address1 nor city).
 */
static bool
SetAddress(ChannelConfig *ch, OcJson *target, const char *key, OcJson *a)
{
	OcJson	   *out;
	char	   *street = Text(OcJsonGet(a, "address1"));
	char	   *city = Text(OcJsonGet(a, "city"));
	char	   *v;
	const char *country;

	if (!OcJsonIsObject(a))
		return false;
	if (city == NULL)
		city = Text(OcJsonGet(a, "address4"));
	if (street == NULL && city == NULL)
		return false;
	out = OcJsonSetObject(target, key);
	if ((v = JoinName(OcJsonGet(a, "first_name"), OcJsonGet(a, "last_name"))) != NULL)
		OcJsonSetString(out, "name", v);
	if (street)
		OcJsonSetString(out, "street", street);
	if ((v = Text(OcJsonGet(a, "address5"))) != NULL ||
		(v = Text(OcJsonGet(a, "address2"))) != NULL)
		OcJsonSetString(out, "street2", v);
	if (city)
		OcJsonSetString(out, "city", city);
	if ((v = Text(OcJsonGet(a, "address3"))) != NULL)
		OcJsonSetString(out, "state", v);
	if ((v = Text(OcJsonGet(a, "post_code"))) != NULL)
		OcJsonSetString(out, "zip", v);
	country = CountryCode(Text(OcJsonGet(a, "country")), NULL);
	if (country == NULL)
		country = CountryCode(SettingString(ch, "country"), NULL);
	if (country)
		OcJsonSetString(out, "country", country);
	if ((v = Text(OcJsonGet(a, "phone"))) != NULL)
		OcJsonSetString(out, "phone", v);
	return true;
}

/* AddFlag: a lower-case SLA flag ([a-z0-9_], spaces and dashes as _), once */
static void
AddFlag(OcJson *flags, const char *value)
{
	char		flag[33];
	int			n = 0;
	int			i;

	if (value == NULL)
		return;
	for (; *value && n < (int) sizeof(flag) - 1; value++)
	{
		char		c = pg_tolower((unsigned char) *value);

		if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
			flag[n++] = c;
		else if (c == '_' || c == ' ' || c == '-')
			flag[n++] = '_';
	}
	flag[n] = '\0';
	if (n == 0 || OcJsonLength(flags) >= 8)
		return;
	for (i = 0; i < OcJsonLength(flags); i++)
		if (strcmp(OcJsonString(OcJsonAt(flags, i)), flag) == 0)
			return;
	OcJsonAppendString(flags, flag);
}

/* ItemAmount: an item's amount key as a decimal string (absent: def) */
static bool
ItemAmount(OcJson *item, const char *key, const char *def, char **out)
{
	OcJson	   *v = OcJsonGet(item, key);

	if (v == NULL || OcJsonIsNull(v) ||
		(OcJsonString(v) != NULL && OcJsonString(v)[0] == '\0'))
	{
		*out = def ? pstrdup(def) : NULL;
		return def != NULL;
	}
	*out = DecimalOf(v);
	return *out != NULL;
}

/*
 * NormalizeOrder
 *		One order of GetOrders/GetOrder with its GetMultipleOrderItems rows,
 *		normalized (docs/orders.md section 1) into orders[]; nothing when it
 *		must not be imported.  False with *error when the data is malformed.
 *
 * Each item row is one unit.  Rows "unpaid" are left out; of the others,
 * the canceled rows are left out too unless every row is canceled (the
 * order is then cancelled, with those rows as its lines).  Lines: the rows
 * grouped by seller SKU and item_price: quantity = rows, unit_price =
 * item_price, tax = the rows' tax_amount, discount = the rows'
 * voucher_seller (the seller's voucher; Lazada's own voucher_platform is
 * paid back to the seller and is no discount of the sale).
 */
static bool
NormalizeOrder(ChannelConfig *ch, OcJson *order, OcJson *items, OcJson *orders, char **error)
{
	char	   *id = IdText(OcJsonGet(order, "order_id"));
	int			nitems = OcJsonLength(items);
	int			i,
				k,
				nlines = 0,
				kept = 0,
				canceled = 0;
	bool		cancelled;
	bool	   *take;
	OcJson	   *out;
	OcJson	   *lines;
	OcJson	   *totals;
	OcJson	   *buyer;
	OcJson	   *flags;
	OcJson	   *raw;
	char	   *sum_items = "0",
			   *sum_tax = "0",
			   *sum_discount = "0",
			   *sum_paid = "0",
			   *shipping;
	const char *currency = NULL;
	const char *country_currency = NULL;
	char	   *buyer_id = NULL;
	char	   *v;
	int64		created;
	StringInfoData status;

	if (nitems < 0)
	{
		*error = psprintf("Lazada order %s: order_items is not an array", id);
		return false;
	}

	/* which rows make the order */
	take = palloc0(sizeof(bool) * (nitems + 1));
	for (i = 0; i < nitems; i++)
	{
		OcJson	   *item = OcJsonAt(items, i);
		const char *st = OcJsonString(OcJsonGet(item, "status"));

		if (!OcJsonIsObject(item) || st == NULL)
		{
			*error = psprintf("Lazada order %s: item %d has no status", id, i + 1);
			return false;
		}
		if (strcmp(st, "unpaid") == 0)
			continue;
		kept++;
		if (strcmp(st, "canceled") == 0)
			canceled++;
		else
			take[i] = true;
	}
	if (kept == 0)
		return true;			/* unpaid (or no item): not imported */
	cancelled = (canceled == kept);
	if (cancelled)
		for (i = 0; i < nitems; i++)
			take[i] = (strcmp(OcJsonString(OcJsonGet(OcJsonAt(items, i), "status")), "canceled") == 0);

	/* paid, not cancelled, no address: not imported */
	if (!cancelled && !OcJsonIsObject(OcJsonGet(order, "address_shipping")))
		return true;

	out = OcJsonNewObject();
	OcJsonSetString(out, "external_id", id);

	/* status: the distinct statuses of the rows taken, as Lazada writes them */
	initStringInfo(&status);
	for (i = 0; i < nitems; i++)
	{
		const char *st = OcJsonString(OcJsonGet(OcJsonAt(items, i), "status"));
		bool		seen = false;

		if (!take[i])
			continue;
		for (k = 0; k < i; k++)
			if (take[k] && strcmp(OcJsonString(OcJsonGet(OcJsonAt(items, k), "status")), st) == 0)
				seen = true;
		if (seen)
			continue;
		if (status.len + strlen(st) + 1 > 64)
			break;
		appendStringInfo(&status, "%s%s", status.len > 0 ? "," : "", st);
	}
	OcJsonSetString(out, "status", status.data);
	OcJsonSetBool(out, "cancelled", cancelled);

	if (!LazadaEpoch(OcJsonGet(order, "created_at"), &created))
	{
		*error = psprintf("Lazada order %s: created_at is not a timestamp", id);
		return false;
	}
	OcJsonSetString(out, "ordered_at", IsoFromEpoch(created));

	/* lines */
	lines = OcJsonNewArray();
	flags = OcJsonNewArray();
	for (i = 0; i < nitems; i++)
	{
		OcJson	   *item = OcJsonAt(items, i);
		char	   *sku;
		char	   *price,
				   *paid,
				   *tax,
				   *discount;
		OcJson	   *line = NULL;
		const char *cur;

		if (!take[i])
			continue;
		sku = Text(OcJsonGet(item, "sku"));
		if (sku == NULL)
			sku = Text(OcJsonGet(item, "shop_sku"));
		if (sku == NULL)
		{
			*error = psprintf("Lazada order %s: item %d has no sku", id, i + 1);
			return false;
		}
		if (!ItemAmount(item, "item_price", NULL, &price) ||
			!ItemAmount(item, "paid_price", price, &paid) ||
			!ItemAmount(item, "tax_amount", "0", &tax) ||
			!ItemAmount(item, "voucher_seller", "0", &discount))
		{
			*error = psprintf("Lazada order %s: item %d has an amount that is not a decimal number",
							  id, i + 1);
			return false;
		}
		if ((cur = OcJsonString(OcJsonGet(item, "currency"))) != NULL && currency == NULL)
			currency = cur;
		if (buyer_id == NULL)
			buyer_id = IdText(OcJsonGet(item, "buyer_id"));
		if (buyer_id == NULL)
			buyer_id = Text(OcJsonGet(item, "buyer_id"));
		AddFlag(flags, OcJsonString(OcJsonGet(item, "fulfillment_sla")));
		if ((v = Text(OcJsonGet(item, "order_flag"))) != NULL && pg_strcasecmp(v, "NORMAL") != 0)
			AddFlag(flags, v);
		if ((v = Text(OcJsonGet(item, "shipping_provider_type"))) != NULL &&
			pg_strcasecmp(v, "express") == 0)
			AddFlag(flags, v);

		sum_items = DecimalAdd(sum_items, price);
		sum_paid = DecimalAdd(sum_paid, paid);
		sum_tax = DecimalAdd(sum_tax, tax);
		sum_discount = DecimalAdd(sum_discount, discount);

		for (k = 0; k < nlines; k++)
		{
			OcJson	   *l = OcJsonAt(lines, k);

			if (strcmp(OcJsonString(OcJsonGet(l, "sku")), sku) == 0 &&
				DecimalCmp(OcJsonString(OcJsonGet(l, "unit_price")), price) == 0)
			{
				line = l;
				break;
			}
		}
		if (line == NULL)
		{
			char	   *item_id = IdText(OcJsonGet(item, "order_item_id"));

			line = OcJsonAppendObject(lines);
			nlines++;
			if (item_id)
				OcJsonSetString(line, "external_id", item_id);
			OcJsonSetString(line, "sku", sku);
			OcJsonSetInt(line, "quantity", 1);
			OcJsonSetString(line, "unit_price", price);
			OcJsonSetString(line, "tax", tax);
			OcJsonSetString(line, "discount", discount);
		}
		else
		{
			int64		q;

			OcJsonInt(OcJsonGet(line, "quantity"), &q);
			OcJsonSetInt(line, "quantity", q + 1);
			OcJsonSetString(line, "tax", DecimalAdd(OcJsonString(OcJsonGet(line, "tax")), tax));
			OcJsonSetString(line, "discount",
							DecimalAdd(OcJsonString(OcJsonGet(line, "discount")), discount));
		}
	}

	/* currency: the items', else the country's */
	CountryCode(Text(OcJsonPath(order, "address_shipping.country")), &country_currency);
	if (country_currency == NULL)
		CountryCode(SettingString(ch, "country"), &country_currency);
	if (currency == NULL)
		currency = country_currency;
	if (currency)
		OcJsonSetString(out, "currency", currency);

	buyer = OcJsonSetObject(out, "buyer");
	if (buyer_id)
		OcJsonSetString(buyer, "id", buyer_id);
	if ((v = JoinName(OcJsonGet(order, "customer_first_name"),
					  OcJsonGet(order, "customer_last_name"))) != NULL)
		OcJsonSetString(buyer, "name", v);
	if ((v = Text(OcJsonPath(order, "address_shipping.phone"))) != NULL)
		OcJsonSetString(buyer, "phone", v);

	SetAddress(ch, out, "shipping_address", OcJsonGet(order, "address_shipping"));
	SetAddress(ch, out, "billing_address", OcJsonGet(order, "address_billing"));

	/* totals: what the buyer was charged */
	if (!ItemAmount(order, "shipping_fee", "0", &shipping))
	{
		*error = psprintf("Lazada order %s: shipping_fee is not a decimal number", id);
		return false;
	}
	totals = OcJsonSetObject(out, "totals");
	OcJsonSetString(totals, "items", sum_items);
	OcJsonSetString(totals, "shipping", shipping);
	OcJsonSetString(totals, "discount", sum_discount);
	OcJsonSetString(totals, "tax", sum_tax);
	OcJsonSetString(totals, "total", DecimalAdd(sum_paid, shipping));

	if (OcJsonLength(flags) > 0)
		OcJsonSetCopy(out, "sla", flags);
	if (Truthy(OcJsonGet(order, "gift_option")) &&
		(v = Text(OcJsonGet(order, "gift_message"))) != NULL)
		OcJsonSetString(out, "gift_message",
						pnstrdup(v, pg_mbcliplen(v, strlen(v), 4000)));
	OcJsonSetCopy(out, "lines", lines);

	/* raw: the order as Lazada sent it, with its item rows */
	OcJsonSetCopy(out, "raw", order);
	raw = OcJsonGet(out, "raw");
	OcJsonSetCopy(raw, "order_items", items);

	OcJsonAppendCopy(orders, out);
	return true;
}

/*
 * NextPage
 *		After a full page: the next GetOrders call.  The window restarts at
 *		the page's last updated_at (inclusive), skipping the orders of that
 *		second already read, rather than moving the offset on: an order
 *		updated during the pull leaves its place in the ascending list (the
 *		orders after it move up and a plain offset would skip one), and
 *		GetOrders refuses offsets above 4500.
 */
static bool
NextPage(ChannelConfig *ch, OcJson *state, OutRequest *next, char **error)
{
	int64		after = StateInt(state, "after_epoch", 0);
	int64		offset = StateInt(state, "offset", 0);
	int64		last = StateInt(state, "last_epoch", after);
	int64		ties = StateInt(state, "ties", 0);
	int64		read = StateInt(state, "read", 0);

	if (last > after)
	{
		OcJsonSetInt(state, "after_epoch", last);
		offset = ties;
	}
	else
		offset += read;
	if (offset > LAZADA_MAX_OFFSET)
	{
		*error = psprintf("more than %d Lazada orders were updated in the same second",
						  LAZADA_MAX_OFFSET);
		return false;
	}
	OcJsonSetInt(state, "offset", offset);
	OcJsonSetArray(state, "page");
	OrdersRequest(ch, state, next);
	return true;
}

/*
 * ParseOrdersPage
 *		A GetOrders page: its orders wait in state "page" for their items
 *		(one GetMultipleOrderItems call), orders whose every item is unpaid
 *		are dropped at once.  A page of LAZADA_PAGE orders (when countTotal
 *		does not say it was the last) is followed by another.
 */
static bool
ParseOrdersPage(ChannelConfig *ch, OcJson *data, OcJson *state, OutRequest *next, char **error)
{
	OcJson	   *list = OcJsonGet(data, "orders");
	int			n = OcJsonLength(list);
	int64		total;
	int64		offset = StateInt(state, "offset", 0);
	int64		last = StateInt(state, "after_epoch", 0);
	int64		ties = 0;
	OcJson	   *page;
	bool		more;
	int			i;

	if (!OcJsonIsObject(data) || (n < 0 && !OcJsonIsNull(list) && list != NULL))
	{
		*error = pstrdup("Lazada GetOrders answer has no data.orders array");
		return false;
	}
	if (n < 0)
		n = 0;					/* no orders at all */
	if (n > LAZADA_MAX_ORDERS)
	{
		*error = psprintf("Lazada GetOrders answered %d orders for a page of %d", n, LAZADA_PAGE);
		return false;
	}

	page = OcJsonNewArray();
	for (i = 0; i < n; i++)
	{
		OcJson	   *order = OcJsonAt(list, i);
		int64		updated;

		if (!OcJsonIsObject(order) || IdText(OcJsonGet(order, "order_id")) == NULL)
		{
			*error = psprintf("Lazada GetOrders: order %d has no numeric order_id", i + 1);
			return false;
		}
		if (!LazadaEpoch(OcJsonGet(order, "updated_at"), &updated))
		{
			*error = psprintf("Lazada GetOrders: order %s has no updated_at timestamp",
							  IdText(OcJsonGet(order, "order_id")));
			return false;
		}
		if (updated > last)
		{
			last = updated;
			ties = 0;
		}
		if (updated == last)
			ties++;
		if (!OnlyUnpaid(order))
			OcJsonAppendCopy(page, order);
	}
	PullPageCounted(state, OcJsonGet(data, "countTotal"), n);
	more = (n >= LAZADA_PAGE);
	if (more && OcJsonInt(OcJsonGet(data, "countTotal"), &total) && offset + n >= total)
		more = false;

	OcJsonSetBool(state, "more", more);
	OcJsonSetInt(state, "read", n);
	OcJsonSetInt(state, "last_epoch", last);
	OcJsonSetInt(state, "ties", ties);
	OcJsonSetCopy(state, "page", page);
	if (OcJsonLength(page) > 0)
	{
		ItemsRequest(ch, state, next);
		return true;
	}
	if (more)
		return NextPage(ch, state, next, error);
	return false;
}

/*
 * ParseItems
 *		The GetMultipleOrderItems answer for the orders of state "page":
 *		every one of them is normalized (all or nothing), then the next page
 *		follows when there is one.
 */
static bool
ParseItems(ChannelConfig *ch, OcJson *data, OcJson *state, OcJson *orders,
		   OutRequest *next, char **error)
{
	OcJson	   *page = OcJsonGet(state, "page");
	int			npage = OcJsonLength(page);
	int			ndata = OcJsonLength(data);
	OcJson	   *done = OcJsonNewArray();
	int			i,
				k;

	if (ndata < 0)
	{
		*error = pstrdup("Lazada GetMultipleOrderItems answer has no data array");
		return false;
	}
	for (i = 0; i < npage; i++)
	{
		OcJson	   *order = OcJsonAt(page, i);
		char	   *id = IdText(OcJsonGet(order, "order_id"));
		OcJson	   *items = NULL;

		for (k = 0; k < ndata && items == NULL; k++)
		{
			OcJson	   *d = OcJsonAt(data, k);
			char	   *did = IdText(OcJsonGet(d, "order_id"));

			if (did != NULL && id != NULL && strcmp(did, id) == 0)
				items = OcJsonGet(d, "order_items");
		}
		if (items == NULL)
		{
			*error = psprintf("Lazada GetMultipleOrderItems did not answer the items of order %s",
							  id ? id : "?");
			return false;
		}
		if (!NormalizeOrder(ch, order, items, done, error))
			return false;
	}
	for (i = 0; i < OcJsonLength(done); i++)
		OcJsonAppendCopy(orders, OcJsonAt(done, i));

	if (Truthy(OcJsonGet(state, "more")))
		return NextPage(ch, state, next, error);
	return false;
}

/*
 * LazadaParsePull
 *		One answer of the chain, told apart by state "step": "orders"
 *		(GetOrders page), "order" (GetOrder, fetch_order), "items"
 *		(GetMultipleOrderItems of the page).  An envelope error (code other
 *		than "0") fails the answer with Lazada's code and message; call
 *		limits are retried by the throttled hook before this is called.
 */
static bool
LazadaParsePull(ChannelConfig *ch, HttpRequest *req, OcJson *state,
				OcJson *orders, OutRequest *next, char **error)
{
	const char *step = OcJsonString(OcJsonGet(state, "step"));
	OcJson	   *doc;
	OcJson	   *data;

	if (step == NULL)
		step = OcJsonGet(state, "order_id") ? "order" : "orders";
	doc = ParseEnvelope(req, strcmp(step, "items") == 0 ? "GetMultipleOrderItems" :
						strcmp(step, "order") == 0 ? "GetOrder" : "GetOrders", error);
	if (doc == NULL)
		return false;
	data = OcJsonGet(doc, "data");

	if (strcmp(step, "items") == 0)
		return ParseItems(ch, data, state, orders, next, error);
	if (strcmp(step, "order") == 0)
	{
		OcJson	   *page;

		if (!OcJsonIsObject(data) || IdText(OcJsonGet(data, "order_id")) == NULL)
		{
			*error = pstrdup("Lazada GetOrder answer has no order with a numeric order_id");
			return false;
		}
		if (OnlyUnpaid(data))
			return false;
		page = OcJsonSetArray(state, "page");
		OcJsonAppendCopy(page, data);
		OcJsonSetBool(state, "more", false);
		ItemsRequest(ch, state, next);
		return true;
	}
	return ParseOrdersPage(ch, data, state, next, error);
}

/*
 * LazadaBuildCancel
 *		InitReverseOrderCancel (GET /order/reverse/cancel/create) for the
 *		order's items still open, from the item rows kept in raw.order_items:
 *		order_id, order_item_id_list (JSON array), reason_id.  Refused when
 *		an item was already handed to the carrier (Lazada cancels nothing
 *		after that: a return is the buyer's) or when nothing is left open.
 */
static bool
LazadaBuildCancel(ChannelConfig *ch, OcJson *order, OutRequest *out, char **error)
{
	char	   *id = IdText(OcJsonGet(order, "external_id"));
	OcJson	   *items = OcJsonPath(order, "raw.order_items");
	int			n = OcJsonLength(items);
	StringInfoData list;
	int			count = 0;
	int			i;

	if (id == NULL || n < 0)
	{
		*error = pstrdup("the order has no Lazada order id or item rows to cancel");
		return false;
	}
	initStringInfo(&list);
	appendStringInfoChar(&list, '[');
	for (i = 0; i < n; i++)
	{
		OcJson	   *item = OcJsonAt(items, i);
		const char *st = OcJsonString(OcJsonGet(item, "status"));
		char	   *item_id = IdText(OcJsonGet(item, "order_item_id"));

		if (st == NULL || item_id == NULL)
		{
			*error = psprintf("item %d of Lazada order %s has no status or order_item_id", i + 1, id);
			return false;
		}
		if (strcmp(st, "canceled") == 0 || strcmp(st, "unpaid") == 0)
			continue;
		if (InList(st, HandedOver))
		{
			*error = psprintf("Lazada order %s cannot be cancelled: item %s is %s", id, item_id, st);
			return false;
		}
		appendStringInfo(&list, "%s%s", count > 0 ? "," : "", item_id);
		count++;
	}
	appendStringInfoChar(&list, ']');
	if (count == 0)
	{
		*error = psprintf("Lazada order %s has no open item to cancel", id);
		return false;
	}

	out->operation = "order_cancel";
	out->method = "GET";
	out->url = psprintf("%s?order_id=%s&order_item_id_list=%s&reason_id=%s",
						JoinUrl(ch->endpoint, LAZADA_CANCEL_API), id,
						UrlEncode(list.data), LAZADA_CANCEL_REASON);
	return true;
}

/*
 * LazadaParseCancel
 *		Done when the envelope's code is "0"; otherwise Lazada's code and
 *		message (e.g. 123 "invalid trade order lines": already shipped).
 */
static bool
LazadaParseCancel(ChannelConfig *ch, HttpRequest *req, char **error)
{
	return ParseEnvelope(req, "InitReverseOrderCancel", error) != NULL;
}
