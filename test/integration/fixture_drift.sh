#!/usr/bin/env bash
# fixture_drift: the project's Odoo 17 fixture (test/fixtures/odoo17.sql) has
# the same tables, columns, types, defaults, constraints and indexes as the
# real Odoo 17 database restored from ../shared/odoo/demo.sql.gz.  Both
# databases are the untouched ones test/run.sh prepared (no extension).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
if [ -z "${OC_REAL_DB:-}" ]; then
	echo "no real Odoo dump on this machine"
	exit 77
fi
# compare against a fresh copy of the real dump without omnichan installed
"$OC_PGBIN/createdb" -T "$OC_REAL_DB" drift_real 2>/dev/null || true
trap '"$OC_PGBIN/dropdb" --if-exists drift_real' EXIT
oc_psql drift_real -c 'DROP EXTENSION IF EXISTS omnichan; DROP EXTENSION IF EXISTS pgtap;' >/dev/null
sh "$OC_ROOT/test/fixtures/check_drift.sh" "$OC_FIXTURE_DB" drift_real
