#!/usr/bin/python3
"""test/demo_push.py -- the stock-push part of test/demo.sh (not a test).

    demo_push.py setup  --dir DIR [--db DB]   start the 7 mock marketplaces (seeded
                                              with 8 demo products), create one
                                              real-time channel per marketplace with
                                              its credentials, link the listings
    demo_push.py sync   --dir DIR [--db DB]   wait (<= 20 s) until every mock shows
                                              omnichan.allocate() for every listing,
                                              print a table per marketplace
    demo_push.py change --dir DIR [--db DB] SKU DELTA
                                              commit a stock change of SKU in Odoo's
                                              stock_quant (one internal quant), show
                                              before -> after in every mock and the
                                              time from the commit to the last mock
    demo_push.py show   --dir DIR [--db DB] SKU
                                              what omnichan allocates to SKU and what
                                              each mock shows for it

The database is reached with psql and the PGHOST/PGPORT/PGUSER environment
(test/lib.sh's oc_cluster_start exports them).  The mocks are detached
servers (test/mock/mockctl.py start_daemon) whose pid files DIR/<name>.pid
the caller stops; their ports are kept in DIR/push.json.  Python 3 stdlib
only.  Errors are one line on stderr and exit status 1, never a traceback.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "test", "mock"))

import mockctl  # noqa: E402

PSQL = os.path.join(os.environ.get("OC_PGBIN", "/usr/lib/postgresql/15/bin"), "psql")
SKUS = [f"SKU-{i:06d}" for i in range(1, 9)]
SYNC_TIMEOUT = 20.0
CHANGE_TIMEOUT = 15.0


class DemoError(Exception):
    pass


# --------------------------------------------------------------------------
# The seven marketplaces: mock seed, channel settings, credentials, the
# external ids of each listing, and how to read a SKU's quantity in the
# mock's state.  Settings other than endpoints and credentials are the
# demo's story: buffers, priorities, a cap, a warehouse restriction.
# --------------------------------------------------------------------------

def _sku_no(sku):
    return int(sku.split("-")[1])


class Amazon:
    mock, channel, title = "amazon", "amazon-us", "Amazon (SP-API)"
    token_path = r"^/auth/o2/token$"
    ops = ((r"^/listings/", "patchListingsItem"), (r"^/feeds/[^/]+/documents$", "createFeedDocument"),
           (r"^/mock-s3/", "feed upload"), (r"^/feeds/[^/]+/feeds$", "createFeed"),
           (r"^/feeds/[^/]+/feeds/", "getFeed"), (r"^/feeds/[^/]+/documents/", "getFeedDocument"))
    CLIENT = "amzn1.application-oa2-client.omnichan-demo"
    SECRET = "amzn-demo-secret"
    REFRESH = "Atzr|amzn-demo-refresh"
    SELLER = "A2DEMOSELLER1"

    def seed(self):
        return {"credentials": {"client_id": self.CLIENT, "client_secret": self.SECRET,
                                "refresh_token": self.REFRESH},
                "seller_id": self.SELLER, "feed_processing_seconds": 0.3,
                "listings": {s: {"product_type": "PRODUCT", "quantity": 999} for s in SKUS}}

    def settings(self, base):
        return {"seller_id": self.SELLER, "marketplace_ids": ["ATVPDKIKX0DER"],
                "buffer_pct": 10, "priority": 1, "low_stock_threshold": 5,
                "feed_poll_interval": 0.5,
                "endpoint": base, "token_endpoint": base + "/auth/o2/token"}

    def credentials(self):
        return {"lwa_client_id": self.CLIENT, "lwa_client_secret": self.SECRET,
                "refresh_token": self.REFRESH}

    def external(self, sku):
        return {}

    def quantities(self, state):
        return {s: v.get("quantity") for s, v in state["listings"].items()}


class Shopify:
    mock, channel, title = "shopify", "shopify", "Shopify (GraphQL Admin)"
    token_path = None
    ops = ((r"/graphql\.json$", "GraphQL inventorySetQuantities"),)
    TOKEN = "shpat_demo0123456789abcdef"
    LOC = "gid://shopify/Location/1"

    def item(self, sku):
        return f"gid://shopify/InventoryItem/{30322000 + _sku_no(sku)}"

    def seed(self):
        return {"access_token": self.TOKEN, "locations": [self.LOC],
                "levels": {self.item(s): {self.LOC: 999} for s in SKUS}}

    def settings(self, base):
        return {"shop_domain": "demo-store.myshopify.com", "location_id": self.LOC,
                "buffer_pct": 5, "priority": 2, "low_stock_threshold": 5, "endpoint": base}

    def credentials(self):
        return {"access_token": self.TOKEN}

    def external(self, sku):
        return {"inventory_item_id": self.item(sku)}

    def quantities(self, state):
        return {s: state["levels"].get(self.item(s), {}).get(self.LOC) for s in SKUS}


class Ebay:
    mock, channel, title = "ebay", "ebay-us", "eBay (Sell Inventory)"
    token_path = r"^/identity/v1/oauth2/token$"
    ops = ((r"bulk_update_price_quantity$", "bulkUpdatePriceQuantity"),)
    SECRET = "ebay-demo-secret"
    REFRESH = "ebay-demo-refresh"

    def seed(self):
        return {"credentials": {"client_id": "ebay-demo-client", "client_secret": self.SECRET,
                                "refresh_token": self.REFRESH},
                "inventory": {s: {"quantity": 999} for s in SKUS}}

    def settings(self, base):
        return {"marketplace_id": "EBAY_US", "buffer_pct": 10, "priority": 3,
                "low_stock_threshold": 5,
                "endpoint": base, "token_endpoint": base + "/identity/v1/oauth2/token"}

    def credentials(self):
        return {"client_id": "ebay-demo-client", "client_secret": self.SECRET,
                "refresh_token": self.REFRESH}

    def external(self, sku):
        return {}

    def quantities(self, state):
        return {s: v.get("quantity") for s, v in state["inventory"].items()}


class Walmart:
    mock, channel, title = "walmart", "walmart", "Walmart (Marketplace API)"
    token_path = r"^/v3/token$"
    ops = ((r"^/v3/feeds$", "inventory feed"), (r"^/v3/feeds/", "feed status"),
           (r"^/v3/inventory$", "updateInventory"))
    SECRET = "wm-demo-secret"
    NODE = "10000003527"

    def seed(self):
        return {"credentials": {"client_id": "wm-demo-client", "client_secret": self.SECRET},
                "ship_nodes": [self.NODE], "feed_processing_s": 0.3,
                "inventory": {s: {"amount": 999} for s in SKUS}}

    def settings(self, base):
        return {"ship_node": self.NODE, "priority": 4, "low_stock_threshold": 5, "max_qty": 50,
                "feed_poll_interval": 0.5,
                "endpoint": base, "token_endpoint": base + "/v3/token"}

    def credentials(self):
        return {"client_id": "wm-demo-client", "client_secret": self.SECRET}

    def external(self, sku):
        return {}

    def quantities(self, state):
        return {s: v.get("amount") for s, v in state["inventory"].items()}


class TikTok:
    """3 TikTok products of up to 3 SKUs each (variants of one product)."""
    mock, channel, title = "tiktok", "tiktok", "TikTok Shop (Partner API)"
    token_path = None
    ops = ((r"/inventory/update$", "UpdateInventory (per product)"),)
    APP_KEY = "tts-demo-app-key"
    SECRET = "tts-demo-secret"
    TOKEN = "TTP_demo_access_token"
    CIPHER = "DEMOCIPHER"

    def ids(self, sku):
        i = _sku_no(sku)
        return str(7300000000000000000 + (i - 1) // 3), str(1729000000000000000 + i)

    def seed(self):
        products = {}
        for s in SKUS:
            pid, sid = self.ids(s)
            products.setdefault(pid, {"status": "ACTIVATE", "skus": {}})["skus"][sid] = {"quantity": 999}
        return {"app": {"app_key": self.APP_KEY, "app_secret": self.SECRET},
                "shop_cipher": self.CIPHER, "tokens": {self.TOKEN: time.time() + 7 * 86400},
                "products": products}

    def settings(self, base):
        return {"shop_cipher": self.CIPHER, "priority": 5, "low_stock_threshold": 5,
                "endpoint": base}

    def credentials(self):
        return {"app_key": self.APP_KEY, "app_secret": self.SECRET, "access_token": self.TOKEN}

    def external(self, sku):
        pid, sid = self.ids(sku)
        return {"product_id": pid, "sku_id": sid}

    def quantities(self, state):
        out = {}
        for s in SKUS:
            pid, sid = self.ids(s)
            out[s] = state["products"].get(pid, {}).get("skus", {}).get(sid, {}).get("quantity")
        return out


class Etsy:
    """3 Etsy listings: two in 3 colours, one in 2 (one product per colour)."""
    mock, channel, title = "etsy", "etsy", "Etsy (Open API v3)"
    token_path = r"^/v3/public/oauth/token$"
    ops = ((r"^/v3/application/listings/[0-9]+/inventory$", "{method}"),)
    KEYSTRING = "etsydemokeystring1"
    SECRET = "etsy-demo-secret"
    REFRESH = "12345678.etsy-demo-refresh"
    GROUPS = ((2001, ("Red", "Blue", "Green")), (2002, ("Red", "Blue", "Green")),
              (2003, ("Black", "White")))

    def layout(self):
        """sku -> (listing_id, product_id, colour index, colour)"""
        out, n, pid = {}, 0, 6000
        for lid, colours in self.GROUPS:
            for c, colour in enumerate(colours):
                pid += 1
                out[SKUS[n]] = (lid, pid, c, colour)
                n += 1
        return out

    def seed(self):
        listings = {}
        for sku, (lid, pid, c, colour) in self.layout().items():
            inv = listings.setdefault(str(lid), {
                "products": [], "price_on_property": [], "quantity_on_property": [200],
                "sku_on_property": [200], "readiness_state_on_property": []})
            inv["products"].append({
                "product_id": pid, "sku": sku, "is_deleted": False,
                "offerings": [{"offering_id": pid + 100000, "quantity": 999, "is_enabled": True,
                               "is_deleted": False,
                               "price": {"amount": 2500, "divisor": 100, "currency_code": "USD"},
                               "readiness_state_id": 7001}],
                "property_values": [{"property_id": 200, "property_name": "Primary color",
                                     "scale_id": None, "scale_name": None,
                                     "value_ids": [100 + c], "values": [colour]}]})
        return {"shop_id": 12345,
                "credentials": {"keystring": self.KEYSTRING, "shared_secret": self.SECRET,
                                "refresh_token": self.REFRESH},
                "listings": listings}

    def settings(self, base):
        return {"shop_id": 12345, "priority": 6, "buffer_pct": 20, "low_stock_threshold": 5,
                "endpoint": base, "token_endpoint": base + "/v3/public/oauth/token"}

    def credentials(self):
        return {"keystring": self.KEYSTRING, "shared_secret": self.SECRET,
                "refresh_token": self.REFRESH}

    def external(self, sku):
        lid, pid, _, _ = self.layout()[sku]
        return {"listing_id": lid, "product_id": pid}

    def quantities(self, state):
        out = {}
        for inv in state["listings"].values():
            for p in inv["products"]:
                offers = [o for o in p["offerings"] if not o.get("is_deleted")]
                out[p["sku"]] = offers[0]["quantity"] if offers else None
        return out


class Lazada:
    """Daraz Pakistan (the Lazada Open Platform), stock of the 2nd warehouse only."""
    mock, channel, title = "lazada", "daraz-pk", "Daraz (Lazada Open Platform)"
    token_path = None
    ops = ((r"price_quantity/update$", "UpdatePriceQuantity"),)
    APP_KEY = "100777"
    SECRET = "lzd-demo-secret"
    TOKEN = "50000lzd_demo_access_token"

    def seed(self):
        return {"app": {"app_key": self.APP_KEY, "app_secret": self.SECRET},
                "tokens": {self.TOKEN: time.time() + 30 * 86400},
                "skus": {s: {"quantity": 999, "sku_id": str(12760000000 + _sku_no(s)),
                             "item_id": str(6710000000 + _sku_no(s))} for s in SKUS}}

    def settings(self, base):
        return {"country": "pk", "priority": 7, "low_stock_threshold": 5,
                "warehouse_ids": "LAST_WAREHOUSE", "endpoint": base + "/rest"}

    def credentials(self):
        return {"app_key": self.APP_KEY, "app_secret": self.SECRET, "access_token": self.TOKEN}

    def external(self, sku):
        return {"sku_id": str(12760000000 + _sku_no(sku)), "item_id": str(6710000000 + _sku_no(sku))}

    def quantities(self, state):
        return {s: v.get("quantity") for s, v in state["skus"].items()}


MARKETPLACES = [Amazon(), Shopify(), Ebay(), Walmart(), TikTok(), Etsy(), Lazada()]


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

def lit(text):
    return "'" + str(text).replace("'", "''") + "'"


def sql(db, query):
    """Rows of the last statement, as lists of strings."""
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f",
                        "-d", db, "-c", query], capture_output=True, text=True)
    if r.returncode != 0:
        raise DemoError(f"SQL failed: {r.stderr.strip()}\n  in: {query[:300]}")
    return [line.split("\x1f") for line in r.stdout.splitlines()]


def load_ports(d):
    try:
        with open(os.path.join(d, "push.json"), encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise DemoError(f"no {d}/push.json (run setup first): {e}") from None


def mock_quantities(m, port):
    try:
        return m.quantities(mockctl.state(port))
    except (OSError, mockctl.MockError) as e:
        raise DemoError(f"the {m.mock} mock on port {port} does not answer: {e}") from None


def expected(db):
    """{channel: {sku: allocate() quantity}} of every linked listing."""
    rows = sql(db, "SELECT ch.name, l.sku, a.quantity FROM omnichan.listing l "
                   "  JOIN omnichan.channel ch ON ch.id = l.channel_id "
                   "  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = ch.name")
    out = {}
    for ch, sku, q in rows:
        out.setdefault(ch, {})[sku] = int(q)
    return out


def table(headers, rows, right=()):
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]

    def fmt(row):
        return " | ".join(str(x).rjust(w) if i in right else str(x).ljust(w)
                          for i, (x, w) in enumerate(zip(row, widths)))
    print(" " + fmt(headers))
    print("-" + "-+-".join("-" * w for w in widths) + "-")
    for row in rows:
        print(" " + fmt(row))


# --------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------

def cmd_setup(args):
    d, db = args.dir, args.db
    ports = {}
    for m in MARKETPLACES:
        seed_file = os.path.join(d, f"{m.mock}.seed.json")
        with open(seed_file, "w", encoding="utf-8") as f:
            json.dump(m.seed(), f)
        try:
            port = mockctl.start_daemon(m.mock, os.path.join(d, f"{m.mock}.port"),
                                        os.path.join(d, f"{m.mock}.pid"), seed_file=seed_file,
                                        log_file=os.path.join(d, f"{m.mock}.log"))
        except (OSError, mockctl.MockError) as e:
            raise DemoError(f"the {m.mock} mock did not start: {e}") from None
        ports[m.mock] = port
    with open(os.path.join(d, "push.json"), "w", encoding="utf-8") as f:
        json.dump(ports, f)

    last_wh = sql(db, "SELECT max(id) FROM stock_warehouse")[0][0]
    for m in MARKETPLACES:
        base = f"http://127.0.0.1:{ports[m.mock]}"
        s = m.settings(base)
        s["push_interval"] = 0
        if s.get("warehouse_ids") == "LAST_WAREHOUSE":
            s["warehouse_ids"] = [int(last_wh)]
        sql(db, f"SELECT omnichan.channel_create({lit(m.channel)}, {lit(m.mock)}, "
                f"{lit(json.dumps(s))}::jsonb)")
        sql(db, f"SELECT omnichan.credentials_set({lit(m.channel)}, {lit(json.dumps(m.credentials()))}::jsonb)")
    t_link = time.time()
    linked = {}
    for m in MARKETPLACES:
        values = ", ".join(f"((SELECT id FROM omnichan.channel WHERE name = {lit(m.channel)}), "
                           f"{lit(s)}, {lit(json.dumps(m.external(s)))}::jsonb)" for s in SKUS)
        sql(db, f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES {values}")
        linked[m.channel] = int(sql(db, f"SELECT omnichan.link_by_sku({lit(m.channel)})")[0][0])
    with open(os.path.join(d, "push.json"), "w", encoding="utf-8") as f:
        json.dump(dict(ports, _linked_at=t_link), f)

    rows = []
    for m in MARKETPLACES:
        seed = m.seed()
        if m.mock == "tiktok":
            shape = f"{len(seed['products'])} products with variants"
        elif m.mock == "etsy":
            shape = f"{len(seed['listings'])} listings with colour variants"
        else:
            shape = "one listing per SKU"
        rows.append((m.title, f"http://127.0.0.1:{ports[m.mock]}", m.channel,
                     f"{linked[m.channel]} ({shape})"))
    table(("marketplace (mock)", "listening on", "channel", "listings linked by SKU"), rows)
    print()


def in_sync(db, ports):
    exp = expected(db)
    result = {}
    for m in MARKETPLACES:
        got = mock_quantities(m, ports[m.mock])
        want = exp.get(m.channel, {})
        result[m.channel] = (len(want), sum(1 for s, q in want.items() if got.get(s) == q))
    return result


def describe(m, entries):
    """'8 patchListingsItem, ...': the requests of entries other than tokens, by operation."""
    counts = {}
    for e in entries:
        if m.token_path and re.search(m.token_path, e["path"]):
            continue
        op = {"GET": "getListingInventory", "PUT": "updateListingInventory"}.get(e["method"], e["method"])
        label = next((lab.format(method=op) for rx, lab in m.ops if re.search(rx, e["path"])),
                     f"{e['method']} {e['path']}")
        counts[label] = counts.get(label, 0) + 1
    return ", ".join(f"{n} {label}" for label, n in counts.items()) or "none"


def cmd_sync(args):
    db, ports = args.db, load_ports(args.dir)
    deadline = time.monotonic() + SYNC_TIMEOUT
    while True:
        res = in_sync(db, ports)
        done = all(n > 0 and n == ok for n, ok in res.values())
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    elapsed = time.time() - ports["_linked_at"]
    rows = []
    for m in MARKETPLACES:
        entries = mockctl.journal(ports[m.mock])
        tokens = len([e for e in entries if m.token_path and re.search(m.token_path, e["path"])])
        n, ok = res[m.channel]
        rows.append((m.title, m.channel, n, f"{ok}/{n}" + (" yes" if ok == n else " NO"),
                     tokens if m.token_path else "-", describe(m, entries)))
    table(("marketplace", "channel", "listings", "in sync", "token", "stock push requests"),
          rows, right=(2, 3, 4))
    if done:
        print(f"\nEvery marketplace shows omnichan.allocate() for each of its listings (read from the mocks), "
              f"{elapsed:.1f} s after they were linked.")
    else:
        print(f"\nNot every listing is in sync after {SYNC_TIMEOUT:.0f} s "
              f"(see omnichan.listing_status below).")
    print("token: access-token requests (\"-\": the marketplace's token is long-lived, set with the "
          "credentials); each push request carries up to the marketplace's batch size of listings.")


def cmd_change(args):
    db, ports = args.db, load_ports(args.dir)
    sku, delta = args.sku, args.delta
    # one internal quant of the product: the largest of the last warehouse,
    # so every channel (also the one restricted to that warehouse) moves
    rows = sql(db, f"""
        SELECT q.id, q.quantity::int, w.code || '/' || l.name, p.id
          FROM stock_quant q
          JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal'
          JOIN stock_warehouse w ON w.id = l.warehouse_id
          JOIN product_product p ON p.id = q.product_id AND p.default_code = {lit(sku)}
         ORDER BY w.id DESC, q.quantity DESC, q.id LIMIT 1""")
    if not rows:
        raise DemoError(f"no internal quant of {sku}")
    qid, qty, where, pid = rows[0]
    qty = int(qty)

    # quantities before (once the mocks are in sync for it)
    def snapshot():
        return {m.channel: mock_quantities(m, ports[m.mock]).get(sku) for m in MARKETPLACES}

    def allocation():
        return {r[0]: int(r[1]) for r in sql(db, f"SELECT channel, quantity FROM omnichan.allocate({pid})")}

    deadline = time.monotonic() + SYNC_TIMEOUT
    while True:
        before, alloc = snapshot(), allocation()
        if all(before[c] == alloc.get(c) for c in before) or time.monotonic() > deadline:
            break
        time.sleep(0.1)

    last_seq = {}
    for m in MARKETPLACES:
        j = mockctl.journal(ports[m.mock])
        last_seq[m.mock] = j[-1]["seq"] if j else 0
    verb = "receipt" if delta > 0 else "delivery"
    print(f"Odoo validates a {verb} of {abs(delta)} units of {sku}: its quant {qid} in {where} "
          f"goes from {qty} to {qty + delta}:")
    print(f"  UPDATE stock_quant SET quantity = quantity {'+' if delta > 0 else '-'} {abs(delta)} "
          f"WHERE id = {qid};  -- autocommit")
    print()
    t_commit = float(sql(db, f"UPDATE stock_quant SET quantity = quantity + ({delta}), "
                             f"write_date = now() AT TIME ZONE 'UTC' WHERE id = {qid}; "
                             "SELECT extract(epoch FROM clock_timestamp())")[0][0])
    after_alloc = allocation()
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        now_q = snapshot()
        if all(now_q[c] == after_alloc.get(c) for c in now_q) or time.monotonic() > deadline:
            break
        time.sleep(0.02)

    rows, last = [], None
    for m in MARKETPLACES:
        c = m.channel
        b, a = before[c], now_q[c]
        sent = mockctl.journal(ports[m.mock], since=last_seq[m.mock])
        if a != after_alloc.get(c):
            note = f"NOT YET (omnichan allocates {after_alloc.get(c)})"
        elif a == b:
            note = "unchanged: " + ("capped at max_qty" if m.mock == "walmart" else "same allocation")
        elif sent:
            t = sent[-1]["time"] - t_commit
            last = t if last is None else max(last, t)
            note = f"{1000 * t:4.0f} ms after the commit: {describe(m, sent)}"
        else:
            note = "updated"
        rows.append((m.title, c, f"{b} -> {a}", note))
    table(("marketplace", "channel", f"{sku} in the mock", "the mock received the push"), rows)
    if last is not None:
        print(f"\nCommit in Odoo -> last marketplace updated: {1000 * last:.0f} ms "
              "(real-time channels, push_interval 0: the commit wakes the sync worker).")
    else:
        print("\nNo marketplace changed.")


def cmd_show(args):
    db, ports = args.db, load_ports(args.dir)
    sku = args.sku
    pid = sql(db, f"SELECT id FROM product_product WHERE default_code = {lit(sku)}")[0][0]
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        alloc = {r[0]: (int(r[1]), r[2]) for r in
                 sql(db, f"SELECT channel, quantity, mode FROM omnichan.allocate({pid})")}
        got = {m.channel: mock_quantities(m, ports[m.mock]).get(sku) for m in MARKETPLACES}
        if all(got[c] == alloc[c][0] for c in got) or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    rows = [(m.title, m.channel, alloc[m.channel][1], alloc[m.channel][0], got[m.channel],
             "yes" if got[m.channel] == alloc[m.channel][0] else "NO")
            for m in MARKETPLACES]
    table(("marketplace", "channel", "mode", "omnichan allocates", "the mock shows", "in sync"),
          rows, right=(3, 4))


def ebay_order(oid, sku, qty, unit, currency, buyer, name, email):
    """An order as eBay's Fulfillment API returns it (getOrders)."""
    now = time.time()

    def iso(t):
        return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))

    def money(v):
        return {"value": f"{v:.2f}", "currency": currency}
    cost = round(qty * unit, 2)
    return {"orderId": oid, "legacyOrderId": oid, "creationDate": iso(now - 60),
            "lastModifiedDate": iso(now - 2), "orderFulfillmentStatus": "NOT_STARTED",
            "orderPaymentStatus": "PAID", "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
            "buyer": {"username": buyer, "buyerRegistrationAddress": {"fullName": name, "email": email}},
            "pricingSummary": {"priceSubtotal": money(cost), "deliveryCost": money(0), "tax": money(0),
                               "total": money(cost)},
            "totalMarketplaceFee": money(round(cost * 0.1325, 2)),
            "fulfillmentStartInstructions": [{"shippingStep": {"shipTo": {
                "fullName": name, "contactAddress": {"addressLine1": "742 Evergreen Terrace", "city": "Springfield",
                                                     "stateOrProvince": "OR", "postalCode": "97475",
                                                     "countryCode": "US"}},
                "shippingServiceCode": "USPSPriority"}}],
            "lineItems": [{"lineItemId": oid + "-1", "sku": sku, "title": sku, "quantity": qty,
                           "lineItemCost": money(cost), "taxes": []}]}


