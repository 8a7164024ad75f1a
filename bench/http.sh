#!/usr/bin/env bash
# bench/http.sh -- omnichan's sync worker as an HTTP client, against the
# physical limit (a bare libcurl multi client) and pg_net's measured figures.
#
#   bash bench/http.sh        # as root on Debian 12; ~3-5 minutes
#
# See bench/README.md ("bench/http.sh") for what is measured and how.  The
# table is printed and written to bench/.run/http-results.txt.  Exit 0 whatever
# the verdicts, 2 on setup errors.
#
# Knobs:
#   HB_N=10000          jobs per throughput run (one transaction)
#   HB_RUNS=3           throughput runs per target and client (median)
#   HB_CONC=64          requests in flight (both clients); also
#                       omnichan.http_max_inflight, http_max_host_connections
#                       and the bench channel's max_concurrency
#   HB_DELAY=50         ms of the slow target
#   HB_LAT=200          single-job transactions of the latency test
#   HB_BG_RATE=200      background jobs per second during the latency test
#   HB_LONG=100000      requests of the long run (RSS, sockets; 3 ports)
#   HB_LONG_BACKLOG=20000  jobs kept queued during the long run
#   HB_PORT=18181       first of the 3 target ports (127.0.0.1 only)
#   HB_NOBUILD=1        use the installed omnichan
#   HB_KEEP=1           leave cluster and target running
#   HB_PERF=1           perf record the worker during one fast run
#                       (bench/.run/http-perf.txt)
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../test/lib.sh
. "$BENCH_DIR/../test/lib.sh"

N=${HB_N:-10000}
RUNS=${HB_RUNS:-3}
CONC=${HB_CONC:-64}
DELAY=${HB_DELAY:-50}
NLAT=${HB_LAT:-200}
BG_RATE=${HB_BG_RATE:-200}
LONG=${HB_LONG:-100000}
BACKLOG=${HB_LONG_BACKLOG:-20000}
P1=${HB_PORT:-18181}
P2=$((P1 + 1))
P3=$((P1 + 2))
NOBUILD=${HB_NOBUILD:-0}
KEEP=${HB_KEEP:-0}
PERF=${HB_PERF:-0}
RUN=$OC_ROOT/bench/.run
CL=$RUN/http
DB=bench
RESULTS=$RUN/http-results.txt
TLOG=$RUN/http-target.log
PGNET_FAST=201
PGNET_SLOW=190
mkdir -p "$RUN"

TARGET_PID=
cleanup() {
	if [ "$KEEP" = 1 ]; then
		oc_log "left running: target pid $TARGET_PID; PGHOST=$CL PGPORT=5432 PGUSER=postgres psql -d $DB"
		return
	fi
	[ -n "$TARGET_PID" ] && kill "$TARGET_PID" 2>/dev/null && wait "$TARGET_PID" 2>/dev/null
	oc_cluster_stop "$CL"
}
trap cleanup EXIT

sql1() { oc_psql "$DB" -At -c "$1"; }
median_f() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2}'; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else printf "%.0f\n", (a[NR/2]+a[NR/2+1])/2}'; }

# ------------------------------------------------------------------ setup
oc_install_packages
if [ "$NOBUILD" != 1 ]; then
	oc_build_install || oc_die "build failed"
fi
oc_log "building bench/target.c and bench/bare_client.c"
gcc -O2 -Wall -Wextra -o "$RUN/http-target" "$BENCH_DIR/target.c" || oc_die "target.c does not build"
gcc -O2 -Wall -Wextra -o "$RUN/http-bare" "$BENCH_DIR/bare_client.c" -lcurl || oc_die "bare_client.c does not build"

for p in $P1 $P2 $P3; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		oc_die "port $p is in use (set HB_PORT)"
	fi
done
: >"$TLOG"
rm -f "$RUN/http-target.ready"
"$RUN/http-target" -p "$P1" -p "$P2" -p "$P3" -l "$TLOG" -r "$RUN/http-target.ready" \
	2>"$RUN/http-target.err" &
TARGET_PID=$!
for _ in $(seq 50); do [ -f "$RUN/http-target.ready" ] && break; sleep 0.1; done
[ -f "$RUN/http-target.ready" ] || oc_die "the target did not start: $(cat "$RUN/http-target.err")"
chmod 644 "$TLOG"

