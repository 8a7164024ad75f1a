/*
 * bench/target.c -- loopback HTTP/1.1 target for bench/http.sh.
 *
 *   target -p PORT [-p PORT ...] [-l LOGFILE] [-r READYFILE]
 *
 * One thread, epoll, non-blocking sockets bound to 127.0.0.1 only.  Every
 * request gets the same small answer ("200 OK", body "ok\n"), keep-alive
 * (HTTP/1.1; "Connection: close" is honoured).  Request bodies are read
 * (Content-Length) and dropped.
 *
 *   /delay/N...   answer after N milliseconds, from a timer heap (no thread
 *                 sleeps; other connections are served meanwhile)
 *   .../t/ID...   write "ID <arrival time in microseconds since the epoch>"
 *                 to LOGFILE (flushed per line) when the request has been
 *                 read completely: commit -> request latency
 *
 * SIGTERM/SIGINT: print "requests=N connections=M" on stderr and exit 0.
 * READYFILE is created once every port listens.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_PORTS	16
#define INBUF		65536

typedef struct Conn
{
	int			fd;
	unsigned	gen;			/* bumped on close: stale timers are ignored */
	int			open;
	int			waiting;		/* a delayed answer is pending */
	int			close_after;
	size_t		inlen;
	size_t		body_left;		/* body bytes of the current request to drop */
	char		in[INBUF];
	char	   *out;			/* unsent part of the answer */
	size_t		outlen;
	size_t		outoff;
} Conn;

typedef struct Timer
{
	int64_t		due_us;
	Conn	   *c;
	unsigned	gen;
} Timer;

static const char RESPONSE[] =
"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n";
static const char RESPONSE_CLOSE[] =
"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

static volatile sig_atomic_t stop = 0;
static int	epfd;
static Timer *heap;
static size_t nheap,
			capheap;
static unsigned long long nrequests,
			nconnections;
static FILE *logf;
static int	listeners[MAX_PORTS];
static int	nlisteners;
static Conn *dead;				/* closed, to free after the event batch */

static void
on_signal(int sig)
{
	(void) sig;
	stop = 1;
}

static int64_t
now_us(int clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
heap_push(Timer t)
{
	size_t		i;

	if (nheap == capheap)
	{
		capheap = capheap ? capheap * 2 : 1024;
		heap = realloc(heap, capheap * sizeof(Timer));
		if (!heap)
		{
			perror("realloc");
			exit(1);
		}
	}
	i = nheap++;
	while (i > 0 && heap[(i - 1) / 2].due_us > t.due_us)
	{
		heap[i] = heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	heap[i] = t;
}

static Timer
heap_pop(void)
{
	Timer		top = heap[0],
				last = heap[--nheap];
	size_t		i = 0;

	for (;;)
	{
		size_t		l = 2 * i + 1,
					m = l;

		if (l >= nheap)
			break;
		if (l + 1 < nheap && heap[l + 1].due_us < heap[l].due_us)
			m = l + 1;
		if (heap[m].due_us >= last.due_us)
			break;
		heap[i] = heap[m];
		i = m;
	}
	if (nheap > 0)
		heap[i] = last;
	return top;
}

static void
conn_close(Conn *c)
{
	epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->open = 0;
	c->gen++;
	if (!c->waiting)
	{
		/* freed after the current batch of events */
		c->out = (char *) dead;
		dead = c;
	}
	/* else freed when its timer fires (gen mismatch) */
}

static void process(Conn *c);

/* send (the rest of) the answer; 0 = done, 1 = would block, -1 = closed */
static int
flush_out(Conn *c)
{
	while (c->outoff < c->outlen)
	{
		ssize_t		n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);

		if (n < 0)
		{
			if (errno == EAGAIN || errno == EWOULDBLOCK)
			{
				struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};

				epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
				return 1;
			}
			conn_close(c);
			return -1;
		}
		c->outoff += n;
	}
	c->out = NULL;
	c->outlen = c->outoff = 0;
	if (c->close_after)
	{
		shutdown(c->fd, SHUT_WR);
		conn_close(c);
		return -1;
	}
	return 0;
}

