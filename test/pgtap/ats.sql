--
-- ats: the available-to-sell engine (omnichan.ats, omnichan.ats_bulk).
--
-- Every expected number is computed by hand in the comments.  Runs on the
-- project's fixture and on the real Odoo 17 demo database: the warehouses,
-- locations, products, quants, moves, orders and bills of materials it needs
-- are created inside the (rolled back) transaction; existing records are
-- only looked up by external id.
--
BEGIN;
SELECT plan(100);

SET LOCAL client_min_messages = warning;
\ir lib/odoo_helpers.sql

-- a move of p_qty (in p_uom, default the product's unit) with p_reserved of
-- it reserved (stock_move.quantity, same unit)
CREATE FUNCTION pg_temp.move(p int, src int, dst int, p_qty numeric, p_state text,
                             p_reserved numeric DEFAULT 0, p_uom text DEFAULT NULL,
                             p_line int DEFAULT NULL) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id, location_dest_id, name,
                                   state, procure_method, product_uom_qty, product_qty, quantity, date,
                                   sale_line_id, picked, scrapped, is_inventory, additional, propagate_cancel)
    SELECT COALESCE(ls.company_id, ld.company_id, pg_temp.xid('base.main_company')), p, mu.id, src, dst,
           'omnichan ats move', p_state, 'make_to_stock', p_qty,
           round(p_qty / mu.factor * pu.factor / pu.rounding) * pu.rounding, p_reserved, now()::timestamp,
           p_line, p_state = 'done', false, false, false, false
      FROM public.product_product pp
      JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
      JOIN public.uom_uom pu ON pu.id = pt.uom_id
      JOIN public.uom_uom mu ON mu.id = COALESCE(pg_temp.xid(p_uom), pt.uom_id)
      JOIN public.stock_location ls ON ls.id = src
      JOIN public.stock_location ld ON ld.id = dst
     WHERE pp.id = p
    RETURNING id
$$;

CREATE FUNCTION pg_temp.so(w int, p_state text) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.sale_order (company_id, partner_id, partner_invoice_id, partner_shipping_id, name,
                                   date_order, warehouse_id, picking_policy, state, currency_id)
    SELECT c.id, c.partner_id, c.partner_id, c.partner_id, 'OCATS/' || nextval('public.sale_order_id_seq'),
           now()::timestamp, w.id, 'direct', p_state, c.currency_id
      FROM public.stock_warehouse w JOIN public.res_company c ON c.id = w.company_id
     WHERE w.id = so.w
    RETURNING id
$$;

CREATE FUNCTION pg_temp.sol(o int, p int, p_qty numeric, p_uom text DEFAULT NULL,
                            p_delivered numeric DEFAULT 0) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.sale_order_line (order_id, company_id, product_id, product_uom, product_uom_qty,
                                        qty_delivered, name, price_unit, customer_lead, state)
    SELECT so.id, so.company_id, p, COALESCE(pg_temp.xid(p_uom), pt.uom_id), p_qty, p_delivered,
           'omnichan ats line', 1, 0, so.state
      FROM public.sale_order so, public.product_product pp
      JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE so.id = o AND pp.id = p
    RETURNING id
$$;

