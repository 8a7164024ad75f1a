#!/usr/bin/python3
"""push_lazada: stock flows from Odoo's tables to the Lazada (IOP) mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the Lazada mock (/product/price_quantity/update under the gateway's
/rest, signatures verified), one Lazada channel (country sg, endpoint on the
mock) with credentials and 60 listings linked by SKU.  Checks:

- after linking, the mock's quantity of every listing equals allocate(), in
  ceil(60 / 50) = 2 requests, each signed (app_key, timestamp in ms,
  access_token, sign_method, sign - the mock recomputes the HMAC) with the
  XML payload in the form body;
- a stock change committed in Odoo's tables reaches the mock in 1 more
  request, a rolled-back one sends nothing;
- a SKU the marketplace does not know keeps Lazada's own message (detail[])
  on that listing only (class "fix") while the others are pushed;
- a SKU with XML special characters is escaped and accepted;
- a throttle storm (ApiCallLimit inside HTTP 200 answers) is retried and
  converges;
- kill -9 of the worker while a push is in flight: after the restart the
  push completes and the mock converges, with at most that one request sent
  again;
- a wrong app_secret: the gateway refuses the signature (IncompleteSignature
  in a 200 answer), the listing's error class is "credentials" and
  channel_status.last_error is set;
- no secret in sync_log, views, job rows or the server log.

No token refresh is implemented for Lazada (the access_token credential is
used as it is), so the token-expiry scenario of push_ebay is not run here.
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

PUSH = r"/rest/product/price_quantity/update"
APP_KEY = "100777"
SECRET = "lzd-secret-s3cr3t"
WRONG = "lzd-wrong-w4r0ng"
TOKEN = "50000lzd_access_t0k3n"
N = 60
BATCH = 50
ODD = "SKU-000061"            # relinked under a SKU with XML special characters
ODD_SKU = "A&B <61> \"x\""


def bump(c, skus, delta):
    """A committed stock change of the given SKUs in Odoo's tables."""
    codes = ", ".join(f"'{s}'" for s in skus)
    c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id IN (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          f"  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ({codes}) "
          " GROUP BY q.product_id)")


