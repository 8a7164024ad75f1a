-- bench/ats_helpers.sql -- timing functions and SQL baselines of bench/ats.sh
-- (schema omnichan_bench in the benchmark's scratch database; idempotent).
\set ON_ERROR_STOP 1
CREATE SCHEMA IF NOT EXISTS omnichan_bench;

-------------------------------------------------------------------------------
-- Timing
-------------------------------------------------------------------------------

-- Median wall time (ms) of a query: `warmup` untimed runs, then `runs` timed
-- ones, each timed server-side with clock_timestamp() around EXECUTE.
CREATE OR REPLACE FUNCTION omnichan_bench.median_ms(q text, runs int, warmup int DEFAULT 2)
RETURNS numeric LANGUAGE plpgsql AS $$
DECLARE
	t0 timestamptz;
	ms float8[] := '{}';
BEGIN
	FOR i IN 1 .. warmup LOOP
		EXECUTE q;
	END LOOP;
	FOR i IN 1 .. runs LOOP
		t0 := clock_timestamp();
		EXECUTE q;
		ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
	END LOOP;
	RETURN (SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 1) FROM unnest(ms) x);
END
$$;

-- Single-product latency: omnichan.ats(pid), omnichan.ats(pid, wh) and
-- omnichan.allocate(pid) for n pseudo-random storable products (the same
-- ones for each function), each call timed server-side.  50 untimed calls
-- first, so the engine's per-backend prepared plans exist (the state of any
-- long-lived connection).  Returns median, p99 and max in ms.
CREATE OR REPLACE FUNCTION omnichan_bench.single_latency(n int)
RETURNS TABLE (fn text, median_ms numeric, p99_ms numeric, max_ms numeric)
LANGUAGE plpgsql AS $$
DECLARE
	pids int[];
	whs int[] := ARRAY(SELECT id FROM stock_warehouse WHERE active ORDER BY id);
	t0 timestamptz;
	ms float8[];
	f text;
BEGIN
	pids := ARRAY(SELECT pp.id FROM product_product pp
	                JOIN product_template pt ON pt.id = pp.product_tmpl_id
	               WHERE pt.type = 'product'
	               ORDER BY hashint4(pp.id), pp.id LIMIT n);
	FOR i IN 1 .. 50 LOOP
		PERFORM omnichan.ats(pids[i]);
		PERFORM omnichan.ats(pids[i], whs[1 + i % cardinality(whs)]);
		PERFORM count(*) FROM omnichan.allocate(pids[i]);
	END LOOP;
	FOREACH f IN ARRAY ARRAY['ats', 'ats_wh', 'allocate'] LOOP
		ms := '{}';
		FOR i IN 1 .. cardinality(pids) LOOP
			t0 := clock_timestamp();
			IF f = 'ats' THEN
				PERFORM omnichan.ats(pids[i]);
			ELSIF f = 'ats_wh' THEN
				PERFORM omnichan.ats(pids[i], whs[1 + i % cardinality(whs)]);
			ELSE
				PERFORM count(*) FROM omnichan.allocate(pids[i]);
			END IF;
			ms := ms || extract(epoch FROM clock_timestamp() - t0)::float8 * 1000;
		END LOOP;
		fn := f;
		SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY x)::numeric, 3),
		       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)::numeric, 3),
		       round(max(x)::numeric, 3)
		  INTO median_ms, p99_ms, max_ms
		  FROM unnest(ms) x;
		RETURN NEXT;
	END LOOP;
END
$$;

-------------------------------------------------------------------------------
-- Baselines: hand-written SQL computing exactly what omnichan.ats_bulk()
-- returns (same columns, same numbers) for every storable product over one
-- pool made of every active warehouse.  The definition is the one of
-- src/ats.c: each demand term is summed per product in the engine's units,
-- rounded to millionths, and the terms are added up as fixed-point integers.
-- Kits are not modelled (bench/ats.sh refuses a catalog with kits).
-------------------------------------------------------------------------------

