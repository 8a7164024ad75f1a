/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The launcher and the per-database sync workers.
 *
 * The launcher (a static background worker, started once recovery is over,
 * so it idles on a standby and starts on promotion) keeps one sync worker
 * running for each database in omnichan.databases.  It re-reads the list on
 * SIGHUP, stops the workers of databases removed from it, and restarts a
 * worker that exited with a backoff of 1 s, 2 s, 4 s ... up to 60 s (reset
 * after a minute of good health).
 *
 * A sync worker connects to its database and loops:
 *
 *	wait (latch | sockets of requests in flight | next due time), and take
 *	every request finished by then, so that one transaction covers many
 *	queue stock pushes and order pulls, when something calls for it
 *	record the outcomes of finished requests, and claim the jobs that may
 *	start now                                      (one transaction, committed
 *	                                                before any request is sent)
 *	send the claimed requests
 *
 * The claim runs only when it may find something: a commit woke us, requests
 * finished (room, retries, next steps), a push cycle ran, or a job's
 * not_before, a token or a rate limit is due; and at least every naptime.
 * Next to outcomes it runs in a subtransaction, so that its failure does not
 * take the outcomes with it.
 *
 * Each transaction runs under PG_TRY: an error (e.g. DROP EXTENSION while a
 * request is in flight) is logged, the transaction is rolled back, and the
 * worker waits for the extension to be there again; it never dies for it.
 * When it (re)finds the extension it re-queues the jobs a previous worker
 * left 'running' (a crash between claim and outcome: the request is sent
 * again, jobs are idempotent) and puts back change-capture triggers that are
 * missing (Odoo module upgrades can recreate tables).
 *
 * Housekeeping (retention of sync_log, finished jobs and finished progress
 * rows: omnichan.sync_log_retention) runs every min(60 s, 10 x naptime), at
 * most HOUSEKEEPING_BATCH rows per table and transaction; when a batch was
 * full it runs again in the next loop, so a large backlog goes away in
 * short transactions without waiting for the next interval.  Each pass also
 * runs a push cycle, for listings whose retry_at has come (no commit says so).
 *
 * SIGTERM stops the worker at once, mid-request: the jobs it had claimed stay
 * 'running' and the next worker re-queues them.  SIGHUP reloads the settings.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "access/xact.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "common/pg_prng.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "http.h"
#include "omnichan.h"
#include "pull.h"
#include "shmem.h"
#include "sync.h"
#include "throttle.h"

PGDLLEXPORT void omnichan_launcher_main(Datum arg);
PGDLLEXPORT void omnichan_worker_main(Datum arg);

/* ---------------------------------------------------------------- launcher */

#define MAX_BACKOFF_S	60

typedef struct DbWorker
{
	char		dbname[NAMEDATALEN];
	BackgroundWorkerHandle *handle;
	TimestampTz started_at;
	TimestampTz next_start;
	int			backoff_s;
	bool		wanted;
} DbWorker;

static DbWorker DbWorkers[OMNICHAN_MAX_DATABASES];
static int	NDbWorkers = 0;

static void LauncherSync(void);
static bool StartDbWorker(DbWorker *w);
static void LauncherSigusr1(SIGNAL_ARGS);

/*
 * OmnichanRegisterLauncher
 *		Registers the launcher with the postmaster (from _PG_init).
 */
void
OmnichanRegisterLauncher(void)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = 5;
	strlcpy(bgw.bgw_library_name, "omnichan", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "omnichan_launcher_main", BGW_MAXLEN);
	strlcpy(bgw.bgw_name, "omnichan launcher", BGW_MAXLEN);
	strlcpy(bgw.bgw_type, "omnichan launcher", BGW_MAXLEN);
	RegisterBackgroundWorker(&bgw);
}

/*
 * StartDbWorker
 *		Starts the sync worker of one database.
 */
static bool
StartDbWorker(DbWorker *w)
{
	BackgroundWorker bgw;

	memset(&bgw, 0, sizeof(bgw));
	bgw.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	bgw.bgw_start_time = BgWorkerStart_RecoveryFinished;
	bgw.bgw_restart_time = BGW_NEVER_RESTART;	/* the launcher does, with backoff */
	strlcpy(bgw.bgw_library_name, "omnichan", BGW_MAXLEN);
	strlcpy(bgw.bgw_function_name, "omnichan_worker_main", BGW_MAXLEN);
	snprintf(bgw.bgw_name, BGW_MAXLEN, "omnichan worker %s", w->dbname);
	strlcpy(bgw.bgw_type, "omnichan worker", BGW_MAXLEN);
	strlcpy(bgw.bgw_extra, w->dbname, BGW_EXTRALEN);
	bgw.bgw_notify_pid = MyProcPid;

	if (!RegisterDynamicBackgroundWorker(&bgw, &w->handle))
	{
		ereport(WARNING,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("could not start the omnichan worker of database \"%s\"", w->dbname),
				 errhint("Raise max_worker_processes: omnichan needs one worker per database in omnichan.databases, plus its launcher.")));
		w->handle = NULL;
		return false;
	}
	w->started_at = GetCurrentTimestamp();
	return true;
}

/*
 * LauncherSync
 *		Matches the running workers with omnichan.databases: starts missing
 *		ones (with backoff after an exit), stops unwanted ones.
 */
static void
LauncherSync(void)
{
	char	   *raw = pstrdup(omnichan_databases ? omnichan_databases : "");
	List	   *names = NIL;
	ListCell   *lc;
	TimestampTz now = GetCurrentTimestamp();
	int			i;

	if (!SplitIdentifierString(raw, ',', &names))
	{
		ereport(LOG,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid list syntax in parameter \"omnichan.databases\"")));
		names = NIL;
	}
	for (i = 0; i < NDbWorkers; i++)
		DbWorkers[i].wanted = false;
	foreach(lc, names)
	{
		char	   *name = (char *) lfirst(lc);

		for (i = 0; i < NDbWorkers; i++)
			if (strcmp(DbWorkers[i].dbname, name) == 0)
				break;
		if (i == NDbWorkers)
		{
			if (NDbWorkers == OMNICHAN_MAX_DATABASES)
			{
				ereport(LOG,
						(errmsg("omnichan serves at most %d databases; \"%s\" is ignored",
								OMNICHAN_MAX_DATABASES, name)));
				continue;
			}
			memset(&DbWorkers[i], 0, sizeof(DbWorker));
			strlcpy(DbWorkers[i].dbname, name, NAMEDATALEN);
			DbWorkers[i].backoff_s = 1;
			NDbWorkers++;
		}
		DbWorkers[i].wanted = true;
	}

	for (i = 0; i < NDbWorkers; i++)
	{
		DbWorker   *w = &DbWorkers[i];
		pid_t		pid;
		BgwHandleStatus status = BGWH_STOPPED;

		if (w->handle != NULL)
			status = GetBackgroundWorkerPid(w->handle, &pid);

		if (!w->wanted)
		{
			if (w->handle != NULL && status != BGWH_STOPPED)
				TerminateBackgroundWorker(w->handle);
			if (status == BGWH_STOPPED)
				w->handle = NULL;
			continue;
		}
		if (w->handle != NULL && status == BGWH_STOPPED)
		{
			/* it exited: restart after a backoff, shorter if it was healthy */
			if (TimestampDifferenceExceeds(w->started_at, now, 60 * 1000))
				w->backoff_s = 1;
			w->next_start = TimestampTzPlusMilliseconds(now, w->backoff_s * 1000);
			ereport(LOG,
					(errmsg("omnichan worker of database \"%s\" exited; restarting in %d s",
							w->dbname, w->backoff_s)));
			w->backoff_s = Min(w->backoff_s * 2, MAX_BACKOFF_S);
			w->handle = NULL;
		}
		if (w->handle == NULL && now >= w->next_start)
			StartDbWorker(w);
	}

	/* forget stopped, unwanted entries */
	for (i = NDbWorkers - 1; i >= 0; i--)
		if (!DbWorkers[i].wanted && DbWorkers[i].handle == NULL)
			DbWorkers[i] = DbWorkers[--NDbWorkers];
}

