/*-------------------------------------------------------------------------
 *
 * omnichan.c
 *	  Module entry point of omnichan: the preload check, the omnichan.*
 *	  configuration parameters and the library version function.
 *
 * omnichan must be listed in shared_preload_libraries: its change capture
 * wakes background workers through shared memory, and its workers are
 * registered with the postmaster, both of which only work when the library
 * is loaded at server start.  Loading it any other way is refused with an
 * error that says how to fix it.
 *
 * Every parameter lives under the reserved "omnichan" prefix, so a typo such
 * as "SET omnichan.count_manual_quotation = on" is an error instead of a
 * silently ignored placeholder.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <unistd.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "utils/builtins.h"
#include "utils/guc.h"

#include "capture.h"
#include "omnichan.h"
#include "shmem.h"

PG_MODULE_MAGIC;

/* GUC variables, read by the other files through omnichan.h */
bool		omnichan_count_manual_quotations = false;
char	   *omnichan_databases = NULL;
int			omnichan_naptime = 10000;
bool		omnichan_http_allow_plain_loopback = false;
char	   *omnichan_http_ca_file = NULL;
int			omnichan_http_connect_timeout = 5000;
int			omnichan_http_timeout = 30000;
int			omnichan_http_max_response_size = 16384;
int			omnichan_http_max_inflight = 64;
int			omnichan_http_max_host_connections = 16;
int			omnichan_retry_base_delay = 1000;
int			omnichan_retry_max_delay = 300000;
int			omnichan_circuit_failure_threshold = 5;
int			omnichan_circuit_open_time = 60000;
int			omnichan_sync_log_retention = 7 * 24 * 3600;
int			omnichan_target_refresh_delay = 2000;
int			omnichan_realtime_coalesce = 250;
int			omnichan_debug_pull_commit_delay = 0;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void _PG_init(void);
static void omnichan_shmem_request(void);
static void omnichan_shmem_startup(void);

PG_FUNCTION_INFO_V1(omnichan_library_version);

/*
 * CheckCaFile
 *		GUC check hook of omnichan.http_ca_file: empty, or the absolute path
 *		of a file this server can read (a relative path would depend on the
 *		data directory, and a typo is better refused now than found at the
 *		first https request).
 */
static bool
CheckCaFile(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	if (!is_absolute_path(*newval))
	{
		GUC_check_errdetail("The certificate authority file must be given as an absolute path.");
		return false;
	}
	if (access(*newval, R_OK) != 0)
	{
		GUC_check_errdetail("Could not access file \"%s\": %m.", *newval);
		return false;
	}
	return true;
}

/*
 * _PG_init
 *		Module load callback.
 *
 * Refuses to load unless the library is being preloaded, then defines the
 * configuration parameters and reserves the "omnichan" prefix.
 */
