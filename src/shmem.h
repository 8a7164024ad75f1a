/*-------------------------------------------------------------------------
 *
 * shmem.h
 *	  omnichan's shared memory: one slot per database, through which
 *	  committing backends wake that database's sync worker.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_SHMEM_H
#define OMNICHAN_SHMEM_H

#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/spin.h"

/* databases per cluster omnichan keeps wake-up state for */
#define OMNICHAN_MAX_DATABASES	64

typedef struct OmnichanDbSlot
{
	Oid			dboid;			/* InvalidOid = free */
	pid_t		worker_pid;		/* sync worker of the database, 0 = none */
	Latch	   *worker_latch;	/* its latch, NULL = none */
	pg_atomic_uint64 wakeups;	/* commits that recorded stock changes */
	pg_atomic_uint64 last_wakeup;	/* TimestampTz of the last one */
	pg_atomic_uint32 capture_errors;	/* captures skipped (omnichan objects broken) */
} OmnichanDbSlot;

typedef struct OmnichanShared
{
	slock_t		mutex;			/* protects slot allocation and latch fields */
	OmnichanDbSlot dbs[OMNICHAN_MAX_DATABASES];
} OmnichanShared;

extern void OmnichanShmemRequest(void);
extern void OmnichanShmemStartup(void);

/* the slot of a database, allocated on first use; NULL when all are taken */
extern OmnichanDbSlot *OmnichanDbSlotFor(Oid dboid);

/* commit of a transaction that recorded changes: count it, wake the worker */
extern void OmnichanWakeDatabase(Oid dboid);

/* set the latch of the database's worker (no counting) */
extern void OmnichanWakeWorker(Oid dboid);

/* a worker announces (or withdraws, latch NULL) itself for a database */
extern void OmnichanSetWorkerLatch(Oid dboid, Latch *latch);

#endif							/* OMNICHAN_SHMEM_H */
