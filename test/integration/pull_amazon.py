#!/usr/bin/python3
"""pull_amazon: Amazon SP-API orders (Orders API v0 mock) pulled into Odoo.

A throwaway cluster with a sync worker, the Odoo fixture with 12 generated
products (10 linked), the Amazon mock seeded with orders in SP-API's own
format (Money {"CurrencyCode", "Amount"} strings, OrderItems served by
getOrderItems), a channel over two marketplaces (ATVPDKIKX0DER,
A2EUQ1WTGCTBG) with a 10 % price-excluded tax and shipping / gift-wrap /
promotion products.  The mock answers at most 2 orders a getOrders page and
2 items a getOrderItems page.  Checks:

- one pull: 9 matching orders in 5 getOrders pages (NextToken), every
  LastUpdatedBefore at least 2 minutes before the request, MaxResultsPerPage
  100, both marketplace ids; getOrderItems once per imported order (an order
  of 3 items in 2 pages);
- Odoo's rules: FBA (AFN) imported once Shipped or Canceled, MFN when
  Unshipped / PartiallyShipped / Canceled, never Pending; an order of
  another marketplace is not seen;
- exact sale_order / sale_order_line rows of a Prime next-day gift order
  (ItemPrice is the line total, shipping, gift wrap, promotion, taxes),
  a unit price that is ItemPrice / QuantityOrdered with more decimals, and
  SKUs repeated over two item pages aggregated; the SLA flags;
- a repeat buyer (same BuyerEmail) is the same partner;
- re-pulls (set_order_cursor back, overlapping windows) create nothing
  twice;
- cancellation by Amazon before shipment (the Odoo quotation is cancelled
  through the bridge queue) and after shipment (attention);
- an unknown SKU holds the order; listing_link + retry_orders materializes it;
- the merchant cancelling in Odoo: Orders API v0 has no seller cancellation,
  so the order records why it cannot be reported and the mock receives no
  request for it;
- fetch_order of an order outside the window, and of a Pending one (skipped);
- throttling (429 on getOrders and getOrderItems) and a malformed
  getOrderItems answer: nothing stored from it, the next pull completes the
  window, nothing twice;
- kill -9 of the worker between fetching an answer and committing it: no
  loss, no duplicate;
- restricted data: every chain (pull and fetch_order) starts with
  createRestrictedDataToken (LWA token; getOrders, getOrder, getOrderItems
  resources, generic {orderId} paths); getOrders / getOrder / getOrderItems
  carry the RDT, so the orders have the buyer's name, address and gift
  message (the mock leaves them out for the LWA token); an RDT that expires
  within 60 s is renewed before the next request of the chain; a kill -9
  after the RDT was obtained: the re-queued request has no RDT in the new
  worker and fails with the documented error, the cursor stays, the next
  pull imports everything once; no RDT anywhere in omnichan.job (payload,
  headers, bodies, errors), sync_log or the server log.
"""

import calendar
import json
import os
import signal
import sys
import time
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from pull_lib import PullEnv, q  # noqa: E402
from runtime_lib import check, finish, mockctl, say, wait_for  # noqa: E402

CLIENT = "amzn1.application-oa2-client.omnichan"
SECRET = "amzn-secret-s3cr3t"
REFRESH = "Atzr|amzn-refresh-r3fr3sh"
SELLER = "A2EXAMPLE1234"
US, CA, DE = "ATVPDKIKX0DER", "A2EUQ1WTGCTBG", "A1PA6795UKMFR9"
ORDERS = "^/orders/v0/orders$"
ITEMS = "^/orders/v0/orders/[^/]+/orderItems$"
RDT = "^/tokens/2021-03-01/restrictedDataToken$"
RESTRICTED = ("getOrders", "getOrder", "getOrderItems")
BUYER = "k2v9q8w7x6@marketplace.amazon.com"


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def D(x):
    return Decimal(str(x)) if x is not None else None


def access_token(entry):
    """The x-amz-access-token a journaled request carried."""
    return {k.lower(): v for k, v in entry["headers"].items()}.get("x-amz-access-token", "")


def pull_chain(entries):
    """The requests of the first pull chain among journal entries: its
    createRestrictedDataToken and restricted requests, up to the next chain
    (a createRestrictedDataToken followed by a first getOrders page)."""
    chain = []
    for e in entries:
        if e["route"] not in RESTRICTED + ("createRestrictedDataToken",):
            continue
        if (e["route"] == "getOrders" and "NextToken" not in e["query"]
                and any(x["route"] == "getOrders" for x in chain)):
            if chain[-1]["route"] == "createRestrictedDataToken":
                chain.pop()
            break
        chain.append(e)
    return chain


def is_rdt(token):
    return token.startswith("Atz.sprdt|")


