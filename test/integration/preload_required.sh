#!/usr/bin/env bash
# preload_required: in a server that was started without omnichan in
# shared_preload_libraries, CREATE EXTENSION and LOAD are refused with a clear
# error and hint, and the session survives (no FATAL, no crash).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

dir=$(mktemp -d "${OC_RUN_DIR:-/tmp}/nopreload.XXXXXX")
trap 'oc_cluster_stop "$dir"; rm -rf "$dir"' EXIT
oc_cluster_start "$dir"

out=$("$OC_PGBIN/psql" -X -d postgres -v VERBOSITY=verbose 2>&1 <<'SQL' || true
CREATE EXTENSION omnichan;
LOAD 'omnichan';
SELECT 'session still alive' AS probe;
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'omnichan';
SQL
)
echo "$out"

fail() { echo "FAIL: $*"; exit 1; }
[ "$(grep -c 'ERROR:  55000: omnichan can only be loaded via shared_preload_libraries' <<<"$out")" -eq 2 ] ||
	fail "expected the preload error (SQLSTATE 55000) for CREATE EXTENSION and for LOAD"
grep -q 'HINT:  Add omnichan to the shared_preload_libraries configuration variable' <<<"$out" ||
	fail "expected a hint naming shared_preload_libraries"
grep -q 'session still alive' <<<"$out" || fail "the session did not survive the refused load"
grep -qE '^ +0$' <<<"$out" || fail "the extension must not be installed after a refused load"
if grep -qE 'FATAL|PANIC|server closed the connection' <<<"$out"; then
	fail "the refused load must not kill the session"
fi
echo "PASS"
