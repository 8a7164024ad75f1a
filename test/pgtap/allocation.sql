--
-- allocation: how many units each channel shows (omnichan.allocate,
-- allocate_bulk, explain_allocation).
--
-- Every expected number is computed by hand in the comments (see the header
-- of src/allocate.c for the rules).  Runs on the project's fixture and on the
-- real Odoo 17 demo database: warehouses, products, quants and channels are
-- created inside the (rolled back) transaction.
--
BEGIN;
SELECT plan(64);

SET LOCAL client_min_messages = warning;

\ir lib/odoo_helpers.sql

-- a channel (kind walmart: no required kind setting) of company 1
CREATE FUNCTION pg_temp.ch(p_name text, p_whs int[], p_settings jsonb DEFAULT '{}') RETURNS int LANGUAGE sql AS
$$ SELECT omnichan.channel_create(p_name, 'walmart',
          p_settings || jsonb_build_object('company_id', pg_temp.xid('base.main_company'),
                                           'warehouse_ids', to_jsonb(p_whs))) $$;

-- quantities and modes shown by the given channels, in the given order
CREATE FUNCTION pg_temp.qty(p int, p_channels text[]) RETURNS int[] LANGUAGE sql AS
$$ SELECT array_agg(a.quantity ORDER BY x.n)
     FROM unnest(p_channels) WITH ORDINALITY x(name, n)
     LEFT JOIN omnichan.allocate(p) a ON a.channel = x.name $$;
CREATE FUNCTION pg_temp.mode(p int, p_channels text[]) RETURNS text[] LANGUAGE sql AS
$$ SELECT array_agg(a.mode ORDER BY x.n)
     FROM unnest(p_channels) WITH ORDINALITY x(name, n)
     LEFT JOIN omnichan.allocate(p) a ON a.channel = x.name $$;
CREATE FUNCTION pg_temp.lefts(p int, p_channels text[]) RETURNS bigint[] LANGUAGE sql AS
$$ SELECT array_agg(a.left_before ORDER BY x.n)
     FROM unnest(p_channels) WITH ORDINALITY x(name, n)
     LEFT JOIN omnichan.allocate_bulk(ARRAY[p]) a ON a.channel = x.name $$;
CREATE FUNCTION pg_temp.pools(p int, p_channels text[]) RETURNS bigint[] LANGUAGE sql AS
$$ SELECT array_agg(a.pool ORDER BY x.n)
     FROM unnest(p_channels) WITH ORDINALITY x(name, n)
     LEFT JOIN omnichan.allocate_bulk(ARRAY[p]) a ON a.channel = x.name $$;
CREATE FUNCTION pg_temp.expl(p int, p_channel text) RETURNS text LANGUAGE sql AS
$$ SELECT e.explanation FROM omnichan.explain_allocation(p) e WHERE e.channel = p_channel $$;

---------------------------------------------------------------- the setup
SELECT pg_temp.xid('base.main_company') AS co1 \gset
SELECT pg_temp.warehouse('OCLA', :co1) AS wa, pg_temp.warehouse('OCLB', :co1) AS wb,
       pg_temp.warehouse('OCLC', :co1) AS wc, pg_temp.warehouse('OCLD', :co1) AS wd,
       pg_temp.warehouse('OCLE', :co1) AS we \gset
SELECT pg_temp.stock(:wa) AS sa, pg_temp.stock(:wb) AS sb, pg_temp.stock(:wc) AS sc,
       pg_temp.stock(:wd) AS sd, pg_temp.stock(:we) AS se \gset

-- group A (warehouse A): normal mode, threshold 0
SELECT pg_temp.ch('oca-b0', ARRAY[:wa], '{"priority": 1, "buffer_pct": 0}'),
       pg_temp.ch('oca-b10', ARRAY[:wa], '{"priority": 2, "buffer_pct": 10}'),
       pg_temp.ch('oca-b100', ARRAY[:wa], '{"priority": 3, "buffer_pct": 100}'),
       pg_temp.ch('oca-cap', ARRAY[:wa], '{"priority": 4, "max_qty": 7}'),
       pg_temp.ch('oca-off', ARRAY[:wa], '{"priority": 5, "active": false}');
