-- bench/ats_setup.sql -- channels and product policies of the ATS benchmark
-- (run by bench/ats.sh after omnichan_test.generate_catalog, 3 warehouses).
--
-- 7 channels, one per kind, through the public API (omnichan.channel_create),
-- with varied buffers, priorities, thresholds and caps; some on a subset of
-- the warehouses, so allocate_bulk() has several pools and one overlap group:
--
--   channel          warehouses  buffer  priority  threshold  max_qty
--   amazon-us        1,2,3       10      1         5          -
--   shopify-store    1           5       2         3          -
--   ebay-us          2,3         0       3         2          -
--   walmart-us       1,2         15      4         0          50
--   tiktok-shop      3           20      5         4          -
--   etsy-shop        1           0       6         1          10
--   lazada-my        2           25      7         0          -     (inactive)
--
-- Product policies: safety stock on every 10th storable product (10 %), and
-- per-channel overrides on every 50th (buffer on amazon, excluded on etsy,
-- max_qty on shopify).
\set ON_ERROR_STOP 1

DO $$
DECLARE
	wh int[] := ARRAY(SELECT id FROM stock_warehouse WHERE active ORDER BY id);
	w1 int := wh[1];
	w2 int := wh[2];
	w3 int := wh[3];
BEGIN
	IF cardinality(wh) < 3 THEN
		RAISE EXCEPTION 'the benchmark needs 3 active warehouses, found %', cardinality(wh);
	END IF;
	PERFORM omnichan.channel_create('amazon-us', 'amazon', jsonb_build_object(
		'seller_id', 'A2BENCH0000001', 'marketplace_ids', jsonb_build_array('ATVPDKIKX0DER'),
		'warehouse_ids', jsonb_build_array(w1, w2, w3),
		'buffer_pct', 10, 'priority', 1, 'low_stock_threshold', 5));
	PERFORM omnichan.channel_create('shopify-store', 'shopify', jsonb_build_object(
		'shop_domain', 'bench-store.myshopify.com', 'location_id', 'gid://shopify/Location/123456789',
		'warehouse_ids', jsonb_build_array(w1),
		'buffer_pct', 5, 'priority', 2, 'low_stock_threshold', 3));
	PERFORM omnichan.channel_create('ebay-us', 'ebay', jsonb_build_object(
		'marketplace_id', 'EBAY_US',
		'warehouse_ids', jsonb_build_array(w2, w3),
		'buffer_pct', 0, 'priority', 3, 'low_stock_threshold', 2));
	PERFORM omnichan.channel_create('walmart-us', 'walmart', jsonb_build_object(
		'warehouse_ids', jsonb_build_array(w1, w2),
		'buffer_pct', 15, 'priority', 4, 'max_qty', 50));
	PERFORM omnichan.channel_create('tiktok-shop', 'tiktok', jsonb_build_object(
		'shop_cipher', 'ROW_bench_cipher',
		'warehouse_ids', jsonb_build_array(w3),
		'buffer_pct', 20, 'priority', 5, 'low_stock_threshold', 4));
	PERFORM omnichan.channel_create('etsy-shop', 'etsy', jsonb_build_object(
		'shop_id', 12345678,
		'warehouse_ids', jsonb_build_array(w1),
		'buffer_pct', 0, 'priority', 6, 'low_stock_threshold', 1, 'max_qty', 10));
	PERFORM omnichan.channel_create('lazada-my', 'lazada', jsonb_build_object(
		'country', 'my',
		'warehouse_ids', jsonb_build_array(w2),
		'buffer_pct', 25, 'priority', 7, 'active', false));
END
$$;

-- safety stock on 10 % of the storable products (1 .. 5 units)
SELECT count(omnichan.product_policy_set(p.id, jsonb_build_object('safety_stock', 1 + p.rn / 10 % 5)))
  FROM (SELECT pp.id, row_number() OVER (ORDER BY pp.id) AS rn
          FROM product_product pp JOIN product_template pt ON pt.id = pp.product_tmpl_id
         WHERE pt.type = 'product') p
 WHERE p.rn % 10 = 0;

-- per-channel overrides on 2 % of them
SELECT count(omnichan.product_channel_policy_set(p.id, c.channel, c.policy))
  FROM (SELECT pp.id, row_number() OVER (ORDER BY pp.id) AS rn
          FROM product_product pp JOIN product_template pt ON pt.id = pp.product_tmpl_id
         WHERE pt.type = 'product') p
 CROSS JOIN (VALUES ('amazon-us', '{"buffer_pct": 30}'::jsonb),
                    ('etsy-shop', '{"excluded": true}'::jsonb),
                    ('shopify-store', '{"max_qty": 3}'::jsonb)) AS c(channel, policy)
 WHERE p.rn % 50 = 7;
