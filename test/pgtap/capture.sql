--
-- capture: change capture (omnichan.capture() triggers, omnichan.stock_dirty_log,
-- the coalesced set omnichan.stock_dirty and its claim / ack / release API,
-- omnichan.capture_status, omnichan.capture_install, omnichan.dirty_backlog).
--
-- Runs on the project's fixture and on the real Odoo 17 demo database.  Every
-- row it needs is created inside the (rolled back) transaction; existing
-- records are only looked up by external id.
--
-- How a check works: the setup is written with session_replication_role =
-- replica, so no capture trigger fires and this transaction has recorded
-- nothing when the checks start.  pg_temp.cap() runs the statements of one
-- check in a subtransaction -- as Odoo's own role, a non-superuser that owns
-- the Odoo tables it writes and has no privilege on schema omnichan -- reads
-- the log, then rolls the subtransaction back (which also makes the trigger
-- forget what it recorded).  Every check therefore starts from the same
-- state and sees exactly the log rows its statements wrote, duplicates
-- included.
--
-- The commit-time wake-up counter needs commits: see
-- test/integration/capture_wakeup.sh and test/specs/capture_*.spec.
--
BEGIN;
SELECT plan(126);

SET LOCAL client_min_messages = warning;

------------------------------------------------------------------- helpers
CREATE FUNCTION pg_temp.xid(x text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT res_id FROM public.ir_model_data
    WHERE module = split_part(x, '.', 1) AND name = split_part(x, '.', 2) $$;

-- sorted copy of an int[] (duplicates kept)
CREATE FUNCTION pg_temp.s(a int[]) RETURNS int[] LANGUAGE sql IMMUTABLE AS
$$ SELECT COALESCE(array_agg(x ORDER BY x), '{}') FROM unnest(a) x $$;

-- a storable product variant; a new template unless p_tmpl is given
CREATE FUNCTION pg_temp.product(p_name text, p_tmpl int DEFAULT NULL) RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    t int := p_tmpl;
    u int := pg_temp.xid('uom.product_uom_unit');
    p int;
BEGIN
    IF t IS NULL THEN
        INSERT INTO public.product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                             sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                             list_price, sequence, invoice_policy)
        VALUES (pg_temp.xid('product.product_category_all'), u, u, 'product', 'product',
                jsonb_build_object('en_US', 'omnichan capture ' || p_name), 'none',
                'no-message', 'no-message', true, true, true, 1, 1, 'order')
        RETURNING id INTO t;
    END IF;
    INSERT INTO public.product_product (product_tmpl_id, active, default_code)
    VALUES (t, true, 'OCCAP-' || p_name) RETURNING id INTO p;
    RETURN p;
END
$$;

CREATE FUNCTION pg_temp.tmpl(p int) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT product_tmpl_id FROM public.product_product WHERE id = p $$;

CREATE FUNCTION pg_temp.quant(p int, p_loc int, q numeric, r numeric DEFAULT 0) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.stock_quant (product_id, company_id, location_id, quantity, reserved_quantity,
                                    in_date, inventory_quantity_set)
    SELECT p, l.company_id, l.id, q, r, now()::timestamp, false
      FROM public.stock_location l WHERE l.id = p_loc
    RETURNING id
$$;

CREATE FUNCTION pg_temp.move(p int, src int, dst int, p_qty numeric, p_state text) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id, location_dest_id, name,
                                   state, procure_method, product_uom_qty, product_qty, quantity, date,
                                   picked, scrapped, is_inventory, additional, propagate_cancel)
    SELECT pg_temp.xid('base.main_company'), p, pt.uom_id, src, dst, 'omnichan capture move',
           p_state, 'make_to_stock', p_qty, p_qty, 0, now()::timestamp, false, false, false, false, false
      FROM public.product_product pp JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE pp.id = p
    RETURNING id
$$;

CREATE FUNCTION pg_temp.so(p_state text) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.sale_order (company_id, partner_id, partner_invoice_id, partner_shipping_id, name,
                                   date_order, warehouse_id, picking_policy, state, currency_id)
    SELECT c.id, c.partner_id, c.partner_id, c.partner_id, 'OCCAP/' || nextval('public.sale_order_id_seq'),
           now()::timestamp, w.id, 'direct', p_state, c.currency_id
      FROM public.stock_warehouse w JOIN public.res_company c ON c.id = w.company_id
     WHERE w.id = pg_temp.xid('stock.warehouse0')
    RETURNING id
$$;

CREATE FUNCTION pg_temp.sol(o int, p int, p_qty numeric) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.sale_order_line (order_id, company_id, product_id, product_uom, product_uom_qty,
                                        qty_delivered, name, price_unit, customer_lead, state)
    SELECT so.id, so.company_id, p, pt.uom_id, p_qty, 0, 'omnichan capture line', 1, 0, so.state
      FROM public.sale_order so, public.product_product pp
      JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE so.id = o AND pp.id = p
    RETURNING id
$$;

-- a phantom BoM of a kit: for that variant only, or for its template
CREATE FUNCTION pg_temp.bom(kit int, p_variant boolean) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.mrp_bom (product_tmpl_id, product_id, product_uom_id, type, ready_to_produce,
                                consumption, product_qty, active, sequence)
    SELECT pt.id, CASE WHEN p_variant THEN pp.id END, pt.uom_id, 'phantom', 'all_available', 'warning',
           1, true, 10
      FROM public.product_product pp JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE pp.id = kit
    RETURNING id
$$;

CREATE FUNCTION pg_temp.bom_line(b int, comp int, p_qty numeric) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.mrp_bom_line (bom_id, product_id, product_uom_id, product_qty, sequence)
    SELECT b, comp, pt.uom_id, p_qty, 1
      FROM public.product_product pp JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
     WHERE pp.id = comp
    RETURNING id