static int
respond(Conn *c)
{
	nrequests++;
	c->out = (char *) (c->close_after ? RESPONSE_CLOSE : RESPONSE);
	c->outlen = c->close_after ? sizeof(RESPONSE_CLOSE) - 1 : sizeof(RESPONSE) - 1;
	c->outoff = 0;
	return flush_out(c);
}

/* header value (case-insensitive name) in [hdr, end), or NULL */
static const char *
header(const char *hdr, const char *end, const char *name, size_t *len)
{
	size_t		nl = strlen(name);
	const char *p = hdr;

	while (p < end)
	{
		const char *eol = memmem(p, end - p, "\r\n", 2);

		if (!eol)
			eol = end;
		if ((size_t) (eol - p) > nl && p[nl] == ':' && strncasecmp(p, name, nl) == 0)
		{
			const char *v = p + nl + 1;

			while (v < eol && (*v == ' ' || *v == '\t'))
				v++;
			*len = eol - v;
			return v;
		}
		p = eol + 2;
	}
	return NULL;
}

/* handle the complete requests in c->in, in order */
static void
process(Conn *c)
{
	for (;;)
	{
		char	   *hend;
		char	   *sp1,
				   *sp2,
				   *p;
		size_t		reqlen,
					len;
		const char *v;
		long		delay_ms = 0;
		size_t		clen = 0;

		if (c->waiting || c->outlen > 0 || !c->open)
			return;
		if (c->body_left > 0)
		{
			size_t		k = c->body_left < c->inlen ? c->body_left : c->inlen;

			memmove(c->in, c->in + k, c->inlen - k);
			c->inlen -= k;
			c->body_left -= k;
			if (c->body_left > 0)
				return;
		}
		hend = memmem(c->in, c->inlen, "\r\n\r\n", 4);
		if (!hend)
		{
			if (c->inlen == INBUF)
				conn_close(c);	/* header too large */
			return;
		}
		reqlen = hend + 4 - c->in;
		sp1 = memchr(c->in, ' ', reqlen);
		sp2 = sp1 ? memchr(sp1 + 1, ' ', reqlen - (sp1 + 1 - c->in)) : NULL;
		if (!sp1 || !sp2)
		{
			conn_close(c);
			return;
		}
		*sp2 = '\0';			/* path = sp1 + 1 */
		if (strncmp(sp1 + 1, "/delay/", 7) == 0)
			delay_ms = strtol(sp1 + 8, NULL, 10);
		p = strstr(sp1 + 1, "/t/");
		if (p && logf)
		{
			char		id[64];
			size_t		k = 0;

			p += 3;
			while (p[k] && p[k] != '/' && p[k] != '?' && k < sizeof(id) - 1)
			{
				id[k] = p[k];
				k++;
			}
			id[k] = '\0';
			fprintf(logf, "%s %lld\n", id, (long long) now_us(CLOCK_REALTIME));
			fflush(logf);
		}
		*sp2 = ' ';
		v = header(c->in, hend + 2, "Content-Length", &len);
		if (v)
			clen = strtoul(v, NULL, 10);
		v = header(c->in, hend + 2, "Connection", &len);
		c->close_after = (v && len >= 5 && strncasecmp(v, "close", 5) == 0);
		memmove(c->in, c->in + reqlen, c->inlen - reqlen);
		c->inlen -= reqlen;
		c->body_left = clen;

		if (delay_ms > 0)
		{
			Timer		t = {now_us(CLOCK_MONOTONIC) + delay_ms * 1000, c, c->gen};

			c->waiting = 1;
			heap_push(t);
			return;
		}
		if (respond(c) != 0)
			return;
	}
}

