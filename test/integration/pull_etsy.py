#!/usr/bin/python3
"""pull_etsy: Etsy receipts flow into Odoo sale orders, exactly once.

A throwaway cluster with a sync worker, the Odoo fixture, the Etsy mock
serving seeded ShopReceipts (getShopReceipts filtered by
min/max_last_modified in unix seconds, sort_on=updated, limit <= 100 and
offset; getShopReceipt; Money as {amount, divisor, currency_code}; OAuth
with rotating refresh tokens), one Etsy channel with a 10 % price-excluded
tax and shipping / gift-wrap / promotion products.  Checks:

- seeded receipts -> Odoo quotations with the exact rows (partner, lines,
  shipping, gift-wrap and coupon lines, gift message, amounts as Odoo
  computes them = what Etsy charged); an unpaid receipt is not imported; one
  cancelled before import is never materialized; a repeat buyer gets the
  same partner; money with a divisor of 1000 is exact;
- an unknown SKU holds the receipt, linking the SKU releases it;
- 210 more receipts arrive over 3 pages of 100 (3 getShopReceipts requests,
  all in the same second: the offset within that second carries on), all
  imported;
- re-pull from a day ago and overlapping pulls create no duplicate;
- cancellation by Etsy before shipment (cancel queued for Odoo's bridge)
  and after shipment (fully refunded: attention);
- the merchant cancelling in Odoo: Etsy has no cancel API, the order is
  cancelled with the reason recorded and no request is sent;
- fetch_order of a receipt outside the pull window;
- kill -9 of the worker between fetching a page and committing it -> after
  the restart every receipt exactly once.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, say, wait_for  # noqa: E402

KEYSTRING = "etsy-pull-keystring"
SECRET = "etsy-pull-sh4red-s3cr3t"
REFRESH = "12345678.etsy-pull-r3fr3sh"
SHOP = 5550001
TOKEN_PATH = "/v3/public/oauth/token"
RECEIPTS = r"/receipts$"


def m(v, cur, divisor=100):
    return {"amount": int(round(v * divisor)), "divisor": divisor, "currency_code": cur}


def receipt(rid, lines, cur, buyer=7, name="Alice Martin", status="paid", is_paid=True, is_shipped=False,
            ship=0.0, tax_rate=0.10, country="US", updated=None, discount=0.0, gift=None, wrap=0.0,
            email=None, divisor=100):
    """A ShopReceipt; lines = [(sku, qty, unit)]."""
    tx = []
    total_price = 0.0
    for n, (sku, qty, unit) in enumerate(lines, 1):
        total_price += qty * unit
        tx.append({"transaction_id": rid * 100 + n, "listing_id": 700 + n, "product_id": 800 + n,
                   "title": f"Item {sku}", "sku": sku, "quantity": qty, "price": m(unit, cur, divisor),
                   "shipping_cost": m(0, cur), "shipping_method": None, "shipping_upgrade": None,
                   "is_digital": False, "variations": []})
    total_price = round(total_price, 2)
    subtotal = round(total_price - discount, 2)
    tax = round((subtotal + ship + wrap) * tax_rate, 2)
    now = int(time.time())
    return {
        "receipt_id": rid, "receipt_type": 0, "seller_user_id": 12345678, "buyer_user_id": buyer,
        "buyer_email": email if email is not None else f"{name.split()[0].lower()}@example.com",
        "name": name, "first_line": "1 Main Street", "second_line": None, "city": "Springfield",
        "state": "IL", "zip": "62701", "country_iso": country, "status": status,
        "is_paid": is_paid, "is_shipped": is_shipped,
        "create_timestamp": now - 3600, "update_timestamp": updated or now - 2,
        "is_gift": gift is not None, "gift_message": gift or "",
        "grandtotal": m(subtotal + ship + wrap + tax, cur), "subtotal": m(subtotal, cur),
        "total_price": m(total_price, cur), "total_shipping_cost": m(ship, cur),
        "total_tax_cost": m(tax, cur), "total_vat_cost": m(0, cur), "discount_amt": m(discount, cur),
        "gift_wrap_price": m(wrap, cur), "shipments": [], "refunds": [], "transactions": tx,
    }


def main():
    seed = {"credentials": {"keystring": KEYSTRING, "shared_secret": SECRET, "refresh_token": REFRESH},
            "shop_id": SHOP}
    env = PullEnv("pull_etsy", "etsy",
                  settings={"shop_id": SHOP, "token_endpoint": "{base}" + TOKEN_PATH},
                  credentials={"keystring": KEYSTRING, "shared_secret": SECRET, "refresh_token": REFRESH},
                  seed=seed, link=lambda sku: {"listing_id": 1000 + int(sku[-6:]), "product_id": 2000 + int(sku[-6:])},
                  tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 30)

    # 1. receipts -> quotations, field by field
    env.seed({"orders": [
        receipt(3001, [("SKU-000001", 2, 19.99), ("SKU-000002", 1, 5.50)], cur, ship=5.00),
        receipt(3002, [("SKU-000003", 1, 12.00)], cur),                                # repeat buyer
        receipt(3003, [("SKU-000011", 1, 7.00)], cur, buyer=8, name="Bob Stone"),      # unknown SKU
        receipt(3004, [("SKU-000001", 1, 9.00)], cur, status="open", is_paid=False),   # unpaid: skipped
        receipt(3005, [("SKU-000001", 1, 9.00)], cur, status="canceled"),              # cancelled first
        receipt(3006, [("SKU-000004", 2, 10.00)], cur, buyer=9, name="Carol Gift", discount=3.00,
                gift="Happy birthday!", wrap=2.50, divisor=1000),                      # coupon, gift wrap
    ]})
    env.pull_now()
    check("the paid receipts are in the inbox (the unpaid one is not)",
          env.inbox_count() == 5 and env.inbox("3004") is None, str(env.inbox_count()))
    so = env.sale_order("3001")
    check("3001 is an Odoo quotation", so is not None and so["state"] == "draft", str(so))
    if so:
        check("3001 amounts are Odoo's: 39.98 + 5.50 + 5.00 untaxed, 10 % tax per line",
              (so["amount_untaxed"], so["amount_tax"], so["amount_total"]) == ("50.48", "5.05", "55.53"), str(so))
        lines = env.sale_lines("3001")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"]),
                float(l["price_subtotal"]), float(l["price_tax"]), float(l["price_total"])) for l in lines]
        want = [(env.products["SKU-000001"], 2, 19.99, 39.98, 4.00, 43.98),
                (env.products["SKU-000002"], 1, 5.50, 5.50, 0.55, 6.05),
                (env.ship_product, 1, 5.00, 5.00, 0.50, 5.50)]
        check("3001 lines: 2 x SKU-000001, 1 x SKU-000002 and the shipping line, amounts exact",
              got == want, str(got))
        p = env.partner(so["partner_id"])
        check("the customer is the buyer (name, e-mail, country)",
              p and p["name"] == "Alice Martin" and p["email"] == "alice@example.com" and p["country"] == "US", str(p))
        ib = env.inbox("3001")
        check("the inbox keeps Etsy's receipt verbatim and its grand total; status verbatim",
              ib["raw"]["receipt_id"] == 3001 and ib["raw"]["grandtotal"]["amount"] == 5553
              and ib["marketplace_status"] == "paid"
              and float(ib["order_total"]) == 55.53 and float(ib["odoo_amount_total"]) == 55.53, str(ib)[:400])
    so2 = env.sale_order("3002")
    check("a repeat buyer gets the same partner", so and so2 and so2["partner_id"] == so["partner_id"],
          f"{so and so['partner_id']} vs {so2 and so2['partner_id']}")
    i3 = env.inbox("3003")
    check("an unknown SKU holds the receipt with a clear error",
          i3 and i3["state"] == "held" and "SKU-000011" in (i3["last_error"] or ""), str(i3 and i3["last_error"]))
    i5 = env.inbox("3005")
    check("a receipt cancelled before import is never materialized",
          i5 and i5["state"] == "cancelled" and env.sale_order("3005") is None, str(i5 and i5["state"]))
    so6 = env.sale_order("3006")
    if so6:
        lines6 = env.sale_lines("3006")
        got = [(int(l["product_id"]), float(l["product_uom_qty"]), float(l["price_unit"])) for l in lines6]
        want = [(env.products["SKU-000004"], 2, 10.00), (env.wrap_product, 1, 2.50), (env.promo_product, 1, -3.00)]
        check("3006: the items, a gift-wrap line and the coupon as a promotion line (divisor 1000 exact)",
              got == want, str(got))
        check("3006 amounts: 20.00 + 2.50 - 3.00 untaxed, 10 % tax",
              (so6["amount_untaxed"], so6["amount_tax"], so6["amount_total"]) == ("19.50", "1.95", "21.45"),
              str(so6))
        check("the gift message is the quotation's note",
              "Happy birthday!" in (so6["note"] or ""), str(so6["note"]))
    else:
        check("3006 is an Odoo quotation", False, str(env.inbox("3006")))

    # 2. linking the SKU releases 3003
    env.link("SKU-000011", {"listing_id": 1011, "product_id": 2011})
    wait_for("3003 to be materialized once its SKU is linked", lambda: env.sale_order("3003") is not None, 15)
    check("linking the SKU materialized the held receipt automatically", env.sale_order("3003") is not None)

    # 3. pagination: 210 receipts of the same second, 3 pages of 100
    n0 = len(env.journal(RECEIPTS))
    same = int(time.time()) - 2
    bulk = [receipt(40000 + i, [(f"SKU-{(i % 10) + 1:06d}", 1 + i % 3, 4.25)], cur,
                    buyer=100 + i % 20, name=f"Bulk Buyer{i % 20}",
                    email=f"bulk{i % 20}@example.com", updated=same) for i in range(210)]
    env.seed({"orders": bulk})
    t0 = time.monotonic()
    env.pull_now(timeout=120)
    reqs = env.journal(RECEIPTS)[n0:]
    check("210 receipts arrive in 3 getShopReceipts pages (limit 100)", len(reqs) == 3, str(len(reqs)))
    if reqs:
        qs = [r["query"] for r in reqs]
        # page 1 also holds the receipts of step 1 (the window's 5-minute overlap); the
        # next pages restart at the bulk's second, skipping the receipts of it already read
        offsets = [int(x["offset"][0]) for x in qs]
        check("sorted by update time, ascending, from the window's start; then the offset within the second",
              all(x["sort_on"] == ["updated"] and x["sort_order"] == ["asc"] and x["limit"] == ["100"] for x in qs)
              and offsets[0] == 0 and 0 < offsets[1] <= 100 and offsets[2] == offsets[1] + 100
              and qs[1]["min_last_modified"] == qs[2]["min_last_modified"] == [str(same)], str(qs))
    check("all 210 became Odoo quotations",
          int(c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE '40___' AND origin = 'shop'")) == 210,
          c.val("SELECT count(*) FROM sale_order WHERE client_order_ref LIKE '40___'"))
    say(f"210 receipts pulled and materialized in {time.monotonic() - t0:.1f} s")
    check("20 repeat buyers -> 20 partners", int(c.val(
        "SELECT count(DISTINCT partner_id) FROM sale_order WHERE client_order_ref LIKE '40___'")) == 20)

    # 4. re-pull and overlapping pulls: no duplicate
    total_so = env.sale_order_count()
    events = int(c.val("SELECT count(*) FROM omnichan.order_event"))
    env.set_cursor("now() - interval '1 day'")
    env.pull_now(timeout=90)
    env.pull_now(timeout=60)
    check("re-pulling a day and an overlapping pull create no duplicate sale order",
          env.sale_order_count() == total_so, f"{env.sale_order_count()} vs {total_so}")
    check("and record nothing new for unchanged receipts",
          int(c.val("SELECT count(*) FROM omnichan.order_event")) == events,
          f"{c.val('SELECT count(*) FROM omnichan.order_event')} vs {events}")

    # 5. cancellation by Etsy before shipment, and after shipment (fully refunded)
    env.seed({"orders": [receipt(3002, [("SKU-000003", 1, 12.00)], cur, status="canceled")]})
    c.sql("UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = '3006' AND origin = 'shop'")
    env.seed({"orders": [receipt(3006, [("SKU-000004", 2, 10.00)], cur, buyer=9, name="Carol Gift", discount=3.00,
                                 gift="Happy birthday!", wrap=2.50, divisor=1000, status="fully refunded",
                                 is_shipped=True)]})
    env.pull_now()
    i2 = env.inbox("3002")
    check("cancelled by Etsy before shipment: cancelled, and Odoo's cancel queued for the bridge",
          i2["state"] == "cancelled" and c.val(
              "SELECT count(*) FROM omnichan.odoo_action a JOIN sale_order so ON so.id = a.sale_order_id "
              " WHERE so.client_order_ref = '3002' AND so.origin = 'shop' AND a.action = 'cancel' "
              "   AND a.done_at IS NULL") == "1", str(i2["state"]))
    i6 = env.inbox("3006")
    check("fully refunded by Etsy after shipment: flagged for attention",
          i6["state"] == "attention" and "after shipment" in (i6["last_error"] or ""), str(i6["state"]))

    # 6. the merchant cancels in Odoo: Etsy has no cancel API
    n_all = len(env.journal())
    env.cancel_in_odoo("3001")
    ib = env.wait_cancel_reported("3001")
    check("the merchant's cancellation cannot be reported to Etsy: recorded with the reason, no request",
          ib and ib["state"] == "cancelled" and ib["cancel_reported_at"] is None
          and "cancel it on the marketplace" in (ib["cancel_report_error"] or "")
          and not [e for e in env.journal()[n_all:] if e["method"] != "GET" and "oauth" not in e["path"]],
          str(ib and ib["cancel_report_error"]))

    # 7. fetch_order: a receipt outside every pull window
    env.seed({"orders": [receipt(9001, [("SKU-000005", 1, 8.00)], cur, updated=int(time.time()) - 30 * 86400)]})
    env.fetch("9001")
    check("fetch_order brings a receipt the pulls did not cover", env.sale_order("9001") is not None)
    check("with getShopReceipt", any(e["path"] == f"/v3/application/shops/{SHOP}/receipts/9001"
                                     for e in env.journal("/receipts/9001")))

    # 8. kill -9 between fetching a page and committing it
    env.seed({"orders": [receipt(9200 + i, [("SKU-000006", 1, 2.00)], cur, buyer=300 + i, name=f"Kay K{i}")
                         for i in range(3)]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed before committing the page", killed)
    env.pull_now(timeout=60)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(str(9200 + i)) for i in range(3)), 30)
    check("after the restart every receipt of the page exists exactly once",
          all(env.sale_order_count(str(9200 + i)) == 1 for i in range(3))
          and int(c.val("SELECT count(*) FROM omnichan.order_inbox WHERE external_id LIKE '920_'")) == 3)

    log = c.log_text()
    check("no secret in the server log", SECRET not in log and REFRESH not in log)
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
