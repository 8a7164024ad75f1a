/*-------------------------------------------------------------------------
 *
 * ats.c
 *	  Available-to-sell: how many units of each product a pool of Odoo
 *	  warehouses can still sell.
 *
 * For a product and a pool (a set of warehouses):
 *
 *	on_hand   = sum of stock_quant.quantity over the internal locations under
 *				the warehouses' view locations (stock_location.parent_path);
 *	reserved  = sum of stock_quant.reserved_quantity over the same quants;
 *	safety    = omnichan.product_policy.safety_stock;
 *	pending   = demand Odoo has not reserved yet:
 *				- open outgoing moves (waiting, confirmed, partially_available,
 *				  assigned) leaving the pool: product_qty minus the reserved
 *				  quantity converted to the product's unit;
 *				- sale order lines with no stock move yet: confirmed orders, and
 *				  quotations created from marketplace orders (every quotation
 *				  when omnichan.count_manual_quotations is on);
 *				- marketplace orders received but not yet turned into Odoo
 *				  orders (omnichan.order_inbox);
 *				demand on a kit is exploded into demand on its components;
 *	ats       = max(0, on_hand - reserved - safety - pending).
 *
 * Each demand is counted once: an inbox order stops counting when it gets a
 * sale order; a sale line stops counting when it gets a stock move; a move
 * counts only its unreserved part, the reserved part being in "reserved".
 *
 * Kits (an active phantom mrp_bom, chosen like Odoo's _bom_find) have no
 * stock of their own: each term is the minimum over the storable components
 * of floor(component quantity * kit units per run / component units per run),
 * recursively for kits of kits.  A kit whose components are all missing or
 * non-storable has 0.  Unlike Odoo, the ratio is not rounded to the component
 * unit before the floor, so a kit is never overstated.
 *
 * The work is a handful of set-based queries (prepared once per backend),
 * merged in a hash table keyed by (product, pool).  All quantities are
 * fixed-point millionths (Qty), exact for Odoo's decimal quantities.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

#include "ats.h"
#include "omnichan.h"

/* the queries of the engine; each has an "all products" and a "by id" form */
typedef enum AtsQuery
{
	Q_SCOPE,
	Q_ALL_WAREHOUSES,
	Q_QUANTS,
	Q_MOVES,
	Q_SALES,
	Q_INBOX,
	Q_SAFETY,
	Q_KITS,
	Q_KIT_PARENTS,
	Q_PRODUCTS,
	NUM_ATS_QUERIES
} AtsQuery;

/*
 * The term queries group by location class rather than by pool: a class is
 * a set of pools, and each location (warehouse, for orders) belongs to the
 * class of the pools it is in.  AtsCompute adds a class's row into each of
 * its pools, so the rows are read and summed once however many pools
 * overlap (allocation).  A pool's term is the exact sum of its classes'
 * sums, rounded to millionths once: each sum x (already scaled by 10^6)
 * comes as round(x)::int8 when x is a whole number of millionths (Odoo's
 * decimal quantities), and as the numeric x itself otherwise (unit
 * conversions), which AtsCompute adds up exactly before rounding.
 */
#define EXACT_OR_NUMERIC(x) \
	"pg_catalog.round(" x ")::int8, CASE WHEN " x " <> pg_catalog.round(" x ") THEN " x " END"

/*
 * Open outgoing demand: the unreserved part of each open move whose source
 * is an internal location of the pool and whose destination is outside the
 * pool.  stock_move.quantity is in the move's unit, product_qty in the
 * product's: convert with the units' factors as Odoo does (nothing to
 * convert when nothing is reserved: 0 / f * f = 0 exactly).  Grouped by
 * product, class of the source ($1, $2: internal locations) and class of the
 * destination ($3, $4: every location of the pools; -1 outside them): the
 * move is pending for the source's pools that are not the destination's.
 * Moves within one class leave none of its pools.
 */
#define MOVES_SQL(filter) \
	"SELECT g.product_id, g.src, g.dst, " EXACT_OR_NUMERIC("g.x") \
	"  FROM (SELECT m.product_id, s.cls AS src, COALESCE(d.cls, -1) AS dst, " \
	"               pg_catalog.sum(CASE WHEN COALESCE(m.quantity, 0) = 0 THEN GREATEST(m.product_qty, 0) " \
	"                   ELSE GREATEST(m.product_qty - m.quantity / mu.factor * pu.factor, 0) END) * 1000000 AS x " \
	"          FROM public.stock_move m " \
	"          JOIN ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[])) AS s(loc, cls) ON s.loc = m.location_id " \
	"          LEFT JOIN ROWS FROM (pg_catalog.unnest($3::int4[]), pg_catalog.unnest($4::int4[])) AS d(loc, cls) ON d.loc = m.location_dest_id " \
	"          JOIN public.uom_uom mu ON mu.id = m.product_uom " \
	"          JOIN public.product_product pp ON pp.id = m.product_id " \
	"          JOIN public.product_template pt ON pt.id = pp.product_tmpl_id " \
	"          JOIN public.uom_uom pu ON pu.id = pt.uom_id " \
	"         WHERE m.state IN ('waiting', 'confirmed', 'partially_available', 'assigned') " \
	filter \
	"           AND d.cls IS DISTINCT FROM s.cls " \
	"         GROUP BY 1, 2, 3) g"

/*
 * Sale lines with no stock move yet, in the product's unit, attributed to
 * the class of the order's warehouse.  Quotations count when they come from a
 * marketplace order (omnichan.order_inbox.sale_order_id), or all of them
 * when $3 (omnichan.count_manual_quotations) is true.
 */
#define SALES_SQL(filter) \
	"SELECT g.product_id, g.cls, -1, " EXACT_OR_NUMERIC("g.x") \
	"  FROM (SELECT sol.product_id, w.cls, " \
	"       pg_catalog.sum(GREATEST(sol.product_uom_qty - COALESCE(sol.qty_delivered, 0), 0) " \
	"           / lu.factor * pu.factor) * 1000000 AS x " \
	"  FROM public.sale_order_line sol " \
	"  JOIN public.sale_order so ON so.id = sol.order_id " \
	"  JOIN ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[])) AS w(wh, cls) ON w.wh = so.warehouse_id " \
	"  JOIN public.uom_uom lu ON lu.id = sol.product_uom " \
	"  JOIN public.product_product pp ON pp.id = sol.product_id " \
	"  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id " \
	"  JOIN public.uom_uom pu ON pu.id = pt.uom_id " \
	" WHERE sol.display_type IS NULL " \
	filter \
	"   AND (so.state = 'sale' " \
	"        OR (so.state IN ('draft', 'sent') " \
	"            AND ($3 OR EXISTS (SELECT 1 FROM omnichan.order_inbox i WHERE i.sale_order_id = so.id)))) " \
	"   AND NOT EXISTS (SELECT 1 FROM public.stock_move sm WHERE sm.sale_line_id = sol.id) " \
	" GROUP BY 1, 2) g"

/* marketplace orders received but not yet materialized as Odoo orders */
#define INBOX_SQL(filter) \
	"SELECT g.product_id, g.cls, -1, " EXACT_OR_NUMERIC("g.x") \
	"  FROM (SELECT l.product_id, w.cls, pg_catalog.sum(l.quantity) * 1000000 AS x " \
	"  FROM omnichan.order_inbox i " \
	"  JOIN omnichan.order_inbox_line l ON l.inbox_id = i.id " \
	"  JOIN omnichan.channel c ON c.id = i.channel_id " \
	"  JOIN ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[])) AS w(wh, cls) " \
	"       ON w.wh = COALESCE(i.warehouse_id, c.default_warehouse_id) " \
	" WHERE i.sale_order_id IS NULL AND i.state IN ('received', 'held') " \
	"   AND l.product_id IS NOT NULL " \
	filter \
	" GROUP BY 1, 2) g"

