/*-------------------------------------------------------------------------
 *
 * omnichan--0.1.0.sql
 *	  Install script of omnichan 0.1.0.
 *
 * Everything lives in schema "omnichan" (created by CREATE EXTENSION, see
 * omnichan.control).  Objects are written defensively against search_path:
 * every reference is schema-qualified.  Sections follow the parts of the
 * system (ARCHITECTURE.md); later versions ship upgrade scripts
 * omnichan--0.1.0--X.sql and never edit this file once released.
 *
 *-------------------------------------------------------------------------
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION omnichan" to load this file. \quit

-------------------------------------------------------------------------------
-- Module
-------------------------------------------------------------------------------

CREATE SCHEMA omnichan;
COMMENT ON SCHEMA omnichan IS 'omnichan: multichannel marketplace hub for Odoo';

CREATE FUNCTION omnichan.library_version()
RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'omnichan_library_version';

COMMENT ON FUNCTION omnichan.library_version() IS
'Version of the loaded omnichan shared library; compare with pg_extension.extversion.';

-- omnichan reads and writes Odoo's own tables: refuse any other database.
DO $$
DECLARE
    missing text;
BEGIN
    SELECT pg_catalog.string_agg(t, ', ' ORDER BY t) INTO missing
      FROM pg_catalog.unnest(ARRAY['res_company', 'product_product', 'product_template', 'uom_uom',
                                   'stock_location', 'stock_warehouse', 'stock_quant', 'stock_move',
                                   'sale_order', 'sale_order_line']) AS t
     WHERE pg_catalog.to_regclass('public.' || t) IS NULL;
    IF missing IS NOT NULL THEN
        RAISE EXCEPTION 'omnichan needs an Odoo 17 database with the stock and sale_stock modules installed'
            USING ERRCODE = '55000',
                  DETAIL = pg_catalog.format('These Odoo tables are missing in schema public: %s.', missing),
                  HINT = 'Run CREATE EXTENSION omnichan in the database of Odoo, after installing the Inventory and Sales apps.';
    END IF;
END
$$;

REVOKE ALL ON SCHEMA omnichan FROM PUBLIC;

-------------------------------------------------------------------------------
-- Channels and policies
--
-- A channel is one seller account on one marketplace.  Its configuration is
-- written only through omnichan.channel_create / channel_alter, which validate
-- every setting against omnichan.setting_spec (the single source of truth for
-- keys, types, ranges, formats and defaults; docs/channels.md describes it)
-- and then write one row with one INSERT or UPDATE, so a failed call leaves
-- nothing behind.  The CHECK constraints repeat the essential rules as a
-- second line of defence for direct DML.
-------------------------------------------------------------------------------

-- Marketplace kinds, with their per-kind interval defaults.
CREATE TABLE omnichan.channel_kind (
	kind			text PRIMARY KEY,
	description		text NOT NULL,
	push_interval	interval NOT NULL,
	pull_interval	interval NOT NULL
);

COMMENT ON TABLE omnichan.channel_kind IS
'Marketplace kinds a channel can have, with their default push and pull intervals (static, owned by the extension).';

INSERT INTO omnichan.channel_kind (kind, description, push_interval, pull_interval) VALUES
	('amazon',	'Amazon Selling Partner API (SP-API)',				'5 minutes',	'5 minutes'),
	('shopify',	'Shopify Admin API',								'0',			'1 minute'),
	('ebay',	'eBay Sell APIs (Inventory, Fulfillment)',			'15 minutes',	'15 minutes'),
	('walmart',	'Walmart Marketplace API (US)',						'10 minutes',	'10 minutes'),
	('tiktok',	'TikTok Shop Open API',								'5 minutes',	'5 minutes'),
	('etsy',	'Etsy Open API v3',									'15 minutes',	'15 minutes'),
	('lazada',	'Lazada / Daraz Open Platform (Daraz = a Daraz country)', '30 minutes',	'30 minutes');

-- Every setting key accepted by the configuration functions.
CREATE TABLE omnichan.setting_spec (
	scope			text NOT NULL,
	key				text NOT NULL,
	type			text NOT NULL
		CHECK (type IN ('integer', 'number', 'boolean', 'string', 'url',
						'interval', 'integer[]', 'string[]')),
	min_value		numeric,
	max_value		numeric,
	pattern			text,
	choices			text[],
	format			text,
	required		boolean NOT NULL DEFAULT false,
	default_value	jsonb,
	default_text	text,
	description		text NOT NULL,
	PRIMARY KEY (scope, key)
);

COMMENT ON TABLE omnichan.setting_spec IS
'Setting keys accepted by channel_create/channel_alter (scope ''*'' = every channel, or a channel kind) and by product_policy_set (scope ''product_policy'') and product_channel_policy_set (scope ''product_channel_policy''): JSON type, range (seconds for intervals), format, default.';

INSERT INTO omnichan.setting_spec
	(scope, key, type, min_value, max_value, pattern, choices, format, required, default_value, default_text, description)
VALUES
	-- common to every kind (stored in columns of omnichan.channel)
	('*', 'company_id', 'integer', 1, NULL, NULL, NULL, NULL, false, NULL,
	 'the only company, when the database has exactly one',
	 'Odoo company (res_company.id) the channel sells for.'),
	('*', 'warehouse_ids', 'integer[]', 1, NULL, NULL, NULL, NULL, false, NULL,
	 'every active warehouse of the company',
	 'Odoo warehouses (stock_warehouse.id) whose stock the channel sells; active warehouses of company_id, stored sorted and without duplicates.'),
	('*', 'default_warehouse_id', 'integer', 1, NULL, NULL, NULL, NULL, false, NULL,
	 'the first (lowest id) of warehouse_ids',
	 'Warehouse marketplace orders ship from by default; one of warehouse_ids.'),
	('*', 'buffer_pct', 'number', 0, 100, NULL, NULL, NULL, false, '0', NULL,
	 'Percentage of the available quantity held back from the channel.'),
	('*', 'priority', 'integer', 1, NULL, NULL, NULL, NULL, false, '10', NULL,
	 'Allocation priority when stock is scarce; 1 is the highest.'),
	('*', 'max_qty', 'integer', 0, NULL, NULL, NULL, NULL, false, 'null', NULL,
	 'Upper bound on the quantity published per product; null means no cap.'),
	('*', 'low_stock_threshold', 'integer', 0, NULL, NULL, NULL, NULL, false, '0', NULL,
	 'Units at or below which a product counts as low on stock for the channel.'),
	('*', 'active', 'boolean', NULL, NULL, NULL, NULL, NULL, false, 'true', NULL,
	 'Whether stock is pushed to and orders are pulled from the channel.'),
	('*', 'push_interval', 'interval', 0, 86400, NULL, NULL, NULL, false, NULL,
	 'per kind (see omnichan.channel_kind)',
	 'Longest delay between a stock change and its push to the marketplace; 0 pushes as soon as possible. An interval string (''5 minutes'') or a number of seconds.'),
	('*', 'pull_interval', 'interval', 1, 86400, NULL, NULL, NULL, false, NULL,
	 'per kind (see omnichan.channel_kind)',
	 'Time between two order pulls. An interval string (''1 minute'') or a number of seconds.'),
	('*', 'endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'the production API base URL of the kind (region, country or shop)',
	 'API base URL (http or https, no credentials, query or fragment); request paths are appended to it.'),

	-- amazon
	('amazon', 'seller_id', 'string', NULL, NULL, '^[A-Z0-9]{9,20}$', NULL,
	 'an Amazon seller id (merchant token) such as "A2EXAMPLE1234"', true, NULL, NULL,
	 'Selling partner id (merchant token), used in Listings Items paths and feed headers.'),
	('amazon', 'marketplace_ids', 'string[]', NULL, NULL, '^[A-Z0-9]{9,20}$', NULL,
	 'a non-empty array of Amazon marketplace ids such as ["ATVPDKIKX0DER"]', true, NULL, NULL,
	 'Marketplaces the listings are offered in (MarketplaceIds / marketplaceIds parameters).'),
	('amazon', 'region', 'string', NULL, NULL, NULL, '{na,eu,fe}', NULL, false, '"na"', NULL,
	 'SP-API region; selects the default endpoint https://sellingpartnerapi-<region>.amazon.com.'),
	('amazon', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'https://api.amazon.com/auth/o2/token',
	 'Login with Amazon (LWA) token endpoint used to refresh access tokens.'),
	('amazon', 'feed_threshold', 'integer', 2, 25000, NULL, NULL, NULL, false, '20', NULL,
	 'Listings changed at once from which a stock push goes through one JSON_LISTINGS_FEED (Feeds API) instead of one Listings Items patch per listing.'),
	('amazon', 'feed_poll_interval', 'number', 0, 3600, NULL, NULL, NULL, false, '15', NULL,
	 'Seconds between two getFeed calls while a stock-push feed is being processed.'),

	-- shopify
	('shopify', 'shop_domain', 'string', NULL, NULL, '^[a-z0-9][a-z0-9-]*\.myshopify\.com$', NULL,
	 'a shop domain such as "example.myshopify.com"', true, NULL, NULL,
	 'The shop''s permanent *.myshopify.com domain; selects the default endpoint https://<shop_domain>.'),
	('shopify', 'location_id', 'string', NULL, NULL, '^gid://shopify/Location/[0-9]+$', NULL,
	 'a location global id such as "gid://shopify/Location/123456789"', true, NULL, NULL,
	 'Shopify location whose inventory levels the channel sets (inventorySetQuantities locationId).'),
	('shopify', 'api_version', 'string', NULL, NULL, '^[0-9]{4}-(01|04|07|10)$', NULL,
	 'a quarterly Admin API version such as "2025-01"', false, '"2025-01"', NULL,
	 'Admin API version; requests go to <endpoint>/admin/api/<api_version>/.'),

	-- ebay
	('ebay', 'marketplace_id', 'string', NULL, NULL, '^EBAY_[A-Z][A-Z_]{1,19}$', NULL,
	 'an eBay marketplace id such as "EBAY_US"', true, NULL, NULL,
	 'eBay marketplace of the listings (X-EBAY-C-MARKETPLACE-ID, offer marketplaceId).'),
	('ebay', 'merchant_location_key', 'string', NULL, NULL, '^[A-Za-z0-9_-]{1,36}$', NULL,
	 'an inventory location key of at most 36 letters, digits, "_" or "-"', false, NULL, NULL,
	 'Inventory location the quantity is attributed to (availabilityDistributions merchantLocationKey); absent = none sent.'),
	('ebay', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'https://api.ebay.com/identity/v1/oauth2/token',
	 'OAuth token endpoint used to refresh user access tokens.'),

	-- walmart
	('walmart', 'ship_node', 'string', NULL, NULL, '^[0-9]{1,20}$', NULL,
	 'a numeric ship node id such as "10000003527"', false, NULL, NULL,
	 'Ship node the inventory is set for (shipNode); absent = the seller''s default ship node.'),
	('walmart', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'https://marketplace.walmartapis.com/v3/token',
	 'Token endpoint (POST /v3/token) used to obtain access tokens.'),
	('walmart', 'feed_poll_interval', 'number', 0.1, 3600, NULL, NULL, NULL, false, NULL, '10',
	 'Seconds between two status polls of an inventory feed (GET /v3/feeds/{feedId}).'),

	-- tiktok
	('tiktok', 'shop_cipher', 'string', NULL, NULL, '^[A-Za-z0-9_-]{1,128}$', NULL,
	 'a shop cipher as returned by /authorization/202309/shops', true, NULL, NULL,
	 'shop_cipher query parameter sent on every shop-scoped call.'),
	('tiktok', 'shop_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
	 'a numeric shop id such as "7494049642642441621"', false, NULL, NULL,
	 'Shop id, used to route webhook notifications to the channel.'),
	('tiktok', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'https://auth.tiktok-shops.com/api/v2/token/refresh',
	 'Token refresh endpoint on the TikTok Shop auth host.'),

	-- etsy
	('etsy', 'shop_id', 'integer', 1, NULL, NULL, NULL, NULL, true, NULL, NULL,
	 'Etsy shop id (shop_id path parameter of the receipts API).'),
	('etsy', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'https://openapi.etsy.com/v3/public/oauth/token',
	 'OAuth token endpoint used to refresh access tokens.'),

	-- lazada (and Daraz)
	('lazada', 'country', 'string', NULL, NULL, NULL, '{my,sg,th,ph,vn,id,pk,bd,lk,np,mm}', NULL, true, NULL, NULL,
	 'Seller country: my, sg, th, ph, vn, id (Lazada) or pk, bd, lk, np, mm (Daraz); selects the default endpoint.'),
	('lazada', 'seller_id', 'string', NULL, NULL, '^[0-9]{1,20}$', NULL,
	 'a numeric seller id such as "1234567"', false, NULL, NULL,
	 'Seller id, used to route push messages to the channel.'),
	('lazada', 'token_endpoint', 'url', NULL, NULL, NULL, NULL, NULL, false, NULL,
	 'Lazada: https://auth.lazada.com/rest/auth/token/refresh; Daraz: <endpoint of the country>/auth/token/refresh',
	 'Token refresh endpoint (/auth/token/refresh).'),

	-- per-product policies
	('product_policy', 'safety_stock', 'number', 0, NULL, NULL, NULL, NULL, false, '0', NULL,
	 'Units of the product never offered on any channel.'),
	('product_channel_policy', 'buffer_pct', 'number', 0, 100, NULL, NULL, NULL, false, 'null',
	 'the channel''s buffer_pct',
	 'Overrides the channel''s buffer_pct for this product; null clears the override.'),
	('product_channel_policy', 'max_qty', 'integer', 0, NULL, NULL, NULL, NULL, false, 'null',
	 'the channel''s max_qty',
	 'Overrides the channel''s max_qty for this product; null clears the override.'),
	('product_channel_policy', 'excluded', 'boolean', NULL, NULL, NULL, NULL, NULL, false, 'false', NULL,
	 'When true the product is offered on the channel with quantity 0.');

-- true when the array has no NULL and is sorted ascending without duplicates
CREATE FUNCTION omnichan._int_array_is_set(a int[])
RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.array_position(a, NULL) IS NULL
	   AND a OPERATOR(pg_catalog.=) ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(a) AS x ORDER BY x)
$$;

COMMENT ON FUNCTION omnichan._int_array_is_set(int[]) IS
'Internal: true when the array has no NULL and is sorted ascending without duplicates.';

CREATE TABLE omnichan.channel (
	id					serial PRIMARY KEY,
	name				text NOT NULL UNIQUE
		CHECK (name ~ '^[a-z0-9][a-z0-9_.-]{0,62}$'),
	kind				text NOT NULL REFERENCES omnichan.channel_kind (kind),
	company_id			int NOT NULL,
	warehouse_ids		int[] NOT NULL
		CHECK (pg_catalog.cardinality(warehouse_ids) >= 1
			   AND omnichan._int_array_is_set(warehouse_ids)),
	default_warehouse_id int NOT NULL,
	buffer_pct			numeric NOT NULL DEFAULT 0
		CHECK (buffer_pct BETWEEN 0 AND 100),
	priority			int NOT NULL DEFAULT 10
		CHECK (priority >= 1),
	max_qty				int
		CHECK (max_qty >= 0),
	low_stock_threshold	int NOT NULL DEFAULT 0
		CHECK (low_stock_threshold >= 0),
	active				boolean NOT NULL DEFAULT true,
	push_interval		interval NOT NULL
		CHECK (push_interval BETWEEN '0' AND '1 day'),
	pull_interval		interval NOT NULL
		CHECK (pull_interval BETWEEN '1 second' AND '1 day'),
	endpoint			text NOT NULL
		CHECK (endpoint ~ '^https?://[^/?#@[:space:]]+(/[^?#[:space:]]*)?$'),
	settings			jsonb NOT NULL DEFAULT '{}'
		CHECK (pg_catalog.jsonb_typeof(settings) = 'object'),
	created_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at			timestamptz NOT NULL DEFAULT pg_catalog.now(),
	CHECK (default_warehouse_id = ANY (warehouse_ids))
);

COMMENT ON TABLE omnichan.channel IS
'Marketplace channels (one seller account on one marketplace); write it with omnichan.channel_create/channel_alter/channel_drop.';
COMMENT ON COLUMN omnichan.channel.settings IS
'Kind-specific settings, validated against omnichan.setting_spec, defaults filled in.';

CREATE TABLE omnichan.product_policy (
	product_id		int PRIMARY KEY
		REFERENCES public.product_product (id) ON DELETE CASCADE,
	safety_stock	numeric NOT NULL DEFAULT 0
		CHECK (safety_stock >= 0),
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now()
);

COMMENT ON TABLE omnichan.product_policy IS
'Per-product settings for every channel; write it with omnichan.product_policy_set.';

CREATE TABLE omnichan.product_channel_policy (
	product_id		int NOT NULL
		REFERENCES public.product_product (id) ON DELETE CASCADE,
	channel_id		int NOT NULL
		REFERENCES omnichan.channel (id) ON DELETE CASCADE,
	buffer_pct		numeric
		CHECK (buffer_pct BETWEEN 0 AND 100),
	max_qty			int
		CHECK (max_qty >= 0),
	excluded		boolean NOT NULL DEFAULT false,
	updated_at		timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (product_id, channel_id)
);

CREATE INDEX ON omnichan.product_channel_policy (channel_id);

COMMENT ON TABLE omnichan.product_channel_policy IS
'Per-product overrides of one channel''s settings; write it with omnichan.product_channel_policy_set.';

SELECT pg_catalog.pg_extension_config_dump('omnichan.channel', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.channel_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.product_policy', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.product_channel_policy', '');

-- Validate one value against its omnichan.setting_spec row; returns the
-- normalized value (integers as integers, intervals as interval text, URLs
-- without a trailing slash, integer arrays sorted without duplicates).
CREATE FUNCTION omnichan._setting_value(p_scope text, p_key text, p_value jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	s			omnichan.setting_spec;
	jt			text := pg_catalog.jsonb_typeof(p_value);
	n			numeric;
	lo			numeric;
	hi			numeric;
	str			text;
	iv			interval;
	parts		text[];
	elem		jsonb;
	ints		int[] := '{}';
	strs		text[] := '{}';
	what		text;
BEGIN
	SELECT * INTO STRICT s FROM omnichan.setting_spec
	 WHERE scope = p_scope AND key = p_key;

	IF s.type IN ('integer', 'number') THEN
		what := CASE s.type WHEN 'integer' THEN 'an integer' ELSE 'a number' END;
		IF jt IS DISTINCT FROM 'number' THEN
			RAISE EXCEPTION 'setting "%" must be %', p_key, what
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is a JSON %s.', jt);
		END IF;
		n := p_value::numeric;
		IF s.type = 'integer' AND n OPERATOR(pg_catalog.<>) pg_catalog.trunc(n) THEN
			RAISE EXCEPTION 'setting "%" must be an integer', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', n);
		END IF;
		lo := s.min_value;
		hi := s.max_value;
		IF s.type = 'integer' THEN
			lo := COALESCE(lo, -2147483648);
			hi := COALESCE(hi, 2147483647);
		END IF;
		IF s.min_value IS NOT NULL AND s.max_value IS NOT NULL
		   AND (n < lo OR n > hi) THEN
			RAISE EXCEPTION 'setting "%" must be between % and %', p_key, lo, hi
				USING ERRCODE = 'numeric_value_out_of_range',
					  DETAIL = pg_catalog.format('The value given is %s.', n);
		ELSIF n < lo THEN
			RAISE EXCEPTION 'setting "%" must be at least %', p_key, lo
				USING ERRCODE = 'numeric_value_out_of_range',
					  DETAIL = pg_catalog.format('The value given is %s.', n);
		ELSIF n > hi THEN
			RAISE EXCEPTION 'setting "%" must be at most %', p_key, hi
				USING ERRCODE = 'numeric_value_out_of_range',
					  DETAIL = pg_catalog.format('The value given is %s.', n);
		END IF;
		IF s.type = 'integer' THEN
			RETURN pg_catalog.to_jsonb(n::int);
		END IF;
		RETURN pg_catalog.to_jsonb(n);

	ELSIF s.type = 'boolean' THEN
		IF jt IS DISTINCT FROM 'boolean' THEN
			RAISE EXCEPTION 'setting "%" must be a boolean', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is a JSON %s.', jt);
		END IF;
		RETURN p_value;

	ELSIF s.type = 'string' THEN
		IF jt IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'setting "%" must be a string', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is a JSON %s.', jt);
		END IF;
		str := p_value #>> '{}';
		IF s.choices IS NOT NULL AND NOT str = ANY (s.choices) THEN
			RAISE EXCEPTION 'setting "%" must be one of: %', p_key,
				pg_catalog.array_to_string(s.choices, ', ')
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value);
		END IF;
		IF s.pattern IS NOT NULL AND str !~ s.pattern THEN
			RAISE EXCEPTION 'setting "%" must be %', p_key, s.format
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value);
		END IF;
		RETURN p_value;

	ELSIF s.type = 'url' THEN
		IF jt IS DISTINCT FROM 'string' THEN
			RAISE EXCEPTION 'setting "%" must be a string', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is a JSON %s.', jt);
		END IF;
		str := p_value #>> '{}';
		-- scheme, authority, path; nothing else
		parts := pg_catalog.regexp_match(str, '^([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)([^?#]*)([?#].*)?$');
		IF parts IS NULL OR pg_catalog.lower(parts[1]) NOT IN ('http', 'https') THEN
			RAISE EXCEPTION 'setting "%" must be an http or https URL', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value),
					  HINT = 'Give an absolute URL such as "https://api.example.com".';
		END IF;
		IF pg_catalog.strpos(parts[2], '@') > 0 THEN
			RAISE EXCEPTION 'setting "%" must not contain user information', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = 'The URL has a "user:password@" part.',
					  HINT = 'Credentials are not stored in channel settings.';
		END IF;
		IF parts[4] IS NOT NULL THEN
			RAISE EXCEPTION 'setting "%" must not contain a query or fragment', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value);
		END IF;
		IF parts[2] !~ '^([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?$'
		   OR parts[3] ~ '[[:space:]]' THEN
			RAISE EXCEPTION 'setting "%" must be an http or https URL', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s, whose host or path is not valid.', p_value),
					  HINT = 'Give an absolute URL such as "https://api.example.com".';
		END IF;
		RETURN pg_catalog.to_jsonb(pg_catalog.lower(parts[1]) || '://' || parts[2]
								   || pg_catalog.rtrim(parts[3], '/'));

	ELSIF s.type = 'interval' THEN
		IF jt = 'number' THEN
			n := p_value::numeric;
			IF n < s.min_value OR n > s.max_value THEN
				RAISE EXCEPTION 'setting "%" must be between % and % seconds', p_key, s.min_value, s.max_value
					USING ERRCODE = 'numeric_value_out_of_range',
						  DETAIL = pg_catalog.format('The value given is %s.', p_value);
			END IF;
			iv := pg_catalog.make_interval(secs => n::double precision);
		ELSIF jt = 'string' THEN
			BEGIN
				iv := (p_value #>> '{}')::interval;
			EXCEPTION WHEN data_exception THEN
				iv := NULL;
			END;
			IF iv IS NULL THEN
				RAISE EXCEPTION 'setting "%" must be an interval such as "5 minutes" or a number of seconds', p_key
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = pg_catalog.format('The value given is %s.', p_value);
			END IF;
		ELSE
			RAISE EXCEPTION 'setting "%" must be an interval such as "5 minutes" or a number of seconds', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is a JSON %s.', jt);
		END IF;
		n := pg_catalog.date_part('epoch', iv);
		IF n < s.min_value OR n > s.max_value THEN
			RAISE EXCEPTION 'setting "%" must be between % and % seconds', p_key, s.min_value, s.max_value
				USING ERRCODE = 'numeric_value_out_of_range',
					  DETAIL = pg_catalog.format('The value given is %s (%s seconds).', p_value, n);
		END IF;
		RETURN pg_catalog.to_jsonb(iv::text);

	ELSIF s.type = 'integer[]' THEN
		IF jt IS DISTINCT FROM 'array' OR pg_catalog.jsonb_array_length(p_value) = 0 THEN
			RAISE EXCEPTION 'setting "%" must be a non-empty array of integers', p_key
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value);
		END IF;
		FOR elem IN SELECT e FROM pg_catalog.jsonb_array_elements(p_value) AS e LOOP
			IF pg_catalog.jsonb_typeof(elem) IS DISTINCT FROM 'number'
			   OR elem::numeric OPERATOR(pg_catalog.<>) pg_catalog.trunc(elem::numeric) THEN
				RAISE EXCEPTION 'setting "%" must be a non-empty array of integers', p_key
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = pg_catalog.format('The element %s is not an integer.', elem);
			END IF;
			IF elem::numeric < s.min_value OR elem::numeric > 2147483647 THEN
				RAISE EXCEPTION 'setting "%" must contain integers between % and 2147483647', p_key, s.min_value
					USING ERRCODE = 'numeric_value_out_of_range',
						  DETAIL = pg_catalog.format('The element %s is out of range.', elem);
			END IF;
			ints := ints || elem::numeric::int;
		END LOOP;
		RETURN pg_catalog.to_jsonb(ARRAY(SELECT DISTINCT x FROM pg_catalog.unnest(ints) AS x ORDER BY x));

	ELSIF s.type = 'string[]' THEN
		IF jt IS DISTINCT FROM 'array' OR pg_catalog.jsonb_array_length(p_value) = 0 THEN
			RAISE EXCEPTION 'setting "%" must be %', p_key, s.format
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The value given is %s.', p_value);
		END IF;
		FOR elem IN SELECT e FROM pg_catalog.jsonb_array_elements(p_value) AS e LOOP
			IF pg_catalog.jsonb_typeof(elem) IS DISTINCT FROM 'string'
			   OR (s.pattern IS NOT NULL AND (elem #>> '{}') !~ s.pattern) THEN
				RAISE EXCEPTION 'setting "%" must be %', p_key, s.format
					USING ERRCODE = 'invalid_parameter_value',
						  DETAIL = pg_catalog.format('The element %s is not valid.', elem);
			END IF;
			IF NOT (elem #>> '{}') = ANY (strs) THEN
				strs := strs || (elem #>> '{}');
			END IF;
		END LOOP;
		RETURN pg_catalog.to_jsonb(strs);
	END IF;

	RAISE EXCEPTION 'unexpected setting type "%"', s.type;	-- cannot happen
END
$$;

COMMENT ON FUNCTION omnichan._setting_value(text, text, jsonb) IS
'Internal: validate one setting value against omnichan.setting_spec and return it normalized.';

-- Check that every key of p_patch is a key of one of p_scopes; the error
-- lists the valid keys.
CREATE FUNCTION omnichan._setting_keys_check(p_scopes text[], p_patch jsonb, p_what text)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	k	text;
BEGIN
	IF p_patch IS NULL OR pg_catalog.jsonb_typeof(p_patch) IS DISTINCT FROM 'object' THEN
		RAISE EXCEPTION '% must be a JSON object', p_what
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('The value given is %s.', COALESCE(p_patch::text, 'NULL'));
	END IF;
	FOR k IN SELECT pg_catalog.jsonb_object_keys(p_patch) ORDER BY 1 LOOP
		IF NOT EXISTS (SELECT 1 FROM omnichan.setting_spec
						WHERE scope = ANY (p_scopes) AND key = k) THEN
			RAISE EXCEPTION 'unknown setting "%"', k
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = pg_catalog.format('Valid keys %s: %s.',
						CASE WHEN p_scopes[pg_catalog.cardinality(p_scopes)] IN ('product_policy', 'product_channel_policy')
							 THEN 'are'
							 ELSE pg_catalog.format('for kind "%s" are', p_scopes[pg_catalog.cardinality(p_scopes)]) END,
						(SELECT pg_catalog.string_agg(key, ', ' ORDER BY key)
						   FROM omnichan.setting_spec WHERE scope = ANY (p_scopes)));
		END IF;
	END LOOP;
END
$$;

COMMENT ON FUNCTION omnichan._setting_keys_check(text[], jsonb, text) IS
'Internal: reject a settings object that is not an object or has a key unknown to the given setting_spec scopes.';

-- Default of a derived setting (endpoint, token_endpoint) from the other
-- kind settings.
CREATE FUNCTION omnichan._channel_default_url(p_kind text, p_key text, p_settings jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	country	text := p_settings ->> 'country';
	host	text;
BEGIN
	IF p_kind = 'lazada' THEN
		host := CASE country
			WHEN 'my' THEN 'https://api.lazada.com.my/rest'
			WHEN 'sg' THEN 'https://api.lazada.sg/rest'
			WHEN 'th' THEN 'https://api.lazada.co.th/rest'
			WHEN 'ph' THEN 'https://api.lazada.com.ph/rest'
			WHEN 'vn' THEN 'https://api.lazada.vn/rest'
			WHEN 'id' THEN 'https://api.lazada.co.id/rest'
			WHEN 'pk' THEN 'https://api.daraz.pk/rest'
			WHEN 'bd' THEN 'https://api.daraz.com.bd/rest'
			WHEN 'lk' THEN 'https://api.daraz.lk/rest'
			WHEN 'np' THEN 'https://api.daraz.com.np/rest'
			WHEN 'mm' THEN 'https://api.shop.com.mm/rest'
		END;
	END IF;

	IF p_key = 'endpoint' THEN
		RETURN pg_catalog.to_jsonb(CASE p_kind
			WHEN 'amazon' THEN 'https://sellingpartnerapi-' || (p_settings ->> 'region') || '.amazon.com'
			WHEN 'shopify' THEN 'https://' || (p_settings ->> 'shop_domain')
			WHEN 'ebay' THEN 'https://api.ebay.com'
			WHEN 'walmart' THEN 'https://marketplace.walmartapis.com'
			WHEN 'tiktok' THEN 'https://open-api.tiktokglobalshop.com'
			WHEN 'etsy' THEN 'https://openapi.etsy.com'
			WHEN 'lazada' THEN host
		END);
	ELSIF p_key = 'token_endpoint' THEN
		RETURN pg_catalog.to_jsonb(CASE p_kind
			WHEN 'amazon' THEN 'https://api.amazon.com/auth/o2/token'
			WHEN 'ebay' THEN 'https://api.ebay.com/identity/v1/oauth2/token'
			WHEN 'walmart' THEN 'https://marketplace.walmartapis.com/v3/token'
			WHEN 'tiktok' THEN 'https://auth.tiktok-shops.com/api/v2/token/refresh'
			WHEN 'etsy' THEN 'https://openapi.etsy.com/v3/public/oauth/token'
			WHEN 'lazada' THEN CASE WHEN country IN ('pk', 'bd', 'lk', 'np', 'mm')
									THEN host || '/auth/token/refresh'
									ELSE 'https://auth.lazada.com/rest/auth/token/refresh' END
		END);
	END IF;
	RETURN NULL;
END
$$;

COMMENT ON FUNCTION omnichan._channel_default_url(text, text, jsonb) IS
'Internal: production default of the endpoint or token_endpoint setting of a channel kind, given its other settings.';

-- Merge p_patch into the effective settings p_old (an empty object when
-- creating), validate everything against the kind and fill in defaults.
-- Returns the new effective settings; writes nothing.
CREATE FUNCTION omnichan._channel_resolve(p_kind text, p_old jsonb, p_patch jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	scopes		text[] := ARRAY['*', p_kind];
	eff			jsonb := p_old;
	k			text;
	v			jsonb;
	s			omnichan.setting_spec;
	ck			omnichan.channel_kind;
	company		int;
	n			int;
	wh			record;
	whs			int[];
	url_key		text;
	old_default	jsonb;
BEGIN
	PERFORM omnichan._setting_keys_check(scopes, p_patch, 'settings');

	-- validate and merge; JSON null removes the key (back to its default)
	FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(p_patch) AS e ORDER BY e.key LOOP
		IF v = 'null'::jsonb THEN
			eff := eff - k;
		ELSE
			eff := eff || pg_catalog.jsonb_build_object(k,
				omnichan._setting_value(
					(SELECT scope FROM omnichan.setting_spec
					  WHERE scope = ANY (scopes) AND key = k), k, v));
		END IF;
	END LOOP;

	-- static defaults, then required keys
	FOR s IN SELECT * FROM omnichan.setting_spec
			  WHERE scope = ANY (scopes) ORDER BY key LOOP
		IF NOT eff ? s.key AND s.default_value IS NOT NULL THEN
			eff := eff || pg_catalog.jsonb_build_object(s.key, s.default_value);
		END IF;
		IF s.required AND NOT eff ? s.key THEN
			RAISE EXCEPTION 'setting "%" is required for kind "%"', s.key, p_kind
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = pg_catalog.format('%s%s', s.description,
						CASE WHEN s.format IS NOT NULL THEN ' It must be ' || s.format || '.' ELSE '' END);
		END IF;
	END LOOP;

	-- company
	IF NOT eff ? 'company_id' THEN
		SELECT pg_catalog.count(*), pg_catalog.min(id) INTO n, company
		  FROM public.res_company WHERE active;
		IF n <> 1 THEN
			RAISE EXCEPTION 'setting "company_id" is required when there is not exactly one company'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('The database has %s active companies.', n),
					  HINT = (SELECT 'Companies: ' || pg_catalog.string_agg(pg_catalog.format('%s (%s)', id, name), ', ' ORDER BY id) || '.'
								FROM public.res_company WHERE active);
		END IF;
		eff := eff || pg_catalog.jsonb_build_object('company_id', company);
	ELSE
		company := (eff ->> 'company_id')::int;
		IF NOT EXISTS (SELECT 1 FROM public.res_company WHERE id = company AND active) THEN
			RAISE EXCEPTION 'setting "company_id" refers to no active company'
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('There is no active res_company with id %s.', company),
					  HINT = (SELECT 'Companies: ' || pg_catalog.string_agg(pg_catalog.format('%s (%s)', id, name), ', ' ORDER BY id) || '.'
								FROM public.res_company WHERE active);
		END IF;
	END IF;

	-- warehouses: default = every active warehouse of the company
	IF NOT eff ? 'warehouse_ids' THEN
		whs := ARRAY(SELECT id FROM public.stock_warehouse
					  WHERE company_id = company AND active ORDER BY id);
		IF pg_catalog.cardinality(whs) = 0 THEN
			RAISE EXCEPTION 'company % has no active warehouse', company
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = 'Create a warehouse in Odoo first, or choose another company_id.';
		END IF;
		eff := eff || pg_catalog.jsonb_build_object('warehouse_ids', whs);
	END IF;
	whs := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(eff -> 'warehouse_ids')::int);
	FOR wh IN SELECT w.x AS id, sw.id AS found, sw.active, sw.company_id, sw.code
				FROM pg_catalog.unnest(whs) AS w(x)
				LEFT JOIN public.stock_warehouse sw ON sw.id = w.x
			   ORDER BY w.x LOOP
		IF wh.found IS NULL THEN
			RAISE EXCEPTION 'setting "warehouse_ids" contains warehouse %, which does not exist', wh.id
				USING ERRCODE = 'invalid_parameter_value',
					  HINT = (SELECT pg_catalog.format('Active warehouses of company %s: %s.', company,
							COALESCE(pg_catalog.string_agg(pg_catalog.format('%s (%s)', id, code), ', ' ORDER BY id), 'none'))
							FROM public.stock_warehouse WHERE company_id = company AND active);
		ELSIF wh.company_id IS DISTINCT FROM company THEN
			RAISE EXCEPTION 'setting "warehouse_ids" contains warehouse %, which belongs to another company', wh.id
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('Warehouse %s (%s) belongs to company %s, the channel to company %s.',
							wh.id, wh.code, wh.company_id, company),
					  HINT = (SELECT pg_catalog.format('Active warehouses of company %s: %s.', company,
							COALESCE(pg_catalog.string_agg(pg_catalog.format('%s (%s)', id, code), ', ' ORDER BY id), 'none'))
							FROM public.stock_warehouse WHERE company_id = company AND active);
		ELSIF NOT wh.active THEN
			RAISE EXCEPTION 'setting "warehouse_ids" contains warehouse %, which is archived', wh.id
				USING ERRCODE = 'invalid_parameter_value',
					  DETAIL = pg_catalog.format('Warehouse %s (%s) is not active.', wh.id, wh.code);
		END IF;
	END LOOP;

	-- default warehouse: kept while it is one of the warehouses, else the first
	IF NOT eff ? 'default_warehouse_id'
	   OR (NOT p_patch ? 'default_warehouse_id'
		   AND NOT (eff -> 'default_warehouse_id')::int = ANY (whs)) THEN
		eff := eff || pg_catalog.jsonb_build_object('default_warehouse_id', whs[1]);
	ELSIF NOT (eff -> 'default_warehouse_id')::int = ANY (whs) THEN
		RAISE EXCEPTION 'setting "default_warehouse_id" must be one of the channel''s warehouse_ids'
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('Warehouse %s is not in warehouse_ids %s.',
						eff -> 'default_warehouse_id', eff -> 'warehouse_ids');
	END IF;

	-- intervals: per kind
	SELECT * INTO STRICT ck FROM omnichan.channel_kind WHERE kind = p_kind;
	IF NOT eff ? 'push_interval' THEN
		eff := eff || pg_catalog.jsonb_build_object('push_interval', ck.push_interval::text);
	END IF;
	IF NOT eff ? 'pull_interval' THEN
		eff := eff || pg_catalog.jsonb_build_object('pull_interval', ck.pull_interval::text);
	END IF;

	-- URLs: derived from the other settings; a URL that was the default
	-- follows the settings it derives from unless it is given explicitly
	FOR url_key IN SELECT key FROM omnichan.setting_spec
					WHERE scope = ANY (scopes) AND key IN ('endpoint', 'token_endpoint')
					ORDER BY key LOOP
		old_default := omnichan._channel_default_url(p_kind, url_key, p_old);
		IF NOT eff ? url_key
		   OR (NOT p_patch ? url_key AND p_old -> url_key = old_default) THEN
			eff := eff || pg_catalog.jsonb_build_object(url_key,
							omnichan._channel_default_url(p_kind, url_key, eff));
		END IF;
	END LOOP;

	RETURN eff;
END
$$;

COMMENT ON FUNCTION omnichan._channel_resolve(text, jsonb, jsonb) IS
'Internal: merge a settings patch into a channel''s effective settings, validate it against the kind and fill in defaults.';

-- Effective settings of a channel row (common columns + kind settings).
CREATE FUNCTION omnichan._channel_effective(c omnichan.channel)
RETURNS jsonb
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT pg_catalog.jsonb_build_object(
			'company_id', c.company_id,
			'warehouse_ids', pg_catalog.to_jsonb(c.warehouse_ids),
			'default_warehouse_id', c.default_warehouse_id,
			'buffer_pct', c.buffer_pct,
			'priority', c.priority,
			'max_qty', c.max_qty,
			'low_stock_threshold', c.low_stock_threshold,
			'active', c.active,
			'push_interval', c.push_interval::text,
			'pull_interval', c.pull_interval::text,
			'endpoint', c.endpoint)
		   OPERATOR(pg_catalog.||) c.settings
$$;

COMMENT ON FUNCTION omnichan._channel_effective(omnichan.channel) IS
'Internal: the effective settings of a channel row as one JSON object.';

CREATE FUNCTION omnichan._channel_check_name(p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF p_name IS NULL OR p_name !~ '^[a-z0-9][a-z0-9_.-]{0,62}$' THEN
		RAISE EXCEPTION 'invalid channel name "%"', p_name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = 'A channel name is 1 to 63 characters: lower-case letters, digits, "_", "." and "-", starting with a letter or digit.',
				  HINT = 'For example "amazon-us" or "shopify.main".';
	END IF;
END
$$;

COMMENT ON FUNCTION omnichan._channel_check_name(text) IS
'Internal: raise an error unless the text is a valid channel name.';

-- Write the effective settings into a channel row: one INSERT or UPDATE.
CREATE FUNCTION omnichan.channel_create(name text, kind text, settings jsonb DEFAULT '{}')
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_name		text := name;
	p_kind		text := kind;
	eff			jsonb;
	common		text[];
	new_id		int;
BEGIN
	PERFORM omnichan._channel_check_name(p_name);
	IF NOT EXISTS (SELECT 1 FROM omnichan.channel_kind k WHERE k.kind = p_kind) THEN
		RAISE EXCEPTION 'unknown channel kind "%"', p_kind
			USING ERRCODE = 'undefined_object',
				  HINT = (SELECT 'Valid kinds: ' || pg_catalog.string_agg(k.kind, ', ' ORDER BY k.kind) || '.'
							FROM omnichan.channel_kind k);
	END IF;
	IF EXISTS (SELECT 1 FROM omnichan.channel c WHERE c.name = p_name) THEN
		RAISE EXCEPTION 'channel "%" already exists', p_name
			USING ERRCODE = 'duplicate_object';
	END IF;

	eff := omnichan._channel_resolve(p_kind, '{}', COALESCE(settings, '{}'));
	common := ARRAY(SELECT s.key FROM omnichan.setting_spec s WHERE s.scope = '*');

	BEGIN
		INSERT INTO omnichan.channel AS c
			(name, kind, company_id, warehouse_ids, default_warehouse_id,
			 buffer_pct, priority, max_qty, low_stock_threshold, active,
			 push_interval, pull_interval, endpoint, settings)
		VALUES
			(p_name, p_kind, (eff ->> 'company_id')::int,
			 ARRAY(SELECT pg_catalog.jsonb_array_elements_text(eff -> 'warehouse_ids')::int),
			 (eff ->> 'default_warehouse_id')::int,
			 (eff ->> 'buffer_pct')::numeric, (eff ->> 'priority')::int,
			 (eff ->> 'max_qty')::int, (eff ->> 'low_stock_threshold')::int,
			 (eff ->> 'active')::boolean,
			 (eff ->> 'push_interval')::interval, (eff ->> 'pull_interval')::interval,
			 eff ->> 'endpoint', eff - common)
		RETURNING c.id INTO new_id;
	EXCEPTION WHEN unique_violation THEN
		-- a concurrent transaction committed the same name first
		RAISE EXCEPTION 'channel "%" already exists', p_name
			USING ERRCODE = 'duplicate_object';
	END;
	RETURN new_id;
END
$$;

COMMENT ON FUNCTION omnichan.channel_create(text, text, jsonb) IS
'Create a marketplace channel of the given kind; settings are validated against omnichan.setting_spec (see docs/channels.md). Returns the channel id.';

CREATE FUNCTION omnichan.channel_alter(name text, settings jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_name		text := name;
	patch		jsonb := settings;
	c			omnichan.channel;
	eff			jsonb;
	common		text[];
BEGIN
	SELECT * INTO c FROM omnichan.channel ch WHERE ch.name = p_name FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'channel "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
	IF patch ? 'kind' THEN
		RAISE EXCEPTION 'the kind of channel "%" cannot be changed', p_name
			USING ERRCODE = 'invalid_parameter_value',
				  DETAIL = pg_catalog.format('The channel is of kind "%s".', c.kind),
				  HINT = 'Drop the channel and create a new one.';
	END IF;

	eff := omnichan._channel_resolve(c.kind, omnichan._channel_effective(c), patch);
	common := ARRAY(SELECT s.key FROM omnichan.setting_spec s WHERE s.scope = '*');

	UPDATE omnichan.channel ch SET
		company_id = (eff ->> 'company_id')::int,
		warehouse_ids = ARRAY(SELECT pg_catalog.jsonb_array_elements_text(eff -> 'warehouse_ids')::int),
		default_warehouse_id = (eff ->> 'default_warehouse_id')::int,
		buffer_pct = (eff ->> 'buffer_pct')::numeric,
		priority = (eff ->> 'priority')::int,
		max_qty = (eff ->> 'max_qty')::int,
		low_stock_threshold = (eff ->> 'low_stock_threshold')::int,
		active = (eff ->> 'active')::boolean,
		push_interval = (eff ->> 'push_interval')::interval,
		pull_interval = (eff ->> 'pull_interval')::interval,
		endpoint = eff ->> 'endpoint',
		settings = eff - common,
		updated_at = pg_catalog.clock_timestamp()
	 WHERE ch.id = c.id;

	-- A shorter push_interval or pull_interval applies now, not once the
	-- next push or pull scheduled under the old one comes due (a channel
	-- moved from 15 minutes to 3 seconds used to wait up to 15 minutes):
	-- both are brought forward to at most one new interval from now.  A
	-- channel not scheduled yet (NULL) stays due at the worker's next cycle.
	UPDATE omnichan.channel_state s SET
		next_push_at = CASE WHEN s.next_push_at IS NOT NULL
							THEN LEAST(s.next_push_at, now() + (eff ->> 'push_interval')::interval) END,
		next_pull_at = CASE WHEN s.next_pull_at IS NOT NULL
							THEN LEAST(s.next_pull_at, now() + (eff ->> 'pull_interval')::interval) END
	 WHERE s.channel_id = c.id;
	-- and the worker reads the new settings at commit: change capture wakes
	-- it only for the settings that move allocations, not for intervals,
	-- endpoints or kind settings, which used to wait for its next wake-up
	-- (up to omnichan.naptime, or the old schedule)
	PERFORM omnichan._wake_on_commit();
END
$$;

COMMENT ON FUNCTION omnichan.channel_alter(text, jsonb) IS
'Change settings of a channel: the given keys are merged into its settings (JSON null resets a key to its default) and everything is validated again; the kind cannot change.';

CREATE FUNCTION omnichan.channel_drop(name text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_name	text := name;
BEGIN
	DELETE FROM omnichan.channel ch WHERE ch.name = p_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'channel "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
END
$$;

COMMENT ON FUNCTION omnichan.channel_drop(text) IS
'Drop a channel and its per-product overrides.';

CREATE FUNCTION omnichan.channel_settings(name text)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_name	text := name;
	c		omnichan.channel;
BEGIN
	SELECT * INTO c FROM omnichan.channel ch WHERE ch.name = p_name;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'channel "%" does not exist', p_name
			USING ERRCODE = 'undefined_object';
	END IF;
	RETURN omnichan._channel_effective(c);
END
$$;

COMMENT ON FUNCTION omnichan.channel_settings(text) IS
'Effective settings of a channel (common and kind-specific, defaults included) as one JSON object, suitable as the settings argument of channel_create.';

CREATE FUNCTION omnichan._product_check(p_product_id int)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF p_product_id IS NULL
	   OR NOT EXISTS (SELECT 1 FROM public.product_product WHERE id = p_product_id) THEN
		RAISE EXCEPTION 'product % does not exist', COALESCE(p_product_id::text, 'NULL')
			USING ERRCODE = 'undefined_object',
				  DETAIL = 'There is no product_product row with that id.';
	END IF;
END
$$;

COMMENT ON FUNCTION omnichan._product_check(int) IS
'Internal: raise an error unless the product variant exists.';

CREATE FUNCTION omnichan.product_policy_set(product_id int, policy jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_product	int := product_id;
	cur			jsonb;
	k			text;
	v			jsonb;
BEGIN
	PERFORM omnichan._product_check(p_product);
	PERFORM omnichan._setting_keys_check(ARRAY['product_policy'], policy, 'policy');

	SELECT pg_catalog.jsonb_build_object('safety_stock', pp.safety_stock) INTO cur
	  FROM omnichan.product_policy pp WHERE pp.product_id = p_product FOR UPDATE;
	cur := COALESCE(cur, '{"safety_stock": 0}');
	FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(policy) AS e ORDER BY e.key LOOP
		cur := cur || pg_catalog.jsonb_build_object(k,
			CASE WHEN v = 'null'::jsonb
				 THEN (SELECT s.default_value FROM omnichan.setting_spec s
						WHERE s.scope = 'product_policy' AND s.key = k)
				 ELSE omnichan._setting_value('product_policy', k, v) END);
	END LOOP;

	IF (cur ->> 'safety_stock')::numeric = 0 THEN
		DELETE FROM omnichan.product_policy pp WHERE pp.product_id = p_product;
	ELSE
		INSERT INTO omnichan.product_policy AS pp (product_id, safety_stock, updated_at)
		VALUES (p_product, (cur ->> 'safety_stock')::numeric, pg_catalog.clock_timestamp())
		ON CONFLICT ON CONSTRAINT product_policy_pkey DO UPDATE
			SET safety_stock = excluded.safety_stock, updated_at = excluded.updated_at;
	END IF;
END
$$;

COMMENT ON FUNCTION omnichan.product_policy_set(int, jsonb) IS
'Set per-product policy keys (safety_stock); JSON null resets a key to its default; a product whose keys are all default has no row.';

CREATE FUNCTION omnichan.product_channel_policy_set(product_id int, channel text, policy jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	p_product	int := product_id;
	p_channel	text := channel;
	ch_id		int;
	cur			jsonb;
	k			text;
	v			jsonb;
BEGIN
	PERFORM omnichan._product_check(p_product);
	SELECT c.id INTO ch_id FROM omnichan.channel c WHERE c.name = p_channel FOR KEY SHARE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'channel "%" does not exist', p_channel
			USING ERRCODE = 'undefined_object';
	END IF;
	PERFORM omnichan._setting_keys_check(ARRAY['product_channel_policy'], policy, 'policy');

	SELECT pg_catalog.jsonb_build_object('buffer_pct', pcp.buffer_pct, 'max_qty', pcp.max_qty,
										 'excluded', pcp.excluded) INTO cur
	  FROM omnichan.product_channel_policy pcp
	 WHERE pcp.product_id = p_product AND pcp.channel_id = ch_id FOR UPDATE;
	cur := COALESCE(cur, '{"buffer_pct": null, "max_qty": null, "excluded": false}');
	FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(policy) AS e ORDER BY e.key LOOP
		cur := cur || pg_catalog.jsonb_build_object(k,
			CASE WHEN v = 'null'::jsonb
				 THEN (SELECT s.default_value FROM omnichan.setting_spec s
						WHERE s.scope = 'product_channel_policy' AND s.key = k)
				 ELSE omnichan._setting_value('product_channel_policy', k, v) END);
	END LOOP;

	IF cur = '{"buffer_pct": null, "max_qty": null, "excluded": false}'::jsonb THEN
		DELETE FROM omnichan.product_channel_policy pcp
		 WHERE pcp.product_id = p_product AND pcp.channel_id = ch_id;
	ELSE
		INSERT INTO omnichan.product_channel_policy AS pcp
			(product_id, channel_id, buffer_pct, max_qty, excluded, updated_at)
		VALUES (p_product, ch_id, (cur ->> 'buffer_pct')::numeric, (cur ->> 'max_qty')::int,
				(cur ->> 'excluded')::boolean, pg_catalog.clock_timestamp())
		ON CONFLICT ON CONSTRAINT product_channel_policy_pkey DO UPDATE
			SET buffer_pct = excluded.buffer_pct, max_qty = excluded.max_qty,
				excluded = excluded.excluded, updated_at = excluded.updated_at;
	END IF;
END
$$;

COMMENT ON FUNCTION omnichan.product_channel_policy_set(int, text, jsonb) IS
'Set per-product overrides for one channel (buffer_pct, max_qty, excluded); JSON null clears an override; the row goes away when nothing is overridden.';

-- Read access for Odoo's database role.  The read functions are listed in
-- _read_functions(): add one line there for each new read function.
CREATE FUNCTION omnichan._read_functions()
RETURNS SETOF text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	VALUES
		('omnichan._channel_effective(omnichan.channel)'),
		('omnichan.channel_settings(text)'),
		('omnichan.ats_bulk(int[], int[], boolean, int)'),
		('omnichan.ats(int, int)'),
		('omnichan.allocate_bulk(int[])'),
		('omnichan.allocate(int)'),
		('omnichan.explain_allocation(int)')
$$;

COMMENT ON FUNCTION omnichan._read_functions() IS
'Internal: signatures of the functions omnichan.grant_read makes executable.';

CREATE FUNCTION omnichan._read_tables()
RETURNS SETOF text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
	VALUES
		('omnichan.channel'),
		('omnichan.channel_kind'),
		('omnichan.setting_spec'),
		('omnichan.product_policy'),
		('omnichan.product_channel_policy')
$$;

COMMENT ON FUNCTION omnichan._read_tables() IS
'Internal: tables omnichan.grant_read makes readable.';

CREATE FUNCTION omnichan.grant_read(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	obj	text;
BEGIN
	EXECUTE pg_catalog.format('GRANT USAGE ON SCHEMA omnichan TO %s', role);
	FOR obj IN SELECT omnichan._read_tables() LOOP
		EXECUTE pg_catalog.format('GRANT SELECT ON TABLE %s TO %s', obj::regclass, role);
	END LOOP;
	FOR obj IN SELECT omnichan._read_functions() LOOP
		EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', obj::regprocedure, role);
	END LOOP;
END
$$;

COMMENT ON FUNCTION omnichan.grant_read(regrole) IS
'Let a role (e.g. Odoo''s database user) read channels and policies: USAGE on the schema, SELECT on the tables, EXECUTE on the read functions.';

CREATE FUNCTION omnichan.revoke_read(role regrole)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
	obj	text;
BEGIN
	FOR obj IN SELECT omnichan._read_functions() LOOP
		EXECUTE pg_catalog.format('REVOKE EXECUTE ON FUNCTION %s FROM %s', obj::regprocedure, role);
	END LOOP;
	FOR obj IN SELECT omnichan._read_tables() LOOP
		EXECUTE pg_catalog.format('REVOKE SELECT ON TABLE %s FROM %s', obj::regclass, role);
	END LOOP;
	EXECUTE pg_catalog.format('REVOKE USAGE ON SCHEMA omnichan FROM %s', role);
END
$$;

COMMENT ON FUNCTION omnichan.revoke_read(regrole) IS
'Undo omnichan.grant_read for a role.';

REVOKE EXECUTE ON FUNCTION
	omnichan._int_array_is_set(int[]),
	omnichan._setting_value(text, text, jsonb),
	omnichan._setting_keys_check(text[], jsonb, text),
	omnichan._channel_default_url(text, text, jsonb),
	omnichan._channel_resolve(text, jsonb, jsonb),
	omnichan._channel_effective(omnichan.channel),
	omnichan._channel_check_name(text),
	omnichan.channel_create(text, text, jsonb),
	omnichan.channel_alter(text, jsonb),
	omnichan.channel_drop(text),
	omnichan.channel_settings(text),
	omnichan._product_check(int),
	omnichan.product_policy_set(int, jsonb),
	omnichan.product_channel_policy_set(int, text, jsonb),
	omnichan._read_functions(),
	omnichan._read_tables(),
	omnichan.grant_read(regrole),
	omnichan.revoke_read(regrole)
FROM PUBLIC;

-------------------------------------------------------------------------------
-- Available to sell and allocation
-------------------------------------------------------------------------------

-- Marketplace orders received but not yet turned into Odoo sale orders.  They
-- count as pending demand from the moment they arrive (ats_bulk); the order
-- pull fills these tables and sets sale_order_id when it creates the order.
CREATE TABLE omnichan.order_inbox (
    id              bigserial PRIMARY KEY,
    channel_id      int NOT NULL REFERENCES omnichan.channel (id),
    external_id     text NOT NULL CHECK (pg_catalog.length(external_id) BETWEEN 1 AND 255),
    state           text NOT NULL DEFAULT 'received'
                    CHECK (state IN ('received', 'held', 'materialized', 'cancelled')),
    warehouse_id    int REFERENCES public.stock_warehouse (id) ON DELETE SET NULL,
    sale_order_id   int REFERENCES public.sale_order (id) ON DELETE SET NULL,
    received_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    UNIQUE (channel_id, external_id)
);
COMMENT ON TABLE omnichan.order_inbox IS
'Marketplace orders as received; unique per (channel, external id). Orders in state received or held without a sale order count as pending demand.';
COMMENT ON COLUMN omnichan.order_inbox.warehouse_id IS
'Warehouse the order ships from (routing); NULL = the channel''s default warehouse.';
CREATE INDEX order_inbox_sale_order_idx ON omnichan.order_inbox (sale_order_id)
    WHERE sale_order_id IS NOT NULL;

CREATE TABLE omnichan.order_inbox_line (
    inbox_id        bigint NOT NULL REFERENCES omnichan.order_inbox (id) ON DELETE CASCADE,
    line_no         int NOT NULL CHECK (line_no >= 1),
    channel_sku     text NOT NULL CHECK (pg_catalog.length(channel_sku) BETWEEN 1 AND 255),
    product_id      int REFERENCES public.product_product (id) ON DELETE SET NULL,
    quantity        numeric NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (inbox_id, line_no)
);
COMMENT ON TABLE omnichan.order_inbox_line IS
'Lines of inbox orders; quantity in the product''s unit of measure; product_id NULL while the SKU is not linked to a product.';
CREATE INDEX order_inbox_line_product_idx ON omnichan.order_inbox_line (product_id)
    WHERE product_id IS NOT NULL;

SELECT pg_catalog.pg_extension_config_dump('omnichan.order_inbox', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.order_inbox_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.order_inbox_line', '');

-- Indexes Odoo lacks.  The open-move index keeps single-product ATS fast
-- however many done moves a product has.  IF NOT EXISTS lets a DBA build them
-- beforehand with CREATE INDEX CONCURRENTLY on a large database; either way
-- they belong to the extension and go away with DROP EXTENSION.
CREATE INDEX IF NOT EXISTS omnichan_stock_move_open_idx ON public.stock_move (product_id)
    WHERE state IN ('waiting', 'confirmed', 'partially_available', 'assigned');
ALTER INDEX public.omnichan_stock_move_open_idx DEPENDS ON EXTENSION omnichan;
DO $$
BEGIN
    IF pg_catalog.to_regclass('public.mrp_bom_line') IS NOT NULL THEN
        CREATE INDEX IF NOT EXISTS omnichan_mrp_bom_line_product_idx
            ON public.mrp_bom_line (product_id);
        ALTER INDEX public.omnichan_mrp_bom_line_product_idx DEPENDS ON EXTENSION omnichan;
    END IF;
END
$$;

CREATE TYPE omnichan.ats_row AS (
    product_id      int,
    warehouse_id    int,
    on_hand         numeric,
    reserved        numeric,
    safety          numeric,
    pending         numeric,
    ats             numeric
);

CREATE FUNCTION omnichan.ats_bulk(product_ids int[] DEFAULT NULL,
                                  warehouse_ids int[] DEFAULT NULL,
                                  per_warehouse boolean DEFAULT false,
                                  company_id int DEFAULT NULL)
RETURNS SETOF omnichan.ats_row
LANGUAGE C STABLE CALLED ON NULL INPUT ROWS 10000
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'omnichan_ats_bulk';
COMMENT ON FUNCTION omnichan.ats_bulk(int[], int[], boolean, int) IS
'Available to sell of many products (NULL: every storable product and kit): on_hand - reserved - safety - pending, over the given warehouses (NULL: every active warehouse, of company_id if given) as one pool, or per warehouse.';

CREATE FUNCTION omnichan.ats(product_id int, warehouse_id int DEFAULT NULL)
RETURNS omnichan.ats_row
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    result omnichan.ats_row;
BEGIN
    IF product_id IS NULL THEN
        RAISE EXCEPTION 'product_id must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO result
      FROM omnichan.ats_bulk(ARRAY[product_id],
                             CASE WHEN warehouse_id IS NULL THEN NULL ELSE ARRAY[warehouse_id] END,
                             warehouse_id IS NOT NULL);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'product % does not exist', product_id
            USING ERRCODE = '42704',
                  HINT = 'Products are the rows of product_product.';
    END IF;
    RETURN result;
END
$$;
COMMENT ON FUNCTION omnichan.ats(int, int) IS
'Available to sell of one product in one warehouse (NULL: every active warehouse as one pool).';

CREATE FUNCTION omnichan.allocate_bulk(product_ids int[] DEFAULT NULL)
RETURNS TABLE (product_id int, channel_id int, channel text, quantity int,
               mode text, pool bigint, left_before bigint)
LANGUAGE C STABLE CALLED ON NULL INPUT ROWS 70000
SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'omnichan_allocate_bulk';
COMMENT ON FUNCTION omnichan.allocate_bulk(int[]) IS
'Quantity each channel shows for each product (NULL: every storable product and kit). mode: normal, low_stock (priority waterfall), inactive, excluded or archived; pool: whole units in the pool of the channel''s warehouse group; left_before: in low_stock mode, units left for this channel after higher priorities.';

CREATE FUNCTION omnichan.allocate(product_id int)
RETURNS TABLE (channel_id int, channel text, quantity int, mode text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.product_product p WHERE p.id = allocate.product_id) THEN
        RAISE EXCEPTION 'product % does not exist', allocate.product_id
            USING ERRCODE = '42704',
                  HINT = 'Products are the rows of product_product.';
    END IF;
    RETURN QUERY
        SELECT a.channel_id, a.channel, a.quantity, a.mode
          FROM omnichan.allocate_bulk(ARRAY[allocate.product_id]) a;
END
$$;
COMMENT ON FUNCTION omnichan.allocate(int) IS
'Quantity each channel shows for one product, with the mode that decided it.';

CREATE FUNCTION omnichan.explain_allocation(product_id int)
RETURNS TABLE (channel text, priority int, warehouse_ids int[], on_hand numeric,
               reserved numeric, safety numeric, pending numeric, ats numeric,
               buffer_pct numeric, max_qty int, mode text, pool bigint,
               left_before bigint, shown int, explanation text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
-- the set-returning functions' row estimates make the planner expect
-- millions of rows and JIT-compile a query of a dozen (0.3 s per call)
SET jit = off
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM public.product_product p WHERE p.id = explain_allocation.product_id) THEN
        RAISE EXCEPTION 'product % does not exist', explain_allocation.product_id
            USING ERRCODE = '42704',
                  HINT = 'Products are the rows of product_product.';
    END IF;
    RETURN QUERY
    WITH a AS (
        SELECT al.*, c.priority AS prio, c.warehouse_ids AS whs, c.low_stock_threshold AS threshold,
               COALESCE(o.buffer_pct, c.buffer_pct) AS buf,
               CASE WHEN o.max_qty IS NOT NULL THEN o.max_qty ELSE c.max_qty END AS cap,
               s.*
          FROM omnichan.allocate_bulk(ARRAY[explain_allocation.product_id]) al
          JOIN omnichan.channel c ON c.id = al.channel_id
          LEFT JOIN omnichan.product_channel_policy o
                 ON o.product_id = explain_allocation.product_id AND o.channel_id = c.id
         CROSS JOIN LATERAL omnichan.ats_bulk(ARRAY[explain_allocation.product_id], c.warehouse_ids) s
    ), n AS (
        SELECT a.*,
               -- what the channel would show with the whole of its own pool
               LEAST(floor(floor(a.ats) * (100 - a.buf) / 100),
                     COALESCE(a.cap, 2147483647))::bigint AS normal_qty
          FROM a
    )
    SELECT n.channel, n.prio, n.whs, n.on_hand, n.reserved, n.safety, n.pending, n.ats,
           n.buf, n.cap, n.mode, n.pool, n.left_before, n.quantity,
           format('ats %s = max(0, on hand %s - reserved %s - safety %s - pending %s); ',
                  n.ats, n.on_hand, n.reserved, n.safety, n.pending)
           || CASE n.mode
              WHEN 'inactive' THEN 'the channel is inactive: shows 0'
              WHEN 'archived' THEN 'the product is archived in Odoo: shows 0'
              WHEN 'excluded' THEN 'the product is excluded from this channel: shows 0'
              WHEN 'normal' THEN
                  format('normal mode (pool %s above the low-stock threshold): floor(%s x (1 - %s%%)) = %s',
                         n.pool, floor(n.ats), n.buf, floor(floor(n.ats) * (100 - n.buf) / 100))
                  || CASE WHEN n.cap IS NOT NULL AND floor(floor(n.ats) * (100 - n.buf) / 100) > n.cap
                          THEN format(', capped at max_qty %s', n.cap) ELSE '' END
                  || format(': shows %s', n.quantity)
              ELSE
                  format('low-stock mode (pool %s at or below a low-stock threshold): priority %s, %s left after higher priorities; floor(%s x (1 - %s%%)) = %s',
                         n.pool, n.prio, n.left_before, n.left_before, n.buf,
                         floor(GREATEST(n.left_before, 0) * (100 - n.buf) / 100))
                  || CASE WHEN n.cap IS NOT NULL AND floor(GREATEST(n.left_before, 0) * (100 - n.buf) / 100) > n.cap
                          THEN format(', capped at max_qty %s', n.cap) ELSE '' END
                  || format(': shows %s', n.quantity)
                  || CASE WHEN n.quantity < n.normal_qty
                          THEN format(' (cut by %s for higher priorities: with the pool to itself it would show %s)',
                                      n.normal_qty - n.quantity, n.normal_qty)
                          ELSE '' END
              END
      FROM n
     ORDER BY n.prio, n.channel_id;
END
$$;
COMMENT ON FUNCTION omnichan.explain_allocation(int) IS
'Why each channel shows what it shows for a product: every term of available-to-sell, the buffer, the cap, the mode, and who was cut by the low-stock waterfall.';

REVOKE ALL ON FUNCTION omnichan.ats_bulk(int[], int[], boolean, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.ats(int, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.allocate_bulk(int[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.allocate(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.explain_allocation(int) FROM PUBLIC;

-- ats_bulk and allocate_bulk run as the extension's owner (they read
-- omnichan.order_inbox, which a reader role cannot see), so a role granted
-- omnichan.grant_read() sees quantities, never order data.

-------------------------------------------------------------------------------
-- Change capture
--
-- Statement-level triggers (omnichan.capture, in C) on Odoo's stock and sale
-- tables and on omnichan's policy tables append the ids of the products whose
-- available-to-sell may have moved to omnichan.stock_dirty_log: one INSERT per
-- statement, never a row the same transaction already recorded, and nothing
-- at all when only unwatched columns changed.  The log has no index and no
-- unique key, so concurrent Odoo writers never wait for each other on it.
-- The worker folds the log into the coalesced set omnichan.stock_dirty (one
-- row per product) and claims from it with FOR UPDATE SKIP LOCKED.
-- Product id 0 means "every product" (a channel's settings changed).
-------------------------------------------------------------------------------

CREATE TABLE omnichan.stock_dirty_log (
    product_id      int NOT NULL,
    logged_at       timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE omnichan.stock_dirty_log IS
'Append-only log of products whose available-to-sell may have changed, written by the change-capture triggers; folded into omnichan.stock_dirty by omnichan.dirty_fold(). Product 0 = every product.';

CREATE TABLE omnichan.stock_dirty (
    product_id          int PRIMARY KEY,
    dirty_since         timestamptz NOT NULL,
    generation          bigint NOT NULL DEFAULT 1,
    claim_id            uuid,
    claimed_at          timestamptz,
    claimed_generation  bigint,
    CHECK ((claim_id IS NULL) = (claimed_at IS NULL))
);
COMMENT ON TABLE omnichan.stock_dirty IS
'Coalesced set of products to recompute and push (one row per product; 0 = every product). generation counts the times it was dirtied; a claim is acknowledged only if no new change arrived meanwhile.';
CREATE INDEX stock_dirty_unclaimed_idx ON omnichan.stock_dirty (dirty_since, product_id)
    WHERE claim_id IS NULL;

CREATE FUNCTION omnichan.capture()
RETURNS trigger
LANGUAGE C SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'omnichan_capture';
COMMENT ON FUNCTION omnichan.capture() IS
'Change-capture trigger function (AFTER ... FOR EACH STATEMENT with transition tables): records the products a statement may have changed.';

CREATE FUNCTION omnichan.capture_wakeups(OUT wakeups bigint, OUT last_wakeup timestamptz,
                                         OUT capture_errors bigint, OUT worker_pid int)
RETURNS record
LANGUAGE C STRICT VOLATILE
AS 'MODULE_PATHNAME', 'omnichan_capture_wakeups';
COMMENT ON FUNCTION omnichan.capture_wakeups() IS
'Shared-memory counters of this database: commits that recorded changes (each woke the worker), the last one, captures skipped because omnichan''s objects were broken, and the worker''s pid (0 = none).';

-- The triggers omnichan keeps on each table, one per event.
CREATE FUNCTION omnichan._capture_spec()
RETURNS TABLE (table_name text, event text, trigger_name text, transition text, required boolean)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT t.table_name, e.event,
           'omnichan_capture_' || pg_catalog.lower(e.event),
           CASE e.event WHEN 'INSERT' THEN 'NEW TABLE AS omnichan_new'
                        WHEN 'DELETE' THEN 'OLD TABLE AS omnichan_old'
                        ELSE 'OLD TABLE AS omnichan_old NEW TABLE AS omnichan_new' END,
           t.required
      FROM (VALUES ('public.stock_quant', '{INSERT,UPDATE,DELETE}'::text[], true),
                   ('public.stock_move', '{INSERT,UPDATE,DELETE}', true),
                   ('public.sale_order_line', '{INSERT,UPDATE,DELETE}', true),
                   ('public.sale_order', '{UPDATE}', true),
                   ('public.product_product', '{UPDATE}', true),
                   ('public.product_template', '{UPDATE}', true),
                   ('public.mrp_bom', '{INSERT,UPDATE,DELETE}', false),
                   ('public.mrp_bom_line', '{INSERT,UPDATE,DELETE}', false),
                   ('omnichan.product_policy', '{INSERT,UPDATE,DELETE}', true),
                   ('omnichan.product_channel_policy', '{INSERT,UPDATE,DELETE}', true),
                   ('omnichan.channel', '{INSERT,UPDATE,DELETE}', true),
                   ('omnichan.order_inbox', '{UPDATE}', true),
                   ('omnichan.order_inbox_line', '{INSERT,UPDATE,DELETE}', true),
                   ('omnichan.listing', '{INSERT,UPDATE}', true))
           AS t (table_name, events, required)
     CROSS JOIN LATERAL pg_catalog.unnest(t.events) AS e (event)
$$;
COMMENT ON FUNCTION omnichan._capture_spec() IS
'Internal: the change-capture triggers omnichan keeps (required = false: the table belongs to an optional Odoo module, e.g. mrp).';

CREATE VIEW omnichan.capture_status AS
SELECT s.table_name, s.event, s.trigger_name,
       pg_catalog.to_regclass(s.table_name) IS NOT NULL AS table_exists,
       t.oid IS NOT NULL AS trigger_present,
       s.required
  FROM omnichan._capture_spec() s
  LEFT JOIN pg_catalog.pg_trigger t
         ON t.tgrelid = pg_catalog.to_regclass(s.table_name) AND t.tgname = s.trigger_name;
COMMENT ON VIEW omnichan.capture_status IS
'Every change-capture trigger omnichan needs and whether it is in place (Odoo module upgrades can recreate tables; omnichan.capture_install() puts missing triggers back).';

-- Create the missing triggers; returns how many it created.  Triggers on
-- Odoo's tables are marked as depending on the extension so that DROP
-- EXTENSION removes them.
CREATE FUNCTION omnichan.capture_install()
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s record;
    created int := 0;
BEGIN
    FOR s IN SELECT * FROM omnichan.capture_status
              WHERE table_exists AND NOT trigger_present
              ORDER BY table_name, event
    LOOP
        EXECUTE format('CREATE TRIGGER %I AFTER %s ON %s REFERENCING %s FOR EACH STATEMENT EXECUTE FUNCTION omnichan.capture()',
                       s.trigger_name, s.event, s.table_name::regclass, (
                           SELECT c.transition FROM omnichan._capture_spec() c
                            WHERE c.table_name = s.table_name AND c.event = s.event));
        IF s.table_name NOT LIKE 'omnichan.%' THEN
            EXECUTE format('ALTER TRIGGER %I ON %s DEPENDS ON EXTENSION omnichan',
                           s.trigger_name, s.table_name::regclass);
        END IF;
        created := created + 1;
    END LOOP;
    RETURN created;
END
$$;
COMMENT ON FUNCTION omnichan.capture_install() IS
'Create the change-capture triggers that are missing (see omnichan.capture_status); returns the number created.';

SELECT omnichan.capture_install();

-- Fold the log into the coalesced set; returns the number of log rows folded.
CREATE FUNCTION omnichan.dirty_fold(max_rows int DEFAULT 100000)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    folded bigint;
BEGIN
    WITH moved AS (
        DELETE FROM omnichan.stock_dirty_log l
         WHERE l.ctid = ANY (ARRAY(SELECT x.ctid FROM omnichan.stock_dirty_log x
                                    LIMIT max_rows FOR UPDATE SKIP LOCKED))
        RETURNING l.product_id, l.logged_at
    ), agg AS (
        SELECT m.product_id, min(m.logged_at) AS since, count(*) AS n
          FROM moved m GROUP BY m.product_id
    ), ins AS (
        INSERT INTO omnichan.stock_dirty AS d (product_id, dirty_since)
        SELECT a.product_id, a.since FROM agg a ORDER BY a.product_id
        ON CONFLICT (product_id) DO UPDATE
           SET generation = d.generation + 1,
               dirty_since = LEAST(d.dirty_since, excluded.dirty_since)
    )
    SELECT COALESCE(sum(agg.n), 0) INTO folded FROM agg;
    RETURN folded;
END
$$;
COMMENT ON FUNCTION omnichan.dirty_fold(int) IS
'Move up to max_rows rows of omnichan.stock_dirty_log into the coalesced set omnichan.stock_dirty (rows locked by another folder are skipped).';

-- Kits that contain any of the given products, at any depth.
CREATE FUNCTION omnichan.kits_containing(product_ids int[])
RETURNS SETOF int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF pg_catalog.to_regclass('public.mrp_bom_line') IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
        WITH RECURSIVE k (id) AS (
            SELECT pg_catalog.unnest($1)
            UNION
            SELECT pp.id
              FROM k
              JOIN public.mrp_bom_line bl ON bl.product_id = k.id
              JOIN public.mrp_bom b ON b.id = bl.bom_id AND b.active AND b.type = 'phantom'
              JOIN public.product_product pp
                ON b.product_id = pp.id OR (b.product_id IS NULL AND pp.product_tmpl_id = b.product_tmpl_id))
        SELECT k.id FROM k WHERE k.id <> ALL ($1)
    $q$ USING product_ids;
END
$$;
COMMENT ON FUNCTION omnichan.kits_containing(int[]) IS
'Kit products (phantom bills of materials, nested too) whose available-to-sell depends on any of the given products.';

-- Claim up to max_products dirty products (oldest first) for one consumer.
CREATE FUNCTION omnichan.dirty_claim(max_products int DEFAULT 1000,
                                     lease interval DEFAULT '5 minutes')
RETURNS TABLE (claim_id uuid, product_id int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid uuid := pg_catalog.gen_random_uuid();
    claimed int[];
BEGIN
    IF max_products IS NULL OR max_products < 1 THEN
        RAISE EXCEPTION 'max_products must be at least 1' USING ERRCODE = '22023';
    END IF;
    PERFORM omnichan.dirty_fold();
    -- The picked rows are materialized once: as an IN (subquery) a cached
    -- generic plan may re-run the locking subquery per row of the set.  They
    -- are updated through the primary key (= ANY of their array), never by
    -- a join: stock_dirty is a queue, and statistics taken while it was
    -- empty (reltuples 0) make the planner expect one row, so a join to the
    -- picked rows became a nested loop comparing each of them with every
    -- dirty row (100k dirty products: 45 s per claim of 5,000).
    WITH pick AS MATERIALIZED (
        SELECT s.product_id FROM omnichan.stock_dirty s
         WHERE s.claim_id IS NULL OR s.claimed_at < pg_catalog.now() - lease
         ORDER BY s.dirty_since, s.product_id
         LIMIT max_products
           FOR UPDATE SKIP LOCKED
    ), c AS (
        UPDATE omnichan.stock_dirty d
           SET claim_id = cid, claimed_at = pg_catalog.now(), claimed_generation = d.generation
         WHERE d.product_id = ANY (ARRAY(SELECT pick.product_id FROM pick))
        RETURNING d.product_id
    )
    SELECT pg_catalog.array_agg(c.product_id ORDER BY c.product_id) INTO claimed FROM c;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    RETURN QUERY
        SELECT cid, x.id FROM pg_catalog.unnest(claimed) AS x (id)
        UNION
        SELECT cid, k FROM omnichan.kits_containing(claimed) AS k;
END
$$;
COMMENT ON FUNCTION omnichan.dirty_claim(int, interval) IS
'Fold the log, then claim up to max_products dirty products nobody holds (or whose lease expired), oldest first, and return them with the kits that contain them, under one claim id. Commit, do the work, then omnichan.dirty_ack(claim_id).';

CREATE FUNCTION omnichan.dirty_ack(claim uuid)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    done int;
BEGIN
    -- lock the claim's rows in product order, the order dirty_fold() updates
    -- them in: a concurrent fold and this ack never wait for each other in
    -- a cycle (deadlock)
    PERFORM 1 FROM omnichan.stock_dirty d WHERE d.claim_id = claim
      ORDER BY d.product_id FOR UPDATE;
    DELETE FROM omnichan.stock_dirty
     WHERE claim_id = claim AND generation = claimed_generation;
    GET DIAGNOSTICS done = ROW_COUNT;
    -- dirtied again while claimed: back in the queue
    UPDATE omnichan.stock_dirty
       SET claim_id = NULL, claimed_at = NULL, claimed_generation = NULL
     WHERE claim_id = claim;
    RETURN done;
END
$$;
COMMENT ON FUNCTION omnichan.dirty_ack(uuid) IS
'Acknowledge a claim: its products leave the dirty set, except those changed again since the claim, which go back to the queue. Returns the number removed.';

CREATE FUNCTION omnichan.dirty_release(claim uuid)
RETURNS int
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    -- rows locked in product order first, as in dirty_ack()
    SELECT 1 FROM omnichan.stock_dirty d WHERE d.claim_id = claim
     ORDER BY d.product_id FOR UPDATE;
    WITH r AS (
        UPDATE omnichan.stock_dirty
           SET claim_id = NULL, claimed_at = NULL, claimed_generation = NULL
         WHERE claim_id = claim
        RETURNING 1)
    SELECT pg_catalog.count(*)::int FROM r
$$;
COMMENT ON FUNCTION omnichan.dirty_release(uuid) IS
'Give a claim back without doing the work (its products stay dirty). Returns the number released.';

CREATE VIEW omnichan.dirty_backlog AS
SELECT (SELECT pg_catalog.count(*) FROM (
            SELECT d.product_id FROM omnichan.stock_dirty d
             UNION
            SELECT l.product_id FROM omnichan.stock_dirty_log l) u)  AS products,
       (SELECT pg_catalog.count(*) FROM omnichan.stock_dirty d WHERE d.claim_id IS NOT NULL) AS claimed,
       (SELECT pg_catalog.count(*) FROM omnichan.stock_dirty_log) AS unfolded_log_rows,
       EXISTS (SELECT 1 FROM omnichan.stock_dirty d WHERE d.product_id = 0)
         OR EXISTS (SELECT 1 FROM omnichan.stock_dirty_log l WHERE l.product_id = 0) AS all_products,
       pg_catalog.now() - LEAST((SELECT pg_catalog.min(d.dirty_since) FROM omnichan.stock_dirty d),
                                (SELECT pg_catalog.min(l.logged_at) FROM omnichan.stock_dirty_log l)) AS oldest_age,
       w.wakeups, w.last_wakeup, w.capture_errors,
       (SELECT pg_catalog.count(*) FROM omnichan.capture_status s
         WHERE s.table_exists AND NOT s.trigger_present) AS missing_triggers
  FROM omnichan.capture_wakeups() w;
COMMENT ON VIEW omnichan.dirty_backlog IS
'The change-capture backlog of this database: products waiting to be recomputed and pushed (all_products: a channel changed), claimed ones, the oldest change''s age, commit wake-ups, skipped captures and missing triggers.';

REVOKE ALL ON FUNCTION omnichan.capture() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.capture_wakeups() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan._capture_spec() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.capture_install() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.dirty_fold(int) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.kits_containing(int[]) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.dirty_claim(int, interval) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.dirty_ack(uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.dirty_release(uuid) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Sync runtime
--
-- The sync worker of each database (src/worker.c) sends the outbound
-- requests queued in omnichan.job through its HTTP engine (src/http.c):
-- a job is claimed (FOR UPDATE SKIP LOCKED) and the claim committed, the
-- request is sent, and its outcome is recorded in a new transaction.  A job
-- found 'running' when a worker starts was interrupted by a crash: it is
-- queued again (jobs are idempotent by design).  Every attempt is logged in
-- omnichan.sync_log (bounded retention).  Per-channel state (pause, circuit
-- breaker, schedule, last results) is in omnichan.channel_state.
-------------------------------------------------------------------------------

-- A job's operation and URL are checked where they are written (INSERT, or
-- an UPDATE that sets them), by their domains: a CHECK constraint of the
-- table would run its regular expressions again on every state change of
-- every job (the worker updates each job twice per attempt).  Same
-- constraint names and SQLSTATE (23514) as table constraints.
CREATE DOMAIN omnichan.job_operation AS text
    CONSTRAINT job_operation_check CHECK (VALUE ~ '^[a-z][a-z0-9_]{0,39}$');
CREATE DOMAIN omnichan.job_url AS text
    CONSTRAINT job_url_check
    CHECK (VALUE ~* '^https?://[^/@[:space:]]+(/[^[:space:]]*)?$' AND pg_catalog.length(VALUE) <= 8192);

CREATE TABLE omnichan.job (
    -- (half-full leaf pages: each state change adds a version of the key)
    id                  bigserial PRIMARY KEY WITH (fillfactor = 50),
    channel_id          int REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    operation           omnichan.job_operation NOT NULL DEFAULT 'http',
    method              text NOT NULL
                        CHECK (method IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD')),
    url                 omnichan.job_url NOT NULL,
    headers             jsonb NOT NULL DEFAULT '{}'
                        CHECK (pg_catalog.jsonb_typeof(headers) = 'object'),
    body                bytea CHECK (pg_catalog.octet_length(body) <= 67108864),
    state               text NOT NULL DEFAULT 'queued'
                        CHECK (state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')),
    attempts            int NOT NULL DEFAULT 0,
    max_attempts        int NOT NULL DEFAULT 8 CHECK (max_attempts BETWEEN 1 AND 100),
    not_before          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_at          timestamptz NOT NULL DEFAULT pg_catalog.now(),
    started_at          timestamptz,
    finished_at         timestamptz,
    response_status     int,
    response_headers    jsonb,
    response_body       bytea,
    error               text
);
COMMENT ON TABLE omnichan.job IS
'Outbound requests, durable: queued -> running (claim committed before sending) -> succeeded | failed | cancelled, or back to queued with a later not_before for a retry.';
-- Few indexes: every state change of a job is a non-HOT update (state is in
-- the partial indexes' predicates) that inserts the new row version into
-- each index whose predicate it satisfies.  Jobs queued or running per
-- channel (backlogs; also the interrupted jobs a starting worker re-queues):
CREATE INDEX job_channel_idx ON omnichan.job (channel_id) WHERE state IN ('queued', 'running');
-- the worker's claim: groups of (channel, operation) and their next jobs
CREATE INDEX job_queue_group_idx ON omnichan.job ((COALESCE(channel_id, 0)), operation, not_before, id)
    WHERE state = 'queued';

CREATE TABLE omnichan.sync_log (
    id              bigserial PRIMARY KEY,
    at              timestamptz NOT NULL DEFAULT pg_catalog.now(),
    channel_id      int,
    job_id          bigint,
    operation       text NOT NULL,
    method          text NOT NULL,
    url             text NOT NULL,
    attempt         int NOT NULL,
    status          int,
    duration_ms     double precision NOT NULL,
    outcome         text NOT NULL CHECK (outcome IN ('succeeded', 'retry', 'failed')),
    error           text
);
COMMENT ON TABLE omnichan.sync_log IS
'Every request attempt: channel, operation, redacted URL, HTTP status, duration, attempt, outcome and error. Rows older than omnichan.sync_log_retention are deleted by the worker.';
CREATE INDEX sync_log_at_idx ON omnichan.sync_log (at);
-- failed attempts per channel (channel_status.errors_last_hour): the
-- successful ones, nearly all of them, are not indexed
CREATE INDEX sync_log_channel_idx ON omnichan.sync_log (channel_id, at) WHERE outcome <> 'succeeded';

CREATE TABLE omnichan.channel_state (
    channel_id              int PRIMARY KEY REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    paused                  boolean NOT NULL DEFAULT false,
    circuit                 text NOT NULL DEFAULT 'closed'
                            CHECK (circuit IN ('closed', 'open', 'half_open')),
    circuit_opened_at       timestamptz,
    consecutive_failures    int NOT NULL DEFAULT 0,
    last_push_at            timestamptz,
    last_pull_at            timestamptz,
    last_success_at         timestamptz,
    last_error              text,
    last_error_at           timestamptz,
    next_push_at            timestamptz,
    next_pull_at            timestamptz,
    full_resync_requested_at timestamptz,
    order_cursor            timestamptz
);
COMMENT ON TABLE omnichan.channel_state IS
'Runtime state of each channel, kept by the sync worker and the control functions.';

CREATE TABLE omnichan.rate_limit (
    channel_id      int REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    kind            text REFERENCES omnichan.channel_kind (kind),
    operation       text NOT NULL CHECK (operation ~ '^([a-z][a-z0-9_]{0,39}|\*)$'),
    rate            double precision NOT NULL CHECK (rate > 0 AND rate <= 100000),
    burst           int NOT NULL CHECK (burst BETWEEN 1 AND 100000),
    max_concurrency int CHECK (max_concurrency BETWEEN 1 AND 256),
    CHECK ((channel_id IS NULL) <> (kind IS NULL))
);
COMMENT ON TABLE omnichan.rate_limit IS
'Token buckets: rate (requests per second) and burst, per marketplace kind (defaults) or per channel (overrides), per operation (''*'' = any operation of that kind or channel). max_concurrency on a ''*'' row caps the requests in flight.';
CREATE UNIQUE INDEX rate_limit_key_idx ON omnichan.rate_limit
    (COALESCE(channel_id, 0), COALESCE(kind, ''), operation);

-- Defaults from the marketplaces' documented limits (see docs/runtime.md).
INSERT INTO omnichan.rate_limit (kind, operation, rate, burst, max_concurrency) VALUES
    ('amazon', '*', 5, 10, 4),
    ('amazon', 'order_pull', 0.0167, 20, NULL),
    ('amazon', 'feed', 0.0083, 15, NULL),
    ('shopify', '*', 2, 40, 4),
    ('ebay', '*', 10, 20, 4),
    ('walmart', '*', 5, 10, 4),
    ('tiktok', '*', 50, 50, 8),
    ('etsy', '*', 10, 10, 4),
    ('lazada', '*', 20, 20, 4);

SELECT pg_catalog.pg_extension_config_dump('omnichan.rate_limit', 'WHERE channel_id IS NOT NULL');

CREATE TABLE omnichan.long_operation (
    id              bigserial PRIMARY KEY,
    channel_id      int REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    operation       text NOT NULL,
    total           bigint CHECK (total >= 0),     -- NULL: not known (yet)
    done            bigint NOT NULL DEFAULT 0 CHECK (done >= 0),
    started_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    finished_at     timestamptz
);
COMMENT ON TABLE omnichan.long_operation IS
'Long operations and how far they got; see the omnichan.progress view. full_resync: started_at = the time it was requested (omnichan.full_resync), total = the listings to push; a newer request closes the running row (finished_at set, done as reached) and starts a new one. order_backfill: a pull over more than an hour of orders (set_order_cursor to an older date, a first pull, catching up), done = orders read, total = the marketplace''s count when it gives one (NULL: unknown); finished at 100 % when complete, where it got when the pull stopped or a newer backfill started.';
CREATE INDEX long_operation_channel_idx ON omnichan.long_operation (channel_id, operation, started_at);

-- Ask the current transaction to wake the worker when it commits.
CREATE FUNCTION omnichan._wake_on_commit()
RETURNS void
LANGUAGE C VOLATILE
AS 'MODULE_PATHNAME', 'omnichan_wake_on_commit';
COMMENT ON FUNCTION omnichan._wake_on_commit() IS
'Internal: the worker of this database is woken when the current transaction commits.';

-- the channel of a name, or a clear error
CREATE FUNCTION omnichan._channel_id(name text)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int;
BEGIN
    SELECT c.id INTO cid FROM omnichan.channel c WHERE c.name = _channel_id.name;
    IF cid IS NULL THEN
        RAISE EXCEPTION 'channel "%" does not exist', _channel_id.name
            USING ERRCODE = '42704',
                  HINT = 'The channels are listed in omnichan.channel.';
    END IF;
    RETURN cid;
END
$$;

CREATE FUNCTION omnichan.http_enqueue(method text, url text,
                                      headers jsonb DEFAULT '{}',
                                      body bytea DEFAULT NULL,
                                      channel text DEFAULT NULL,
                                      operation text DEFAULT 'http',
                                      max_attempts int DEFAULT 8,
                                      not_before timestamptz DEFAULT NULL)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    jid bigint;
    h record;
BEGIN
    IF method IS NULL OR upper(method) NOT IN ('GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD') THEN
        RAISE EXCEPTION 'method must be one of GET, POST, PUT, PATCH, DELETE, HEAD'
            USING ERRCODE = '22023';
    END IF;
    IF url IS NULL OR url !~* '^https?://[^/@[:space:]]+(/[^[:space:]]*)?$' THEN
        RAISE EXCEPTION 'url must be an http or https URL without credentials'
            USING ERRCODE = '22023',
                  DETAIL = 'Only the http and https protocols are allowed; user:password@ is refused.',
                  HINT = 'Put credentials in headers, or in omnichan''s channel credentials.';
    END IF;
    IF headers IS NULL OR jsonb_typeof(headers) <> 'object' THEN
        RAISE EXCEPTION 'headers must be a JSON object of header names to string values'
            USING ERRCODE = '22023';
    END IF;
    FOR h IN SELECT * FROM jsonb_each(headers) LOOP
        IF jsonb_typeof(h.value) <> 'string' OR h.key !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,128}$'
           OR (h.value #>> '{}') ~ '[\r\n]' THEN
            RAISE EXCEPTION 'header "%" is not a valid header name with a string value', h.key
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    INSERT INTO omnichan.job (channel_id, operation, method, url, headers, body, max_attempts, not_before)
    VALUES (CASE WHEN channel IS NULL THEN NULL ELSE omnichan._channel_id(channel) END,
            operation, upper(method), url, headers, body, max_attempts,
            COALESCE(not_before, now()))
    RETURNING id INTO jid;
    PERFORM omnichan._wake_on_commit();
    RETURN jid;
END
$$;
COMMENT ON FUNCTION omnichan.http_enqueue(text, text, jsonb, bytea, text, text, int, timestamptz) IS
'Queue an outbound HTTP request (durable; sent by the sync worker after commit, with retries, rate limits and the channel''s circuit breaker). Returns the job id; the outcome is in omnichan.job.';

CREATE FUNCTION omnichan.rate_limit_set(channel text, operation text, rate double precision,
                                        burst int, max_concurrency int DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
BEGIN
    IF operation IS NULL OR operation !~ '^([a-z][a-z0-9_]{0,39}|\*)$' THEN
        RAISE EXCEPTION 'operation must be "*" or a lower-case name' USING ERRCODE = '22023';
    END IF;
    IF rate IS NULL OR rate <= 0 OR rate > 100000 THEN
        RAISE EXCEPTION 'rate must be between 0 (excluded) and 100000 requests per second'
            USING ERRCODE = '22003';
    END IF;
    IF burst IS NULL OR burst < 1 OR burst > 100000 THEN
        RAISE EXCEPTION 'burst must be between 1 and 100000' USING ERRCODE = '22003';
    END IF;
    IF max_concurrency IS NOT NULL AND (max_concurrency < 1 OR max_concurrency > 256) THEN
        RAISE EXCEPTION 'max_concurrency must be between 1 and 256' USING ERRCODE = '22003';
    END IF;
    DELETE FROM omnichan.rate_limit r WHERE r.channel_id = cid AND r.operation = rate_limit_set.operation;
    INSERT INTO omnichan.rate_limit (channel_id, operation, rate, burst, max_concurrency)
    VALUES (cid, rate_limit_set.operation, rate, burst, max_concurrency);
    PERFORM omnichan._wake_on_commit();
END
$$;
COMMENT ON FUNCTION omnichan.rate_limit_set(text, text, double precision, int, int) IS
'Override the token bucket (rate per second, burst) of one operation of a channel (''*'': every operation), and on ''*'' its maximum requests in flight.';

-- Control functions: each writes channel_state and wakes the worker at commit.
CREATE FUNCTION omnichan._control(name text, what text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(name);
BEGIN
    INSERT INTO omnichan.channel_state AS s (channel_id) VALUES (cid)
    ON CONFLICT (channel_id) DO NOTHING;
    CASE what
    WHEN 'sync_now' THEN
        UPDATE omnichan.channel_state SET next_push_at = now(), next_pull_at = now() WHERE channel_id = cid;
    WHEN 'pause' THEN
        UPDATE omnichan.channel_state SET paused = true WHERE channel_id = cid;
    WHEN 'resume' THEN
        UPDATE omnichan.channel_state SET paused = false, next_push_at = now(), next_pull_at = now(),
               circuit = 'closed', circuit_opened_at = NULL, consecutive_failures = 0
         WHERE channel_id = cid;
    WHEN 'full_resync' THEN
        UPDATE omnichan.channel_state SET full_resync_requested_at = now(), next_push_at = now()
         WHERE channel_id = cid;
    END CASE;
    PERFORM omnichan._wake_on_commit();
END
$$;

CREATE FUNCTION omnichan.sync_now(channel text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT omnichan._control(channel, 'sync_now') $$;
COMMENT ON FUNCTION omnichan.sync_now(text) IS 'Push stock and pull orders of the channel now, without waiting for its next scheduled run.';

CREATE FUNCTION omnichan.pause(channel text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT omnichan._control(channel, 'pause') $$;
COMMENT ON FUNCTION omnichan.pause(text) IS 'Stop sending anything to the channel (queued work waits) until omnichan.resume.';

CREATE FUNCTION omnichan.resume(channel text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT omnichan._control(channel, 'resume') $$;
COMMENT ON FUNCTION omnichan.resume(text) IS 'Resume a paused channel (and close its circuit breaker); its work runs now.';

CREATE FUNCTION omnichan.full_resync(channel text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ SELECT omnichan._control(channel, 'full_resync') $$;
COMMENT ON FUNCTION omnichan.full_resync(text) IS 'Push every listing of the channel, changed or not.';

CREATE FUNCTION omnichan.set_order_cursor(channel text, since timestamptz)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
BEGIN
    IF since IS NULL OR since > now() THEN
        RAISE EXCEPTION 'the order cursor must be a time in the past' USING ERRCODE = '22023';
    END IF;
    INSERT INTO omnichan.channel_state AS s (channel_id, order_cursor, next_pull_at)
    VALUES (cid, since, now())
    ON CONFLICT (channel_id) DO UPDATE SET order_cursor = since, next_pull_at = now();
    PERFORM omnichan._wake_on_commit();
END
$$;
COMMENT ON FUNCTION omnichan.set_order_cursor(text, timestamptz) IS
'Re-pull the channel''s orders changed since the given time (existing orders are updated, never duplicated).';

-- rate and ETA over the time elapsed so far (up to now while running, so a
-- stalled operation shows its rate falling and its ETA growing)
CREATE VIEW omnichan.progress AS
SELECT p.id, c.name AS channel, p.operation, p.done, p.total,
       CASE WHEN p.total IS NULL THEN NULL WHEN p.total = 0 THEN 100.0
            ELSE LEAST(100.0, round(100.0 * p.done / p.total, 1)) END AS percent,
       CASE WHEN e.secs > 0 THEN round(p.done / e.secs, 2) END AS per_second,
       CASE WHEN p.finished_at IS NOT NULL THEN interval '0'
            WHEN p.done > 0 AND e.secs > 0 AND p.total IS NOT NULL
            THEN pg_catalog.make_interval(secs => (GREATEST(p.total - p.done, 0) * e.secs / p.done)::double precision) END AS eta,
       p.started_at, p.updated_at, p.finished_at
  FROM omnichan.long_operation p
  CROSS JOIN LATERAL (SELECT extract(epoch FROM COALESCE(p.finished_at, now()) - p.started_at) AS secs) e
  LEFT JOIN omnichan.channel c ON c.id = p.channel_id;
COMMENT ON VIEW omnichan.progress IS
'Long operations (full_resync, order_backfill): done of total, percent, rate (per second since the start, up to now while running) and estimated time left (0 once finished); total, percent and ETA are NULL while the total is not known. A finished row below 100 % stopped before its end (replaced by a newer request, or a pull that failed and whose window the next pull covers again).';

REVOKE ALL ON FUNCTION omnichan._wake_on_commit() FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan._channel_id(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.http_enqueue(text, text, jsonb, bytea, text, text, int, timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.rate_limit_set(text, text, double precision, int, int) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan._control(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.sync_now(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.pause(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.resume(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.full_resync(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.set_order_cursor(text, timestamptz) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Listings, credentials and stock push
--
-- A listing maps an Odoo product to a channel's listing: the channel's SKU and
-- the ids its API needs (validated per kind, setting_spec scope 'listing:KIND').
-- The worker keeps target_qty (what allocation says the channel should show)
-- up to date from the dirty set (omnichan.refresh_targets), and pushes the
-- listings whose target differs from what the marketplace last accepted
-- (pushed_qty), through the channel's connector (src/connectors/).  One push
-- per listing is in flight at a time (push_job_id); a listing whose target
-- moved while its push was in flight is pushed again afterwards.
--
-- Credentials are readable by the extension's owner only, never shown, and
-- not dumped by pg_dump (the table is not a configuration table): after a
-- restore they are set again, or kept in a file outside the database.
-------------------------------------------------------------------------------

ALTER TABLE omnichan.job ADD COLUMN payload jsonb;
COMMENT ON COLUMN omnichan.job.payload IS
'What a connector job carries (e.g. the listings and quantities of a stock push); interpreted by the connector when the job completes.';

-- The text of the sync worker's claim statement (src/worker.c, ClaimSql):
-- the isolation test of the claim (test/specs/job_claim.spec) runs it rather
-- than a copy that could drift from it.
CREATE FUNCTION omnichan._claim_statement()
RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'omnichan_claim_statement';
COMMENT ON FUNCTION omnichan._claim_statement() IS
'Internal (tests): the statement the sync worker claims jobs with; parameters $1 channel ids int4[] (0 = none), $2 operations text[], $3 how many int4[], $4 now timestamptz, $5 ready bool[], one element per (channel, operation) group.';
REVOKE ALL ON FUNCTION omnichan._claim_statement() FROM PUBLIC;

INSERT INTO omnichan.setting_spec
    (scope, key, type, min_value, max_value, pattern, choices, format, required, default_value, default_text, description)
VALUES
    ('listing', 'sku', 'string', NULL, NULL, '^[^[:cntrl:]]{1,255}$', NULL,
     'a SKU of 1 to 255 printable characters', true, NULL, NULL,
     'The listing''s SKU on the channel (seller SKU).'),
    ('listing:amazon', 'asin', 'string', NULL, NULL, '^[A-Z0-9]{10}$', NULL,
     'an ASIN such as "B000123456"', false, NULL, NULL, 'Amazon product (ASIN), for reference.'),
    ('listing:amazon', 'product_type', 'string', NULL, NULL, '^[A-Z0-9_]{1,100}$', NULL,
     'an Amazon product type such as "PRODUCT"', false, '"PRODUCT"', NULL,
     'productType sent with Listings Items patches and JSON_LISTINGS_FEED messages.'),
    ('listing:shopify', 'inventory_item_id', 'string', NULL, NULL, '^gid://shopify/InventoryItem/[0-9]+$', NULL,
     'an inventory item global id such as "gid://shopify/InventoryItem/30322695"', true, NULL, NULL,
     'Inventory item whose available quantity is set at the channel''s location.'),
    ('listing:ebay', 'offer_id', 'string', NULL, NULL, '^[0-9]{1,20}$', NULL,
     'a numeric offer id', false, NULL, NULL,
     'Published offer whose availableQuantity is set too (optional).'),
    ('listing:tiktok', 'product_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
     'a numeric TikTok product id', true, NULL, NULL, 'TikTok Shop product id.'),
    ('listing:tiktok', 'sku_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
     'a numeric TikTok SKU id', true, NULL, NULL, 'TikTok Shop SKU id inside the product.'),
    ('listing:tiktok', 'warehouse_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
     'a numeric TikTok warehouse id', false, NULL, NULL,
     'TikTok Shop warehouse of the SKU (inventory[].warehouse_id); absent = the shop''s only warehouse.'),
    ('listing:etsy', 'listing_id', 'integer', 1, NULL, NULL, NULL, NULL, true, NULL, NULL,
     'Etsy listing id.'),
    ('listing:etsy', 'product_id', 'integer', 1, NULL, NULL, NULL, NULL, true, NULL, NULL,
     'Etsy product id (one variation of the listing''s inventory).'),
    ('listing:lazada', 'sku_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
     'a numeric Lazada SkuId', false, NULL, NULL, 'Lazada/Daraz SkuId, sent with SellerSku when known.'),
    ('listing:lazada', 'item_id', 'string', NULL, NULL, '^[0-9]{1,25}$', NULL,
     'a numeric Lazada ItemId', false, NULL, NULL, 'Lazada/Daraz ItemId, sent with SellerSku when known.');

CREATE TABLE omnichan.listing (
    id              bigserial PRIMARY KEY,
    channel_id      int NOT NULL REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    product_id      int NOT NULL REFERENCES public.product_product (id) ON DELETE CASCADE,
    sku             text NOT NULL CHECK (pg_catalog.length(sku) BETWEEN 1 AND 255),
    external        jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(external) = 'object'),
    target_qty      int CHECK (target_qty >= 0),
    target_at       timestamptz,
    pushed_qty      int,
    pushed_at       timestamptz,
    push_job_id     bigint,
    last_error      text,
    last_error_at   timestamptz,
    error_class     text CHECK (error_class IN ('retry', 'fix', 'credentials')),
    retry_at        timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    push_due        boolean NOT NULL GENERATED ALWAYS AS
                    (push_job_id IS NULL AND target_qty IS DISTINCT FROM pushed_qty) STORED,
    UNIQUE (channel_id, sku)
);
COMMENT ON TABLE omnichan.listing IS
'Odoo product <-> channel listing: SKU and API ids, the quantity allocation wants shown (target_qty), the last quantity the marketplace accepted (pushed_qty) and the marketplace''s last error.';
CREATE INDEX listing_product_idx ON omnichan.listing (product_id);
CREATE INDEX listing_push_due_idx ON omnichan.listing (channel_id, id) WHERE push_due;
COMMENT ON COLUMN omnichan.listing.push_due IS
'The listing waits for a push: its target differs from what the marketplace last accepted and no push of it is in flight. Kept by PostgreSQL; a column rather than the expression so that its statistics tell the planner how few listings are due (it estimates "target_qty IS DISTINCT FROM pushed_qty" at 99.5 % of the table whatever the data).';
SELECT pg_catalog.pg_extension_config_dump('omnichan.listing', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.listing_id_seq', '');

CREATE TABLE omnichan.listing_staging (
    channel_id      int NOT NULL REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    sku             text NOT NULL CHECK (pg_catalog.length(sku) BETWEEN 1 AND 255),
    external        jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(external) = 'object'),
    note            text,
    PRIMARY KEY (channel_id, sku)
);
COMMENT ON TABLE omnichan.listing_staging IS
'Channel SKUs (with their API ids) to link by Odoo internal reference with omnichan.link_by_sku(); rows that could not be linked keep a note saying why.';

CREATE TABLE omnichan.credential (
    channel_id      int PRIMARY KEY REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    secrets         jsonb CHECK (pg_catalog.jsonb_typeof(secrets) = 'object'),
    secrets_file    text CHECK (secrets_file ~ '^/'),
    updated_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK ((secrets IS NULL) <> (secrets_file IS NULL))
);
COMMENT ON TABLE omnichan.credential IS
'Marketplace credentials per channel, inline or as the path of a JSON file on the database server. Readable by the extension''s owner only; never dumped.';
REVOKE ALL ON omnichan.credential FROM PUBLIC;

-- credential keys per kind: required ones, then optional ones
CREATE TABLE omnichan.credential_spec (
    kind            text NOT NULL REFERENCES omnichan.channel_kind (kind),
    key             text NOT NULL,
    required        boolean NOT NULL,
    description     text NOT NULL,
    PRIMARY KEY (kind, key)
);
INSERT INTO omnichan.credential_spec VALUES
    ('amazon', 'lwa_client_id', true, 'Login with Amazon client id of the SP-API application.'),
    ('amazon', 'lwa_client_secret', true, 'Login with Amazon client secret.'),
    ('amazon', 'refresh_token', true, 'LWA refresh token of the seller''s authorization.'),
    ('shopify', 'access_token', true, 'Admin API access token (X-Shopify-Access-Token).'),
    ('ebay', 'client_id', true, 'eBay application client id.'),
    ('ebay', 'client_secret', true, 'eBay application client secret.'),
    ('ebay', 'refresh_token', true, 'User refresh token (authorization-code grant).'),
    ('walmart', 'client_id', true, 'Walmart Marketplace client id.'),
    ('walmart', 'client_secret', true, 'Walmart Marketplace client secret.'),
    ('tiktok', 'app_key', true, 'TikTok Shop app key.'),
    ('tiktok', 'app_secret', true, 'TikTok Shop app secret (request signing).'),
    ('tiktok', 'access_token', true, 'Shop access token (x-tts-access-token).'),
    ('tiktok', 'refresh_token', false, 'Refresh token, to renew the access token.'),
    ('etsy', 'keystring', true, 'Etsy API keystring (x-api-key, OAuth client id).'),
    ('etsy', 'shared_secret', true, 'Etsy API shared secret.'),
    ('etsy', 'refresh_token', true, 'OAuth refresh token.'),
    ('lazada', 'app_key', true, 'Lazada/Daraz app key.'),
    ('lazada', 'app_secret', true, 'Lazada/Daraz app secret (request signing).'),
    ('lazada', 'access_token', true, 'Seller access token.'),
    ('lazada', 'refresh_token', false, 'Refresh token, to renew the access token.');

-- Check a credentials object against its kind; never quotes a value.
CREATE FUNCTION omnichan._credentials_check(p_kind text, p_secrets jsonb)
RETURNS void
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    k text;
    valid text := (SELECT string_agg(key, ', ' ORDER BY key) FROM omnichan.credential_spec WHERE kind = p_kind);
BEGIN
    IF p_secrets IS NULL OR jsonb_typeof(p_secrets) <> 'object' THEN
        RAISE EXCEPTION 'credentials must be a JSON object' USING ERRCODE = '22023';
    END IF;
    FOR k IN SELECT jsonb_object_keys(p_secrets) ORDER BY 1 LOOP
        IF NOT EXISTS (SELECT 1 FROM omnichan.credential_spec s WHERE s.kind = p_kind AND s.key = k) THEN
            RAISE EXCEPTION 'unknown credential "%" for kind "%"', k, p_kind
                USING ERRCODE = '22023', HINT = format('Valid credentials for kind "%s": %s.', p_kind, valid);
        END IF;
        IF jsonb_typeof(p_secrets -> k) <> 'string' OR length(p_secrets ->> k) NOT BETWEEN 1 AND 8192 THEN
            RAISE EXCEPTION 'credential "%" must be a non-empty string of at most 8192 characters', k
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    FOR k IN SELECT s.key FROM omnichan.credential_spec s WHERE s.kind = p_kind AND s.required ORDER BY 1 LOOP
        IF NOT p_secrets ? k THEN
            RAISE EXCEPTION 'credential "%" is required for kind "%"', k, p_kind
                USING ERRCODE = '22023', HINT = format('Valid credentials for kind "%s": %s.', p_kind, valid);
        END IF;
    END LOOP;
END
$$;

CREATE FUNCTION omnichan.credentials_set(channel text, secrets jsonb)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
BEGIN
    PERFORM omnichan._credentials_check((SELECT c.kind FROM omnichan.channel c WHERE c.id = cid), secrets);
    INSERT INTO omnichan.credential AS cr (channel_id, secrets, secrets_file, updated_at)
    VALUES (cid, secrets, NULL, now())
    ON CONFLICT (channel_id) DO UPDATE SET secrets = excluded.secrets, secrets_file = NULL, updated_at = now();
    PERFORM omnichan._wake_on_commit();
END
$$;
COMMENT ON FUNCTION omnichan.credentials_set(text, jsonb) IS
'Store the marketplace credentials of a channel (keys per kind: omnichan.credential_spec). Readable by the extension owner only; never shown or logged; not dumped by pg_dump.';

CREATE FUNCTION omnichan.credentials_set_file(channel text, path text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    content jsonb;
BEGIN
    IF path IS NULL OR path !~ '^/' THEN
        RAISE EXCEPTION 'the credentials file must be an absolute path on the database server'
            USING ERRCODE = '22023';
    END IF;
    BEGIN
        content := pg_read_file(path)::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RAISE EXCEPTION 'could not read credentials from file "%"', path
            USING ERRCODE = '58030',
                  HINT = 'The file must exist, be readable by the database server''s operating-system user, and hold one JSON object.';
    END;
    PERFORM omnichan._credentials_check((SELECT c.kind FROM omnichan.channel c WHERE c.id = cid), content);
    INSERT INTO omnichan.credential AS cr (channel_id, secrets, secrets_file, updated_at)
    VALUES (cid, NULL, path, now())
    ON CONFLICT (channel_id) DO UPDATE SET secrets = NULL, secrets_file = excluded.secrets_file, updated_at = now();
    PERFORM omnichan._wake_on_commit();
END
$$;
COMMENT ON FUNCTION omnichan.credentials_set_file(text, text) IS
'Keep a channel''s credentials in a JSON file on the database server (outside the database, so never in a dump); checked now and read by the worker when it needs them.';

CREATE FUNCTION omnichan.credentials_clear(channel text)
RETURNS void
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$ DELETE FROM omnichan.credential WHERE channel_id = omnichan._channel_id(channel) $$;

-- what is configured, without the secrets
CREATE VIEW omnichan.credential_status AS
SELECT c.name AS channel, c.kind,
       CASE WHEN cr.channel_id IS NULL THEN 'missing'
            WHEN cr.secrets_file IS NOT NULL THEN 'file' ELSE 'stored' END AS source,
       CASE WHEN cr.secrets IS NOT NULL
            THEN (SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(cr.secrets) k) END AS keys,
       cr.updated_at
  FROM omnichan.channel c
  LEFT JOIN omnichan.credential cr ON cr.channel_id = c.id;
COMMENT ON VIEW omnichan.credential_status IS
'Which channels have credentials and where they come from (key names only, never values).';

-- Link a product to a listing of a channel (insert or update by SKU).
CREATE FUNCTION omnichan.listing_link(channel text, product_id int, external jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    ckind text := (SELECT c.kind FROM omnichan.channel c WHERE c.id = cid);
    scopes text[] := ARRAY['listing', 'listing:' || ckind];
    k text;
    clean jsonb := '{}';
    lid bigint;
BEGIN
    PERFORM omnichan._product_check(product_id);
    PERFORM omnichan._setting_keys_check(scopes, external, 'external');
    FOR k IN SELECT s.key FROM omnichan.setting_spec s WHERE s.scope = ANY (scopes) ORDER BY s.key LOOP
        IF external ? k AND jsonb_typeof(external -> k) <> 'null' THEN
            clean := clean || jsonb_build_object(k, omnichan._setting_value(
                (SELECT s.scope FROM omnichan.setting_spec s WHERE s.scope = ANY (scopes) AND s.key = k), k, external -> k));
        ELSIF (SELECT s.required FROM omnichan.setting_spec s WHERE s.scope = ANY (scopes) AND s.key = k) THEN
            RAISE EXCEPTION 'setting "%" is required for a % listing', k, ckind
                USING ERRCODE = '22023';
        END IF;
    END LOOP;
    INSERT INTO omnichan.listing AS l (channel_id, product_id, sku, external)
    VALUES (cid, product_id, clean ->> 'sku', clean - 'sku')
    ON CONFLICT (channel_id, sku) DO UPDATE
       SET product_id = excluded.product_id, external = excluded.external,
           target_qty = CASE WHEN l.product_id = excluded.product_id THEN l.target_qty END,
           last_error = NULL, last_error_at = NULL, error_class = NULL, retry_at = NULL
    RETURNING l.id INTO lid;
    RETURN lid;
END
$$;
COMMENT ON FUNCTION omnichan.listing_link(text, int, jsonb) IS
'Link an Odoo product to a channel listing: external holds the channel SKU ("sku") and the ids the marketplace API needs (setting_spec scope listing:KIND). Returns the listing id; relinking a SKU updates it.';

CREATE FUNCTION omnichan.listing_unlink(channel text, sku text)
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
BEGIN
    DELETE FROM omnichan.listing l WHERE l.channel_id = cid AND l.sku = listing_unlink.sku;
    RETURN FOUND;
END
$$;
COMMENT ON FUNCTION omnichan.listing_unlink(text, text) IS
'Stop syncing a listing (the marketplace keeps the last quantity it received: exclude the product first to publish 0). Returns whether it existed.';

CREATE FUNCTION omnichan.link_by_sku(channel text)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    s record;
    pids int[];
    linked int := 0;
BEGIN
    FOR s IN SELECT * FROM omnichan.listing_staging st WHERE st.channel_id = cid ORDER BY st.sku LOOP
        SELECT array_agg(p.id ORDER BY p.id) INTO pids
          FROM public.product_product p
          JOIN public.product_template t ON t.id = p.product_tmpl_id
         WHERE p.default_code = s.sku AND p.active AND t.active;
        IF pids IS NULL THEN
            UPDATE omnichan.listing_staging SET note = 'no active Odoo product has this internal reference'
             WHERE channel_id = cid AND sku = s.sku;
        ELSIF cardinality(pids) > 1 THEN
            UPDATE omnichan.listing_staging
               SET note = format('%s Odoo products have this internal reference: %s', cardinality(pids), pids)
             WHERE channel_id = cid AND sku = s.sku;
        ELSE
            BEGIN
                PERFORM omnichan.listing_link(channel, pids[1], s.external || jsonb_build_object('sku', s.sku));
                DELETE FROM omnichan.listing_staging WHERE channel_id = cid AND sku = s.sku;
                linked := linked + 1;
            EXCEPTION WHEN invalid_parameter_value OR numeric_value_out_of_range THEN
                UPDATE omnichan.listing_staging SET note = SQLERRM WHERE channel_id = cid AND sku = s.sku;
            END;
        END IF;
    END LOOP;
    RETURN linked;
END
$$;
COMMENT ON FUNCTION omnichan.link_by_sku(text) IS
'Link every SKU of omnichan.listing_staging for the channel to the active Odoo product whose internal reference (default_code) equals it; linked rows leave the staging table, the others keep a note saying why. Returns the number linked.';

-- Bring listing targets up to date with the dirty set: claim a batch of dirty
-- products, compute their allocation, write target_qty where it changed, and
-- acknowledge the claim, in the caller's transaction.  Returns the number of
-- products processed (0: nothing was dirty).
CREATE FUNCTION omnichan.refresh_targets(max_products int DEFAULT 5000)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid uuid;
    pids int[];
    everything boolean;
BEGIN
    SELECT min(c.claim_id::text)::uuid, array_agg(c.product_id), bool_or(c.product_id = 0)
      INTO cid, pids, everything
      FROM omnichan.dirty_claim(max_products, '10 minutes') c;
    IF cid IS NULL THEN
        RETURN 0;
    END IF;
    UPDATE omnichan.listing l
       SET target_qty = a.quantity, target_at = now()
      FROM omnichan.allocate_bulk(CASE WHEN everything THEN NULL
                                       ELSE ARRAY(SELECT DISTINCT li.product_id FROM omnichan.listing li
                                                   WHERE li.product_id = ANY (pids)) END) a
     WHERE l.product_id = a.product_id AND l.channel_id = a.channel_id
       AND l.target_qty IS DISTINCT FROM a.quantity;
    PERFORM omnichan.dirty_ack(cid);
    RETURN cardinality(pids);
END
$$;
COMMENT ON FUNCTION omnichan.refresh_targets(int) IS
'Internal (sync worker): recompute the allocation of a batch of dirty products and update the listings'' target quantities. Returns how many products were processed.';

CREATE VIEW omnichan.listing_status AS
SELECT c.name AS channel, l.sku, l.product_id, p.default_code, l.target_qty, l.pushed_qty, l.pushed_at,
       l.push_job_id IS NOT NULL AS pushing,
       l.target_qty IS DISTINCT FROM l.pushed_qty AS out_of_date,
       l.last_error, l.error_class, l.last_error_at, l.retry_at
  FROM omnichan.listing l
  JOIN omnichan.channel c ON c.id = l.channel_id
  JOIN public.product_product p ON p.id = l.product_id;
COMMENT ON VIEW omnichan.listing_status IS
'Every listing: what it should show, what the marketplace last accepted and when, whether a push is in flight, and the marketplace''s last error.';

-- (defined here: it counts the listings waiting to be pushed)
CREATE VIEW omnichan.channel_status AS
SELECT c.id AS channel_id, c.name AS channel, c.kind,
       CASE WHEN NOT c.active THEN 'inactive'
            WHEN COALESCE(s.paused, false) THEN 'paused'
            WHEN s.circuit = 'open' THEN 'circuit open'
            WHEN s.circuit = 'half_open' THEN 'circuit half-open'
            ELSE 'active' END AS state,
       s.last_push_at, s.last_pull_at, s.last_success_at,
       -- how stale the marketplace's stock is: since the oldest target it
       -- has not accepted yet was set (0: every listing shows its target)
       COALESCE(now() - (SELECT min(COALESCE(li.target_at, li.created_at)) FROM omnichan.listing li
                          WHERE li.channel_id = c.id AND li.target_qty IS NOT NULL
                            AND li.target_qty IS DISTINCT FROM li.pushed_qty),
                interval '0') AS lag,
       (SELECT count(*) FROM omnichan.job j WHERE j.channel_id = c.id AND j.state IN ('queued', 'running')) AS backlog,
       (SELECT count(*) FROM omnichan.sync_log l
         WHERE l.channel_id = c.id AND l.at > now() - interval '1 hour' AND l.outcome <> 'succeeded') AS errors_last_hour,
       -- the next push or pull, whichever comes first; a real-time channel
       -- (push_interval 0) pushes on commit, not at its next_push_at (the
       -- time of its last push): its next pull
       LEAST(CASE WHEN c.push_interval > interval '0' THEN s.next_push_at END, s.next_pull_at) AS next_run,
       s.last_error, s.last_error_at, s.consecutive_failures,
       (SELECT count(*) FROM omnichan.listing li
         WHERE li.channel_id = c.id AND li.push_job_id IS NULL
           AND li.target_qty IS DISTINCT FROM li.pushed_qty) AS listings_to_push
  FROM omnichan.channel c
  LEFT JOIN omnichan.channel_state s ON s.channel_id = c.id;
COMMENT ON VIEW omnichan.channel_status IS
'Health of every channel: state (active, paused, circuit open, inactive), last push/pull and success, lag (how stale the marketplace''s stock is: the time since the oldest listing target it has not accepted yet was set; 0 when every listing shows its target), queued requests, failed attempts and retries in the last hour, next run (push or pull; a real-time channel''s next pull), last error, listings waiting to be pushed (e.g. while paused: pushes are built when sent, with the quantities of that moment).';

REVOKE ALL ON FUNCTION omnichan._credentials_check(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.credentials_set(text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.credentials_set_file(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.credentials_clear(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.listing_link(text, int, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.listing_unlink(text, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.link_by_sku(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION omnichan.refresh_targets(int) FROM PUBLIC;

-- the listing table exists now: its change-capture triggers too
SELECT omnichan.capture_install();

-- The credentials of a channel for the sync worker (inline, or read from
-- their file); NULL with a warning that names the channel, never a value,
-- when the file cannot be read.
CREATE FUNCTION omnichan._credentials_read(p_channel_id int)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cr omnichan.credential;
BEGIN
    SELECT * INTO cr FROM omnichan.credential WHERE channel_id = p_channel_id;
    IF cr.secrets_file IS NULL THEN
        RETURN cr.secrets;
    END IF;
    BEGIN
        RETURN pg_read_file(cr.secrets_file)::jsonb;
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'could not read the credentials file of channel %', p_channel_id
            USING HINT = 'Check that the file named in omnichan.credential exists and holds one JSON object.';
        RETURN NULL;
    END;
END
$$;
REVOKE ALL ON FUNCTION omnichan._credentials_read(int) FROM PUBLIC;

-------------------------------------------------------------------------------
-- Order inbox and materialization
--
-- Marketplace connectors write normalized orders with omnichan.inbox_upsert
-- (one row per (channel, external id), never a duplicate).  They count as
-- pending demand at once (ATS section).  omnichan.materialize_orders turns
-- them into Odoo quotations with the rows and columns Odoo itself writes
-- (traces 01, 02 and 08 of the Odoo reference): customer and delivery
-- address, sale_order with the sale.order sequence, lines (products,
-- shipping, gift wrap, promotions), taxes, channel tag and the stored totals
-- computed as Odoo computes them.  Within the same transaction the inbox
-- order gets its sale_order_id, so the demand moves from the inbox to the
-- quotation and is never counted twice.  An order that cannot be
-- materialized is held with its error and retried (retry_orders); nothing is
-- dropped.
--
-- Confirmation, cancellation and invoicing are done by Odoo itself: omnichan
-- queues them in omnichan.odoo_action and a scheduled action installed in
-- Odoo's tables (odoo_bridge_install) runs Odoo's public methods on them.
-- docs/orders.md describes the whole flow.
-------------------------------------------------------------------------------

-- the normalized order
ALTER TABLE omnichan.order_inbox
    DROP CONSTRAINT order_inbox_state_check,
    ADD CONSTRAINT order_inbox_state_check
        CHECK (state IN ('received', 'held', 'materialized', 'cancelled', 'attention')),
    ADD COLUMN marketplace_status text CHECK (pg_catalog.length(marketplace_status) <= 64),
    ADD COLUMN buyer_id        text CHECK (pg_catalog.length(buyer_id) BETWEEN 1 AND 255),
    ADD COLUMN buyer_name      text CHECK (pg_catalog.length(buyer_name) <= 255),
    ADD COLUMN buyer_email     text CHECK (pg_catalog.length(buyer_email) <= 254),
    ADD COLUMN buyer_phone     text CHECK (pg_catalog.length(buyer_phone) <= 64),
    ADD COLUMN ship_name       text CHECK (pg_catalog.length(ship_name) <= 255),
    ADD COLUMN ship_street     text CHECK (pg_catalog.length(ship_street) <= 255),
    ADD COLUMN ship_street2    text CHECK (pg_catalog.length(ship_street2) <= 255),
    ADD COLUMN ship_city       text CHECK (pg_catalog.length(ship_city) <= 128),
    ADD COLUMN ship_zip        text CHECK (pg_catalog.length(ship_zip) <= 32),
    ADD COLUMN ship_state      text CHECK (pg_catalog.length(ship_state) <= 128),
    ADD COLUMN ship_country    text CHECK (ship_country ~ '^[A-Z]{2}$'),
    ADD COLUMN ship_phone      text CHECK (pg_catalog.length(ship_phone) <= 64),
    ADD COLUMN bill_name       text CHECK (pg_catalog.length(bill_name) <= 255),
    ADD COLUMN bill_street     text CHECK (pg_catalog.length(bill_street) <= 255),
    ADD COLUMN bill_street2    text CHECK (pg_catalog.length(bill_street2) <= 255),
    ADD COLUMN bill_city       text CHECK (pg_catalog.length(bill_city) <= 128),
    ADD COLUMN bill_zip        text CHECK (pg_catalog.length(bill_zip) <= 32),
    ADD COLUMN bill_state      text CHECK (pg_catalog.length(bill_state) <= 128),
    ADD COLUMN bill_country    text CHECK (bill_country ~ '^[A-Z]{2}$'),
    ADD COLUMN bill_phone      text CHECK (pg_catalog.length(bill_phone) <= 64),
    ADD COLUMN currency        text CHECK (currency ~ '^[A-Z]{3}$'),
    ADD COLUMN ordered_at      timestamptz,
    ADD COLUMN items_total     numeric CHECK (items_total >= 0),
    ADD COLUMN shipping_total  numeric CHECK (shipping_total >= 0),
    ADD COLUMN giftwrap_total  numeric CHECK (giftwrap_total >= 0),
    ADD COLUMN discount_total  numeric CHECK (discount_total >= 0),
    ADD COLUMN tax_total       numeric CHECK (tax_total >= 0),
    ADD COLUMN order_total     numeric CHECK (order_total >= 0),
    ADD COLUMN fees            jsonb CHECK (pg_catalog.jsonb_typeof(fees) IN ('object', 'array')),
    ADD COLUMN sla_flags       text[] NOT NULL DEFAULT '{}'
        CHECK (pg_catalog.cardinality(sla_flags) <= 16),
    ADD COLUMN priority        boolean NOT NULL DEFAULT false,
    ADD COLUMN gift_message    text CHECK (pg_catalog.length(gift_message) <= 4000),
    ADD COLUMN raw             jsonb CHECK (pg_catalog.octet_length(raw::text) <= 1048576),
    ADD COLUMN last_error      text,
    ADD COLUMN last_error_at   timestamptz,
    ADD COLUMN attempts        int NOT NULL DEFAULT 0,
    ADD COLUMN partner_id      int REFERENCES public.res_partner (id) ON DELETE SET NULL,
    ADD COLUMN odoo_amount_total numeric,
    ADD COLUMN materialized_at timestamptz,
    ADD COLUMN invalid_order   jsonb,
    ADD COLUMN cancel_job_id   bigint,
    ADD COLUMN cancel_reported_at timestamptz,
    ADD COLUMN cancel_report_error text;
COMMENT ON COLUMN omnichan.order_inbox.invalid_order IS
'The last version of the order the marketplace sent that omnichan.inbox_upsert refused (the order is held with the reason in last_error); retry_orders submits it again.';
COMMENT ON COLUMN omnichan.order_inbox.cancel_reported_at IS
'When the cancellation of the Odoo order by the merchant was reported to the marketplace (cancel_report_error: why it could not be).';

COMMENT ON COLUMN omnichan.order_inbox.state IS
'received: waiting to be materialized; held: could not be materialized (last_error says why; retry_orders); materialized: sale_order_id is the Odoo order; cancelled: cancelled by the marketplace (the Odoo order, if any, is cancelled through the bridge); attention: cancelled by the marketplace after shipment, for a person to handle.';
COMMENT ON COLUMN omnichan.order_inbox.raw IS
'The marketplace''s order payload, stored verbatim (at most 1 MiB as JSON text).';
COMMENT ON COLUMN omnichan.order_inbox.priority IS
'A strict SLA flag (channel setting priority_sla) is set: the Odoo deliveries get priority ''1'' (urgent), set by the bridge.';
COMMENT ON COLUMN omnichan.order_inbox.odoo_amount_total IS
'amount_total of the Odoo quotation as materialized, to compare with order_total (what the marketplace charged).';
CREATE INDEX order_inbox_todo_idx ON omnichan.order_inbox (channel_id, received_at, id)
    WHERE state = 'received';

ALTER TABLE omnichan.order_inbox_line
    ADD COLUMN line_external_id text CHECK (pg_catalog.length(line_external_id) <= 255),
    ADD COLUMN unit_price      numeric NOT NULL DEFAULT 0 CHECK (unit_price >= 0),
    ADD COLUMN tax             numeric NOT NULL DEFAULT 0 CHECK (tax >= 0),
    ADD COLUMN discount        numeric NOT NULL DEFAULT 0 CHECK (discount >= 0),
    ADD COLUMN sale_order_line_id int REFERENCES public.sale_order_line (id) ON DELETE SET NULL;
COMMENT ON COLUMN omnichan.order_inbox_line.unit_price IS
'Unit price the buyer paid, tax included or not as the channel''s tax_id says (price_include).';
COMMENT ON COLUMN omnichan.order_inbox_line.discount IS
'Promotion amount on the line (total for the line, positive); promotions become one Odoo line on the channel''s discount_product_id.';

-- what happened to each inbox order (updates after materialization included)
CREATE TABLE omnichan.order_event (
    id              bigserial PRIMARY KEY,
    inbox_id        bigint NOT NULL REFERENCES omnichan.order_inbox (id) ON DELETE CASCADE,
    at              timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    kind            text NOT NULL CHECK (kind IN ('received', 'updated', 'held', 'retried', 'materialized',
                                                  'total_mismatch', 'cancelled', 'attention',
                                                  'changed_after_materialization', 'action_requested')),
    detail          jsonb
);
CREATE INDEX order_event_inbox_idx ON omnichan.order_event (inbox_id, id);
COMMENT ON TABLE omnichan.order_event IS
'History of each inbox order: received, updated, held (with the error), materialized, cancellations, changes the marketplace made after the Odoo order existed.';

-- the Odoo customer of a marketplace buyer
CREATE TABLE omnichan.customer_link (
    channel_id      int NOT NULL REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    buyer_id        text NOT NULL CHECK (pg_catalog.length(buyer_id) BETWEEN 1 AND 255),
    partner_id      int NOT NULL REFERENCES public.res_partner (id) ON DELETE CASCADE,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (channel_id, buyer_id)
);
CREATE INDEX customer_link_partner_idx ON omnichan.customer_link (partner_id);
-- Odoo has no index on res_partner.email_normalized: without this one, finding
-- a new buyer's partner by e-mail (_materialize_set) reads every partner.
CREATE INDEX IF NOT EXISTS omnichan_res_partner_email_idx ON public.res_partner (email_normalized)
    WHERE parent_id IS NULL;
ALTER INDEX public.omnichan_res_partner_email_idx DEPENDS ON EXTENSION omnichan;
COMMENT ON TABLE omnichan.customer_link IS
'Marketplace buyer id (per channel) -> Odoo customer (res_partner), so a repeat buyer is never created twice.';

-- routing: ship-to country -> warehouse, per channel
CREATE TABLE omnichan.routing_rule (
    channel_id      int NOT NULL REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    country_code    text NOT NULL CHECK (country_code ~ '^[A-Z]{2}$'),
    warehouse_id    int NOT NULL REFERENCES public.stock_warehouse (id) ON DELETE CASCADE,
    priority        int NOT NULL DEFAULT 10 CHECK (priority >= 1),
    PRIMARY KEY (channel_id, country_code, warehouse_id)
);
COMMENT ON TABLE omnichan.routing_rule IS
'Warehouse an order ships from by ship-to country (lowest priority number first, active warehouses only); orders of other countries ship from the channel''s default_warehouse_id. Write it with omnichan.routing_rule_set / routing_rule_clear.';

-- what omnichan asks Odoo to do (run by the bridge: odoo_bridge_install)
CREATE TABLE omnichan.odoo_action (
    id              bigserial PRIMARY KEY,
    sale_order_id   int NOT NULL REFERENCES public.sale_order (id) ON DELETE CASCADE,
    inbox_id        bigint REFERENCES omnichan.order_inbox (id) ON DELETE SET NULL,
    action          text NOT NULL CHECK (action IN ('confirm', 'cancel', 'invoice')),
    priority        boolean NOT NULL DEFAULT false,
    requested_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    done_at         timestamptz,
    result          text,
    error           text
);
CREATE UNIQUE INDEX odoo_action_pending_idx ON omnichan.odoo_action (sale_order_id, action)
    WHERE done_at IS NULL;
CREATE INDEX odoo_action_todo_idx ON omnichan.odoo_action (id) WHERE done_at IS NULL;
COMMENT ON TABLE omnichan.odoo_action IS
'Queue of what Odoo must do to sale orders: confirm (action_confirm), cancel (action_cancel without the warning wizard), invoice (confirm, then _create_invoices and action_post). Run by Odoo''s own scheduled action (omnichan.odoo_bridge_install), which writes done_at, result and error.';

-- A cancellation Odoo refused (a locked or delivered order, a rule of the
-- merchant's): the inbox said 'cancelled', Odoo's order is not; the order
-- needs the merchant's attention.  Security definer: Odoo's own role, which
-- runs the bridge, may only update odoo_action.
CREATE FUNCTION omnichan._odoo_action_refused()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    msg text := 'Odoo could not cancel the order: ' || left(NEW.error, 1000);
BEGIN
    UPDATE omnichan.order_inbox i SET state = 'attention', last_error = msg, last_error_at = clock_timestamp()
     WHERE i.id = NEW.inbox_id AND i.state = 'cancelled' AND i.sale_order_id = NEW.sale_order_id;
    IF FOUND THEN
        INSERT INTO omnichan.order_event (inbox_id, kind, detail)
        VALUES (NEW.inbox_id, 'attention', jsonb_build_object('error', msg, 'odoo_action_id', NEW.id));
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION omnichan._odoo_action_refused() FROM PUBLIC;
CREATE TRIGGER odoo_action_refused AFTER UPDATE OF error ON omnichan.odoo_action
    FOR EACH ROW WHEN (NEW.action = 'cancel' AND NEW.error IS NOT NULL AND OLD.error IS NULL
                       AND NEW.inbox_id IS NOT NULL)
    EXECUTE FUNCTION omnichan._odoo_action_refused();

-- the Odoo records of the installed bridge
CREATE TABLE omnichan.odoo_bridge (
    singleton       boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    action_id       int NOT NULL,
    cron_id         int NOT NULL,
    user_id         int NOT NULL,
    installed_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE omnichan.odoo_bridge IS
'The ir_act_server and ir_cron rows omnichan.odoo_bridge_install wrote in Odoo''s tables (at most one bridge).';

SELECT pg_catalog.pg_extension_config_dump('omnichan.order_event', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.order_event_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.customer_link', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.routing_rule', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.odoo_action', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.odoo_action_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('omnichan.odoo_bridge', '');

-- Order settings of every kind (kept in channel.settings, validated by
-- channel_create/channel_alter like the kind settings).  No stored default:
-- _order_settings() fills the defaults when reading.
INSERT INTO omnichan.setting_spec
    (scope, key, type, min_value, max_value, pattern, choices, format, required, default_value, default_text, description)
SELECT k.kind, s.key, s.type, s.min_value, s.max_value, s.pattern, s.choices, s.format, false, NULL, s.default_text, s.description
  FROM omnichan.channel_kind k
 CROSS JOIN (VALUES
    ('order_workflow', 'string', NULL::numeric, NULL::numeric, NULL, '{quotation,confirm,confirm_invoice}'::text[], NULL,
     'quotation',
     'What becomes of a marketplace order in Odoo: a quotation only; a confirmed order (Odoo confirms it: delivery created); or a confirmed and invoiced order (the invoice is created and posted by Odoo).'),
    ('auto_confirm', 'boolean', NULL, NULL, NULL, NULL, NULL,
     'true',
     'With order_workflow confirm or confirm_invoice: true confirms each order as soon as it is materialized; false holds it for review until omnichan.order_release() (or a person confirms it in Odoo).'),
    ('tax_id', 'integer', 1, NULL, NULL, NULL, NULL,
     'none: lines without tax',
     'Odoo sale tax (account_tax.id, a percent tax of the channel''s company) applied to every line of the channel''s orders; its price_include flag says whether marketplace prices include it.'),
    ('shipping_product_id', 'integer', 1, NULL, NULL, NULL, NULL,
     'none: an order with shipping charges is held',
     'Odoo product (product_product.id) of the shipping-charge line.'),
    ('giftwrap_product_id', 'integer', 1, NULL, NULL, NULL, NULL,
     'none: an order with gift-wrap charges is held',
     'Odoo product (product_product.id) of the gift-wrap line.'),
    ('discount_product_id', 'integer', 1, NULL, NULL, NULL, NULL,
     'none: an order with promotions is held',
     'Odoo product (product_product.id) of the promotion line (negative price).'),
    ('salesperson_id', 'integer', 1, NULL, NULL, NULL, NULL,
     'the administrator (base.user_admin)',
     'Odoo user (res_users.id) set as salesperson of the channel''s orders; its sales team becomes the order''s team.'),
    ('order_naming', 'string', NULL, NULL, NULL, '{sequence,prefix}'::text[], NULL,
     'sequence',
     'Name of the Odoo order: the next number of Odoo''s sale.order sequence (S00042), or order_prefix followed by the marketplace order id.'),
    ('order_prefix', 'string', NULL, NULL, '^[A-Za-z0-9][A-Za-z0-9/_.#-]{0,15}$', NULL,
     'a prefix of 1 to 16 letters, digits, "/", "_", ".", "#" or "-" such as "AMZ-"',
     'the channel name in upper case followed by "-"',
     'Prefix of the Odoo order name when order_naming is "prefix".'),
    ('priority_sla', 'string[]', NULL, NULL, '^[a-z0-9_]{1,32}$', NULL,
     'a non-empty array of SLA flags such as ["prime", "next_day"]',
     '["prime", "premium", "next_day", "same_day", "two_day"]',
     'SLA flags of a marketplace order that make its Odoo delivery urgent (stock_picking.priority ''1'').')
 ) AS s(key, type, min_value, max_value, pattern, choices, format, default_text, description);

-- The order settings of a channel with their defaults (PL/pgSQL: its plan is
-- kept across calls).
CREATE FUNCTION omnichan._order_settings(p_channel_id int)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT jsonb_build_object(
               'order_workflow', 'quotation',
               'auto_confirm', true,
               'order_naming', 'sequence',
               'order_prefix', upper(c.name) || '-',
               'priority_sla', '["prime", "premium", "next_day", "same_day", "two_day"]'::jsonb)
           || jsonb_strip_nulls(jsonb_build_object(
               'order_workflow', c.settings -> 'order_workflow',
               'auto_confirm', c.settings -> 'auto_confirm',
               'tax_id', c.settings -> 'tax_id',
               'shipping_product_id', c.settings -> 'shipping_product_id',
               'giftwrap_product_id', c.settings -> 'giftwrap_product_id',
               'discount_product_id', c.settings -> 'discount_product_id',
               'salesperson_id', c.settings -> 'salesperson_id',
               'order_naming', c.settings -> 'order_naming',
               'order_prefix', c.settings -> 'order_prefix',
               'priority_sla', c.settings -> 'priority_sla'))
      FROM omnichan.channel c WHERE c.id = p_channel_id);
END
$$;

-- The Odoo records the order settings name must exist (a second check at
-- materialization time catches records deleted later).
CREATE FUNCTION omnichan._channel_order_settings_check()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    s jsonb := NEW.settings;
    k text;
    t record;
BEGIN
    IF s ? 'tax_id' THEN
        SELECT * INTO t FROM public.account_tax WHERE id = (s ->> 'tax_id')::int;
        IF NOT FOUND OR t.type_tax_use <> 'sale' OR t.company_id <> NEW.company_id
           OR t.amount_type <> 'percent' OR NOT COALESCE(t.active, false) THEN
            RAISE EXCEPTION 'setting "tax_id" must be an active percent sale tax of company %', NEW.company_id
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('The value given is %s.', s -> 'tax_id'),
                      HINT = 'Sale taxes are the account_tax rows with type_tax_use ''sale''.';
        END IF;
    END IF;
    FOREACH k IN ARRAY ARRAY['shipping_product_id', 'giftwrap_product_id', 'discount_product_id'] LOOP
        IF s ? k AND NOT EXISTS (SELECT 1 FROM public.product_product p WHERE p.id = (s ->> k)::int) THEN
            RAISE EXCEPTION 'setting "%" refers to no product', k
                USING ERRCODE = 'invalid_parameter_value',
                      DETAIL = format('There is no product_product row with id %s.', s -> k);
        END IF;
    END LOOP;
    IF s ? 'salesperson_id' AND NOT EXISTS (SELECT 1 FROM public.res_users u WHERE u.id = (s ->> 'salesperson_id')::int) THEN
        RAISE EXCEPTION 'setting "salesperson_id" refers to no user'
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('There is no res_users row with id %s.', s -> 'salesperson_id');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER channel_order_settings_check
    BEFORE INSERT OR UPDATE OF settings, company_id ON omnichan.channel
    FOR EACH ROW EXECUTE FUNCTION omnichan._channel_order_settings_check();

-- The small helpers of inbox_upsert and materialize_orders (_order_text,
-- _order_number, _order_object, _cround, _line_amounts) have no SET
-- search_path: they are called only by omnichan functions that set it (and
-- are not granted to anyone), dozens of times per order, and a SET clause
-- costs a save and restore of the setting per call (and keeps the SQL
-- function _cround from being inlined).

-- A text field of a normalized order: NULL when absent or JSON null; a JSON
-- string (or number, for ids) of at most p_max characters, trimmed, empty =
-- NULL.  Errors name the field.
CREATE FUNCTION omnichan._order_text(p_obj jsonb, p_key text, p_field text, p_max int,
                                     p_required boolean DEFAULT false, p_pattern text DEFAULT NULL,
                                     p_format text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := p_obj -> p_key;
    t text;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        t := NULL;
    ELSIF jsonb_typeof(v) = 'string' THEN
        t := NULLIF(btrim(v #>> '{}'), '');
    ELSIF jsonb_typeof(v) = 'number' THEN
        t := v::text;
    ELSE
        RAISE EXCEPTION 'order field "%" must be a string', p_field
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is a JSON %s.', jsonb_typeof(v));
    END IF;
    IF t IS NULL THEN
        IF p_required THEN
            RAISE EXCEPTION 'order field "%" is required', p_field
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        RETURN NULL;
    END IF;
    IF length(t) > p_max THEN
        RAISE EXCEPTION 'order field "%" must be at most % characters', p_field, p_max
            USING ERRCODE = 'string_data_right_truncation',
                  DETAIL = format('The value given has %s characters.', length(t));
    END IF;
    IF t ~ '[[:cntrl:]]' AND p_field NOT IN ('gift_message') THEN
        RAISE EXCEPTION 'order field "%" must not contain control characters', p_field
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF p_pattern IS NOT NULL AND t !~ p_pattern THEN
        RAISE EXCEPTION 'order field "%" must be %', p_field, p_format
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is %s.', v);
    END IF;
    RETURN t;
END
$$;

-- A non-negative amount or quantity of a normalized order (JSON number or
-- numeric string); NULL when absent unless required.
CREATE FUNCTION omnichan._order_number(p_obj jsonb, p_key text, p_field text,
                                       p_required boolean DEFAULT false, p_positive boolean DEFAULT false)
RETURNS numeric
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := p_obj -> p_key;
    n numeric;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        IF p_required THEN
            RAISE EXCEPTION 'order field "%" is required', p_field
                USING ERRCODE = 'null_value_not_allowed';
        END IF;
        RETURN NULL;
    END IF;
    IF jsonb_typeof(v) = 'number' THEN
        n := v::numeric;
    ELSIF jsonb_typeof(v) = 'string' AND (v #>> '{}') ~ '^\s*[0-9]+(\.[0-9]+)?\s*$' THEN
        n := (v #>> '{}')::numeric;
    ELSE
        RAISE EXCEPTION 'order field "%" must be a non-negative number', p_field
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is %s.', v);
    END IF;
    IF n < 0 OR (p_positive AND n = 0) THEN
        RAISE EXCEPTION 'order field "%" must be %', p_field,
            CASE WHEN p_positive THEN 'greater than 0' ELSE 'a non-negative number' END
            USING ERRCODE = 'numeric_value_out_of_range',
                  DETAIL = format('The value given is %s.', v);
    END IF;
    IF n >= 1e12 OR scale(n) > 6 THEN
        RAISE EXCEPTION 'order field "%" must be below 10^12 with at most 6 decimals', p_field
            USING ERRCODE = 'numeric_value_out_of_range',
                  DETAIL = format('The value given is %s.', v);
    END IF;
    RETURN n;
END
$$;

-- An object of a normalized order (absent = empty), with only known keys.
CREATE FUNCTION omnichan._order_object(p_obj jsonb, p_key text, p_field text, p_keys text[])
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE
AS $$
DECLARE
    v jsonb := CASE WHEN p_key IS NULL THEN p_obj ELSE p_obj -> p_key END;
    k text;
BEGIN
    IF v IS NULL OR v = 'null'::jsonb THEN
        RETURN '{}';
    END IF;
    IF jsonb_typeof(v) <> 'object' THEN
        RAISE EXCEPTION 'order field "%" must be a JSON object', p_field
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The value given is a JSON %s.', jsonb_typeof(v));
    END IF;
    FOR k IN SELECT jsonb_object_keys(v) ORDER BY 1 LOOP
        IF NOT k = ANY (p_keys) THEN
            RAISE EXCEPTION 'unknown order field "%"', CASE WHEN p_field = '' THEN k ELSE p_field || '.' || k END
                USING ERRCODE = 'invalid_parameter_value',
                      HINT = format('Valid fields%s: %s.', CASE WHEN p_field = '' THEN '' ELSE ' of "' || p_field || '"' END,
                                    array_to_string(p_keys, ', '));
        END IF;
    END LOOP;
    RETURN v;
END
$$;

-- The warehouse an order of the channel shipping to p_country ships from:
-- the first routing rule of that country (active warehouse), else NULL
-- (= the channel's default warehouse).
-- (PL/pgSQL rather than SQL: its plan is kept across the calls of a session)
CREATE FUNCTION omnichan._route(p_channel_id int, p_country text)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN (SELECT r.warehouse_id
              FROM omnichan.routing_rule r
              JOIN public.stock_warehouse w ON w.id = r.warehouse_id AND w.active
             WHERE r.channel_id = p_channel_id AND r.country_code = p_country
             ORDER BY r.priority, r.warehouse_id
             LIMIT 1);
END
$$;

CREATE FUNCTION omnichan.routing_rule_set(channel text, country_code text, warehouse_id int, priority int DEFAULT 10)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    c omnichan.channel;
    cc text := upper(btrim(country_code));
BEGIN
    SELECT * INTO c FROM omnichan.channel ch WHERE ch.id = cid;
    IF cc IS NULL OR cc !~ '^[A-Z]{2}$' OR NOT EXISTS (SELECT 1 FROM public.res_country rc WHERE rc.code = cc) THEN
        RAISE EXCEPTION 'country "%" is not an ISO 3166 code known to Odoo', country_code
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'Countries are the res_country rows, by code (e.g. "FR").';
    END IF;
    IF warehouse_id IS NULL OR NOT warehouse_id = ANY (c.warehouse_ids) THEN
        RAISE EXCEPTION 'warehouse % is not one of the warehouses of channel "%"', warehouse_id, channel
            USING ERRCODE = 'invalid_parameter_value',
                  DETAIL = format('The channel sells the stock of warehouses %s.', c.warehouse_ids),
                  HINT = 'Add the warehouse to the channel''s warehouse_ids first (channel_alter).';
    END IF;
    IF priority IS NULL OR priority < 1 THEN
        RAISE EXCEPTION 'priority must be at least 1' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    INSERT INTO omnichan.routing_rule AS r (channel_id, country_code, warehouse_id, priority)
    VALUES (cid, cc, routing_rule_set.warehouse_id, routing_rule_set.priority)
    ON CONFLICT ON CONSTRAINT routing_rule_pkey DO UPDATE SET priority = excluded.priority;
END
$$;
COMMENT ON FUNCTION omnichan.routing_rule_set(text, text, int, int) IS
'Ship the channel''s orders to a country from a warehouse (one of the channel''s warehouse_ids); among several rules for a country the lowest priority number wins. Applies to orders received from now on.';

CREATE FUNCTION omnichan.routing_rule_clear(channel text, country_code text DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    n int;
BEGIN
    DELETE FROM omnichan.routing_rule r
     WHERE r.channel_id = cid AND (routing_rule_clear.country_code IS NULL
                                  OR r.country_code = upper(btrim(routing_rule_clear.country_code)));
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
COMMENT ON FUNCTION omnichan.routing_rule_clear(text, text) IS
'Remove the routing rules of a channel for one country (NULL: all). Returns how many were removed.';

-- Queue an Odoo action for the bridge (once while pending).
CREATE FUNCTION omnichan._odoo_action_request(p_sale_order_id int, p_inbox_id bigint, p_action text, p_priority boolean)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO omnichan.odoo_action (sale_order_id, inbox_id, action, priority)
    VALUES (p_sale_order_id, p_inbox_id, p_action, p_priority)
    ON CONFLICT (sale_order_id, action) WHERE done_at IS NULL DO NOTHING;
    IF p_inbox_id IS NOT NULL THEN
        INSERT INTO omnichan.order_event (inbox_id, kind, detail)
        VALUES (p_inbox_id, 'action_requested', jsonb_build_object('action', p_action, 'sale_order_id', p_sale_order_id));
    END IF;
END
$$;

-- Whether an Odoo order has shipped (all or part).
CREATE FUNCTION omnichan._sale_order_shipped(p_sale_order_id int)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT EXISTS (SELECT 1 FROM public.sale_order so
                    WHERE so.id = p_sale_order_id AND so.delivery_status IN ('full', 'partial'))
        OR EXISTS (SELECT 1 FROM public.stock_move m
                     JOIN public.sale_order_line l ON l.id = m.sale_line_id
                     JOIN public.stock_location d ON d.id = m.location_dest_id
                    WHERE l.order_id = p_sale_order_id AND m.state = 'done' AND d.usage = 'customer')
$$;

-- Insert or update a normalized marketplace order; returns its inbox id.
CREATE FUNCTION omnichan.inbox_upsert(channel text, "order" jsonb)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    o jsonb := "order";
    cid int := omnichan._channel_id(channel);
    s jsonb := omnichan._order_settings(cid);
    ext text;
    buyer jsonb;
    ship jsonb;
    bill jsonb;
    totals jsonb;
    addr_keys text[] := ARRAY['name', 'street', 'street2', 'city', 'zip', 'state', 'country', 'phone'];
    lines jsonb;
    line jsonb;
    ln int := 0;
    new_lines jsonb := '[]';
    flags text[] := '{}';
    f jsonb;
    cancelled boolean;
    status text;
    ordered timestamptz;
    gift text;
    cur omnichan.order_inbox;
    new_row omnichan.order_inbox;
    iid bigint;
    is_new boolean;
    changes jsonb := '{}';
    old_lines jsonb;
BEGIN
    IF o IS NULL OR jsonb_typeof(o) <> 'object' THEN
        RAISE EXCEPTION 'the order must be a JSON object' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(o::text) > 2097152 THEN
        RAISE EXCEPTION 'the order must be at most 2 MiB as JSON text' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    PERFORM omnichan._order_object(o, NULL, '', ARRAY['external_id', 'status', 'cancelled', 'ordered_at', 'currency',
        'buyer', 'shipping_address', 'billing_address', 'totals', 'fees', 'sla', 'gift_message', 'lines', 'raw']);
    ext := omnichan._order_text(o, 'external_id', 'external_id', 255, true);
    status := omnichan._order_text(o, 'status', 'status', 64);
    IF o ? 'cancelled' AND jsonb_typeof(o -> 'cancelled') NOT IN ('boolean', 'null') THEN
        RAISE EXCEPTION 'order field "cancelled" must be a boolean' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    cancelled := COALESCE((o ->> 'cancelled')::boolean, false) OR lower(COALESCE(status, '')) IN ('cancelled', 'canceled');
    buyer := omnichan._order_object(o, 'buyer', 'buyer', ARRAY['id', 'name', 'email', 'phone']);
    ship := omnichan._order_object(o, 'shipping_address', 'shipping_address', addr_keys);
    bill := omnichan._order_object(o, 'billing_address', 'billing_address', addr_keys);
    totals := omnichan._order_object(o, 'totals', 'totals', ARRAY['items', 'shipping', 'gift_wrap', 'discount', 'tax', 'total']);
    BEGIN
        ordered := (o ->> 'ordered_at')::timestamptz;
    EXCEPTION WHEN data_exception THEN
        RAISE EXCEPTION 'order field "ordered_at" must be a timestamp such as "2026-11-23T17:21:47Z"'
            USING ERRCODE = 'invalid_datetime_format', DETAIL = format('The value given is %s.', o -> 'ordered_at');
    END;
    IF o ? 'fees' AND jsonb_typeof(o -> 'fees') NOT IN ('object', 'array', 'null') THEN
        RAISE EXCEPTION 'order field "fees" must be a JSON object or array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF octet_length(COALESCE(o -> 'fees', 'null')::text) > 65536 THEN
        RAISE EXCEPTION 'order field "fees" must be at most 64 KiB as JSON text' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF o ? 'raw' AND octet_length((o -> 'raw')::text) > 1048576 THEN
        RAISE EXCEPTION 'order field "raw" must be at most 1 MiB as JSON text' USING ERRCODE = 'string_data_right_truncation';
    END IF;
    IF o ? 'sla' AND o -> 'sla' <> 'null'::jsonb THEN
        IF jsonb_typeof(o -> 'sla') <> 'array' OR jsonb_array_length(o -> 'sla') > 16 THEN
            RAISE EXCEPTION 'order field "sla" must be an array of at most 16 flags' USING ERRCODE = 'invalid_parameter_value';
        END IF;
        FOR f IN SELECT e FROM jsonb_array_elements(o -> 'sla') e LOOP
            IF jsonb_typeof(f) <> 'string' OR (f #>> '{}') !~ '^[A-Za-z0-9_]{1,32}$' THEN
                RAISE EXCEPTION 'order field "sla" must be an array of flags of 1 to 32 letters, digits or "_"'
                    USING ERRCODE = 'invalid_parameter_value', DETAIL = format('The element %s is not valid.', f);
            END IF;
            IF NOT lower(f #>> '{}') = ANY (flags) THEN
                flags := flags || lower(f #>> '{}');
            END IF;
        END LOOP;
    END IF;
    gift := omnichan._order_text(o, 'gift_message', 'gift_message', 4000);

    lines := o -> 'lines';
    IF lines IS NULL OR jsonb_typeof(lines) <> 'array' OR jsonb_array_length(lines) = 0 THEN
        RAISE EXCEPTION 'order field "lines" must be a non-empty array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_array_length(lines) > 500 THEN
        RAISE EXCEPTION 'order field "lines" must have at most 500 lines' USING ERRCODE = 'program_limit_exceeded';
    END IF;
    FOR line IN SELECT e FROM jsonb_array_elements(lines) e LOOP
        ln := ln + 1;
        PERFORM omnichan._order_object(line, NULL, format('lines[%s]', ln),
                                       ARRAY['external_id', 'sku', 'quantity', 'unit_price', 'tax', 'discount']);
        new_lines := new_lines || jsonb_build_object(
            'line_no', ln,
            'external_id', omnichan._order_text(line, 'external_id', format('lines[%s].external_id', ln), 255),
            'sku', omnichan._order_text(line, 'sku', format('lines[%s].sku', ln), 255, true),
            'quantity', omnichan._order_number(line, 'quantity', format('lines[%s].quantity', ln), true, true),
            'unit_price', omnichan._order_number(line, 'unit_price', format('lines[%s].unit_price', ln), true),
            'tax', COALESCE(omnichan._order_number(line, 'tax', format('lines[%s].tax', ln)), 0),
            'discount', COALESCE(omnichan._order_number(line, 'discount', format('lines[%s].discount', ln)), 0));
    END LOOP;

    new_row.channel_id := cid;
    new_row.external_id := ext;
    new_row.marketplace_status := status;
    new_row.buyer_id := omnichan._order_text(buyer, 'id', 'buyer.id', 255);
    new_row.buyer_name := omnichan._order_text(buyer, 'name', 'buyer.name', 255);
    new_row.buyer_email := omnichan._order_text(buyer, 'email', 'buyer.email', 254, false,
                                                '^[^@[:space:]]+@[^@[:space:]]+$', 'an e-mail address');
    new_row.buyer_phone := omnichan._order_text(buyer, 'phone', 'buyer.phone', 64);
    new_row.ship_name := omnichan._order_text(ship, 'name', 'shipping_address.name', 255);
    new_row.ship_street := omnichan._order_text(ship, 'street', 'shipping_address.street', 255);
    new_row.ship_street2 := omnichan._order_text(ship, 'street2', 'shipping_address.street2', 255);
    new_row.ship_city := omnichan._order_text(ship, 'city', 'shipping_address.city', 128);
    new_row.ship_zip := omnichan._order_text(ship, 'zip', 'shipping_address.zip', 32);
    new_row.ship_state := omnichan._order_text(ship, 'state', 'shipping_address.state', 128);
    new_row.ship_country := upper(omnichan._order_text(ship, 'country', 'shipping_address.country', 64, false,
                                                       '^[A-Za-z]{2}$', 'an ISO 3166-1 alpha-2 country code such as "FR"'));
    new_row.ship_phone := omnichan._order_text(ship, 'phone', 'shipping_address.phone', 64);
    new_row.bill_name := omnichan._order_text(bill, 'name', 'billing_address.name', 255);
    new_row.bill_street := omnichan._order_text(bill, 'street', 'billing_address.street', 255);
    new_row.bill_street2 := omnichan._order_text(bill, 'street2', 'billing_address.street2', 255);
    new_row.bill_city := omnichan._order_text(bill, 'city', 'billing_address.city', 128);
    new_row.bill_zip := omnichan._order_text(bill, 'zip', 'billing_address.zip', 32);
    new_row.bill_state := omnichan._order_text(bill, 'state', 'billing_address.state', 128);
    new_row.bill_country := upper(omnichan._order_text(bill, 'country', 'billing_address.country', 64, false,
                                                       '^[A-Za-z]{2}$', 'an ISO 3166-1 alpha-2 country code such as "FR"'));
    new_row.bill_phone := omnichan._order_text(bill, 'phone', 'billing_address.phone', 64);
    new_row.currency := upper(omnichan._order_text(o, 'currency', 'currency', 64, false,
                                                   '^[A-Za-z]{3}$', 'an ISO 4217 currency code such as "EUR"'));
    new_row.ordered_at := ordered;
    new_row.items_total := omnichan._order_number(totals, 'items', 'totals.items');
    new_row.shipping_total := omnichan._order_number(totals, 'shipping', 'totals.shipping');
    new_row.giftwrap_total := omnichan._order_number(totals, 'gift_wrap', 'totals.gift_wrap');
    new_row.discount_total := omnichan._order_number(totals, 'discount', 'totals.discount');
    new_row.tax_total := omnichan._order_number(totals, 'tax', 'totals.tax');
    new_row.order_total := omnichan._order_number(totals, 'total', 'totals.total');
    new_row.fees := NULLIF(o -> 'fees', 'null'::jsonb);
    new_row.sla_flags := flags;
    new_row.priority := flags && ARRAY(SELECT jsonb_array_elements_text(s -> 'priority_sla'));
    new_row.gift_message := gift;
    new_row.raw := COALESCE(o -> 'raw', o);
    IF new_row.ship_name IS NULL AND new_row.buyer_name IS NULL THEN
        RAISE EXCEPTION 'order field "shipping_address.name" or "buyer.name" is required'
            USING ERRCODE = 'null_value_not_allowed';
    END IF;

    -- lock the existing row, or insert the order (one statement: the row
    -- is written once)
    SELECT * INTO cur FROM omnichan.order_inbox
     WHERE channel_id = cid AND external_id = ext FOR UPDATE;
    is_new := NOT FOUND;
    IF is_new THEN
        INSERT INTO omnichan.order_inbox AS i
            (channel_id, external_id, state, marketplace_status,
             buyer_id, buyer_name, buyer_email, buyer_phone,
             ship_name, ship_street, ship_street2, ship_city, ship_zip, ship_state, ship_country, ship_phone,
             bill_name, bill_street, bill_street2, bill_city, bill_zip, bill_state, bill_country, bill_phone,
             currency, ordered_at, items_total, shipping_total, giftwrap_total, discount_total, tax_total,
             order_total, fees, sla_flags, priority, gift_message, raw, warehouse_id, updated_at)
        VALUES
            (cid, ext, CASE WHEN cancelled THEN 'cancelled' ELSE 'received' END, new_row.marketplace_status,
             new_row.buyer_id, new_row.buyer_name, new_row.buyer_email, new_row.buyer_phone,
             new_row.ship_name, new_row.ship_street, new_row.ship_street2, new_row.ship_city, new_row.ship_zip,
             new_row.ship_state, new_row.ship_country, new_row.ship_phone,
             new_row.bill_name, new_row.bill_street, new_row.bill_street2, new_row.bill_city, new_row.bill_zip,
             new_row.bill_state, new_row.bill_country, new_row.bill_phone,
             new_row.currency, new_row.ordered_at, new_row.items_total, new_row.shipping_total,
             new_row.giftwrap_total, new_row.discount_total, new_row.tax_total,
             new_row.order_total, new_row.fees, new_row.sla_flags, new_row.priority, new_row.gift_message,
             new_row.raw, omnichan._route(cid, COALESCE(new_row.ship_country, new_row.bill_country)),
             clock_timestamp())
        ON CONFLICT (channel_id, external_id) DO NOTHING
        RETURNING i.id INTO iid;
        IF iid IS NOT NULL THEN
            INSERT INTO omnichan.order_event (inbox_id, kind, detail)
            VALUES (iid, CASE WHEN cancelled THEN 'cancelled' ELSE 'received' END,
                    jsonb_build_object('status', status));
            INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity,
                                                   line_external_id, unit_price, tax, discount)
            SELECT iid, (l ->> 'line_no')::int, l ->> 'sku', li.product_id, (l ->> 'quantity')::numeric,
                   l ->> 'external_id', (l ->> 'unit_price')::numeric, (l ->> 'tax')::numeric,
                   (l ->> 'discount')::numeric
              FROM jsonb_array_elements(new_lines) l
              LEFT JOIN omnichan.listing li ON li.channel_id = cid AND li.sku = l ->> 'sku';
            RETURN iid;
        END IF;
        -- inserted meanwhile by a concurrent call: an update of that order
        is_new := false;
    END IF;
    IF cur.id IS NULL THEN
        SELECT * INTO cur FROM omnichan.order_inbox
         WHERE channel_id = cid AND external_id = ext FOR UPDATE;
    END IF;
    iid := cur.id;
    -- the same version again (overlapping pulls, retries): nothing to do
    IF cur.raw = new_row.raw AND cur.marketplace_status IS NOT DISTINCT FROM status
       AND cur.invalid_order IS NULL THEN
        RETURN iid;
    END IF;

    IF cur.sale_order_id IS NULL AND cur.state IN ('received', 'held', 'cancelled') THEN
        -- not in Odoo yet: the new version replaces the old one
        IF NOT is_new AND cur.marketplace_status IS DISTINCT FROM status THEN
            changes := jsonb_build_object('status', jsonb_build_array(cur.marketplace_status, status));
        END IF;
        UPDATE omnichan.order_inbox i SET
            marketplace_status = new_row.marketplace_status,
            state = CASE WHEN cancelled THEN 'cancelled' ELSE 'received' END,
            buyer_id = new_row.buyer_id, buyer_name = new_row.buyer_name,
            buyer_email = new_row.buyer_email, buyer_phone = new_row.buyer_phone,
            ship_name = new_row.ship_name, ship_street = new_row.ship_street, ship_street2 = new_row.ship_street2,
            ship_city = new_row.ship_city, ship_zip = new_row.ship_zip, ship_state = new_row.ship_state,
            ship_country = new_row.ship_country, ship_phone = new_row.ship_phone,
            bill_name = new_row.bill_name, bill_street = new_row.bill_street, bill_street2 = new_row.bill_street2,
            bill_city = new_row.bill_city, bill_zip = new_row.bill_zip, bill_state = new_row.bill_state,
            bill_country = new_row.bill_country, bill_phone = new_row.bill_phone,
            currency = new_row.currency, ordered_at = new_row.ordered_at,
            items_total = new_row.items_total, shipping_total = new_row.shipping_total,
            giftwrap_total = new_row.giftwrap_total, discount_total = new_row.discount_total,
            tax_total = new_row.tax_total, order_total = new_row.order_total,
            fees = new_row.fees, sla_flags = new_row.sla_flags, priority = new_row.priority,
            gift_message = new_row.gift_message, raw = new_row.raw, invalid_order = NULL,
            warehouse_id = omnichan._route(cid, COALESCE(new_row.ship_country, new_row.bill_country)),
            last_error = CASE WHEN cancelled THEN i.last_error END,
            last_error_at = CASE WHEN cancelled THEN i.last_error_at END,
            updated_at = clock_timestamp()
         WHERE i.id = iid;
        DELETE FROM omnichan.order_inbox_line WHERE inbox_id = iid;
        INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity,
                                               line_external_id, unit_price, tax, discount)
        SELECT iid, (l ->> 'line_no')::int, l ->> 'sku', li.product_id, (l ->> 'quantity')::numeric,
               l ->> 'external_id', (l ->> 'unit_price')::numeric, (l ->> 'tax')::numeric, (l ->> 'discount')::numeric
          FROM jsonb_array_elements(new_lines) l
          LEFT JOIN omnichan.listing li ON li.channel_id = cid AND li.sku = l ->> 'sku';
        IF NOT is_new THEN
            INSERT INTO omnichan.order_event (inbox_id, kind, detail)
            VALUES (iid, CASE WHEN cancelled AND cur.state <> 'cancelled' THEN 'cancelled' ELSE 'updated' END,
                    changes);
        END IF;
        RETURN iid;
    END IF;

    -- already an Odoo order (or being handled): record the change, never a second order
    SELECT jsonb_agg(jsonb_build_object('sku', l.channel_sku, 'quantity', l.quantity, 'unit_price', l.unit_price)
                     ORDER BY l.line_no)
      INTO old_lines FROM omnichan.order_inbox_line l WHERE l.inbox_id = iid;
    IF cur.marketplace_status IS DISTINCT FROM status THEN
        changes := changes || jsonb_build_object('status', jsonb_build_array(cur.marketplace_status, status));
    END IF;
    IF old_lines IS DISTINCT FROM (SELECT jsonb_agg(jsonb_build_object('sku', l ->> 'sku', 'quantity', (l ->> 'quantity')::numeric,
                                                                      'unit_price', (l ->> 'unit_price')::numeric)
                                                   ORDER BY (l ->> 'line_no')::int)
                                     FROM jsonb_array_elements(new_lines) l) THEN
        changes := changes || jsonb_build_object('lines', jsonb_build_array(old_lines, new_lines));
    END IF;
    UPDATE omnichan.order_inbox i SET
        marketplace_status = new_row.marketplace_status, raw = new_row.raw, fees = new_row.fees,
        invalid_order = NULL, updated_at = clock_timestamp()
     WHERE i.id = iid;

    IF cancelled AND cur.state = 'materialized' AND cur.sale_order_id IS NOT NULL THEN
        IF omnichan._sale_order_shipped(cur.sale_order_id) THEN
            UPDATE omnichan.order_inbox i SET state = 'attention',
                   last_error = 'cancelled by the marketplace after shipment', last_error_at = clock_timestamp()
             WHERE i.id = iid;
            INSERT INTO omnichan.order_event (inbox_id, kind, detail)
            VALUES (iid, 'attention', changes || jsonb_build_object('error', 'cancelled by the marketplace after shipment'));
        ELSE
            -- pending confirmations are superseded; Odoo cancels the order
            UPDATE omnichan.odoo_action a SET done_at = clock_timestamp(), result = 'superseded by a cancellation'
             WHERE a.sale_order_id = cur.sale_order_id AND a.done_at IS NULL AND a.action <> 'cancel';
            UPDATE omnichan.order_inbox i SET state = 'cancelled' WHERE i.id = iid;
            INSERT INTO omnichan.order_event (inbox_id, kind, detail) VALUES (iid, 'cancelled', changes);
            IF NOT EXISTS (SELECT 1 FROM public.sale_order so WHERE so.id = cur.sale_order_id AND so.state = 'cancel') THEN
                PERFORM omnichan._odoo_action_request(cur.sale_order_id, iid, 'cancel', false);
            END IF;
        END IF;
    ELSIF changes <> '{}' THEN
        INSERT INTO omnichan.order_event (inbox_id, kind, detail)
        VALUES (iid, 'changed_after_materialization', changes);
    END IF;
    RETURN iid;
END
$$;
COMMENT ON FUNCTION omnichan.inbox_upsert(text, jsonb) IS
'Record a normalized marketplace order (docs/orders.md) by (channel, external_id): inserted, or updated while not yet in Odoo; once in Odoo a change is recorded in omnichan.order_event and a cancellation cancels the Odoo order through the bridge (or flags the order for attention when it already shipped). Returns the inbox id.';

-- Round to a currency's rounding (half away from zero, as Odoo's float_round).
CREATE FUNCTION omnichan._cround(p_value numeric, p_rounding numeric)
RETURNS numeric
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT pg_catalog.round(pg_catalog.round(p_value OPERATOR(pg_catalog./) p_rounding)
                            OPERATOR(pg_catalog.*) p_rounding,
                            GREATEST(0, OPERATOR(pg_catalog.-) pg_catalog.floor(pg_catalog.log(p_rounding)))::int)
$$;

-- Odoo's stored amounts of one sale order line (sale_order_line._compute_amount
-- through account.tax._compute_taxes, one percent tax or none, company
-- rounding "round_per_line"): the base is price x quantity rounded to the
-- currency; a price-included tax is what the base holds beyond base / (1 +
-- rate), a price-excluded one is base x rate rounded.
CREATE FUNCTION omnichan._line_amounts(p_price_unit numeric, p_qty numeric, p_tax_rate numeric,
                                       p_price_include boolean, p_rounding numeric)
RETURNS TABLE (price_subtotal numeric, price_tax numeric, price_total numeric)
LANGUAGE sql IMMUTABLE
AS $$
    -- (SQL returning a set: inlined into the statements that call it)
    SELECT x.sub, x.tax, x.sub OPERATOR(pg_catalog.+) x.tax
      FROM (SELECT CASE WHEN p_tax_rate IS NULL THEN a.base
                        WHEN p_price_include THEN a.incl
                        ELSE a.base END AS sub,
                   CASE WHEN p_tax_rate IS NULL THEN 0::numeric
                        WHEN p_price_include THEN a.base OPERATOR(pg_catalog.-) a.incl
                        ELSE omnichan._cround((a.base OPERATOR(pg_catalog.*) p_tax_rate) OPERATOR(pg_catalog./) 100,
                                              p_rounding) END AS tax
              FROM (SELECT b.base,
                           omnichan._cround(b.base OPERATOR(pg_catalog./)
                                            (1 OPERATOR(pg_catalog.+) (p_tax_rate OPERATOR(pg_catalog./) 100)),
                                            p_rounding) AS incl
                      FROM (SELECT omnichan._cround(p_price_unit OPERATOR(pg_catalog.*) p_qty, p_rounding) AS base) b) a) x
$$;

-- Digits of one of Odoo's decimal precisions (decimal_precision, when the
-- table exists), else p_default.
CREATE FUNCTION omnichan._odoo_digits(p_name text, p_default int)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    d int;
BEGIN
    IF to_regclass('public.decimal_precision') IS NOT NULL THEN
        EXECUTE 'SELECT digits FROM public.decimal_precision WHERE name = $1' INTO d USING p_name;
    END IF;
    RETURN COALESCE(d, p_default);
END
$$;

-- An Odoo record id by external id (module.name).
CREATE FUNCTION omnichan._odoo_xmlid(p_xmlid text)
RETURNS int
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT res_id FROM public.ir_model_data
     WHERE module = split_part(p_xmlid, '.', 1) AND name = split_part(p_xmlid, '.', 2)
$$;

-- The next p_count names of an Odoo sequence by code for a company, as
-- ir.sequence.next_by_code gives them one by one: the company's sequence
-- first, then a shared one; "standard" sequences use their PostgreSQL
-- sequence ir_sequence_NNN, "no_gap" ones the row's number_next.
CREATE FUNCTION omnichan._odoo_sequence_next_n(p_code text, p_company_id int, p_count int)
RETURNS text[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    q public.ir_sequence;
    n bigint;
    now_utc timestamp := date_trunc('second', now() AT TIME ZONE 'UTC');
    fix text;
    parts text[];
BEGIN
    IF p_count IS NULL OR p_count < 1 THEN
        RETURN '{}';
    END IF;
    SELECT * INTO q FROM public.ir_sequence
     WHERE code = p_code AND active AND (company_id = p_company_id OR company_id IS NULL)
     ORDER BY company_id NULLS LAST, id
     LIMIT 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'Odoo has no active "%" sequence for company %', p_code, p_company_id
            USING ERRCODE = 'undefined_object';
    END IF;
    IF q.use_date_range THEN
        RAISE EXCEPTION 'the "%" sequence (ir_sequence %) uses date ranges, which omnichan does not support', p_code, q.id
            USING ERRCODE = 'feature_not_supported',
                  HINT = 'Switch off "Use subsequences per date_range" on the sequence, or use the channel setting order_naming "prefix".';
    END IF;
    parts := ARRAY[COALESCE(q.prefix, ''), COALESCE(q.suffix, '')];
    FOR i IN 1 .. 2 LOOP
        fix := parts[i];
        IF strpos(fix, '%(') > 0 THEN
            fix := replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(replace(fix,
                '%(range_', '%('),
                '%(year)s', to_char(now_utc, 'YYYY')), '%(month)s', to_char(now_utc, 'MM')),
                '%(day)s', to_char(now_utc, 'DD')), '%(y)s', to_char(now_utc, 'YY')),
                '%(doy)s', to_char(now_utc, 'DDD')), '%(woy)s', lpad(to_char(now_utc, 'IW'), 2, '0')),
                '%(weekday)s', ((extract(dow FROM now_utc))::int)::text), '%(h24)s', to_char(now_utc, 'HH24')),
                '%(min)s', to_char(now_utc, 'MI')), '%(sec)s', to_char(now_utc, 'SS'));
            fix := replace(fix, '%(h12)s', to_char(now_utc, 'HH12'));
        END IF;
        parts[i] := fix;
    END LOOP;
    IF q.implementation = 'no_gap' THEN
        UPDATE public.ir_sequence SET number_next = number_next + number_increment * p_count
         WHERE id = q.id RETURNING number_next - number_increment * p_count INTO n;
        RETURN ARRAY(SELECT parts[1] || lpad(v::text, GREATEST(q.padding, length(v::text)), '0') || parts[2]
                       FROM generate_series(0, p_count - 1) k, LATERAL (SELECT n + k * q.number_increment AS v) x
                      ORDER BY k);
    END IF;
    RETURN ARRAY(SELECT parts[1] || lpad(v::text, GREATEST(q.padding, length(v::text)), '0') || parts[2]
                   FROM (SELECT k, nextval(format('public.ir_sequence_%s',
                                                  lpad(q.id::text, GREATEST(3, length(q.id::text)), '0'))::regclass) AS v
                           FROM generate_series(1, p_count) k) x
                  ORDER BY k);
END
$$;

-- The res_country_state of a state given by code or name in a country
-- (NULL when not found, or when Odoo's table is not there).
CREATE FUNCTION omnichan._country_state(p_country_id int, p_state text)
RETURNS int
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    st int;
BEGIN
    IF p_country_id IS NULL OR p_state IS NULL OR to_regclass('public.res_country_state') IS NULL THEN
        RETURN NULL;
    END IF;
    -- (planned at its first run only: never without the table)
    SELECT s.id INTO st FROM public.res_country_state s
     WHERE s.country_id = p_country_id AND (upper(s.code) = upper(p_state) OR lower(s.name::text) = lower(p_state))
     ORDER BY s.id LIMIT 1;
    RETURN st;
END
$$;

-- The channel's crm_tag (named as the channel), created once.
CREATE FUNCTION omnichan._channel_tag(p_channel_id int, p_uid int)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cname text := (SELECT name FROM omnichan.channel WHERE id = p_channel_id);
    tid int;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('omnichan.tag'), p_channel_id);
    SELECT id INTO tid FROM public.crm_tag WHERE name ->> 'en_US' = cname ORDER BY id LIMIT 1;
    IF tid IS NULL THEN
        INSERT INTO public.crm_tag (name, color, create_uid, write_uid, create_date, write_date)
        VALUES (jsonb_build_object('en_US', cname), p_channel_id % 11 + 1, p_uid, p_uid,
                now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')
        RETURNING id INTO tid;
    END IF;
    RETURN tid;
END
$$;

-- An Odoo product as a sale line needs it; an error naming what is wrong.
CREATE FUNCTION omnichan._sale_product(p_product_id int, p_what text, p_company_id int)
RETURNS TABLE (product_id int, uom_id int, type text, sale_delay int, display_name text, sale_ok boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    RETURN QUERY
    SELECT p.id, t.uom_id, t.type::text, COALESCE(t.sale_delay, 0),
           CASE WHEN p.default_code IS NOT NULL AND p.default_code <> ''
                THEN '[' || p.default_code || '] ' ELSE '' END
           || COALESCE(t.name ->> 'en_US', (SELECT v FROM jsonb_each_text(t.name) AS e(k, v) LIMIT 1), '')
           || CASE WHEN t.description_sale IS NOT NULL AND COALESCE(t.description_sale ->> 'en_US', '') <> ''
                   THEN E'\n' || (t.description_sale ->> 'en_US') ELSE '' END,
           COALESCE(t.sale_ok, false)
      FROM public.product_product p
      JOIN public.product_template t ON t.id = p.product_tmpl_id
     WHERE p.id = p_product_id AND COALESCE(p.active, false) AND COALESCE(t.active, false)
       AND (t.company_id IS NULL OR t.company_id = p_company_id);
    IF NOT FOUND THEN
        RAISE EXCEPTION '% (product %) is not an active product of company %', p_what, p_product_id, p_company_id
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END
$$;

-- Who sells the orders of a channel (its company, its order settings): the
-- channel's salesperson, else the administrator; that user's language and
-- sales team (else the company's first team).
CREATE FUNCTION omnichan._order_context(p_company_id int, p_settings jsonb,
                                        OUT uid int, OUT lang text, OUT team int)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    uid := COALESCE((p_settings ->> 'salesperson_id')::int, omnichan._odoo_xmlid('base.user_admin'),
                    (SELECT min(u.id) FROM public.res_users u WHERE u.active AND NOT COALESCE(u.share, false)));
    SELECT COALESCE(p.lang, 'en_US') INTO lang
      FROM public.res_users u JOIN public.res_partner p ON p.id = u.partner_id WHERE u.id = uid;
    lang := COALESCE(lang, 'en_US');
    SELECT COALESCE(
        (SELECT u.sale_team_id FROM public.res_users u JOIN public.crm_team t ON t.id = u.sale_team_id
          WHERE u.id = uid AND COALESCE(t.active, true) AND (t.company_id IS NULL OR t.company_id = p_company_id)),
        (SELECT t.id FROM public.crm_team t
          WHERE COALESCE(t.active, true) AND (t.company_id IS NULL OR t.company_id = p_company_id)
          ORDER BY t.sequence, t.id LIMIT 1)) INTO team;
END
$$;

-- Write the received orders p_ids (locked by the caller, oldest first) of
-- one channel as Odoo quotations, set-based: one statement per table for
-- the whole batch (customers, links, address children, orders, lines,
-- taxes, tags, inbox states, events, bridge actions).  This is the only
-- place these rows are written.  Unless p_checked (materialize_orders has
-- run every check of one order and wants it written, errors raised), only
-- the orders every check of materialize_orders would pass are taken (lines
-- linked to active products of the company, the charge products set, the
-- company currency, an active warehouse, known countries, an e-mail shared
-- with no other buyer of the batch); the others, and all of them when
-- anything here fails, are left to the order-by-order path, which holds a
-- failing order with its error.  Returns the ids materialized.
CREATE FUNCTION omnichan._materialize_set(p_channel_id int, p_ids bigint[], p_checked boolean DEFAULT false)
RETURNS bigint[]
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    c omnichan.channel;
    s jsonb;
    comp public.res_company;
    cur public.res_currency;
    tax public.account_tax;
    tax_rate numeric;
    ctx record;
    tag int;
    price_digits int := omnichan._odoo_digits('Product Price', 2);
    sol_seq regclass := pg_get_serial_sequence('public.sale_order_line', 'id');
    so_seq regclass := pg_get_serial_sequence('public.sale_order', 'id');
    partner_seq regclass := pg_get_serial_sequence('public.res_partner', 'id');
    now_utc timestamp := now() AT TIME ZONE 'UTC';
    ids bigint[];
    partners int[];
    ships int[];
    invs int[];
    so_ids int[];
    names text[];
    code text;
BEGIN
    IF cardinality(p_ids) IS NULL THEN
        RETURN '{}';
    END IF;
    SELECT * INTO c FROM omnichan.channel WHERE id = p_channel_id;
    IF NOT FOUND THEN
        RETURN '{}';
    END IF;
    s := omnichan._order_settings(c.id);
    SELECT * INTO comp FROM public.res_company WHERE id = c.company_id;
    SELECT * INTO cur FROM public.res_currency WHERE id = comp.currency_id;
    IF comp.id IS NULL OR cur.id IS NULL
       OR COALESCE(comp.tax_calculation_rounding_method, 'round_per_line') <> 'round_per_line' THEN
        RETURN '{}';
    END IF;
    IF s ? 'tax_id' THEN
        SELECT * INTO tax FROM public.account_tax t WHERE t.id = (s ->> 'tax_id')::int;
        IF NOT FOUND OR tax.amount_type <> 'percent' OR NOT COALESCE(tax.active, false)
           OR tax.company_id <> c.company_id THEN
            RETURN '{}';
        END IF;
        tax_rate := tax.amount;
    END IF;

    -- the orders every check passes, oldest first (checked: the caller
    -- has also resolved their lines' products)
    IF p_checked THEN
        ids := p_ids;
    ELSE
        UPDATE omnichan.order_inbox_line il SET product_id = li.product_id
          FROM omnichan.listing li
         WHERE il.inbox_id = ANY (p_ids) AND li.channel_id = c.id AND li.sku = il.channel_sku
           AND il.product_id IS DISTINCT FROM li.product_id;
        WITH o AS (
            SELECT i.id, i.received_at, COALESCE('b:' || i.buyer_id, 'e:' || lower(i.buyer_email), 'o:' || i.id) AS buyer_key,
                   lower(i.buyer_email) AS email
              FROM omnichan.order_inbox i
             WHERE i.id = ANY (p_ids) AND i.channel_id = c.id AND i.state = 'received' AND i.sale_order_id IS NULL
               AND (i.currency IS NULL OR i.currency = cur.name)
               AND EXISTS (SELECT 1 FROM public.stock_warehouse w
                            WHERE w.id = COALESCE(i.warehouse_id, c.default_warehouse_id) AND w.active
                              AND w.company_id = c.company_id)
               AND (i.ship_country IS NULL OR EXISTS (SELECT 1 FROM public.res_country rc WHERE rc.code = i.ship_country))
               AND (i.bill_country IS NULL OR EXISTS (SELECT 1 FROM public.res_country rc WHERE rc.code = i.bill_country))
               AND NOT EXISTS (
                   SELECT 1
                     FROM (SELECT il.product_id FROM omnichan.order_inbox_line il WHERE il.inbox_id = i.id
                           UNION ALL
                           SELECT (s ->> 'shipping_product_id')::int WHERE COALESCE(i.shipping_total, 0) > 0
                           UNION ALL
                           SELECT (s ->> 'giftwrap_product_id')::int WHERE COALESCE(i.giftwrap_total, 0) > 0
                           UNION ALL
                           SELECT (s ->> 'discount_product_id')::int
                            WHERE COALESCE(i.discount_total,
                                           (SELECT sum(d.discount) FROM omnichan.order_inbox_line d WHERE d.inbox_id = i.id),
                                           0) > 0) q
                    WHERE q.product_id IS NULL
                       OR NOT EXISTS (SELECT 1 FROM public.product_product p
                                        JOIN public.product_template t ON t.id = p.product_tmpl_id
                                       WHERE p.id = q.product_id AND COALESCE(p.active, false) AND COALESCE(t.active, false)
                                         AND (t.company_id IS NULL OR t.company_id = c.company_id)))
        )
        SELECT array_agg(o.id ORDER BY o.received_at, o.id) INTO ids
          FROM o
         -- an e-mail of two buyers: which one creates the partner depends on
         -- the order of the orders; those go one by one
         WHERE o.email IS NULL
            OR NOT EXISTS (SELECT 1 FROM o o2 WHERE o2.email = o.email AND o2.buyer_key <> o.buyer_key);
        IF cardinality(ids) IS NULL THEN
            RETURN '{}';
        END IF;
    END IF;

    BEGIN
        ctx := omnichan._order_context(c.company_id, s);
        tag := omnichan._channel_tag(c.id, ctx.uid);

        -- one transaction at a time per buyer, the locks taken in one order
        PERFORM pg_advisory_xact_lock(hashtext('omnichan.customer'), k.h)
           FROM (SELECT DISTINCT hashtext(i.channel_id || ':' || COALESCE(i.buyer_id, lower(i.buyer_email), '')) AS h
                   FROM omnichan.order_inbox i WHERE i.id = ANY (ids) ORDER BY 1) k;

        -- the customers: per buyer, the first order of the batch decides
        -- (by buyer id, else e-mail, else a new partner), as order by order
        WITH o AS (
            SELECT i.*, x.ord, COALESCE('b:' || i.buyer_id, 'e:' || lower(i.buyer_email), 'o:' || i.id) AS buyer_key
              FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
              JOIN omnichan.order_inbox i ON i.id = x.id
        ), f AS (
            SELECT DISTINCT ON (o.buyer_key) o.*,
                   COALESCE((SELECT l.partner_id FROM omnichan.customer_link l
                               JOIN public.res_partner p ON p.id = l.partner_id AND p.active
                              WHERE o.buyer_id IS NOT NULL AND l.channel_id = o.channel_id AND l.buyer_id = o.buyer_id),
                            (SELECT p.id FROM public.res_partner p
                              WHERE o.buyer_email IS NOT NULL AND p.email_normalized = lower(o.buyer_email)
                                AND p.parent_id IS NULL AND p.active AND COALESCE(p.partner_share, true)
                              ORDER BY p.id LIMIT 1)) AS found
              FROM o ORDER BY o.buyer_key, o.ord
        ), n AS (
            SELECT f.*, nextval(partner_seq)::int AS new_id,
                   (f.bill_street IS NOT NULL OR f.bill_city IS NOT NULL OR f.bill_country IS NOT NULL) AS has_bill
              FROM (SELECT * FROM f WHERE f.found IS NULL ORDER BY f.ord) f
        ), a AS (
            SELECT n.new_id, n.buyer_email,
                   CASE WHEN n.has_bill THEN COALESCE(n.buyer_name, n.bill_name, n.ship_name)
                        ELSE COALESCE(n.buyer_name, n.ship_name) END AS name,
                   CASE WHEN n.has_bill THEN n.bill_street ELSE n.ship_street END AS street,
                   CASE WHEN n.has_bill THEN n.bill_street2 ELSE n.ship_street2 END AS street2,
                   CASE WHEN n.has_bill THEN n.bill_city ELSE n.ship_city END AS city,
                   CASE WHEN n.has_bill THEN n.bill_zip ELSE n.ship_zip END AS zip,
                   CASE WHEN n.has_bill THEN n.bill_state ELSE n.ship_state END AS state,
                   CASE WHEN n.has_bill THEN n.bill_country ELSE n.ship_country END AS country,
                   COALESCE(n.buyer_phone, CASE WHEN n.has_bill THEN n.bill_phone ELSE n.ship_phone END) AS phone,
                   n.ord
              FROM n
        ), ins AS (
            INSERT INTO public.res_partner
                (id, name, type, parent_id, street, street2, city, zip, state_id, country_id, email, phone,
                 active, is_company, lang, tz, user_id, color, customer_rank, supplier_rank, message_bounce,
                 invoice_warn, picking_warn, purchase_warn, sale_warn,
                 commercial_partner_id, complete_name, partner_share, email_normalized, phone_sanitized,
                 create_uid, write_uid, create_date, write_date)
            SELECT a.new_id, a.name, 'contact', NULL, a.street, a.street2, a.city, a.zip,
                   omnichan._country_state(rc.id, a.state), rc.id, a.buyer_email, a.phone,
                   true, false, ctx.lang, NULL, NULL, 0, 0, 0, 0,
                   'no-message', 'no-message', 'no-message', 'no-message',
                   a.new_id, COALESCE(a.name, ''), true, lower(a.buyer_email), a.phone,
                   ctx.uid, ctx.uid, now_utc, now_utc
              FROM a LEFT JOIN public.res_country rc ON rc.code = a.country
             ORDER BY a.ord
        ), links AS (
            INSERT INTO omnichan.customer_link AS l (channel_id, buyer_id, partner_id)
            SELECT DISTINCT ON (o.buyer_id) o.channel_id, o.buyer_id, COALESCE(f.found, n.new_id)
              FROM o JOIN f ON f.buyer_key = o.buyer_key LEFT JOIN n ON n.buyer_key = o.buyer_key
             WHERE o.buyer_id IS NOT NULL
             ORDER BY o.buyer_id
            ON CONFLICT (channel_id, buyer_id) DO UPDATE SET partner_id = excluded.partner_id
        )
        SELECT array_agg(COALESCE(f.found, n.new_id) ORDER BY o.ord) INTO partners
          FROM o JOIN f ON f.buyer_key = o.buyer_key LEFT JOIN n ON n.buyer_key = o.buyer_key;

        -- the delivery and invoice addresses: the customer's own, else its
        -- child address of that type with the same name and address, created
        -- once when missing
        WITH a AS (
            SELECT x.ord, x.partner, t.kind, t.type, t.name, t.street, t.street2, t.city, t.zip, t.state, t.phone,
                   rc.id AS country_id,
                   (t.street IS NULL AND t.city IS NULL AND t.zip IS NULL AND t.country IS NULL) AS none
              FROM unnest(ids, partners) WITH ORDINALITY AS x(id, partner, ord)
              JOIN omnichan.order_inbox i ON i.id = x.id
             CROSS JOIN LATERAL (VALUES
                    (1, 'delivery', i.ship_name, i.ship_street, i.ship_street2, i.ship_city, i.ship_zip,
                     i.ship_state, i.ship_country, i.ship_phone),
                    (2, 'invoice', i.bill_name, i.bill_street, i.bill_street2, i.bill_city, i.bill_zip,
                     i.bill_state, i.bill_country, i.bill_phone))
                    AS t(kind, type, name, street, street2, city, zip, state, country, phone)
              LEFT JOIN public.res_country rc ON rc.code = t.country
        ), m AS (
            SELECT a.*, p.name AS parent_name, p.commercial_partner_id AS parent_commercial,
                   ((a.name IS NULL OR p.name IS NOT DISTINCT FROM a.name)
                    AND p.street IS NOT DISTINCT FROM a.street AND p.street2 IS NOT DISTINCT FROM a.street2
                    AND p.city IS NOT DISTINCT FROM a.city AND p.zip IS NOT DISTINCT FROM a.zip
                    AND p.country_id IS NOT DISTINCT FROM a.country_id) AS own
              FROM a JOIN public.res_partner p ON p.id = a.partner
             WHERE NOT a.none
        ), need AS (
            SELECT DISTINCT ON (m.partner, m.type, COALESCE(m.name, m.parent_name), m.street, m.street2, m.city,
                                m.zip, m.country_id) m.*
              FROM m
             WHERE NOT m.own
               AND NOT EXISTS (SELECT 1 FROM public.res_partner ch
                                WHERE ch.parent_id = m.partner AND ch.type = m.type AND ch.active
                                  AND ch.name IS NOT DISTINCT FROM COALESCE(m.name, m.parent_name)
                                  AND ch.street IS NOT DISTINCT FROM m.street AND ch.street2 IS NOT DISTINCT FROM m.street2
                                  AND ch.city IS NOT DISTINCT FROM m.city AND ch.zip IS NOT DISTINCT FROM m.zip
                                  AND ch.country_id IS NOT DISTINCT FROM m.country_id)
             ORDER BY m.partner, m.type, COALESCE(m.name, m.parent_name), m.street, m.street2, m.city, m.zip,
                      m.country_id, m.ord
        )
        INSERT INTO public.res_partner
            (id, name, type, parent_id, street, street2, city, zip, state_id, country_id, email, phone,
             active, is_company, lang, tz, user_id, color, customer_rank, supplier_rank, message_bounce,
             invoice_warn, picking_warn, purchase_warn, sale_warn,
             commercial_partner_id, complete_name, partner_share, email_normalized, phone_sanitized,
             create_uid, write_uid, create_date, write_date)
        SELECT nextval(partner_seq), q.*
          FROM (SELECT COALESCE(need.name, need.parent_name), need.type, need.partner, need.street, need.street2,
                       need.city, need.zip, omnichan._country_state(need.country_id, need.state), need.country_id,
                       NULL::varchar, need.phone,
                       true, false, ctx.lang, NULL::varchar, NULL::int, 0, 0, 0, 0,
                       'no-message', 'no-message', 'no-message', 'no-message',
                       COALESCE(need.parent_commercial, need.partner),
                       btrim(COALESCE(need.parent_name, '') || ', ' || COALESCE(need.name, need.parent_name, '')),
                       true, NULL::varchar, need.phone,
                       ctx.uid, ctx.uid, now_utc, now_utc
                  FROM need ORDER BY need.ord, need.kind) q;

        WITH a AS (
            SELECT x.ord, x.partner, t.kind, t.type, t.name, t.street, t.street2, t.city, t.zip,
                   rc.id AS country_id,
                   (t.street IS NULL AND t.city IS NULL AND t.zip IS NULL AND t.country IS NULL) AS none
              FROM unnest(ids, partners) WITH ORDINALITY AS x(id, partner, ord)
              JOIN omnichan.order_inbox i ON i.id = x.id
             CROSS JOIN LATERAL (VALUES
                    (1, 'delivery', i.ship_name, i.ship_street, i.ship_street2, i.ship_city, i.ship_zip, i.ship_country),
                    (2, 'invoice', i.bill_name, i.bill_street, i.bill_street2, i.bill_city, i.bill_zip, i.bill_country))
                    AS t(kind, type, name, street, street2, city, zip, country)
              LEFT JOIN public.res_country rc ON rc.code = t.country
        ), r AS (
            SELECT a.ord, a.kind,
                   CASE WHEN a.none THEN a.partner
                        WHEN (a.name IS NULL OR p.name IS NOT DISTINCT FROM a.name)
                             AND p.street IS NOT DISTINCT FROM a.street AND p.street2 IS NOT DISTINCT FROM a.street2
                             AND p.city IS NOT DISTINCT FROM a.city AND p.zip IS NOT DISTINCT FROM a.zip
                             AND p.country_id IS NOT DISTINCT FROM a.country_id THEN a.partner
                        ELSE (SELECT ch.id FROM public.res_partner ch
                               WHERE ch.parent_id = a.partner AND ch.type = a.type AND ch.active
                                 AND ch.name IS NOT DISTINCT FROM COALESCE(a.name, p.name)
                                 AND ch.street IS NOT DISTINCT FROM a.street AND ch.street2 IS NOT DISTINCT FROM a.street2
                                 AND ch.city IS NOT DISTINCT FROM a.city AND ch.zip IS NOT DISTINCT FROM a.zip
                                 AND ch.country_id IS NOT DISTINCT FROM a.country_id
                               ORDER BY ch.id LIMIT 1) END AS pid
              FROM a JOIN public.res_partner p ON p.id = a.partner
        )
        SELECT array_agg(r.pid ORDER BY r.ord) FILTER (WHERE r.kind = 1),
               array_agg(r.pid ORDER BY r.ord) FILTER (WHERE r.kind = 2)
          INTO ships, invs
          FROM r;
        IF array_position(ships, NULL) IS NOT NULL OR array_position(invs, NULL) IS NOT NULL THEN
            RAISE EXCEPTION 'an address partner was not found after its creation';
        END IF;

        -- names and ids, in the order of the orders
        IF s ->> 'order_naming' = 'prefix' THEN
            names := ARRAY(SELECT (s ->> 'order_prefix') || i.external_id
                             FROM unnest(ids) WITH ORDINALITY AS x(id, ord)
                             JOIN omnichan.order_inbox i ON i.id = x.id ORDER BY x.ord);
        ELSE
            names := omnichan._odoo_sequence_next_n('sale.order', c.company_id, cardinality(ids));
        END IF;
        so_ids := ARRAY(SELECT nextval(so_seq)::int FROM generate_series(1, cardinality(ids)) g ORDER BY g);

        -- the orders, their lines (items, then shipping, gift wrap and
        -- promotions on the channel's products; ids in order), taxes, tags,
        -- inbox links and states, and events
        WITH o AS (
            SELECT x.ord, x.so_id, x.name AS so_name, x.partner, x.ship, x.inv, i.*,
                   COALESCE(i.discount_total,
                            (SELECT sum(d.discount) FROM omnichan.order_inbox_line d WHERE d.inbox_id = i.id), 0) AS promo
              FROM unnest(ids, so_ids, names, partners, ships, invs)
                   WITH ORDINALITY AS x(id, so_id, name, partner, ship, inv, ord)
              JOIN omnichan.order_inbox i ON i.id = x.id
        ), q AS (
            SELECT q.*, nextval(sol_seq) AS sol_id
              FROM (SELECT o.ord, il.line_no, il.product_id, il.quantity, il.unit_price, NULL::text AS what,
                           false AS is_delivery
                      FROM o JOIN omnichan.order_inbox_line il ON il.inbox_id = o.id
                    UNION ALL
                    SELECT o.ord, 100001, (s ->> 'shipping_product_id')::int, 1, o.shipping_total, 'shipping', true
                      FROM o WHERE COALESCE(o.shipping_total, 0) > 0
                    UNION ALL
                    SELECT o.ord, 100002, (s ->> 'giftwrap_product_id')::int, 1, o.giftwrap_total, 'gift wrap', false
                      FROM o WHERE COALESCE(o.giftwrap_total, 0) > 0
                    UNION ALL
                    SELECT o.ord, 100003, (s ->> 'discount_product_id')::int, 1, -o.promo, 'promotion', false
                      FROM o WHERE o.promo > 0
                    ORDER BY 1, 2) q
        ), x AS MATERIALIZED (
            SELECT q.*, o.so_id, o.partner, o.id AS inbox_id, t.uom_id, t.type, COALESCE(t.sale_delay, 0) AS sale_delay,
                   COALESCE(p.weight, 0) AS weight,
                   CASE WHEN p.default_code IS NOT NULL AND p.default_code <> ''
                        THEN '[' || p.default_code || '] ' ELSE '' END
                   || COALESCE(t.name ->> 'en_US', (SELECT v FROM jsonb_each_text(t.name) AS e(k, v) LIMIT 1), '')
                   || CASE WHEN t.description_sale IS NOT NULL AND COALESCE(t.description_sale ->> 'en_US', '') <> ''
                           THEN E'\n' || (t.description_sale ->> 'en_US') ELSE '' END AS display_name,
                   a.price_subtotal, a.price_tax, a.price_total
              FROM q
              JOIN o ON o.ord = q.ord
              JOIN public.product_product p ON p.id = q.product_id
              JOIN public.product_template t ON t.id = p.product_tmpl_id
             CROSS JOIN LATERAL omnichan._line_amounts(round(q.unit_price, price_digits), q.quantity, tax_rate,
                                                       COALESCE(tax.price_include, false), cur.rounding) a
        ), tot AS (
            -- shipping_weight as Odoo's delivery module estimates it: the
            -- goods lines (storable or consumable, not the shipping line),
            -- quantity in the product's unit (the lines' unit) × its weight
            SELECT x.ord, sum(x.price_subtotal) AS untaxed, sum(x.price_tax) AS taxed,
                   sum(CASE WHEN x.type IN ('product', 'consu') AND NOT x.is_delivery AND x.quantity > 0
                            THEN x.quantity * x.weight ELSE 0 END) AS weight
              FROM x GROUP BY x.ord
        ), so AS (
            INSERT INTO public.sale_order
                (id, name, state, company_id, partner_id, partner_invoice_id, partner_shipping_id, date_order,
                 warehouse_id, picking_policy, currency_id, currency_rate, pricelist_id, client_order_ref, origin,
                 user_id, team_id, validity_date, require_signature, require_payment, prepayment_percent, locked,
                 note, payment_term_id, fiscal_position_id, journal_id, sale_order_template_id,
                 amount_untaxed, amount_tax, amount_total, amount_to_invoice, invoice_status, shipping_weight,
                 create_uid, write_uid, create_date, write_date)
            SELECT o.so_id, o.so_name, 'draft', c.company_id, o.partner, o.inv, o.ship,
                   date_trunc('second', COALESCE(o.ordered_at AT TIME ZONE 'UTC', now_utc)),
                   COALESCE(o.warehouse_id, c.default_warehouse_id), 'direct', cur.id, 1.0, NULL, o.external_id, c.name,
                   ctx.uid, ctx.team,
                   CASE WHEN COALESCE(comp.quotation_validity_days, 0) > 0
                        THEN (now() AT TIME ZONE 'UTC')::date + comp.quotation_validity_days END,
                   COALESCE(comp.portal_confirmation_sign, false), COALESCE(comp.portal_confirmation_pay, false),
                   COALESCE(comp.prepayment_percent, 1.0), false,
                   CASE WHEN o.gift_message IS NOT NULL
                        THEN '<p>Gift message: ' || replace(replace(replace(replace(replace(o.gift_message,
                                 '&', '&amp;'), '<', '&lt;'), '>', '&gt;'), '"', '&quot;'), E'\n', '<br>') || '</p>' END,
                   NULL, NULL, NULL, NULL,
                   COALESCE(tot.untaxed, 0), COALESCE(tot.taxed, 0), COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0),
                   COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0), 'no', COALESCE(tot.weight, 0)::double precision,
                   ctx.uid, ctx.uid, now_utc, now_utc
              FROM o LEFT JOIN tot ON tot.ord = o.ord
             ORDER BY o.ord
        ), sol AS (
            INSERT INTO public.sale_order_line
                (id, order_id, sequence, name, product_id, product_uom, product_uom_qty, price_unit, discount,
                 customer_lead, company_id, currency_id, order_partner_id, salesman_id, state, display_type,
                 is_delivery, product_packaging_id, product_packaging_qty, qty_delivered, qty_delivered_method,
                 price_subtotal, price_tax, price_total, price_reduce_taxexcl, price_reduce_taxinc,
                 invoice_status, qty_invoiced, qty_to_invoice, untaxed_amount_invoiced, untaxed_amount_to_invoice,
                 create_uid, write_uid, create_date, write_date)
            SELECT x.sol_id, x.so_id, 10, x.display_name, x.product_id, x.uom_id, x.quantity,
                   round(x.unit_price, price_digits), 0,
                   x.sale_delay, c.company_id, cur.id, x.partner, ctx.uid, 'draft', NULL,
                   x.is_delivery, NULL, 0.0, 0,
                   CASE WHEN x.type IN ('product', 'consu') THEN 'stock_move' ELSE 'manual' END,
                   x.price_subtotal, x.price_tax::double precision, x.price_total,
                   round(x.price_subtotal / x.quantity, price_digits), round(x.price_total / x.quantity, price_digits),
                   'no', 0, 0, 0, 0,
                   ctx.uid, ctx.uid, now_utc, now_utc
              FROM x ORDER BY x.sol_id
            RETURNING id
        ), rel AS (
            INSERT INTO public.account_tax_sale_order_line_rel (sale_order_line_id, account_tax_id)
            SELECT sol.id, tax.id FROM sol WHERE tax_rate IS NOT NULL
        ), tags AS (
            INSERT INTO public.sale_order_tag_rel (order_id, tag_id)
            SELECT o.so_id, tag FROM o
        ), link AS (
            UPDATE omnichan.order_inbox_line il SET sale_order_line_id = x.sol_id
              FROM x WHERE il.inbox_id = x.inbox_id AND il.line_no = x.line_no AND x.what IS NULL
        ), st AS (
            UPDATE omnichan.order_inbox i SET state = 'materialized', sale_order_id = o.so_id, partner_id = o.partner,
                   odoo_amount_total = COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0),
                   materialized_at = clock_timestamp(),
                   last_error = NULL, last_error_at = NULL, attempts = i.attempts + 1, updated_at = clock_timestamp()
              FROM o LEFT JOIN tot ON tot.ord = o.ord
             WHERE i.id = o.id
        )
        INSERT INTO omnichan.order_event (inbox_id, kind, detail)
        SELECT e.inbox_id, e.kind, e.detail
          FROM (SELECT o.ord, 1 AS k, o.id AS inbox_id, 'materialized' AS kind,
                       jsonb_build_object('sale_order_id', o.so_id, 'name', o.so_name,
                                          'amount_total', COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0)) AS detail
                  FROM o LEFT JOIN tot ON tot.ord = o.ord
                UNION ALL
                SELECT o.ord, 2, o.id, 'total_mismatch',
                       jsonb_build_object('marketplace_total', o.order_total,
                                          'odoo_total', COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0))
                  FROM o LEFT JOIN tot ON tot.ord = o.ord
                 WHERE o.order_total IS NOT NULL
                   AND o.order_total <> COALESCE(tot.untaxed, 0) + COALESCE(tot.taxed, 0)) e
         ORDER BY e.ord, e.k;

        -- what Odoo does next
        IF s ->> 'order_workflow' IN ('confirm', 'confirm_invoice') AND (s ->> 'auto_confirm')::boolean THEN
            PERFORM omnichan._odoo_action_request(x.so_id, x.id,
                        CASE s ->> 'order_workflow' WHEN 'confirm' THEN 'confirm' ELSE 'invoice' END, i.priority)
               FROM unnest(ids, so_ids) WITH ORDINALITY AS x(id, so_id, ord)
               JOIN omnichan.order_inbox i ON i.id = x.id
              ORDER BY x.ord;
        END IF;
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS code = RETURNED_SQLSTATE;
        -- lock waits, cancellations, serialization failures: not the orders' fault
        IF p_checked OR code ~ '^(40|53|57|58)' OR code = '55P03' THEN
            RAISE;
        END IF;
        RETURN '{}';            -- nothing of it is kept: order by order
    END;
    RETURN ids;
END
$$;

-- Materialize up to max_orders received orders (of one channel, or of every
-- active channel), oldest first, in the caller's transaction.  Orders locked
-- by a concurrent call are skipped.  Returns the number materialized.
--
-- The orders that pass every check are written together per channel
-- (_materialize_set).  Each other order is checked in a subtransaction of
-- its own, then written by _materialize_set alone: an order that cannot be
-- materialized raises there, which writes nothing of it and holds it with
-- the error.  What depends on the channel only (settings, company,
-- currency, tax) is read once per call and channel.
CREATE FUNCTION omnichan.materialize_orders(channel text DEFAULT NULL, max_orders int DEFAULT 100)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := CASE WHEN channel IS NOT NULL THEN omnichan._channel_id(channel) END;
    r record;
    n int := 0;
    ids bigint[];
    done bigint[] := '{}';
    ch int;
    err text;
    code text;
    -- per channel: c and s, then (k_channel: the channel they were read for)
    -- company, currency and tax
    k_channel int;
    c omnichan.channel;
    s jsonb;
    comp public.res_company;
    cur public.res_currency;
    tax public.account_tax;
    tax_found boolean;
    -- per order
    i omnichan.order_inbox;
    wh int;
    missing text;
    l record;
    promo numeric;
BEGIN
    IF max_orders IS NULL OR max_orders < 1 THEN
        RAISE EXCEPTION 'max_orders must be at least 1' USING ERRCODE = 'numeric_value_out_of_range';
    END IF;
    ids := ARRAY(
        SELECT x.id FROM omnichan.order_inbox x
          JOIN omnichan.channel xc ON xc.id = x.channel_id
         WHERE x.state = 'received' AND x.sale_order_id IS NULL
           AND (cid IS NULL OR x.channel_id = cid) AND (cid IS NOT NULL OR xc.active)
         ORDER BY x.received_at, x.id
         LIMIT max_orders
           FOR UPDATE OF x SKIP LOCKED);
    -- set-based, per channel, what passes every check; then order by order
    FOR ch IN SELECT DISTINCT x.channel_id FROM omnichan.order_inbox x WHERE x.id = ANY (ids) ORDER BY 1 LOOP
        done := done || omnichan._materialize_set(ch, ARRAY(
            SELECT x.id FROM omnichan.order_inbox x
             WHERE x.id = ANY (ids) AND x.channel_id = ch ORDER BY x.received_at, x.id));
    END LOOP;
    n := cardinality(done);

    -- order by order: every check, in this order (the first that fails holds
    -- the order with its error), then the same writes as the set-based way
    FOR r IN
        SELECT x.id FROM omnichan.order_inbox x
         WHERE x.id = ANY (ids) AND NOT x.id = ANY (done)
         ORDER BY x.received_at, x.id
    LOOP
        BEGIN
            SELECT * INTO STRICT i FROM omnichan.order_inbox WHERE id = r.id;
            IF c.id IS DISTINCT FROM i.channel_id THEN
                k_channel := NULL;      -- what follows is read again too
                SELECT * INTO STRICT c FROM omnichan.channel WHERE id = i.channel_id;
                s := omnichan._order_settings(c.id);
            END IF;

            -- products of the lines, from the channel's listings
            UPDATE omnichan.order_inbox_line il SET product_id = li.product_id
              FROM omnichan.listing li
             WHERE il.inbox_id = i.id AND li.channel_id = c.id AND li.sku = il.channel_sku
               AND il.product_id IS DISTINCT FROM li.product_id;
            SELECT string_agg(format('"%s" (line %s)', il.channel_sku, il.line_no), ', ' ORDER BY il.line_no)
              INTO missing
              FROM omnichan.order_inbox_line il WHERE il.inbox_id = i.id AND il.product_id IS NULL;
            IF missing IS NOT NULL THEN
                RAISE EXCEPTION 'no product is linked to SKU % of channel "%"', missing, c.name
                    USING ERRCODE = 'undefined_object',
                          HINT = 'Link the SKU with omnichan.listing_link(), then call omnichan.retry_orders().';
            END IF;

            IF k_channel IS DISTINCT FROM i.channel_id THEN
                SELECT * INTO STRICT comp FROM public.res_company WHERE id = c.company_id;
                SELECT * INTO STRICT cur FROM public.res_currency WHERE id = comp.currency_id;
                tax := NULL;
                tax_found := false;
                IF s ? 'tax_id' THEN
                    SELECT * INTO tax FROM public.account_tax t WHERE t.id = (s ->> 'tax_id')::int;
                    tax_found := FOUND;
                END IF;
                k_channel := i.channel_id;
            END IF;
            IF i.currency IS NOT NULL AND i.currency <> cur.name THEN
                RAISE EXCEPTION 'the order is in % but company % sells in %', i.currency, comp.id, cur.name
                    USING ERRCODE = 'feature_not_supported',
                          HINT = 'omnichan materializes orders in the company currency only.';
            END IF;
            IF COALESCE(comp.tax_calculation_rounding_method, 'round_per_line') <> 'round_per_line' THEN
                RAISE EXCEPTION 'company % rounds taxes "%"; omnichan computes Odoo''s totals for "round_per_line" only',
                    comp.id, comp.tax_calculation_rounding_method
                    USING ERRCODE = 'feature_not_supported';
            END IF;
            wh := COALESCE(i.warehouse_id, c.default_warehouse_id);
            IF NOT EXISTS (SELECT 1 FROM public.stock_warehouse w WHERE w.id = wh AND w.active AND w.company_id = c.company_id) THEN
                RAISE EXCEPTION 'warehouse % is not an active warehouse of company %', wh, c.company_id
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            IF s ? 'tax_id' AND (NOT tax_found OR tax.amount_type <> 'percent' OR NOT COALESCE(tax.active, false)
                                 OR tax.company_id <> c.company_id) THEN
                RAISE EXCEPTION 'setting "tax_id" (%) of channel "%" is not an active percent tax of company %',
                    s ->> 'tax_id', c.name, c.company_id
                    USING ERRCODE = 'invalid_parameter_value';
            END IF;
            SELECT x.code INTO missing
              FROM (VALUES (1, i.bill_country), (2, i.ship_country)) x(k, code)
             WHERE x.code IS NOT NULL AND NOT EXISTS (SELECT 1 FROM public.res_country rc WHERE rc.code = x.code)
             ORDER BY x.k LIMIT 1;
            IF FOUND THEN
                RAISE EXCEPTION 'country "%" is unknown to Odoo', missing
                    USING ERRCODE = 'invalid_parameter_value', HINT = 'Countries are the res_country rows, by code.';
            END IF;

            -- the lines: items, then shipping, gift wrap and promotions on the
            -- channel's products (the first bad line is reported)
            promo := COALESCE(i.discount_total,
                              (SELECT sum(il.discount) FROM omnichan.order_inbox_line il WHERE il.inbox_id = i.id), 0);
            SELECT q.* INTO l
              FROM (SELECT il.line_no, il.product_id, il.unit_price, NULL::text AS what
                      FROM omnichan.order_inbox_line il WHERE il.inbox_id = i.id
                    UNION ALL
                    SELECT 100001, (s ->> 'shipping_product_id')::int, i.shipping_total, 'shipping'
                     WHERE COALESCE(i.shipping_total, 0) > 0
                    UNION ALL
                    SELECT 100002, (s ->> 'giftwrap_product_id')::int, i.giftwrap_total, 'gift wrap'
                     WHERE COALESCE(i.giftwrap_total, 0) > 0
                    UNION ALL
                    SELECT 100003, (s ->> 'discount_product_id')::int, -promo, 'promotion'
                     WHERE promo > 0) q
             WHERE q.product_id IS NULL
                OR NOT EXISTS (SELECT 1 FROM public.product_product p
                                 JOIN public.product_template t ON t.id = p.product_tmpl_id
                                WHERE p.id = q.product_id AND COALESCE(p.active, false) AND COALESCE(t.active, false)
                                  AND (t.company_id IS NULL OR t.company_id = c.company_id))
             ORDER BY q.line_no
             LIMIT 1;
            IF FOUND THEN
                IF l.product_id IS NULL THEN
                    RAISE EXCEPTION 'the order has % charges (%) but channel "%" has no setting "%"',
                        l.what, abs(l.unit_price), c.name,
                        CASE l.what WHEN 'shipping' THEN 'shipping_product_id' WHEN 'gift wrap' THEN 'giftwrap_product_id'
                                    ELSE 'discount_product_id' END
                        USING ERRCODE = 'invalid_parameter_value',
                              HINT = 'Set it with omnichan.channel_alter(), then call omnichan.retry_orders().';
                END IF;
                -- raises what is wrong with the product
                PERFORM omnichan._sale_product(l.product_id,
                    CASE WHEN l.what IS NULL THEN format('line %s', l.line_no) ELSE 'the ' || l.what || ' product' END,
                    c.company_id);
            END IF;

            -- checked: written as the set-based way writes a batch (an error
            -- there, e.g. a date-range sequence, holds the order)
            IF cardinality(omnichan._materialize_set(c.id, ARRAY[i.id], true)) <> 1 THEN
                RAISE EXCEPTION 'order % of channel "%" could not be materialized', i.external_id, c.name
                    USING ERRCODE = 'internal_error';
            END IF;
            n := n + 1;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
            -- lock waits, cancellations, serialization failures: not the order's fault
            IF code ~ '^(40|53|57|58)' OR code = '55P03' THEN
                RAISE;
            END IF;
            UPDATE omnichan.order_inbox SET state = 'held', last_error = err, last_error_at = clock_timestamp(),
                   attempts = attempts + 1, updated_at = clock_timestamp()
             WHERE id = r.id;
            INSERT INTO omnichan.order_event (inbox_id, kind, detail)
            VALUES (r.id, 'held', jsonb_build_object('error', err, 'sqlstate', code));
        END;
    END LOOP;
    RETURN n;
END
$$;
COMMENT ON FUNCTION omnichan.materialize_orders(text, int) IS
'Turn up to max_orders received marketplace orders (of one channel, NULL: every active channel) into Odoo quotations, in the caller''s transaction; an order that cannot be materialized is held with its error (last_error). Concurrent calls never take the same order (SKIP LOCKED). Returns the number materialized.';

-- Retry the held orders of a channel: back to received, then materialized.
CREATE FUNCTION omnichan.retry_orders(channel text)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    n int;
    r record;
BEGIN
    -- versions the marketplace sent that were refused: submitted again
    FOR r IN SELECT i.id, i.invalid_order FROM omnichan.order_inbox i
              WHERE i.channel_id = cid AND i.invalid_order IS NOT NULL ORDER BY i.id LOOP
        BEGIN
            PERFORM omnichan.inbox_upsert(channel, r.invalid_order);
        EXCEPTION WHEN data_exception OR program_limit_exceeded OR integrity_constraint_violation THEN
            UPDATE omnichan.order_inbox SET last_error = 'invalid order: ' || SQLERRM,
                   last_error_at = clock_timestamp(), attempts = attempts + 1
             WHERE id = r.id;
        END;
    END LOOP;
    WITH held AS (
        SELECT i.id FROM omnichan.order_inbox i
         WHERE i.channel_id = cid AND i.state = 'held' AND i.sale_order_id IS NULL
           FOR UPDATE SKIP LOCKED
    ), upd AS (
        UPDATE omnichan.order_inbox i SET state = 'received', updated_at = clock_timestamp()
          FROM held WHERE i.id = held.id
        RETURNING i.id
    )
    INSERT INTO omnichan.order_event (inbox_id, kind) SELECT upd.id, 'retried' FROM upd;
    GET DIAGNOSTICS n = ROW_COUNT;
    -- with the orders received again meanwhile (a linked SKU releases them)
    RETURN omnichan.materialize_orders(channel, GREATEST(n, 100));
END
$$;
COMMENT ON FUNCTION omnichan.retry_orders(text) IS
'Try again the held orders of a channel (after linking their SKUs or fixing the channel''s settings): they are received again and materialized now. Returns the number materialized; the ones still failing are held again with their new error.';

-- Release a materialized order held for review (auto_confirm false): queue
-- its confirmation (and invoice, per the channel's workflow).
CREATE FUNCTION omnichan.order_release(channel text, external_id text)
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
    i omnichan.order_inbox;
    s jsonb := omnichan._order_settings(cid);
BEGIN
    SELECT * INTO i FROM omnichan.order_inbox x
     WHERE x.channel_id = cid AND x.external_id = order_release.external_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'channel "%" has no order "%"', channel, external_id USING ERRCODE = 'undefined_object';
    END IF;
    IF i.state <> 'materialized' OR i.sale_order_id IS NULL THEN
        RAISE EXCEPTION 'order "%" of channel "%" is %, not materialized', external_id, channel, i.state
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    PERFORM omnichan._odoo_action_request(i.sale_order_id, i.id,
        CASE s ->> 'order_workflow' WHEN 'confirm_invoice' THEN 'invoice' ELSE 'confirm' END, i.priority);
    RETURN i.id;
END
$$;
COMMENT ON FUNCTION omnichan.order_release(text, text) IS
'Confirm (and with order_workflow confirm_invoice, invoice) a materialized order through the bridge: for channels that hold orders for review (auto_confirm false). Returns the inbox id.';

CREATE VIEW omnichan.order_status AS
SELECT c.name AS channel, i.external_id, i.state, i.marketplace_status, i.received_at, i.materialized_at,
       so.name AS sale_order, so.state AS sale_order_state, so.delivery_status,
       i.order_total AS marketplace_total, i.odoo_amount_total AS odoo_total,
       i.priority, i.last_error,
       (SELECT a.action || ': ' || COALESCE(a.error, a.result, 'pending')
          FROM omnichan.odoo_action a WHERE a.inbox_id = i.id ORDER BY a.id DESC LIMIT 1) AS last_action
  FROM omnichan.order_inbox i
  JOIN omnichan.channel c ON c.id = i.channel_id
  LEFT JOIN public.sale_order so ON so.id = i.sale_order_id;
COMMENT ON VIEW omnichan.order_status IS
'Every inbox order: its state, its Odoo order, the totals the marketplace charged and Odoo shows, the last error and the last bridge action.';

-- The Python of the bridge's server action (run by Odoo with safe_eval:
-- public ORM methods only; env.cr for omnichan's own tables, with query
-- parameters).  Each queued action runs in a savepoint, so one failing order
-- never blocks the others; its error is written back to omnichan.odoo_action.
CREATE FUNCTION omnichan.odoo_bridge_code()
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $py$ SELECT $code$# omnichan bridge: written by omnichan.odoo_bridge_install(); reinstall it rather than edit it here.
# Runs what omnichan queued in omnichan.odoo_action with Odoo's own methods and writes the outcome back.
env.cr.execute("""
    SELECT a.id, a.sale_order_id, a.action, a.priority
      FROM omnichan.odoo_action a
     WHERE a.done_at IS NULL
     ORDER BY a.id
     LIMIT %s
       FOR UPDATE SKIP LOCKED""", (200,))
todo = env.cr.fetchall()
report = []
for action_id, order_id, action, priority in todo:
    result = False
    error = False
    savepoint = env.cr.savepoint()
    try:
        order = model.browse(order_id).exists()
        if not order:
            raise UserError('sale order %s does not exist' % order_id)
        order = order.with_company(order.company_id)
        if action in ('confirm', 'invoice'):
            if order.state in ('draft', 'sent'):
                # stored totals of rows written by SQL: let Odoo recompute them from their inputs.
                # Never product_uom_qty (nor product_id/product_uom): Odoo's price_unit and discount
                # depend on them and would be reset from the pricelist, replacing the marketplace's prices.
                order.order_line.modified(['price_unit', 'discount', 'tax_id'])
                order.modified(['order_line'])
                env.flush_all()
                order.action_confirm()
            if priority:
                order.picking_ids.filtered(lambda p: p.state not in ('done', 'cancel')).write({'priority': '1'})
            result = order.state
            if action == 'invoice' and order.state == 'sale':
                # in a savepoint of its own: an order Odoo cannot invoice yet (products invoiced on
                # delivery) stays confirmed, and the error says why it has no invoice
                invoicing = env.cr.savepoint()
                try:
                    invoices = order._create_invoices()
                    invoices.action_post()
                    invoicing.close(rollback=False)
                    result = 'invoiced ' + ', '.join(invoices.mapped('name'))
                except Exception as e:
                    invoicing.close(rollback=True)
                    error = 'confirmed, not invoiced: ' + (str(e) or repr(e))
        elif action == 'cancel':
            if order.state != 'cancel':
                order.with_context(disable_cancel_warning=True).action_cancel()
            result = order.state
        savepoint.close(rollback=False)
    except Exception as e:
        savepoint.close(rollback=True)
        result = False
        error = str(e) or repr(e)
    env.cr.execute("UPDATE omnichan.odoo_action SET done_at = now(), result = %s, error = %s WHERE id = %s",
                   (result or None, error or None, action_id))
    report.append('%s %s: %s' % (action, order_id, error or result))
# strict-SLA orders confirmed by hand in Odoo: their open deliveries are made urgent too
env.cr.execute("""
    SELECT p.id FROM omnichan.order_inbox i
      JOIN stock_picking p ON p.sale_id = i.sale_order_id
     WHERE i.priority AND p.state NOT IN ('done', 'cancel') AND COALESCE(p.priority, '0') = %s""", ('0',))
picking_ids = [row[0] for row in env.cr.fetchall()]
if picking_ids:
    env['stock.picking'].browse(picking_ids).write({'priority': '1'})
if report:
    log('omnichan bridge: ' + '; '.join(report))
$code$ $py$;
COMMENT ON FUNCTION omnichan.odoo_bridge_code() IS
'Python code of the bridge''s server action (see odoo_bridge_install and docs/orders.md).';

-- Install the bridge in Odoo's tables: one ir_act_server (state code, model
-- sale.order, usage ir_cron) and one ir_cron running it every minute, with
-- every column a SQL writer must fill (Odoo reference tables_full.md 6.2).
-- Odoo picks them up at its next cron poll, no restart needed.
CREATE FUNCTION omnichan.odoo_bridge_install(user_id int DEFAULT NULL)
RETURNS int
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    uid int := COALESCE(odoo_bridge_install.user_id, omnichan._odoo_xmlid('base.user_admin'));
    root int := COALESCE(omnichan._odoo_xmlid('base.user_root'), uid);
    model int;
    act int;
    cron int;
    now_utc timestamp := now() AT TIME ZONE 'UTC';
    aname text := 'omnichan: confirm, cancel and invoice marketplace orders';
BEGIN
    IF EXISTS (SELECT 1 FROM omnichan.odoo_bridge) THEN
        PERFORM omnichan.odoo_bridge_uninstall();
    END IF;
    SELECT m.id INTO model FROM public.ir_model m WHERE m.model = 'sale.order';
    IF model IS NULL THEN
        RAISE EXCEPTION 'Odoo has no sale.order model (ir_model)' USING ERRCODE = 'undefined_object';
    END IF;
    IF uid IS NULL OR NOT EXISTS (SELECT 1 FROM public.res_users u WHERE u.id = uid) THEN
        RAISE EXCEPTION 'user % does not exist in Odoo', uid USING ERRCODE = 'undefined_object';
    END IF;
    INSERT INTO public.ir_act_server
        (name, type, binding_type, binding_view_types, model_id, model_name, usage, state, code, sequence,
         update_m2m_operation, update_boolean_value, evaluation_type, activity_date_deadline_range,
         mail_post_autofollow,
         create_uid, write_uid, create_date, write_date)
    VALUES
        (jsonb_build_object('en_US', aname), 'ir.actions.server', 'action', 'list,form', model, 'sale.order',
         'ir_cron', 'code', omnichan.odoo_bridge_code(), 5,
         'add', 'true', 'value', 0, false,
         root, root, now_utc, now_utc)
    RETURNING id INTO act;
    INSERT INTO public.ir_cron
        (ir_actions_server_id, cron_name, user_id, active, interval_number, interval_type, numbercall,
         doall, nextcall, priority, create_uid, write_uid, create_date, write_date)
    VALUES
        (act, aname, uid, true, 1, 'minutes', -1, false, date_trunc('second', now_utc), 5,
         root, root, now_utc, now_utc)
    RETURNING id INTO cron;
    INSERT INTO omnichan.odoo_bridge (action_id, cron_id, user_id) VALUES (act, cron, uid);
    RETURN cron;
END
$$;
COMMENT ON FUNCTION omnichan.odoo_bridge_install(int) IS
'Install (or reinstall) the bridge in Odoo: a server action running omnichan.odoo_bridge_code() on sale.order and a scheduled action (ir_cron) running it every minute as the given Odoo user (default: the administrator). Returns the ir_cron id.';

CREATE FUNCTION omnichan.odoo_bridge_uninstall()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b omnichan.odoo_bridge;
BEGIN
    SELECT * INTO b FROM omnichan.odoo_bridge FOR UPDATE;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM public.ir_cron_trigger WHERE cron_id = b.cron_id;
    DELETE FROM public.ir_cron WHERE id = b.cron_id;
    DELETE FROM public.ir_act_server WHERE id = b.action_id;
    DELETE FROM omnichan.odoo_bridge;
    RETURN true;
END
$$;
COMMENT ON FUNCTION omnichan.odoo_bridge_uninstall() IS
'Remove the bridge''s scheduled action and server action from Odoo. Returns whether a bridge was installed.';

-- Ask Odoo to run the bridge now: an ir_cron_trigger row (due now) is what
-- Odoo's cron threads look for at each poll.  Their wake-up NOTIFY must be
-- sent in the "postgres" database, which SQL run in this database cannot do
-- (NOTIFY reaches the listeners of the current database only; see
-- docs/orders.md): the pg_notify below serves a relay listening here, and
-- without one Odoo runs the bridge at its next poll (at most 60 s).
CREATE FUNCTION omnichan.odoo_bridge_kick()
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    b omnichan.odoo_bridge;
    now_utc timestamp := now() AT TIME ZONE 'UTC';
BEGIN
    SELECT * INTO b FROM omnichan.odoo_bridge;
    IF NOT FOUND OR NOT EXISTS (SELECT 1 FROM public.ir_cron c WHERE c.id = b.cron_id) THEN
        RETURN false;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM public.ir_cron_trigger t WHERE t.cron_id = b.cron_id AND t.call_at <= now_utc) THEN
        INSERT INTO public.ir_cron_trigger (cron_id, call_at, create_uid, write_uid, create_date, write_date)
        VALUES (b.cron_id, now_utc, b.user_id, b.user_id, now_utc, now_utc);
    END IF;
    PERFORM pg_notify('cron_trigger', current_database());
    RETURN true;
END
$$;
COMMENT ON FUNCTION omnichan.odoo_bridge_kick() IS
'Make the bridge due now (ir_cron_trigger row, committed with the caller): Odoo runs it at its next cron poll (at most about a minute), or within a second when something relays the NOTIFY cron_trigger to the "postgres" database. Returns false when no bridge is installed.';

REVOKE ALL ON FUNCTION
    omnichan._order_settings(int),
    omnichan._channel_order_settings_check(),
    omnichan._order_text(jsonb, text, text, int, boolean, text, text),
    omnichan._order_number(jsonb, text, text, boolean, boolean),
    omnichan._order_object(jsonb, text, text, text[]),
    omnichan._route(int, text),
    omnichan.routing_rule_set(text, text, int, int),
    omnichan.routing_rule_clear(text, text),
    omnichan._odoo_action_request(int, bigint, text, boolean),
    omnichan._sale_order_shipped(int),
    omnichan.inbox_upsert(text, jsonb),
    omnichan._cround(numeric, numeric),
    omnichan._line_amounts(numeric, numeric, numeric, boolean, numeric),
    omnichan._country_state(int, text),
    omnichan._odoo_digits(text, int),
    omnichan._odoo_xmlid(text),
    omnichan._odoo_sequence_next_n(text, int, int),
    omnichan._channel_tag(int, int),
    omnichan._sale_product(int, text, int),
    omnichan._order_context(int, jsonb),
    omnichan._materialize_set(int, bigint[], boolean),
    omnichan.materialize_orders(text, int),
    omnichan.retry_orders(text),
    omnichan.order_release(text, text),
    omnichan.odoo_bridge_code(),
    omnichan.odoo_bridge_install(int),
    omnichan.odoo_bridge_uninstall(),
    omnichan.odoo_bridge_kick()
FROM PUBLIC;

-------------------------------------------------------------------------------
-- Order pull
--
-- The sync worker pulls each channel's orders every pull_interval (and on
-- sync_now / set_order_cursor): a chain of jobs (pages, items) whose answers
-- the connector turns into normalized orders, stored with inbox_upsert in the
-- transaction that records each answer; the channel's order_cursor moves
-- only with the last answer of the chain (src/pull.c).  Then
-- materialize_orders turns them into Odoo quotations.  An order cancelled by
-- the merchant in Odoo is reported back to the marketplace where its API
-- allows it.
-------------------------------------------------------------------------------

-- amazon getOrderItems and getOrder have their own usage plans (0.5 rps, burst 30)
INSERT INTO omnichan.rate_limit (kind, operation, rate, burst, max_concurrency) VALUES
    ('amazon', 'order_items', 0.5, 30, NULL),
    ('amazon', 'order_get', 0.5, 30, NULL),
    ('amazon', 'auth_rdt', 1, 10, NULL);

-- orders to fetch one by one (omnichan.fetch_order), taken by the worker
CREATE TABLE omnichan.fetch_request (
    channel_id      int NOT NULL REFERENCES omnichan.channel (id) ON DELETE CASCADE,
    external_id     text NOT NULL CHECK (pg_catalog.length(external_id) BETWEEN 1 AND 255),
    requested_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (channel_id, external_id)
);
COMMENT ON TABLE omnichan.fetch_request IS
'Orders asked for with omnichan.fetch_order, waiting for the sync worker to fetch them.';

CREATE INDEX order_inbox_cancel_idx ON omnichan.order_inbox (sale_order_id)
    WHERE state = 'materialized' AND cancel_reported_at IS NULL AND cancel_report_error IS NULL;

CREATE FUNCTION omnichan.fetch_order(channel text, external_id text)
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cid int := omnichan._channel_id(channel);
BEGIN
    IF external_id IS NULL OR length(external_id) NOT BETWEEN 1 AND 255 THEN
        RAISE EXCEPTION 'the order id must be 1 to 255 characters' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    INSERT INTO omnichan.fetch_request AS f (channel_id, external_id) VALUES (cid, external_id)
    ON CONFLICT ON CONSTRAINT fetch_request_pkey DO UPDATE SET requested_at = excluded.requested_at;
    PERFORM omnichan._wake_on_commit();
END
$$;
COMMENT ON FUNCTION omnichan.fetch_order(text, text) IS
'Fetch one order from the marketplace by its id now (recover an order the pulls missed or re-read it); it is stored and materialized like pulled orders, never duplicated.';

-- Store a page of pulled orders (called by the sync worker): each order with
-- inbox_upsert in its own subtransaction; an order it refuses is kept, held,
-- with the reason, so nothing the marketplace sent is dropped.
-- Set-based checks of a page of normalized orders (_inbox_store): each is
-- true only where the order-by-order check (inbox_upsert's _order_text,
-- _order_number, _order_object, the timestamp cast) would accept the value;
-- what they cannot vouch for goes through inbox_upsert, which names the
-- error.  SQL functions without sub-queries: inlined into the statement.
CREATE FUNCTION omnichan._jt(v jsonb)
RETURNS text
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE pg_catalog.jsonb_typeof(v)
           WHEN 'string' THEN NULLIF(pg_catalog.btrim(v OPERATOR(pg_catalog.#>>) '{}'), '')
           WHEN 'number' THEN v::text END
$$;

CREATE FUNCTION omnichan._jt_ok(v jsonb, p_max int, p_required boolean DEFAULT false, p_pattern text DEFAULT NULL,
                                  p_controls boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN omnichan._jt(v) IS NULL
                THEN NOT p_required AND (v IS NULL OR pg_catalog.jsonb_typeof(v) IN ('null', 'string'))
                ELSE pg_catalog.length(omnichan._jt(v)) OPERATOR(pg_catalog.<=) p_max
                     AND (p_controls OR omnichan._jt(v) OPERATOR(pg_catalog.!~) '[[:cntrl:]]')
                     AND (p_pattern IS NULL OR omnichan._jt(v) OPERATOR(pg_catalog.~) p_pattern) END
$$;

CREATE FUNCTION omnichan._jn(v jsonb)
RETURNS numeric
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN pg_catalog.jsonb_typeof(v) = 'number' THEN v::numeric
                WHEN pg_catalog.jsonb_typeof(v) = 'string'
                     AND (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~) '^\s*[0-9]+(\.[0-9]+)?\s*$'
                THEN (v OPERATOR(pg_catalog.#>>) '{}')::numeric END
$$;

CREATE FUNCTION omnichan._jn_ok(v jsonb, p_required boolean DEFAULT false, p_positive boolean DEFAULT false)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN v IS NULL OR pg_catalog.jsonb_typeof(v) = 'null' THEN NOT p_required
                WHEN omnichan._jn(v) IS NULL THEN false
                ELSE omnichan._jn(v) OPERATOR(pg_catalog.>=) 0
                     AND (NOT p_positive OR omnichan._jn(v) OPERATOR(pg_catalog.>) 0)
                     AND omnichan._jn(v) OPERATOR(pg_catalog.<) 1e12
                     AND pg_catalog.scale(omnichan._jn(v)) OPERATOR(pg_catalog.<=) 6 END
$$;

CREATE FUNCTION omnichan._jo_ok(v jsonb, p_keys text[])
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT CASE WHEN v IS NULL OR pg_catalog.jsonb_typeof(v) = 'null' THEN true
                WHEN pg_catalog.jsonb_typeof(v) = 'object'
                THEN (v OPERATOR(pg_catalog.-) p_keys) OPERATOR(pg_catalog.=) '{}'::jsonb
                ELSE false END
$$;

-- The fields of an address (inbox_upsert: shipping_address, billing_address).
CREATE FUNCTION omnichan._jaddr_ok(a jsonb)
RETURNS boolean
LANGUAGE sql IMMUTABLE
AS $$
    SELECT omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'name', 255)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'street', 255)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'street2', 255)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'city', 128)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'zip', 32)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'state', 128)
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'country', 64, false, '^[A-Za-z]{2}$')
       AND omnichan._jt_ok(a OPERATOR(pg_catalog.->) 'phone', 64)
$$;

-- A timestamp as "2026-11-23T17:21:47Z" (or with an offset, fraction up
-- to microseconds) that the cast to timestamptz accepts, else NULL.
CREATE FUNCTION omnichan._jts(v jsonb)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
    -- (nested CASEs: each test runs only once the previous one passed)
    SELECT CASE WHEN (v OPERATOR(pg_catalog.#>>) '{}') OPERATOR(pg_catalog.~)
                     '^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$'
           THEN CASE WHEN pg_catalog.substr(v OPERATOR(pg_catalog.#>>) '{}', 9, 2)::int OPERATOR(pg_catalog.<=)
                          pg_catalog.date_part('day', pg_catalog.make_date(
                              pg_catalog.substr(v OPERATOR(pg_catalog.#>>) '{}', 1, 4)::int,
                              pg_catalog.substr(v OPERATOR(pg_catalog.#>>) '{}', 6, 2)::int, 1)
                              OPERATOR(pg_catalog.+) '1 month -1 day'::interval)
                     THEN (v OPERATOR(pg_catalog.#>>) '{}')::timestamptz END END
$$;

CREATE FUNCTION omnichan._inbox_store(p_channel_id int, p_orders jsonb, OUT stored int, OUT refused int)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    cname text := (SELECT c.name FROM omnichan.channel c WHERE c.id = p_channel_id);
    s jsonb;
    addr text[] := ARRAY['name', 'street', 'street2', 'city', 'zip', 'state', 'country', 'phone'];
    o jsonb;
    err text;
    ext text;
    iid bigint;
    done bigint[];
BEGIN
    stored := 0;
    refused := 0;
    IF cname IS NULL THEN
        RAISE EXCEPTION 'channel % does not exist', p_channel_id USING ERRCODE = 'undefined_object';
    END IF;
    IF jsonb_typeof(p_orders) <> 'array' THEN
        RAISE EXCEPTION 'a page of orders must be a JSON array' USING ERRCODE = 'invalid_parameter_value';
    END IF;
    s := omnichan._order_settings(p_channel_id);

    -- set-based: the orders new to the inbox whose every field passes the
    -- checks (once each in the page), in one statement per table, the rows
    -- inbox_upsert writes; a known order in the same version (overlapping
    -- pulls) is left as it is
    WITH src AS (
        SELECT e.n, e.o, omnichan._jt(e.o -> 'external_id') AS ext
          FROM jsonb_array_elements(p_orders) WITH ORDINALITY AS e(o, n)
         WHERE jsonb_typeof(e.o) = 'object'
    ), ok AS (
        SELECT src.*, x.status, x.cancelled, x.flags
          FROM src
         CROSS JOIN LATERAL (
                SELECT omnichan._jt(src.o -> 'status') AS status,
                       COALESCE(CASE WHEN jsonb_typeof(src.o -> 'cancelled') = 'boolean'
                                     THEN (src.o ->> 'cancelled')::boolean END, false)
                       OR lower(COALESCE(omnichan._jt(src.o -> 'status'), '')) IN ('cancelled', 'canceled') AS cancelled,
                       ARRAY(SELECT f.v FROM (SELECT lower(e #>> '{}') AS v, min(k) AS k
                                                FROM jsonb_array_elements(CASE WHEN jsonb_typeof(src.o -> 'sla') = 'array'
                                                                               THEN src.o -> 'sla' ELSE '[]' END)
                                                     WITH ORDINALITY AS a(e, k)
                                               GROUP BY 1) f ORDER BY f.k) AS flags) x
         WHERE src.ext IS NOT NULL
           AND octet_length(src.o::text) <= 2097152
           AND (src.o - ARRAY['external_id', 'status', 'cancelled', 'ordered_at', 'currency', 'buyer', 'shipping_address',
                              'billing_address', 'totals', 'fees', 'sla', 'gift_message', 'lines', 'raw']) = '{}'::jsonb
           AND omnichan._jt_ok(src.o -> 'external_id', 255, true)
           AND omnichan._jt_ok(src.o -> 'status', 64)
           AND COALESCE(jsonb_typeof(src.o -> 'cancelled'), 'null') IN ('boolean', 'null')
           AND omnichan._jo_ok(src.o -> 'buyer', ARRAY['id', 'name', 'email', 'phone'])
           AND omnichan._jo_ok(src.o -> 'shipping_address', addr)
           AND omnichan._jo_ok(src.o -> 'billing_address', addr)
           AND omnichan._jo_ok(src.o -> 'totals', ARRAY['items', 'shipping', 'gift_wrap', 'discount', 'tax', 'total'])
           AND (src.o -> 'ordered_at' IS NULL OR src.o -> 'ordered_at' = 'null'::jsonb
                OR omnichan._jts(src.o -> 'ordered_at') IS NOT NULL)
           AND COALESCE(jsonb_typeof(src.o -> 'fees'), 'null') IN ('object', 'array', 'null')
           AND octet_length(COALESCE(src.o -> 'fees', 'null')::text) <= 65536
           AND octet_length(COALESCE(src.o -> 'raw', 'null')::text) <= 1048576
           -- (CASE: a test runs only on the JSON type it expects, whatever
           -- order the planner gives the conditions)
           AND CASE WHEN COALESCE(src.o -> 'sla', 'null') = 'null'::jsonb THEN true
                    WHEN jsonb_typeof(src.o -> 'sla') <> 'array' THEN false
                    WHEN jsonb_array_length(src.o -> 'sla') > 16 THEN false
                    ELSE NOT jsonb_path_exists(src.o -> 'sla',
                             '$[*] ? (@.type() != "string" || !(@ like_regex "^[A-Za-z0-9_]{1,32}$"))') END
           AND omnichan._jt_ok(src.o -> 'gift_message', 4000, false, NULL, true)
           AND omnichan._jt_ok(src.o -> 'buyer' -> 'id', 255)
           AND omnichan._jt_ok(src.o -> 'buyer' -> 'name', 255)
           AND omnichan._jt_ok(src.o -> 'buyer' -> 'email', 254, false, '^[^@[:space:]]+@[^@[:space:]]+$')
           AND omnichan._jt_ok(src.o -> 'buyer' -> 'phone', 64)
           AND omnichan._jaddr_ok(src.o -> 'shipping_address')
           AND omnichan._jaddr_ok(src.o -> 'billing_address')
           AND omnichan._jt_ok(src.o -> 'currency', 64, false, '^[A-Za-z]{3}$')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'items')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'shipping')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'gift_wrap')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'discount')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'tax')
           AND omnichan._jn_ok(src.o -> 'totals' -> 'total')
           AND COALESCE(omnichan._jt(src.o -> 'shipping_address' -> 'name'), omnichan._jt(src.o -> 'buyer' -> 'name')) IS NOT NULL
           AND CASE WHEN jsonb_typeof(src.o -> 'lines') = 'array'
                    THEN jsonb_array_length(src.o -> 'lines') BETWEEN 1 AND 500 ELSE false END
           AND NOT EXISTS (
                SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(src.o -> 'lines') = 'array'
                                                        THEN src.o -> 'lines' ELSE '[]' END) l(line)
                 WHERE NOT (CASE WHEN jsonb_typeof(l.line) = 'object'
                                 THEN (l.line - ARRAY['external_id', 'sku', 'quantity', 'unit_price', 'tax',
                                                      'discount']) = '{}'::jsonb
                                 ELSE false END
                            AND omnichan._jt_ok(l.line -> 'external_id', 255)
                            AND omnichan._jt_ok(l.line -> 'sku', 255, true)
                            AND omnichan._jn_ok(l.line -> 'quantity', true, true)
                            AND omnichan._jn_ok(l.line -> 'unit_price', true)
                            AND omnichan._jn_ok(l.line -> 'tax')
                            AND omnichan._jn_ok(l.line -> 'discount')))
           -- once in the page
           AND NOT EXISTS (SELECT 1 FROM src s2 WHERE s2.ext = src.ext AND s2.n <> src.n)
    ), known AS (
        SELECT ok.n, (i.raw = COALESCE(ok.o -> 'raw', ok.o) AND i.marketplace_status IS NOT DISTINCT FROM ok.status
                      AND i.invalid_order IS NULL) AS same
          FROM ok JOIN omnichan.order_inbox i ON i.channel_id = p_channel_id AND i.external_id = ok.ext
    ), fresh AS (
        SELECT ok.* FROM ok WHERE NOT EXISTS (SELECT 1 FROM known WHERE known.n = ok.n)
    ), ins AS (
        INSERT INTO omnichan.order_inbox AS i
            (channel_id, external_id, state, marketplace_status,
             buyer_id, buyer_name, buyer_email, buyer_phone,
             ship_name, ship_street, ship_street2, ship_city, ship_zip, ship_state, ship_country, ship_phone,
             bill_name, bill_street, bill_street2, bill_city, bill_zip, bill_state, bill_country, bill_phone,
             currency, ordered_at, items_total, shipping_total, giftwrap_total, discount_total, tax_total,
             order_total, fees, sla_flags, priority, gift_message, raw, warehouse_id, updated_at)
        SELECT p_channel_id, ok.ext, CASE WHEN ok.cancelled THEN 'cancelled' ELSE 'received' END, ok.status,
               omnichan._jt(ok.o -> 'buyer' -> 'id'), omnichan._jt(ok.o -> 'buyer' -> 'name'),
               omnichan._jt(ok.o -> 'buyer' -> 'email'), omnichan._jt(ok.o -> 'buyer' -> 'phone'),
               omnichan._jt(ok.o -> 'shipping_address' -> 'name'), omnichan._jt(ok.o -> 'shipping_address' -> 'street'),
               omnichan._jt(ok.o -> 'shipping_address' -> 'street2'), omnichan._jt(ok.o -> 'shipping_address' -> 'city'),
               omnichan._jt(ok.o -> 'shipping_address' -> 'zip'), omnichan._jt(ok.o -> 'shipping_address' -> 'state'),
               upper(omnichan._jt(ok.o -> 'shipping_address' -> 'country')),
               omnichan._jt(ok.o -> 'shipping_address' -> 'phone'),
               omnichan._jt(ok.o -> 'billing_address' -> 'name'), omnichan._jt(ok.o -> 'billing_address' -> 'street'),
               omnichan._jt(ok.o -> 'billing_address' -> 'street2'), omnichan._jt(ok.o -> 'billing_address' -> 'city'),
               omnichan._jt(ok.o -> 'billing_address' -> 'zip'), omnichan._jt(ok.o -> 'billing_address' -> 'state'),
               upper(omnichan._jt(ok.o -> 'billing_address' -> 'country')),
               omnichan._jt(ok.o -> 'billing_address' -> 'phone'),
               upper(omnichan._jt(ok.o -> 'currency')), omnichan._jts(ok.o -> 'ordered_at'),
               omnichan._jn(ok.o -> 'totals' -> 'items'), omnichan._jn(ok.o -> 'totals' -> 'shipping'),
               omnichan._jn(ok.o -> 'totals' -> 'gift_wrap'), omnichan._jn(ok.o -> 'totals' -> 'discount'),
               omnichan._jn(ok.o -> 'totals' -> 'tax'), omnichan._jn(ok.o -> 'totals' -> 'total'),
               NULLIF(ok.o -> 'fees', 'null'::jsonb), ok.flags,
               ok.flags && ARRAY(SELECT jsonb_array_elements_text(s -> 'priority_sla')),
               omnichan._jt(ok.o -> 'gift_message'), COALESCE(ok.o -> 'raw', ok.o),
               omnichan._route(p_channel_id, upper(COALESCE(omnichan._jt(ok.o -> 'shipping_address' -> 'country'),
                                                            omnichan._jt(ok.o -> 'billing_address' -> 'country')))),
               clock_timestamp()
          FROM fresh ok ORDER BY ok.n
        ON CONFLICT (channel_id, external_id) DO NOTHING
        RETURNING i.id, i.external_id, i.state, i.marketplace_status
    ), ev AS (
        INSERT INTO omnichan.order_event (inbox_id, kind, detail)
        SELECT ins.id, ins.state, jsonb_build_object('status', ins.marketplace_status) FROM ins ORDER BY ins.id
    ), lines AS (
        INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity,
                                               line_external_id, unit_price, tax, discount)
        SELECT ins.id, l.k, omnichan._jt(l.line -> 'sku'), li.product_id, omnichan._jn(l.line -> 'quantity'),
               omnichan._jt(l.line -> 'external_id'), omnichan._jn(l.line -> 'unit_price'),
               COALESCE(omnichan._jn(l.line -> 'tax'), 0), COALESCE(omnichan._jn(l.line -> 'discount'), 0)
          FROM ins
          JOIN fresh ok ON ok.ext = ins.external_id
         CROSS JOIN LATERAL jsonb_array_elements(ok.o -> 'lines') WITH ORDINALITY AS l(line, k)
          LEFT JOIN omnichan.listing li ON li.channel_id = p_channel_id AND li.sku = omnichan._jt(l.line -> 'sku')
    )
    -- (an order known in the same version: nothing to do, as inbox_upsert)
    SELECT array_agg(x.n) INTO done
      FROM (SELECT ok.n FROM ins JOIN fresh ok ON ok.ext = ins.external_id
            UNION ALL
            SELECT known.n FROM known WHERE known.same) x;
    stored := COALESCE(cardinality(done), 0);

    -- the others one by one, in page order (an error names its field)
    FOR o IN SELECT e.o FROM jsonb_array_elements(p_orders) WITH ORDINALITY AS e(o, n)
              WHERE NOT e.n = ANY (COALESCE(done, '{}')) ORDER BY e.n LOOP
        BEGIN
            PERFORM omnichan.inbox_upsert(cname, o);
            stored := stored + 1;
        EXCEPTION WHEN data_exception OR program_limit_exceeded OR integrity_constraint_violation THEN
            err := SQLERRM;
            refused := refused + 1;
            ext := CASE WHEN jsonb_typeof(o -> 'external_id') = 'string'
                             AND length(o ->> 'external_id') BETWEEN 1 AND 255
                        THEN o ->> 'external_id'
                        ELSE 'invalid:' || md5(o::text) END;
            INSERT INTO omnichan.order_inbox AS i (channel_id, external_id, state, raw, invalid_order,
                                                   last_error, last_error_at, attempts)
            VALUES (p_channel_id, ext, 'held',
                    CASE WHEN octet_length(COALESCE(o -> 'raw', o)::text) <= 1048576 THEN COALESCE(o -> 'raw', o) END,
                    CASE WHEN octet_length(o::text) <= 2097152 THEN o END,
                    'invalid order: ' || err, clock_timestamp(), 1)
            ON CONFLICT (channel_id, external_id) DO UPDATE SET
                invalid_order = excluded.invalid_order,
                last_error = excluded.last_error, last_error_at = excluded.last_error_at,
                attempts = i.attempts + 1,
                state = CASE WHEN i.sale_order_id IS NULL AND i.state IN ('received', 'held') THEN 'held'
                             ELSE i.state END,
                updated_at = clock_timestamp()
            RETURNING i.id INTO iid;
            INSERT INTO omnichan.order_event (inbox_id, kind, detail)
            VALUES (iid, 'held', jsonb_build_object('error', 'invalid order: ' || err));
        END;
    END LOOP;
END
$$;
COMMENT ON FUNCTION omnichan._inbox_store(int, jsonb) IS
'Store a page of pulled orders (sync worker): inbox_upsert each one; one it refuses is held with the reason and its data kept (invalid_order), never dropped.';

-- A SKU linked (or relinked) to a product: inbox lines waiting for it get the
-- product, and orders held only for unknown SKUs are received again (the
-- worker materializes them): "retried automatically once fixed".
CREATE FUNCTION omnichan._listing_resolve_orders()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    -- the common case (a push updating listings): no inbox line waits for a SKU
    IF NOT EXISTS (SELECT 1 FROM omnichan.order_inbox_line x WHERE x.product_id IS NULL) THEN
        RETURN NULL;
    END IF;
    WITH fixed AS (
        UPDATE omnichan.order_inbox_line l SET product_id = n.product_id
          FROM new_rows n, omnichan.order_inbox i
         WHERE i.id = l.inbox_id AND i.channel_id = n.channel_id AND l.channel_sku = n.sku
           AND i.sale_order_id IS NULL AND i.state IN ('received', 'held')
           AND l.product_id IS DISTINCT FROM n.product_id
        RETURNING l.inbox_id
    ), released AS (
        UPDATE omnichan.order_inbox i SET state = 'received', updated_at = clock_timestamp()
         WHERE i.id IN (SELECT inbox_id FROM fixed) AND i.state = 'held' AND i.invalid_order IS NULL
           AND i.last_error LIKE 'no product is linked to SKU %'
           AND NOT EXISTS (SELECT 1 FROM omnichan.order_inbox_line x
                            WHERE x.inbox_id = i.id AND x.product_id IS NULL
                              AND x.channel_sku NOT IN (SELECT n.sku FROM new_rows n WHERE n.channel_id = i.channel_id))
        RETURNING i.id
    )
    INSERT INTO omnichan.order_event (inbox_id, kind, detail)
    SELECT r.id, 'retried', '{"reason": "SKU linked"}' FROM released r;
    RETURN NULL;
END
$$;
CREATE INDEX order_inbox_line_unlinked_idx ON omnichan.order_inbox_line (channel_sku)
    WHERE product_id IS NULL;
CREATE TRIGGER listing_resolve_orders_ins AFTER INSERT ON omnichan.listing
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION omnichan._listing_resolve_orders();
CREATE TRIGGER listing_resolve_orders_upd AFTER UPDATE ON omnichan.listing
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION omnichan._listing_resolve_orders();

-- What the order pull does, per channel.
CREATE VIEW omnichan.order_pull_status AS
SELECT c.name AS channel,
       s.order_cursor,
       s.last_pull_at,
       s.next_pull_at,
       (SELECT count(*) FROM omnichan.job j
         WHERE j.channel_id = c.id AND j.state IN ('queued', 'running') AND j.payload ? 'pull') AS pull_jobs,
       (SELECT count(*) FROM omnichan.order_inbox i WHERE i.channel_id = c.id AND i.state = 'received') AS received,
       (SELECT count(*) FROM omnichan.order_inbox i WHERE i.channel_id = c.id AND i.state = 'held') AS held,
       (SELECT count(*) FROM omnichan.order_inbox i WHERE i.channel_id = c.id AND i.state = 'attention') AS attention,
       (SELECT count(*) FROM omnichan.fetch_request f WHERE f.channel_id = c.id) AS fetch_requests
  FROM omnichan.channel c
  LEFT JOIN omnichan.channel_state s ON s.channel_id = c.id;
COMMENT ON VIEW omnichan.order_pull_status IS
'Per channel: the order cursor (orders updated since then are pulled next), when the last pull started and the next is due, pull jobs in flight, inbox orders waiting, held or needing attention, and fetch_order requests waiting.';

REVOKE ALL ON FUNCTION
    omnichan.fetch_order(text, text),
    omnichan._inbox_store(int, jsonb),
    omnichan._jt(jsonb),
    omnichan._jt_ok(jsonb, int, boolean, text, boolean),
    omnichan._jn(jsonb),
    omnichan._jn_ok(jsonb, boolean, boolean),
    omnichan._jo_ok(jsonb, text[]),
    omnichan._jaddr_ok(jsonb),
    omnichan._jts(jsonb),
    omnichan._listing_resolve_orders()
FROM PUBLIC;
