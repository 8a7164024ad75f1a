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

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

PGDLLEXPORT void _PG_init(void);
static void omnichan_shmem_request(void);
static void omnichan_shmem_startup(void);

PG_FUNCTION_INFO_V1(omnichan_library_version);

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

	MarkGUCPrefixReserved("omnichan");

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = omnichan_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = omnichan_shmem_startup;

	/* inherited by every backend forked from the postmaster */
	OmnichanCaptureInit();
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