-- a phantom BoM making p_qty (in p_uom, default the kit's unit) of a kit;
-- p_variant: for this variant only, else for the product's template
CREATE FUNCTION pg_temp.bom(kit int, p_qty numeric DEFAULT 1, p_uom text DEFAULT NULL,
                            p_variant boolean DEFAULT false, p_sequence int DEFAULT 10) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.mrp_bom (product_tmpl_id, product_id, product_uom_id, type, ready_to_produce,
                                consumption, product_qty, active, sequence)
    SELECT pt.id, CASE WHEN p_variant THEN pp.id END, COALESCE(pg_temp.xid(p_uom), pt.uom_id), 'phantom',
           'all_available', 'warning', p_qty, true, p_sequence
      FROM public.product_product pp JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE pp.id = kit
    RETURNING id
$$;

CREATE FUNCTION pg_temp.bom_line(b int, comp int, p_qty numeric, p_uom text DEFAULT NULL) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.mrp_bom_line (bom_id, product_id, product_uom_id, product_qty, sequence)
    SELECT b, comp, COALESCE(pg_temp.xid(p_uom), pt.uom_id), p_qty, 1
      FROM public.product_product pp JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE pp.id = comp
    RETURNING id
$$;

-- terms of one product in one warehouse (NULL: every active warehouse)
CREATE FUNCTION pg_temp.a(p int, w int DEFAULT NULL) RETURNS numeric LANGUAGE sql AS
$$ SELECT (omnichan.ats(p, w)).ats $$;
CREATE FUNCTION pg_temp.pend(p int, w int DEFAULT NULL) RETURNS numeric LANGUAGE sql AS
$$ SELECT (omnichan.ats(p, w)).pending $$;
CREATE FUNCTION pg_temp.terms(p int, w int DEFAULT NULL) RETURNS numeric[] LANGUAGE sql AS
$$ SELECT ARRAY[r.on_hand, r.reserved, r.safety, r.pending, r.ats] FROM omnichan.ats(p, w) r $$;
-- pooled over a set of warehouses
CREATE FUNCTION pg_temp.pool(p int, ws int[]) RETURNS numeric[] LANGUAGE sql AS
$$ SELECT ARRAY[r.on_hand, r.reserved, r.safety, r.pending, r.ats]
     FROM omnichan.ats_bulk(ARRAY[p], ws) r $$;

---------------------------------------------------------------- the setup
SELECT pg_temp.xid('base.main_company') AS co1 \gset
SELECT pg_temp.warehouse('OCA1', :co1) AS w1 \gset
SELECT pg_temp.warehouse('OCA2', :co1) AS w2 \gset
SELECT pg_temp.stock(:w1) AS s1, pg_temp.stock(:w2) AS s2 \gset
SELECT pg_temp.loc('Shelf 1', :s1) AS sub \gset
SELECT pg_temp.loc('Bin 1', :sub) AS sub2 \gset

-- a second company with its own warehouse
INSERT INTO public.res_company (name, partner_id, currency_id, layout_background, fiscalyear_last_day,
                                fiscalyear_last_month, account_opening_date, manufacturing_lead, po_lead,
                                security_lead, active)
SELECT 'omnichan ats company 2', partner_id, currency_id, layout_background, fiscalyear_last_day,
       fiscalyear_last_month, account_opening_date, manufacturing_lead, po_lead, security_lead, true
  FROM public.res_company WHERE id = :co1
RETURNING id AS co2 \gset
SELECT pg_temp.warehouse('OCA3', :co2) AS w3 \gset
SELECT pg_temp.stock(:w3) AS s3 \gset

-- locations outside every warehouse
SELECT pg_temp.xid('stock.stock_location_customers') AS cust,
       pg_temp.xid('stock.stock_location_suppliers') AS supp,
       pg_temp.xid('stock.stock_location_inter_wh') AS transit \gset
SELECT pg_temp.loc('Inventory adjustment', pg_temp.xid('stock.stock_location_locations_virtual'),
                   'inventory', :co1) AS inv \gset
-- a marketplace fulfilment centre: internal, but under no warehouse
SELECT pg_temp.loc('FBA', pg_temp.xid('stock.stock_location_locations'), 'internal', :co1) AS fba \gset

--------------------------------------------------------------- the scope
-- p1: 10 in WH/Stock + 5 in WH/Stock/Shelf + 2.5 in WH/Stock/Shelf/Bin = 17.5;
-- customer 100, vendor -50, inventory -7, transit 20, FBA 40 do not count
SELECT pg_temp.product('p1') AS p1 \gset
SELECT pg_temp.quant(:p1, :s1, 10), pg_temp.quant(:p1, :sub, 5), pg_temp.quant(:p1, :sub2, 2.5),
       pg_temp.quant(:p1, :cust, 100), pg_temp.quant(:p1, :supp, -50), pg_temp.quant(:p1, :inv, -7),
       pg_temp.quant(:p1, :transit, 20), pg_temp.quant(:p1, :fba, 40);
SELECT is(pg_temp.terms(:p1, :w1), '{17.5,0,0,0,17.5}'::numeric[],
          'scope: WH/Stock and its sub-locations count; partner, virtual, transit and FBA locations do not');
SELECT is(pg_temp.terms(:p1), '{17.5,0,0,0,17.5}'::numeric[],
          'scope: every warehouse pooled: the internal location outside any warehouse still does not count');
SELECT is(pg_temp.a(:p1, :w2), 0::numeric, 'scope: nothing in the other warehouse');
SELECT is((omnichan.ats(:p1, :w1)).product_id, :p1, 'ats() returns the product id');
SELECT is((omnichan.ats(:p1, :w1)).warehouse_id, :w1, 'ats() returns the warehouse id');
SELECT is((omnichan.ats(:p1)).warehouse_id, NULL, 'ats() pooled: warehouse id NULL');

-- negative quants: 10 - 4 = 6; a warehouse at -3 has 0 to sell
SELECT pg_temp.product('p2') AS p2 \gset
SELECT pg_temp.quant(:p2, :s1, 10), pg_temp.quant(:p2, :sub, -4), pg_temp.quant(:p2, :s2, -3);
SELECT is(pg_temp.terms(:p2, :w1), '{6,0,0,0,6}'::numeric[], 'negative quant: 10 - 4 = 6');
SELECT is(pg_temp.terms(:p2, :w2), '{-3,0,0,0,0}'::numeric[], 'negative on hand: ats is 0, not -3');
SELECT is(pg_temp.pool(:p2, ARRAY[:w1, :w2]), '{3,0,0,0,3}'::numeric[], 'negative quant in a pool: 6 - 3 = 3');

-- reserved more than on hand: 5 on hand, 8 reserved: 0
SELECT pg_temp.product('p3') AS p3 \gset
SELECT pg_temp.quant(:p3, :s1, 5, 8), pg_temp.quant(:p3, :sub, 4, 1);
SELECT is(pg_temp.terms(:p3, :w1), '{9,9,0,0,0}'::numeric[], 'reserved: 9 on hand - 9 reserved = 0');
UPDATE public.stock_quant SET quantity = 2 WHERE product_id = :p3 AND location_id = :sub;
SELECT is(pg_temp.terms(:p3, :w1), '{7,9,0,0,0}'::numeric[], 'reserved > on hand: 0, never negative');

------------------------------------------------------------ multi-company
-- p4: W1 10, W2 4, W3 (company 2) 7
SELECT pg_temp.product('p4') AS p4 \gset
SELECT pg_temp.quant(:p4, :s1, 10), pg_temp.quant(:p4, :s2, 4), pg_temp.quant(:p4, :s3, 7);
SELECT is((SELECT ats FROM omnichan.ats_bulk(ARRAY[:p4], NULL, false, :co2)), 7::numeric,
          'company 2 pooled: its warehouse only (7)');
SELECT results_eq(format('SELECT warehouse_id, ats FROM omnichan.ats_bulk(ARRAY[%s], NULL, true, %s)', :p4, :co2),
                  format('VALUES (%s, 7::numeric)', :w3),
                  'company 2 per warehouse: one row per warehouse of the company');
SELECT is((SELECT ats FROM omnichan.ats_bulk(ARRAY[:p4], NULL, false, :co1)), 14::numeric,
          'company 1 pooled: 10 + 4');
SELECT is((SELECT pg_catalog.array_agg(ats ORDER BY warehouse_id) FROM omnichan.ats_bulk(ARRAY[:p4], NULL, true, :co1)
            WHERE warehouse_id IN (:w1, :w2, :w3)), '{10,4}'::numeric[],
          'company 1 per warehouse: W1 10, W2 4, not company 2''s warehouse');
SELECT is(pg_temp.a(:p4), 21::numeric, 'every company pooled: 10 + 4 + 7');
SELECT results_eq(format('SELECT warehouse_id, ats FROM omnichan.ats_bulk(ARRAY[%s], ARRAY[%s, %s, %s], true)',
                         :p4, :w3, :w1, :w2),
                  format('VALUES (%s, 10::numeric), (%s, 4::numeric), (%s, 7::numeric)', :w1, :w2, :w3),
                  'explicit warehouses per warehouse: one row each, in warehouse order');
SELECT is(pg_temp.pool(:p4, ARRAY[:w1, :w1]), '{10,0,0,0,10}'::numeric[],
          'a warehouse listed twice counts once');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.ats_bulk(ARRAY[:p4], ARRAY[:w1, :w1], true)), 1,
          'a warehouse listed twice: one row per warehouse');