-- group B (warehouse B): low-stock threshold 10
SELECT pg_temp.ch('ocb-amazon', ARRAY[:wb], '{"priority": 1, "buffer_pct": 10, "low_stock_threshold": 10}');
SELECT pg_temp.ch('ocb-shopify', ARRAY[:wb], '{"priority": 2, "buffer_pct": 5}');
SELECT pg_temp.ch('ocb-ebay', ARRAY[:wb], '{"priority": 3}');
SELECT pg_temp.ch('ocb-etsy', ARRAY[:wb], '{"priority": 3}');
-- group C: c1 {C} and c2 {C, D} overlap; c3 {E} is on its own
SELECT pg_temp.ch('occ-1', ARRAY[:wc], '{"priority": 1, "low_stock_threshold": 10}');
SELECT pg_temp.ch('occ-2', ARRAY[:wc, :wd], '{"priority": 2}');
SELECT pg_temp.ch('occ-3', ARRAY[:we], '{"priority": 1, "low_stock_threshold": 10}');

\set A '\'{oca-b0,oca-b10,oca-b100,oca-cap,oca-off}\'::text[]'
\set B '\'{ocb-amazon,ocb-shopify,ocb-ebay,ocb-etsy}\'::text[]'
\set C '\'{occ-1,occ-2,occ-3}\'::text[]'

--------------------------------------------------------------- normal mode
-- p1: 25.5 in A -> pool 25: b0 25, b10 floor(22.5) = 22, b100 0, cap min(25, 7) = 7,
-- off inactive 0
SELECT pg_temp.product('p1') AS p1 \gset
SELECT pg_temp.quant(:p1, :sa, 25.5);
SELECT is(pg_temp.qty(:p1, :A), '{25,22,0,7,0}'::int[], 'normal mode: buffers 0, 10, 100 %, max_qty 7, inactive');
SELECT is(pg_temp.mode(:p1, :A), '{normal,normal,normal,normal,inactive}'::text[], 'normal mode: modes');
SELECT is(pg_temp.pools(:p1, :A), '{25,25,25,25,0}'::bigint[], 'normal mode: the pool in whole units');
SELECT is(pg_temp.lefts(:p1, :A), '{NULL,NULL,NULL,NULL,NULL}'::bigint[], 'normal mode: no left_before');
SELECT is(pg_temp.qty(:p1, :B), '{0,0,0,0}'::int[], 'channels of another warehouse show 0');
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.allocate(:p1)), 12, 'one row per channel');
SELECT is((SELECT pg_catalog.array_agg(channel ORDER BY n)
             FROM (SELECT channel, row_number() OVER () n FROM omnichan.allocate(:p1)) a
            WHERE channel LIKE 'oca-%'), :A, 'rows in priority order');

-- p2: 40 in A, per-product overrides: b0 buffer 50 -> 20; b10 max_qty 3 -> 3;
-- b100 buffer 0 -> 40; cap excluded -> 0
SELECT pg_temp.product('p2') AS p2 \gset
SELECT pg_temp.quant(:p2, :sa, 40);
SELECT omnichan.product_channel_policy_set(:p2, 'oca-b0', '{"buffer_pct": 50}'),
       omnichan.product_channel_policy_set(:p2, 'oca-b10', '{"max_qty": 3}'),
       omnichan.product_channel_policy_set(:p2, 'oca-b100', '{"buffer_pct": 0}'),
       omnichan.product_channel_policy_set(:p2, 'oca-cap', '{"excluded": true}');
SELECT is(pg_temp.qty(:p2, :A), '{20,3,40,0,0}'::int[], 'per-product overrides: buffer, max_qty, excluded');
SELECT is(pg_temp.mode(:p2, :A), '{normal,normal,normal,excluded,inactive}'::text[], 'per-product overrides: modes');
SELECT is(pg_temp.qty(:p1, :A), '{25,22,0,7,0}'::int[], 'overrides apply to their product only');
SELECT omnichan.product_channel_policy_set(:p2, 'oca-b0', '{"buffer_pct": null}'),
       omnichan.product_channel_policy_set(:p2, 'oca-cap', '{"excluded": false, "max_qty": 0}');
