/*-------------------------------------------------------------------------
 *
 * sync.c
 *	  Stock push: the part of the sync worker between the dirty set and the
 *	  marketplace connectors.
 *
 * Each push cycle (a transaction of its own):
 *
 *	1. omnichan.refresh_targets() turns dirty products into listing target
 *	   quantities (the allocation of every channel), in bounded batches;
 *	2. for every active, unpaused channel that has a connector and whose push
 *	   is due (real-time channels: always; the others: every push_interval),
 *	   the listings whose target differs from what the marketplace last
 *	   accepted — or all of them during a full resync — are grouped in
 *	   batches of the connector's size, each batch becomes one durable job,
 *	   and the listings remember it (push_job_id), so a listing has at most
 *	   one push in flight and the request count is ceil(changed / batch);
 *	   a connector with a push_group gets one job per group instead (one
 *	   Etsy listing and its variations), never two in flight per group.
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

static HTAB *Cache = NULL;
static MemoryContext SyncCxt = NULL;

static void RefreshCache(void);
static ChannelCache *CacheLookup(int32 channel_id);
static void QueuePushes(ChannelCache *cc, TimestampTz now, TimestampTz *next_due);
static void StartResyncProgress(ChannelCache *cc);
static bool FinishResyncIfDone(ChannelCache *cc);
static int64 InsertJob(ChannelCache *cc, OutRequest *out, const char *payload,
					   int64 *listing_ids, int n);
static void SetChannelError(int32 channel_id, const char *error);
static void KeepRotatedSecret(ChannelCache *cc, const char *key, const char *value);
static Datum Int8ArrayDatum(int64 *values, int n);

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

	ret = SPI_execute("SELECT c.id, c.name, c.kind, c.endpoint, omnichan._channel_effective(c)::text, "
					  "       c.active, (pg_catalog.date_part('epoch', c.push_interval) * 1000)::int8, "
					  "       COALESCE(s.paused, false), s.next_push_at, s.full_resync_requested_at, "
					  "       cr.updated_at, "
					  "       EXISTS (SELECT 1 FROM omnichan.job j WHERE j.channel_id = c.id "
					  "                  AND j.operation = 'auth' AND j.state IN ('queued', 'running')) "
					  "  FROM omnichan.channel c "
					  "  LEFT JOIN omnichan.channel_state s ON s.channel_id = c.id "
					  "  LEFT JOIN omnichan.credential cr ON cr.channel_id = c.id", true, 0);
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

	ret = SPI_execute_with_args("WITH j AS ("
								"  INSERT INTO omnichan.job (channel_id, operation, method, url, headers, body, payload, not_before) "
								"  VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7::jsonb, "
								"          pg_catalog.now() + pg_catalog.make_interval(secs => $9 / 1000.0)) RETURNING id), "
								"l AS (UPDATE omnichan.listing l SET push_job_id = j.id FROM j "
								"       WHERE l.id = ANY ($8)) "
								"SELECT id FROM j",
								9, argtypes, values, nulls, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not queue a request: %s", SPI_result_code_string(ret));
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
	ret = SPI_execute_with_args("WITH closed AS ("
								"  UPDATE omnichan.progress p SET finished_at = pg_catalog.now(), updated_at = pg_catalog.now() "
								"   WHERE p.channel_id = $1 AND p.operation = 'full_resync' AND p.finished_at IS NULL "
								"     AND p.started_at <> $2) "
								"INSERT INTO omnichan.progress (channel_id, operation, total, started_at, updated_at) "
								"SELECT $1, 'full_resync', "
								"       (SELECT pg_catalog.count(*) FROM omnichan.listing l "
								"         WHERE l.channel_id = $1 AND l.target_qty IS NOT NULL), $2, pg_catalog.now() "
								" WHERE NOT EXISTS (SELECT 1 FROM omnichan.progress p WHERE p.channel_id = $1 "
								"                      AND p.operation = 'full_resync' AND p.started_at = $2)",
								2, argtypes, values, NULL, false, 0);
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
	ret = SPI_execute_with_args("SELECT 1 FROM omnichan.listing l "
								" WHERE l.channel_id = $1 AND l.target_qty IS NOT NULL "
								"   AND NOT " RESOLVED_SINCE_2 " LIMIT 1",
								2, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not check a full resync: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		return false;

	ret = SPI_execute_with_args("WITH fin AS ("
								"  UPDATE omnichan.progress p SET done = p.total, finished_at = pg_catalog.now(), "
								"         updated_at = pg_catalog.now() "
								"   WHERE p.channel_id = $1 AND p.operation = 'full_resync' AND p.started_at = $2 "
								"     AND p.finished_at IS NULL) "
								"UPDATE omnichan.channel_state s SET full_resync_requested_at = NULL "
								" WHERE s.channel_id = $1 AND s.full_resync_requested_at = $2",
								2, argtypes, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not finish a full resync: %s", SPI_result_code_string(ret));
	cc->full_resync_at = 0;
	return true;
}

/*
 * QueuePushes
 *		Queues the due pushes of one channel.
 *
 * A connector with a push_group (listings replaced together, e.g. the
 * variations of one Etsy listing) gets the due listings ordered by group,
 * never a group that already has a push in flight, and one job per group
 * (at most push_batch of its listings: the others wait for that job).
 */