/*
 * LauncherSigusr1
 *		The postmaster's notice that a worker of ours started or exited
 *		(bgw_notify_pid): wake the launcher.  The launcher has no database
 *		connection, and the default SIGUSR1 handler of such a background
 *		worker only interrupts a wait without setting the latch: WaitLatch
 *		slept on until its one-second poll, so a worker was restarted up to a
 *		second later than its backoff said (2, 3, 5 s instead of 1, 2, 4 s).
 */
static void
LauncherSigusr1(SIGNAL_ARGS)
{
	int			save_errno = errno;

	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * omnichan_launcher_main
 *		Entry point of the launcher.
 */
void
omnichan_launcher_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	pqsignal(SIGUSR1, LauncherSigusr1);
	BackgroundWorkerUnblockSignals();

	for (;;)
	{
		/* poll once a second too, in case a notification is missed */
		long		timeout = 1000;
		TimestampTz now;
		int			i;

		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		LauncherSync();

		/* wake up for the next pending restart */
		now = GetCurrentTimestamp();
		for (i = 0; i < NDbWorkers; i++)
			if (DbWorkers[i].wanted && DbWorkers[i].handle == NULL)
			{
				long		secs;
				int			usecs;

				TimestampDifference(now, DbWorkers[i].next_start, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + usecs / 1000 + 1);
			}

		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 timeout, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/* ------------------------------------------------------------- sync worker */

/* rows deleted per table and housekeeping transaction */
#define HOUSEKEEPING_BATCH	10000

/* state of the worker */
static bool ExtensionReady = false;
static Oid	ExtensionOid = InvalidOid;
static TimestampTz NextHousekeeping = 0;
static bool HousekeepingMore = false;	/* a batch was full: again soon */
static TimestampTz NextConfigLoad = 0;
static bool ConfigMaybeChanged = false;	/* woken by a commit since the last load */
static TimestampTz PushDue = 0;	/* next push cycle; DT_NOEND = when woken */
static TimestampTz ClaimDue = 0;	/* next claim without another reason */
static SPIPlanPtr GroupsPlan = NULL;
static SPIPlanPtr ClaimPlan = NULL;
static SPIPlanPtr OutcomesPlan = NULL;
static SPIPlanPtr OutcomesByIdPlan = NULL;

/* what an outcome sets in a job (r: the outcome) */
#define OUTCOME_SET \
	"SET state = r.state, response_status = NULLIF(r.status, 0), " \
	"    response_headers = r.headers::jsonb, response_body = r.body, error = r.error, " \
	"    finished_at = CASE WHEN r.state = 'queued' THEN NULL ELSE pg_catalog.clock_timestamp() END, " \
	"    not_before = CASE WHEN r.state = 'queued' " \
	"                      THEN pg_catalog.clock_timestamp() + pg_catalog.make_interval(secs => r.delay) " \
	"                      ELSE j.not_before END "
/*
 * The claim (ClaimAndStart): per (channel, operation) group, its next due
 * jobs in order, at most n, locked with SKIP LOCKED, then set running.
 * $1 channel ids (0 = none), $2 operations, $3 how many, $5 whether the
 * group is ready (its channel's access token, see SyncChannelReady: a group
 * that is not ready starts only plain requests), all int4[]/text[]/bool[]
 * of one element per group; $4 now.  One text, also returned by
 * omnichan._claim_statement() for the isolation test of the claim
 * (test/specs/job_claim.spec), which thus runs this very statement.
 */
static const char ClaimSql[] =
"WITH lim AS ("
"  SELECT * FROM ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::text[]), "
"                           pg_catalog.unnest($3::int4[]), pg_catalog.unnest($5::bool[])) "
"       AS l(channel_id, operation, n, ready)"
"), locked AS ("
"  SELECT c.id, c.ctid FROM lim l CROSS JOIN LATERAL ("
"    SELECT j.id, j.ctid FROM omnichan.job j "
"     WHERE COALESCE(j.channel_id, 0) = l.channel_id AND j.operation = l.operation "
"       AND j.state = 'queued' AND j.not_before <= $4 "
"       AND (l.ready OR (j.payload IS NULL AND j.operation <> 'auth')) "
"     ORDER BY j.not_before, j.id LIMIT l.n "
"       FOR UPDATE OF j SKIP LOCKED) c"
") "
"UPDATE omnichan.job j SET state = 'running', attempts = j.attempts + 1, "
"       started_at = pg_catalog.clock_timestamp() "
"  FROM locked WHERE j.ctid = locked.ctid AND j.id = locked.id "
"RETURNING j.id, COALESCE(j.channel_id, 0), j.operation, j.method, j.url, "
"          j.headers, j.body, j.attempts, j.max_attempts, j.payload::text, j.ctid";

static MemoryContext RequestsCxt = NULL;
static HttpRequest **Inflight = NULL;	/* requests in flight */
static int	NInflight = 0;

PG_FUNCTION_INFO_V1(omnichan_claim_statement);

static void WorkerExit(int code, Datum arg);
static void ReportWaiting(void);
static bool RunInTransaction(void (*fn) (void *), void *arg, const char *what);
static void CheckExtension(void *arg);
static void StartupTasks(void);
static void RecordOutcomes(void *arg);
static void ClaimAndStart(void *arg);
static void OutcomesAndClaim(void *arg);
static void ClaimInSubtransaction(void *arg);
static bool IsConnectorJob(HttpRequest *req);
static void HeadersFromJsonb(HttpRequest *req, Jsonb *jb);
static void Housekeeping(void *arg);
static double BackoffSeconds(int attempt);
static void PushCycle(void *arg);
static SPIPlanPtr KeepPlan(const char *sql, int nargs, Oid *argtypes, int options);

typedef struct Outcomes
{
	HttpRequest **done;
	ThrottleReport *reports;	/* what each did to its channel's flow control */
	int			ndone;
} Outcomes;

typedef struct ClaimResult
{
	TimestampTz next_due;		/* 0 = nothing pending */
	int			started;
} ClaimResult;

/* one outcome-and-claim transaction */
typedef struct LoopStep
{
	Outcomes	outcomes;		/* ndone = 0: none to record */
	bool		claim;			/* claim too */
	ClaimResult result;
	bool		outcomes_recorded;	/* progress, for the caller after an error */
	bool		claim_tried;
	bool		claim_failed;	/* the claim's subtransaction was rolled back */
} LoopStep;

/* WorkerExit: withdraw the latch and release libcurl */
static void
WorkerExit(int code, Datum arg)
{
	OmnichanSetWorkerLatch(MyDatabaseId, NULL);
	HttpShutdown();
}

/*
 * omnichan_claim_statement
 *		omnichan._claim_statement(): the text of the statement the worker
 *		claims jobs with (ClaimSql).
 */
Datum
omnichan_claim_statement(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(ClaimSql));
}

/*
 * ReportWaiting
 *		What pg_stat_activity shows while the worker waits: state 'active'
 *		and "waiting for N request(s) in flight" while it has requests in
 *		flight, else 'idle'.  (RunInTransaction leaves 'idle' and the name of
 *		its step: without this, a worker waiting for a slow answer showed
 *		'idle', "claiming requests".)
 */
static void
ReportWaiting(void)
{
	char		activity[64];

	if (NInflight > 0)
	{
		snprintf(activity, sizeof(activity), "waiting for %d request(s) in flight", NInflight);
		pgstat_report_activity(STATE_RUNNING, activity);
	}
	else
		pgstat_report_activity(STATE_IDLE, NULL);
}

/*
 * RunInTransaction
 *		Runs fn inside a transaction with SPI and a snapshot.  On error: log
 *		it, roll back, and report false (the worker goes on).
 */
static bool
RunInTransaction(void (*fn) (void *), void *arg, const char *what)
{
	MemoryContext old = CurrentMemoryContext;
	volatile bool ok = true;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, what);
		fn(arg);
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(old);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG,
				(errmsg("omnichan worker: %s failed: %s", what, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(old);
	pgstat_report_stat(false);
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * CheckExtension
 *		Is omnichan installed (and is it the same installation as before)?
 */
static void
CheckExtension(void *arg)
{
	Oid			oid = get_extension_oid("omnichan", true);

	if (!OidIsValid(oid))
	{
		ExtensionReady = false;
		ExtensionOid = InvalidOid;
		return;
	}
	if (oid != ExtensionOid || !ExtensionReady)
	{
		ExtensionOid = oid;
		StartupTasks();
		ExtensionReady = true;
	}
}

/*
 * StartupTasks
 *		First contact with an installation of the extension: re-queue the
 *		jobs a previous worker left running, put missing triggers back,
 *		restore circuit states, load the flow-control configuration.
 */
static void
StartupTasks(void)
{
	int			ret;
	uint64		row;

	ret = SPI_execute("UPDATE omnichan.job SET state = 'queued', not_before = pg_catalog.now() "
					  " WHERE state = 'running'", false, 0);
	if (ret != SPI_OK_UPDATE)
		elog(ERROR, "could not re-queue interrupted jobs: %s", SPI_result_code_string(ret));
	if (SPI_processed > 0)
		ereport(LOG,
				(errmsg("omnichan worker: re-queued %llu request(s) interrupted by a restart",
						(unsigned long long) SPI_processed)));

	ret = SPI_execute("SELECT omnichan.capture_install()", false, 0);
	if (ret == SPI_OK_SELECT && SPI_processed == 1)
	{
		bool		isnull;
		int32		created = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0],
														  SPI_tuptable->tupdesc, 1, &isnull));

		if (created > 0)
			ereport(WARNING,
					(errmsg("omnichan worker: re-created %d missing change-capture trigger(s)", created),
					 errdetail("An Odoo module upgrade may have recreated tables; changes made while the triggers were missing were not captured."),
					 errhint("Run omnichan.full_resync() for each channel to push every listing again.")));
	}

	ret = SPI_execute("SELECT channel_id, circuit, circuit_opened_at, consecutive_failures "
					  "  FROM omnichan.channel_state WHERE circuit <> 'closed'", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read omnichan.channel_state: %s", SPI_result_code_string(ret));
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		int32		id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *circuit = SPI_getvalue(tup, desc, 2);
		Datum		opened = SPI_getbinval(tup, desc, 3, &isnull);
		TimestampTz at = isnull ? GetCurrentTimestamp() : DatumGetTimestampTz(opened);
		int			failures = DatumGetInt32(SPI_getbinval(tup, desc, 4, &isnull));

		ThrottleRestoreCircuit(id, strcmp(circuit, "open") == 0 ? CIRCUIT_OPEN : CIRCUIT_HALF_OPEN,
							   at, failures);
	}
	ThrottleLoadConfig();
	NextConfigLoad = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
	PushDue = 0;
}