oc_cluster_stop "$CL"
rm -rf "$CL"
oc_log "starting a cluster in $CL"
oc_cluster_start "$CL" \
	"shared_preload_libraries = 'omnichan'" \
	"shared_buffers = 256MB" \
	"jit = off" \
	"omnichan.databases = '$DB'" \
	"omnichan.http_allow_plain_loopback = on" \
	"omnichan.http_max_inflight = $CONC" \
	"omnichan.http_max_host_connections = $CONC" ||
	oc_die "cluster start failed"
oc_log "loading the Odoo 17 fixture, CREATE EXTENSION omnichan"
oc_create_fixture_db "$DB" || oc_die "fixture load failed"
oc_psql "$DB" >/dev/null <<SQL || oc_die "extension setup failed"
CREATE EXTENSION omnichan;
-- a kind without a connector (no access token to wait for): plain HTTP jobs
SELECT omnichan.channel_create('bench', 'walmart', jsonb_build_object(
    'endpoint', 'http://127.0.0.1:$P1'));
SELECT omnichan.rate_limit_set('bench', '*', 100000, 100000, $CONC);
CREATE TABLE public.bench_commit (id bigint PRIMARY KEY, committed_at timestamptz NOT NULL);
CREATE TABLE public.bench_arrival (id bigint, us bigint);
SQL
CID=$(sql1 "SELECT id FROM omnichan.channel WHERE name = 'bench'")

oc_log "waiting for the omnichan worker"
WPID=
for _ in $(seq 120); do
	WPID=$(sql1 "SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' AND datname = '$DB'")
	[ -n "$WPID" ] && break
	sleep 0.5
done
[ -n "$WPID" ] || oc_die "no omnichan worker after 60 s (see $CL/server.log)"
oc_log "worker pid $WPID"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$WPID/stat"; }
TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------ throughput
# omni_run OP URL: one transaction queues N jobs, then wait until all are
# finished; prints "rps failed cpu_ms_per_1000"
omni_run() {
	local op=$1 url=$2 c0 c1 out
	c0=$(cpu_ticks)
	out=$(oc_psql "$DB" -At <<SQL
BEGIN;
INSERT INTO omnichan.job (channel_id, operation, method, url)
SELECT $CID, '$op', 'GET', '$url' FROM generate_series(1, $N);
SELECT omnichan._wake_on_commit();
COMMIT;
SELECT 'commit ' || extract(epoch FROM clock_timestamp());
DO \$\$
DECLARE t0 timestamptz := clock_timestamp();
BEGIN
  LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM omnichan.job WHERE state IN ('queued', 'running') AND operation = '$op')
           OR clock_timestamp() - t0 > interval '180 s';
    COMMIT;  -- no snapshot kept while waiting (see bench/README.md)
    PERFORM pg_sleep(0.05);
  END LOOP;
END
\$\$;
SQL
	) || oc_die "omnichan run $op failed"
	c1=$(cpu_ticks)
	local commit
	commit=$(printf '%s\n' "$out" | sed -n 's/^commit //p')
	sql1 "SELECT round(count(*) / extract(epoch FROM max(finished_at) - to_timestamp($commit))),
	             count(*) FILTER (WHERE state <> 'succeeded'),
	             round(($c1 - $c0) * 1000.0 / $TCK / count(*) * 1000)
	        FROM omnichan.job WHERE operation = '$op'" | tr '|' ' '
}

