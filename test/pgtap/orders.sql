--
-- orders: the order inbox (inbox_upsert), materialization into Odoo
-- quotations (materialize_orders, retry_orders), cancellations, routing,
-- the pending demand of omnichan.ats, and the Odoo bridge's rows.
--
-- Expected Odoo rows are those of the Odoo reference traces (flows 01, 02,
-- 08): e.g. 2 x 19.99 with a 20 % price-included tax -> subtotal 33.32, tax
-- 6.66, total 39.98.  Runs on the project's fixture and on the real Odoo 17
-- demo database: taxes, products, warehouses, channels and listings are
-- created inside the (rolled back) transaction; existing records are only
-- looked up by external id or code.
--
BEGIN;
SELECT plan(138);

SET LOCAL client_min_messages = warning;

------------------------------------------------------------------- helpers
CREATE FUNCTION pg_temp.xid(x text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT res_id FROM public.ir_model_data
    WHERE module = split_part(x, '.', 1) AND name = split_part(x, '.', 2) $$;

CREATE FUNCTION pg_temp.product(p_code text, p_name text, p_type text DEFAULT 'product') RETURNS int
LANGUAGE plpgsql AS
$$
DECLARE
    u int := pg_temp.xid('uom.product_uom_unit');
    t int;
    p int;
BEGIN
    INSERT INTO public.product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                         sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                         list_price, sale_delay, invoice_policy, sequence)
    VALUES (pg_temp.xid('product.product_category_all'), u, u, p_type, p_type,
            jsonb_build_object('en_US', p_name), 'none', 'no-message', 'no-message',
            true, true, true, 1, CASE WHEN p_type = 'product' THEN 2 ELSE 0 END, 'order', 1)
    RETURNING id INTO t;
    INSERT INTO public.product_product (product_tmpl_id, active, default_code)
    VALUES (t, true, p_code) RETURNING id INTO p;
    RETURN p;
END
$$;

CREATE FUNCTION pg_temp.tax(p_name text, p_amount numeric, p_included boolean) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.account_tax (company_id, sequence, tax_group_id, country_id, type_tax_use, amount_type,
                                    name, amount, active, price_include, include_base_amount, tax_exigibility)
    SELECT c.id, 1, (SELECT t.tax_group_id FROM public.account_tax t ORDER BY t.id LIMIT 1),
           (SELECT id FROM public.res_country WHERE code = 'US'), 'sale', 'percent',
           jsonb_build_object('en_US', p_name), p_amount, true, p_included, false, 'on_invoice'
      FROM public.res_company c WHERE c.id = pg_temp.xid('base.main_company')
    RETURNING id
$$;

-- a second warehouse of the company (view location + stock location)
CREATE FUNCTION pg_temp.warehouse(p_code text) RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    co int := pg_temp.xid('base.main_company');
    v int := nextval('public.stock_location_id_seq');
    s int := nextval('public.stock_location_id_seq');
    w int;
BEGIN
    INSERT INTO public.stock_location (id, name, complete_name, location_id, parent_path, usage, company_id, active,
                                       scrap_location, replenish_location)
    SELECT v, p_code, p_code, p.id, p.parent_path || v || '/', 'view', co, true, false, false
      FROM public.stock_location p WHERE p.id = pg_temp.xid('stock.stock_location_locations');
    INSERT INTO public.stock_location (id, name, complete_name, location_id, parent_path, usage, company_id, active,
                                       scrap_location, replenish_location)
    SELECT s, 'Stock', p_code || '/Stock', v, p.parent_path || s || '/', 'internal', co, true, false, true
      FROM public.stock_location p WHERE p.id = v;
    INSERT INTO public.stock_warehouse (company_id, view_location_id, lot_stock_id, name, code, sequence,
                                        reception_steps, delivery_steps, manufacture_steps, active)
    VALUES (co, v, s, 'omnichan orders ' || p_code, p_code, 91, 'one_step', 'ship_only', 'mrp_one_step', true)
    RETURNING id INTO w;
    RETURN w;
END
$$;

-- the sale order of an inbox order
CREATE FUNCTION pg_temp.so(p_channel text, p_ext text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT i.sale_order_id FROM omnichan.order_inbox i JOIN omnichan.channel c ON c.id = i.channel_id
    WHERE c.name = p_channel AND i.external_id = p_ext $$;
CREATE FUNCTION pg_temp.inbox(p_channel text, p_ext text) RETURNS omnichan.order_inbox LANGUAGE sql STABLE AS
$$ SELECT i.* FROM omnichan.order_inbox i JOIN omnichan.channel c ON c.id = i.channel_id
    WHERE c.name = p_channel AND i.external_id = p_ext $$;

-------------------------------------------------------------------- set up
SELECT pg_temp.xid('base.main_company') AS co, pg_temp.xid('stock.warehouse0') AS wh,
       pg_temp.xid('base.user_admin') AS admin \gset
SELECT pg_temp.tax('omnichan 20% incl', 20, true) AS tax_incl, pg_temp.tax('omnichan 10% excl', 10, false) AS tax_excl \gset
SELECT pg_temp.product('OCO-W', 'omnichan Widget') AS pw, pg_temp.product('OCO-G', 'omnichan Gadget') AS pg,
       pg_temp.product('OCO-X', 'omnichan Extra') AS px,
       pg_temp.product('OCO-SHIP', 'omnichan Shipping', 'service') AS pship,
       pg_temp.product('OCO-WRAP', 'omnichan Gift wrap', 'service') AS pwrap,
       pg_temp.product('OCO-PROMO', 'omnichan Promotion', 'service') AS ppromo \gset
-- weights, for the quotations' shipping_weight (Odoo's estimate: goods lines only)
UPDATE public.product_product SET weight = CASE id WHEN :pw THEN 0.35 WHEN :pg THEN 1.2 ELSE 2 END
 WHERE id IN (:pw, :pg, :pship, :pwrap);
SELECT pg_temp.warehouse('OCO2') AS wh2 \gset

SELECT lives_ok(format($$SELECT omnichan.channel_create('oc-orders', 'amazon', '{
        "seller_id": "A2EXAMPLE1234", "marketplace_ids": ["A13V1IB3VIYZZH"], "company_id": %s,
        "warehouse_ids": [%s, %s], "default_warehouse_id": %s,
        "tax_id": %s, "shipping_product_id": %s, "giftwrap_product_id": %s, "discount_product_id": %s,
        "order_workflow": "confirm"}')$$, :co, :wh, :wh2, :wh, :tax_incl, :pship, :pwrap, :ppromo),
    'a channel with order settings');
SELECT lives_ok(format($$SELECT omnichan.channel_create('oc-excl', 'ebay', '{
        "marketplace_id": "EBAY_US", "company_id": %s, "warehouse_ids": [%s], "tax_id": %s,
        "order_workflow": "confirm_invoice", "auto_confirm": false,
        "order_naming": "prefix", "order_prefix": "EX-"}')$$, :co, :wh, :tax_excl),
    'a channel with a price-excluded tax, prefix naming and hold-for-review');
SELECT omnichan.listing_link('oc-orders', :pw, '{"sku": "W-1"}') IS NOT NULL AS l1,
       omnichan.listing_link('oc-orders', :pg, '{"sku": "G-1"}') IS NOT NULL AS l2,
       omnichan.listing_link('oc-excl', :pw, '{"sku": "EW"}') IS NOT NULL AS l3 \gset

------------------------------------------------------------ order settings
SELECT throws_ok($$SELECT omnichan.channel_alter('oc-orders', '{"order_workflow": "ship"}')$$,
    '22023', 'setting "order_workflow" must be one of: quotation, confirm, confirm_invoice', 'workflow choices');
SELECT throws_ok(format($$SELECT omnichan.channel_alter('oc-orders', '{"tax_id": %s}')$$,
                        (SELECT id FROM public.account_tax WHERE type_tax_use = 'purchase' ORDER BY id LIMIT 1)),
    '22023', format('setting "tax_id" must be an active percent sale tax of company %s', :co), 'tax_id must be a sale tax');
SELECT throws_ok($$SELECT omnichan.channel_alter('oc-orders', '{"shipping_product_id": 2147483647}')$$,
    '22023', 'setting "shipping_product_id" refers to no product', 'product settings must name products');
SELECT throws_ok($$SELECT omnichan.channel_alter('oc-orders', '{"order_prefix": "a b"}')$$,
    '22023', NULL, 'order_prefix has a format');
SELECT is((SELECT settings ->> 'order_workflow' FROM omnichan.channel WHERE name = 'oc-orders'), 'confirm',
    'order settings are kept in the channel''s settings');
SELECT is(omnichan._order_settings((SELECT id FROM omnichan.channel WHERE name = 'oc-orders')) ->> 'order_naming',
    'sequence', 'defaults are filled when read');

------------------------------------------------------------ inbox validation
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"lines": [{"sku": "W-1", "quantity": 1, "unit_price": 1}],
                                                               "buyer": {"name": "X"}}')$$,
    '22004', 'order field "external_id" is required', 'external_id is required');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "colour": 1,
        "buyer": {"name": "X"}, "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 1}]}')$$,
    '22023', 'unknown order field "colour"', 'unknown fields are refused');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"name": "X"},
        "lines": [{"sku": "W-1", "quantity": 0, "unit_price": 1}]}')$$,
    '22003', 'order field "lines[1].quantity" must be greater than 0', 'quantities are positive');