SELECT is(pg_temp.qty(:p2, :A), '{40,3,40,0,0}'::int[], 'override cleared: the channel''s buffer again; max_qty 0 override');
SELECT is(pg_temp.mode(:p2, :A), '{normal,normal,normal,normal,inactive}'::text[], 'max_qty 0 is normal mode, not excluded');

-- safety stock reduces the pool: 40 - 15 = 25
SELECT omnichan.product_policy_set(:p2, '{"safety_stock": 15}');
SELECT is(pg_temp.qty(:p2, :A), '{25,3,25,0,0}'::int[], 'safety stock: pool 25');
SELECT omnichan.product_policy_set(:p2, '{"safety_stock": 0}');

-- p3 archived: 0 everywhere
SELECT pg_temp.product('p3') AS p3 \gset
SELECT pg_temp.quant(:p3, :sa, 10), pg_temp.quant(:p3, :sb, 10);
UPDATE public.product_product SET active = false WHERE id = :p3;
SELECT is(pg_temp.qty(:p3, :A), '{0,0,0,0,0}'::int[], 'archived product: 0 on every channel');
SELECT is(pg_temp.mode(:p3, :A), '{archived,archived,archived,archived,inactive}'::text[], 'archived product: mode archived');
SELECT is(pg_temp.qty(:p3, :B), '{0,0,0,0}'::int[], 'archived product: 0 in low-stock mode too');
UPDATE public.product_product SET active = true WHERE id = :p3;
UPDATE public.product_template SET active = false WHERE id = pg_temp.tmpl(:p3);
SELECT is(pg_temp.qty(:p3, :A), '{0,0,0,0,0}'::int[], 'archived template: 0 on every channel');

-- an inactive channel becomes active
SELECT omnichan.channel_alter('oca-off', '{"active": true}');
SELECT is(pg_temp.qty(:p1, :A), '{25,22,0,7,25}'::int[], 'a channel made active shows its quantity');
SELECT omnichan.channel_alter('oca-off', '{"active": false}');

------------------------------------------------------------ low-stock mode
-- q1: pool 5 <= threshold 10: waterfall
--   amazon (1, 10 %): take floor(5 x 0.9) = 4, shows 4, left 1
--   shopify (2, 5 %): take floor(1 x 0.95) = 0, left 1
--   ebay (3, 0 %): take 1, left 0
--   etsy (3, 0 %, created after ebay): 0
SELECT pg_temp.product('q1') AS q1 \gset
SELECT pg_temp.quant(:q1, :sb, 5);
SELECT is(pg_temp.qty(:q1, :B), '{4,0,1,0}'::int[], 'low-stock waterfall, ties by id: 4, 0, 1, 0');
SELECT is(pg_temp.mode(:q1, :B), '{low_stock,low_stock,low_stock,low_stock}'::text[], 'low-stock waterfall: modes');
SELECT is(pg_temp.lefts(:q1, :B), '{5,1,1,0}'::bigint[], 'low-stock waterfall: left before each channel');
SELECT is(pg_temp.pools(:q1, :B), '{5,5,5,5}'::bigint[], 'low-stock waterfall: pool');
SELECT cmp_ok((SELECT sum(q)::int FROM unnest(pg_temp.qty(:q1, :B)) q), '<=', 5, 'low-stock: the group shows at most its pool');
-- equal priorities, ties by id: swapping ids is not possible, swap priorities instead
SELECT omnichan.channel_alter('ocb-ebay', '{"priority": 4}');
SELECT is(pg_temp.qty(:q1, :B), '{4,0,0,1}'::int[], 'etsy now before ebay: etsy takes the last unit');
SELECT omnichan.channel_alter('ocb-ebay', '{"priority": 3}');