declare -A RPS BARE BARE_CPU FAILS CPU
for target in fast slow; do
	if [ $target = fast ]; then path=/fast; else path=/delay/$DELAY; fi
	url=http://127.0.0.1:$P1$path
	oc_log "bare client: $target target, $N requests x $RUNS, $CONC in flight"
	vals=() bcpu=()
	for r in $(seq "$RUNS"); do
		line=$("$RUN/http-bare" "$url" "$N" "$CONC") || oc_log "bare client errors: $line"
		vals+=("$(printf '%s\n' "$line" | sed -n 's/.*rps=\([0-9]*\).*/\1/p')")
		bcpu+=("$(printf '%s\n' "$line" | sed -n 's/.*cpu_us=\([0-9.]*\).*/\1/p')")
	done
	BARE[$target]=$(printf '%s\n' "${vals[@]}" | median)
	BARE_CPU[$target]=$(printf '%s\n' "${bcpu[@]}" | median_f)
	oc_log "  bare: ${vals[*]} req/s, CPU ${bcpu[*]} us per request"

	oc_log "omnichan: $target target, $N jobs in one transaction x $RUNS"
	vals=() fails=0 cpus=()
	for r in $(seq "$RUNS"); do
		if [ "$PERF" = 1 ] && [ $target = fast ] && [ "$r" = 1 ] && command -v perf >/dev/null; then
			perf record -g -p "$WPID" -o "$RUN/http-perf.data" >/dev/null 2>&1 &
			perfpid=$!
			sleep 0.3
		fi
		read -r rps failed cpu < <(omni_run "${target}_$r" "$url")
		if [ -n "${perfpid:-}" ]; then
			kill -INT "$perfpid"
			wait "$perfpid" 2>/dev/null || true
			perf report -i "$RUN/http-perf.data" --no-children --stdio --percent-limit 0.7 \
				>"$RUN/http-perf.txt" 2>/dev/null || true
			perfpid=
		fi
		vals+=("$rps")
		cpus+=("$cpu")
		fails=$((fails + failed))
	done
	RPS[$target]=$(printf '%s\n' "${vals[@]}" | median)
	CPU[$target]=$(printf '%s\n' "${cpus[@]}" | median)
	FAILS[$target]=$fails
	oc_log "  omnichan: ${vals[*]} req/s, $fails not succeeded, worker CPU ${cpus[*]} ms per 1000"
done

# ------------------------------------------ durable bookkeeping floor
# What the three durable row writes of a request cost at the very least:
# the worker's own claim, outcome and sync_log statements, run once over N
# jobs (no HTTP, no per-transaction or per-statement cost, every index and
# constraint as installed) in a transaction that is rolled back; the worker
# never sees these jobs.  Prints "claim_us outcome_us log_us" per request.
floor_run() {
	oc_psql "$DB" -At <<SQL || oc_die "floor run failed"
BEGIN;
INSERT INTO omnichan.job (channel_id, operation, method, url)
SELECT $CID, 'floor', 'GET', 'http://127.0.0.1:$P1/fast' FROM generate_series(1, $N);
CREATE TEMP TABLE floor_claimed (id bigint, tid tid) ON COMMIT DROP;
CREATE TEMP TABLE floor_times (claim float8, outcome float8, log float8) ON COMMIT DROP;
DO \$\$
DECLARE t0 timestamptz; t1 timestamptz; t2 timestamptz; t3 timestamptz;
        ids bigint[]; tids tid[];
BEGIN
  t0 := clock_timestamp();
  WITH locked AS (
    SELECT j.id, j.ctid FROM omnichan.job j
     WHERE COALESCE(j.channel_id, 0) = $CID AND j.operation = 'floor'
       AND j.state = 'queued' AND j.not_before <= now()
     ORDER BY j.not_before, j.id LIMIT $N FOR UPDATE OF j SKIP LOCKED
  ), upd AS (
    UPDATE omnichan.job j SET state = 'running', attempts = j.attempts + 1,
           started_at = clock_timestamp()
      FROM locked WHERE j.ctid = locked.ctid AND j.id = locked.id
    RETURNING j.id, COALESCE(j.channel_id, 0), j.operation, j.method, j.url,
              j.headers, j.body, j.attempts, j.max_attempts, j.payload::text, j.ctid
  )
  SELECT array_agg(upd.id), array_agg(upd.ctid) INTO ids, tids FROM upd;
  t1 := clock_timestamp();
  UPDATE omnichan.job j
     SET state = r.state, response_status = NULLIF(r.status, 0),
         response_headers = r.headers::jsonb, response_body = r.body, error = r.error,
         finished_at = clock_timestamp(), not_before = j.not_before
    FROM ROWS FROM (unnest(ids), unnest(tids),
                    unnest(array_fill('succeeded'::text, ARRAY[$N])),
                    unnest(array_fill(200, ARRAY[$N])),
                    unnest(array_fill('{"content-type": "text/plain", "content-length": "2"}'::text, ARRAY[$N])),
                    unnest(array_fill('\\x6f6b'::bytea, ARRAY[$N])),
                    unnest(array_fill(NULL::text, ARRAY[$N])))
         AS r(id, tid, state, status, headers, body, error)
   WHERE j.ctid = r.tid AND j.id = r.id AND j.state = 'running';
  t2 := clock_timestamp();
  INSERT INTO omnichan.sync_log (channel_id, job_id, operation, method, url, attempt,
                                 status, duration_ms, outcome, error)
  SELECT $CID, r.id, 'floor', 'GET', 'http://127.0.0.1:$P1/fast', 1, 200, 0.4, 'succeeded', NULL
    FROM unnest(ids) AS r(id);
  t3 := clock_timestamp();
  IF cardinality(ids) <> $N THEN
    RAISE EXCEPTION 'floor run claimed % of % jobs', cardinality(ids), $N;
  END IF;
  INSERT INTO floor_times VALUES (extract(epoch FROM t1 - t0) * 1e6 / $N,
                                  extract(epoch FROM t2 - t1) * 1e6 / $N,
                                  extract(epoch FROM t3 - t2) * 1e6 / $N);
END
\$\$;
SELECT round(claim::numeric, 2) || ' ' || round(outcome::numeric, 2) || ' ' || round(log::numeric, 2) FROM floor_times;
ROLLBACK;
SQL
}
oc_log "durable bookkeeping floor: the worker's claim, outcome and sync_log statements over $N jobs at once x $RUNS"
fcl=() fout=() flog=()
for r in $(seq "$RUNS"); do
	read -r a b c < <(floor_run)
	fcl+=("$a") fout+=("$b") flog+=("$c")
