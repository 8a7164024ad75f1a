#!/usr/bin/python3
"""push_etsy: stock flows from Odoo's tables to the Etsy mock.

A throwaway cluster with a sync worker, the Odoo fixture with a generated
catalog, the Etsy mock (rotating refresh-token grant, getListingInventory /
updateListingInventory with state per listing: several products with
property values, SKUs, prices, readiness states), one Etsy channel with
credentials and 31 listings (Etsy products) of 11 Etsy listings linked by
SKU.  Checks:

- after linking, the mock's quantity of every product equals allocate(),
  with one GET and at most one PUT per Etsy listing (the products of one
  listing pushed together) and one token request;
- every field of the inventories other than the quantities (SKUs, prices,
  property values, is_enabled, readiness states, *_on_property, an Etsy
  product omnichan does not know) is what the seed had;
- Etsy's rotated refresh token is stored in omnichan.credential;
- a stock change committed in Odoo's tables reaches the mock: 1 GET + 1 PUT
  for two products of one listing (found by SKU: Etsy renewed the ids);
- partial failure: an unknown Etsy listing keeps Etsy's own 404 message on
  its listing only (class "fix"), the others are pushed;
- the access token expiring mid-run: one token refresh (with the rotated
  refresh token), the refused GET retried once;
- a 429 storm on the PUT is retried with backoff and converges;
- kill -9 of the worker while a PUT is in flight: after the restart (a new
  token from the refresh token stored in the database) the mock converges,
  with at most that one request sent again;
- no secret (shared secret, refresh tokens, access token) in sync_log,
  views, job rows (request or response) or the server log.
"""

import copy
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, check, fatal, finish, mockctl, say, start_cluster,  # noqa: E402
                         wait_for, _cleanups)

TOKEN = "/v3/public/oauth/token"
INV = r"^/v3/application/listings/[0-9]+/inventory$"
KEYSTRING = "etsykeystring123"
SECRET = "etsy-shared-s3cr3t"
REFRESH = "12345678.etsy-refresh-r3fr3sh"
CHANNEL = "etsy-shop"


def seed_listings():
    """11 Etsy listings: 1001..1009 with 3 colours each (the last ones with
    a size property too), 1010 with 3 linked colours and one product only
    Etsy knows, 1011 a single product without properties."""
    listings = {}
    pid = 5000
    sku_no = 1
    for n in range(9):
        lid = 1001 + n
        products = []
        for c, colour in enumerate(("Red", "Blue", "Green")):
            pid += 1
            pvs = [{"property_id": 200, "property_name": "Primary color", "scale_id": None,
                    "scale_name": None, "value_ids": [100 + c], "values": [colour]}]
            if n >= 6:
                pvs.append({"property_id": 100, "property_name": "Size", "scale_id": 19,
                            "scale_name": "US/Canada", "value_ids": [300 + n], "values": [str(n)]})
            products.append({
                "product_id": pid, "sku": f"SKU-{sku_no:06d}", "is_deleted": False,
                "offerings": [{"offering_id": pid + 100000, "quantity": 999,
                               "is_enabled": not (n == 3 and c == 1), "is_deleted": False,
                               "price": {"amount": (1999 + 250 * c) if n % 2 == 0 else 1250,
                                         "divisor": 100, "currency_code": "USD"},
                               "readiness_state_id": None if n == 4 else 7001 + n}],
                "property_values": pvs})
            sku_no += 1
        listings[str(lid)] = {
            "products": products,
            "price_on_property": [200] if n % 2 == 0 else [],
            "quantity_on_property": [200], "sku_on_property": [200],
            "readiness_state_on_property": []}
    products = []
    for c, colour in enumerate(("Black", "White", "Grey", "Gold")):
        pid += 1
        products.append({
            "product_id": pid, "sku": f"SKU-{sku_no:06d}" if c < 3 else "ETSY-ONLY-GOLD",
            "is_deleted": False,
            "offerings": [{"offering_id": pid + 100000, "quantity": 999 if c < 3 else 17,
                           "is_enabled": True, "is_deleted": False,
                           "price": {"amount": 4500, "divisor": 100, "currency_code": "USD"},
                           "readiness_state_id": 7100}],
            "property_values": [{"property_id": 200, "property_name": "Primary color",
                                 "scale_id": None, "scale_name": None,
                                 "value_ids": [200 + c], "values": [colour]}]})
        if c < 3:
            sku_no += 1
    listings["1010"] = {"products": products, "price_on_property": [],
                        "quantity_on_property": [200], "sku_on_property": [200],
                        "readiness_state_on_property": []}
    pid += 1
    listings["1011"] = {"products": [{
        "product_id": pid, "sku": f"SKU-{sku_no:06d}", "is_deleted": False,
        "offerings": [{"offering_id": pid + 100000, "quantity": 999, "is_enabled": True,
                       "is_deleted": False,
                       "price": {"amount": 800, "divisor": 100, "currency_code": "USD"},
                       "readiness_state_id": 7200}],
        "property_values": []}],
        "price_on_property": [], "quantity_on_property": [], "sku_on_property": [],
        "readiness_state_on_property": []}
    return listings


