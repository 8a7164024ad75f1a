/*-------------------------------------------------------------------------
 *
 * omnichan.h
 *	  Declarations shared by the C files of omnichan: configuration
 *	  parameters and module-wide constants.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_H
#define OMNICHAN_H

#ifndef OMNICHAN_VERSION
#error "OMNICHAN_VERSION must be defined by the build (see Makefile)"
#endif

/* bounds of the HTTP engine */
#define OMNICHAN_MAX_INFLIGHT	1024

/* configuration parameters (omnichan.c) */
extern PGDLLIMPORT bool omnichan_count_manual_quotations;
extern PGDLLIMPORT char *omnichan_databases;
extern PGDLLIMPORT int omnichan_naptime;
extern PGDLLIMPORT bool omnichan_http_allow_plain_loopback;
extern PGDLLIMPORT char *omnichan_http_ca_file;
extern PGDLLIMPORT int omnichan_http_connect_timeout;
extern PGDLLIMPORT int omnichan_http_timeout;
extern PGDLLIMPORT int omnichan_http_max_response_size;
extern PGDLLIMPORT int omnichan_http_max_inflight;
extern PGDLLIMPORT int omnichan_http_max_host_connections;
extern PGDLLIMPORT int omnichan_retry_base_delay;
extern PGDLLIMPORT int omnichan_retry_max_delay;
extern PGDLLIMPORT int omnichan_circuit_failure_threshold;
extern PGDLLIMPORT int omnichan_circuit_open_time;
extern PGDLLIMPORT int omnichan_sync_log_retention;
extern PGDLLIMPORT int omnichan_target_refresh_delay;
extern PGDLLIMPORT int omnichan_realtime_coalesce;
extern PGDLLIMPORT int omnichan_debug_pull_commit_delay;

/* subxact.c */
extern ErrorData *OcSubTransaction(void (*fn) (void *arg), void *arg);

/* worker.c */
extern void OmnichanRegisterLauncher(void);

#endif							/* OMNICHAN_H */