-- q2: pool 20 > 10: normal: 18, 19, 20, 20
SELECT pg_temp.product('q2') AS q2 \gset
SELECT pg_temp.quant(:q2, :sb, 20);
SELECT is(pg_temp.qty(:q2, :B), '{18,19,20,20}'::int[], 'above the threshold: normal mode');
SELECT is(pg_temp.mode(:q2, :B), '{normal,normal,normal,normal}'::text[], 'above the threshold: modes');

-- q3: pool 10 = threshold: low: amazon 9, left 1; shopify 0; ebay 1; etsy 0
SELECT pg_temp.product('q3') AS q3 \gset
SELECT pg_temp.quant(:q3, :sb, 10);
SELECT is(pg_temp.qty(:q3, :B), '{9,0,1,0}'::int[], 'at the threshold: low-stock mode');

-- q4: pool 8, amazon max_qty 2 for this product: amazon min(7, 2) = 2, left 6;
-- shopify floor(6 x 0.95) = 5, left 1; ebay 1; etsy 0
SELECT pg_temp.product('q4') AS q4 \gset
SELECT pg_temp.quant(:q4, :sb, 8);
SELECT omnichan.product_channel_policy_set(:q4, 'ocb-amazon', '{"max_qty": 2}');
SELECT is(pg_temp.qty(:q4, :B), '{2,5,1,0}'::int[], 'low-stock with a max_qty: the capped channel takes only its cap');
SELECT is(pg_temp.lefts(:q4, :B), '{8,6,1,0}'::bigint[], 'low-stock with a max_qty: left before each channel');

-- q5: pool 5, amazon excluded: takes nothing; shopify floor(4.75) = 4, left 1;
-- ebay 1; etsy 0
SELECT pg_temp.product('q5') AS q5 \gset
SELECT pg_temp.quant(:q5, :sb, 5);
SELECT omnichan.product_channel_policy_set(:q5, 'ocb-amazon', '{"excluded": true}');
SELECT is(pg_temp.qty(:q5, :B), '{0,4,1,0}'::int[], 'low-stock: an excluded channel takes nothing');
SELECT is(pg_temp.mode(:q5, :B), '{excluded,low_stock,low_stock,low_stock}'::text[], 'low-stock: excluded mode');

-- an inactive channel takes nothing and does not set the threshold
SELECT omnichan.channel_alter('ocb-amazon', '{"active": false}');
SELECT is(pg_temp.qty(:q1, :B), '{0,4,5,5}'::int[],
          'inactive amazon: its threshold no longer applies: normal mode, 0, floor(5 x 0.95) = 4, 5, 5');
SELECT omnichan.channel_alter('ocb-amazon', '{"active": true}');

-- a kit in low-stock mode: kit = 2 comp, comp 10 in B -> kit pool 5 -> as q1
SELECT pg_temp.product('kit') AS kit, pg_temp.product('comp') AS comp \gset
SELECT pg_temp.quant(:comp, :sb, 10);
INSERT INTO public.mrp_bom (product_tmpl_id, product_uom_id, type, ready_to_produce, consumption, product_qty,
                            active, sequence)
SELECT product_tmpl_id, pg_temp.xid('uom.product_uom_unit'), 'phantom', 'all_available', 'warning', 1, true, 10
  FROM public.product_product WHERE id = :kit RETURNING id AS bom \gset
INSERT INTO public.mrp_bom_line (bom_id, product_id, product_uom_id, product_qty)
VALUES (:bom, :comp, pg_temp.xid('uom.product_uom_unit'), 2);
SELECT is(pg_temp.qty(:kit, :B), '{4,0,1,0}'::int[], 'a kit is allocated from its components'' ATS (pool 5)');
SELECT is(pg_temp.qty(:comp, :B), '{9,0,1,0}'::int[], 'its component on its own (pool 10)');