/*
 * Kits: the phantom BoM Odoo's _bom_find picks (order "sequence, product_id,
 * id": lowest sequence, then a variant's own BoM before its template's, then
 * id), kit units per run in the kit's unit, and per component the units per
 * run in the component's unit.
 */
#define KITS_SQL(filter) \
	"WITH k AS (" \
	"  SELECT DISTINCT ON (pp.id) pp.id AS kit_id, b.id AS bom_id, " \
	"         b.product_qty / bu.factor * ku.factor AS run_qty " \
	"    FROM public.product_product pp " \
	"    JOIN public.product_template pt ON pt.id = pp.product_tmpl_id " \
	"    JOIN public.uom_uom ku ON ku.id = pt.uom_id " \
	"    JOIN public.mrp_bom b ON b.active AND b.type = 'phantom' " \
	"         AND (b.product_id = pp.id OR (b.product_id IS NULL AND b.product_tmpl_id = pp.product_tmpl_id)) " \
	"    JOIN public.uom_uom bu ON bu.id = b.product_uom_id " \
	filter \
	"   ORDER BY pp.id, b.sequence, b.product_id NULLS LAST, b.id) " \
	"SELECT k.kit_id, pg_catalog.round(k.run_qty * 1000000)::int8, bl.product_id, " \
	"       pg_catalog.round(pg_catalog.sum(bl.product_qty / lu.factor * cu.factor) * 1000000)::int8 " \
	"  FROM k " \
	"  LEFT JOIN public.mrp_bom_line bl ON bl.bom_id = k.bom_id AND bl.product_qty > 0 " \
	"  LEFT JOIN public.product_product cp ON cp.id = bl.product_id " \
	"  LEFT JOIN public.product_template ct ON ct.id = cp.product_tmpl_id " \
	"  LEFT JOIN public.uom_uom lu ON lu.id = bl.product_uom_id " \
	"  LEFT JOIN public.uom_uom cu ON cu.id = ct.uom_id " \
	" GROUP BY 1, 2, 3"

typedef struct AtsQueryDef
{
	const char *sql;
	int			nargs;
	Oid			argtypes[5];
} AtsQueryDef;

/* [query][0] = all products, [query][1] = products in the last argument */
static const AtsQueryDef AtsQueries[NUM_ATS_QUERIES][2] = {
	[Q_SCOPE] = {
		{
			"SELECT w.id, l.id, l.usage = 'internal' "
			"  FROM public.stock_warehouse w "
			"  JOIN public.stock_location v ON v.id = w.view_location_id "
			"  JOIN public.stock_location l ON l.parent_path LIKE v.parent_path || '%' "
			" WHERE w.id = ANY($1)",
			1, {INT4ARRAYOID}
		},
		{NULL, 0, {0}}
	},
	[Q_ALL_WAREHOUSES] = {
		{
			"SELECT w.id FROM public.stock_warehouse w "
			" WHERE w.active AND ($1::int4 IS NULL OR w.company_id = $1) ORDER BY w.id",
			1, {INT4OID}
		},
		{NULL, 0, {0}}
	},
	/*
	 * On hand and reserved by product and class of the internal location
	 * ($1, $2).  (All products: used only beyond QUANTS_MAX_CLASSES classes,
	 * see QuantsByClassPlan.)
	 */
	[Q_QUANTS] = {
		{
			"SELECT g.product_id, g.cls, " EXACT_OR_NUMERIC("g.x") ", " EXACT_OR_NUMERIC("g.y")
			"  FROM (SELECT q.product_id, s.cls, "
			"               pg_catalog.sum(COALESCE(q.quantity, 0)) * 1000000 AS x, "
			"               pg_catalog.sum(q.reserved_quantity) * 1000000 AS y "
			"          FROM public.stock_quant q "
			"          JOIN ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[])) AS s(loc, cls) ON s.loc = q.location_id "
			"         GROUP BY 1, 2) g",
			2, {INT4ARRAYOID, INT4ARRAYOID}
		},
		{
			"SELECT g.product_id, g.cls, " EXACT_OR_NUMERIC("g.x") ", " EXACT_OR_NUMERIC("g.y")
			"  FROM (SELECT q.product_id, s.cls, "
			"               pg_catalog.sum(COALESCE(q.quantity, 0)) * 1000000 AS x, "
			"               pg_catalog.sum(q.reserved_quantity) * 1000000 AS y "
			"          FROM public.stock_quant q "
			"          JOIN ROWS FROM (pg_catalog.unnest($1::int4[]), pg_catalog.unnest($2::int4[])) AS s(loc, cls) ON s.loc = q.location_id "
			"         WHERE q.product_id = ANY($3) "
			"         GROUP BY 1, 2) g",
			3, {INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID}
		}
	},
	[Q_MOVES] = {
		{MOVES_SQL(""), 4, {INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID}},
		{MOVES_SQL("           AND m.product_id = ANY($5) "), 5,
		{INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID}}
	},
	[Q_SALES] = {
		{SALES_SQL("   AND sol.product_id IS NOT NULL "), 3, {INT4ARRAYOID, INT4ARRAYOID, BOOLOID}},
		{SALES_SQL("   AND sol.product_id = ANY($4) "), 4,
		{INT4ARRAYOID, INT4ARRAYOID, BOOLOID, INT4ARRAYOID}}
	},
	[Q_INBOX] = {
		{INBOX_SQL(""), 2, {INT4ARRAYOID, INT4ARRAYOID}},
		{INBOX_SQL("   AND l.product_id = ANY($3) "), 3, {INT4ARRAYOID, INT4ARRAYOID, INT4ARRAYOID}}
	},
	[Q_SAFETY] = {
		{
			"SELECT product_id, pg_catalog.round(safety_stock * 1000000)::int8 "
			"  FROM omnichan.product_policy WHERE safety_stock > 0",
			0, {0}
		},
		{
			"SELECT product_id, pg_catalog.round(safety_stock * 1000000)::int8 "
			"  FROM omnichan.product_policy WHERE safety_stock > 0 AND product_id = ANY($1)",
			1, {INT4ARRAYOID}
		}
	},
	[Q_KITS] = {
		{KITS_SQL(""), 0, {0}},
		{KITS_SQL("   WHERE pp.id = ANY($1) "), 1, {INT4ARRAYOID}}
	},
	/*
	 * The products with an active phantom BoM that has one of the products
	 * as a component: kits whose demand may become demand on them.
	 */
	[Q_KIT_PARENTS] = {
		{NULL, 0, {0}},
		{
			"SELECT b.product_id "
			"  FROM public.mrp_bom_line bl "
			"  JOIN public.mrp_bom b ON b.id = bl.bom_id "
			" WHERE bl.product_id = ANY($1) AND bl.product_qty > 0 "
			"   AND b.active AND b.type = 'phantom' AND b.product_id IS NOT NULL "
			"UNION "
			"SELECT pp.id "
			"  FROM public.mrp_bom_line bl "
			"  JOIN public.mrp_bom b ON b.id = bl.bom_id "
			"  JOIN public.product_product pp ON pp.product_tmpl_id = b.product_tmpl_id "
			" WHERE bl.product_id = ANY($1) AND bl.product_qty > 0 "
			"   AND b.active AND b.type = 'phantom' AND b.product_id IS NULL",
			1, {INT4ARRAYOID}
		}
	},
	[Q_PRODUCTS] = {
		{
			"SELECT pp.id, COALESCE(pp.active, false) AND COALESCE(pt.active, false), pt.type = 'product' "
			"  FROM public.product_product pp "
			"  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id "
			" WHERE pt.type = 'product' OR pp.id = ANY($1)",
			1, {INT4ARRAYOID}
		},
		{
			"SELECT pp.id, COALESCE(pp.active, false) AND COALESCE(pt.active, false), pt.type = 'product' "
			"  FROM public.product_product pp "
			"  JOIN public.product_template pt ON pt.id = pp.product_tmpl_id "
			" WHERE pp.id = ANY($1) "
			" ORDER BY pp.id",
			1, {INT4ARRAYOID}
		}
	},
};

