#!/usr/bin/python3
"""push_tiktok: stock flows from Odoo's tables to the TikTok Shop mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the TikTok Shop mock (Update Inventory, signatures verified), one
TikTok channel with credentials and 30 listings linked by SKU: 10 TikTok
products of 3 SKUs each.  The inventory endpoint takes the SKUs of one
product, so the connector's unit is the product (push_group): a push costs
one request per product changed.  Checks:

- after linking, the mock's quantity of every listing equals allocate(), in
  exactly 10 requests (one per product, each with its 3 SKUs), every one
  signed (app_key, timestamp, shop_cipher, sign, x-tts-access-token) - the
  mock recomputes the HMAC and would refuse it otherwise;
- a stock change committed in Odoo's tables for 2 SKUs of one product
  reaches the mock in 1 more request, a rolled-back one sends nothing;
- a SKU id TikTok does not know keeps TikTok's own message on that listing
  only (class "fix") while its product's other SKUs are pushed;
- a 429 storm is retried with backoff and converges;
- kill -9 of the worker while a push is in flight: after the restart the
  push completes and the mock converges, with at most that one request sent
  again;
- a wrong app_secret: the mock refuses the signature, the listing's error
  class is "credentials" and channel_status.last_error is set;
- no secret (app_secret, access token, wrong secret) in sync_log, views,
  job rows or the server log.

No token refresh is implemented for TikTok (the access_token credential is
used as it is), so the token-expiry scenario of push_ebay is not run here.
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, check, fatal, finish, mockctl, say, start_cluster,  # noqa: E402
                         wait_for, _cleanups)

PUSH = r"/product/202309/products/[0-9]+/inventory/update"
APP_KEY = "tts-app-key"
SECRET = "tts-secret-s3cr3t"
WRONG = "tts-wrong-w4r0ng"
TOKEN = "TTP_access_t0k3n_abcdef"
CIPHER = "ROW_shopcipher01"
N = 30
PER_PRODUCT = 3


def product_of(i):
    return str(7300000000000000000 + (i - 1) // PER_PRODUCT)


def sku_id_of(i):
    return str(1729000000000000000 + i)


def bump(c, skus, delta):
    """A committed stock change of the given SKUs in Odoo's tables."""
    codes = ", ".join(f"'{s}'" for s in skus)
    c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id IN (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          f"  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ({codes}) "
          " GROUP BY q.product_id)")


