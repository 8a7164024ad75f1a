#!/usr/bin/python3
"""push_shopify: stock flows from Odoo's tables to the Shopify mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the Shopify mock (GraphQL inventorySetQuantities, all-or-nothing
calls with per-quantity userErrors, cost-based THROTTLED answers, the
@idempotent directive), one Shopify channel on API version 2026-04 with 260
listings linked by SKU.  Checks:

- after linking, the mock's available quantity of every listing equals
  allocate(), in ceil(260 / 250) = 2 calls (no token exchange), each with
  the access token, the location, changeFromQuantity null and an
  idempotency key;
- a stock change committed in Odoo's tables reaches the mock in 1 more call;
- an inventory item Shopify does not know keeps Shopify's own message on
  its listing (class "fix") and the other listing of the same call is set
  by a second call without it;
- a rejected access token: the listings keep Shopify's message, class
  "credentials" (Shopify tokens do not expire: no refresh to test);
- a THROTTLED storm (HTTP 200) is retried after the wait the cost says and
  converges;
- kill -9 of the worker mid-call: the call is re-sent at most once, with the
  same idempotency key, and applied once;
- a 2025-01 channel sends ignoreCompareQuantity and no @idempotent directive;
- no secret appears in sync_log, job rows, views or the log.
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

GQL = r"/admin/api/2026-04/graphql\.json"
GQL_OLD = r"/admin/api/2025-01/graphql\.json"
TOKEN = "shpat_s3cr3t0123456789abcdef"
LOC = "gid://shopify/Location/124656943"
N = 260


def item_gid(i):
    return f"gid://shopify/InventoryItem/{30322000 + i}"


def main():
    c = start_cluster("push_shopify", conf=["omnichan.retry_base_delay = 200",
                                            "omnichan.naptime = 1000",
                                            "omnichan.circuit_open_time = 500"])
    c.sql(f"SELECT omnichan_test.generate_catalog({N + 20}, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, N + 1)]
    seed = {"access_token": TOKEN, "locations": [LOC],
            "levels": {item_gid(i): {LOC: 999} for i in range(1, N + 11)}}
    proc, port = mockctl.start("shopify", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"
    sku_item = {s: item_gid(i) for i, s in enumerate(skus, 1)}

    def mock_qty():
        levels = mockctl.state(port)["levels"]
        return {s: levels[g][LOC] for s, g in sku_item.items()}

    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'shop' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'shop' "
                     " WHERE l.sku LIKE 'SKU-%'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def pushes(path=GQL):
        """The stock pushes (the order pull uses the same GraphQL endpoint)."""
        return [e for e in mockctl.journal(port, path=path)
                if "inventorySetQuantities" in (e.get("body") or "")]

    def count(path=GQL):
        return len(pushes(path))

    def bump(sku, delta):
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id = (SELECT min(q.id) "
              "  FROM stock_quant q JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code = '{sku}')")

    c.sql(f"""SELECT omnichan.channel_create('shop', 'shopify', jsonb_build_object(
                'shop_domain', 'example.myshopify.com', 'location_id', '{LOC}',
                'api_version', '2026-04', 'push_interval', 0, 'endpoint', '{base}'))""")
    c.sql(f"SELECT omnichan.credentials_set('shop', jsonb_build_object('access_token', '{TOKEN}'))")
    values = ", ".join(f"((SELECT id FROM omnichan.channel WHERE name = 'shop'), '{s}', "
                       f"'{{\"inventory_item_id\": \"{sku_item[s]}\"}}')" for s in skus)
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('shop')"))
    check(f"link_by_sku links the {N} SKUs", linked == N, str(linked))

    # 1. initial push
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None)
    calls = pushes(GQL)
    check(f"{N} listings need ceil({N}/250) = {math.ceil(N / 250)} calls",
          len(calls) == math.ceil(N / 250), str(len(calls)))
    body = json.loads(calls[0]["body"])
    inp = body["variables"]["input"]
    check("a call carries at most 250 quantities, name available, reason correction",
          0 < len(inp["quantities"]) <= 250 and inp["name"] == "available"
          and inp["reason"] == "correction", json.dumps(inp)[:300])
    check("2026-04: each quantity has changeFromQuantity null, at the channel's location",
          all("changeFromQuantity" in q and q["changeFromQuantity"] is None and q["locationId"] == LOC
              for q in inp["quantities"]) and "ignoreCompareQuantity" not in inp)
    check("2026-04: the @idempotent directive with a UUID key variable",
          "@idempotent(key: $idempotencyKey)" in body["query"]
          and len(body["variables"].get("idempotencyKey", "")) == 36)
    check("the keys of the two calls differ",
          len({json.loads(e["body"])["variables"]["idempotencyKey"] for e in calls}) == len(calls))
    check("the call is authorized with X-Shopify-Access-Token",
          calls[0]["headers"].get("X-Shopify-Access-Token") == TOKEN)

    # 2. a stock change in Odoo's tables
    before = count()
    t0 = time.monotonic()
    bump("SKU-000002", 7)
    got = wait_for("the change to reach the mock", lambda: converged() if count() > before else None, 10)
    check("a committed stock change reaches the mock", got is not None)
    say(f"commit -> mock has the new quantity: {time.monotonic() - t0:.3f} s")
    check("in exactly one more call", count() == before + 1, str(count() - before))

    # 3. partial failure: an inventory item Shopify does not know, in the same call as a good one
    before = count()
    c.sql("BEGIN; "
          "SELECT omnichan.listing_link('shop', (SELECT id FROM product_product WHERE default_code = 'SKU-000270'), "
          "  '{\"sku\": \"GHOST-270\", \"inventory_item_id\": \"gid://shopify/InventoryItem/1\"}'); "
          "UPDATE stock_quant SET quantity = quantity + 5 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000003'); COMMIT;")
    err = wait_for("the unknown item's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-270' "
        "   AND last_error IS NOT NULL"), 10)
    check("an unknown inventory item keeps Shopify's own message, class fix",
          err is not None and "INVALID_INVENTORY_ITEM" in err and "could not be found" in err
          and err.endswith("|fix"), str(err))
    got = wait_for("the good listing of that call", converged, 10)
    check("the other listing of the call is set anyway", got is not None)
    entries = pushes(GQL)[before:]
    first = json.loads(entries[0]["body"])["variables"]["input"]["quantities"] if entries else []
    second = json.loads(entries[1]["body"])["variables"]["input"]["quantities"] if len(entries) > 1 else []
    check("two calls: both listings, then the good one alone (new key)",
          len(entries) == 2 and len(first) == 2 and len(second) == 1
          and second[0]["inventoryItemId"] == sku_item["SKU-000003"]
          and json.loads(entries[0]["body"])["variables"]["idempotencyKey"]
          != json.loads(entries[1]["body"])["variables"]["idempotencyKey"],
          f"{len(entries)} calls: {first} / {second}")
    bad = c.val("SELECT count(*) FROM omnichan.listing WHERE sku LIKE 'SKU-%' AND last_error IS NOT NULL")
    check("no other listing has an error", bad == "0", str(bad))

    # 4. a rejected access token
    mockctl.seed(port, {"access_token": "shpat_rotated"})
    bump("SKU-000004", 1)
    err = wait_for("the refusal", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'SKU-000004' "
        "   AND last_error IS NOT NULL"), 10)
    check("a refused token: Shopify's message, class credentials",
          err is not None and "Invalid API key or access token" in err and err.endswith("|credentials"),
          str(err))
    mockctl.seed(port, {"access_token": TOKEN})
    c.sql("UPDATE omnichan.listing SET retry_at = NULL WHERE sku = 'SKU-000004'")
    bump("SKU-000004", 1)
    got = wait_for("the push with the token accepted again", converged, 10)
    check("with the token accepted again the listing converges", got is not None)

    # 5. a THROTTLED storm (HTTP 200 with the cost)
    mockctl.add_fault(port, {"route": GQL, "kind": "rate_limit", "count": 3, "retry_after": 0.3})
    before = count()
    bump("SKU-000006", 2)
    got = wait_for("the push through the throttles",
                   lambda: converged() if count() >= before + 4 else None, 20)
    entries = pushes(GQL)[before:]
    check("THROTTLED answers are retried until the push goes through", got is not None,
          str([(e["status"], e["fault"]) for e in entries]))
    check("three throttled calls, then one applied",
          [bool(e["fault"]) for e in entries] == [True, True, True, False],
          str([e["fault"] for e in entries]))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(entries, entries[1:])]
    check("each retry waits what the cost says ((requested - available) / restoreRate = 0.3 s)",
          # (arrival times are taken by the mock, whose threads may lag
          # under load: each gap >= 0.2 s and the three together >= 0.85 s)
          len(gaps) == 3 and all(g >= 0.2 for g in gaps) and sum(gaps) >= 0.85, str(gaps))
    mockctl.clear_faults(port)

    # 6. kill -9 of the worker mid-call
    mockctl.add_fault(port, {"route": GQL, "kind": "delay", "ms": 2000, "count": 1})
    before = count()
    applied_before = mockctl.state(port)["mutations"]
    bump("SKU-000007", 3)
    arrived = wait_for("the call to reach the mock", lambda: count() > before, 10)
    t_sent = time.monotonic()
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its call was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-call, the mock converges", got is not None, c.log_tail(20))
    time.sleep(max(0.0, 2.2 - (time.monotonic() - t_sent)))   # the delayed first call is handled by now
    entries = pushes(GQL)[before:]
    say(f"calls of the interrupted push: {len(entries)}")
    check("with the interrupted call sent again at most once", len(entries) <= 2, str(len(entries)))
    keys = {json.loads(e["body"])["variables"]["idempotencyKey"] for e in entries}
    check("the re-sent call has the same idempotency key", len(keys) == 1, str(keys))
    check("and Shopify applied it once",
          mockctl.state(port)["mutations"] == applied_before + 1,
          str(mockctl.state(port)["mutations"] - applied_before))
    mockctl.clear_faults(port)

    # 7. an older API version
    c.sql(f"""SELECT omnichan.channel_create('shop-old', 'shopify', jsonb_build_object(
                'shop_domain', 'old.myshopify.com', 'location_id', '{LOC}',
                'push_interval', 0, 'endpoint', '{base}'))""")
    c.sql(f"SELECT omnichan.credentials_set('shop-old', jsonb_build_object('access_token', '{TOKEN}'))")
    c.sql(f"SELECT omnichan.listing_link('shop-old', (SELECT id FROM product_product WHERE default_code = 'SKU-000265'), "
          f"'{{\"sku\": \"OLD-265\", \"inventory_item_id\": \"{item_gid(N + 5)}\"}}')")
    ok = wait_for("the 2025-01 channel's push", lambda: c.val(
        "SELECT pushed_qty IS NOT NULL AND last_error IS NULL FROM omnichan.listing WHERE sku = 'OLD-265'") == "t", 10)
    old = pushes(GQL_OLD)
    body = json.loads(old[0]["body"]) if old else {}
    check("a 2025-01 channel pushes through /admin/api/2025-01/graphql.json", bool(ok) and len(old) == 1,
          c.val("SELECT last_error FROM omnichan.listing WHERE sku = 'OLD-265'"))
    check("with ignoreCompareQuantity true and no @idempotent directive",
          body.get("variables", {}).get("input", {}).get("ignoreCompareQuantity") is True
          and "@idempotent" not in body.get("query", "")
          and "changeFromQuantity" not in json.dumps(body.get("variables", {})))

    # 8. secrets
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql(
        "SELECT id, url, headers::text, coalesce(error, ''), coalesce(payload::text, '') FROM omnichan.job") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT last_error FROM omnichan.listing WHERE last_error IS NOT NULL") or [])
    check("the access token appears in no log, view or job row",
          TOKEN not in log and TOKEN not in dump)


run(main)