/*
 * KeepPlan
 *		Prepares a statement once for the life of the worker.  Plans follow
 *		DROP/CREATE EXTENSION: the plan cache re-plans them when the tables
 *		they use change.  options: CURSOR_OPT_* (0 = the plan cache chooses
 *		between custom and generic plans).
 */
static SPIPlanPtr
KeepPlan(const char *sql, int nargs, Oid *argtypes, int options)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, argtypes, options);

	if (plan == NULL)
		elog(ERROR, "could not prepare a worker statement: %s", SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep a worker statement");
	return plan;
}

/* PushCycle: RunInTransaction wrapper of SyncPushCycle */
static void
PushCycle(void *arg)
{
	SyncPushCycle((TimestampTz *) arg);
}

/* BackoffSeconds: exponential, capped, with jitter in [delay/2, delay] */
static double
BackoffSeconds(int attempt)
{
	double		base = omnichan_retry_base_delay / 1000.0;
	double		max = omnichan_retry_max_delay / 1000.0;
	double		delay = Min(max, base * pow(2.0, Max(attempt - 1, 0)));

	return delay / 2.0 + delay / 2.0 * pg_prng_double(&pg_global_prng_state);
}

/*
 * RecordOutcomes
 *		Writes the outcome of finished requests: the job (succeeded, failed,
 *		or queued again for a retry), one sync_log row per attempt, and the
 *		channels' state.  One statement in the common case: the jobs are
 *		found by the ctid their claim returned (no index descent); a job
 *		updated by someone else in between (its row moved) is found by its
 *		id by a second statement, run only then.  What each channel's state
 *		takes from the batch (last error, circuit) is worked out here.
 */
