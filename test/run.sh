#!/usr/bin/env bash
# test/run.sh -- the whole omnichan test suite, in one command.
#
#   bash test/run.sh [NAME_REGEX]
#
# Installs the Debian packages it needs (as root), builds the extension with
# warnings as errors, installs it, starts a throwaway PostgreSQL 15 cluster
# with shared_preload_libraries = omnichan, and runs:
#   1. pg_regress tests      sql/NAME.sql        -> expected/NAME.out (REGRESS order)
#   2. isolation specs       test/specs/NAME.spec -> test/expected/NAME.out
#   3. pgTAP suites          test/pgtap/*.sql on the project's Odoo fixture
#   4. the same pgTAP suites on the real Odoo 17 dump (../shared/odoo/demo.sql.gz)
#   5. integration tests     test/integration/* (mock marketplaces, killed processes)
# then prints the diffs / output / server log tail of every failure and one
# summary line "N passed, N failed".  Exit status 0 only if nothing failed.
#
# NAME_REGEX (optional) runs only the tests whose name matches, e.g. "ats".

set -uo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

filter=${1:-.}
passed=0
failed=0
skipped=0
failures=()
start_time=$(date +%s)

RUN=$OC_ROOT/test/.run
# one run at a time on this machine (every checkout installs into the same
# PostgreSQL): a second one waits for the first
mkdir -p "$RUN"
exec 9>"${OC_TEST_LOCK:-/tmp/omnichan-test.lock}"
flock 9
start_time=$(date +%s)
last_mark=$(date +%s.%N)
rm -rf "$RUN"
mkdir -p "$RUN"
[ "$(id -u)" -eq 0 ] && chmod 755 "$RUN"

# record NAME STATUS [LOGFILE]: count one test result (with the time since
# the previous result)
last_mark=$(date +%s.%N)
record() {
	local name=$1 status=$2 log=${3:-} now took
	now=$(date +%s.%N)
	took=$(awk -v a="$last_mark" -v b="$now" 'BEGIN { printf "%.1fs", b - a }')
	last_mark=$now
	case $status in
	ok)
		passed=$((passed + 1))
		printf '  ok       %-45s %s\n' "$name" "$took"
		;;
	skip)
		skipped=$((skipped + 1))
		printf '  skipped  %-45s %s\n' "$name" "$took"
		;;
	*)
		failed=$((failed + 1))
		failures+=("$name|$log")
		printf '  FAILED   %-45s %s\n' "$name" "$took"
		;;
	esac
}

selected() {
	[[ $1 =~ $filter ]]
}

finish() {
	local elapsed=$(($(date +%s) - start_time))
	if [ ${#failures[@]} -gt 0 ]; then
		echo
		echo "======================== failures ========================"
		for f in "${failures[@]}"; do
			local name=${f%%|*} log=${f#*|}
			echo "---- $name"
			if [ -n "$log" ] && [ -f "$log" ]; then
				tail -n 200 "$log"
			fi
		done
		if [ -n "${OC_CLUSTER_DIR:-}" ] && [ -f "$OC_CLUSTER_DIR/server.log" ]; then
			echo "---- server log (last 60 lines)"
			tail -n 60 "$OC_CLUSTER_DIR/server.log"
		fi
	fi
	[ -n "${OC_CLUSTER_DIR:-}" ] && oc_cluster_stop "$OC_CLUSTER_DIR"
	echo
	echo "elapsed ${elapsed}s"
	if [ "$skipped" -gt 0 ]; then
		echo "$passed passed, $failed failed, $skipped skipped"
	else
		echo "$passed passed, $failed failed"
	fi
	[ "$failed" -eq 0 ]
	exit $?
}
trap 'finish' EXIT
trap 'exit 130' INT TERM

oc_install_packages

echo "build"
if oc_build_install >"$RUN/build.log" 2>&1; then
	record build ok
else
	record build failed "$RUN/build.log"
	exit 1
fi

oc_log "starting a throwaway cluster with shared_preload_libraries = omnichan"
oc_cluster_start "$RUN/cluster" "shared_preload_libraries = 'omnichan'" >"$RUN/cluster.log" 2>&1 ||
	{ record cluster failed "$RUN/cluster.log"; exit 1; }

oc_log "preparing databases"
if ! oc_create_fixture_db odoo_fixture >"$RUN/fixture.log" 2>&1; then
	record fixture-load failed "$RUN/fixture.log"
	exit 1
fi
real_db=odoo_real
oc_create_real_db "$real_db" >"$RUN/real.log" 2>&1
case $? in
0) ;;
3)
	oc_log "no real Odoo dump at $OC_SHARED/odoo: real-dump suites are skipped"
	real_db=
	;;
*)
	record real-dump-load failed "$RUN/real.log"
	real_db=
	;;
esac