SELECT throws_ok(format($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"name": "X"},
        "lines": [{"sku": "%s", "quantity": 1, "unit_price": 1}]}')$$, repeat('s', 256)),
    '22001', 'order field "lines[1].sku" must be at most 255 characters', 'SKUs are bounded');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"name": "X"},
        "shipping_address": {"country": "France"}, "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 1}]}')$$,
    '22023', 'order field "shipping_address.country" must be an ISO 3166-1 alpha-2 country code such as "FR"',
    'countries are ISO codes');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"name": "X"}, "lines": []}')$$,
    '22023', 'order field "lines" must be a non-empty array', 'an order has lines');
SELECT throws_ok(format($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"name": "X"},
        "raw": {"blob": "%s"}, "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 1}]}')$$, repeat('x', 1048577)),
    '22001', 'order field "raw" must be at most 1 MiB as JSON text', 'the raw payload is bounded');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "V1", "buyer": {"email": "nope"},
        "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 1}]}')$$,
    '22023', 'order field "buyer.email" must be an e-mail address', 'e-mail addresses are checked');
SELECT throws_ok($$SELECT omnichan.inbox_upsert('oc-nope', '{}')$$, '42704', NULL, 'unknown channel');
SELECT is((SELECT count(*) FROM omnichan.order_inbox WHERE external_id = 'V1'), 0::bigint, 'invalid orders leave nothing');

------------------------------------------------------------ order A: received
\set order_a '{"external_id": "OC-A", "status": "Unshipped", "currency": "USD", "ordered_at": "2026-11-20T10:11:12.5Z", "buyer": {"id": "BUYER-1", "name": "Jean Dupont", "email": "Jean.Dupont.OC@example.com", "phone": "+33 6 12 34 56 78"}, "shipping_address": {"name": "Jean Dupont", "street": "1 rue de la Paix", "city": "Paris", "zip": "75002", "country": "fr"}, "totals": {"items": 44.98, "shipping": 4.99, "gift_wrap": 2.50, "discount": 3.00, "tax": 8.24, "total": 49.47}, "fees": {"referral": 6.75}, "sla": ["Prime"], "gift_message": "Happy <b>birthday</b>\\nLove", "lines": [{"external_id": "L1", "sku": "W-1", "quantity": 2, "unit_price": 19.99, "tax": 6.66}, {"external_id": "L2", "sku": "G-1", "quantity": 1, "unit_price": "5.00"}], "raw": {"AmazonOrderId": "OC-A", "IsPrime": true}}'
SELECT omnichan.inbox_upsert('oc-orders', :'order_a') AS ia \gset
SELECT results_eq(
    $$SELECT state, marketplace_status, buyer_id, ship_country, currency, ordered_at, shipping_total, order_total,
             sla_flags, priority, gift_message, raw, fees, warehouse_id, sale_order_id
        FROM omnichan.order_inbox WHERE external_id = 'OC-A'$$,
    $$VALUES ('received', 'Unshipped', 'BUYER-1', 'FR', 'USD', '2026-11-20 10:11:12.5+00'::timestamptz, 4.99, 49.47,
              '{prime}'::text[], true, E'Happy <b>birthday</b>\nLove',
              '{"AmazonOrderId": "OC-A", "IsPrime": true}'::jsonb, '{"referral": 6.75}'::jsonb, NULL::int, NULL::int)$$,
    'the normalized order is stored, raw payload verbatim, strict SLA = priority');
SELECT results_eq(
    format($$SELECT line_no, channel_sku, product_id, quantity, unit_price, tax, line_external_id
               FROM omnichan.order_inbox_line WHERE inbox_id = %s ORDER BY line_no$$, :ia),
    format($$VALUES (1, 'W-1', %s, 2::numeric, 19.99, 6.66, 'L1'), (2, 'G-1', %s, 1::numeric, 5.00, 0::numeric, 'L2')$$,
           :pw, :pg),
    'lines are stored with the product of their listing');
SELECT is((omnichan.ats(:pw)).pending, 2::numeric, 'the received order is pending demand');
SELECT is(omnichan.inbox_upsert('oc-orders', :'order_a'), :ia::bigint, 'an upsert of the same order updates it');
SELECT is((SELECT count(*) FROM omnichan.order_inbox WHERE external_id = 'OC-A'), 1::bigint, 'never a duplicate');

------------------------------------------------------------ order A: materialized
SELECT id AS seq_id, prefix AS seq_prefix, padding AS seq_padding FROM public.ir_sequence
 WHERE code = 'sale.order' AND active AND (company_id = :co OR company_id IS NULL)
 ORDER BY company_id NULLS LAST, id LIMIT 1 \gset
SELECT nextval(format('public.ir_sequence_%s', lpad(:'seq_id', 3, '0'))) AS seq_n \gset

SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'one order materialized');
SELECT pg_temp.so('oc-orders', 'OC-A') AS so_a, (pg_temp.inbox('oc-orders', 'OC-A')).partner_id AS partner_a \gset
SELECT results_eq(
    format($$SELECT state, sale_order_id IS NOT NULL, materialized_at IS NOT NULL, last_error, odoo_amount_total
               FROM omnichan.order_inbox WHERE id = %s$$, :ia),
    $$VALUES ('materialized', true, true, NULL::text, 49.47)$$,
    'the inbox order is materialized, with the Odoo total');
SELECT is((SELECT name::text FROM public.sale_order WHERE id = :so_a),
          :'seq_prefix' || lpad((:seq_n + 1)::text, :seq_padding, '0'), 'name from Odoo''s sale.order sequence');
SELECT results_eq(
    format($$SELECT state, company_id, partner_id, partner_invoice_id, partner_shipping_id, date_order, warehouse_id,
                    picking_policy, currency_id, currency_rate, client_order_ref, origin, user_id, pricelist_id,
                    locked, invoice_status, shipping_weight, create_uid, write_uid
               FROM public.sale_order WHERE id = %s$$, :so_a),
    format($$VALUES ('draft'::varchar, %s, %s, %s, %s, '2026-11-20 10:11:12'::timestamp, %s, 'direct'::varchar,
                     (SELECT currency_id FROM public.res_company WHERE id = %s), 1.0::numeric, 'OC-A'::varchar,
                     'oc-orders'::varchar, %s, NULL::int, false, 'no'::varchar, 1.9::float8, %s, %s)$$,
           :co, :partner_a, :partner_a, :partner_a, :wh, :co, :admin, :admin, :admin),
    'quotation: the columns Odoo writes (flow 02 / RECOMMENDED set)');
SELECT results_eq(
    format($$SELECT so.require_signature, so.require_payment, so.prepayment_percent, so.validity_date
               FROM public.sale_order so WHERE so.id = %s$$, :so_a),
    format($$SELECT COALESCE(c.portal_confirmation_sign, false), COALESCE(c.portal_confirmation_pay, false),
                    COALESCE(c.prepayment_percent, 1.0),
                    CASE WHEN c.quotation_validity_days > 0
                         THEN (now() AT TIME ZONE 'UTC')::date + c.quotation_validity_days END
               FROM public.res_company c WHERE c.id = %s$$, :co),
    'portal settings and validity from the company');
