#!/usr/bin/env bash
# test/demo.sh -- omnichan in five minutes, on a throwaway cluster.
#
#   bash test/demo.sh [--keep]
#
# Installs what it needs (as root), builds and installs omnichan, starts a
# throwaway PostgreSQL 15 cluster with omnichan preloaded, loads an
# Odoo 17-shaped database (the project's fixture: Odoo's real tables and seed
# rows) with a generated catalog, starts local mock marketplaces on
# 127.0.0.1, configures one channel per marketplace pointing at them, and
# shows what omnichan computes: available-to-sell, the allocation per channel,
# the low-stock waterfall, and how a marketplace order and a stock change in
# Odoo's tables move the numbers.  Everything is removed at the end unless
# --keep is given (then it prints how to connect and how to stop it).

set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

keep=false
[ "${1:-}" = "--keep" ] && keep=true

DEMO=$(mktemp -d /tmp/omnichan-demo.XXXXXX)
chmod 755 "$DEMO"
mocks=()

cleanup() {
	$keep && return
	for m in "${mocks[@]}"; do
		/usr/bin/python3 "$OC_ROOT/test/mock/mockctl.py" stop --pid-file "$DEMO/$m.pid" >/dev/null 2>&1 || true
	done
	oc_cluster_stop "$DEMO/cluster"
	rm -rf "$DEMO"
}
trap cleanup EXIT

title() {
	printf '\n\033[1m== %s\033[0m\n' "$*"
}

q() {
	oc_psql odoo -P footer=off "$@"
}

oc_install_packages
oc_build_install || oc_die "build failed (run: make) "

title "A throwaway PostgreSQL 15 cluster with shared_preload_libraries = omnichan"
oc_cluster_start "$DEMO/cluster" "shared_preload_libraries = 'omnichan'"
echo "cluster in $DEMO/cluster (Unix socket only)"

title "An Odoo 17 database: Odoo's real tables, a catalog of 200 products in 2 warehouses"
oc_create_fixture_db odoo
q -c "SELECT omnichan_test.generate_catalog(200, 2)" >/dev/null
q -c "SELECT (SELECT count(*) FROM product_product) AS products,
             (SELECT count(*) FROM stock_warehouse) AS warehouses,
             (SELECT count(*) FROM stock_quant) AS quants,
             (SELECT count(*) FROM stock_move WHERE state IN ('waiting','confirmed','partially_available','assigned')) AS open_moves,
             (SELECT count(*) FROM sale_order) AS sale_orders"

title "Mock marketplaces on 127.0.0.1 (stand-ins for the real APIs)"
declare -A port
for m in amazon shopify ebay walmart tiktok etsy lazada; do
	/usr/bin/python3 "$OC_ROOT/test/mock/mockctl.py" start "$m" \
		--port-file "$DEMO/$m.port" --pid-file "$DEMO/$m.pid" --log-file "$DEMO/$m.log" >/dev/null
	mocks+=("$m")
	port[$m]=$(cat "$DEMO/$m.port")
	printf '  %-8s http://127.0.0.1:%s\n' "$m" "${port[$m]}"
done

title "CREATE EXTENSION omnichan; one channel per marketplace, configured in SQL"
q -c "CREATE EXTENSION omnichan"
q <<SQL >/dev/null
SELECT omnichan.channel_create('amazon-us', 'amazon', jsonb_build_object(
           'seller_id', 'A2DEMOSELLER1', 'marketplace_ids', jsonb_build_array('ATVPDKIKX0DER'),
           'buffer_pct', 10, 'priority', 1, 'low_stock_threshold', 5,
           'endpoint', 'http://127.0.0.1:${port[amazon]}'));
SELECT omnichan.channel_create('shopify', 'shopify', jsonb_build_object(
           'shop_domain', 'demo-store.myshopify.com', 'location_id', 'gid://shopify/Location/1',
           'buffer_pct', 5, 'priority', 2, 'low_stock_threshold', 5,
           'endpoint', 'http://127.0.0.1:${port[shopify]}'));
SELECT omnichan.channel_create('ebay-us', 'ebay', jsonb_build_object(
           'marketplace_id', 'EBAY_US', 'buffer_pct', 10, 'priority', 3, 'low_stock_threshold', 5,
           'endpoint', 'http://127.0.0.1:${port[ebay]}'));
SELECT omnichan.channel_create('walmart', 'walmart', jsonb_build_object(
           'priority', 4, 'low_stock_threshold', 5, 'max_qty', 50,
           'endpoint', 'http://127.0.0.1:${port[walmart]}'));
SELECT omnichan.channel_create('tiktok', 'tiktok', jsonb_build_object(
           'shop_cipher', 'DEMOCIPHER', 'priority', 5, 'low_stock_threshold', 5,
           'endpoint', 'http://127.0.0.1:${port[tiktok]}'));
SELECT omnichan.channel_create('etsy', 'etsy', jsonb_build_object(
           'shop_id', 12345, 'priority', 6, 'buffer_pct', 20, 'low_stock_threshold', 5,
           'endpoint', 'http://127.0.0.1:${port[etsy]}'));
SELECT omnichan.channel_create('daraz-pk', 'lazada', jsonb_build_object(
           'country', 'pk', 'priority', 7, 'low_stock_threshold', 5,
           'warehouse_ids', (SELECT jsonb_agg(id ORDER BY id) FROM (SELECT id FROM stock_warehouse ORDER BY id DESC LIMIT 1) w),
           'endpoint', 'http://127.0.0.1:${port[lazada]}'));
SQL
q -c "SELECT name, kind, warehouse_ids, buffer_pct, priority, max_qty, low_stock_threshold AS low_at,
             push_interval, endpoint FROM omnichan.channel ORDER BY priority"

# the demo product: the first generated product with stock in both warehouses
pid=$(q -At -c "SELECT product_id FROM omnichan.ats_bulk(NULL, NULL, true) GROUP BY product_id
                 HAVING min(ats) >= 20 ORDER BY product_id LIMIT 1")
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

title "A marketplace order for 4 units arrives (order inbox): it is pending demand at once"
q <<SQL >/dev/null
WITH o AS (
    INSERT INTO omnichan.order_inbox (channel_id, external_id)
    SELECT id, '113-0000001-0000001' FROM omnichan.channel WHERE name = 'amazon-us'
    RETURNING id)
INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity)
SELECT o.id, 1, '$code', $pid, 4 FROM o;
SQL
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

title "The whole catalog in one call"
q -c "\\timing on" -c "SELECT count(*) AS products, sum(ats) AS units_available FROM omnichan.ats_bulk()" \
	-c "SELECT mode, count(*) AS rows, sum(quantity) AS units_shown FROM omnichan.allocate_bulk() GROUP BY mode ORDER BY mode"

title "Done"
if $keep; then
	echo "The cluster and the mocks keep running:"
	echo "  psql -h $DEMO/cluster -U postgres -d odoo"
	echo "Stop them with:"
	echo "  for f in $DEMO/*.pid; do kill \$(cat \$f); done; runuser -u postgres -- $OC_PGBIN/pg_ctl -D $DEMO/cluster/data stop"
else
	echo "Everything above ran in a throwaway cluster that is now removed (use --keep to explore it)."
fi
echo "Not in this version yet: background workers pushing these quantities to the marketplaces and"
echo "pulling their orders into Odoo (see the status table in README.md)."
