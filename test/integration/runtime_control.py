#!/usr/bin/python3
"""runtime_control: the control functions, full-resync progress and the
sync_log retention, against eBay mocks.

A throwaway cluster (naptime 200 ms, so housekeeping runs every 2 s;
sync_log_retention 60 s), two eBay mocks and two channels: "ebay-a" with a
push_interval of 60 s (nothing is pushed unless asked, after its first push)
and 30 listings, "ebay-b" real-time with 10 listings.  Checks:

- sync_now(channel): a stock change of ebay-a waits for the push_interval;
  sync_now pushes it at once (one bulk request);
- pause(channel): nothing is sent to ebay-a (not its changed listings, not
  a queued plain request, not even after sync_now); channel_status shows
  'paused', the queued request in backlog and the listings to push; ebay-b
  keeps pushing meanwhile;
- resume(channel): what waited is sent (current quantities, one bulk
  request, and the plain request);
- full_resync(channel): every listing is pushed although none changed, in
  ceil(30 / 25) = 2 requests; progress counts the first request's
  listings while the second is held by the mock (a rate, an ETA), then
  goes to 100 % (30 of 30) with finished_at, a rate and an ETA of 0; a second full_resync while one runs
  replaces it (the first row finished below 100 %, the second at 100 %);
- a real-time channel's listing waiting for its retry_at is pushed when due
  (the housekeeping pass runs a push cycle: no commit signals a retry_at);
- omnichan.target_refresh_delay: with no real-time channel to serve, a stock
  change right after a recomputation moves its listing's target only when
  the delay is over (not after 1 s, within 4 s for 3 s); 0: at once;
- set_order_cursor(channel, ts) starts a pull from that time at once (the
  cursor then moves to the pull's end); a future time is refused (SQLSTATE
  22023, "in the past");
- unknown channel names: SQLSTATE 42704 for every control function;
- retention: sync_log rows, finished jobs and finished progress rows older
  than sync_log_retention disappear (25 000 sync_log rows: more than one
  housekeeping batch), recent ones and unfinished work stay.
"""

import json
import math
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, PGBIN, check, fatal, finish, mockctl, say, start_cluster,  # noqa: E402
                         wait_for, _cleanups)

BULK = "/sell/inventory/v1/bulk_update_price_quantity"
TOKEN = "/identity/v1/oauth2/token"
SKUS_A = [f"SKU-{i:06d}" for i in range(1, 31)]
SKUS_B = [f"SKU-{i:06d}" for i in range(31, 41)]


def start_mock(skus):
    seed = {"credentials": {"client_id": "ebay-client", "client_secret": "s",
                            "refresh_token": "r"},
            "inventory": {s: {"quantity": 999} for s in skus}}
    proc, port = mockctl.start("ebay", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    return port


def error_of(c, stmt):
    """(SQLSTATE, message) of a failing statement, or None if it worked."""
    r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-d", "odoo",
                        "-c", "\\set VERBOSITY verbose", "-c", stmt],
                       env=c.env, capture_output=True, text=True)
    if r.returncode == 0:
        return None
    for line in r.stderr.splitlines():
        if line.startswith("ERROR:"):
            rest = line[len("ERROR:"):].strip()
            code, _, msg = rest.partition(": ")
            return code, msg
    return "?", r.stderr


