/*-------------------------------------------------------------------------
 *
 * http.h
 *	  The HTTP engine of the sync worker: one libcurl multi handle,
 *	  event-driven on the worker's latch and the requests' sockets.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_HTTP_H
#define OMNICHAN_HTTP_H

#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/itemptr.h"

/* one request, owned by the engine from HttpStart until HttpFree */
typedef struct HttpRequest
{
	/* input, set by the caller (allocated in req->cxt) */
	int64		job_id;
	ItemPointerData job_tid;	/* where the claim left the job's row */
	int32		channel_id;		/* 0 = no channel */
	char	   *operation;
	char	   *method;
	char	   *url;
	char	  **headers;		/* "Name: value" strings */
	int			nheaders;
	char	   *body;
	size_t		body_len;
	int			attempt;
	int			max_attempts;
	char	   *payload;		/* the job's payload (JSON text) or NULL */
	TimestampTz token_obtained_at;	/* when the access token used was obtained, 0 = none */

	/* outcome, set by the engine */
	bool		done;
	int			status;			/* HTTP status, 0 = no response */
	StringInfoData response;	/* body, at most omnichan.http_max_response_size */
	char	  **response_header_names;	/* lower case */
	char	  **response_header_values;
	int			nresponse_headers;
	char	   *error;			/* NULL = a complete HTTP response */
	bool		oversized;
	bool		permanent;		/* the error will not go away by retrying */
	TimestampTz started;
	double		duration_ms;
	double		retry_after_s;	/* Retry-After (or equivalent), -1 = none */

	/* private */
	MemoryContext cxt;
	void	   *easy;			/* CURL * */
	void	   *slist;			/* struct curl_slist * */
	int			connect_timeout_ms; /* the timeouts it was started with */
	int			timeout_ms;
	char		errbuf[256];
} HttpRequest;

/* a new request with its own memory context */
extern HttpRequest *HttpNew(MemoryContext parent);

/* start it; false (and req->error set, req->done) when it cannot be sent */
extern bool HttpStart(HttpRequest *req);

/* requests in flight */
extern int	HttpInflight(void);

/*
 * Wait for the latch, the sockets of the requests in flight or timeout_ms,
 * and drive the transfers.  Completed requests are appended to *done.
 * Returns whether the latch was set.
 */
extern bool HttpWait(long timeout_ms, HttpRequest ***done, int *ndone);

/* release a finished request and everything it holds */
extern void HttpFree(HttpRequest *req);

/* the URL with credentials-bearing query values replaced by "***" */
extern char *HttpRedactUrl(const char *url);

/* value of a captured response header (lower-case name), or NULL */
extern char *HttpResponseHeader(HttpRequest *req, const char *name);

/* the captured response headers as a JSON object text */
extern char *HttpResponseHeadersJson(HttpRequest *req);

/* release the engine (process exit) */
extern void HttpShutdown(void);

#endif							/* OMNICHAN_HTTP_H */