done
FLOOR_CLAIM=$(printf '%s\n' "${fcl[@]}" | median_f)
FLOOR_OUTCOME=$(printf '%s\n' "${fout[@]}" | median_f)
FLOOR_LOG=$(printf '%s\n' "${flog[@]}" | median_f)
FLOOR=$(awk -v a="$FLOOR_CLAIM" -v b="$FLOOR_OUTCOME" -v c="$FLOOR_LOG" 'BEGIN {printf "%.1f", a + b + c}')
CEILING=$(awk -v f="$FLOOR" -v b="${BARE_CPU[fast]}" 'BEGIN {printf "%.2f", b / (b + f)}')
oc_log "  claim ${fcl[*]}, outcome ${fout[*]}, sync_log ${flog[*]} us per request; floor $FLOOR us"

# --------------------------------------------------- commit -> request
oc_log "latency: $NLAT single-job transactions under ~$BG_RATE jobs/s of background traffic"
: >"$TLOG"
BG_SECONDS=$(awk -v n="$NLAT" 'BEGIN {print int(n * 0.035) + 5}')
BG_TICKS=$((BG_SECONDS * 10))
BG_PER_TICK=$(( (BG_RATE + 5) / 10 ))
oc_psql "$DB" >/dev/null 2>"$RUN/http-bg.err" <<SQL &
DO \$\$
BEGIN
  FOR i IN 1..$BG_TICKS LOOP
    INSERT INTO omnichan.job (channel_id, operation, method, url)
    SELECT $CID, 'bg', 'GET', 'http://127.0.0.1:$P2/bg' FROM generate_series(1, $BG_PER_TICK);
    PERFORM omnichan._wake_on_commit();
    COMMIT;
    PERFORM pg_sleep(0.1);
  END LOOP;
END
\$\$;
SQL
BGPID=$!
sleep 2
oc_psql "$DB" >/dev/null <<SQL || oc_die "latency run failed"
DO \$\$
DECLARE jid bigint; ids bigint[] := '{}'; ts timestamptz[] := '{}';
BEGIN
  FOR i IN 1..$NLAT LOOP
    jid := nextval('omnichan.job_id_seq');
    INSERT INTO omnichan.job (id, channel_id, operation, method, url)
    VALUES (jid, $CID, 'lat', 'GET', 'http://127.0.0.1:$P1/t/' || jid);
    PERFORM omnichan._wake_on_commit();
    COMMIT;
    ids := ids || jid;
    ts := ts || clock_timestamp();
    PERFORM pg_sleep(0.02 + random() * 0.03);
  END LOOP;
  INSERT INTO public.bench_commit SELECT * FROM unnest(ids, ts);
