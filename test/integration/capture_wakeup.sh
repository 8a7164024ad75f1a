#!/usr/bin/env bash
# capture_wakeup: the commit-time wake-up of change capture
# (omnichan.capture_wakeups().wakeups, a shared-memory counter bumped by the
# commit callback of a transaction that recorded changes).
#
#   - a committed stock write bumps it by exactly one;
#   - several writes in one transaction bump it once;
#   - a rolled-back transaction, a transaction whose only capture was rolled
#     back to a savepoint, a write of unwatched columns only and a read-only
#     transaction do not bump it;
#   - the log rows of committed writes are there, those of rolled-back ones
#     are not.
#
# Needs the cluster of test/run.sh (PGHOST/PGPORT/PGUSER, OC_FIXTURE_DB).
set -euo pipefail
. "$(dirname "$0")/../lib.sh"

[ -n "${OC_FIXTURE_DB:-}" ] || { echo "OC_FIXTURE_DB is not set (run through test/run.sh)"; exit 77; }

db=capwake
"$OC_PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1 || true
"$OC_PGBIN/createdb" -T "$OC_FIXTURE_DB" "$db"
trap '"$OC_PGBIN/dropdb" --if-exists "$db" >/dev/null 2>&1 || true' EXIT

q() {
	oc_psql "$db" -At "$@"
}

failures=0
check() {
	local what=$1 want=$2 have=$3
	if [ "$have" = "$want" ]; then
		echo "ok: $what"
	else
		echo "FAIL: $what: want '$want', have '$have'"
		failures=$((failures + 1))
	fi
}

q -c 'CREATE EXTENSION IF NOT EXISTS omnichan' >/dev/null

# two products with a quant each, a move (written without capture)
read -r p1 p2 q1 q2 < <(q -F ' ' <<'SQL'
SET session_replication_role = replica;
CREATE TEMP TABLE ids AS SELECT 0 AS n;
WITH t AS (
    INSERT INTO public.product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                         sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                         list_price, sequence, invoice_policy)
    SELECT c.res_id, u.res_id, u.res_id, 'product', 'product', jsonb_build_object('en_US', 'capwake ' || i),
           'none', 'no-message', 'no-message', true, true, true, 1, 1, 'order'
      FROM generate_series(1, 2) i,
           public.ir_model_data c, public.ir_model_data u
     WHERE (c.module, c.name) = ('product', 'product_category_all')
       AND (u.module, u.name) = ('uom', 'product_uom_unit')
    RETURNING id
), p AS (
    INSERT INTO public.product_product (product_tmpl_id, active, default_code)
    SELECT id, true, 'CAPWAKE-' || id FROM t ORDER BY id
    RETURNING id
), qu AS (
    INSERT INTO public.stock_quant (product_id, company_id, location_id, quantity, reserved_quantity,
                                    in_date, inventory_quantity_set)
    SELECT p.id, w.company_id, w.lot_stock_id, 10, 0, now()::timestamp, false
      FROM p, public.stock_warehouse w, public.ir_model_data x
     WHERE (x.module, x.name) = ('stock', 'warehouse0') AND w.id = x.res_id
    RETURNING id, product_id
)
SELECT min(product_id), max(product_id),
       min(id) FILTER (WHERE product_id = (SELECT min(product_id) FROM qu)),
       min(id) FILTER (WHERE product_id = (SELECT max(product_id) FROM qu))
  FROM qu;
SQL
)
[ -n "$q2" ] || { echo "setup failed"; exit 1; }
echo "products $p1 $p2, quants $q1 $q2"

wakeups() {
	q -c 'SELECT wakeups FROM omnichan.capture_wakeups()'
}
logged() {
	q -c "SELECT count(*) FROM omnichan.stock_dirty_log WHERE product_id = $1"
}

# 1. one committed write
w0=$(wakeups)
q -c "UPDATE public.stock_quant SET quantity = 11 WHERE id = $q1" >/dev/null
check "a committed quant update bumps wakeups by one" "$((w0 + 1))" "$(wakeups)"
check "its log row is there" 1 "$(logged "$p1")"
check "last_wakeup is set" t "$(q -c 'SELECT last_wakeup IS NOT NULL AND last_wakeup <= now() FROM omnichan.capture_wakeups()')"