SELECT ok((SELECT team_id IS NOT NULL AND team_id = COALESCE(
              (SELECT u.sale_team_id FROM public.res_users u WHERE u.id = :admin),
              (SELECT t.id FROM public.crm_team t WHERE COALESCE(t.active, true)
                  AND (t.company_id IS NULL OR t.company_id = :co) ORDER BY t.sequence, t.id LIMIT 1))
             FROM public.sale_order WHERE id = :so_a), 'sales team as Odoo defaults it');
SELECT is((SELECT note FROM public.sale_order WHERE id = :so_a),
          '<p>Gift message: Happy &lt;b&gt;birthday&lt;/b&gt;<br>Love</p>', 'the gift message is the order''s note, as html');
SELECT results_eq(
    format($$SELECT amount_untaxed, amount_tax, amount_total, amount_to_invoice FROM public.sale_order WHERE id = %s$$, :so_a),
    $$VALUES (41.23, 8.24, 49.47, 49.47)$$,
    'order totals to the cent (price-included tax), equal to what the marketplace charged');
SELECT results_eq(
    format($$SELECT name, product_id, product_uom_qty, price_unit, discount, price_subtotal, price_tax, price_total,
                    price_reduce_taxexcl, price_reduce_taxinc, qty_delivered_method, is_delivery, customer_lead
               FROM public.sale_order_line WHERE order_id = %s ORDER BY id$$, :so_a),
    format($$VALUES
        ('[OCO-W] omnichan Widget', %s, 2.00, 19.99, 0::numeric, 33.32, 6.66::float8, 39.98, 16.66, 19.99, 'stock_move'::varchar, false, 2::float8),
        ('[OCO-G] omnichan Gadget', %s, 1.00, 5.00, 0::numeric, 4.17, 0.83::float8, 5.00, 4.17, 5.00, 'stock_move', false, 2),
        ('[OCO-SHIP] omnichan Shipping', %s, 1.00, 4.99, 0::numeric, 4.16, 0.83::float8, 4.99, 4.16, 4.99, 'manual', true, 0),
        ('[OCO-WRAP] omnichan Gift wrap', %s, 1.00, 2.50, 0::numeric, 2.08, 0.42::float8, 2.50, 2.08, 2.50, 'manual', false, 0),
        ('[OCO-PROMO] omnichan Promotion', %s, 1.00, -3.00, 0::numeric, -2.50, -0.50::float8, -3.00, -2.50, -3.00, 'manual', false, 0)$$,
        :pw, :pg, :pship, :pwrap, :ppromo),
    'lines: items, shipping, gift wrap and promotion, amounts as Odoo computes them (2 x 19.99 incl. 20 % -> 33.32 + 6.66)');
SELECT results_eq(
    format($$SELECT DISTINCT company_id, currency_id, order_partner_id, salesman_id, state, sequence, product_uom,
                    qty_delivered, qty_invoiced, qty_to_invoice, invoice_status, untaxed_amount_invoiced,
                    untaxed_amount_to_invoice, product_packaging_qty
               FROM public.sale_order_line WHERE order_id = %s$$, :so_a),
    format($$VALUES (%s, (SELECT currency_id FROM public.res_company WHERE id = %s), %s, %s, 'draft'::varchar, 10, %s,
                     0::numeric, 0::numeric, 0::numeric, 'no'::varchar, 0::numeric, 0::numeric, 0::float8)$$,
           :co, :co, :partner_a, :admin, pg_temp.xid('uom.product_uom_unit')),
    'lines: the stored related copies and invoicing columns Odoo writes');
SELECT results_eq(
    format($$SELECT count(*), count(*) FILTER (WHERE r.account_tax_id = %s)
               FROM public.sale_order_line l JOIN public.account_tax_sale_order_line_rel r ON r.sale_order_line_id = l.id
              WHERE l.order_id = %s$$, :tax_incl, :so_a),
    $$VALUES (5::bigint, 5::bigint)$$, 'the channel''s tax on every line');
SELECT results_eq(
    format($$SELECT t.name, count(*) OVER () FROM public.sale_order_tag_rel r JOIN public.crm_tag t ON t.id = r.tag_id
              WHERE r.order_id = %s$$, :so_a),
    $$VALUES ('{"en_US": "oc-orders"}'::jsonb, 1::bigint)$$, 'the channel tag (jsonb name)');
SELECT results_eq(
    format($$SELECT name, type, parent_id, active, is_company, commercial_partner_id, complete_name, partner_share,
                    lang, email, email_normalized, phone, street, city, zip, country_id, company_id, customer_rank,
                    supplier_rank, invoice_warn, sale_warn, picking_warn, purchase_warn
               FROM public.res_partner WHERE id = %s$$, :partner_a),
    format($$VALUES ('Jean Dupont'::varchar, 'contact'::varchar, NULL::int, true, false, %s, 'Jean Dupont'::varchar, true,
                     COALESCE((SELECT p.lang FROM public.res_users u JOIN public.res_partner p ON p.id = u.partner_id
                                WHERE u.id = %s), 'en_US')::varchar,
                     'Jean.Dupont.OC@example.com'::varchar, 'jean.dupont.oc@example.com'::varchar,
                     '+33 6 12 34 56 78'::varchar, '1 rue de la Paix'::varchar, 'Paris'::varchar, '75002'::varchar,
                     (SELECT id FROM public.res_country WHERE code = 'FR'), NULL::int, 0, 0,
                     'no-message'::varchar, 'no-message'::varchar, 'no-message'::varchar, 'no-message'::varchar)$$,
           :partner_a, :admin),
    'customer: the columns Odoo writes for a new contact (flow 01, partner ablation)');
SELECT is((SELECT partner_id FROM omnichan.customer_link WHERE buyer_id = 'BUYER-1'), :partner_a, 'buyer linked to the customer');
SELECT is((SELECT count(*) FROM public.res_partner WHERE parent_id = :partner_a), 0::bigint,
          'shipping to the customer''s own address: no delivery child');
SELECT results_eq(
    format($$SELECT action, priority, done_at FROM omnichan.odoo_action WHERE sale_order_id = %s$$, :so_a),
    $$VALUES ('confirm', true, NULL::timestamptz)$$,
    'workflow confirm: confirmation queued for Odoo, with the SLA priority');
SELECT is((omnichan.ats(:pw)).pending, 2::numeric, 'pending demand moved from the inbox to the quotation, not doubled');
SELECT is((SELECT count(*) FROM omnichan.order_event WHERE inbox_id = :ia AND kind = 'total_mismatch'), 0::bigint,
          'the Odoo total is the marketplace''s');

------------------------------------------------------------ no duplicate
SELECT is(omnichan.materialize_orders('oc-orders'), 0, 'a second materialization finds nothing to do');
SELECT is(omnichan.inbox_upsert('oc-orders', jsonb_set(:'order_a'::jsonb, '{status}', '"Shipped"')), :ia::bigint,
          'an update after materialization: same inbox order');
SELECT is(omnichan.materialize_orders('oc-orders'), 0, 'and still no second Odoo order');
SELECT is((SELECT count(*) FROM public.sale_order WHERE client_order_ref = 'OC-A'), 1::bigint, 'exactly one Odoo order');
SELECT results_eq(
    format($$SELECT state, marketplace_status FROM omnichan.order_inbox WHERE id = %s$$, :ia),
    $$VALUES ('materialized', 'Shipped')$$, 'the new status is recorded');
SELECT is((SELECT detail -> 'status' FROM omnichan.order_event WHERE inbox_id = :ia
            AND kind = 'changed_after_materialization' ORDER BY id DESC LIMIT 1),
          '["Unshipped", "Shipped"]'::jsonb, 'the change is in the order''s history');

