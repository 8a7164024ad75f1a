/*-------------------------------------------------------------------------
 *
 * throttle.c
 *	  Flow control of the sync worker, per marketplace channel.
 *
 * Token buckets: each (channel, operation) has a bucket of "burst" tokens
 * refilled at "rate" per second, configured in omnichan.rate_limit (per
 * channel, else per marketplace kind; operation '*' as the fallback).  A job
 * starts only with a token.  The marketplaces' own rate headers adjust the
 * bucket: Retry-After blocks it until then; Amazon's x-amzn-RateLimit-Limit
 * sets its rate; Shopify's X-Shopify-Shop-Api-Call-Limit ("32/40"), Walmart's
 * x-current-token-count / x-next-replenish-time and Etsy's
 * x-remaining-this-second cap the tokens (so omnichan never exceeds what the
 * marketplace says is left, even when another app shares the quota).
 *
 * Concurrency: at most max_concurrency requests of a channel in flight.
 *
 * Circuit breaker: omnichan.circuit_failure_threshold consecutive failures
 * (network errors, 5xx) open a channel's circuit: nothing is sent for
 * omnichan.circuit_open_time, then one probe request is let through
 * (half-open); its success closes the circuit, its failure opens it again
 * for twice as long (at most 16 times the base).  A dead marketplace thus
 * costs one request per interval and never slows the other channels.
 *
 * Jobs without a channel (channel 0 here) may go to unrelated hosts: they
 * have a bucket and a concurrency cap, but no circuit breaker, and one
 * host's rate headers do not block the others.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "omnichan.h"
#include "throttle.h"

#define OPNAME_LEN	48

typedef struct BucketKey
{
	int32		channel_id;
	char		operation[OPNAME_LEN];
} BucketKey;

typedef struct Bucket
{
	BucketKey	key;
	double		tokens;
	double		rate;			/* tokens per second */
	double		burst;
	bool		rate_from_header;	/* rate set by the marketplace */
	TimestampTz refilled;
	TimestampTz blocked_until;	/* Retry-After and friends */
	int			config_epoch;
} Bucket;

typedef struct ChannelFlow
{
	int32		channel_id;
	char		kind[16];
	int			inflight;
	int			max_concurrency;
	CircuitState circuit;
	TimestampTz opened_at;
	int			open_ms;		/* current open period */
	int			failures;		/* consecutive */
	bool		probing;		/* half-open probe in flight */
} ChannelFlow;

/* one row of omnichan.rate_limit */
typedef struct LimitRow
{
	int32		channel_id;		/* 0 = a kind row */
	char		kind[16];
	char		operation[OPNAME_LEN];
	double		rate;
	int			burst;
	int			max_concurrency;	/* 0 = unset */
} LimitRow;

static HTAB *Buckets = NULL;
static HTAB *Channels = NULL;
static MemoryContext ThrottleCxt = NULL;
static LimitRow *Limits = NULL;
static int	NLimits = 0;
static int	ConfigEpoch = 0;

/* unlimited defaults for jobs without a channel */
#define DEFAULT_RATE			1000.0
#define DEFAULT_BURST			1000
#define DEFAULT_CONCURRENCY		16

static void EnsureTables(void);
static ChannelFlow *FlowFor(int32 channel_id);
static Bucket *BucketFor(int32 channel_id, const char *operation);
static void Refill(Bucket *b, TimestampTz now);
static const LimitRow *FindLimit(int32 channel_id, const char *kind, const char *operation);
static void ApplyRateHeaders(Bucket *b, HttpRequest *req, TimestampTz now);