-- a (misconfigured) warehouse sharing W1's locations: a location in a pool counts once
INSERT INTO public.stock_warehouse (company_id, view_location_id, lot_stock_id, name, code, sequence,
                                    reception_steps, delivery_steps, manufacture_steps, active)
SELECT company_id, view_location_id, lot_stock_id, 'omnichan ats OCA4', 'OCA4', 91,
       reception_steps, delivery_steps, manufacture_steps, true
  FROM public.stock_warehouse WHERE id = :w1
RETURNING id AS w4 \gset
SELECT is(pg_temp.pool(:p4, ARRAY[:w1, :w4]), '{10,0,0,0,10}'::numeric[],
          'two warehouses over the same locations: each quant counts once in a pool');
UPDATE public.stock_warehouse SET active = false WHERE id = :w4;
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.ats_bulk(ARRAY[:p4, :p4, -1], ARRAY[:w1], true)), 1,
          'a product listed twice: one row; an unknown product: no row');

------------------------------------------------------------ archived product
SELECT pg_temp.product('p5') AS p5 \gset
SELECT pg_temp.quant(:p5, :s1, 3);
UPDATE public.product_product SET active = false WHERE id = :p5;
SELECT is(pg_temp.a(:p5, :w1), 3::numeric, 'archived variant: ATS still computed');
UPDATE public.product_template SET active = false WHERE id = pg_temp.tmpl(:p5);
SELECT is(pg_temp.a(:p5, :w1), 3::numeric, 'archived template: ATS still computed');

---------------------------------------------------------- units of measure
-- p6 in Units, 100 on hand, 12 reserved; moves in Dozens:
--   confirmed 2 Dozens (24), nothing reserved                    -> 24
--   partially_available 3 Dozens (36) with 1 Dozen (12) reserved  -> 24
-- pending 48, ats 100 - 12 - 48 = 40
SELECT pg_temp.product('p6') AS p6 \gset
SELECT pg_temp.quant(:p6, :s1, 100, 12);
SELECT pg_temp.move(:p6, :s1, :cust, 2, 'confirmed', 0, 'uom.product_uom_dozen'),
       pg_temp.move(:p6, :s1, :cust, 3, 'partially_available', 1, 'uom.product_uom_dozen');
SELECT is(pg_temp.terms(:p6, :w1), '{100,12,0,48,40}'::numeric[],
          'moves in Dozens of a product in Units: 2 dz + (3 dz - 1 dz reserved) = 48 units pending');

-- p7 in kg, 10 kg on hand, 0.1 kg reserved; moves in g:
--   confirmed 500 g -> 0.5; assigned 250 g with 100 g reserved -> 0.15
-- pending 0.65, ats 10 - 0.1 - 0.65 = 9.25
SELECT pg_temp.product('p7', 'uom.product_uom_kgm') AS p7 \gset
SELECT pg_temp.quant(:p7, :s1, 10, 0.1);
SELECT pg_temp.move(:p7, :s1, :cust, 500, 'confirmed', 0, 'uom.product_uom_gram'),
       pg_temp.move(:p7, :s1, :cust, 250, 'assigned', 100, 'uom.product_uom_gram');
SELECT is(pg_temp.terms(:p7, :w1), '{10,0.1,0,0.65,9.25}'::numeric[],
          'moves in g of a product in kg: 0.5 + (0.25 - 0.1) = 0.65 kg pending');

-- p8 in Units, 50 on hand; confirmed order line of 2 Dozens without move -> 24;
-- a line of 3 Dozens with 1 Dozen delivered -> 24
SELECT pg_temp.product('p8') AS p8 \gset
SELECT pg_temp.quant(:p8, :s1, 50);
SELECT pg_temp.so(:w1, 'sale') AS so8 \gset
SELECT pg_temp.sol(:so8, :p8, 2, 'uom.product_uom_dozen');
SELECT is(pg_temp.terms(:p8, :w1), '{50,0,0,24,26}'::numeric[],
          'sale line in Dozens of a product in Units: 24 units pending');
SELECT pg_temp.sol(:so8, :p8, 3, 'uom.product_uom_dozen', 1);
SELECT is(pg_temp.terms(:p8, :w1), '{50,0,0,48,2}'::numeric[],
          'sale line: only the undelivered quantity is pending (3 dz - 1 dz = 24)');

