#!/usr/bin/env bash
# bench/orders.sh -- order pull throughput: N eBay orders pulled by the sync
# worker from the eBay mock and materialized into Odoo quotations, end to
# end, against the same orders stored and materialized by plain SQL calls
# (omnichan.inbox_upsert + omnichan.materialize_orders from psql, no HTTP).
#
#   bash bench/orders.sh      # as root on Debian 12; ~8-12 minutes
#
# Builds and installs omnichan (test/lib.sh), starts a throwaway cluster in
# bench/.run/orders (shared_preload_libraries = omnichan, pg_stat_statements)
# with two copies of the Odoo 17 fixture: "bench", where the sync worker runs
# and one eBay channel pulls from test/mock/marketplaces/ebay.py, and
# "bench_base" (no worker) for the baseline.  Both get the same catalog
# (ORD_PRODUCTS products, every SKU linked), the same channel settings
# (shipping product, a 10 % price-excluded tax) and, per run, the same N
# orders: 1 to 3 lines (2 on average), 60 % of them with a shipping charge,
# buyers repeating (N * 0.6 distinct buyers).
#
# One run, pull side: the mock is reset and seeded with the run's orders
# (pre-serialized: the mock's own time is reported), sync_now, and the clock
# stops at the last order's materialized_at.  Baseline side: the normalized
# orders the eBay connector produces (generated here with the same fields) in
# pages of 200, one transaction per page of inbox_upsert calls, then
# materialize_orders(NULL, 200) transactions until none is left — the same
# batch sizes as the worker.  Runs alternate pull and baseline; medians.
#
# Where the pull's time goes: HTTP = the requests' durations (sync_log; the
# next page is fetched while the worker materializes, so it overlaps); parse =
# the connector reading a page into normalized orders, store = _inbox_store of
# the page, materialize = materialize_orders transactions (all three timed
# by the worker, which logs them at DEBUG1: ALTER DATABASE bench SET
# log_min_messages = debug1); the rest of the elapsed time is the worker's
# loop (claiming, recording outcomes, push cycle: the new orders' demand
# moves the stock targets of their products, reported apart) and waiting.
# The first run starts from an empty inbox (plans made while the tables are
# small), the next ones from the previous runs' orders.
# pg_stat_statements of each run is kept in bench/.run/orders-pgss-RUN.txt.
#
# Target (PASS/MISS, never fails the run): >= 1,000 orders/s end to end.
# The table is printed and written to bench/.run/orders-results.txt.  Exit 0
# whatever the verdict, 1 when an order is missing or duplicated, 2 on setup
# errors.
#
# Knobs:
#   ORD_N=10000          orders per run
#   ORD_RUNS=3           runs of each side (median)
#   ORD_PRODUCTS=1000    catalog size (all linked)
#   ORD_TIMEOUT=900      seconds one pull may take
#   ORD_PERF=1           perf record the worker during one extra pull run
#                        (bench/.run/orders-perf.txt)
#   ORD_NOBUILD=1        use the installed omnichan
#   ORD_KEEP=1           leave the cluster and the mock running
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/lib.sh
. "$BENCH_DIR/../test/lib.sh"

export ORD_N=${ORD_N:-10000}
export ORD_RUNS=${ORD_RUNS:-3}
export ORD_PRODUCTS=${ORD_PRODUCTS:-1000}
export ORD_TIMEOUT=${ORD_TIMEOUT:-900}
export ORD_PERF=${ORD_PERF:-0}
NOBUILD=${ORD_NOBUILD:-0}
export ORD_KEEP=${ORD_KEEP:-0}
RUN=$OC_ROOT/bench/.run
CL=$RUN/orders
export ORD_RUN=$RUN ORD_CL=$CL ORD_DB=bench ORD_BDB=bench_base
mkdir -p "$RUN"

