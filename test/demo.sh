#!/usr/bin/env bash
# test/demo.sh -- omnichan in five minutes, on a throwaway cluster.
#
#   bash test/demo.sh [--keep]
#
# Installs what it needs (as root), builds and installs omnichan, starts a
# throwaway PostgreSQL 15 cluster with omnichan preloaded, loads an
# Odoo 17-shaped database (the project's fixture: Odoo's real tables and seed
# rows) with a generated catalog, starts the seven mock marketplaces on
# 127.0.0.1 (test/demo_push.py), configures one real-time channel per
# marketplace pointing at them with credentials and 8 linked listings, and
# shows the sync worker pushing every listing's allocation to its marketplace,
# a stock change committed in Odoo reaching all seven, and what omnichan
# computes: available-to-sell, the allocation per channel, the low-stock
# waterfall, an eBay order pulled into Odoo as a quotation (pending demand:
# every marketplace's allocation drops), a stock change, and the status views.  Everything (mocks, cluster) is removed on every exit
# unless --keep is given (then it prints how to connect and how to stop it).

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=false
[ "${1:-}" = "--keep" ] && keep=true

PY=/usr/bin/python3
DEMO=$(mktemp -d /tmp/omnichan-demo.XXXXXX)
chmod 755 "$DEMO"

