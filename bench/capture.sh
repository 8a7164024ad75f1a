#!/usr/bin/env bash
# bench/capture.sh -- cost of change capture on Odoo's write path.
#
#   bash bench/capture.sh        # run as root on Debian 12 (installs packages)
#
# Builds and installs omnichan, starts a throwaway cluster (bench/.run/capture,
# library preloaded), loads the Odoo 17 fixture, CREATE EXTENSION omnichan,
# generates a catalog (20k products, 2 warehouses), then runs an Odoo-like
# write workload with pgbench (2 clients, fixed duration) alternately with
# and without omnichan's change-capture triggers on the same database:
#
#   on   the triggers installed by CREATE EXTENSION (omnichan.capture_status)
#   off  the same triggers dropped (DROP TRIGGER; omnichan.capture_install()
#        puts them back before the next "on" run)
#
# in the order off/on, on/off, off/on, ... (ABBA, so that a slow drift of the
# machine or of the tables' size weighs on both sides alike), and reports the
# TPS of every run, the mean per side and the throughput loss
# 1 - mean(on) / mean(off) against the target of 5 %.  The table is printed
# and written to bench/.run/capture-results.txt.  Exit 0 whether the target
# is met or not, 2 on setup errors.
#
# The workload (one pgbench transaction = one Odoo transaction, 1-50 rows):
#   quant.sql      weight 4: quantity and reserved_quantity of 1-50 quants
#                  (two statements, write_date too, like the ORM)
#   move_new.sql   weight 1: insert 1-50 moves (copies of existing moves)
#   move_state.sql weight 2: state (and reserved quantity) of 1-50 moves
#   quant_in.sql   weight 1: in_date / write_date of 1-50 quants (unwatched
#                  columns: the triggers fire but record nothing)
#
# Environment knobs:
#   CAP_SECONDS=20      duration of each run
#   CAP_ROUNDS=4        runs per side (2 * CAP_ROUNDS runs in all)
#   CAP_CLIENTS=2       pgbench clients
#   CAP_PRODUCTS=20000  catalog size (2 warehouses)
#   CAP_NOBUILD=1       use the installed omnichan (skip build and install)
#   CAP_KEEP=1          leave the cluster running at the end
#   CAP_REUSE=1         reuse the cluster and database of a CAP_KEEP=1 run
#   CAP_PROFILE=1       also record the "on" runs with perf (if installed)
#                       into bench/.run/capture-perf.txt
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/lib.sh
. "$BENCH_DIR/../test/lib.sh"

SECONDS_PER_RUN=${CAP_SECONDS:-20}
ROUNDS=${CAP_ROUNDS:-4}
CLIENTS=${CAP_CLIENTS:-2}
NPRODUCTS=${CAP_PRODUCTS:-20000}
NOBUILD=${CAP_NOBUILD:-0}
KEEP=${CAP_KEEP:-0}
REUSE=${CAP_REUSE:-0}
PROFILE=${CAP_PROFILE:-0}
RUN=$OC_ROOT/bench/.run
CL=$RUN/capture
DB=omnichan_capbench
RESULTS=$RUN/capture-results.txt
SCRIPTS=$RUN/capture-scripts
mkdir -p "$RUN" "$SCRIPTS"

CONF=(
	"shared_preload_libraries = 'omnichan'"
	"shared_buffers = 256MB"
	"max_parallel_workers_per_gather = 0"
	"jit = off"
	"autovacuum_naptime = 10s"
)

cleanup() {
	if [ "$KEEP" != 1 ]; then
		oc_cluster_stop "$CL"
	else
		oc_log "cluster left running: PGHOST=$CL PGPORT=5432 PGUSER=postgres psql -d $DB"
	fi
}

sql1() { oc_psql "$DB" -At -c "$1"; }

if [ "$REUSE" = 1 ] && [ -f "$CL/data/postmaster.pid" ]; then
	export PGHOST=$CL PGPORT=5432 PGUSER=postgres OC_CLUSTER_DIR=$CL
	unset PGDATABASE PGPASSWORD PGSERVICE
	trap cleanup EXIT
	oc_log "reusing the running cluster in $CL"
else
	oc_install_packages
	if [ "$NOBUILD" != 1 ]; then
		oc_build_install >"$RUN/capture-build.log" 2>&1 ||
			{ cat "$RUN/capture-build.log" >&2; oc_die "build failed"; }
	fi
	oc_cluster_stop "$CL"
	rm -rf "$CL"
	oc_log "starting a throwaway cluster in $CL"
	oc_cluster_start "$CL" "${CONF[@]}" || oc_die "cluster start failed"
	trap cleanup EXIT

	oc_log "creating the fixture database"
	oc_create_fixture_db "$DB" >"$RUN/capture-fixture.log" 2>&1 ||
		{ tail -n 20 "$RUN/capture-fixture.log" >&2; oc_die "fixture load failed"; }
	oc_psql "$DB" -c "CREATE EXTENSION omnichan" >/dev/null || oc_die "CREATE EXTENSION failed"
	oc_log "generating the catalog ($NPRODUCTS products, 2 warehouses)"
	oc_psql "$DB" -c "SELECT omnichan_test.generate_catalog($NPRODUCTS, 2)" >"$RUN/capture-catalog.log" ||
		oc_die "catalog generation failed"
	oc_psql "$DB" -c "VACUUM ANALYZE" >/dev/null