-- baseline_naive: a literal translation of the engine's queries into one
-- statement (location scope by parent_path, per-move NOT EXISTS on the
-- destination, NOT EXISTS on stock_move per sale line).
CREATE OR REPLACE VIEW omnichan_bench.baseline_naive AS
WITH wh AS (
	SELECT w.id, v.parent_path
	  FROM public.stock_warehouse w
	  JOIN public.stock_location v ON v.id = w.view_location_id
	 WHERE w.active
), scope AS (
	SELECT l.id AS loc, l.usage = 'internal' AS internal
	  FROM wh JOIN public.stock_location l ON l.parent_path LIKE wh.parent_path || '%'
), q AS (
	SELECT q.product_id,
	       round(sum(COALESCE(q.quantity, 0)) * 1000000)::int8 AS on_hand,
	       round(sum(q.reserved_quantity) * 1000000)::int8 AS reserved
	  FROM public.stock_quant q
	  JOIN scope s ON s.loc = q.location_id AND s.internal
	 GROUP BY 1
), mv AS (
	SELECT m.product_id,
	       round(sum(GREATEST(m.product_qty - COALESCE(m.quantity, 0) / mu.factor * pu.factor, 0)) * 1000000)::int8 AS pending
	  FROM public.stock_move m
	  JOIN scope s ON s.loc = m.location_id AND s.internal
	  JOIN public.uom_uom mu ON mu.id = m.product_uom
	  JOIN public.product_product pp ON pp.id = m.product_id
	  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
	  JOIN public.uom_uom pu ON pu.id = pt.uom_id
	 WHERE m.state IN ('waiting', 'confirmed', 'partially_available', 'assigned')
	   AND NOT EXISTS (SELECT 1 FROM scope d WHERE d.loc = m.location_dest_id)
	 GROUP BY 1
), sl AS (
	SELECT sol.product_id,
	       round(sum(GREATEST(sol.product_uom_qty - COALESCE(sol.qty_delivered, 0), 0) / lu.factor * pu.factor) * 1000000)::int8 AS pending
	  FROM public.sale_order_line sol
	  JOIN public.sale_order so ON so.id = sol.order_id
	  JOIN wh ON wh.id = so.warehouse_id
	  JOIN public.uom_uom lu ON lu.id = sol.product_uom
	  JOIN public.product_product pp ON pp.id = sol.product_id
	  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
	  JOIN public.uom_uom pu ON pu.id = pt.uom_id
	 WHERE sol.display_type IS NULL AND sol.product_id IS NOT NULL
	   AND (so.state = 'sale'
	        OR (so.state IN ('draft', 'sent')
	            AND (current_setting('omnichan.count_manual_quotations')::boolean
	                 OR EXISTS (SELECT 1 FROM omnichan.order_inbox i WHERE i.sale_order_id = so.id))))
	   AND NOT EXISTS (SELECT 1 FROM public.stock_move sm WHERE sm.sale_line_id = sol.id)
	 GROUP BY 1
), ib AS (
	SELECT l.product_id, round(sum(l.quantity) * 1000000)::int8 AS pending
	  FROM omnichan.order_inbox i
	  JOIN omnichan.order_inbox_line l ON l.inbox_id = i.id
	  JOIN omnichan.channel c ON c.id = i.channel_id
	  JOIN wh ON wh.id = COALESCE(i.warehouse_id, c.default_warehouse_id)
	 WHERE i.sale_order_id IS NULL AND i.state IN ('received', 'held') AND l.product_id IS NOT NULL
	 GROUP BY 1
), t AS (
	SELECT pp.id,
	       COALESCE(q.on_hand, 0) AS on_hand,
	       COALESCE(q.reserved, 0) AS reserved,
	       COALESCE((SELECT round(p.safety_stock * 1000000)::int8 FROM omnichan.product_policy p
	                  WHERE p.product_id = pp.id AND p.safety_stock > 0), 0) AS safety,
	       COALESCE(mv.pending, 0) + COALESCE(sl.pending, 0) + COALESCE(ib.pending, 0) AS pending
	  FROM public.product_product pp
	  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
	  LEFT JOIN q ON q.product_id = pp.id
	  LEFT JOIN mv ON mv.product_id = pp.id
	  LEFT JOIN sl ON sl.product_id = pp.id
	  LEFT JOIN ib ON ib.product_id = pp.id
	 WHERE pt.type = 'product'
)
SELECT t.id AS product_id, NULL::int AS warehouse_id,
       t.on_hand / 1000000.0 AS on_hand, t.reserved / 1000000.0 AS reserved,
       t.safety / 1000000.0 AS safety, t.pending / 1000000.0 AS pending,
       GREATEST(t.on_hand - t.reserved - t.safety - t.pending, 0) / 1000000.0 AS ats
  FROM t;

