"""Shared helpers of the pull_*.py integration tests (not a test itself: it
is not executable, so test/run.sh does not run it).

PullEnv starts a throwaway cluster (runtime_lib.start_cluster) with the Odoo
fixture and a small generated catalog (products SKU-000001 ...), a mock
marketplace seeded with orders in its own wire format, and one channel of
that marketplace with the order settings materialization needs (company,
warehouse, shipping / gift-wrap / promotion products, optionally a tax),
credentials, and listings linking some SKUs.  Helpers read what the pull
produced: inbox rows, Odoo sale orders and lines field by field, partners,
the mock's journal; kill_during_commit() kills the worker between fetching
an answer and committing it (omnichan.debug_pull_commit_delay).

Typical use (see pull_ebay.py):

    env = PullEnv("pull_ebay", "ebay", settings={...}, credentials={...},
                  seed={"orders": [...]}, link=lambda sku: {"sku": sku})
    env.pull_now()
    so = env.sale_order("ORDER-1")
    check("amount_total", so["amount_total"] == "24.98", so)
    finish()
"""

import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (check, fatal, finish, mockctl, say, start_cluster,  # noqa: E402,F401
                         wait_for, _cleanups)


def q(s):
    """A SQL string literal."""
    return "'" + str(s).replace("'", "''") + "'"


SO_COLUMNS = ("name", "state", "partner_id", "partner_invoice_id", "partner_shipping_id",
              "client_order_ref", "origin", "currency_id", "warehouse_id", "company_id",
              "amount_untaxed", "amount_tax", "amount_total", "date_order", "note", "user_id",
              "team_id", "picking_policy", "invoice_status")
LINE_COLUMNS = ("product_id", "name", "product_uom_qty", "price_unit", "price_subtotal",
                "price_tax", "price_total", "discount", "sequence", "state", "product_uom")