/* prepared plans, kept for the life of the backend */
static SPIPlanPtr AtsPlans[NUM_ATS_QUERIES][2];

/*
 * Bulk on hand and reserved, for k <= QUANTS_MAX_CLASSES location classes:
 * one row per product with the sums of each class side by side (FILTER by
 * the class's locations, $2 .. $k+1), over the quants of every internal
 * location ($1).  Grouping by product alone lets the sums stream over the
 * stock_quant(product_id) index instead of sorting or hashing (product,
 * class) groups.  Plans by k, kept for the life of the backend.
 */
#define QUANTS_MAX_CLASSES 8
static SPIPlanPtr QuantsPlans[QUANTS_MAX_CLASSES + 1];

static SPIPlanPtr
QuantsByClassPlan(int k)
{
	StringInfoData sql;
	Oid			argtypes[QUANTS_MAX_CLASSES + 1];
	SPIPlanPtr	plan;
	int			c;

	if (QuantsPlans[k] != NULL)
		return QuantsPlans[k];
	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT g.product_id");
	for (c = 0; c < k; c++)
		appendStringInfo(&sql, ", " EXACT_OR_NUMERIC("g.x%d") ", " EXACT_OR_NUMERIC("g.y%d"),
						 c, c, c, c, c, c, c, c);
	appendStringInfoString(&sql, " FROM (SELECT q.product_id");
	for (c = 0; c < k; c++)
	{
		char		filter[64] = "";

		if (k > 1)
			snprintf(filter, sizeof(filter), " FILTER (WHERE q.location_id = ANY($%d))", c + 2);
		appendStringInfo(&sql, ", pg_catalog.sum(COALESCE(q.quantity, 0))%s * 1000000 AS x%d"
						 ", pg_catalog.sum(q.reserved_quantity)%s * 1000000 AS y%d",
						 filter, c, filter, c);
	}
	appendStringInfoString(&sql, " FROM public.stock_quant q WHERE q.location_id = ANY($1)"
						   " GROUP BY 1 ORDER BY 1) g");
	for (c = 0; c <= k; c++)
		argtypes[c] = INT4ARRAYOID;
	plan = SPI_prepare_cursor(sql.data, k + 1, argtypes, CURSOR_OPT_CUSTOM_PLAN);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed for the quants query: %s",
			 SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "SPI_keepplan failed");
	pfree(sql.data);
	QuantsPlans[k] = plan;
	return plan;
}

/* maximum nesting of kits in kits; deeper (or cyclic) BoMs are an error */
#define MAX_KIT_DEPTH 16

static void RunQuery(AtsQuery q, bool by_id, Datum *values);
static ArrayType *Int4Array(int32 *values, int n);
static int32 GetInt4(int row, int col, bool *isnull);
static int64 GetInt8(int row, int col);
static bool GetBool(int row, int col);
static bool MrpInstalled(void);
static void LoadKits(AtsResult *res, int32 *ids, int nids, bool all);
static void LoadKitParents(AtsResult *res, int32 *ids, int nids);
static int32 *KitProductIds(AtsResult *res, int32 *product_ids, int nproduct_ids,
							int *n);
static void ExplodeKitDemand(AtsResult *res, int32 product_id, int pool,
							 Qty demand, int depth);
static void ComputeEntry(AtsResult *res, AtsEntry *e, int depth);
static AtsEntry *EntryFor(AtsResult *res, int32 product_id, int pool);
static int	CompareInt32(const void *a, const void *b);
static Qty	MulDivFloor(Qty a, Qty b, Qty c);

/*
 * RunQuery
 *		Executes one of the engine's queries (preparing it on first use) with
 *		the given parameter values, leaving the rows in SPI_tuptable.
 */
static void
RunQuery(AtsQuery q, bool by_id, Datum *values)
{
	const AtsQueryDef *def = &AtsQueries[q][by_id ? 1 : 0];
	int			ret;

	if (AtsPlans[q][by_id ? 1 : 0] == NULL)
	{
		/*
		 * By-id queries read a few rows through the product indexes whatever
		 * the arrays hold: one generic plan, never re-planned (a custom plan
		 * per call costs more than running it).  Bulk queries are planned for
		 * the actual location and pool arrays at each call (planning is
		 * negligible next to reading every quant).  The scope query is tiny.
		 */
		SPIPlanPtr	plan = SPI_prepare_cursor(def->sql, def->nargs, (Oid *) def->argtypes,
											  (by_id || q == Q_SCOPE) ? CURSOR_OPT_GENERIC_PLAN : CURSOR_OPT_CUSTOM_PLAN);

		if (plan == NULL)
			elog(ERROR, "SPI_prepare failed for available-to-sell query %d: %s",
				 (int) q, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(plan) != 0)
			elog(ERROR, "SPI_keepplan failed");
		AtsPlans[q][by_id ? 1 : 0] = plan;
	}
	ret = SPI_execute_plan(AtsPlans[q][by_id ? 1 : 0], values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "available-to-sell query %d failed: %s",
			 (int) q, SPI_result_code_string(ret));
}

/* Int4Array: a one-dimensional int4[] of n values */
static ArrayType *
Int4Array(int32 *values, int n)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(n, 1));
	int			i;

	for (i = 0; i < n; i++)
		d[i] = Int32GetDatum(values[i]);
	return construct_array(d, n, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

/* column accessors for SPI_tuptable (1-based columns) */
static int32
GetInt4(int row, int col, bool *isnull)
{
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, isnull);

	return *isnull ? 0 : DatumGetInt32(d);
}

