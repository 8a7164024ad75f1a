/*-------------------------------------------------------------------------
 *
 * pull.c
 *	  Order pull: the part of the sync worker that brings marketplace orders
 *	  into the order inbox, and reports the merchant's cancellations back.
 *
 * A pull is a chain of durable jobs of one channel, one at a time: the first
 * is built by the connector (build_pull) for the window [since, until) of
 * last-update times, where since = the channel's order cursor minus an
 * overlap (orders the marketplace indexed late) and until = now minus the
 * connector's lag (Amazon: 2 minutes); the state object of the chain (the
 * window, page tokens, orders waiting for their items) travels in the job's
 * payload.  Each answer is read by the connector (parse_pull) into complete,
 * normalized orders, which are stored with omnichan.inbox_upsert in the
 * transaction that records the job (RecordOutcomes); the next job of the
 * chain is queued in the same transaction, and the last answer moves the
 * cursor to "until".  So a crash anywhere loses nothing (the running job is
 * queued again at start and the answer fetched again) and duplicates
 * nothing (inbox_upsert is keyed by channel and order id, and an identical
 * version changes nothing).  An order inbox_upsert refuses is held with the
 * reason (_inbox_store), never dropped.
 *
 * omnichan.fetch_order(channel, id) asks for one order: a chain whose state
 * carries "order_id" and that does not move the cursor.
 *
 * Order backfills: a pull whose window is longer than BACKFILL_MIN_WINDOW_S
 * (set_order_cursor to an older date, a channel's first pull, catching up
 * after the worker was stopped) has a row in omnichan.long_operation, shown
 * by the omnichan.progress view as operation 'order_backfill': done = the
 * orders its pages had so far, total = the marketplace's count of the orders
 * in the window when its first answer gives one (eBay, Walmart, TikTok Shop,
 * Etsy, Lazada; unknown for Amazon and Shopify), both updated in the
 * transaction that stores each page.  A complete chain finishes the row at
 * 100 % (total = done: orders may have come or gone meanwhile); a chain that
 * stops (an error; the next pull covers the window again) finishes it where
 * it got, and so does a newer backfill of the channel.
 *
 * Stored orders are turned into Odoo quotations by materialize_orders, in
 * transactions of their own (PullMaterialize), so a materialization problem
 * never undoes the storing of what the marketplace sent.
 *
 * Cancellations: a materialized order whose Odoo sale order the merchant
 * cancelled (sale_order.state 'cancel' while the inbox still says
 * 'materialized': a marketplace cancellation makes it 'cancelled' first) is
 * reported to the marketplace with the connector's build_cancel, once; the
 * outcome is kept on the inbox order (cancel_reported_at or
 * cancel_report_error).
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "portability/instr_time.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "connector.h"
#include "omnichan.h"
#include "pull.h"
#include "sync.h"

/* the window starts this long before the cursor (late-indexed orders) */
#define PULL_OVERLAP_S		300
/* a channel's first pull covers this much of the past */
#define PULL_FIRST_LOOKBACK_S	86400
/* at most this often are materialized orders checked for cancellations */
#define CANCEL_CHECK_MS		2000
/* most cancellations reported per cycle */
#define CANCEL_BATCH		50
/* orders materialized per transaction */
#define MATERIALIZE_BATCH	200
/* a pull over a longer window is an order backfill, with its progress */
#define BACKFILL_MIN_WINDOW_S	3600

bool		PullMaterializeDue = true;
bool		PullCancelCheckDue = true;

static TimestampTz NextCancelCheck = 0;

static void QueuePull(int32 channel_id, const Connector *conn, ChannelConfig *cfg,
					  TimestampTz now, TimestampTz cursor, bool has_cursor,
					  int64 interval_ms);
static void QueueFetches(TimestampTz now);
static void QueueCancels(void);
static void PullAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req,
					   OcJson *payload, OcJson *st, const char *state, const char *error);
static void CancelAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req,
						 OcJson *cancel, const char *state, const char *error);
static void RecordJobError(int64 job_id, const char *error);
static int64 BackfillStart(int32 channel_id);
static void BackfillProgress(OcJson *st, int norders, bool complete);
static void BackfillStop(OcJson *st);
static char *AnswerExcerpt(HttpRequest *req);
static void GuardedAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req,
						  OcJson *payload, OcJson *part, const char *state, const char *error,
						  bool pull);

