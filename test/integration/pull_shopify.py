#!/usr/bin/python3
"""pull_shopify: Shopify orders flow into Odoo sale orders, exactly once.

A throwaway cluster with a sync worker, the Odoo fixture, the Shopify mock
serving seeded orders through the GraphQL Admin API (orders connection
sorted by UPDATED_AT, filtered with updated_at search terms, cursor
pagination, order(id:) with its lineItems connection, orderCancel, query
cost limit), one Shopify channel with a 10 % price-excluded tax and
shipping/promotion products.  Checks:

- seeded orders -> Odoo quotations with the exact rows (partner, lines,
  shipping line, promotion line, amounts as Odoo computes them = what
  Shopify charged); a PENDING (unpaid) order and a test order are not
  imported; one cancelled before import is never materialized; a repeat
  customer gets the same partner; a guest checkout (no customer) gets a
  partner by e-mail;
- an order with more line items than a page carries is completed with
  order(id:) { lineItems(after:) } requests and imported whole;
- an unknown SKU holds the order, linking the SKU releases it;
- 25 more orders arrive over 3 pages (3 orders requests), all imported;
- re-pull from a day ago and overlapping pulls create no duplicate;
- cancellation by Shopify before fulfilment (cancel queued for Odoo's
  bridge) and after fulfilment (attention);
- the merchant cancelling in Odoo -> orderCancel at Shopify (refund to the
  original payment method, restock), once;
- fetch_order of an order outside the pull window;
- a THROTTLED answer (HTTP 200, cost-based) is retried;
- kill -9 of the worker between fetching a page and committing it -> after
  the restart every order exactly once.
"""

import json
import os
import re
import sys
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, mockctl, say, wait_for  # noqa: E402

TOKEN = "shpat_pull_s3cr3t"
GRAPHQL = "/admin/api/2025-07/graphql.json"


def iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def now_iso(delta_s=0):
    return iso(datetime.now(timezone.utc) + timedelta(seconds=delta_s))


def money(v, cur):
    bag = {"amount": f"{v:.2f}", "currencyCode": cur}
    return {"shopMoney": dict(bag), "presentmentMoney": dict(bag)}


def order(oid, lines, cur, customer=7, name="Alice Martin", email=None, financial="PAID",
          fulfillment="UNFULFILLED", ship=0.0, tax_rate=0.10, cancelled=False, country="US",
          updated=None, test=False, discount=0.0, ship_title="Standard"):
    """A Shopify GraphQL Order as the mock stores it; lines = [(sku, qty, unit)];
    discount: an order discount allocated to the first line."""
    items = []
    subtotal = tax_total = 0.0
    for n, (sku, qty, unit) in enumerate(lines, 1):
        cost = round(qty * unit, 2)
        disc = discount if n == 1 else 0.0
        tax = round((cost - disc) * tax_rate, 2)
        subtotal += cost
        tax_total += tax
        items.append({"id": f"gid://shopify/LineItem/{oid}{n:02d}", "sku": sku, "name": f"Item {sku}",
                      "quantity": qty, "originalUnitPriceSet": money(unit, cur),
                      "discountAllocations": ([{"allocatedAmountSet": money(disc, cur)}] if disc else []),
                      "taxLines": [{"priceSet": money(tax, cur), "rate": tax_rate, "title": "Tax"}]})
    ship_tax = round(ship * tax_rate, 2)
    total = round(subtotal - discount + ship + tax_total + ship_tax, 2)
    first, last = name.split(" ", 1)
    addr = {"name": name, "firstName": first, "lastName": last, "address1": "1 Main Street",
            "address2": None, "city": "Springfield", "province": "Illinois", "provinceCode": "IL",
            "zip": "62701", "countryCodeV2": country, "phone": "+15550100"}
    return {
        "id": f"gid://shopify/Order/{oid}", "legacyResourceId": str(oid), "name": f"#{oid}",
        "email": email or f"{name.split()[0].lower()}@example.com",
        "createdAt": now_iso(-3600), "updatedAt": updated or now_iso(-1),
        "cancelledAt": now_iso(-1) if cancelled else None, "cancelReason": "CUSTOMER" if cancelled else None,
        "test": test, "displayFinancialStatus": financial, "displayFulfillmentStatus": fulfillment,
        "currencyCode": cur,
        "subtotalPriceSet": money(subtotal - discount, cur),
        "totalShippingPriceSet": money(ship, cur), "totalDiscountsSet": money(discount, cur),
        "totalTaxSet": money(tax_total + ship_tax, cur), "totalPriceSet": money(total, cur),
        "customer": ({"id": f"gid://shopify/Customer/{customer}", "email": email or f"{name.split()[0].lower()}@example.com",
                      "firstName": first, "lastName": last, "displayName": name, "phone": None}
                     if customer else None),
        "shippingAddress": addr, "billingAddress": dict(addr),
        "shippingLines": [{"title": ship_title, "code": ship_title, "originalPriceSet": money(ship, cur)}],
        "lineItems": items,
    }