static int64
GetInt8(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

static bool
GetBool(int row, int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? false : DatumGetBool(d);
}

/* qsort comparator for int32 */
static int
CompareInt32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * MulDivFloor
 *		floor(a * b / c) without overflow, c > 0.
 */
static Qty
MulDivFloor(Qty a, Qty b, Qty c)
{
	__int128	n = (__int128) a * b;
	__int128	q = n / c;

	if ((n % c) != 0 && ((n < 0) != (c < 0)))
		q--;
	if (q > PG_INT64_MAX)
		return PG_INT64_MAX;
	if (q < PG_INT64_MIN)
		return PG_INT64_MIN;
	return (Qty) q;
}

/*
 * QtyFloorUnits
 *		Whole units in a quantity, rounded down (never fractional for a
 *		channel).
 */
int64
QtyFloorUnits(Qty q)
{
	if (q >= 0)
		return q / QTY_SCALE;
	return -((-q + QTY_SCALE - 1) / QTY_SCALE);
}

/*
 * QtyGetNumeric
 *		A Qty as a numeric datum, without trailing zeros (12.5, 3, -0.25).
 */
Datum
QtyGetNumeric(Qty q)
{
	static Datum zero = (Datum) 0;
	int			scale = 6;

	/*
	 * q / 10^6 built directly (no text round trip): drop the trailing zero
	 * digits first, so that the display scale is the number of significant
	 * decimals, as numeric_in would give for "12.5".
	 */
	if (q == 0)
	{
		/* the most common value: one copy per backend (tuples copy it) */
		if (zero == (Datum) 0)
		{
			MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

			zero = NumericGetDatum(int64_to_numeric(0));
			MemoryContextSwitchTo(old);
		}
		return zero;
	}
	while (scale > 0 && q % 10 == 0)
	{
		q /= 10;
		scale--;
	}
	return NumericGetDatum(int64_div_fast_to_numeric(q, scale));
}

/*
 * EntryFor
 *		The (product, pool) entry, created with zero terms when missing.
 */
static AtsEntry *
EntryFor(AtsResult *res, int32 product_id, int pool)
{
	AtsKey		key;
	AtsEntry   *e;
	bool		found;

	if (product_id >= 0 && product_id < res->dense_n)
		return &res->dense[(int64) product_id * res->npools + pool];
	key.product_id = product_id;
	key.pool = pool;
	e = hash_search(res->entries, &key, HASH_ENTER, &found);
	if (!found)
	{
		e->on_hand = e->reserved = e->pending = e->safety = e->ats = 0;
		e->demand[0] = e->demand[1] = e->demand[2] = 0;
		e->is_kit = false;
		e->done = false;
		e->visiting = false;
	}
	return e;
}

/*
 * AtsLookup
 *		The computed entry of a product in a pool.
 */
AtsEntry *
AtsLookup(AtsResult *res, int32 product_id, int pool)
{
	AtsEntry   *e = EntryFor(res, product_id, pool);

	if (!e->done)
		ComputeEntry(res, e, 0);
	return e;
}

/*
 * LoadKits
 *		Loads the kit BoMs of the given products (all = every kit), and then,
 *		level by level, of their components, into res->kits.
 */
static void
LoadKits(AtsResult *res, int32 *ids, int nids, bool all)
{
	int32	   *pending_ids = ids;
	int			npending = nids;
	int			depth = 0;

	if (!MrpInstalled())
		return;					/* mrp is not installed: no kits */

	while (all || npending > 0)
	{
		Datum		values[1];
		int32	   *next;
		int			nnext = 0;
		uint64		row;
		int			i,
					j = 0;

		/*
		 * Only the products whose kit is not loaded yet: a kit reached twice
		 * (listed and a component of a listed kit, or a component of two
		 * kits) must not get its lines twice, or its demand would be
		 * exploded twice.
		 */
		if (!all)
		{
			int32	   *todo = palloc(sizeof(int32) * Max(npending, 1));

			for (i = 0; i < npending; i++)
				if (hash_search(res->kits, &pending_ids[i], HASH_FIND, NULL) == NULL)
					todo[j++] = pending_ids[i];
			pending_ids = todo;
			npending = j;
			if (npending == 0)
				break;
		}

		if (++depth > MAX_KIT_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_RECURSION),
					 errmsg("kit bills of materials are nested more than %d levels deep", MAX_KIT_DEPTH),
					 errhint("Check mrp_bom for a kit that contains itself.")));

		if (!all)
			values[0] = PointerGetDatum(Int4Array(pending_ids, npending));
		RunQuery(Q_KITS, !all, values);

		next = palloc(sizeof(int32) * Max(SPI_processed, 1));
		for (row = 0; row < SPI_processed; row++)
		{
			bool		isnull;
			int32		kit_id = GetInt4(row, 1, &isnull);
			int32		comp_id;
			AtsKit	   *kit;
			bool		found;

			kit = hash_search(res->kits, &kit_id, HASH_ENTER, &found);
			if (!found)
			{
				kit->run_qty = GetInt8(row, 2);
				kit->nlines = 0;
				kit->lines = palloc(sizeof(AtsKitLine) * 4);
			}
			comp_id = GetInt4(row, 3, &isnull);
			if (isnull)
				continue;		/* a BoM without usable lines */
			if ((kit->nlines & 3) == 0 && kit->nlines > 0)
				kit->lines = repalloc(kit->lines, sizeof(AtsKitLine) * (kit->nlines + 4));
			kit->lines[kit->nlines].component_id = comp_id;
			kit->lines[kit->nlines].qty_per_run = GetInt8(row, 4);
			kit->nlines++;

			/*
			 * A component may itself be a kit: look it up at the next level.
			 * (With "all", every kit is loaded at once.)
			 */
			if (!all && hash_search(res->kits, &comp_id, HASH_FIND, NULL) == NULL)
				next[nnext++] = comp_id;
		}

		if (all)
			break;
		pending_ids = next;
		npending = nnext;
	}
}

/* MrpInstalled: are Odoo's bills of materials (mrp) installed? */
static bool
MrpInstalled(void)
{
	Oid			nsp = get_namespace_oid("public", true);

	return OidIsValid(nsp) && OidIsValid(get_relname_relid("mrp_bom", nsp)) &&
		OidIsValid(get_relname_relid("mrp_bom_line", nsp));
}

/*
 * LoadKitParents
 *		Loads, recursively, the kits having one of the given products as a
 *		component (and their own components): demand on such a kit is demand
 *		on the products, so it must be counted even when only a component is
 *		asked for.
 */
static void
LoadKitParents(AtsResult *res, int32 *ids, int nids)
{
	int32	   *frontier = ids;
	int			nfrontier = nids;
	int			depth = 0;

	if (!MrpInstalled())
		return;

	while (nfrontier > 0)
	{
		Datum		values[1];
		int32	   *parents;
		int			nparents = 0;
		uint64		row;

		if (++depth > MAX_KIT_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_RECURSION),
					 errmsg("kit bills of materials are nested more than %d levels deep", MAX_KIT_DEPTH),
					 errhint("Check mrp_bom for a kit that contains itself.")));

		values[0] = PointerGetDatum(Int4Array(frontier, nfrontier));
		RunQuery(Q_KIT_PARENTS, true, values);
		parents = palloc(sizeof(int32) * Max(SPI_processed, 1));
		for (row = 0; row < SPI_processed; row++)
		{
			bool		isnull;
			int32		id = GetInt4(row, 1, &isnull);

			if (!isnull && hash_search(res->kits, &id, HASH_FIND, NULL) == NULL)
				parents[nparents++] = id;
		}
		LoadKits(res, parents, nparents, false);
		frontier = parents;
		nfrontier = nparents;
	}
}

/*
 * KitProductIds
 *		The products to read for a by-id run: those asked for, every loaded
 *		kit and every component of those kits; sorted, without duplicates.
 */
static int32 *
KitProductIds(AtsResult *res, int32 *product_ids, int nproduct_ids, int *n)
{
	int			cap = nproduct_ids + 64;
	int32	   *ids = palloc(sizeof(int32) * cap);
	int			nids = 0;
	int			i,
				j;
	HASH_SEQ_STATUS seq;
	AtsKit	   *kit;

	memcpy(ids, product_ids, sizeof(int32) * nproduct_ids);
	nids = nproduct_ids;
	hash_seq_init(&seq, res->kits);
	while ((kit = hash_seq_search(&seq)) != NULL)
	{
		if (nids + kit->nlines + 1 > cap)
		{
			cap = 2 * (nids + kit->nlines + 1);
			ids = repalloc(ids, sizeof(int32) * cap);
		}
		ids[nids++] = kit->product_id;
		for (i = 0; i < kit->nlines; i++)
			ids[nids++] = kit->lines[i].component_id;
	}
	qsort(ids, nids, sizeof(int32), CompareInt32);
	for (i = 0, j = 0; i < nids; i++)
		if (j == 0 || ids[j - 1] != ids[i])
			ids[j++] = ids[i];
	*n = j;
	return ids;
}

/*
 * ExplodeKitDemand
 *		Adds demand for a kit to its components (recursively), rounding up.
 */
static void
ExplodeKitDemand(AtsResult *res, int32 product_id, int pool, Qty demand, int depth)
{
	AtsKit	   *kit = hash_search(res->kits, &product_id, HASH_FIND, NULL);
	int			i;

	if (kit == NULL)
	{
		EntryFor(res, product_id, pool)->pending += demand;
		return;
	}
	if (depth > MAX_KIT_DEPTH)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_RECURSION),
				 errmsg("kit bills of materials are nested more than %d levels deep", MAX_KIT_DEPTH),
				 errhint("Check mrp_bom for a kit that contains itself.")));
	for (i = 0; i < kit->nlines; i++)
	{
		/* component demand = ceil(demand * per_run / run_qty) */
		Qty			d = -MulDivFloor(-demand, kit->lines[i].qty_per_run, kit->run_qty);

		ExplodeKitDemand(res, kit->lines[i].component_id, pool, d, depth + 1);
	}
}

