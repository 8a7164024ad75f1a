/*-------------------------------------------------------------------------
 *
 * connector.c
 *	  The table of marketplace connectors and the helpers they share.
 *
 * Base64 comes from PostgreSQL's common code (common/base64.h), URL
 * encoding from libcurl; nothing cryptographic is written by hand.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>
#include <math.h>
#include <time.h>

#include <curl/curl.h>

#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "utils/fmgrprotos.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/resowner.h"

#include "connector.h"

/* every connector; an eighth marketplace adds one line */
static const Connector *const Connectors[] = {
	&EbayConnector,
	&TikTokConnector,
	&LazadaConnector,
	&WalmartConnector,
	&AmazonConnector,
	&ShopifyConnector,
	&EtsyConnector,
};

/*
 * ConnectorFor
 *		The connector of a kind, or NULL when there is none (yet).
 */
const Connector *
ConnectorFor(const char *kind)
{
	int			i;

	for (i = 0; i < (int) lengthof(Connectors); i++)
		if (strcmp(Connectors[i]->kind, kind) == 0)
			return Connectors[i];
	return NULL;
}

/* OutRequestHeader: add a (non-secret) header to a request to queue */
void
OutRequestHeader(OutRequest *out, const char *fmt,...)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	out->headers = lappend(out->headers, buf.data);
}

/* HttpAddHeader: add a header to a request about to be sent (req->cxt) */
void
HttpAddHeader(HttpRequest *req, const char *fmt,...)
{
	MemoryContext old = MemoryContextSwitchTo(req->cxt);
	StringInfoData buf;
	char	  **grown;

	initStringInfo(&buf);
	for (;;)
	{
		va_list		args;
		int			needed;

		va_start(args, fmt);
		needed = appendStringInfoVA(&buf, fmt, args);
		va_end(args);
		if (needed == 0)
			break;
		enlargeStringInfo(&buf, needed);
	}
	grown = palloc(sizeof(char *) * (req->nheaders + 1));
	if (req->nheaders > 0)
		memcpy(grown, req->headers, sizeof(char *) * req->nheaders);
	grown[req->nheaders++] = buf.data;
	req->headers = grown;
	MemoryContextSwitchTo(old);
}

/* HttpSetBody: the body of a request about to be sent (copied into req->cxt) */
void
HttpSetBody(HttpRequest *req, const char *body, size_t len)
{
	req->body = MemoryContextAlloc(req->cxt, len + 1);
	memcpy(req->body, body, len);
	req->body[len] = '\0';
	req->body_len = len;
}

/*
 * UrlEncode
 *		Percent-encoding of a query or form value (libcurl's).
 */
char *
UrlEncode(const char *s)
{
	char	   *volatile enc = curl_easy_escape(NULL, s, (int) strlen(s));
	char	   *result = NULL;

	if (enc == NULL)
		elog(ERROR, "could not URL-encode a value");
	PG_TRY();
	{
		result = pstrdup(enc);
	}
	PG_FINALLY();
	{
		curl_free(enc);
	}
	PG_END_TRY();
	return result;
}

/* Base64Encode: standard base64 (PostgreSQL's common code) */
char *
Base64Encode(const char *data, size_t len)
{
	int			dstlen = pg_b64_enc_len((int) len) + 1;
	char	   *dst = palloc(dstlen);
	int			n = pg_b64_encode(data, (int) len, dst, dstlen);

	if (n < 0)
		elog(ERROR, "could not base64-encode a value");
	dst[n] = '\0';
	return dst;
}

/* SettingString: a string setting of the channel's kind, or NULL */
const char *
SettingString(ChannelConfig *ch, const char *key)
{
	return OcJsonString(OcJsonGet(ch->settings, key));
}

/*
 * SecretString
 *		A credential; a missing one is a configuration error whose message
 *		names the key, never a value.
 */
