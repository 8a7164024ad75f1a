#!/usr/bin/python3
"""push_statistics: the planner knows how few listings are due for a push.

The worker finds the listings to push through listing_push_due_idx, a
partial index on the generated column listing.push_due.  Statistics taken
while many listings were due (autovacuum in the middle of a large push)
make the planner read the listings through the primary key instead,
filtering the whole table on every push cycle: with 100k listings that is
~10 ms per cycle, and a real-time channel under steady traffic missed its
latency target (bench/push.sh: p99 1,037 ms instead of <= 100 ms).  So the
worker analyzes omnichan.listing itself when a channel's queue drains
after a large push.

A throwaway cluster with a sync worker, autovacuum off for
omnichan.listing (so that only the worker analyzes it), the Shopify mock
and a real-time Shopify channel with 6,000 listings.  Checks:

- push_due is true exactly when the target differs from what the
  marketplace accepted and no push is in flight;
- statistics taken while every listing is due make the planner read the
  due listings through the primary key (the case this guards against);
- the push of the 6,000 listings converges, and once the queue drained the
  worker analyzed omnichan.listing: its statistics say that no listing is
  due, and the due-listing query goes through listing_push_due_idx again;
- a push of a few listings does not analyze again;
- with statistics that say the listing table has pages and no rows, the
  worker's results UPDATE reaches the listings through the primary key
  (it scanned the table as the outer side of a nested loop over the
  results: 77 s per transaction with 100k listings in bench/push.sh);
- omnichan.dirty_claim(), with statistics taken while the dirty set was
  empty (a queue table: what autovacuum sees between bursts), claims 6,000
  dirty products through the primary key; its join to the picked rows was
  planned as a nested loop over every pair (100k dirty products: 45 s per
  claim of 5,000, the 70-100 s bench/push.sh waited for targets).
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from runtime_lib import (run, check, mockctl, say, start_cluster,  # noqa: E402
                         wait_for, _cleanups)

TOKEN = "shpat_stat0123456789abcdef"
LOC = "gid://shopify/Location/5550001"
N = 6000

# the shape of the worker's due-listing query (sync.c, QueuePushes)
DUE_QUERY = ("SELECT l.id, l.sku, l.external::text, l.target_qty FROM omnichan.listing l "
             " WHERE l.channel_id = {cid} AND l.push_due AND l.target_qty IS NOT NULL "
             "   AND (l.retry_at IS NULL OR l.retry_at <= now()) "
             " ORDER BY l.id LIMIT 4000 FOR UPDATE SKIP LOCKED")


def item_gid(i):
    return f"gid://shopify/InventoryItem/{41000000 + i}"


def main():
    c = start_cluster("push_statistics", conf=["omnichan.naptime = 1000",
                                               "shared_preload_libraries = 'omnichan,auto_explain'",
                                               "auto_explain.log_min_duration = -1"])
    c.sql(f"SELECT omnichan_test.generate_catalog({N}, 1)")
    c.sql("ALTER TABLE omnichan.listing SET (autovacuum_enabled = off)")

    # 1. push_due's meaning (in a rolled-back transaction)
    c.sql("""SELECT omnichan.channel_create('tmp', 'shopify', jsonb_build_object(
                'shop_domain', 'tmp.myshopify.com', 'location_id', 'gid://shopify/Location/1',
                'active', false))""")
    c.sql("""