/*
 * ComputeEntry
 *		Computes the ATS of one (product, pool) entry; kits from their
 *		components, recursively.
 */
static void
ComputeEntry(AtsResult *res, AtsEntry *e, int depth)
{
	AtsKit	   *kit;

	if (e->done)
		return;
	kit = hash_get_num_entries(res->kits) == 0 ? NULL :
		hash_search(res->kits, &e->key.product_id, HASH_FIND, NULL);
	if (kit == NULL)
	{
		bool		known,
					storable;

		if (e->key.product_id >= 0 && e->key.product_id < res->dense_n)
		{
			known = (res->dense_info[e->key.product_id] & ATS_INFO_KNOWN) != 0;
			storable = (res->dense_info[e->key.product_id] & ATS_INFO_STORABLE) != 0;
		}
		else
		{
			AtsProduct *info = hash_search(res->product_info, &e->key.product_id, HASH_FIND, NULL);

			known = (info != NULL);
			storable = known && info->storable;
		}

		/* only storable products keep stock; others have none to sell */
		if (known && !storable)
			e->on_hand = e->reserved = e->pending = 0;
		e->ats = Max(0, e->on_hand - e->reserved - e->safety - e->pending);
	}
	else
	{
		Qty			on_hand = PG_INT64_MAX,
					free = PG_INT64_MAX,
					avail = PG_INT64_MAX;
		int			used = 0;
		int			i;

		if (e->visiting || depth > MAX_KIT_DEPTH)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_RECURSION),
					 errmsg("kit bill of materials of product %d contains itself", e->key.product_id),
					 errhint("Fix the phantom bills of materials in mrp_bom.")));
		e->visiting = true;
		for (i = 0; i < kit->nlines; i++)
		{
			AtsKitLine *line = &kit->lines[i];
			AtsProduct *ci = hash_search(res->product_info, &line->component_id, HASH_FIND, NULL);
			bool		comp_is_kit = hash_search(res->kits, &line->component_id, HASH_FIND, NULL) != NULL;
			AtsEntry   *c;

			/* Odoo skips components that are neither storable nor kits */
			if (!comp_is_kit && (ci == NULL || !ci->storable))
				continue;
			if (line->qty_per_run <= 0)
				continue;
			c = EntryFor(res, line->component_id, e->key.pool);
			ComputeEntry(res, c, depth + 1);
			/* kit units = floor(component qty * run_qty / qty_per_run) */
			on_hand = Min(on_hand, QTY_SCALE * QtyFloorUnits(MulDivFloor(c->on_hand, kit->run_qty, line->qty_per_run)));
			free = Min(free, QTY_SCALE * QtyFloorUnits(MulDivFloor(c->on_hand - c->reserved, kit->run_qty, line->qty_per_run)));
			avail = Min(avail, QTY_SCALE * QtyFloorUnits(MulDivFloor(c->ats, kit->run_qty, line->qty_per_run)));
			used++;
		}
		e->visiting = false;
		e->is_kit = true;
		if (used == 0)
			on_hand = free = avail = 0;
		/* express the kit in the same terms: on_hand - reserved - pending */
		e->on_hand = on_hand;
		e->reserved = on_hand - free;
		e->pending = free - avail;
		e->ats = Max(0, avail - e->safety);
	}
	e->done = true;
}

/* qsort comparator for (key, pool) pairs: by key, then pool */
static int
CompareKeyPool(const void *a, const void *b)
{
	const int32 *x = (const int32 *) a;
	const int32 *y = (const int32 *) b;

	if (x[0] != y[0])
		return (x[0] > y[0]) - (x[0] < y[0]);
	return (x[1] > y[1]) - (x[1] < y[1]);
}

/*
 * Location classes: a class is a set of pools (sorted pool indexes); each
 * location or warehouse is in the class of the pools it belongs to.
 */
typedef struct AtsClasses
{
	int			nclasses;
	int			cap;
	int		   *npools;			/* per class */
	int		  **pools;			/* per class, sorted */
} AtsClasses;

/* ClassOf: the id of the class made of these pools, added when new */
static int
ClassOf(AtsClasses *cl, int32 *pools, int n)
{
	int			c,
				i;

	for (c = 0; c < cl->nclasses; c++)
	{
		if (cl->npools[c] != n)
			continue;
		for (i = 0; i < n && cl->pools[c][i] == pools[i]; i++)
			;
		if (i == n)
			return c;
	}
	if (cl->nclasses == cl->cap)
	{
		cl->cap = Max(8, 2 * cl->cap);
		cl->npools = cl->npools ? repalloc(cl->npools, sizeof(int) * cl->cap) : palloc(sizeof(int) * cl->cap);
		cl->pools = cl->pools ? repalloc(cl->pools, sizeof(int *) * cl->cap) : palloc(sizeof(int *) * cl->cap);
	}
	cl->npools[c] = n;
	cl->pools[c] = palloc(sizeof(int) * Max(n, 1));
	for (i = 0; i < n; i++)
		cl->pools[c][i] = pools[i];
	return cl->nclasses++;
}

/*
 * Classify
 *		Given n (key, pool) pairs in pairs[2 * i], pairs[2 * i + 1], sorts
 *		them, removes duplicates (a location under two warehouses of a pool
 *		counts once) and writes each distinct key and its class into keys[]
 *		and cls[]; returns the number of distinct keys.
 */
static int
Classify(AtsClasses *cl, int32 *pairs, int n, int32 *keys, int32 *cls)
{
	int32	   *pools = palloc(sizeof(int32) * Max(n, 1));
	int			nkeys = 0;
	int			i = 0;

	qsort(pairs, n, sizeof(int32) * 2, CompareKeyPool);
	while (i < n)
	{
		int32		key = pairs[2 * i];
		int			np = 0;

		for (; i < n && pairs[2 * i] == key; i++)
			if (np == 0 || pools[np - 1] != pairs[2 * i + 1])
				pools[np++] = pairs[2 * i + 1];
		keys[nkeys] = key;
		cls[nkeys++] = ClassOf(cl, pools, np);
	}
	pfree(pools);
	return nkeys;
}

/* the terms a query row can add to */
typedef enum AtsTerm
{
	T_ON_HAND,
	T_RESERVED,
	T_MOVES,
	T_SALES,
	T_INBOX
} AtsTerm;

/* a (product, pool, term) whose class sums are not whole millionths */
typedef struct AtsInexactKey
{
	int32		product_id;
	int32		pool;
	int32		term;
} AtsInexactKey;

typedef struct AtsInexact
{
	AtsInexactKey key;			/* hash key: must be first */
	Datum		sum;			/* numeric: sum of those class sums (x 10^6) */
} AtsInexact;

/* loading state of AtsCompute */
typedef struct AtsLoad
{
	AtsResult  *res;
	AtsClasses	classes;
	HTAB	   *inexact;		/* AtsInexactKey -> AtsInexact, or NULL */
} AtsLoad;

static Qty *
TermField(AtsEntry *e, AtsTerm term)
{
	switch (term)
	{
		case T_ON_HAND:
			return &e->on_hand;
		case T_RESERVED:
			return &e->reserved;
		default:
			return &e->demand[term - T_MOVES];
	}
}

/*
 * AddTerm
 *		Adds one class sum of a term of a product (SPI row columns col:
 *		round(x)::int8, and x when it is not a whole number of millionths)
 *		to each pool of class src that is not in class dst (-1: none).
 */
