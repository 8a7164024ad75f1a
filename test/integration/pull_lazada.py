#!/usr/bin/python3
"""pull_lazada: Lazada / Daraz orders flow from the IOP mock into Odoo quotations.

A throwaway cluster with a sync worker and the Odoo fixture, the Lazada mock
(GetOrders, GetOrder, GetMultipleOrderItems, InitReverseOrderCancel under
the gateway's /rest, every call's signature recomputed by the mock), one
Lazada channel (country my) with the order settings and 10 linked SKUs.
The orders are seeded in Lazada's own format (one item row per unit, money
as decimal strings, timestamps in +08:00).  The fixture company's currency
is used as the items' currency (a real Malaysian shop's would be MYR).
Checks:

- a pull reads every GetOrders page (updated_at ascending, 50 orders per
  page, 112 orders: 3 pages, and one GetMultipleOrderItems call per page),
  every call signed; orders sharing an updated_at second across a page
  boundary are all read;
- an order's unit rows become lines per SKU (quantity = rows), seller
  voucher as discount, shipping fee and the buyer's total: the exact
  sale_order / sale_order_line rows (amounts included), the gift message,
  the partner (name, street, city, zip, country MY from "Malaysia");
- unpaid orders are not imported; a canceled row of a paid order is left
  out of its lines; a Daraz country name ("Sri Lanka") becomes LK;
- the same buyer_id twice -> one partner;
- re-pull (set_order_cursor back) and a throttled (ApiCallLimit) pull -> no
  duplicate order, inbox row or sale order;
- cancellation by Lazada before shipment -> the order is cancelled (cancel
  action for Odoo); after shipment -> attention;
- an unknown SKU holds the order; listing_link + retry_orders materialize it;
- the merchant cancelling in Odoo -> InitReverseOrderCancel with the order's
  open order_item_ids, recorded by the mock; a shipped order's cancellation
  is refused locally (Lazada cancels nothing after the handover);
- fetch_order of an order outside every window;
- a malformed answer fails the job with the reason and stores nothing of
  the page; the next pull stores it;
- kill -9 of the worker between fetching a page and committing it -> no
  loss, no duplicate.
"""

import datetime
import os
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, check, finish, mockctl, q, say, wait_for  # noqa: E402

APP_KEY = "100777"
SECRET = "lzd-secret-s3cr3t"
TOKEN = "50000lzd_access_t0k3n"
ORDERS = r"/orders/get$"
ITEMS = r"/orders/items/get$"
CANCEL = r"/order/reverse/cancel/create$"
TZ = datetime.timezone(datetime.timedelta(hours=8))
NOW = datetime.datetime.now(TZ).replace(microsecond=0)
CURRENCY = "USD"                # replaced by the fixture company's currency


def ts(minutes_ago):
    """A Lazada timestamp (+08:00) minutes ago."""
    return (NOW - datetime.timedelta(minutes=minutes_ago)).isoformat()


def now_ts():
    return datetime.datetime.now(TZ).replace(microsecond=0).isoformat()


def address(first, country="Malaysia", city="Kuala Lumpur", street="12 Jalan Ampang", zip_="50450"):
    return {"first_name": first, "last_name": "", "phone": "60123456789", "phone2": "",
            "address1": street, "address2": "", "address3": "Wilayah Persekutuan",
            "address4": city, "address5": "", "city": city, "post_code": zip_,
            "country": country, "addressDsitrict": ""}


def item(item_id, order_id, sku, price, status="pending", paid=None, voucher_seller="0.00",
         voucher_platform="0.00", tax="0.00", buyer="B-77", **extra):
    row = {"order_item_id": item_id, "order_id": order_id, "sku": sku, "shop_sku": f"{sku}-SHOP",
           "name": f"Product {sku}", "item_price": price, "paid_price": paid or price,
           "tax_amount": tax, "voucher_seller": voucher_seller, "voucher_platform": voucher_platform,
           "voucher_amount": str(Decimal(voucher_seller) + Decimal(voucher_platform)),
           "currency": CURRENCY, "status": status, "shipping_type": "Dropshipping",
           "shipping_amount": "0.00", "is_fbl": "0", "buyer_id": buyer,
           "created_at": "1413786247000", "updated_at": "1414548487000"}
    row.update(extra)
    return row