def without_quantities(listings):
    """The inventories minus what a push may change: quantities of linked
    products, and the ids Etsy renews on every update."""
    out = copy.deepcopy(listings)
    for inv in out.values():
        for p in inv["products"]:
            p.pop("product_id", None)
            for o in p["offerings"]:
                o.pop("offering_id", None)
                if p["sku"].startswith("SKU-"):
                    o.pop("quantity", None)
    return out


def main():
    c = start_cluster("push_etsy", conf=["omnichan.retry_base_delay = 200",
                                         "omnichan.naptime = 1000",
                                         "omnichan.circuit_open_time = 500"])
    c.sql("SELECT omnichan_test.generate_catalog(60, 1)")

    listings = seed_listings()
    seed = {"shop_id": 424242, "credentials": {"keystring": KEYSTRING, "shared_secret": SECRET,
                            "refresh_token": REFRESH},
            "listings": listings}
    proc, port = mockctl.start("etsy", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    base = f"http://127.0.0.1:{port}"

    def mock_qty():
        out = {}
        for inv in mockctl.state(port)["listings"].values():
            for p in inv["products"]:
                out[p["sku"]] = p["offerings"][0]["quantity"]
        return out

    def expected():
        rows = c.sql("SELECT l.sku, a.quantity FROM omnichan.listing l "
                     f"  JOIN omnichan.channel ch ON ch.id = l.channel_id AND ch.name = '{CHANNEL}' "
                     f"  JOIN LATERAL omnichan.allocate(l.product_id) a ON a.channel = '{CHANNEL}' "
                     " WHERE l.sku LIKE 'SKU-%' AND l.external ->> 'listing_id' <> '9999'")
        return {r[0]: int(r[1]) for r in rows}

    def converged():
        exp = expected()
        got = mock_qty()
        return exp if exp and all(got.get(s) == q for s, q in exp.items()) else None

    def entries(method=None, since=0):
        return [e for e in mockctl.journal(port, since=since, path=INV)
                if method is None or e["method"] == method]

    def count(path=None, method=None):
        if path == TOKEN:
            return len(mockctl.journal(port, path=TOKEN))
        return len(entries(method))

    def bump(skus, qty):
        codes = ", ".join(f"'{s}'" for s in skus)
        c.sql(f"UPDATE stock_quant SET quantity = quantity + {qty} WHERE id IN (SELECT min(q.id) FROM stock_quant q "
              "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
              f"  JOIN product_product p ON p.id = q.product_id AND p.default_code IN ({codes}) "
              " GROUP BY q.product_id)")

    c.sql(f"""SELECT omnichan.channel_create('{CHANNEL}', 'etsy', jsonb_build_object(
                'shop_id', 424242, 'push_interval', 0,
                'endpoint', '{base}', 'token_endpoint', '{base}{TOKEN}'))""")
    c.sql(f"""SELECT omnichan.credentials_set('{CHANNEL}', jsonb_build_object(
                'keystring', '{KEYSTRING}', 'shared_secret', '{SECRET}', 'refresh_token', '{REFRESH}'))""")
    staged = []
    for lid, inv in listings.items():
        for p in inv["products"]:
            if p["sku"].startswith("SKU-"):
                staged.append(f"((SELECT id FROM omnichan.channel WHERE name = '{CHANNEL}'), '{p['sku']}', "
                              f"'{{\"listing_id\": {lid}, \"product_id\": {p['product_id']}}}')")
    c.sql("INSERT INTO omnichan.listing_staging (channel_id, sku, external) VALUES " + ", ".join(staged))
    linked = int(c.val(f"SELECT omnichan.link_by_sku('{CHANNEL}')"))
    check("link_by_sku links the 31 Etsy products that are internal references in Odoo", linked == 31, str(linked))

    # 1. initial push
    got = wait_for("the mock to hold every listing's allocation", converged, 20)
    check("after linking, the mock shows allocate() for every Etsy product", got is not None,
          f"expected {expected()}, mock {mock_qty()}")
    exp = expected()
    changed = sum(1 for inv in listings.values()
                  if any(p["sku"] in exp and exp[p["sku"]] != 999 for p in inv["products"]))
    gets, puts = count(method="GET"), count(method="PUT")
    say(f"initial push: {gets} GET, {puts} PUT, {count(TOKEN)} token")
    check("one GET per Etsy listing (11): the products of a listing are pushed together", gets == 11, str(gets))
    check(f"one PUT per Etsy listing whose quantities change ({changed})", puts == changed, str(puts))
    check("at most 2 requests per Etsy listing + 1 token request",
          gets + puts <= 2 * 11 and count(TOKEN) == 1, f"{gets + puts} + {count(TOKEN)}")
    per_listing = {}
    for e in entries():
        per_listing.setdefault(e["path"], []).append(e["method"])
    check("each listing: GET, then PUT", all(m in (["GET", "PUT"], ["GET"]) for m in per_listing.values()),
          str(per_listing))
    first = entries()[0]
    check("calls carry x-api-key keystring:shared_secret and the Bearer token",
          first["headers"].get("x-api-key") == f"{KEYSTRING}:{SECRET}"
          and first["headers"].get("Authorization", "").startswith("Bearer 12345678."))
    put = entries("PUT")[0]
    body = json.loads(put["body"])
    check("the PUT carries no read-only field (product_id, offering_id, is_deleted, scale_name) "
          "and float prices",
          all("product_id" not in p and "is_deleted" not in p and
              all(isinstance(o["price"], float) and "offering_id" not in o for o in p["offerings"]) and
              all("scale_name" not in pv for pv in p["property_values"])
              for p in body["products"]), put["body"][:300])
    state = mockctl.state(port)
    check("every non-quantity field of every inventory is unchanged from the seed "
          "(SKUs, prices, property values, is_enabled, readiness states, *_on_property, Etsy-only product)",
          without_quantities(state["listings"]) == without_quantities(listings),
          json.dumps(state["listings"]["1001"])[:600])
    gold = [p for p in state["listings"]["1010"]["products"] if p["sku"] == "ETSY-ONLY-GOLD"]
    check("the product omnichan does not know keeps its quantity (17)",
          len(gold) == 1 and gold[0]["offerings"][0]["quantity"] == 17, str(gold))

    # refresh token rotation
    rotated = state["credentials"]["refresh_token"]
    stored = c.val(f"SELECT cr.secrets ->> 'refresh_token' FROM omnichan.credential cr "
                   f"  JOIN omnichan.channel ch ON ch.id = cr.channel_id AND ch.name = '{CHANNEL}'")
    check("Etsy rotated the refresh token and omnichan stored the new one",
          rotated != REFRESH and stored == rotated)

    # 2. a stock change in Odoo's tables: two products of listing 1001
    before_g, before_p = count(method="GET"), count(method="PUT")
    t0 = time.monotonic()
    bump(["SKU-000002", "SKU-000003"], 7)
    got = wait_for("the change to reach the mock",
                   lambda: converged() if count(method="PUT") > before_p else None, 10)
    check("a committed stock change reaches the mock (products found by SKU after Etsy renewed their ids)",
          got is not None, f"expected {expected()}, mock {mock_qty()}")
    say(f"commit -> mock has the new quantities: {time.monotonic() - t0:.3f} s")
    time.sleep(0.3)
    check("two products of one Etsy listing: exactly one GET and one PUT",
          (count(method="GET") - before_g, count(method="PUT") - before_p) == (1, 1),
          f"{count(method='GET') - before_g} GET, {count(method='PUT') - before_p} PUT")
    check("the push still leaves every non-quantity field as seeded",
          without_quantities(mockctl.state(port)["listings"]) == without_quantities(listings))

    # 3. partial failure: an Etsy listing that does not exist, a product that is not in its listing
    c.sql(f"SELECT omnichan.listing_link('{CHANNEL}', (SELECT id FROM product_product WHERE default_code = 'SKU-000040'), "
          "'{\"sku\": \"SKU-000040\", \"listing_id\": 9999, \"product_id\": 1}')")
    c.sql(f"SELECT omnichan.listing_link('{CHANNEL}', (SELECT id FROM product_product WHERE default_code = 'SKU-000041'), "
          "'{\"sku\": \"GHOST-41\", \"listing_id\": 1011, \"product_id\": 2}')")
    err = wait_for("the unknown listing's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'SKU-000040' AND last_error IS NOT NULL"), 10)
    check("an unknown Etsy listing keeps Etsy's own message (404 {\"error\"}), class fix",
          err is not None and "Could not find a Listing with listing_id = 9999" in err and err.endswith("|fix"),
          str(err))
    err = wait_for("the unknown product's error", lambda: c.val(
        "SELECT last_error || '|' || error_class FROM omnichan.listing WHERE sku = 'GHOST-41' AND last_error IS NOT NULL"), 10)
    check("a product missing from its Etsy listing's inventory is reported, class fix",
          err is not None and "GHOST-41" in err and err.endswith("|fix"), str(err))
    others = c.val("SELECT count(*) FROM omnichan.listing WHERE last_error IS NOT NULL "
                   "  AND sku NOT IN ('SKU-000040', 'GHOST-41')")
    check("the other listings have no error and match the mock", others == "0" and converged() is not None,
          str(others))

    # 4. the access token expires mid-run
    tokens = mockctl.state(port)["tokens"]
    mockctl.seed(port, {"tokens": {t: 0 for t in tokens}})
    before_tok = count(TOKEN)
    seq = mockctl.journal(port)[-1]["seq"]
    bump(["SKU-000005"], 1)
    got = wait_for("the push after the token expired",
                   lambda: converged() if len(entries("PUT", seq)) >= 1 else None, 15)
    check("an expired token: the push converges", got is not None, f"mock {mock_qty()}")
    check("with one token refresh (the rotated refresh token accepted)",
          count(TOKEN) == before_tok + 1, str(count(TOKEN) - before_tok))
    statuses = [(e["method"], e["status"]) for e in entries(since=seq)]
    check("and the refused GET retried once (401, 200, then the PUT)",
          statuses == [("GET", 401), ("GET", 200), ("PUT", 200)], str(statuses))

    # 5. a 429 storm on the PUT
    mockctl.add_fault(port, {"route": INV, "method": "PUT", "kind": "rate_limit", "count": 3})
    seq = mockctl.journal(port)[-1]["seq"]
    bump(["SKU-000006"], 2)
    got = wait_for("the push through the 429 storm",
                   lambda: converged() if len(entries("PUT", seq)) >= 4 else None, 20)
    puts = entries("PUT", seq)
    check("a 429 storm is retried until the PUT goes through", got is not None, str([e["status"] for e in puts]))
    check("429, 429, 429, then 200", [e["status"] for e in puts] == [429, 429, 429, 200],
          str([e["status"] for e in puts]))
    gaps = [round(b["time"] - a["time"], 3) for a, b in zip(puts, puts[1:])]
    check("with backoff between the attempts (>= 1 s: Etsy's retry-after)",
          len(gaps) == 3 and all(g >= 0.9 for g in gaps), str(gaps))
    check("and the inventory still as seeded apart from quantities",
          without_quantities(mockctl.state(port)["listings"]) == without_quantities(listings))
    mockctl.clear_faults(port)

    # 6. kill -9 of the worker while a PUT is in flight
    mockctl.add_fault(port, {"route": INV, "method": "PUT", "kind": "delay", "ms": 2000, "count": 1})
    seq = mockctl.journal(port)[-1]["seq"]
    before_tok = count(TOKEN)
    bump(["SKU-000008"], 3)
    arrived = wait_for("the PUT to reach the mock", lambda: len(entries("PUT", seq)) > 0, 10)
    pid = c.workers("odoo")
    if arrived and pid:
        os.kill(pid[0], signal.SIGKILL)
        say(f"killed the worker (pid {pid[0]}) while its PUT was in flight")
    c.wait_worker("odoo", 30, replacing=pid[0] if pid else None)
    got = wait_for("convergence after the crash", converged, 30)
    check("after kill -9 of the worker mid-PUT, the mock converges", got is not None, c.log_tail(20))
    sent = [(e["method"], e["status"]) for e in entries(since=seq)]
    check("with the interrupted PUT sent again at most once (GET, PUT, PUT)",
          len(sent) <= 3 and sent[0][0] == "GET" and sum(1 for m, _ in sent if m == "GET") == 1, str(sent))
    check("the restarted worker got a token with the refresh token stored in the database",
          count(TOKEN) == before_tok + 1 and all(s == 200 for _, s in sent[1:] if s is not None),
          f"{count(TOKEN) - before_tok} token requests, {sent}")
    mockctl.clear_faults(port)
    check("after all that, every non-quantity field is as seeded",
          without_quantities(mockctl.state(port)["listings"]) == without_quantities(listings))

    # 7. secrets
    state = mockctl.state(port)
    log = c.log_text()
    dump = "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.sync_log") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.channel_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql("SELECT * FROM omnichan.credential_status") or [])
    dump += "\n".join("|".join(r) for r in c.sql(
        "SELECT id, url, headers::text, coalesce(payload::text, ''), coalesce(convert_from(body, 'UTF8'), ''), "
        "       coalesce(response_headers::text, ''), coalesce(convert_from(response_body, 'UTF8'), ''), "
        "       coalesce(error, '') FROM omnichan.job") or [])
    for secret in (SECRET, REFRESH, rotated, state["credentials"]["refresh_token"]):
        check(f"the secret {secret[:12]}... appears in no log, view or job row",
              secret not in log and secret not in dump)
    tok = entries()[-1]["headers"].get("Authorization", "")[7:]
    check("the access token appears in no log, view or job row",
          tok and tok not in log and tok not in dump)
    check("the token jobs keep no answer body", c.val(
        "SELECT count(*) FROM omnichan.job WHERE operation = 'auth' AND response_body IS NOT NULL") == "0")
    row = c.sql("SELECT state, last_push_at IS NOT NULL, last_success_at IS NOT NULL "
                f"  FROM omnichan.channel_status WHERE channel = '{CHANNEL}'")[0]
    check("channel_status shows the channel active with its last push and success",
          row == ["active", "t", "t"], str(row))


run(main)
