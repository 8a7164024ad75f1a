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

#include <curl/curl.h>

#include "common/base64.h"
#include "common/hmac.h"
#include "common/sha2.h"
#include "lib/stringinfo.h"
#include "utils/memutils.h"
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