$$;

-- Run statements in a subtransaction (as p_role unless NULL), return the
-- sorted product ids of the log rows they wrote, and roll everything back.
CREATE FUNCTION pg_temp.cap(p_role text, VARIADIC stmts text[]) RETURNS int[] LANGUAGE plpgsql AS
$$
DECLARE
    s text;
    r int[];
BEGIN
    BEGIN
        IF p_role IS NOT NULL THEN
            EXECUTE format('SET ROLE %I', p_role);
        END IF;
        FOREACH s IN ARRAY stmts LOOP
            EXECUTE s;
        END LOOP;
        RESET ROLE;
        SELECT COALESCE(array_agg(l.product_id ORDER BY l.product_id), '{}') INTO r
          FROM omnichan.stock_dirty_log l;
        RAISE EXCEPTION USING ERRCODE = 'OCCAP', MESSAGE = r::text;
    EXCEPTION WHEN SQLSTATE 'OCCAP' THEN
        RETURN SQLERRM::int[];
    END;
END
$$;

-- the same as Odoo's role
CREATE FUNCTION pg_temp.odoo(VARIADIC stmts text[]) RETURNS int[] LANGUAGE sql AS
$$ SELECT pg_temp.cap('omnichan_capture_odoo', VARIADIC stmts) $$;

-- the same, then omnichan.dirty_claim(): the sorted products claimed
CREATE FUNCTION pg_temp.claim_after(stmt text) RETURNS int[] LANGUAGE plpgsql AS
$$
DECLARE
    r int[];
BEGIN
    BEGIN
        SET ROLE omnichan_capture_odoo;
        EXECUTE stmt;
        RESET ROLE;
        SELECT COALESCE(array_agg(c.product_id ORDER BY c.product_id), '{}') INTO r
          FROM omnichan.dirty_claim(1000) c;
        RAISE EXCEPTION USING ERRCODE = 'OCCAP', MESSAGE = r::text;
    EXCEPTION WHEN SQLSTATE 'OCCAP' THEN
        RETURN SQLERRM::int[];
    END;
END
$$;

-- run one statement as a role: 'ok' (its effects kept) or the SQLSTATE
CREATE FUNCTION pg_temp.try_as(p_role text, stmt text) RETURNS text LANGUAGE plpgsql AS
$$
BEGIN
    BEGIN
        EXECUTE format('SET ROLE %I', p_role);
        EXECUTE stmt;
        RESET ROLE;
        RETURN 'ok';
    EXCEPTION WHEN OTHERS THEN
        RETURN SQLSTATE;
    END;
END
$$;

-- log rows of one product (top-level checks)
CREATE FUNCTION pg_temp.logged(p int) RETURNS bigint LANGUAGE sql AS
$$ SELECT count(*) FROM omnichan.stock_dirty_log WHERE product_id = p $$;

------------------------------------------------------------ the setup
-- nothing this transaction writes before the checks is captured
SET LOCAL session_replication_role = replica;
DELETE FROM omnichan.stock_dirty_log;
DELETE FROM omnichan.stock_dirty;

SELECT pg_temp.xid('base.main_company') AS co1,
       (SELECT lot_stock_id FROM public.stock_warehouse WHERE id = pg_temp.xid('stock.warehouse0')) AS stk,
       pg_temp.xid('stock.stock_location_customers') AS cust \gset

-- an internal location of our own (for the bulk update)
INSERT INTO public.stock_location (name, complete_name, location_id, usage, company_id, active,
                                   scrap_location, replenish_location)
VALUES ('omnichan capture bulk', 'omnichan capture bulk', :stk, 'internal', :co1, true, false, false)
RETURNING id AS bulkloc \gset

SELECT pg_temp.product('q1') AS q_p1, pg_temp.product('q2') AS q_p2, pg_temp.product('q3') AS q_p3,
       pg_temp.product('m1') AS m_p1, pg_temp.product('m2') AS m_p2,
       pg_temp.product('l1') AS l_p1, pg_temp.product('l2') AS l_p2, pg_temp.product('l3') AS l_p3,
       pg_temp.product('l4') AS l_p4,
       pg_temp.product('a1') AS a_p1,
       pg_temp.product('pol') AS pol_p,
       pg_temp.product('in1') AS in_p1, pg_temp.product('in2') AS in_p2, pg_temp.product('in3') AS in_p3,
       pg_temp.product('sp1') AS sp_p1, pg_temp.product('sp2') AS sp_p2, pg_temp.product('sp3') AS sp_p3,
       pg_temp.product('rb') AS rb_p, pg_temp.product('st') AS st_p \gset
-- a template with two variants
SELECT pg_temp.product('v1') AS v1 \gset
SELECT pg_temp.product('v2', pg_temp.tmpl(:v1)) AS v2, pg_temp.tmpl(:v1) AS vt \gset

-- quants
SELECT pg_temp.quant(:q_p1, :stk, 10) AS q1, pg_temp.quant(:q_p1, :stk, 4, 1) AS q1b,
       pg_temp.quant(:q_p2, :stk, 5) AS q2,
       pg_temp.quant(:sp_p1, :stk, 1) AS sp_q1, pg_temp.quant(:sp_p2, :stk, 1) AS sp_q2,
       pg_temp.quant(:sp_p3, :stk, 1) AS sp_q3,
       pg_temp.quant(:rb_p, :stk, 1) AS rb_q, pg_temp.quant(:st_p, :stk, 1) AS st_q \gset
