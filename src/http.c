/*-------------------------------------------------------------------------
 *
 * http.c
 *	  The sync worker's HTTP engine: one libcurl multi handle for the life
 *	  of the worker, driven by the worker's own wait loop.
 *
 * libcurl tells us which sockets to watch (CURLMOPT_SOCKETFUNCTION) and when
 * its next timeout is due (CURLMOPT_TIMERFUNCTION).  Those sockets live in an
 * epoll set of their own, kept up to date from the socket callback; that
 * epoll descriptor sits in a WaitEventSet together with the worker's latch
 * and postmaster death, so one wait serves both "a transaction committed
 * stock changes" and "a response arrived", without polling, and the
 * WaitEventSet never changes.  (libcurl takes an idle keep-alive connection
 * out of the watch when its transfer ends and puts it back when the next
 * transfer reuses it: a WaitEventSet, which cannot drop a socket, had to be
 * rebuilt at nearly every wait.)  libcurl's timer is a one-shot deadline:
 * once it has fired, only a new call of the timer callback sets another.
 *
 * Connections are reused (keep-alive, and HTTP/2 multiplexing over TLS when
 * the server offers it); sockets are bounded per host and in total.  Only
 * http and https are allowed, redirects are not followed, TLS verification is
 * never switched off (the system's bundle, or omnichan.http_ca_file), and
 * plain http is refused except to a loopback address (an IPv4 literal in
 * 127.0.0.0/8, the IPv6 literal ::1 or the name localhost; never a name
 * that only looks like one) when the superuser setting
 * omnichan.http_allow_plain_loopback is on (the tests use it).  Responses
 * are bounded by omnichan.http_max_response_size.  A timeout's error names
 * the setting that cut the request short.
 *
 * Memory: each request has its own memory context; the curl easy handle and
 * header list (malloc'd by libcurl) are released by HttpFree() on every path,
 * and the multi handle by HttpShutdown() at process exit.  No ereport(ERROR)
 * is raised inside a libcurl callback.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <curl/curl.h>

#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "http.h"
#include "omnichan.h"

#define MAX_RESPONSE_HEADERS	64
#define MAX_HEADER_LINE			8192
#define MAX_READY				64	/* socket events taken per epoll_wait */

static CURLM *Multi = NULL;
static TimestampTz TimerAt = 0; /* libcurl's next timeout, 0 = none */
static int	Inflight = 0;

/* libcurl's sockets (epoll), and the wait set: latch, postmaster death, it */
static int	SocketsFd = -1;
static WaitEventSet *Set = NULL;

static int	SocketCallback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
static int	TimerCallback(CURLM *multi, long timeout_ms, void *userp);
static size_t WriteCallback(char *data, size_t size, size_t nmemb, void *userp);
static size_t HeaderCallback(char *data, size_t size, size_t nitems, void *userp);
static void EnsureMulti(void);
static bool IsLoopbackHost(const char *host);
static bool PlainHttpAllowed(const char *url, char **why);
static void DriveSockets(void);
static void CollectDone(HttpRequest ***done, int *ndone, int *cap);
static void Finish(HttpRequest *req, CURLcode code);
static char *TimeoutError(HttpRequest *req, const char *msg);

/*
 * EnsureMulti
 *		Creates the multi handle on first use.
 */
static void
EnsureMulti(void)
{
	if (Multi != NULL)
		return;
	if (SocketsFd < 0)
	{
		SocketsFd = epoll_create1(EPOLL_CLOEXEC);
		if (SocketsFd < 0)
			elog(ERROR, "epoll_create1 failed: %m");
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		elog(ERROR, "could not initialize libcurl");
	Multi = curl_multi_init();
	if (Multi == NULL)
		elog(ERROR, "could not create a libcurl multi handle");
	curl_multi_setopt(Multi, CURLMOPT_SOCKETFUNCTION, SocketCallback);
	curl_multi_setopt(Multi, CURLMOPT_TIMERFUNCTION, TimerCallback);
	curl_multi_setopt(Multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long) omnichan_http_max_host_connections);
	curl_multi_setopt(Multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) omnichan_http_max_inflight);
	curl_multi_setopt(Multi, CURLMOPT_MAXCONNECTS, (long) omnichan_http_max_inflight);
	curl_multi_setopt(Multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
}