------------------------------------------------------------ repeat buyer, delivery address
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-B", "buyer": {"id": "BUYER-1", "name": "Jean Dupont"},
    "shipping_address": {"name": "Marie Dupont", "street": "10 avenue Foch", "street2": "Bat. B", "city": "Lyon",
                         "zip": "69006", "country": "FR", "phone": "+33 6 98 76 54 32"},
    "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 19.99}]}') AS ib \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'the repeat buyer''s order is materialized');
SELECT results_eq(
    format($$SELECT partner_id, partner_invoice_id, partner_shipping_id <> partner_id FROM public.sale_order WHERE id = %s$$,
           pg_temp.so('oc-orders', 'OC-B')),
    format($$VALUES (%s, %s, true)$$, :partner_a, :partner_a),
    'repeat buyer: the same customer');
SELECT results_eq(
    format($$SELECT p.name, p.type, p.parent_id, p.commercial_partner_id, p.complete_name, p.active, p.street, p.street2,
                    p.city, p.zip, p.phone, p.partner_share
               FROM public.sale_order so JOIN public.res_partner p ON p.id = so.partner_shipping_id WHERE so.id = %s$$,
           pg_temp.so('oc-orders', 'OC-B')),
    format($$VALUES ('Marie Dupont'::varchar, 'delivery'::varchar, %s, %s, 'Jean Dupont, Marie Dupont'::varchar, true,
                     '10 avenue Foch'::varchar, 'Bat. B'::varchar, 'Lyon'::varchar, '69006'::varchar,
                     '+33 6 98 76 54 32'::varchar, true)$$, :partner_a, :partner_a),
    'a different shipping address: a delivery child of the customer (flow 01)');
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-B2", "buyer": {"id": "BUYER-1", "name": "Jean Dupont"},
    "shipping_address": {"name": "Marie Dupont", "street": "10 avenue Foch", "street2": "Bat. B", "city": "Lyon",
                         "zip": "69006", "country": "FR"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}') IS NOT NULL AS ib2 \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'a third order of the buyer');
SELECT is((SELECT partner_shipping_id FROM public.sale_order WHERE id = pg_temp.so('oc-orders', 'OC-B2')),
          (SELECT partner_shipping_id FROM public.sale_order WHERE id = pg_temp.so('oc-orders', 'OC-B')),
          'the same delivery address is reused');
SELECT is((SELECT count(*) FROM public.res_partner WHERE parent_id = :partner_a OR id = :partner_a), 2::bigint,
          'no duplicate partner');
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-B3", "buyer": {"id": "BUYER-9", "name": "J. Dupont",
    "email": "JEAN.DUPONT.OC@example.com"}, "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}') IS NOT NULL AS ib3 \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'an order of a new buyer id with a known e-mail');
SELECT is((SELECT partner_id FROM public.sale_order WHERE id = pg_temp.so('oc-orders', 'OC-B3')), :partner_a,
          'found by e-mail');

------------------------------------------------------------ unknown SKU: held, then retried
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-C", "buyer": {"id": "BUYER-2", "name": "Ann Smith"},
    "shipping_address": {"name": "Ann Smith", "street": "1 Main St", "city": "Springfield", "zip": "01101", "country": "US"},
    "lines": [{"sku": "W-1", "quantity": 1, "unit_price": 19.99}, {"sku": "X-9", "quantity": 3, "unit_price": 7}]}') AS ic \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 0, 'an order with an unknown SKU is not materialized');
SELECT results_eq(
    format($$SELECT state, last_error, sale_order_id FROM omnichan.order_inbox WHERE id = %s$$, :ic),
    $$VALUES ('held', 'no product is linked to SKU "X-9" (line 2) of channel "oc-orders"', NULL::int)$$,
    'it is held with a clear error');
SELECT is((SELECT count(*) FROM public.res_partner WHERE name = 'Ann Smith'), 0::bigint, 'and nothing of it is in Odoo');
SELECT is((omnichan.ats(:pw)).pending, 4::numeric, 'a held order is still pending demand: 2 (OC-A) + 1 (OC-B) + 1 (OC-C, held)');
SELECT is(omnichan.retry_orders('oc-orders'), 0, 'a retry before the fix holds it again');
SELECT is((SELECT attempts FROM omnichan.order_inbox WHERE id = :ic), 2, 'attempts are counted');
SELECT lives_ok(format($$SELECT omnichan.listing_link('oc-orders', %s, '{"sku": "X-9"}')$$, :px), 'the SKU is linked');
SELECT is(omnichan.retry_orders('oc-orders'), 1, 'the retry materializes it');
SELECT results_eq(
    format($$SELECT i.state, i.last_error, (SELECT count(*) FROM public.sale_order_line l WHERE l.order_id = i.sale_order_id)
               FROM omnichan.order_inbox i WHERE i.id = %s$$, :ic),
    $$VALUES ('materialized', NULL::text, 2::bigint)$$, 'materialized with both lines');
SELECT is((SELECT array_agg(kind ORDER BY id) FROM omnichan.order_event WHERE inbox_id = :ic),
          '{received,held,retried,held,retried,materialized,action_requested}'::text[], 'its history');

------------------------------------------------------------ shipping charges without a product
SELECT lives_ok($$SELECT omnichan.channel_alter('oc-excl', '{}')$$, 'oc-excl has no shipping product');
SELECT omnichan.inbox_upsert('oc-excl', '{"external_id": "EX-S", "buyer": {"id": "E-1", "name": "Bob"},
    "totals": {"shipping": 5}, "lines": [{"sku": "EW", "quantity": 1, "unit_price": 9.99}]}') AS ies \gset
SELECT is(omnichan.materialize_orders('oc-excl'), 0, 'an order with shipping charges and no shipping product');
SELECT is((SELECT last_error FROM omnichan.order_inbox WHERE id = :ies),
          'the order has shipping charges (5) but channel "oc-excl" has no setting "shipping_product_id"',
          'is held with a clear error');
SELECT is((SELECT count(*) FROM public.res_partner WHERE name = 'Bob'), 0::bigint, 'nothing half-written in Odoo');

------------------------------------------------------------ price-excluded tax, prefix naming, hold for review
SELECT omnichan.inbox_upsert('oc-excl', '{"external_id": "EX-1", "buyer": {"id": "E-2", "name": "Carol"},
    "lines": [{"sku": "EW", "quantity": 3, "unit_price": 9.99}], "totals": {"total": 32.97}}') AS iex \gset
SELECT is(omnichan.materialize_orders('oc-excl'), 1, 'materialized');
SELECT results_eq(
    format($$SELECT so.name, so.amount_untaxed, so.amount_tax, so.amount_total, l.price_subtotal, l.price_tax,
                    l.price_total, l.price_reduce_taxexcl, l.price_reduce_taxinc
               FROM public.sale_order so JOIN public.sale_order_line l ON l.order_id = so.id WHERE so.id = %s$$,
           pg_temp.so('oc-excl', 'EX-1')),
    $$VALUES ('EX-EX-1'::varchar, 29.97, 3.00, 32.97, 29.97, 3.00::float8, 32.97, 9.99, 10.99)$$,
    'price-excluded tax: 3 x 9.99 + 10 % = 29.97 + 3.00 (2.997 rounded) = 32.97; name from the channel prefix');
SELECT is((SELECT count(*) FROM omnichan.odoo_action WHERE sale_order_id = pg_temp.so('oc-excl', 'EX-1')), 0::bigint,
          'auto_confirm false: held for review, nothing queued');
SELECT lives_ok($$SELECT omnichan.order_release('oc-excl', 'EX-1')$$, 'released');
SELECT results_eq(
    format($$SELECT action, priority FROM omnichan.odoo_action WHERE sale_order_id = %s AND done_at IS NULL$$,
           pg_temp.so('oc-excl', 'EX-1')),
    $$VALUES ('invoice', false)$$, 'workflow confirm_invoice: confirm and invoice queued');
SELECT lives_ok($$SELECT omnichan.order_release('oc-excl', 'EX-1')$$, 'released twice');
SELECT is((SELECT count(*) FROM omnichan.odoo_action WHERE sale_order_id = pg_temp.so('oc-excl', 'EX-1')), 1::bigint,
          'queued once');
SELECT throws_ok($$SELECT omnichan.order_release('oc-excl', 'EX-S')$$, '55000',
          'order "EX-S" of channel "oc-excl" is held, not materialized', 'only materialized orders are released');

