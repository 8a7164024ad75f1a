--
-- channels: channel and policy configuration API (omnichan.channel_create,
-- channel_alter, channel_drop, channel_settings, product_policy_set,
-- product_channel_policy_set, grant_read/revoke_read).
--
-- Runs on the project's fixture and on the real Odoo 17 demo database: no
-- fixed record ids; the company, warehouses and product it needs are looked
-- up by external id or created inside the (rolled back) transaction.
--
BEGIN;
SELECT plan(153);

SET LOCAL client_min_messages = warning;

-- main company and warehouse
SELECT res_id AS co1 FROM public.ir_model_data
 WHERE module = 'base' AND name = 'main_company' \gset
SELECT res_id AS wh1 FROM public.ir_model_data
 WHERE module = 'stock' AND name = 'warehouse0' \gset

-------------------------------------------------------------------- catalog
SELECT has_table('omnichan', 'channel', 'table omnichan.channel exists');
SELECT has_table('omnichan', 'product_policy', 'table omnichan.product_policy exists');
SELECT has_table('omnichan', 'product_channel_policy', 'table omnichan.product_channel_policy exists');
SELECT has_table('omnichan', 'setting_spec', 'table omnichan.setting_spec exists');
SELECT is((SELECT pg_catalog.array_agg(kind ORDER BY kind) FROM omnichan.channel_kind),
          ARRAY['amazon', 'ebay', 'etsy', 'lazada', 'shopify', 'tiktok', 'walmart'],
          'the seven channel kinds');
SELECT is((SELECT pg_catalog.count(*) FROM omnichan.setting_spec WHERE description = ''), 0::bigint,
          'every setting has a description');
SELECT is((SELECT pg_catalog.count(*)::int FROM pg_catalog.pg_proc p
            WHERE p.pronamespace = 'omnichan'::regnamespace
              AND p.proname IN ('channel_create', 'channel_alter', 'channel_drop', 'channel_settings',
                                'product_policy_set', 'product_channel_policy_set', 'grant_read',
                                'revoke_read', '_setting_value', '_channel_resolve')
              AND pg_catalog.has_function_privilege('public', p.oid, 'EXECUTE')), 0,
          'no configuration function is executable by PUBLIC');
SELECT is((SELECT pg_catalog.array_agg(c.relname::text ORDER BY c.relname)
             FROM pg_catalog.pg_extension e, pg_catalog.unnest(e.extconfig) AS x(oid)
             JOIN pg_catalog.pg_class c ON c.oid = x.oid
            WHERE e.extname = 'omnichan'
              AND c.relname IN ('channel', 'channel_id_seq', 'product_policy', 'product_channel_policy')),
          ARRAY['channel', 'channel_id_seq', 'product_channel_policy', 'product_policy'],
          'user-data tables and the channel sequence are dumped by pg_dump');

-------------------------------------------------------------- company default
SELECT CASE WHEN (SELECT pg_catalog.count(*) FROM public.res_company WHERE active) = 1
	THEN lives_ok($$SELECT omnichan.channel_create('t-onecompany', 'ebay', '{"marketplace_id": "EBAY_US"}')$$,
	              'company_id defaults to the only company')
	ELSE throws_ok($$SELECT omnichan.channel_create('t-onecompany', 'ebay', '{"marketplace_id": "EBAY_US"}')$$,
	               '22023', 'setting "company_id" is required when there is not exactly one company',
	               'company_id is required when there are several companies')
END;
SELECT CASE WHEN (SELECT pg_catalog.count(*) FROM public.res_company WHERE active) = 1
	THEN is((SELECT company_id FROM omnichan.channel WHERE name = 't-onecompany'), :co1,
	        'the only company was chosen')
	ELSE is((SELECT pg_catalog.count(*)::int FROM omnichan.channel WHERE name = 't-onecompany'), 0,
	        'no channel was written')
END;
SELECT omnichan.channel_drop(name) FROM omnichan.channel WHERE name = 't-onecompany';

-- a second company with an active warehouse (the demo database has one:
-- Chicago; the fixture gets one here), a second active and an archived
-- warehouse for the main company
SELECT pg_catalog.count(*) = 0 AS need_co2
  FROM public.res_company c
 WHERE c.id <> :co1 AND c.active
   AND EXISTS (SELECT 1 FROM public.stock_warehouse w WHERE w.company_id = c.id AND w.active) \gset
INSERT INTO public.res_company (name, partner_id, currency_id, layout_background, fiscalyear_last_day,
                                fiscalyear_last_month, account_opening_date, manufacturing_lead, po_lead,
                                security_lead, active)
SELECT 'omnichan test company 2', partner_id, currency_id, layout_background, fiscalyear_last_day,
       fiscalyear_last_month, account_opening_date, manufacturing_lead, po_lead, security_lead, true
  FROM public.res_company WHERE id = :co1 AND :'need_co2'::boolean;
INSERT INTO public.stock_warehouse (company_id, view_location_id, lot_stock_id, name, code,
                                    reception_steps, delivery_steps, manufacture_steps, active)
SELECT c.id, w.view_location_id, w.lot_stock_id, 'omnichan test 2', 'OCT2',
       w.reception_steps, w.delivery_steps, w.manufacture_steps, true
  FROM public.res_company c, public.stock_warehouse w
 WHERE c.name = 'omnichan test company 2' AND w.id = :wh1 AND :'need_co2'::boolean;
