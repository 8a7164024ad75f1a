#!/usr/bin/python3
"""pull_walmart: Walmart purchase orders flow into Odoo sale orders, exactly once.

A throwaway cluster with a sync worker, the Odoo fixture, the Walmart mock
serving seeded orders in Walmart's format (GET /v3/orders filtered by last
modification, nextCursor pagination, epoch-millisecond dates, per-line
statuses and charges, POST .../cancel), one Walmart channel with a 10 %
price-excluded tax and shipping/promotion products.  Checks:

- seeded orders -> Odoo quotations with the exact rows (partner, lines,
  shipping line, amounts = what Walmart charged); "USA" -> US; methodCode
  TwoDay -> "two_day"; a repeat buyer gets the same partner;
- Walmart's rules: the order status is derived from the line statuses
  (Created, Shipped when a line shipped); a WFS order is not imported; an
  order whose lines are all cancelled is never materialized; cancelled lines
  (and cancelled units of a line) are left out; legacy one-unit lines of a
  SKU are summed; a PRODUCT charge is the amount of the line's quantity; an
  order created 10 days ago and modified now is pulled (createdStartDate);
- an unknown SKU holds the order; listing_link + retry_orders releases it;
- 410 more orders over 3 pages (3 GET /v3/orders, nextCursor verbatim);
- re-pull from a day ago and overlapping pulls create no duplicate;
- cancellation by Walmart before shipment (cancel queued for Odoo's bridge)
  and after shipment (attention);
- the merchant cancelling in Odoo -> POST /v3/orders/{po}/cancel with every
  open unit (recorded by the mock); a shipped order's cancellation is
  refused with the reason;
- fetch_order of an order outside the pull window;
- kill -9 of the worker between fetching a page and committing it -> after
  the restart every order exactly once.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, say, wait_for  # noqa: E402

TOKEN = "/v3/token"
ORDERS = "^/v3/orders$"
SECRET = "wm-secret-s3cr3t"


def ms(delta_s=0):
    return int((time.time() + delta_s) * 1000)


def line(n, sku, qty, amount, cur, statuses=None, tax_rate=0.10, ship=None, program=None):
    """A Walmart order line: amount is the ItemPrice of the whole quantity;
    statuses = [(status, units)] (default: all Created)."""
    charges = [{"chargeType": "PRODUCT", "chargeName": "ItemPrice",
                "chargeAmount": {"currency": cur, "amount": amount},
                "tax": {"taxName": "Tax1", "taxAmount": {"currency": cur,
                                                         "amount": round(amount * tax_rate, 2)}}}]
    if ship:
        charges.append({"chargeType": "SHIPPING", "chargeName": "Shipping",
                        "chargeAmount": {"currency": cur, "amount": ship},
                        "tax": {"taxName": "Tax2", "taxAmount": {"currency": cur,
                                                                 "amount": round(ship * tax_rate, 2)}}})
    st = [{"status": s, "statusQuantity": {"unitOfMeasurement": "EACH", "amount": str(q)}}
          for s, q in (statuses or [("Created", qty)])]
    li = {"lineNumber": str(n), "item": {"productName": f"Item {sku}", "sku": sku},
          "charges": {"charge": charges},
          "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": str(qty)},
          "statusDate": ms(-60), "orderLineStatuses": {"orderLineStatus": st},
          "fulfillment": {"fulfillmentOption": "S2H", "shipMethod": "VALUE"}}
    if program:
        li["fulfillment"]["shippingProgramType"] = program
    return li


def order(po, lines, name="Alice Martin", email="a1b2@relay.walmart.com", method="Value",
          country="USA", created=None, modified=None, node=None):
    o = {"purchaseOrderId": po, "customerOrderId": "C" + po, "customerEmailId": email,
         "orderType": "REGULAR", "orderDate": created or ms(-3600),
         "shippingInfo": {"phone": "3155598681", "estimatedDeliveryDate": ms(86400 * 3),
                          "estimatedShipDate": ms(86400), "methodCode": method,
                          "postalAddress": {"name": name, "address1": "3258 Warners Rd",
                                            "address2": "Garage", "city": "Warners", "state": "NY",
                                            "postalCode": "13164", "country": country,
                                            "addressType": "RESIDENTIAL"}},
         "orderLines": {"orderLine": lines},
         "_modified": modified or ms(-1)}
    if node:
        o["shipNode"] = {"type": node, "name": "node", "id": "1"}
    return o


def main():
    seed = {"credentials": {"client_id": "wm-client", "client_secret": SECRET}}
    env = PullEnv("pull_walmart", "walmart", settings={"token_endpoint": "{base}" + TOKEN},
                  credentials={"client_id": "wm-client", "client_secret": SECRET},
                  seed=seed, link=lambda sku: {}, tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 20)

    # 1. orders -> quotations, field by field, and Walmart's own rules
    env.seed({"orders": [
        order("W-1", [line(1, "SKU-000001", 2, 39.98, cur, ship=5.00),
                      line(2, "SKU-000002", 1, 5.50, cur)], method="TwoDay"),
        order("W-2", [line(1, "SKU-000003", 1, 12.00, cur)]),                      # repeat buyer
        order("W-3", [line(1, "SKU-000011", 1, 7.00, cur)], name="Bob Stone",
              email="bob@relay.walmart.com"),                                      # unknown SKU
        order("W-4", [line(1, "SKU-000001", 1, 9.00, cur)], node="WFSFulfilled"),  # WFS: skipped
        order("W-5", [line(1, "SKU-000001", 1, 9.00, cur, [("Cancelled", 1)]),
                      line(2, "SKU-000002", 1, 9.00, cur, [("Cancelled", 1)])]),  # all cancelled
        order("W-6", [line(1, "SKU-000003", 1, 4.00, cur), line(2, "SKU-000003", 1, 4.00, cur),
                      line(3, "SKU-000003", 1, 4.00, cur)],
              name="Carl Legacy", email="carl@relay.walmart.com", method="NextDay"),  # MLSQ
        order("W-7", [line(1, "SKU-000004", 3, 30.00, cur, [("Created", 2), ("Cancelled", 1)]),
                      line(2, "SKU-000005", 1, 8.00, cur, [("Cancelled", 1)])],
              name="Dora Partial", email="dora@relay.walmart.com"),               # partly cancelled
        order("W-8", [line(1, "SKU-000006", 1, 6.00, cur)], name="Old Timer",
              email="old@relay.walmart.com", created=ms(-10 * 86400)),            # created 10 days ago
        order("W-9", [line(1, "SKU-000007", 1, 3.00, cur, [("Shipped", 1)]),
                      line(2, "SKU-000008", 1, 2.00, cur, [("Acknowledged", 1)])],
              name="Eve Ship", email="eve@relay.walmart.com"),                    # partly shipped
    ]})
    env.pull_now()
    check("the seller-fulfilled orders are in the inbox (not the WFS one)",
          env.inbox_count() == 8 and env.inbox("W-4") is None, str(env.inbox_count()))
    get = env.journal(ORDERS)
    check("the pull asked by lastModified window, createdStartDate and limit=200, with the WM_ headers",
          get and all(k in get[-1]["query"] for k in ("lastModifiedStartDate", "lastModifiedEndDate",
                                                        "createdStartDate"))
          and get[-1]["query"]["limit"] == ["200"] and get[-1]["headers"].get("WM_SVC.NAME")
          and get[-1]["headers"].get("WM_QOS.CORRELATION_ID") and get[-1]["headers"].get("WM_SEC.ACCESS_TOKEN"),
          str(get[-1]["query"] if get else None))
    so = env.sale_order("W-1")
    check("W-1 is an Odoo quotation", so is not None and so["state"] == "draft", str(so))
    if so:
        check("W-1 amounts are Odoo's: 39.98 + 5.50 + 5.00 untaxed, 10 % tax per line",
              (so["amount_untaxed"], so["amount_tax"], so["amount_total"]) == ("50.48", "5.05", "55.53"), str(so))
        check("W-1 ships from the channel's warehouse, company currency, origin = channel",
              int(so["warehouse_id"]) == env.warehouse and so["origin"] == "shop"
              and int(so["company_id"]) == env.company and so["client_order_ref"] == "W-1", str(so))
        lines = env.sale_lines("W-1")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]),
                float(l["price_subtotal"]), float(l["price_tax"]), float(l["price_total"])) for l in lines]
        want = [(env.products["SKU-000001"], 2, 19.99, 39.98, 4.00, 43.98),
                (env.products["SKU-000002"], 1, 5.50, 5.50, 0.55, 6.05),
                (env.ship_product, 1, 5.00, 5.00, 0.50, 5.50)]
        check("W-1 lines: ItemPrice 39.98 for 2 units -> 2 x 19.99, 1 x 5.50, the shipping line",
              got == want, str(got))
        p = env.partner(so["partner_id"])
        check("the customer is the buyer: name, relay e-mail, country USA -> US",
              p and p["name"] == "Alice Martin" and p["email"] == "a1b2@relay.walmart.com"
              and p["country"] == "US" and p["city"] == "Warners", str(p))
        ib = env.inbox("W-1")
        check("W-1: status Created, two_day SLA, raw kept verbatim, totals as charged",
              ib["marketplace_status"] == "Created" and ib["sla_flags"] == ["two_day"]
              and ib["raw"]["purchaseOrderId"] == "W-1" and "_modified" not in ib["raw"]
              and float(ib["order_total"]) == 55.53 and float(ib["shipping_total"]) == 5.00
              and float(ib["tax_total"]) == 5.05 and float(ib["odoo_amount_total"]) == 55.53,
              str({k: ib[k] for k in ("marketplace_status", "sla_flags", "order_total", "tax_total")}))
        check("the order time is Walmart's orderDate (epoch ms)", ib["ordered_at"] is not None)
    so2 = env.sale_order("W-2")
    check("a repeat buyer gets the same partner", so and so2 and so2["partner_id"] == so["partner_id"],
          f"{so and so['partner_id']} vs {so2 and so2['partner_id']}")
    i3 = env.inbox("W-3")
    check("an unknown SKU holds the order with a clear error",
          i3 and i3["state"] == "held" and "SKU-000011" in (i3["last_error"] or ""), str(i3 and i3["last_error"]))
    i5 = env.inbox("W-5")
    check("an order whose lines are all cancelled: status Cancelled, never materialized",
          i5 and i5["state"] == "cancelled" and i5["marketplace_status"] == "Cancelled"
          and env.sale_order("W-5") is None, str(i5 and (i5["state"], i5["marketplace_status"])))
    l6 = env.sale_lines("W-6")
    check("three one-unit lines of a SKU -> one line of 3 x 4.00; NextDay -> next_day",
          [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"])) for l in l6]
          == [(env.products["SKU-000003"], 3, 4.00)] and env.inbox("W-6")["sla_flags"] == ["next_day"],
          str(l6))
    l7 = env.sale_lines("W-7")
    check("cancelled units and lines are left out: 2 of 3 units at 10.00, no SKU-000005 line",
          [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]), float(l["price_subtotal"]))
           for l in l7] == [(env.products["SKU-000004"], 2, 10.00, 20.00)]
          and env.inbox("W-7")["marketplace_status"] == "Created", str(l7))
    check("an order created 10 days ago and modified now is pulled (createdStartDate sent)",
          env.sale_order("W-8") is not None, str(env.inbox("W-8") and env.inbox("W-8")["state"]))
    i9 = env.inbox("W-9")
    check("a line shipped -> the order's status is Shipped", i9 and i9["marketplace_status"] == "Shipped",
          str(i9 and i9["marketplace_status"]))

    # 2. the unknown SKU: listing_link + retry_orders
    env.link("SKU-000011", {})
    c.sql("SELECT omnichan.retry_orders('shop')")
    wait_for("W-3 to be materialized once its SKU is linked", lambda: env.sale_order("W-3") is not None, 15)
    check("linking the SKU and retry_orders materialized the held order", env.sale_order("W-3") is not None)

    # 3. pagination: 410 orders, 3 pages of at most 200, nextCursor verbatim
    n0 = len(env.journal(ORDERS))
    bulk = [order(f"P-{i:04d}", [line(1, f"SKU-{(i % 10) + 1:06d}", 1 + i % 3, round((1 + i % 3) * 4.25, 2), cur)],
                  name=f"Bulk Buyer {i % 50}", email=f"bulk-{i % 50}@relay.walmart.com") for i in range(410)]
    env.seed({"orders": bulk})
    t0 = time.monotonic()
    env.pull_now(timeout=180)
    pages = env.journal(ORDERS)[n0:]
    check("410 orders arrive in 3 GET /v3/orders pages (limit 200)", len(pages) == 3, str(len(pages)))
    check("the next pages are the nextCursor query, verbatim",
          len(pages) == 3 and pages[1]["query"].get("poIndex") == ["200"]
          and pages[2]["query"].get("poIndex") == ["400"] and pages[2]["query"].get("hasMoreElements") == ["true"],
          str([p["query"].get("poIndex") for p in pages]))
    n_p = int(c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE 'P-%'"))
    check("all 410 became Odoo quotations", n_p == 410, str(n_p))
    say(f"410 orders pulled and materialized in {time.monotonic() - t0:.1f} s")
    check("50 repeat buyers -> 50 partners", int(c.val(
        "SELECT count(DISTINCT partner_id) FROM sale_order WHERE client_order_ref LIKE 'P-%'")) == 50)

    # 4. re-pull and overlapping pulls: no duplicate
    total_so = env.sale_order_count()
    events = int(c.val("SELECT count(*) FROM omnichan.order_event"))
    env.set_cursor("now() - interval '1 day'")
    env.pull_now(timeout=90)
    env.pull_now(timeout=90)
    check("re-pulling a day and an overlapping pull create no duplicate sale order",
          env.sale_order_count() == total_so, f"{env.sale_order_count()} vs {total_so}")
    check("and record nothing new for unchanged orders",
          int(c.val("SELECT count(*) FROM omnichan.order_event")) == events,
          f"{c.val('SELECT count(*) FROM omnichan.order_event')} vs {events}")

    # 5. cancellation by Walmart before shipment, and after shipment
    env.seed({"orders": [order("W-2", [line(1, "SKU-000003", 1, 12.00, cur, [("Cancelled", 1)])],
                               modified=ms(-2))]})
    c.sql("UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = 'W-6'")
    env.seed({"orders": [order("W-6", [line(n, "SKU-000003", 1, 4.00, cur, [("Cancelled", 1)]) for n in (1, 2, 3)],
                               name="Carl Legacy", email="carl@relay.walmart.com", method="NextDay",
                               modified=ms(-2))]})
    env.pull_now()
    i2 = env.inbox("W-2")
    check("cancelled by Walmart before shipment: cancelled, and Odoo's cancel queued for the bridge",
          i2["state"] == "cancelled" and c.val(
              "SELECT count(*) FROM omnichan.odoo_action a JOIN sale_order so ON so.id = a.sale_order_id "
              " WHERE so.client_order_ref = 'W-2' AND a.action = 'cancel' AND a.done_at IS NULL") == "1",
          str(i2["state"]))
    i6 = env.inbox("W-6")
    check("cancelled by Walmart after shipment: flagged for attention",
          i6["state"] == "attention" and "after shipment" in (i6["last_error"] or ""), str(i6["state"]))

    # 6. the merchant cancels in Odoo -> POST /v3/orders/W-1/cancel with every open unit
    env.cancel_in_odoo("W-1")
    ib = env.wait_cancel_reported("W-1")
    cancels = env.state().get("cancellations", [])
    check("the merchant's cancellation was reported to Walmart once, every open unit of every line",
          ib and ib["cancel_reported_at"] and ib["state"] == "cancelled"
          and cancels == [{"purchaseOrderId": "W-1", "lines": [
              {"lineNumber": "1", "quantity": 2, "reason": "SELLER_CANCEL_OUT_OF_STOCK"},
              {"lineNumber": "2", "quantity": 1, "reason": "SELLER_CANCEL_OUT_OF_STOCK"}]}],
          f"{ib and ib['cancel_report_error']} {cancels}")
    post = env.journal("^/v3/orders/W-1/cancel$")
    check("with the access token and the WM_ headers",
          post and post[-1]["headers"].get("WM_SEC.ACCESS_TOKEN") and post[-1]["headers"].get("WM_SVC.NAME")
          and post[-1]["headers"].get("WM_QOS.CORRELATION_ID"), str(post[-1]["headers"] if post else None))
    # a shipped order cannot be cancelled: refused with the reason, nothing sent
    env.seed({"orders": [order("W-8", [line(1, "SKU-000006", 1, 6.00, cur, [("Shipped", 1)])],
                               name="Old Timer", email="old@relay.walmart.com", created=ms(-10 * 86400),
                               modified=ms(-2))]})
    env.pull_now()
    env.cancel_in_odoo("W-8")
    ib8 = env.wait_cancel_reported("W-8")
    check("the merchant cancelling a shipped order: refused with the reason, no request",
          ib8 and ib8["cancel_reported_at"] is None and "shipped" in (ib8["cancel_report_error"] or "")
          and not env.journal("^/v3/orders/W-8/cancel$"), str(ib8 and ib8["cancel_report_error"]))

    # 7. fetch_order: an order outside every pull window
    env.seed({"orders": [order("OLD-1", [line(1, "SKU-000005", 1, 8.00, cur)], name="Fetch Me",
                               email="fetch@relay.walmart.com", created=ms(-30 * 86400),
                               modified=ms(-30 * 86400))]})
    env.fetch("OLD-1")
    check("fetch_order brings an order the pulls did not cover (GET /v3/orders/OLD-1)",
          env.sale_order("OLD-1") is not None and len(env.journal("^/v3/orders/OLD-1$")) >= 1)

    # 8. kill -9 between fetching a page and committing it
    env.seed({"orders": [order(f"K-{i}", [line(1, "SKU-000006", 1, 2.00, cur)], name=f"K {i}",
                               email=f"k{i}@relay.walmart.com") for i in range(3)]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed before committing the page", killed)
    env.pull_now(timeout=60)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(f"K-{i}") for i in range(3)), 30)
    check("after the restart every order of the page exists exactly once",
          all(env.sale_order_count(f"K-{i}") == 1 for i in range(3))
          and int(c.val("SELECT count(*) FROM omnichan.order_inbox WHERE external_id LIKE 'K-%'")) == 3)

    log = c.log_text()
    check("no secret in the server log", SECRET not in log)
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