void
_PG_init(void)
{
	/*
	 * pg_upgrade loads every library to check it exists; do nothing then, so
	 * that a binary upgrade never trips over the preload check.
	 */
	if (IsBinaryUpgrade)
		return;

	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("omnichan can only be loaded via shared_preload_libraries"),
				 errdetail("omnichan runs background workers and uses shared memory, which must be set up when the server starts."),
				 errhint("Add omnichan to the shared_preload_libraries configuration variable in postgresql.conf and restart the server.")));

	DefineCustomBoolVariable("omnichan.count_manual_quotations",
							 "Counts every open quotation as pending demand in available-to-sell.",
							 "When off (the default), only quotations created from marketplace "
							 "orders reduce available-to-sell; manual quotations typed into Odoo "
							 "do not, because many of them never become orders. Set it per "
							 "database with ALTER DATABASE ... SET.",
							 &omnichan_count_manual_quotations,
							 false,
							 PGC_SUSET,
							 0,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("omnichan.databases",
							   "Databases (comma-separated) in which omnichan runs a sync worker.",
							   "Each listed database gets one background worker that sends the "
							   "requests queued there. Reloading the configuration starts and stops "
							   "workers to match the list.",
							   &omnichan_databases,
							   "",
							   PGC_SIGHUP,
							   GUC_LIST_INPUT | GUC_SUPERUSER_ONLY,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.naptime",
							"Longest time a sync worker sleeps when it has nothing to do.",
							"Workers are woken at once by commits that change stock or queue work; "
							"this only bounds how late time-based work (retries, schedules) "
							"can start. Housekeeping (sync_log retention) runs every "
							"min(60 s, 10 x naptime).",
							&omnichan_naptime,
							10000, 10, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("omnichan.http_allow_plain_loopback",
							 "Allows plain http requests to loopback addresses.",
							 "Marketplaces are reached over https with certificate verification, "
							 "always. Plain http is refused, except when this is on to an IPv4 "
							 "literal in 127.0.0.0/8, the IPv6 literal ::1 or the name localhost "
							 "(mock marketplaces in tests and demos); no other host name is taken "
							 "for loopback, whatever it resolves to.",
							 &omnichan_http_allow_plain_loopback,
							 false,
							 PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							 NULL, NULL, NULL);

	DefineCustomStringVariable("omnichan.http_ca_file",
							   "File of the certificate authorities that https servers are verified against.",
							   "Empty (the default): the system's bundle (ca-certificates). Set it to "
							   "the absolute path of a PEM file to trust a private authority instead "
							   "(a TLS-inspecting proxy, a test server); certificates and host names "
							   "are verified either way.",
							   &omnichan_http_ca_file,
							   "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY,
							   CheckCaFile, NULL, NULL);

	DefineCustomIntVariable("omnichan.http_connect_timeout",
							"Time allowed to connect to a marketplace API.",
							"A connection that takes longer counts as a network error: the request "
							"is retried later and the failure counts for the circuit breaker.",
							&omnichan_http_connect_timeout,
							5000, 100, 600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.http_timeout",
							"Time allowed for a whole request, connection included.",
							"A request that takes longer is abandoned and retried later.",
							&omnichan_http_timeout,
							30000, 100, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.http_max_response_size",
							"Largest response body a sync worker accepts.",
							"A larger response is abandoned and the request fails (it is not retried).",
							&omnichan_http_max_response_size,
							16384, 16, 1024 * 1024,
							PGC_SIGHUP, GUC_UNIT_KB,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.http_max_inflight",
							"Most requests a sync worker has in flight at once, all channels together.",
							"Each channel is further limited by its own max_concurrency (omnichan.rate_limit).",
							&omnichan_http_max_inflight,
							64, 1, OMNICHAN_MAX_INFLIGHT,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.http_max_host_connections",
							"Most connections a sync worker opens to one host.",
							"Connections are kept alive and reused; HTTP/2 multiplexes requests over one.",
							&omnichan_http_max_host_connections,
							16, 1, OMNICHAN_MAX_INFLIGHT,
							PGC_POSTMASTER, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.retry_base_delay",
							"Delay before the first retry of a failed request.",
							"Each further retry waits twice as long (with random jitter between half "
							"and all of it), up to omnichan.retry_max_delay; a marketplace's "
							"Retry-After is honoured when longer.",
							&omnichan_retry_base_delay,
							1000, 1, 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.retry_max_delay",
							"Longest delay between two attempts of a request.",
							"Caps the exponential backoff (not a marketplace's own Retry-After).",
							&omnichan_retry_max_delay,
							300000, 1, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.circuit_failure_threshold",
							"Consecutive failures that open a channel's circuit breaker.",
							"Failures are network errors and 5xx answers. While the circuit is open "
							"nothing is sent to the channel; then one probe request decides.",
							&omnichan_circuit_failure_threshold,
							5, 1, 1000,
							PGC_SIGHUP, 0,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.circuit_open_time",
							"How long an open circuit breaker waits before its probe request.",
							"After a failed probe the wait doubles, up to 16 times this value.",
							&omnichan_circuit_open_time,
							60000, 10, 24 * 3600 * 1000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.sync_log_retention",
							"How long request attempts and finished jobs are kept.",
							"The sync worker deletes older omnichan.sync_log rows, finished "
							"omnichan.job rows and finished omnichan.long_operation rows, in bounded "
							"batches, every min(60 s, 10 x omnichan.naptime).",
							&omnichan_sync_log_retention,
							7 * 24 * 3600, 60, INT_MAX,
							PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.target_refresh_delay",
							"How long stock changes may wait before the listing targets of channels that are not real time follow them.",
							"While every channel with listings of changed products pushes on a "
							"cadence and none is due, the sync worker gathers stock changes for up "
							"to this long after a recomputation and recomputes the targets once for "
							"all of them (order bursts move the same products again and again). A "
							"real-time channel, a channel whose push is due, or a full resync has "
							"them recomputed at once. 0: always at once.",
							&omnichan_target_refresh_delay,
							2000, 0, 600000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.realtime_coalesce",
							"Shortest time between two pushes of one listing on a real-time channel.",
							"A listing of a channel with push_interval 0 whose quantity the "
							"marketplace accepted less than this long ago waits until this much "
							"time has passed before it is pushed again: the first change after a "
							"quiet spell goes at once, a burst of changes to one product gives "
							"one push per window, the last one carrying the final quantity. "
							"0: every commit may push.",
							&omnichan_realtime_coalesce,
							250, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);

	DefineCustomIntVariable("omnichan.debug_pull_commit_delay",
							"Testing aid: wait this long before committing a page of pulled orders.",
							"Holds the sync worker between storing the orders of an answer and "
							"committing them, so that tests can kill it in that window. "
							"Never set it in production.",
							&omnichan_debug_pull_commit_delay,
							0, 0, 60000,
							PGC_SIGHUP, GUC_UNIT_MS | GUC_NOT_IN_SAMPLE,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("omnichan");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = omnichan_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = omnichan_shmem_startup;

	/* inherited by every backend forked from the postmaster */
	OmnichanCaptureInit();

	OmnichanRegisterLauncher();
}

/*
 * omnichan_shmem_request
 *		shmem_request_hook: reserve omnichan's shared memory.
 */
static void
omnichan_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	OmnichanShmemRequest();
}

/*
 * omnichan_shmem_startup
 *		shmem_startup_hook: create or attach to omnichan's shared memory.
 */
static void
omnichan_shmem_startup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	OmnichanShmemStartup();
}

/*
 * omnichan_library_version
 *		Returns the version of the loaded shared library.
 *
 * The SQL script's version comes from the extension catalog; comparing the
 * two tells an administrator that "ALTER EXTENSION omnichan UPDATE" is due.
 */
Datum
omnichan_library_version(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(OMNICHAN_VERSION));
}