static void
on_readable(Conn *c)
{
	for (;;)
	{
		ssize_t		n;

		if (c->inlen == INBUF)
			break;
		n = recv(c->fd, c->in + c->inlen, INBUF - c->inlen, 0);
		if (n > 0)
		{
			c->inlen += n;
			continue;
		}
		if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
		{
			conn_close(c);
			return;
		}
		break;
	}
	process(c);
}

static void
on_accept(int lfd)
{
	for (;;)
	{
		int			fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		int			one = 1;
		Conn	   *c;
		struct epoll_event ev;

		if (fd < 0)
			return;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(Conn));
		if (!c)
		{
			close(fd);
			return;
		}
		c->fd = fd;
		c->open = 1;
		ev.events = EPOLLIN;
		ev.data.ptr = c;
		epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
		nconnections++;
	}
}

int
main(int argc, char **argv)
{
	const char *ready = NULL;
	int			opt,
				i;
	struct epoll_event events[256];

	epfd = epoll_create1(EPOLL_CLOEXEC);
	while ((opt = getopt(argc, argv, "p:l:r:")) != -1)
	{
		if (opt == 'p' && nlisteners < MAX_PORTS)
		{
			struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(atoi(optarg))};
			int			fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			int			one = 1;
			struct epoll_event ev = {.events = EPOLLIN};

			inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
			setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
			if (bind(fd, (struct sockaddr *) &a, sizeof(a)) < 0 || listen(fd, 4096) < 0)
			{
				fprintf(stderr, "target: port %s: %s\n", optarg, strerror(errno));
				return 1;
			}
			ev.data.ptr = NULL;
			ev.data.u64 = (uint64_t) nlisteners + 1;	/* small ints: listeners */
			epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
			listeners[nlisteners++] = fd;
		}
		else if (opt == 'l')
		{
			logf = fopen(optarg, "a");
			if (!logf)
			{
				perror(optarg);
				return 1;
			}
		}
		else if (opt == 'r')
			ready = optarg;
		else
		{
			fprintf(stderr, "usage: target -p PORT [-p PORT ...] [-l LOG] [-r READYFILE]\n");
			return 1;
		}
	}
	if (nlisteners == 0)
	{
		fprintf(stderr, "target: no port\n");
		return 1;
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	signal(SIGPIPE, SIG_IGN);
	if (ready)
	{
		FILE	   *f = fopen(ready, "w");

		if (f)
		{
			fprintf(f, "%d\n", (int) getpid());
			fclose(f);
		}
	}

	while (!stop)
	{
		int			timeout = -1,
					n;

		if (nheap > 0)
		{
			int64_t		d = heap[0].due_us - now_us(CLOCK_MONOTONIC);

			timeout = d <= 0 ? 0 : (int) ((d + 999) / 1000);
		}
		n = epoll_wait(epfd, events, 256, timeout);
		for (i = 0; i < n; i++)
		{
			uint64_t	tag = events[i].data.u64;

			if (tag >= 1 && tag <= (uint64_t) nlisteners)
				on_accept(listeners[tag - 1]);
			else
			{
				Conn	   *c = events[i].data.ptr;

				if (!c->open)
					continue;
				if ((events[i].events & EPOLLOUT) && c->outlen > 0)
				{
					struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};

					if (flush_out(c) != 0)
						continue;
					epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
					process(c);
					if (!c->open)
						continue;
				}
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					on_readable(c);
			}
		}
		while (dead)
		{
			Conn	   *next = (Conn *) dead->out;

			free(dead);
			dead = next;
		}
		/* due delayed answers */
		while (nheap > 0 && heap[0].due_us <= now_us(CLOCK_MONOTONIC))
		{
			Timer		t = heap_pop();

			t.c->waiting = 0;
			if (t.gen != t.c->gen || !t.c->open)
			{
				free(t.c);
				continue;
			}
			if (respond(t.c) == 0)
				process(t.c);
		}
		while (dead)
		{
			Conn	   *next = (Conn *) dead->out;

			free(dead);
			dead = next;
		}
	}
	fprintf(stderr, "target: requests=%llu connections=%llu\n", nrequests, nconnections);
	return 0;
}
