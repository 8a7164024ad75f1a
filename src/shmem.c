/*-------------------------------------------------------------------------
 *
 * shmem.c
 *	  omnichan's shared memory: a fixed array of per-database slots.
 *
 * A slot holds the latch of the database's sync worker and two counters.
 * A backend whose transaction recorded stock changes calls
 * OmnichanWakeDatabase() from its commit callback: it bumps the counters and
 * sets the worker's latch, so the worker wakes within microseconds of the
 * commit, never before it (a rolled-back transaction wakes nobody).
 *
 * Slots are allocated on first use under a spinlock and never freed (a
 * cluster has few databases; OMNICHAN_MAX_DATABASES bounds them).  Counters
 * are atomics, so the commit path takes the spinlock only to read the latch
 * pointer.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#include "shmem.h"

static OmnichanShared *Shared = NULL;

/*
 * OmnichanShmemRequest
 *		shmem_request_hook body: reserve our shared memory.
 */
void
OmnichanShmemRequest(void)
{
	RequestAddinShmemSpace(MAXALIGN(sizeof(OmnichanShared)));
}

/*
 * OmnichanShmemStartup
 *		shmem_startup_hook body: create or attach to the shared state.
 */
void
OmnichanShmemStartup(void)
{
	bool		found;

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	Shared = ShmemInitStruct("omnichan", sizeof(OmnichanShared), &found);
	if (!found)
	{
		int			i;

		SpinLockInit(&Shared->mutex);
		for (i = 0; i < OMNICHAN_MAX_DATABASES; i++)
		{
			OmnichanDbSlot *slot = &Shared->dbs[i];

			slot->dboid = InvalidOid;
			slot->worker_pid = 0;
			slot->worker_latch = NULL;
			pg_atomic_init_u64(&slot->wakeups, 0);
			pg_atomic_init_u64(&slot->last_wakeup, 0);
			pg_atomic_init_u32(&slot->capture_errors, 0);
		}
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * OmnichanDbSlotFor
 *		The slot of a database, allocated when it has none.  NULL when every
 *		slot is taken (the caller degrades to polling, and says so).
 */
OmnichanDbSlot *
OmnichanDbSlotFor(Oid dboid)
{
	OmnichanDbSlot *result = NULL;
	int			i;

	if (Shared == NULL)
		return NULL;
	SpinLockAcquire(&Shared->mutex);
	for (i = 0; i < OMNICHAN_MAX_DATABASES; i++)
		if (Shared->dbs[i].dboid == dboid)
		{
			result = &Shared->dbs[i];
			break;
		}
	if (result == NULL)
		for (i = 0; i < OMNICHAN_MAX_DATABASES; i++)
			if (Shared->dbs[i].dboid == InvalidOid)
			{
				result = &Shared->dbs[i];
				result->dboid = dboid;
				break;
			}
	SpinLockRelease(&Shared->mutex);
	return result;
}

/*
 * OmnichanWakeDatabase
 *		Counts a commit with stock changes and sets the worker's latch.
 *		Called from a commit callback: must not fail.
 */
void
OmnichanWakeDatabase(Oid dboid)
{
	OmnichanDbSlot *slot = OmnichanDbSlotFor(dboid);

	if (slot == NULL)
		return;
	pg_atomic_fetch_add_u64(&slot->wakeups, 1);
	pg_atomic_write_u64(&slot->last_wakeup, (uint64) GetCurrentTimestamp());
	OmnichanWakeWorker(dboid);
}

/*
 * OmnichanWakeWorker
 *		Sets the latch of the database's worker, if it has one.  Must not
 *		fail (called from commit callbacks).
 */
void
OmnichanWakeWorker(Oid dboid)
{
	OmnichanDbSlot *slot = OmnichanDbSlotFor(dboid);
	Latch	   *latch;

	if (slot == NULL)
		return;
	SpinLockAcquire(&Shared->mutex);
	latch = slot->worker_latch;
	SpinLockRelease(&Shared->mutex);
	if (latch != NULL)
		SetLatch(latch);
}

/*
 * OmnichanSetWorkerLatch
 *		Publishes (or, with NULL, withdraws) the latch of the current process
 *		as the worker of a database.
 */
void
OmnichanSetWorkerLatch(Oid dboid, Latch *latch)
{
	OmnichanDbSlot *slot = OmnichanDbSlotFor(dboid);

	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("omnichan serves at most %d databases per cluster", OMNICHAN_MAX_DATABASES)));
	SpinLockAcquire(&Shared->mutex);
	slot->worker_latch = latch;
	slot->worker_pid = (latch != NULL) ? MyProcPid : 0;
	SpinLockRelease(&Shared->mutex);
}