static void
AddTerm(AtsLoad *ld, int32 product_id, int src, int dst, AtsTerm term, int row, int col)
{
	AtsClasses *cl = &ld->classes;
	bool		isnull;
	Datum		x = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col + 1, &isnull);
	Qty			r = isnull ? GetInt8(row, col) : 0;
	int			i,
				j = 0;

	for (i = 0; i < cl->npools[src]; i++)
	{
		int			pool = cl->pools[src][i];

		if (dst >= 0)
		{
			/* both sorted: is pool in dst? */
			while (j < cl->npools[dst] && cl->pools[dst][j] < pool)
				j++;
			if (j < cl->npools[dst] && cl->pools[dst][j] == pool)
				continue;
		}
		if (isnull)
			*TermField(EntryFor(ld->res, product_id, pool), term) += r;
		else
		{
			AtsInexactKey key;
			AtsInexact *ix;
			bool		found;

			if (ld->inexact == NULL)
			{
				HASHCTL		ctl;

				memset(&ctl, 0, sizeof(ctl));
				ctl.keysize = sizeof(AtsInexactKey);
				ctl.entrysize = sizeof(AtsInexact);
				ctl.hcxt = CurrentMemoryContext;
				ld->inexact = hash_create("omnichan ats inexact sums", 256, &ctl,
										  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
			}
			EntryFor(ld->res, product_id, pool);
			memset(&key, 0, sizeof(key));
			key.product_id = product_id;
			key.pool = pool;
			key.term = term;
			ix = hash_search(ld->inexact, &key, HASH_ENTER, &found);
			if (!found)
				ix->sum = DirectFunctionCall1(numeric_uplus, x);	/* a copy */
			else
				ix->sum = DirectFunctionCall2(numeric_add, ix->sum, x);
		}
	}
}

/*
 * FinishTerms
 *		Rounds the inexact sums into their terms (exactly: the whole
 *		millionths already added plus the numeric sums, rounded once), then
 *		turns each product's demand terms into pending, exploding the demand
 *		on kits into demand on their components.
 */
static void
FinishTerms(AtsLoad *ld)
{
	AtsResult  *res = ld->res;
	HASH_SEQ_STATUS seq;
	AtsEntry   *e;
	AtsEntry  **kits;
	int			nkits = 0,
				cap = 64,
				i,
				t;
	int64		d,
				ndense = (int64) res->dense_n * res->npools;

	if (ld->inexact != NULL)
	{
		AtsInexact *ix;

		hash_seq_init(&seq, ld->inexact);
		while ((ix = hash_seq_search(&seq)) != NULL)
		{
			Qty		   *f = TermField(EntryFor(res, ix->key.product_id, ix->key.pool), ix->key.term);
			Datum		sum = DirectFunctionCall2(numeric_add,
												  NumericGetDatum(int64_to_numeric(*f)), ix->sum);

			sum = DirectFunctionCall2(numeric_round, sum, Int32GetDatum(0));
			*f = DatumGetInt64(DirectFunctionCall1(numeric_int8, sum));
		}
	}

	/* kits' demand is exploded after the scan: it creates entries */
	kits = palloc(sizeof(AtsEntry *) * cap);
	hash_seq_init(&seq, res->entries);
	for (d = 0;; d++)
	{
		if (d < ndense)
			e = &res->dense[d];
		else if ((e = hash_seq_search(&seq)) == NULL)
			break;
		if (e->demand[0] == 0 && e->demand[1] == 0 && e->demand[2] == 0)
			continue;
		if (hash_search(res->kits, &e->key.product_id, HASH_FIND, NULL) == NULL)
		{
			e->pending += e->demand[0] + e->demand[1] + e->demand[2];
			continue;
		}
		if (nkits == cap)
		{
			cap *= 2;
			kits = repalloc(kits, sizeof(AtsEntry *) * cap);
		}
		kits[nkits++] = e;
	}
	for (i = 0; i < nkits; i++)
	{
		/* entries do not move when the table grows (dynahash) */
		for (t = 0; t < 3; t++)
			if (kits[i]->demand[t] != 0)
				ExplodeKitDemand(res, kits[i]->key.product_id, kits[i]->key.pool,
								 kits[i]->demand[t], 0);
	}
	pfree(kits);
}

/*
 * AtsCompute
 *		Runs the engine.  Must be called inside SPI_connect()/SPI_finish();
 *		the result lives in the memory context current at the call.
 */