def main():
    skus = [f"SKU-{i:06d}" for i in range(1, 13)]
    seed = {"credentials": {"client_id": CLIENT, "client_secret": SECRET, "refresh_token": REFRESH},
            "seller_id": SELLER, "marketplace_ids": [US, CA, DE],
            "listings": {s: {"product_type": "PRODUCT", "quantity": 0} for s in skus},
            "orders_page_size": 2, "items_page_size": 2}
    env = PullEnv("pull_amazon", "amazon",
                  settings={"seller_id": SELLER, "marketplace_ids": [US, CA],
                            "token_endpoint": "{base}/auth/o2/token"},
                  credentials={"lwa_client_id": CLIENT, "lwa_client_secret": SECRET,
                               "refresh_token": REFRESH},
                  seed=seed, link=lambda sku: {"sku": sku, "product_type": "PRODUCT"},
                  tax=(10, False))
    c = env.c
    cur = env.currency
    say(f"company currency {cur}")
    # the first pull (at channel creation) finds nothing and sets the cursor
    wait_for("the first pull to set the cursor", lambda: env.cursor() is not None, 30)
    for op in ("order_pull", "order_items", "order_get", "auth_rdt"):
        c.sql(f"SELECT omnichan.rate_limit_set('shop', {q(op)}, 50, 50)")

    def money(amount):
        return {"CurrencyCode": cur, "Amount": amount}

    now = time.time()
    ship = {"Name": "Jean Dupont", "AddressLine1": "1 Main St", "AddressLine2": "Apt 2",
            "City": "SEATTLE", "StateOrRegion": "WA", "PostalCode": "98121", "CountryCode": "US",
            "Phone": "+1 206-555-0100", "AddressType": "Residential"}
    buyer = {"BuyerEmail": BUYER, "BuyerName": "Jean Dupont"}

    def order(oid, status, channel="MFN", mp=US, age=600, items=(), total="0", **extra):
        o = {"AmazonOrderId": oid, "PurchaseDate": iso(now - age - 60), "LastUpdateDate": iso(now - age),
             "OrderStatus": status, "FulfillmentChannel": channel, "SalesChannel": "Amazon.com",
             "MarketplaceId": mp, "OrderTotal": money(total), "NumberOfItemsShipped": 0,
             "NumberOfItemsUnshipped": 1, "PaymentMethod": "Other", "OrderType": "StandardOrder",
             "ShipServiceLevel": "Std US D2D Dom", "ShipmentServiceLevelCategory": "Standard",
             "IsPrime": False, "IsBusinessOrder": False, "IsPremiumOrder": False,
             "ShippingAddress": dict(ship), "BuyerInfo": dict(buyer), "OrderItems": list(items)}
        o.update(extra)
        return o

    def item(iid, sku, qty, price, tax="0.00", **extra):
        i = {"ASIN": "B0" + iid[-8:].rjust(8, "0"), "OrderItemId": iid, "SellerSKU": sku, "Title": sku,
             "QuantityOrdered": qty, "QuantityShipped": 0, "ItemPrice": money(price), "ItemTax": money(tax),
             "PromotionDiscount": money("0.00"), "IsGift": "false", "ConditionId": "New"}
        i.update(extra)
        return i

    A = "111-0000001-0000001"   # MFN Unshipped, Prime, next day, gift, shipping, promotion
    B = "111-0000002-0000002"   # AFN Shipped, business
    C = "111-0000003-0000003"   # MFN Unshipped, same buyer, second day, 3 for 10.00
    D_ = "111-0000004-0000004"  # AFN Unshipped: not yet
    E = "111-0000005-0000005"   # MFN Pending: never
    F = "111-0000006-0000006"   # MFN Shipped: not imported (Odoo's rule)
    G = "111-0000007-0000007"   # AFN Canceled: imported cancelled
    H = "111-0000008-0000008"   # unknown SKU: held
    I_ = "111-0000009-0000009"  # CA marketplace
    J = "111-0000010-0000010"   # DE marketplace: not the channel's
    K = "111-0000011-0000011"   # 3 items over 2 item pages, a SKU twice
    orders = [
        order(A, "Unshipped", age=900, total="62.12", IsPrime=True, ShipmentServiceLevelCategory="NextDay",
              items=[item("50000000000001", "SKU-000001", 2, "39.98", "4.00",
                          ShippingPrice=money("4.99"), ShippingTax=money("0.50"), IsGift="true",
                          BuyerInfo={"GiftMessageText": "Happy birthday", "GiftWrapPrice": money("2.50"),
                                     "GiftWrapTax": money("0.25"), "GiftWrapLevel": "Classic"}),
                     item("50000000000002", "SKU-000002", 1, "10.00", "1.00",
                          PromotionDiscount=money("1.00"), PromotionDiscountTax=money("0.10"))]),
        order(B, "Shipped", channel="AFN", age=880, total="33.00", IsBusinessOrder=True,
              items=[item("50000000000003", "SKU-000003", 3, "30.00", "3.00")]),
        order(C, "Unshipped", age=860, total="11.00", ShipmentServiceLevelCategory="SecondDay",
              items=[item("50000000000004", "SKU-000004", 3, "10.00", "1.00")]),
        order(D_, "Unshipped", channel="AFN", age=840, total="5.00",
              items=[item("50000000000005", "SKU-000005", 1, "5.00")]),
        order(E, "Pending", age=820, total="5.00",
              items=[item("50000000000006", "SKU-000005", 1, "5.00")]),
        order(F, "Shipped", age=800, total="5.00",
              items=[item("50000000000007", "SKU-000005", 1, "5.00")]),
        order(G, "Canceled", channel="AFN", age=780, total="0.00",
              items=[item("50000000000008", "SKU-000007", 1, "8.00")]),
        order(H, "Unshipped", age=760, total="12.00",
              items=[item("50000000000009", "SKU-000011", 1, "12.00")]),
        order(I_, "Unshipped", mp=CA, age=740, total="9.00",
              items=[item("50000000000010", "SKU-000008", 1, "9.00")]),
        order(J, "Unshipped", mp=DE, age=720, total="9.00",
              items=[item("50000000000011", "SKU-000008", 1, "9.00")]),
        order(K, "PartiallyShipped", age=700, total="24.00",
              BuyerInfo={"BuyerEmail": "other-buyer@marketplace.amazon.com", "BuyerName": "Ana Lima"},
              items=[item("50000000000012", "SKU-000005", 1, "7.00"),
                     item("50000000000013", "SKU-000006", 2, "10.00"),
                     item("50000000000014", "SKU-000005", 1, "7.00")]),
    ]
    env.seed({"orders": orders})

    # -- the first pull -------------------------------------------------------
    t0 = time.time()
    wait_for("no pull job left", lambda: env.pull_jobs() == 0, 30)
    mark = len(env.journal())
    env.set_cursor("now() - interval '1 hour'")
    check("a pull of the last hour completes", env.pull_now(timeout=60), env.channel_error() or "")
    # the first chain: its first page and the NextToken pages that follow it
    pages = []
    for e in env.journal()[mark:]:
        if e["route"] == "getOrders":
            if pages and "NextToken" not in e["query"]:
                break
            pages.append(e)
    items = [e for e in env.journal()[mark:] if e["route"] == "getOrderItems"]
    check("9 matching orders come in 5 getOrders pages of at most 2 (NextToken)",
          len(pages) == 5 and all(p["status"] == 200 for p in pages),
          [(p["status"], p["query"]) for p in pages])
    first = pages[0]["query"] if pages else {}
    check("the first page asks LastUpdatedAfter/Before, MaxResultsPerPage=100, both marketplaces, "
          "the importable statuses",
          first.get("MaxResultsPerPage") == ["100"] and first.get("MarketplaceIds") == [f"{US},{CA}"]
          and "LastUpdatedAfter" in first and "LastUpdatedBefore" in first
          and first.get("OrderStatuses") == ["Unshipped,PartiallyShipped,Shipped,InvoiceUnconfirmed,Canceled"],
          first)
    lag_ok = all(calendar.timegm(time.strptime(p["query"]["LastUpdatedBefore"][0], "%Y-%m-%dT%H:%M:%SZ"))
                 <= p["time"] - 120 for p in pages[:1])
    check("LastUpdatedBefore is at least 2 minutes before the request (the mock refuses it otherwise)",
          lag_ok, first.get("LastUpdatedBefore"))
    check("the next pages carry MarketplaceIds and NextToken only",
          all(set(p["query"]) == {"MarketplaceIds", "NextToken"} for p in pages[1:]),
          [sorted(p["query"]) for p in pages[1:]])
    item_orders = sorted(e["path"].split("/")[4] for e in items)
    check("getOrderItems: once per imported order, twice for the order of 3 items",
          item_orders == sorted([A, B, C, G, H, I_, K, K]), item_orders)
    check("one LWA token for the whole run so far", len(env.journal("^/auth/o2/token$")) == 1,
          len(env.journal("^/auth/o2/token$")))
    chain = pull_chain(env.journal()[mark:])
    first_rdt = chain[0] if chain else {}
    try:
        res = json.loads(first_rdt.get("body") or "{}").get("restrictedResources")
    except ValueError:
        res = None
    check("the chain starts with createRestrictedDataToken, authorized with the LWA token",
          first_rdt.get("route") == "createRestrictedDataToken" and first_rdt.get("status") == 200
          and access_token(first_rdt).startswith("Atza|"), [e["route"] for e in chain[:3]])
    check("the RDT covers getOrders and (generic paths) getOrder with buyerInfo + shippingAddress, "
          "getOrderItems with buyerInfo",
          res == [{"method": "GET", "path": "/orders/v0/orders", "dataElements": ["buyerInfo", "shippingAddress"]},
                  {"method": "GET", "path": "/orders/v0/orders/{orderId}",
                   "dataElements": ["buyerInfo", "shippingAddress"]},
                  {"method": "GET", "path": "/orders/v0/orders/{orderId}/orderItems",
                   "dataElements": ["buyerInfo"]}], res)
    pii = [e for e in chain if e["route"] in RESTRICTED]
    check("every getOrders / getOrderItems request of the pull carried an RDT (one for the whole chain)",
          pii and all(is_rdt(access_token(e)) for e in pii)
          and len({access_token(e) for e in pii}) == 1
          and len([e for e in chain if e["route"] == "createRestrictedDataToken"]) == 1,
          [(e["route"], access_token(e)[:10]) for e in chain])

    states = {oid: (env.inbox(oid) or {}).get("state") for oid in (A, B, C, D_, E, F, G, H, I_, J, K)}
    check("imported: MFN Unshipped/PartiallyShipped, AFN Shipped, AFN Canceled (cancelled), CA marketplace; "
          "not: AFN Unshipped, Pending, MFN Shipped, DE marketplace; unknown SKU held",
          states == {A: "materialized", B: "materialized", C: "materialized", D_: None, E: None, F: None,
                     G: "cancelled", H: "held", I_: "materialized", J: None, K: "materialized"}, states)
    h = env.inbox(H) or {}
    check("the held order names the unknown SKU", "SKU-000011" in (h.get("last_error") or ""),
          h.get("last_error"))

    # -- exact Odoo rows ------------------------------------------------------
    so = env.sale_order(A) or {}
    lines = env.sale_lines(A)
    pa = env.partner(so.get("partner_id", 0)) or {}
    purchase = orders[0]["PurchaseDate"].replace("T", " ").replace("Z", "")
    check("order A: sale_order amounts (10 % excluded tax on every line)",
          D(so.get("amount_untaxed")) == Decimal("56.47") and D(so.get("amount_tax")) == Decimal("5.65")
          and D(so.get("amount_total")) == Decimal("62.12"), so)
    check("order A: state draft, client_order_ref, origin, date_order = PurchaseDate, gift note",
          so.get("state") == "draft" and so.get("client_order_ref") == A and so.get("origin") == "shop"
          and so.get("date_order") == purchase
          and so.get("note") == "<p>Gift message: Happy birthday</p>"
          and so.get("warehouse_id") == str(env.warehouse) and so.get("company_id") == str(env.company), so)
    check("order A: restricted data came (RDT): raw has ShippingAddress Name/AddressLine1/Phone, BuyerName, "
          "the items' GiftMessageText",
          ((env.inbox(A) or {}).get("raw") or {}).get("ShippingAddress", {}).get("Name") == "Jean Dupont"
          and ((env.inbox(A) or {}).get("raw") or {}).get("ShippingAddress", {}).get("AddressLine1") == "1 Main St"
          and ((env.inbox(A) or {}).get("raw") or {}).get("ShippingAddress", {}).get("Phone") == "+1 206-555-0100"
          and ((env.inbox(A) or {}).get("raw") or {}).get("BuyerInfo", {}).get("BuyerName") == "Jean Dupont"
          and ((env.inbox(A) or {}).get("raw") or {}).get("OrderItems", [{}])[0].get("BuyerInfo", {})
          .get("GiftMessageText") == "Happy birthday", (env.inbox(A) or {}).get("raw"))
    check("order A: customer from BuyerName / ShippingAddress",
          pa.get("name") == "Jean Dupont" and pa.get("email") == BUYER and pa.get("street") == "1 Main St"
          and pa.get("city") == "SEATTLE" and pa.get("zip") == "98121" and pa.get("country") == "US", pa)
    want = [(env.products["SKU-000001"], "2", "19.99", "39.98", "4.00", "43.98"),
            (env.products["SKU-000002"], "1", "10.00", "10.00", "1.00", "11.00"),
            (env.ship_product, "1", "4.99", "4.99", "0.50", "5.49"),
            (env.wrap_product, "1", "2.50", "2.50", "0.25", "2.75"),
            (env.promo_product, "1", "-1.00", "-1.00", "-0.10", "-1.10")]
    got = [(int(l["product_id"]), str(D(l["product_uom_qty"]).normalize()), D(l["price_unit"]),
            D(l["price_subtotal"]), D(l["price_tax"]), D(l["price_total"])) for l in lines]
    check("order A: lines (unit = ItemPrice / QuantityOrdered), shipping, gift wrap, promotion",
          got == [(p, qn, D(u), D(s), D(t), D(tt)) for p, qn, u, s, t, tt in want], lines)
    check("order A: item lines are named after the product and in draft",
          all(l["state"] == "draft" for l in lines)
          and lines[0]["name"].startswith("[SKU-000001]") if lines else False, lines[:1])
    ia = env.inbox(A) or {}
    check("order A: inbox totals as Amazon charged them and SLA flags prime, next_day",
          D(ia.get("items_total")) == Decimal("49.98") and D(ia.get("shipping_total")) == Decimal("4.99")
          and D(ia.get("giftwrap_total")) == Decimal("2.50") and D(ia.get("discount_total")) == Decimal("1.00")
          and D(ia.get("tax_total")) == Decimal("5.65") and D(ia.get("order_total")) == Decimal("62.12")
          and ia.get("sla_flags") == ["prime", "next_day"] and ia.get("marketplace_status") == "Unshipped", ia)
    check("order A: raw is Amazon's order with its OrderItems",
          (ia.get("raw") or {}).get("AmazonOrderId") == A
          and len((ia.get("raw") or {}).get("OrderItems", [])) == 2
          and (ia.get("raw") or {}).get("OrderTotal") == money("62.12"), (ia.get("raw") or {}).keys())

    lc = env.sale_lines(C)
    ic = env.inbox(C) or {}
    check("order C: 3 for 10.00 -> unit price 3.333333 in the inbox; Odoo rounds it to 3.33 "
          "(Product Price precision): subtotal 9.99, tax 1.00",
          len(lc) == 1 and D(lc[0]["price_unit"]) == Decimal("3.33") and D(lc[0]["product_uom_qty"]) == 3
          and D(lc[0]["price_subtotal"]) == Decimal("9.99") and D(lc[0]["price_tax"]) == Decimal("1.00")
          and D(c.val(f"SELECT unit_price FROM omnichan.order_inbox_line WHERE inbox_id = {ic.get('id', 0)}"))
          == Decimal("3.333333"), lc)
    check("order C: the cent Amazon charged more (11.00 vs 10.99) is a total_mismatch event",
          int(c.val(f"SELECT count(*) FROM omnichan.order_event WHERE inbox_id = {ic.get('id', 0)} "
                    f"   AND kind = 'total_mismatch'")) == 1)
    check("order C: SLA two_day; order B: business",
          (env.inbox(C) or {}).get("sla_flags") == ["two_day"]
          and (env.inbox(B) or {}).get("sla_flags") == ["business"])
    lk = env.sale_lines(K)
    got_k = sorted((int(l["product_id"]), D(l["product_uom_qty"]), D(l["price_unit"])) for l in lk)
    check("order K: items of 2 pages, SKU-000005 twice aggregated (2 x 7.00), SKU-000006 2 x 5.00",
          got_k == sorted([(env.products["SKU-000005"], Decimal(2), Decimal("7.00")),
                           (env.products["SKU-000006"], Decimal(2), Decimal("5.00"))]), lk)
    sc = env.sale_order(C) or {}
    sk = env.sale_order(K) or {}
    check("repeat buyer (same BuyerEmail): orders A and C have the same partner; K another",
          so.get("partner_id") and so.get("partner_id") == sc.get("partner_id")
          and sk.get("partner_id") not in (None, so.get("partner_id")), (so.get("partner_id"), sc.get("partner_id"),
                                                                           sk.get("partner_id")))

    # -- re-pulls: nothing twice ------------------------------------------------
    counts = (env.inbox_count(), env.sale_order_count())
    env.set_cursor("now() - interval '2 days'")
    check("re-pull from 2 days back completes", env.pull_now(timeout=60))
    time.sleep(1.5)			# a window ending one second later: the cursor moves
    check("an overlapping pull completes", env.pull_now(timeout=60))
    check("re-pulls create no inbox order nor sale order twice",
          (env.inbox_count(), env.sale_order_count()) == counts
          and all(env.sale_order_count(o) == 1 for o in (A, B, C, I_, K)),
          ((env.inbox_count(), env.sale_order_count()), counts))

    # -- unknown SKU: held, then linked and retried ------------------------------
    env.link("SKU-000011", {"sku": "SKU-000011", "product_type": "PRODUCT"})
    n = int(c.val("SELECT omnichan.retry_orders('shop')"))
    wait_for("the held order to be materialized",
             lambda: (env.inbox(H) or {}).get("state") == "materialized", 20)
    ih = env.inbox(H) or {}
    check("listing_link + retry_orders materializes the held order (once)",
          n in (0, 1) and ih.get("state") == "materialized" and env.sale_order_count(H) == 1,
          (n, ih.get("state"), ih.get("last_error")))

    # -- cancellation by Amazon, before and after shipment ----------------------
    c.sql(f"UPDATE sale_order SET delivery_status = 'partial' WHERE client_order_ref = {q(I_)}")
    env.seed({"orders": [{"AmazonOrderId": C, "OrderStatus": "Canceled", "LastUpdateDate": iso(time.time() - 150)},
                         {"AmazonOrderId": I_, "OrderStatus": "Canceled",
                          "LastUpdateDate": iso(time.time() - 150)}]})
    time.sleep(1.5)
    check("a pull after Amazon cancelled two orders completes", env.pull_now(timeout=60))
    ic, ii = env.inbox(C) or {}, env.inbox(I_) or {}
    check("cancelled before shipment: inbox cancelled, a cancel action queued for the Odoo bridge",
          ic.get("state") == "cancelled" and ic.get("marketplace_status") == "Canceled"
          and int(c.val(f"SELECT count(*) FROM omnichan.odoo_action a JOIN omnichan.order_inbox i "
                        f"  ON i.id = a.inbox_id WHERE i.external_id = {q(C)} AND a.action = 'cancel'")) == 1, ic)
    check("cancelled after shipment: attention for a person",
          ii.get("state") == "attention"
          and ii.get("last_error") == "cancelled by the marketplace after shipment", ii)
    check("Amazon answers cancelled orders without ShippingAddress (the stored raw is the new version)",
          "ShippingAddress" not in (ic.get("raw") or {}) and (ic.get("raw") or {}).get("OrderStatus") == "Canceled",
          list((ic.get("raw") or {}).keys()))

    # -- the merchant cancels in Odoo: no cancel API in Orders API v0 -----------
    before = len(env.journal())
    env.cancel_in_odoo(K)
    r = env.wait_cancel_reported(K, timeout=30) or {}
    check("merchant cancellation: reported as impossible (Orders API v0 has no seller cancel), "
          "nothing sent to Amazon",
          r.get("cancel_reported_at") is None and "does not let a seller cancel" in (r.get("cancel_report_error") or "")
          and all(e["method"] == "GET" or e["route"] in ("lwa_token", "createRestrictedDataToken")
                  for e in env.journal()[before:]), r)

    # -- fetch_order ------------------------------------------------------------
    L = "111-0000012-0000012"
    P = "111-0000013-0000013"
    env.seed({"orders": [order(L, "Unshipped", age=5 * 86400, total="9.00",
                               items=[item("50000000000015", "SKU-000009", 1, "9.00")]),
                         order(P, "Pending", age=5 * 86400, total="9.00",
                               items=[item("50000000000016", "SKU-000009", 1, "9.00")])]})
    mark = len(env.journal())
    check("fetch_order of an order outside every window", env.fetch(L))
    fetched = [e for e in env.journal()[mark:] if e["route"] != "lwa_token"]
    check("fetch_order: a new RDT, getOrder then getOrderItems with it, the order materialized",
          [e["route"] for e in fetched] == ["createRestrictedDataToken", "getOrder", "getOrderItems"]
          and all(is_rdt(access_token(e)) for e in fetched[1:])
          and (env.inbox(L) or {}).get("state") == "materialized" and env.sale_order_count(L) == 1,
          [e["route"] for e in env.journal()[mark:]])
    pl = env.partner((env.sale_order(L) or {}).get("partner_id", 0)) or {}
    check("fetch_order: the buyer's name and address came with getOrder (RDT)",
          pl.get("name") == "Jean Dupont" and pl.get("street") == "1 Main St", pl)
    check("fetch_order of a Pending order", env.fetch(P))
    check("a Pending order is not imported, even fetched", env.inbox(P) is None)

    # -- throttling and a malformed answer --------------------------------------
    M1, M2 = "111-0000014-0000014", "111-0000015-0000015"
    env.seed({"orders": [order(M1, "Unshipped", age=150, total="5.00",
                               items=[item("50000000000017", "SKU-000010", 1, "5.00")]),
                         order(M2, "Unshipped", age=150, total="5.00",
                               items=[item("50000000000018", "SKU-000010", 1, "5.00")])]})
    mockctl.add_fault(env.port, {"route": ITEMS, "kind": "malformed", "count": 1})
    mark = len(env.journal())
    time.sleep(1.1)
    cursor_before = env.cursor()
    c.sql("SELECT omnichan.sync_now('shop')")
    wait_for("the malformed answer to be received",
             lambda: any(e.get("fault") for e in env.journal()[mark:]), 30)
    wait_for("the failed pull to end", lambda: env.pull_jobs() == 0, 60)
    check("a malformed getOrderItems answer fails the pull: nothing of it is stored, the cursor stays",
          not any(env.inbox(o) for o in (M1, M2)) and env.cursor() == cursor_before,
          ([bool(env.inbox(o)) for o in (M1, M2)], env.cursor(), cursor_before, env.channel_error()))
    mockctl.clear_faults(env.port)
    mockctl.add_fault(env.port, [{"route": ORDERS, "kind": "rate_limit", "retry_after": 0.5, "count": 1},
                                 {"route": ITEMS, "kind": "rate_limit", "retry_after": 0.5, "count": 1}])
    time.sleep(1.5)
    check("the next pull (throttled once on each operation) completes", env.pull_now(timeout=60))
    throttled = [e for e in env.journal()[mark:] if e["status"] == 429]
    check("both 429s were answered and retried", len(throttled) == 2, len(throttled))
    check("after the malformed answer and the throttles every order is there once",
          all((env.inbox(o) or {}).get("state") == "materialized" and env.sale_order_count(o) == 1
              for o in (M1, M2)), [(env.inbox(o) or {}).get("state") for o in (M1, M2)])
    mockctl.clear_faults(env.port)

    # -- kill -9 between fetching an answer and committing it -------------------
    N1, N2, N3 = "111-0000016-0000016", "111-0000017-0000017", "111-0000018-0000018"
    env.seed({"orders": [order(o, "Unshipped", age=150, total="4.00",
                               items=[item("5000000000002" + str(k), "SKU-000004", 1, "4.00")])
                         for k, o in enumerate((N1, N2, N3))]})
    killed = env.kill_during_commit(lambda: c.sql("SELECT omnichan.sync_now('shop')"))
    check("the worker was killed between fetching an answer and committing it", killed)
    wait_for("the pull to resume and complete",
             lambda: env.pull_jobs() == 0 and env.received() == 0
             and all((env.inbox(o) or {}).get("state") == "materialized" for o in (N1, N2, N3)), 90)
    check("after kill -9: every order once in the inbox and in Odoo",
          all((env.inbox(o) or {}).get("state") == "materialized" and env.sale_order_count(o) == 1
              for o in (N1, N2, N3)), [(env.inbox(o) or {}).get("state") for o in (N1, N2, N3)])
    # -- an RDT expiring within 60 s is renewed before the next request --------
    R1, R2, R3 = "111-0000019-0000019", "111-0000020-0000020", "111-0000021-0000021"
    env.seed({"rdt_ttl": 30,
              "orders": [order(o, "Unshipped", age=150, total="4.00",
                               BuyerInfo={"BuyerEmail": f"r{k}@marketplace.amazon.com", "BuyerName": f"Renew {k}"},
                               ShippingAddress=dict(ship, Name=f"Renew {k}"),
                               LastUpdateDate=iso(time.time() - 150),
                               items=[item("5000000000003" + str(k), "SKU-000003", 1, "4.00")])
                         for k, o in enumerate((R1, R2, R3))]})
    mark = len(env.journal())
    time.sleep(1.1)
    check("a pull with RDTs of 30 s (less than the 60 s margin) completes", env.pull_now(timeout=60),
          env.channel_error())
    chain = pull_chain(env.journal()[mark:])
    routes = [e["route"] for e in chain]
    pii = [i for i, e in enumerate(chain) if e["route"] in RESTRICTED]
    tokens = [access_token(chain[i]) for i in pii]
    issued = set(env.state().get("rdts", {}))
    check("every restricted request of that chain was preceded by a new RDT (renewed), used once, "
          "and the mock issued each",
          pii and all(i > 0 and chain[i - 1]["route"] == "createRestrictedDataToken" for i in pii)
          and len(set(tokens)) == len(tokens) and all(t in issued for t in tokens)
          and all(e["status"] == 200 for e in chain), routes)
    check("the renewed RDTs brought the names: each order's partner is its BuyerName",
          [(env.partner((env.sale_order(o) or {}).get("partner_id", 0)) or {}).get("name")
           for o in (R1, R2, R3)] == ["Renew 0", "Renew 1", "Renew 2"])
    env.seed({"rdt_ttl": 3600})

    # -- kill -9 after the RDT was obtained: the next request has none -------
    S1, S2, S3 = "111-0000022-0000022", "111-0000023-0000023", "111-0000024-0000024"
    env.seed({"orders": [order(o, "Unshipped", age=150, total="4.00",
                               BuyerInfo={"BuyerEmail": f"s{k}@marketplace.amazon.com", "BuyerName": f"Kill {k}"},
                               ShippingAddress=dict(ship, Name=f"Kill {k}"),
                               LastUpdateDate=iso(time.time() - 150),
                               items=[item("5000000000004" + str(k), "SKU-000002", 1, "4.00")])
                         for k, o in enumerate((S1, S2, S3))]})
    time.sleep(1.1)
    cursor_before = env.cursor()
    mark = len(env.journal())
    c.set_conf(debug_pull_commit_delay=3000)
    time.sleep(1.2)
    c.sql("SELECT omnichan.sync_now('shop')")
    # the RDT answer is committed (after the delay), then getOrders is sent with the RDT
    wait_for("getOrders sent with the RDT",
             lambda: any(e["route"] == "getOrders" for e in env.journal()[mark:]), 30)

    def sleeping():
        rows = c.sql_ok("SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' "
                        "   AND datname = 'odoo' AND query LIKE '%debug_pull_commit_delay%'", db="postgres") or []
        return int(rows[0][0]) if rows else None
    pid = wait_for("the worker to sleep before committing the getOrders page", sleeping, 30, 0.02)
    c.sql("ALTER SYSTEM RESET omnichan.debug_pull_commit_delay", db="postgres")
    c.sql("SELECT pg_reload_conf()", db="postgres")
    check("the worker was killed holding an RDT, before committing a getOrders page", bool(pid))
    if pid:
        os.kill(pid, signal.SIGKILL)
        time.sleep(1.0)
        wait_for("the cluster to accept connections again", lambda: c.sql_ok("SELECT 1", db="postgres"), 30)
        c.wait_worker("odoo", 30, replacing=pid)
    wait_for("the interrupted chain to end", lambda: env.pull_jobs() == 0, 60)
    failed = c.sql("SELECT j.state, j.error FROM omnichan.job j WHERE j.operation = 'order_pull' "
                   "   AND j.error LIKE '%no Restricted Data Token%'")
    check("the re-queued getOrders job failed with the documented error (no RDT in the new worker)",
          len(failed) == 1 and failed[0][0] == "failed"
          and failed[0][1].startswith("credentials: no Restricted Data Token for this Amazon order pull request")
          and "the next one starts over with a new token" in failed[0][1], failed)
    check("the channel shows the error; the cursor stayed; nothing of the page was stored",
          "no Restricted Data Token" in (env.channel_error() or "") and env.cursor() == cursor_before
          and not any(env.inbox(o) for o in (S1, S2, S3)),
          (env.channel_error(), env.cursor(), cursor_before))
    mark = len(env.journal())
    check("the next pull completes", env.pull_now(timeout=60), env.channel_error())
    chain = pull_chain(env.journal()[mark:])
    check("it starts with a new RDT and imports every order once, with the buyer's name",
          chain and chain[0]["route"] == "createRestrictedDataToken"
          and all((env.inbox(o) or {}).get("state") == "materialized" and env.sale_order_count(o) == 1
                  for o in (S1, S2, S3))
          and [(env.partner((env.sale_order(o) or {}).get("partner_id", 0)) or {}).get("name")
               for o in (S1, S2, S3)] == ["Kill 0", "Kill 1", "Kill 2"],
          ([e["route"] for e in chain[:3]], [(env.inbox(o) or {}).get("state") for o in (S1, S2, S3)]))

    # -- the RDTs are nowhere but in the worker's memory -------------------------
    rdts = list(env.state().get("rdts", {}))
    used = {access_token(e) for e in env.journal() if e["route"] in RESTRICTED}
    check("every getOrders / getOrder / getOrderItems request of the run carried an RDT",
          used and all(is_rdt(t) for t in used), sorted(t[:10] for t in used))
    needles = "ARRAY[" + ", ".join(q(t) for t in rdts + [t.split("|", 1)[1] for t in rdts] + ["Atz.sprdt"]) + "]"
    in_jobs = int(c.val(f"SELECT count(*) FROM omnichan.job j, unnest({needles}) t "
                        f" WHERE strpos(concat_ws(' ', j.url, j.payload::text, j.headers::text, "
                        f"       pg_catalog.encode(j.body, 'escape'), j.response_headers::text, "
                        f"       pg_catalog.encode(j.response_body, 'escape'), j.error), t) > 0"))
    in_log = int(c.val(f"SELECT count(*) FROM omnichan.sync_log s, unnest({needles}) t "
                       f" WHERE strpos(s::text, t) > 0"))
    server = c.log_text()
    in_server = [t[:14] for t in rdts + ["Atz.sprdt"] if t in server or t.split("|", 1)[-1] in server]
    check(f"none of the {len(rdts)} RDTs is in omnichan.job (url, payload, headers, bodies, errors), "
          "sync_log or the server log", rdts and in_jobs == 0 and in_log == 0 and not in_server,
          (in_jobs, in_log, in_server))
    check("the RDT answers' bodies are not kept (operation auth_rdt)",
          int(c.val("SELECT count(*) FROM omnichan.job WHERE operation = 'auth_rdt' "
                    "   AND response_body IS NOT NULL")) == 0
          and int(c.val("SELECT count(*) FROM omnichan.job WHERE operation = 'auth_rdt' "
                        "   AND state = 'succeeded'")) >= 5)
    check("no 400 from the mock in the whole run (2-minute rule, NextTokens, parameters)",
          not [e for e in env.journal() if e["status"] == 400],
          [(e["path"], e["query"]) for e in env.journal() if e["status"] == 400][:3])
    say(f"{len(env.journal(ORDERS))} getOrders, {len(env.journal(ITEMS))} getOrderItems requests in "
        f"{time.time() - t0:.1f} s")
    env.check_backfills()
    finish()


if __name__ == "__main__":
    main()