------------------------------------------------------------ cancellations
-- before materialization
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-F", "buyer": {"id": "BUYER-3", "name": "Fay"},
    "lines": [{"sku": "G-1", "quantity": 7, "unit_price": 5}]}') AS iff \gset
SELECT is((omnichan.ats(:pg)).pending, 10::numeric, 'received: 7 more units of G pending (3 before, in quotations)');
SELECT is(omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-F", "status": "Canceled", "buyer": {"id": "BUYER-3", "name": "Fay"},
    "lines": [{"sku": "G-1", "quantity": 7, "unit_price": 5}]}'), :iff::bigint, 'the marketplace cancels it');
SELECT is((SELECT state FROM omnichan.order_inbox WHERE id = :iff), 'cancelled', 'cancelled in the inbox');
SELECT is((omnichan.ats(:pg)).pending, 3::numeric, 'no longer pending');
SELECT is(omnichan.materialize_orders('oc-orders'), 0, 'and never materialized');

-- after materialization, not shipped
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-D", "buyer": {"id": "BUYER-4", "name": "Dan"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}') AS id_d \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'OC-D materialized');
SELECT pg_temp.so('oc-orders', 'OC-D') AS so_d \gset
SELECT is(omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-D", "cancelled": true, "buyer": {"id": "BUYER-4", "name": "Dan"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}'), :id_d::bigint, 'the marketplace cancels OC-D');
SELECT results_eq(
    format($$SELECT action, done_at IS NOT NULL, result FROM omnichan.odoo_action WHERE sale_order_id = %s ORDER BY id$$, :so_d),
    $$VALUES ('confirm', true, 'superseded by a cancellation'), ('cancel', false, NULL)$$,
    'not shipped: the pending confirmation is superseded and Odoo is asked to cancel');
SELECT results_eq(
    format($$SELECT state, sale_order_id, last_error FROM omnichan.order_inbox WHERE id = %s$$, :id_d),
    format($$VALUES ('cancelled', %s, NULL::text)$$, :so_d), 'cancelled in the inbox');
SELECT is((SELECT count(*) FROM public.sale_order WHERE client_order_ref = 'OC-D'), 1::bigint, 'no order duplicated');
SELECT is(omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-D", "cancelled": true, "buyer": {"id": "BUYER-4", "name": "Dan"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}'), :id_d::bigint, 'the cancellation again');
SELECT is((SELECT count(*) FROM omnichan.odoo_action WHERE sale_order_id = :so_d AND action = 'cancel'), 1::bigint,
          'one cancellation request');
-- Odoo refuses it (the bridge, as Odoo's role, may only update odoo_action)
CREATE ROLE omnichan_orders_odoo NOLOGIN;
GRANT USAGE ON SCHEMA omnichan TO omnichan_orders_odoo;
GRANT SELECT, UPDATE ON omnichan.odoo_action TO omnichan_orders_odoo;
SET ROLE omnichan_orders_odoo;
UPDATE omnichan.odoo_action SET done_at = now(), error = 'You cannot cancel a locked order.'
 WHERE sale_order_id = :so_d AND action = 'cancel' AND done_at IS NULL;
RESET ROLE;
SELECT results_eq(
    format($$SELECT state, last_error FROM omnichan.order_inbox WHERE id = %s$$, :id_d),
    $$VALUES ('attention', 'Odoo could not cancel the order: You cannot cancel a locked order.')$$,
    'a cancellation Odoo refused: the order needs attention (not ''cancelled'' while Odoo''s order is not)');
SELECT is((SELECT count(*) FROM omnichan.order_event WHERE inbox_id = :id_d AND kind = 'attention'), 1::bigint,
          'with an attention event');

-- after shipment
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-E", "buyer": {"id": "BUYER-5", "name": "Eve"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}') AS ie \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'OC-E materialized');
UPDATE public.sale_order SET state = 'sale', delivery_status = 'full' WHERE id = pg_temp.so('oc-orders', 'OC-E');
SELECT is(omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-E", "status": "Canceled", "buyer": {"id": "BUYER-5", "name": "Eve"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}'), :ie::bigint, 'the marketplace cancels a shipped order');
SELECT results_eq(
    format($$SELECT state, last_error FROM omnichan.order_inbox WHERE id = %s$$, :ie),
    $$VALUES ('attention', 'cancelled by the marketplace after shipment')$$, 'flagged for attention');
SELECT is((SELECT count(*) FROM omnichan.odoo_action WHERE sale_order_id = pg_temp.so('oc-orders', 'OC-E') AND action = 'cancel'),
          0::bigint, 'Odoo is not asked to cancel it');
-- shipped: a done move to a customer location
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-E2", "buyer": {"id": "BUYER-5", "name": "Eve"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}') AS ie2 \gset
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'OC-E2 materialized');
INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id, location_dest_id, name, state,
                               procure_method, product_uom_qty, product_qty, quantity, date, sale_line_id, picked)
SELECT :co, l.product_id, l.product_uom, pg_temp.xid('stock.stock_location_stock'),
       pg_temp.xid('stock.stock_location_customers'), l.name, 'done', 'make_to_stock', 1, 1, 1,
       now()::timestamp, l.id, true
  FROM public.sale_order_line l WHERE l.order_id = pg_temp.so('oc-orders', 'OC-E2');
SELECT is(omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-E2", "cancelled": true, "buyer": {"id": "BUYER-5", "name": "Eve"},
    "lines": [{"sku": "G-1", "quantity": 1, "unit_price": 5}]}'), :ie2::bigint, 'the marketplace cancels a delivered order');
SELECT is((SELECT state FROM omnichan.order_inbox WHERE id = :ie2), 'attention', 'a done delivery move counts as shipped');

------------------------------------------------------------ routing
SELECT throws_ok(format($$SELECT omnichan.routing_rule_set('oc-excl', 'DE', %s)$$, :wh2), '22023',
    format('warehouse %s is not one of the warehouses of channel "oc-excl"', :wh2), 'rules use the channel''s warehouses');
SELECT throws_ok(format($$SELECT omnichan.routing_rule_set('oc-orders', 'XX', %s)$$, :wh2), '22023',
    'country "XX" is not an ISO 3166 code known to Odoo', 'rules use Odoo''s countries');
SELECT lives_ok(format($$SELECT omnichan.routing_rule_set('oc-orders', 'de', %s)$$, :wh2), 'orders to Germany ship from WH2');
SELECT omnichan.inbox_upsert('oc-orders', '{"external_id": "OC-G", "buyer": {"id": "BUYER-6", "name": "Gerd"},
    "shipping_address": {"name": "Gerd", "street": "Hauptstr. 1", "city": "Berlin", "zip": "10115", "country": "DE"},
    "lines": [{"sku": "X-9", "quantity": 5, "unit_price": 7}]}') AS ig \gset
SELECT is((SELECT warehouse_id FROM omnichan.order_inbox WHERE id = :ig), :wh2, 'routed at reception');
SELECT is((omnichan.ats(:px, :wh2)).pending, 5::numeric, 'its pending demand is in WH2');
SELECT is((omnichan.ats(:px, :wh)).pending, 3::numeric, 'not in the default warehouse (3 of OC-C)');
SELECT is(omnichan.materialize_orders('oc-orders'), 1, 'OC-G materialized');
SELECT is((SELECT warehouse_id FROM public.sale_order WHERE id = pg_temp.so('oc-orders', 'OC-G')), :wh2,
          'the quotation ships from WH2');
SELECT is((omnichan.ats(:px, :wh2)).pending, 5::numeric, 'still 5 pending in WH2, from the quotation');
SELECT is(omnichan.routing_rule_clear('oc-orders'), 1, 'rules cleared');

------------------------------------------------------------ the bridge
SELECT ok(omnichan.odoo_bridge_kick() = false, 'no bridge: kick does nothing');
SELECT omnichan.odoo_bridge_install() AS cron \gset
SELECT results_eq(
    format($$SELECT a.name, a.type, a.binding_type, a.binding_view_types, a.usage, a.state, a.model_id, a.model_name,
                    a.sequence, a.create_uid IS NOT NULL, a.create_date IS NOT NULL, a.write_date IS NOT NULL
               FROM public.ir_cron c JOIN public.ir_act_server a ON a.id = c.ir_actions_server_id WHERE c.id = %s$$, :cron),
    $$VALUES ('{"en_US": "omnichan: confirm, cancel and invoice marketplace orders"}'::jsonb, 'ir.actions.server'::varchar,
              'action'::varchar, 'list,form'::varchar, 'ir_cron'::varchar, 'code'::varchar,
              (SELECT res_id FROM public.ir_model_data WHERE module = 'sale' AND name = 'model_sale_order'),
              'sale.order'::varchar, 5, true, true, true)$$,
    'ir_act_server: the columns a SQL writer must fill, model sale.order by external id');
SELECT ok((SELECT a.code FROM public.ir_cron c JOIN public.ir_act_server a ON a.id = c.ir_actions_server_id WHERE c.id = :cron)
          ~ 'action_confirm\(\)' AND omnichan.odoo_bridge_code() ~ 'with_context\(disable_cancel_warning=True\)\.action_cancel\(\)'
          AND omnichan.odoo_bridge_code() ~ '_create_invoices\(\)' AND omnichan.odoo_bridge_code() ~ 'action_post\(\)'
          AND omnichan.odoo_bridge_code() ~ 'env\.cr\.execute\("UPDATE omnichan\.odoo_action SET done_at = now\(\), result = %s, error = %s WHERE id = %s"',
          'the code confirms, cancels without the wizard, invoices, and writes back with parameters');
SELECT ok(omnichan.odoo_bridge_code() !~ 'modified\(\[[^]]*''(product_uom_qty|product_id|product_uom)'''
          AND omnichan.odoo_bridge_code() ~ 'invoicing = env\.cr\.savepoint\(\)'
          AND omnichan.odoo_bridge_code() ~ 'savepoint\.close\(rollback=True\)\n\s*result = False',
          'the code never marks the inputs of Odoo''s price_unit modified (it would reset the marketplace prices from the pricelist), invoices in a savepoint of its own, and writes no result for a rolled-back action');
SELECT ok(omnichan.odoo_bridge_code() !~ '(^|\n)\s*(import|from)\s' AND omnichan.odoo_bridge_code() !~ '__'
          AND omnichan.odoo_bridge_code() !~ '(^|\n)\s*with\s',
          'the code passes Odoo''s safe_eval: no import, no dunder, no with statement');
SELECT results_eq(
    format($$SELECT user_id, active, interval_number, interval_type, numbercall, doall, priority, cron_name,
                    nextcall <= (now() AT TIME ZONE 'UTC'), lastcall
               FROM public.ir_cron WHERE id = %s$$, :cron),
    format($$VALUES (%s, true, 1, 'minutes'::varchar, -1, false, 5,
                     'omnichan: confirm, cancel and invoice marketplace orders'::varchar, true, NULL::timestamp)$$, :admin),
    'ir_cron: every column Odoo''s runner needs (none NULL), due now, every minute, forever');
SELECT ok(omnichan.odoo_bridge_kick(), 'kick');
SELECT is((SELECT count(*) FROM public.ir_cron_trigger WHERE cron_id = :cron AND call_at <= now() AT TIME ZONE 'UTC'),
          1::bigint, 'a due ir_cron_trigger row');
SELECT ok(omnichan.odoo_bridge_kick(), 'kick again');
SELECT is((SELECT count(*) FROM public.ir_cron_trigger WHERE cron_id = :cron), 1::bigint, 'still one trigger');
SELECT omnichan.odoo_bridge_install() AS cron2 \gset
SELECT is((SELECT count(*) FROM public.ir_cron WHERE cron_name = 'omnichan: confirm, cancel and invoice marketplace orders'),
          1::bigint, 'a reinstall replaces the bridge');
SELECT ok(omnichan.odoo_bridge_uninstall(), 'uninstall');
SELECT is((SELECT count(*) FROM public.ir_cron WHERE id IN (:cron, :cron2))
          + (SELECT count(*) FROM public.ir_act_server WHERE name ->> 'en_US' = 'omnichan: confirm, cancel and invoice marketplace orders')
          + (SELECT count(*) FROM public.ir_cron_trigger WHERE cron_id IN (:cron, :cron2)), 0::bigint,
          'uninstall removes the rows it wrote');
SELECT ok(NOT omnichan.odoo_bridge_uninstall(), 'a second uninstall finds nothing');

------------------------------------------------------------ what the bridge would write back
UPDATE omnichan.odoo_action SET done_at = now(), result = 'sale' WHERE sale_order_id = :so_a;
SELECT is((SELECT last_action FROM omnichan.order_status WHERE external_id = 'OC-A'), 'confirm: sale',
          'order_status shows the bridge''s outcome');


------------------------------------------------------------ a batch: set-based = order by order
-- materialize_orders takes the orders that pass every check set-based (one
-- statement per table for the batch) and the others one by one: a batch
-- must write what its orders write one at a time (a repeat buyer, address
-- children, names).  The same batch is materialized one order per call,
-- rolled back, then in one call, and everything written is compared.
CREATE FUNCTION pg_temp.pdesc(p_id int) RETURNS text LANGUAGE sql STABLE AS
$$ SELECT row(p.name, p.type, p.street, p.street2, p.city, p.zip, p.country_id, p.state_id, p.email, p.phone,
              p.active, p.is_company, p.lang, p.complete_name, p.email_normalized, p.phone_sanitized,
              p.commercial_partner_id = p.id, pp.name, cp.name, p.partner_share, p.customer_rank,
              p.invoice_warn, p.sale_warn, p.create_uid, p.write_uid)::text
     FROM public.res_partner p
     LEFT JOIN public.res_partner pp ON pp.id = p.parent_id
     LEFT JOIN public.res_partner cp ON cp.id = p.commercial_partner_id
    WHERE p.id = p_id $$;
CREATE FUNCTION pg_temp.batch_rows(p_partners_after int) RETURNS text LANGUAGE sql STABLE AS
$$
SELECT string_agg(r, E'\n' ORDER BY r) FROM (
    SELECT 'inbox ' || i.external_id || ' ' || i.state || ' ' || COALESCE(i.last_error, '-')
           || ' total ' || COALESCE(i.odoo_amount_total::text, '-') || ' attempts ' || i.attempts
           || ' partner ' || COALESCE(pg_temp.pdesc(i.partner_id), '-')
           || ' events ' || COALESCE((SELECT string_agg(e.kind || (e.detail - 'sale_order_id' - 'name')::text, ','
                                                        ORDER BY e.id)
                                        FROM omnichan.order_event e WHERE e.inbox_id = i.id), '-')
           || ' order ' || COALESCE((
                SELECT row(so.state, so.company_id, pg_temp.pdesc(so.partner_id), pg_temp.pdesc(so.partner_invoice_id),
                           pg_temp.pdesc(so.partner_shipping_id), so.date_order, so.warehouse_id, so.picking_policy,
                           so.currency_id, so.currency_rate, so.pricelist_id, so.client_order_ref, so.origin, so.user_id,
                           so.team_id, so.validity_date, so.require_signature, so.require_payment, so.prepayment_percent,
                           so.locked, so.note, so.amount_untaxed, so.amount_tax, so.amount_total, so.amount_to_invoice,
                           so.invoice_status, so.shipping_weight, so.create_uid, so.write_uid,
                           so.create_date = so.write_date, so.name IS NOT NULL,
                           (SELECT string_agg(t.name ->> 'en_US', ',') FROM public.sale_order_tag_rel r
                              JOIN public.crm_tag t ON t.id = r.tag_id WHERE r.order_id = so.id))::text
                  FROM public.sale_order so WHERE so.id = i.sale_order_id), '-')
           || ' lines ' || COALESCE((
                SELECT string_agg(row(l.sequence, l.name, l.product_id, l.product_uom, l.product_uom_qty, l.price_unit,
                                      l.discount, l.customer_lead, l.company_id, l.currency_id,
                                      pg_temp.pdesc(l.order_partner_id), l.salesman_id, l.state, l.display_type,
                                      l.is_delivery, l.product_packaging_qty, l.qty_delivered, l.qty_delivered_method,
                                      l.price_subtotal, l.price_tax, l.price_total, l.price_reduce_taxexcl,
                                      l.price_reduce_taxinc, l.invoice_status, l.qty_invoiced, l.qty_to_invoice,
                                      l.untaxed_amount_invoiced, l.untaxed_amount_to_invoice, l.create_uid,
                                      (SELECT string_agg(x.account_tax_id::text, ',')
                                         FROM public.account_tax_sale_order_line_rel x WHERE x.sale_order_line_id = l.id),
                                      (SELECT il.line_no FROM omnichan.order_inbox_line il
                                        WHERE il.sale_order_line_id = l.id))::text, ';' ORDER BY l.id)
                  FROM public.sale_order_line l WHERE l.order_id = i.sale_order_id), '-')
           || ' actions ' || COALESCE((SELECT string_agg(a.action || ':' || a.priority, ',' ORDER BY a.id)
                                         FROM omnichan.odoo_action a WHERE a.inbox_id = i.id), '-') AS r
      FROM omnichan.order_inbox i JOIN omnichan.channel c ON c.id = i.channel_id
     WHERE c.name = 'oc-batch'
    UNION ALL
    SELECT 'link ' || l.buyer_id || ' ' || pg_temp.pdesc(l.partner_id)
      FROM omnichan.customer_link l JOIN omnichan.channel c ON c.id = l.channel_id
     WHERE c.name = 'oc-batch'
    UNION ALL
    SELECT 'new partner ' || pg_temp.pdesc(p.id) FROM public.res_partner p WHERE p.id > p_partners_after
) x
$$;

SELECT lives_ok(format($$SELECT omnichan.channel_create('oc-batch', 'amazon', '{
        "seller_id": "A2EXAMPLEBATCH", "marketplace_ids": ["A13V1IB3VIYZZH"], "company_id": %s,
        "warehouse_ids": [%s, %s], "default_warehouse_id": %s,
        "tax_id": %s, "shipping_product_id": %s, "giftwrap_product_id": %s, "discount_product_id": %s,
        "order_workflow": "confirm"}')$$, :co, :wh, :wh2, :wh, :tax_incl, :pship, :pwrap, :ppromo),
    'a channel for a batch');
SELECT omnichan.listing_link('oc-batch', :pw, '{"sku": "BW"}') IS NOT NULL AS b1,
       omnichan.listing_link('oc-batch', :pg, '{"sku": "BG"}') IS NOT NULL AS b2 \gset
SELECT count(*) AS batch_n FROM (SELECT omnichan.inbox_upsert('oc-batch', o) FROM (VALUES
    ('{"external_id": "B01", "currency": "USD", "ordered_at": "2026-11-20T10:00:00Z",
       "buyer": {"id": "BB-1", "name": "Anna Batch", "email": "anna.batch@example.com"},
       "shipping_address": {"name": "Anna Batch", "street": "1 Main St", "city": "Lyon", "zip": "69001", "country": "FR"},
       "totals": {"shipping": 4.99, "gift_wrap": 2.5, "discount": 3, "total": 60.45}, "sla": ["prime"],
       "lines": [{"sku": "BW", "quantity": 2, "unit_price": 19.99}, {"sku": "BG", "quantity": 1, "unit_price": "5.00"}]}'::jsonb),
    ('{"external_id": "B02", "buyer": {"id": "BB-1", "name": "Anna Batch", "email": "anna.batch@example.com"},
       "shipping_address": {"name": "Anna at work", "street": "9 Quai", "city": "Lyon", "zip": "69002", "country": "FR"},
       "lines": [{"sku": "BG", "quantity": 3, "unit_price": 5.55}]}'),
    ('{"external_id": "B03", "buyer": {"id": "BB-1", "email": "other.anna@example.com"},
       "shipping_address": {"name": "Anna at work", "street": "9 Quai", "city": "Lyon", "zip": "69002", "country": "FR"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99}]}'),
    ('{"external_id": "B04", "buyer": {"name": "Bob Mail", "email": "Bob.Mail@example.com"},
       "shipping_address": {"name": "Bob Mail", "street": "2 Ship Rd", "city": "Leeds", "zip": "LS1", "country": "GB"},
       "billing_address": {"name": "Bob Mail Ltd", "street": "3 Bill Rd", "city": "York", "zip": "YO1", "country": "GB"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99, "discount": 1.5}]}'),
    ('{"external_id": "B05", "buyer": {"name": "Bob Mail", "email": "bob.mail@example.com"},
       "shipping_address": {"name": "Bob Mail", "street": "2 Ship Rd", "city": "Leeds", "zip": "LS1", "country": "GB"},
       "lines": [{"sku": "BG", "quantity": 2, "unit_price": 5}]}'),
    ('{"external_id": "B06", "buyer": {"id": "BB-6", "name": "Jean Again", "email": "JEAN.DUPONT.OC@example.com"},
       "shipping_address": {"name": "Jean Dupont", "street": "1 rue de la Paix", "city": "Paris", "zip": "75002", "country": "FR"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99}]}'),
    ('{"external_id": "B07", "buyer": {"id": "BB-7", "name": "Unknown Sku"},
       "shipping_address": {"name": "Unknown Sku", "street": "7 Nowhere", "city": "Paris", "zip": "75007", "country": "FR"},
       "lines": [{"sku": "NOPE", "quantity": 1, "unit_price": 1}]}'),
    ('{"external_id": "B08", "buyer": {"id": "BB-8", "name": "Shared One", "email": "shared@example.com"},
       "shipping_address": {"name": "Shared One", "street": "8 Same St", "city": "Nice", "zip": "06000", "country": "FR"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99}]}'),
    ('{"external_id": "B09", "buyer": {"id": "BB-9", "name": "Shared Two", "email": "shared@example.com"},
       "shipping_address": {"name": "Shared Two", "street": "9 Same St", "city": "Nice", "zip": "06000", "country": "FR"},
       "lines": [{"sku": "BG", "quantity": 1, "unit_price": 5}]}'),
    ('{"external_id": "B10", "buyer": {"id": "BB-10", "name": "No Mail"}, "gift_message": "For <you> & me",
       "shipping_address": {"name": "No Mail", "street": "10 Rue", "city": "Metz", "zip": "57000", "country": "FR"},
       "totals": {"total": 1}, "lines": [{"sku": "BW", "quantity": 3, "unit_price": 19.99}]}'),
    ('{"external_id": "B11", "currency": "EUR", "buyer": {"id": "BB-11", "name": "Euro"},
       "shipping_address": {"name": "Euro", "street": "11 Rue", "city": "Metz", "zip": "57000", "country": "FR"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99}]}'),
    ('{"external_id": "B12", "buyer": {"id": "BB-1", "name": "Anna Batch"},
       "shipping_address": {"name": "Anna Batch", "street": "1 Main St", "city": "Lyon", "zip": "69001", "country": "FR"},
       "lines": [{"sku": "BW", "quantity": 1, "unit_price": 19.99}]}')) v(o)) x \gset
