#!/usr/bin/python3
"""runtime_status: the columns of omnichan.channel_status that follow the
sync worker's schedule and attempts (runtime_control and runtime_circuit
cover state, backlog, listings_to_push and consecutive_failures), against an
eBay mock (pushes, pulls) and a generic mock (plain requests that fail).

What the view promises (sql/omnichan--0.1.0.sql):
  last_pull_at     when the worker last started a pull of the channel;
  lag              how stale the marketplace's stock is: now() - the
                   oldest target_at of the channel's listings whose target
                   it has not accepted yet; 0 when there is none;
  errors_last_hour the channel's sync_log rows of the last hour whose
                   outcome is not 'succeeded' (failed attempts and retries);
  next_run         the next push or pull, whichever comes first (a
                   real-time channel pushes on commit: its next pull).

Channels: "st" (eBay, push_interval 60 s, pull_interval 5 s, 3 listings),
"rt" (eBay, real time, pull_interval 5 s, 2 listings), "other" (Etsy, no
credentials: no pushes or pulls).  Checks:

  - after the first pull: last_pull_at is when its request went out (the
    mock's arrival time, within 1 s), later pulls move it every ~5 s;
  - next_run of "st" is its next pull: last_pull_at + 5 s, in the future,
    = LEAST(next_push_at, next_pull_at); next_run of "rt" is its next pull
    too (in the future), not the time of its last push;
  - lag is 0 once every listing was pushed; while a stock change waits for
    the push interval it is the age of that listing's new target (set
    at most target_refresh_delay after the change's commit) and grows with the clock, across a pull;
    after sync_now has pushed it it is 0 again;
  - errors_last_hour after a request failing 3 times (503, max_attempts 3:
    2 retries + 1 failure), a 404 (1 failure) and a 503 then 200 (1 retry):
    5 more, equal to the channel's non-succeeded sync_log rows of the last
    hour; the other channel's failure and the successes are not counted; a
    failed attempt 61 minutes old is not counted, one 59 minutes old is.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, Mock, check, fatal, finish, mockctl, say,  # noqa: E402
                         start_cluster, wait_for, _cleanups)

TOKEN = "/identity/v1/oauth2/token"
BULK = "/sell/inventory/v1/bulk_update_price_quantity"
ORDERS = "/sell/fulfillment/v1/order"
SKUS = {"st": ["SKU-000001", "SKU-000002", "SKU-000003"], "rt": ["SKU-000004", "SKU-000005"]}


def main():
    c = start_cluster("runtime_status", ["omnichan.naptime = 200",
                                         "omnichan.retry_base_delay = 100",
                                         "omnichan.circuit_failure_threshold = 20"])
    c.sql("SELECT omnichan_test.generate_catalog(10, 1)")
    seed = {"credentials": {"client_id": "ebay-client", "client_secret": "s", "refresh_token": "r"},
            "inventory": {s: {"quantity": 999} for v in SKUS.values() for s in v}}
    proc, port = mockctl.start("ebay", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"
    g = Mock("generic")

    for name, interval in (("st", 60), ("rt", 0)):
        c.sql(f"""SELECT omnichan.channel_create('{name}', 'ebay', jsonb_build_object(
                    'marketplace_id', 'EBAY_US', 'push_interval', {interval}, 'pull_interval', 5,
                    'endpoint', '{base}', 'token_endpoint', '{base}{TOKEN}'))""")
        codes = ", ".join(f"'{s}'" for s in SKUS[name])
        c.sql(f"SELECT omnichan.listing_link('{name}', id, jsonb_build_object('sku', default_code)) "
              f"  FROM product_product WHERE default_code IN ({codes})")
        c.sql(f"""SELECT omnichan.credentials_set('{name}', jsonb_build_object(
                    'client_id', 'ebay-client', 'client_secret', 's', 'refresh_token', 'r'))""")
        c.sql(f"SELECT omnichan.sync_now('{name}')")   # its schedule started with the channel
    c.sql(f"SELECT omnichan.channel_create('other', 'etsy', '{{\"shop_id\": 1, \"endpoint\": \"{g.base}\"}}')")

    def status(name, cols):
        rows = c.sql(f"SELECT {cols} FROM omnichan.channel_status WHERE channel = '{name}'")
        return rows[0] if rows else None

    def epoch(name, expr):
        v = status(name, f"extract(epoch FROM {expr})")[0]
        return float(v) if v else None

    def pushed(name):
        return c.val("SELECT bool_and(pushed_qty IS NOT DISTINCT FROM target_qty AND target_qty IS NOT NULL) "
                     f"  FROM omnichan.listing_status WHERE channel = '{name}'") == "t"

    def journal(path):
        return [e["time"] for e in mockctl.journal(port, path=f"^{path}$")]

    ok = wait_for("the first pushes and pulls", lambda: pushed("st") and pushed("rt") and
                  status("st", "last_pull_at IS NOT NULL AND last_push_at IS NOT NULL") == ["t"] and
                  status("rt", "last_pull_at IS NOT NULL AND last_push_at IS NOT NULL") == ["t"] and
                  len(journal(ORDERS)) >= 2, 20)
    if not ok:
        fatal("no first push and pull:\n" + "\n".join("|".join(r) for r in c.sql(
            "SELECT channel, last_push_at, last_pull_at, last_error FROM omnichan.channel_status") or [])
            + f"\n{c.log_tail()}")

    # 1. last_pull_at: when the pull went out
    first_pull, first_push = journal(ORDERS)[0], journal(BULK)[0]
    lp = epoch("st", "last_pull_at")
    say(f"st: first pull request {first_pull:.3f}, first push request {first_push:.3f}, last_pull_at {lp:.3f}")
    pulls = [t for t in journal(ORDERS)]
    check("last_pull_at is the time of a pull request of the channel (within 1 s of one the mock received)",
          any(abs(lp - t) < 1.0 for t in pulls), (lp, pulls))
    lp0 = lp
    moved = wait_for("the next pull (pull_interval 5 s)", lambda: epoch("st", "last_pull_at") > lp0 + 1, 10)
    lp = epoch("st", "last_pull_at")
    check(f"last_pull_at moves with the next pull, ~5 s later ({lp - lp0:.2f} s)",
          moved and 4.0 <= lp - lp0 <= 7.0, lp - lp0)

    # 2. next_run
    row = status("st", "extract(epoch FROM next_run), extract(epoch FROM last_pull_at), "
                       "extract(epoch FROM now()), "
                       "next_run = (SELECT LEAST(s.next_push_at, s.next_pull_at) FROM omnichan.channel_state s "
                       "             WHERE s.channel_id = channel_status.channel_id)")
    nr, lp, now = float(row[0]), float(row[1]), float(row[2])
    say(f"st: next_run - last_pull_at = {nr - lp:.3f} s, next_run - now = {nr - now:.3f} s")
    check("next_run of a channel that pushes every 60 s and pulls every 5 s is its next pull: "
          "last_pull_at + 5 s, in the future, = LEAST(next_push_at, next_pull_at)",
          abs(nr - lp - 5.0) < 0.5 and nr > now and row[3] == "t", row)
    row = status("rt", "extract(epoch FROM next_run), extract(epoch FROM last_pull_at), "
                       "extract(epoch FROM last_push_at), extract(epoch FROM now())")
    nr, lp, lpush, now = (float(x) for x in row)
    say(f"rt: next_run - now = {nr - now:.3f} s, next_run - last_pull_at = {nr - lp:.3f} s, "
        f"next_run - last_push_at = {nr - lpush:.3f} s")
    check("next_run of a real-time channel (pushes on commit) is its next pull: in the future, "
          "last_pull_at + 5 s (not the time of its last push)",
          nr > now and abs(nr - lp - 5.0) < 0.5, row)

    # 3. lag
    row = status("st", "lag, listings_to_push")
    check("lag is 0 once every listing was pushed", row == ["00:00:00", "0"], row)
    bulk0 = len(journal(BULK))
    changed_at = time.time()
    c.sql("UPDATE stock_quant SET quantity = quantity + 3 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000001')")
    waiting = wait_for("the change to wait for st's push", lambda: status("st", "listings_to_push") == ["1"], 5)
    check("a stock change of st waits for its push interval (listings_to_push 1)", waiting)
    row = status("st", "extract(epoch FROM lag), extract(epoch FROM now())")
    age = float(row[1]) - changed_at
    check(f"lag is the age of the listing's new target: set at most omnichan.target_refresh_delay (2 s) after the change's commit "
          f"({float(row[0]):.2f} s vs {age:.2f} s)", 0 < float(row[0]) <= age + 0.2 and float(row[0]) > age - 2.5,
          (row, age))
    lp0 = epoch("st", "last_pull_at")
    row1 = status("st", "extract(epoch FROM lag), extract(epoch FROM now())")
    wait_for("a pull while the change waits", lambda: epoch("st", "last_pull_at") > lp0 + 1, 10)
    time.sleep(0.5)
    row2 = status("st", "extract(epoch FROM lag), extract(epoch FROM now()), listings_to_push")
    grew, elapsed = float(row2[0]) - float(row1[0]), float(row2[1]) - float(row1[1])
    say(f"lag {float(row1[0]):.2f} s -> {float(row2[0]):.2f} s over {elapsed:.2f} s (a pull in between)")
    check(f"lag grows with the clock while the change is unpushed, a pull in between "
          f"(+{grew:.2f} s over {elapsed:.2f} s)",
          abs(grew - elapsed) < 0.05 and elapsed > 1.0 and row2[2] == "1" and len(journal(BULK)) == bulk0,
          (row1, row2, len(journal(BULK)) - bulk0))
    c.sql("SELECT omnichan.sync_now('st')")
    ok = wait_for("sync_now's push", lambda: len(journal(BULK)) > bulk0 and pushed("st"), 10)
    row = status("st", "lag")
    check("after sync_now pushed the change, lag is 0 again", ok and row == ["00:00:00"], row)

    # 4. errors_last_hour
    def errors(name):
        return status(name, "errors_last_hour, (SELECT count(*) FROM omnichan.sync_log l "
                            "  WHERE l.channel_id = channel_status.channel_id "
                            "    AND l.at > now() - interval '1 hour' AND l.outcome <> 'succeeded')")

    e0 = errors("st")
    check("errors_last_hour before the failures = the channel's non-succeeded sync_log rows of the last hour",
          e0 is not None and e0[0] == e0[1], e0)
    g.fault({"route": "^/echo$", "kind": "status", "status": 503, "count": 1})
    jobs = [int(c.val(f"SELECT omnichan.http_enqueue('GET', '{g.base}{path}', channel => '{ch}', "
                      f"max_attempts => {n})"))
            for ch, path, n in (("st", "/status/503", 3), ("st", "/status/404", 3), ("st", "/echo", 3),
                                ("st", "/bytes/10", 3), ("st", "/bytes/11", 3), ("other", "/status/404", 3))]
    ids = ", ".join(map(str, jobs))
    done = wait_for("the requests to finish", lambda: c.val(
        f"SELECT count(*) FROM omnichan.job WHERE id IN ({ids}) AND state IN ('succeeded', 'failed')") == "6", 15)
    outcomes = c.sql("SELECT j.id, string_agg(l.outcome, ',' ORDER BY l.attempt) FROM omnichan.job j "
                     f"  JOIN omnichan.sync_log l ON l.job_id = j.id WHERE j.id IN ({ids}) GROUP BY j.id ORDER BY j.id")
    say(f"attempts: {outcomes}")
    check("the attempts: 503 x 3 (retry, retry, failed), 404 (failed), 503 then 200 (retry, succeeded), "
          "2 successes, the other channel's 404",
          done and [r[1] for r in outcomes] == ["retry,retry,failed", "failed", "retry,succeeded",
                                                "succeeded", "succeeded", "failed"], outcomes)
    e1 = errors("st")
    check(f"errors_last_hour of st grows by the 5 non-succeeded attempts ({e0[0]} -> {e1[0]}), "
          "= its non-succeeded sync_log rows of the last hour",
          int(e1[0]) == int(e0[0]) + 5 and e1[0] == e1[1], (e0, e1))
    check("the other channel's failure is its own (errors_last_hour 1)", errors("other") == ["1", "1"],
          errors("other"))
    c.sql("INSERT INTO omnichan.sync_log (at, channel_id, operation, method, url, attempt, duration_ms, outcome) "
          "SELECT now() - interval '61 minutes', id, 'http', 'GET', 'http://127.0.0.1:9/old', 1, 1, 'failed' "
          "  FROM omnichan.channel WHERE name = 'st'")
    check("a failed attempt 61 minutes old is not counted", errors("st")[0] == e1[0], errors("st"))
    c.sql("INSERT INTO omnichan.sync_log (at, channel_id, operation, method, url, attempt, duration_ms, outcome) "
          "SELECT now() - interval '59 minutes', id, 'http', 'GET', 'http://127.0.0.1:9/old', 1, 1, 'failed' "
          "  FROM omnichan.channel WHERE name = 'st'")
    check("one 59 minutes old is", int(errors("st")[0]) == int(e1[0]) + 1, errors("st"))


run(main)
