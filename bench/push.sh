#!/usr/bin/env bash
# bench/push.sh -- stock push throughput (full resync of N listings to each
# mock marketplace) and real-time latency (commit -> the Shopify mock applied
# the new quantity).
#
#   bash bench/push.sh        # as root on Debian 12; ~6 minutes
#
# See bench/README.md ("bench/push.sh").  The table is printed and written to
# bench/.run/push-results.txt (raw figures: push-results.json).  Exit 0
# whatever the verdicts, 2 on setup errors.
#
# Knobs:
#   PUSH_LISTINGS=100000        listings per bulk-capable channel (and catalog size)
#   PUSH_PER_ITEM_LISTINGS=10000  listings of the per-item channels (TikTok, Etsy)
#   PUSH_RUNS=3                 full resyncs per marketplace (median)
#   PUSH_KINDS=ebay,shopify,lazada,walmart,amazon,tiktok,etsy
#   PUSH_CONC=16                requests in flight per channel (rate_limit_set)
#   PUSH_LAT=200                measured single changes of the latency test (0: none)
#   PUSH_BG_RATE=20             background stock changes per second meanwhile
#   PUSH_TIMEOUT=900            seconds one resync may take
#   PUSH_PERF=ebay,shopify      perf record the worker during one extra run of
#                               these kinds (bench/.run/push-perf-KIND.txt)
#   PUSH_STATEMENTS=1           preload pg_stat_statements (track = all) and write
#                               the 25 costliest statements of each kind's runs
#                               and of the latency test, the worker's included
#                               (bench/.run/push-statements-KIND.txt)
#   PUSH_NOBUILD=1              use the installed omnichan
#   PUSH_KEEP=1                 leave the cluster running
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/lib.sh
. "$BENCH_DIR/../test/lib.sh"

N=${PUSH_LISTINGS:-100000}
NOBUILD=${PUSH_NOBUILD:-0}
KEEP=${PUSH_KEEP:-0}
RUN=$OC_ROOT/bench/.run
CL=$RUN/push
DB=bench
export PUSH_DB=$DB
mkdir -p "$RUN"

cleanup() {
	# the driver stops its mocks; a killed driver may leave some behind
	if [ -f "$RUN/push-mock.pids" ]; then
		while read -r pid; do
			kill "$pid" 2>/dev/null || true
		done <"$RUN/push-mock.pids"
		rm -f "$RUN/push-mock.pids"
	fi
	if [ "$KEEP" = 1 ]; then
		oc_log "left running: PGHOST=$CL PGPORT=5432 PGUSER=postgres psql -d $DB"
		return
	fi
	oc_cluster_stop "$CL"
}
trap cleanup EXIT

oc_install_packages
PUSH_BUILT_FROM=$(git -C "$OC_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
PUSH_BUILT_DIRTY=0
git -C "$OC_ROOT" diff --quiet HEAD -- src sql 2>/dev/null || PUSH_BUILT_DIRTY=1
export PUSH_BUILT_FROM PUSH_BUILT_DIRTY
if [ "$NOBUILD" != 1 ]; then
	oc_build_install || oc_die "build failed"
fi

oc_cluster_stop "$CL"
rm -rf "$CL" "$RUN"/push-mock-* "$RUN/push-mock.pids"
oc_log "starting a cluster in $CL"
PRELOAD=omnichan
STMT_CONF=()
if [ "${PUSH_STATEMENTS:-0}" = 1 ]; then
	PRELOAD=omnichan,pg_stat_statements
	STMT_CONF=("pg_stat_statements.track = all")
fi
oc_cluster_start "$CL" \
	"shared_preload_libraries = '$PRELOAD'" \
	"${STMT_CONF[@]}" \
	"shared_buffers = 512MB" \
	"work_mem = 32MB" \
	"max_wal_size = 4GB" \
	"checkpoint_timeout = 30min" \
	"jit = off" \
	"omnichan.databases = '$DB'" \
	"omnichan.http_allow_plain_loopback = on" ||
	oc_die "cluster start failed"
oc_log "loading the Odoo 17 fixture, CREATE EXTENSION omnichan, generate_catalog($N, 1)"
oc_create_fixture_db "$DB" || oc_die "fixture load failed"
oc_psql "$DB" -c "CREATE EXTENSION omnichan" >/dev/null || oc_die "CREATE EXTENSION failed"
oc_psql "$DB" -At -c "SELECT omnichan_test.generate_catalog($N, 1)" >/dev/null || oc_die "catalog generation failed"
oc_psql "$DB" -c "VACUUM ANALYZE" >/dev/null

/usr/bin/python3 "$BENCH_DIR/push.py" || oc_die "the benchmark failed (the cluster log: $CL/server.log)"
exit 0