# 2. a rolled-back write
w0=$(wakeups)
q >/dev/null <<SQL
BEGIN;
UPDATE public.stock_quant SET quantity = 12 WHERE id = $q2;
ROLLBACK;
SQL
check "a rolled-back quant update does not bump wakeups" "$w0" "$(wakeups)"
check "it leaves no log row" 0 "$(logged "$p2")"

# 3. unwatched columns only
w0=$(wakeups)
q -c "UPDATE public.stock_quant SET in_date = in_date + interval '1 day', inventory_date = current_date WHERE id = $q2" >/dev/null
check "a committed update of unwatched columns does not bump wakeups" "$w0" "$(wakeups)"
check "it leaves no log row" 0 "$(logged "$p2")"

# 4. several writes in one transaction
w0=$(wakeups)
q >/dev/null <<SQL
BEGIN;
UPDATE public.stock_quant SET quantity = 13 WHERE id = $q1;
UPDATE public.stock_quant SET reserved_quantity = 1 WHERE id = $q2;
UPDATE public.stock_quant SET quantity = 14 WHERE id = $q2;
INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id, location_dest_id, name, state,
                               procure_method, product_uom_qty, product_qty, quantity, date)
SELECT q.company_id, q.product_id, pt.uom_id, q.location_id, q.location_id, 'capwake', 'confirmed',
       'make_to_stock', 1, 1, 0, now()::timestamp
  FROM public.stock_quant q JOIN public.product_product pp ON pp.id = q.product_id
  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
 WHERE q.id = $q1;
COMMIT;
SQL
check "four writes in one transaction bump wakeups once" "$((w0 + 1))" "$(wakeups)"
check "product 1 logged once more" 2 "$(logged "$p1")"
check "product 2 logged once" 1 "$(logged "$p2")"

# 5. the only capture of a committed transaction was rolled back to a savepoint
w0=$(wakeups)
q >/dev/null <<SQL
BEGIN;
SAVEPOINT s;
UPDATE public.stock_quant SET quantity = 15 WHERE id = $q1;
ROLLBACK TO SAVEPOINT s;
UPDATE public.stock_quant SET in_date = in_date + interval '1 day' WHERE id = $q1;
COMMIT;
SQL
check "a commit whose only capture was rolled back to a savepoint does not bump wakeups" "$w0" "$(wakeups)"
check "it leaves no log row" 2 "$(logged "$p1")"

# 6. a savepoint rolled back, then a real change: one wake-up
w0=$(wakeups)
q >/dev/null <<SQL
BEGIN;
SAVEPOINT s;
UPDATE public.stock_quant SET quantity = 16 WHERE id = $q1;
ROLLBACK TO SAVEPOINT s;
UPDATE public.stock_quant SET quantity = 17 WHERE id = $q1;
COMMIT;
SQL
check "a savepoint rolled back then a change: one wake-up" "$((w0 + 1))" "$(wakeups)"
check "and one log row" 3 "$(logged "$p1")"

# 7. read-only transaction, and an error after a capture
w0=$(wakeups)
q -c "SELECT count(*) FROM public.stock_quant" >/dev/null
q >/dev/null 2>&1 <<SQL || true
BEGIN;
UPDATE public.stock_quant SET quantity = 18 WHERE id = $q2;
SELECT 1 / 0;
COMMIT;
SQL
check "a read and a failed transaction do not bump wakeups" "$w0" "$(wakeups)"
check "the failed transaction leaves no log row" 1 "$(logged "$p2")"

# 8. ten committed transactions: ten wake-ups
w0=$(wakeups)
for i in $(seq 1 10); do
	q -c "UPDATE public.stock_quant SET quantity = quantity + 1 WHERE id IN ($q1, $q2)" >/dev/null
done
check "ten committed transactions: ten wake-ups" "$((w0 + 10))" "$(wakeups)"
check "no capture error" 0 "$(q -c 'SELECT capture_errors FROM omnichan.capture_wakeups()')"

if [ "$failures" -gt 0 ]; then
	echo "$failures check(s) failed"
	exit 1
fi
echo "PASS"