-------------------------------------------------------------- lots, packages
-- p9 lot-tracked: 4 (lot) + 6 (package) + 1 (lot and package) = 11
SELECT pg_temp.product('p9', p_tracking => 'lot') AS p9 \gset
INSERT INTO public.stock_lot (product_id, company_id, name) VALUES (:p9, :co1, 'OCATS-LOT-1')
RETURNING id AS lot9 \gset
INSERT INTO public.stock_quant_package (name, package_use, location_id, company_id)
VALUES ('OCATS-PACK-1', 'disposable', :sub, :co1) RETURNING id AS pack9 \gset
SELECT pg_temp.quant(:p9, :s1, 4, 0, :lot9), pg_temp.quant(:p9, :sub, 6, 2, NULL, :pack9),
       pg_temp.quant(:p9, :sub, 1, 0, :lot9, :pack9);
SELECT is(pg_temp.terms(:p9, :w1), '{11,2,0,0,9}'::numeric[],
          'quants with lots and packages count like any other');

---------------------------------------------------------------- move states
-- p10: 100 on hand, reserved 5 (assigned) + 3 (partially_available) = 8.
-- Moves WH/Stock -> Customers:
--   draft 1 (no), waiting 2 (2), confirmed 4 (4), partially_available 8 with 3
--   reserved (5), assigned 5 with 5 reserved (0), done 16 (no), cancel 32 (no)
-- pending 11, ats 100 - 8 - 11 = 81
SELECT pg_temp.product('p10') AS p10 \gset
SELECT pg_temp.quant(:p10, :s1, 100, 8);
SELECT pg_temp.move(:p10, :s1, :cust, 1, 'draft'),
       pg_temp.move(:p10, :s1, :cust, 2, 'waiting'),
       pg_temp.move(:p10, :s1, :cust, 4, 'confirmed'),
       pg_temp.move(:p10, :s1, :cust, 8, 'partially_available', 3),
       pg_temp.move(:p10, :s1, :cust, 5, 'assigned', 5),
       pg_temp.move(:p10, :s1, :cust, 16, 'done', 16),
       pg_temp.move(:p10, :s1, :cust, 32, 'cancel');
SELECT is(pg_temp.terms(:p10, :w1), '{100,8,0,11,81}'::numeric[],
          'moves: only waiting/confirmed/partially_available/assigned count, only their unreserved part');
SELECT is(pg_temp.pend(:p10, :w2), 0::numeric, 'moves of another warehouse do not count');
SELECT pg_temp.move(:p10, :sub, :cust, 3, 'waiting');
SELECT is(pg_temp.pend(:p10, :w1), 14::numeric, 'a move from a sub-location counts: 11 + 3');

-- p11: W1 50, W2 20.  Moves, all confirmed:
--   W1/Stock -> W1/Stock/Shelf 7   internal transfer: never pending
--   W1/Stock -> W2/Stock 9         pending for W1 alone, not for W1+W2
--   W1/Stock -> transit 3          pending for W1 and for W1+W2
--   FBA -> Customers 100           not from the pool
--   Customers -> W1/Stock 5        incoming: not pending
SELECT pg_temp.product('p11') AS p11 \gset
SELECT pg_temp.quant(:p11, :s1, 50), pg_temp.quant(:p11, :s2, 20);
SELECT pg_temp.move(:p11, :s1, :sub, 7, 'confirmed'),
       pg_temp.move(:p11, :s1, :s2, 9, 'confirmed'),
       pg_temp.move(:p11, :s1, :transit, 3, 'confirmed'),
       pg_temp.move(:p11, :fba, :cust, 100, 'confirmed'),
       pg_temp.move(:p11, :cust, :s1, 5, 'confirmed');
SELECT is(pg_temp.terms(:p11, :w1), '{50,0,0,12,38}'::numeric[],
          'per warehouse: the transfer to W2 and the move to transit are pending (9 + 3)');
SELECT is(pg_temp.terms(:p11, :w2), '{20,0,0,0,20}'::numeric[],
          'the receiving warehouse has no pending demand');
SELECT is(pg_temp.pool(:p11, ARRAY[:w1, :w2]), '{70,0,0,3,67}'::numeric[],
          'pooled W1+W2: only the move leaving both warehouses is pending (3)');
SELECT is((SELECT pg_catalog.array_agg(pending ORDER BY warehouse_id)
             FROM omnichan.ats_bulk(ARRAY[:p11], ARRAY[:w1, :w2], true)), '{12,0}'::numeric[],
          'ats_bulk per warehouse: the same as ats() per warehouse');
SELECT is(pg_temp.pend(:p11), 3::numeric, 'every warehouse pooled: only the move to transit');

---------------------------------------------------------------- sale orders
-- p12: W1 100.  Orders of W1 unless said:
--   a: sale, line 3, no move                      3
--   b: sale, line 4, with a confirmed move of 4   4 (the move)
--   c: draft, line 5                              quotation: no
--   d: sent, line 6                               quotation: no
--   e: cancel, line 7                             no
--   f: sale, W2, line 8                           other warehouse
--   g: draft, line 2, linked from order_inbox     2
-- pending W1 7 + 2 = 9; with count_manual_quotations 9 + 5 + 6 = 20
SELECT pg_temp.product('p12') AS p12 \gset
SELECT pg_temp.quant(:p12, :s1, 100), pg_temp.quant(:p12, :s2, 100);
SELECT pg_temp.sol(pg_temp.so(:w1, 'sale'), :p12, 3);
SELECT pg_temp.sol(pg_temp.so(:w1, 'sale'), :p12, 4) AS line_b \gset
SELECT pg_temp.move(:p12, :s1, :cust, 4, 'confirmed', 0, NULL, :line_b);
SELECT is(pg_temp.pend(:p12, :w1), 7::numeric, 'confirmed orders: the line without a move (3) and the move (4)');
SELECT pg_temp.sol(pg_temp.so(:w1, 'draft'), :p12, 5), pg_temp.sol(pg_temp.so(:w1, 'sent'), :p12, 6),
       pg_temp.sol(pg_temp.so(:w1, 'cancel'), :p12, 7), pg_temp.sol(pg_temp.so(:w2, 'sale'), :p12, 8);