END
\$\$;
SQL
wait "$BGPID" || oc_log "background load: $(cat "$RUN/http-bg.err")"
sleep 1
oc_psql "$DB" -c "\\copy public.bench_arrival FROM '$TLOG' (DELIMITER ' ')" >/dev/null
read -r LAT_MED LAT_P99 LAT_MAX LAT_N BG_DONE < <(sql1 "
  SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
         round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
         round(max(ms)::numeric, 2), count(*),
         (SELECT count(*) FROM omnichan.job WHERE operation = 'bg' AND state = 'succeeded')
    FROM (SELECT extract(epoch FROM to_timestamp(a.us / 1e6) - c.committed_at) * 1000 AS ms
            FROM public.bench_commit c JOIN public.bench_arrival a USING (id)) s" | tr '|' ' ')
oc_log "  commit->request: median $LAT_MED ms, p99 $LAT_P99 ms, max $LAT_MAX ms ($LAT_N of $NLAT arrived; $BG_DONE background jobs)"

# ---------------------------------------------- long run: RSS, sockets
oc_log "long run: $LONG requests over 3 ports ($BACKLOG kept queued), sampling RSS and sockets"
SAMPLES=$RUN/http-samples.txt
: >"$SAMPLES"
BATCH=$((BACKLOG / 2))
oc_psql "$DB" >/dev/null 2>"$RUN/http-long.err" <<SQL &
DO \$\$
DECLARE queued bigint; sent bigint := 0;
BEGIN
  WHILE sent < $LONG LOOP
    SELECT count(*) INTO queued FROM omnichan.job WHERE operation = 'long' AND state = 'queued';
    IF queued < $BATCH THEN
      INSERT INTO omnichan.job (channel_id, operation, method, url)
      SELECT $CID, 'long', 'GET', 'http://127.0.0.1:' || ($P1 + i % 3) || '/long'
        FROM generate_series(1, least($BATCH, $LONG - sent)) i;
      PERFORM omnichan._wake_on_commit();
      sent := sent + least($BATCH, $LONG - sent);
      COMMIT;
    ELSE
      COMMIT;
      PERFORM pg_sleep(0.1);
    END IF;
  END LOOP;
  LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM omnichan.job WHERE operation = 'long' AND state IN ('queued', 'running'));
    COMMIT;
    PERFORM pg_sleep(0.2);
  END LOOP;
END
\$\$;
SQL
LONGPID=$!
LONG_T0=$(date +%s.%N)
while kill -0 "$LONGPID" 2>/dev/null; do
	rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$WPID/status" 2>/dev/null || echo 0)
	anon=$(awk '/^RssAnon:/ {print $2}' "/proc/$WPID/status" 2>/dev/null || echo 0)
	# (|| true: find fails when a socket closes mid-walk, and set -e -o pipefail would end the run)
	socks=$(find "/proc/$WPID/fd" -lname 'socket:*' 2>/dev/null | wc -l || true)
	perport=$(ss -Htn state established 2>/dev/null | awk -v a="127.0.0.1:$P1" -v b="127.0.0.1:$P2" -v c="127.0.0.1:$P3" \
		'$4 ~ /^127\.0\.0\.1:/ && ($4 == a || $4 == b || $4 == c) {n[$4]++} END {printf "%d %d %d", n[a], n[b], n[c]}' || true)
	echo "$(date +%s.%N) $rss $anon $socks $perport" >>"$SAMPLES"
	sleep 0.5
done
wait "$LONGPID" || oc_log "long run: $(cat "$RUN/http-long.err")"
LONG_T1=$(date +%s.%N)
LONG_RPS=$(awk -v a="$LONG_T0" -v b="$LONG_T1" -v n="$LONG" 'BEGIN {printf "%.0f", n / (b - a)}')
# (the cluster may have been stopped from outside: report what was sampled)
LONG_FAILED=$(sql1 "SELECT count(*) FROM omnichan.job WHERE operation = 'long' AND state <> 'succeeded'" 2>/dev/null ||
	echo "? (cluster lost: $(head -1 "$RUN/http-long.err"))")