/* EnsureTables: the hash tables, in a context that lives as long as the worker */
static void
EnsureTables(void)
{
	HASHCTL		ctl;

	if (Buckets != NULL)
		return;
	ThrottleCxt = AllocSetContextCreate(TopMemoryContext, "omnichan throttle",
										ALLOCSET_DEFAULT_SIZES);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(BucketKey);
	ctl.entrysize = sizeof(Bucket);
	ctl.hcxt = ThrottleCxt;
	Buckets = hash_create("omnichan buckets", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(ChannelFlow);
	Channels = hash_create("omnichan channel flow", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/* CircuitName: for logs and channel_state */
const char *
CircuitName(CircuitState state)
{
	switch (state)
	{
		case CIRCUIT_OPEN:
			return "open";
		case CIRCUIT_HALF_OPEN:
			return "half_open";
		default:
			return "closed";
	}
}

/*
 * ThrottleLoadConfig
 *		Reads omnichan.rate_limit and the channels' kinds.  Buckets pick up
 *		the new limits at their next use.
 */
void
ThrottleLoadConfig(void)
{
	MemoryContext old;
	uint64		row;
	int			ret;

	EnsureTables();
	ret = SPI_execute("SELECT COALESCE(r.channel_id, 0), COALESCE(r.kind, ''), r.operation, r.rate, "
					  "       r.burst, COALESCE(r.max_concurrency, 0) "
					  "  FROM omnichan.rate_limit r", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read omnichan.rate_limit: %s", SPI_result_code_string(ret));
	old = MemoryContextSwitchTo(ThrottleCxt);
	if (Limits != NULL)
		pfree(Limits);
	NLimits = SPI_processed;
	Limits = palloc0(sizeof(LimitRow) * Max(NLimits, 1));
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		LimitRow   *l = &Limits[row];

		l->channel_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		strlcpy(l->kind, SPI_getvalue(tup, desc, 2), sizeof(l->kind));
		strlcpy(l->operation, SPI_getvalue(tup, desc, 3), sizeof(l->operation));
		l->rate = DatumGetFloat8(SPI_getbinval(tup, desc, 4, &isnull));
		l->burst = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		l->max_concurrency = DatumGetInt32(SPI_getbinval(tup, desc, 6, &isnull));
	}
	MemoryContextSwitchTo(old);

	ret = SPI_execute("SELECT id, kind FROM omnichan.channel", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read omnichan.channel: %s", SPI_result_code_string(ret));
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1, &isnull));
		ChannelFlow *f = FlowFor(id);

		strlcpy(f->kind, SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 2), sizeof(f->kind));
	}
	ConfigEpoch++;
}

/* FindLimit: channel+operation, channel+'*', kind+operation, kind+'*' */
static const LimitRow *
FindLimit(int32 channel_id, const char *kind, const char *operation)
{
	int			pass,
				i;

	for (pass = 0; pass < 4; pass++)
		for (i = 0; i < NLimits; i++)
		{
			const LimitRow *l = &Limits[i];
			bool		by_channel = (pass < 2);
			const char *op = (pass % 2 == 0) ? operation : "*";

			if (by_channel ? (l->channel_id != channel_id || channel_id == 0)
				: (l->channel_id != 0 || kind[0] == '\0' || strcmp(l->kind, kind) != 0))
				continue;
			if (strcmp(l->operation, op) == 0)
				return l;
		}
	return NULL;
}

/* FlowFor: a channel's flow state, created closed */
static ChannelFlow *
FlowFor(int32 channel_id)
{
	bool		found;
	ChannelFlow *f;

	EnsureTables();
	f = hash_search(Channels, &channel_id, HASH_ENTER, &found);
	if (!found)
	{
		f->kind[0] = '\0';
		f->inflight = 0;
		f->max_concurrency = 0;
		f->circuit = CIRCUIT_CLOSED;
		f->opened_at = 0;
		f->open_ms = omnichan_circuit_open_time;
		f->failures = 0;
		f->probing = false;
	}
	return f;
}

