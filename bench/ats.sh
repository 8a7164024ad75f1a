#!/usr/bin/env bash
# bench/ats.sh -- available-to-sell and allocation benchmark.
#
#   bash bench/ats.sh            # run as root on Debian 12 (installs packages)
#
# Builds and installs omnichan, starts a throwaway cluster (bench/.run/ats,
# library preloaded), loads the Odoo 17 fixture, generates a 100k-product
# catalog, creates 7 channels and some product policies, then measures side
# by side:
#
#   ats_bulk()                   bulk ATS, all products, one pool
#   ats_bulk(NULL, NULL, true)   bulk ATS, all products, per warehouse
#   baseline                     the best single hand-written SQL query that
#                                computes the same numbers (checked equal to
#                                ats_bulk() with EXCEPT both ways: exit 1 if not)
#   allocate_bulk()              bulk allocation for the 7 channels
#   ats(pid), allocate(pid)      single-product latency, 1000 random products,
#                                timed server-side around each call
#
# and prints a table (also written to bench/.run/ats-results.txt).  Exit 0
# whether the targets are met or not; exit 1 when the engine and the
# baseline disagree; exit 2 on setup errors.
#
# Environment knobs:
#   ATS_RUNS=7          timed runs per bulk figure (median reported)
#   ATS_SINGLE=1000     products for the single-product latencies
#   ATS_PRODUCTS=100000 catalog size
#   ATS_KEEP=1          leave the cluster running at the end (investigation;
#                       PGHOST=bench/.run/ats psql -d omnichan_bench)
#   ATS_REUSE=1         reuse the database of a previous ATS_KEEP=1 run
#                       (skips build, fixture and catalog generation)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/lib.sh
. "$BENCH_DIR/../test/lib.sh"

RUNS=${ATS_RUNS:-7}
SINGLE=${ATS_SINGLE:-1000}
NPRODUCTS=${ATS_PRODUCTS:-100000}
KEEP=${ATS_KEEP:-0}
REUSE=${ATS_REUSE:-0}
RUN=$OC_ROOT/bench/.run
CL=$RUN/ats
DB=omnichan_bench
RESULTS=$RUN/ats-results.txt
mkdir -p "$RUN"

# same settings for the engine and the baseline.  Parallel query is off: the
# engine's SPI_prepare'd plans cannot use it, so the baseline must not either
# (a parallel figure for the baseline is printed for information).  JIT is off:
# it only adds compile time to queries of this size.
CONF=(
	"shared_preload_libraries = 'omnichan'"
	"shared_buffers = 512MB"
	"work_mem = 64MB"
	"max_parallel_workers_per_gather = 0"
	"jit = off"
	"track_io_timing = on"
)

cleanup() {
	if [ "$KEEP" != 1 ]; then
		oc_cluster_stop "$CL"
	else
		oc_log "cluster left running: PGHOST=$CL PGPORT=5432 PGUSER=postgres psql -d $DB"
	fi
}

psql_db() { oc_psql "$DB" "$@"; }
# one value, unaligned
sql1() { psql_db -At -c "$1"; }

if [ "$REUSE" = 1 ] && [ -f "$CL/data/postmaster.pid" ]; then
	export PGHOST=$CL PGPORT=5432 PGUSER=postgres OC_CLUSTER_DIR=$CL
	unset PGDATABASE PGPASSWORD PGSERVICE
	trap cleanup EXIT
	oc_log "reusing the running cluster in $CL"
else
	oc_install_packages
	oc_build_install >"$RUN/ats-build.log" 2>&1 || { cat "$RUN/ats-build.log" >&2; oc_die "build failed"; }
	oc_cluster_stop "$CL"
	rm -rf "$CL"
	oc_log "starting a throwaway cluster in $CL"
	oc_cluster_start "$CL" "${CONF[@]}" || oc_die "cluster start failed"
	trap cleanup EXIT

	oc_log "creating the fixture database"
	oc_create_fixture_db "$DB" >"$RUN/ats-fixture.log" 2>&1 ||
		{ tail -n 20 "$RUN/ats-fixture.log" >&2; oc_die "fixture load failed"; }
	psql_db -c "CREATE EXTENSION omnichan" >/dev/null

	oc_log "generating the catalog ($NPRODUCTS products, 3 warehouses, 50k open moves)"
	t0=$(date +%s)
	psql_db -c "SELECT omnichan_test.generate_catalog($NPRODUCTS, 3, 1, 5, $((NPRODUCTS / 2)))" >"$RUN/ats-catalog.log"
	oc_log "catalog generated in $(($(date +%s) - t0)) s"

	oc_log "creating 7 channels and product policies"
	psql_db -f "$BENCH_DIR/ats_setup.sql" >"$RUN/ats-setup.log"
	psql_db -c "VACUUM ANALYZE" >/dev/null
fi

# bench helpers (timing functions, the baseline views); idempotent
psql_db -f "$BENCH_DIR/ats_helpers.sql" >/dev/null

