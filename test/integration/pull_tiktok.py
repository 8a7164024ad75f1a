#!/usr/bin/python3
"""pull_tiktok: TikTok Shop orders flow into Odoo sale orders, exactly once.

A throwaway cluster with a sync worker, the Odoo fixture, the TikTok Shop
mock serving seeded orders in TikTok's format (POST /order/202309/orders/search
filtered by update_time, next_page_token pagination, every request signed
and checked, one line item per unit, money as strings, Cancel Order), one
TikTok channel with a 10 % price-excluded tax and shipping/promotion
products.  Checks:

- seeded orders -> Odoo quotations with the exact rows (partner, lines,
  shipping and promotion lines, amounts = what TikTok charged); status
  verbatim; a repeat buyer gets the same partner;
- TikTok's rules: each unit is its own line item -> summed per SKU into a
  quantity; unit price from sale_price (+ its discounts, which become the
  promotion line); UNPAID, ON_HOLD, TikTok-fulfilled and never-paid
  cancelled orders are not imported; an ON_HOLD order is imported once it
  is AWAITING_SHIPMENT; a paid order cancelled before import is never
  materialized; cancelled units are left out; priority 400 -> next_day;
- the signature covers the path, every sorted query parameter (page_size,
  sort_field, sort_order, page_token) and the body: the mock checks it;
- an unknown SKU holds the order; listing_link + retry_orders releases it;
- 120 more orders over 3 pages of 50 (3 search requests, page_token);
- re-pull from a day ago and overlapping pulls create no duplicate;
- cancellation by TikTok before shipment (cancel queued for Odoo's bridge)
  and after shipment (attention);
- the merchant cancelling in Odoo -> Cancel Order at TikTok with the order's
  line items (recorded by the mock); a shipped order's is refused;
- fetch_order (Get Order Detail) of an order outside the pull window;
- kill -9 of the worker between fetching a page and committing it -> after
  the restart every order exactly once.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, say, wait_for  # noqa: E402

SEARCH = "^/order/202309/orders/search$"
APP_KEY = "tts-app-77"
SECRET = "tts-secret-s3cr3t"
ACCESS = "TTP_pull_access_t0ken"
CIPHER = "ROW_pullshop"


def m(v):
    return f"{v:.2f}"


def order(oid, units, status="AWAITING_SHIPMENT", user="7001", name="Alice Martin", ship=0.0,
          updated=None, created=None, paid=True, fulfillment="FULFILLMENT_BY_SELLER", priority=None,
          cancelled_units=(), tax_rate=0.10, cur="USD"):
    """A TikTok order; units = [(seller_sku, sku_id, count, sale_price, seller_disc, platform_disc)],
    one line item per unit; cancelled_units: indexes of units cancelled."""
    now = int(time.time())
    items = []
    sub = orig = sd_sum = pd_sum = tax = 0.0
    k = 0
    for seller_sku, sku_id, count, sale, sd, pd in units:
        for _ in range(count):
            k += 1
            t = round(sale * tax_rate, 2)
            cancelled = (k - 1) in cancelled_units or status == "CANCELLED"
            items.append({"id": f"{oid}-{k}", "sku_id": sku_id, "seller_sku": seller_sku,
                          "product_id": "17" + sku_id, "product_name": f"Item {seller_sku}",
                          "sku_name": "Default", "original_price": m(sale + sd + pd), "sale_price": m(sale),
                          "seller_discount": m(sd), "platform_discount": m(pd), "currency": cur,
                          "display_status": "CANCELLED" if cancelled else status,
                          "package_status": "TO_FULFILL", "is_gift": False,
                          "item_tax": [{"tax_type": "SALES_TAX", "tax_amount": m(t), "tax_rate": str(tax_rate)}]})
            if (k - 1) not in cancelled_units:
                sub += sale
                orig += sale + sd + pd
                sd_sum += sd
                pd_sum += pd
                tax += t
    ship_tax = round(ship * tax_rate, 2)
    o = {"id": oid, "status": status, "create_time": created or now - 3600,
         "update_time": updated or now - 2, "user_id": user,
         "buyer_email": f"b{user}@scs.tiktokw.us", "fulfillment_type": fulfillment,
         "shipping_type": "TIKTOK", "delivery_option_name": "Standard Shipping",
         "is_on_hold_order": status == "ON_HOLD", "is_cod": False,
         "payment": {"currency": cur, "sub_total": m(sub), "shipping_fee": m(ship),
                     "seller_discount": m(sd_sum), "platform_discount": m(pd_sum),
                     "original_total_product_price": m(orig), "original_shipping_fee": m(ship),
                     "tax": m(tax + ship_tax), "product_tax": m(tax), "shipping_fee_tax": m(ship_tax),
                     "total_amount": m(sub + ship + tax + ship_tax)},
         "line_items": items, "packages": [{"id": "115" + oid}]}
    if paid and status != "UNPAID":
        o["paid_time"] = (created or now - 3600) + 60
    if status not in ("UNPAID", "ON_HOLD"):
        o["recipient_address"] = {
            "name": name, "phone_number": "(+1)213-***-1234", "full_address": "1199 Coleman Ave San Jose, CA 95110",
            "address_line1": "1199 Coleman Ave", "address_line2": "Suite 100", "address_line3": "",
            "address_line4": "", "postal_code": "95110", "region_code": "US",
            "district_info": [{"address_level_name": "Country", "address_name": "United States", "address_level": "L0"},
                              {"address_level_name": "State", "address_name": "California", "address_level": "L1"},
                              {"address_level_name": "County", "address_name": "Santa Clara", "address_level": "L2"},
                              {"address_level_name": "City", "address_name": "San Jose", "address_level": "L3"}]}
    if status == "CANCELLED":
        o["cancel_time"] = now - 2
        o["cancellation_initiator"] = "BUYER"
        o["cancel_reason"] = "No longer needed"
    if priority is not None:
        o["fulfillment_priority_level"] = priority
    return o


def main():
    seed = {"app": {"app_key": APP_KEY, "app_secret": SECRET}, "shop_cipher": CIPHER,
            "tokens": {ACCESS: 4102444800}}
    env = PullEnv("pull_tiktok", "tiktok", settings={"shop_cipher": CIPHER},
                  credentials={"app_key": APP_KEY, "app_secret": SECRET, "access_token": ACCESS},
                  seed=seed, link=lambda sku: {"sku_id": "9" + sku[-6:], "product_id": "1"}, tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 20)

    # 1. orders -> quotations, field by field, and TikTok's own rules
    env.seed({"orders": [
        order("T-1", [("SKU-000001", "901", 2, 19.99, 0, 0), ("SKU-000002", "902", 1, 5.50, 1.00, 0.50)],
              ship=5.00, cur=cur),
        order("T-2", [("SKU-000003", "903", 1, 12.00, 0, 0)], cur=cur),                 # repeat buyer
        order("T-3", [("SKU-000011", "911", 1, 7.00, 0, 0)], user="7002", name="Bob Stone", cur=cur),
        order("T-4", [("SKU-000001", "901", 1, 9.00, 0, 0)], status="UNPAID", user="7003", cur=cur),
        order("T-5", [("SKU-000001", "901", 1, 9.00, 0, 0)], status="ON_HOLD", user="7004", cur=cur),
        order("T-6", [("SKU-000004", "904", 3, 3.00, 0, 0)], user="7005", name="Carl Units",
              priority=400, cur=cur),                                                   # 3 units -> qty 3
        order("T-7", [("SKU-000005", "905", 2, 8.00, 0, 0), ("SKU-000006", "906", 1, 6.00, 0, 0)],
              user="7006", name="Dora Partial", cancelled_units=(1, 2), cur=cur),     # units cancelled
        order("T-8", [("SKU-000001", "901", 1, 9.00, 0, 0)], user="7007",
              fulfillment="FULFILLMENT_BY_TIKTOK", cur=cur),                           # FBT: skipped
        order("T-9", [("SKU-000001", "901", 1, 9.00, 0, 0)], status="CANCELLED", user="7008",
              name="Eve Cancel", cur=cur),                                             # paid, cancelled
        order("T-10", [("SKU-000001", "901", 1, 9.00, 0, 0)], status="CANCELLED", user="7009",
              paid=False, cur=cur),                                                    # never paid
    ]})
    env.pull_now()
    check("the importable orders are in the inbox (not UNPAID, ON_HOLD, FBT, never-paid cancelled)",
          env.inbox_count() == 6 and all(env.inbox(x) is None for x in ("T-4", "T-5", "T-8", "T-10")),
          str(env.inbox_count()))
    s = env.journal(SEARCH)
    check("Get Order List: signed, page_size 50, sorted by update_time ASC, body update_time_ge/lt",
          s and all(k in s[-1]["query"] for k in ("app_key", "timestamp", "sign", "shop_cipher"))
          and s[-1]["query"].get("page_size") == ["50"] and s[-1]["query"].get("sort_field") == ["update_time"]
          and s[-1]["query"].get("sort_order") == ["ASC"] and s[-1]["headers"].get("x-tts-access-token") == ACCESS
          and '"update_time_ge"' in s[-1]["body"] and '"update_time_lt"' in s[-1]["body"]
          and s[-1]["status"] == 200, str(s[-1] if s else None)[:600])
    so = env.sale_order("T-1")
    check("T-1 is an Odoo quotation", so is not None and so["state"] == "draft", str(so))
    if so:
        check("T-1 amounts are Odoo's = what TikTok charged: 50.48 untaxed, 5.05 tax, 55.53",
              (so["amount_untaxed"], so["amount_tax"], so["amount_total"]) == ("50.48", "5.05", "55.53"), str(so))
        lines = env.sale_lines("T-1")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]),
                float(l["price_subtotal"]), float(l["price_tax"])) for l in lines]
        want = [(env.products["SKU-000001"], 2, 19.99, 39.98, 4.00),
                (env.products["SKU-000002"], 1, 7.00, 7.00, 0.70),
                (env.ship_product, 1, 5.00, 5.00, 0.50),
                (env.promo_product, 1, -1.50, -1.50, -0.15)]
        check("T-1 lines: 2 unit line items -> 2 x 19.99; 5.50 paid + 1.50 discounts -> 7.00 and a "
              "-1.50 promotion line; shipping 5.00", got == want, str(got))
        p = env.partner(so["partner_id"])
        check("the customer: recipient name, buyer e-mail, San Jose, US",
              p and p["name"] == "Alice Martin" and p["email"] == "b7001@scs.tiktokw.us"
              and p["city"] == "San Jose" and p["country"] == "US", str(p))
        ib = env.inbox("T-1")
        check("T-1: status verbatim, raw kept, totals as charged",
              ib["marketplace_status"] == "AWAITING_SHIPMENT" and ib["raw"]["id"] == "T-1"
              and float(ib["order_total"]) == 55.53 and float(ib["discount_total"]) == 1.50
              and float(ib["odoo_amount_total"]) == 55.53 and ib["ship_state"] == "California",
              str({k: ib[k] for k in ("marketplace_status", "order_total", "discount_total", "ship_state")}))
    so2 = env.sale_order("T-2")
    check("a repeat buyer gets the same partner", so and so2 and so2["partner_id"] == so["partner_id"],
          f"{so and so['partner_id']} vs {so2 and so2['partner_id']}")
    i3 = env.inbox("T-3")
    check("an unknown SKU holds the order with a clear error",
          i3 and i3["state"] == "held" and "SKU-000011" in (i3["last_error"] or ""), str(i3 and i3["last_error"]))
    l6 = env.sale_lines("T-6")
    check("three unit line items of a SKU -> one line of 3 x 3.00; priority 400 -> next_day",
          [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"])) for l in l6]
          == [(env.products["SKU-000004"], 3, 3.00)] and env.inbox("T-6")["sla_flags"] == ["next_day"], str(l6))
    l7 = env.sale_lines("T-7")
    check("cancelled units are left out: 1 x SKU-000005, no SKU-000006 line",
          [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"])) for l in l7]
          == [(env.products["SKU-000005"], 1, 8.00)], str(l7))
    i9 = env.inbox("T-9")
    check("a paid order cancelled before import is never materialized",
          i9 and i9["state"] == "cancelled" and env.sale_order("T-9") is None, str(i9 and i9["state"]))

    # the ON_HOLD order is released: AWAITING_SHIPMENT, with its address
    env.seed({"orders": [order("T-5", [("SKU-000001", "901", 1, 9.00, 0, 0)], user="7004", name="Hold Later",
                               cur=cur)]})
    env.pull_now()
    check("an ON_HOLD order is imported once TikTok shows it AWAITING_SHIPMENT",
          env.sale_order("T-5") is not None, str(env.inbox("T-5")))

    # 2. the unknown SKU: listing_link + retry_orders
    env.link("SKU-000011", {"sku_id": "911", "product_id": "1"})
    c.sql("SELECT omnichan.retry_orders('shop')")
    wait_for("T-3 to be materialized once its SKU is linked", lambda: env.sale_order("T-3") is not None, 15)
    check("linking the SKU and retry_orders materialized the held order", env.sale_order("T-3") is not None)

    # 3. pagination: 120 orders, 3 pages of 50, page_token signed
    n0 = len(env.journal(SEARCH))
    env.seed({"orders": [order(f"P-{i:04d}", [(f"SKU-{(i % 10) + 1:06d}", f"9{(i % 10) + 1:02d}", 1 + i % 3, 4.25, 0, 0)],
                               user=f"8{i % 40:03d}", name=f"Bulk Buyer {i % 40}", cur=cur) for i in range(120)]})
    env.pull_now(timeout=120)
    pages = env.journal(SEARCH)[n0:]
    check("120 orders arrive in 3 search pages of 50", len(pages) == 3, str(len(pages)))
    check("the next pages carry page_token (signed with it; all 120 imported below = every page accepted)",
          len(pages) == 3 and "page_token" not in pages[0]["query"] and pages[1]["query"].get("page_token")
          and pages[2]["query"].get("page_token") and pages[1]["query"]["page_token"] != pages[2]["query"]["page_token"]
          and all(p["status"] == 200 for p in pages),
          str([(p["query"].get("page_token"), p["status"]) for p in pages]))
    n_p = int(c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE 'P-%'"))
    check("all 120 became Odoo quotations", n_p == 120, str(n_p))
    check("40 repeat buyers -> 40 partners", int(c.val(
        "SELECT count(DISTINCT partner_id) FROM sale_order WHERE client_order_ref LIKE 'P-%'")) == 40)

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

    # 5. cancellation by TikTok before shipment, and after shipment
    env.seed({"orders": [order("T-2", [("SKU-000003", "903", 1, 12.00, 0, 0)], status="CANCELLED", cur=cur)]})
    c.sql("UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = 'T-6'")
    env.seed({"orders": [order("T-6", [("SKU-000004", "904", 3, 3.00, 0, 0)], status="CANCELLED", user="7005",
                               name="Carl Units", cur=cur)]})
    env.pull_now()
    i2 = env.inbox("T-2")
    check("cancelled by TikTok before shipment: cancelled, and Odoo's cancel queued for the bridge",
          i2["state"] == "cancelled" and c.val(
              "SELECT count(*) FROM omnichan.odoo_action a JOIN sale_order so ON so.id = a.sale_order_id "
              " WHERE so.client_order_ref = 'T-2' AND a.action = 'cancel' AND a.done_at IS NULL") == "1",
          str(i2["state"]))
    i6 = env.inbox("T-6")
    check("cancelled by TikTok after shipment: flagged for attention",
          i6["state"] == "attention" and "after shipment" in (i6["last_error"] or ""), str(i6["state"]))

    # 6. the merchant cancels in Odoo -> Cancel Order at TikTok
    env.cancel_in_odoo("T-1")
    ib = env.wait_cancel_reported("T-1")
    cancels = env.state().get("cancellations", [])
    check("the merchant's cancellation was reported to TikTok once, with the order's line items",
          ib and ib["cancel_reported_at"] and ib["state"] == "cancelled" and len(cancels) == 1
          and cancels[0]["order_id"] == "T-1" and cancels[0]["order_line_item_ids"] == ["T-1-1", "T-1-2", "T-1-3"],
          f"{ib and ib['cancel_report_error']} {cancels}")
    env.seed({"orders": [order("T-7", [("SKU-000005", "905", 2, 8.00, 0, 0), ("SKU-000006", "906", 1, 6.00, 0, 0)],
                               status="IN_TRANSIT", user="7006", name="Dora Partial", cancelled_units=(1, 2),
                               cur=cur)]})
    env.pull_now()
    env.cancel_in_odoo("T-7")
    ib7 = env.wait_cancel_reported("T-7")
    check("the merchant cancelling a shipped order: refused with the reason, no request",
          ib7 and ib7["cancel_reported_at"] is None and "shipped" in (ib7["cancel_report_error"] or "")
          and len(env.state().get("cancellations", [])) == 1, str(ib7 and ib7["cancel_report_error"]))

    # 7. fetch_order: an order outside every pull window (Get Order Detail)
    old = int(time.time()) - 30 * 86400
    env.seed({"orders": [order("OLD-1", [("SKU-000005", "905", 1, 8.00, 0, 0)], user="7100", name="Fetch Me",
                               created=old, updated=old, cur=cur)]})
    env.fetch("OLD-1")
    detail = env.journal("^/order/202309/orders$")
    check("fetch_order brings an order the pulls did not cover",
          env.sale_order("OLD-1") is not None and detail and detail[-1]["query"].get("ids") == ["OLD-1"]
          and detail[-1]["status"] == 200, str(detail[-1]["query"] if detail else None))

    # a pull signed with the wrong secret is refused (106001): no order, the cursor stays
    cursor = env.cursor()
    c.sql(f"""SELECT omnichan.credentials_set('shop', '{{"app_key": "{APP_KEY}", "app_secret": "wrong",
              "access_token": "{ACCESS}"}}'::jsonb)""")
    env.seed({"orders": [order("BAD-SIGN", [("SKU-000006", "906", 1, 2.00, 0, 0)], user="7200", cur=cur)]})
    c.sql("SELECT omnichan.sync_now('shop')")
    refused = ("SELECT count(*) FROM omnichan.job WHERE url LIKE '%/order/202309/orders/search%' "
               "   AND response_status = 401 AND convert_from(response_body, 'UTF8') LIKE '%106001%'")
    wait_for("the badly signed pull to be refused", lambda: int(c.val(refused)) > 0, 20)
    say("channel error: " + str(env.channel_error()) + "; jobs: " + str(c.sql(
        "SELECT state, attempts, response_status, error FROM omnichan.job "
        " WHERE url LIKE '%/order/202309/orders/search%' ORDER BY id DESC LIMIT 2")))
    check("a pull signed with a wrong secret is refused by TikTok (106001), nothing stored, the cursor stays",
          int(c.val(refused)) > 0 and env.inbox("BAD-SIGN") is None and env.cursor() == cursor,
          str(env.channel_error()))
    c.sql(f"""SELECT omnichan.credentials_set('shop', '{{"app_key": "{APP_KEY}", "app_secret": "{SECRET}",
              "access_token": "{ACCESS}"}}'::jsonb)""")
    env.pull_now()
    check("with the right secret again the order comes", env.sale_order("BAD-SIGN") is not None)

    # 8. kill -9 between fetching a page and committing it
    env.seed({"orders": [order(f"K-{i}", [("SKU-000006", "906", 1, 2.00, 0, 0)], user=f"71{i}", name=f"K {i}",
                               cur=cur) for i in range(3)]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed before committing the page", killed)
    env.pull_now(timeout=60)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(f"K-{i}") for i in range(3)), 30)
    check("after the restart every order of the page exists exactly once",
          all(env.sale_order_count(f"K-{i}") == 1 for i in range(3))
          and int(c.val("SELECT count(*) FROM omnichan.order_inbox WHERE external_id LIKE 'K-%'")) == 3)

    log = c.log_text()
    check("no secret in the server log", SECRET not in log and ACCESS not in log)
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
