--
-- allocation_properties: invariants of the allocation on generated catalogs
-- (omnichan_test.generate_catalog: 300 products, 3 warehouses, quants in
-- sub-locations, lots, packages, negative quants, reservations, open moves,
-- quotations and confirmed orders).
--
-- For several channel set-ups, some putting most products in low-stock mode:
--   * in low-stock mode a group of channels shows at most its pool in total;
--   * no channel shows more than floor(ATS) of its own warehouses, and in
--     normal mode exactly min(floor(floor(ATS) x (1 - buffer)), max_qty);
--   * more stock never lowers any channel's quantity;
--   * the by-id and the every-product runs agree.
-- Runs on the project's fixture and on the real Odoo 17 demo database.
--
BEGIN;
SELECT plan(57);

SET LOCAL client_min_messages = warning;

SELECT omnichan_test.generate_catalog(300, 3, 4242) AS cat \gset
SELECT (:'cat'::jsonb -> 'warehouses' ->> 0)::int AS w1, (:'cat'::jsonb -> 'warehouses' ->> 1)::int AS w2,
       (:'cat'::jsonb -> 'warehouses' ->> 2)::int AS w3,
       (:'cat'::jsonb -> 'product_ids' ->> 0)::int AS pfirst, (:'cat'::jsonb -> 'product_ids' ->> 1)::int AS plast \gset
CREATE TEMP TABLE ids AS SELECT ARRAY(SELECT generate_series(:pfirst, :plast)) AS ids, ARRAY[:w1, :w2, :w3] AS whs;

CREATE FUNCTION pg_temp.ch(p_name text, p_whs int[], p_settings jsonb) RETURNS int LANGUAGE sql AS
$$ SELECT omnichan.channel_create(p_name, 'walmart',
          p_settings || jsonb_build_object('company_id', (SELECT company_id FROM public.stock_warehouse
                                                          WHERE id = p_whs[1]),
                                           'warehouse_ids', to_jsonb(p_whs))) $$;

-- group 1: warehouses 1 and 2 (amz {1}, shop {1,2}, ebay {2}, etsy {2}, off {1});
-- group 2: warehouse 3 alone
SELECT pg_temp.ch('ocp-amz', ARRAY[:w1], '{"priority": 1, "buffer_pct": 10, "low_stock_threshold": 50}'),
       pg_temp.ch('ocp-shop', ARRAY[:w1, :w2], '{"priority": 2, "buffer_pct": 5, "low_stock_threshold": 20}'),
       pg_temp.ch('ocp-ebay', ARRAY[:w2], '{"priority": 3, "max_qty": 40}'),
       pg_temp.ch('ocp-etsy', ARRAY[:w2], '{"priority": 3, "buffer_pct": 25, "low_stock_threshold": 400}'),
       pg_temp.ch('ocp-off', ARRAY[:w1], '{"priority": 1, "active": false, "low_stock_threshold": 100000}'),
       pg_temp.ch('ocp-solo', ARRAY[:w3], '{"priority": 1, "buffer_pct": 12.5, "low_stock_threshold": 150}');
-- some per-product overrides
SELECT omnichan.product_channel_policy_set(p, 'ocp-shop', '{"buffer_pct": 50}')
  FROM generate_series(:pfirst, :plast, 7) p;
SELECT omnichan.product_channel_policy_set(p, 'ocp-amz', '{"max_qty": 3}')
  FROM generate_series(:pfirst + 1, :plast, 11) p;
SELECT omnichan.product_channel_policy_set(p, 'ocp-ebay', '{"excluded": true}')
  FROM generate_series(:pfirst + 2, :plast, 13) p;
SELECT omnichan.product_policy_set(p, '{"safety_stock": 25}')
  FROM generate_series(:pfirst + 3, :plast, 5) p;

-- the invariants of one allocation (a = allocate_bulk of the catalog)
CREATE FUNCTION pg_temp.props(label text) RETURNS SETOF text LANGUAGE plpgsql AS
$$
DECLARE
    ids int[] := (SELECT ids FROM ids);