# databases for the suites, all copies of the fixture
for db in omnichan_regress omnichan_iso omnichan_tap; do
	"$OC_PGBIN/createdb" -T odoo_fixture "$db" >>"$RUN/prepare.log" 2>&1 ||
		{ record "create-database-$db" failed "$RUN/prepare.log"; exit 1; }
done
for db in omnichan_tap $real_db; do
	oc_psql "$db" -c 'CREATE EXTENSION pgtap; CREATE EXTENSION omnichan;' >>"$RUN/prepare.log" 2>&1 ||
		{ record "install-extension-$db" failed "$RUN/prepare.log"; exit 1; }
done

# ---------------------------------------------------------------- pg_regress
echo "pg_regress"
regress_tests=()
for t in $(make -s -C "$OC_ROOT" print-regress); do
	selected "regress/$t" && regress_tests+=("$t")
done
if [ ${#regress_tests[@]} -gt 0 ]; then
	(cd "$OC_ROOT" &&
		"$($OC_PG_CONFIG --pkglibdir)/pgxs/src/test/regress/pg_regress" \
			--bindir="$OC_PGBIN" --inputdir=. --outputdir="$RUN/regress" \
			--use-existing --dbname=omnichan_regress "${regress_tests[@]}") \
		>"$RUN/regress.log" 2>&1
	for t in "${regress_tests[@]}"; do
		line=$(grep -E "^(test| ) *$t +\.\.\. " "$RUN/regress.log" | head -n 1)
		if [[ $line == *" ok "* ]]; then
			record "regress/$t" ok
		else
			# the diff of this test alone
			awk -v t="$t" '/^diff /{p = ($0 ~ "/" t "\\.out")} p' \
				"$RUN/regress/regression.diffs" >"$RUN/regress-$t.diff" 2>/dev/null
			[ -s "$RUN/regress-$t.diff" ] || cp "$RUN/regress.log" "$RUN/regress-$t.diff"
			record "regress/$t" failed "$RUN/regress-$t.diff"
		fi
	done
fi

# ---------------------------------------------------------------- isolation
echo "isolation"
iso_tests=()
for t in $(make -s -C "$OC_ROOT" print-isolation); do
	selected "isolation/$t" && iso_tests+=("$t")
done
if [ ${#iso_tests[@]} -gt 0 ]; then
	(cd "$OC_ROOT" &&
		"$($OC_PG_CONFIG --pkglibdir)/pgxs/src/test/isolation/pg_isolation_regress" \
			--bindir="$OC_PGBIN" --inputdir=test --outputdir="$RUN/isolation" \
			--use-existing --dbname=omnichan_iso "${iso_tests[@]}") \
		>"$RUN/isolation.log" 2>&1
	for t in "${iso_tests[@]}"; do
		line=$(grep -E "^(test| ) *$t +\.\.\. " "$RUN/isolation.log" | head -n 1)
		if [[ $line == *" ok "* ]]; then
			record "isolation/$t" ok
		else
			awk -v t="$t" '/^diff /{p = ($0 ~ "/" t "\\.out")} p' \
				"$RUN/isolation/regression.diffs" >"$RUN/isolation-$t.diff" 2>/dev/null
			[ -s "$RUN/isolation-$t.diff" ] || cp "$RUN/isolation.log" "$RUN/isolation-$t.diff"
			record "isolation/$t" failed "$RUN/isolation-$t.diff"
		fi
	done
fi

# ---------------------------------------------------------------- pgTAP
run_pgtap() {
	local db=$1 label=$2 f name
	for f in "$OC_ROOT"/test/pgtap/*.sql; do
		[ -e "$f" ] || continue
		name="pgtap-$label/$(basename "$f" .sql)"
		selected "$name" || continue
		if pg_prove -d "$db" --ext .sql "$f" >"$RUN/${name//\//_}.log" 2>&1; then
			record "$name" ok
		else
			record "$name" failed "$RUN/${name//\//_}.log"
		fi
	done
}
echo "pgTAP on the project's Odoo fixture"
run_pgtap omnichan_tap fixture
echo "pgTAP on the real Odoo 17 dump"
if [ -n "$real_db" ]; then
	run_pgtap "$real_db" odoo
else
	record "pgtap-odoo/*" skip
fi

# ---------------------------------------------------------------- integration
echo "integration"
export OC_RUN_DIR=$RUN OC_FIXTURE_DB=odoo_fixture OC_REAL_DB=$real_db
for t in "$OC_ROOT"/test/integration/*; do
	[ -f "$t" ] && [ -x "$t" ] || continue
	name="integration/$(basename "$t")"
	selected "$name" || continue
	log="$RUN/${name//\//_}.log"
	timeout 300 "$t" >"$log" 2>&1
	rc=$?
	case $rc in
	0) record "$name" ok ;;
	77) record "$name" skip ;;
	*) record "$name" failed "$log" ;;
	esac
done
