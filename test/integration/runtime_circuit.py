#!/usr/bin/python3
"""runtime_circuit: the per-channel circuit breaker of the sync worker, as
seen by two mock marketplaces' journals.

circuit_failure_threshold = 3, circuit_open_time = 1000 ms; channel "dead"
(max_concurrency 1) whose mock answers 503 to everything, channel "live" on a
healthy mock:

  - after 3 failures nothing is sent to "dead" for ~1 s, then exactly one
    probe; it fails, and the next probe waits twice as long (~2 s);
  - channel_status.state is 'circuit open' meanwhile;
  - jobs of "live" queued while "dead"'s circuit is open go out at once;
  - once the faults are cleared the next probe succeeds, the circuit closes
    and the remaining jobs of "dead" are all sent and succeed.
"""

import time

from runtime_lib import (Mock, check, finish, say, start_cluster, wait_for)

c = start_cluster("runtime_circuit", [
    "omnichan.naptime = 200",
    "omnichan.retry_base_delay = 50",
    "omnichan.circuit_failure_threshold = 3",
    "omnichan.circuit_open_time = 1000",
])
dead = Mock("generic")
live = Mock("generic")
dead.fault({"route": "^/echo$", "kind": "status", "status": 503, "count": -1})

for name, m, sid in (("dead", dead, 1), ("live", live, 2)):
    c.sql(f"SELECT omnichan.channel_create('{name}', 'etsy', "
          f"'{{\"shop_id\": {sid}, \"endpoint\": \"{m.base}\"}}')")
c.sql("SELECT omnichan.rate_limit_set('dead', '*', 100, 100, 1)")
c.sql("SELECT omnichan.rate_limit_set('live', '*', 100, 100)")


def queue(name, m, n):
    c.sql(f"SELECT omnichan.http_enqueue('POST', '{m.base}/echo', channel => '{name}', "
          f"max_attempts => 20) FROM generate_series(1, {n})")


def state(name):
    return c.val(f"SELECT state FROM omnichan.channel_status WHERE channel = '{name}'")


queue("dead", dead, 5)
e = wait_for("3 failures", lambda: (lambda j: j if len(j) >= 3 else None)(dead.journal()), 10) or []
check("3 requests fail with 503", len(e) >= 3 and all(x["status"] == 503 for x in e[:3]),
      [x["status"] for x in e])
st = wait_for("channel_status 'circuit open'", lambda: state("dead") == "circuit open", 5)
check("channel_status.state of the dead channel is 'circuit open'", st, state("dead"))
check("channel_status shows 3 consecutive failures",
      c.val("SELECT consecutive_failures FROM omnichan.channel_status WHERE channel = 'dead'") == "3")
t3 = e[2]["time"] if len(e) >= 3 else time.time()

# the healthy channel flows while the other's circuit is open
t = time.time()
queue("live", live, 3)
le = wait_for("3 requests of the live channel",
              lambda: (lambda j: j if len(j) == 3 else None)(live.journal()), 5) or []
delays = [round(x["time"] - t, 3) for x in le]
say(f"live channel: arrival after queueing (s): {delays}")
check("the live channel's 3 jobs go out at once while the dead one's circuit is open",
      len(le) == 3 and max(delays) < 0.5 and le[-1]["time"] < t3 + 1.0, delays)

# one probe after ~1 s
e = wait_for("the first probe", lambda: (lambda j: j if len(j) >= 4 else None)(dead.journal()), 5) or []
if check("a probe is sent", len(e) >= 4, len(e)):
    gap = e[3]["time"] - t3
    check(f"no request for ~1 s after the 3rd failure, then the probe ({gap:.3f} s)", 0.95 <= gap < 1.6, gap)
time.sleep(0.5)
n = dead.count()
check("exactly one probe (its failure re-opens the circuit)", n == 4, n)
check("still 'circuit open' after the failed probe", state("dead") == "circuit open", state("dead"))
t4 = e[3]["time"] if len(e) >= 4 else time.time()

# clear the faults: the next probe, ~2 s after the first, succeeds
dead.clear_faults()
e = wait_for("the second probe", lambda: (lambda j: j if len(j) >= 5 else None)(dead.journal()), 5) or []
if check("a second probe is sent", len(e) >= 5, len(e)):
    gap = e[4]["time"] - t4
    check(f"the second probe waits twice as long ({gap:.3f} s >= 2 s)", 1.95 <= gap < 2.7, gap)
    check("the second probe succeeds", e[4]["status"] == 200, e[4]["status"])
ok = wait_for("all jobs of dead to succeed", lambda: c.val(
    "SELECT count(*) FROM omnichan.job j JOIN omnichan.channel ch ON ch.id = j.channel_id "
    " WHERE ch.name = 'dead' AND j.state = 'succeeded'") == "5", 5)
check("after the successful probe the circuit closes and all 5 jobs of dead succeed", ok)
e = dead.journal()
check("dead's journal: 3 failures, 1 failed probe, then 5 successes (probe included), nothing more",
      [x["status"] for x in e] == [503] * 4 + [200] * 5, [x["status"] for x in e])
check("channel_status.state is 'active' again", state("dead") == "active", state("dead"))
check("channel_state.circuit is 'closed'",
      c.val("SELECT s.circuit FROM omnichan.channel_state s JOIN omnichan.channel ch ON ch.id = s.channel_id "
            " WHERE ch.name = 'dead'") == "closed")
logtxt = c.log_text()
check("the server log tells the circuit opened and closed",
      "is now open" in logtxt and "is now closed" in logtxt)
finish()