-------------------------------------------------- channels with warehouse sets
-- r1: C 4, D 3, E 2.  Group {occ-1, occ-2}: pool C+D = 7 <= 10: occ-1 takes 7
-- but shows its own 4; occ-2 takes 0.  occ-3 alone: pool 2 <= 10: 2.
SELECT pg_temp.product('r1') AS r1 \gset
SELECT pg_temp.quant(:r1, :sc, 4), pg_temp.quant(:r1, :sd, 3), pg_temp.quant(:r1, :se, 2);
SELECT is(pg_temp.qty(:r1, :C), '{4,0,2}'::int[], 'overlapping channels share one waterfall; a disjoint one is independent');
SELECT is(pg_temp.pools(:r1, :C), '{7,7,2}'::bigint[], 'the pool of a group is the union of its warehouses');
SELECT is(pg_temp.mode(:r1, :C), '{low_stock,low_stock,low_stock}'::text[],
          'the group''s threshold is the highest of its members (occ-2 has 0)');
-- r2: C 20, D 5, E 30: all normal: occ-1 20, occ-2 25, occ-3 30
SELECT pg_temp.product('r2') AS r2 \gset
SELECT pg_temp.quant(:r2, :sc, 20), pg_temp.quant(:r2, :sd, 5), pg_temp.quant(:r2, :se, 30);
SELECT is(pg_temp.qty(:r2, :C), '{20,25,30}'::int[], 'normal mode: each channel its own warehouses');
-- r3: C 20, D 5, E 3: group normal, occ-3 low on its own
SELECT pg_temp.product('r3') AS r3 \gset
SELECT pg_temp.quant(:r3, :sc, 20), pg_temp.quant(:r3, :sd, 5), pg_temp.quant(:r3, :se, 3);
SELECT is(pg_temp.qty(:r3, :C), '{20,25,3}'::int[], 'disjoint groups: independent modes');
SELECT is(pg_temp.mode(:r3, :C), '{normal,normal,low_stock}'::text[], 'disjoint groups: modes');
-- occ-3 joins the group by sharing warehouse D: pool C+D+E = 12 > 10: normal
SELECT omnichan.channel_alter('occ-3', jsonb_build_object('warehouse_ids', jsonb_build_array(:wd, :we)));
SELECT is(pg_temp.qty(:r3, :C), '{20,25,8}'::int[], 'a channel sharing a warehouse joins the group (pool 28)');
SELECT is(pg_temp.pools(:r3, :C), '{28,28,28}'::bigint[], 'the joined group''s pool: 20 + 5 + 3');
-- r1 in the joined group: pool 9 <= 10: occ-1 (1) takes 9 shows 4; occ-3 (1, id after
-- occ-1) takes 0; occ-2 (2) takes 0
SELECT is(pg_temp.qty(:r1, :C), '{4,0,0}'::int[], 'joined group, low stock: occ-1 takes the whole pool');
SELECT is(pg_temp.lefts(:r1, :C), '{9,0,0}'::bigint[], 'joined group, low stock: left before each channel');

------------------------------------------------------------ explain_allocation
SELECT is((SELECT pg_catalog.count(*)::int FROM omnichan.explain_allocation(:q1)), 12,
          'explain: one row per channel');
SELECT is((SELECT pg_catalog.count(*)::int
             FROM omnichan.explain_allocation(:q1) e
             JOIN omnichan.allocate(:q1) a ON a.channel = e.channel
            WHERE e.shown = a.quantity AND e.mode = a.mode), 12,
          'explain: shown and mode are those of allocate');
SELECT is((SELECT pg_catalog.count(*)::int
             FROM unnest(ARRAY[:p1, :p2, :p3, :q1, :q2, :q3, :q4, :q5, :r1, :r2, :r3, :kit]) p,
                  omnichan.explain_allocation(p) e
             JOIN omnichan.allocate_bulk(ARRAY[p]) a ON a.channel = e.channel
            WHERE e.shown = a.quantity AND e.mode = a.mode AND e.pool = a.pool
              AND e.left_before IS NOT DISTINCT FROM a.left_before), 12 * 12,
          'explain: shown, mode, pool and left_before match allocate_bulk for every product');