-- moves
SELECT pg_temp.move(:m_p1, :stk, :cust, 3, 'confirmed') AS mv1 \gset
-- a confirmed order with two lines, a quotation with one
SELECT pg_temp.so('sale') AS so1, pg_temp.so('draft') AS so2 \gset
SELECT pg_temp.sol(:so1, :l_p1, 2) AS sol1, pg_temp.sol(:so1, :l_p2, 1) AS sol2,
       pg_temp.sol(:so2, :l_p3, 1) AS sol3 \gset

-- kits: K1 (variant BoM) = C1; K2 (variant BoM) = K1 (nested);
-- template kit KT (two variants, template BoM) = C2
SELECT pg_temp.product('c1') AS c1, pg_temp.product('c2') AS c2, pg_temp.product('c3') AS c3,
       pg_temp.product('k1') AS k1, pg_temp.product('k2') AS k2, pg_temp.product('k3') AS k3,
       pg_temp.product('kt1') AS kt1 \gset
SELECT pg_temp.product('kt2', pg_temp.tmpl(:kt1)) AS kt2 \gset
SELECT pg_temp.bom(:k1, true) AS b1, pg_temp.bom(:k2, true) AS b2, pg_temp.bom(:kt1, false) AS bt \gset
SELECT pg_temp.bom_line(:b1, :c1, 2) AS bl1, pg_temp.bom_line(:b2, :k1, 1) AS bl2,
       pg_temp.bom_line(:bt, :c2, 3) AS blt \gset
SELECT pg_temp.quant(:c1, :stk, 20) AS c1q, pg_temp.quant(:c2, :stk, 20) AS c2q \gset

-- a channel, an inbox order with two lines
SELECT omnichan.channel_create('t-capture', 'ebay',
       jsonb_build_object('marketplace_id', 'EBAY_US', 'company_id', :co1)) AS chan \gset
INSERT INTO omnichan.order_inbox (channel_id, external_id) VALUES (:chan, 'OCCAP-1') RETURNING id AS inb \gset
INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity)
VALUES (:inb, 1, 'SKU-1', :in_p1, 1), (:inb, 2, 'SKU-2', :in_p2, 2);

-- 100 products with 100 quants each in the bulk location
WITH t AS (
    INSERT INTO public.product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                         sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                         list_price, sequence, invoice_policy)
    SELECT pg_temp.xid('product.product_category_all'), pg_temp.xid('uom.product_uom_unit'),
           pg_temp.xid('uom.product_uom_unit'), 'product', 'product',
           jsonb_build_object('en_US', 'omnichan capture bulk ' || i), 'none',
           'no-message', 'no-message', true, true, true, 1, 1, 'order'
      FROM generate_series(1, 100) i
    RETURNING id
), p AS (
    INSERT INTO public.product_product (product_tmpl_id, active, default_code)
    SELECT id, true, 'OCCAP-BULK-' || id FROM t
    RETURNING id
)
INSERT INTO public.stock_quant (product_id, company_id, location_id, quantity, reserved_quantity,
                                in_date, inventory_quantity_set)
SELECT p.id, :co1, :bulkloc, 1, 0, now()::timestamp, false
  FROM p, generate_series(1, 100);

-- Odoo's own role: owns the Odoo tables it writes, nothing in omnichan
CREATE ROLE omnichan_capture_odoo NOLOGIN;
ALTER TABLE public.stock_quant OWNER TO omnichan_capture_odoo;
ALTER TABLE public.stock_move OWNER TO omnichan_capture_odoo;
ALTER TABLE public.sale_order OWNER TO omnichan_capture_odoo;
ALTER TABLE public.sale_order_line OWNER TO omnichan_capture_odoo;
ALTER TABLE public.product_product OWNER TO omnichan_capture_odoo;
ALTER TABLE public.product_template OWNER TO omnichan_capture_odoo;
ALTER TABLE public.mrp_bom OWNER TO omnichan_capture_odoo;
ALTER TABLE public.mrp_bom_line OWNER TO omnichan_capture_odoo;

SET LOCAL session_replication_role = origin;

SELECT is((SELECT count(*) FROM omnichan.stock_dirty_log), 0::bigint, 'the log is empty after the setup');
SELECT ok(NOT has_schema_privilege('omnichan_capture_odoo', 'omnichan', 'USAGE'),
          'Odoo''s role has no privilege on schema omnichan');
SELECT is(pg_temp.try_as('omnichan_capture_odoo', 'SELECT * FROM omnichan.stock_dirty_log'), '42501',
          'Odoo''s role cannot read the log');
SELECT is(pg_temp.try_as('omnichan_capture_odoo',
                         'INSERT INTO omnichan.stock_dirty_log (product_id) VALUES (1)'), '42501',
          'Odoo''s role cannot write the log');
SELECT is(pg_temp.try_as('omnichan_capture_odoo', 'SELECT * FROM omnichan.stock_dirty'), '42501',
          'Odoo''s role cannot read the dirty set');

