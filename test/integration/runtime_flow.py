#!/usr/bin/python3
"""runtime_flow: the sync worker's flow control, as seen by mock
marketplaces' journals (arrival times; runtime_ratelimit covers a channel's
'*' bucket, max_concurrency and Amazon's rate header).  The marketplaces'
rate headers are answered by the generic mock's "status" faults with
status 200 and the header.

  1. per operation: rate_limit_set(ch, 'push', 2, 1) on an Etsy channel
     whose 'pull' operation has no override; 6 push and 10 pull jobs queued
     in one transaction: the pushes go out one per ~500 ms, the pulls all
     within 1 s (the kind's bucket, 10/s burst 10), not behind the pushes;
  2. a kind's default bucket, no override: 30 jobs of an Etsy channel
     (etsy '*': 10/s, burst 10): 10 at once, then none before its token
     (~2 s in all); 16 jobs of an Amazon channel's 'feed' operation (amazon
     'feed': 0.0083/s, burst 15): 15 go out, the 16th waits (~2 minutes);
  3. the marketplaces' rate headers:
     - Shopify X-Shopify-Shop-Api-Call-Limit: 39/40 on every answer of a
       Shopify channel (default 2/s, burst 40): 6 jobs queued at once go
       out one per ~500 ms (the one call left, then the leak rate), while 6
       jobs of another Shopify channel queued with them go out at once;
     - Walmart x-current-token-count: 0 and x-next-replenish-time T (2 s
       ahead, epoch ms) on the first answer: the next request
       (max_concurrency 1) waits until T, and not much longer;
     - Etsy x-remaining-this-second: 0 on the first answer: the next
       request waits ~1 s; the one after it (no header) does not;
  4. omnichan.http_max_inflight = 3 (postmaster setting: restart): 10 jobs
     to /slow/500 over 4 channels that each allow 4 in flight: the worker
     never has more than 3 of them running (sampled), and the mock never
     more than 3 requests in flight (its own count, and the journal's
     arrival and answer times; libcurl's connection cap is set to the same
     number, so this holds even if the claim went wrong), 3 at some point.
"""

import collections
import json
import time

from runtime_lib import (Mock, check, fatal, finish, gaps, say, start_cluster,
                         wait_for)

c = start_cluster("runtime_flow", ["omnichan.naptime = 200"])


def channel(name, kind, mock, **settings):
    s = json.dumps(dict(settings, endpoint=mock.base))
    c.sql(f"SELECT omnichan.channel_create('{name}', '{kind}', '{s}')")


def queue(*batches):
    """Queue, in one transaction, n jobs per (channel, url, n, operation)
    (url + "i=1..n"); return the time of the commit."""
    stmts = []
    for ch, url, n, op in batches:
        sep = "&" if "?" in url else "?"
        stmts.append(f"SELECT omnichan.http_enqueue('GET', '{url}{sep}i=' || i, channel => '{ch}', "
                     f"operation => '{op}') FROM generate_series(1, {n}) i")
    c.sql("; ".join(stmts))
    return time.time()


def wait_finished(channels, n, timeout=20):
    """Wait until n jobs of these channels are finished (any final state)."""
    names = ", ".join(f"'{x}'" for x in channels)
    return wait_for(f"{n} jobs of {names}", lambda: int(c.val(
        "SELECT count(*) FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id "
        f" WHERE ch.name IN ({names}) AND j.state IN ('succeeded', 'failed', 'cancelled')")) >= n, timeout)


def arrivals(m, path, **query):
    """Arrival times of the requests to path whose query has these values."""
    return [e["time"] for e in m.journal(f"^{path}$")
            if all(e["query"].get(k) == [v] for k, v in query.items())]


def rel(t):
    return [round(x - t[0], 3) for x in t]


# 1. a per-operation bucket: 'push' limited, 'pull' of the same channel not
m1 = Mock("generic")
channel("ops", "etsy", m1, shop_id=1)
c.sql("SELECT omnichan.rate_limit_set('ops', 'push', 2, 1)")
tq = queue(("ops", f"{m1.base}/echo?op=push", 6, "push"), ("ops", f"{m1.base}/echo?op=pull", 10, "pull"))
wait_finished(["ops"], 16)
push, pull = arrivals(m1, "/echo", op="push"), arrivals(m1, "/echo", op="pull")
say(f"push arrivals (s): {rel(push)}; pull arrivals after the commit (s): {[round(x - tq, 3) for x in pull]}")
check("per operation: 6 push and 10 pull requests", (len(push), len(pull)) == (6, 10), (len(push), len(pull)))
if len(push) == 6 and len(pull) == 10:
    early = [(i, r) for i, r in enumerate(rel(push)) if r < i * 0.5 - 0.1]
    check("push (2/s, burst 1): no request before its token (request i >= i x 500 ms after the first)",
          not early, early)
    check(f"push: 6 requests take >= 2.3 s ({push[-1] - push[0]:.2f} s; 5 tokens at 2/s) and <= 4 s",
          2.3 <= push[-1] - push[0] <= 4.0)
    check(f"pull (no override: the etsy bucket, 10/s burst 10) is not slowed: all 10 within 1 s of the "
          f"commit ({pull[-1] - tq:.2f} s)", pull[-1] - tq < 1.0)
    check("pull: the 10 pulls are all sent before the 3rd push (not queued behind the pushes)",
          pull[-1] < push[2], (rel(push), [round(x - push[0], 3) for x in pull]))

