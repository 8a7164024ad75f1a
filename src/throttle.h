/*-------------------------------------------------------------------------
 *
 * throttle.h
 *	  Per-channel flow control of the sync worker: token buckets per
 *	  (channel, operation), requests in flight per channel, and a circuit
 *	  breaker per channel.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_THROTTLE_H
#define OMNICHAN_THROTTLE_H

#include "datatype/timestamp.h"

#include "http.h"

typedef enum CircuitState
{
	CIRCUIT_CLOSED,
	CIRCUIT_OPEN,
	CIRCUIT_HALF_OPEN
} CircuitState;

/* what a finished request did to its channel, for channel_state */
typedef struct ThrottleReport
{
	int32		channel_id;
	bool		circuit_changed;
	CircuitState circuit;
	TimestampTz circuit_opened_at;
	int			consecutive_failures;
} ThrottleReport;

/* (re)load rate limits and channel kinds; call inside a transaction with SPI */
extern void ThrottleLoadConfig(void);

/*
 * How many jobs of (channel, operation) may start now; *retry_at is set to
 * when more could start if the answer is limited by time (0 = not).
 */
extern int	ThrottleAllowance(int32 channel_id, const char *operation,
							  TimestampTz now, TimestampTz *retry_at);

/* a request of (channel, operation) starts: take a token, count it in flight */
extern void ThrottleStart(int32 channel_id, const char *operation, TimestampTz now);

/*
 * A request finished: update the bucket from the marketplace's rate headers,
 * the in-flight count and the circuit breaker.  Returns whether the outcome
 * counts as a failure of the marketplace (network error, 5xx).
 */
extern void ThrottleFinish(HttpRequest *req, TimestampTz now, ThrottleReport *report);

/* circuit state of a channel, for logging */
extern const char *CircuitName(CircuitState state);

/* restore the persisted circuit state of a channel (worker start) */
extern void ThrottleRestoreCircuit(int32 channel_id, CircuitState state,
								   TimestampTz opened_at, int failures);

#endif							/* OMNICHAN_THROTTLE_H */