SELECT is(pg_temp.pend(:p12, :w1), 7::numeric, 'quotations, cancelled orders and other warehouses'' orders do not count');
SELECT is(pg_temp.pend(:p12, :w2), 8::numeric, 'the order counts at its own warehouse');

SELECT omnichan.channel_create('ocats-ebay', 'ebay',
    jsonb_build_object('marketplace_id', 'EBAY_US', 'company_id', :co1,
                       'warehouse_ids', jsonb_build_array(:w1, :w2))) AS ch \gset
SELECT pg_temp.so(:w1, 'draft') AS so_g \gset
SELECT pg_temp.sol(:so_g, :p12, 2);
INSERT INTO omnichan.order_inbox (channel_id, external_id, state, sale_order_id)
VALUES (:ch, 'OCATS-G', 'materialized', :so_g);
SELECT is(pg_temp.pend(:p12, :w1), 9::numeric, 'a quotation created from a marketplace order counts (7 + 2)');
SET LOCAL omnichan.count_manual_quotations = on;
SELECT is(pg_temp.terms(:p12, :w1), '{100,0,0,20,80}'::numeric[],
          'count_manual_quotations: every draft and sent quotation counts (9 + 5 + 6)');
SET LOCAL omnichan.count_manual_quotations = off;
SELECT is(pg_temp.pend(:p12, :w1), 9::numeric, 'count_manual_quotations off again: 9');

----------------------------------------------------------------- order inbox
-- p13: W1 100, W2 100; inbox orders of the channel (default warehouse W1):
--   received, no warehouse: line 2 -> W1
--   held, warehouse W2: line 3 -> W2
--   materialized without sale order: line 4 -> no
--   cancelled: line 5 -> no
--   received, line of an unlinked SKU (product NULL) -> no
SELECT pg_temp.product('p13') AS p13 \gset
SELECT pg_temp.quant(:p13, :s1, 100), pg_temp.quant(:p13, :s2, 100);
INSERT INTO omnichan.order_inbox (channel_id, external_id, state, warehouse_id)
VALUES (:ch, 'OCATS-1', 'received', NULL), (:ch, 'OCATS-2', 'held', :w2),
       (:ch, 'OCATS-3', 'materialized', NULL), (:ch, 'OCATS-4', 'cancelled', NULL),
       (:ch, 'OCATS-5', 'received', NULL);
INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity)
SELECT i.id, 1, 'SKU-P13', CASE WHEN i.external_id = 'OCATS-5' THEN NULL ELSE :p13 END,
       pg_catalog.right(i.external_id, 1)::int + 1
  FROM omnichan.order_inbox i WHERE i.external_id IN ('OCATS-1', 'OCATS-2', 'OCATS-3', 'OCATS-4', 'OCATS-5');
SELECT is(pg_temp.terms(:p13, :w1), '{100,0,0,2,98}'::numeric[],
          'inbox: a received order counts at the channel''s default warehouse');
SELECT is(pg_temp.terms(:p13, :w2), '{100,0,0,3,97}'::numeric[],
          'inbox: a held order counts at its routed warehouse');
SELECT is(pg_temp.pool(:p13, ARRAY[:w1, :w2]), '{200,0,0,5,195}'::numeric[],
          'inbox: materialized, cancelled and unlinked lines do not count');

-- never counted twice: p14, 20 in W1, one marketplace order of 5 through its life
SELECT pg_temp.product('p14') AS p14 \gset
SELECT pg_temp.quant(:p14, :s1, 20);
INSERT INTO omnichan.order_inbox (channel_id, external_id, state, warehouse_id)
VALUES (:ch, 'OCATS-LIFE', 'received', :w1) RETURNING id AS life \gset
INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity)
VALUES (:life, 1, 'SKU-P14', :p14, 5);
SELECT is(pg_temp.terms(:p14, :w1), '{20,0,0,5,15}'::numeric[], 'life 1: received in the inbox: 5 pending');
SELECT pg_temp.so(:w1, 'draft') AS so_life \gset
SELECT pg_temp.sol(:so_life, :p14, 5) AS line_life \gset
UPDATE omnichan.order_inbox SET sale_order_id = :so_life, state = 'materialized' WHERE id = :life;
SELECT is(pg_temp.terms(:p14, :w1), '{20,0,0,5,15}'::numeric[], 'life 2: quotation from the inbox order: still 5');
UPDATE omnichan.order_inbox SET state = 'received' WHERE id = :life;
SELECT is(pg_temp.terms(:p14, :w1), '{20,0,0,5,15}'::numeric[], 'life 2b: sale order set, inbox state not yet updated: still 5');
UPDATE public.sale_order SET state = 'sale' WHERE id = :so_life;
UPDATE public.sale_order_line SET state = 'sale' WHERE id = :line_life;
SELECT is(pg_temp.terms(:p14, :w1), '{20,0,0,5,15}'::numeric[], 'life 3: confirmed, no move yet: still 5');
SELECT pg_temp.move(:p14, :s1, :cust, 5, 'confirmed', 0, NULL, :line_life) AS move_life \gset
SELECT is(pg_temp.terms(:p14, :w1), '{20,0,0,5,15}'::numeric[], 'life 4: delivery move created: still 5');
UPDATE public.stock_move SET state = 'assigned', quantity = 5 WHERE id = :move_life;
UPDATE public.stock_quant SET reserved_quantity = 5 WHERE product_id = :p14;
SELECT is(pg_temp.terms(:p14, :w1), '{20,5,0,0,15}'::numeric[], 'life 5: reserved: 5 reserved, 0 pending');
UPDATE public.stock_move SET state = 'done' WHERE id = :move_life;
UPDATE public.stock_quant SET reserved_quantity = 0, quantity = 15 WHERE product_id = :p14;
SELECT pg_temp.quant(:p14, :cust, 5);
UPDATE public.sale_order_line SET qty_delivered = 5 WHERE id = :line_life;
SELECT is(pg_temp.terms(:p14, :w1), '{15,0,0,0,15}'::numeric[], 'life 6: delivered: 15 on hand, nothing pending');

