#!/usr/bin/python3
"""pull_ebay: eBay orders flow into Odoo sale orders, exactly once.

A throwaway cluster with a sync worker, the Odoo fixture, the eBay mock
serving seeded Fulfillment API orders (filter by lastmodifieddate, limit /
offset pagination, Post-Order cancellations), one eBay channel with a 10 %
price-excluded tax and shipping/promotion products.  Checks:

- seeded orders -> Odoo quotations with the exact rows (partner, addresses,
  lines, shipping line, amounts as Odoo computes them = what eBay charged);
  an unpaid order is not imported; one cancelled before import is never
  materialized; a repeat buyer gets the same partner;
- an unknown SKU holds the order, linking the SKU releases it automatically;
  an order with invalid data is held with the reason, and its corrected
  version (next pull) is materialized;
- 410 more orders arrive over 3 pages (3 getOrders requests), all imported;
- re-pull from a day ago and overlapping pulls create no duplicate; that
  re-pull (like the channel's first pull) is an order backfill whose row in
  omnichan.progress shows, midway, the first page of eBay's total with a
  percent, rate and ETA, and at the end 100 %;
- cancellation by eBay before shipment (cancel queued for Odoo's bridge) and
  after shipment (attention);
- the merchant cancelling in Odoo -> a Post-Order cancellation at eBay;
- fetch_order of an order outside the pull window;
- kill -9 of the worker between fetching a page and committing it -> after
  the restart every order exactly once.
"""

import json
import os
import sys
import time
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, mockctl, q, say, wait_for  # noqa: E402

TOKEN = "/identity/v1/oauth2/token"
ORDERS = "/sell/fulfillment/v1/order"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def now_iso(delta_s=0):
    return iso(datetime.now(timezone.utc) + timedelta(seconds=delta_s))


def money(v, cur):
    return {"value": f"{v:.2f}", "currency": cur}


def order(oid, lines, cur, buyer="buyer-a", name="Alice Martin", payment="PAID", ship=0.0,
          tax_rate=0.10, fulfillment="NOT_STARTED", cancelled=False, country="US",
          modified=None, email=None):
    """An eBay Fulfillment API Order; lines = [(sku, qty, unit)]."""
    items = []
    subtotal = 0.0
    tax_total = 0.0
    for n, (sku, qty, unit) in enumerate(lines, 1):
        cost = round(qty * unit, 2)
        tax = round(cost * tax_rate, 2)
        subtotal += cost
        tax_total += tax
        items.append({"lineItemId": f"{oid}-L{n}", "legacyItemId": f"1100{n}", "sku": sku,
                      "title": f"Item {sku}", "quantity": qty, "lineItemCost": money(cost, cur),
                      "taxes": [{"amount": money(tax, cur), "taxType": "STATE_SALES_TAX"}],
                      "lineItemFulfillmentStatus": fulfillment})
    ship_tax = round(ship * tax_rate, 2)
    total = round(subtotal + ship + tax_total + ship_tax, 2)
    return {
        "orderId": oid, "legacyOrderId": f"L{oid}",
        "creationDate": now_iso(-3600), "lastModifiedDate": modified or now_iso(-1),
        "orderFulfillmentStatus": fulfillment, "orderPaymentStatus": payment,
        "cancelStatus": {"cancelState": "CANCELED" if cancelled else "NONE_REQUESTED", "cancelRequests": []},
        "buyer": {"username": buyer, "buyerRegistrationAddress": {
            "fullName": name, "email": email or f"{buyer}@members.ebay.com",
            "primaryPhone": {"phoneNumber": "+1 555 0100"}}},
        "pricingSummary": {"priceSubtotal": money(subtotal, cur), "deliveryCost": money(ship, cur),
                           "tax": money(tax_total + ship_tax, cur), "total": money(total, cur)},
        "totalMarketplaceFee": money(round(total * 0.13, 2), cur),
        "fulfillmentStartInstructions": [{"shippingStep": {
            "shipTo": {"fullName": name, "contactAddress": {
                "addressLine1": "1 Main Street", "city": "Springfield", "stateOrProvince": "IL",
                "postalCode": "62701", "countryCode": country}, "primaryPhone": {"phoneNumber": "+1 555 0100"}},
            "shippingCarrierCode": "USPS", "shippingServiceCode": "USPSPriority"}}],
        "lineItems": items,
    }


