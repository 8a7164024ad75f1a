#!/usr/bin/python3
"""bench/push.py -- the measuring part of bench/push.sh (which builds, starts
the cluster, loads the fixture and the catalog, then runs this with PGHOST
etc. set).  See bench/README.md ("bench/push.sh").

Per marketplace, one after the other: the mock (bench/push_mock.py: the
test/mock server plus request counters), a channel created paused with
credentials, the SKUs linked with link_by_sku, targets computed; then
PUSH_RUNS full resyncs (the first one also resumes the channel), each timed
from the commit of full_resync() to the last listing whose pushed_qty =
target_qty was accepted since the request; the mock's quantities are then
compared with the targets.  After the Shopify runs, the real-time latency
test runs on the same channel (push_interval 0).
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PSQL = os.path.join(os.environ.get("OC_PGBIN", "/usr/lib/postgresql/15/bin"), "psql")
DB = os.environ.get("PUSH_DB", "bench")
RUN = os.path.join(HERE, ".run")

N = int(os.environ.get("PUSH_LISTINGS", "100000"))
N_ITEM = int(os.environ.get("PUSH_PER_ITEM_LISTINGS", str(min(N, 10000))))
RUNS = int(os.environ.get("PUSH_RUNS", "3"))
CONC = int(os.environ.get("PUSH_CONC", "16"))
TIMEOUT = float(os.environ.get("PUSH_TIMEOUT", "900"))
KINDS = os.environ.get("PUSH_KINDS", "ebay,shopify,lazada,walmart,amazon,tiktok,etsy").split(",")
NLAT = int(os.environ.get("PUSH_LAT", "200"))
BG_RATE = float(os.environ.get("PUSH_BG_RATE", "20"))
PERF = os.environ.get("PUSH_PERF", "")          # comma list of kinds: perf record one extra run
STATEMENTS = os.environ.get("PUSH_STATEMENTS", "0") == "1"  # pg_stat_statements per kind
TARGET_RATE = 5000
TARGET_P99_MS = 100
BULK = {"ebay", "shopify", "lazada", "walmart", "amazon"}
LOC = "gid://shopify/Location/124656943"

_t0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - _t0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def sql(query, check=True):
    r = subprocess.run([PSQL, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-F", "\x1f",
                        "-d", DB], input=query, capture_output=True, text=True)
    if r.returncode != 0:
        if check:
            raise RuntimeError(f"SQL failed: {query[:400]}\n{r.stderr}")
        return None
    return [line.split("\x1f") for line in r.stdout.splitlines() if line != ""]


def val(query):
    rows = sql(query)
    return rows[-1][0] if rows else None


def wait_for(what, fn, timeout, interval=0.5):
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def proc_stat(pid):
    """(cpu seconds, VmRSS kB, RssAnon kB) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        rss = anon = 0
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("RssAnon:"):
                    anon = int(line.split()[1])
        return cpu, rss, anon
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return 0.0, 0, 0


def worker_pid():
    return int(wait_for("the omnichan worker", lambda: val(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' "
        f"AND datname = '{DB}'"), 60))


# ------------------------------------------------------------------ mocks