---------------------------------------------------------------- safety stock
SELECT pg_temp.product('p15') AS p15 \gset
SELECT pg_temp.quant(:p15, :s1, 10), pg_temp.quant(:p15, :s2, 1);
SELECT omnichan.product_policy_set(:p15, '{"safety_stock": 3}');
SELECT is(pg_temp.terms(:p15, :w1), '{10,0,3,0,7}'::numeric[], 'safety stock: 10 - 3 = 7');
SELECT is(pg_temp.pool(:p15, ARRAY[:w1, :w2]), '{11,0,3,0,8}'::numeric[], 'safety stock applies once to a pool');
SELECT is(pg_temp.terms(:p15, :w2), '{1,0,3,0,0}'::numeric[], 'safety stock above on hand: 0');
SELECT omnichan.product_policy_set(:p15, '{"safety_stock": 12.5}');
SELECT is(pg_temp.a(:p15, :w1), 0::numeric, 'safety stock 12.5 > 10: 0, never negative');
SELECT omnichan.product_policy_set(:p15, '{"safety_stock": 2.5}');
SELECT is(pg_temp.a(:p15, :w1), 7.5::numeric, 'fractional safety stock: 10 - 2.5 = 7.5');

------------------------------------------------------------------------ kits
-- components in W1: ka 10, kb 3, kc nothing (storable), ke 25, kg 1.1 kg
SELECT pg_temp.product('ka') AS ka, pg_temp.product('kb') AS kb, pg_temp.product('kc') AS kc,
       pg_temp.product('ke') AS ke, pg_temp.product('kg', 'uom.product_uom_kgm') AS kg \gset
SELECT pg_temp.quant(:ka, :s1, 10), pg_temp.quant(:kb, :s1, 3), pg_temp.quant(:ke, :sub, 25),
       pg_temp.quant(:kg, :s1, 1.1);
-- k1 = 2 ka + 1 kb: min(10 / 2, 3 / 1) = 3
SELECT pg_temp.product('k1') AS k1 \gset
SELECT pg_temp.bom(:k1) AS b1 \gset
SELECT pg_temp.bom_line(:b1, :ka, 2), pg_temp.bom_line(:b1, :kb, 1);
SELECT is(pg_temp.a(:k1, :w1), 3::numeric, 'kit 2 A + 1 B: min(floor(10 / 2), floor(3 / 1)) = 3');
SELECT is(pg_temp.a(:k1, :w2), 0::numeric, 'kit in a warehouse without its components: 0');
UPDATE public.stock_quant SET quantity = 11 WHERE product_id = :ka;
SELECT is(pg_temp.a(:k1, :w1), 3::numeric, 'kit: floor per component (11 / 2 = 5.5 -> 5), min 3');
UPDATE public.stock_quant SET quantity = 5 WHERE product_id = :ka;
SELECT is(pg_temp.terms(:k1, :w1), '{2,0,0,0,2}'::numeric[], 'kit: 5 / 2 = 2.5 -> 2 (on hand in kit units)');
UPDATE public.stock_quant SET quantity = 10 WHERE product_id = :ka;
-- k2 = 1 ka + 1 kc: kc has no stock -> 0
SELECT pg_temp.product('k2') AS k2 \gset
SELECT pg_temp.bom(:k2) AS b2 \gset
SELECT pg_temp.bom_line(:b2, :ka, 1), pg_temp.bom_line(:b2, :kc, 1);
SELECT is(pg_temp.a(:k2, :w1), 0::numeric, 'kit with a component without stock: 0');
-- k3: one run makes 1 Dozen (12 units) from 6 ka: floor(10 * 12 / 6) = 20
SELECT pg_temp.product('k3') AS k3 \gset
SELECT pg_temp.bom(:k3, 1, 'uom.product_uom_dozen') AS b3 \gset
SELECT pg_temp.bom_line(:b3, :ka, 6);
SELECT is(pg_temp.a(:k3, :w1), 20::numeric, 'kit BoM in Dozens: 12 kits per 6 components: 10 * 12 / 6 = 20');
-- k4 = 0.5 Dozen ke (6 units): floor(25 / 6) = 4
SELECT pg_temp.product('k4') AS k4 \gset
SELECT pg_temp.bom(:k4) AS b4 \gset
SELECT pg_temp.bom_line(:b4, :ke, 0.5, 'uom.product_uom_dozen');
SELECT is(pg_temp.a(:k4, :w1), 4::numeric, 'kit line in Dozens of a component in Units: floor(25 / 6) = 4');
-- k5 = 250 g of kg (in kg): floor(1.1 / 0.25) = 4
SELECT pg_temp.product('k5') AS k5 \gset
SELECT pg_temp.bom(:k5) AS b5 \gset
SELECT pg_temp.bom_line(:b5, :kg, 250, 'uom.product_uom_gram');
SELECT is(pg_temp.a(:k5, :w1), 4::numeric, 'kit line in g of a component in kg: floor(1.1 / 0.25) = 4');
-- a non-storable (service) component is ignored: k7 = 1 kb + 1 service -> 3
SELECT pg_temp.product('ksvc', p_type => 'service') AS ksvc, pg_temp.product('k7') AS k7 \gset
SELECT pg_temp.bom(:k7) AS b7 \gset
SELECT pg_temp.bom_line(:b7, :kb, 1), pg_temp.bom_line(:b7, :ksvc, 1);
SELECT is(pg_temp.a(:k7, :w1), 3::numeric, 'kit: a service component is ignored');
-- a kit with only a service component: 0
SELECT pg_temp.product('k8') AS k8 \gset
SELECT pg_temp.bom(:k8) AS b8 \gset
SELECT pg_temp.bom_line(:b8, :ksvc, 1);
SELECT is(pg_temp.a(:k8, :w1), 0::numeric, 'kit without a storable component: 0');
-- safety stock on a kit: 3 - 1 = 2
SELECT omnichan.product_policy_set(:k7, '{"safety_stock": 1}');
SELECT is(pg_temp.terms(:k7, :w1), '{3,0,1,0,2}'::numeric[], 'kit safety stock: 3 - 1 = 2');
-- a component reserved: kb 3 on hand, 1 reserved -> k7 on hand 3, free 2
UPDATE public.stock_quant SET reserved_quantity = 1 WHERE product_id = :kb;
SELECT is(pg_temp.terms(:k7, :w1), '{3,1,1,0,1}'::numeric[], 'kit: a reserved component shows as a reserved kit');
UPDATE public.stock_quant SET reserved_quantity = 0 WHERE product_id = :kb;

