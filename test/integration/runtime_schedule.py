#!/usr/bin/python3
"""runtime_schedule: when the sync worker acts — at commit, on each channel's
cadence, and never otherwise.

One throwaway cluster with omnichan.naptime = 60 s (so nothing below can
be explained by the worker's idle timeout), the Odoo fixture with a small
catalog, and these channels, each with a mock of its own:

  shop  eBay, pull_interval 1 hour (then 3 s), push_interval 1 hour: the
        order pull of check 3 (pull_lib.PullEnv);
  rt    Shopify, real time (push_interval 0), SKU-000013;
  cad   eBay, the kind's push_interval (15 minutes), then 3 s, SKU-000015;
  and a generic mock for plain http_enqueue requests.

Checks (run in the order 1, 4, 2, 3: a channel on a 3 s cadence would wake
the idle worker of 1c):

1. wake-up at commit, no polling:
   a. a request queued with omnichan.http_enqueue reaches the mock < 1 s
      after its commit (three times);
   b. a stock change committed in stock_quant (as Odoo writes it) reaches
      the Shopify mock as an inventorySetQuantities call < 2 s after the
      commit (twice);
   c. idle for 5 s: the worker's CPU time (utime + stime, /proc/PID/stat)
      grows by at most 3 ticks, its loop runs at most once (the distinct
      times of pg_stat_activity.state_change of the worker, sampled every
      0.1 s, those within 0.5 s of the first counted as one wake-up: each
      loop reports the worker idle after each of its transactions; one
      wake-up allowed for the housekeeping pass of every 60 s), and no mock
      receives anything;
4. Shopify real-time coalescing (omnichan.realtime_coalesce, 250 ms): 20
   separately committed changes of one listed product within ~300 ms (the
   burst must take < 0.7 s) give at most 4 inventory calls for its
   inventory item, the first < 1 s after the first commit, the last one
   carrying the final quantity, which equals the mock's level,
   listing_status target and pushed quantities, allocate() for the channel
   and floor(ats()) of the product;
2. the push cadence:
   a. cad at the eBay default (15 minutes), first push done (sync_now): a
      stock change is not pushed within 5 s, while listing_status shows it
      out of date;
   b. channel_alter to push_interval 3 s: the waiting change is pushed
      within 3 s + 3 s of the alter, without any other call;
   c. two changes committed 0.5 s apart right after that push produce ONE
      next push, >= 2 s and <= 6 s after the previous one, carrying the
      latest quantity; nothing more is sent at the tick after it;
3. the pull cadence: shop at pull_interval 3 s with an initial order cursor
   (set_order_cursor, once) pulls on its own: >= 3 getOrders requests
   within 10.5 s (the one set_order_cursor starts and >= 2 on their own),
   consecutive ones 2 s to 6 s apart (no push channel wakes the worker:
   cad is back at 1 hour); an order added to the mock between two pulls
   becomes an Odoo sale order with no call at all.
"""

import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, q  # noqa: E402
from runtime_lib import (run, PGBIN, _cleanups, check, enqueue, finish, fatal, mockctl,  # noqa: E402
                         say, wait_for, wait_job_done)

NAPTIME_MS = 60000
TOKEN = "/identity/v1/oauth2/token"
BULK = "/sell/inventory/v1/bulk_update_price_quantity"
ORDERS = "^/sell/fulfillment/v1/order$"           # the order list (getOrders)
GQL = r"/admin/api/2026-04/graphql\.json"
SHOP_TOKEN = "shpat_schedule0123456789abcdef"
LOC = "gid://shopify/Location/124656943"
RT_SKU, RT_ITEM = "SKU-000013", "gid://shopify/InventoryItem/30322013"
CAD_SKU = "SKU-000015"
EBAY_CRED = {"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
             "refresh_token": "ebay-refresh-r3fr3sh"}


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def ebay_order(oid, sku, qty, unit, cur, modified):
    """A paid eBay Fulfillment API Order of one line, no tax, no shipping
    (the shape of pull_ebay.py's order())."""
    cost = round(qty * unit, 2)
    money = lambda v: {"value": f"{v:.2f}", "currency": cur}  # noqa: E731
    return {
        "orderId": oid, "legacyOrderId": f"L{oid}",
        "creationDate": iso(datetime.now(timezone.utc) - timedelta(hours=1)), "lastModifiedDate": modified,
        "orderFulfillmentStatus": "NOT_STARTED", "orderPaymentStatus": "PAID",
        "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
        "buyer": {"username": "sched-buyer", "buyerRegistrationAddress": {
            "fullName": "Sam Cadence", "email": "sched-buyer@members.ebay.com",
            "primaryPhone": {"phoneNumber": "+1 555 0100"}}},
        "pricingSummary": {"priceSubtotal": money(cost), "deliveryCost": money(0),
                           "tax": money(0), "total": money(cost)},
        "totalMarketplaceFee": money(round(cost * 0.13, 2)),
        "fulfillmentStartInstructions": [{"shippingStep": {
            "shipTo": {"fullName": "Sam Cadence", "contactAddress": {
                "addressLine1": "1 Main Street", "city": "Springfield", "stateOrProvince": "IL",
                "postalCode": "62701", "countryCode": "US"}, "primaryPhone": {"phoneNumber": "+1 555 0100"}},
            "shippingCarrierCode": "USPS", "shippingServiceCode": "USPSPriority"}}],
        "lineItems": [{"lineItemId": f"{oid}-L1", "legacyItemId": "11001", "sku": sku,
                       "title": f"Item {sku}", "quantity": qty, "lineItemCost": money(cost),
                       "taxes": [], "lineItemFulfillmentStatus": "NOT_STARTED"}],
    }