def main():
    c = start_cluster("push_tiktok", conf=["omnichan.retry_base_delay = 200",
                                           "omnichan.naptime = 1000",
                                           "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(60, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, N + 1)]
    where = {s: (product_of(i), sku_id_of(i)) for i, s in enumerate(skus, 1)}
    products = {}
    for s, (pid, sid) in where.items():
        products.setdefault(pid, {"status": "ACTIVATE", "skus": {}})["skus"][sid] = {"quantity": 999}
    seed = {"app": {"app_key": APP_KEY, "app_secret": SECRET}, "shop_cipher": CIPHER,
            "tokens": {TOKEN: time.time() + 7 * 86400}, "products": products}
    proc, port = mockctl.start("tiktok", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"

    def mock_qty():
        prods = mockctl.state(port)["products"]
        return {s: prods[pid]["skus"].get(sid, {}).get("quantity") for s, (pid, sid) in where.items()}

    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'tiktok-us' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'tiktok-us' "
                     " WHERE l.sku LIKE 'SKU-%'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def count(path=PUSH):
        return len(mockctl.journal(port, path=path))

    c.sql(f"""SELECT omnichan.channel_create('tiktok-us', 'tiktok', jsonb_build_object(
                'shop_cipher', '{CIPHER}', 'push_interval', 0, 'endpoint', '{base}'))""")
    c.sql(f"""SELECT omnichan.credentials_set('tiktok-us', jsonb_build_object(
                'app_key', '{APP_KEY}', 'app_secret', '{SECRET}', 'access_token', '{TOKEN}'))""")
    values = ", ".join(
        f"((SELECT id FROM omnichan.channel WHERE name = 'tiktok-us'), '{s}', "
        f"'{json.dumps({'product_id': pid, 'sku_id': sid})}')" for s, (pid, sid) in where.items())
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('tiktok-us')"))
    check(f"link_by_sku links the {N} SKUs that are internal references in Odoo", linked == N, str(linked))

    # 1. initial push
    nprod = len(products)
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    check(f"{N} listings of {nprod} products need {nprod} requests (one per product)",
          count() == nprod, str(count()))
    pushes = mockctl.journal(port, path=PUSH)
    check("every request was accepted (signature, timestamp, token, shop_cipher)",
          all(e["status"] == 200 for e in pushes),
          str([e["status"] for e in pushes]))
    first = pushes[0]
    body = json.loads(first["body"])
    check("a request carries the 3 SKUs of its product with inventory[].quantity",
          len(body["skus"]) == PER_PRODUCT and "quantity" in body["skus"][0]["inventory"][0], first["body"])
    check("with app_key, timestamp, shop_cipher and sign in the query",
          all(k in first["query"] for k in ("app_key", "timestamp", "shop_cipher", "sign"))
          and first["query"]["shop_cipher"] == [CIPHER], str(first["query"].keys()))
    check("and the access token in x-tts-access-token",
          first["headers"].get("x-tts-access-token") == TOKEN or
          first["headers"].get("X-Tts-Access-Token") == TOKEN, str(first["headers"]))

    # 2. a stock change in Odoo's tables (2 SKUs of the same product)
    before = count()
    c.sql("BEGIN; UPDATE stock_quant SET quantity = quantity + 7 WHERE product_id IN "
          "(SELECT id FROM product_product WHERE default_code IN ('SKU-000002', 'SKU-000003')) "
          "AND location_id IN (SELECT id FROM stock_location WHERE usage = 'internal'); ROLLBACK;")
    time.sleep(1.0)
    check("a rolled-back stock change sends nothing", count() == before, str(count() - before))
    t0 = time.monotonic()
    bump(c, ["SKU-000002", "SKU-000003"], 7)
    got = wait_for("the change to reach the mock", lambda: converged() if count() > before else None, 10)
    check("a committed stock change reaches the mock", got is not None)
    say(f"commit -> mock has the new quantities: {time.monotonic() - t0:.3f} s")
    check("in exactly one more request (both SKUs belong to one product)",
          count() == before + 1, str(count() - before))

    # 3. partial failure: a SKU id TikTok does not know, in a known product
    ghost_pid = product_of(4)
    c.sql("SELECT omnichan.listing_link('tiktok-us', (SELECT id FROM product_product WHERE default_code = 'SKU-000040'), "
          f"'{{\"sku\": \"GHOST-40\", \"product_id\": \"{ghost_pid}\", \"sku_id\": \"1729999999999999999\"}}')")
    bump(c, ["SKU-000004"], 2)     # a SKU of the same product changes too
    err = wait_for("the unknown SKU's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-40' AND last_error IS NOT NULL"), 10)
    check("an unknown SKU id keeps TikTok's own message, class fix",
          err is not None and "SKU id not exist" in err and err.endswith("|fix"), str(err))
    got = wait_for("the other listings", converged, 10)
    check("the product's other SKUs are pushed, the other listings unaffected", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    bad = c.val("SELECT count(*) FROM omnichan.listing WHERE last_error IS NOT NULL AND sku <> 'GHOST-40'")
    check("only the failed listing has an error", bad == "0", str(bad))

    # 4. a 429 storm
    mockctl.add_fault(port, {"route": PUSH, "kind": "rate_limit", "count": 3})
    before = count()
    bump(c, ["SKU-000006"], 2)
    got = wait_for("the push through the 429 storm", lambda: converged() if count() >= before + 4 else None, 20)
    entries = mockctl.journal(port, path=PUSH)[before:]
    check("a 429 storm is retried until the push goes through", got is not None,
          str([e["status"] for e in entries]))
    check("429, 429, 429, then 200", [e["status"] for e in entries] == [429, 429, 429, 200],
          str([e["status"] for e in entries]))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(entries, entries[1:])]
    check("with backoff between the attempts (>= 0.1, 0.2, 0.4 s with jitter)",
          len(gaps) == 3 and gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, str(gaps))
    mockctl.clear_faults(port)

    # 5. kill -9 of the worker mid-push
    mockctl.add_fault(port, {"route": PUSH, "kind": "delay", "ms": 2000, "count": 1})
    before = count()
    bump(c, ["SKU-000007"], 3)
    arrived = wait_for("the push to reach the mock", lambda: count() > before, 10)
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its push was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-push, the mock converges", got is not None, c.log_tail(20))
    sent = count() - before
    check("with the interrupted push sent again at most once (2 requests)", sent <= 2, str(sent))
    mockctl.clear_faults(port)

    # 6. a wrong app_secret: the signature is refused
    c.sql(f"""SELECT omnichan.credentials_set('tiktok-us', jsonb_build_object(
                'app_key', '{APP_KEY}', 'app_secret', '{WRONG}', 'access_token', '{TOKEN}'))""")
    time.sleep(0.5)
    before = count()
    bump(c, ["SKU-000010"], 5)
    err = wait_for("the refused push's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'SKU-000010' AND last_error IS NOT NULL"), 10)
    refused = [e["status"] for e in mockctl.journal(port, path=PUSH)[before:]]
    check("a wrong app_secret: the mock refuses the signature (HTTP 401, code 106001)",
          refused[:1] == [401], str(refused))
    check("the listing keeps TikTok's message, class credentials",
          err is not None and "106001" in err and err.endswith("|credentials"), str(err))
    chan = c.val("SELECT last_error FROM omnichan.channel_status WHERE channel = 'tiktok-us'")
    check("channel_status.last_error reports it", bool(chan), str(chan))
    check("a refused signature is not retried in a loop", len(refused) <= 2, str(refused))

    # 7. status and secrets
    row = c.sql("SELECT last_push_at IS NOT NULL, last_success_at IS NOT NULL "
                "  FROM omnichan.channel_status WHERE channel = 'tiktok-us'")[0]
    check("channel_status shows the channel's last push and success", row == ["t", "t"], str(row))
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.credential_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.listing_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT id, url, headers::text, coalesce(error, ''), "
                                                 "coalesce(payload::text, '') FROM omnichan.job") or [])
    for secret in (SECRET, WRONG, TOKEN):
        check(f"the secret {secret[:6]}... appears in no log, view or job row",
              secret not in log and secret not in dump)
    signs = {e["query"]["sign"][0] for e in mockctl.journal(port, path=PUSH) if "sign" in e["query"]}
    check("no request signature appears in sync_log (URLs redacted)",
          signs and not any(s in dump for s in signs))


run(main)