/*
 * PullCycle
 *		Inside the push cycle's transaction (after the channel cache was
 *		refreshed): start the pulls that are due, the fetch_order requests,
 *		and the cancellation reports.  *next_due is lowered to the next
 *		pull's due time.
 *
 * Cancellations are looked for only when PullCancelCheckDue says something
 * may have changed (a commit woke the worker: an Odoo cancellation is a
 * committed write of sale_order.state, which change capture records; or
 * the housekeeping pass), at most every CANCEL_CHECK_MS.  They used to be
 * looked for every CANCEL_CHECK_MS unconditionally, which brought an idle
 * worker out of its wait every 2 s whatever omnichan.naptime said: polling.
 */
void
PullCycle(TimestampTz now, TimestampTz *next_due)
{
	int			ret;
	uint64		r;
	SPITupleTable *rows;
	uint64		nrows;

	ret = SPI_execute("SELECT c.id, s.order_cursor, "
					  "       (pg_catalog.date_part('epoch', c.pull_interval) * 1000)::int8, "
					  "       s.next_pull_at, "
					  "       EXISTS (SELECT 1 FROM omnichan.job j WHERE j.channel_id = c.id "
					  "                  AND j.state IN ('queued', 'running') "
					  "                  AND j.payload ? 'pull' AND (j.payload -> 'pull') ? 'until') "
					  "  FROM omnichan.channel c "
					  "  LEFT JOIN omnichan.channel_state s ON s.channel_id = c.id "
					  " WHERE c.active AND NOT COALESCE(s.paused, false) "
					  /* no credentials yet: the pull starts when they are set */
					  "   AND EXISTS (SELECT 1 FROM omnichan.credential cr WHERE cr.channel_id = c.id)",
					  true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the channels' pull schedule: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;

	for (r = 0; r < nrows; r++)
	{
		HeapTuple	tup = rows->vals[r];
		TupleDesc	desc = rows->tupdesc;
		bool		isnull,
					cursor_null,
					next_null;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		Datum		cursor = SPI_getbinval(tup, desc, 2, &cursor_null);
		int64		interval_ms = DatumGetInt64(SPI_getbinval(tup, desc, 3, &isnull));
		Datum		next = SPI_getbinval(tup, desc, 4, &next_null);
		bool		in_flight = DatumGetBool(SPI_getbinval(tup, desc, 5, &isnull));
		ChannelConfig *cfg;
		const Connector *conn = SyncChannel(id, &cfg);

		if (conn == NULL || conn->build_pull == NULL || in_flight)
			continue;
		if (!next_null && DatumGetTimestampTz(next) > now)
		{
			if (*next_due == 0 || DatumGetTimestampTz(next) < *next_due)
				*next_due = DatumGetTimestampTz(next);
			continue;
		}
		QueuePull(id, conn, cfg, now, cursor_null ? 0 : DatumGetTimestampTz(cursor),
				  !cursor_null, interval_ms);
		if (*next_due == 0 || TimestampTzPlusMilliseconds(now, interval_ms) < *next_due)
			*next_due = TimestampTzPlusMilliseconds(now, interval_ms);
	}

	QueueFetches(now);

	if (PullCancelCheckDue)
	{
		if (now >= NextCancelCheck)
		{
			QueueCancels();
			NextCancelCheck = TimestampTzPlusMilliseconds(now, CANCEL_CHECK_MS);
			PullCancelCheckDue = false;
		}
		else if (*next_due == 0 || NextCancelCheck < *next_due)
			*next_due = NextCancelCheck;	/* checked a moment ago: soon again */
	}
}

/*
 * QueuePull
 *		The first job of a channel's pull, and the channel's schedule.
 */
static void
QueuePull(int32 channel_id, const Connector *conn, ChannelConfig *cfg, TimestampTz now,
		  TimestampTz cursor, bool has_cursor, int64 interval_ms)
{
	OcJson	   *payload = OcJsonNewObject();
	OcJson	   *st = OcJsonSetObject(payload, "pull");
	int64		now_s = (int64) (timestamptz_to_time_t(now));
	int64		since_s,
				until_s;
	OutRequest	out;
	Oid			argtypes[3] = {INT4OID, INT8OID, BOOLOID};
	Datum		values[3];
	int			ret;

	since_s = has_cursor ? (int64) timestamptz_to_time_t(cursor) - PULL_OVERLAP_S
		: now_s - PULL_FIRST_LOOKBACK_S;
	until_s = now_s - conn->pull_lag_s;

	if (until_s > since_s)
	{
		OcJsonSetString(st, "since", IsoFromEpoch(since_s));
		OcJsonSetString(st, "until", IsoFromEpoch(until_s));
		OcJsonSetInt(st, "since_epoch", since_s);
		OcJsonSetInt(st, "until_epoch", until_s);
		/* the cursor this pull started from: a newer set_order_cursor wins */
		if (has_cursor)
			OcJsonSetString(st, "cursor", timestamptz_to_str(cursor));
		if (until_s - since_s > BACKFILL_MIN_WINDOW_S)
			OcJsonSetInt(st, "progress_id", BackfillStart(channel_id));
		memset(&out, 0, sizeof(out));
		out.operation = conn->pull_operation ? conn->pull_operation : "order_pull";
		conn->build_pull(cfg, st, &out);
		if (out.operation == NULL)
			out.operation = "order_pull";
		(void) SyncQueueJob(channel_id, &out, OcJsonDump(payload));
	}

	values[0] = Int32GetDatum(channel_id);
	values[1] = Int64GetDatum(interval_ms);
	values[2] = BoolGetDatum(until_s > since_s);
	ret = SPI_execute_with_args("INSERT INTO omnichan.channel_state AS s (channel_id, next_pull_at, last_pull_at) "
								"VALUES ($1, pg_catalog.now() + pg_catalog.make_interval(secs => $2 / 1000.0), "
								"        CASE WHEN $3 THEN pg_catalog.now() END) "
								"ON CONFLICT (channel_id) DO UPDATE SET "
								"  next_pull_at = excluded.next_pull_at, "
								"  last_pull_at = COALESCE(excluded.last_pull_at, s.last_pull_at)",
								3, argtypes, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not update the channel's pull schedule: %s", SPI_result_code_string(ret));
}

/*
 * QueueFetches
 *		omnichan.fetch_order requests: one chain each (state "order_id").
 */
static void
QueueFetches(TimestampTz now)
{
	int			ret;
	uint64		r;
	SPITupleTable *rows;
	uint64		nrows;

	ret = SPI_execute("DELETE FROM omnichan.fetch_request f USING omnichan.channel c "
					  " WHERE c.id = f.channel_id AND c.active "
					  "   AND EXISTS (SELECT 1 FROM omnichan.credential cr WHERE cr.channel_id = c.id) "
					  "   AND NOT EXISTS (SELECT 1 FROM omnichan.channel_state s "
					  "                    WHERE s.channel_id = c.id AND s.paused) "
					  "RETURNING f.channel_id, f.external_id", false, 0);
	if (ret != SPI_OK_DELETE_RETURNING)
		elog(ERROR, "could not read the order fetch requests: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (r = 0; r < nrows; r++)
	{
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
		char	   *order_id = SPI_getvalue(rows->vals[r], rows->tupdesc, 2);
		ChannelConfig *cfg;
		const Connector *conn = SyncChannel(id, &cfg);
		OcJson	   *payload;
		OcJson	   *st;
		OutRequest	out;

		if (conn == NULL || conn->build_pull == NULL)
		{
			SyncSetChannelError(id, psprintf("order pull: cannot fetch order \"%s\": "
											 "this channel's connector does not pull orders", order_id));
			continue;
		}
		payload = OcJsonNewObject();
		st = OcJsonSetObject(payload, "pull");
		OcJsonSetString(st, "order_id", order_id);
		memset(&out, 0, sizeof(out));
		out.operation = conn->pull_operation ? conn->pull_operation : "order_pull";
		conn->build_pull(cfg, st, &out);
		if (out.operation == NULL)
			out.operation = "order_pull";
		(void) SyncQueueJob(id, &out, OcJsonDump(payload));
	}
}

/*
 * QueueCancels
 *		Materialized orders the merchant cancelled in Odoo: one report each to
 *		the marketplace (or the reason it cannot be made).
 */
static void
QueueCancels(void)
{
	int			ret;
	uint64		r;
	SPITupleTable *rows;
	uint64		nrows;
	Oid			argtypes[3] = {INT8OID, INT8OID, TEXTOID};

	ret = SPI_execute_with_args("SELECT i.id, i.channel_id, pg_catalog.jsonb_build_object("
								"         'external_id', i.external_id, 'raw', i.raw, "
								"         'lines', COALESCE((SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object("
								"                      'external_id', l.line_external_id, 'sku', l.channel_sku, "
								"                      'quantity', l.quantity) ORDER BY l.line_no) "
								"                    FROM omnichan.order_inbox_line l WHERE l.inbox_id = i.id), '[]'))::text "
								"  FROM omnichan.order_inbox i "
								"  JOIN public.sale_order so ON so.id = i.sale_order_id "
								"  JOIN omnichan.channel c ON c.id = i.channel_id AND c.active "
								" WHERE i.state = 'materialized' AND i.cancel_reported_at IS NULL "
								"   AND i.cancel_report_error IS NULL AND i.cancel_job_id IS NULL "
								"   AND so.state = 'cancel' "
								"   AND NOT EXISTS (SELECT 1 FROM omnichan.channel_state s "
								"                    WHERE s.channel_id = c.id AND s.paused) "
								" ORDER BY i.id LIMIT " CppAsString2(CANCEL_BATCH)
								"   FOR UPDATE OF i SKIP LOCKED",
								0, NULL, NULL, NULL, false, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the orders cancelled in Odoo: %s", SPI_result_code_string(ret));
	rows = SPI_tuptable;
	nrows = SPI_processed;
	for (r = 0; r < nrows; r++)
	{
		bool		isnull;
		int64		inbox_id = DatumGetInt64(SPI_getbinval(rows->vals[r], rows->tupdesc, 1, &isnull));
		int32		channel_id = DatumGetInt32(SPI_getbinval(rows->vals[r], rows->tupdesc, 2, &isnull));
		char	   *text = SPI_getvalue(rows->vals[r], rows->tupdesc, 3);
		char	   *perr = NULL;
		OcJson	   *order = OcJsonParse(text, strlen(text), &perr);
		ChannelConfig *cfg;
		const Connector *conn = SyncChannel(channel_id, &cfg);
		char	   *why = NULL;
		int64		job_id = 0;
		Datum		values[3];
		char		nulls[3] = "   ";
		OutRequest	out;

		if (conn == NULL)
			continue;			/* paused or no connector: later */
		memset(&out, 0, sizeof(out));
		out.operation = "order_cancel";
		if (order == NULL)
			why = psprintf("could not read the order: %s", perr);
		else if (conn->build_cancel == NULL)
			why = psprintf("the %s API does not let a seller cancel an order: cancel it on the marketplace",
						   cfg->kind);
		else if (!conn->build_cancel(cfg, order, &out, &why))
		{
			if (why == NULL)
				why = "the marketplace cannot cancel this order";
		}
		else
		{
			OcJson	   *payload = OcJsonNewObject();
			OcJson	   *c = OcJsonSetObject(payload, "cancel");

			OcJsonSetInt(c, "inbox_id", inbox_id);
			if (out.operation == NULL)
				out.operation = "order_cancel";
			job_id = SyncQueueJob(channel_id, &out, OcJsonDump(payload));
		}

		values[0] = Int64GetDatum(inbox_id);
		values[1] = Int64GetDatum(job_id);
		if (why != NULL)
			values[2] = CStringGetTextDatum(why);
		else
			nulls[2] = 'n';
		ret = SPI_execute_with_args("WITH u AS ("
									"  UPDATE omnichan.order_inbox SET "
									"    cancel_job_id = NULLIF($2, 0), cancel_report_error = $3, "
									"    state = CASE WHEN $3 IS NULL THEN state ELSE 'cancelled' END, "
									"    updated_at = pg_catalog.clock_timestamp() "
									"   WHERE id = $1 RETURNING id) "
									"INSERT INTO omnichan.order_event (inbox_id, kind, detail) "
									"SELECT u.id, 'cancelled', pg_catalog.jsonb_build_object('by', 'merchant', "
									"       'reported', false, 'error', $3) FROM u WHERE $3 IS NOT NULL",
									3, argtypes, values, nulls, false, 0);
		if (ret < 0)
			elog(ERROR, "could not record a cancellation report: %s", SPI_result_code_string(ret));
	}
}

/*
 * PullComplete
 *		Inside the outcome transaction: a finished job of an order pull, a
 *		fetch or a cancellation report.  Returns false when the job is none
 *		of those (a stock push).
 */
bool
PullComplete(const Connector *conn, ChannelConfig *cfg, HttpRequest *req,
			 const char *state, const char *error)
{
	OcJson	   *payload;
	OcJson	   *part;
	char	   *perr;

	if (req->payload == NULL)
		return false;
	payload = OcJsonParse(req->payload, strlen(req->payload), &perr);
	if (payload == NULL)
		return false;
	if ((part = OcJsonGet(payload, "pull")) != NULL && OcJsonIsObject(part))
	{
		GuardedAnswer(conn, cfg, req, payload, part, state, error, true);
		return true;
	}
	if ((part = OcJsonGet(payload, "cancel")) != NULL && OcJsonIsObject(part))
	{
		GuardedAnswer(conn, cfg, req, payload, part, state, error, false);
		return true;
	}
	return false;
}

/* GuardedAnswer's arguments, for its subtransaction */
typedef struct AnswerStep
{
	const Connector *conn;
	ChannelConfig *cfg;
	HttpRequest *req;
	OcJson	   *payload;
	OcJson	   *part;
	const char *state;
	const char *error;
	bool		pull;
} AnswerStep;

/* GuardedAnswer's step in a subtransaction */
static void
AnswerInSubtransaction(void *arg)
{
	AnswerStep *a = (AnswerStep *) arg;

	if (a->pull)
		PullAnswer(a->conn, a->cfg, a->req, a->payload, a->part, a->state, a->error);
	else
		CancelAnswer(a->conn, a->cfg, a->req, a->part, a->state, a->error);
}

/*
 * GuardedAnswer
 *		PullAnswer or CancelAnswer in a subtransaction: whatever the
 *		marketplace sent, an error while reading or storing it (a connector
 *		that trips over an answer it did not expect, an order a constraint
 *		refuses) ends this pull chain with the error recorded on the job and
 *		the channel, instead of failing the transaction that records every
 *		outcome of the batch (the job would stay "running" until a restart,
 *		and block the channel's pulls).  The cursor stays: the next pull
 *		covers the window again.
 */
static void
GuardedAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req, OcJson *payload,
			  OcJson *part, const char *state, const char *error, bool pull)
{
	AnswerStep	step = {conn, cfg, req, payload, part, state, error, pull};
	ErrorData  *edata = OcSubTransaction(AnswerInSubtransaction, &step);
	char	   *msg;

	if (edata == NULL)
		return;

	/* query cancellations and shutdowns are not the answer's fault */
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED ||
		edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		ReThrowError(edata);
	msg = psprintf("%s: could not process the marketplace's answer: %s",
				   pull ? "order pull" : "order cancellation", edata->message);
	ereport(LOG,
			(errmsg("omnichan worker: channel \"%s\": %s", cfg->name, msg)));
	RecordJobError(req->job_id, msg);
	SyncSetChannelError(cfg->id, msg);
	if (pull)
		BackfillStop(part);		/* the chain ends here */
	else
	{
		/* the report is not retried: the reason is kept on the order */
		Oid			argtypes[2] = {INT8OID, TEXTOID};
		Datum		values[2] = {Int64GetDatum(req->job_id), CStringGetTextDatum(msg)};

		if (SPI_execute_with_args("UPDATE omnichan.order_inbox SET cancel_job_id = NULL, "
								  "       cancel_report_error = $2 WHERE cancel_job_id = $1",
								  2, argtypes, values, NULL, false, 0) < 0)
			elog(ERROR, "could not record a cancellation report's failure");
	}
	FreeErrorData(edata);
}

/*
 * BackfillStart
 *		The progress row of an order backfill of the channel, which finishes
 *		an unfinished one (a chain that never completed); returns its id.
 */
static int64
BackfillStart(int32 channel_id)
{
	Oid			argtypes[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(channel_id)};
	bool		isnull;
	int			ret;

	ret = SPI_execute_with_args("WITH stale AS ("
								"  UPDATE omnichan.long_operation SET finished_at = pg_catalog.now(), "
								"         updated_at = pg_catalog.now() "
								"   WHERE channel_id = $1 AND operation = 'order_backfill' "
								"     AND finished_at IS NULL) "
								"INSERT INTO omnichan.long_operation (channel_id, operation, total) "
								"VALUES ($1, 'order_backfill', NULL) RETURNING id",
								1, argtypes, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT_RETURNING || SPI_processed != 1)
		elog(ERROR, "could not record an order backfill's progress: %s", SPI_result_code_string(ret));
	return DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

/*
 * BackfillProgress
 *		A page of a backfill's chain is stored: its progress row counts the
 *		orders read so far (the connector's count of the pages' orders, or
 *		else the orders it passed on) and the marketplace's total when known;
 *		the last page finishes it at 100 %.
 */
static void
BackfillProgress(OcJson *st, int norders, bool complete)
{
	int64		id;
	int64		done = 0;
	int64		total = 0;
	Oid			argtypes[4] = {INT8OID, INT8OID, INT8OID, BOOLOID};
	Datum		values[4];
	char		nulls[4] = "    ";

	if (!OcJsonInt(OcJsonGet(st, "progress_id"), &id))
		return;
	if (!OcJsonInt(OcJsonGet(st, "read_orders"), &done))
	{
		(void) OcJsonInt(OcJsonGet(st, "passed_orders"), &done);
		done += norders;
		OcJsonSetInt(st, "passed_orders", done);
	}
	values[0] = Int64GetDatum(id);
	values[1] = Int64GetDatum(done);
	if (OcJsonInt(OcJsonGet(st, "total_orders"), &total))
		values[2] = Int64GetDatum(total);
	else
		nulls[2] = 'n';
	values[3] = BoolGetDatum(complete);
	if (SPI_execute_with_args("UPDATE omnichan.long_operation "
							  "   SET done = $2, total = CASE WHEN $4 THEN $2 ELSE $3 END, "
							  "       updated_at = pg_catalog.now(), "
							  "       finished_at = CASE WHEN $4 THEN pg_catalog.now() END "
							  " WHERE id = $1 AND finished_at IS NULL",
							  4, argtypes, values, nulls, false, 0) < 0)
		elog(ERROR, "could not record an order backfill's progress");
}

/*
 * BackfillStop
 *		A backfill's chain ended before its last page: its row is finished
 *		where it got (the next pull covers the window again).
 */
static void
BackfillStop(OcJson *st)
{
	int64		id;
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1];

	if (!OcJsonInt(OcJsonGet(st, "progress_id"), &id))
		return;
	values[0] = Int64GetDatum(id);
	if (SPI_execute_with_args("UPDATE omnichan.long_operation SET finished_at = pg_catalog.now(), "
							  "       updated_at = pg_catalog.now() "
							  " WHERE id = $1 AND finished_at IS NULL",
							  1, argtypes, values, NULL, false, 0) < 0)
		elog(ERROR, "could not record the end of an order backfill");
}

/*
 * AnswerExcerpt
 *		": <the first 200 bytes of an error answer>" (control characters as
 *		spaces, other bytes than printable ASCII as '?': the answer's
 *		encoding is not trusted), or "" when there is none.
 */
static char *
AnswerExcerpt(HttpRequest *req)
{
	int			n = Min(req->response.len, 200);
	char	   *text;
	int			i;

	if (req->status < 400 || req->response.data == NULL || n <= 0)
		return "";
	text = pnstrdup(req->response.data, n);
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char) text[i] < 0x20 || (unsigned char) text[i] == 0x7f)
			text[i] = ' ';
		else if ((unsigned char) text[i] > 0x7f)
			text[i] = '?';
	return psprintf(": %s%s", text, req->response.len > 200 ? "..." : "");
}

/* RecordJobError: why a job that got a 2xx answer did not do its work */
static void
RecordJobError(int64 job_id, const char *error)
{
	Oid			argtypes[2] = {INT8OID, TEXTOID};
	Datum		values[2] = {Int64GetDatum(job_id), CStringGetTextDatum(error)};
	int			ret;

	ret = SPI_execute_with_args("UPDATE omnichan.job SET error = $2 WHERE id = $1",
								2, argtypes, values, NULL, false, 0);
	if (ret < 0)
		elog(ERROR, "could not record a job's error: %s", SPI_result_code_string(ret));
}

/*
 * PullAnswer
 *		One answer of a pull chain: its orders stored, the next job queued or
 *		the cursor moved.
 */
static void
PullAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req, OcJson *payload,
		   OcJson *st, const char *state, const char *error)
{
	OcJson	   *orders;
	OutRequest	next;
	char	   *why = NULL;
	bool		more;
	int			ret;
	int64		until_s;
	bool		is_fetch = OcJsonGet(st, "order_id") != NULL;
	int			norders;
	bool		timing;
	instr_time	t0,
				t1;

	if (strcmp(state, "succeeded") != 0)
	{
		/*
		 * The chain ends here; the next pull covers the window again.  The
		 * marketplace's own words (its error code and message) are worth
		 * more than the HTTP status: the start of the answer goes with it.
		 */
		SyncSetChannelError(cfg->id, psprintf("order pull: %s%s", error ? error : "request failed",
											  AnswerExcerpt(req)));
		BackfillStop(st);
		return;
	}
	if (conn->parse_pull == NULL)
		return;

	timing = message_level_is_interesting(DEBUG1);
	if (timing)
		INSTR_TIME_SET_CURRENT(t0);
	orders = OcJsonNewArray();
	memset(&next, 0, sizeof(next));
	next.operation = conn->pull_operation ? conn->pull_operation : "order_pull";
	more = conn->parse_pull(cfg, req, st, orders, &next, &why);
	if (why != NULL)
	{
		char	   *msg = psprintf("order pull: %s", why);

		RecordJobError(req->job_id, msg);
		SyncSetChannelError(cfg->id, msg);
		BackfillStop(st);
		return;
	}

	norders = OcJsonLength(orders);
	if (norders > 0)
	{
		Oid			argtypes[2] = {INT4OID, TEXTOID};
		Datum		values[2];

		values[0] = Int32GetDatum(cfg->id);
		values[1] = CStringGetTextDatum(OcJsonDump(orders));
		if (timing)
			INSTR_TIME_SET_CURRENT(t1);
		ret = SPI_execute_with_args("SELECT stored, refused FROM omnichan._inbox_store($1, $2::jsonb)",
									2, argtypes, values, NULL, false, 0);
		if (ret != SPI_OK_SELECT)
			elog(ERROR, "could not store pulled orders: %s", SPI_result_code_string(ret));
		PullMaterializeDue = true;
	}
	else if (timing)
		INSTR_TIME_SET_CURRENT(t1);

	/* where a page's time goes (bench/orders.sh sets log_min_messages) */
	if (timing)
	{
		instr_time	t2;

		INSTR_TIME_SET_CURRENT(t2);
		INSTR_TIME_SUBTRACT(t2, t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		elog(DEBUG1, "omnichan worker: channel \"%s\": order pull page of %d bytes: %d orders, "
			 "parse %.3f ms, store %.3f ms",
			 cfg->name, (int) req->response.len, norders,
			 INSTR_TIME_GET_MILLISEC(t1), INSTR_TIME_GET_MILLISEC(t2));
	}

	/* (before the state goes on with the next job: it carries the counts) */
	if (!is_fetch)
		BackfillProgress(st, norders, !more);

	if (more)
	{
		if (next.operation == NULL)
			next.operation = "order_pull";
		(void) SyncQueueJob(cfg->id, &next, OcJsonDump(payload));
	}
	else if (!is_fetch && OcJsonInt(OcJsonGet(st, "until_epoch"), &until_s))
	{
		/*
		 * The chain is complete: the cursor moves to its window's end, unless
		 * set_order_cursor moved it meanwhile (that re-pull wins).
		 */
		Oid			argtypes[3] = {INT4OID, TIMESTAMPTZOID, TEXTOID};
		Datum		values[3];
		char		nulls[3] = "   ";
		const char *started = OcJsonString(OcJsonGet(st, "cursor"));

		values[0] = Int32GetDatum(cfg->id);
		values[1] = TimestampTzGetDatum(time_t_to_timestamptz((pg_time_t) until_s));
		if (started != NULL)
			values[2] = CStringGetTextDatum(started);
		else
			nulls[2] = 'n';
		ret = SPI_execute_with_args("UPDATE omnichan.channel_state SET order_cursor = $2 "
									" WHERE channel_id = $1 "
									"   AND order_cursor IS NOT DISTINCT FROM $3::timestamptz",
									3, argtypes, values, nulls, false, 0);
		if (ret < 0)
			elog(ERROR, "could not move the order cursor: %s", SPI_result_code_string(ret));
	}

	/* a test aid: a window for killing the worker before this commits */
	if (omnichan_debug_pull_commit_delay > 0)
	{
		pgstat_report_activity(STATE_RUNNING, "waiting before committing pulled orders "
							   "(omnichan.debug_pull_commit_delay)");
		(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 omnichan_debug_pull_commit_delay, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		SetLatch(MyLatch);		/* a wake-up that came meanwhile is not lost */
	}
}

/*
 * CancelAnswer
 *		The marketplace's answer to a cancellation report.
 */
static void
CancelAnswer(const Connector *conn, ChannelConfig *cfg, HttpRequest *req, OcJson *cancel,
			 const char *state, const char *error)
{
	int64		inbox_id = 0;
	char	   *why = NULL;
	Oid			argtypes[3] = {INT8OID, TEXTOID, INT8OID};
	Datum		values[3];
	char		nulls[3] = "   ";
	int			ret;

	if (!OcJsonInt(OcJsonGet(cancel, "inbox_id"), &inbox_id))
		return;
	if (strcmp(state, "succeeded") != 0)
		why = pstrdup(error ? error : "request failed");
	else if (conn->parse_cancel != NULL && !conn->parse_cancel(cfg, req, &why) && why == NULL)
		why = "the marketplace refused the cancellation";

	values[0] = Int64GetDatum(inbox_id);
	if (why != NULL)
		values[1] = CStringGetTextDatum(why);
	else
		nulls[1] = 'n';
	values[2] = Int64GetDatum(req->job_id);
	ret = SPI_execute_with_args("WITH u AS ("
								"  UPDATE omnichan.order_inbox SET cancel_job_id = NULL, "
								"    cancel_reported_at = CASE WHEN $2 IS NULL THEN pg_catalog.clock_timestamp() END, "
								"    cancel_report_error = $2, state = 'cancelled', "
								"    updated_at = pg_catalog.clock_timestamp() "
								"   WHERE id = $1 AND cancel_job_id = $3 RETURNING id) "
								"INSERT INTO omnichan.order_event (inbox_id, kind, detail) "
								"SELECT u.id, 'cancelled', pg_catalog.jsonb_build_object('by', 'merchant', "
								"       'reported', $2 IS NULL, 'error', $2) FROM u",
								3, argtypes, values, nulls, false, 0);
	if (ret < 0)
		elog(ERROR, "could not record a cancellation report: %s", SPI_result_code_string(ret));
	if (why != NULL)
		SyncSetChannelError(cfg->id, psprintf("order cancellation: %s", why));
}

/* orders materialized by this worker, and when it analyzes their tables */
static int64 MaterializedCount = 0;
static int64 NextAnalyzeAt = 1000;

/* AnalyzeOrderTables' step in a subtransaction */
static void
AnalyzeStep(void *arg)
{
	int			ret = SPI_execute("ANALYZE public.sale_order, public.sale_order_line, public.res_partner, "
								  "omnichan.order_inbox, omnichan.order_inbox_line, omnichan.order_event, "
								  "omnichan.customer_link", false, 0);

	if (ret != SPI_OK_UTILITY)
		elog(ERROR, "ANALYZE returned %s", SPI_result_code_string(ret));
}

/*
 * AnalyzeOrderTables
 *		ANALYZE the tables the orders grow, when the orders this worker
 *		materialized are at least half of the sale orders the statistics know
 *		of; in a subtransaction (a failure is logged, the orders stay).
 *
 * Called at 1 000, 10 000 and 100 000 orders: the statistics (and with them
 * the plans cached in this long-lived session, the foreign key checks'
 * included) follow a table that grew from a few rows to thousands within a
 * minute, before autovacuum would look at it (a foreign key check planned as
 * a sequential scan of a small sale_order cost 0.16 ms per line once it had
 * 10 000 rows).  A large Odoo database is not analyzed again for a few
 * orders.
 */
static void
AnalyzeOrderTables(void)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(MaterializedCount)};
	bool		isnull;
	int			ret;
	ErrorData  *edata;

	ret = SPI_execute_with_args("SELECT c.reltuples < 0 OR c.reltuples < 2 * $1 FROM pg_catalog.pg_class c "
								" WHERE c.oid = 'public.sale_order'::pg_catalog.regclass",
								1, argtypes, values, NULL, true, 1);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the statistics of sale_order: %s", SPI_result_code_string(ret));
	if (SPI_processed != 1 ||
		!DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)))
		return;

	edata = OcSubTransaction(AnalyzeStep, NULL);
	if (edata == NULL)
		return;
	if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED || edata->sqlerrcode == ERRCODE_ADMIN_SHUTDOWN)
		ReThrowError(edata);
	ereport(LOG,
			(errmsg("omnichan worker: could not analyze the order tables: %s", edata->message)));
	FreeErrorData(edata);
}