SELECT c.id AS co2, w.id AS wh2
  FROM public.res_company c JOIN public.stock_warehouse w ON w.company_id = c.id AND w.active
 WHERE c.id <> :co1 AND c.active
 ORDER BY c.id, w.id LIMIT 1 \gset
INSERT INTO public.stock_warehouse (company_id, view_location_id, lot_stock_id, name, code,
                                    reception_steps, delivery_steps, manufacture_steps, active)
SELECT :co1, view_location_id, lot_stock_id, n, c, reception_steps, delivery_steps, manufacture_steps, a
  FROM public.stock_warehouse, (VALUES ('omnichan test 1b', 'OCTB', true),
                                       ('omnichan test archived', 'OCTA', false)) AS v(n, c, a)
 WHERE id = :wh1;
SELECT id AS wh1b FROM public.stock_warehouse WHERE code = 'OCTB' AND company_id = :co1 \gset
SELECT id AS wh_archived FROM public.stock_warehouse WHERE code = 'OCTA' AND company_id = :co1 \gset
SELECT pg_catalog.max(id) + 1000 AS wh_missing FROM public.stock_warehouse \gset

SELECT throws_ok($$SELECT omnichan.channel_create('t-nocompany', 'ebay', '{"marketplace_id": "EBAY_US"}')$$,
	'22023', 'setting "company_id" is required when there is not exactly one company',
	'company_id is required when there are two companies');

-------------------------------------------------------- each kind, defaults
\set s '"company_id": ' :co1
SELECT isnt(omnichan.channel_create('t-amazon', 'amazon',
	format('{%s, "seller_id": "A2EXAMPLE1234", "marketplace_ids": ["ATVPDKIKX0DER"]}', :'s')::jsonb), NULL,
	'create an amazon channel');
SELECT isnt(omnichan.channel_create('t-amazon-fe', 'amazon',
	format('{%s, "seller_id": "A2EXAMPLE1234", "marketplace_ids": ["A1VC38T7YXB528"], "region": "fe"}', :'s')::jsonb), NULL,
	'create an amazon channel in region fe');
SELECT isnt(omnichan.channel_create('t-shopify', 'shopify',
	format('{%s, "shop_domain": "acme-store.myshopify.com", "location_id": "gid://shopify/Location/124656943"}', :'s')::jsonb), NULL,
	'create a shopify channel');
SELECT isnt(omnichan.channel_create('t-ebay', 'ebay',
	format('{%s, "marketplace_id": "EBAY_GB"}', :'s')::jsonb), NULL, 'create an ebay channel');
SELECT isnt(omnichan.channel_create('t-walmart', 'walmart', format('{%s}', :'s')::jsonb), NULL,
	'create a walmart channel');
SELECT isnt(omnichan.channel_create('t-tiktok', 'tiktok',
	format('{%s, "shop_cipher": "ROW_abc123"}', :'s')::jsonb), NULL, 'create a tiktok channel');
SELECT isnt(omnichan.channel_create('t-etsy', 'etsy', format('{%s, "shop_id": 12345678}', :'s')::jsonb), NULL,
	'create an etsy channel');
SELECT isnt(omnichan.channel_create('t-lazada', 'lazada', format('{%s, "country": "my"}', :'s')::jsonb), NULL,
	'create a lazada channel');
SELECT isnt(omnichan.channel_create('t-daraz', 'lazada', format('{%s, "country": "pk"}', :'s')::jsonb), NULL,
	'create a daraz channel (lazada kind, Daraz country)');

SELECT results_eq(
	$$SELECT name, kind, push_interval, pull_interval, endpoint, settings ->> 'token_endpoint'
	    FROM omnichan.channel WHERE name LIKE 't-%' ORDER BY name$$,
	$$VALUES
	  ('t-amazon', 'amazon', interval '5 min', interval '5 min', 'https://sellingpartnerapi-na.amazon.com', 'https://api.amazon.com/auth/o2/token'),
	  ('t-amazon-fe', 'amazon', interval '5 min', interval '5 min', 'https://sellingpartnerapi-fe.amazon.com', 'https://api.amazon.com/auth/o2/token'),
	  ('t-daraz', 'lazada', interval '30 min', interval '30 min', 'https://api.daraz.pk/rest', 'https://api.daraz.pk/rest/auth/token/refresh'),
	  ('t-ebay', 'ebay', interval '15 min', interval '15 min', 'https://api.ebay.com', 'https://api.ebay.com/identity/v1/oauth2/token'),
	  ('t-etsy', 'etsy', interval '15 min', interval '15 min', 'https://openapi.etsy.com', 'https://openapi.etsy.com/v3/public/oauth/token'),
	  ('t-lazada', 'lazada', interval '30 min', interval '30 min', 'https://api.lazada.com.my/rest', 'https://auth.lazada.com/rest/auth/token/refresh'),
	  ('t-shopify', 'shopify', interval '0', interval '1 min', 'https://acme-store.myshopify.com', NULL),
	  ('t-tiktok', 'tiktok', interval '5 min', interval '5 min', 'https://open-api.tiktokglobalshop.com', 'https://auth.tiktok-shops.com/api/v2/token/refresh'),
	  ('t-walmart', 'walmart', interval '10 min', interval '10 min', 'https://marketplace.walmartapis.com', 'https://marketplace.walmartapis.com/v3/token')$$,
	'per-kind default intervals, endpoints and token endpoints');