def orders_requests(env):
    return [e for e in env.journal(GRAPHQL) if "orders(first" in (e.get("body") or "")]


def lines_requests(env):
    return [e for e in env.journal(GRAPHQL) if "OmnichanOrderLines" in (e.get("body") or "")]


def main():
    env = PullEnv("pull_shopify", "shopify",
                  settings={"shop_domain": "example.myshopify.com",
                            "location_id": "gid://shopify/Location/1", "api_version": "2025-07"},
                  credentials={"access_token": TOKEN},
                  seed={"access_token": TOKEN},
                  link=lambda sku: {"inventory_item_id": f"gid://shopify/InventoryItem/{sku[-6:]}"},
                  tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 20)

    # 1. orders -> quotations, field by field
    env.seed({"orders": [
        order(1001, [("SKU-000001", 2, 19.99), ("SKU-000002", 1, 5.50)], cur, ship=5.00),
        order(1002, [("SKU-000003", 1, 12.00)], cur),                                  # repeat customer
        order(1003, [("SKU-000011", 1, 7.00)], cur, customer=8, name="Bob Stone"),     # unknown SKU
        order(1004, [("SKU-000001", 1, 9.00)], cur, financial="PENDING"),             # unpaid: skipped
        order(1005, [("SKU-000001", 1, 9.00)], cur, cancelled=True, financial="VOIDED"),  # cancelled first
        order(1006, [("SKU-000001", 1, 9.00)], cur, test=True),                       # test order: skipped
        order(1007, [(f"SKU-{k:06d}", 1, 1.00 * k) for k in range(1, 8)], cur, customer=9,
              name="Carol Lines", discount=0.50, ship_title="Express Next Day"),     # 7 lines, 2 pages
        order(1008, [("SKU-000004", 1, 3.00)], cur, customer=None, name="Dan Guest",
              email="dan@example.com", financial="AUTHORIZED"),                         # guest, authorized
    ]})
    env.pull_now()
    check("the paid / authorized orders are in the inbox (unpaid and test orders are not)",
          env.inbox_count() == 6 and env.inbox("1004") is None and env.inbox("1006") is None,
          str(env.inbox_count()))
    so = env.sale_order("1001")
    check("1001 is an Odoo quotation", so is not None and so["state"] == "draft", str(so))
    if so:
        check("1001 amounts are Odoo's: 39.98 + 5.50 + 5.00 untaxed, 10 % tax per line",
              (so["amount_untaxed"], so["amount_tax"], so["amount_total"]) == ("50.48", "5.05", "55.53"), str(so))
        lines = env.sale_lines("1001")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]),
                float(l["price_subtotal"]), float(l["price_tax"]), float(l["price_total"])) for l in lines]
        want = [(env.products["SKU-000001"], 2, 19.99, 39.98, 4.00, 43.98),
                (env.products["SKU-000002"], 1, 5.50, 5.50, 0.55, 6.05),
                (env.ship_product, 1, 5.00, 5.00, 0.50, 5.50)]
        check("1001 lines: 2 x SKU-000001, 1 x SKU-000002 and the shipping line, amounts exact",
              got == want, str(got))
        p = env.partner(so["partner_id"])
        check("the customer is Shopify's customer (name, e-mail, country)",
              p and p["name"] == "Alice Martin" and p["email"] == "alice@example.com" and p["country"] == "US", str(p))
        ib = env.inbox("1001")
        check("the inbox keeps Shopify's order verbatim and its total; status = displayFulfillmentStatus",
              ib["raw"]["id"] == "gid://shopify/Order/1001" and ib["raw"]["name"] == "#1001"
              and ib["marketplace_status"] == "UNFULFILLED"
              and float(ib["order_total"]) == 55.53 and float(ib["odoo_amount_total"]) == 55.53, str(ib)[:400])
    so2 = env.sale_order("1002")
    check("a repeat customer gets the same partner", so and so2 and so2["partner_id"] == so["partner_id"],
          f"{so and so['partner_id']} vs {so2 and so2['partner_id']}")
    i3 = env.inbox("1003")
    check("an unknown SKU holds the order with a clear error",
          i3 and i3["state"] == "held" and "SKU-000011" in (i3["last_error"] or ""), str(i3 and i3["last_error"]))
    i5 = env.inbox("1005")
    check("an order cancelled before import is never materialized",
          i5 and i5["state"] == "cancelled" and env.sale_order("1005") is None, str(i5 and i5["state"]))
    so7 = env.sale_order("1007")
    lines7 = env.sale_lines("1007")
    check("an order of 7 line items (5 per orders page) is completed by a lineItems request and imported whole",
          so7 is not None and len(lines7) == 8 and len(lines_requests(env)) == 1
          and len(env.inbox("1007")["raw"]["lineItems"]["nodes"]) == 7,
          f"{so7} {len(lines7)} lines, {len(lines_requests(env))} line requests")
    if so7:
        # 1+2+...+7 = 28.00, promotion -0.50, 10 % tax: 2.80 - 0.05
        check("its promotion line and amounts: 28.00 - 0.50 untaxed, tax 2.75",
              (so7["amount_untaxed"], so7["amount_tax"], so7["amount_total"]) == ("27.50", "2.75", "30.25")
              and [float(l["price_unit"]) for l in lines7][-1] == -0.50, str(so7))
        ib7 = env.inbox("1007")
        check("an express next-day shipping line is an SLA flag", ib7["sla_flags"] == ["next_day"],
              str(ib7["sla_flags"]))
    so8 = env.sale_order("1008")
    check("a guest checkout (no customer) gets a partner from the order's e-mail and address",
          so8 is not None and env.partner(so8["partner_id"])["email"] == "dan@example.com",
          str(so8))

    # 2. linking the SKU releases 1003
    env.link("SKU-000011", {"inventory_item_id": "gid://shopify/InventoryItem/11"})
    wait_for("1003 to be materialized once its SKU is linked", lambda: env.sale_order("1003") is not None, 15)
    check("linking the SKU materialized the held order automatically", env.sale_order("1003") is not None)

    # 3. pagination: 25 orders, 3 pages of 10
    n0 = len(orders_requests(env))
    bulk = [order(5000 + i, [(f"SKU-{(i % 10) + 1:06d}", 1 + i % 3, 4.25)], cur,
                  customer=100 + i % 5, name=f"Bulk Buyer{i % 5}", email=f"bulk{i % 5}@example.com",
                  updated=now_iso(-2)) for i in range(25)]
    env.seed({"orders": bulk})
    env.pull_now(timeout=90)
    reqs = orders_requests(env)[n0:]
    pages = len(reqs)
    # the window (5-minute overlap) also holds the orders of step 1 again
    lo, hi = re.findall(r"'([^']*)'", json.loads(reqs[0]["body"])["variables"]["query"]) if reqs else ("", "")
    in_window = sum(1 for o in env.state()["orders"].values() if lo <= o["updatedAt"] < hi)
    check(f"25 new orders ({in_window} in the window) arrive in {-(-in_window // 10)} orders pages "
          f"(10 per page, endCursor)", pages >= 3 and pages == -(-in_window // 10), f"{pages} pages")
    check("every page after the first continues from the previous endCursor",
          all("after" in json.loads(r["body"])["variables"] for r in reqs[1:])
          and "after" not in json.loads(reqs[0]["body"])["variables"], str(len(reqs)))
    check("all 25 became Odoo quotations",
          int(c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE '50__' AND origin = 'shop'")) == 25,
          c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE '50__'"))
    check("5 repeat customers -> 5 partners", int(c.val(
        "SELECT count(DISTINCT partner_id) FROM sale_order WHERE client_order_ref LIKE '50__'")) == 5)
    reqs = orders_requests(env)
    body = json.loads(reqs[-1]["body"]) if reqs else {}
    check("the pull asks for orders sorted by UPDATED_AT within [since, until)",
          "sortKey: UPDATED_AT" in body.get("query", "")
          and body.get("variables", {}).get("query", "").startswith("updated_at:>='"), str(body.get("variables")))

    # 4. re-pull and overlapping pulls: no duplicate
    total_so = env.sale_order_count()
    events = int(c.val("SELECT count(*) FROM omnichan.order_event"))
    env.set_cursor("now() - interval '1 day'")
    env.pull_now(timeout=60)
    env.pull_now(timeout=60)
    check("re-pulling a day and an overlapping pull create no duplicate sale order",
          env.sale_order_count() == total_so, f"{env.sale_order_count()} vs {total_so}")
    check("and record nothing new for unchanged orders",
          int(c.val("SELECT count(*) FROM omnichan.order_event")) == events,
          f"{c.val('SELECT count(*) FROM omnichan.order_event')} vs {events}")

    # 5. cancellation by Shopify before fulfilment, and after fulfilment
    env.seed({"orders": [order(1002, [("SKU-000003", 1, 12.00)], cur, cancelled=True, financial="REFUNDED",
                               updated=now_iso(-2))]})
    c.sql("UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = '1008' AND origin = 'shop'")
    env.seed({"orders": [order(1008, [("SKU-000004", 1, 3.00)], cur, customer=None, name="Dan Guest",
                               email="dan@example.com", fulfillment="FULFILLED", cancelled=True,
                               financial="REFUNDED", updated=now_iso(-2))]})
    env.pull_now()
    i2 = env.inbox("1002")
    check("cancelled by Shopify before fulfilment: cancelled, and Odoo's cancel queued for the bridge",
          i2["state"] == "cancelled" and c.val(
              "SELECT count(*) FROM omnichan.odoo_action a JOIN sale_order so ON so.id = a.sale_order_id "
              " WHERE so.client_order_ref = '1002' AND so.origin = 'shop' AND a.action = 'cancel' "
              "   AND a.done_at IS NULL") == "1", str(i2["state"]))
    i8 = env.inbox("1008")
    check("cancelled by Shopify after fulfilment: flagged for attention",
          i8["state"] == "attention" and "after shipment" in (i8["last_error"] or ""), str(i8["state"]))

    # 6. the merchant cancels in Odoo -> orderCancel at Shopify, once
    env.cancel_in_odoo("1001")
    ib = env.wait_cancel_reported("1001")
    cancels = env.state().get("cancellations", [])
    check("the merchant's cancellation was reported to Shopify once (orderCancel)",
          ib and ib["cancel_reported_at"] and ib["state"] == "cancelled"
          and [x["orderId"] for x in cancels] == ["gid://shopify/Order/1001"],
          f"{ib and ib['cancel_report_error']} {cancels}")
    check("with a refund to the original payment method and a restock",
          cancels and cancels[0]["refund"] is True and cancels[0]["restock"] is True
          and cancels[0]["reason"] == "OTHER", str(cancels))
    # a fulfilled order: Shopify refuses, the refusal is recorded
    c.sql("UPDATE sale_order SET delivery_status = NULL WHERE client_order_ref = '1007' AND origin = 'shop'")
    env.seed({"orders": [dict(order(1007, [(f"SKU-{k:06d}", 1, 1.00 * k) for k in range(1, 8)], cur, customer=9,
                                    name="Carol Lines", discount=0.50, ship_title="Express Next Day",
                                    fulfillment="FULFILLED", updated=now_iso(-2)))]})
    env.pull_now()
    env.cancel_in_odoo("1007")
    ib7 = env.wait_cancel_reported("1007")
    check("Shopify's refusal (fulfilled order) is recorded as the report error",
          ib7 and ib7["cancel_reported_at"] is None and "fulfilled" in (ib7["cancel_report_error"] or ""),
          str(ib7 and ib7["cancel_report_error"]))

    # 7. fetch_order: an order outside every pull window
    env.seed({"orders": [order(9001, [("SKU-000005", 1, 8.00)], cur, updated=now_iso(-30 * 86400))]})
    env.fetch("9001")
    check("fetch_order brings an order the pulls did not cover", env.sale_order("9001") is not None)

    # 8. a THROTTLED answer (HTTP 200) is retried after the wait the cost says
    env.seed({"orders": [order(9100, [("SKU-000006", 1, 2.00)], cur, customer=200, name="Tess Throttle",
                               updated=now_iso(-2))]})
    mockctl.add_fault(env.port, {"route": GRAPHQL.replace(".", r"\."), "kind": "rate_limit",
                                 "count": 1, "retry_after": 0.3})
    env.pull_now()
    check("a THROTTLED orders answer is retried and the order imported", env.sale_order("9100") is not None,
          str(env.channel_error()))

    # 9. kill -9 between fetching a page and committing it
    env.seed({"orders": [order(9200 + i, [("SKU-000006", 1, 2.00)], cur, customer=300 + i, name=f"Kay K{i}")
                         for i in range(3)]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed before committing the page", killed)
    env.pull_now(timeout=60)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(str(9200 + i)) for i in range(3)), 30)
    check("after the restart every order of the page exists exactly once",
          all(env.sale_order_count(str(9200 + i)) == 1 for i in range(3))
          and int(c.val("SELECT count(*) FROM omnichan.order_inbox WHERE external_id LIKE '920_'")) == 3)

    log = c.log_text()
    check("no secret in the server log", TOKEN not in log)
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