static void
RecordOutcomes(void *arg)
{
	Outcomes   *o = (Outcomes *) arg;
	int			n = o->ndone;
	const char **state_of = palloc(sizeof(char *) * n);
	char	  **error_of = palloc(sizeof(char *) * n);
	Datum	   *ids = palloc(sizeof(Datum) * n);
	Datum	   *tids = palloc(sizeof(Datum) * n);
	Datum	   *states = palloc(sizeof(Datum) * n);
	Datum	   *statuses = palloc(sizeof(Datum) * n);
	Datum	   *rheaders = palloc(sizeof(Datum) * n);
	Datum	   *bodies = palloc(sizeof(Datum) * n);
	Datum	   *errors = palloc(sizeof(Datum) * n);
	Datum	   *delays = palloc(sizeof(Datum) * n);
	Datum	   *channels = palloc(sizeof(Datum) * n);
	Datum	   *ops = palloc(sizeof(Datum) * n);
	Datum	   *methods = palloc(sizeof(Datum) * n);
	Datum	   *urls = palloc(sizeof(Datum) * n);
	Datum	   *attempts = palloc(sizeof(Datum) * n);
	Datum	   *durations = palloc(sizeof(Datum) * n);
	Datum	   *outcomes = palloc(sizeof(Datum) * n);
	bool	   *enulls = palloc(sizeof(bool) * n);
	bool	   *hnulls = palloc(sizeof(bool) * n);
	bool	   *bnulls = palloc(sizeof(bool) * n);
	/* per channel: the latest (highest job id) error, circuit change, report */
	int			nch = 0;
	Datum	   *chids = palloc(sizeof(Datum) * n);
	Datum	   *choks = palloc(sizeof(Datum) * n);
	Datum	   *cherrs = palloc(sizeof(Datum) * n);
	Datum	   *chcircuits = palloc(sizeof(Datum) * n);
	Datum	   *chopened = palloc(sizeof(Datum) * n);
	Datum	   *chfailures = palloc(sizeof(Datum) * n);
	bool	   *cherrnulls = palloc(sizeof(bool) * n);
	bool	   *chcircnulls = palloc(sizeof(bool) * n);
	bool	   *chopnulls = palloc(sizeof(bool) * n);
	int64	   *cherr_job = palloc(sizeof(int64) * n);
	int64	   *chcirc_job = palloc(sizeof(int64) * n);
	int64	   *chlast_job = palloc(sizeof(int64) * n);
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[21];
	int			i,
				ret,
				updated;
	bool		isnull;

	for (i = 0; i < n; i++)
	{
		HttpRequest *req = o->done[i];
		ThrottleReport report = o->reports[i];
		const char *state;
		double		delay = 0;
		char	   *error = req->error;
		double		throttle = SyncThrottled(req);
		int			c;

		if (throttle >= 0 && req->attempt < req->max_attempts)
		{
			state = "queued";	/* throttled inside a 2xx answer */
			delay = Max(throttle, BackoffSeconds(req->attempt));
		}
		else if (req->error == NULL && req->status >= 200 && req->status < 300)
			state = "succeeded";
		else if (SyncRetryAfterAuthFailure(req) && req->attempt < req->max_attempts)
			state = "queued";	/* token expired or revoked: a new one, then once more */
		else if (req->permanent ||
				 (req->error == NULL && req->status != 429 && req->status < 500))
			state = "failed";	/* 3xx (no redirects followed) and 4xx */
		else if (req->attempt >= req->max_attempts)
		{
			state = "failed";
			error = psprintf("gave up after %d attempts: %s", req->attempt,
							 req->error ? req->error : psprintf("HTTP %d", req->status));
		}
		else
		{
			state = "queued";	/* network error, 429 or 5xx: retry */
			delay = Max(BackoffSeconds(req->attempt), req->retry_after_s);
		}
		if (error == NULL && strcmp(state, "succeeded") != 0)
			error = psprintf("HTTP %d", req->status);

		state_of[i] = state;
		error_of[i] = error;
		ids[i] = Int64GetDatum(req->job_id);
		tids[i] = PointerGetDatum(&req->job_tid);
		states[i] = CStringGetTextDatum(state);
		statuses[i] = Int32GetDatum(req->status);
		hnulls[i] = (req->nresponse_headers == 0);
		rheaders[i] = hnulls[i] ? (Datum) 0 : CStringGetTextDatum(HttpResponseHeadersJson(req));
		/* a token answer ("auth", "auth_*": access, refresh, restricted data tokens) is not kept */
		bnulls[i] = (req->error != NULL || strcmp(req->operation, "auth") == 0 ||
					 strncmp(req->operation, "auth_", 5) == 0);
		bodies[i] = bnulls[i] ? (Datum) 0
			: PointerGetDatum(cstring_to_text_with_len(req->response.data, req->response.len));
		enulls[i] = (error == NULL);
		errors[i] = enulls[i] ? (Datum) 0 : CStringGetTextDatum(error);
		delays[i] = Float8GetDatum(delay);
		channels[i] = Int32GetDatum(req->channel_id);
		ops[i] = CStringGetTextDatum(req->operation);
		methods[i] = CStringGetTextDatum(req->method);
		urls[i] = CStringGetTextDatum(HttpRedactUrl(req->url));
		attempts[i] = Int32GetDatum(req->attempt);
		durations[i] = Float8GetDatum(req->duration_ms);
		outcomes[i] = CStringGetTextDatum(strcmp(state, "queued") == 0 ? "retry" : state);

		if (report.circuit_changed && req->channel_id != 0)
			ereport(LOG,
					(errmsg("omnichan worker: circuit breaker of channel %d is now %s (%d consecutive failures)",
							req->channel_id, CircuitName(report.circuit), report.consecutive_failures)));
		if (req->channel_id == 0)
			continue;

		/* the channel's state: from its requests of highest job id */
		for (c = 0; c < nch; c++)
			if (DatumGetInt32(chids[c]) == req->channel_id)
				break;
		if (c == nch)
		{
			chids[c] = Int32GetDatum(req->channel_id);
			choks[c] = BoolGetDatum(false);
			cherrnulls[c] = chcircnulls[c] = true;
			cherr_job[c] = chcirc_job[c] = chlast_job[c] = PG_INT64_MIN;
			nch++;
		}
		if (strcmp(state, "succeeded") == 0)
			choks[c] = BoolGetDatum(true);
		if (error != NULL && req->job_id > cherr_job[c])
		{
			cherr_job[c] = req->job_id;
			cherrs[c] = errors[i];
			cherrnulls[c] = false;
		}
		if (report.circuit_changed && req->job_id > chcirc_job[c])
		{
			chcirc_job[c] = req->job_id;
			chcircuits[c] = CStringGetTextDatum(CircuitName(report.circuit));
			chcircnulls[c] = false;
		}
		if (req->job_id > chlast_job[c])
		{
			chlast_job[c] = req->job_id;
			chopnulls[c] = (report.circuit != CIRCUIT_OPEN);
			chopened[c] = chopnulls[c] ? (Datum) 0 : TimestampTzGetDatum(report.circuit_opened_at);
			chfailures[c] = Int32GetDatum(report.consecutive_failures);
		}
	}

#define ARR(d, nulls, typ, len, byval, align) \
	PointerGetDatum(construct_md_array(d, nulls, 1, dims, lbs, typ, len, byval, align))
	dims[0] = n;
	values[0] = ARR(ids, NULL, INT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[1] = ARR(tids, NULL, TIDOID, sizeof(ItemPointerData), false, TYPALIGN_SHORT);
	values[2] = ARR(states, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	values[3] = ARR(statuses, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[4] = ARR(rheaders, hnulls, TEXTOID, -1, false, TYPALIGN_INT);
	values[5] = ARR(bodies, bnulls, BYTEAOID, -1, false, TYPALIGN_INT);
	values[6] = ARR(errors, enulls, TEXTOID, -1, false, TYPALIGN_INT);
	values[7] = ARR(delays, NULL, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[8] = ARR(channels, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[9] = ARR(ops, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	values[10] = ARR(methods, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	values[11] = ARR(urls, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	values[12] = ARR(attempts, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[13] = ARR(durations, NULL, FLOAT8OID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[14] = ARR(outcomes, NULL, TEXTOID, -1, false, TYPALIGN_INT);
	dims[0] = nch;
	values[15] = ARR(chids, NULL, INT4OID, 4, true, TYPALIGN_INT);
	values[16] = ARR(choks, NULL, BOOLOID, 1, true, TYPALIGN_CHAR);
	values[17] = ARR(cherrs, cherrnulls, TEXTOID, -1, false, TYPALIGN_INT);
	values[18] = ARR(chcircuits, chcircnulls, TEXTOID, -1, false, TYPALIGN_INT);
	values[19] = ARR(chopened, chopnulls, TIMESTAMPTZOID, 8, FLOAT8PASSBYVAL, TYPALIGN_DOUBLE);
	values[20] = ARR(chfailures, NULL, INT4OID, 4, true, TYPALIGN_INT);
#undef ARR

	/*
	 * A generic plan (its shape does not depend on the arrays: a TID scan
	 * per job, an insert per attempt, an upsert per channel), prepared once.
	 */
	if (OutcomesPlan == NULL)
	{
		Oid			argtypes[21] = {INT8ARRAYOID, TIDARRAYOID, TEXTARRAYOID, INT4ARRAYOID,
			TEXTARRAYOID, BYTEAARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID, INT4ARRAYOID,
			TEXTARRAYOID, TEXTARRAYOID, TEXTARRAYOID, INT4ARRAYOID, FLOAT8ARRAYOID,
			TEXTARRAYOID, INT4ARRAYOID, BOOLARRAYOID, TEXTARRAYOID, TEXTARRAYOID,
		TIMESTAMPTZARRAYOID, INT4ARRAYOID};

		OutcomesPlan = KeepPlan("WITH upd AS ("
								"  UPDATE omnichan.job j " OUTCOME_SET
								"    FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::tid[]), "
								"         pg_catalog.unnest($3::text[]), pg_catalog.unnest($4::int4[]), "
								"         pg_catalog.unnest($5::text[]), pg_catalog.unnest($6::bytea[]), "
								"         pg_catalog.unnest($7::text[]), pg_catalog.unnest($8::float8[])) "
								"         AS r(id, tid, state, status, headers, body, error, delay) "
								"   WHERE j.ctid = r.tid AND j.id = r.id AND j.state = 'running' "
								"  RETURNING 1"
								"), log AS ("
								"  INSERT INTO omnichan.sync_log (channel_id, job_id, operation, method, url, attempt, "
								"                                 status, duration_ms, outcome, error) "
								"  SELECT NULLIF(r.channel_id, 0), r.id, r.operation, r.method, r.url, r.attempt, "
								"         NULLIF(r.status, 0), r.duration, r.outcome, r.error "
								"    FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($4::int4[]), "
								"         pg_catalog.unnest($7::text[]), pg_catalog.unnest($9::int4[]), "
								"         pg_catalog.unnest($10::text[]), pg_catalog.unnest($11::text[]), "
								"         pg_catalog.unnest($12::text[]), pg_catalog.unnest($13::int4[]), "
								"         pg_catalog.unnest($14::float8[]), pg_catalog.unnest($15::text[])) "
								"         AS r(id, status, error, channel_id, operation, method, url, attempt, "
								"              duration, outcome)"
								"), ch AS ("
								"  SELECT * FROM ROWS FROM (pg_catalog.unnest($16::int4[]), pg_catalog.unnest($17::bool[]), "
								"         pg_catalog.unnest($18::text[]), pg_catalog.unnest($19::text[]), "
								"         pg_catalog.unnest($20::timestamptz[]), pg_catalog.unnest($21::int4[])) "
								"         AS ch(channel_id, ok, err, circuit, opened_at, failures) "
								"   WHERE EXISTS (SELECT 1 FROM omnichan.channel c WHERE c.id = ch.channel_id)"
								"), st AS ("
								"  INSERT INTO omnichan.channel_state AS s (channel_id, last_success_at, last_error, "
								"              last_error_at, circuit, circuit_opened_at, consecutive_failures) "
								"  SELECT ch.channel_id, CASE WHEN ch.ok THEN pg_catalog.clock_timestamp() END, ch.err, "
								"         CASE WHEN ch.err IS NOT NULL THEN pg_catalog.clock_timestamp() END, "
								"         COALESCE(ch.circuit, 'closed'), ch.opened_at, ch.failures FROM ch "
								"  ON CONFLICT (channel_id) DO UPDATE SET "
								"     last_success_at = COALESCE(excluded.last_success_at, s.last_success_at), "
								"     last_error = COALESCE(excluded.last_error, s.last_error), "
								"     last_error_at = COALESCE(excluded.last_error_at, s.last_error_at), "
								"     circuit = CASE WHEN excluded.circuit IS DISTINCT FROM s.circuit "
								"                     AND (SELECT c.circuit FROM ch c WHERE c.channel_id = s.channel_id) IS NOT NULL "
								"                    THEN excluded.circuit ELSE s.circuit END, "
								"     circuit_opened_at = CASE WHEN excluded.circuit = 'open' THEN excluded.circuit_opened_at "
								"                              WHEN (SELECT c.circuit FROM ch c WHERE c.channel_id = s.channel_id) IS NOT NULL "
								"                              THEN NULL ELSE s.circuit_opened_at END, "
								"     consecutive_failures = excluded.consecutive_failures"
								") "
								"SELECT pg_catalog.count(*)::int4 FROM upd",
								21, argtypes, CURSOR_OPT_GENERIC_PLAN);
	}
	ret = SPI_execute_plan(OutcomesPlan, values, NULL, false, 0);
	if (ret != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not record request outcomes: %s", SPI_result_code_string(ret));
	updated = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/* some jobs were not where their claim left them: by id */
	if (updated < n)
	{
		if (OutcomesByIdPlan == NULL)
			OutcomesByIdPlan = KeepPlan("UPDATE omnichan.job j " OUTCOME_SET
										"  FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::text[]), "
										"       pg_catalog.unnest($3::int4[]), pg_catalog.unnest($4::text[]), "
										"       pg_catalog.unnest($5::bytea[]), pg_catalog.unnest($6::text[]), "
										"       pg_catalog.unnest($7::float8[])) "
										"       AS r(id, state, status, headers, body, error, delay) "
										" WHERE j.id = r.id AND j.state = 'running'",
										7, (Oid[]) {INT8ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TEXTARRAYOID,
										BYTEAARRAYOID, TEXTARRAYOID, FLOAT8ARRAYOID}, 0);
		ret = SPI_execute_plan(OutcomesByIdPlan, (Datum[]) {values[0], values[2], values[3],
											values[4], values[5], values[6], values[7]},
							   NULL, false, 0);
		if (ret != SPI_OK_UPDATE)
			elog(ERROR, "could not record request outcomes: %s", SPI_result_code_string(ret));
	}

	/* connector jobs: tokens, per-listing results (one UPDATE for all) */
	SyncCompleteBegin();
	for (i = 0; i < n; i++)
		if (o->done[i]->channel_id != 0)
			SyncComplete(o->done[i], state_of[i], error_of[i]);
	SyncCompleteFlush();
}

/*
 * ClaimAndStart
 *		Claims the jobs that may start now (within every channel's tokens,
 *		concurrency and circuit, and the worker's total), commits the claim
 *		(by returning: the caller commits), and remembers them to start.
 */
static void
ClaimAndStart(void *arg)
{
	ClaimResult *result = (ClaimResult *) arg;
	TimestampTz now = GetCurrentTimestamp();
	int			room = omnichan_http_max_inflight - NInflight;
	int			ngroups;
	SPITupleTable *groups;
	Datum	   *gch,
			   *gop,
			   *glim,
			   *gready;
	int			nclaim = 0;
	uint64		row;
	int			ret;
	int			dims[1];
	int			lbs[1] = {1};
	Datum		values[5];

	result->next_due = 0;
	result->started = 0;

	/*
	 * The (channel, operation) groups with queued work and the first due
	 * time of each: a loose index scan over job_queue_group_idx, so the
	 * cost grows with the number of groups, not with the queue's length.
	 * A group's first entry in the index is its first due job, so one
	 * descent per group gives both.  A generic plan: a custom plan, which
	 * the plan cache kept choosing, meant planning the recursive CTE at
	 * every claim.
	 */
	if (GroupsPlan == NULL)
		GroupsPlan = KeepPlan("WITH RECURSIVE g (ch, op, first) AS ("
							  "  (SELECT COALESCE(j.channel_id, 0), j.operation, j.not_before FROM omnichan.job j "
							  "    WHERE j.state = 'queued' "
							  "    ORDER BY COALESCE(j.channel_id, 0), j.operation, j.not_before LIMIT 1) "
							  "  UNION ALL "
							  "  SELECT n.ch, n.op, n.first FROM g CROSS JOIN LATERAL ("
							  "    SELECT COALESCE(j.channel_id, 0) AS ch, j.operation AS op, j.not_before AS first "
							  "      FROM omnichan.job j "
							  "     WHERE j.state = 'queued' AND (COALESCE(j.channel_id, 0), j.operation) > (g.ch, g.op) "
							  "     ORDER BY COALESCE(j.channel_id, 0), j.operation, j.not_before LIMIT 1) n"
							  ") "
							  "SELECT g.ch, g.op, g.first <= $1, g.first FROM g "
							  " WHERE NOT EXISTS (SELECT 1 FROM omnichan.channel_state s "
							  "                    WHERE s.channel_id = g.ch AND s.paused)",
							  1, (Oid[]) {TIMESTAMPTZOID}, CURSOR_OPT_GENERIC_PLAN);
	values[0] = TimestampTzGetDatum(now);
	ret = SPI_execute_plan(GroupsPlan, values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read the job queue: %s", SPI_result_code_string(ret));
	ngroups = SPI_processed;
	groups = SPI_tuptable;
	gch = palloc(sizeof(Datum) * Max(ngroups, 1));
	gop = palloc(sizeof(Datum) * Max(ngroups, 1));
	glim = palloc(sizeof(Datum) * Max(ngroups, 1));
	gready = palloc(sizeof(Datum) * Max(ngroups, 1));

	/*
	 * Reload the flow-control configuration before starting anything when a
	 * commit woke us since the last load (a new channel, rate_limit_set, and
	 * the jobs queued right after it must not start under the old limits),
	 * and at least once a second.
	 */
	if (ngroups > 0 && (ConfigMaybeChanged || now >= NextConfigLoad))
	{
		ThrottleLoadConfig();
		NextConfigLoad = TimestampTzPlusMilliseconds(now, 1000);
		ConfigMaybeChanged = false;
	}

	for (row = 0; row < (uint64) ngroups && room > 0; row++)
	{
		HeapTuple	tup = groups->vals[row];
		TupleDesc	desc = groups->tupdesc;
		bool		isnull;
		int32		ch = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		char	   *op = SPI_getvalue(tup, desc, 2);
		bool		due = DatumGetBool(SPI_getbinval(tup, desc, 3, &isnull));
		TimestampTz first = DatumGetTimestampTz(SPI_getbinval(tup, desc, 4, &isnull));
		TimestampTz retry_at = 0;
		int			allowed;
		bool		ready;

		if (!due)
		{
			if (result->next_due == 0 || first < result->next_due)
				result->next_due = first;
			continue;
		}
		ready = (ch == 0 || SyncChannelReady(ch, op, now));
		if (!ready)
		{
			/* waiting for a token: its request may have just been queued */
			TimestampTz soon = TimestampTzPlusMilliseconds(now, 100);

			if (result->next_due == 0 || soon < result->next_due)
				result->next_due = soon;
		}
		allowed = Min(ThrottleAllowance(ch, op, now, &retry_at), room);
		if (allowed <= 0)
		{
			if (retry_at != 0 && (result->next_due == 0 || retry_at < result->next_due))
				result->next_due = retry_at;
			continue;
		}
		gch[nclaim] = Int32GetDatum(ch);
		gop[nclaim] = CStringGetTextDatum(op);
		glim[nclaim] = Int32GetDatum(allowed);
		gready[nclaim] = BoolGetDatum(ready);
		nclaim++;
		room -= allowed;
	}
	if (nclaim == 0)
		return;

	dims[0] = nclaim;
	values[0] = PointerGetDatum(construct_md_array(gch, NULL, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
	values[1] = PointerGetDatum(construct_md_array(gop, NULL, 1, dims, lbs, TEXTOID, -1, false, TYPALIGN_INT));
	values[2] = PointerGetDatum(construct_md_array(glim, NULL, 1, dims, lbs, INT4OID, 4, true, TYPALIGN_INT));
	values[3] = TimestampTzGetDatum(now);
	values[4] = PointerGetDatum(construct_md_array(gready, NULL, 1, dims, lbs, BOOLOID, 1, true, TYPALIGN_CHAR));
	/*
	 * A generic plan: its shape does not depend on the values (one index
	 * scan of job_queue_group_idx per group, LIMIT n, then the locked row
	 * by its ctid: no second index descent per job), and the custom plans the plan cache would otherwise keep
	 * choosing (they know the arrays' lengths) cost a planning of this
	 * statement per claim, about half a millisecond.
	 */
	if (ClaimPlan == NULL)
		ClaimPlan = KeepPlan(ClaimSql, 5,
							 (Oid[]) {INT4ARRAYOID, TEXTARRAYOID, INT4ARRAYOID, TIMESTAMPTZOID, BOOLARRAYOID},
							 CURSOR_OPT_GENERIC_PLAN);
	ret = SPI_execute_plan(ClaimPlan, values, NULL, false, 0);
	if (ret != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "could not claim jobs: %s", SPI_result_code_string(ret));

	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		HttpRequest *req = HttpNew(RequestsCxt);
		MemoryContext old = MemoryContextSwitchTo(req->cxt);
		Datum		d;

		req->job_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));
		req->channel_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		req->operation = SPI_getvalue(tup, desc, 3);
		req->method = SPI_getvalue(tup, desc, 4);
		req->url = SPI_getvalue(tup, desc, 5);
		HeadersFromJsonb(req, DatumGetJsonbP(SPI_getbinval(tup, desc, 6, &isnull)));
		d = SPI_getbinval(tup, desc, 7, &isnull);
		if (!isnull)
		{
			bytea	   *b = DatumGetByteaPCopy(d);

			req->body = VARDATA_ANY(b);
			req->body_len = VARSIZE_ANY_EXHDR(b);
		}
		req->attempt = DatumGetInt32(SPI_getbinval(tup, desc, 8, &isnull));
		req->max_attempts = DatumGetInt32(SPI_getbinval(tup, desc, 9, &isnull));
		req->payload = SPI_getvalue(tup, desc, 10);
		req->job_tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(tup, desc, 11, &isnull));
		MemoryContextSwitchTo(old);

		ThrottleStart(req->channel_id, req->operation, now);
		Inflight[NInflight++] = req;
		result->started++;
	}
}

/*
 * HeadersFromJsonb
 *		The request headers of a job ("Name: value" strings) from its headers
 *		object: what "key || ': ' || value" over jsonb_each_text gives, read
 *		in place (a set-returning function per claimed job cost about a
 *		microsecond for nothing when, as usual, there are none).  A JSON
 *		null sends no header.
 */
static void
HeadersFromJsonb(HttpRequest *req, Jsonb *jb)
{
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	char	   *key = NULL;
	int			n = JB_ROOT_IS_OBJECT(jb) ? JB_ROOT_COUNT(jb) : 0;

	req->headers = palloc(sizeof(char *) * Max(n, 1));
	if (n == 0)
		return;
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		char	   *value;

		if (tok == WJB_KEY)
		{
			key = pnstrdup(v.val.string.val, v.val.string.len);
			continue;
		}
		if (tok != WJB_VALUE || key == NULL || req->nheaders >= n)
			continue;
		switch (v.type)
		{
			case jbvString:
				value = pnstrdup(v.val.string.val, v.val.string.len);
				break;
			case jbvNumeric:
				value = DatumGetCString(DirectFunctionCall1(numeric_out,
															NumericGetDatum(v.val.numeric)));
				break;
			case jbvBool:
				value = v.val.boolean ? "true" : "false";
				break;
			case jbvBinary:
				value = JsonbToCString(NULL, v.val.binary.data, v.val.binary.len);
				break;
			default:
				value = NULL;	/* null */
				break;
		}
		if (value != NULL)
			req->headers[req->nheaders++] = psprintf("%s: %s", key, value);
		key = NULL;
	}
}

/*
 * OutcomesAndClaim
 *		Records the outcomes of finished requests, then claims the jobs that
 *		may start (the caller commits both, then sends): one transaction
 *		instead of two in the common case where requests finish while others
 *		wait in the queue.  The claim sees the outcomes (room in the channels,
 *		next steps queued by the connectors).
 */
static void
OutcomesAndClaim(void *arg)
{
	LoopStep   *step = (LoopStep *) arg;

	if (step->outcomes.ndone > 0)
	{
		RecordOutcomes(&step->outcomes);
		step->outcomes_recorded = true;
	}
	if (step->claim)
	{
		step->claim_tried = true;
		if (step->outcomes.ndone > 0)
			ClaimInSubtransaction(step);
		else
			ClaimAndStart(&step->result);
	}
}

/* ClaimInSubtransaction's step */
static void
ClaimStep(void *arg)
{
	ClaimAndStart(&((LoopStep *) arg)->result);
}

/*
 * ClaimInSubtransaction
 *		ClaimAndStart in a subtransaction of the outcome transaction: when it
 *		fails, it is logged and rolled back, the requests it prepared are
 *		forgotten, and the outcomes are still committed.
 */
static void
ClaimInSubtransaction(void *arg)
{
	LoopStep   *step = (LoopStep *) arg;
	int			before = NInflight;
	ErrorData  *edata = OcSubTransaction(ClaimStep, step);
	int			i;

	if (edata == NULL)
		return;
	ereport(LOG,
			(errmsg("omnichan worker: claiming requests failed: %s", edata->message),
			 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
	FreeErrorData(edata);
	for (i = before; i < NInflight; i++)
		HttpFree(Inflight[i]);
	NInflight = before;
	step->result.started = 0;
	step->claim_failed = true;
}

/*
 * IsConnectorJob
 *		A job built by a connector (a push, a pull step, a token request), as
 *		opposed to a plain omnichan.http_enqueue request: only those can make
 *		a push cycle necessary when they finish.
 */
static bool
IsConnectorJob(HttpRequest *req)
{
	return req->channel_id != 0 &&
		(req->payload != NULL || strncmp(req->operation, "auth", 4) == 0);
}

/*
 * HousekeepingIntervalMs
 *		Every minute, or 10 naptimes when that is shorter (tests).
 */
static int
HousekeepingIntervalMs(void)
{
	return (int) Min((int64) 60 * 1000, (int64) omnichan_naptime * 10);
}

/*
 * Housekeeping
 *		Bounded retention of sync_log, of finished jobs and of finished
 *		progress rows: at most HOUSEKEEPING_BATCH rows of each; sets
 *		HousekeepingMore when some are left.
 */
static void
Housekeeping(void *arg)
{
	static const char *const deletes[] = {
		"DELETE FROM omnichan.sync_log WHERE id IN (SELECT id FROM omnichan.sync_log "
		" WHERE at < pg_catalog.now() - pg_catalog.make_interval(secs => $1) ORDER BY at LIMIT $2)",
		"DELETE FROM omnichan.job WHERE id IN (SELECT id FROM omnichan.job "
		" WHERE state IN ('succeeded', 'failed', 'cancelled') "
		"   AND finished_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1) LIMIT $2)",
		"DELETE FROM omnichan.long_operation WHERE id IN (SELECT id FROM omnichan.long_operation "
		" WHERE finished_at < pg_catalog.now() - pg_catalog.make_interval(secs => $1) LIMIT $2)",
	};
	static const char *const what[] = {"sync_log", "job", "long_operation"};
	Oid			argtypes[2] = {INT4OID, INT4OID};
	Datum		values[2];
	int			i;

	values[0] = Int32GetDatum(omnichan_sync_log_retention);
	values[1] = Int32GetDatum(HOUSEKEEPING_BATCH);
	HousekeepingMore = false;
	for (i = 0; i < (int) lengthof(deletes); i++)
	{
		int			ret = SPI_execute_with_args(deletes[i], 2, argtypes, values, NULL, false, 0);

		if (ret != SPI_OK_DELETE)
			elog(ERROR, "%s retention failed: %s", what[i], SPI_result_code_string(ret));
		if (SPI_processed >= HOUSEKEEPING_BATCH)
			HousekeepingMore = true;
	}
}

/*
 * omnichan_worker_main
 *		Entry point of a database's sync worker.
 */
void
omnichan_worker_main(Datum arg)
{
	char		dbname[NAMEDATALEN];
	OmnichanDbSlot *slot;
	HttpRequest **done = NULL;
	int			ndone = 0;
	long		timeout = 0;
	bool		woken;
	MemoryContext loop_cxt;

	strlcpy(dbname, MyBgworkerEntry->bgw_extra, sizeof(dbname));
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(dbname, NULL, 0);
	pgstat_report_appname("omnichan worker");

	/* one worker per database */
	slot = OmnichanDbSlotFor(MyDatabaseId);
	if (slot != NULL && slot->worker_pid != 0 && slot->worker_pid != MyProcPid &&
		kill(slot->worker_pid, 0) == 0)
		ereport(ERROR,
				(errmsg("an omnichan worker (pid %d) already serves database \"%s\"",
						(int) slot->worker_pid, dbname)));
	OmnichanSetWorkerLatch(MyDatabaseId, MyLatch);
	before_shmem_exit(WorkerExit, (Datum) 0);

	RequestsCxt = AllocSetContextCreate(TopMemoryContext, "omnichan requests", ALLOCSET_DEFAULT_SIZES);
	loop_cxt = AllocSetContextCreate(TopMemoryContext, "omnichan worker loop", ALLOCSET_DEFAULT_SIZES);
	Inflight = MemoryContextAlloc(TopMemoryContext, sizeof(HttpRequest *) * OMNICHAN_MAX_INFLIGHT);

	ereport(LOG, (errmsg("omnichan worker started for database \"%s\"", dbname)));

	for (;;)
	{
		TimestampTz now;
		LoopStep	step;
		HttpRequest **refused;
		int			nrefused = 0;
		int			before;
		int			i;

		MemoryContextSwitchTo(loop_cxt);
		memset(&step, 0, sizeof(step));
		ndone = 0;
		done = NULL;
		ReportWaiting();
		woken = HttpWait(timeout, &done, &ndone);

		/*
		 * Some requests finished while others are in flight: collect, without
		 * waiting, those that finished meanwhile too, so that one transaction
		 * records them all.  (Waiting a millisecond for more was measured:
		 * fewer transactions, but less throughput, fast or slow answers.)
		 */
		if (ndone > 0 && !woken && NInflight > ndone)
			woken = HttpWait(0, &done, &ndone);
		if (woken)
			ConfigMaybeChanged = true;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			ClaimDue = 0;		/* http_max_inflight may have changed */
		}

		/* finished requests: out of the in-flight list, flow control */
		if (ndone > 0)
		{
			now = GetCurrentTimestamp();
			step.outcomes.done = done;
			step.outcomes.reports = palloc(sizeof(ThrottleReport) * ndone);
			step.outcomes.ndone = ndone;
			for (i = 0; i < ndone; i++)
				ThrottleFinish(done[i], now, &step.outcomes.reports[i]);
			for (i = 0; i < NInflight; i++)
			{
				int			k;

				for (k = 0; k < ndone; k++)
					if (Inflight[i] == done[k])
					{
						Inflight[i--] = Inflight[--NInflight];
						break;
					}
			}
		}

		if (!ExtensionReady)
		{
			RunInTransaction(CheckExtension, NULL, "checking for the omnichan extension");
			ClaimDue = 0;
		}

		now = GetCurrentTimestamp();
		if (ExtensionReady && now >= NextHousekeeping)
		{
			if (!RunInTransaction(CheckExtension, NULL, "checking for the omnichan extension") ||
				(ExtensionReady && !RunInTransaction(Housekeeping, NULL, "housekeeping")))
			{
				ExtensionReady = false;
				HousekeepingMore = false;
			}
			NextHousekeeping = HousekeepingMore ? now
				: TimestampTzPlusMilliseconds(now, HousekeepingIntervalMs());

			/*
			 * And a push cycle: listings refused with a retry class wait for
			 * their retry_at, which no commit signals (a real-time channel
			 * has no schedule that would bring the worker back for them).
			 */
			PushDue = 0;
			PullMaterializeDue = true;
			PullCancelCheckDue = true;	/* a backstop: see PullCycle */
		}

		/*
		 * The push cycle runs when something may have changed: a commit woke
		 * us (stock, listings, channels), a connector job finished (in the
		 * previous loop), or a channel's push is due — not after every batch
		 * of plain requests.  The jobs it queues are claimed just below.
		 */
		if (woken)
		{
			PushDue = 0;
			PullCancelCheckDue = true;	/* Odoo may have cancelled an order */
		}
		if (ExtensionReady && GetCurrentTimestamp() >= PushDue)
		{
			TimestampTz next_push = 0;

			if (!RunInTransaction(PushCycle, &next_push, "queuing stock pushes"))
			{
				PushDue = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), 1000);
				PullCancelCheckDue = true;	/* rolled back with the cycle */
			}
			else
				PushDue = (next_push != 0) ? next_push : DT_NOEND;
			ClaimDue = 0;
		}

		/*
		 * Outcomes and claim, in one transaction.  Without outcomes to record
		 * the claim runs only when it may find something (see the header),
		 * and never when no request could start.
		 */
		step.claim = ExtensionReady && NInflight < omnichan_http_max_inflight &&
			(woken || ndone > 0 || GetCurrentTimestamp() >= ClaimDue);
		before = NInflight;
		if (ExtensionReady && (ndone > 0 || step.claim) &&
			!RunInTransaction(OutcomesAndClaim, &step,
							  ndone > 0 ? "recording request outcomes and claiming requests"
							  : "claiming requests"))
		{
			/* nothing was committed: forget what was prepared */
			for (i = before; i < NInflight; i++)
				HttpFree(Inflight[i]);
			NInflight = before;
			step.result.started = 0;
			if (ndone > 0)
				PushDue = 0;
			if (step.claim_tried)
				ExtensionReady = false;
			else if (step.claim)
			{
				/* the outcomes failed: the claim on its own, as it was */
				memset(&step.result, 0, sizeof(step.result));
				if (!RunInTransaction(ClaimAndStart, &step.result, "claiming requests"))
				{
					for (i = before; i < NInflight; i++)
						HttpFree(Inflight[i]);
					NInflight = before;
					step.result.started = 0;
					ExtensionReady = false;
				}
			}
		}
		if (step.claim_failed)
			ExtensionReady = false;
		if (step.claim)
			ClaimDue = (step.result.next_due != 0) ? step.result.next_due
				: TimestampTzPlusMilliseconds(GetCurrentTimestamp(), omnichan_naptime);

		/* the claim is committed: now send */
		refused = palloc(sizeof(HttpRequest *) * Max(NInflight - before, 1));
		for (i = before; i < NInflight; i++)
		{
			HttpRequest *req = Inflight[i];

			if (!SyncPrepare(req) || !HttpStart(req))
			{
				/* refused before sending (e.g. plain http): recorded below */
				refused[nrefused++] = req;
				Inflight[i] = NULL;
			}
		}
		for (i = before; i < NInflight; i++)
			if (Inflight[i] == NULL)
				Inflight[i--] = Inflight[--NInflight];
		if (nrefused > 0)
		{
			Outcomes	o = {refused, palloc(sizeof(ThrottleReport) * nrefused), nrefused};

			now = GetCurrentTimestamp();
			for (i = 0; i < nrefused; i++)
				ThrottleFinish(refused[i], now, &o.reports[i]);
			RunInTransaction(RecordOutcomes, &o, "recording request outcomes");
			for (i = 0; i < nrefused; i++)
				HttpFree(refused[i]);
			ClaimDue = 0;		/* their room is free again */
		}
		if (step.result.started > 0)
			pgstat_report_activity(STATE_RUNNING,
								   psprintf("sending %d request(s), %d in flight",
											step.result.started, NInflight));

		/*
		 * A finished connector job may leave listings to push again (a
		 * target changed while it was in flight, a full resync to go on),
		 * unless its channel still has a deep enough queue: the next loop
		 * runs a push cycle at once.
		 */
		for (i = 0; i < ndone; i++)
		{
			if (IsConnectorJob(done[i]) && SyncPushWanted(done[i]->channel_id))
				PushDue = 0;
			HttpFree(done[i]);
		}

		/*
		 * Orders stored by a pull (or by anyone: a commit woke us) become Odoo
		 * quotations, in transactions of their own (after the requests
		 * were started: a stock push is not delayed by them).
		 */
		if (woken)
			PullMaterializeDue = true;
		if (ExtensionReady && PullMaterializeDue)
		{
			if (!RunInTransaction(PullMaterialize, NULL, "materializing orders"))
				PullMaterializeDue = false; /* again at the next wake-up or housekeeping */
		}

		/* how long to wait: until the next due job, at most naptime */
		timeout = omnichan_naptime;
		if (!ExtensionReady)
			timeout = Min(timeout, 5000);
		else
		{
			long		secs;
			int			usecs;

			now = GetCurrentTimestamp();
			if (NInflight < omnichan_http_max_inflight)
			{
				TimestampDifference(now, ClaimDue, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + (usecs + 999) / 1000);
			}
			if (PushDue != DT_NOEND)
			{
				TimestampDifference(now, PushDue, &secs, &usecs);
				timeout = Min(timeout, secs * 1000 + (usecs + 999) / 1000);
			}
			TimestampDifference(now, NextHousekeeping, &secs, &usecs);
			timeout = Min(timeout, secs * 1000 + (usecs + 999) / 1000);
		}
		if (step.result.started > 0 || (ExtensionReady && PullMaterializeDue))
			timeout = 0;		/* let libcurl start them right away; more orders */
		MemoryContextReset(loop_cxt);
	}
}