-- baseline: the same numbers, tuned -- the physical limit the engine is held
-- to.  The pool's location sets are computed once (arrays: internal
-- locations, whole scope), so a move's "leaves the pool" test is one
-- <> ALL(array) instead of a per-move NOT EXISTS, and quants/moves/orders
-- filter on = ANY(array).  Storable products and their unit factor are
-- computed once (CTE p) and reused by every term; a move with nothing
-- reserved skips the unit conversion (0 / f * f = 0 exactly); the result is
-- ordered by product id, which lets the planner aggregate the quants by a
-- streaming GroupAggregate over stock_quant(product_id) (half the cost of a
-- HashAggregate with 100k numeric states) and merge-join the terms; the
-- fixed-point results are scaled back with "* 0.000001" (exact) instead of a
-- numeric division.
CREATE OR REPLACE VIEW omnichan_bench.baseline AS
WITH loc AS MATERIALIZED (
	-- the pool's locations, once: internal ones (stock) and all (scope)
	SELECT array_agg(l.id) FILTER (WHERE l.usage = 'internal') AS internal,
	       array_agg(l.id) AS scope,
	       array_agg(DISTINCT w.id) AS whs
	  FROM public.stock_warehouse w
	  JOIN public.stock_location v ON v.id = w.view_location_id
	  JOIN public.stock_location l ON l.parent_path LIKE v.parent_path || '%'
	 WHERE w.active
), p AS (
	SELECT pp.id, pu.factor
	  FROM public.product_product pp
	  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
	  JOIN public.uom_uom pu ON pu.id = pt.uom_id
	 WHERE pt.type = 'product'
), q AS (
	SELECT q.product_id,
	       round(sum(COALESCE(q.quantity, 0)) * 1000000)::int8 AS on_hand,
	       round(sum(q.reserved_quantity) * 1000000)::int8 AS reserved
	  FROM public.stock_quant q
	 WHERE q.location_id = ANY ((SELECT internal FROM loc)::int[])
	 GROUP BY 1
), mv AS (
	SELECT m.product_id,
	       round(sum(GREATEST(CASE WHEN COALESCE(m.quantity, 0) = 0 THEN m.product_qty
	                               ELSE m.product_qty - m.quantity / mu.factor * p.factor END, 0)) * 1000000)::int8 AS pending
	  FROM public.stock_move m
	  JOIN p ON p.id = m.product_id
	  JOIN public.uom_uom mu ON mu.id = m.product_uom
	 WHERE m.state IN ('waiting', 'confirmed', 'partially_available', 'assigned')
	   AND m.location_id = ANY ((SELECT internal FROM loc)::int[])
	   AND m.location_dest_id <> ALL ((SELECT scope FROM loc)::int[])
	 GROUP BY 1
), sl AS (
	SELECT sol.product_id,
	       round(sum(GREATEST(sol.product_uom_qty - COALESCE(sol.qty_delivered, 0), 0) / lu.factor * p.factor) * 1000000)::int8 AS pending
	  FROM public.sale_order_line sol
	  JOIN public.sale_order so ON so.id = sol.order_id
	  JOIN p ON p.id = sol.product_id
	  JOIN public.uom_uom lu ON lu.id = sol.product_uom
	 WHERE sol.display_type IS NULL
	   AND so.warehouse_id = ANY ((SELECT whs FROM loc)::int[])
	   AND (so.state = 'sale'
	        OR (so.state IN ('draft', 'sent')
	            AND (current_setting('omnichan.count_manual_quotations')::boolean
	                 OR EXISTS (SELECT 1 FROM omnichan.order_inbox i WHERE i.sale_order_id = so.id))))
	   AND NOT EXISTS (SELECT 1 FROM public.stock_move sm WHERE sm.sale_line_id = sol.id)
	 GROUP BY 1
), ib AS (
	SELECT l.product_id, round(sum(l.quantity) * 1000000)::int8 AS pending
	  FROM omnichan.order_inbox i
	  JOIN omnichan.order_inbox_line l ON l.inbox_id = i.id
	  JOIN omnichan.channel c ON c.id = i.channel_id
	 WHERE i.sale_order_id IS NULL AND i.state IN ('received', 'held') AND l.product_id IS NOT NULL
	   AND COALESCE(i.warehouse_id, c.default_warehouse_id) = ANY ((SELECT whs FROM loc)::int[])
	 GROUP BY 1
), t AS (
	SELECT p.id,
	       COALESCE(q.on_hand, 0) AS on_hand,
	       COALESCE(q.reserved, 0) AS reserved,
	       COALESCE(round(s.safety_stock * 1000000)::int8, 0) AS safety,
	       COALESCE(mv.pending, 0) + COALESCE(sl.pending, 0) + COALESCE(ib.pending, 0) AS pending
	  FROM p
	  LEFT JOIN q ON q.product_id = p.id
	  LEFT JOIN mv ON mv.product_id = p.id
	  LEFT JOIN sl ON sl.product_id = p.id
	  LEFT JOIN ib ON ib.product_id = p.id
	  LEFT JOIN omnichan.product_policy s ON s.product_id = p.id AND s.safety_stock > 0
)
SELECT t.id AS product_id, NULL::int AS warehouse_id,
       t.on_hand * 0.000001 AS on_hand, t.reserved * 0.000001 AS reserved,
       t.safety * 0.000001 AS safety, t.pending * 0.000001 AS pending,
       GREATEST(t.on_hand - t.reserved - t.safety - t.pending, 0) * 0.000001 AS ats
  FROM t
 ORDER BY t.id;