------------------------------------------------------------ stock_quant
SELECT is(pg_temp.odoo(format('INSERT INTO public.stock_quant (product_id, company_id, location_id, quantity,
                                   reserved_quantity, in_date, inventory_quantity_set)
                               VALUES (%s, %s, %s, 3, 0, now()::timestamp, false)', :q_p3, :co1, :stk)),
          ARRAY[:q_p3], 'quant insert: the product');
SELECT is(pg_temp.odoo('DELETE FROM public.stock_quant WHERE id = ' || :q2), ARRAY[:q_p2],
          'quant delete: the product');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 11 WHERE id = ' || :q1), ARRAY[:q_p1],
          'quant quantity: the product');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET reserved_quantity = 2 WHERE id = ' || :q1), ARRAY[:q_p1],
          'quant reserved_quantity: the product');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_quant SET location_id = %s WHERE id = %s', :cust, :q1)),
          ARRAY[:q_p1], 'quant location_id: the product');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_quant SET product_id = %s WHERE id = %s', :q_p2, :q1)),
          pg_temp.s(ARRAY[:q_p1, :q_p2]), 'quant product_id: the old and the new product');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET in_date = in_date + interval ''1 day'' WHERE id = ' || :q1),
          '{}'::int[], 'quant in_date: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET inventory_date = current_date + 30 WHERE id = ' || :q1),
          '{}'::int[], 'quant inventory_date: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET write_date = now()::timestamp, write_uid = NULL WHERE id = ' || :q1),
          '{}'::int[], 'quant write_date: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = quantity, reserved_quantity = reserved_quantity WHERE id = ' || :q1),
          '{}'::int[], 'quant watched columns set to the same values: nothing');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_quant SET in_date = now()::timestamp,
                                      quantity = CASE WHEN id = %s THEN quantity + 1 ELSE quantity END
                                WHERE id IN (%s, %s, %s)', :q1b, :q1, :q1b, :sp_q1)),
          ARRAY[:q_p1], 'quant multi-row update: only the rows whose watched columns changed');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = quantity WHERE false'),
          '{}'::int[], 'an update of no row: nothing');

------------------------------------------------------------ stock_move
SELECT is(pg_temp.odoo(format($f$INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id,
                                   location_dest_id, name, state, procure_method, product_uom_qty, product_qty,
                                   quantity, date)
                               SELECT company_id, %s, product_uom, location_id, location_dest_id, name, 'draft',
                                      procure_method, 1, 1, 0, date
                                 FROM public.stock_move WHERE id = %s$f$, :m_p2, :mv1)),
          ARRAY[:m_p2], 'move insert: the product');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET state = ''assigned'' WHERE id = ' || :mv1), ARRAY[:m_p1],
          'move state: the product');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET quantity = 2 WHERE id = ' || :mv1), ARRAY[:m_p1],
          'move quantity: the product');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET product_uom_qty = 5, product_qty = 5 WHERE id = ' || :mv1),
          ARRAY[:m_p1], 'move product_uom_qty: the product');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_move SET location_id = %s WHERE id = %s', :bulkloc, :mv1)),
          ARRAY[:m_p1], 'move location_id: the product');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_move SET location_dest_id = %s WHERE id = %s', :stk, :mv1)),
          ARRAY[:m_p1], 'move location_dest_id: the product');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_move SET product_id = %s WHERE id = %s', :m_p2, :mv1)),
          pg_temp.s(ARRAY[:m_p1, :m_p2]), 'move product_id: the old and the new product');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET name = ''renamed'' WHERE id = ' || :mv1), '{}'::int[],
          'move name: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET description_picking = ''fragile'' WHERE id = ' || :mv1),
          '{}'::int[], 'move description_picking: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET date = date + interval ''2 days'', date_deadline = now()::timestamp WHERE id = ' || :mv1),
          '{}'::int[], 'move date / date_deadline: nothing');
SELECT is(pg_temp.odoo('UPDATE public.stock_move SET priority = ''1'' WHERE id = ' || :mv1), '{}'::int[],
          'move priority: nothing');
SELECT is(pg_temp.odoo('DELETE FROM public.stock_move WHERE id = ' || :mv1), ARRAY[:m_p1],
          'move delete: the product');

------------------------------------------------------------ sale_order_line / sale_order
SELECT is(pg_temp.odoo(format($f$INSERT INTO public.sale_order_line (order_id, company_id, product_id, product_uom,
                                   product_uom_qty, qty_delivered, name, price_unit, customer_lead, state)
                               SELECT order_id, company_id, %s, product_uom, 4, 0, 'x', 1, 0, state
                                 FROM public.sale_order_line WHERE id = %s$f$, :l_p4, :sol3)),
          ARRAY[:l_p4], 'order line insert: the product');
SELECT is(pg_temp.odoo('UPDATE public.sale_order_line SET product_uom_qty = 7 WHERE id = ' || :sol1),
          ARRAY[:l_p1], 'order line quantity: the product');
SELECT is(pg_temp.odoo('UPDATE public.sale_order_line SET qty_delivered = 1 WHERE id = ' || :sol1),
          ARRAY[:l_p1], 'order line qty_delivered: the product');
SELECT is(pg_temp.odoo('DELETE FROM public.sale_order_line WHERE id = ' || :sol1), ARRAY[:l_p1],
          'order line delete: the product');
SELECT is(pg_temp.odoo('UPDATE public.sale_order_line SET name = ''renamed'' WHERE id = ' || :sol1), '{}'::int[],
          'order line name: nothing');
SELECT is(pg_temp.odoo('UPDATE public.sale_order SET state = ''cancel'' WHERE id = ' || :so1),
          pg_temp.s(ARRAY[:l_p1, :l_p2]), 'order state: the products of all its lines');
SELECT is(pg_temp.odoo(format('UPDATE public.sale_order SET state = ''sale'' WHERE id IN (%s, %s)', :so1, :so2)),
          ARRAY[:l_p3], 'order state, two orders, one changed: the products of the changed one');
SELECT is(pg_temp.odoo('UPDATE public.sale_order SET note = ''<p>hello</p>'' WHERE id = ' || :so1), '{}'::int[],
          'order note: nothing');
SELECT is(pg_temp.odoo('UPDATE public.sale_order SET client_order_ref = ''PO-42'' WHERE id = ' || :so1), '{}'::int[],
          'order client_order_ref: nothing');