class Mock:
    def __init__(self, kind, seed):
        self.dir = tempfile.mkdtemp(prefix=f"push-mock-{kind}-", dir=RUN)
        seed_file = os.path.join(self.dir, "seed.json")
        with open(seed_file, "w") as f:
            json.dump(seed, f)
        port_file = os.path.join(self.dir, "port")
        self.log = open(os.path.join(RUN, f"push-mock-{kind}.log"), "w")
        self.proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "push_mock.py"),
                                      "lazada" if kind == "lazada" else kind, port_file, seed_file],
                                     stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log)
        with open(os.path.join(RUN, "push-mock.pids"), "a") as f:
            f.write(f"{self.proc.pid}\n")
        deadline = time.monotonic() + 60
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the {kind} mock did not start (see {self.log.name})")
            time.sleep(0.05)
        with open(port_file) as f:
            self.port = int(f.read())
        self.base = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, body=None, timeout=120):
        import http.client
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        c.request(method, path, body=None if body is None else json.dumps(body),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        c.close()
        return json.loads(data)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        subprocess.run(["rm", "-rf", self.dir])


# ------------------------------------------------- marketplace set-ups
# (copied from test/integration/push_*.py; one listing per product, the
# SKUs SKU-000001 .. of omnichan_test.generate_catalog)

def sku(i):
    return f"SKU-{i:06d}"


SQL_SKU = "'SKU-' || lpad(i::text, 6, '0')"


def setup_ebay(base, n):
    seed = {"credentials": {"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
                            "refresh_token": "ebay-refresh-r3fr3sh"},
            "token_ttl": 86400,
            "inventory": {sku(i): {"quantity": 999} for i in range(1, n + 1)}}
    settings = {"marketplace_id": "EBAY_US", "token_endpoint": f"{base}/identity/v1/oauth2/token"}
    creds = {"client_id": "ebay-client", "client_secret": "ebay-secret-s3cr3t",
             "refresh_token": "ebay-refresh-r3fr3sh"}
    return seed, settings, creds, "'{}'::jsonb", lambda st: {s: v["quantity"] for s, v in st["inventory"].items()}


def setup_shopify(base, n):
    token = "shpat_s3cr3t0123456789abcdef"
    seed = {"access_token": token, "locations": [LOC],
            "levels": {f"gid://shopify/InventoryItem/{30322000 + i}": {LOC: 999} for i in range(1, n + 1)}}
    settings = {"shop_domain": "example.myshopify.com", "location_id": LOC, "api_version": "2026-04"}
    ext = "jsonb_build_object('inventory_item_id', 'gid://shopify/InventoryItem/' || (30322000 + i))"

    def qty(st):
        return {sku(int(g.rsplit("/", 1)[1]) - 30322000): v[LOC] for g, v in st["levels"].items()}
    return seed, settings, {"access_token": token}, ext, qty


def setup_lazada(base, n):
    token = "50000lzd_access_t0k3n"
    seed = {"app": {"app_key": "100777", "app_secret": "lzd-secret-s3cr3t"},
            "tokens": {token: time.time() + 30 * 86400},
            "skus": {sku(i): {"quantity": 999, "sku_id": str(12760000000 + i), "item_id": str(6710000000 + i)}
                     for i in range(1, n + 1)}}
    settings = {"country": "sg", "endpoint": f"{base}/rest"}
    creds = {"app_key": "100777", "app_secret": "lzd-secret-s3cr3t", "access_token": token}
    ext = "jsonb_build_object('sku_id', (12760000000 + i)::text, 'item_id', (6710000000 + i)::text)"
    return seed, settings, creds, ext, lambda st: {s: v["quantity"] for s, v in st["skus"].items()}


def setup_walmart(base, n):
    node = "10000003527"
    seed = {"credentials": {"client_id": "wm-client", "client_secret": "wm-secret-s3cr3t"},
            "ship_nodes": [node], "feed_processing_s": 0.2, "token_ttl": 86400,
            "inventory": {sku(i): {"amount": 999} for i in range(1, n + 1)}}
    settings = {"ship_node": node, "feed_poll_interval": 0.2, "token_endpoint": f"{base}/v3/token"}
    creds = {"client_id": "wm-client", "client_secret": "wm-secret-s3cr3t"}
    return seed, settings, creds, "'{}'::jsonb", lambda st: {s: v["amount"] for s, v in st["inventory"].items()}


def setup_amazon(base, n):
    seed = {"credentials": {"client_id": "amzn1.application-oa2-client.omnichan",
                            "client_secret": "amzn-secret-s3cr3t", "refresh_token": "Atzr|amzn-refresh-r3fr3sh"},
            "seller_id": "A2EXAMPLE1234", "feed_processing_seconds": 0.2,
            "listings": {sku(i): {"product_type": "PRODUCT", "quantity": 999} for i in range(1, n + 1)}}
    settings = {"seller_id": "A2EXAMPLE1234", "marketplace_ids": ["ATVPDKIKX0DER"],
                "feed_poll_interval": 0.2, "token_endpoint": f"{base}/auth/o2/token"}
    creds = {"lwa_client_id": "amzn1.application-oa2-client.omnichan",
             "lwa_client_secret": "amzn-secret-s3cr3t", "refresh_token": "Atzr|amzn-refresh-r3fr3sh"}
    return seed, settings, creds, "'{}'::jsonb", lambda st: {s: v["quantity"] for s, v in st["listings"].items()}


def setup_tiktok(base, n):
    token = "TTP_access_t0k3n_abcdef"
    # one SKU per TikTok product: the per-item case (one request per product)
    seed = {"app": {"app_key": "tts-app-key", "app_secret": "tts-secret-s3cr3t"},
            "shop_cipher": "ROW_shopcipher01", "tokens": {token: time.time() + 7 * 86400},
            "products": {str(7300000000000000000 + i): {"status": "ACTIVATE", "skus": {
                str(1729000000000000000 + i): {"quantity": 999}}} for i in range(1, n + 1)}}
    settings = {"shop_cipher": "ROW_shopcipher01"}
    creds = {"app_key": "tts-app-key", "app_secret": "tts-secret-s3cr3t", "access_token": token}
    ext = ("jsonb_build_object('product_id', (7300000000000000000 + i)::text, "
           "'sku_id', (1729000000000000000 + i)::text)")

    def qty(st):
        out = {}
        for pid, p in st["products"].items():
            for sid, v in p["skus"].items():
                out[sku(int(sid) - 1729000000000000000)] = v["quantity"]
        return out
    return seed, settings, creds, ext, qty


def setup_etsy(base, n):
    def listing(i):
        return {"products": [{
            "product_id": 5000000 + i, "sku": sku(i), "is_deleted": False,
            "offerings": [{"offering_id": 9000000 + i, "quantity": 999, "is_enabled": True,
                           "is_deleted": False,
                           "price": {"amount": 800, "divisor": 100, "currency_code": "USD"},
                           "readiness_state_id": 7200}],
            "property_values": []}],
            "price_on_property": [], "quantity_on_property": [], "sku_on_property": [],
            "readiness_state_on_property": []}
    seed = {"credentials": {"keystring": "etsykeystring123", "shared_secret": "etsy-shared-s3cr3t",
                            "refresh_token": "12345678.etsy-refresh-r3fr3sh"},
            "token_ttl": 86400,
            "listings": {str(100000 + i): listing(i) for i in range(1, n + 1)}}
    settings = {"shop_id": 424242, "token_endpoint": f"{base}/v3/public/oauth/token"}
    creds = {"keystring": "etsykeystring123", "shared_secret": "etsy-shared-s3cr3t",
             "refresh_token": "12345678.etsy-refresh-r3fr3sh"}
    ext = "jsonb_build_object('listing_id', 100000 + i, 'product_id', 5000000 + i)"

    def qty(st):
        return {p["sku"]: p["offerings"][0]["quantity"]
                for inv in st["listings"].values() for p in inv["products"]}
    return seed, settings, creds, ext, qty


SETUPS = {"ebay": setup_ebay, "shopify": setup_shopify, "lazada": setup_lazada,
          "walmart": setup_walmart, "amazon": setup_amazon, "tiktok": setup_tiktok,
          "etsy": setup_etsy}
DESCR = {"ebay": "bulk 25/call", "shopify": "GraphQL 250/call", "lazada": "bulk 50/call",
         "walmart": "feed 500 + status pages", "amazon": "JSON_LISTINGS_FEED 10000",
         "tiktok": "per product (1 SKU each)", "etsy": "per listing GET+PUT"}


def jq(obj):
    return "'" + json.dumps(obj).replace("'", "''") + "'::jsonb"


def dirty_idle():
    return val("SELECT NOT EXISTS (SELECT 1 FROM omnichan.stock_dirty) "
               "   AND NOT EXISTS (SELECT 1 FROM omnichan.stock_dirty_log)") == "t"


# ------------------------------------------------------------ one resync

def resync_run(kind, ch, cid, n, wpid, mock, first, perf_file=None):
    mock.call("DELETE", "/_mock/bench")
    perf = None
    if perf_file:
        perf = subprocess.Popen(["perf", "record", "-g", "-p", str(wpid), "-o", perf_file],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
    w0 = proc_stat(wpid)
    m0 = proc_stat(mock.proc.pid)
    win0 = time.monotonic()
    rows = sql(f"BEGIN; SELECT omnichan.full_resync('{ch}'); "
               + (f"SELECT omnichan.resume('{ch}'); " if first else "")
               + "SELECT 'S', extract(epoch FROM now()); COMMIT; "
               "SELECT 'T', extract(epoch FROM clock_timestamp());")
    s_epoch = float([r for r in rows if r[0] == "S"][0][1])
    t_commit = float([r for r in rows if r[0] == "T"][0][1])
    rss_max = anon_max = 0
    anon_first = None
    deadline = time.monotonic() + TIMEOUT
    done = 0
    while True:
        time.sleep(0.5)
        _, rss, anon = proc_stat(wpid)
        rss_max, anon_max = max(rss_max, rss), max(anon_max, anon)
        if anon_first is None:
            anon_first = anon
        done = int(val(f"SELECT count(*) FROM omnichan.listing WHERE channel_id = {cid} "
                       f"AND pushed_at >= to_timestamp({s_epoch}) AND pushed_qty = target_qty"))
        if done >= n or time.monotonic() > deadline:
            break
    w1 = proc_stat(wpid)
    m1 = proc_stat(mock.proc.pid)
    window = time.monotonic() - win0
    if perf:
        perf.send_signal(2)
        perf.wait()
    last = float(val(f"SELECT extract(epoch FROM max(pushed_at)) FROM omnichan.listing "
                     f"WHERE channel_id = {cid} AND pushed_at >= to_timestamp({s_epoch})"))
    elapsed = last - t_commit
    counts = mock.call("GET", "/_mock/bench")
    jobs = val(f"SELECT count(*) || ' jobs, ' || count(*) FILTER (WHERE state <> 'succeeded') || ' not succeeded, '"
               f" || coalesce(sum(attempts - 1), 0) || ' retries' FROM omnichan.job "
               f"WHERE channel_id = {cid} AND created_at >= to_timestamp({s_epoch})")
    # the resync's end as the worker saw it (request cleared, progress row finished)
    try:
        wait_for("the resync to be finished", lambda: val(
            f"SELECT full_resync_requested_at IS NULL FROM omnichan.channel_state WHERE channel_id = {cid}") == "t",
            30, 0.2)
    except RuntimeError as e:
        say(f"  ({e})")
    wait_for("the channel's queue to drain", lambda: val(
        f"SELECT count(*) FROM omnichan.job WHERE channel_id = {cid} AND state IN ('queued', 'running')") == "0",
        60, 0.2)
    res = {"done": done, "n": n, "elapsed": elapsed, "rate": done / elapsed if elapsed > 0 else 0,
           "requests": counts["requests"], "by_route": counts["by_route"],
           "req_per_1k": counts["requests"] * 1000.0 / n,
           "worker_cpu": w1[0] - w0[0], "mock_cpu": m1[0] - m0[0], "window": window,
           "rss_max_mb": rss_max / 1024, "anon_max_mb": anon_max / 1024,
           "anon_first_mb": (anon_first or 0) / 1024, "anon_last_mb": w1[2] / 1024, "jobs": jobs}
    say(f"  {kind}: {done}/{n} in {elapsed:.2f} s = {res['rate']:.0f} listings/s; "
        f"{counts['requests']} requests ({res['req_per_1k']:.1f}/1000) {counts['by_route']}; "
        f"worker CPU {res['worker_cpu']:.1f} s, mock CPU {res['mock_cpu']:.1f} s; "
        f"worker VmRSS max {res['rss_max_mb']:.0f} MB, RssAnon max {res['anon_max_mb']:.0f} MB; {jobs}")
    return res


def check_mock(kind, cid, mock, qty_of):
    state = mock.call("GET", "/_mock/state", timeout=300)
    got = qty_of(state)
    want = {r[0]: int(r[1]) for r in sql(f"SELECT sku, target_qty FROM omnichan.listing WHERE channel_id = {cid}")}
    bad = [s for s, q in want.items() if got.get(s) != q]
    return len(want), len(bad), bad[:3]


# ----------------------------------------------------- real-time latency

def latency_test(ch, cid, mock):
    say(f"latency: {NLAT} single changes on the real-time Shopify channel under ~{BG_RATE:g} changes/s")
    sql(f"""
DROP TABLE IF EXISTS public.bench_rt_m, public.bench_rt_bg, public.bench_rt_c;
CREATE TABLE public.bench_rt_m AS
SELECT row_number() OVER (ORDER BY l.id) AS i, l.product_id AS pid,
       l.external ->> 'inventory_item_id' AS item, q.qid
  FROM omnichan.listing l
  CROSS JOIN LATERAL (SELECT min(q.id) AS qid FROM stock_quant q
                        JOIN stock_location loc ON loc.id = q.location_id AND loc.usage = 'internal'
                       WHERE q.product_id = l.product_id) q
 WHERE l.channel_id = {cid} AND l.target_qty > 0 AND q.qid IS NOT NULL
 ORDER BY l.id LIMIT {NLAT};
CREATE TABLE public.bench_rt_bg AS
SELECT row_number() OVER () AS n, q.qid
  FROM (SELECT l.product_id FROM omnichan.listing l WHERE l.channel_id = {cid}
          AND l.product_id NOT IN (SELECT pid FROM public.bench_rt_m)) l
  CROSS JOIN LATERAL (SELECT min(q.id) AS qid FROM stock_quant q
                        JOIN stock_location loc ON loc.id = q.location_id AND loc.usage = 'internal'
                       WHERE q.product_id = l.product_id) q
 WHERE q.qid IS NOT NULL;
CREATE UNIQUE INDEX ON public.bench_rt_bg (n);
CREATE TABLE public.bench_rt_c (i int, committed double precision, before int, expected int);
""")
    items = [r[0] for r in sql("SELECT item FROM public.bench_rt_m ORDER BY i")]
    nbg = int(val("SELECT count(*) FROM public.bench_rt_bg"))
    mock.call("POST", "/_mock/bench", {"watch": items})
    mock.call("DELETE", "/_mock/bench")
    bg_seconds = NLAT * 0.075 + 8
    period = 1.0 / BG_RATE
    ticks = int(bg_seconds / period)
    bg = subprocess.Popen([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", DB], stdin=subprocess.PIPE,
                          stdout=subprocess.DEVNULL, stderr=open(os.path.join(RUN, "push-bg.err"), "w"), text=True)
    bg.stdin.write(f"""
DO $$
DECLARE t0 timestamptz := clock_timestamp(); pick bigint;
BEGIN
  FOR k IN 1..{ticks} LOOP
    pick := 1 + floor(random() * {nbg})::bigint;
    UPDATE stock_quant SET quantity = quantity + (CASE WHEN random() < 0.5 THEN 1 ELSE -1 END)
     WHERE id = (SELECT qid FROM public.bench_rt_bg WHERE n = pick);
    COMMIT;
    PERFORM pg_sleep(greatest(0, extract(epoch FROM t0 + k * interval '{period} s' - clock_timestamp())));
  END LOOP;
END $$;
""")
    bg.stdin.close()
    w0 = proc_stat(WPID)
    time.sleep(3)
    sql(f"""
DO $$
DECLARE r record; b int; e int; ts double precision;
  ii int[] := '{{}}'; tt double precision[] := '{{}}'; bb int[] := '{{}}'; ee int[] := '{{}}';
BEGIN
  FOR r IN SELECT * FROM public.bench_rt_m ORDER BY i LOOP
    SELECT quantity INTO b FROM omnichan.allocate(r.pid) WHERE channel = '{ch}';
    UPDATE stock_quant SET quantity = quantity + 1 WHERE id = r.qid;
    COMMIT;
    ts := extract(epoch FROM clock_timestamp());
    SELECT quantity INTO e FROM omnichan.allocate(r.pid) WHERE channel = '{ch}';
    ii := ii || r.i::int; tt := tt || ts; bb := bb || b; ee := ee || e;
    PERFORM pg_sleep(0.05 + random() * 0.05);
  END LOOP;
  INSERT INTO public.bench_rt_c SELECT * FROM unnest(ii, tt, bb, ee);
END $$;
""")
    bg.wait()
    w1 = proc_stat(WPID)
    time.sleep(1.0)
    applied = mock.call("GET", "/_mock/bench")
    bg_done = applied["requests"]
    lat = []
    missing = unchanged = 0
    for i, committed, before, expected in sql("SELECT i, committed, before, expected FROM public.bench_rt_c ORDER BY i"):
        committed, before, expected = float(committed), int(before), int(expected)
        if before == expected:
            unchanged += 1
            continue
        hits = [t for t, q in applied["applied"].get(items[int(i) - 1], []) if q == expected and t >= committed - 0.001]
        if not hits:
            missing += 1
            continue
        lat.append((min(hits) - committed) * 1000)
    lat.sort()
    out = {"n": len(lat), "missing": missing, "unchanged": unchanged, "requests": bg_done,
           "worker_cpu": w1[0] - w0[0], "wall": bg_seconds}
    if lat:
        out["median"] = statistics.median(lat)
        out["p99"] = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))]
        out["max"] = lat[-1]
    say(f"  commit -> mock applied: median {out.get('median', float('nan')):.1f} ms, "
        f"p99 {out.get('p99', float('nan')):.1f} ms, max {out.get('max', float('nan')):.1f} ms "
        f"({len(lat)} measured, {missing} never applied, {unchanged} without a change); "
        f"{bg_done} Shopify calls during the test")
    return out