/* BucketFor: the bucket of (channel, operation), (re)configured when needed */
static Bucket *
BucketFor(int32 channel_id, const char *operation)
{
	BucketKey	key;
	Bucket	   *b;
	bool		found;

	EnsureTables();
	memset(&key, 0, sizeof(key));
	key.channel_id = channel_id;
	strlcpy(key.operation, operation, sizeof(key.operation));
	b = hash_search(Buckets, &key, HASH_ENTER, &found);
	if (!found || b->config_epoch != ConfigEpoch)
	{
		ChannelFlow *f = FlowFor(channel_id);
		const LimitRow *l = FindLimit(channel_id, f->kind, operation);
		const LimitRow *star = FindLimit(channel_id, f->kind, "*");
		double		rate = l ? l->rate : DEFAULT_RATE;
		double		burst = l ? l->burst : DEFAULT_BURST;

		if (!found)
		{
			b->tokens = burst;
			b->refilled = GetCurrentTimestamp();
			b->blocked_until = 0;
			b->rate_from_header = false;
		}
		if (!b->rate_from_header || !found)
			b->rate = rate;
		b->burst = burst;
		b->tokens = Min(b->tokens, burst);
		b->config_epoch = ConfigEpoch;
		f->max_concurrency = (star && star->max_concurrency > 0) ? star->max_concurrency
			: (l && l->max_concurrency > 0) ? l->max_concurrency : DEFAULT_CONCURRENCY;
	}
	return b;
}

/* Refill: add the tokens earned since the last refill */
static void
Refill(Bucket *b, TimestampTz now)
{
	double		secs = (double) (now - b->refilled) / USECS_PER_SEC;

	if (secs > 0)
	{
		b->tokens = Min(b->burst, b->tokens + secs * b->rate);
		b->refilled = now;
	}
}

/*
 * ThrottleAllowance
 *		Jobs of (channel, operation) that may start now.
 */
int
ThrottleAllowance(int32 channel_id, const char *operation, TimestampTz now,
				  TimestampTz *retry_at)
{
	Bucket	   *b = BucketFor(channel_id, operation);
	ChannelFlow *f = FlowFor(channel_id);
	int			n;

	*retry_at = 0;
	if (f->circuit == CIRCUIT_OPEN)
	{
		TimestampTz reopen = TimestampTzPlusMilliseconds(f->opened_at, f->open_ms);

		if (now < reopen)
		{
			*retry_at = reopen;
			return 0;
		}
		f->circuit = CIRCUIT_HALF_OPEN;
		f->probing = false;
	}
	if (f->circuit == CIRCUIT_HALF_OPEN)
	{
		/* exactly one probe at a time */
		if (f->probing || f->inflight > 0)
			return 0;
	}
	if (now < b->blocked_until)
	{
		*retry_at = b->blocked_until;
		return 0;
	}
	Refill(b, now);
	n = (int) floor(b->tokens);
	if (n < 1)
	{
		*retry_at = now + (TimestampTz) ceil((1.0 - b->tokens) / b->rate * USECS_PER_SEC);
		return 0;
	}
	n = Min(n, f->max_concurrency - f->inflight);
	if (f->circuit == CIRCUIT_HALF_OPEN)
		n = Min(n, 1);
	return Max(n, 0);
}

/*
 * ThrottleStart
 *		A request starts: one token less, one more in flight.
 */
void
ThrottleStart(int32 channel_id, const char *operation, TimestampTz now)
{
	Bucket	   *b = BucketFor(channel_id, operation);
	ChannelFlow *f = FlowFor(channel_id);

	Refill(b, now);
	b->tokens -= 1.0;
	f->inflight++;
	if (f->circuit == CIRCUIT_HALF_OPEN)
		f->probing = true;
}

/*
 * ApplyRateHeaders
 *		Let the marketplace's rate-limit headers tighten the bucket.
 */