------------------------------------------------------------ products
SELECT is(pg_temp.odoo('UPDATE public.product_product SET active = false WHERE id = ' || :a_p1), ARRAY[:a_p1],
          'variant archived: the variant');
SELECT is(pg_temp.odoo('UPDATE public.product_product SET default_code = ''OCCAP-X'' WHERE id = ' || :a_p1),
          '{}'::int[], 'variant default_code: nothing');
SELECT is(pg_temp.odoo('UPDATE public.product_template SET active = false WHERE id = ' || :vt),
          pg_temp.s(ARRAY[:v1, :v2]), 'template archived: all its variants');
SELECT is(pg_temp.odoo('UPDATE public.product_template SET type = ''consu'', detailed_type = ''consu'' WHERE id = ' || :vt),
          pg_temp.s(ARRAY[:v1, :v2]), 'template type: all its variants');
SELECT is(pg_temp.odoo('UPDATE public.product_template SET list_price = 99, description_sale = ''{"en_US": "x"}'' WHERE id = ' || :vt),
          '{}'::int[], 'template price / description: nothing');

------------------------------------------------------------ bills of materials
SELECT is(pg_temp.odoo(format($f$INSERT INTO public.mrp_bom (product_tmpl_id, product_id, product_uom_id, type,
                                   ready_to_produce, consumption, product_qty, active, sequence)
                               VALUES (%s, %s, %s, 'phantom', 'all_available', 'warning', 1, true, 10)$f$,
                              pg_temp.tmpl(:k3), :k3, pg_temp.xid('uom.product_uom_unit'))),
          ARRAY[:k3], 'variant BoM insert: the kit');
SELECT is(pg_temp.odoo(format($f$INSERT INTO public.mrp_bom (product_tmpl_id, product_uom_id, type,
                                   ready_to_produce, consumption, product_qty, active, sequence)
                               VALUES (%s, %s, 'phantom', 'all_available', 'warning', 1, true, 10)$f$,
                              :vt, pg_temp.xid('uom.product_uom_unit'))),
          pg_temp.s(ARRAY[:v1, :v2]), 'template BoM insert: every variant of the template');
SELECT is(pg_temp.odoo('UPDATE public.mrp_bom SET product_qty = 2 WHERE id = ' || :b1), ARRAY[:k1],
          'variant BoM quantity: the kit');
SELECT is(pg_temp.odoo('UPDATE public.mrp_bom SET active = false WHERE id = ' || :bt),
          pg_temp.s(ARRAY[:kt1, :kt2]), 'template BoM archived: every variant');
SELECT is(pg_temp.odoo(format('UPDATE public.mrp_bom SET product_id = %s WHERE id = %s', :kt1, :bt)),
          pg_temp.s(ARRAY[:kt1, :kt2]), 'template BoM narrowed to one variant: every variant');
SELECT is(pg_temp.odoo('UPDATE public.mrp_bom SET code = ''REF'' WHERE id = ' || :b1), '{}'::int[],
          'BoM reference: nothing');
SELECT is(pg_temp.odoo('DELETE FROM public.mrp_bom WHERE id = ' || :b2), ARRAY[:k2],
          'BoM delete (its lines cascade): the kit');
