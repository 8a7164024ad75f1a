#!/usr/bin/python3
"""push_ebay: stock flows from Odoo's tables to the eBay mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the eBay mock (token endpoint + bulk_update_price_quantity with
per-item 207 answers), one eBay channel with credentials and 30 listings
linked by SKU.  Checks:

- after linking, the mock's quantity of every listing equals allocate(), in
  ceil(30 / 25) = 2 bulk requests and 1 token request;
- a stock change committed in Odoo's tables reaches the mock in 1 more bulk
  request, a rolled-back one sends nothing;
- a SKU the marketplace does not know keeps eBay's own message on the
  listing (class "fix") while the others are pushed (partial failure);
- the access token expiring mid-run: one token refresh, the push retried once;
- a 429 storm is retried with backoff and converges;
- kill -9 of the worker while a push is in flight: after the restart the
  push completes and the mock converges, with at most that one request sent
  again;
- a second channel whose marketplace is down does not delay the first;
- channel_status shows the pushes; no secret appears in sync_log or the log.
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

BULK = "/sell/inventory/v1/bulk_update_price_quantity"
TOKEN = "/identity/v1/oauth2/token"
SECRET = "ebay-secret-s3cr3t"
REFRESH = "ebay-refresh-r3fr3sh"

def main():
    global c, proc, port, base
    c = start_cluster("push_ebay", conf=["omnichan.retry_base_delay = 200",
                                         "omnichan.naptime = 1000",
                                         "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(60, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, 31)]
    seed = {"credentials": {"client_id": "ebay-client", "client_secret": SECRET,
                            "refresh_token": REFRESH},
            "inventory": {s: {"quantity": 999} for s in skus}}
    proc, port = mockctl.start("ebay", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"


    def mock_qty():
        inv = mockctl.state(port)["inventory"]
        return {s: v["quantity"] for s, v in inv.items()}


    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'ebay-us' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'ebay-us' "
                     " WHERE l.sku LIKE 'SKU-%'")
        return {r[0]: int(r[1]) for r in rows}


    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None


    def count(path):
        return len(mockctl.journal(port, path=path))


    c.sql(f"""SELECT omnichan.channel_create('ebay-us', 'ebay', jsonb_build_object(
                'marketplace_id', 'EBAY_US', 'push_interval', 0,
                'endpoint', '{base}', 'token_endpoint', '{base}{TOKEN}'))""")
    c.sql(f"""SELECT omnichan.credentials_set('ebay-us', jsonb_build_object(
                'client_id', 'ebay-client', 'client_secret', '{SECRET}', 'refresh_token', '{REFRESH}'))""")
    values = ", ".join(f"((SELECT id FROM omnichan.channel WHERE name = 'ebay-us'), '{s}', '{{}}')" for s in skus)
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('ebay-us')"))
    check("link_by_sku links the 30 SKUs that are internal references in Odoo", linked == 30, str(linked))

    # 1. initial push
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    check("30 listings need ceil(30/25) = 2 bulk requests", count(BULK) == math.ceil(30 / 25),
          str(count(BULK)))
    check("and one token request", count(TOKEN) == 1, str(count(TOKEN)))
    pushes = mockctl.journal(port, path=BULK)
    body = json.loads(pushes[0]["body"])
    check("a bulk request carries at most 25 SKUs with shipToLocationAvailability",
          0 < len(body["requests"]) <= 25 and "shipToLocationAvailability" in body["requests"][0])
    check("the bulk request is authorized with the Bearer token",
          pushes[0]["headers"].get("Authorization", "").startswith("Bearer v^1.1#"))

    # 2. a stock change in Odoo's tables
    before = count(BULK)
    c.sql("BEGIN; UPDATE stock_quant SET quantity = quantity + 7 WHERE product_id IN "
          "(SELECT id FROM product_product WHERE default_code IN ('SKU-000002', 'SKU-000003')) "
          "AND location_id IN (SELECT id FROM stock_location WHERE usage = 'internal'); ROLLBACK;")
    time.sleep(1.0)
    check("a rolled-back stock change sends nothing", count(BULK) == before, str(count(BULK) - before))
    t0 = time.monotonic()
    c.sql("UPDATE stock_quant SET quantity = quantity + 7 WHERE id IN (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ('SKU-000002', 'SKU-000003') "
          " GROUP BY q.product_id)")
    got = wait_for("the change to reach the mock", lambda: converged() if count(BULK) > before else None, 10)
    check("a committed stock change reaches the mock", got is not None)
    say(f"commit -> mock has the new quantities: {time.monotonic() - t0:.3f} s")
    check("in exactly one more bulk request", count(BULK) == before + 1, str(count(BULK) - before))

    # 3. partial failure: a SKU eBay does not know
    c.sql("SELECT omnichan.listing_link('ebay-us', (SELECT id FROM product_product WHERE default_code = 'SKU-000040'), "
          "'{\"sku\": \"GHOST-40\"}')")
    err = wait_for("the unknown SKU's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-40' AND last_error IS NOT NULL"), 10)
    check("an unknown SKU keeps eBay's own message, class fix",
          err is not None and "not available" in err and err.endswith("|fix"), str(err))
    check("the other listings are unaffected", converged() is not None)

    # 4. the access token expires mid-run
    tokens = mockctl.state(port)["tokens"]
    mockctl.seed(port, {"tokens": {t: 0 for t in tokens}})   # every token expired
    before_tok, before_bulk = count(TOKEN), count(BULK)
    c.sql("UPDATE stock_quant SET quantity = quantity + 1 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000005')")
    got = wait_for("the push after the token expired", lambda: converged() if count(BULK) >= before_bulk + 2 else None, 15)
    check("an expired token: the push converges", got is not None, f"mock {mock_qty()}")
    check("with one token refresh", count(TOKEN) == before_tok + 1, str(count(TOKEN) - before_tok))
    statuses = [e["status"] for e in mockctl.journal(port, path=BULK)[before_bulk:]]
    check("and the refused push retried once (401 then 200)", statuses == [401, 200], str(statuses))

    # 5. a 429 storm
    mockctl.add_fault(port, {"route": BULK, "kind": "rate_limit", "count": 3})
    before_bulk = count(BULK)
    c.sql("UPDATE stock_quant SET quantity = quantity + 2 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000006')")
    got = wait_for("the push through the 429 storm", lambda: converged() if count(BULK) >= before_bulk + 4 else None, 20)
    entries = mockctl.journal(port, path=BULK)[before_bulk:]
    check("a 429 storm is retried until the push goes through", got is not None,
          str([e["status"] for e in entries]))
    check("429, 429, 429, then 200", [e["status"] for e in entries] == [429, 429, 429, 200],
          str([e["status"] for e in entries]))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(entries, entries[1:])]
    check("with backoff between the attempts (>= 0.1, 0.2, 0.4 s with jitter)",
          len(gaps) == 3 and gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, str(gaps))
    mockctl.clear_faults(port)

    # 6. kill -9 of the worker mid-push
    mockctl.add_fault(port, {"route": BULK, "kind": "delay", "ms": 2000, "count": 1})
    before_bulk = count(BULK)
    c.sql("UPDATE stock_quant SET quantity = quantity + 3 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000007')")
    arrived = wait_for("the push to reach the mock", lambda: count(BULK) > before_bulk, 10)
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its push was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-push, the mock converges", got is not None, c.log_tail(20))
    sent = count(BULK) - before_bulk
    check("with the interrupted push sent again at most once (2 requests)", sent <= 2, str(sent))
    mockctl.clear_faults(port)

    # 7. a channel whose marketplace is down does not delay the others
    c.sql("""SELECT omnichan.channel_create('ebay-down', 'ebay', jsonb_build_object(
                'marketplace_id', 'EBAY_DE', 'push_interval', 0,
                'endpoint', 'http://127.0.0.1:9', 'token_endpoint', 'http://127.0.0.1:9/identity/v1/oauth2/token'))""")
    c.sql(f"""SELECT omnichan.credentials_set('ebay-down', jsonb_build_object(
                'client_id', 'x', 'client_secret', 'y', 'refresh_token', 'z'))""")
    c.sql("SELECT omnichan.listing_link('ebay-down', id, jsonb_build_object('sku', default_code)) "
          "  FROM product_product WHERE default_code IN ('SKU-000008', 'SKU-000009')")
    time.sleep(1.0)
    before_bulk = count(BULK)
    t0 = time.monotonic()
    c.sql("UPDATE stock_quant SET quantity = quantity + 4 WHERE id IN (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ('SKU-000008', 'SKU-000009') "
          " GROUP BY q.product_id)")
    got = wait_for("the healthy channel's push", lambda: converged() if count(BULK) > before_bulk else None, 10)
    elapsed = time.monotonic() - t0
    check("with another channel's marketplace down, the healthy channel converges within 2 s",
          got is not None and elapsed < 2.0, f"{elapsed:.2f} s")
    down = c.val("SELECT last_error FROM omnichan.channel_status WHERE channel = 'ebay-down'")
    check("the down channel reports its error in channel_status", bool(down), str(down))

    # 8. status and secrets
    row = c.sql("SELECT state, last_push_at IS NOT NULL, last_success_at IS NOT NULL "
                "  FROM omnichan.channel_status WHERE channel = 'ebay-us'")[0]
    check("channel_status shows the channel active with its last push and success",
          row == ["active", "t", "t"], str(row))
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.credential_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT id, url, headers::text, coalesce(error, '') FROM omnichan.job") or [])
    for secret in (SECRET, REFRESH):
        check(f"the secret {secret[:6]}... appears in no log, view or job row",
              secret not in log and secret not in dump)
    tok = mockctl.journal(port, path=BULK)[-1]["headers"].get("Authorization", "")[7:]
    check("the access token appears in no log, view or job row",
          tok and tok not in log and tok not in dump)


run(main)