# 2. a kind's default bucket, no override
m2 = Mock("generic")
channel("dflt", "etsy", m2, shop_id=2)
queue(("dflt", f"{m2.base}/echo", 30, "http"))
wait_finished(["dflt"], 30)
t = arrivals(m2, "/echo")
say(f"etsy default bucket: arrivals (s): {rel(t)}")
if check("etsy default (10/s, burst 10): 30 requests", len(t) == 30, len(t)):
    r = rel(t)
    check(f"the burst: the first 10 within 300 ms ({r[9]:.3f} s)", r[9] < 0.3, r)
    check(f"30 requests take >= 1.8 s ({r[-1]:.2f} s; 20 tokens at 10/s) and <= 3.5 s", 1.8 <= r[-1] <= 3.5, r)
    early = [(i, r[i]) for i in range(10, 30) if r[i] < (i - 9) * 0.1 - 0.15]
    check("no request before its token (request i >= (i - 9) x 100 ms)", not early, early)

channel("amz", "amazon", m2, seller_id="A2EXAMPLE1234", marketplace_ids=["ATVPDKIKX0DER"])
queue(("amz", f"{m2.base}/echo?op=feed", 16, "feed"))
got = wait_for("15 feed requests", lambda: len(arrivals(m2, "/echo", op="feed")) >= 15, 10)
time.sleep(3)
n = len(arrivals(m2, "/echo", op="feed"))
check("amazon 'feed' default (0.0083/s, burst 15): 15 of 16 jobs go out, the 16th waits (3 s later)",
      got and n == 15, n)
check("... and is still queued", c.val(
    "SELECT count(*) FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id "
    " WHERE ch.name = 'amz' AND j.state = 'queued'") == "1")
c.sql("UPDATE omnichan.job SET state = 'cancelled' WHERE state = 'queued' "
      "   AND channel_id = (SELECT id FROM omnichan.channel WHERE name = 'amz')")

# 3. the marketplaces' rate headers
# Shopify: "39/40" = one call left, then the bucket leaks at 2/s
m3 = Mock("generic")
channel("shop", "shopify", m3, shop_domain="a.myshopify.com", location_id="gid://shopify/Location/1")
channel("shop2", "shopify", m3, shop_domain="b.myshopify.com", location_id="gid://shopify/Location/2")
m3.fault({"route": "^/shopify$", "kind": "status", "status": 200, "count": -1,
          "headers": {"X-Shopify-Shop-Api-Call-Limit": "39/40"}})
queue(("shop", f"{m3.base}/shopify?n=0", 1, "http"))
wait_finished(["shop"], 1)
queue(("shop", f"{m3.base}/shopify?n=1", 6, "http"), ("shop2", f"{m3.base}/echo", 6, "http"))
wait_finished(["shop", "shop2"], 13)
t, free = arrivals(m3, "/shopify", n="1"), arrivals(m3, "/echo")
g = gaps([{"time": x} for x in t])
say(f"Shopify 39/40: arrivals (s) {rel(t)}, gaps {g}; the other channel's: {rel(free)}")
if check("Shopify: 6 + 6 requests", (len(t), len(free)) == (6, 6), (len(t), len(free))):
    check(f"X-Shopify-Shop-Api-Call-Limit: 39/40 slows the channel to the leak rate: 6 requests take "
          f">= 1.9 s ({t[-1] - t[0]:.2f} s; its burst of 40 would send them at once) and <= 4.5 s",
          1.9 <= t[-1] - t[0] <= 4.5)
    early = [(i, round(t[i] - t[1], 3)) for i in range(2, 6) if t[i] - t[1] < (i - 1) * 0.5 - 0.1]
    check("... one per ~500 ms after the first two (request i >= (i - 1) x 500 ms after the 2nd)",
          not early, (g, early))
    check(f"the other Shopify channel (no header) sends its 6 at once ({free[-1] - free[0]:.3f} s)",
          free[-1] - free[0] < 0.5)

