#!/usr/bin/python3
"""push_walmart: stock flows from Odoo's tables to the Walmart mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the Walmart mock (client-credentials token, PUT /v3/inventory,
inventory feeds with status polling), one Walmart channel with a ship node
and 60 listings linked by SKU.  Checks:

- after linking, the mock's amount of every listing equals allocate(), with
  ceil(60 / 500) = 1 inventory feed (multipart, spec 1.4) and 1 token
  request, its result read back from the feed status (polled, then two
  pages of 50 item statuses);
- every call carries WM_SEC.ACCESS_TOKEN, WM_SVC.NAME and its own
  WM_QOS.CORRELATION_ID;
- a stock change committed in Odoo's tables reaches the mock in 1 PUT;
- a SKU Walmart does not know keeps Walmart's own message (the feed's
  DATA_ERROR) on its listing only (class "fix"), the other listing of the
  feed is set;
- the access token expiring mid-run: one token refresh, the PUT retried once;
- a 429 storm is retried with backoff and converges;
- kill -9 of the worker mid-PUT: the mock converges with at most that one
  request sent again;
- no secret or access token appears in sync_log, job rows, views or the log.
"""

import json
import math
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, check, fatal, finish, mockctl, say, start_cluster,  # noqa: E402
                         wait_for, _cleanups)

TOKEN = "/v3/token"
PUT = "^/v3/inventory$"
FEEDS = "^/v3/feeds$"
STATUS = "^/v3/feeds/"
SECRET = "wm-secret-s3cr3t"
NODE = "10000003527"
N = 60


