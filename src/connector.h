/*-------------------------------------------------------------------------
 *
 * connector.h
 *	  The interface every marketplace connector implements, one file per
 *	  marketplace under src/connectors/ (an eighth marketplace is one new
 *	  file plus one line in connector.c).
 *
 * A connector only shapes requests and reads responses; the sync worker
 * (sync.c) decides what to push, queues the requests as durable jobs, sends
 * them through the HTTP engine with the channel's rate limits, and records
 * the outcome.  Secrets reach a connector only at send time (build_token,
 * authorize) and never go into job rows, logs or error messages.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_CONNECTOR_H
#define OMNICHAN_CONNECTOR_H

#include "nodes/pg_list.h"

#include "http.h"
#include "json.h"

/* how a failed item should be handled */
typedef enum ItemErrorClass
{
	ITEM_ERROR_RETRY,			/* transient: retried later */
	ITEM_ERROR_FIX,				/* the data must be fixed: not retried until it changes */
	ITEM_ERROR_CREDENTIALS		/* authentication or permission */
} ItemErrorClass;

/* a channel as the connector sees it */
typedef struct ChannelConfig
{
	int32		id;
	char	   *name;
	char	   *kind;
	char	   *endpoint;		/* API base URL, no trailing slash */
	OcJson	   *settings;		/* the kind-specific settings object */
} ChannelConfig;

/* one listing of a stock push */
typedef struct PushItem
{
	int64		listing_id;
	char	   *sku;
	OcJson	   *external;		/* the listing's API ids */
	int32		quantity;
	/* outcome, set by parse_push */
	bool		ok;
	char	   *error;			/* the marketplace's own message */
	ItemErrorClass error_class;
} PushItem;

/* a request a connector wants sent; becomes an omnichan.job row */
typedef struct OutRequest
{
	const char *operation;		/* e.g. "stock_push", "auth" */
	const char *method;
	char	   *url;
	List	   *headers;		/* char * "Name: value" (no secrets) */
	char	   *body;			/* may be NULL */
	size_t		body_len;
	int			delay_ms;		/* send no earlier than this from now (polling) */
} OutRequest;

typedef struct Connector
{
	const char *kind;

	/* most listings one push request may carry */
	int			push_batch;

	/* build one stock-push request for items[0 .. n-1] */
	void		(*build_push) (ChannelConfig *ch, PushItem *items, int n, OutRequest *out);

	/*
	 * Read a completed push (2xx, or a multi-status answer) into per-item
	 * outcomes; items not mentioned stay !ok with error set by the caller.
	 */
	void		(*parse_push) (ChannelConfig *ch, HttpRequest *req, PushItem *items, int n);

	/*
	 * Optional: multi-step pushes (read-modify-write, feeds).  Called when a
	 * push job succeeded, before parse_push: return true and fill *next to
	 * queue the next step for the same listings instead of finishing; the
	 * payload object (the job's, with "items") may be changed to carry state
	 * to the next step (e.g. a document id), it is stored with the next job.
	 * "step" in the payload tells the steps apart.
	 */
	bool		(*next_step) (ChannelConfig *ch, HttpRequest *req, OcJson *payload,
							  PushItem *items, int n, OutRequest *next);

	/*
	 * Optional: a 2xx answer that is really a throttle (Shopify GraphQL
	 * THROTTLED, an envelope error code).  Return the seconds to wait before
	 * retrying the whole request, or a negative number when it is not one.
	 */
	double		(*throttled) (ChannelConfig *ch, HttpRequest *req);

	/*
	 * OAuth-style access tokens: when true, requests wait until a token
	 * obtained with build_token/parse_token is valid.
	 */
	bool		needs_token;

	/* the token request, secrets included: filled in at send time only */
	void		(*build_token) (ChannelConfig *ch, OcJson *secrets, HttpRequest *req);

	/* the access token and its lifetime in seconds from a token response */
	bool		(*parse_token) (HttpRequest *req, char **token, int *expires_in, char **error);

	/* add authentication (and signatures) to a request about to be sent */
	void		(*authorize) (ChannelConfig *ch, OcJson *secrets, const char *token, HttpRequest *req);

	/*
	 * Optional: listings whose pushes must not overlap.  The key of
	 * PushItem.external naming the group (e.g. "listing_id" for Etsy, whose
	 * inventory is read and replaced per listing as a whole): a push job
	 * then carries listings of one group only (at most push_batch), and a
	 * group with a push in flight waits for it to finish.
	 */
	const char *push_group;

	/*
	 * Optional: a successful token answer that replaces a credential
	 * (rotating refresh tokens).  Return true with *key (a credential key)
	 * and *value set; the worker keeps the new value in its cache and in
	 * omnichan.credential, in the transaction that records the token.
	 */
	bool		(*rotated_secret) (HttpRequest *req, const char **key, char **value);

	/*
	 * Order pull (optional: NULL = the marketplace's orders are not pulled).
	 *
	 * A pull is a chain of jobs of one channel (one at a time), each carrying
	 * the pull's state object (stored with the job, so a restart resumes the
	 * chain where it was).  The sync worker creates the state with
	 *	 "since", "until"		the window, ISO 8601 UTC ("2026-11-20T10:11:12Z")
	 *	 "since_epoch", "until_epoch"	the same, in Unix seconds
	 * or, to fetch one order (omnichan.fetch_order), with "order_id" (the
	 * marketplace's order id) instead; the connector adds its own keys
	 * (page tokens, offsets, orders waiting for their items...).
	 *
	 * build_pull: the first request of a pull.
	 *
	 * parse_pull: read one answer (2xx) of the chain.  Append every complete
	 * order it yields to the orders array, normalized as docs/orders.md says
	 * (money as decimal strings, "raw" = the marketplace's order payload);
	 * orders the channel must not import (e.g. Amazon FBA orders not yet
	 * shipped) are left out.  Return true with *next filled (and state
	 * updated) to continue the chain (next page, an order's items), false
	 * when the pull is complete.  A malformed answer: set *error and return
	 * false; nothing of the answer is stored, the job fails and the cursor
	 * stays (the next pull covers the window again).
	 *
	 * The orders of every answer are stored in the transaction that records
	 * it, and the channel's cursor moves to "until" only in the transaction
	 * that stores the last answer of the chain.
	 */
	const char *pull_operation;	/* rate-limit operation of the pull, e.g. "order_pull" */
	int			pull_lag_s;		/* the window ends this long before now (Amazon: 120) */
	void		(*build_pull) (ChannelConfig *ch, OcJson *state, OutRequest *out);
	bool		(*parse_pull) (ChannelConfig *ch, HttpRequest *req, OcJson *state,
							   OcJson *orders, OutRequest *next, char **error);

	/*
	 * Optional: report to the marketplace that the merchant cancelled an
	 * imported order in Odoo.  "order" is {"external_id", "raw" (as stored),
	 * "lines": [{"external_id", "sku", "quantity"}]}.  Return false (with
	 * *error) when the marketplace cannot cancel this order through its API.
	 * Any 2xx answer counts as done unless parse_cancel says otherwise.
	 */
	bool		(*build_cancel) (ChannelConfig *ch, OcJson *order, OutRequest *out, char **error);
	bool		(*parse_cancel) (ChannelConfig *ch, HttpRequest *req, char **error);
} Connector;