fi

# ---------------------------------------------------------------- workload
read -r qmin qmax mmin mmax n_quant n_move <<<"$(oc_psql "$DB" -At -F ' ' -c "
	SELECT min(q.id), max(q.id), (SELECT min(id) FROM stock_move), (SELECT max(id) FROM stock_move),
	       count(*), (SELECT count(*) FROM stock_move)
	  FROM stock_quant q")"
[ -n "$n_move" ] && [ "$n_quant" -gt 1000 ] && [ "$n_move" -gt 1000 ] || oc_die "no catalog to write to"
oc_log "data: $n_quant quants ($qmin..$qmax), $n_move moves ($mmin..$mmax)"

# id ranges: a transaction writes the n consecutive ids from a random start
cat >"$SCRIPTS/quant.sql" <<'SQL'
\set n random(1, 50)
\set s random(:qmin, :qmax - 50)
\set e :s + :n - 1
BEGIN;
UPDATE stock_quant SET quantity = quantity + 1, write_date = now()::timestamp WHERE id BETWEEN :s AND :e;
UPDATE stock_quant SET reserved_quantity = GREATEST(reserved_quantity - 1, 0), write_date = now()::timestamp WHERE id BETWEEN :s AND :e;
COMMIT;
SQL
cat >"$SCRIPTS/move_new.sql" <<'SQL'
\set n random(1, 50)
\set s random(:mmin, :mmax - 50)
\set e :s + :n - 1
BEGIN;
INSERT INTO stock_move (company_id, product_id, product_uom, location_id, location_dest_id, name, state,
                        procure_method, product_uom_qty, product_qty, quantity, date, picking_type_id,
                        warehouse_id, create_date, write_date)
SELECT company_id, product_id, product_uom, location_id, location_dest_id, name, 'confirmed',
       procure_method, product_uom_qty, product_qty, 0, now()::timestamp, picking_type_id,
       warehouse_id, now()::timestamp, now()::timestamp
  FROM stock_move WHERE id BETWEEN :s AND :e;
COMMIT;
SQL
cat >"$SCRIPTS/move_state.sql" <<'SQL'
\set n random(1, 50)
\set s random(:mmin, :mmax - 50)
\set e :s + :n - 1
BEGIN;
UPDATE stock_move
   SET state = CASE state WHEN 'assigned' THEN 'confirmed' ELSE 'assigned' END,
       quantity = CASE state WHEN 'assigned' THEN 0 ELSE product_qty END,
       write_date = now()::timestamp
 WHERE id BETWEEN :s AND :e;
COMMIT;
SQL
cat >"$SCRIPTS/quant_in.sql" <<'SQL'
\set n random(1, 50)
\set s random(:qmin, :qmax - 50)
\set e :s + :n - 1
BEGIN;
UPDATE stock_quant SET in_date = now()::timestamp, write_date = now()::timestamp WHERE id BETWEEN :s AND :e;
COMMIT;
SQL

n_triggers=$(sql1 "SELECT count(*) FROM omnichan.capture_status WHERE trigger_present")

triggers_off() {
	oc_psql "$DB" >/dev/null <<'SQL'
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM omnichan.capture_status WHERE trigger_present LOOP
        EXECUTE format('DROP TRIGGER %I ON %s', s.trigger_name, s.table_name::regclass);
    END LOOP;
END
$$;
SQL
	[ "$(sql1 "SELECT count(*) FROM omnichan.capture_status WHERE trigger_present")" = 0 ] ||
		oc_die "could not drop the capture triggers"
}
triggers_on() {
	sql1 "SELECT omnichan.capture_install()" >/dev/null
	[ "$(sql1 "SELECT count(*) FROM omnichan.capture_status WHERE trigger_present")" = "$n_triggers" ] ||
		oc_die "could not re-create the capture triggers"
}

# CPU time (clock ticks) of the server processes that exited so far: the
# postmaster's cutime + cstime.  The benchmark's backends exit when pgbench
# disconnects, so the difference around a run is the CPU the server spent on
# it (plus the autovacuum workers that ran meanwhile), unaffected by whatever
# else the machine is doing.
server_ticks() {
	awk '{ print $16 + $17 }' "/proc/$(head -n 1 "$CL/data/postmaster.pid")/stat"
}