def main():
    c = start_cluster("push_walmart", conf=["omnichan.retry_base_delay = 200",
                                            "omnichan.naptime = 1000",
                                            "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(80, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, N + 1)]
    seed = {"credentials": {"client_id": "wm-client", "client_secret": SECRET},
            "ship_nodes": [NODE], "feed_processing_s": 0.3,
            "inventory": {s: {"amount": 999} for s in skus}}
    proc, port = mockctl.start("walmart", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"

    def mock_qty():
        return {s: v["amount"] for s, v in mockctl.state(port)["inventory"].items()}

    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'wm' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'wm' "
                     " WHERE l.sku LIKE 'SKU-%'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def count(path):
        return len(mockctl.journal(port, path=path))

    def bump(sku, delta):
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id = (SELECT min(q.id) "
              "  FROM stock_quant q JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code = '{sku}')")

    c.sql(f"""SELECT omnichan.channel_create('wm', 'walmart', jsonb_build_object(
                'ship_node', '{NODE}', 'push_interval', 0, 'feed_poll_interval', 0.2,
                'endpoint', '{base}', 'token_endpoint', '{base}{TOKEN}'))""")
    c.sql(f"""SELECT omnichan.credentials_set('wm', jsonb_build_object(
                'client_id', 'wm-client', 'client_secret', '{SECRET}'))""")
    values = ", ".join(f"((SELECT id FROM omnichan.channel WHERE name = 'wm'), '{s}', '{{}}')" for s in skus)
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('wm')"))
    check(f"link_by_sku links the {N} SKUs", linked == N, str(linked))

    # 1. initial push: one feed
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    wait_for("the feed's results to be recorded", lambda: c.val(
        "SELECT count(*) FROM omnichan.listing WHERE sku LIKE 'SKU-%' AND pushed_qty IS NOT NULL") == str(N), 10)
    check(f"{N} listings need ceil({N}/500) = 1 inventory feed", count(FEEDS) == math.ceil(N / 500),
          str(count(FEEDS)))
    check("and one token request", count(TOKEN) == 1, str(count(TOKEN)))
    polls = mockctl.journal(port, path=STATUS)
    check("the feed's status is polled until PROCESSED, with details",
          len(polls) >= 2 and all(p["query"].get("includeDetails") == ["true"] for p in polls),
          str(len(polls)))
    check("the item statuses are read in pages of 50 (offset 0, then 50)",
          [p["query"].get("offset") for p in polls][-2:] == [["0"], ["50"]]
          and all(p["query"].get("limit") == ["50"] for p in polls),
          str([p["query"].get("offset") for p in polls]))
    pushed = c.val("SELECT count(*) FROM omnichan.listing WHERE sku LIKE 'SKU-%' "
                   "   AND pushed_qty IS NOT NULL AND last_error IS NULL")
    check("every listing of the feed is recorded as pushed from the item statuses", pushed == str(N), pushed)
    feed = mockctl.journal(port, path=FEEDS)[0]
    check("the feed is multipart/form-data, feedType=inventory, the channel's ship node",
          feed["headers"].get("Content-Type", "").startswith("multipart/form-data; boundary=")
          and feed["query"].get("feedType") == ["inventory"] and feed["query"].get("shipNode") == [NODE]
          and '"InventoryHeader":{"version":"1.4"}' in feed["body"])
    calls = mockctl.journal(port, path="^/v3/")
    check("every call carries WM_SVC.NAME, WM_QOS.CORRELATION_ID and (but the token call) WM_SEC.ACCESS_TOKEN",
          all(e["headers"].get("WM_SVC.NAME") and e["headers"].get("WM_QOS.CORRELATION_ID") for e in calls)
          and all(e["headers"].get("WM_SEC.ACCESS_TOKEN") for e in calls if e["path"] != TOKEN))
    cids = [e["headers"].get("WM_QOS.CORRELATION_ID") for e in calls]
    check("a fresh correlation id per request", len(set(cids)) == len(cids), str(len(set(cids))))

    # 2. a stock change in Odoo's tables: one PUT
    before = count(PUT)
    t0 = time.monotonic()
    bump("SKU-000002", 7)
    got = wait_for("the change to reach the mock", lambda: converged() if count(PUT) > before else None, 10)
    check("a committed stock change reaches the mock", got is not None)
    say(f"commit -> mock has the new quantity: {time.monotonic() - t0:.3f} s")
    check("in exactly one PUT /v3/inventory", count(PUT) == before + 1, str(count(PUT) - before))
    put = mockctl.journal(port, path=PUT)[-1]
    check("PUT ?sku=&shipNode= with {sku, quantity: {unit: EACH, amount}}",
          put["query"].get("sku") == ["SKU-000002"] and put["query"].get("shipNode") == [NODE]
          and json.loads(put["body"])["quantity"]["unit"] == "EACH")

    # 3. partial failure: a SKU Walmart does not know, in the same feed as a good one
    before = count(FEEDS)
    c.sql("BEGIN; "
          "SELECT omnichan.listing_link('wm', (SELECT id FROM product_product WHERE default_code = 'SKU-000070'), "
          "  '{\"sku\": \"GHOST-70\"}'); "
          "UPDATE stock_quant SET quantity = quantity + 5 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000003'); COMMIT;")
    err = wait_for("the unknown SKU's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-70' "
        "   AND last_error IS NOT NULL"), 10)
    check("an unknown SKU keeps Walmart's own message (feed DATA_ERROR), class fix",
          err is not None and "DATA_ERROR" in err and "Item not found" in err and err.endswith("|fix"), str(err))
    check("it went in one feed with the good listing", count(FEEDS) == before + 1, str(count(FEEDS) - before))
    got = wait_for("the good listing of that feed", converged, 10)
    check("the other listing of the feed is set", got is not None)
    bad = c.val("SELECT count(*) FROM omnichan.listing WHERE sku LIKE 'SKU-%' AND last_error IS NOT NULL")
    check("no other listing has an error", bad == "0", str(bad))

    # 4. the access token expires mid-run
    tokens = mockctl.state(port)["tokens"]
    mockctl.seed(port, {"tokens": {t: 0 for t in tokens}})
    before_tok, before_put = count(TOKEN), count(PUT)
    bump("SKU-000005", 1)
    got = wait_for("the push after the token expired",
                   lambda: converged() if count(PUT) >= before_put + 2 else None, 15)
    check("an expired token: the push converges", got is not None, f"mock {mock_qty()}")
    check("with one token refresh", count(TOKEN) == before_tok + 1, str(count(TOKEN) - before_tok))
    statuses = [e["status"] for e in mockctl.journal(port, path=PUT)[before_put:]]
    check("and the refused PUT retried once (401 then 200)", statuses == [401, 200], str(statuses))

    # 5. a 429 storm
    mockctl.add_fault(port, {"route": PUT, "kind": "rate_limit", "count": 3})
    before_put = count(PUT)
    bump("SKU-000006", 2)
    got = wait_for("the push through the 429 storm",
                   lambda: converged() if count(PUT) >= before_put + 4 else None, 20)
    entries = mockctl.journal(port, path=PUT)[before_put:]
    check("a 429 storm is retried until the push goes through", got is not None,
          str([e["status"] for e in entries]))
    check("429, 429, 429, then 200", [e["status"] for e in entries] == [429, 429, 429, 200],
          str([e["status"] for e in entries]))
    mockctl.clear_faults(port)

    # 6. kill -9 of the worker mid-PUT
    mockctl.add_fault(port, {"route": PUT, "kind": "delay", "ms": 2000, "count": 1})
    before_put = count(PUT)
    bump("SKU-000007", 3)
    arrived = wait_for("the PUT to reach the mock", lambda: count(PUT) > before_put, 10)
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its PUT was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-PUT, the mock converges", got is not None, c.log_tail(20))
    sent = count(PUT) - before_put
    check("with the interrupted PUT sent again at most once (2 requests)", sent <= 2, str(sent))
    mockctl.clear_faults(port)

    # 7. secrets
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql(
        "SELECT id, url, headers::text, coalesce(error, ''), coalesce(payload::text, '') FROM omnichan.job") or [])
    check("the client secret appears in no log, view or job row", SECRET not in log and SECRET not in dump)
    tok = mockctl.journal(port, path=PUT)[-1]["headers"].get("WM_SEC.ACCESS_TOKEN", "")
    check("the access token appears in no log, view or job row",
          tok and tok not in log and tok not in dump)


run(main)