/* the connector of a marketplace kind, or NULL */
extern const Connector *ConnectorFor(const char *kind);

/* helpers for connectors (connector.c) */
extern void OutRequestHeader(OutRequest *out, const char *fmt,...) pg_attribute_printf(2, 3);
extern void HttpAddHeader(HttpRequest *req, const char *fmt,...) pg_attribute_printf(2, 3);
extern void HttpSetBody(HttpRequest *req, const char *body, size_t len);
extern char *UrlEncode(const char *s);
extern char *Base64Encode(const char *data, size_t len);
extern const char *SettingString(ChannelConfig *ch, const char *key);
extern const char *SecretString(OcJson *secrets, const char *key);
extern char *JoinUrl(const char *base, const char *path);

/* an OAuth-style token answer (access_token, expires_in) */
extern bool ParseAccessToken(HttpRequest *req, const char *who, int64 default_secs,
							 const char *const *error_paths, char **token,
							 int *expires_in, char **error);

/*
 * Order pull helpers.  Amounts travel as decimal strings (never through a
 * double): DecimalOf gives a JSON string as given when it is a decimal
 * number, a JSON number as its shortest exact text, or NULL.
 */
extern char *DecimalOf(OcJson *value);
extern char *DecimalAdd(const char *a, const char *b);	/* NULL counts as 0 */
extern char *DecimalSub(const char *a, const char *b);
extern char *DecimalMulInt(const char *a, int64 n);
extern char *DecimalDivInt(const char *a, int64 n, int scale);	/* rounded half up */
extern char *DecimalScaled(int64 amount, int64 divisor);	/* Etsy's {amount, divisor} */
extern int	DecimalCmp(const char *a, const char *b);
/*
 * A page of a pull chain counted for its progress (omnichan.progress of an
 * order backfill): the orders the page had (kept or skipped), and the
 * marketplace's count of the orders in the whole window when its first
 * answer has one (NULL or not a count: unknown).
 */
extern void PullPageCounted(OcJson *state, OcJson *total, int64 read);
/* "2026-11-20T10:11:12Z" from Unix seconds or milliseconds */
extern char *IsoFromEpoch(int64 secs);
/* Unix seconds of an ISO 8601 timestamp (any offset); false if it is not one */
extern bool EpochFromIso(const char *iso, int64 *secs);

/* HMAC-SHA256 (PostgreSQL's common code), as lower-case hex */
extern char *HmacSha256Hex(const char *key, size_t keylen, const char *data, size_t len);

/* the connectors */
extern const Connector EbayConnector;
extern const Connector TikTokConnector;
extern const Connector LazadaConnector;
extern const Connector WalmartConnector;
extern const Connector AmazonConnector;
extern const Connector ShopifyConnector;
extern const Connector EtsyConnector;

#endif							/* OMNICHAN_CONNECTOR_H */