INSERT INTO omnichan.listing (channel_id, product_id, sku, target_qty, pushed_qty, push_job_id)
SELECT (SELECT id FROM omnichan.channel WHERE name = 'tmp'), (SELECT min(id) FROM product_product),
       d.name, d.target, d.pushed, d.job
  FROM (VALUES ('differs', 5, 3, NULL::bigint), ('never pushed', 5, NULL, NULL), ('in flight', 5, 3, 77),
               ('equal', 5, 5, NULL), ('no target', NULL, NULL, NULL)) AS d (name, target, pushed, job)""")
    rows = c.sql("SELECT string_agg(sku || '=' || push_due, ',' ORDER BY sku) FROM omnichan.listing "
                 " WHERE channel_id = (SELECT id FROM omnichan.channel WHERE name = 'tmp')")
    c.sql("SELECT omnichan.channel_drop('tmp')")
    check("push_due: true when the target differs and no push is in flight, else false",
          rows == [["differs=true,equal=false,in flight=false,never pushed=true,no target=false"]], rows)

    # 2. the channel, and its 6,000 listings due
    seed = {"access_token": TOKEN, "locations": [LOC],
            "levels": {item_gid(i): {LOC: 999} for i in range(1, N + 1)}}
    proc, port = mockctl.start("shopify", seed=seed)
    _cleanups.append(lambda: mockctl.stop(proc))
    c.sql(f"""SELECT omnichan.channel_create('shop', 'shopify', jsonb_build_object(
                'shop_domain', 'stat.myshopify.com', 'location_id', '{LOC}',
                'push_interval', 0, 'endpoint', 'http://127.0.0.1:{port}'))""")
    cid = c.val("SELECT id FROM omnichan.channel WHERE name = 'shop'")
    c.sql("SELECT omnichan.pause('shop')")
    c.sql(f"SELECT omnichan.credentials_set('shop', jsonb_build_object('access_token', '{TOKEN}'))")
    c.sql(f"INSERT INTO omnichan.listing_staging (channel_id, sku, external) "
          f"SELECT {cid}, format('SKU-%s', lpad(i::text, 6, '0')), "
          f"       jsonb_build_object('inventory_item_id', format('gid://shopify/InventoryItem/%s', 41000000 + i)) "
          f"  FROM generate_series(1, {N}) i")
    linked = int(c.val("SELECT omnichan.link_by_sku('shop')"))
    check(f"link_by_sku links the {N} SKUs", linked == N, str(linked))
    got = wait_for("the targets of the paused channel", lambda: c.val(
        f"SELECT count(*) FROM omnichan.listing WHERE channel_id = {cid} AND target_qty IS NULL") == "0", 60)
    check("the targets of every listing are computed while the channel is paused", got)

    def due_plan():
        plan = "\n".join(r[0] for r in c.sql(f"EXPLAIN {DUE_QUERY.format(cid=cid)}"))
        return plan

    def due_fraction():
        """the share of push_due = true in the planner's statistics"""
        r = c.sql("SELECT most_common_vals::text, most_common_freqs::text FROM pg_stats "
                  " WHERE schemaname = 'omnichan' AND tablename = 'listing' AND attname = 'push_due'")
        if not r:
            return None
        vals = r[0][0].strip("{}").split(",")
        freqs = [float(f) for f in r[0][1].strip("{}").split(",")]
        return sum(f for v, f in zip(vals, freqs) if v in ("t", "true"))

    def analyzed():
        return c.val("SELECT COALESCE(last_analyze::text, '') FROM pg_stat_user_tables "
                     " WHERE relid = 'omnichan.listing'::regclass")

    # statistics taken now, every listing due: what autovacuum may see mid-push
    c.sql("ANALYZE omnichan.listing")
    before = analyzed()
    check("with statistics taken while every listing is due, they say so",
          (due_fraction() or 0) > 0.99, due_fraction())
    c.sql(f"UPDATE omnichan.listing SET pushed_qty = target_qty WHERE channel_id = {cid} AND id % 100 <> 0")
    plan = due_plan()
    say("the due-listing query's plan with those statistics once 60 are left:\n" + plan)
    check("... and make the planner read the due listings without listing_push_due_idx",
          "listing_push_due_idx" not in plan, plan)
    c.sql(f"UPDATE omnichan.listing SET pushed_qty = NULL WHERE channel_id = {cid}")

    # 3. the push, with statistics that say the listing table has pages and
    #    no rows (what ANALYZE records after a channel_drop, before the next
    #    link_by_sku), every plan of the worker logged; then its ANALYZE
    c.sql("UPDATE pg_class SET reltuples = 0 WHERE oid = 'omnichan.listing'::regclass")
    c.sql("ALTER SYSTEM SET auto_explain.log_min_duration = 0", db="postgres")
    c.sql("SELECT pg_reload_conf()", db="postgres")
    time.sleep(1.5)             # the worker reloads at its next loop
    mark = len(c.log_text())
    t0 = time.monotonic()
    c.sql("SELECT omnichan.resume('shop')")
    done = wait_for("every listing accepted", lambda: c.val(
        f"SELECT count(*) FROM omnichan.listing WHERE channel_id = {cid} AND push_due") == "0", 60)
    check(f"the {N} listings are pushed", done)
    say(f"resume -> {N} listings accepted: {time.monotonic() - t0:.2f} s")
    c.sql("ALTER SYSTEM RESET auto_explain.log_min_duration", db="postgres")
    c.sql("SELECT pg_reload_conf()", db="postgres")
    plans = [p for p in c.log_text()[mark:].split("duration:") if "pushed_qty = CASE WHEN r.ok" in p
             and "Update on listing l" in p]
    bad = [p for p in plans if "Seq Scan on listing" in p]
    say(f"{len(plans)} plans of the results UPDATE logged, {len(bad)} with a sequential scan of the listings")
    check("the results of the pushes reach their listings through the primary key, not by scanning "
          "the table (statistics say it is empty)", plans and not bad, (bad or plans or ["none logged"])[0][:3000])
    after = wait_for("the worker's ANALYZE", lambda: (lambda a: a if a != before else None)(analyzed()), 10)
    check("once the queue drained, the worker analyzed omnichan.listing", after is not None, (before, after))
    frac = due_fraction()
    check("its statistics say no listing is due", frac is not None and frac < 0.01, frac)
    plan = due_plan()
    check("and the due-listing query goes through listing_push_due_idx again",
          "listing_push_due_idx" in plan, plan)

    # 4. a small push does not analyze again
    at = analyzed()
    c.sql("UPDATE stock_quant SET quantity = quantity + 3 WHERE id = (SELECT min(q.id) FROM stock_quant q "
          "  JOIN stock_location l ON l.id = q.location_id AND l.usage = 'internal' "
          "  JOIN product_product p ON p.id = q.product_id AND p.default_code = 'SKU-000010')")
    got = wait_for("the change to be pushed", lambda: c.val(
        f"SELECT count(*) FROM omnichan.listing WHERE channel_id = {cid} AND sku = 'SKU-000010' "
        "   AND pushed_at > now() - interval '10 s' AND NOT push_due") == "1", 10)
    check("a stock change is pushed", got)
    time.sleep(1.5)
    check("a push of one listing does not analyze the table again", analyzed() == at, (at, analyzed()))


    # 5. the dirty-set claim with statistics taken while the set was empty
    wait_for("the dirty set to drain", lambda: c.val("SELECT count(*) FROM omnichan.stock_dirty") == "0", 20)
    # what ANALYZE records between two bursts: pages full of dead rows, none live
    c.sql("ALTER TABLE omnichan.stock_dirty SET (autovacuum_enabled = off)")
    c.sql(f"BEGIN; INSERT INTO omnichan.stock_dirty (product_id, dirty_since) "
          f"SELECT id, now() FROM product_product ORDER BY id LIMIT {N}; "
          f"DELETE FROM omnichan.stock_dirty; COMMIT")
    c.sql("ANALYZE omnichan.stock_dirty")
    st = c.sql("SELECT reltuples, relpages FROM pg_class WHERE oid = 'omnichan.stock_dirty'::regclass")
    check("stock_dirty's statistics say it has pages and no rows", st and st[0][0] == "0" and int(st[0][1]) > 0, st)
    mark = len(c.log_text())
    rows = c.sql(f"""
BEGIN;
INSERT INTO omnichan.stock_dirty (product_id, dirty_since)
SELECT id, now() - id * interval '1 ms' FROM product_product ORDER BY id LIMIT {N};
LOAD 'auto_explain';
SET auto_explain.log_min_duration = 0;
SET auto_explain.log_nested_statements = on;
SELECT count(*) FROM omnichan.dirty_claim(2000);
ROLLBACK;""")
    c.sql("ALTER TABLE omnichan.stock_dirty RESET (autovacuum_enabled)")
    log = c.log_text()[mark:]
    at = log.find("Update on stock_dirty d")
    plan = log[max(0, log.rfind("duration:", 0, at)):log.find("duration:", at + 1)] if at >= 0 else ""
    say("dirty_claim's UPDATE, planned with statistics that say stock_dirty is empty:\n" + plan.strip())
    check(f"dirty_claim with statistics of an empty set and {N} dirty products claims through the "
          "primary key, not by a join that compares every pair",
          "Index Cond: (product_id = ANY" in plan and "Join Filter" not in plan
          and "Nested Loop" not in plan, plan or log[-2000:])


if __name__ == "__main__":
    run(main)