-- demand on a kit: confirmed order of 1 k1 (no move) -> ka +2, kb +1 pending:
-- ka 8, kb 2, k1 = min(4, 2) = 2, k3 = floor(8 * 12 / 6) = 16
SELECT pg_temp.so(:w1, 'sale') AS sok \gset
SELECT pg_temp.sol(:sok, :k1, 1);
SELECT is(pg_temp.terms(:ka, :w1), '{10,0,0,2,8}'::numeric[], 'demand on a kit is demand on its components (ka: 2)');
SELECT is(pg_temp.terms(:kb, :w1), '{3,0,0,1,2}'::numeric[], 'demand on a kit is demand on its components (kb: 1)');
SELECT is(pg_temp.a(:k1, :w1), 2::numeric, 'kit after demand on itself: min(8 / 2, 2 / 1) = 2');
SELECT is(pg_temp.a(:k3, :w1), 16::numeric, 'another kit sharing a component: floor(8 * 12 / 6) = 16');
SELECT is((SELECT pg_catalog.array_agg(ats ORDER BY product_id)
             FROM omnichan.ats_bulk(ARRAY[:ka, :kb, :k1, :k3], ARRAY[:w1], true)),
          '{8,2,2,16}'::numeric[], 'the same in one ats_bulk call');
SELECT is((SELECT pg_catalog.array_agg(ats ORDER BY product_id)
             FROM omnichan.ats_bulk(NULL, ARRAY[:w1], true)
            WHERE product_id IN (:ka, :kb, :k1, :k3)),
          '{8,2,2,16}'::numeric[], 'the same for every product (product_ids NULL)');
-- kit demand in the kit's BoM unit: a line of 1 Dozen k3 needs 6 ka (1 run)
SELECT pg_temp.sol(:sok, :k3, 1, 'uom.product_uom_dozen');
SELECT is(pg_temp.pend(:ka, :w1), 8::numeric, 'demand of 1 Dozen k3 = one run = 6 ka (2 + 6)');
-- a kit's component move (Odoo explodes kit deliveries): counts for the component
SELECT pg_temp.move(:kb, :s1, :cust, 1, 'confirmed');
SELECT is(pg_temp.terms(:k1, :w1), '{3,0,0,2,1}'::numeric[],
          'kit terms: on hand 3, ats min(2 / 2 [ka 10 - 8], 1 / 1 [kb 3 - 2]) = 1');

-- a kit containing a kit, the outer one created first: k9 = 1 k10 + 1 kh;
-- k10 = 2 kr; kr 10, kh 5 in W1 -> k10 5, k9 5
SELECT pg_temp.product('k9') AS k9 \gset
SELECT pg_temp.product('k10') AS k10 \gset
SELECT pg_temp.product('kr') AS kr, pg_temp.product('kh') AS kh \gset
SELECT pg_temp.quant(:kr, :s1, 10), pg_temp.quant(:kh, :s1, 5);
SELECT pg_temp.bom(:k10) AS b10 \gset
SELECT pg_temp.bom_line(:b10, :kr, 2);
SELECT pg_temp.bom(:k9) AS b9 \gset
SELECT pg_temp.bom_line(:b9, :k10, 1), pg_temp.bom_line(:b9, :kh, 1);
SELECT is(pg_temp.a(:k9, :w1), 5::numeric, 'kit of kits: min(k10 = 10 / 2, kh = 5) = 5');
-- demand: 1 k10 (kr +2) and 1 k9 (k10 +1 -> kr +2, kh +1): kr 6, kh 4 -> k10 3, k9 3
SELECT pg_temp.sol(:sok, :k10, 1), pg_temp.sol(:sok, :k9, 1);
SELECT is(pg_temp.terms(:kr, :w1), '{10,0,0,4,6}'::numeric[], 'kit of kits: demand reaches the innermost component (2 + 2)');
SELECT is(pg_temp.terms(:kh, :w1), '{5,0,0,1,4}'::numeric[], 'kit of kits: demand on the outer kit reaches its direct component');
SELECT is(pg_temp.a(:k9, :w1), 3::numeric, 'kit of kits after demand: min(floor(6 / 2), 4) = 3');
SELECT is((SELECT pg_catalog.array_agg(ats ORDER BY product_id)
             FROM omnichan.ats_bulk(ARRAY[:k9, :k10, :kr, :kh], ARRAY[:w1], true)),
          '{3,3,6,4}'::numeric[], 'kit of kits: outer kit, inner kit and components in one call');