SELECT is((SELECT pg_catalog.count(*)::int
             FROM unnest(ARRAY[:p1, :p2, :q1, :q2, :r1, :r3]) p,
                  omnichan.explain_allocation(p) e
             JOIN omnichan.channel c ON c.name = e.channel
             JOIN omnichan.ats_bulk(ARRAY[p], c.warehouse_ids) s ON true
            WHERE e.ats = s.ats AND e.on_hand = s.on_hand AND e.pending = s.pending
              AND e.warehouse_ids = c.warehouse_ids), 6 * 12,
          'explain: the ATS terms are those of the channel''s own warehouses');
SELECT matches(pg_temp.expl(:q1, 'ocb-amazon'), '^ats 5 = max\(0, on hand 5 - reserved 0 - safety 0 - pending 0\); low-stock mode',
               'explain: the ATS terms, then the mode');
SELECT alike(pg_temp.expl(:q1, 'ocb-amazon'), '%priority 1, 5 left after higher priorities; floor(5 x (1 - 10%)) = 4: shows 4',
             'explain low-stock: the waterfall step');
SELECT unalike(pg_temp.expl(:q1, 'ocb-amazon'), '%cut%', 'explain: a channel showing its normal quantity is not cut');
SELECT alike(pg_temp.expl(:q1, 'ocb-shopify'), '%shows 0 (cut by 4 %would show 4%',
             'explain: a cut channel says by how much');
SELECT alike(pg_temp.expl(:q1, 'ocb-etsy'), '%cut by 5%', 'explain: the last channel is cut the most');
SELECT alike(pg_temp.expl(:q2, 'ocb-amazon'), '%normal mode (pool 20 above the low-stock threshold): floor(20 x (1 - 10%)) = 18: shows 18',
             'explain normal mode');
SELECT alike(pg_temp.expl(:p1, 'oca-cap'), '%, capped at max_qty 7: shows 7', 'explain: capped at max_qty');
SELECT alike(pg_temp.expl(:p1, 'oca-off'), '%the channel is inactive: shows 0', 'explain: inactive');
SELECT alike(pg_temp.expl(:p3, 'oca-b0'), '%the product is archived in Odoo: shows 0', 'explain: archived');
SELECT alike(pg_temp.expl(:q5, 'ocb-amazon'), '%the product is excluded from this channel: shows 0', 'explain: excluded');
SELECT alike(pg_temp.expl(:r1, 'occ-2'), '%low-stock mode (pool 9%shows 0 (cut by 7 %would show 7%',
             'explain: a channel cut by an overlapping channel');
SELECT is((SELECT e.buffer_pct FROM omnichan.explain_allocation(:p2) e WHERE e.channel = 'oca-b100'), 0::numeric,
          'explain: the per-product buffer override');
SELECT is((SELECT e.max_qty FROM omnichan.explain_allocation(:q4) e WHERE e.channel = 'ocb-amazon'), 2,
          'explain: the per-product max_qty override');

-------------------------------------------------------------------- errors, bulk
SELECT throws_ok('SELECT * FROM omnichan.allocate(-1)', '42704', 'product -1 does not exist', 'allocate: unknown product');
SELECT throws_ok('SELECT * FROM omnichan.explain_allocation(-1)', '42704', 'product -1 does not exist',
                 'explain_allocation: unknown product');
SELECT is((SELECT pg_catalog.count(*)::int
             FROM omnichan.allocate_bulk(NULL) b
             JOIN omnichan.allocate_bulk(ARRAY[b.product_id]) s ON s.channel_id = b.channel_id
            WHERE b.product_id IN (:p1, :p2, :p3, :q1, :q2, :q3, :q4, :q5, :r1, :r2, :r3, :kit, :comp)
              AND (s.quantity, s.mode, s.pool) = (b.quantity, b.mode, b.pool)
              AND s.left_before IS NOT DISTINCT FROM b.left_before), 13 * 12,
          'allocate_bulk(NULL) agrees with allocate_bulk of each product');

SELECT * FROM finish();
ROLLBACK;