def cmd_order(args):
    """An eBay buyer orders: the worker pulls the order, it becomes an Odoo
    quotation, its quantity is pending demand, and every marketplace's
    allocation drops."""
    db, ports = args.db, load_ports(args.dir)
    sku, qty = args.sku, args.qty
    port = ports["ebay"]
    pid = sql(db, f"SELECT id FROM product_product WHERE default_code = {lit(sku)}")[0][0]
    currency = sql(db, "SELECT cu.name FROM omnichan.channel ch JOIN res_company co "
                       "  ON co.id = (ch.settings ->> 'company_id')::int JOIN res_currency cu ON cu.id = co.currency_id "
                       " WHERE ch.name = 'ebay-us'")
    currency = currency[0][0] if currency else "USD"
    before = {r[0]: int(r[1]) for r in sql(db, f"SELECT channel, quantity FROM omnichan.allocate({pid})")}
    ats_before = sql(db, f"SELECT pending, ats FROM omnichan.ats({pid})")[0]
    oid = "27-09876-54321"
    mockctl.admin(port, "POST", "seed", {"orders": [
        ebay_order(oid, sku, qty, 24.90, currency, "jdoe-1977", "Jane Doe", "jane.doe@example.com")]})
    print(f"A buyer orders {qty} x {sku} at 24.90 {currency} on eBay (order {oid}: the eBay mock's "
          f"getOrders lists it).")
    print("  SELECT omnichan.sync_now('ebay-us');  -- or wait for the channel's pull_interval (eBay: 15 min)")
    t0 = time.time()
    sql(db, "SELECT omnichan.sync_now('ebay-us')")
    deadline = time.monotonic() + CHANGE_TIMEOUT
    so = []
    while time.monotonic() < deadline:
        so = sql(db, f"SELECT so.name, so.state, p.name, so.amount_total::text, so.client_order_ref, so.origin, "
                     f"       w.code FROM sale_order so JOIN res_partner p ON p.id = so.partner_id "
                     f"  JOIN stock_warehouse w ON w.id = so.warehouse_id "
                     f" WHERE so.client_order_ref = {lit(oid)}")
        if so:
            break
        time.sleep(0.05)
    if not so:
        raise DemoError(f"order {oid} did not reach Odoo within {CHANGE_TIMEOUT:.0f} s "
                        "(see omnichan.order_status and omnichan.channel_status)")
    took = time.time() - t0
    pulls = [e for e in mockctl.journal(port) if e["path"].startswith("/sell/fulfillment/v1/order")]
    print(f"\nThe sync worker pulled it ({len(pulls)} getOrders request(s) so far) and Odoo has a quotation "
          f"{took:.1f} s later:")
    table(("sale_order", "state", "customer", "amount_total", "client_order_ref", "origin", "warehouse"), so)
    lines = sql(db, f"SELECT l.name, l.product_uom_qty::int, l.price_unit::text, l.price_subtotal::text "
                    f"  FROM sale_order_line l JOIN sale_order so ON so.id = l.order_id "
                    f" WHERE so.client_order_ref = {lit(oid)} ORDER BY l.sequence, l.id")
    print()
    table(("line", "qty", "price_unit", "subtotal"), lines, right=(1, 2, 3))
    inbox = sql(db, f"SELECT s.channel, s.external_id, s.state, s.marketplace_status, "
                    f"       s.marketplace_total::text, s.odoo_total::text, i.fees::text "
                    f"  FROM omnichan.order_status s JOIN omnichan.order_inbox i ON i.external_id = s.external_id "
                    f" WHERE s.external_id = {lit(oid)}")
    print()
    table(("channel", "order", "inbox state", "eBay status", "eBay total", "Odoo total", "eBay fees"), inbox)
    ats_after = sql(db, f"SELECT pending, ats FROM omnichan.ats({pid})")[0]
    print(f"\nThe quotation is pending demand: pending {ats_before[0]} -> {ats_after[0]}, "
          f"available to sell {ats_before[1]} -> {ats_after[1]}.")

    # every marketplace gets the lower allocation
    after = {r[0]: int(r[1]) for r in sql(db, f"SELECT channel, quantity FROM omnichan.allocate({pid})")}
    deadline = time.monotonic() + CHANGE_TIMEOUT
    while True:
        got = {m.channel: mock_quantities(m, ports[m.mock]).get(sku) for m in MARKETPLACES}
        if all(got[c] == after.get(c) for c in got) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    rows = [(m.title, m.channel, f"{before.get(m.channel)} -> {after.get(m.channel)}", got[m.channel],
             "yes" if got[m.channel] == after.get(m.channel) else "NO") for m in MARKETPLACES]
    print()
    table(("marketplace", "channel", f"omnichan allocates ({sku})", "the mock shows", "in sync"), rows,
          right=(3,))


def main():
    p = argparse.ArgumentParser(description="The stock-push and order-pull parts of test/demo.sh.")
    p.add_argument("command", choices=("setup", "sync", "change", "show", "order"))
    p.add_argument("args", nargs="*")
    p.add_argument("--dir", required=True, help="the demo's directory (pid, port files)")
    p.add_argument("--db", default="odoo")
    a = p.parse_intermixed_args()
    try:
        if a.command == "change":
            if len(a.args) != 2:
                p.error("change SKU DELTA")
            a.sku, a.delta = a.args[0], int(a.args[1])
        elif a.command == "show":
            if len(a.args) != 1:
                p.error("show SKU")
            a.sku = a.args[0]
        elif a.command == "order":
            if len(a.args) != 2:
                p.error("order SKU QTY")
            a.sku, a.qty = a.args[0], int(a.args[1])
        {"setup": cmd_setup, "sync": cmd_sync, "change": cmd_change, "show": cmd_show,
         "order": cmd_order}[a.command](a)
    except DemoError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug of this script: one line, no traceback
        print(f"error: demo_push.py {a.command}: {e!r}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