/*
 * HttpShutdown
 *		Releases the multi handle (on_proc_exit).
 */
void
HttpShutdown(void)
{
	if (Set != NULL)
	{
		FreeWaitEventSet(Set);
		Set = NULL;
	}
	if (Multi != NULL)
	{
		curl_multi_cleanup(Multi);
		Multi = NULL;
		curl_global_cleanup();
	}
	if (SocketsFd >= 0)
	{
		close(SocketsFd);
		SocketsFd = -1;
	}
}

/*
 * SocketCallback
 *		libcurl wants a socket watched (or no longer): its registration in
 *		the epoll set.  socketp is set (curl_multi_assign) once the socket is
 *		in the set.  A socket closed without CURL_POLL_REMOVE has left the
 *		set by itself (EEXIST/ENOENT are taken care of below).
 */
static int
SocketCallback(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct epoll_event ev;

	if (what == CURL_POLL_REMOVE)
	{
		if (socketp != NULL)
		{
			(void) epoll_ctl(SocketsFd, EPOLL_CTL_DEL, fd, NULL);
			curl_multi_assign(Multi, fd, NULL);
		}
		return 0;
	}
	memset(&ev, 0, sizeof(ev));
	if (what & CURL_POLL_IN)
		ev.events |= EPOLLIN;
	if (what & CURL_POLL_OUT)
		ev.events |= EPOLLOUT;
	ev.data.fd = fd;
	if (socketp == NULL)
	{
		if (epoll_ctl(SocketsFd, EPOLL_CTL_ADD, fd, &ev) != 0 &&
			(errno != EEXIST || epoll_ctl(SocketsFd, EPOLL_CTL_MOD, fd, &ev) != 0))
			return -1;			/* libcurl fails that transfer */
		curl_multi_assign(Multi, fd, (void *) 1);
	}
	else if (epoll_ctl(SocketsFd, EPOLL_CTL_MOD, fd, &ev) != 0 &&
			 (errno != ENOENT || epoll_ctl(SocketsFd, EPOLL_CTL_ADD, fd, &ev) != 0))
		return -1;
	return 0;
}

/*
 * TimerCallback
 *		libcurl's next timeout, relative to now: kept as a deadline, which
 *		fires once (libcurl calls again when it wants another).
 */
static int
TimerCallback(CURLM *multi, long timeout_ms, void *userp)
{
	TimerAt = (timeout_ms < 0) ? 0
		: TimestampTzPlusMilliseconds(GetCurrentTimestamp(), timeout_ms);
	return 0;
}

/*
 * WriteCallback
 *		Appends the body, up to the size limit.  Runs inside libcurl: no
 *		ereport, so allocation failures abort the transfer instead.
 */
static size_t
WriteCallback(char *data, size_t size, size_t nmemb, void *userp)
{
	HttpRequest *req = (HttpRequest *) userp;
	size_t		n = size * nmemb;
	size_t		need = (size_t) req->response.len + n + 1;

	if (need - 1 > (size_t) omnichan_http_max_response_size * 1024)
	{
		req->oversized = true;
		return 0;				/* aborts the transfer: CURLE_WRITE_ERROR */
	}
	if (need > (size_t) req->response.maxlen)
	{
		size_t		newlen = Max(need, (size_t) req->response.maxlen * 2);
		char	   *buf = MemoryContextAllocExtended(req->cxt, newlen, MCXT_ALLOC_NO_OOM);

		if (buf == NULL)
			return 0;
		memcpy(buf, req->response.data, req->response.len + 1);
		pfree(req->response.data);
		req->response.data = buf;
		req->response.maxlen = (int) newlen;
	}
	memcpy(req->response.data + req->response.len, data, n);
	req->response.len += (int) n;
	req->response.data[req->response.len] = '\0';
	return n;
}