SELECT is(pg_temp.odoo(format('INSERT INTO public.mrp_bom_line (bom_id, product_id, product_uom_id, product_qty, sequence)
                               VALUES (%s, %s, %s, 1, 2)', :b1, :c3, pg_temp.xid('uom.product_uom_unit'))),
          ARRAY[:k1], 'BoM line insert: the kit');
SELECT is(pg_temp.odoo('UPDATE public.mrp_bom_line SET product_qty = 5 WHERE id = ' || :blt),
          pg_temp.s(ARRAY[:kt1, :kt2]), 'template BoM line quantity: every variant');
SELECT is(pg_temp.odoo(format('UPDATE public.mrp_bom_line SET product_id = %s WHERE id = %s', :c3, :bl1)),
          ARRAY[:k1], 'BoM line component: the kit');
SELECT is(pg_temp.odoo(format('UPDATE public.mrp_bom_line SET bom_id = %s WHERE id = %s', :bt, :bl1)),
          pg_temp.s(ARRAY[:k1, :kt1, :kt2]), 'BoM line moved to another BoM: both kits');
SELECT is(pg_temp.odoo('UPDATE public.mrp_bom_line SET sequence = 7, write_date = now()::timestamp WHERE id = ' || :bl1),
          '{}'::int[], 'BoM line sequence: nothing');
SELECT is(pg_temp.odoo('DELETE FROM public.mrp_bom_line WHERE id = ' || :bl1), ARRAY[:k1],
          'BoM line delete: the kit');

SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 19 WHERE id = ' || :c1q), ARRAY[:c1],
          'component quant: the component is logged');
SELECT is(pg_temp.claim_after('UPDATE public.stock_quant SET quantity = 19 WHERE id = ' || :c1q),
          pg_temp.s(ARRAY[:c1, :k1, :k2]), 'component quant then dirty_claim: the component, its kit and the kit containing that kit');
SELECT is(pg_temp.claim_after('UPDATE public.stock_quant SET quantity = 19 WHERE id = ' || :c2q),
          pg_temp.s(ARRAY[:c2, :kt1, :kt2]), 'component of a template kit then dirty_claim: the component and every variant of the kit');

------------------------------------------------------------ omnichan's tables
SELECT is(pg_temp.cap(NULL, format('SELECT omnichan.product_policy_set(%s, ''{"safety_stock": 5}'')', :pol_p)),
          ARRAY[:pol_p], 'product policy insert: the product');
SELECT is(pg_temp.cap(NULL, format('SELECT omnichan.product_policy_set(%s, ''{"safety_stock": 5}'')', :pol_p),
                            format('SELECT omnichan.product_policy_set(%s, ''{"safety_stock": 0}'')', :pol_p)),
          ARRAY[:pol_p], 'product policy set then reset: the product, once');
SELECT is(pg_temp.cap(NULL, format('SELECT omnichan.product_channel_policy_set(%s, ''t-capture'', ''{"max_qty": 3}'')', :pol_p)),
          ARRAY[:pol_p], 'product channel policy: the product');
SELECT is(pg_temp.cap(NULL, 'SELECT omnichan.channel_alter(''t-capture'', ''{"buffer_pct": 10}'')'),
          ARRAY[0], 'channel buffer change: product 0 (every product)');
SELECT is(pg_temp.cap(NULL, 'UPDATE omnichan.channel SET updated_at = now() WHERE id = ' || :chan), '{}'::int[],
          'channel updated_at only: nothing');
SELECT is(pg_temp.cap(NULL, 'UPDATE omnichan.order_inbox SET state = ''held'' WHERE id = ' || :inb),
          pg_temp.s(ARRAY[:in_p1, :in_p2]), 'inbox order state: the products of its lines');
SELECT is(pg_temp.cap(NULL, format('UPDATE omnichan.order_inbox SET sale_order_id = %s WHERE id = %s', :so2, :inb)),
          pg_temp.s(ARRAY[:in_p1, :in_p2]), 'inbox order materialized (sale_order_id): the products of its lines');
SELECT is(pg_temp.cap(NULL, 'UPDATE omnichan.order_inbox SET updated_at = now() WHERE id = ' || :inb), '{}'::int[],
          'inbox order updated_at: nothing');
SELECT is(pg_temp.cap(NULL, format('INSERT INTO omnichan.order_inbox_line (inbox_id, line_no, channel_sku, product_id, quantity)
                                    VALUES (%s, 3, ''SKU-3'', %s, 1)', :inb, :in_p3)),
          ARRAY[:in_p3], 'inbox line insert: the product');

------------------------------------------------------------ coalescing
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 1 WHERE id = ' || :q1,
                       'UPDATE public.stock_quant SET quantity = 2 WHERE id = ' || :q1,
                       'UPDATE public.stock_quant SET reserved_quantity = 1 WHERE id = ' || :q1b,
                       format($f$INSERT INTO public.stock_move (company_id, product_id, product_uom, location_id,
                                 location_dest_id, name, state, procure_method, product_uom_qty, product_qty, quantity, date)
                               VALUES (%s, %s, %s, %s, %s, 'x', 'confirmed', 'make_to_stock', 1, 1, 0, now()::timestamp)$f$,
                              :co1, :q_p1, pg_temp.xid('uom.product_uom_unit'), :stk, :cust),
                       format('UPDATE public.sale_order_line SET product_id = %s WHERE id = %s', :q_p1, :sol2)),
          pg_temp.s(ARRAY[:q_p1, :l_p2]), 'a product touched by 5 statements of one transaction: one log row');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_quant SET quantity = quantity + 1 WHERE location_id = %s', :bulkloc)),
          (SELECT array_agg(DISTINCT product_id ORDER BY product_id) FROM public.stock_quant WHERE location_id = :bulkloc),
          'bulk update of 10000 quants of 100 products: each product once');
SELECT is((SELECT count(*) FROM public.stock_quant WHERE location_id = :bulkloc), 10000::bigint,
          '(the bulk update touched 10000 quants)');
SELECT is(pg_temp.odoo(format('UPDATE public.stock_quant SET in_date = in_date + interval ''1 hour'' WHERE location_id = %s', :bulkloc),
                       format('UPDATE public.stock_move SET name = name || ''.'' WHERE product_id = %s', :m_p1),
                       format('UPDATE public.sale_order SET note = ''n'' WHERE id IN (%s, %s)', :so1, :so2)),
          '{}'::int[], 'statements changing only unwatched columns: nothing');

------------------------------------------------------------ savepoints (top level)
SET ROLE omnichan_capture_odoo;
SAVEPOINT a;
UPDATE public.stock_quant SET quantity = 2 WHERE id = :sp_q1;
ROLLBACK TO SAVEPOINT a;
RESET ROLE;
SELECT is(pg_temp.logged(:sp_p1), 0::bigint, 'ROLLBACK TO SAVEPOINT takes the log row away');
SET ROLE omnichan_capture_odoo;
UPDATE public.stock_quant SET quantity = 3 WHERE id = :sp_q1;
RESET ROLE;
SELECT is(pg_temp.logged(:sp_p1), 1::bigint, 'the same change after the rollback is recorded again');

SET ROLE omnichan_capture_odoo;
SAVEPOINT a;
SAVEPOINT b;
UPDATE public.stock_quant SET quantity = 2 WHERE id = :sp_q2;
RELEASE SAVEPOINT b;
ROLLBACK TO SAVEPOINT a;
UPDATE public.stock_quant SET quantity = 3 WHERE id = :sp_q2;
RESET ROLE;
SELECT is(pg_temp.logged(:sp_p2), 1::bigint, 'a released inner savepoint rolled back with its parent: recorded again');

SET ROLE omnichan_capture_odoo;
SAVEPOINT c;
UPDATE public.stock_quant SET quantity = 4 WHERE id = :sp_q1;
ROLLBACK TO SAVEPOINT c;
UPDATE public.stock_quant SET quantity = 5 WHERE id = :sp_q1;
RESET ROLE;
SELECT is(pg_temp.logged(:sp_p1), 1::bigint, 'a savepoint rolled back after the product was recorded: still one row');