def main():
    c = start_cluster("runtime_control", conf=["omnichan.retry_base_delay = 200",
                                               "omnichan.naptime = 200",
                                               "omnichan.sync_log_retention = 60"])
    c.sql("SELECT omnichan_test.generate_catalog(60, 1)")
    port_a = start_mock(SKUS_A)
    port_b = start_mock(SKUS_B)

    for name, port, interval in (("ebay-a", port_a, 60), ("ebay-b", port_b, 0)):
        base = f"http://127.0.0.1:{port}"
        c.sql(f"""SELECT omnichan.channel_create('{name}', 'ebay', jsonb_build_object(
                    'marketplace_id', 'EBAY_US', 'push_interval', {interval},
                    'endpoint', '{base}', 'token_endpoint', '{base}{TOKEN}'))""")
        c.sql(f"""SELECT omnichan.credentials_set('{name}', jsonb_build_object(
                    'client_id', 'ebay-client', 'client_secret', 's', 'refresh_token', 'r'))""")
    for name, skus in (("ebay-a", SKUS_A), ("ebay-b", SKUS_B)):
        codes = ", ".join(f"'{s}'" for s in skus)
        c.sql(f"SELECT omnichan.listing_link('{name}', id, jsonb_build_object('sku', default_code)) "
              f"  FROM product_product WHERE default_code IN ({codes})")

    c.sql("SELECT omnichan.sync_now('ebay-a')")   # its schedule started with the channel

    def bulk(port):
        return mockctl.journal(port, path=BULK)

    def count(port, path=BULK):
        return len(mockctl.journal(port, path=path))

    def mock_qty(port):
        return {s: v["quantity"] for s, v in mockctl.state(port)["inventory"].items()}

    def converged(name, port):
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     f"  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = '{name}' "
                     f"  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = '{name}'")
        exp = {r[0]: int(r[1]) for r in rows}
        got = mock_qty(port)
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def bump(sku, by=3):
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {by} WHERE id = (SELECT min(q.id) FROM stock_quant q "
              "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code = '{sku}')")

    def status(name, cols):
        return c.sql(f"SELECT {cols} FROM omnichan.channel_status WHERE channel = '{name}'")[0]

    got = wait_for("the first pushes", lambda: converged("ebay-a", port_a) and converged("ebay-b", port_b), 20)
    if not got:
        fatal("the first pushes did not converge:\n" + "\n".join("|".join(r) for r in c.sql(
            "SELECT channel, sku, target_qty, pushed_qty, pushing, last_error FROM omnichan.listing_status "
            " UNION ALL SELECT id::text, operation, attempts, response_status, state = 'queued', error "
            "  FROM omnichan.job") or []) + f"\n{c.log_tail()}")
    check("the first push of ebay-a (sync_now after linking) sends its 30 listings in 2 requests",
          count(port_a) == 2, str(count(port_a)))

    # 1. sync_now
    before = count(port_a)
    bump("SKU-000002")
    time.sleep(1.5)
    check("a change of ebay-a waits for its push_interval", count(port_a) == before,
          str(count(port_a) - before))
    check("channel_status shows it as a listing to push",
          status("ebay-a", "listings_to_push") == ["1"], str(status("ebay-a", "listings_to_push")))
    t0 = time.monotonic()
    c.sql("SELECT omnichan.sync_now('ebay-a')")
    got = wait_for("sync_now's push", lambda: converged("ebay-a", port_a) if count(port_a) > before else None, 5)
    check("sync_now pushes the changed listing at once", got is not None,
          f"{count(port_a) - before} request(s)")
    say(f"sync_now -> mock updated in {time.monotonic() - t0:.3f} s")
    check("in one bulk request", count(port_a) == before + 1, str(count(port_a) - before))
    check("carrying only the changed listing",
          [r["sku"] for r in json.loads(bulk(port_a)[-1]["body"])["requests"]] == ["SKU-000002"])

    # 2. pause
    c.sql("SELECT omnichan.pause('ebay-a')")
    check("channel_status.state is 'paused'", status("ebay-a", "state") == ["paused"],
          str(status("ebay-a", "state")))
    before_a, before_b, before_all = count(port_a), count(port_b), len(mockctl.journal(port_a))
    bump("SKU-000003")
    bump("SKU-000004")
    bump("SKU-000031")
    jid = int(c.val(f"SELECT omnichan.http_enqueue('GET', 'http://127.0.0.1:{port_a}/paused-probe', "
                    "'{}', NULL, 'ebay-a')"))
    c.sql("SELECT omnichan.sync_now('ebay-a')")
    got = wait_for("ebay-b's push while ebay-a is paused",
                   lambda: converged("ebay-b", port_b) if count(port_b) > before_b else None, 5)
    check("another channel keeps pushing while one is paused", got is not None)
    time.sleep(1.5)
    check("nothing at all is sent to the paused channel (not even after sync_now)",
          len(mockctl.journal(port_a)) == before_all,
          str([e["path"] for e in mockctl.journal(port_a)[before_all:]]))
    row = status("ebay-a", "state, backlog, listings_to_push")
    check("channel_status: paused, the queued request in backlog, 2 listings to push",
          row == ["paused", "1", "2"], str(row))
    check("the queued request waits", c.val(f"SELECT state FROM omnichan.job WHERE id = {jid}") == "queued")

    # 3. resume
    c.sql("SELECT omnichan.resume('ebay-a')")
    got = wait_for("the push after resume", lambda: converged("ebay-a", port_a) if count(port_a) > before_a else None, 5)
    check("resume sends what waited: the mock has the current quantities", got is not None)
    check("in one bulk request", count(port_a) == before_a + 1, str(count(port_a) - before_a))
    got = wait_for("the plain request", lambda: count(port_a, "/paused-probe") == 1, 5)
    check("and the queued plain request", got is not None)
    row = wait_for("an empty backlog", lambda: status("ebay-a", "state, backlog, listings_to_push")
                   if status("ebay-a", "backlog")[0] == "0" else None, 5)
    check("channel_status: active, nothing queued, nothing to push", row == ["active", "0", "0"], str(row))

    # 4. full_resync
    before = count(port_a)
    mockctl.add_fault(port_a, {"route": BULK, "kind": "delay", "ms": 1500, "after": 1, "count": 1})
    t0 = time.monotonic()
    c.sql("SELECT omnichan.full_resync('ebay-a')")
    mid = wait_for("one of the two pushes to be counted", lambda: c.sql(
        "SELECT done, total, percent, per_second > 0, eta > interval '0', finished_at IS NULL "
        "  FROM omnichan.progress WHERE channel = 'ebay-a' AND operation = 'full_resync' "
        "   AND done > 0 AND finished_at IS NULL"), 5)
    check("midway (the second request held by the mock): 25 or 5 of 30 done, a rate and an ETA",
          mid is not None and mid[0][0] in ("25", "5") and mid[0][1:] ==
          ["30", "83.3" if mid[0][0] == "25" else "16.7", "t", "t", "t"], str(mid))
    prog = wait_for("the full resync to finish", lambda: c.sql(
        "SELECT done, total, percent, per_second IS NOT NULL AND per_second > 0, eta, finished_at IS NOT NULL "
        "  FROM omnichan.progress WHERE channel = 'ebay-a' AND operation = 'full_resync' "
        "   AND finished_at IS NOT NULL"), 10)
    mockctl.clear_faults(port_a)
    say(f"full resync of 30 listings: {time.monotonic() - t0:.3f} s")
    sent = bulk(port_a)[before:]
    skus = sorted(r["sku"] for e in sent for r in json.loads(e["body"])["requests"])
    check("full_resync pushes every listing although none changed", skus == SKUS_A, str(skus))
    check("in ceil(30 / 25) = 2 requests", len(sent) == math.ceil(30 / 25), str(len(sent)))
    check("progress: 30 of 30, 100 %, a rate, ETA 0, finished_at set",
          prog is not None and prog[0] == ["30", "30", "100.0", "t", "00:00:00", "t"], str(prog))
    check("the request is cleared once the resync is over",
          c.val("SELECT full_resync_requested_at IS NULL FROM omnichan.channel_state s "
                "  JOIN omnichan.channel ch ON ch.id = s.channel_id AND ch.name = 'ebay-a'") == "t")
    time.sleep(0.5)
    check("and nothing more is sent", count(port_a) == before + 2, str(count(port_a) - before))

    # 5. a second full_resync while one runs replaces it
    mockctl.add_fault(port_a, {"route": BULK, "kind": "delay", "ms": 1500, "count": 2})
    before = count(port_a)
    c.sql("SELECT omnichan.full_resync('ebay-a')")
    first = wait_for("the first resync to be running", lambda: c.val(
        "SELECT id FROM omnichan.long_operation WHERE operation = 'full_resync' AND finished_at IS NULL"), 5)
    running = c.sql(f"SELECT done, total, eta IS NULL FROM omnichan.progress WHERE id = {first}")
    check("while the pushes are in flight: 0 of 30, no ETA yet", running == [["0", "30", "t"]], str(running))
    time.sleep(0.3)
    c.sql("SELECT omnichan.full_resync('ebay-a')")
    second = wait_for("the second resync to finish", lambda: c.val(
        f"SELECT id FROM omnichan.long_operation WHERE operation = 'full_resync' AND id > {first} "
        "   AND finished_at IS NOT NULL"), 15)
    rows = c.sql(f"SELECT id, done, total, percent, finished_at IS NOT NULL FROM omnichan.progress "
                 f" WHERE id >= {first} ORDER BY id")
    check("the replaced resync is finished below 100 %",
          rows and rows[0][0] == first and rows[0][3] != "100.0" and rows[0][4] == "t", str(rows))
    check("the new one reaches 100 % (30 of 30)",
          second is not None and len(rows) == 2 and rows[1][1:] == ["30", "30", "100.0", "t"], str(rows))
    check("the mock holds the allocation", converged("ebay-a", port_a) is not None)
    say(f"requests for the two overlapping resyncs: {count(port_a) - before}")
    mockctl.clear_faults(port_a)

    # 5b. a listing waiting for its retry_at on a real-time channel is pushed
    # when it is due, although no commit comes to wake the worker
    before_b = count(port_b)
    c.sql("UPDATE omnichan.listing SET pushed_qty = pushed_qty - 1, retry_at = now() + interval '1 second', "
          "       error_class = 'retry', last_error = 'test', last_error_at = now() "
          " WHERE sku = 'SKU-000035'")
    t0 = time.monotonic()
    got = wait_for("the retry of the real-time channel's listing", lambda: count(port_b) > before_b, 6)
    check("a real-time channel's listing is pushed again after its retry_at, with no commit to wake the "
          "worker (within the housekeeping interval, 10 x naptime)", got is not None,
          f"{time.monotonic() - t0:.2f} s")
    check("and its error is cleared", wait_for("the listing's result", lambda: c.val(
        "SELECT last_error IS NULL AND pushed_qty = target_qty FROM omnichan.listing WHERE sku = 'SKU-000035'")
        == "t", 3) is not None)

    # 6. set_order_cursor: a pull from that time starts at once (the eBay
    #    mock answers it: the cursor then moves to the pull's end)
    c.sql("SELECT omnichan.set_order_cursor('ebay-a', '2026-01-02 03:04:05+00')")
    window = wait_for("a pull from the new cursor", lambda: c.val(
        "SELECT j.payload -> 'pull' ->> 'since' FROM omnichan.job j "
        "  JOIN omnichan.channel ch ON ch.id = j.channel_id AND ch.name = 'ebay-a' "
        " WHERE j.payload -> 'pull' ->> 'cursor' = '2026-01-02 03:04:05+00' ORDER BY j.id LIMIT 1"), 10)
    check("set_order_cursor starts a pull from the cursor (minus the 5-minute overlap)",
          window == "2026-01-02T02:59:05Z", str(window))
    moved = wait_for("the cursor to move to the pull's end", lambda: c.val(
        "SELECT order_cursor > now() - interval '1 minute' FROM omnichan.channel_state s "
        "  JOIN omnichan.channel ch ON ch.id = s.channel_id AND ch.name = 'ebay-a'") == "t", 10)
    check("the completed pull moves the cursor to its end", moved)
    before = c.val("SELECT order_cursor FROM omnichan.channel_state s "
                   "  JOIN omnichan.channel ch ON ch.id = s.channel_id AND ch.name = 'ebay-a'")
    err = error_of(c, "SELECT omnichan.set_order_cursor('ebay-a', now() + interval '1 day')")
    check("a future order cursor is refused: 22023, 'must be a time in the past'",
          err is not None and err[0] == "22023" and "in the past" in err[1], str(err))
    check("and the stored cursor is unchanged",
          c.val("SELECT order_cursor FROM omnichan.channel_state s "
                "  JOIN omnichan.channel ch ON ch.id = s.channel_id AND ch.name = 'ebay-a'") == before)

    # 6b. targets of channels that push on a cadence: with no real-time
    #     channel to serve (ebay-b paused) stock changes gather for
    #     omnichan.target_refresh_delay, then one recomputation takes them all;
    #     0 recomputes at once
    def target(sku):
        return c.val(f"SELECT target_qty FROM omnichan.listing WHERE sku = '{sku}'")

    def expected(sku):
        return c.val("SELECT a.quantity FROM omnichan.listing l "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'ebay-a' "
                     f" WHERE l.sku = '{sku}'")

    c.set_conf(target_refresh_delay=3000)
    c.sql("SELECT omnichan.pause('ebay-b')")
    time.sleep(3.5)                     # the last recomputation is older than the delay
    bump("SKU-000010")
    t0 = time.monotonic()
    first = wait_for("the first change's target", lambda: target("SKU-000010") == expected("SKU-000010"), 3)
    check("a change after a quiet spell moves its target at once", first is not None and time.monotonic() - t0 < 1.0,
          f"{time.monotonic() - t0:.2f} s")
    t0 = time.monotonic()
    bump("SKU-000011")
    time.sleep(1.0)
    check("a change right after it waits (no real-time channel, ebay-a not due)",
          target("SKU-000011") != expected("SKU-000011"), f"{target('SKU-000011')} / {expected('SKU-000011')}")
    got = wait_for("the gathered change's target", lambda: target("SKU-000011") == expected("SKU-000011"), 5)
    waited = time.monotonic() - t0
    check("and moves within omnichan.target_refresh_delay (3 s)", got is not None and waited < 4.0,
          f"{waited:.2f} s")
    c.set_conf(target_refresh_delay=0)
    time.sleep(0.3)
    bump("SKU-000012")
    t0 = time.monotonic()
    got = wait_for("the target at once", lambda: target("SKU-000012") == expected("SKU-000012"), 3)
    check("omnichan.target_refresh_delay = 0: at once", got is not None and time.monotonic() - t0 < 1.0,
          f"{time.monotonic() - t0:.2f} s")
    c.sql("SELECT omnichan.resume('ebay-b')")

    # 7. unknown channels
    for stmt in ("SELECT omnichan.sync_now('nope')", "SELECT omnichan.pause('nope')",
                 "SELECT omnichan.resume('nope')", "SELECT omnichan.full_resync('nope')",
                 "SELECT omnichan.set_order_cursor('nope', now() - interval '1 day')"):
        err = error_of(c, stmt)
        check(f"{stmt.split('(')[0][7:]} of an unknown channel: 42704",
              err is not None and err[0] == "42704" and '"nope"' in err[1], str(err))

    # 8. retention
    c.sql("INSERT INTO omnichan.sync_log (at, operation, method, url, attempt, duration_ms, outcome) "
          "SELECT now() - interval '2 minutes', 'old', 'GET', 'http://x/', 1, 1, 'succeeded' "
          "  FROM generate_series(1, 25000); "
          "INSERT INTO omnichan.sync_log (at, operation, method, url, attempt, duration_ms, outcome) "
          "SELECT now() - interval '10 seconds', 'recent', 'GET', 'http://x/', 1, 1, 'succeeded' "
          "  FROM generate_series(1, 5); "
          "INSERT INTO omnichan.job (operation, method, url, state, finished_at, not_before) VALUES "
          " ('oldjob', 'GET', 'http://x/', 'succeeded', now() - interval '2 minutes', now()), "
          " ('oldjob', 'GET', 'http://x/', 'failed', now() - interval '2 minutes', now()), "
          " ('recentjob', 'GET', 'http://x/', 'succeeded', now() - interval '5 seconds', now()), "
          " ('waitingjob', 'GET', 'http://127.0.0.1:9/', 'queued', NULL, now() + interval '1 day'); "
          "UPDATE omnichan.job SET created_at = now() - interval '1 day' WHERE operation = 'waitingjob'; "
          "INSERT INTO omnichan.long_operation (operation, total, started_at, finished_at) VALUES "
          " ('oldprogress', 1, now() - interval '3 minutes', now() - interval '2 minutes'), "
          " ('runningprogress', 1, now() - interval '3 minutes', NULL)")
    t0 = time.monotonic()
    gone = wait_for("the old rows to go", lambda: c.val(
        "SELECT (SELECT count(*) FROM omnichan.sync_log WHERE operation = 'old') = 0 "
        "   AND NOT EXISTS (SELECT 1 FROM omnichan.job WHERE operation = 'oldjob') "
        "   AND NOT EXISTS (SELECT 1 FROM omnichan.long_operation WHERE operation = 'oldprogress')") == "t", 10)
    say(f"25 000 old sync_log rows deleted in {time.monotonic() - t0:.2f} s")
    check("sync_log rows, finished jobs and finished progress older than the retention are deleted",
          gone is not None,
          str(c.sql("SELECT (SELECT count(*) FROM omnichan.sync_log WHERE operation = 'old'), "
                    "       (SELECT count(*) FROM omnichan.job WHERE operation = 'oldjob')")))
    kept = c.sql("SELECT (SELECT count(*) FROM omnichan.sync_log WHERE operation = 'recent'), "
                 "       (SELECT count(*) FROM omnichan.job WHERE operation IN ('recentjob', 'waitingjob')), "
                 "       (SELECT count(*) FROM omnichan.long_operation WHERE operation = 'runningprogress')")
    check("recent rows and unfinished work stay", kept == [["5", "2", "1"]], str(kept))


run(main)