/* HeaderCallback: keep the response headers (bounded), names lower-cased */
static size_t
HeaderCallback(char *data, size_t size, size_t nitems, void *userp)
{
	HttpRequest *req = (HttpRequest *) userp;
	size_t		n = size * nitems;
	char	   *colon;
	char	   *name;
	char	   *value;
	size_t		namelen,
				i,
				j;

	/* a new status line (e.g. after 100 Continue) starts a new header set */
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
	{
		req->nresponse_headers = 0;
		return n;
	}
	if (n > MAX_HEADER_LINE || req->nresponse_headers >= MAX_RESPONSE_HEADERS)
		return n;				/* ignore, don't fail */
	colon = memchr(data, ':', n);
	if (colon == NULL)
		return n;
	namelen = colon - data;
	value = colon + 1;
	while (value < data + n && (*value == ' ' || *value == '\t'))
		value++;
	i = (data + n) - value;
	while (i > 0 && (value[i - 1] == '\r' || value[i - 1] == '\n' || value[i - 1] == ' '))
		i--;
	/* no ereport inside libcurl: allocation failures drop the header */
	name = MemoryContextAllocExtended(req->cxt, namelen + 1 + i + 1, MCXT_ALLOC_NO_OOM);
	if (name == NULL)
		return n;
	for (j = 0; j < namelen; j++)
		name[j] = pg_ascii_tolower((unsigned char) data[j]);
	name[namelen] = '\0';
	memcpy(name + namelen + 1, value, i);
	name[namelen + 1 + i] = '\0';
	req->response_header_names[req->nresponse_headers] = name;
	req->response_header_values[req->nresponse_headers] = name + namelen + 1;
	req->nresponse_headers++;
	return n;
}

/*
 * HttpNew
 *		A request with its own memory context under parent.
 */
HttpRequest *
HttpNew(MemoryContext parent)
{
	MemoryContext cxt = AllocSetContextCreate(parent, "omnichan http request",
											  ALLOCSET_SMALL_SIZES);
	HttpRequest *req = MemoryContextAllocZero(cxt, sizeof(HttpRequest));

	req->cxt = cxt;
	req->retry_after_s = -1;
	return req;
}

/*
 * IsLoopbackHost
 *		Whether a URL's host, as libcurl's URL parser gives it, is loopback:
 *		an IPv4 literal in 127.0.0.0/8, the IPv6 literal ::1 (in brackets),
 *		or the name "localhost" (which libcurl resolves to loopback itself).
 *
 * The literals are parsed strictly (inet_pton): any other name is a name,
 * resolved by DNS to whatever its owner likes, however it starts
 * ("127.example.com", "127.0.0.1.example.com", "localhost.example.com").
 */
static bool
IsLoopbackHost(const char *host)
{
	struct in_addr v4;
	struct in6_addr v6;
	char		buf[INET6_ADDRSTRLEN];
	size_t		len = strlen(host);

	if (pg_strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &v4) == 1)
		return (ntohl(v4.s_addr) >> 24) == 127;
	if (len > 2 && len - 2 < sizeof(buf) && host[0] == '[' && host[len - 1] == ']')
	{
		memcpy(buf, host + 1, len - 2);
		buf[len - 2] = '\0';
		return inet_pton(AF_INET6, buf, &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
	}
	return false;
}

/*
 * PlainHttpAllowed
 *		Plain http only to a loopback host (IsLoopbackHost), and only when
 *		the superuser setting allows it.
 */
static bool
PlainHttpAllowed(const char *url, char **why)
{
	CURLU	   *u = curl_url();
	char	   *host = NULL;
	bool		ok = false;

	if (u == NULL)
	{
		*why = "out of memory";
		return false;
	}
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
		*why = "the URL cannot be parsed";
	else if (!omnichan_http_allow_plain_loopback)
		*why = "plain http is refused (use https, or for tests on loopback set omnichan.http_allow_plain_loopback)";
	else if (IsLoopbackHost(host))
		ok = true;
	else
		*why = "plain http is allowed only to a loopback address (127.0.0.0/8, ::1 or localhost)";
	if (host)
		curl_free(host);
	curl_url_cleanup(u);
	return ok;
}

/*
 * HttpStart
 *		Adds a request to the multi handle.  When it cannot be sent (bad URL,
 *		plain http refused, curl refuses), the request is marked done with an
 *		error and false is returned.
 */