/*
 * PullMaterialize
 *		One transaction of materialization: received orders of every active
 *		channel into Odoo quotations.  Sets PullMaterializeDue again when a
 *		whole batch was done (more may be waiting).
 */
void
PullMaterialize(void *arg)
{
	int			ret;
	bool		isnull;
	int32		n;
	bool		timing = message_level_is_interesting(DEBUG1);
	instr_time	t0,
				t1;

	PullMaterializeDue = false;
	if (timing)
		INSTR_TIME_SET_CURRENT(t0);
	ret = SPI_execute("SELECT omnichan.materialize_orders(NULL, " CppAsString2(MATERIALIZE_BATCH) ")",
					  false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not materialize orders: %s", SPI_result_code_string(ret));
	n = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (timing && n > 0)
	{
		INSTR_TIME_SET_CURRENT(t1);
		INSTR_TIME_SUBTRACT(t1, t0);
		elog(DEBUG1, "omnichan worker: materialized %d orders in %.3f ms", n, INSTR_TIME_GET_MILLISEC(t1));
	}
	if (n > 0)
	{
		PullMaterializeDue = true;
		MaterializedCount += n;
		if (MaterializedCount >= NextAnalyzeAt)
		{
			AnalyzeOrderTables();
			NextAnalyzeAt = NextAnalyzeAt < 100000 ? NextAnalyzeAt * 10 : PG_INT64_MAX;
		}
	}
}
