#!/usr/bin/python3
"""runtime_ratelimit: the sync worker's token buckets and per-channel
concurrency, as seen by a mock marketplace's journal.

  - rate_limit_set(channel, '*', rate 5, burst 2), 12 jobs queued at once,
    right after the call: the first 2 go out at once, then one every 200 ms
    (the whole run takes >= ~2 s, no 3 requests within 300 ms);
  - max_concurrency 1 with a /slow/200 route: never more than 1 request in
    flight (each request arrives after the previous answer, >= 200 ms later);
  - an Amazon x-amzn-RateLimit-Limit: 2 response header lowers the channel's
    rate to 2 requests per second although its configured rate is 100.
"""

from runtime_lib import (Mock, check, finish, gaps, say, start_cluster,
                         wait_for)

c = start_cluster("runtime_ratelimit", ["omnichan.naptime = 200"])
m = Mock("generic")
B = m.base


def queue_jobs(channel, path, n):
    c.sql(f"SELECT omnichan.http_enqueue('GET', '{B}{path}', channel => '{channel}', operation => 'push') "
          f"  FROM generate_series(1, {n})")


def wait_all_done(channel, n, timeout=15):
    return wait_for(f"{n} jobs of {channel} to succeed", lambda: c.val(
        f"SELECT count(*) FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id "
        f" WHERE ch.name = '{channel}' AND j.state = 'succeeded'") == str(n), timeout)


# 1. token bucket: rate 5/s, burst 2
c.sql(f"SELECT omnichan.channel_create('rl', 'etsy', '{{\"shop_id\": 1, \"endpoint\": \"{B}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('rl', '*', 5, 2)")
queue_jobs("rl", "/echo", 12)
wait_all_done("rl", 12)
t = [e["time"] for e in m.journal("^/echo$")]
check("rate 5/s burst 2: 12 requests in the journal", len(t) == 12, len(t))
if len(t) == 12:
    rel = [round(x - t[0], 3) for x in t]
    say(f"arrival times (s): {rel}")
    check("the burst: the first 2 requests go out at once (< 100 ms apart)", rel[1] < 0.1, rel)
    check("the 3rd request waits for a token (>= ~150 ms after the 1st)", rel[2] >= 0.15, rel)
    check(f"12 requests take >= ~2 s in all ({rel[-1]:.2f} s; 10 tokens at 5/s)", rel[-1] >= 1.9, rel)
    check(f"... and not much more ({rel[-1]:.2f} s <= 3 s)", rel[-1] <= 3.0, rel)
    late = [i for i in range(2, 12) if rel[i] < (i - 1) * 0.2 - 0.05]
    check("no request before its token (request i >= (i-1) x 200 ms)", not late, [(i, rel[i]) for i in late])
    dense = [i for i in range(3, 12) if t[i] - t[i - 2] < 0.3]
    check("never 3 requests within 300 ms after the burst", not dense, dense)

# 2. max_concurrency 1
c.sql(f"SELECT omnichan.channel_create('mc', 'etsy', '{{\"shop_id\": 2, \"endpoint\": \"{B}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('mc', '*', 100, 100, 1)")
queue_jobs("mc", "/slow/200", 5)
wait_all_done("mc", 5)
e = m.journal("^/slow/200$")
g = gaps(e)
say(f"max_concurrency 1: gaps between arrivals (s): {g}")
check("max_concurrency 1: 5 requests", len(e) == 5, len(e))
check("max_concurrency 1: each request arrives after the previous answer (gaps >= 200 ms)",
      len(g) == 4 and min(g) >= 0.195, g)
check("max_concurrency 1: ... and promptly (gaps < 500 ms)", len(g) == 4 and max(g) < 0.5, g)

# 3. Amazon's x-amzn-RateLimit-Limit lowers the rate
c.sql(f"SELECT omnichan.channel_create('amz', 'amazon', '{{\"seller_id\": \"A2EXAMPLE1234\", "
      f"\"marketplace_ids\": [\"ATVPDKIKX0DER\"], \"endpoint\": \"{B}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('amz', '*', 100, 1)")
m.fault({"route": "^/status/201$", "kind": "status", "status": 200,
         "headers": {"x-amzn-RateLimit-Limit": "2.0"}})
queue_jobs("amz", "/status/201", 1)
wait_all_done("amz", 1)
queue_jobs("amz", "/status/201", 4)
wait_all_done("amz", 5)
e = m.journal("^/status/201$")
g = gaps(e[1:])
say(f"x-amzn-RateLimit-Limit: 2: gaps between the later requests (s): {g}")
check("x-amzn-RateLimit-Limit: 5 requests", len(e) == 5, len(e))
check("x-amzn-RateLimit-Limit: 2 -> requests spaced ~500 ms (configured rate 100/s)",
      len(g) == 3 and min(g) >= 0.45 and max(g) < 0.8, g)

finish()