SELECT results_eq(
	$$SELECT name, settings FROM omnichan.channel WHERE name LIKE 't-%' ORDER BY name$$,
	$$VALUES
	  ('t-amazon', '{"region": "na", "seller_id": "A2EXAMPLE1234", "token_endpoint": "https://api.amazon.com/auth/o2/token", "marketplace_ids": ["ATVPDKIKX0DER"], "feed_threshold": 20, "feed_poll_interval": 15}'::jsonb),
	  ('t-amazon-fe', '{"region": "fe", "seller_id": "A2EXAMPLE1234", "token_endpoint": "https://api.amazon.com/auth/o2/token", "marketplace_ids": ["A1VC38T7YXB528"], "feed_threshold": 20, "feed_poll_interval": 15}'),
	  ('t-daraz', '{"country": "pk", "token_endpoint": "https://api.daraz.pk/rest/auth/token/refresh"}'),
	  ('t-ebay', '{"marketplace_id": "EBAY_GB", "token_endpoint": "https://api.ebay.com/identity/v1/oauth2/token"}'),
	  ('t-etsy', '{"shop_id": 12345678, "token_endpoint": "https://openapi.etsy.com/v3/public/oauth/token"}'),
	  ('t-lazada', '{"country": "my", "token_endpoint": "https://auth.lazada.com/rest/auth/token/refresh"}'),
	  ('t-shopify', '{"api_version": "2025-01", "location_id": "gid://shopify/Location/124656943", "shop_domain": "acme-store.myshopify.com"}'),
	  ('t-tiktok', '{"shop_cipher": "ROW_abc123", "token_endpoint": "https://auth.tiktok-shops.com/api/v2/token/refresh"}'),
	  ('t-walmart', '{"token_endpoint": "https://marketplace.walmartapis.com/v3/token"}')$$,
	'settings hold only the kind-specific keys, defaults filled in');

SELECT results_eq(
	$$SELECT company_id, warehouse_ids, default_warehouse_id, buffer_pct, priority, max_qty,
	         low_stock_threshold, active
	    FROM omnichan.channel WHERE name = 't-amazon'$$,
	format($$VALUES (%s, ARRAY(SELECT id FROM public.stock_warehouse WHERE company_id = %s AND active ORDER BY id),
	                 (SELECT pg_catalog.min(id) FROM public.stock_warehouse WHERE company_id = %s AND active),
	                 0::numeric, 10, NULL::int, 0, true)$$, :co1, :co1, :co1),
	'common defaults: every active warehouse of the company, the first as default, buffer 0, priority 10, no cap');
SELECT ok(:wh1b = ANY (warehouse_ids) AND NOT :wh_archived = ANY (warehouse_ids),
	'default warehouses include the second active one and not the archived one')
  FROM omnichan.channel WHERE name = 't-amazon';
SELECT ok(created_at = updated_at, 'created_at = updated_at on a new channel')
  FROM omnichan.channel WHERE name = 't-amazon';

-- explicit common settings, normalized
SELECT lives_ok(format($$SELECT omnichan.channel_create('t-full', 'walmart',
	'{"company_id": %s, "warehouse_ids": [%s, %s, %s], "default_warehouse_id": %s, "buffer_pct": 12.5,
	  "priority": 1, "max_qty": 0, "low_stock_threshold": 3, "active": false, "push_interval": 90,
	  "pull_interval": "2 hours", "endpoint": "HTTP://127.0.0.1:8089/", "ship_node": "10000003527",
	  "token_endpoint": "http://127.0.0.1:8089/v3/token"}')$$,
	:co1, :wh1b, :wh1, :wh1b, :wh1b), 'create a channel with every common setting given');
SELECT results_eq(
	$$SELECT warehouse_ids, default_warehouse_id, buffer_pct, priority, max_qty, low_stock_threshold, active,
	         push_interval, pull_interval, endpoint, settings
	    FROM omnichan.channel WHERE name = 't-full'$$,
	format($$VALUES (ARRAY[%s, %s]::int[], %s, 12.5::numeric, 1, 0, 3, false, interval '90 s', interval '2 h',
	                 'http://127.0.0.1:8089',
	                 '{"ship_node": "10000003527", "token_endpoint": "http://127.0.0.1:8089/v3/token"}'::jsonb)$$,
	       LEAST(:wh1, :wh1b), GREATEST(:wh1, :wh1b), :wh1b),
	'stored as given: warehouses sorted without duplicates, seconds as interval, URL scheme lower case and no trailing slash');
SELECT is(omnichan.channel_settings('t-full'),
	format('{"company_id": %s, "warehouse_ids": [%s, %s], "default_warehouse_id": %s, "buffer_pct": 12.5,
	         "priority": 1, "max_qty": 0, "low_stock_threshold": 3, "active": false,
	         "push_interval": "00:01:30", "pull_interval": "02:00:00", "endpoint": "http://127.0.0.1:8089",
	         "ship_node": "10000003527", "token_endpoint": "http://127.0.0.1:8089/v3/token"}',
	       :co1, LEAST(:wh1, :wh1b), GREATEST(:wh1, :wh1b), :wh1b)::jsonb,
	'channel_settings returns common and kind settings as one object');