-- baseline_per_wh: the tuned baseline with one pool per active warehouse,
-- = omnichan.ats_bulk(NULL, NULL, true).
CREATE OR REPLACE VIEW omnichan_bench.baseline_per_wh AS
WITH wl AS MATERIALIZED (
	SELECT w.id AS wh,
	       array_agg(l.id) FILTER (WHERE l.usage = 'internal') AS internal,
	       array_agg(l.id) AS scope
	  FROM public.stock_warehouse w
	  JOIN public.stock_location v ON v.id = w.view_location_id
	  JOIN public.stock_location l ON l.parent_path LIKE v.parent_path || '%'
	 WHERE w.active
	 GROUP BY w.id
), li AS MATERIALIZED (
	SELECT wl.wh, x.loc FROM wl CROSS JOIN LATERAL unnest(wl.internal) AS x(loc)
), p AS (
	SELECT pp.id, pu.factor
	  FROM public.product_product pp
	  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id
	  JOIN public.uom_uom pu ON pu.id = pt.uom_id
	 WHERE pt.type = 'product'
), q AS (
	SELECT q.product_id, li.wh,
	       round(sum(COALESCE(q.quantity, 0)) * 1000000)::int8 AS on_hand,
	       round(sum(q.reserved_quantity) * 1000000)::int8 AS reserved
	  FROM public.stock_quant q
	  JOIN li ON li.loc = q.location_id
	 GROUP BY 1, 2
), mv AS (
	SELECT m.product_id, wl.wh,
	       round(sum(GREATEST(CASE WHEN COALESCE(m.quantity, 0) = 0 THEN m.product_qty
	                               ELSE m.product_qty - m.quantity / mu.factor * p.factor END, 0)) * 1000000)::int8 AS pending
	  FROM public.stock_move m
	  JOIN li ON li.loc = m.location_id
	  JOIN wl ON wl.wh = li.wh
	  JOIN p ON p.id = m.product_id
	  JOIN public.uom_uom mu ON mu.id = m.product_uom
	 WHERE m.state IN ('waiting', 'confirmed', 'partially_available', 'assigned')
	   AND m.location_dest_id <> ALL (wl.scope)
	 GROUP BY 1, 2
), sl AS (
	SELECT sol.product_id, so.warehouse_id AS wh,
	       round(sum(GREATEST(sol.product_uom_qty - COALESCE(sol.qty_delivered, 0), 0) / lu.factor * p.factor) * 1000000)::int8 AS pending
	  FROM public.sale_order_line sol
	  JOIN public.sale_order so ON so.id = sol.order_id
	  JOIN p ON p.id = sol.product_id
	  JOIN public.uom_uom lu ON lu.id = sol.product_uom
	 WHERE sol.display_type IS NULL
	   AND so.warehouse_id IN (SELECT wh FROM wl)
	   AND (so.state = 'sale'
	        OR (so.state IN ('draft', 'sent')
	            AND (current_setting('omnichan.count_manual_quotations')::boolean
	                 OR EXISTS (SELECT 1 FROM omnichan.order_inbox i WHERE i.sale_order_id = so.id))))
	   AND NOT EXISTS (SELECT 1 FROM public.stock_move sm WHERE sm.sale_line_id = sol.id)
	 GROUP BY 1, 2
), ib AS (
	SELECT l.product_id, COALESCE(i.warehouse_id, c.default_warehouse_id) AS wh,
	       round(sum(l.quantity) * 1000000)::int8 AS pending
	  FROM omnichan.order_inbox i
	  JOIN omnichan.order_inbox_line l ON l.inbox_id = i.id
	  JOIN omnichan.channel c ON c.id = i.channel_id
	 WHERE i.sale_order_id IS NULL AND i.state IN ('received', 'held') AND l.product_id IS NOT NULL
	   AND COALESCE(i.warehouse_id, c.default_warehouse_id) IN (SELECT wh FROM wl)
	 GROUP BY 1, 2
), t AS (
	SELECT p.id, wl.wh,
	       COALESCE(q.on_hand, 0) AS on_hand,
	       COALESCE(q.reserved, 0) AS reserved,
	       COALESCE(round(s.safety_stock * 1000000)::int8, 0) AS safety,
	       COALESCE(mv.pending, 0) + COALESCE(sl.pending, 0) + COALESCE(ib.pending, 0) AS pending
	  FROM p
	 CROSS JOIN wl
	  LEFT JOIN q ON q.product_id = p.id AND q.wh = wl.wh
	  LEFT JOIN mv ON mv.product_id = p.id AND mv.wh = wl.wh
	  LEFT JOIN sl ON sl.product_id = p.id AND sl.wh = wl.wh
	  LEFT JOIN ib ON ib.product_id = p.id AND ib.wh = wl.wh
	  LEFT JOIN omnichan.product_policy s ON s.product_id = p.id AND s.safety_stock > 0
)
SELECT t.id AS product_id, t.wh AS warehouse_id,
       t.on_hand * 0.000001 AS on_hand, t.reserved * 0.000001 AS reserved,
       t.safety * 0.000001 AS safety, t.pending * 0.000001 AS pending,
       GREATEST(t.on_hand - t.reserved - t.safety - t.pending, 0) * 0.000001 AS ats
  FROM t
 ORDER BY t.id, t.wh;
