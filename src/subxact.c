/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running one step of the sync worker in a subtransaction, so that its
 *	  failure undoes only that step, never the transaction around it.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "omnichan.h"

/*
 * OcSubTransaction
 *		Runs fn(arg) in an internal subtransaction.  Returns NULL when it
 *		succeeded (its work is now part of the caller's transaction), else
 *		its error, copied into the caller's memory context, with the
 *		subtransaction rolled back and the memory context and resource owner
 *		the caller had.  The caller frees the error (FreeErrorData) or
 *		re-throws it (ReThrowError).
 */
ErrorData *
OcSubTransaction(void (*fn) (void *arg), void *arg)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData  *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_END_TRY();
	return edata;
}