AtsResult *
AtsCompute(int32 *product_ids, int nproduct_ids, int npools, int32 **pools, int *pool_sizes)
{
	MemoryContext cxt = CurrentMemoryContext;
	AtsResult  *res = palloc0(sizeof(AtsResult));
	AtsLoad		ld;
	HASHCTL		ctl;
	bool		all = (product_ids == NULL);
	int32	   *wh_pairs,
			   *wh_ids,
			   *wh_cls,
			   *in_pairs,
			   *sc_pairs,
			   *in_loc,
			   *in_cls,
			   *sc_loc,
			   *sc_cls;
	int			npairs = 0,
				nwh,
				nin = 0,
				nsc = 0,
				cap_in = 64,
				cap_sc = 64;
	int32	   *all_wh;
	bool	   *wh_seen;
	int32	   *ids = NULL;
	int			nids = 0;
	ArrayType  *ids_array = NULL;
	Datum		values[5];
	uint64		row;
	int			p,
				i;
	HASH_SEQ_STATUS seq;
	AtsKit	   *kit;

	res->npools = npools;
	memset(&ld, 0, sizeof(ld));
	ld.res = res;

	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(AtsKey);
	ctl.entrysize = sizeof(AtsEntry);
	ctl.hcxt = cxt;
	res->entries = hash_create("omnichan ats entries", all ? 1024 : 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(int32);
	ctl.entrysize = sizeof(AtsKit);
	res->kits = hash_create("omnichan ats kits", 256, &ctl,
							HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.entrysize = sizeof(AtsProduct);
	res->product_info = hash_create("omnichan ats products", all ? 131072 : 64, &ctl,
									HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);

	/* warehouse -> pools, and the classes of the warehouses */
	for (p = 0; p < npools; p++)
		npairs += pool_sizes[p];
	wh_pairs = palloc(sizeof(int32) * 2 * Max(npairs, 1));
	all_wh = palloc(sizeof(int32) * Max(npairs, 1));
	npairs = 0;
	for (p = 0; p < npools; p++)
		for (i = 0; i < pool_sizes[p]; i++)
		{
			wh_pairs[2 * npairs] = pools[p][i];
			wh_pairs[2 * npairs + 1] = p;
			all_wh[npairs++] = pools[p][i];
		}
	/* sorted by warehouse, then pool: kept to find a warehouse's pools */
	qsort(wh_pairs, npairs, sizeof(int32) * 2, CompareKeyPool);
	{
		int32	   *copy = palloc(sizeof(int32) * 2 * Max(npairs, 1));

		memcpy(copy, wh_pairs, sizeof(int32) * 2 * npairs);
		wh_ids = palloc(sizeof(int32) * Max(npairs, 1));
		wh_cls = palloc(sizeof(int32) * Max(npairs, 1));
		nwh = Classify(&ld.classes, copy, npairs, wh_ids, wh_cls);
	}
	wh_seen = palloc0(sizeof(bool) * Max(nwh, 1));

	/* locations of those warehouses -> pools -> classes */
	in_pairs = palloc(sizeof(int32) * 2 * cap_in);
	sc_pairs = palloc(sizeof(int32) * 2 * cap_sc);
	values[0] = PointerGetDatum(Int4Array(all_wh, npairs));
	RunQuery(Q_SCOPE, false, values);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int32		wh = GetInt4(row, 1, &isnull);
		int32		loc = GetInt4(row, 2, &isnull);
		bool		internal = GetBool(row, 3);
		int			lo = 0,
					hi = nwh,
					j;

		/* the warehouse's pools: binary search in the sorted pairs */
		while (lo < hi)
		{
			int			mid = (lo + hi) / 2;

			if (wh_ids[mid] < wh)
				lo = mid + 1;
			else
				hi = mid;
		}
		if (lo >= nwh || wh_ids[lo] != wh)
			continue;
		wh_seen[lo] = true;
		for (j = 0; j < npairs; j++)
		{
			if (wh_pairs[2 * j] != wh)
				continue;
			if (nsc + 1 > cap_sc)
			{
				cap_sc *= 2;
				sc_pairs = repalloc(sc_pairs, sizeof(int32) * 2 * cap_sc);
			}
			sc_pairs[2 * nsc] = loc;
			sc_pairs[2 * nsc++ + 1] = wh_pairs[2 * j + 1];
			if (internal)
			{
				if (nin + 1 > cap_in)
				{
					cap_in *= 2;
					in_pairs = repalloc(in_pairs, sizeof(int32) * 2 * cap_in);
				}
				in_pairs[2 * nin] = loc;
				in_pairs[2 * nin++ + 1] = wh_pairs[2 * j + 1];
			}
		}
	}

	for (i = 0; i < nwh; i++)
		if (!wh_seen[i])
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("warehouse %d does not exist", wh_ids[i]),
					 errhint("Warehouses are the rows of stock_warehouse.")));
	in_loc = palloc(sizeof(int32) * Max(nin, 1));
	in_cls = palloc(sizeof(int32) * Max(nin, 1));
	nin = Classify(&ld.classes, in_pairs, nin, in_loc, in_cls);
	sc_loc = palloc(sizeof(int32) * Max(nsc, 1));
	sc_cls = palloc(sizeof(int32) * Max(nsc, 1));
	nsc = Classify(&ld.classes, sc_pairs, nsc, sc_loc, sc_cls);

	/* kits first: their components join the products to compute */
	if (all)
		LoadKits(res, NULL, 0, true);
	else
	{
		/* the kits asked for and, level by level, the kits in them */
		LoadKits(res, product_ids, nproduct_ids, false);
		ids = KitProductIds(res, product_ids, nproduct_ids, &nids);
		/* the kits containing any of those, whose demand reaches them */
		LoadKitParents(res, ids, nids);
		ids = KitProductIds(res, product_ids, nproduct_ids, &nids);
		ids_array = Int4Array(ids, nids);
	}

	/* product facts; with "all", the product list is storable products + kits */
	{
		int32	   *kit_ids = palloc(sizeof(int32) * Max(hash_get_num_entries(res->kits), 1));
		int			nkits = 0;

		hash_seq_init(&seq, res->kits);
		while ((kit = hash_seq_search(&seq)) != NULL)
			kit_ids[nkits++] = kit->product_id;
		values[0] = all ? PointerGetDatum(Int4Array(kit_ids, nkits)) : PointerGetDatum(ids_array);
		RunQuery(Q_PRODUCTS, !all, values);
	}
	if (all)
		res->products = palloc(sizeof(int32) * Max(SPI_processed, 1));
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int32		id = GetInt4(row, 1, &isnull);
		AtsProduct *info = hash_search(res->product_info, &id, HASH_ENTER, NULL);

		info->active = GetBool(row, 2);
		info->storable = GetBool(row, 3);
		if (all)
			res->products[res->nproducts++] = id;
	}
	if (all)
		qsort(res->products, res->nproducts, sizeof(int32), CompareInt32);

	/*
	 * Bulk: entries by position when the product ids are dense enough (Odoo
	 * ids are a sequence), every pool of a product side by side.
	 */
	if (all && res->nproducts > 0 && npools > 0 && res->products[0] >= 0 &&
		res->products[res->nproducts - 1] < 4 * (int64) res->nproducts + 65536)
	{
		int64		n;
		int64		d;

		res->dense_n = res->products[res->nproducts - 1] + 1;
		n = (int64) res->dense_n * npools;
		res->dense = MemoryContextAllocExtended(cxt, sizeof(AtsEntry) * n,
												MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		for (d = 0; d < n; d++)
		{
			res->dense[d].key.product_id = (int32) (d / npools);
			res->dense[d].key.pool = (int32) (d % npools);
		}
		res->dense_info = palloc0(res->dense_n);
		for (i = 0; i < res->nproducts; i++)
		{
			int32		id = res->products[i];
			AtsProduct *info = hash_search(res->product_info, &id, HASH_FIND, NULL);

			res->dense_info[id] = ATS_INFO_KNOWN | (info->storable ? ATS_INFO_STORABLE : 0);
		}
	}
	else
	{
		/* the products asked for, sorted and without duplicates */
		res->products = palloc(sizeof(int32) * Max(nproduct_ids, 1));
		memcpy(res->products, product_ids, sizeof(int32) * nproduct_ids);
		qsort(res->products, nproduct_ids, sizeof(int32), CompareInt32);
		for (i = 0; i < nproduct_ids; i++)
			if (res->nproducts == 0 || res->products[res->nproducts - 1] != res->products[i])
				res->products[res->nproducts++] = res->products[i];
	}

	/* on hand and reserved */
	{
		int32	   *kcls = palloc(sizeof(int32) * Max(nin, 1));
		int			k = 0,
					c;

		/* the classes of the internal locations, in first-seen order */
		for (i = 0; i < nin; i++)
		{
			for (c = 0; c < k && kcls[c] != in_cls[i]; c++)
				;
			if (c == k)
				kcls[k++] = in_cls[i];
		}
		if (all && k >= 1 && k <= QUANTS_MAX_CLASSES)
		{
			Datum		qvalues[QUANTS_MAX_CLASSES + 1];
			int32	   *locs = palloc(sizeof(int32) * Max(nin, 1));
			int			ret;

			qvalues[0] = PointerGetDatum(Int4Array(in_loc, nin));
			for (c = 0; c < k; c++)
			{
				int			n = 0;

				for (i = 0; i < nin; i++)
					if (in_cls[i] == kcls[c])
						locs[n++] = in_loc[i];
				qvalues[c + 1] = PointerGetDatum(Int4Array(locs, n));
			}
			ret = SPI_execute_plan(QuantsByClassPlan(k), qvalues, NULL, true, 0);
			if (ret != SPI_OK_SELECT)
				elog(ERROR, "quants query failed: %s", SPI_result_code_string(ret));
			for (row = 0; row < SPI_processed; row++)
			{
				bool		isnull;
				int32		id = GetInt4(row, 1, &isnull);

				for (c = 0; c < k; c++)
				{
					/* NULL: no quant of the product in the class */
					(void) SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc,
										 2 + 4 * c, &isnull);
					if (isnull)
						continue;
					AddTerm(&ld, id, kcls[c], -1, T_ON_HAND, row, 2 + 4 * c);
					AddTerm(&ld, id, kcls[c], -1, T_RESERVED, row, 4 + 4 * c);
				}
			}
		}
		else
		{
			values[0] = PointerGetDatum(Int4Array(in_loc, nin));
			values[1] = PointerGetDatum(Int4Array(in_cls, nin));
			values[2] = PointerGetDatum(ids_array);
			RunQuery(Q_QUANTS, !all, values);
			for (row = 0; row < SPI_processed; row++)
			{
				bool		isnull;
				int32		id = GetInt4(row, 1, &isnull);
				int			cls = GetInt4(row, 2, &isnull);

				AddTerm(&ld, id, cls, -1, T_ON_HAND, row, 3);
				AddTerm(&ld, id, cls, -1, T_RESERVED, row, 5);
			}
		}
	}

	/* open outgoing moves */
	values[0] = PointerGetDatum(Int4Array(in_loc, nin));
	values[1] = PointerGetDatum(Int4Array(in_cls, nin));
	values[2] = PointerGetDatum(Int4Array(sc_loc, nsc));
	values[3] = PointerGetDatum(Int4Array(sc_cls, nsc));
	values[4] = PointerGetDatum(ids_array);
	RunQuery(Q_MOVES, !all, values);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;

		AddTerm(&ld, GetInt4(row, 1, &isnull), GetInt4(row, 2, &isnull),
				GetInt4(row, 3, &isnull), T_MOVES, row, 4);
	}

	/* sale lines without moves, then inbox orders: by warehouse */
	values[0] = PointerGetDatum(Int4Array(wh_ids, nwh));
	values[1] = PointerGetDatum(Int4Array(wh_cls, nwh));
	values[2] = BoolGetDatum(omnichan_count_manual_quotations);
	values[3] = PointerGetDatum(ids_array);
	RunQuery(Q_SALES, !all, values);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;

		AddTerm(&ld, GetInt4(row, 1, &isnull), GetInt4(row, 2, &isnull), -1, T_SALES, row, 4);
	}
	values[2] = PointerGetDatum(ids_array);
	RunQuery(Q_INBOX, !all, values);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;

		AddTerm(&ld, GetInt4(row, 1, &isnull), GetInt4(row, 2, &isnull), -1, T_INBOX, row, 4);
	}

	/* the terms are complete: round the inexact ones, explode kit demand */
	FinishTerms(&ld);

	/* safety stock applies to every pool of the product */
	values[0] = PointerGetDatum(ids_array);
	RunQuery(Q_SAFETY, !all, values);
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		int32		id = GetInt4(row, 1, &isnull);
		Qty			safety = GetInt8(row, 2);

		for (p = 0; p < npools; p++)
			EntryFor(res, id, p)->safety = safety;
	}

	return res;
}