BEGIN
    CREATE TEMP TABLE a ON COMMIT DROP AS
        SELECT b.*, c.warehouse_ids, c.buffer_pct, c.max_qty AS ch_max, o.buffer_pct AS o_buffer,
               o.max_qty AS o_max
          FROM omnichan.allocate_bulk(ids) b
          JOIN omnichan.channel c ON c.id = b.channel_id
          LEFT JOIN omnichan.product_channel_policy o ON o.product_id = b.product_id AND o.channel_id = b.channel_id;
    CREATE TEMP TABLE s ON COMMIT DROP AS
        SELECT c.id AS channel_id, t.product_id, t.ats
          FROM omnichan.channel c CROSS JOIN LATERAL omnichan.ats_bulk(ids, c.warehouse_ids) t;

    RETURN NEXT is((SELECT count(*)::int FROM a), 6 * 300, label || ': one row per product and channel');
    RETURN NEXT cmp_ok((SELECT count(DISTINCT product_id)::int FROM a WHERE mode = 'low_stock'
                         AND channel LIKE 'ocp-%' AND channel <> 'ocp-solo'), '>=', 100,
                       label || ': many products are low on stock in group 1');
    RETURN NEXT cmp_ok((SELECT count(DISTINCT product_id)::int FROM a WHERE mode = 'normal'), '>=', 1,
                       label || ': some products are in normal mode');
    -- Σ shown <= pool, per product and group (channels of a group share its pool)
    RETURN NEXT is((SELECT count(*)::int FROM (
                      SELECT product_id, channel = 'ocp-solo' AS grp, max(pool) AS pool, sum(quantity) AS shown
                        FROM a WHERE mode = 'low_stock' GROUP BY 1, 2) x
                     WHERE shown > pool), 0,
                   label || ': low-stock mode: a group shows at most its pool');
    RETURN NEXT is((SELECT count(*)::int FROM (
                      SELECT product_id, channel = 'ocp-solo' AS grp
                        FROM a WHERE mode IN ('normal', 'low_stock') GROUP BY 1, 2
                      HAVING count(DISTINCT mode) > 1 OR count(DISTINCT pool) > 1) x), 0,
                   label || ': one mode and one pool per product and group');
    RETURN NEXT is((SELECT count(*)::int FROM a JOIN s USING (channel_id, product_id)
                     WHERE a.quantity > floor(s.ats)), 0,
                   label || ': no channel shows more than floor(ATS) of its own warehouses');
    RETURN NEXT is((SELECT count(*)::int FROM a JOIN s USING (channel_id, product_id)
                     WHERE a.mode = 'normal'
                       AND a.quantity <> LEAST(floor(floor(s.ats) * (100 - COALESCE(a.o_buffer, a.buffer_pct)) / 100),
                                               COALESCE(CASE WHEN a.o_max IS NOT NULL THEN a.o_max ELSE a.ch_max END,
                                                        2147483647))), 0,
                   label || ': normal mode: min(floor(floor(ATS) x (1 - buffer)), max_qty)');
    RETURN NEXT is((SELECT count(*)::int FROM a WHERE mode IN ('inactive', 'excluded', 'archived') AND quantity <> 0), 0,
                   label || ': inactive, excluded and archived show 0');
    RETURN NEXT is((SELECT count(*)::int FROM a WHERE quantity < 0 OR (mode = 'low_stock' AND left_before < 0)), 0,
                   label || ': nothing negative');
    -- the waterfall: left_before of a channel = left_before of the previous one minus its take
    RETURN NEXT is((SELECT count(*)::int FROM (
                      SELECT a.*, lag(left_before) OVER w AS prev_left,
                             lag(LEAST(floor(GREATEST(left_before, 0) * (100 - COALESCE(o_buffer, buffer_pct)) / 100),
                                       COALESCE(CASE WHEN o_max IS NOT NULL THEN o_max ELSE ch_max END, 2147483647))) OVER w AS prev_take,
                             row_number() OVER w AS n
                        FROM a WHERE mode = 'low_stock' AND channel <> 'ocp-solo'
                      WINDOW w AS (PARTITION BY product_id ORDER BY (SELECT priority FROM omnichan.channel c WHERE c.id = a.channel_id), channel_id)) x
                     WHERE (n = 1 AND left_before <> pool)), 0,
                   label || ': the first channel of the waterfall gets the whole pool');
    RETURN NEXT is((SELECT count(*)::int FROM a b
                     WHERE b.mode = 'low_stock' AND b.quantity >
                           LEAST(floor(b.left_before * (100 - COALESCE(b.o_buffer, b.buffer_pct)) / 100),
                                 COALESCE(CASE WHEN b.o_max IS NOT NULL THEN b.o_max ELSE b.ch_max END, 2147483647))), 0,
                   label || ': low-stock mode: never more than the take from what is left');
    -- by id and every product agree
    RETURN NEXT is((SELECT count(*)::int FROM omnichan.allocate_bulk(NULL) n JOIN a USING (product_id, channel_id)
                     WHERE (n.quantity, n.mode, n.pool) IS DISTINCT FROM (a.quantity, a.mode, a.pool)
                        OR n.left_before IS DISTINCT FROM a.left_before), 0,
                   label || ': allocate_bulk(NULL) agrees with allocate_bulk(ids)');
    RETURN NEXT is((SELECT count(*)::int FROM omnichan.ats_bulk(NULL, (SELECT whs FROM ids), true) n
                      JOIN omnichan.ats_bulk(ids, (SELECT whs FROM ids), true) b USING (product_id, warehouse_id)
                     WHERE (n.on_hand, n.reserved, n.safety, n.pending, n.ats)
                           IS DISTINCT FROM (b.on_hand, b.reserved, b.safety, b.pending, b.ats)), 0,
                   label || ': ats_bulk(NULL) agrees with ats_bulk(ids)');
    DROP TABLE a;
    DROP TABLE s;
END
$$;