SELECT lives_ok($$SELECT omnichan.channel_create('t-copy', 'walmart', omnichan.channel_settings('t-full'))$$,
	'channel_settings output is valid input of channel_create');

------------------------------------------------------------ validation
SELECT pg_catalog.count(*) AS n_before FROM omnichan.channel \gset
\set az '"seller_id": "A2EXAMPLE1234", "marketplace_ids": ["ATVPDKIKX0DER"]'

-- names and kinds
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-amazon', 'amazon', '{%s, %s}')$$, :'s', :'az'),
	'42710', 'channel "t-amazon" already exists', 'duplicate name');
SELECT throws_ok($$SELECT omnichan.channel_create('Amazon', 'amazon', '{}')$$,
	'22023', 'invalid channel name "Amazon"', 'upper case name');
SELECT throws_ok($$SELECT omnichan.channel_create('-amazon', 'amazon', '{}')$$,
	'22023', 'invalid channel name "-amazon"', 'name starting with a dash');
SELECT throws_ok($$SELECT omnichan.channel_create('', 'amazon', '{}')$$,
	'22023', 'invalid channel name ""', 'empty name');
SELECT throws_ok($$SELECT omnichan.channel_create('amazon us', 'amazon', '{}')$$,
	'22023', 'invalid channel name "amazon us"', 'name with a space');
SELECT throws_ok(format($$SELECT omnichan.channel_create('%s', 'amazon', '{}')$$, pg_catalog.repeat('a', 64)),
	'22023', format('invalid channel name "%s"', pg_catalog.repeat('a', 64)), 'name of 64 characters');
SELECT throws_ok($$SELECT omnichan.channel_create('t-x', 'amazn', '{}')$$,
	'42704', 'unknown channel kind "amazn"', 'unknown kind');
SELECT throws_ok($$SELECT omnichan.channel_create('t-x', 'daraz', '{}')$$,
	'42704', 'unknown channel kind "daraz"', 'daraz is a lazada channel, not a kind');
SELECT throws_ok($$SELECT omnichan.channel_create('t-x', 'amazon', '[1]')$$,
	'22023', 'settings must be a JSON object', 'settings not an object');

-- unknown keys, against the kind
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "bogus": 1}')$$, :'s', :'az'),
	'22023', 'unknown setting "bogus"', 'unknown key');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "shop_domain": "a.myshopify.com"}')$$, :'s', :'az'),
	'22023', 'unknown setting "shop_domain"', 'key of another kind');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "a.myshopify.com", "location_id": "gid://shopify/Location/1", "token_endpoint": "https://x.example"}')$$, :'s'),
	'22023', 'unknown setting "token_endpoint"', 'shopify has no token endpoint');

-- required keys
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, "seller_id": "A2EXAMPLE1234"}')$$, :'s'),
	'22023', 'setting "marketplace_ids" is required for kind "amazon"', 'amazon needs marketplace_ids');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "a.myshopify.com"}')$$, :'s'),
	'22023', 'setting "location_id" is required for kind "shopify"', 'shopify needs location_id');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'etsy', '{%s}')$$, :'s'),
	'22023', 'setting "shop_id" is required for kind "etsy"', 'etsy needs shop_id');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'lazada', '{%s, "country": null}')$$, :'s'),
	'22023', 'setting "country" is required for kind "lazada"', 'lazada needs country (null is absent)');

-- wrong JSON types
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "buffer_pct": "5"}')$$, :'s', :'az'),
	'22023', 'setting "buffer_pct" must be a number', 'buffer_pct as a string');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "priority": 1.5}')$$, :'s', :'az'),
	'22023', 'setting "priority" must be an integer', 'priority with a fraction');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "active": "yes"}')$$, :'s', :'az'),
	'22023', 'setting "active" must be a boolean', 'active as a string');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": %s}')$$, :'s', :'az', :wh1),
	'22023', 'setting "warehouse_ids" must be a non-empty array of integers', 'warehouse_ids not an array');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": []}')$$, :'s', :'az'),
	'22023', 'setting "warehouse_ids" must be a non-empty array of integers', 'warehouse_ids empty');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": ["%s"]}')$$, :'s', :'az', :wh1),
	'22023', 'setting "warehouse_ids" must be a non-empty array of integers', 'warehouse_ids of strings');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, "seller_id": "A2EXAMPLE1234", "marketplace_ids": "ATVPDKIKX0DER"}')$$, :'s'),
	'22023', 'setting "marketplace_ids" must be a non-empty array of Amazon marketplace ids such as ["ATVPDKIKX0DER"]',
	'marketplace_ids as a string');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'etsy', '{%s, "shop_id": "123"}')$$, :'s'),
	'22023', 'setting "shop_id" must be an integer', 'etsy shop_id as a string');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "push_interval": true}')$$, :'s', :'az'),
	'22023', 'setting "push_interval" must be an interval such as "5 minutes" or a number of seconds', 'interval as a boolean');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "pull_interval": "soon"}')$$, :'s', :'az'),
	'22023', 'setting "pull_interval" must be an interval such as "5 minutes" or a number of seconds', 'interval not parsable');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": 42}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must be a string', 'endpoint as a number');