cleanup() {
	if [ -f "$RUN/orders-mock.pid" ]; then
		if [ "$ORD_KEEP" = 1 ]; then
			oc_log "left running: the eBay mock (pid $(cat "$RUN/orders-mock.pid"), port $(cat "$RUN/orders-mock.port"))"
		else
			kill "$(cat "$RUN/orders-mock.pid")" 2>/dev/null || true
			rm -f "$RUN/orders-mock.pid"
		fi
	fi
	if [ "$ORD_KEEP" = 1 ]; then
		oc_log "left running: PGHOST=$CL PGPORT=5432 PGUSER=postgres psql -d bench (or bench_base)"
		return
	fi
	oc_cluster_stop "$CL"
}
trap cleanup EXIT

oc_install_packages
command -v perf >/dev/null || [ "$ORD_PERF" != 1 ] || oc_die "ORD_PERF=1 needs perf"
ORD_BUILT_FROM=$(git -C "$OC_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
git -C "$OC_ROOT" diff --quiet HEAD -- src sql 2>/dev/null || ORD_BUILT_FROM="$ORD_BUILT_FROM+changes"
export ORD_BUILT_FROM

oc_cluster_stop "$CL"
rm -rf "$CL"
# every checkout installs into the same PostgreSQL: build, install and
# CREATE EXTENSION while no test run does (test/run.sh holds this lock)
exec 9>"${OC_TEST_LOCK:-/tmp/omnichan-test.lock}"
oc_log "waiting for the test lock (a test run may be installing omnichan)"
flock 9
if [ "$NOBUILD" != 1 ]; then
	oc_build_install || oc_die "build failed"
fi
oc_log "starting a cluster in $CL"
oc_cluster_start "$CL" \
	"shared_preload_libraries = 'omnichan, pg_stat_statements'" \
	"shared_buffers = 512MB" \
	"work_mem = 32MB" \
	"max_wal_size = 4GB" \
	"checkpoint_timeout = 30min" \
	"jit = off" \
	"pg_stat_statements.track = top" \
	"pg_stat_statements.max = 2000" \
	"omnichan.databases = ''" \
	"omnichan.http_allow_plain_loopback = on" ||
	oc_die "cluster start failed"
for db in bench bench_base; do
	oc_log "$db: loading the Odoo 17 fixture, CREATE EXTENSION omnichan, generate_catalog($ORD_PRODUCTS, 1)"
	oc_create_fixture_db "$db" || oc_die "fixture load failed"
	oc_psql "$db" -c "CREATE EXTENSION omnichan" >/dev/null || oc_die "CREATE EXTENSION failed"
	oc_psql "$db" -At -c "SELECT omnichan_test.generate_catalog($ORD_PRODUCTS, 1)" >/dev/null ||
		oc_die "catalog generation failed"
done
oc_psql bench -c "CREATE EXTENSION pg_stat_statements" >/dev/null
flock -u 9

# ------------------------------------------------------------------ driver
/usr/bin/python3 - <<'PY' || exit $?
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.environ["OC_ROOT"]
sys.path.insert(0, os.path.join(ROOT, "test", "mock"))
import mockctl  # noqa: E402

PSQL = os.path.join(os.environ["OC_PGBIN"], "psql")
N = int(os.environ["ORD_N"])
RUNS = int(os.environ["ORD_RUNS"])
PRODUCTS = int(os.environ["ORD_PRODUCTS"])
TIMEOUT = float(os.environ["ORD_TIMEOUT"])
PERF = os.environ["ORD_PERF"] == "1"
KEEP = os.environ["ORD_KEEP"] == "1"
RUN = os.environ["ORD_RUN"]
CL = os.environ["ORD_CL"]
DB = os.environ["ORD_DB"]
BDB = os.environ["ORD_BDB"]
PAGE = 200                  # eBay's page (EBAY_ORDERS_LIMIT) and the worker's materialize batch
TARGET = 1000.0
CREDS = {"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
         "refresh_token": "ebay-refresh-r3fr3sh"}
_t0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - _t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def sql(query, db=DB, check=True):
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f", "-d", db],
                       input=query, capture_output=True, text=True)
    if r.returncode != 0:
        if check:
            raise RuntimeError(f"SQL failed: {query[:400]}\n{r.stderr}")
        return None
    return [line.split("\x1f") for line in r.stdout.splitlines() if line != ""]