SET ROLE omnichan_capture_odoo;
SAVEPOINT d;
UPDATE public.stock_quant SET quantity = 2 WHERE id = :sp_q3;
RELEASE SAVEPOINT d;
UPDATE public.stock_quant SET quantity = 3 WHERE id = :sp_q3;
RESET ROLE;
SELECT is(pg_temp.logged(:sp_p3), 1::bigint, 'a released savepoint keeps its row, no duplicate');

------------------------------------------------------------ robustness
DELETE FROM omnichan.stock_dirty_log;
SELECT capture_errors AS errors0 FROM omnichan.capture_wakeups() \gset
ALTER TABLE omnichan.stock_dirty_log RENAME TO stock_dirty_log_away;
SET LOCAL client_min_messages = error;
SELECT is(pg_temp.try_as('omnichan_capture_odoo', 'UPDATE public.stock_quant SET quantity = 7 WHERE id = ' || :rb_q),
          'ok', 'with the log table missing, Odoo''s write still succeeds');
SELECT is(pg_temp.try_as('omnichan_capture_odoo', 'DELETE FROM public.stock_move WHERE id = ' || :mv1),
          'ok', 'with the log table missing, Odoo''s delete still succeeds');
SET LOCAL client_min_messages = warning;
SELECT cmp_ok((SELECT capture_errors FROM omnichan.capture_wakeups()), '>=', (:errors0 + 2)::bigint,
              'capture_errors counts the skipped captures');
SELECT is((SELECT quantity FROM public.stock_quant WHERE id = :rb_q), 7::numeric, 'the write took effect');
SELECT is((SELECT capture_errors FROM omnichan.dirty_backlog) >= :errors0 + 2, true,
          'dirty_backlog shows the skipped captures');
ALTER TABLE omnichan.stock_dirty_log_away RENAME TO stock_dirty_log;
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 8 WHERE id = ' || :rb_q), ARRAY[:rb_p],
          'with the log table back, capture resumes for the same product');

------------------------------------------------------------ trigger status
SELECT is((SELECT count(*) FROM omnichan.capture_status WHERE required AND NOT (table_exists AND trigger_present)),
          0::bigint, 'capture_status: every required trigger is present');
SELECT is((SELECT count(*) FROM omnichan.capture_status WHERE table_exists AND NOT trigger_present),
          0::bigint, 'capture_status: the mrp triggers are present too');
SELECT is((SELECT count(*) FROM omnichan.capture_status), (SELECT count(*) FROM omnichan._capture_spec()),
          'capture_status lists every trigger of _capture_spec() once');
SELECT is((SELECT missing_triggers FROM omnichan.dirty_backlog), 0::bigint, 'dirty_backlog: no trigger missing');
SELECT is(omnichan.capture_install(), 0, 'capture_install() with nothing missing: 0');
SELECT ok((SELECT t.tgenabled = 'O' AND (t.tgtype & 1) = 0
             FROM pg_trigger t WHERE t.tgrelid = 'public.stock_quant'::regclass
              AND t.tgname = 'omnichan_capture_update'),
          'the quant update trigger is enabled and statement-level');
DROP TRIGGER omnichan_capture_update ON public.stock_quant;
SELECT is((SELECT array_agg(table_name || ' ' || event) FROM omnichan.capture_status WHERE NOT trigger_present AND table_exists),
          ARRAY['public.stock_quant UPDATE'], 'capture_status shows the dropped trigger missing');
SELECT is((SELECT missing_triggers FROM omnichan.dirty_backlog), 1::bigint, 'dirty_backlog.missing_triggers = 1');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 9 WHERE id = ' || :st_q), '{}'::int[],
          'without the trigger a quant update is not captured');
SELECT is(omnichan.capture_install(), 1, 'capture_install() creates 1 trigger');
SELECT is((SELECT trigger_present FROM omnichan.capture_status
            WHERE table_name = 'public.stock_quant' AND event = 'UPDATE'), true, 'the trigger is back');
SELECT is((SELECT missing_triggers FROM omnichan.dirty_backlog), 0::bigint, 'dirty_backlog: no trigger missing again');
SELECT ok(EXISTS (SELECT 1 FROM pg_depend d JOIN pg_trigger t ON t.oid = d.objid
                   WHERE d.classid = 'pg_trigger'::regclass AND d.deptype = 'x'
                     AND t.tgrelid = 'public.stock_quant'::regclass AND t.tgname = 'omnichan_capture_update'),
          'the re-created trigger depends on the extension');
SELECT is(pg_temp.odoo('UPDATE public.stock_quant SET quantity = 9 WHERE id = ' || :st_q), ARRAY[:st_p],
          'with the trigger back a quant update is captured');

------------------------------------------------------------ claim / ack / release
DELETE FROM omnichan.stock_dirty_log;
DELETE FROM omnichan.stock_dirty;
-- three products dirtied 3, 2 and 1 minutes ago: oldest is q_p3, then q_p1, then q_p2
INSERT INTO omnichan.stock_dirty_log (product_id, logged_at)
VALUES (:q_p3, now() - interval '3 minutes'), (:q_p1, now() - interval '2 minutes'),
       (:q_p2, now() - interval '1 minute'), (:q_p1, now() - interval '30 seconds');
SELECT is(omnichan.dirty_fold(), 4::bigint, 'dirty_fold folds 4 log rows');
SELECT is((SELECT count(*) FROM omnichan.stock_dirty), 3::bigint, 'into 3 products');
SELECT is((SELECT count(*) FROM omnichan.stock_dirty_log), 0::bigint, 'the log is empty after the fold');
SELECT is((SELECT products FROM omnichan.dirty_backlog), 3::bigint, 'dirty_backlog: 3 products');

