/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Stock push: the part of the sync worker between the dirty set and the
 *	  marketplace connectors.
 *
 * Each push cycle (a transaction of its own):
 *
 *	1. dirty products become listing target quantities (the allocation of
 *	   every channel), in bounded batches (RefreshTargets: what
 *	   omnichan.refresh_targets() does, with the worker's own plans);
 *	2. for every active, unpaused channel that has a connector and whose push
 *	   is due (real-time channels: always; the others: every push_interval),
 *	   the listings whose target differs from what the marketplace last
 *	   accepted — or all of them during a full resync — are grouped in
 *	   batches of the connector's size, each batch becomes one durable job,
 *	   and the listings remember it (push_job_id), so a listing has at most
 *	   one push in flight and the request count is ceil(changed / batch);
 *	   a connector with a push_group gets one job per group instead (one
 *	   Etsy listing and its variations), never two in flight per group;
 *	   a channel's queue is kept between 2 and 4 times its max_concurrency
 *	   jobs, and a full resync reads its listings through a cursor (see
 *	   QueuePushes).
 *
 * Authentication: a channel whose connector uses access tokens gets its
 * token from a job of operation "auth" (its secrets added at send time only);
 * until it has a valid token its other jobs are not started.  A 401/403
 * drops the token and retries the job once with a new one; a second refusal
 * means the credentials (or their scopes) are wrong.  A token answer that
 * rotates a credential (Etsy's refresh tokens) has it stored at once
 * (KeepRotatedSecret); the auth job's answer itself is not kept (worker.c).
 *
 * Full resync (omnichan.full_resync: channel_state.full_resync_requested_at
 * = S): every listing with a target is pushed until it is "resolved" for S
 * (accepted since S, or refused since S with class fix or credentials: not
 * retried by the resync; class retry is pushed again after its retry_at).
 * The first cycle that sees S writes a progress row (started_at = S, total =
 * the channel's listings with a target) and closes a row left running by an
 * older request (finished_at set, done as reached: replaced; its listings
 * are pushed again for the new S).  Each completed push job adds its newly
 * resolved listings to done (one UPDATE with the listings' own, counting a
 * listing once); the resync is over when no listing is left unresolved, then
 * the request is cleared (only if no newer one came) and the row finished.
 * The results of every push job completed in one outcome transaction are
 * written by one UPDATE (SyncCompleteBegin/SyncCompleteFlush).
 *
 * Completion: the connector reads the marketplace's per-item results; items
 * accepted get pushed_qty, the others keep the marketplace's own message in
 * last_error with a class (retry later, fix needed, credentials) that
 * decides when they are tried again.  Only failed items are pushed again.
 *
 * Channel configuration, credentials and tokens are cached in the worker's
 * memory (never written anywhere); the cache is refreshed every cycle from
 * the catalogs (cheap: a few rows) and credentials are re-read when changed.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "connector.h"
#include "omnichan.h"
#include "pull.h"
#include "sync.h"

/* most push jobs queued per channel and cycle (bounds a full resync's burst) */
#define MAX_JOBS_PER_CYCLE	40
/*
 * Queue depth of a channel, in units of its max_concurrency: below LOW x
 * the channel is refilled (up to HIGH x); at or above it neither its push
 * cycle nor the completion of its jobs needs to look for more listings.
 */
#define QUEUE_LOW_FACTOR	2
#define QUEUE_HIGH_FACTOR	4
/* dirty products per RefreshTargets (refresh_targets()' default) */
#define REFRESH_BATCH		5000
/* a full resync's sweeps for leftovers: first and longest interval */
#define SWEEP_MIN_MS		1000
#define SWEEP_MAX_MS		30000
/* listing results recorded before the queue drains and ANALYZE runs */
#define ANALYZE_AFTER_RESULTS	5000
/* a token is renewed this long before it expires */
#define TOKEN_MARGIN_S		60
/* wait before asking again for a token after a refusal */
#define AUTH_RETRY_S		60

typedef struct ChannelCache
{
	int32		id;				/* hash key */
	MemoryContext cxt;			/* config and secrets */
	ChannelConfig config;
	char	   *settings_text;	/* as read, to notice changes */
	const Connector *connector;
	bool		active;
	bool		paused;
	int64		push_interval_ms;
	TimestampTz next_push_at;
	TimestampTz full_resync_at; /* 0 = none */
	TimestampTz progress_for;	/* the resync whose progress row exists */
	int			max_concurrency;	/* requests in flight (rate_limit '*') */
	int			pending;		/* its jobs queued or running (counted each
								 * cycle, then kept up to date in memory) */
	/* full resync cursor: listings pushed in id order, one pass at a time */
	TimestampTz cursor_for;		/* the resync the cursor belongs to */
	int64		cursor;			/* last listing id queued by this pass */
	bool		pass_done;		/* nothing left past the cursor */
	TimestampTz pass_done_at;
	int64		pass_queued;	/* listings queued by the current pass */
	bool		sweep_on_drain; /* sweep once the channel has no jobs left */
	int			sweep_ms;		/* wait before the next sweep from id 0 */
	char	   *token_endpoint;
	OcJson	   *secrets;		/* NULL = none */
	TimestampTz secrets_updated;
	char	   *token;			/* access token, NULL = none */
	TimestampTz token_expires;
	TimestampTz token_obtained;
	bool		auth_pending;	/* an "auth" job is queued or running */
	TimestampTz auth_retry_at;
	bool		seen;			/* present in the last refresh */
} ChannelCache;

/*
 * A listing is resolved for the full resync requested at $2: accepted since,
 * or refused since with a class the resync does not retry.
 */
#define RESOLVED_SINCE_2 \
	"(COALESCE(l.pushed_at >= $2, false) " \
	" OR COALESCE(l.error_class IN ('fix', 'credentials') AND l.last_error_at >= $2, false))"

/*
 * A listing's pushed_at when the coalescing window of $N milliseconds
 * (0: none) still holds it, else null (see QueuePushes).
 */
#define HELD_SINCE(n) \
	"CASE WHEN $" #n " > 0 AND l.pushed_at > pg_catalog.now() - " \
	"pg_catalog.make_interval(secs => $" #n " / 1000.0) THEN l.pushed_at END "

static HTAB *Cache = NULL;
static MemoryContext SyncCxt = NULL;

/* listing results recorded since the worker last analyzed omnichan.listing */
static uint64 ResultsSinceAnalyze = 0;

/* when a recomputation last found dirty products (TargetsWanted) */
static TimestampTz LastTargetsAt = 0;

/* statements prepared once for the life of the worker (KeepSyncPlan) */
static SPIPlanPtr ChannelsPlan = NULL;
static SPIPlanPtr DuePlan = NULL;
static SPIPlanPtr ResyncPlan = NULL;
static SPIPlanPtr GroupPlan = NULL;
static SPIPlanPtr InsertJobPlan = NULL;
static SPIPlanPtr SchedulePlan = NULL;
static SPIPlanPtr ResultsPlan = NULL;
static SPIPlanPtr ResyncLeftPlan = NULL;
static SPIPlanPtr ResyncEndPlan = NULL;
static SPIPlanPtr ResyncStartPlan = NULL;
static SPIPlanPtr ClaimDirtyPlan = NULL;
static SPIPlanPtr TargetsPlan = NULL;
static SPIPlanPtr TargetsAllPlan = NULL;
static SPIPlanPtr AckDirtyPlan = NULL;

/*
 * Per-listing results of the push jobs completed in one outcome transaction
 * (SyncCompleteBegin .. SyncCompleteFlush): written by one UPDATE.
 */
typedef struct ResultBatch
{
	MemoryContext cxt;			/* the transaction's, where it lives */
	int			n;
	int			cap;
	Datum	   *jobs;
	Datum	   *ids;
	Datum	   *oks;
	Datum	   *errors;
	Datum	   *classes;
	Datum	   *qtys;
	Datum	   *channels;
	Datum	   *resyncs;
	bool	   *enulls;
	bool	   *rnulls;
} ResultBatch;

static ResultBatch *Results = NULL;

static void RefreshCache(void);
static int	RefreshTargets(int max_products);
static bool TargetsWanted(TimestampTz now);
static ChannelCache *CacheLookup(int32 channel_id);
static void QueuePushes(ChannelCache *cc, TimestampTz now, TimestampTz *next_due);
static void StartResyncProgress(ChannelCache *cc);
static bool FinishResyncIfDone(ChannelCache *cc);
static int64 InsertJob(ChannelCache *cc, OutRequest *out, const char *payload,
					   int64 *listing_ids, int n);
static void SetChannelError(int32 channel_id, const char *error);
static void KeepRotatedSecret(ChannelCache *cc, const char *key, const char *value);
static Datum Int8ArrayDatum(int64 *values, int n);
static SPIPlanPtr KeepSyncPlan(const char *sql, int nargs, Oid *argtypes, int options);
static uint64 DropHeld(HeapTuple *tups, uint64 n, TupleDesc desc, int col,
					   int64 window, TimestampTz *held_since);
static void AnalyzeListings(void);
static int	PlannerSettingPush(const char *name, const char *value);
static void ResultsAdd(int64 job_id, ChannelCache *cc, PushItem *items, int n);

/*
 * KeepSyncPlan
 *		Prepares a statement once for the life of the worker (as worker.c's
 *		KeepPlan); options are CURSOR_OPT_* planning options.
 *
 * CURSOR_OPT_CUSTOM_PLAN (planned at each execution, parsed once) for the
 * statements on omnichan.listing whose best plan depends on its size or on
 * their arrays' lengths: a generic plan is kept until an invalidation, and
 * one made while the table was nearly empty (e.g. after a channel_drop)
 * hashes or rescans every listing once 100k are back (seen: the results
 * UPDATE of a 10,000-listing Amazon feed rescanning its unnest() per
 * listing, minutes).  CURSOR_OPT_GENERIC_PLAN for key lookups and small
 * catalogs.
 */
static SPIPlanPtr
KeepSyncPlan(const char *sql, int nargs, Oid *argtypes, int options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, options);

	if (plan == NULL)
		elog(ERROR, "could not prepare a sync statement: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep a sync statement");
	return plan;
}

/*
 * DropHeld
 *		Removes from tups[0..n) the listings the coalescing window holds
 *		(column col, HELD_SINCE, not null), keeping the others in order;
 *		returns how many are left and lowers *held_since (0: none yet) to
 *		the earliest pushed_at of those removed.
 */
static uint64
DropHeld(HeapTuple *tups, uint64 n, TupleDesc desc, int col, int64 window,
		 TimestampTz *held_since)
{
	uint64		i,
				kept = 0;

	if (window <= 0)
		return n;
	for (i = 0; i < n; i++)
	{
		bool		isnull;
		Datum		since = SPI_getbinval(tups[i], desc, col, &isnull);

		if (isnull)
			tups[kept++] = tups[i];
		else if (*held_since == 0 || DatumGetTimestampTz(since) < *held_since)
			*held_since = DatumGetTimestampTz(since);
	}
	return kept;
}

/*
 * AnalyzeListings
 *		ANALYZE omnichan.listing, skipped when another ANALYZE or VACUUM of
 *		it holds its lock.
 *
 * Run when a channel's queue has drained after many listings were pushed
 * (ANALYZE_AFTER_RESULTS).  The statistics autovacuum took in the middle
 * of such a push say that most listings are due (push_due), and with them
 * the planner reads the due listings through the primary key, filtering
 * every listing of the table (~10 ms per push cycle with 100k listings,
 * the whole of a real-time channel's latency budget), until autovacuum
 * analyzes again: after another 10 % of the table has changed, minutes
 * later on a channel that is now quiet.
 */
static void
AnalyzeListings(void)
{
	int			ret = SPI_execute("ANALYZE (SKIP_LOCKED) omnichan.listing", false, 0);

	if (ret != SPI_OK_UTILITY)
		elog(ERROR, "could not analyze omnichan.listing: %s", SPI_result_code_string(ret));
	elog(DEBUG1, "omnichan worker: analyzed omnichan.listing after %llu listing results",
		 (unsigned long long) ResultsSinceAnalyze);
	ResultsSinceAnalyze = 0;
}

/*
 * PlannerSettingPush
 *		Sets a planner setting for the statements that follow, until
 *		AtEOXact_GUC(true, the level returned) (or the end of the
 *		transaction, if one fails first).
 */
static int
PlannerSettingPush(const char *name, const char *value)
{
	int			nest = NewGUCNestLevel();

	(void) set_config_option(name, value, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return nest;
}

/* CacheLookup: a channel's cache entry, NULL when unknown */
static ChannelCache *
CacheLookup(int32 channel_id)
{
	if (Cache == NULL)
		return NULL;
	return hash_search(Cache, &channel_id, HASH_FIND, NULL);
}

/* a row of the channel query, copied out of SPI */
typedef struct ChannelRow
{
	int32		id;
	char	   *name;
	char	   *kind;
	char	   *endpoint;
	char	   *settings;
	bool		active;
	int64		push_interval_ms;
	bool		paused;
	TimestampTz next_push_at;
	TimestampTz full_resync_at;
	TimestampTz cred_updated;
	bool		auth_pending;
	int32		pending;
	int32		max_concurrency;
} ChannelRow;

/*
 * RefreshCache
 *		Reads the channels (effective settings, state, credentials' change
 *		time); re-reads a channel's secrets when they changed.
 */
static void
RefreshCache(void)
{
	ChannelRow *rows;
	int			nrows;
	uint64		r;
	int			i,
				ret;
	HASH_SEQ_STATUS seq;
	ChannelCache *cc;

	if (Cache == NULL)
	{
		HASHCTL		ctl;

		SyncCxt = AllocSetContextCreate(TopMemoryContext, "omnichan sync", ALLOCSET_DEFAULT_SIZES);
		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(ChannelCache);
		ctl.hcxt = SyncCxt;
		Cache = hash_create("omnichan channels", 32, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}

	/*
	 * With each channel: its jobs queued or running (job_channel_idx) and
	 * its max_concurrency as the flow control applies it (the channel's '*'
	 * row, else its kind's, else 16), for the queue depth of QueuePushes.
	 */
	if (ChannelsPlan == NULL)
		ChannelsPlan = KeepSyncPlan("SELECT c.id, c.name, c.kind, c.endpoint, omnichan._channel_effective(c)::text, "
									"       c.active, (pg_catalog.date_part('epoch', c.push_interval) * 1000)::int8, "
									"       COALESCE(s.paused, false), s.next_push_at, s.full_resync_requested_at, "
									"       cr.updated_at, q.auth, q.pending, "
									"       COALESCE((SELECT r.max_concurrency FROM omnichan.rate_limit r "
									"                  WHERE r.operation = '*' AND r.max_concurrency IS NOT NULL "
									"                    AND (r.channel_id = c.id OR (r.channel_id IS NULL AND r.kind = c.kind)) "
									"                  ORDER BY r.channel_id IS NULL LIMIT 1), 16) "
									"  FROM omnichan.channel c "
									"  LEFT JOIN omnichan.channel_state s ON s.channel_id = c.id "
									"  LEFT JOIN omnichan.credential cr ON cr.channel_id = c.id "
									"  CROSS JOIN LATERAL (SELECT COALESCE(pg_catalog.bool_or(j.operation = 'auth'), false) AS auth, "
									"                             pg_catalog.count(*)::int4 AS pending "
									"                        FROM omnichan.job j WHERE j.channel_id = c.id "
									"                         AND j.state IN ('queued', 'running')) q",
									0, NULL, 0);
	ret = SPI_execute_plan(ChannelsPlan, NULL, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the channels: %s", SPI_result_code_string(ret));
	nrows = (int) SPI_processed;
	rows = palloc0(sizeof(ChannelRow) * Max(nrows, 1));
	for (r = 0; r < SPI_processed; r++)
	{
		HeapTuple	tup = SPI_tuptable->vals[r];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		ChannelRow *row = &rows[r];
		bool		isnull;
		Datum		d;

		row->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		row->name = SPI_getvalue(tup, desc, 2);
		row->kind = SPI_getvalue(tup, desc, 3);
		row->endpoint = SPI_getvalue(tup, desc, 4);
		row->settings = SPI_getvalue(tup, desc, 5);
		row->active = DatumGetBool(SPI_getbinval(tup, desc, 6, &isnull));
		row->push_interval_ms = DatumGetInt64(SPI_getbinval(tup, desc, 7, &isnull));
		row->paused = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
		d = SPI_getbinval(tup, desc, 9, &isnull);
		row->next_push_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 10, &isnull);
		row->full_resync_at = isnull ? 0 : DatumGetTimestampTz(d);
		d = SPI_getbinval(tup, desc, 11, &isnull);
		row->cred_updated = isnull ? 0 : DatumGetTimestampTz(d);
		row->auth_pending = DatumGetBool(SPI_getbinval(tup, desc, 12, &isnull));
		row->pending = DatumGetInt32(SPI_getbinval(tup, desc, 13, &isnull));
		row->max_concurrency = DatumGetInt32(SPI_getbinval(tup, desc, 14, &isnull));
	}

	hash_seq_init(&seq, Cache);
	while ((cc = hash_seq_search(&seq)) != NULL)
		cc->seen = false;

	for (i = 0; i < nrows; i++)
	{
		ChannelRow *row = &rows[i];
		bool		found;
		MemoryContext old;
		char	   *error;

		cc = hash_search(Cache, &row->id, HASH_ENTER, &found);
		if (!found)
		{
			memset(((char *) cc) + sizeof(int32), 0, sizeof(ChannelCache) - sizeof(int32));
			cc->cxt = AllocSetContextCreate(SyncCxt, "omnichan channel", ALLOCSET_SMALL_SIZES);
		}
		cc->seen = true;

		/* new or changed configuration: rebuild (secrets are re-read too) */
		if (!found || strcmp(cc->settings_text, row->settings) != 0 ||
			strcmp(cc->config.kind, row->kind) != 0 || strcmp(cc->config.name, row->name) != 0)
		{
			MemoryContextReset(cc->cxt);
			old = MemoryContextSwitchTo(cc->cxt);
			cc->config.id = row->id;
			cc->config.name = pstrdup(row->name);
			cc->config.kind = pstrdup(row->kind);
			cc->config.endpoint = pstrdup(row->endpoint);
			cc->config.settings = OcJsonParse(row->settings, strlen(row->settings), &error);
			cc->settings_text = pstrdup(row->settings);
			cc->token_endpoint = OcJsonString(OcJsonGet(cc->config.settings, "token_endpoint"))
				? pstrdup(OcJsonString(OcJsonGet(cc->config.settings, "token_endpoint"))) : NULL;
			MemoryContextSwitchTo(old);
			cc->connector = ConnectorFor(row->kind);
			cc->secrets = NULL;
			cc->secrets_updated = 0;
			cc->token = NULL;	/* a new configuration may mean a new account */
			cc->token_expires = 0;
		}
		cc->active = row->active;
		cc->push_interval_ms = row->push_interval_ms;
		cc->paused = row->paused;
		cc->next_push_at = row->next_push_at;
		cc->full_resync_at = row->full_resync_at;
		cc->auth_pending = row->auth_pending;
		cc->pending = row->pending;
		cc->max_concurrency = Max(row->max_concurrency, 1);

		if (row->cred_updated == 0)
		{
			cc->secrets = NULL;
			cc->secrets_updated = 0;
		}
		else if (row->cred_updated != cc->secrets_updated)
		{
			/* new credentials: read them (file or inline) and drop the token */
			Oid			argtypes[1] = {INT4OID};
			Datum		values[1] = {Int32GetDatum(row->id)};
			char	   *text = NULL;

			ret = SPI_execute_with_args("SELECT omnichan._credentials_read($1)::text",
										1, argtypes, values, NULL, true, 1);
			if (ret == SPI_OK_SELECT && SPI_processed == 1)
				text = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			old = MemoryContextSwitchTo(cc->cxt);
			cc->secrets = text ? OcJsonParse(text, strlen(text), &error) : NULL;
			MemoryContextSwitchTo(old);
			cc->secrets_updated = row->cred_updated;
			cc->token = NULL;
			cc->token_expires = 0;
			cc->auth_retry_at = 0;
		}
	}

	/* forget deleted channels */
	hash_seq_init(&seq, Cache);
	while ((cc = hash_seq_search(&seq)) != NULL)
		if (!cc->seen)
		{
			MemoryContextDelete(cc->cxt);
			hash_search(Cache, &cc->id, HASH_REMOVE, NULL);
		}
}

/* Int8ArrayDatum: an int8[] datum */
static Datum
Int8ArrayDatum(int64 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int64GetDatum(values[i]);
	return PointerGetDatum(construct_array(d, n, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
}

/* SetChannelError: the channel's last error, for channel_status */
static void
SetChannelError(int32 channel_id, const char *error)
{
	Oid			argtypes[2] = {INT4OID, TEXTOID};
	Datum		values[2] = {Int32GetDatum(channel_id), CStringGetTextDatum(error)};
	int			ret;

	ret = SPI_execute_with_args("INSERT INTO omnichan.channel_state AS s (channel_id, last_error, last_error_at) "
								"SELECT $1, $2, pg_catalog.now() "
								" WHERE EXISTS (SELECT 1 FROM omnichan.channel c WHERE c.id = $1) "
								"ON CONFLICT (channel_id) DO UPDATE SET last_error = excluded.last_error, "
								"       last_error_at = excluded.last_error_at",
								2, argtypes, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not record a channel error: %s", SPI_result_code_string(ret));
}

/*
 * KeepRotatedSecret
 *		A token answer replaced a credential (a rotating refresh token: the
 *		one just used is no longer valid).  The new value goes into the
 *		cached secrets at once, and into omnichan.credential in this
 *		transaction (the one recording the token job), with updated_at moved
 *		and remembered so the cache is not re-read and the new token kept.
 *		Credentials kept in a file cannot be rewritten: the channel reports
 *		it (key name only) and the worker uses the new value until it
 *		restarts.  Never logs the value.
 */
static void
KeepRotatedSecret(ChannelCache *cc, const char *key, const char *value)
{
	Oid			argtypes[3] = {INT4OID, TEXTOID, TEXTOID};
	Datum		values[3];
	int			ret;
	bool		isnull;

	if (cc->secrets == NULL || key == NULL || value == NULL || *value == '\0')
		return;
	OcJsonSetString(cc->secrets, key, value);	/* the cached document */

	values[0] = Int32GetDatum(cc->id);
	values[1] = CStringGetTextDatum(key);
	values[2] = CStringGetTextDatum(value);
	ret = SPI_execute_with_args("UPDATE omnichan.credential "
								"   SET secrets = pg_catalog.jsonb_set(secrets, ARRAY[$2], pg_catalog.to_jsonb($3)), "
								"       updated_at = pg_catalog.now() "
								" WHERE channel_id = $1 AND secrets IS NOT NULL RETURNING updated_at",
								3, argtypes, values, NULL, false, 1);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not store a renewed credential: %s", SPI_result_code_string(ret));
	if (SPI_processed == 1)
		cc->secrets_updated = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0],
																SPI_tuptable->tupdesc, 1, &isnull));
	else
		SetChannelError(cc->id,
						psprintf("credentials: the marketplace renewed \"%s\" but the channel's credentials are in a file: "
								 "update the file (the worker uses the new value until it restarts)", key));
}

/*
 * InsertJob
 *		Queues a connector request as a job and marks its listings; returns
 *		the job's id.
 */
static int64
InsertJob(ChannelCache *cc, OutRequest *out, const char *payload, int64 *listing_ids, int n)
{
	StringInfoData headers;
	ListCell   *lc;
	Oid			argtypes[9] = {INT4OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, BYTEAOID, TEXTOID, INT8ARRAYOID, INT4OID};
	Datum		values[9];
	char		nulls[9] = "         ";
	bool		first = true;
	bool		isnull;
	int			ret;

	/* headers as a JSON object (names and values are ours, not secrets) */
	initStringInfo(&headers);
	appendStringInfoChar(&headers, '{');
	foreach(lc, out->headers)
	{
		char	   *h = (char *) lfirst(lc);
		char	   *colon = strchr(h, ':');
		char	   *name;
		char	   *value;

		if (colon == NULL)
			continue;
		name = pnstrdup(h, colon - h);
		value = colon + 1;
		while (*value == ' ')
			value++;
		if (!first)
			appendStringInfoChar(&headers, ',');
		escape_json(&headers, name);
		appendStringInfoChar(&headers, ':');
		escape_json(&headers, value);
		first = false;
	}
	appendStringInfoChar(&headers, '}');

	values[0] = Int32GetDatum(cc->id);
	values[1] = CStringGetTextDatum(out->operation);
	values[2] = CStringGetTextDatum(out->method);
	values[3] = CStringGetTextDatum(out->url);
	values[4] = CStringGetTextDatum(headers.data);
	if (out->body != NULL)
		values[5] = PointerGetDatum(cstring_to_text_with_len(out->body, (int) out->body_len));
	else
		nulls[5] = 'n';
	if (payload != NULL)
		values[6] = CStringGetTextDatum(payload);
	else
		nulls[6] = 'n';
	values[7] = Int8ArrayDatum(listing_ids, n);
	values[8] = Int32GetDatum(out->delay_ms);

	if (InsertJobPlan == NULL)
		InsertJobPlan = KeepSyncPlan("WITH j AS ("
									 "  INSERT INTO omnichan.job (channel_id, operation, method, url, headers, body, payload, not_before) "
									 "  VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, "
									 "          pg_catalog.now() + pg_catalog.make_interval(secs => $9 / 1000.0)) RETURNING id), "
									 "l AS (UPDATE omnichan.listing l SET push_job_id = j.id FROM j "
									 "       WHERE l.id = ANY ($8)) "
									 "SELECT id FROM j",
									 9, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	ret = SPI_execute_plan(InsertJobPlan, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not queue a request: %s", SPI_result_code_string(ret));
	cc->pending++;
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * SyncQueueJob
 *		A connector request of a channel (not a push of listings) as a job.
 */
int64
SyncQueueJob(int32 channel_id, OutRequest *out, const char *payload)
{
	ChannelCache *cc = CacheLookup(channel_id);

	if (cc == NULL)
		elog(ERROR, "channel %d is not known to the sync worker", channel_id);
	return InsertJob(cc, out, payload, NULL, 0);
}

/*
 * SyncChannel
 *		A channel's connector and configuration, for the order pull.
 */
const Connector *
SyncChannel(int32 channel_id, ChannelConfig **config)
{
	ChannelCache *cc = CacheLookup(channel_id);

	if (cc == NULL || !cc->seen || !cc->active || cc->paused || cc->connector == NULL)
		return NULL;
	*config = &cc->config;
	return cc->connector;
}

/* SyncSetChannelError: exported SetChannelError */
void
SyncSetChannelError(int32 channel_id, const char *error)
{
	SetChannelError(channel_id, error);
}

/*
 * StartResyncProgress
 *		The first cycle of a full resync: its progress row (once per request,
 *		also across worker restarts), closing the row of an older request
 *		that was still running (replaced: finished with done as reached).
 */
static void
StartResyncProgress(ChannelCache *cc)
{
	Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	int			ret;

	values[0] = Int32GetDatum(cc->id);
	values[1] = TimestampTzGetDatum(cc->full_resync_at);
	if (ResyncStartPlan == NULL)
		ResyncStartPlan = KeepSyncPlan("WITH closed AS ("
									   "  UPDATE omnichan.long_operation p SET finished_at = pg_catalog.now(), updated_at = pg_catalog.now() "
									   "   WHERE p.channel_id = $1 AND p.operation = 'full_resync' AND p.finished_at IS NULL "
									   "     AND p.started_at <> $2) "
									   "INSERT INTO omnichan.long_operation (channel_id, operation, total, started_at, updated_at) "
									   "SELECT $1, 'full_resync', "
									   "       (SELECT pg_catalog.count(*) FROM omnichan.listing l "
									   "         WHERE l.channel_id = $1 AND l.target_qty IS NOT NULL), $2, pg_catalog.now() "
									   " WHERE NOT EXISTS (SELECT 1 FROM omnichan.long_operation p WHERE p.channel_id = $1 "
									   "                      AND p.operation = 'full_resync' AND p.started_at = $2)",
									   2, argtypes, 0);
	ret = SPI_execute_plan(ResyncStartPlan, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not record a full resync's progress: %s", SPI_result_code_string(ret));
	cc->progress_for = cc->full_resync_at;
}

/*
 * FinishResyncIfDone
 *		Ends the channel's full resync when every listing with a target is
 *		resolved for it: the request is cleared (unless a newer one replaced
 *		it meanwhile) and the progress row finished.
 */
static bool
FinishResyncIfDone(ChannelCache *cc)
{
	Oid			argtypes[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2];
	int			ret;

	values[0] = Int32GetDatum(cc->id);
	values[1] = TimestampTzGetDatum(cc->full_resync_at);
	if (ResyncLeftPlan == NULL)
		ResyncLeftPlan = KeepSyncPlan("SELECT 1 FROM omnichan.listing l "
									  " WHERE l.channel_id = $1 AND l.target_qty IS NOT NULL "
									  "   AND NOT " RESOLVED_SINCE_2 " LIMIT 1",
									  2, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	ret = SPI_execute_plan(ResyncLeftPlan, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not check a full resync: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		return false;

	if (ResyncEndPlan == NULL)
		ResyncEndPlan = KeepSyncPlan("WITH fin AS ("
									 "  UPDATE omnichan.long_operation p SET done = p.total, finished_at = pg_catalog.now(), "
									 "         updated_at = pg_catalog.now() "
									 "   WHERE p.channel_id = $1 AND p.operation = 'full_resync' AND p.started_at = $2 "
									 "     AND p.finished_at IS NULL) "
									 "UPDATE omnichan.channel_state s SET full_resync_requested_at = NULL "
									 " WHERE s.channel_id = $1 AND s.full_resync_requested_at = $2",
									 2, argtypes, 0);
	ret = SPI_execute_plan(ResyncEndPlan, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not finish a full resync: %s", SPI_result_code_string(ret));
	cc->full_resync_at = 0;
	return true;
}

/*
 * QueuePushes
 *		Queues the due pushes of one channel.
 *
 * Queue depth: a channel whose jobs queued or running already number
 * QUEUE_LOW_FACTOR x its max_concurrency is not refilled (the jobs it has
 * keep its connections busy; the completion of one of them brings the
 * worker back once the queue is below that); otherwise it gets up to
 * QUEUE_HIGH_FACTOR x max_concurrency jobs (at most MAX_JOBS_PER_CYCLE in
 * one cycle).  A change is never kept waiting by this: while the queue is
 * that deep, a newly queued job would wait behind it anyway.
 *
 * Listings due: those whose target differs from what the marketplace last
 * accepted (listing_push_due_idx), and during a full resync the others not
 * resolved for it yet.  These are read in id order from a cursor kept per
 * channel (l.id > the last one queued), so a cycle reads what it queues,
 * not the listings already pushed; a pass ends when nothing is left past
 * the cursor.  Listings a pass skipped (in flight, locked, waiting for
 * their retry_at) are picked up by a sweep, a new pass from the first id:
 * at once when the channel's jobs are all done, else after SWEEP_MIN_MS,
 * doubling up to SWEEP_MAX_MS while sweeps find nothing.  The resync is
 * over when a pass queued nothing and no listing is left unresolved.
 *
 * A connector with a push_group (listings replaced together, e.g. the
 * variations of one Etsy listing) gets the due listings ordered by group,
 * never a group that already has a push in flight, and one job per group
 * (at most push_batch of its listings: the others wait for that job).
 *
 * Coalescing on real-time channels (push_interval 0): a listing has at most
 * one push in flight, and one the marketplace accepted less than
 * omnichan.realtime_coalesce ago is not pushed again before that much time
 * has passed since (its pushed_at); the worker comes back when the first
 * such listing's window is over.  So the first change after a
 * quiet spell is pushed at once, and a burst of changes to one product
 * gives one push per window, the last carrying the final quantity, instead
 * of one push per commit.  (Without the window every commit of a burst
 * found the previous push already accepted and made a push of its own:
 * 20 commits 15 ms apart gave 20 calls for one inventory item.)  Channels
 * on a cadence are not held: they push at most once per push_interval.
 * Held listings are read with the due ones, in the same scan of
 * listing_push_due_idx, and left out here (DropHeld): a query of their own
 * for the end of the first window chose a sequential scan of the listing
 * table whenever its statistics dated from a resync (most listings due),
 * ~11 ms on every cycle of a busy real-time channel of 100k listings.
 */
static void
QueuePushes(ChannelCache *cc, TimestampTz now, TimestampTz *next_due)
{
	const Connector *conn = cc->connector;
	int			batch = conn->push_batch;
	int			low = QUEUE_LOW_FACTOR * cc->max_concurrency;
	int			room;
	int64		limit;
	int64		window = (cc->push_interval_ms <= 0) ? omnichan_realtime_coalesce : 0;
	Oid			argtypes[5];
	Datum		values[5];
	HeapTuple  *tups = NULL;
	TupleDesc	desc = NULL;
	uint64		nrows = 0,
				nchanged = 0,
				nresync = 0,
				start;
	int			ret;
	int			jobs = 0;
	bool		more = false;	/* rows left for the next cycle */
	bool		resync = (cc->full_resync_at != 0);
	bool		ended_empty = false;	/* a pass ended having queued nothing */
	TimestampTz held_since = 0; /* the earliest pushed_at of a held listing */

	if (resync && cc->progress_for != cc->full_resync_at)
		StartResyncProgress(cc);
	if (resync && cc->cursor_for != cc->full_resync_at)
	{
		cc->cursor_for = cc->full_resync_at;
		cc->cursor = 0;
		cc->pass_done = false;
		cc->pass_queued = 0;
		cc->sweep_on_drain = false;
		cc->sweep_ms = SWEEP_MIN_MS;
	}

	/* enough queued: the completion of its jobs brings the worker back */
	if (cc->pending >= low)
		return;

	room = Min(MAX_JOBS_PER_CYCLE, QUEUE_HIGH_FACTOR * cc->max_concurrency - cc->pending);
	room = Max(room, 1);
	limit = (int64) batch * room;

	values[0] = Int32GetDatum(cc->id);
	if (conn->push_group == NULL)
	{
		/* 1. changed listings (the partial index) */
		argtypes[0] = INT4OID;
		argtypes[1] = INT8OID;
		argtypes[2] = INT8OID;
		values[1] = Int64GetDatum(limit);
		values[2] = Int64GetDatum(window);
		if (DuePlan == NULL)
			DuePlan = KeepSyncPlan("SELECT l.id, l.sku, l.external::text, l.target_qty, " HELD_SINCE(3)
								   "  FROM omnichan.listing l "
								   " WHERE l.channel_id = $1 AND l.push_due "
								   "   AND l.target_qty IS NOT NULL "
								   "   AND (l.retry_at IS NULL OR l.retry_at <= pg_catalog.now()) "
								   " ORDER BY l.id LIMIT $2 FOR UPDATE SKIP LOCKED",
								   3, argtypes, CURSOR_OPT_CUSTOM_PLAN);
		ret = SPI_execute_plan(DuePlan, values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the listings to push: %s", SPI_result_code_string(ret));
		desc = SPI_tuptable->tupdesc;
		tups = palloc(sizeof(HeapTuple) * (limit + 1));
		memcpy(tups, SPI_tuptable->vals, sizeof(HeapTuple) * SPI_processed);
		nchanged = DropHeld(tups, SPI_processed, desc, 5, window, &held_since);
		/* the limit was reached with held listings in it: more may be due */
		if (SPI_processed == (uint64) limit && nchanged < (uint64) limit)
			more = (nchanged > 0);
		nrows = nchanged;

		/*
		 * 2. a full resync's other listings past the cursor; a sweep starts
		 * a new pass from the first id
		 */
		if (resync && cc->pass_done && nrows < (uint64) limit &&
			((cc->pending == 0 && cc->sweep_on_drain) ||
			 now >= TimestampTzPlusMilliseconds(cc->pass_done_at, cc->sweep_ms)))
		{
			cc->cursor = 0;
			cc->pass_done = false;
			cc->pass_queued = 0;
			cc->sweep_on_drain = false;
		}
		if (resync && !cc->pass_done && nrows < (uint64) limit)
		{
			argtypes[1] = TIMESTAMPTZOID;
			argtypes[2] = INT8OID;
			argtypes[3] = INT8OID;
			values[1] = TimestampTzGetDatum(cc->full_resync_at);
			values[2] = Int64GetDatum(cc->cursor);
			values[3] = Int64GetDatum(limit - (int64) nrows);
			/* custom plans: the cursor and the limit decide the best one */
			if (ResyncPlan == NULL)
				ResyncPlan = KeepSyncPlan("SELECT l.id, l.sku, l.external::text, l.target_qty "
										  "  FROM omnichan.listing l "
										  " WHERE l.channel_id = $1 AND l.id > $3 AND l.push_job_id IS NULL "
										  "   AND l.target_qty IS NOT NULL "
										  "   AND l.target_qty IS NOT DISTINCT FROM l.pushed_qty "
										  "   AND NOT " RESOLVED_SINCE_2
										  "   AND (l.retry_at IS NULL OR l.retry_at <= pg_catalog.now()) "
										  " ORDER BY l.id LIMIT $4 FOR UPDATE SKIP LOCKED",
										  4, argtypes, CURSOR_OPT_CUSTOM_PLAN);
			ret = SPI_execute_plan(ResyncPlan, values, NULL, false, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "could not read the listings to push: %s", SPI_result_code_string(ret));
			nresync = SPI_processed;
			if (nresync > 0)
			{
				bool		isnull;

				memcpy(tups + nrows, SPI_tuptable->vals, sizeof(HeapTuple) * nresync);
				nrows += nresync;
				cc->cursor = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[nresync - 1],
														 SPI_tuptable->tupdesc, 1, &isnull));
				cc->pass_queued += nresync;
			}
			if (nrows < (uint64) limit)
			{
				/* nothing left past the cursor: the pass is over */
				cc->pass_done = true;
				cc->pass_done_at = now;
				cc->sweep_on_drain = (cc->pass_queued > 0 || cc->pending > 0);
				if (cc->pass_queued > 0)
					cc->sweep_ms = SWEEP_MIN_MS;
				else
				{
					cc->sweep_ms = Min(cc->sweep_ms * 2, SWEEP_MAX_MS);
					ended_empty = true;
				}
			}
		}
	}
	else
	{
		argtypes[0] = INT4OID;
		argtypes[1] = TIMESTAMPTZOID;
		argtypes[2] = INT8OID;
		argtypes[3] = TEXTOID;
		argtypes[4] = INT8OID;
		if (resync)
			values[1] = TimestampTzGetDatum(cc->full_resync_at);
		values[2] = Int64GetDatum(limit);
		values[3] = CStringGetTextDatum(conn->push_group);
		values[4] = Int64GetDatum(window);
		/*
		 * Custom plans: without a resync ($2 null) the partial index serves.
		 * The groups with a push in flight are read once, as a set the
		 * NOT IN probes by hash: as a correlated NOT EXISTS they were
		 * rescanned for every candidate listing (a nested loop over the
		 * channel's listings squared: 345 ms per cycle with 3,000 Etsy
		 * listings, 91 listings/s).
		 */
		if (GroupPlan == NULL)
			GroupPlan = KeepSyncPlan("WITH busy AS MATERIALIZED ("
									 "  SELECT DISTINCT COALESCE(o.external ->> $4, '') AS grp "
									 "    FROM omnichan.listing o "
									 "   WHERE o.channel_id = $1 AND o.push_job_id IS NOT NULL) "
									 "SELECT l.id, l.sku, l.external::text, l.target_qty, "
									 "       COALESCE(l.external ->> $4, ''), " HELD_SINCE(5)
									 "  FROM omnichan.listing l "
									 " WHERE l.channel_id = $1 AND l.push_job_id IS NULL AND l.target_qty IS NOT NULL "
									 "   AND (l.push_due "
									 "        OR ($2::timestamptz IS NOT NULL AND NOT " RESOLVED_SINCE_2 ")) "
									 "   AND (l.retry_at IS NULL OR l.retry_at <= pg_catalog.now()) "
									 "   AND COALESCE(l.external ->> $4, '') NOT IN (SELECT busy.grp FROM busy) "
									 " ORDER BY COALESCE(l.external ->> $4, ''), l.id LIMIT $3 FOR UPDATE OF l SKIP LOCKED",
									 5, argtypes, CURSOR_OPT_CUSTOM_PLAN);
		ret = SPI_execute_plan(GroupPlan, values, resync ? "     " : " n   ", false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not read the listings to push: %s", SPI_result_code_string(ret));
		desc = SPI_tuptable->tupdesc;
		tups = SPI_tuptable->vals;
		nrows = DropHeld(tups, SPI_processed, desc, 6, window, &held_since);
		if (SPI_processed == (uint64) limit && nrows < (uint64) limit)
			more = (nrows > 0);
	}

	for (start = 0; start < nrows;)
	{
		int			n = (int) Min((uint64) batch, nrows - start);
		uint64		next = start + n;
		PushItem   *items;
		int64	   *ids;
		OutRequest	out;
		OcJson	   *payload = OcJsonNewObject();
		OcJson	   *plist = OcJsonSetArray(payload, "items");
		int			i;

		if (conn->push_group != NULL)
		{
			char	   *group = SPI_getvalue(tups[start], desc, 5);

			if (jobs >= room)
			{
				more = true;
				break;
			}
			/* this group's listings; the ones beyond push_batch wait */
			for (n = 1; start + n < nrows && n < batch; n++)
				if (strcmp(SPI_getvalue(tups[start + n], desc, 5), group) != 0)
					break;
			for (next = start + n; next < nrows; next++)
				if (strcmp(SPI_getvalue(tups[next], desc, 5), group) != 0)
					break;
			if (next > start + n)
				more = true;
		}
		items = palloc0(sizeof(PushItem) * n);
		ids = palloc(sizeof(int64) * n);

		for (i = 0; i < n; i++)
		{
			HeapTuple	tup = tups[start + i];
			bool		isnull;
			char	   *ext = SPI_getvalue(tup, desc, 3);
			char	   *error;
			OcJson	   *p;

			items[i].listing_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
			items[i].sku = SPI_getvalue(tup, desc, 2);
			items[i].external = OcJsonParse(ext, strlen(ext), &error);
			items[i].quantity = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));
			ids[i] = items[i].listing_id;
			p = OcJsonAppendObject(plist);
			OcJsonSetInt(p, "listing_id", items[i].listing_id);
			OcJsonSetString(p, "sku", items[i].sku);
			OcJsonSetCopy(p, "external", items[i].external);
			OcJsonSetInt(p, "qty", items[i].quantity);
		}
		memset(&out, 0, sizeof(out));
		conn->build_push(&cc->config, items, n, &out);
		InsertJob(cc, &out, OcJsonDump(payload), ids, n);
		jobs++;
		start = next;
	}

	/*
	 * A full resync is over when a pass queued nothing, nothing changed was
	 * queued either, and no listing is left unresolved (in flight or
	 * waiting for its retry).
	 */
	if (resync && conn->push_group == NULL && nrows == 0 && ended_empty)
		(void) FinishResyncIfDone(cc);
	else if (resync && conn->push_group != NULL && nrows == 0 && !more)
		(void) FinishResyncIfDone(cc);

	/* the queue drained after a large push: fresh statistics for the next */
	if (nrows == 0 && !more && cc->pending == 0 && held_since == 0 &&
		ResultsSinceAnalyze >= ANALYZE_AFTER_RESULTS)
		AnalyzeListings();

	/* the schedule: real-time channels only record their pushes */
	if (jobs > 0 || cc->next_push_at == 0 ||
		(cc->push_interval_ms > 0 && now >= cc->next_push_at))
	{
		Oid			types[3] = {INT4OID, INT8OID, BOOLOID};
		Datum		vals[3];

		vals[0] = Int32GetDatum(cc->id);
		vals[1] = Int64GetDatum(cc->push_interval_ms);
		vals[2] = BoolGetDatum(jobs > 0);
		if (SchedulePlan == NULL)
			SchedulePlan = KeepSyncPlan("INSERT INTO omnichan.channel_state AS s (channel_id, next_push_at, last_push_at) "
										"VALUES ($1, pg_catalog.now() + pg_catalog.make_interval(secs => $2 / 1000.0), "
										"        CASE WHEN $3 THEN pg_catalog.now() END) "
										"ON CONFLICT (channel_id) DO UPDATE SET "
										"  next_push_at = excluded.next_push_at, "
										"  last_push_at = COALESCE(excluded.last_push_at, s.last_push_at)",
										3, types, CURSOR_OPT_GENERIC_PLAN);
		ret = SPI_execute_plan(SchedulePlan, vals, NULL, false, 0);
		if (ret < 0)
			elog(ERROR, "could not update the channel's schedule: %s", SPI_result_code_string(ret));
		cc->next_push_at = TimestampTzPlusMilliseconds(now, cc->push_interval_ms);
	}
	if (cc->push_interval_ms > 0 && (*next_due == 0 || cc->next_push_at < *next_due))
		*next_due = cc->next_push_at;

	/* more to queue and room left: come back at once */
	if ((nrows == (uint64) limit || more) && cc->pending < low)
		*next_due = now;
	else if (held_since != 0)
	{
		/* listings held by the coalescing window: when the first is free */
		TimestampTz held_until = TimestampTzPlusMilliseconds(held_since, window);

		if (*next_due == 0 || held_until < *next_due)
			*next_due = held_until;
	}
	/* a full resync's next sweep */
	if (cc->full_resync_at != 0 && conn->push_group == NULL && cc->pass_done)
	{
		TimestampTz sweep = TimestampTzPlusMilliseconds(cc->pass_done_at, cc->sweep_ms);

		if (*next_due == 0 || sweep < *next_due)
			*next_due = sweep;
	}
}

/*
 * RefreshTargets
 *		omnichan.refresh_targets() of the worker: claims up to max_products
 *		dirty products (dirty_claim), updates their listings' target
 *		quantities from allocate_bulk(), acknowledges the claim; returns the
 *		number of products claimed.
 *
 * Done here with the worker's prepared statements rather than by calling
 * the SQL function: there, allocate_bulk()'s row estimate (70 000) makes
 * the UPDATE hash the channel's every listing even for one dirty product
 * (~50 ms with 100k listings, the bulk of a real-time push's latency);
 * here the listings are reached through listing_product_idx.
 */
static int
RefreshTargets(int max_products)
{
	Oid			argtypes[1];
	Datum		values[1];
	Datum		claim_id;
	Datum		pids;
	bool		everything;
	bool		isnull;
	int			nproducts;
	int			ret;

	argtypes[0] = INT4OID;
	values[0] = Int32GetDatum(max_products);
	if (ClaimDirtyPlan == NULL)
		ClaimDirtyPlan = KeepSyncPlan("SELECT min(c.claim_id::text)::uuid, pg_catalog.array_agg(c.product_id), "
									  "       COALESCE(pg_catalog.bool_or(c.product_id = 0), false) "
									  "  FROM omnichan.dirty_claim($1, '10 minutes') c",
									  1, argtypes, CURSOR_OPT_GENERIC_PLAN);
	ret = SPI_execute_plan(ClaimDirtyPlan, values, NULL, false, 1);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not claim dirty products: %s", SPI_result_code_string(ret));
	claim_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		return 0;
	pids = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	everything = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	nproducts = ArrayGetNItems(ARR_NDIM(DatumGetArrayTypeP(pids)), ARR_DIMS(DatumGetArrayTypeP(pids)));

	argtypes[0] = INT4ARRAYOID;
	values[0] = pids;
	if (everything)
	{
		if (TargetsAllPlan == NULL)
			TargetsAllPlan = KeepSyncPlan("UPDATE omnichan.listing l SET target_qty = a.quantity, target_at = pg_catalog.now() "
										  "  FROM omnichan.allocate_bulk(NULL) a "
										  " WHERE l.product_id = a.product_id AND l.channel_id = a.channel_id "
										  "   AND l.target_qty IS DISTINCT FROM a.quantity",
										  0, NULL, CURSOR_OPT_GENERIC_PLAN);
		ret = SPI_execute_plan(TargetsAllPlan, NULL, NULL, false, 0);
	}
	else
	{
		if (TargetsPlan == NULL)
			TargetsPlan = KeepSyncPlan("UPDATE omnichan.listing l SET target_qty = a.quantity, target_at = pg_catalog.now() "
									   "  FROM omnichan.allocate_bulk(ARRAY(SELECT DISTINCT li.product_id FROM omnichan.listing li "
									   "                                     WHERE li.product_id = ANY ($1))) a "
									   " WHERE l.product_id = ANY ($1) "
									   "   AND l.product_id = a.product_id AND l.channel_id = a.channel_id "
									   "   AND l.target_qty IS DISTINCT FROM a.quantity",
									   1, argtypes, CURSOR_OPT_CUSTOM_PLAN);
		ret = SPI_execute_plan(TargetsPlan, values, NULL, false, 0);
	}
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not refresh listing targets: %s", SPI_result_code_string(ret));

	argtypes[0] = UUIDOID;
	values[0] = claim_id;
	if (AckDirtyPlan == NULL)
		AckDirtyPlan = KeepSyncPlan("SELECT omnichan.dirty_ack($1)", 1, argtypes, CURSOR_OPT_GENERIC_PLAN);
	ret = SPI_execute_plan(AckDirtyPlan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not acknowledge dirty products: %s", SPI_result_code_string(ret));
	return nproducts;
}

/*
 * TargetsWanted
 *		Whether this push cycle recomputes the targets of dirty products now.
 *
 * Yes when a real-time channel or a channel whose push is due (or that
 * resyncs) could push them, or when the last recomputation that found dirty
 * products is omnichan.target_refresh_delay old (the first change after a
 * quiet spell is taken at once).  Otherwise stock changes wait: a burst
 * of orders moves the same products at every page stored and every batch
 * materialized, and one recomputation for all of them is enough for
 * channels that push on a cadence.
 */
static bool
TargetsWanted(TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	ChannelCache *cc;

	if (omnichan_target_refresh_delay <= 0 ||
		now >= TimestampTzPlusMilliseconds(LastTargetsAt, omnichan_target_refresh_delay))
		return true;
	hash_seq_init(&seq, Cache);
	while ((cc = hash_seq_search(&seq)) != NULL)
	{
		if (!cc->seen || !cc->active || cc->paused || cc->connector == NULL)
			continue;
		if (cc->push_interval_ms <= 0 || cc->next_push_at == 0 || now >= cc->next_push_at ||
			cc->full_resync_at != 0)
		{
			hash_seq_term(&seq);
			return true;
		}
	}
	return false;
}

/*
 * SyncPushCycle
 *		Targets, then due pushes.
 */
void
SyncPushCycle(TimestampTz *next_due)
{
	HASH_SEQ_STATUS seq;
	ChannelCache *cc;
	TimestampTz now = GetCurrentTimestamp();
	int			round;
	int			nest;

	*next_due = 0;

	/*
	 * 1. targets, in bounded batches (RefreshTargets).  Under
	 * plan_cache_mode = force_custom_plan, for these calls only: the worker's
	 * session lives long, and a generic plan that dirty_claim()'s statements
	 * cached while the dirty set was small (its UPDATE ... FROM pick as a
	 * nested loop over the picked rows) is quadratic once 100k products are
	 * dirty.
	 */
	RefreshCache();
	if (TargetsWanted(now))
	{
		nest = PlannerSettingPush("plan_cache_mode", "force_custom_plan");
		for (round = 0; round < 4; round++)
		{
			if (RefreshTargets(REFRESH_BATCH) == 0)
				break;
			/* a change after a quiet spell is taken at once, the next wait */
			LastTargetsAt = now;
			if (round == 3)
				*next_due = now;	/* still dirty: come back at once */
		}
		AtEOXact_GUC(true, nest);
	}
	else
	{
		TimestampTz due = TimestampTzPlusMilliseconds(LastTargetsAt, omnichan_target_refresh_delay);

		if (*next_due == 0 || due < *next_due)
			*next_due = due;
	}

	/* 2. pushes of the channels that are due */
	hash_seq_init(&seq, Cache);
	while ((cc = hash_seq_search(&seq)) != NULL)
	{
		if (!cc->seen || !cc->active || cc->paused || cc->connector == NULL)
			continue;
		if (cc->push_interval_ms > 0 && cc->next_push_at != 0 && now < cc->next_push_at &&
			cc->full_resync_at == 0)
		{
			if (*next_due == 0 || cc->next_push_at < *next_due)
				*next_due = cc->next_push_at;
			continue;
		}
		QueuePushes(cc, now, next_due);
	}

	/* 3. order pulls, fetches and cancellation reports */
	PullCycle(now, next_due);
}

/*
 * SyncChannelReady
 *		Jobs of a channel wait for its access token; ask for one if needed.
 */
bool
SyncChannelReady(int32 channel_id, const char *operation, TimestampTz now)
{
	ChannelCache *cc = CacheLookup(channel_id);

	if (cc == NULL || cc->connector == NULL)
		return true;
	if (cc->secrets == NULL)
		return strcmp(operation, "auth") != 0 && !cc->connector->needs_token;
	if (!cc->connector->needs_token || strcmp(operation, "auth") == 0)
		return true;
	if (cc->token != NULL && now < cc->token_expires - TOKEN_MARGIN_S * USECS_PER_SEC)
		return true;

	/* no valid token: queue its request, unless one is on its way */
	if (!cc->auth_pending && now >= cc->auth_retry_at)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};
		Datum		values[2];
		int			ret;

		if (cc->token_endpoint == NULL)
		{
			SetChannelError(channel_id, "credentials: the channel has no token endpoint");
			cc->auth_retry_at = now + AUTH_RETRY_S * USECS_PER_SEC;
			return false;
		}
		values[0] = Int32GetDatum(channel_id);
		values[1] = CStringGetTextDatum(cc->token_endpoint);
		ret = SPI_execute_with_args("INSERT INTO omnichan.job (channel_id, operation, method, url, max_attempts) "
									"VALUES ($1, 'auth', 'POST', $2, 4)",
									2, argtypes, values, NULL, false, 0);
		if (ret != SPI_OK_INSERT)
			elog(ERROR, "could not queue a token request: %s", SPI_result_code_string(ret));
		cc->auth_pending = true;
	}
	return false;
}

/*
 * SyncPrepare
 *		Credentials, tokens and signatures, at send time only.
 */
bool
SyncPrepare(HttpRequest *req)
{
	ChannelCache *cc = CacheLookup(req->channel_id);
	MemoryContext old = CurrentMemoryContext;
	volatile bool ok = true;

	/*
	 * Plain requests (omnichan.http_enqueue: no payload) are sent as queued,
	 * without the connector's authentication.
	 */
	if (req->channel_id == 0 || cc == NULL || cc->connector == NULL ||
		(req->payload == NULL && strcmp(req->operation, "auth") != 0))
		return true;
	if (cc->secrets == NULL && (cc->connector->needs_token || strcmp(req->operation, "auth") == 0))
	{
		req->error = MemoryContextStrdup(req->cxt, "credentials: none are set for the channel");
		req->permanent = true;
		req->done = true;
		return false;
	}
	PG_TRY();
	{
		if (strcmp(req->operation, "auth") == 0)
			cc->connector->build_token(&cc->config, cc->secrets, req);
		else if (cc->connector->authorize != NULL)
		{
			cc->connector->authorize(&cc->config, cc->secrets, cc->token, req);
			req->token_obtained_at = cc->token_obtained;
		}
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		req->error = MemoryContextStrdup(req->cxt, psprintf("credentials: %s", edata->message));
		req->permanent = true;
		req->done = true;
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}

/*
 * SyncRetryAfterAuthFailure
 *		A 401/403 on a request sent with an access token: the token may have
 *		expired or been revoked.  Drop it (the next claim asks for another)
 *		and retry the job once; a second refusal is a credentials problem.
 */
bool
SyncRetryAfterAuthFailure(HttpRequest *req)
{
	ChannelCache *cc = CacheLookup(req->channel_id);

	if (cc == NULL || cc->connector == NULL || !cc->connector->needs_token ||
		(req->status != 401 && req->status != 403) || strcmp(req->operation, "auth") == 0 ||
		req->token_obtained_at == 0)
		return false;
	if (cc->token_obtained == req->token_obtained_at)
	{
		cc->token = NULL;
		cc->token_expires = 0;
	}
	return req->attempt < 2;
}

/*
 * SyncThrottled
 *		A 2xx answer the connector recognizes as a throttle: seconds to wait
 *		before retrying, or a negative number.
 */
double
SyncThrottled(HttpRequest *req)
{
	ChannelCache *cc = CacheLookup(req->channel_id);

	if (cc == NULL || cc->connector == NULL || cc->connector->throttled == NULL ||
		req->payload == NULL ||
		req->error != NULL || req->status < 200 || req->status >= 300)
		return -1;
	return cc->connector->throttled(&cc->config, req);
}

/*
 * SyncComplete
 *		The outcome of a connector job: a token, or per-listing results.
 */
void
SyncComplete(HttpRequest *req, const char *state, const char *error)
{
	ChannelCache *cc = CacheLookup(req->channel_id);
	PushItem   *items;
	OcJson	   *payload;
	OcJson	   *plist;
	char	   *perr;
	int			n,
				i;
	int64		owner = req->job_id;	/* the job the listings are marked with */

	if (cc == NULL || cc->connector == NULL || strcmp(state, "queued") == 0)
		return;
	if (cc->pending > 0)
		cc->pending--;			/* the job is over (a next step counts anew) */

	/* order pulls and cancellation reports */
	if (strcmp(req->operation, "auth") != 0 &&
		PullComplete(cc->connector, &cc->config, req, state, error))
		return;

	if (strcmp(req->operation, "auth") == 0)
	{
		char	   *token = NULL;
		int			expires_in = 0;
		char	   *why = NULL;

		cc->auth_pending = false;
		if (strcmp(state, "succeeded") == 0 &&
			cc->connector->parse_token(req, &token, &expires_in, &why))
		{
			TimestampTz now = GetCurrentTimestamp();

			cc->token = MemoryContextStrdup(cc->cxt, token);
			cc->token_obtained = now;
			cc->token_expires = now + (TimestampTz) expires_in * USECS_PER_SEC;
			if (cc->connector->rotated_secret != NULL)
			{
				const char *key = NULL;
				char	   *value = NULL;

				if (cc->connector->rotated_secret(req, &key, &value))
					KeepRotatedSecret(cc, key, value);
			}
			return;
		}
		cc->auth_retry_at = GetCurrentTimestamp() + AUTH_RETRY_S * USECS_PER_SEC;
		SetChannelError(req->channel_id,
						psprintf("credentials: could not get an access token: %s",
								 why ? why : (error ? error : "no answer")));
		return;
	}

	/*
	 * A push job: "stock_push", or a later step of a multi-step push, whose
	 * operation may be named after the marketplace operation it calls (its
	 * own rate limit); the listings are in the payload either way.
	 */
	if (req->payload == NULL)
		return;

	payload = OcJsonParse(req->payload, strlen(req->payload), &perr);
	plist = OcJsonGet(payload, "items");
	n = OcJsonLength(plist);
	if (n <= 0)
		return;
	items = palloc0(sizeof(PushItem) * n);
	for (i = 0; i < n; i++)
	{
		OcJson	   *p = OcJsonAt(plist, i);
		int64		v = 0;

		(void) OcJsonInt(OcJsonGet(p, "listing_id"), &v);
		items[i].listing_id = v;
		items[i].sku = (char *) OcJsonString(OcJsonGet(p, "sku"));
		if (items[i].sku == NULL)
			items[i].sku = "";
		items[i].external = OcJsonGet(p, "external");
		(void) OcJsonInt(OcJsonGet(p, "qty"), &v);
		items[i].quantity = (int32) v;
	}

	/*
	 * The listings stay marked with the first job of a multi-step push
	 * ("origin_job" in the later steps' payload): a step does not rewrite
	 * every listing of the batch (a Walmart feed polled page by page would
	 * update its 500 listings a dozen times).
	 */
	(void) OcJsonInt(OcJsonGet(payload, "origin_job"), &owner);

	if (strcmp(state, "succeeded") == 0 && cc->connector->next_step != NULL)
	{
		OutRequest	next;

		memset(&next, 0, sizeof(next));
		if (cc->connector->next_step(&cc->config, req, payload, items, n, &next))
		{
			if (OcJsonGet(payload, "origin_job") == NULL)
				OcJsonSetInt(payload, "origin_job", owner);
			InsertJob(cc, &next, OcJsonDump(payload), NULL, 0);
			return;
		}
	}

	if (strcmp(state, "succeeded") == 0)
	{
		cc->connector->parse_push(&cc->config, req, items, n);
		for (i = 0; i < n; i++)
			if (!items[i].ok && items[i].error == NULL)
			{
				items[i].error = "the marketplace did not report on this item";
				items[i].error_class = ITEM_ERROR_RETRY;
			}

		/*
		 * Credentials refused inside a 2xx answer (an envelope code, as IOP
		 * and TikTok report bad signatures): the channel's error too.
		 */
		for (i = 0; i < n; i++)
			if (!items[i].ok && items[i].error_class == ITEM_ERROR_CREDENTIALS)
			{
				SetChannelError(req->channel_id, psprintf("credentials: %s", items[i].error));
				break;
			}
	}
	else
	{
		ItemErrorClass cls = (req->status == 401 || req->status == 403) ? ITEM_ERROR_CREDENTIALS
			: (req->status >= 400 && req->status < 500 && req->status != 429) ? ITEM_ERROR_FIX
			: ITEM_ERROR_RETRY;

		/* the request as a whole failed: the marketplace's message if any */
		if (req->status >= 400 && cc->connector->parse_push != NULL)
			cc->connector->parse_push(&cc->config, req, items, n);
		for (i = 0; i < n; i++)
		{
			items[i].ok = false;
			if (items[i].error == NULL)
			{
				items[i].error = pstrdup(error ? error : "request failed");
				items[i].error_class = cls;
			}
		}
	}

	/* the listings' results: with the other jobs' of this transaction */
	if (Results != NULL)
		ResultsAdd(owner, cc, items, n);
	else
	{
		SyncCompleteBegin();
		ResultsAdd(owner, cc, items, n);
		SyncCompleteFlush();
	}
}

/*
 * SyncCompleteBegin
 *		Opens the batch of per-listing results of an outcome transaction
 *		(in the current memory context, gone with the transaction).
 */
void
SyncCompleteBegin(void)
{
	Results = palloc0(sizeof(ResultBatch));
	Results->cxt = CurrentMemoryContext;
}

/*
 * ResultsAdd
 *		One push job's per-listing results into the open batch.
 */
static void
ResultsAdd(int64 job_id, ChannelCache *cc, PushItem *items, int n)
{
	ResultBatch *b = Results;
	MemoryContext old;
	int			i;

	if (b->n + n > b->cap)
	{
		int			cap = Max(b->cap * 2, b->n + n);

		cap = Max(cap, 256);
#define GROW(f, t) (b->f = (b->cap == 0) ? MemoryContextAlloc(b->cxt, sizeof(t) * cap) \
					: repalloc(b->f, sizeof(t) * cap))
		GROW(jobs, Datum);
		GROW(ids, Datum);
		GROW(oks, Datum);
		GROW(errors, Datum);
		GROW(classes, Datum);
		GROW(qtys, Datum);
		GROW(channels, Datum);
		GROW(resyncs, Datum);
		GROW(enulls, bool);
		GROW(rnulls, bool);
#undef GROW
		b->cap = cap;
	}
	old = MemoryContextSwitchTo(b->cxt);
	for (i = 0; i < n; i++)
	{
		int			k = b->n++;

		b->jobs[k] = Int64GetDatum(job_id);
		b->ids[k] = Int64GetDatum(items[i].listing_id);
		b->oks[k] = BoolGetDatum(items[i].ok);
		b->enulls[k] = items[i].ok;
		b->errors[k] = items[i].ok ? (Datum) 0 : CStringGetTextDatum(items[i].error);
		b->classes[k] = CStringGetTextDatum(items[i].ok ? "" :
											items[i].error_class == ITEM_ERROR_FIX ? "fix" :
											items[i].error_class == ITEM_ERROR_CREDENTIALS ? "credentials" : "retry");
		b->qtys[k] = Int32GetDatum(items[i].quantity);
		b->channels[k] = Int32GetDatum(cc->id);
		b->rnulls[k] = (cc->full_resync_at == 0);
		b->resyncs[k] = b->rnulls[k] ? (Datum) 0 : TimestampTzGetDatum(cc->full_resync_at);
	}
	MemoryContextSwitchTo(old);
}

/*
 * SyncCompleteFlush
 *		Writes the batch: the listings' results, and with them (same
 *		statement) the progress of the full resyncs they belong to: the
 *		listings resolved now that were not resolved yet for it (their
 *		values before this update come from the statement's snapshot, read
 *		as "o").  One UPDATE for every push job of the transaction.
 */
void
SyncCompleteFlush(void)
{
	ResultBatch *b = Results;
	Oid			argtypes[8] = {INT8ARRAYOID, INT8ARRAYOID, BOOLARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
	INT4ARRAYOID, INT4ARRAYOID, TIMESTAMPTZARRAYOID};
	Datum		values[8];
	int			dims[1];
	int			lbs[1] = {1};
	int			ret;
	int			nest;

	Results = NULL;
	if (b == NULL || b->n == 0)
		return;
	ResultsSinceAnalyze += b->n;

	dims[0] = b->n;
#define ARR(d, nulls, typ, len, byval, align) \
	PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, typ, len, byval, align))
	values[0] = ARR(b->jobs, NULL, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[1] = ARR(b->ids, NULL, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[2] = ARR(b->oks, NULL, BOOLOID, 1, true, TYPALIGN_CHAR);
	values[3] = ARR(b->errors, b->enulls, TEXTOID, -1, false, TYPALIGN_INT);
	values[4] = ARR(b->classes, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	values[5] = ARR(b->qtys, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[6] = ARR(b->channels, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[7] = ARR(b->resyncs, b->rnulls, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
#undef ARR

	if (ResultsPlan == NULL)
		ResultsPlan = KeepSyncPlan("WITH upd AS ("
								   " UPDATE omnichan.listing l SET "
								   "  pushed_qty = CASE WHEN r.ok THEN r.qty ELSE l.pushed_qty END, "
								   "  pushed_at = CASE WHEN r.ok THEN pg_catalog.now() ELSE l.pushed_at END, "
								   "  push_job_id = NULL, "
								   "  last_error = r.error, "
								   "  last_error_at = CASE WHEN r.ok THEN NULL ELSE pg_catalog.now() END, "
								   "  error_class = NULLIF(r.cls, ''), "
								   "  retry_at = CASE r.cls WHEN 'retry' THEN pg_catalog.now() + interval '1 minute' "
								   "                        WHEN 'fix' THEN pg_catalog.now() + interval '1 hour' "
								   "                        WHEN 'credentials' THEN pg_catalog.now() + interval '5 minutes' END "
								   "  FROM (SELECT r.*, "
								   "               (r.resync_at IS NOT NULL AND (r.ok OR r.cls IN ('fix', 'credentials')) "
								   "                AND NOT (COALESCE(o.pushed_at >= r.resync_at, false) "
								   "                         OR COALESCE(o.error_class IN ('fix', 'credentials') "
								   "                                     AND o.last_error_at >= r.resync_at, false))) AS newly "
								   "          FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int8[]), "
								   "                          pg_catalog.unnest($3::bool[]), pg_catalog.unnest($4::text[]), "
								   "                          pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::int4[]), "
								   "                          pg_catalog.unnest($7::int4[]), pg_catalog.unnest($8::timestamptz[])) "
								   "               AS r(job_id, id, ok, error, cls, qty, channel_id, resync_at) "
								   "          JOIN omnichan.listing o ON o.id = r.id) r "
								   " WHERE l.id = r.id AND l.push_job_id = r.job_id "
								   " RETURNING r.newly, r.channel_id, r.resync_at) "
								   "UPDATE omnichan.long_operation p "
								   "   SET done = LEAST(p.total, p.done + c.n), updated_at = pg_catalog.now() "
								   "  FROM (SELECT upd.channel_id, upd.resync_at, pg_catalog.count(*) AS n "
								   "          FROM upd WHERE upd.newly GROUP BY upd.channel_id, upd.resync_at) c "
								   " WHERE p.channel_id = c.channel_id AND p.operation = 'full_resync' "
								   "   AND p.started_at = c.resync_at AND p.finished_at IS NULL",
								   8, argtypes, CURSOR_OPT_CUSTOM_PLAN);

	/*
	 * Without sequential scans: the listings are reached through their
	 * primary key from the results.  Statistics of omnichan.listing taken
	 * while it had pages and no live rows (after a channel_drop, before the
	 * next link_by_sku) make the planner expect one listing, and it then
	 * scanned the whole table as the outer side of a nested loop over the
	 * results: 100k listings x 4,000 results per transaction, 77 s.
	 */
	nest = PlannerSettingPush("enable_seqscan", "off");
	ret = SPI_execute_plan(ResultsPlan, values, NULL, false, 0);
	AtEOXact_GUC(true, nest);
	if (ret < 0)
		elog(ERROR, "could not record push results: %s", SPI_result_code_string(ret));
}

/*
 * SyncPushWanted
 *		After a job of the channel finished: does a push cycle need to look
 *		for more of its listings?  Not while its queue is deep enough (see
 *		QueuePushes): the completion that brings it below that will.
 */
bool
SyncPushWanted(int32 channel_id)
{
	ChannelCache *cc = CacheLookup(channel_id);

	return cc == NULL || cc->pending < QUEUE_LOW_FACTOR * cc->max_concurrency;
}