const char *
SecretString(OcJson *secrets, const char *key)
{
	const char *v = OcJsonString(OcJsonGet(secrets, key));

	if (v == NULL || *v == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("credential \"%s\" is missing", key),
				 errhint("Set the channel's credentials with omnichan.credentials_set().")));
	return v;
}

/* JoinUrl: base URL + path, without doubling the slash */
char *
JoinUrl(const char *base, const char *path)
{
	size_t		n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	return psprintf("%.*s%s", (int) n, base, path);
}

/*
 * HmacSha256Hex
 *		HMAC-SHA256 of data under key (PostgreSQL's common/hmac.h), as 64
 *		lower-case hex digits.
 *
 * With OpenSSL, pg_hmac_create() registers its context with the current
 * resource owner; connectors sign at send time (authorize), outside any
 * transaction, where there is none: a short-lived one is used then.
 */
char *
HmacSha256Hex(const char *key, size_t keylen, const char *data, size_t len)
{
	ResourceOwner saved = CurrentResourceOwner;
	ResourceOwner volatile own = NULL;
	char	   *hex = palloc(PG_SHA256_DIGEST_LENGTH * 2 + 1);

	if (CurrentResourceOwner == NULL)
		own = CurrentResourceOwner = ResourceOwnerCreate(NULL, "omnichan HMAC");
	PG_TRY();
	{
		pg_hmac_ctx *ctx = pg_hmac_create(PG_SHA256);
		uint8		digest[PG_SHA256_DIGEST_LENGTH];
		int			i;

		if (ctx == NULL)
			elog(ERROR, "could not create an HMAC context");
		if (pg_hmac_init(ctx, (const uint8 *) key, keylen) < 0 ||
			pg_hmac_update(ctx, (const uint8 *) data, len) < 0 ||
			pg_hmac_final(ctx, digest, sizeof(digest)) < 0)
		{
			const char *why = pstrdup(pg_hmac_error(ctx));

			pg_hmac_free(ctx);
			elog(ERROR, "could not compute an HMAC: %s", why);
		}
		pg_hmac_free(ctx);
		for (i = 0; i < PG_SHA256_DIGEST_LENGTH; i++)
			sprintf(hex + 2 * i, "%02x", digest[i]);
	}
	PG_FINALLY();
	{
		if (own != NULL)
		{
			CurrentResourceOwner = saved;
			ResourceOwnerRelease(own, RESOURCE_RELEASE_BEFORE_LOCKS, false, false);
			ResourceOwnerRelease(own, RESOURCE_RELEASE_LOCKS, false, false);
			ResourceOwnerRelease(own, RESOURCE_RELEASE_AFTER_LOCKS, false, false);
			ResourceOwnerDelete(own);
		}
	}
	PG_END_TRY();
	return hex;
}

/*
 * ParseAccessToken
 *		An OAuth-style token answer: {"access_token", "expires_in", ...}.
 *		On failure, *error names the endpoint (who) and carries the first
 *		message found at one of error_paths (NULL-terminated), never a value
 *		of the request.
 */
bool
ParseAccessToken(HttpRequest *req, const char *who, int64 default_secs,
				 const char *const *error_paths, char **token, int *expires_in, char **error)
{
	OcJson	   *doc = OcJsonParse(req->response.data, req->response.len, error);
	const char *t;
	int64		secs = default_secs;

	if (doc == NULL)
		return false;
	t = OcJsonString(OcJsonGet(doc, "access_token"));
	if (t == NULL || *t == '\0')
	{
		const char *msg = NULL;
		int			i;

		for (i = 0; error_paths[i] != NULL && msg == NULL; i++)
			msg = OcJsonString(OcJsonPath(doc, error_paths[i]));
		*error = psprintf("%s token endpoint: %s", who, msg ? msg : "no access_token in the answer");
		return false;
	}
	(void) OcJsonInt(OcJsonGet(doc, "expires_in"), &secs);
	*token = pstrdup(t);
	*expires_in = (int) Max(secs, 60);
	return true;
}