# Walmart: no token left until x-next-replenish-time
m4 = Mock("generic")
channel("wm", "walmart", m4)
c.sql("SELECT omnichan.rate_limit_set('wm', '*', 100, 100, 1)")
replenish_ms = int((time.time() + 2.0) * 1000)
T = replenish_ms / 1000.0
m4.fault({"route": "^/echo$", "kind": "status", "status": 200, "count": 1,
          "headers": {"x-current-token-count": "0", "x-next-replenish-time": str(replenish_ms)}})
queue(("wm", f"{m4.base}/echo", 2, "http"))
wait_finished(["wm"], 2)
t = arrivals(m4, "/echo")
say(f"Walmart: arrivals relative to x-next-replenish-time (s): {[round(x - T, 3) for x in t]}")
if check("Walmart: 2 requests", len(t) == 2, len(t)):
    check(f"the first goes at once ({t[0] - T:.3f} s before the replenish time)", t[0] < T - 1.5)
    check(f"x-current-token-count: 0 + x-next-replenish-time: the next request waits until that time "
          f"({t[1] - T:+.3f} s), and not 1 s longer", T - 0.01 <= t[1] <= T + 1.0)

# Etsy: nothing left this second
m5 = Mock("generic")
channel("et", "etsy", m5, shop_id=3)
c.sql("SELECT omnichan.rate_limit_set('et', '*', 100, 100, 1)")
m5.fault({"route": "^/echo$", "kind": "status", "status": 200, "count": 1,
          "headers": {"x-remaining-this-second": "0", "x-limit-per-second": "10"}})
queue(("et", f"{m5.base}/echo", 3, "http"))
wait_finished(["et"], 3)
g = gaps(m5.journal("^/echo$"))
say(f"Etsy: gaps between arrivals (s): {g}")
if check("Etsy: 3 requests", len(g) == 2, g):
    check(f"x-remaining-this-second: 0: the next request waits ~1 s ({g[0]:.3f} s)", 0.95 <= g[0] <= 1.7, g)
    check(f"the one after it (an answer without the header) follows at once ({g[1]:.3f} s)", g[1] < 0.5, g)

# 4. omnichan.http_max_inflight = 3
c.sql("ALTER SYSTEM SET omnichan.http_max_inflight = 3", db="postgres")
r = c.pg_ctl("-m", "fast", "-w", "-t", "60", "-l", c.log, "restart")
if r.returncode != 0 or not c.wait_worker("odoo", 20):
    fatal(f"restart with http_max_inflight = 3 failed: {r.stderr}\n{c.log_tail()}")
check("omnichan.http_max_inflight is 3 after the restart", c.val("SHOW omnichan.http_max_inflight") == "3")
m6 = Mock("generic")
for i in range(1, 5):
    channel(f"inf{i}", "etsy", m6, shop_id=10 + i)
queue(*[(f"inf{i}", f"{m6.base}/slow/500", n, "http") for i, n in ((1, 3), (2, 3), (3, 2), (4, 2))])
running = []                            # the worker's own count: its jobs claimed and not finished
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    r = c.sql("SELECT count(*) FILTER (WHERE j.state = 'running'), "
              "       count(*) FILTER (WHERE j.state IN ('succeeded', 'failed', 'cancelled')) "
              "  FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id AND ch.name LIKE 'inf%'")[0]
    running.append(int(r[0]))
    if r[1] == "10":
        break
    time.sleep(0.02)
e = m6.journal("^/slow/500$")
spans = [(x["time"], x["answered"]) for x in e if x["answered"] is not None]
most = max((sum(1 for a, b in spans if a <= s < b) for s, _ in spans), default=0)
h = m6.health()
say(f"http_max_inflight 3: arrivals (s) {rel([x['time'] for x in e])}; "
    f"in flight at most {most} (journal), {h['inflight_max']} (mock's count)")
check("http_max_inflight 3: 10 requests, all answered", len(spans) == 10, len(spans))
check(f"the worker never has more than 3 jobs running (claimed, not finished), and has 3 at some point "
      f"({len(running)} samples)", max(running) == 3, collections.Counter(running))
check("the mock never has more than 3 requests in flight, and has 3 at some point (its own count)",
      h["inflight_max"] == 3, h)
check("... the same from the journal's arrival and answer times", most == 3, most)
if len(spans) == 10:
    took = max(b for _, b in spans) - min(a for a, _ in spans)
    check(f"10 requests of 500 ms, 3 at a time: >= 4 rounds ({took:.2f} s >= 1.9 s)", took >= 1.9, took)
finish()