# ------------------------------------------------------------------ main

WPID = None


def statements_reset():
    """PUSH_STATEMENTS=1: forget the statements counted so far."""
    if STATEMENTS:
        sql("CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()")


def statements_dump(name):
    """PUSH_STATEMENTS=1: the statements that took the most time since the
    last reset (the worker's own included: track = all), into
    bench/.run/push-statements-NAME.txt."""
    if not STATEMENTS:
        return
    rows = sql("SELECT calls, round(total_exec_time::numeric, 1), round(mean_exec_time::numeric, 3), rows, "
               "       regexp_replace(query, '\\s+', ' ', 'g') "
               "  FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25")
    path = os.path.join(RUN, f"push-statements-{name}.txt")
    with open(path, "w") as f:
        f.write("calls\ttotal ms\tmean ms\trows\tstatement\n")
        for r in rows:
            f.write("\t".join(r) + "\n")
    say(f"  the statements that took the most time: {path}")


def main():
    global WPID
    WPID = worker_pid()
    say(f"worker pid {WPID}; N = {N} (per-item marketplaces: {N_ITEM}), {RUNS} runs each, "
        f"{CONC} requests in flight per channel")
    results = {}
    latency = None
    for kind in KINDS:
        n = N if kind in BULK else N_ITEM
        say(f"{kind}: starting the mock with {n} SKUs")
        seed, settings, creds, ext, qty_of = SETUPS[kind]("http://127.0.0.1:PORT", n)
        mock = Mock(kind, seed)
        del seed
        try:
            settings = {k: (v.replace("127.0.0.1:PORT", f"127.0.0.1:{mock.port}") if isinstance(v, str) else v)
                        for k, v in settings.items()}
            settings.setdefault("endpoint", mock.base)
            settings["push_interval"] = 0
            ch = f"bench-{kind}"
            t = time.monotonic()
            rows = sql(f"""
BEGIN;
SELECT omnichan.channel_create('{ch}', '{kind}', {jq(settings)});
SELECT omnichan.pause('{ch}');
SELECT omnichan.credentials_set('{ch}', {jq(creds)});
SELECT omnichan.rate_limit_set('{ch}', '*', 100000, 100000, {CONC});
INSERT INTO omnichan.listing_staging (channel_id, sku, external)
SELECT omnichan._channel_id('{ch}'), {SQL_SKU}, {ext} FROM generate_series(1, {n}) i;
SELECT 'L', clock_timestamp();
SELECT 'linked', omnichan.link_by_sku('{ch}');
SELECT 'L', clock_timestamp();
COMMIT;
SELECT 'cid', id FROM omnichan.channel WHERE name = '{ch}';
""")
            cid = int([r for r in rows if r[0] == "cid"][0][1])
            linked = int([r for r in rows if r[0] == "linked"][0][1])
            if linked != n:
                raise RuntimeError(f"{kind}: link_by_sku linked {linked} of {n}")
            say(f"{kind}: channel {ch} (id {cid}) paused, {n} listings linked in {time.monotonic() - t:.1f} s; "
                "waiting for their targets")
            wait_for("the listings' targets", lambda: val(
                f"SELECT count(*) FROM omnichan.listing WHERE channel_id = {cid} AND target_qty IS NULL") == "0",
                600, 1.0)
            wait_for("the dirty set to drain", dirty_idle, 600, 1.0)
            statements_reset()
            runs = []
            for r in range(RUNS):
                runs.append(resync_run(kind, ch, cid, n, WPID, mock, first=(r == 0)))
            total, bad, examples = check_mock(kind, cid, mock, qty_of)
            say(f"  {kind}: the mock holds the target of {total - bad} of {total} listings {examples if bad else ''}")
            perf_txt = None
            if kind in PERF.split(","):
                data = os.path.join(RUN, f"push-perf-{kind}.data")
                resync_run(kind, ch, cid, n, WPID, mock, first=False, perf_file=data)
                perf_txt = os.path.join(RUN, f"push-perf-{kind}.txt")
                with open(perf_txt, "w") as f:
                    subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio",
                                    "--percent-limit", "0.5", "--sort", "symbol"],
                                   stdout=f, stderr=subprocess.DEVNULL)
            results[kind] = {"n": n, "runs": runs, "mock_bad": bad, "perf": perf_txt}
            statements_dump(kind)
            if kind == "shopify" and NLAT > 0:
                statements_reset()
                latency = latency_test(ch, cid, mock)
                statements_dump("latency")
            sql(f"SELECT omnichan.channel_drop('{ch}')")
            wait_for("the dirty set to drain", dirty_idle, 600, 1.0)
        finally:
            mock.stop()
    report(results, latency)


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def report(results, latency):
    lines = []
    # what was built (push.sh records it before building: others may commit meanwhile)
    head = os.environ.get("PUSH_BUILT_FROM") or subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    dirty = os.environ.get("PUSH_BUILT_DIRTY") == "1"
    lines.append(f"omnichan stock push to the mock marketplaces ({time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, "
                 f"{os.cpu_count()} cores, omnichan {head}{' + uncommitted src/sql' if dirty else ''})")
    lines.append(f"full_resync of N listings per channel (one channel at a time, loopback Python mocks, "
                 f"rate limits lifted, {CONC} requests in flight), median of {RUNS} runs; "
                 f"first run from never-pushed listings, the others re-push everything")
    lines.append("")
    fmt = "{:<8} {:<26} {:>6} {:>7} {:>17} {:>9} {:>8} {:>7} {:>6} {:>9} {:>7} {}"
    lines.append(fmt.format("market", "push shape", "N", "list/s", "runs", "visible/s", "req/1k", "wkr CPU",
                            "mock", "RSS/anon", "mock ok", "verdict"))
    for kind, res in results.items():
        runs = res["runs"]
        rate = med(runs, "rate")
        rates = "/".join(f"{r['rate']:.0f}" for r in runs)
        elapsed = med(runs, "elapsed")
        verdict = ""
        if kind in BULK:
            verdict = f">=5000/s: {'PASS' if rate >= TARGET_RATE else 'MISS'}"
        else:
            verdict = "(per-item: no target)"
        if any(r["done"] < r["n"] for r in runs):
            verdict += f" INCOMPLETE ({min(r['done'] for r in runs)}/{res['n']})"
        nlabel = f"{res['n'] // 1000}k" if res["n"] >= 1000 else str(res["n"])
        if kind not in BULK and res["n"] < N:
            nlabel += "*"
        visible = statistics.median(r["n"] / r["window"] for r in runs)
        lines.append(fmt.format(
            kind, DESCR[kind], nlabel, f"{rate:.0f}", rates, f"{visible:.0f}", f"{med(runs, 'req_per_1k'):.1f}",
            f"{med(runs, 'worker_cpu') / med(runs, 'window') * 100:.0f}%", f"{med(runs, 'mock_cpu') / med(runs, 'window') * 100:.0f}%",
            f"{max(r['rss_max_mb'] for r in runs):.0f}/{max(r['anon_max_mb'] for r in runs):.0f}MB",
            "yes" if res["mock_bad"] == 0 else f"NO({res['mock_bad']})", verdict))
    lines.append("")
    lines.append("list/s: listings per second, commit of full_resync() -> the last listing accepted "
                 "(pushed_at, the start of the transaction recording it), median (and each run); visible/s: N / "
                 "(commit -> every listing seen pushed by a poll every 0.5 s, so up to 0.5 s late; "
                 "unlike pushed_at it includes the last recording transactions); req/1k: requests the mock received per 1000 listings "
                 "(its own counters, tokens included); worker/mock CPU: CPU time over the run's wall time "
                 "(100% = one core; the mock is one Python process: ~100% means the mock is the bottleneck); "
                 "RSS/anon: the worker's largest VmRSS / RssAnon; mock ok: the mock's quantity equals target_qty "
                 "for every listing after the runs")
    if any(k not in BULK for k in results) and N_ITEM < N:
        lines.append(f"* per-item marketplaces run with {N_ITEM} listings (PUSH_PER_ITEM_LISTINGS): one or two "
                     "Python-served requests per listing")
    if latency:
        lines.append("")
        if "p99" in latency:
            lines.append(
                f"real-time Shopify channel (push_interval 0, same channel, {N} listings), {latency['n']} single "
                f"changes under ~{BG_RATE:g} random stock changes/s: commit -> mock applied the new quantity: "
                f"median {latency['median']:.1f} ms, p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms  "
                f"p99<={TARGET_P99_MS}ms: {'PASS' if latency['p99'] <= TARGET_P99_MS else 'MISS'}"
                f"  ({latency['missing']} never applied, {latency['unchanged']} without a change; "
                f"{latency['requests']} calls, worker CPU {latency['worker_cpu'] / latency['wall'] * 100:.0f}%)")
        else:
            lines.append(f"real-time latency: nothing measured ({latency})")
    text = "\n".join(lines)
    print(text)
    with open(os.path.join(RUN, "push-results.txt"), "w") as f:
        f.write(text + "\n")
    with open(os.path.join(RUN, "push-results.json"), "w") as f:
        json.dump({"results": results, "latency": latency}, f, indent=1, default=str)


if __name__ == "__main__":
    main()