# run SIDE SECONDS: one pgbench run, prints its TPS and the server's CPU
# microseconds per transaction
run() {
	local side=$1 secs=$2 out tps ntx t0 t1
	if [ "$side" = off ]; then triggers_off; else triggers_on; fi
	# a comparable start: no log backlog, dirty pages written
	sql1 "TRUNCATE omnichan.stock_dirty_log; CHECKPOINT" >/dev/null
	sleep 0.2
	t0=$(server_ticks)
	"$OC_PGBIN/pgbench" -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$secs" \
		-D qmin="$qmin" -D qmax="$qmax" -D mmin="$mmin" -D mmax="$mmax" \
		-f "$SCRIPTS/quant.sql@4" -f "$SCRIPTS/move_new.sql@1" \
		-f "$SCRIPTS/move_state.sql@2" -f "$SCRIPTS/quant_in.sql@1" "$DB" >"$RUN/capture-pgbench.out" 2>&1 &
	local bench_pid=$!
	if [ "$PROFILE" = 1 ] && [ "$side" = on ] && command -v perf >/dev/null && [ "$secs" -gt 4 ]; then
		# only the backends of this benchmark (the machine may run other clusters)
		sleep 1
		local pm pids
		pm=$(head -n 1 "$CL/data/postmaster.pid")
		pids=$(pgrep -P "$pm" -f "omnichan_capbench" | paste -sd, -)
		[ -n "$pids" ] && perf record -q -g -p "$pids" -o "$RUN/capture-perf.data" -- sleep $((secs - 3)) >/dev/null 2>&1 || true
	fi
	wait "$bench_pid" || { cat "$RUN/capture-pgbench.out" >&2; oc_die "pgbench failed"; }
	sleep 0.5
	t1=$(server_ticks)
	out=$(cat "$RUN/capture-pgbench.out")
	tps=$(sed -n 's/^tps = \([0-9.]*\) .*/\1/p' <<<"$out" | head -n 1)
	ntx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' <<<"$out")
	[ -n "$tps" ] && [ -n "$ntx" ] || { echo "$out" >&2; oc_die "no TPS in the pgbench output"; }
	echo "$tps $(((t1 - t0) * 1000000 / $(getconf CLK_TCK) / ntx))"
}

oc_log "warm-up (5 s each side)"
run off 5 >/dev/null
run on 5 >/dev/null

sides=()
tpss=()
cpus=()
logrows=()
for ((i = 0; i < ROUNDS; i++)); do
	if ((i % 2 == 0)); then order=(off on); else order=(on off); fi
	for side in "${order[@]}"; do
		read -r tps cpu < <(run "$side" "$SECONDS_PER_RUN") || true
		[ -n "${cpu:-}" ] || oc_die "run $side failed"
		rows=$(sql1 "SELECT count(*) FROM omnichan.stock_dirty_log")
		oc_log "round $((i + 1)) $side: $tps tps, $cpu us server CPU per transaction ($rows log rows)"
		sides+=("$side")
		tpss+=("$tps")
		cpus+=("$cpu")
		logrows+=("$rows")
	done
done
triggers_on

if [ "$PROFILE" = 1 ] && [ -f "$RUN/capture-perf.data" ]; then
	perf report -i "$RUN/capture-perf.data" --no-children --sort dso,symbol -g none --stdio 2>/dev/null |
		grep -v '^#' | grep -v '^$' | head -n 60 >"$RUN/capture-perf.txt" || true
	oc_log "perf profile of the last 'on' run: $RUN/capture-perf.txt"
fi

# ---------------------------------------------------------------- report
{
	echo "omnichan change capture: Odoo-like write throughput with and without the triggers"
	echo "catalog: $n_quant quants, $n_move moves at start; $CLIENTS clients; ${SECONDS_PER_RUN} s per run; pgbench -M prepared"
	echo "workload: quant qty+reserved (w4), move insert (w1), move state (w2), quant in_date only (w1); 1-50 rows per transaction"
	echo
	printf '%-6s %-5s %12s %16s %14s\n' run side tps cpu_us_per_tx log_rows
	for i in "${!sides[@]}"; do
		printf '%-6s %-5s %12.1f %16s %14s\n' "$((i + 1))" "${sides[$i]}" "${tpss[$i]}" "${cpus[$i]}" "${logrows[$i]}"
	done
	echo
	paste -d ' ' <(printf '%s\n' "${sides[@]}") <(printf '%s\n' "${tpss[@]}") <(printf '%s\n' "${cpus[@]}") | awk '
		{ n[$1]++; s[$1] += $2; c[$1] += $3; v[$1, n[$1]] = $2 }
		END {
			split("off on", ks, " ")
			for (j = 1; j <= 2; j++) {
				k = ks[j]
				m[k] = s[k] / n[k]
				sd = 0
				for (i = 1; i <= n[k]; i++) sd += (v[k, i] - m[k]) ^ 2
				sd = (n[k] > 1) ? sqrt(sd / (n[k] - 1)) : 0
				cpu[k] = c[k] / n[k]
				printf "%-4s mean %10.1f tps  (stddev %.1f, %d runs), server CPU %.0f us per transaction\n", k, m[k], sd, n[k], cpu[k]
			}
			loss = 100 * (1 - m["on"] / m["off"])
			printf "throughput loss with change capture: %.2f %% (target <= 5 %%): %s\n", loss, (loss <= 5 ? "PASS" : "MISS")
			printf "server CPU per transaction: %+.2f %% (the loss on a CPU-bound server: %.2f %%)\n", 100 * (cpu["on"] / cpu["off"] - 1), 100 * (1 - cpu["off"] / cpu["on"])
		}'
} | tee "$RESULTS"
oc_log "results written to $RESULTS"