-- before/after snapshots for monotonicity
CREATE FUNCTION pg_temp.snap() RETURNS TABLE (product_id int, channel_id int, quantity int) LANGUAGE sql AS
$$ SELECT product_id, channel_id, quantity FROM omnichan.allocate_bulk((SELECT ids FROM ids)) $$;

-- raise stock: +k on one internal quant of the products p with p % m = r,
-- in the given warehouse (the largest quant there, or a new one in its Stock)
CREATE FUNCTION pg_temp.raise(w int, m int, r int, k numeric) RETURNS int LANGUAGE plpgsql AS
$$
DECLARE
    n int := 0;
    pid int;
    qid int;
BEGIN
    FOR pid IN SELECT x FROM unnest((SELECT ids FROM ids)) x WHERE x % m = r LOOP
        SELECT q.id INTO qid FROM public.stock_quant q
          JOIN public.stock_location l ON l.id = q.location_id
          JOIN public.stock_warehouse sw ON sw.id = w
          JOIN public.stock_location v ON v.id = sw.view_location_id
         WHERE q.product_id = pid AND l.usage = 'internal' AND l.parent_path LIKE v.parent_path || '%'
         ORDER BY q.quantity DESC, q.id LIMIT 1;
        IF qid IS NULL THEN
            INSERT INTO public.stock_quant (product_id, company_id, location_id, quantity, reserved_quantity,
                                            in_date, inventory_quantity_set)
            SELECT pid, sw.company_id, sw.lot_stock_id, k, 0, now()::timestamp, false
              FROM public.stock_warehouse sw WHERE sw.id = w;
        ELSE
            UPDATE public.stock_quant SET quantity = quantity + k WHERE id = qid;
        END IF;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

CREATE FUNCTION pg_temp.monotone(label text, w int, m int, r int, k numeric) RETURNS SETOF text LANGUAGE plpgsql AS
$$
BEGIN
    CREATE TEMP TABLE before ON COMMIT DROP AS SELECT * FROM pg_temp.snap();
    PERFORM pg_temp.raise(w, m, r, k);
    CREATE TEMP TABLE after ON COMMIT DROP AS SELECT * FROM pg_temp.snap();
    RETURN NEXT is((SELECT count(*)::int FROM before b JOIN after a USING (product_id, channel_id)
                     WHERE a.quantity < b.quantity), 0,
                   label || ': more stock never lowers any channel''s quantity');
    RETURN NEXT cmp_ok((SELECT count(*)::int FROM before b JOIN after a USING (product_id, channel_id)
                         WHERE a.quantity > b.quantity), '>', 0,
                       label || ': and raises some');
    RETURN NEXT is((SELECT count(*)::int FROM before b JOIN after a USING (product_id, channel_id)
                     WHERE a.quantity <> b.quantity AND b.product_id % m <> r), 0,
                   label || ': products whose stock did not change keep their quantities');
    DROP TABLE before;
    DROP TABLE after;
END
$$;

------------------------------------------------------------------ set-up 1
SELECT * FROM pg_temp.props('set-up 1');
SELECT * FROM pg_temp.monotone('set-up 1, +1 in warehouse 1', :w1, 3, 0, 1);
SELECT * FROM pg_temp.monotone('set-up 1, +7 in warehouse 2', :w2, 3, 1, 7);
SELECT * FROM pg_temp.monotone('set-up 1, +40 in warehouse 3', :w3, 4, 2, 40);

------------------------------------------------------------------ set-up 2
-- thresholds high enough for nearly every product, ties of priority, a cap of 0
SELECT omnichan.channel_alter('ocp-amz', '{"low_stock_threshold": 1000, "buffer_pct": 33.3}'),
       omnichan.channel_alter('ocp-shop', '{"priority": 1, "max_qty": 0}'),
       omnichan.channel_alter('ocp-etsy', '{"priority": 1, "buffer_pct": 0}'),
       omnichan.channel_alter('ocp-off', '{"active": true, "low_stock_threshold": 0}');
SELECT * FROM pg_temp.props('set-up 2');
SELECT * FROM pg_temp.monotone('set-up 2, +1 in warehouse 1', :w1, 2, 0, 1);
SELECT * FROM pg_temp.monotone('set-up 2, +3 in warehouse 2', :w2, 2, 1, 3);

------------------------------------------------------------------ set-up 3
-- every channel on both warehouses of group 1, amz with a 100 % buffer
SELECT omnichan.channel_alter('ocp-amz', jsonb_build_object('warehouse_ids', jsonb_build_array(:w1, :w2),
                                                            'buffer_pct', 100)),
       omnichan.channel_alter('ocp-ebay', jsonb_build_object('warehouse_ids', jsonb_build_array(:w1, :w2))),
       omnichan.channel_alter('ocp-shop', '{"max_qty": null, "buffer_pct": 0}');
SELECT * FROM pg_temp.props('set-up 3');
SELECT * FROM pg_temp.monotone('set-up 3, +2 in warehouse 2', :w2, 5, 3, 2);

SELECT * FROM finish();
ROLLBACK;