-- ranges
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "buffer_pct": 100.5}')$$, :'s', :'az'),
	'22003', 'setting "buffer_pct" must be between 0 and 100', 'buffer_pct above 100');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "buffer_pct": -1}')$$, :'s', :'az'),
	'22003', 'setting "buffer_pct" must be between 0 and 100', 'buffer_pct below 0');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "priority": 0}')$$, :'s', :'az'),
	'22003', 'setting "priority" must be at least 1', 'priority 0');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "priority": 3000000000}')$$, :'s', :'az'),
	'22003', 'setting "priority" must be at most 2147483647', 'priority beyond int');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "max_qty": -1}')$$, :'s', :'az'),
	'22003', 'setting "max_qty" must be at least 0', 'negative max_qty');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "low_stock_threshold": -5}')$$, :'s', :'az'),
	'22003', 'setting "low_stock_threshold" must be at least 0', 'negative low_stock_threshold');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "push_interval": "2 days"}')$$, :'s', :'az'),
	'22003', 'setting "push_interval" must be between 0 and 86400 seconds', 'push_interval above a day');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "push_interval": -1}')$$, :'s', :'az'),
	'22003', 'setting "push_interval" must be between 0 and 86400 seconds', 'negative push_interval');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "pull_interval": 0}')$$, :'s', :'az'),
	'22003', 'setting "pull_interval" must be between 1 and 86400 seconds', 'pull_interval 0');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'etsy', '{%s, "shop_id": 0}')$$, :'s'),
	'22003', 'setting "shop_id" must be at least 1', 'etsy shop_id 0');

-- formats
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "acme.com", "location_id": "gid://shopify/Location/1"}')$$, :'s'),
	'22023', 'setting "shop_domain" must be a shop domain such as "example.myshopify.com"', 'shop domain not *.myshopify.com');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "Acme.myshopify.com", "location_id": "gid://shopify/Location/1"}')$$, :'s'),
	'22023', 'setting "shop_domain" must be a shop domain such as "example.myshopify.com"', 'shop domain in upper case');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "a.myshopify.com", "location_id": "124656943"}')$$, :'s'),
	'22023', 'setting "location_id" must be a location global id such as "gid://shopify/Location/123456789"', 'location id not a gid');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'shopify', '{%s, "shop_domain": "a.myshopify.com", "location_id": "gid://shopify/Location/1", "api_version": "2025-02"}')$$, :'s'),
	'22023', 'setting "api_version" must be a quarterly Admin API version such as "2025-01"', 'api_version not quarterly');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "region": "us"}')$$, :'s', :'az'),
	'22023', 'setting "region" must be one of: na, eu, fe', 'unknown amazon region');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'lazada', '{%s, "country": "us"}')$$, :'s'),
	'22023', 'setting "country" must be one of: my, sg, th, ph, vn, id, pk, bd, lk, np, mm', 'unknown lazada country');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'ebay', '{%s, "marketplace_id": "US"}')$$, :'s'),
	'22023', 'setting "marketplace_id" must be an eBay marketplace id such as "EBAY_US"', 'bad ebay marketplace id');

-- URLs
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "ftp://example.com"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must be an http or https URL', 'ftp URL');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "example.com"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must be an http or https URL', 'URL without scheme');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "https://"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must be an http or https URL', 'URL without host');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "https://bad host.com"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must be an http or https URL', 'URL with a space in the host');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "https://user:secret@example.com"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must not contain user information', 'URL with user:password@');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "token_endpoint": "https://user@example.com/token"}')$$, :'s', :'az'),
	'22023', 'setting "token_endpoint" must not contain user information', 'token URL with user@');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "endpoint": "https://example.com/?x=1"}')$$, :'s', :'az'),
	'22023', 'setting "endpoint" must not contain a query or fragment', 'URL with a query');

-- companies and warehouses
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{"company_id": 987654, %s}')$$, :'az'),
	'22023', 'setting "company_id" refers to no active company', 'unknown company');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": [%s]}')$$, :'s', :'az', :wh_missing),
	'22023', format('setting "warehouse_ids" contains warehouse %s, which does not exist', :wh_missing),
	'warehouse that does not exist');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": [%s, %s]}')$$, :'s', :'az', :wh1, :wh2),
	'22023', format('setting "warehouse_ids" contains warehouse %s, which belongs to another company', :wh2),
	'warehouse of the other company');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": [%s]}')$$, :'s', :'az', :wh_archived),
	'22023', format('setting "warehouse_ids" contains warehouse %s, which is archived', :wh_archived),
	'archived warehouse');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{%s, %s, "warehouse_ids": [%s], "default_warehouse_id": %s}')$$, :'s', :'az', :wh1, :wh1b),
	'22023', 'setting "default_warehouse_id" must be one of the channel''s warehouse_ids',
	'default warehouse outside warehouse_ids');
SELECT throws_ok(format($$SELECT omnichan.channel_create('t-x', 'amazon', '{"company_id": %s, %s, "warehouse_ids": [%s]}')$$, :co2, :'az', :wh1),
	'22023', format('setting "warehouse_ids" contains warehouse %s, which belongs to another company', :wh1),
	'main warehouse for a channel of the second company');