def order(order_id, minutes_ago, items, first="Siti Aminah", shipping_fee="0.00", created_ago=None,
          country="Malaysia", **extra):
    o = {"order_id": str(order_id), "order_number": str(order_id),
         "created_at": ts(created_ago if created_ago is not None else minutes_ago + 5),
         "updated_at": ts(minutes_ago), "price": str(sum(Decimal(i["item_price"]) for i in items)),
         "shipping_fee": shipping_fee, "shipping_fee_original": shipping_fee,
         "voucher": str(sum(Decimal(i["voucher_amount"]) for i in items)),
         "voucher_seller": str(sum(Decimal(i["voucher_seller"]) for i in items)),
         "voucher_platform": str(sum(Decimal(i["voucher_platform"]) for i in items)),
         "payment_method": "COD", "customer_first_name": first, "customer_last_name": "",
         "gift_option": "0", "gift_message": "", "remarks": "", "warehouse_code": "dropshipping",
         "address_shipping": address(first, country), "address_billing": address(first, country),
         "order_items": items}
    o.update(extra)
    return o


def dec(s):
    return Decimal(s) if s is not None else None


def main():
    global CURRENCY
    env = PullEnv("pull_lazada", "lazada", settings={"country": "my"},
                  credentials={"app_key": APP_KEY, "app_secret": SECRET, "access_token": TOKEN},
                  seed={"app": {"app_key": APP_KEY, "app_secret": SECRET},
                        "tokens": {TOKEN: time.time() + 30 * 86400},
                        "skus": {f"SKU-{i:06d}": {"quantity": 0} for i in range(1, 13)}},
                  link=lambda sku: {})
    c = env.c
    CURRENCY = env.currency
    P = env.products

    # -- the orders -----------------------------------------------------------
    orders = [
        # A: 2 units of SKU 1, 1 unit of SKU 2 with a seller voucher; shipping; a gift
        order(1001, 200, [item(10011, 1001, "SKU-000001", "19.99"),
                          item(10012, 1001, "SKU-000001", "19.99"),
                          item(10013, 1001, "SKU-000002", "10.00", paid="9.00", voucher_seller="1.00",
                               fulfillment_sla="NEXT_DAY")],
              shipping_fee="4.50", gift_option="1", gift_message="Happy birthday"),
        # B: unpaid: not imported
        order(1002, 199, [item(10021, 1002, "SKU-000003", "5.00", status="unpaid")], first="Unpaid Buyer"),
        # C: same buyer as A; cancelled by Lazada before shipment later
        order(1003, 198, [item(10031, 1003, "SKU-000003", "7.50")]),
        # D: shipped in Odoo, then cancelled by Lazada
        order(1004, 197, [item(10041, 1004, "SKU-000004", "8.00", buyer="B-88")], first="Ahmad Faiz"),
        # E: a SKU not linked yet (held)
        order(1005, 196, [item(10051, 1005, "SKU-000011", "6.00", buyer="B-89")], first="Lim Wei"),
        # F: cancelled by the merchant in Odoo -> reported to Lazada
        order(1006, 195, [item(10061, 1006, "SKU-000005", "3.00", buyer="B-90"),
                          item(10062, 1006, "SKU-000006", "4.00", buyer="B-90")], first="Nur Aisyah"),
        # H: one unit canceled, one pending
        order(1008, 194, [item(10081, 1008, "SKU-000007", "2.00", status="canceled", buyer="B-91"),
                          item(10082, 1008, "SKU-000007", "2.00", buyer="B-91")], first="Tan Mei"),
        # I: a Daraz country
        order(1009, 193, [item(10091, 1009, "SKU-000008", "1.50", buyer="B-92")], first="Nimal Perera",
              country="Sri Lanka"),
    ]
    # 104 more orders of one buyer, 100 minutes ago and on; orders 40..59 share one second
    bulk = []
    for k in range(104):
        minutes = 150 - k if not 40 <= k < 60 else 110
        oid = 5000 + k
        bulk.append(order(oid, minutes, [item(oid * 10 + 1, oid, "SKU-000009", "1.00", buyer="B-BULK")],
                          first="Bulk Buyer"))
    # G: updated 3 days ago: only fetch_order brings it
    old = order(1007, 3 * 24 * 60, [item(10071, 1007, "SKU-000010", "2.25", buyer="B-93")], first="Old Order")
    env.seed({"orders": orders + bulk + [old]})
    in_window = len(orders) + len(bulk)

    # -- 1. the first full pull -------------------------------------------------
    wait_for("the channel's own first pull to end", lambda: env.pull_jobs() == 0, 20)
    mockctl.clear_journal(env.port)
    last_job = int(c.val("SELECT coalesce(max(id), 0) FROM omnichan.job"))
    env.set_cursor("now() - interval '1 day'")
    done = env.pull_now(timeout=60)
    check("the pull completes", done, env.channel_error())
    pages = env.journal(ORDERS)
    # the pages of this pull's chain (another pull may follow sync_now): only its first has offset 0
    chain = pages[:1]
    for e in pages[1:]:
        if e["query"].get("offset") == ["0"]:
            break
        chain.append(e)
    pages = chain
    items_calls = env.journal(ITEMS)
    check(f"{in_window} orders in the window: 3 GetOrders pages of at most 50",
          len(pages) == 3, str([(e["query"].get("offset"), e["query"].get("update_after")) for e in pages]))
    check("one GetMultipleOrderItems call per page", len(items_calls) == 3, str(len(items_calls)))
    first = pages[0]["query"]
    check("GetOrders asks updated_at ascending, limit 50, ISO 8601 with offset",
          first.get("sort_by") == ["updated_at"] and first.get("sort_direction") == ["ASC"]
          and first.get("limit") == ["50"] and first.get("offset") == ["0"]
          and first["update_after"][0].endswith("+00:00") and first["update_before"][0].endswith("+00:00"),
          str(first))
    check("every call is signed (app_key, ms timestamp, access_token, sha256, upper-case sign)",
          all(all(k in e["query"] for k in ("app_key", "timestamp", "access_token", "sign_method", "sign"))
              and e["query"]["sign"][0].isupper() and len(e["query"]["timestamp"][0]) == 13
              for e in pages + items_calls), str(pages[0]["query"]))
    ids = [len(e["query"]["order_ids"][0].strip("[]").split(",")) for e in items_calls]
    check("the items of at most 50 orders per call, unpaid orders not asked for",
          max(ids) <= 50 and sum(ids) == in_window - 1, str(ids))
    check("every order of the window is in the inbox, the unpaid one excepted",
          env.inbox_count() == in_window - 1 and env.inbox("1002") is None, str(env.inbox_count()))
    check("the bulk orders sharing a second across a page boundary are all there",
          all(env.inbox(str(5000 + k)) for k in range(40, 60)))
    failed = c.val(f"SELECT string_agg(error, '; ') FROM omnichan.job WHERE id > {last_job} AND error IS NOT NULL")
    check("no job of the pull failed", not failed, str(failed))

    # -- 2. order A, field by field ---------------------------------------------
    inbox = env.inbox("1001")
    check("order 1001 materialized", inbox and inbox["state"] == "materialized", str(inbox and inbox["state"]))
    so = env.sale_order("1001")
    check("one sale order for 1001", so is not None and env.sale_order_count("1001") == 1)
    if so:
        check("sale_order amounts: 39.98 + 10.00 + 4.50 shipping - 1.00 seller voucher = 53.48",
              (dec(so["amount_untaxed"]), dec(so["amount_tax"]), dec(so["amount_total"]))
              == (Decimal("53.48"), Decimal("0"), Decimal("53.48")), str(so))
        created = (NOW - datetime.timedelta(minutes=205)).astimezone(datetime.timezone.utc)
        check("date_order = created_at in UTC", so["date_order"] == created.strftime("%Y-%m-%d %H:%M:%S"),
              f"{so['date_order']} vs {created}")
        check("state draft, client_order_ref, origin, warehouse",
              so["state"] == "draft" and so["client_order_ref"] == "1001" and so["origin"] == env.channel
              and int(so["warehouse_id"]) == env.warehouse, str(so))
        check("the gift message is the note", "Happy birthday" in (so["note"] or ""), str(so["note"]))
        lines = {int(l["product_id"]): l for l in env.sale_lines("1001")}
        want = {P["SKU-000001"]: ("2", "19.99", "39.98"), P["SKU-000002"]: ("1", "10.00", "10.00"),
                env.ship_product: ("1", "4.50", "4.50"), env.promo_product: ("1", "-1.00", "-1.00")}
        got = {p: (str(int(dec(l["product_uom_qty"]))), f"{dec(l['price_unit']):.2f}",
                   f"{dec(l['price_subtotal']):.2f}") for p, l in lines.items()}
        check("lines: SKU-000001 x2 @ 19.99, SKU-000002 x1 @ 10.00, shipping 4.50, voucher -1.00",
              got == want, f"{got} vs {want}")
        check("every line draft, no tax", all(l["state"] == "draft" and dec(l["price_tax"]) == 0
                                              for l in lines.values()), str(lines))
        partner = env.partner(so["partner_id"])
        check("the customer: name, street, city, zip, country MY from \"Malaysia\"",
              partner and (partner["name"], partner["street"], partner["city"], partner["zip"], partner["country"])
              == ("Siti Aminah", "12 Jalan Ampang", "Kuala Lumpur", "50450", "MY"), str(partner))
        raw = inbox["raw"] if isinstance(inbox.get("raw"), dict) else None
        check("raw keeps Lazada's order with its item rows",
              raw is not None and raw.get("order_number") == "1001" and len(raw.get("order_items", [])) == 3,
              str(raw)[:300])
    so_c = env.sale_order("1003")
    check("the same buyer_id -> the same partner",
          so and so_c and so_c["partner_id"] == so["partner_id"], f"{so and so['partner_id']} {so_c and so_c['partner_id']}")
    bulk_partners = c.val(f"SELECT count(DISTINCT partner_id) FROM sale_order WHERE origin = {q(env.channel)} "
                          f"AND client_order_ref LIKE '50%'")
    check("104 orders of one buyer -> one partner", bulk_partners == "1", str(bulk_partners))
    lines_h = env.sale_lines("1008")
    check("a canceled unit is left out: order 1008 has 1 x SKU-000007",
          [(int(l["product_id"]), int(dec(l["product_uom_qty"]))) for l in lines_h] == [(P["SKU-000007"], 1)],
          str(lines_h))
    so_i = env.sale_order("1009")
    p_i = so_i and env.partner(so_i["partner_shipping_id"])
    check("\"Sri Lanka\" (Daraz) -> LK", p_i and p_i["country"] == "LK", str(p_i))

    # -- 3. unknown SKU held, then linked and retried ---------------------------
    e = env.inbox("1005")
    check("an order with an unlinked SKU is held with the reason",
          e and e["state"] == "held" and "SKU-000011" in (e["last_error"] or ""), str(e and e["last_error"]))
    env.link("SKU-000011", {})
    n = c.val(f"SELECT omnichan.retry_orders({q(env.channel)})")
    check("listing_link + retry_orders materializes it", env.inbox("1005")["state"] == "materialized"
          and env.sale_order_count("1005") == 1, str(n))

    # -- 4. re-pull and a throttled pull: no duplicates ---------------------------
    count_inbox = env.inbox_count()
    count_so = env.sale_order_count()
    mockctl.add_fault(env.port, {"route": ORDERS, "kind": "rate_limit", "count": 2})
    env.set_cursor("now() - interval '1 day'")
    done = env.pull_now(timeout=60)
    check("a re-pull of the whole day (through 2 ApiCallLimit answers) completes", done, env.channel_error())
    limited = [x for x in env.journal(ORDERS) if x.get("fault")]
    check("the ApiCallLimit answers were retried", len(limited) == 2, str(len(limited)))
    mockctl.clear_faults(env.port)
    check("re-pull: no duplicate inbox row or sale order",
          env.inbox_count() == count_inbox and env.sale_order_count() == count_so,
          f"{env.inbox_count()}/{count_inbox} {env.sale_order_count()}/{count_so}")
    dup = c.val(f"SELECT count(*) FROM (SELECT client_order_ref FROM sale_order WHERE origin = {q(env.channel)} "
                f"GROUP BY 1 HAVING count(*) > 1) d")
    check("no order twice in Odoo", dup == "0", str(dup))

    # -- 4b. a malformed items answer: nothing of the page stored, the next pull gets it
    env.seed({"orders": [order(1010, 0, [item(10101, 1010, "SKU-000002", "3.00", buyer="B-94")],
                               first="Malformed Test", updated_at=now_ts())]})
    mockctl.add_fault(env.port, {"route": ITEMS, "kind": "malformed", "count": 1})
    last_job = int(c.val("SELECT coalesce(max(id), 0) FROM omnichan.job"))
    time.sleep(1.1)
    c.sql(f"SELECT omnichan.sync_now({q(env.channel)})")
    err = wait_for("the malformed answer's job error", lambda: c.val(
        f"SELECT error FROM omnichan.job WHERE id > {last_job} AND error IS NOT NULL LIMIT 1"), 20)
    check("a malformed GetMultipleOrderItems answer fails the job with a reason, storing nothing",
          err and "GetMultipleOrderItems" in err and env.inbox("1010") is None, str(err))
    mockctl.clear_faults(env.port)
    env.pull_now(timeout=30)
    check("the next pull stores the order", env.inbox("1010") is not None and env.sale_order_count("1010") == 1)

    # -- 5. cancellations by Lazada -----------------------------------------------
    env.seed({"orders": [{"order_id": "1003", "order_items": [{"order_item_id": 10031, "status": "canceled",
                                                                "cancel_return_initiator": "cancellation-customer"}]}]})
    c.sql(f"UPDATE sale_order SET delivery_status = 'full' WHERE client_order_ref = '1004' AND origin = {q(env.channel)}")
    env.seed({"orders": [{"order_id": "1004", "order_items": [{"order_item_id": 10041, "status": "canceled"}]}]})
    time.sleep(1.1)
    env.pull_now(timeout=30)
    i3 = env.inbox("1003")
    check("cancelled by Lazada before shipment -> cancelled, cancel queued for Odoo",
          i3 and i3["state"] == "cancelled" and int(c.val(
              f"SELECT count(*) FROM omnichan.odoo_action WHERE action = 'cancel' AND sale_order_id = "
              f"{int(i3['sale_order_id'])}")) == 1, str(i3 and i3["state"]))
    i4 = env.inbox("1004")
    check("cancelled by Lazada after shipment -> attention for a person",
          i4 and i4["state"] == "attention" and "after shipment" in (i4["last_error"] or ""),
          str(i4 and (i4["state"], i4["last_error"])))
    check("Lazada's own cancellations are not reported back", mockctl.state(env.port)["cancellations"] == [])

    # -- 6. the merchant cancels in Odoo ----------------------------------------
    env.cancel_in_odoo("1006")
    r = env.wait_cancel_reported("1006")
    check("the cancellation is reported", r and r["cancel_reported_at"] and not r["cancel_report_error"],
          str(r and r["cancel_report_error"]))
    calls = env.journal(CANCEL)
    recorded = mockctl.state(env.port)["cancellations"]
    check("InitReverseOrderCancel with the order's open items and a reason",
          len(calls) == 1 and recorded and recorded[0]["order_id"] == "1006"
          and sorted(recorded[0]["order_item_id_list"]) == ["10061", "10062"] and recorded[0]["reason_id"],
          str(recorded))
    check("the mock's order is canceled", [o["statuses"] for o in mockctl.state(env.port)["orders"]
                                            if o["order_id"] == "1006"] == [["canceled"]])
    env.seed({"orders": [{"order_id": "1009", "order_items": [{"order_item_id": 10091, "status": "shipped"}]}]})
    time.sleep(1.1)
    env.pull_now(timeout=30)
    env.cancel_in_odoo("1009")
    r = env.wait_cancel_reported("1009")
    check("a shipped order's cancellation is refused before any call (no reverse order after the handover)",
          r and r["cancel_report_error"] and "shipped" in r["cancel_report_error"]
          and len(env.journal(CANCEL)) == 1, str(r and r["cancel_report_error"]))

    # -- 7. fetch_order ------------------------------------------------------------
    check("order 1007 (updated 3 days ago) was not pulled", env.inbox("1007") is None)
    env.fetch("1007")
    i7 = env.inbox("1007")
    check("fetch_order brings it (GetOrder + its items)", i7 is not None and env.sale_order_count("1007") == 1,
          str(i7 and i7["state"]))
    check("fetch_order used GetOrder", len(env.journal(r"/order/get$")) == 1)

    # -- 8. kill -9 between fetching a page and committing it --------------------
    fresh = [order(7000 + k, 0, [item(70000 + k, 7000 + k, "SKU-000003", "2.00", buyer="B-KILL")],
                   first="Kill Test") for k in range(3)]
    for o in fresh:
        o["updated_at"] = now_ts()
    env.seed({"orders": fresh})
    time.sleep(1.1)
    killed = env.kill_during_commit(lambda: c.sql(f"SELECT omnichan.sync_now({q(env.channel)})"))
    check("the worker was killed before committing a page", killed)
    env.pull_now(timeout=60, expect_cursor_move=False)
    wait_for("the killed page to be stored again",
             lambda: all(env.sale_order(str(7000 + k)) for k in range(3)), 30)
    check("after the crash every order is there exactly once (inbox and Odoo)",
          all(env.inbox(str(7000 + k)) and env.sale_order_count(str(7000 + k)) == 1 for k in range(3)),
          str([env.sale_order_count(str(7000 + k)) for k in range(3)]))
    check("no secret in the server log", SECRET not in c.log_text() and TOKEN not in c.log_text())
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
