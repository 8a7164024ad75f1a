--
-- lib/odoo_helpers.sql: helper functions of the pgTAP suites (included with
-- \ir by the suites, inside their transaction): warehouses, products and
-- quants created the way Odoo stores them, on the fixture and on the real
-- Odoo 17 dump alike (existing records are looked up by external id).
--
------------------------------------------------------------------- helpers
CREATE FUNCTION pg_temp.xid(x text) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT res_id FROM public.ir_model_data
    WHERE module = split_part(x, '.', 1) AND name = split_part(x, '.', 2) $$;

-- a location under p_parent (its parent_path, company by default)
CREATE FUNCTION pg_temp.loc(p_name text, p_parent int, p_usage text DEFAULT 'internal',
                            p_company int DEFAULT NULL) RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    new_id int := nextval('public.stock_location_id_seq');
BEGIN
    INSERT INTO public.stock_location (id, name, complete_name, location_id, parent_path, usage,
                                       company_id, active, scrap_location, replenish_location)
    SELECT new_id, p_name, COALESCE(p.complete_name || '/', '') || p_name, p_parent,
           COALESCE(p.parent_path, '') || new_id || '/', p_usage,
           COALESCE(p_company, p.company_id), true, false, false
      FROM (SELECT 1) x LEFT JOIN public.stock_location p ON p.id = p_parent;
    RETURN new_id;
END
$$;

-- a warehouse: view location under Physical Locations, WH/Stock under it
CREATE FUNCTION pg_temp.warehouse(p_code text, p_company int) RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    v int;
    s int;
    w int;
BEGIN
    v := pg_temp.loc(p_code, pg_temp.xid('stock.stock_location_locations'), 'view', p_company);
    s := pg_temp.loc('Stock', v, 'internal', p_company);
    INSERT INTO public.stock_warehouse (company_id, view_location_id, lot_stock_id, name, code, sequence,
                                        reception_steps, delivery_steps, manufacture_steps, active)
    VALUES (p_company, v, s, 'omnichan test ' || p_code, p_code, 90,
            'one_step', 'ship_only', 'mrp_one_step', true)
    RETURNING id INTO w;
    UPDATE public.stock_location SET warehouse_id = w WHERE id IN (v, s);
    RETURN w;
END
$$;

CREATE FUNCTION pg_temp.stock(w int) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT lot_stock_id FROM public.stock_warehouse WHERE id = w $$;

-- a product variant (a new template unless p_tmpl is given)
CREATE FUNCTION pg_temp.product(p_name text, p_uom text DEFAULT 'uom.product_uom_unit',
                                p_type text DEFAULT 'product', p_tmpl int DEFAULT NULL,
                                p_tracking text DEFAULT 'none') RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    t int := p_tmpl;
    u int := pg_temp.xid(p_uom);
    p int;
BEGIN
    IF t IS NULL THEN
        INSERT INTO public.product_template (categ_id, uom_id, uom_po_id, detailed_type, type, name, tracking,
                                             sale_line_warn, purchase_line_warn, active, sale_ok, purchase_ok,
                                             list_price, sequence, invoice_policy)
        VALUES (pg_temp.xid('product.product_category_all'), u, u, p_type, p_type,
                jsonb_build_object('en_US', 'omnichan test ' || p_name), p_tracking,
                'no-message', 'no-message', true, true, true, 1, 1, 'order')
        RETURNING id INTO t;
    END IF;
    INSERT INTO public.product_product (product_tmpl_id, active, default_code)
    VALUES (t, true, 'OCTEST-' || p_name) RETURNING id INTO p;
    RETURN p;
END
$$;

CREATE FUNCTION pg_temp.tmpl(p int) RETURNS int LANGUAGE sql STABLE AS
$$ SELECT product_tmpl_id FROM public.product_product WHERE id = p $$;

CREATE FUNCTION pg_temp.quant(p int, p_loc int, q numeric, r numeric DEFAULT 0,
                              p_lot int DEFAULT NULL, p_pack int DEFAULT NULL) RETURNS int LANGUAGE sql AS
$$
    INSERT INTO public.stock_quant (product_id, company_id, location_id, lot_id, package_id, quantity,
                                    reserved_quantity, in_date, inventory_quantity_set)
    SELECT p, l.company_id, l.id, p_lot, p_pack, q, r, now()::timestamp, false
      FROM public.stock_location l WHERE l.id = p_loc
    RETURNING id
$$;