SELECT lives_ok(format($$SELECT omnichan.channel_create('t-co2', 'amazon', '{"company_id": %s, %s}')$$, :co2, :'az'),
	'a channel of the second company');
SELECT ok(warehouse_ids = ARRAY(SELECT id FROM public.stock_warehouse WHERE company_id = :co2 AND active ORDER BY id)
          AND default_warehouse_id = warehouse_ids[1],
	'its warehouses default to the second company''s')
  FROM omnichan.channel WHERE name = 't-co2';

SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.channel), :n_before + 1,
	'nothing was written by the failed calls');

------------------------------------------------------------ alter
CREATE TEMP TABLE snap ON COMMIT DROP AS
	SELECT omnichan.channel_settings('t-amazon') AS before, (SELECT updated_at FROM omnichan.channel WHERE name = 't-amazon') AS updated_at;

SELECT throws_ok($$SELECT omnichan.channel_alter('t-nope', '{"priority": 2}')$$,
	'42704', 'channel "t-nope" does not exist', 'alter of an unknown channel');
SELECT throws_ok($$SELECT omnichan.channel_alter('t-amazon', '{"kind": "ebay"}')$$,
	'22023', 'the kind of channel "t-amazon" cannot be changed', 'the kind cannot change');
SELECT throws_ok($$SELECT omnichan.channel_alter('t-amazon', '{"priority": 2, "buffer_pct": 200}')$$,
	'22003', 'setting "buffer_pct" must be between 0 and 100', 'alter validates every key');
SELECT throws_ok($$SELECT omnichan.channel_alter('t-amazon', '{"priority": 2, "nope": 1}')$$,
	'22023', 'unknown setting "nope"', 'alter rejects unknown keys');
SELECT throws_ok($$SELECT omnichan.channel_alter('t-amazon', '{"seller_id": null}')$$,
	'22023', 'setting "seller_id" is required for kind "amazon"', 'a required key cannot be reset');
SELECT throws_ok(format($$SELECT omnichan.channel_alter('t-amazon', '{"company_id": %s}')$$, :co2),
	'22023', format('setting "warehouse_ids" contains warehouse %s, which belongs to another company', :wh1),
	'changing company_id re-validates the warehouses');
SELECT is(omnichan.channel_settings('t-amazon'), (SELECT before FROM snap), 'failed alters changed nothing');

SELECT lives_ok($$SELECT omnichan.channel_alter('t-amazon', '{"priority": 2, "buffer_pct": 7.5, "max_qty": 40, "marketplace_ids": ["A2EUQ1WTGCTBG", "ATVPDKIKX0DER"]}')$$,
	'alter some keys');
SELECT is(omnichan.channel_settings('t-amazon'),
	(SELECT before || '{"priority": 2, "buffer_pct": 7.5, "max_qty": 40, "marketplace_ids": ["A2EUQ1WTGCTBG", "ATVPDKIKX0DER"]}' FROM snap),
	'alter merges: the given keys change, the others stay');
SELECT ok(updated_at > (SELECT updated_at FROM snap), 'alter bumps updated_at')
  FROM omnichan.channel WHERE name = 't-amazon';
SELECT lives_ok($$SELECT omnichan.channel_alter('t-amazon', '{"max_qty": null, "buffer_pct": null, "push_interval": "1 minute"}')$$,
	'reset keys with JSON null');
SELECT results_eq($$SELECT max_qty, buffer_pct, push_interval FROM omnichan.channel WHERE name = 't-amazon'$$,
	$$VALUES (NULL::int, 0::numeric, interval '1 minute')$$, 'null resets to the default');
SELECT lives_ok($$SELECT omnichan.channel_alter('t-amazon', '{"push_interval": null}')$$, 'reset an interval');
SELECT is((SELECT push_interval FROM omnichan.channel WHERE name = 't-amazon'), interval '5 minutes',
	'a reset interval goes back to the kind default');

-- derived endpoints follow their settings unless given explicitly
SELECT lives_ok($$SELECT omnichan.channel_alter('t-amazon', '{"region": "eu"}')$$, 'change the amazon region');
SELECT is((SELECT endpoint FROM omnichan.channel WHERE name = 't-amazon'), 'https://sellingpartnerapi-eu.amazon.com',
	'a default endpoint follows the region');
SELECT lives_ok($$SELECT omnichan.channel_alter('t-lazada', '{"endpoint": "http://127.0.0.1:9000/rest"}')$$, 'set an explicit endpoint');
SELECT lives_ok($$SELECT omnichan.channel_alter('t-lazada', '{"country": "th"}')$$, 'change the lazada country');
SELECT results_eq($$SELECT endpoint, settings ->> 'token_endpoint' FROM omnichan.channel WHERE name = 't-lazada'$$,
	$$VALUES ('http://127.0.0.1:9000/rest', 'https://auth.lazada.com/rest/auth/token/refresh')$$,
	'an explicit endpoint stays when the country changes');