/*
 * IsDecimalText
 *		An optionally signed decimal number without exponent: what
 *		marketplaces send as money strings.
 */
static bool
IsDecimalText(const char *s)
{
	bool		digits = false;

	if (*s == '-' || *s == '+')
		s++;
	while (isdigit((unsigned char) *s))
		s++, digits = true;
	if (*s == '.')
	{
		s++;
		if (!isdigit((unsigned char) *s))
			return false;
		while (isdigit((unsigned char) *s))
			s++;
		digits = true;
	}
	return digits && *s == '\0';
}

/* NumericOf: a numeric Datum of a decimal text (validated by the caller) */
static Datum
NumericOf(const char *s)
{
	return DirectFunctionCall3(numeric_in, CStringGetDatum(s ? s : "0"),
							   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1));
}

/* NumericText: the canonical text of a numeric Datum */
static char *
NumericText(Datum n)
{
	return DatumGetCString(DirectFunctionCall1(numeric_out, n));
}

/*
 * DecimalOf
 *		A JSON amount as a decimal string: a decimal string as given (long
 *		ones refused), a JSON number as the shortest text that reads back
 *		as the same double (15 significant digits), else NULL.
 */
char *
DecimalOf(OcJson *value)
{
	const char *s = OcJsonString(value);
	double		d;

	if (s != NULL)
	{
		while (isspace((unsigned char) *s))
			s++;
		if (strlen(s) > 40 || !IsDecimalText(s))
			return NULL;
		return NumericText(NumericOf(s));
	}
	if (OcJsonNumber(value, &d))
	{
		char		buf[64];

		if (isnan(d) || isinf(d) || fabs(d) >= 1e15)
			return NULL;
		snprintf(buf, sizeof(buf), "%.15g", d);
		return NumericText(NumericOf(buf));
	}
	return NULL;
}

/* DecimalAdd: a + b (NULL counts as 0) */
char *
DecimalAdd(const char *a, const char *b)
{
	return NumericText(DirectFunctionCall2(numeric_add, NumericOf(a), NumericOf(b)));
}

/* DecimalSub: a - b (NULL counts as 0) */
char *
DecimalSub(const char *a, const char *b)
{
	return NumericText(DirectFunctionCall2(numeric_sub, NumericOf(a), NumericOf(b)));
}

/* DecimalMulInt: a * n */
char *
DecimalMulInt(const char *a, int64 n)
{
	return NumericText(DirectFunctionCall2(numeric_mul, NumericOf(a),
										   DirectFunctionCall1(int8_numeric, Int64GetDatum(n))));
}

/* DecimalDivInt: a / n rounded (half away from zero) to scale decimals */
char *
DecimalDivInt(const char *a, int64 n, int scale)
{
	Datum		q;
	char	   *text;
	char	   *end;

	if (n == 0)
		elog(ERROR, "division of an amount by zero");

	q = DirectFunctionCall2(numeric_div, NumericOf(a),
							DirectFunctionCall1(int8_numeric, Int64GetDatum(n)));
	text = NumericText(DirectFunctionCall2(numeric_round, q, Int32GetDatum(scale)));
	/* no trailing zeros: 19.990000 -> 19.99, 20.000000 -> 20 */
	if (strchr(text, '.') != NULL)
	{
		end = text + strlen(text) - 1;
		while (*end == '0')
			*end-- = '\0';
		if (*end == '.')
			*end = '\0';
	}
	return text;
}

/* DecimalScaled: amount / divisor, exactly (Etsy's Money) */
char *
DecimalScaled(int64 amount, int64 divisor)
{
	Datum		q;
	int			scale = 0;
	int64		d;

	if (divisor <= 0)
		elog(ERROR, "an amount's divisor must be positive");
	for (d = divisor; d > 1 && d % 10 == 0; d /= 10)
		scale++;
	q = DirectFunctionCall2(numeric_div, DirectFunctionCall1(int8_numeric, Int64GetDatum(amount)),
							DirectFunctionCall1(int8_numeric, Int64GetDatum(divisor)));
	return NumericText(DirectFunctionCall2(numeric_round, q, Int32GetDatum(d == 1 ? scale : 6)));
}