static void
QueuePushes(ChannelCache *cc, TimestampTz now, TimestampTz *next_due)
{
	const Connector *conn = cc->connector;
	int			batch = conn->push_batch;
	Oid			argtypes[4] = {INT4OID, TIMESTAMPTZOID, INT4OID, TEXTOID};
	Datum		values[4];
	char		nulls[4] = "    ";
	uint64		nrows,
				start;
	int			ret;
	int			jobs = 0;
	bool		more = false;	/* rows left for the next cycle */
	SPITupleTable *rows;

	if (cc->full_resync_at != 0 && cc->progress_for != cc->full_resync_at)
		StartResyncProgress(cc);

	values[0] = Int32GetDatum(cc->id);
	if (cc->full_resync_at != 0)
		values[1] = TimestampTzGetDatum(cc->full_resync_at);
	else
		nulls[1] = 'n';
	values[2] = Int32GetDatum(batch * MAX_JOBS_PER_CYCLE);
	if (conn->push_group == NULL)
		ret = SPI_execute_with_args("SELECT l.id, l.sku, l.external::text, l.target_qty "
									"  FROM omnichan.listing l "
									" WHERE l.channel_id = $1 AND l.push_job_id IS NULL AND l.target_qty IS NOT NULL "
									"   AND (l.target_qty IS DISTINCT FROM l.pushed_qty "
									"        OR ($2::timestamptz IS NOT NULL AND NOT " RESOLVED_SINCE_2 ")) "
									"   AND (l.retry_at IS NULL OR l.retry_at <= pg_catalog.now()) "
									" ORDER BY l.id LIMIT $3 FOR UPDATE SKIP LOCKED",
									3, argtypes, values, nulls, false, 0);
	else
	{
		values[3] = CStringGetTextDatum(conn->push_group);
		ret = SPI_execute_with_args("SELECT l.id, l.sku, l.external::text, l.target_qty, "
									"       COALESCE(l.external ->> $4, '') "
									"  FROM omnichan.listing l "
									" WHERE l.channel_id = $1 AND l.push_job_id IS NULL AND l.target_qty IS NOT NULL "
									"   AND (l.target_qty IS DISTINCT FROM l.pushed_qty "
									"        OR ($2::timestamptz IS NOT NULL AND NOT " RESOLVED_SINCE_2 ")) "
									"   AND (l.retry_at IS NULL OR l.retry_at <= pg_catalog.now()) "
									"   AND NOT EXISTS (SELECT 1 FROM omnichan.listing o "
									"                    WHERE o.channel_id = l.channel_id AND o.push_job_id IS NOT NULL "
									"                      AND COALESCE(o.external ->> $4, '') = COALESCE(l.external ->> $4, '')) "
									" ORDER BY COALESCE(l.external ->> $4, ''), l.id LIMIT $3 FOR UPDATE SKIP LOCKED",
									4, argtypes, values, nulls, false, 0);
	}
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the listings to push: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;

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
			char	   *group = SPI_getvalue(rows->vals[start], rows->tupdesc, 5);

			if (jobs >= MAX_JOBS_PER_CYCLE)
			{
				more = true;
				break;
			}
			/* this group's listings; the ones beyond push_batch wait */
			for (n = 1; start + n < nrows && n < batch; n++)
				if (strcmp(SPI_getvalue(rows->vals[start + n], rows->tupdesc, 5), group) != 0)
					break;
			for (next = start + n; next < nrows; next++)
				if (strcmp(SPI_getvalue(rows->vals[next], rows->tupdesc, 5), group) != 0)
					break;
			if (next > start + n)
				more = true;
		}
		items = palloc0(sizeof(PushItem) * n);
		ids = palloc(sizeof(int64) * n);

		for (i = 0; i < n; i++)
		{
			HeapTuple	tup = rows->vals[start + i];
			bool		isnull;
			char	   *ext = SPI_getvalue(tup, rows->tupdesc, 3);
			char	   *error;
			OcJson	   *p;

			items[i].listing_id = DatumGetInt64(SPI_getbinval(tup, rows->tupdesc, 1, &isnull));
			items[i].sku = SPI_getvalue(tup, rows->tupdesc, 2);
			items[i].external = OcJsonParse(ext, strlen(ext), &error);
			items[i].quantity = DatumGetInt32(SPI_getbinval(tup, rows->tupdesc, 4, &isnull));
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
	 * A full resync is over when nothing was queued for it in this cycle and
	 * no listing is left unresolved (in flight or waiting for its retry).
	 */
	if (cc->full_resync_at != 0 && nrows == 0 && !more)
		(void) FinishResyncIfDone(cc);

	if (jobs > 0 || cc->next_push_at == 0 || now >= cc->next_push_at)
	{
		Oid			types[3] = {INT4OID, INT8OID, BOOLOID};
		Datum		vals[3];

		vals[0] = Int32GetDatum(cc->id);
		vals[1] = Int64GetDatum(cc->push_interval_ms);
		vals[2] = BoolGetDatum(jobs > 0);
		ret = SPI_execute_with_args("INSERT INTO omnichan.channel_state AS s (channel_id, next_push_at, last_push_at) "
									"VALUES ($1, pg_catalog.now() + pg_catalog.make_interval(secs => $2 / 1000.0), "
									"        CASE WHEN $3 THEN pg_catalog.now() END) "
									"ON CONFLICT (channel_id) DO UPDATE SET "
									"  next_push_at = excluded.next_push_at, "
									"  last_push_at = COALESCE(excluded.last_push_at, s.last_push_at)",
									3, types, vals, NULL, false, 0);
		if (ret < 0)
			elog(ERROR, "could not update the channel's schedule: %s", SPI_result_code_string(ret));
		cc->next_push_at = TimestampTzPlusMilliseconds(now, cc->push_interval_ms);
	}
	if (cc->push_interval_ms > 0 && (*next_due == 0 || cc->next_push_at < *next_due))
		*next_due = cc->next_push_at;
	if (nrows == (uint64) (batch * MAX_JOBS_PER_CYCLE) || (more && jobs >= MAX_JOBS_PER_CYCLE))
		*next_due = now;		/* more to queue: come back at once */
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

	*next_due = 0;

	/* 1. targets, in bounded batches */
	for (round = 0; round < 4; round++)
	{
		int			ret = SPI_execute("SELECT omnichan.refresh_targets()", false, 0);
		bool		isnull;

		if (ret != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not refresh listing targets: %s", SPI_result_code_string(ret));
		if (DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) == 0)
			break;
		if (round == 3)
			*next_due = now;	/* still dirty: come back at once */
	}

	/* 2. pushes of the channels that are due */
	RefreshCache();
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
				i,
				ret;
	Datum	   *ids,
			   *oks,
			   *errors,
			   *classes,
			   *qtys;
	bool	   *enulls;
	Oid			argtypes[8] = {INT8OID, INT8ARRAYOID, BOOLARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
	TIMESTAMPTZOID, INT4OID};
	Datum		values[8];
	char		nulls[8] = "        ";
	int			dims[1];
	int			lbs[1] = {1};

	if (cc == NULL || cc->connector == NULL || strcmp(state, "queued") == 0)
		return;

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

	if (strcmp(state, "succeeded") == 0 && cc->connector->next_step != NULL)
	{
		OutRequest	next;

		memset(&next, 0, sizeof(next));
		if (cc->connector->next_step(&cc->config, req, payload, items, n, &next))
		{
			int64	   *ids = palloc(sizeof(int64) * n);

			for (i = 0; i < n; i++)
				ids[i] = items[i].listing_id;
			InsertJob(cc, &next, OcJsonDump(payload), ids, n);
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

	ids = palloc(sizeof(Datum) * n);
	oks = palloc(sizeof(Datum) * n);
	errors = palloc(sizeof(Datum) * n);
	classes = palloc(sizeof(Datum) * n);
	qtys = palloc(sizeof(Datum) * n);
	enulls = palloc(sizeof(bool) * n);
	for (i = 0; i < n; i++)
	{
		ids[i] = Int64GetDatum(items[i].listing_id);
		oks[i] = BoolGetDatum(items[i].ok);
		enulls[i] = items[i].ok;
		errors[i] = items[i].ok ? (Datum) 0 : CStringGetTextDatum(items[i].error);
		classes[i] = CStringGetTextDatum(items[i].ok ? "" :
										 items[i].error_class == ITEM_ERROR_FIX ? "fix" :
										 items[i].error_class == ITEM_ERROR_CREDENTIALS ? "credentials" : "retry");
		qtys[i] = Int32GetDatum(items[i].quantity);
	}
	dims[0] = n;
	values[0] = Int64GetDatum(req->job_id);
	values[1] = PointerGetDatum(construct_md_array(ids, NULL, 1, dims, lbs, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE));
	values[2] = PointerGetDatum(construct_md_array(oks, NULL, 1, dims, lbs, BOOLOID, 1, true, TYPALIGN_CHAR));
	values[3] = PointerGetDatum(construct_md_array(errors, enulls, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	values[4] = PointerGetDatum(construct_md_array(classes, NULL, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	values[5] = PointerGetDatum(construct_md_array(qtys, NULL, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));

	/*
	 * The listings' results, and with them (same statement, one UPDATE per
	 * job) the progress of a full resync: the listings this job resolved
	 * that were not resolved yet for it (their values before this update
	 * come from the statement's snapshot, read as "o").
	 */
	if (cc->full_resync_at != 0)
		values[6] = TimestampTzGetDatum(cc->full_resync_at);
	else
		nulls[6] = 'n';
	values[7] = Int32GetDatum(req->channel_id);
	ret = SPI_execute_with_args("WITH upd AS ("
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
								"               ($7::timestamptz IS NOT NULL AND (r.ok OR r.cls IN ('fix', 'credentials')) "
								"                AND NOT (COALESCE(o.pushed_at >= $7, false) "
								"                         OR COALESCE(o.error_class IN ('fix', 'credentials') "
								"                                     AND o.last_error_at >= $7, false))) AS newly "
								"          FROM ROWS FROM (pg_catalog.unnest($2::int8[]), pg_catalog.unnest($3::bool[]), "
								"                          pg_catalog.unnest($4::text[]), pg_catalog.unnest($5::text[]), "
								"                          pg_catalog.unnest($6::int4[])) AS r(id, ok, error, cls, qty) "
								"          JOIN omnichan.listing o ON o.id = r.id) r "
								" WHERE l.id = r.id AND l.push_job_id = $1 "
								" RETURNING r.newly) "
								"UPDATE omnichan.progress p "
								"   SET done = LEAST(p.total, p.done + (SELECT pg_catalog.count(*) FROM upd WHERE upd.newly)), "
								"       updated_at = pg_catalog.now() "
								" WHERE $7::timestamptz IS NOT NULL AND p.channel_id = $8 AND p.operation = 'full_resync' "
								"   AND p.started_at = $7 AND p.finished_at IS NULL",
								8, argtypes, values, nulls, false, 0);
	if (ret < 0)
		elog(ERROR, "could not record push results: %s", SPI_result_code_string(ret));
}