def main():
    seed = {"credentials": {"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
                            "refresh_token": "ebay-refresh-r3fr3sh"}}
    env = PullEnv("pull_ebay", "ebay", settings={"marketplace_id": "EBAY_US", "token_endpoint": "{base}" + TOKEN},
                  credentials={"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
                               "refresh_token": "ebay-refresh-r3fr3sh"},
                  seed=seed, link=lambda sku: {}, tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")

    # the first pull (at channel creation) finds nothing and sets the cursor
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 20)

    # 1. orders -> quotations, field by field
    env.seed({"orders": [
        order("E-1", [("SKU-000001", 2, 19.99), ("SKU-000002", 1, 5.50)], cur, ship=5.00),
        order("E-2", [("SKU-000003", 1, 12.00)], cur),                      # repeat buyer
        order("E-3", [("SKU-000011", 1, 7.00)], cur, buyer="buyer-b", name="Bob Stone"),  # unknown SKU
        order("E-4", [("SKU-000001", 1, 9.00)], cur, payment="PENDING"),     # unpaid: skipped
        order("E-5", [("SKU-000001", 1, 9.00)], cur, cancelled=True),        # cancelled before import
        order("E-6", [("SKU-000004", 1, 3.00)], cur, buyer="buyer-c", country="USA"),  # invalid country
    ]})
    env.pull_now()
    check("the paid orders are in the inbox (the unpaid one is not)",
          env.inbox_count() == 5 and env.inbox("E-4") is None, str(env.inbox_count()))
    so = env.sale_order("E-1")
    check("E-1 is an Odoo quotation named from Odoo's sequence", so is not None and so["state"] == "draft"
          and so["name"].startswith("S"), str(so))
    if so:
        check("E-1 amounts are Odoo's: 39.98 + 5.50 + 5.00 untaxed, 10 % tax per line",
              (so["amount_untaxed"], so["amount_tax"], so["amount_total"]) == ("50.48", "5.05", "55.53"), str(so))
        check("E-1 ships from the channel's warehouse, company currency, origin = channel",
              int(so["warehouse_id"]) == env.warehouse and so["origin"] == "shop"
              and int(so["company_id"]) == env.company, str(so))
        lines = env.sale_lines("E-1")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]),
                float(l["price_subtotal"]), float(l["price_tax"]), float(l["price_total"])) for l in lines]
        want = [(env.products["SKU-000001"], 2, 19.99, 39.98, 4.00, 43.98),
                (env.products["SKU-000002"], 1, 5.50, 5.50, 0.55, 6.05),
                (env.ship_product, 1, 5.00, 5.00, 0.50, 5.50)]
        check("E-1 lines: 2 x SKU-000001, 1 x SKU-000002 and the shipping line, amounts exact",
              got == want, str(got))
        p = env.partner(so["partner_id"])
        check("the customer is the buyer (name, e-mail, country from the ISO code)",
              p and p["name"] == "Alice Martin" and p["email"] == "buyer-a@members.ebay.com" and p["country"] == "US",
              str(p))
        ib = env.inbox("E-1")
        check("the inbox keeps eBay's order verbatim, its fee and its total",
              ib["raw"]["orderId"] == "E-1" and ib["fees"] == {"marketplace_fee": "7.22"}
              and float(ib["order_total"]) == 55.53 and float(ib["odoo_amount_total"]) == 55.53, str(ib)[:400])
    so2 = env.sale_order("E-2")
    check("a repeat buyer gets the same partner", so and so2 and so2["partner_id"] == so["partner_id"],
          f"{so and so['partner_id']} vs {so2 and so2['partner_id']}")
    i3 = env.inbox("E-3")
    check("an unknown SKU holds the order with a clear error",
          i3 and i3["state"] == "held" and "SKU-000011" in (i3["last_error"] or ""), str(i3 and i3["last_error"]))
    i5 = env.inbox("E-5")
    check("an order cancelled before import is never materialized",
          i5 and i5["state"] == "cancelled" and env.sale_order("E-5") is None, str(i5 and i5["state"]))
    i6 = env.inbox("E-6")
    check("an order with invalid data is held with the reason, nothing dropped",
          i6 and i6["state"] == "held" and "country" in (i6["last_error"] or "") and i6["invalid_order"],
          str(i6 and i6["last_error"]))

    # 2. fixes: linking the SKU releases E-3; the corrected E-6 comes with the next pull
    env.link("SKU-000011", {})
    wait_for("E-3 to be materialized once its SKU is linked",
             lambda: env.sale_order("E-3") is not None, 15)
    check("linking the SKU materialized the held order automatically", env.sale_order("E-3") is not None)
    # (modified 2 s ago: a pull's window ends at the current whole second)
    env.seed({"orders": [order("E-6", [("SKU-000004", 1, 3.00)], cur, buyer="buyer-c", country="US",
                               modified=now_iso(-2))]})
    env.pull_now()
    check("the corrected version of the invalid order is materialized", env.sale_order("E-6") is not None,
          str(env.inbox("E-6") and env.inbox("E-6")["last_error"]))

    # 3. pagination: 410 orders, 3 pages of at most 200
    n0 = len(env.journal(ORDERS))
    bulk = [order(f"P-{i:04d}", [(f"SKU-{(i % 10) + 1:06d}", 1 + i % 3, 4.25)], cur,
                  buyer=f"bulk-{i % 50}", name=f"Bulk Buyer {i % 50}") for i in range(410)]
    env.seed({"orders": bulk})
    t0 = time.monotonic()
    env.pull_now(timeout=120)
    pages = len(env.journal(ORDERS)) - n0
    check("410 orders arrive in 3 getOrders pages (limit 200)", pages == 3, str(pages))
    check("all 410 became Odoo quotations", sum(env.sale_order_count(f"P-{i:04d}") for i in (0, 209, 409)) == 3
          and int(c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE 'P-%'")) == 410,
          c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE 'P-%'"))
    say(f"410 orders pulled and materialized in {time.monotonic() - t0:.1f} s; "
        + str(c.sql("SELECT min(received_at), max(received_at), min(materialized_at), max(materialized_at) "
                    "  FROM omnichan.order_inbox WHERE external_id LIKE 'P-%'")))
    say(str(c.sql("SELECT operation, at, duration_ms FROM omnichan.sync_log ORDER BY id DESC LIMIT 5")))
    check("50 repeat buyers -> 50 partners", int(c.val(
        "SELECT count(DISTINCT partner_id) FROM sale_order WHERE client_order_ref LIKE 'P-%'")) == 50)

    # 4. re-pull and overlapping pulls: no duplicate.  The re-pull of a day
    #    is an order backfill: its progress, midway (its 2nd page is held
    #    3 s by the mock) and at the end.
    total_so = env.sale_order_count()
    events = int(c.val("SELECT count(*) FROM omnichan.order_event"))
    in_window = len(env.state().get("orders", {}))      # every order eBay has, all of today
    first_backfill = c.sql("SELECT done = total, percent, eta, finished_at IS NOT NULL FROM omnichan.progress "
                           " WHERE channel = 'shop' AND operation = 'order_backfill' ORDER BY id LIMIT 1")
    check("the channel's first pull (a day back) was an order backfill, finished at 100 %",
          first_backfill == [["t", "100.0", "00:00:00", "t"]], first_backfill)
    mockctl.add_fault(env.port, {"route": f"^{ORDERS}$", "kind": "delay", "ms": 3000, "after": 1, "count": 1})
    env.set_cursor("now() - interval '1 day'")
    mid = wait_for("the backfill's first page", lambda: (lambda r: r if r and r[0][0] != "0" else None)(c.sql(
        "SELECT done, total, percent, per_second > 0, eta IS NOT NULL, finished_at IS NULL "
        "  FROM omnichan.progress WHERE channel = 'shop' AND operation = 'order_backfill' "
        "   AND finished_at IS NULL")), 15)
    check("midway: the backfill's progress has its first page of 200 orders of eBay's total "
          f"({in_window} orders in the window), a percent, a rate and an ETA",
          mid is not None and mid[0] == ["200", str(in_window), str(round(100 * 200 / in_window, 1)), "t", "t", "t"],
          mid)
    wait_for("the backfill to finish", lambda: c.val(
        "SELECT count(*) FROM omnichan.progress WHERE channel = 'shop' AND operation = 'order_backfill' "
        "   AND finished_at IS NULL") == "0" and env.pull_jobs() == 0, 30)
    last = c.sql("SELECT done, total, percent, eta FROM omnichan.progress WHERE channel = 'shop' "
                 "   AND operation = 'order_backfill' ORDER BY id DESC LIMIT 1")
    check("finished: every order of the window read, 100 %, ETA 0",
          last == [[str(in_window), str(in_window), "100.0", "00:00:00"]], last)
    env.pull_now(timeout=60)
    env.pull_now(timeout=60)
    check("the short pulls after it are no backfills", c.val(
        "SELECT count(*) FROM omnichan.progress WHERE channel = 'shop' AND operation = 'order_backfill'") == "2",
          c.sql("SELECT * FROM omnichan.progress WHERE channel = 'shop'"))
    check("re-pulling a day and an overlapping pull create no duplicate sale order",
          env.sale_order_count() == total_so, f"{env.sale_order_count()} vs {total_so}")
    check("and record nothing new for unchanged orders",
          int(c.val("SELECT count(*) FROM omnichan.order_event")) == events,
          f"{c.val('SELECT count(*) FROM omnichan.order_event')} vs {events}")

    # 5. cancellation by eBay before shipment, and after shipment
    env.seed({"orders": [order("E-2", [("SKU-000003", 1, 12.00)], cur, cancelled=True, modified=now_iso(-2))]})
    c.sql("UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = 'E-6'")
    env.seed({"orders": [order("E-6", [("SKU-000004", 1, 3.00)], cur, buyer="buyer-c", fulfillment="FULFILLED",
                               cancelled=True, modified=now_iso(-2))]})
    env.pull_now()
    i2 = env.inbox("E-2")
    check("cancelled by eBay before shipment: cancelled, and Odoo's cancel queued for the bridge",
          i2["state"] == "cancelled" and c.val(
              "SELECT count(*) FROM omnichan.odoo_action a JOIN sale_order so ON so.id = a.sale_order_id "
              " WHERE so.client_order_ref = 'E-2' AND a.action = 'cancel' AND a.done_at IS NULL") == "1",
          str(i2["state"]))
    i6 = env.inbox("E-6")
    check("cancelled by eBay after shipment: flagged for attention",
          i6["state"] == "attention" and "after shipment" in (i6["last_error"] or ""), str(i6["state"]))

    # 6. the merchant cancels in Odoo -> a Post-Order cancellation at eBay
    env.cancel_in_odoo("E-1")
    ib = env.wait_cancel_reported("E-1")
    cancels = env.state().get("cancellations", [])
    check("the merchant's cancellation was reported to eBay once",
          ib and ib["cancel_reported_at"] and ib["state"] == "cancelled"
          and [x["legacyOrderId"] for x in cancels] == ["LE-1"], f"{ib and ib['cancel_report_error']} {cancels}")
    post = env.journal("/post-order/v2/cancellation")
    check("with the OAuth token as IAF and the hyphenated marketplace id",
          post and (post[-1]["headers"].get("Authorization") or "").startswith("IAF ")
          and post[-1]["headers"].get("X-EBAY-C-MARKETPLACE-ID") == "EBAY-US", str(post[-1]["headers"] if post else None))

    # 7. fetch_order: an order outside every pull window
    env.seed({"orders": [order("OLD-1", [("SKU-000005", 1, 8.00)], cur, modified=now_iso(-30 * 86400))]})
    env.fetch("OLD-1")
    check("fetch_order brings an order the pulls did not cover", env.sale_order("OLD-1") is not None)

    # 8. kill -9 between fetching a page and committing it
    env.seed({"orders": [order(f"K-{i}", [("SKU-000006", 1, 2.00)], cur, buyer=f"k-{i}", name=f"K {i}")
                         for i in range(3)]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed before committing the page", killed)
    env.pull_now(timeout=60)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(f"K-{i}") for i in range(3)), 30)
    check("after the restart every order of the page exists exactly once",
          all(env.sale_order_count(f"K-{i}") == 1 for i in range(3))
          and int(c.val("SELECT count(*) FROM omnichan.order_inbox WHERE external_id LIKE 'K-%'")) == 3)

    log = c.log_text()
    check("no secret in the server log", "ebay-secret-s3cr3t" not in log and "ebay-refresh-r3fr3sh" not in log)
    finish()


if __name__ == "__main__":
    main()