/*
 * AtsResolveWarehouses
 *		The warehouse ids of an int4[] argument, or, when it is NULL, every
 *		active warehouse (of the company, when company_id is not NULL).
 *		Must be called inside SPI.
 */
int32 *
AtsResolveWarehouses(ArrayType *arr, bool company_isnull, int32 company_id, int *n)
{
	int32	   *ids;

	if (arr != NULL)
	{
		Datum	   *elems;
		bool	   *nulls;
		int			i,
					j;

		deconstruct_array(arr, INT4OID, sizeof(int32), true, TYPALIGN_INT,
						  &elems, &nulls, n);
		ids = palloc(sizeof(int32) * Max(*n, 1));
		for (i = 0; i < *n; i++)
		{
			if (nulls[i])
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("warehouse ids must not contain NULL")));
			ids[i] = DatumGetInt32(elems[i]);
		}
		qsort(ids, *n, sizeof(int32), CompareInt32);
		/* a warehouse listed twice is one warehouse */
		for (i = 0, j = 0; i < *n; i++)
			if (j == 0 || ids[j - 1] != ids[i])
				ids[j++] = ids[i];
		*n = j;
	}
	else
	{
		Datum		values[1];
		uint64		row;

		values[0] = company_isnull ? (Datum) 0 : Int32GetDatum(company_id);
		if (AtsPlans[Q_ALL_WAREHOUSES][0] == NULL)
		{
			SPIPlanPtr	plan = SPI_prepare(AtsQueries[Q_ALL_WAREHOUSES][0].sql, 1,
										   (Oid *) AtsQueries[Q_ALL_WAREHOUSES][0].argtypes);

			if (plan == NULL || SPI_keepplan(plan) != 0)
				elog(ERROR, "could not prepare the warehouse query: %s",
					 SPI_result_code_string(SPI_result));
			AtsPlans[Q_ALL_WAREHOUSES][0] = plan;
		}
		if (SPI_execute_plan(AtsPlans[Q_ALL_WAREHOUSES][0], values,
							 company_isnull ? "n" : " ", true, 0) != SPI_OK_SELECT)
			elog(ERROR, "warehouse query failed");
		*n = SPI_processed;
		ids = palloc(sizeof(int32) * Max(*n, 1));
		for (row = 0; row < SPI_processed; row++)
		{
			bool		isnull;

			ids[row] = GetInt4(row, 1, &isnull);
		}
	}
	return ids;
}

/*
 * AtsProductIds
 *		The product ids of an int4[] argument (NULL array = all products:
 *		returns NULL).
 */
int32 *
AtsProductIds(ArrayType *arr, int *n)
{
	Datum	   *elems;
	bool	   *nulls;
	int32	   *ids;
	int			i,
				j = 0;

	*n = 0;
	if (arr == NULL)
		return NULL;
	deconstruct_array(arr, INT4OID, sizeof(int32), true, TYPALIGN_INT,
					  &elems, &nulls, n);
	ids = palloc(sizeof(int32) * Max(*n, 1));
	for (i = 0; i < *n; i++)
		if (!nulls[i])
			ids[j++] = DatumGetInt32(elems[i]);
	*n = j;
	return ids;
}

PG_FUNCTION_INFO_V1(omnichan_ats_bulk);

/*
 * omnichan_ats_bulk
 *		SQL: omnichan.ats_bulk(product_ids int[], warehouse_ids int[],
 *		per_warehouse bool, company_id int)
 *		RETURNS TABLE (product_id, warehouse_id, on_hand, reserved, safety,
 *		pending, ats)
 *
 * One row per product (every storable product and kit when product_ids is
 * NULL; products that do not exist are left out) and, with per_warehouse,
 * per warehouse; otherwise the warehouses form one pool and warehouse_id is
 * NULL.
 */
Datum
omnichan_ats_bulk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *product_arr = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	ArrayType  *wh_arr = PG_ARGISNULL(1) ? NULL : PG_GETARG_ARRAYTYPE_P(1);
	bool		per_warehouse = PG_ARGISNULL(2) ? false : PG_GETARG_BOOL(2);
	int32	   *products;
	int			nproducts;
	int32	   *whs;
	int			nwhs;
	int32	  **pools;
	int		   *pool_sizes;
	int			npools;
	AtsResult  *res;
	int			i,
				p;

	InitMaterializedSRF(fcinfo, 0);

	SPI_connect();
	products = AtsProductIds(product_arr, &nproducts);
	whs = AtsResolveWarehouses(wh_arr, PG_ARGISNULL(3), PG_ARGISNULL(3) ? 0 : PG_GETARG_INT32(3), &nwhs);

	if (per_warehouse)
	{
		npools = nwhs;
		pools = palloc(sizeof(int32 *) * Max(npools, 1));
		pool_sizes = palloc(sizeof(int) * Max(npools, 1));
		for (p = 0; p < npools; p++)
		{
			pools[p] = &whs[p];
			pool_sizes[p] = 1;
		}
	}
	else
	{
		npools = 1;
		pools = palloc(sizeof(int32 *));
		pool_sizes = palloc(sizeof(int));
		pools[0] = whs;
		pool_sizes[0] = nwhs;
	}

	res = AtsCompute(products, nproducts, npools, pools, pool_sizes);

	for (i = 0; i < res->nproducts; i++)
	{
		int32		id = res->products[i];

		if (hash_search(res->product_info, &id, HASH_FIND, NULL) == NULL)
			continue;			/* no such product */
		for (p = 0; p < npools; p++)
		{
			AtsEntry   *e = AtsLookup(res, id, p);
			Datum		values[7];
			bool		nulls[7] = {false};

			values[0] = Int32GetDatum(id);
			if (per_warehouse)
				values[1] = Int32GetDatum(pools[p][0]);
			else
				nulls[1] = true;
			values[2] = QtyGetNumeric(e->on_hand);
			values[3] = QtyGetNumeric(e->reserved);
			values[4] = QtyGetNumeric(e->safety);
			values[5] = QtyGetNumeric(e->pending);
			values[6] = QtyGetNumeric(e->ats);
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();

	PG_RETURN_NULL();
}