# ---------------------------------------------------------------- data sizes
sizes=$(psql_db -At -F ' ' -c "
	SELECT (SELECT count(*) FROM product_product pp JOIN product_template pt ON pt.id = pp.product_tmpl_id WHERE pt.type = 'product'),
	       (SELECT count(*) FROM stock_warehouse WHERE active),
	       (SELECT count(*) FROM stock_quant),
	       (SELECT count(*) FROM stock_move),
	       (SELECT count(*) FROM stock_move WHERE state IN ('waiting', 'confirmed', 'partially_available', 'assigned')),
	       (SELECT count(*) FROM sale_order_line),
	       (SELECT count(*) FROM omnichan.channel),
	       (SELECT count(*) FROM omnichan.product_policy),
	       (SELECT count(*) FROM omnichan.product_channel_policy),
	       (SELECT count(*) FROM mrp_bom WHERE active AND type = 'phantom')")
read -r n_prod n_wh n_quant n_move n_open n_sol n_chan n_pol n_cpol n_kits <<<"$sizes"
oc_log "data: $n_prod storable products, $n_wh warehouses, $n_quant quants, $n_move moves ($n_open open), $n_sol sale lines, $n_chan channels, $n_pol product policies, $n_cpol channel overrides, $n_kits kits"
if [ "$n_kits" != 0 ]; then
	# the baseline has no kit explosion: it would disagree for a good reason
	oc_die "the catalog has $n_kits phantom BoMs; the SQL baseline does not model kits"
fi

# ---------------------------------------------------------------- correctness
oc_log "checking that the baseline and ats_bulk() agree"
diff_rows=$(sql1 "SELECT count(*) FROM (
	(SELECT * FROM omnichan_bench.baseline_naive EXCEPT SELECT * FROM omnichan.ats_bulk())
	UNION ALL
	(SELECT * FROM omnichan.ats_bulk() EXCEPT SELECT * FROM omnichan_bench.baseline_naive)) d")
diff_tuned=$(sql1 "SELECT count(*) FROM (
	(SELECT * FROM omnichan_bench.baseline EXCEPT SELECT * FROM omnichan.ats_bulk())
	UNION ALL
	(SELECT * FROM omnichan.ats_bulk() EXCEPT SELECT * FROM omnichan_bench.baseline)) d")
n_rows=$(sql1 "SELECT count(*) FROM omnichan.ats_bulk()")
n_pos=$(sql1 "SELECT count(*) FILTER (WHERE ats > 0) || ' with ats > 0, ' || count(*) FILTER (WHERE pending > 0) || ' with pending > 0, ' || count(*) FILTER (WHERE safety > 0) || ' with safety > 0' FROM omnichan.ats_bulk()")
oc_log "ats_bulk(): $n_rows rows ($n_pos)"
if [ "$diff_rows" != 0 ] || [ "$diff_tuned" != 0 ] || [ "$n_rows" != "$n_prod" ]; then
	echo "FAIL: ats_bulk() and the SQL baseline disagree: $diff_rows rows differ from the direct baseline, $diff_tuned from the tuned one ($n_rows rows, $n_prod storable products)" >&2
	psql_db -c "(SELECT 'baseline' AS side, * FROM omnichan_bench.baseline EXCEPT SELECT 'baseline', * FROM omnichan.ats_bulk())
	            UNION ALL
	            (SELECT 'ats_bulk', * FROM omnichan.ats_bulk() EXCEPT SELECT 'ats_bulk', * FROM omnichan_bench.baseline)
	            ORDER BY product_id, side LIMIT 20" >&2
	exit 1
fi
oc_log "baseline == ats_bulk(): $n_rows rows, identical"

# per warehouse too (the baseline per warehouse = same query, one pool per warehouse)
diff_wh=$(sql1 "SELECT count(*) FROM (
	(SELECT * FROM omnichan_bench.baseline_per_wh EXCEPT SELECT * FROM omnichan.ats_bulk(NULL, NULL, true))
	UNION ALL
	(SELECT * FROM omnichan.ats_bulk(NULL, NULL, true) EXCEPT SELECT * FROM omnichan_bench.baseline_per_wh)) d")
if [ "$diff_wh" != 0 ]; then
	echo "FAIL: ats_bulk(NULL, NULL, true) and the per-warehouse baseline disagree on $diff_wh rows" >&2
	exit 1
fi
oc_log "per-warehouse baseline == ats_bulk(NULL, NULL, true)"

# ---------------------------------------------------------------- timings
# Each figure: warm-up runs, then $RUNS timed runs, server-side
# (clock_timestamp() around EXECUTE in omnichan_bench.median_ms), median.
# The baselines are timed as count(b) (whole rows): count(*) would let the
# planner drop the unused columns and joins.  ats_bulk() computes every
# column whatever the caller reads.  Every figure gets its own fresh backend, so plan caches start cold and the
# warm-up runs fill them as in a long-lived connection.
bulk() { # LABEL SQL [SETTINGS]
	local label=$1 q=$2 set=${3:-}
	psql_db -At -c "$set SELECT '$label', omnichan_bench.median_ms(\$q\$$q\$q\$, $RUNS, 2)"
}
oc_log "timing the bulk queries ($RUNS runs each)"
{
	bulk ats_bulk "SELECT count(*) FROM omnichan.ats_bulk()"
	bulk baseline "SELECT count(b) FROM omnichan_bench.baseline b"
	bulk baseline_naive "SELECT count(b) FROM omnichan_bench.baseline_naive b"
	bulk baseline_par "SELECT count(b) FROM omnichan_bench.baseline b" "SET max_parallel_workers_per_gather = 2;"
	bulk ats_bulk_wh "SELECT count(*) FROM omnichan.ats_bulk(NULL, NULL, true)"
	bulk baseline_wh "SELECT count(b) FROM omnichan_bench.baseline_per_wh b"
	bulk allocate_bulk "SELECT count(*) FROM omnichan.allocate_bulk()"
} >"$RUN/ats-bulk.txt"
cat "$RUN/ats-bulk.txt" >&2

oc_log "timing single-product calls ($SINGLE random products each)"
single=$(psql_db -At -F '|' -c "SELECT * FROM omnichan_bench.single_latency($SINGLE)")

# ---------------------------------------------------------------- report
fig() { awk -F'|' -v k="$1" '$1 == k { print $2 }' "$RUN/ats-bulk.txt"; }
sfig() { awk -F'|' -v k="$1" -v c="$2" '$1 == k { print $c }' <<<"$single"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v v="$1" -v t="$2" -v op="$3" 'BEGIN { ok = (op == "<=") ? (v <= t) : (v < t); print ok ? "PASS" : "MISS" }'; }

ats=$(fig ats_bulk) base=$(fig baseline) naive=$(fig baseline_naive) par=$(fig baseline_par)
atswh=$(fig ats_bulk_wh) basewh=$(fig baseline_wh) alloc=$(fig allocate_bulk)
r1=$(ratio "$ats" "$base") r1wh=$(ratio "$atswh" "$basewh") r2=$(ratio "$alloc" "$ats")
s_med=$(sfig ats 2) s_p99=$(sfig ats 3) s_max=$(sfig ats 4)
a_med=$(sfig allocate 2) a_p99=$(sfig allocate 3) a_max=$(sfig allocate 4)
w_med=$(sfig ats_wh 2) w_p99=$(sfig ats_wh 3) w_max=$(sfig ats_wh 4)

{
	echo "omnichan ATS / allocation benchmark  ($(date -u '+%Y-%m-%d %H:%M UTC'), $(git -C "$OC_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs)"
	echo "data: $n_prod storable products, $n_wh warehouses, $n_quant quants, $n_move moves ($n_open open), $n_sol sale lines,"
	echo "      $n_chan channels, $n_pol safety-stock policies, $n_cpol channel overrides; rows checked equal to the baseline: $n_rows"
	echo "settings: shared_buffers 512MB, work_mem 64MB, no parallel query, no JIT; bulk = median of $RUNS warm runs"
	echo
	printf '%-46s %12s\n' "figure" "ms"
	printf '%-46s %12s\n' "----------------------------------------------" "------------"
	printf '%-46s %12.1f\n' "ats_bulk()                  (1 pool, all WH)" "$ats"
	printf '%-46s %12.1f\n' "baseline SQL, tuned         (1 pool, all WH)" "$base"
	printf '%-46s %12.1f\n' "baseline SQL, direct        (1 pool, all WH)" "$naive"
	printf '%-46s %12.1f\n' "baseline SQL, tuned, 2 parallel workers (info)" "$par"
	printf '%-46s %12.1f\n' "ats_bulk(NULL, NULL, true)  (per warehouse)" "$atswh"
	printf '%-46s %12.1f\n' "baseline SQL, tuned         (per warehouse)" "$basewh"
	printf '%-46s %12.1f\n' "allocate_bulk()             ($n_chan channels)" "$alloc"
	printf '%-46s %12s\n' "ats(pid)            median / p99 / max" "$s_med / $s_p99 / $s_max"
	printf '%-46s %12s\n' "ats(pid, wh)        median / p99 / max" "$w_med / $w_p99 / $w_max"
	printf '%-46s %12s\n' "allocate(pid)       median / p99 / max" "$a_med / $a_p99 / $a_max"
	echo
	printf '%-46s %8s %8s  %s\n' "ratio / target" "value" "target" "verdict"
	printf '%-46s %8s %8s  %s\n' "bulk ATS / baseline (1 pool)" "$r1" "<= 1.5" "$(verdict "$r1" 1.5 '<=')"
	printf '%-46s %8s %8s  %s\n' "bulk ATS / baseline (per warehouse, info)" "$r1wh" "<= 1.5" "$(verdict "$r1wh" 1.5 '<=')"
	printf '%-46s %8s %8s  %s\n' "bulk allocation / bulk ATS" "$r2" "<= 2" "$(verdict "$r2" 2 '<=')"
	printf '%-46s %8s %8s  %s\n' "single ats(pid) median, ms" "$s_med" "< 1" "$(verdict "$s_med" 1 '<')"
} | tee "$RESULTS"
oc_log "results written to $RESULTS"
exit 0