bool
HttpStart(HttpRequest *req)
{
	CURL	   *easy;
	struct curl_slist *slist = NULL;
	MemoryContext old;
	char	   *why = NULL;
	int			i;

	EnsureMulti();
	old = MemoryContextSwitchTo(req->cxt);
	initStringInfo(&req->response);
	req->response_header_names = palloc(sizeof(char *) * MAX_RESPONSE_HEADERS);
	req->response_header_values = palloc(sizeof(char *) * MAX_RESPONSE_HEADERS);
	MemoryContextSwitchTo(old);
	req->started = GetCurrentTimestamp();

	if (pg_strncasecmp(req->url, "https://", 8) != 0)
	{
		if (pg_strncasecmp(req->url, "http://", 7) != 0)
			why = "only http and https URLs are allowed";
		else
			PlainHttpAllowed(req->url, &why);
		if (why != NULL)
		{
			req->error = MemoryContextStrdup(req->cxt, why);
			req->permanent = true;
			req->done = true;
			return false;
		}
	}

	easy = curl_easy_init();
	if (easy == NULL)
	{
		req->error = MemoryContextStrdup(req->cxt, "could not create a libcurl handle");
		req->done = true;
		return false;
	}
	req->easy = easy;
	for (i = 0; i < req->nheaders; i++)
	{
		struct curl_slist *next = curl_slist_append(slist, req->headers[i]);

		if (next == NULL)
			break;
		slist = next;
	}
	/* no "Expect: 100-continue" round trip for bodies */
	if (req->body != NULL)
	{
		struct curl_slist *next = curl_slist_append(slist, "Expect:");

		if (next != NULL)
			slist = next;
	}
	req->slist = slist;

	curl_easy_setopt(easy, CURLOPT_URL, req->url);
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);

	/*
	 * Waiting for a connection to tell whether it can multiplex only makes
	 * sense over TLS (HTTP/2 is negotiated by ALPN).  Over plain http the
	 * answer comes with the first response, so the wait would queue every
	 * request to the host behind one slow request.
	 */
	if (pg_strncasecmp(req->url, "https://", 8) == 0)
	{
		curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L);
		/* a private authority instead of the system's bundle */
		if (omnichan_http_ca_file != NULL && omnichan_http_ca_file[0] != '\0')
			curl_easy_setopt(easy, CURLOPT_CAINFO, omnichan_http_ca_file);
	}
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
	req->connect_timeout_ms = omnichan_http_connect_timeout;
	req->timeout_ms = omnichan_http_timeout;
	curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long) req->connect_timeout_ms);
	curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long) req->timeout_ms);
	curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
					 (curl_off_t) omnichan_http_max_response_size * 1024);
	curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "omnichan/" OMNICHAN_VERSION);
	curl_easy_setopt(easy, CURLOPT_HTTPHEADER, slist);
	curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, WriteCallback);
	curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
	curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, HeaderCallback);
	curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
	curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
	curl_easy_setopt(easy, CURLOPT_PRIVATE, req);

	if (strcmp(req->method, "GET") == 0)
		curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
	else if (strcmp(req->method, "HEAD") == 0)
		curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
	else
	{
		curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, req->method);
		if (req->body != NULL || strcmp(req->method, "DELETE") != 0)
		{
			curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) req->body_len);
			curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
	}

	if (curl_multi_add_handle(Multi, easy) != CURLM_OK)
	{
		req->error = MemoryContextStrdup(req->cxt, "could not start the request");
		req->done = true;
		return false;
	}
	Inflight++;
	return true;
}

/* HttpInflight: requests in flight */
int
HttpInflight(void)
{
	return Inflight;
}

/*
 * Finish
 *		Records the outcome of a completed transfer in the request.
 */
static void
Finish(HttpRequest *req, CURLcode code)
{
	long		status = 0;
	char	   *ra;

	req->done = true;
	req->duration_ms = (double) (GetCurrentTimestamp() - req->started) / 1000.0;
	curl_easy_getinfo((CURL *) req->easy, CURLINFO_RESPONSE_CODE, &status);
	req->status = (int) status;
	if (code != CURLE_OK)
	{
		const char *msg = req->errbuf[0] ? req->errbuf : curl_easy_strerror(code);

		if (req->oversized || code == CURLE_FILESIZE_EXCEEDED)
		{
			req->error = MemoryContextStrdup(req->cxt,
											 psprintf("response larger than omnichan.http_max_response_size (%d kB)",
													  omnichan_http_max_response_size));
			req->permanent = true;
		}
		else if (code == CURLE_OPERATION_TIMEDOUT)
			req->error = MemoryContextStrdup(req->cxt, TimeoutError(req, msg));
		else
			req->error = MemoryContextStrdup(req->cxt, msg);
		req->status = 0;
	}

	/* Retry-After: seconds, or an HTTP date */
	ra = HttpResponseHeader(req, "retry-after");
	if (ra != NULL)
	{
		char	   *end;
		double		secs = strtod(ra, &end);

		if (end != ra && secs >= 0)
			req->retry_after_s = secs;
		else
		{
			time_t		t = curl_getdate(ra, NULL);

			if (t > 0)
				req->retry_after_s = Max(0, (double) t - (double) time(NULL));
		}
	}
}

