/*-------------------------------------------------------------------------
 *
 * sync.h
 *	  Stock push of the sync worker: from dirty products to listing targets
 *	  to connector jobs, and back (sync.c).
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_SYNC_H
#define OMNICHAN_SYNC_H

#include "datatype/timestamp.h"

#include "connector.h"
#include "http.h"

/*
 * One push cycle, inside a transaction with SPI: bring listing targets up to
 * date, queue the stock pushes that are due.  *next_due is set to when the
 * next cycle is needed (0 = only when woken).
 */
extern void SyncPushCycle(TimestampTz *next_due);

/*
 * Inside the claim transaction: may the connector's jobs of (channel,
 * operation) start now?  Queues the token request of a channel that needs
 * one.  Plain requests (no payload) of the channel start anyway.
 */
extern bool SyncChannelReady(int32 channel_id, const char *operation, TimestampTz now);

/*
 * Just before sending (no transaction): add credentials, tokens and
 * signatures.  False (req->error set, permanent) when it cannot be sent.
 */
extern bool SyncPrepare(HttpRequest *req);

/*
 * Before the outcome of a connector job is classified: a 401/403 answer
 * with a token drops the token and asks for one retry.  Returns true when
 * the job must be retried now, whatever its status.
 */
extern bool SyncRetryAfterAuthFailure(HttpRequest *req);

/* a 2xx answer that is a throttle: seconds to wait, or negative */
extern double SyncThrottled(HttpRequest *req);

/*
 * Inside the outcome transaction: a connector job finished with state
 * ("succeeded", "failed", or "queued" for a retry).
 */
extern void SyncComplete(HttpRequest *req, const char *state, const char *error);

/*
 * Around the SyncComplete calls of one outcome transaction: the per-listing
 * results of its push jobs are written together by SyncCompleteFlush (a
 * SyncComplete without SyncCompleteBegin writes its own at once).
 */
extern void SyncCompleteBegin(void);
extern void SyncCompleteFlush(void);

/*
 * After a job of the channel finished (outcome recorded): does a push cycle
 * need to look for more of the channel's listings?  False while its queue
 * is deep enough.
 */
extern bool SyncPushWanted(int32 channel_id);

/*
 * A channel's connector and configuration from the worker's cache, or NULL
 * when the channel is unknown, inactive, paused or has no connector.
 */
extern const Connector *SyncChannel(int32 channel_id, ChannelConfig **config);

/* queue a connector request of a channel as a job; returns the job id */
extern int64 SyncQueueJob(int32 channel_id, OutRequest *out, const char *payload);

/* the channel's last error (channel_status) */
extern void SyncSetChannelError(int32 channel_id, const char *error);

#endif							/* OMNICHAN_SYNC_H */