def val(query, db=DB):
    rows = sql(query, db)
    return rows[-1][0] if rows else None


def jq(obj):
    return "'" + json.dumps(obj).replace("'", "''") + "'::jsonb"


def wait_for(what, fn, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def cpu(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


# ------------------------------------------------------------------ orders

def money(v, cur):
    return {"value": f"{v:.2f}", "currency": cur}


def make_orders(run, cur):
    """The run's eBay Fulfillment API orders, and the normalized orders the
    eBay connector makes of them (src/connectors/ebay.c, EbayNormalize)."""
    now = time.time()
    buyers = max(1, int(N * 0.6))
    ebay, norm = [], []
    for i in range(N):
        oid = f"R{run}-{i:05d}"
        b = (i * 7919) % buyers
        buyer, name = f"r{run}-buyer-{b}", f"Buyer {run}-{b}"
        email = f"{buyer}@members.ebay.com"
        nlines = 1 + (i * 31 % 3)                    # 1, 2 or 3 lines: 2 on average
        ship = 4.99 if i % 5 < 3 else 0.0
        items, nlines_n = [], []
        sub = tax_total = 0.0
        for n in range(1, nlines + 1):
            k = (i * 13 + n * 101) % PRODUCTS + 1
            sku, qty, unit = f"SKU-{k:06d}", 1 + (i + n) % 3, 3.0 + (i * 7 + n) % 40 + 0.99
            cost = round(qty * unit, 2)
            tax = round(cost * 0.10, 2)
            sub += cost
            tax_total += tax
            items.append({"lineItemId": f"{oid}-L{n}", "legacyItemId": f"1100{n}", "sku": sku,
                          "title": f"Item {sku}", "quantity": qty, "lineItemCost": money(cost, cur),
                          "taxes": [{"amount": money(tax, cur), "taxType": "STATE_SALES_TAX"}],
                          "lineItemFulfillmentStatus": "NOT_STARTED"})
            nlines_n.append({"external_id": f"{oid}-L{n}", "sku": sku, "quantity": qty,
                             "unit_price": f"{cost / qty:.6f}", "tax": f"{tax:.2f}"})
        ship_tax = round(ship * 0.10, 2)
        total = round(sub + ship + tax_total + ship_tax, 2)
        created = iso(now - 3600 + i * 0.1)
        o = {"orderId": oid, "legacyOrderId": f"L{oid}", "creationDate": created,
             "lastModifiedDate": iso(now - 2),
             "orderFulfillmentStatus": "NOT_STARTED", "orderPaymentStatus": "PAID",
             "cancelStatus": {"cancelState": "NONE_REQUESTED", "cancelRequests": []},
             "buyer": {"username": buyer, "buyerRegistrationAddress": {
                 "fullName": name, "email": email, "primaryPhone": {"phoneNumber": "+1 555 0100"}}},
             "pricingSummary": {"priceSubtotal": money(sub, cur), "deliveryCost": money(ship, cur),
                                "tax": money(tax_total + ship_tax, cur), "total": money(total, cur)},
             "totalMarketplaceFee": money(round(total * 0.13, 2), cur),
             "fulfillmentStartInstructions": [{"shippingStep": {
                 "shipTo": {"fullName": name, "contactAddress": {
                     "addressLine1": f"{1 + b % 200} Main Street", "city": "Springfield",
                     "stateOrProvince": "IL", "postalCode": "62701", "countryCode": "US"},
                     "primaryPhone": {"phoneNumber": "+1 555 0100"}},
                 "shippingCarrierCode": "USPS", "shippingServiceCode": "USPSPriority"}}],
             "lineItems": items}
        ebay.append(o)
        totals = {"items": f"{sub:.2f}", "shipping": f"{ship:.2f}", "tax": f"{tax_total + ship_tax:.2f}",
                  "total": f"{total:.2f}"}
        norm.append({"external_id": oid, "status": "NOT_STARTED", "cancelled": False, "ordered_at": created,
                     "currency": cur,
                     "buyer": {"id": buyer, "name": name, "email": email, "phone": "+1 555 0100"},
                     "shipping_address": {"name": name, "street": o["fulfillmentStartInstructions"][0]
                                          ["shippingStep"]["shipTo"]["contactAddress"]["addressLine1"],
                                          "city": "Springfield", "zip": "62701", "state": "IL",
                                          "country": "US", "phone": "+1 555 0100"},
                     "totals": totals, "fees": {"marketplace_fee": f"{round(total * 0.13, 2):.2f}"},
                     "sla": [], "lines": nlines_n, "raw": o})
    return ebay, norm


# ------------------------------------------------------------------ set-up

SETUP = """
CREATE TEMP TABLE ids AS
WITH u AS (SELECT res_id AS id FROM ir_model_data WHERE module = 'uom' AND name = 'product_uom_unit'),
     cat AS (SELECT res_id AS id FROM ir_model_data WHERE module = 'product' AND name = 'product_category_all'),
     t AS (INSERT INTO product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                         sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                         list_price, sale_delay, invoice_policy, sequence)
           SELECT cat.id, u.id, u.id, 'service', 'service', jsonb_build_object('en_US', 'Marketplace shipping'),
                  'none', 'no-message', 'no-message', true, true, true, 0, 0, 'order', 1
             FROM u, cat RETURNING id),
     p AS (INSERT INTO product_product (product_tmpl_id, active, default_code)
           SELECT t.id, true, 'OC-SHIP' FROM t RETURNING id),
     company AS (SELECT res_id AS id FROM ir_model_data WHERE module = 'base' AND name = 'main_company'),
     tax AS (INSERT INTO account_tax (company_id, sequence, tax_group_id, country_id, type_tax_use, amount_type,
                                      name, amount, active, price_include, include_base_amount, tax_exigibility)
             SELECT company.id, 1, (SELECT t.tax_group_id FROM account_tax t ORDER BY t.id LIMIT 1),
                    (SELECT id FROM res_country WHERE code = 'US'), 'sale', 'percent',
                    jsonb_build_object('en_US', 'bench 10 percent'), 10, true, false, false, 'on_invoice'
               FROM company RETURNING id)
SELECT (SELECT id FROM p) AS ship, (SELECT id FROM tax) AS tax, (SELECT id FROM company) AS company,
       (SELECT res_id FROM ir_model_data WHERE module = 'stock' AND name = 'warehouse0') AS wh;
SELECT omnichan.channel_create('shop', 'ebay', @SETTINGS@ || jsonb_build_object(
           'company_id', company, 'warehouse_ids', jsonb_build_array(wh), 'default_warehouse_id', wh,
           'shipping_product_id', ship, 'tax_id', tax))
  FROM ids;
SELECT omnichan.pause('shop');
SELECT omnichan.credentials_set('shop', @CREDS@);
INSERT INTO omnichan.listing_staging (channel_id, sku, external)
SELECT omnichan._channel_id('shop'), 'SKU-' || lpad(i::text, 6, '0'), '{}'::jsonb
  FROM generate_series(1, @N@) i;
SELECT 'linked', omnichan.link_by_sku('shop');
SELECT 'currency', cu.name FROM ids JOIN res_company co ON co.id = ids.company
  JOIN res_currency cu ON cu.id = co.currency_id;
"""


def setup(db, base):
    settings = {"endpoint": base, "marketplace_id": "EBAY_US",
                "token_endpoint": base + "/identity/v1/oauth2/token",
                "pull_interval": "1 hour", "push_interval": "1 hour"}
    rows = sql(SETUP.replace("@SETTINGS@", jq(settings)).replace("@CREDS@", jq(CREDS))
               .replace("@N@", str(PRODUCTS)), db)
    linked = int([r for r in rows if r[0] == "linked"][0][1])
    if linked != PRODUCTS:
        raise RuntimeError(f"{db}: link_by_sku linked {linked} of {PRODUCTS}")
    sql("CREATE TABLE bench_orders (run int, page int, o jsonb); "
        "CREATE TABLE bench_t (run int, phase text, at timestamptz DEFAULT clock_timestamp()); "
        "VACUUM ANALYZE", db)
    return [r for r in rows if r[0] == "currency"][0][1]


def worker_pid():
    return int(wait_for("the omnichan worker", lambda: val(
        f"SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' AND datname = '{DB}'"), 60))


def worker_on(on):
    """Start (returns its pid) or stop the sync worker of the database."""
    sql(f"ALTER SYSTEM SET omnichan.databases = '{DB if on else ''}'; SELECT pg_reload_conf();", "postgres")
    if on:
        return worker_pid()
    wait_for("the worker to stop", lambda: val(
        f"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'omnichan worker'") == "0", 60, 0.2)
    return None


def idle():
    """No job of the channel queued or running, nothing left to push."""
    return val("SELECT NOT EXISTS (SELECT 1 FROM omnichan.job WHERE state IN ('queued', 'running')) "
               "   AND NOT EXISTS (SELECT 1 FROM omnichan.stock_dirty) "
               "   AND (SELECT order_cursor IS NOT NULL FROM omnichan.channel_state "
               "         WHERE channel_id = omnichan._channel_id('shop'))") == "t"


class Mock:
    def __init__(self):
        seed = {"credentials": CREDS, "token_ttl": 86400,
                "inventory": {f"SKU-{i:06d}": {"quantity": 0} for i in range(1, PRODUCTS + 1)}}
        self.proc, self.port = mockctl.start("ebay", seed=seed)
        with open(os.path.join(RUN, "orders-mock.pid"), "w") as f:
            f.write(str(self.proc.pid))
        with open(os.path.join(RUN, "orders-mock.port"), "w") as f:
            f.write(str(self.port))
        self.base = f"http://127.0.0.1:{self.port}"

    def load(self, orders):
        """Only these orders (a reset keeps the worker's token)."""
        st = mockctl.admin(self.port, "GET", "state", timeout=300)
        mockctl.admin(self.port, "POST", "reset")
        mockctl.admin(self.port, "POST", "seed", {"tokens": st["tokens"], "token_scopes": st["token_scopes"],
                                                  "orders": orders}, timeout=600)
        mockctl.admin(self.port, "DELETE", "journal")


# ------------------------------------------------------------------ one pull

def log_offset():
    return os.path.getsize(os.path.join(CL, "server.log"))


def worker_timings(offset):
    """parse / store / materialize milliseconds the worker logged since offset."""
    t = {"pages": 0, "bytes": 0, "parse": 0.0, "store": 0.0, "materialize": 0.0, "mat_batches": 0}
    with open(os.path.join(CL, "server.log"), "rb") as f:
        f.seek(offset)
        for line in f.read().decode("utf-8", "replace").splitlines():
            if "order pull page of" in line:
                w = line.split("order pull page of ", 1)[1].replace(",", "").split()
                # "<bytes> bytes: <n> orders parse <ms> ms store <ms> ms"
                t["pages"] += 1
                t["bytes"] += int(w[0])
                t["parse"] += float(w[5])
                t["store"] += float(w[8])
            elif "omnichan worker: materialized" in line:
                w = line.split("omnichan worker: materialized ", 1)[1].split()
                t["mat_batches"] += 1
                t["materialize"] += float(w[3])
    return t


def pgss(path):
    rows = sql("SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), "
               "       regexp_replace(left(query, 150), '\\s+', ' ', 'g') "
               "  FROM pg_stat_statements WHERE query NOT LIKE '%bench-poll%' "
               " ORDER BY total_exec_time DESC LIMIT 25")
    with open(path, "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")
    by = {"store": 0.0, "materialize": 0.0, "targets": 0.0}
    for calls, total, mean, q in rows:
        if "_inbox_store" in q:
            by["store"] += float(total)
        elif "materialize_orders" in q:
            by["materialize"] += float(total)
        elif "SET target_qty" in q:
            by["targets"] += float(total)    # the stock push's targets, moved by the new demand
    return by


def pull_run(run, mock, wpid, cur, perf_file=None):
    ebay, norm = make_orders(run, cur)
    say(f"run {run}: seeding the mock with {N} orders")
    mock.load(ebay)
    with open(os.path.join(RUN, "orders-norm.jsonl"), "w") as f:
        for o in norm:
            f.write(json.dumps(o, separators=(",", ":")) + "\n")
    del ebay, norm
    sql("SELECT pg_stat_statements_reset()")
    sync0 = int(val("SELECT coalesce(max(id), 0) FROM omnichan.sync_log"))
    off = log_offset()
    perf = None
    if perf_file:
        perf = subprocess.Popen(["perf", "record", "-g", "-p", str(wpid), "-o", perf_file],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    w0, m0 = cpu(wpid), cpu(mock.proc.pid)
    rows = sql("BEGIN; SELECT omnichan.sync_now('shop'); COMMIT; "
               "SELECT 'T', extract(epoch FROM clock_timestamp());")
    t_commit = float([r for r in rows if r[0] == "T"][0][1])
    deadline = time.monotonic() + TIMEOUT
    like = f"R{run}-%"
    while True:
        time.sleep(0.2)
        done, held = (int(x) for x in sql(
            f"SELECT /* bench-poll */ count(*) FILTER (WHERE state = 'materialized'), "
            f"       count(*) FILTER (WHERE state = 'held') "
            f"  FROM omnichan.order_inbox WHERE external_id LIKE '{like}'")[0])
        if done + held >= N or time.monotonic() > deadline:
            break
    w1, m1 = cpu(wpid), cpu(mock.proc.pid)
    if perf:
        perf.send_signal(2)
        perf.wait()
    last = float(val(f"SELECT /* bench-poll */ extract(epoch FROM max(materialized_at)) FROM omnichan.order_inbox "
                     f" WHERE external_id LIKE '{like}'") or t_commit)
    wait_for("the pull chain to end", lambda: val(
        "SELECT /* bench-poll */ count(*) FROM omnichan.job WHERE state IN ('queued', 'running')") == "0", 60, 0.2)
    elapsed = last - t_commit
    http = sql(f"SELECT /* bench-poll */ operation, count(*), round(sum(duration_ms)::numeric, 1), "
               f"       count(*) FILTER (WHERE outcome <> 'succeeded') "
               f"  FROM omnichan.sync_log WHERE id > {sync0} GROUP BY 1 ORDER BY 1")
    http_ms = sum(float(r[2]) for r in http)
    wt = worker_timings(off)
    ss = pgss(os.path.join(RUN, f"orders-pgss-pull-{run}.txt"))
    first_recv = float(val(f"SELECT /* bench-poll */ extract(epoch FROM min(received_at)) FROM omnichan.order_inbox "
                           f" WHERE external_id LIKE '{like}'") or t_commit)
    res = {"run": run, "done": done, "held": held, "elapsed": elapsed, "rate": done / elapsed if elapsed > 0 else 0,
           "http_ms": http_ms, "requests": sum(int(r[1]) for r in http), "http": http,
           "first_page_ms": (first_recv - t_commit) * 1000,
           "parse_ms": wt["parse"], "store_ms": wt["store"], "materialize_ms": wt["materialize"],
           "pages": wt["pages"], "page_kb": wt["bytes"] / max(1, wt["pages"]) / 1024,
           "pgss_store_ms": ss["store"], "pgss_materialize_ms": ss["materialize"], "targets_ms": ss["targets"],
           "worker_cpu": w1 - w0, "mock_cpu": m1 - m0}
    say(f"  pull {run}: {done} materialized, {held} held in {elapsed:.2f} s = {res['rate']:.0f} orders/s; "
        f"HTTP {http_ms:.0f} ms over {res['requests']} requests {[tuple(r) for r in http]}, "
        f"parse {wt['parse']:.0f} ms, store {wt['store']:.0f} ms, materialize {wt['materialize']:.0f} ms "
        f"({wt['pages']} pages of {res['page_kb']:.0f} kB, {wt['mat_batches']} batches); "
        f"worker CPU {res['worker_cpu']:.1f} s, mock CPU {res['mock_cpu']:.1f} s")
    return res


# ------------------------------------------------------------------ one baseline

def base_run(run):
    path = os.path.join(RUN, "orders-norm.jsonl")
    sql(f"TRUNCATE bench_orders;\n"
        f"\\copy bench_orders (o) FROM '{path}' WITH (FORMAT csv, QUOTE e'\\x01', DELIMITER e'\\x02')\n"
        f"UPDATE bench_orders b SET run = {run}, page = x.rn / {PAGE} FROM "
        f"  (SELECT ctid, row_number() OVER () - 1 AS rn FROM bench_orders) x WHERE x.ctid = b.ctid; "
        f"VACUUM ANALYZE bench_orders", BDB)
    pages = (N + PAGE - 1) // PAGE
    script = [f"INSERT INTO bench_t (run, phase) VALUES ({run}, 'start');"]
    for p in range(pages):
        script.append(f"SELECT count(omnichan.inbox_upsert('shop', o)) FROM bench_orders WHERE page = {p};")
    script.append(f"INSERT INTO bench_t (run, phase) VALUES ({run}, 'stored');")
    for _ in range(pages + 1):
        script.append(f"SELECT omnichan.materialize_orders(NULL, {PAGE});")
    script.append(f"INSERT INTO bench_t (run, phase) VALUES ({run}, 'end');")
    sql("\n".join(script), BDB)
    t = {r[0]: float(r[1]) for r in sql(
        f"SELECT phase, extract(epoch FROM at) FROM bench_t WHERE run = {run}", BDB)}
    done, held = (int(x) for x in sql(
        f"SELECT count(*) FILTER (WHERE state = 'materialized'), count(*) FILTER (WHERE state = 'held') "
        f"  FROM omnichan.order_inbox WHERE external_id LIKE 'R{run}-%'", BDB)[0])
    elapsed = t["end"] - t["start"]
    res = {"run": run, "done": done, "held": held, "elapsed": elapsed, "rate": done / elapsed,
           "store_ms": (t["stored"] - t["start"]) * 1000, "materialize_ms": (t["end"] - t["stored"]) * 1000}
    say(f"  baseline {run}: {done} materialized, {held} held in {elapsed:.2f} s = {res['rate']:.0f} orders/s "
        f"(inbox_upsert {res['store_ms']:.0f} ms, materialize_orders {res['materialize_ms']:.0f} ms)")
    return res


def check_same(run):
    """The pull and the baseline made the same Odoo orders (count, lines, totals)."""
    q = (f"SELECT count(DISTINCT so.id), count(l.id), sum(l.price_total), count(DISTINCT so.partner_id) "
         f"  FROM sale_order so JOIN sale_order_line l ON l.order_id = so.id "
         f" WHERE so.client_order_ref LIKE 'R{run}-%'")
    a, b = sql(q)[0], sql(q, BDB)[0]
    return a, b


# ------------------------------------------------------------------ main

def main():
    mock = Mock()
    say(f"eBay mock on port {mock.port}; setting up {DB} and {BDB}")
    cur = setup(DB, mock.base)
    setup(BDB, mock.base)
    sql(f"ALTER DATABASE {DB} SET log_min_messages = debug1; "
        f"ALTER SYSTEM SET omnichan.databases = '{DB}'; SELECT pg_reload_conf();", "postgres")
    wpid = worker_pid()
    sql("SELECT omnichan.resume('shop')")
    wait_for("the first pull and the initial stock push", idle, 300, 0.5)
    say(f"worker pid {wpid}; {N} orders per run, {RUNS} runs, {PRODUCTS} products, company currency {cur}")
    pulls, bases, bad = [], [], []
    for run in range(1, RUNS + 1):
        if run > 1:
            wpid = worker_on(True)
        p = pull_run(run, mock, wpid, cur)
        # the baseline without the worker: an idle worker may not sleep
        # (it spun on a CPU in 15c9902); the pull's last commit is done
        worker_on(False)
        b = base_run(run)
        pulls.append(p)
        bases.append(b)
        a, c = check_same(run)
        if p["done"] != N or b["done"] != N or a[0] != str(N):
            bad.append(f"run {run}: pull {p['done']} materialized ({p['held']} held), "
                       f"baseline {b['done']} ({b['held']} held), {a[0]} sale orders")
        if a != c:
            say(f"  note: run {run}: pull and baseline Odoo orders differ: {a} vs {c}")
    perf_txt = None
    if PERF:
        wpid = worker_on(True)
        data = os.path.join(RUN, "orders-perf.data")
        say("perf: one more pull run")
        pull_run(RUNS + 1, mock, wpid, cur, perf_file=data)
        perf_txt = os.path.join(RUN, "orders-perf.txt")
        with open(perf_txt, "w") as f:
            subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--percent-limit", "0.5",
                            "--sort", "symbol"], stdout=f, stderr=subprocess.DEVNULL)
    if not KEEP:
        mockctl.stop(mock.proc)
        os.unlink(os.path.join(RUN, "orders-mock.pid"))
    report(pulls, bases, perf_txt)
    if bad:
        print("MISSING OR HELD ORDERS:\n  " + "\n  ".join(bad))
        sys.exit(1)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def report(pulls, bases, perf_txt):
    rate, brate = med(pulls, "rate"), med(bases, "rate")
    el = med(pulls, "elapsed") * 1000
    lines = [
        f"bench/orders.sh -- {N} eBay orders (2 lines on average), pulled and materialized end to end; "
        f"median of {len(pulls)} runs",
        f"built from {os.environ.get('ORD_BUILT_FROM', '?')}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| pull end to end (sync_now -> last order materialized) | {el / 1000:.2f} s = {rate:,.0f} orders/s |",
        f"| baseline: inbox_upsert + materialize_orders from psql | {med(bases, 'elapsed'):.2f} s = "
        f"{brate:,.0f} orders/s |",
        f"|   of which inbox_upsert / materialize_orders | {med(bases, 'store_ms'):,.0f} / "
        f"{med(bases, 'materialize_ms'):,.0f} ms |",
        f"| pull: HTTP, {med(pulls, 'requests'):.0f} requests, pages of {med(pulls, 'page_kb'):.0f} kB (sum of "
        f"durations, which run on while the worker is in SQL) | {med(pulls, 'http_ms'):,.0f} ms |",
        f"| pull: parse (connector + normalization, in the worker) | {med(pulls, 'parse_ms'):,.0f} ms |",
        f"| pull: store (_inbox_store, in the outcome transactions) | {med(pulls, 'store_ms'):,.0f} ms |",
        f"| pull: materialize (materialize_orders transactions) | {med(pulls, 'materialize_ms'):,.0f} ms |",
        f"| pull: stock targets moved by the new demand (push side, UPDATE listing ... allocate_bulk) | "
        f"{med(pulls, 'targets_ms'):,.0f} ms |",
        f"| pull: rest of the elapsed time (worker loop, waiting for answers) | "
        f"{el - med(pulls, 'parse_ms') - med(pulls, 'store_ms') - med(pulls, 'materialize_ms') - med(pulls, 'targets_ms'):,.0f} ms |",
        f"| pull: sync_now -> first page stored | {med(pulls, 'first_page_ms'):,.0f} ms |",
        f"| CPU: worker / eBay mock | {med(pulls, 'worker_cpu'):.1f} / {med(pulls, 'mock_cpu'):.1f} s |",
        "",
        "| ratio | value | target | verdict |",
        "|---|---:|---:|---|",
        f"| pull orders/s | {rate:,.0f} | >= {TARGET:,.0f} | {'PASS' if rate >= TARGET else 'MISS'} |",
        f"| pull / baseline throughput | {rate / brate:.2f} | (info) | |",
        "",
        "runs (orders/s, pull | baseline): "
        + ", ".join(f"{p['rate']:.0f} | {b['rate']:.0f}" for p, b in zip(pulls, bases)),
    ]
    if perf_txt:
        lines.append(f"perf report of the worker: {perf_txt}")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(RUN, "orders-results.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(RUN, "orders-results.json"), "w") as f:
        json.dump({"pull": pulls, "baseline": bases}, f, indent=1)


main()
PY
exit 0