class PullEnv:
    def __init__(self, name, kind, settings, credentials, seed, link, n_products=12,
                 n_linked=10, channel="shop", tax=None, conf=(), pull_interval="1 hour"):
        """settings: kind settings of the channel (endpoint is the mock's base
        URL unless given; token_endpoint must be given where the kind has one,
        e.g. "{base}/identity/v1/oauth2/token": "{base}" is the mock's URL); link(sku) -> the listing's external
        object; tax: None or (percent, price_include)."""
        self.kind = kind
        self.channel = channel
        self.c = start_cluster(name, conf=["omnichan.retry_base_delay = 200",
                                           "omnichan.naptime = 1000",
                                           "omnichan.circuit_open_time = 500"] + list(conf))
        c = self.c
        c.sql(f"SELECT omnichan_test.generate_catalog({n_products}, 1)")
        self.proc, self.port = mockctl.start(kind, seed=seed)
        _cleanups.append(lambda: mockctl.stop(self.proc))
        self.base = f"http://127.0.0.1:{self.port}"

        self.company = int(c.val("SELECT res_id FROM ir_model_data WHERE module = 'base' AND name = 'main_company'"))
        self.warehouse = int(c.val("SELECT res_id FROM ir_model_data WHERE module = 'stock' AND name = 'warehouse0'"))
        self.currency = c.val(f"SELECT cu.name FROM res_company co JOIN res_currency cu ON cu.id = co.currency_id "
                              f" WHERE co.id = {self.company}")
        self.ship_product = self.service_product("OC-SHIP", "Marketplace shipping")
        self.wrap_product = self.service_product("OC-WRAP", "Gift wrap")
        self.promo_product = self.service_product("OC-PROMO", "Marketplace promotion")
        self.tax_id = self.sale_tax(f"omnichan pull {tax[0]}%", tax[0], tax[1]) if tax else None

        s = {"endpoint": self.base, "company_id": self.company, "warehouse_ids": [self.warehouse],
             "default_warehouse_id": self.warehouse, "shipping_product_id": self.ship_product,
             "giftwrap_product_id": self.wrap_product, "discount_product_id": self.promo_product,
             "pull_interval": pull_interval, "push_interval": "1 hour"}
        if self.tax_id:
            s["tax_id"] = self.tax_id
        # "{base}" in a setting's value stands for the mock's base URL
        s.update({k: v.replace("{base}", self.base) if isinstance(v, str) else v
                  for k, v in settings.items()})
        self.settings = s
        c.sql(f"SELECT omnichan.channel_create({q(channel)}, {q(kind)}, {q(json.dumps(s))}::jsonb)")
        c.sql(f"SELECT omnichan.credentials_set({q(channel)}, {q(json.dumps(credentials))}::jsonb)")
        self.products = {}
        for i in range(1, n_products + 1):
            sku = f"SKU-{i:06d}"
            self.products[sku] = int(c.val(f"SELECT id FROM product_product WHERE default_code = {q(sku)}"))
        for i in range(1, n_linked + 1):
            sku = f"SKU-{i:06d}"
            self.link(sku, link(sku))

        # the channel's first pull starts once its credentials are set (the
        # channel was created before them), and succeeds
        wait_for("the channel's first pull", lambda: self.last_pull() is not None and self.pull_jobs() == 0, 30)
        failed = self.c.sql(f"SELECT j.operation, j.error FROM omnichan.job j JOIN omnichan.channel c "
                            f"  ON c.id = j.channel_id WHERE c.name = {q(channel)} AND j.payload ? 'pull' "
                            f"   AND j.state = 'failed'")
        check("the first pull waited for the credentials and succeeded", not failed, str(failed))

    # -- set-up helpers ---------------------------------------------------------

    def service_product(self, code, name):
        """A service product as Odoo stores it (for shipping/gift/promotion lines)."""
        return int(self.c.val(f"""
            WITH u AS (SELECT res_id AS id FROM ir_model_data WHERE module = 'uom' AND name = 'product_uom_unit'),
                 cat AS (SELECT res_id AS id FROM ir_model_data WHERE module = 'product' AND name = 'product_category_all'),
                 t AS (INSERT INTO product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                                     sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                                     list_price, sale_delay, invoice_policy, sequence)
                       SELECT cat.id, u.id, u.id, 'service', 'service', jsonb_build_object('en_US', {q(name)}),
                              'none', 'no-message', 'no-message', true, true, true, 0, 0, 'order', 1
                         FROM u, cat RETURNING id)
            INSERT INTO product_product (product_tmpl_id, active, default_code)
            SELECT t.id, true, {q(code)} FROM t RETURNING id"""))

    def sale_tax(self, name, amount, included):
        return int(self.c.val(f"""
            INSERT INTO account_tax (company_id, sequence, tax_group_id, country_id, type_tax_use, amount_type,
                                     name, amount, active, price_include, include_base_amount, tax_exigibility)
            SELECT {self.company}, 1, (SELECT t.tax_group_id FROM account_tax t ORDER BY t.id LIMIT 1),
                   (SELECT id FROM res_country WHERE code = 'US'), 'sale', 'percent',
                   jsonb_build_object('en_US', {q(name)}), {amount}, true, {'true' if included else 'false'},
                   false, 'on_invoice'
            RETURNING id"""))

    def link(self, sku, external):
        ext = dict(external)
        ext.setdefault("sku", sku)
        self.c.sql(f"SELECT omnichan.listing_link({q(self.channel)}, {self.products[sku]}, "
                   f"{q(json.dumps(ext))}::jsonb)")

    # -- driving the pull -------------------------------------------------------

    def pull_jobs(self):
        return int(self.c.val(f"SELECT count(*) FROM omnichan.job j JOIN omnichan.channel c ON c.id = j.channel_id "
                              f" WHERE c.name = {q(self.channel)} AND j.state IN ('queued', 'running') "
                              f"   AND j.payload ? 'pull'"))

    def cursor(self):
        return self.c.val(f"SELECT s.order_cursor FROM omnichan.channel_state s JOIN omnichan.channel c "
                          f"  ON c.id = s.channel_id WHERE c.name = {q(self.channel)}")

    def last_pull(self):
        return self.c.val(f"SELECT s.last_pull_at FROM omnichan.channel_state s JOIN omnichan.channel c "
                          f"  ON c.id = s.channel_id WHERE c.name = {q(self.channel)}")

    def pull_now(self, timeout=30.0, expect_cursor_move=None):
        """sync_now, then wait until the pull it starts is over (a pull was
        started after the call, no pull job is left) and nothing is left to
        materialize.  (expect_cursor_move: accepted for compatibility; the
        cursor does not move when the pull happens within the same second.)"""
        before = self.last_pull()
        self.c.sql(f"SELECT omnichan.sync_now({q(self.channel)})")

        def done():
            if self.last_pull() == before or self.pull_jobs() != 0:
                return False
            return self.received() == 0
        return wait_for(f"a pull of {self.channel} to complete", done, timeout)

    def fetch(self, external_id, timeout=20.0):
        self.c.sql(f"SELECT omnichan.fetch_order({q(self.channel)}, {q(external_id)})")
        time.sleep(0.3)
        return wait_for(f"fetch_order {external_id}",
                        lambda: self.pull_jobs() == 0 and self.received() == 0 and
                        int(self.c.val(f"SELECT count(*) FROM omnichan.fetch_request")) == 0, timeout)

    def set_cursor(self, ts_sql):
        self.c.sql(f"SELECT omnichan.set_order_cursor({q(self.channel)}, {ts_sql})")

    def received(self):
        return int(self.c.val(f"SELECT count(*) FROM omnichan.order_inbox i JOIN omnichan.channel c "
                              f"  ON c.id = i.channel_id WHERE c.name = {q(self.channel)} AND i.state = 'received'"))

    def kill_during_commit(self, start, delay_ms=4000, timeout=30.0):
        """Hold the worker between storing an answer's orders and committing
        them (omnichan.debug_pull_commit_delay), call start() (e.g. sync_now),
        and kill -9 the worker inside that window.  Returns True when it was
        killed there; the postmaster then restarts (crash recovery) and a new
        worker re-queues the running job."""
        c = self.c
        c.set_conf(debug_pull_commit_delay=delay_ms)
        time.sleep(1.2)			# the worker reloads its settings at its next loop
        start()

        def sleeping():
            rows = c.sql_ok("SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' "
                            "   AND datname = 'odoo' AND query LIKE '%debug_pull_commit_delay%'", db="postgres") or []
            return int(rows[0][0]) if rows else None
        pid = wait_for("the worker to sleep before committing pulled orders", sleeping, timeout, 0.02)
        c.sql("ALTER SYSTEM RESET omnichan.debug_pull_commit_delay", db="postgres")
        c.sql("SELECT pg_reload_conf()", db="postgres")
        if not pid:
            return False
        os.kill(pid, signal.SIGKILL)
        say(f"killed the worker (pid {pid}) before it committed a page of orders")
        # crash restart of the cluster, then a new worker
        time.sleep(1.0)
        wait_for("the cluster to accept connections again",
                 lambda: c.sql_ok("SELECT 1", db="postgres"), 30)
        return bool(c.wait_worker("odoo", 30, replacing=pid))

    # -- reading the results ----------------------------------------------------

    def inbox(self, external_id):
        rows = self.c.sql(f"SELECT row_to_json(i)::text FROM omnichan.order_inbox i JOIN omnichan.channel c "
                          f"  ON c.id = i.channel_id WHERE c.name = {q(self.channel)} "
                          f"   AND i.external_id = {q(external_id)}")
        return json.loads(rows[0][0]) if rows else None

    def inbox_count(self, state=None):
        cond = f" AND i.state = {q(state)}" if state else ""
        return int(self.c.val(f"SELECT count(*) FROM omnichan.order_inbox i JOIN omnichan.channel c "
                              f"  ON c.id = i.channel_id WHERE c.name = {q(self.channel)}{cond}"))

    def sale_order(self, external_id):
        """The Odoo sale order of a marketplace order, as {column: text}."""
        cols = ", ".join(f"so.{c}::text" for c in SO_COLUMNS)
        rows = self.c.sql(f"SELECT {cols} FROM sale_order so WHERE so.client_order_ref = {q(external_id)} "
                          f"   AND so.origin = {q(self.channel)}")
        if not rows:
            return None
        if len(rows) > 1:
            fatal(f"{len(rows)} sale orders for {external_id}")
        return dict(zip(SO_COLUMNS, rows[0]))

    def sale_order_count(self, external_id=None):
        cond = f" AND client_order_ref = {q(external_id)}" if external_id else ""
        return int(self.c.val(f"SELECT count(*) FROM sale_order WHERE origin = {q(self.channel)}{cond}"))

    def sale_lines(self, external_id):
        """Lines of the order (by sequence, id) as {column: text}."""
        cols = ", ".join(f"l.{c}::text" for c in LINE_COLUMNS)
        rows = self.c.sql(f"SELECT {cols} FROM sale_order_line l JOIN sale_order so ON so.id = l.order_id "
                          f" WHERE so.client_order_ref = {q(external_id)} AND so.origin = {q(self.channel)} "
                          f" ORDER BY l.sequence, l.id")
        return [dict(zip(LINE_COLUMNS, r)) for r in rows]

    def partner(self, partner_id):
        rows = self.c.sql(f"SELECT name, email, street, city, zip, (SELECT code FROM res_country WHERE id = p.country_id), "
                          f"       type, parent_id::text FROM res_partner p WHERE id = {int(partner_id)}")
        if not rows:
            return None
        return dict(zip(("name", "email", "street", "city", "zip", "country", "type", "parent_id"), rows[0]))

    def journal(self, path=None):
        return mockctl.journal(self.port, path=path)

    def check_backfills(self):
        """The channel's order backfills (its first pull went a day back):
        all finished, the first one complete at 100 % (done = total)."""
        rows = self.c.sql(f"SELECT done, total, percent, finished_at IS NOT NULL FROM omnichan.progress "
                          f" WHERE channel = {q(self.channel)} AND operation = 'order_backfill' ORDER BY id")
        check(f"{self.kind}: the first pull was an order backfill and every backfill is finished",
              bool(rows) and all(r[3] == "t" for r in rows), rows)
        check(f"{self.kind}: the first backfill completed at 100 %",
              bool(rows) and rows[0][0] == rows[0][1] and rows[0][2] == "100.0", rows[:1])

    def state(self):
        return mockctl.state(self.port)

    def seed(self, doc):
        mockctl.admin(self.port, "POST", "seed", doc)

    def channel_error(self):
        return self.c.val(f"SELECT s.last_error FROM omnichan.channel_state s JOIN omnichan.channel c "
                          f"  ON c.id = s.channel_id WHERE c.name = {q(self.channel)}")

    def cancel_in_odoo(self, external_id):
        """What Odoo's action_cancel does to the order's state (the bridge is
        not run here): sale_order.state = 'cancel'."""
        self.c.sql(f"UPDATE sale_order SET state = 'cancel' WHERE client_order_ref = {q(external_id)} "
                   f"   AND origin = {q(self.channel)}")

    def wait_cancel_reported(self, external_id, timeout=20.0):
        def reported():
            i = self.inbox(external_id)
            return i if i and (i["cancel_reported_at"] or i["cancel_report_error"]) else None
        return wait_for(f"the cancellation of {external_id} to be reported", reported, timeout)
