/*
 * bench/bare_client.c -- the "physical limit" for bench/http.sh: a bare
 * libcurl multi client, no database.
 *
 *   bare_client URL N CONCURRENCY [MAX_HOST_CONNECTIONS]
 *
 * Sends N GET requests to URL with CONCURRENCY in flight, keep-alive, the
 * same multi and easy options as omnichan's engine (src/http.c): one new
 * easy handle per request (the connections live in the multi handle's
 * cache), max host / total connections, HTTP/2 over TLS allowed, body and
 * headers captured into memory.  Driven by curl_multi_poll.
 *
 * Prints one line: "requests=N ok=K errors=E seconds=S rps=R cpu_us=C",
 * C being the client's CPU time (user + system) per request.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

typedef struct Buf
{
	char		data[4096];
	size_t		len;
} Buf;

static size_t
sink(char *p, size_t size, size_t n, void *userp)
{
	Buf		   *b = userp;
	size_t		k = size * n;

	if (b->len + k < sizeof(b->data))
	{
		memcpy(b->data + b->len, p, k);
		b->len += k;
	}
	return k;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
add_one(CURLM *multi, const char *url, Buf *bufs)
{
	CURL	   *e = curl_easy_init();

	if (!e)
	{
		fprintf(stderr, "curl_easy_init failed\n");
		exit(2);
	}
	bufs[0].len = bufs[1].len = 0;
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
	curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(e, CURLOPT_USERAGENT, "bare_client");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, &bufs[0]);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, sink);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, &bufs[1]);
	curl_easy_setopt(e, CURLOPT_PRIVATE, bufs);
	curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	curl_multi_add_handle(multi, e);
}

int
main(int argc, char **argv)
{
	const char *url;
	long		n,
				conc,
				hostconns,
				started = 0,
				finished = 0,
				ok = 0,
				errors = 0,
				i;
	CURLM	   *multi;
	Buf		   *bufs;
	Buf		  **freebufs;
	long		nfree = 0;
	double		t0,
				t1;
	struct rusage ru;
	int			running = 1;

	if (argc < 4)
	{
		fprintf(stderr, "usage: bare_client URL N CONCURRENCY [MAX_HOST_CONNECTIONS]\n");
		return 2;
	}
	url = argv[1];
	n = atol(argv[2]);
	conc = atol(argv[3]);
	hostconns = argc > 4 ? atol(argv[4]) : conc;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, hostconns);
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, conc);
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, conc);
	curl_multi_setopt(multi, CURLMOPT_PIPELINING, (long) CURLPIPE_MULTIPLEX);
	bufs = calloc(conc * 2, sizeof(Buf));
	freebufs = calloc(conc, sizeof(Buf *));
	for (i = 0; i < conc; i++)
		freebufs[nfree++] = &bufs[2 * i];

	t0 = now_s();
	while (finished < n)
	{
		CURLMsg    *msg;
		int			left;

		while (started < n && nfree > 0)
		{
			add_one(multi, url, freebufs[--nfree]);
			started++;
		}
		curl_multi_perform(multi, &running);
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			Buf		   *b;
			long		status = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &b);
			curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
			if (msg->data.result == CURLE_OK && status >= 200 && status < 300)
				ok++;
			else
				errors++;
			curl_multi_remove_handle(multi, msg->easy_handle);
			curl_easy_cleanup(msg->easy_handle);
			freebufs[nfree++] = b;
			finished++;
		}
		if (finished < n && !(started < n && nfree > 0))
			curl_multi_poll(multi, NULL, 0, 1000, NULL);
	}
	t1 = now_s();
	getrusage(RUSAGE_SELF, &ru);
	printf("requests=%ld ok=%ld errors=%ld seconds=%.3f rps=%.0f cpu_us=%.1f\n",
		   n, ok, errors, t1 - t0, n / (t1 - t0),
		   (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 / n +
		   (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / (double) n);
	curl_multi_cleanup(multi);
	curl_global_cleanup();
	return errors > 0 ? 1 : 0;
}