/*
 * TimeoutError
 *		The error of a transfer that timed out, naming the setting that cut
 *		it short, then libcurl's message (whose wording varies between
 *		libcurl versions).  It is the connection timeout when no connection
 *		was made (libcurl's connect time is 0; a reused connection has one)
 *		and the whole-request timeout had not passed yet.
 */
static char *
TimeoutError(HttpRequest *req, const char *msg)
{
	curl_off_t	connect_us = -1;

	if (curl_easy_getinfo((CURL *) req->easy, CURLINFO_CONNECT_TIME_T, &connect_us) == CURLE_OK &&
		connect_us == 0 && req->connect_timeout_ms < req->timeout_ms &&
		req->duration_ms < req->timeout_ms)
		return psprintf("no connection within omnichan.http_connect_timeout (%d ms): %s",
						req->connect_timeout_ms, msg);
	return psprintf("no complete response within omnichan.http_timeout (%d ms): %s",
					req->timeout_ms, msg);
}

/* CollectDone: completed transfers out of libcurl */
static void
CollectDone(HttpRequest ***done, int *ndone, int *cap)
{
	CURLMsg    *msg;
	int			left;

	while ((msg = curl_multi_info_read(Multi, &left)) != NULL)
	{
		HttpRequest *req = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &req);
		Finish(req, msg->data.result);
		curl_multi_remove_handle(Multi, msg->easy_handle);
		Inflight--;
		if (*ndone == *cap)
		{
			*cap = Max(16, *cap * 2);
			*done = *done ? repalloc(*done, sizeof(HttpRequest *) * *cap)
				: palloc(sizeof(HttpRequest *) * *cap);
		}
		(*done)[(*ndone)++] = req;
	}
}

/*
 * DriveSockets
 *		Hands the sockets that are ready to libcurl (without waiting).
 */
static void
DriveSockets(void)
{
	struct epoll_event ready[MAX_READY];
	int			nready;
	int			i;
	int			running;

	nready = epoll_wait(SocketsFd, ready, MAX_READY, 0);
	for (i = 0; i < nready; i++)
	{
		int			mask = 0;

		if (ready[i].events & EPOLLIN)
			mask |= CURL_CSELECT_IN;
		if (ready[i].events & EPOLLOUT)
			mask |= CURL_CSELECT_OUT;
		if (ready[i].events & (EPOLLERR | EPOLLHUP))
			mask |= CURL_CSELECT_ERR;
		curl_multi_socket_action(Multi, ready[i].data.fd, mask, &running);
	}
}

/*
 * HttpWait
 *		Waits for the latch, the sockets of the requests in flight, libcurl's
 *		timer or timeout_ms, whichever comes first, then lets libcurl make
 *		progress.  Completed requests are appended to *done (allocated in the
 *		current memory context).  The latch is reset when it was set; the
 *		result says whether it was (some transaction committed work).
 */