CREATE TEMP TABLE claims (n int, claim_id uuid, product_id int);
INSERT INTO claims SELECT 1, c.* FROM omnichan.dirty_claim(2) c;
SELECT is((SELECT array_agg(product_id ORDER BY product_id) FROM claims WHERE n = 1),
          pg_temp.s(ARRAY[:q_p3, :q_p1]), 'dirty_claim(2) returns the two oldest products');
SELECT is((SELECT count(DISTINCT claim_id) FROM claims WHERE n = 1), 1::bigint, 'under one claim id');
SELECT is((SELECT claimed FROM omnichan.dirty_backlog), 2::bigint, 'dirty_backlog: 2 claimed');
INSERT INTO claims SELECT 2, c.* FROM omnichan.dirty_claim(10) c;
SELECT is((SELECT array_agg(product_id) FROM claims WHERE n = 2), ARRAY[:q_p2],
          'a second claim does not return the claimed products');
INSERT INTO claims SELECT 3, c.* FROM omnichan.dirty_claim(10) c;
SELECT is((SELECT count(*) FROM claims WHERE n = 3), 0::bigint, 'a third claim gets nothing');

-- q_p3 changes again while claimed
INSERT INTO omnichan.stock_dirty_log (product_id) VALUES (:q_p3);
SELECT is(omnichan.dirty_fold(), 1::bigint, 'a re-dirtied claimed product is folded');
SELECT is(omnichan.dirty_ack((SELECT claim_id FROM claims WHERE n = 1 LIMIT 1)), 1,
          'ack removes the product not changed since the claim');
SELECT is((SELECT array_agg(product_id ORDER BY product_id) FROM omnichan.stock_dirty),
          pg_temp.s(ARRAY[:q_p3, :q_p2]), 'the re-dirtied product survives the ack');
SELECT is((SELECT claim_id FROM omnichan.stock_dirty WHERE product_id = :q_p3), NULL::uuid,
          'and is back in the queue');
INSERT INTO claims SELECT 4, c.* FROM omnichan.dirty_claim(10) c;
SELECT is((SELECT array_agg(product_id) FROM claims WHERE n = 4), ARRAY[:q_p3],
          'the re-dirtied product is claimable again');

-- re-dirtied after the claim but not folded before the ack: still not lost
INSERT INTO omnichan.stock_dirty_log (product_id) VALUES (:q_p3);
SELECT is(omnichan.dirty_ack((SELECT claim_id FROM claims WHERE n = 4 LIMIT 1)), 1,
          'ack with the new change still in the log removes the row');
INSERT INTO claims SELECT 5, c.* FROM omnichan.dirty_claim(10) c;
SELECT is((SELECT array_agg(product_id) FROM claims WHERE n = 5), ARRAY[:q_p3],
          'the change still in the log is claimed by the next claim');
SELECT is(omnichan.dirty_release((SELECT claim_id FROM claims WHERE n = 5 LIMIT 1)), 1,
          'release gives one product back');
SELECT is((SELECT claim_id FROM omnichan.stock_dirty WHERE product_id = :q_p3), NULL::uuid,
          'the released product is unclaimed');
INSERT INTO claims SELECT 6, c.* FROM omnichan.dirty_claim(10) c;
SELECT is((SELECT array_agg(product_id) FROM claims WHERE n = 6), ARRAY[:q_p3],
          'the released product is claimable again');

-- leases
INSERT INTO claims SELECT 7, c.* FROM omnichan.dirty_claim(10, '1 hour') c;
SELECT is((SELECT count(*) FROM claims WHERE n = 7), 0::bigint, 'unexpired leases are not re-claimed');
UPDATE omnichan.stock_dirty SET claimed_at = now() - interval '10 minutes'
 WHERE claim_id = (SELECT claim_id FROM claims WHERE n = 2 LIMIT 1);
INSERT INTO claims SELECT 8, c.* FROM omnichan.dirty_claim(10, '5 minutes') c;
SELECT is((SELECT array_agg(product_id) FROM claims WHERE n = 8), ARRAY[:q_p2],
          'an expired lease is re-claimed');
SELECT isnt((SELECT claim_id FROM claims WHERE n = 8 LIMIT 1), (SELECT claim_id FROM claims WHERE n = 2 LIMIT 1),
            'under a new claim id');
SELECT is(omnichan.dirty_ack((SELECT claim_id FROM claims WHERE n = 2 LIMIT 1)), 0,
          'the expired claim''s ack removes nothing');
SELECT is(omnichan.dirty_ack((SELECT claim_id FROM claims WHERE n = 8 LIMIT 1)), 1,
          'the new claim''s ack removes it');
SELECT is(omnichan.dirty_ack((SELECT claim_id FROM claims WHERE n = 6 LIMIT 1)), 1, 'last ack');
SELECT is((SELECT count(*) FROM omnichan.stock_dirty), 0::bigint, 'the dirty set is empty');
SELECT is((SELECT products FROM omnichan.dirty_backlog), 0::bigint, 'dirty_backlog: nothing left');
SELECT throws_ok('SELECT * FROM omnichan.dirty_claim(0)', '22023', 'max_products must be at least 1',
                 'dirty_claim(0) is refused');

-- product 0
INSERT INTO omnichan.stock_dirty_log (product_id) VALUES (0);
SELECT is((SELECT all_products FROM omnichan.dirty_backlog), true, 'dirty_backlog: product 0 = all products');

SELECT * FROM finish();
ROLLBACK;