SELECT lives_ok($$SELECT omnichan.channel_alter('t-lazada', '{"endpoint": null}')$$, 'reset the endpoint');
SELECT is((SELECT endpoint FROM omnichan.channel WHERE name = 't-lazada'), 'https://api.lazada.co.th/rest',
	'a reset endpoint is the default of the current country');
SELECT lives_ok($$SELECT omnichan.channel_alter('t-shopify', '{"shop_domain": "other-store.myshopify.com"}')$$, 'change the shop domain');
SELECT is((SELECT endpoint FROM omnichan.channel WHERE name = 't-shopify'), 'https://other-store.myshopify.com',
	'the default shopify endpoint follows the shop domain');

-- warehouses and company
SELECT lives_ok(format($$SELECT omnichan.channel_alter('t-ebay', '{"warehouse_ids": [%s, %s], "default_warehouse_id": %s}')$$, :wh1, :wh1b, :wh1b),
	'set two warehouses and the default one');
SELECT lives_ok(format($$SELECT omnichan.channel_alter('t-ebay', '{"warehouse_ids": [%s]}')$$, :wh1),
	'drop the default warehouse from warehouse_ids');
SELECT results_eq($$SELECT warehouse_ids, default_warehouse_id FROM omnichan.channel WHERE name = 't-ebay'$$,
	format($$VALUES (ARRAY[%s], %s)$$, :wh1, :wh1),
	'the default warehouse falls back to the first one when it leaves warehouse_ids');
SELECT lives_ok(format($$SELECT omnichan.channel_alter('t-ebay', '{"company_id": %s, "warehouse_ids": null}')$$, :co2),
	'move a channel to the other company with its default warehouses');
SELECT results_eq($$SELECT company_id, warehouse_ids, default_warehouse_id FROM omnichan.channel WHERE name = 't-ebay'$$,
	format($$SELECT %s, ARRAY(SELECT id FROM public.stock_warehouse WHERE company_id = %s AND active ORDER BY id),
	                (SELECT pg_catalog.min(id) FROM public.stock_warehouse WHERE company_id = %s AND active)$$, :co2, :co2, :co2),
	'the channel now uses the other company''s warehouses');

------------------------------------------------------------ drop
SELECT throws_ok($$SELECT omnichan.channel_drop('t-nope')$$,
	'42704', 'channel "t-nope" does not exist', 'drop of an unknown channel');
SELECT throws_ok($$SELECT omnichan.channel_settings('t-nope')$$,
	'42704', 'channel "t-nope" does not exist', 'settings of an unknown channel');

------------------------------------------------------------ product policies
INSERT INTO public.product_template (name, categ_id, uom_id, uom_po_id, detailed_type, tracking,
                                     purchase_line_warn, sale_line_warn, active)
SELECT '{"en_US": "omnichan test product"}', c.res_id, u.res_id, u.res_id, 'product', 'none',
       'no-message', 'no-message', true
  FROM public.ir_model_data c, public.ir_model_data u
 WHERE c.module = 'product' AND c.name = 'product_category_all'
   AND u.module = 'uom' AND u.name = 'product_uom_unit';
INSERT INTO public.product_product (product_tmpl_id, active)
SELECT id, true FROM public.product_template WHERE name ->> 'en_US' = 'omnichan test product';
SELECT p.id AS prod FROM public.product_product p JOIN public.product_template t ON t.id = p.product_tmpl_id
 WHERE t.name ->> 'en_US' = 'omnichan test product' \gset
SELECT pg_catalog.max(id) + 1000 AS prod_missing FROM public.product_product \gset

SELECT lives_ok(format($$SELECT omnichan.product_policy_set(%s, '{"safety_stock": 2.5}')$$, :prod), 'set safety stock');
SELECT is((SELECT safety_stock FROM omnichan.product_policy WHERE product_id = :prod), 2.5, 'safety stock stored');
SELECT throws_ok(format($$SELECT omnichan.product_policy_set(%s, '{"safety_stock": -1}')$$, :prod),
	'22003', 'setting "safety_stock" must be at least 0', 'negative safety stock');
SELECT throws_ok(format($$SELECT omnichan.product_policy_set(%s, '{"safety_stock": "3"}')$$, :prod),
	'22023', 'setting "safety_stock" must be a number', 'safety stock as a string');
SELECT throws_ok(format($$SELECT omnichan.product_policy_set(%s, '{"buffer_pct": 3}')$$, :prod),
	'22023', 'unknown setting "buffer_pct"', 'unknown product policy key');
SELECT throws_ok(format($$SELECT omnichan.product_policy_set(%s, '{"safety_stock": 1}')$$, :prod_missing),
	'42704', format('product %s does not exist', :prod_missing), 'unknown product');
SELECT is((SELECT safety_stock FROM omnichan.product_policy WHERE product_id = :prod), 2.5, 'failed calls changed nothing');
SELECT lives_ok(format($$SELECT omnichan.product_policy_set(%s, '{"safety_stock": null}')$$, :prod), 'reset safety stock');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.product_policy WHERE product_id = :prod), 0,
	'a product policy with only defaults has no row');

SELECT lives_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"buffer_pct": 20, "max_qty": 5}')$$, :prod),
	'set channel overrides');
SELECT lives_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"excluded": true}')$$, :prod),
	'exclude the product from the channel');