/* DecimalCmp: -1, 0 or 1 as a < b, a = b, a > b (NULL counts as 0) */
int
DecimalCmp(const char *a, const char *b)
{
	return DatumGetInt32(DirectFunctionCall2(numeric_cmp, NumericOf(a), NumericOf(b)));
}

/*
 * DaysFromCivil
 *		Days since 1970-01-01 of a proleptic Gregorian date.
 */
static int64
DaysFromCivil(int64 y, int m, int d)
{
	int64		era;
	int64		yoe,
				doy,
				doe;

	y -= (m <= 2);
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

/*
 * PullPageCounted
 *		Records in a pull chain's state how many orders its pages had so far
 *		("read_orders") and, when the marketplace says it, how many the window
 *		holds ("total_orders"); pull.c turns them into the backfill's progress.
 */
void
PullPageCounted(OcJson *state, OcJson *total, int64 read)
{
	int64		n = 0;
	int64		t;

	(void) OcJsonInt(OcJsonGet(state, "read_orders"), &n);
	OcJsonSetInt(state, "read_orders", n + Max(read, 0));
	/* the first page's count: Etsy counts from where each page starts */
	if (OcJsonGet(state, "total_orders") == NULL &&
		total != NULL && OcJsonInt(total, &t) && t >= 0)
		OcJsonSetInt(state, "total_orders", t);
}

/*
 * IsoFromEpoch
 *		"YYYY-MM-DDTHH:MM:SSZ" of Unix seconds (a value beyond year 5138 in
 *		seconds is taken as milliseconds, as Walmart sends them).
 */
char *
IsoFromEpoch(int64 secs)
{
	time_t		t;
	struct tm	tm;

	if (secs > INT64CONST(100000000000) || secs < -INT64CONST(100000000000))
		secs /= 1000;
	t = (time_t) secs;
	if (gmtime_r(&t, &tm) == NULL)
		return pstrdup("1970-01-01T00:00:00Z");
	return psprintf("%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
					tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/*
 * EpochFromIso
 *		Unix seconds of "YYYY-MM-DD[T ]HH:MM[:SS[.fff]][Z|+HH[:]MM|-HH[:]MM]"
 *		(no offset = UTC).  False when the text is not such a timestamp.
 */
bool
EpochFromIso(const char *iso, int64 *secs)
{
	int			y,
				mo,
				d,
				h,
				mi,
				s = 0,
				n = 0;
	const char *p;
	int			off = 0;

	if (iso == NULL ||
		sscanf(iso, "%4d-%2d-%2d%*1[T ]%2d:%2d%n", &y, &mo, &d, &h, &mi, &n) != 5 || n == 0)
		return false;
	p = iso + n;
	if (*p == ':')
	{
		if (!isdigit((unsigned char) p[1]) || !isdigit((unsigned char) p[2]))
			return false;
		s = (p[1] - '0') * 10 + (p[2] - '0');
		p += 3;
		if (*p == '.')
			for (p++; isdigit((unsigned char) *p); p++)
				;
	}
	if (*p == 'Z' || *p == 'z')
		p++;
	else if (*p == '+' || *p == '-')
	{
		int			oh = 0,
					om = 0;
		int			sign = (*p == '-') ? -1 : 1;

		if (sscanf(p + 1, "%2d", &oh) != 1 || !isdigit((unsigned char) p[2]))
			return false;
		p += 3;
		if (*p == ':')
			p++;
		if (isdigit((unsigned char) p[0]) && isdigit((unsigned char) p[1]))
		{
			om = (p[0] - '0') * 10 + (p[1] - '0');
			p += 2;
		}
		off = sign * (oh * 3600 + om * 60);
	}
	if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60)
		return false;
	*secs = DaysFromCivil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off;
	return true;
}