def main():
    env = PullEnv("runtime_schedule", "ebay",
                  settings={"marketplace_id": "EBAY_US", "token_endpoint": "{base}" + TOKEN},
                  credentials=EBAY_CRED, seed={"credentials": EBAY_CRED},
                  link=lambda sku: {}, n_products=20, n_linked=2, pull_interval="1 hour",
                  conf=[f"omnichan.naptime = {NAPTIME_MS}"])
    c = env.c
    check("the cluster runs with omnichan.naptime = 60 s",
          c.val("SHOW omnichan.naptime", db="postgres") == "1min", c.val("SHOW omnichan.naptime", db="postgres"))

    def pid_of(sku):
        return int(c.val(f"SELECT id FROM product_product WHERE default_code = {q(sku)}"))

    def bump(sku, delta):
        """A stock change as Odoo writes it: one internal quant's quantity."""
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {delta} WHERE id = (SELECT min(q.id) "
              "  FROM stock_quant q JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code = {q(sku)})")

    def allocation(sku, channel):
        return int(c.val(f"SELECT a.quantity FROM omnichan.allocate({pid_of(sku)}) a "
                         f" WHERE a.channel = {q(channel)}"))

    # ------------------------------------------------------------ the channels
    gen = mockctl.start("generic")
    _cleanups.append(lambda: mockctl.stop(gen[0]))
    gen_port = gen[1]

    shop_proc, shop_port = mockctl.start("shopify", seed={
        "access_token": SHOP_TOKEN, "locations": [LOC], "levels": {RT_ITEM: {LOC: 999}}})
    _cleanups.append(lambda: mockctl.stop(shop_proc))
    c.sql(f"""SELECT omnichan.channel_create('rt', 'shopify', jsonb_build_object(
                'shop_domain', 'example.myshopify.com', 'location_id', '{LOC}', 'api_version', '2026-04',
                'push_interval', 0, 'pull_interval', '1 hour', 'endpoint', 'http://127.0.0.1:{shop_port}'))""")
    c.sql(f"SELECT omnichan.credentials_set('rt', jsonb_build_object('access_token', '{SHOP_TOKEN}'))")
    c.sql(f"SELECT omnichan.listing_link('rt', {pid_of(RT_SKU)}, "
          f"'{{\"sku\": \"{RT_SKU}\", \"inventory_item_id\": \"{RT_ITEM}\"}}')")

    def rt_pushes():
        """inventorySetQuantities calls for RT_ITEM: (journal time, quantity)."""
        out = []
        for e in mockctl.journal(shop_port, path=GQL):
            body = e.get("body") or ""
            if "inventorySetQuantities" not in body:
                continue
            for qn in json.loads(body)["variables"]["input"]["quantities"]:
                if qn["inventoryItemId"] == RT_ITEM:
                    out.append((e["time"], qn["quantity"]))
        return out

    def rt_level():
        return mockctl.state(shop_port)["levels"][RT_ITEM][LOC]

    got = wait_for("rt's first push", lambda: rt_level() == allocation(RT_SKU, "rt"), 20)
    check("rt (Shopify, real time): the listing's first push reaches the mock", got is not None,
          f"mock {rt_level()}, allocation {allocation(RT_SKU, 'rt')}")

    # ------------------------------------------------------------ 1. wake-up at commit
    # a. http_enqueue -> the mock
    delays = []
    for i in range(3):
        time.sleep(0.7)
        t0 = time.time()
        jid = enqueue(c, f"http://127.0.0.1:{gen_port}/echo?wake={i}")
        arrived = wait_for("the queued request", lambda: [e for e in mockctl.journal(gen_port, path="^/echo$")
                                                          if e["query"].get("wake") == [str(i)]], 5)
        delays.append(round(arrived[0]["time"] - t0, 3) if arrived else None)
        j = wait_job_done(c, jid, 5)
        check(f"http_enqueue #{i + 1}: the job succeeded", j is not None and j["state"] == "succeeded", str(j))
    say(f"http_enqueue (from before psql started) -> the mock: {delays} s")
    check("1a. a request queued by http_enqueue reaches the mock < 1 s after its commit (naptime 60 s)",
          all(d is not None and d < 1.0 for d in delays), str(delays))

    # b. a stock change -> the Shopify mock
    delays = []
    for delta in (4, -3):
        time.sleep(0.7)
        n0 = len(rt_pushes())
        t0 = time.time()
        bump(RT_SKU, delta)
        want = allocation(RT_SKU, "rt")
        got = wait_for("the stock change's push", lambda: [p for p in rt_pushes()[n0:] if p[1] == want], 10)
        delays.append(round(got[0][0] - t0, 3) if got else None)
    say(f"stock change (from before psql started) -> Shopify mock: {delays} s")
    check("1b. a stock change committed in stock_quant reaches the Shopify mock < 2 s after the commit",
          all(d is not None and d < 2.0 for d in delays), str(delays))
    check("    and the mock holds the allocation", rt_level() == allocation(RT_SKU, "rt"))

    # c. idle
    mocks = {"generic": gen_port, "shopify": shop_port, "ebay (shop)": env.port}
    time.sleep(2.5)             # what the last change left (a target refresh delay, a job's outcome)
    wpid = c.wait_worker("odoo")

    def cpu_ticks():
        with open(f"/proc/{wpid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])      # utime, stime (fields 14, 15)

    def loop_time():
        return c.val(f"SELECT extract(epoch FROM state_change) FROM pg_stat_activity WHERE pid = {wpid}",
                     db="postgres")

    before_journal = {n: len(mockctl.journal(p)) for n, p in mocks.items()}
    ticks0 = cpu_ticks()
    seen = {loop_time()}
    t_end = time.monotonic() + 5.0
    while time.monotonic() < t_end:
        time.sleep(0.1)
        seen.add(loop_time())
    ticks = cpu_ticks() - ticks0
    after_journal = {n: len(mockctl.journal(p)) for n, p in mocks.items()}
    # one wake-up: the loop times within 0.5 s of the first of them (a loop
    # reports the worker idle after each of its transactions, a few ms apart)
    stamps = sorted(float(s) for s in seen if s)
    wakeups = []
    for s in stamps:
        if not wakeups or s - wakeups[-1] > 0.5:
            wakeups.append(s)
    first = stamps[0] if stamps else 0
    say(f"idle 5 s: worker (pid {wpid}) CPU +{ticks} tick(s), loop times seen "
        f"{[round(s - first, 3) for s in stamps]}")
    check("1c. idle 5 s: the worker's CPU time grows by at most 3 ticks", ticks <= 3, f"{ticks} ticks")
    check("1c. idle 5 s: the worker's loop runs at most once (no polling)", len(wakeups) <= 2,
          # (the first value is the loop before the window)
          f"{len(wakeups) - 1} wake-up(s) in the window")
    check("1c. idle 5 s: no mock receives anything", before_journal == after_journal,
          f"{before_journal} -> {after_journal}")

    # ------------------------------------------------------------ 4. coalescing
    qid = int(c.val("SELECT min(q.id) FROM stock_quant q "
                    "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
                    f" WHERE q.product_id = {pid_of(RT_SKU)}"))
    n0 = len(rt_pushes())
    script = "SELECT extract(epoch FROM clock_timestamp());\n"
    for i in range(20):
        script += f"UPDATE stock_quant SET quantity = quantity + 1 WHERE id = {qid};\n"
        if i < 19:
            script += "SELECT pg_sleep(0.015);\n"
    script += "SELECT extract(epoch FROM clock_timestamp());\n"
    r = subprocess.run([os.path.join(PGBIN, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
                        "-d", "odoo"], input=script, env=c.env, capture_output=True, text=True)
    if r.returncode != 0:
        fatal(f"the burst failed: {r.stderr}")
    stamps = [float(x) for x in r.stdout.split() if x.strip()]
    burst = stamps[-1] - stamps[0]
    final = allocation(RT_SKU, "rt")
    say(f"20 committed changes in {burst * 1000:.0f} ms; final allocation {final}")
    check("4. the 20 commits took < 0.7 s (a burst: the bound below assumes it)", burst < 0.7, f"{burst:.3f} s")
    got = wait_for("the burst's last push", lambda: rt_level() == final, 10)
    time.sleep(1.0)             # anything still coming
    pushes = rt_pushes()[n0:]
    say(f"pushes of the burst for {RT_ITEM}: {[(round(t - stamps[0], 3), qn) for t, qn in pushes]}")
    check("4. the mock ends with the final quantity", got is not None, f"mock {rt_level()}, want {final}")
    check("4. 20 commits within ~300 ms give at most 4 inventory calls for the item",
          0 < len(pushes) <= 4, str(len(pushes)))
    check("4. the first change is pushed at once (< 1 s after the first commit)",
          pushes and pushes[0][0] - stamps[0] < 1.0, str(pushes[:1]))
    check("4. the last call carries the final quantity", pushes and pushes[-1][1] == final,
          f"{pushes[-1:] if pushes else None} vs {final}")
    row = c.sql(f"SELECT target_qty, pushed_qty, pushing, out_of_date FROM omnichan.listing_status "
                f" WHERE channel = 'rt' AND sku = {q(RT_SKU)}")
    ats = c.val(f"SELECT floor(ats) FROM omnichan.ats({pid_of(RT_SKU)})")
    check("4. listing_status: target = pushed = the last call's quantity, nothing in flight or out of date",
          row == [[str(final), str(final), "f", "f"]], str(row))
    check("4. allocate() for rt and floor(ats()) equal what was pushed",
          allocation(RT_SKU, "rt") == final and ats is not None and int(float(ats)) == final,
          f"allocate {allocation(RT_SKU, 'rt')}, ats {ats}, pushed {final}")

    # ------------------------------------------------------------ 2. push cadence
    cad_proc, cad_port = mockctl.start("ebay", seed={"credentials": EBAY_CRED,
                                                     "inventory": {CAD_SKU: {"quantity": 999}}})
    _cleanups.append(lambda: mockctl.stop(cad_proc))
    cad_base = f"http://127.0.0.1:{cad_port}"
    c.sql(f"""SELECT omnichan.channel_create('cad', 'ebay', jsonb_build_object(
                'marketplace_id', 'EBAY_US', 'pull_interval', '1 hour',
                'endpoint', '{cad_base}', 'token_endpoint', '{cad_base}{TOKEN}'))""")
    check("cad has the eBay default push_interval (15 minutes)",
          c.val("SELECT omnichan.channel_settings('cad') ->> 'push_interval'")
          == "00:15:00")
    c.sql(f"SELECT omnichan.credentials_set('cad', '{json.dumps(EBAY_CRED)}'::jsonb)")
    c.sql(f"SELECT omnichan.listing_link('cad', {pid_of(CAD_SKU)}, '{{\"sku\": \"{CAD_SKU}\"}}')")
    c.sql("SELECT omnichan.sync_now('cad')")      # its schedule started with the channel

    def cad_pushes():
        """bulk requests to the cad mock: (journal time, quantity of CAD_SKU)."""
        out = []
        for e in mockctl.journal(cad_port, path=BULK):
            for rq in json.loads(e["body"])["requests"]:
                if rq["sku"] == CAD_SKU:
                    out.append((e["time"], rq["shipToLocationAvailability"]["quantity"]))
        return out

    def cad_level():
        return mockctl.state(cad_port)["inventory"][CAD_SKU]["quantity"]

    got = wait_for("cad's first push", lambda: cad_level() == allocation(CAD_SKU, "cad"), 20)
    check("cad's first push (sync_now) reaches the mock", got is not None,
          f"mock {cad_level()}, allocation {allocation(CAD_SKU, 'cad')}")

    # a. the default cadence: nothing within 5 s
    time.sleep(0.5)
    n0 = len(cad_pushes())
    bump(CAD_SKU, 5)
    time.sleep(5.0)
    check("2a. cad at the eBay default (15 min): a stock change is not pushed within 5 s",
          len(cad_pushes()) == n0, str(cad_pushes()[n0:]))
    st = c.sql(f"SELECT out_of_date, target_qty FROM omnichan.listing_status WHERE channel = 'cad' "
               f"   AND sku = {q(CAD_SKU)}")
    check("    while listing_status shows it out of date, at the new allocation",
          st == [["t", str(allocation(CAD_SKU, "cad"))]], str(st))

    # b. channel_alter to 3 s: the waiting change goes at the next tick of the new cadence
    t0 = time.time()
    c.sql("SELECT omnichan.channel_alter('cad', '{\"push_interval\": 3}')")
    got = wait_for("the push under the new push_interval", lambda: cad_pushes()[n0:], 10)
    waited = got[0][0] - t0 if got else None
    say(f"channel_alter -> the waiting change pushed: {waited if waited is None else round(waited, 3)} s")
    check("2b. after channel_alter(push_interval 3 s) the waiting change is pushed within 3 s + 3 s",
          got is not None and waited < 6.0, str(waited))
    check("    with the new allocation", got is not None and got[-1][1] == allocation(CAD_SKU, "cad"),
          f"{got} vs {allocation(CAD_SKU, 'cad')}")

    # c. two changes 0.5 s apart right after a push: one push, one interval later
    p1 = got[-1][0] if got else time.time()
    n1 = len(cad_pushes())
    bump(CAD_SKU, 2)
    t_a = time.time()
    time.sleep(0.5)
    bump(CAD_SKU, 3)
    t_b = time.time()
    final = allocation(CAD_SKU, "cad")
    say(f"changes committed {t_a - p1:.3f} s and {t_b - p1:.3f} s after the previous push; final {final}")
    nxt = wait_for("the next push", lambda: cad_pushes()[n1:], 10)
    time.sleep(max(0.0, (nxt[0][0] if nxt else p1) + 3.6 - time.time()))   # past the tick after it
    after = cad_pushes()[n1:]
    gap = after[0][0] - p1 if after else None
    say(f"pushes after the previous one: {[(round(t - p1, 3), qn) for t, qn in after]}")
    check("2c. the changes were committed within 1.5 s after the previous push", t_b - p1 < 1.5,
          f"{t_b - p1:.3f} s")
    check("2c. two changes 0.5 s apart give ONE next push (none at the tick after it)", len(after) == 1,
          str(after))
    check("2c. no earlier than ~the interval (>= 2 s) after the previous push",
          gap is not None and gap >= 2.0, str(gap))
    check("2c. no later than interval + 3 s (<= 6 s)", gap is not None and gap <= 6.0, str(gap))
    check("2c. carrying the latest quantity", after and after[0][1] == final and cad_level() == final,
          f"{after} vs {final}")

    # back to a long interval: nothing but the pull cadence wakes the worker below
    c.sql("SELECT omnichan.channel_alter('cad', '{\"push_interval\": \"1 hour\"}')")

    # ------------------------------------------------------------ 3. pull cadence
    cur = env.currency
    n0 = len(env.journal(ORDERS))
    t0 = time.time()
    c.sql("BEGIN; SELECT omnichan.channel_alter('shop', '{\"pull_interval\": 3}'); "
          "SELECT omnichan.set_order_cursor('shop', now() - interval '1 hour'); COMMIT;")
    # after the second request, an order appears at the marketplace
    second = wait_for("two order-list requests", lambda: len(env.journal(ORDERS)) >= n0 + 2, 10)
    t_seed = time.time()
    env.seed({"orders": [ebay_order("AUTO-1", "SKU-000001", 1, 9.50, cur,
                                    iso(datetime.now(timezone.utc) - timedelta(seconds=2)))]})
    so = wait_for("the order to become an Odoo sale order", lambda: env.sale_order("AUTO-1"), 10)
    t_so = time.time()
    time.sleep(max(0.0, t0 + 10.5 - time.time()))
    lists = [e["time"] for e in env.journal(ORDERS)[n0:] if e["time"] <= t0 + 10.5]
    gaps = [round(b - a, 3) for a, b in zip(lists, lists[1:])]
    say(f"order-list requests at {[round(t - t0, 3) for t in lists]} s after set_order_cursor (gaps {gaps})")
    check("3. pull_interval 3 s: >= 3 order-list requests within 10.5 s (>= 2 with no call)",
          second is not None and len(lists) >= 3, str(len(lists)))
    check("3. consecutive pulls 2 s to 6 s apart", gaps and all(2.0 <= g <= 6.0 for g in gaps), str(gaps))
    check("3. an order added between pulls becomes an Odoo sale order with no call",
          so is not None and so["origin"] == "shop" and so["state"] == "draft",
          str(env.inbox("AUTO-1")))
    if so:
        say(f"order added to the mock -> Odoo sale order {so['name']}: {t_so - t_seed:.2f} s")


run(main)