SELECT max(id) AS partners_before FROM public.res_partner \gset
SAVEPOINT batch;
SELECT sum(omnichan.materialize_orders('oc-batch', 1)) AS one_by_one FROM generate_series(1, 12) \gset
SELECT pg_temp.batch_rows(:partners_before) AS rows_one_by_one \gset
SELECT pg_temp.so('oc-batch', 'B09') < pg_temp.so('oc-batch', 'B10') AS one_order_kept \gset
ROLLBACK TO SAVEPOINT batch;
SELECT is(omnichan.materialize_orders('oc-batch', 100), :one_by_one::int,
          'one call materializes the batch: as many orders as one by one');
SELECT is(:one_by_one::int, 10, '10 of the 12 (an unknown SKU and a foreign currency held; no order lost)');
SELECT is(pg_temp.batch_rows(:partners_before), :'rows_one_by_one',
          'the same partners, links, quotations, lines, amounts, taxes, tags, events and bridge actions as one by one');
SELECT ok(:'one_order_kept' AND pg_temp.so('oc-batch', 'B09') > pg_temp.so('oc-batch', 'B10'),
          'set-based: the orders of two buyers sharing an e-mail went one by one after the others');
SELECT is((SELECT count(DISTINCT so.name) FROM public.sale_order so
             JOIN omnichan.order_inbox i ON i.sale_order_id = so.id
             JOIN omnichan.channel c ON c.id = i.channel_id WHERE c.name = 'oc-batch'), 10::bigint,
          'every quotation has its own name');
