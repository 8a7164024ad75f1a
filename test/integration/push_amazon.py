#!/usr/bin/python3
"""push_amazon: stock flows from Odoo's tables to the Amazon SP-API mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the Amazon mock (LWA token endpoint, Listings Items patches, the
Feeds API with its presigned document URLs and processing reports), one
Amazon channel (feed_threshold 20, feed_poll_interval 0.2 s) with
credentials and 30 listings linked by SKU.  Checks:

- after linking, the mock's quantity of every listing equals allocate(),
  through ceil(30 / 10000) = 1 JSON_LISTINGS_FEED (createFeedDocument,
  upload, createFeed, getFeed polls, getFeedDocument, report download) and
  1 token request; the feed patches only the DEFAULT (merchant-fulfilled)
  quantity and the upload carries no access token;
- a stock change committed in Odoo's tables reaches the mock, one
  patchListingsItem per changed listing (fewer than feed_threshold); a
  rolled-back one sends nothing;
- partial failure: an unknown SKU keeps Amazon's own INVALID message (class
  fix) while the others are pushed, through a patch and through a feed (its
  processing report's issues mapped back by messageId);
- the access token expiring mid-run (Amazon answers 403): one token refresh,
  the push retried once;
- a 429 storm is retried with backoff and converges;
- kill -9 of the worker while a patch is in flight: the mock converges, with
  at most that one request sent again;
- no secret or access token appears in sync_log, views, job rows or the log.
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

TOKEN = "^/auth/o2/token$"
PATCH = "^/listings/2021-08-01/items/"
DOCS = "^/feeds/2021-06-30/documents$"
FEEDS = "^/feeds/2021-06-30/feeds$"
GETFEED = "^/feeds/2021-06-30/feeds/"
GETDOC = "^/feeds/2021-06-30/documents/"
S3 = "^/mock-s3/"
CLIENT = "amzn1.application-oa2-client.omnichan"
SECRET = "amzn-secret-s3cr3t"
REFRESH = "Atzr|amzn-refresh-r3fr3sh"
SELLER = "A2EXAMPLE1234"
BATCH = 10000


def main():
    c = start_cluster("push_amazon", conf=["omnichan.retry_base_delay = 200",
                                           "omnichan.naptime = 1000",
                                           "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(60, 1)")

    skus = [f"SKU-{i:06d}" for i in range(1, 31)]
    seed = {"credentials": {"client_id": CLIENT, "client_secret": SECRET,
                            "refresh_token": REFRESH},
            "seller_id": SELLER, "feed_processing_seconds": 0.3,
            "listings": {s: {"product_type": "PRODUCT", "quantity": 999} for s in skus}}
    proc, port = mockctl.start("amazon", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"

    def mock_qty():
        return {s: v["quantity"] for s, v in mockctl.state(port)["listings"].items()}

    def expected(pattern="SKU-%"):
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     "  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = 'amazon-us' "
                     "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = 'amazon-us' "
                     f" WHERE l.sku LIKE '{pattern}' AND l.error_class IS DISTINCT FROM 'fix'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def count(path, method=None):
        return len([e for e in mockctl.journal(port, path=path)
                    if method is None or e["method"] == method])

    def bump(sku_list, delta):
        skus_sql = ", ".join(f"'{s}'" for s in sku_list)
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id IN (SELECT min(q.id) FROM stock_quant q "
              "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ({skus_sql}) "
              " GROUP BY q.product_id)")

    c.sql(f"""SELECT omnichan.channel_create('amazon-us', 'amazon', jsonb_build_object(
                'seller_id', '{SELLER}', 'marketplace_ids', jsonb_build_array('ATVPDKIKX0DER'),
                'push_interval', 0, 'feed_threshold', 20, 'feed_poll_interval', 0.2,
                'endpoint', '{base}', 'token_endpoint', '{base}/auth/o2/token'))""")
    c.sql(f"""SELECT omnichan.credentials_set('amazon-us', jsonb_build_object(
                'lwa_client_id', '{CLIENT}', 'lwa_client_secret', '{SECRET}', 'refresh_token', '{REFRESH}'))""")
    values = ", ".join(f"((SELECT id FROM omnichan.channel WHERE name = 'amazon-us'), '{s}', '{{}}')" for s in skus)
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
    linked = int(c.val("SELECT omnichan.link_by_sku('amazon-us')"))
    check("link_by_sku links the 30 SKUs that are internal references in Odoo", linked == 30, str(linked))

    # 1. initial push: 30 listings >= feed_threshold, one JSON_LISTINGS_FEED
    t0 = time.monotonic()
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every listing", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    say(f"link -> feed processed and its report read: {time.monotonic() - t0:.3f} s")
    check("30 listings go in ceil(30/10000) = 1 feed (createFeed)",
          count(FEEDS) == math.ceil(30 / BATCH), str(count(FEEDS)))
    check("with one createFeedDocument, one upload, one getFeedDocument, one report download",
          [count(DOCS), count(S3, "PUT"), count(GETDOC), count(S3, "GET")] == [1, 1, 1, 1],
          str([count(DOCS), count(S3, "PUT"), count(GETDOC), count(S3, "GET")]))
    polls = mockctl.journal(port, path=GETFEED)
    feeds = mockctl.state(port)["feeds"]
    check("getFeed polled (every 0.2 s) until the feed was DONE",
          polls and polls[-1]["status"] == 200 and len(polls) <= 10
          and [f["processingStatus"] for f in feeds.values()] == ["DONE"], f"{len(polls)} {feeds}")
    check("no per-listing patch for a feed-sized push", count(PATCH) == 0, str(count(PATCH)))
    check("and one token request", count(TOKEN) == 1, str(count(TOKEN)))
    upload = mockctl.journal(port, path=S3)[0]
    feed = json.loads(upload["body"])
    msgs = feed["messages"]
    check("the feed is a JSON_LISTINGS_FEED v2 for the seller with 30 PATCH messages 1..30",
          feed["header"] == {"sellerId": SELLER, "version": "2.0", "issueLocale": "en_US"}
          and [m["messageId"] for m in msgs] == list(range(1, 31))
          and all(m["operationType"] == "PATCH" and m["productType"] == "PRODUCT" for m in msgs))
    check("each message replaces only the DEFAULT (merchant-fulfilled) fulfillment_availability",
          all(m["patches"] == [{"op": "replace", "path": "/attributes/fulfillment_availability",
                                "value": [{"fulfillment_channel_code": "DEFAULT",
                                           "quantity": m["patches"][0]["value"][0]["quantity"]}]}]
              for m in msgs))
    check("the presigned upload carries no access token (only its Content-Type)",
          not any(h.lower().startswith("x-amz-") for h in upload["headers"])
          and upload["headers"].get("Content-Type") == "application/json; charset=UTF-8",
          str(upload["headers"]))
    create = mockctl.journal(port, path=FEEDS)[0]
    check("createFeed names JSON_LISTINGS_FEED, the marketplace and the uploaded document",
          json.loads(create["body"])["feedType"] == "JSON_LISTINGS_FEED"
          and json.loads(create["body"])["marketplaceIds"] == ["ATVPDKIKX0DER"]
          and create["headers"].get("x-amz-access-token", "").startswith("Atza|"))

    # 2. a stock change in Odoo's tables: fewer than feed_threshold, patches
    before = count(PATCH)
    c.sql("BEGIN; UPDATE stock_quant SET quantity = quantity + 7 WHERE product_id IN "
          "(SELECT id FROM product_product WHERE default_code IN ('SKU-000002', 'SKU-000003')) "
          "AND location_id IN (SELECT id FROM stock_location WHERE usage = 'internal'); ROLLBACK;")
    time.sleep(1.0)
    check("a rolled-back stock change sends nothing", count(PATCH) == before, str(count(PATCH) - before))
    t0 = time.monotonic()
    bump(["SKU-000002", "SKU-000003"], 7)
    got = wait_for("the change to reach the mock", lambda: converged() if count(PATCH) >= before + 2 else None, 10)
    check("a committed stock change reaches the mock", got is not None)
    say(f"commit -> mock has the new quantities: {time.monotonic() - t0:.3f} s")
    check("in one patchListingsItem per changed listing (2), no feed",
          count(PATCH) == before + 2 and count(FEEDS) == 1, f"{count(PATCH) - before} {count(FEEDS)}")
    p = mockctl.journal(port, path=PATCH)[-1]
    body = json.loads(p["body"])
    check("the patch names the seller, the SKU and the marketplace, with the access token",
          p["path"].startswith(f"/listings/2021-08-01/items/{SELLER}/SKU-00000")
          and p["query"].get("marketplaceIds") == ["ATVPDKIKX0DER"]
          and p["headers"].get("x-amz-access-token", "").startswith("Atza|")
          and body["productType"] == "PRODUCT"
          and body["patches"][0]["value"][0]["fulfillment_channel_code"] == "DEFAULT", str(p))

    # 3a. partial failure through a patch: a SKU Amazon does not know
    c.sql("SELECT omnichan.listing_link('amazon-us', (SELECT id FROM product_product WHERE default_code = 'SKU-000040'), "
          "'{\"sku\": \"GHOST-40\"}')")
    err = wait_for("the unknown SKU's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-40' AND last_error IS NOT NULL"), 10)
    check("an unknown SKU keeps Amazon's own INVALID message, class fix",
          err is not None and "does not exist in the seller's catalog" in err and err.endswith("|fix"), str(err))
    check("the other listings are unaffected", converged() is not None)

    # 3b. partial failure through a feed: 22 new listings, 2 unknown to Amazon
    new = [f"SKU-{i:06d}" for i in range(31, 53)]
    mockctl.seed(port, {"listings": {s: {"product_type": "PRODUCT", "quantity": 999} for s in new[:20]}})
    feeds_before = count(FEEDS)
    c.sql("SELECT omnichan.listing_link('amazon-us', id, jsonb_build_object('sku', default_code)) "
          f"  FROM product_product WHERE default_code IN ({', '.join(repr(s) for s in new)})")
    errs = wait_for("the feed's report on the unknown SKUs", lambda: c.sql(
        "SELECT sku, last_error, error_class FROM omnichan.listing WHERE sku IN ('SKU-000051', 'SKU-000052') "
        "   AND last_error IS NOT NULL ORDER BY sku") if len(c.sql(
            "SELECT 1 FROM omnichan.listing WHERE sku IN ('SKU-000051', 'SKU-000052') AND last_error IS NOT NULL")) == 2 else None, 15)
    check("22 new listings go in one more feed", count(FEEDS) == feeds_before + 1, str(count(FEEDS) - feeds_before))
    check("the report's issues reach the two unknown SKUs by messageId, Amazon's message, class fix",
          errs is not None and all("does not exist in the seller's catalog" in e[1] and e[0] in e[1]
                                   and e[2] == "fix" for e in errs), str(errs))
    got = wait_for("the 20 known new listings", converged, 10)
    check("the 20 others of that feed are pushed", got is not None and all(s in got for s in new[:20]),
          f"mock {mock_qty()}")
    ok = c.val("SELECT count(*) FROM omnichan.listing WHERE sku LIKE 'SKU-%' AND last_error IS NULL "
               "   AND pushed_qty = target_qty")
    check("every other listing is pushed without an error", int(ok) == 50, str(ok))

    # 4. the access token expires mid-run: Amazon answers 403 Unauthorized
    tokens = mockctl.state(port)["tokens"]
    mockctl.seed(port, {"tokens": {t: 0 for t in tokens}})
    before_tok, before_patch = count(TOKEN), count(PATCH)
    bump(["SKU-000005"], 1)
    got = wait_for("the push after the token expired",
                   lambda: converged() if count(PATCH) >= before_patch + 2 else None, 15)
    check("an expired token: the push converges", got is not None, f"mock {mock_qty()}")
    check("with one token refresh", count(TOKEN) == before_tok + 1, str(count(TOKEN) - before_tok))
    statuses = [e["status"] for e in mockctl.journal(port, path=PATCH)[before_patch:]]
    check("and the refused patch retried once (403 then 200)", statuses == [403, 200], str(statuses))

    # 5. a 429 storm on patchListingsItem
    mockctl.add_fault(port, {"route": PATCH, "kind": "rate_limit", "count": 3})
    before_patch = count(PATCH)
    bump(["SKU-000006"], 2)
    got = wait_for("the push through the 429 storm",
                   lambda: converged() if count(PATCH) >= before_patch + 4 else None, 20)
    entries = mockctl.journal(port, path=PATCH)[before_patch:]
    check("a 429 storm is retried until the push goes through", got is not None,
          str([e["status"] for e in entries]))
    check("429, 429, 429, then 200", [e["status"] for e in entries] == [429, 429, 429, 200],
          str([e["status"] for e in entries]))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(entries, entries[1:])]
    check("with backoff between the attempts (>= 0.1, 0.2, 0.4 s with jitter)",
          len(gaps) == 3 and gaps[0] >= 0.09 and gaps[1] >= 0.19 and gaps[2] >= 0.39, str(gaps))
    mockctl.clear_faults(port)

    # 6. kill -9 of the worker mid-push
    mockctl.add_fault(port, {"route": PATCH, "kind": "delay", "ms": 2000, "count": 1})
    before_patch = count(PATCH)
    bump(["SKU-000007"], 3)
    arrived = wait_for("the push to reach the mock", lambda: count(PATCH) > before_patch, 10)
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its push was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-push, the mock converges", got is not None, c.log_tail(20))
    sent = count(PATCH) - before_patch
    check("with the interrupted patch sent again at most once (2 requests)", sent <= 2, str(sent))
    mockctl.clear_faults(port)

    # 7. status and secrets
    row = c.sql("SELECT state, last_push_at IS NOT NULL, last_success_at IS NOT NULL "
                "  FROM omnichan.channel_status WHERE channel = 'amazon-us'")[0]
    check("channel_status shows the channel active with its last push and success",
          row == ["active", "t", "t"], str(row))
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.credential_status") or [])
    jobs = "\n".join("|".join(r) for r in c.sql(
        "SELECT id, url, headers::text, coalesce(payload::text, ''), coalesce(error, '') FROM omnichan.job") or [])
    for secret in (SECRET, REFRESH):
        check(f"the secret {secret[:6]}... appears in no log, view or job row",
              secret not in log and secret not in dump and secret not in jobs)
    tok = mockctl.journal(port, path=PATCH)[-1]["headers"].get("x-amz-access-token", "")
    check("the access token appears in no log, view or job row",
          tok and tok not in log and tok not in dump and tok not in jobs)
    check("presigned URLs are logged without their signature",
          "X-Amz-Signature=***" in dump and "X-Amz-Signature=" + upload["query"]["X-Amz-Signature"][0] not in dump
          and upload["query"]["X-Amz-Signature"][0] not in log)


run(main)