SELECT results_eq(format($$SELECT buffer_pct, max_qty, excluded FROM omnichan.product_channel_policy
                            WHERE product_id = %s AND channel_id = (SELECT id FROM omnichan.channel WHERE name = 't-amazon')$$, :prod),
	$$VALUES (20::numeric, 5, true)$$, 'overrides merged');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"buffer_pct": 150}')$$, :prod),
	'22003', 'setting "buffer_pct" must be between 0 and 100', 'override buffer out of range');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"max_qty": -2}')$$, :prod),
	'22003', 'setting "max_qty" must be at least 0', 'override max_qty out of range');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"excluded": 1}')$$, :prod),
	'22023', 'setting "excluded" must be a boolean', 'excluded not a boolean');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"priority": 1}')$$, :prod),
	'22023', 'unknown setting "priority"', 'unknown override key');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-nope', '{"excluded": true}')$$, :prod),
	'42704', 'channel "t-nope" does not exist', 'override for an unknown channel');
SELECT throws_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"excluded": true}')$$, :prod_missing),
	'42704', format('product %s does not exist', :prod_missing), 'override for an unknown product');
SELECT lives_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"buffer_pct": null}')$$, :prod),
	'clear one override');
SELECT results_eq(format($$SELECT buffer_pct, max_qty, excluded FROM omnichan.product_channel_policy
                            WHERE product_id = %s AND channel_id = (SELECT id FROM omnichan.channel WHERE name = 't-amazon')$$, :prod),
	$$VALUES (NULL::numeric, 5, true)$$, 'one override cleared, the others kept');
SELECT lives_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-amazon', '{"max_qty": null, "excluded": null}')$$, :prod),
	'clear the other overrides');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.product_channel_policy WHERE product_id = :prod), 0,
	'no override left: no row');
SELECT lives_ok(format($$SELECT omnichan.product_channel_policy_set(%s, 't-walmart', '{"max_qty": 3}')$$, :prod),
	'an override for another channel');
SELECT lives_ok($$SELECT omnichan.channel_drop('t-walmart')$$, 'drop a channel');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.channel WHERE name = 't-walmart'), 0, 'the channel is gone');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.product_channel_policy WHERE product_id = :prod), 0,
	'its overrides went with it');

------------------------------------------------------------ read access
CREATE ROLE omnichan_test_reader;
CREATE TEMP TABLE reader_result (step text, result text) ON COMMIT DROP;
GRANT ALL ON reader_result TO omnichan_test_reader;
SELECT lives_ok($$SELECT omnichan.grant_read('omnichan_test_reader')$$, 'grant read access');

SET ROLE omnichan_test_reader;
DO $$
BEGIN
	INSERT INTO reader_result VALUES ('settings', omnichan.channel_settings('t-amazon') ->> 'region');
	INSERT INTO reader_result SELECT 'select', pg_catalog.count(*)::text FROM omnichan.channel WHERE name = 't-amazon';
	BEGIN
		PERFORM omnichan.channel_create('t-reader', 'etsy', '{"shop_id": 1}');
		INSERT INTO reader_result VALUES ('create', 'no error');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO reader_result VALUES ('create', SQLSTATE || ' ' || SQLERRM);
	END;
	BEGIN
		PERFORM omnichan.channel_alter('t-amazon', '{"priority": 1}');
		INSERT INTO reader_result VALUES ('alter', 'no error');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO reader_result VALUES ('alter', SQLSTATE || ' ' || SQLERRM);
	END;
	BEGIN
		DELETE FROM omnichan.channel WHERE name = 't-amazon';
		INSERT INTO reader_result VALUES ('delete', 'no error');
	EXCEPTION WHEN OTHERS THEN
		INSERT INTO reader_result VALUES ('delete', SQLSTATE || ' ' || SQLERRM);
	END;
END
$$;
RESET ROLE;

SELECT is((SELECT result FROM reader_result WHERE step = 'settings'), 'eu', 'the reader can call channel_settings');
SELECT is((SELECT result FROM reader_result WHERE step = 'select'), '1', 'the reader can SELECT omnichan.channel');
SELECT is((SELECT result FROM reader_result WHERE step = 'create'), '42501 permission denied for function channel_create',
	'the reader cannot call channel_create');
SELECT is((SELECT result FROM reader_result WHERE step = 'alter'), '42501 permission denied for function channel_alter',
	'the reader cannot call channel_alter');
SELECT is((SELECT result FROM reader_result WHERE step = 'delete'), '42501 permission denied for table channel',
	'the reader cannot write the table');

SELECT lives_ok($$SELECT omnichan.revoke_read('omnichan_test_reader')$$, 'revoke read access');
DELETE FROM reader_result;
SET ROLE omnichan_test_reader;
DO $$
BEGIN
	PERFORM omnichan.channel_settings('t-amazon');
	INSERT INTO reader_result VALUES ('settings', 'no error');
EXCEPTION WHEN OTHERS THEN
	INSERT INTO reader_result VALUES ('settings', SQLSTATE || ' ' || SQLERRM);
END
$$;
RESET ROLE;
SELECT is((SELECT result FROM reader_result WHERE step = 'settings'), '42501 permission denied for schema omnichan',
	'after revoke_read the role cannot read');

SELECT * FROM finish();
ROLLBACK;