SELECT is((SELECT count(*) FROM public.res_partner p WHERE p.id > :partners_before AND p.parent_id IS NULL), 4::bigint,
          'new customers: Anna, Bob, Shared One, No Mail (Jean and Shared Two found by e-mail, none twice)');


------------------------------------------------------------ a page: set-based = order by order
-- _inbox_store (the sync worker's page of pulled orders) stores the new,
-- valid orders set-based: the rows must be those of inbox_upsert.
CREATE FUNCTION pg_temp.inbox_rows(p_after bigint) RETURNS text LANGUAGE sql STABLE AS
$$
SELECT string_agg(r, E'\n' ORDER BY r) FROM (
    SELECT (to_jsonb(i) - 'id' - 'received_at' - 'updated_at')::text
           || ' lines ' || COALESCE((SELECT string_agg((to_jsonb(l) - 'inbox_id' - 'id')::text, ';' ORDER BY l.line_no)
                                       FROM omnichan.order_inbox_line l WHERE l.inbox_id = i.id), '-')
           || ' events ' || COALESCE((SELECT string_agg(e.kind || e.detail::text, ',' ORDER BY e.id)
                                        FROM omnichan.order_event e WHERE e.inbox_id = i.id), '-') AS r
      FROM omnichan.order_inbox i WHERE i.id > p_after
) x
$$;
\set page '[{"external_id": "P1", "status": "Unshipped", "currency": "usd", "ordered_at": "2026-11-20T10:11:12.123456+02:00", "buyer": {"id": 4711, "name": " Paul Page ", "email": "Paul@Example.com", "phone": "+1 555"}, "shipping_address": {"name": "Paul Page", "street": "1 Page St", "street2": "", "city": "Berlin", "zip": "10115", "state": "BE", "country": "de", "phone": "+49"}, "billing_address": {"name": "Page GmbH", "street": "2 Bill St", "city": "Hamburg", "zip": "20095", "country": "DE"}, "totals": {"items": "44.98", "shipping": 4.99, "gift_wrap": "2.50", "discount": 3, "tax": 8.24, "total": 49.47}, "fees": [{"type": "referral", "amount": 6.75}], "sla": ["Prime", "prime", "Business"], "gift_message": "Line 1\\nLine 2", "lines": [{"external_id": "L1", "sku": "BW", "quantity": "2", "unit_price": 19.99, "tax": 6.66, "discount": "1.5"}, {"sku": "NOT-LINKED", "quantity": 1, "unit_price": 0}], "raw": {"id": "P1", "nested": {"a": [1, 2]}}}, {"external_id": "P2", "status": "Cancelled", "buyer": {"name": "Cancel Me"}, "lines": [{"sku": "BG", "quantity": 1, "unit_price": 5}]}, {"external_id": "P3", "cancelled": true, "ordered_at": null, "buyer": null, "shipping_address": {"name": "Ship Only", "country": "FR"}, "sla": [], "fees": null, "lines": [{"sku": "BG", "quantity": 0.5, "unit_price": "5.123456"}]}, {"external_id": 12345, "status": "shipped", "buyer": {"name": "Numeric Id"}, "lines": [{"sku": 777, "quantity": 3, "unit_price": 1}]}]'
SELECT max(id) AS inbox_before FROM omnichan.order_inbox \gset
SAVEPOINT page;
SELECT count(omnichan.inbox_upsert('oc-batch', e)) AS page_n FROM jsonb_array_elements(:'page'::jsonb) e \gset
SELECT pg_temp.inbox_rows(:inbox_before) AS rows_upsert \gset
ROLLBACK TO SAVEPOINT page;
SELECT is((SELECT row(stored, refused)::text FROM omnichan._inbox_store((SELECT id FROM omnichan.channel WHERE name = 'oc-batch'),
                                                                         :'page'::jsonb)),
          '(4,0)', 'a page of 4 valid orders stored in one call');
SELECT is(pg_temp.inbox_rows(:inbox_before), :'rows_upsert', 'the same inbox rows, lines and events as inbox_upsert');
SELECT is((SELECT row(stored, refused)::text FROM omnichan._inbox_store((SELECT id FROM omnichan.channel WHERE name = 'oc-batch'),
                                                                         :'page'::jsonb)),
          '(4,0)', 'the same page again (overlapping pulls): stored');
SELECT is(pg_temp.inbox_rows(:inbox_before), :'rows_upsert', 'and nothing changed: no row, line or event more');
ROLLBACK TO SAVEPOINT page;
-- refused ones (held with inbox_upsert's error), a duplicate in the page, a known order
SELECT is((SELECT row(stored, refused)::text FROM omnichan._inbox_store((SELECT id FROM omnichan.channel WHERE name = 'oc-batch'),
    '[{"external_id": "Q1", "ordered_at": "2026-02-30T00:00:00Z", "buyer": {"name": "Q"}, "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      {"external_id": "Q2", "cancelled": "yes", "buyer": {"name": "Q"}, "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      {"external_id": "Q3", "buyer": {"name": "Q"}, "sla": ["prime!"], "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      {"external_id": "Q4", "buyer": {"name": "Q"}, "lines": {"sku": "BW"}},
      {"external_id": "Q5", "buyer": {"name": "Q"}, "lines": [{"sku": "BW", "quantity": 0, "unit_price": 1}]},
      {"external_id": "Q6", "buyer": {"name": "Q", "email": "no-at-sign"}, "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      {"external_id": "Q7", "buyer": {"name": "Q"}, "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      {"external_id": "Q7", "buyer": {"name": "Q twice"}, "lines": [{"sku": "BW", "quantity": 2, "unit_price": 1}]},
      {"external_id": "B01", "buyer": {"id": "BB-1", "name": "Anna Batch"}, "lines": [{"sku": "BW", "quantity": 1, "unit_price": 1}]},
      "not an object"]'::jsonb)), '(3,7)', 'invalid orders are refused one by one, the others stored');
SELECT results_eq(
    $$SELECT i.external_id, i.state, i.last_error FROM omnichan.order_inbox i
        JOIN omnichan.channel c ON c.id = i.channel_id
       WHERE c.name = 'oc-batch' AND i.external_id ~ '^Q[1-6]$' ORDER BY 1$$,
    $$VALUES ('Q1', 'held', 'invalid order: order field "ordered_at" must be a timestamp such as "2026-11-23T17:21:47Z"'),
             ('Q2', 'held', 'invalid order: order field "cancelled" must be a boolean'),
             ('Q3', 'held', 'invalid order: order field "sla" must be an array of flags of 1 to 32 letters, digits or "_"'),
             ('Q4', 'held', 'invalid order: order field "lines" must be a non-empty array'),
             ('Q5', 'held', 'invalid order: order field "lines[1].quantity" must be greater than 0'),
             ('Q6', 'held', 'invalid order: order field "buyer.email" must be an e-mail address')$$,
    'each refused order is held with the error inbox_upsert gives');
SELECT is((SELECT buyer_name || ' ' || (SELECT sum(quantity) FROM omnichan.order_inbox_line l WHERE l.inbox_id = i.id)
             FROM omnichan.order_inbox i JOIN omnichan.channel c ON c.id = i.channel_id
            WHERE c.name = 'oc-batch' AND i.external_id = 'Q7'), 'Q twice 2',
          'an order twice in a page: the later version wins');
SELECT is((SELECT count(*) FROM omnichan.order_event e JOIN omnichan.order_inbox i ON i.id = e.inbox_id
             JOIN omnichan.channel c ON c.id = i.channel_id
            WHERE c.name = 'oc-batch' AND i.external_id = 'B01' AND e.kind = 'changed_after_materialization'), 1::bigint,
          'an order already in Odoo: its change is recorded, never a second order');
ROLLBACK TO SAVEPOINT page;

SELECT * FROM finish();
ROLLBACK;