cleanup() {
	local rc=$? f
	trap - EXIT INT TERM HUP
	if $keep && [ "$rc" -eq 0 ]; then
		return 0
	fi
	# the mocks started by test/demo_push.py: one pid file each
	for f in "$DEMO"/*.pid; do
		[ -e "$f" ] && { "$PY" "$OC_ROOT/test/mock/mockctl.py" stop --pid-file "$f" >/dev/null 2>&1 || true; }
	done
	oc_cluster_stop "$DEMO/cluster"
	rm -rf "$DEMO"
	case $rc in
	0) ;;
	130 | 143) echo "demo interrupted; everything it started is removed" >&2 ;;
	*) echo "demo failed (exit status $rc); everything it started is removed" >&2 ;;
	esac
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

title() {
	printf '\n\033[1m== %s\033[0m\n' "$*"
}

q() {
	oc_psql odoo -P footer=off "$@"
}

oc_install_packages
oc_build_install || oc_die "build failed (run: make) "

title "A throwaway PostgreSQL 15 cluster with shared_preload_libraries = omnichan"
oc_cluster_start "$DEMO/cluster" "shared_preload_libraries = 'omnichan'" \
	"omnichan.databases = 'odoo'" "omnichan.http_allow_plain_loopback = on"
echo "cluster in $DEMO/cluster (Unix socket only); omnichan.databases = 'odoo' (a sync worker for it),"
echo "omnichan.http_allow_plain_loopback = on (the mocks speak plain http on 127.0.0.1)"

title "An Odoo 17 database: Odoo's real tables, a catalog of 200 products in 2 warehouses"
oc_create_fixture_db odoo
q -c "SELECT omnichan_test.generate_catalog(200, 2)" >/dev/null
q -c "SELECT (SELECT count(*) FROM product_product) AS products,
             (SELECT count(*) FROM stock_warehouse) AS warehouses,
             (SELECT count(*) FROM stock_quant) AS quants,
             (SELECT count(*) FROM stock_move WHERE state IN ('waiting','confirmed','partially_available','assigned')) AS open_moves,
             (SELECT count(*) FROM sale_order) AS sale_orders"

title "CREATE EXTENSION omnichan; the sync worker of database odoo"
q -c "CREATE EXTENSION omnichan"
# the launcher started the worker before the database existed and restarts it
# with a backoff (1 s, 2 s, 4 s ...): wait for it
worker=""
for _ in $(seq 1 300); do
	worker=$(q -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'omnichan worker' AND datname = 'odoo'")
	[ -n "$worker" ] && break
	sleep 0.1
done
[ -n "$worker" ] || oc_die "no omnichan worker for database odoo after 30 s (see $DEMO/cluster/server.log)"
echo "omnichan worker of database odoo running (pid $worker)"

title "Seven mock marketplaces on 127.0.0.1, one real-time channel each, credentials, listings linked by SKU"
echo "SKU-000001 ... SKU-000008 are listed on every marketplace (what each API needs: Shopify inventory items,"
echo "TikTok products with SKU variants, Etsy listings with colour variants, Daraz sku/item ids ...)."
echo
"$PY" "$OC_ROOT/test/demo_push.py" setup --dir "$DEMO" --db odoo
q -c "SELECT name, kind, warehouse_ids, buffer_pct, priority, max_qty, low_stock_threshold AS low_at,
             push_interval, endpoint FROM omnichan.channel ORDER BY priority"
q -c "SELECT channel, kind, source, keys AS credential_keys FROM omnichan.credential_status ORDER BY channel"

title "Stock flows out: the sync worker pushes every listing's allocation to its marketplace"
"$PY" "$OC_ROOT/test/demo_push.py" sync --dir "$DEMO" --db odoo

title "A stock change in Odoo reaches every marketplace"
"$PY" "$OC_ROOT/test/demo_push.py" change --dir "$DEMO" --db odoo SKU-000002 40

# the demo product: the first listed product (SKU-000001 ... SKU-000008, not
# SKU-000002 whose stock changed above) with stock in both warehouses
pid=$(q -At -c "SELECT a.product_id FROM omnichan.ats_bulk(NULL, NULL, true) a
                  JOIN product_product p ON p.id = a.product_id
                 WHERE p.default_code BETWEEN 'SKU-000001' AND 'SKU-000008' AND p.default_code <> 'SKU-000002'
                 GROUP BY a.product_id HAVING min(a.ats) >= 20 ORDER BY a.product_id LIMIT 1")
[ -n "$pid" ] || oc_die "no listed product with stock in both warehouses"
code=$(q -At -c "SELECT default_code FROM product_product WHERE id = $pid")

title "Available to sell of $code (product $pid), per warehouse: on hand - reserved - safety - pending"
q -c "SELECT w.code AS warehouse, a.on_hand, a.reserved, a.safety, a.pending, a.ats
        FROM omnichan.ats_bulk(ARRAY[$pid], NULL, true) a JOIN stock_warehouse w ON w.id = a.warehouse_id"

title "What each channel shows for $code (normal mode: pool x (1 - buffer), capped)"
q -c "SELECT channel, quantity, mode, pool FROM omnichan.allocate_bulk(ARRAY[$pid]) ORDER BY quantity DESC, channel"

title "A safety stock of 3 units, and Etsy excluded for this product"
q -c "SELECT omnichan.product_policy_set($pid, '{\"safety_stock\": 3}'),
             omnichan.product_channel_policy_set($pid, 'etsy', '{\"excluded\": true}')" >/dev/null
q -c "SELECT channel, quantity, mode FROM omnichan.allocate_bulk(ARRAY[$pid]) ORDER BY quantity DESC, channel"

title "Orders flow in: an eBay order becomes an Odoo quotation, and every marketplace shows less"
"$PY" "$OC_ROOT/test/demo_push.py" order --dir "$DEMO" --db odoo "$code" 4
q -c "SELECT on_hand, reserved, safety, pending, ats FROM omnichan.ats($pid)"

title "Stock runs low in Odoo: on hand drops to 11 units (low-stock mode: priority waterfall)"
q <<SQL >/dev/null
UPDATE stock_quant SET quantity = 0, reserved_quantity = 0 WHERE product_id = $pid;
UPDATE stock_quant SET quantity = 11
 WHERE id = (SELECT min(q.id) FROM stock_quant q JOIN stock_location l ON l.id = q.location_id
              WHERE q.product_id = $pid AND l.usage = 'internal');
UPDATE stock_move SET state = 'cancel' WHERE product_id = $pid AND state <> 'done';
SQL
q -c "SELECT on_hand, reserved, safety, pending, ats FROM omnichan.ats($pid)"
q -c "SELECT channel, shown, mode, explanation FROM omnichan.explain_allocation($pid)"

title "What the marketplaces show for $code now (read from each mock)"
"$PY" "$OC_ROOT/test/demo_push.py" show --dir "$DEMO" --db odoo "$code"

title "The whole catalog in one call"
q -c "\\timing on" -c "SELECT count(*) AS products, sum(ats) AS units_available FROM omnichan.ats_bulk()" \
	-c "SELECT mode, count(*) AS rows, sum(quantity) AS units_shown FROM omnichan.allocate_bulk() GROUP BY mode ORDER BY mode"

title "Sync status: omnichan.channel_status and omnichan.listing_status"
q -c "SELECT channel, state, last_push_at, last_pull_at, backlog, errors_last_hour, last_error FROM omnichan.channel_status ORDER BY channel_id"
q -c "SELECT channel, sku, target_qty, pushed_qty, pushed_at, pushing, last_error
        FROM omnichan.listing_status WHERE sku IN ('$code', 'SKU-000002') ORDER BY sku, channel"

title "Done"
if $keep; then
	echo "The cluster and the mocks keep running:"
	echo "  psql -h $DEMO/cluster -U postgres -d odoo"
	echo "Stop them with:"
	echo "  for f in $DEMO/*.pid; do kill \$(cat \$f); done; runuser -u postgres -- $OC_PGBIN/pg_ctl -D $DEMO/cluster/data stop"
else
	echo "Everything above ran in a throwaway cluster that is now removed (use --keep to explore it)."
fi
