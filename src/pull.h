/*-------------------------------------------------------------------------
 *
 * pull.h
 *	  Order pull of the sync worker: pull chains, fetch_order, reports of
 *	  the merchant's cancellations, materialization (pull.c).
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_PULL_H
#define OMNICHAN_PULL_H

#include "datatype/timestamp.h"

#include "connector.h"
#include "http.h"

/* orders were stored (or may be waiting): run PullMaterialize */
extern bool PullMaterializeDue;

/*
 * an Odoo order may have been cancelled (a commit woke the worker, or
 * housekeeping): the next PullCycle looks for cancellations to report
 */
extern bool PullCancelCheckDue;

/* inside the push cycle: start due pulls, fetches, cancellation reports */
extern void PullCycle(TimestampTz now, TimestampTz *next_due);

/* inside the outcome transaction: false when the job is not a pull's */
extern bool PullComplete(const Connector *conn, ChannelConfig *cfg, HttpRequest *req,
						 const char *state, const char *error);

/* a transaction of materialization (RunInTransaction callback) */
extern void PullMaterialize(void *arg);

#endif							/* OMNICHAN_PULL_H */