def main():
    c = start_cluster("push_lazada", conf=["omnichan.retry_base_delay = 200",
                                           "omnichan.naptime = 1000",
                                           "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(80, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, N + 1)]
    known = {s: {"quantity": 999, "sku_id": str(12760000000 + i), "item_id": str(6710000000 + i)}
             for i, s in enumerate(skus, 1)}
    known[ODD_SKU] = {"quantity": 999}
    seed = {"app": {"app_key": APP_KEY, "app_secret": SECRET},
            "tokens": {TOKEN: time.time() + 30 * 86400}, "skus": known}
    proc, port = mockctl.start("lazada", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}/rest"

    def mock_qty():
        return {s: v["quantity"] for s, v in mockctl.state(port)["skus"].items()}

    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'lazada-sg' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'lazada-sg' "
                     " WHERE l.sku NOT LIKE 'GHOST%'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def journal():
        return mockctl.journal(port, path=PUSH)

    def count():
        return len(journal())

    c.sql(f"""SELECT omnichan.channel_create('lazada-sg', 'lazada', jsonb_build_object(
                'country', 'sg', 'push_interval', 0, 'endpoint', '{base}'))""")
    c.sql(f"""SELECT omnichan.credentials_set('lazada-sg', jsonb_build_object(
                'app_key', '{APP_KEY}', 'app_secret', '{SECRET}', 'access_token', '{TOKEN}'))""")
    values = ", ".join(
        f"((SELECT id FROM omnichan.channel WHERE name = 'lazada-sg'), '{s}', "
        f"'{json.dumps({'sku_id': v['sku_id'], 'item_id': v['item_id']})}')"
        for s, v in known.items() if s.startswith("SKU-"))
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('lazada-sg')"))
    check(f"link_by_sku links the {N} SKUs that are internal references in Odoo", linked == N, str(linked))

    # 1. initial push
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    check(f"{N} listings need ceil({N}/{BATCH}) = {math.ceil(N / BATCH)} requests",
          count() == math.ceil(N / BATCH), str(count()))
    first = journal()[0]
    check("every request was accepted (HTTP 200)", all(e["status"] == 200 for e in journal()),
          str([e["status"] for e in journal()]))
    check("the system parameters are in the query",
          all(k in first["query"] for k in ("app_key", "timestamp", "access_token", "sign_method", "sign"))
          and first["query"]["sign_method"] == ["sha256"] and len(first["query"]["timestamp"][0]) == 13,
          str(sorted(first["query"])))
    check("the payload is XML in the form body, with SellerSku, SkuId, ItemId and Quantity",
          first["body"].startswith("payload=%3CRequest%3E%3CProduct%3E%3CSkus%3E%3CSku%3E")
          and "%3CSkuId%3E" in first["body"] and "%3CItemId%3E" in first["body"]
          and "%3CQuantity%3E" in first["body"], first["body"][:200])
    check("the sign is upper-case hex", first["query"]["sign"][0].isupper(), first["query"]["sign"][0])

    # 2. a stock change in Odoo's tables
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
    check("in exactly one more request", count() == before + 1, str(count() - before))

    # 3. partial failure (a SKU Lazada does not know) and XML escaping
    before = count()
    c.sql("SELECT omnichan.listing_link('lazada-sg', (SELECT id FROM product_product WHERE default_code = 'SKU-000070'), "
          "'{\"sku\": \"GHOST-70\"}')")
    c.sql("SELECT omnichan.listing_link('lazada-sg', (SELECT id FROM product_product WHERE default_code = "
          f"'{ODD}'), jsonb_build_object('sku', '{ODD_SKU}'))")
    bump(c, ["SKU-000004"], 2)
    err = wait_for("the unknown SKU's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-70' AND last_error IS NOT NULL"), 10)
    check("an unknown SKU keeps Lazada's own message, class fix",
          err is not None and "does not exist" in err and err.endswith("|fix"), str(err))
    got = wait_for("the other listings", converged, 10)
    check("the other listings are pushed (the SKU with & < > \" escaped in the XML included)",
          got is not None and mock_qty().get(ODD_SKU) == expected().get(ODD_SKU),
          f"expected {expected().get(ODD_SKU)}, mock {mock_qty().get(ODD_SKU)}")
    bad = c.val("SELECT count(*) FROM omnichan.listing WHERE last_error IS NOT NULL AND sku <> 'GHOST-70'")
    check("only the failed listing has an error", bad == "0", str(bad))

    # 4. a throttle storm: ApiCallLimit inside HTTP 200 answers
    mockctl.add_fault(port, {"route": PUSH, "kind": "rate_limit", "count": 3})
    before = count()
    bump(c, ["SKU-000006"], 2)
    got = wait_for("the push through the throttle storm",
                   lambda: converged() if count() >= before + 4 else None, 20)
    entries = journal()[before:]
    throttled = [e.get("fault", {}) and e["fault"]["kind"] for e in entries]
    check("an ApiCallLimit storm is retried until the push goes through", got is not None,
          str([e["status"] for e in entries]))
    check("three throttled answers, then the push", len(entries) == 4 and
          throttled[:3] == ["rate_limit"] * 3 and not entries[3]["fault"], str(throttled))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(entries, entries[1:])]
    check("waiting at least 1 s after each call limit", len(gaps) == 3 and min(gaps) >= 0.95, str(gaps))
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

    # 6. a wrong app_secret: the signature is refused inside a 200 answer
    c.sql(f"""SELECT omnichan.credentials_set('lazada-sg', jsonb_build_object(
                'app_key', '{APP_KEY}', 'app_secret', '{WRONG}', 'access_token', '{TOKEN}'))""")
    time.sleep(0.5)
    before = count()
    bump(c, ["SKU-000010"], 5)
    err = wait_for("the refused push's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'SKU-000010' AND last_error IS NOT NULL"), 10)
    refused = journal()[before:]
    check("a wrong app_secret: the gateway refuses the signature once, not retried",
          len(refused) == 1, str([e["status"] for e in refused]))
    check("the listing keeps Lazada's message, class credentials",
          err is not None and "IncompleteSignature" in err and err.endswith("|credentials"), str(err))
    chan = c.val("SELECT last_error FROM omnichan.channel_status WHERE channel = 'lazada-sg'")
    check("channel_status.last_error reports it", chan is not None and "IncompleteSignature" in chan, str(chan))

    # 7. status and secrets
    row = c.sql("SELECT last_push_at IS NOT NULL, last_success_at IS NOT NULL "
                "  FROM omnichan.channel_status WHERE channel = 'lazada-sg'")[0]
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
    signs = {e["query"]["sign"][0] for e in journal() if "sign" in e["query"]}
    check("no request signature appears in sync_log (URLs redacted)",
          signs and not any(s in dump for s in signs))


run(main)