bool
HttpWait(long timeout_ms, HttpRequest ***done, int *ndone)
{
	bool		latch_set = false;
	WaitEvent	events[3];
	int			nevents;
	int			i;
	int			running;
	int			cap = *ndone;
	long		timeout = timeout_ms;

	EnsureMulti();
	if (TimerAt != 0)
	{
		TimestampTz now = GetCurrentTimestamp();
		long		left = (TimerAt <= now) ? 0 : (long) ((TimerAt - now + 999) / 1000);

		if (timeout < 0 || left < timeout)
			timeout = left;
	}

	if (Set == NULL)
	{
		Set = CreateWaitEventSet(TopMemoryContext, 3);
		AddWaitEventToSet(Set, WL_LATCH_SET, PGINVALID_SOCKET, MyLatch, NULL);
		AddWaitEventToSet(Set, WL_EXIT_ON_PM_DEATH, PGINVALID_SOCKET, NULL, NULL);
		AddWaitEventToSet(Set, WL_SOCKET_READABLE, SocketsFd, NULL, NULL);
	}
	nevents = WaitEventSetWait(Set, timeout, events, lengthof(events), PG_WAIT_EXTENSION);

	for (i = 0; i < nevents; i++)
	{
		if (events[i].events & WL_LATCH_SET)
		{
			ResetLatch(MyLatch);
			latch_set = true;
		}
		else if (events[i].events & WL_SOCKET_READABLE)
			DriveSockets();
	}

	/*
	 * Timeouts, and transfers that need a kick after being added (libcurl
	 * sets a timer of 0 for them).  A deadline that has passed is spent: a
	 * new one comes from this call if libcurl wants one.
	 */
	if (TimerAt != 0 && TimerAt <= GetCurrentTimestamp())
	{
		TimerAt = 0;
		curl_multi_socket_action(Multi, CURL_SOCKET_TIMEOUT, 0, &running);
	}
	CollectDone(done, ndone, &cap);
	return latch_set;
}

/*
 * HttpFree
 *		Releases a request: the curl handle and header list (malloc'd by
 *		libcurl) and the request's memory context.
 */
void
HttpFree(HttpRequest *req)
{
	if (req->easy != NULL)
	{
		if (!req->done && Multi != NULL)
		{
			curl_multi_remove_handle(Multi, (CURL *) req->easy);
			Inflight--;
		}
		curl_easy_cleanup((CURL *) req->easy);
		req->easy = NULL;
	}
	if (req->slist != NULL)
	{
		curl_slist_free_all((struct curl_slist *) req->slist);
		req->slist = NULL;
	}
	MemoryContextDelete(req->cxt);
}

/* HttpResponseHeader: a captured header's value, or NULL */
char *
HttpResponseHeader(HttpRequest *req, const char *name)
{
	int			i;

	for (i = req->nresponse_headers - 1; i >= 0; i--)
		if (strcmp(req->response_header_names[i], name) == 0)
			return req->response_header_values[i];
	return NULL;
}

/* HttpResponseHeadersJson: the captured headers as a JSON object */
char *
HttpResponseHeadersJson(HttpRequest *req)
{
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (i = 0; i < req->nresponse_headers; i++)
	{
		int			j;
		bool		dup = false;

		/* the last value of a repeated header wins */
		for (j = i + 1; j < req->nresponse_headers && !dup; j++)
			dup = (strcmp(req->response_header_names[i], req->response_header_names[j]) == 0);
		if (dup)
			continue;
		if (buf.len > 1)
			appendStringInfoChar(&buf, ',');
		escape_json(&buf, req->response_header_names[i]);
		appendStringInfoChar(&buf, ':');
		escape_json(&buf, req->response_header_values[i]);
	}
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * HttpRedactUrl
 *		The URL with the values of query parameters that carry credentials or
 *		signatures replaced by "***", for logs and sync_log.
 */
char *
HttpRedactUrl(const char *url)
{
	static const char *const secret[] = {
		"access_token", "token", "sign", "signature", "app_secret", "client_secret",
		"refresh_token", "api_key", "apikey", "key", "password", "code",
		"x-amz-signature", "x-amz-credential", "x-amz-security-token", NULL	/* presigned S3 URLs */
	};
	const char *q = strchr(url, '?');
	StringInfoData buf;
	const char *p;

	if (q == NULL)
		return pstrdup(url);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, url, q - url + 1);
	p = q + 1;
	while (*p)
	{
		const char *amp = strchr(p, '&');
		const char *end = amp ? amp : p + strlen(p);
		const char *eq = memchr(p, '=', end - p);
		bool		hide = false;
		int			i;

		if (eq != NULL)
			for (i = 0; secret[i] != NULL; i++)
				if ((size_t) (eq - p) == strlen(secret[i]) &&
					pg_strncasecmp(p, secret[i], eq - p) == 0)
					hide = true;
		if (hide)
		{
			appendBinaryStringInfo(&buf, p, eq - p + 1);
			appendStringInfoString(&buf, "***");
		}
		else
			appendBinaryStringInfo(&buf, p, end - p);
		if (amp == NULL)
			break;
		appendStringInfoChar(&buf, '&');
		p = amp + 1;
	}
	return buf.data;
}