static void
ApplyRateHeaders(Bucket *b, HttpRequest *req, TimestampTz now)
{
	char	   *v;

	if (req->retry_after_s >= 0 && (req->status == 429 || req->status == 503))
		b->blocked_until = Max(b->blocked_until,
							   now + (TimestampTz) (req->retry_after_s * USECS_PER_SEC));

	/* Amazon SP-API: the operation's rate, in requests per second */
	if ((v = HttpResponseHeader(req, "x-amzn-ratelimit-limit")) != NULL)
	{
		double		rate = strtod(v, NULL);

		if (rate > 0 && rate <= 100000)
		{
			b->rate = rate;
			b->rate_from_header = true;
		}
	}
	/* Shopify REST: "used/limit" of the leaky bucket */
	if ((v = HttpResponseHeader(req, "x-shopify-shop-api-call-limit")) != NULL)
	{
		int			used,
					limit;

		if (sscanf(v, "%d/%d", &used, &limit) == 2 && limit > 0)
			b->tokens = Min(b->tokens, (double) (limit - used));
	}
	/* Walmart: tokens left, and when they come back (epoch milliseconds) */
	if ((v = HttpResponseHeader(req, "x-current-token-count")) != NULL)
	{
		double		left = strtod(v, NULL);

		b->tokens = Min(b->tokens, left);
		if (left < 1 && (v = HttpResponseHeader(req, "x-next-replenish-time")) != NULL)
		{
			double		ms = strtod(v, NULL);
			TimestampTz at = (TimestampTz) (ms * 1000.0) -
				((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY * USECS_PER_SEC);

			if (at > now && at < now + 3600 * USECS_PER_SEC)
				b->blocked_until = Max(b->blocked_until, at);
		}
	}
	/* Etsy: nothing left this second */
	if ((v = HttpResponseHeader(req, "x-remaining-this-second")) != NULL && strtod(v, NULL) < 1)
		b->blocked_until = Max(b->blocked_until, now + USECS_PER_SEC);
}

/*
 * ThrottleFinish
 *		A request finished: rate headers, in-flight count, circuit breaker.
 */
void
ThrottleFinish(HttpRequest *req, TimestampTz now, ThrottleReport *report)
{
	Bucket	   *b = BucketFor(req->channel_id, req->operation);
	ChannelFlow *f = FlowFor(req->channel_id);
	bool		failure = (req->error != NULL && !req->permanent) || req->status >= 500;
	CircuitState before = f->circuit;

	if (f->inflight > 0)
		f->inflight--;
	f->probing = false;

	/*
	 * Jobs without a channel go to unrelated hosts: one host's rate headers
	 * or failures must not hold back the others.  Their own Retry-After
	 * still delays their retry (see RecordOutcomes).
	 */
	if (req->channel_id != 0)
		ApplyRateHeaders(b, req, now);

	if (req->channel_id == 0)
		f->failures = 0;
	else if (failure)
	{
		f->failures++;
		if (f->circuit == CIRCUIT_HALF_OPEN)
		{
			f->circuit = CIRCUIT_OPEN;
			f->opened_at = now;
			f->open_ms = Min(f->open_ms * 2, omnichan_circuit_open_time * 16);
		}
		else if (f->circuit == CIRCUIT_CLOSED && f->failures >= omnichan_circuit_failure_threshold)
		{
			f->circuit = CIRCUIT_OPEN;
			f->opened_at = now;
			f->open_ms = omnichan_circuit_open_time;
		}
	}
	else if (req->status != 0)
	{
		/* the marketplace answered: it is alive (429 and 4xx included) */
		f->failures = 0;
		if (f->circuit != CIRCUIT_CLOSED)
		{
			f->circuit = CIRCUIT_CLOSED;
			f->open_ms = omnichan_circuit_open_time;
		}
	}

	report->channel_id = req->channel_id;
	report->circuit_changed = (before != f->circuit);
	report->circuit = f->circuit;
	report->circuit_opened_at = f->opened_at;
	report->consecutive_failures = f->failures;
}

/*
 * ThrottleRestoreCircuit
 *		The circuit state a previous worker persisted in channel_state.
 */
void
ThrottleRestoreCircuit(int32 channel_id, CircuitState state, TimestampTz opened_at, int failures)
{
	ChannelFlow *f = FlowFor(channel_id);

	f->circuit = (state == CIRCUIT_HALF_OPEN) ? CIRCUIT_OPEN : state;
	f->opened_at = opened_at;
	f->failures = failures;
}