-- variant BoM before template BoM: template kt with variants v1 and v2; a
-- template BoM (1 j1) and a BoM for v1 only (1 j2), same sequence
SELECT pg_temp.product('v1') AS v1 \gset
SELECT pg_temp.product('v2', p_tmpl => pg_temp.tmpl(:v1)) AS v2 \gset
SELECT pg_temp.product('j1') AS j1, pg_temp.product('j2') AS j2 \gset
SELECT pg_temp.quant(:j1, :s1, 7), pg_temp.quant(:j2, :s1, 4);
SELECT pg_temp.bom(:v1) AS bt \gset
SELECT pg_temp.bom_line(:bt, :j1, 1);
SELECT pg_temp.bom(:v1, p_variant => true) AS bv \gset
SELECT pg_temp.bom_line(:bv, :j2, 1);
SELECT is(pg_temp.a(:v1, :w1), 4::numeric, 'the variant''s own BoM beats the template BoM (j2: 4)');
SELECT is(pg_temp.a(:v2, :w1), 7::numeric, 'another variant uses the template BoM (j1: 7)');
-- a lower sequence wins over the variant BoM, as in Odoo's _bom_find
UPDATE public.mrp_bom SET sequence = 5 WHERE id = :bt;
SELECT is(pg_temp.a(:v1, :w1), 7::numeric, 'a template BoM with a lower sequence comes first');
-- an archived BoM is no BoM
UPDATE public.mrp_bom SET active = false WHERE id = :bt;
SELECT is(pg_temp.a(:v1, :w1), 4::numeric, 'an archived BoM is ignored');
SELECT is(pg_temp.a(:v2, :w1), 0::numeric, 'without an active BoM the variant is an ordinary product (no stock)');
-- demand on v1 reaches j2 only
SELECT pg_temp.sol(:sok, :v1, 3);
SELECT is(pg_temp.pend(:j2, :w1), 3::numeric, 'demand on a variant kit reaches the component of its own BoM');
SELECT is(pg_temp.pend(:j1, :w1), 0::numeric, 'and not the component of the inactive template BoM');

-- a kit with a non-kit BoM (normal manufacturing) is an ordinary product
SELECT pg_temp.product('k11') AS k11 \gset
SELECT pg_temp.bom(:k11) AS b11 \gset
UPDATE public.mrp_bom SET type = 'normal' WHERE id = :b11;
SELECT pg_temp.bom_line(:b11, :ka, 1);
SELECT pg_temp.quant(:k11, :s1, 2);
SELECT is(pg_temp.a(:k11, :w1), 2::numeric, 'a manufactured (normal BoM) product has its own stock');

-- a kit containing itself is an error
SELECT pg_temp.product('k12') AS k12 \gset
SELECT pg_temp.bom(:k12) AS b12 \gset
SELECT pg_temp.bom_line(:b12, :k12, 1);
SELECT throws_ok(format('SELECT omnichan.ats(%s, %s)', :k12, :w1), '42P19', NULL,
                 'a kit containing itself raises invalid_recursion');
UPDATE public.mrp_bom SET active = false WHERE id = :b12;

---------------------------------------------------------- service, consumable
SELECT pg_temp.product('c1', p_type => 'consu') AS c1 \gset
SELECT pg_temp.quant(:c1, :s1, 4);
SELECT is(pg_temp.terms(:c1, :w1), '{0,0,0,0,0}'::numeric[], 'a consumable has nothing to sell');

---------------------------------------------------------------------- errors
SELECT throws_ok('SELECT omnichan.ats(-1)', '42704', 'product -1 does not exist', 'unknown product: 42704');
SELECT throws_ok(format('SELECT omnichan.ats(%s, -1)', :p1), '42704', 'warehouse -1 does not exist',
                 'unknown warehouse: 42704');
SELECT throws_ok(format('SELECT * FROM omnichan.ats_bulk(ARRAY[%s], ARRAY[%s, -5])', :p1, :w1), '42704',
                 'warehouse -5 does not exist', 'ats_bulk: unknown warehouse: 42704');
SELECT throws_ok('SELECT omnichan.ats(NULL)', '22004', NULL, 'NULL product: 22004');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.ats_bulk(ARRAY[:p1], ARRAY[]::int[], true)), 0,
          'no warehouse per warehouse: no row');
SELECT is(pg_temp.pool(:p1, ARRAY[]::int[]), '{0,0,0,0,0}'::numeric[], 'an empty pool: 0');

------------------------------------------------------------- bulk consistency
-- every product of this test: ats_bulk(NULL) per warehouse = ats() per product
SELECT is((SELECT pg_catalog.count(*)::int
             FROM omnichan.ats_bulk(NULL, ARRAY[:w1, :w2], true) b
             JOIN public.product_product pp ON pp.id = b.product_id
            WHERE pp.default_code LIKE 'OCATS-%'
              AND ROW(b.on_hand, b.reserved, b.safety, b.pending, b.ats)
                  IS DISTINCT FROM (SELECT ROW(r.on_hand, r.reserved, r.safety, r.pending, r.ats)
                                      FROM omnichan.ats(b.product_id, b.warehouse_id) r)), 0,
          'ats_bulk(NULL) agrees with ats() for every product of this test');
SELECT is((SELECT pg_catalog.count(*)::int
             FROM omnichan.ats_bulk(NULL, ARRAY[:w1, :w2], true) b
             JOIN public.product_product pp ON pp.id = b.product_id
            WHERE pp.default_code LIKE 'OCATS-%'), 2 * (
          SELECT pg_catalog.count(*)::int FROM public.product_product pp
            JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
           WHERE pp.default_code LIKE 'OCATS-%'
             AND (pt.type = 'product' OR pp.id IN (:k1, :k2, :k3, :k4, :k5, :k7, :k8, :k9, :k10, :v1))),
          'ats_bulk(NULL): every storable product and every kit, per warehouse');

SELECT * FROM finish();
ROLLBACK;