# RSS: min/max/last of VmRSS; leak check on RssAnon (private memory; VmRSS
# also grows as the worker touches more of shared_buffers): growth from the
# sample at 10 % of the run to the last one
read -r RSS_MIN RSS_MAX RSS_LAST ANON_REF ANON_MAX ANON_LAST SOCK_MAX HOST_MAX NS < <(awk '
  {rss[NR]=$2; anon[NR]=$3; s=$4; if (s>smax) smax=s; for (k=5;k<=7;k++) if ($k>hmax) hmax=$k}
  END {rmin=rss[1]; rmax=rss[1]; amax=0
       for (i=1;i<=NR;i++) {if (rss[i]<rmin) rmin=rss[i]; if (rss[i]>rmax) rmax=rss[i]; if (anon[i]>amax) amax=anon[i]}
       ref=int(NR/10); if (ref<1) ref=1
       printf "%d %d %d %d %d %d %d %d %d\n", rmin/1024, rmax/1024, rss[NR]/1024, anon[ref]/1024, amax/1024, anon[NR]/1024, smax, hmax, NR}' "$SAMPLES")
oc_log "  $LONG_RPS req/s over the long run, $LONG_FAILED not succeeded; $NS samples"
SOCK_BOUND=$CONC	# libcurl's total connections are capped by http_max_inflight

# ------------------------------------------------------------------ table
verdict() { if awk "BEGIN {exit !($1)}"; then echo PASS; else echo MISS; fi; }
{
	echo "omnichan HTTP engine vs a bare libcurl multi client and pg_net ($(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores)"
	echo "loopback C target (bench/target.c), keep-alive; $CONC in flight; $N requests per run, median of $RUNS"
	echo "omnichan built from $(git -C "$OC_ROOT" rev-parse --short HEAD)$(git -C "$OC_ROOT" diff --quiet HEAD -- src sql 2>/dev/null || echo ' + uncommitted changes in src/ sql/')"
	echo
	printf '%-14s %-10s %9s %14s %16s %13s %s\n' target client "req/s" "omni/bare" "vs pg_net" "worker CPU" verdicts
	for target in fast slow; do
		if [ $target = fast ]; then label="fast"; pg=$PGNET_FAST; else label="${DELAY} ms"; pg=$PGNET_SLOW; fi
		ratio=$(awk -v a="${RPS[$target]}" -v b="${BARE[$target]}" 'BEGIN {printf "%.2f", a / b}')
		xpg=$(awk -v a="${RPS[$target]}" -v b="$pg" 'BEGIN {printf "%.1fx of %d", a / b, b}')
		printf '%-14s %-10s %9s %14s %16s %13s\n' "$label" bare "${BARE[$target]}" "" "" ""
		printf '%-14s %-10s %9s %14s %16s %13s %s\n' "$label" omnichan "${RPS[$target]}" "$ratio" "$xpg" \
			"${CPU[$target]} ms/1k" \
			"within1.5x:$(verdict "$ratio >= 1/1.5") pg_net5x:$(verdict "${RPS[$target]} >= 5 * $pg")$([ "${FAILS[$target]}" -gt 0 ] && echo " (${FAILS[$target]} not succeeded)")"
	done
	printf 'fast-answer ceiling: bare client CPU %s us per request; durable bookkeeping floor (the worker'"'"'s claim, outcome\n' "${BARE_CPU[fast]}"
	printf '  and sync_log statements, %s jobs in one statement each): %s + %s + %s = %s us per request;\n' \
		"$N" "$FLOOR_CLAIM" "$FLOOR_OUTCOME" "$FLOOR_LOG" "$FLOOR"
	printf '  best omni/bare with both and nothing else: %s / (%s + %s) = %s  (target 0.67: %s)\n' \
		"${BARE_CPU[fast]}" "${BARE_CPU[fast]}" "$FLOOR" "$CEILING" "$(verdict "$CEILING >= 1/1.5" | sed 's/PASS/reachable/; s/MISS/unreachable/')"
	echo
	printf 'commit->request (%s single-job txns, ~%s bg jobs/s): median %s ms, p99 %s ms, max %s ms  p99<=50ms:%s  (pg_net: median 999 ms, p99 1001 ms)\n' \
		"$LAT_N" "$BG_RATE" "$LAT_MED" "$LAT_P99" "$LAT_MAX" "$(verdict "${LAT_P99:-1e9} <= 50")"
	printf 'long run (%s requests, 3 ports, %s req/s, %s not succeeded):\n' "$LONG" "$LONG_RPS" "$LONG_FAILED"
	printf '  worker VmRSS min %s MB, max %s MB, last %s MB; RssAnon at 10%% %s MB, max %s MB, last %s MB  flat(anon +<=5MB):%s\n' \
		"$RSS_MIN" "$RSS_MAX" "$RSS_LAST" "$ANON_REF" "$ANON_MAX" "$ANON_LAST" "$(verdict "$ANON_LAST - $ANON_REF <= 5")"
	printf '  worker sockets max %s (bound %s = http_max_inflight, +2 for libcurl'"'"'s multi wakeup socketpair); established per target port max %s (bound %s = http_max_host_connections)  bounded:%s\n' \
		"$SOCK_MAX" "$SOCK_BOUND" "$HOST_MAX" "$CONC" "$(verdict "$SOCK_MAX <= $SOCK_BOUND + 2 && $HOST_MAX <= $CONC")"
} | tee "$RESULTS"
exit 0
