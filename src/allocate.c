/*-------------------------------------------------------------------------
 *
 * allocate.c
 *	  Channel allocation: how many units each marketplace channel shows for
 *	  each product.
 *
 * Every channel draws on a pool: the ATS of its warehouses (ats.c), in
 * whole units.  Channels whose warehouse sets overlap form a group; the
 * group's pool is the ATS of the union of their warehouses.
 *
 *	normal mode (group pool above every member's low_stock_threshold):
 *		shown = min(floor(own pool * (1 - buffer/100)), max_qty)
 *
 *	low-stock mode (group pool at or below some member's threshold): a
 *	priority waterfall over the group pool.  Channels in priority order (ties
 *	by id) each take their normal quantity computed on what is left:
 *		take  = min(floor(left * (1 - buffer/100)), max_qty)
 *		shown = min(take, floor(own pool * (1 - buffer/100)), max_qty)
 *		left  = left - take
 *	so the group shows at most its pool in total and the lowest priorities
 *	are cut first.  ("take", not "shown", is subtracted so that more stock
 *	in one warehouse never lowers another channel's number.)
 *
 * A channel that is inactive, or excluded for the product, or a product that
 * is archived, shows 0 and takes nothing from the pool.  Per-product
 * overrides (omnichan.product_channel_policy) replace the channel's buffer
 * and max_qty for that product.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"

#include "ats.h"
#include "omnichan.h"

#define PCT_SCALE	(100 * QTY_SCALE)	/* 100 %, in millionths */

/* the modes of an allocation row */
enum
{
	MODE_NORMAL,
	MODE_LOW_STOCK,
	MODE_INACTIVE,
	MODE_EXCLUDED,
	MODE_ARCHIVED
};
static const char *const mode_names[] = {"normal", "low_stock", "inactive", "excluded", "archived"};

typedef struct Channel
{
	int32		id;
	char	   *name;
	int32	   *warehouses;		/* sorted */
	int			nwarehouses;
	Qty			buffer;			/* percent, in millionths */
	int32		priority;
	bool		has_max;
	int64		max_qty;
	int64		threshold;
	bool		active;
	int			own_pool;		/* pool of its own warehouses */
	int			group;			/* overlap group (index of the group's pool) */
} Channel;

typedef struct OverrideKey
{
	int32		product_id;
	int32		channel_id;
} OverrideKey;

typedef struct Override
{
	OverrideKey key;
	bool		has_buffer;
	Qty			buffer;
	bool		has_max;
	int64		max_qty;
	bool		excluded;
} Override;

/* one row of the result, before it becomes a tuple */
typedef struct Allocation
{
	int64		quantity;
	int			mode;			/* index in mode_names, -1 = not decided yet */
	int64		pool;			/* units in the group's pool */
	int64		left;			/* low-stock mode: units left before this channel */
	bool		has_left;
} Allocation;

static Channel *LoadChannels(int *nchannels);
static Override *LoadOverrides(int32 *product_ids, int nproducts, int *noverrides);
static int	CompareOverride(const void *a, const void *b);
static int	PoolFor(int32 **pools, int *sizes, int *npools, int32 *whs, int n);
static bool Overlap(Channel *a, Channel *b);
static int64 ApplyBuffer(int64 units, Qty buffer);
static int	CompareInt32(const void *a, const void *b);

/* qsort comparator for int32 */
static int
CompareInt32(const void *a, const void *b)
{
	int32		x = *(const int32 *) a;
	int32		y = *(const int32 *) b;

	return (x > y) - (x < y);
}

/*
 * ApplyBuffer
 *		floor(units * (1 - buffer / 100)), never negative.
 */
static int64
ApplyBuffer(int64 units, Qty buffer)
{
	__int128	n;

	if (units <= 0)
		return 0;
	n = (__int128) units * (PCT_SCALE - buffer);
	return (int64) (n / PCT_SCALE);
}

/*
 * LoadChannels
 *		Every channel, in allocation order (priority, then id).
 */
static Channel *
LoadChannels(int *nchannels)
{
	Channel    *channels;
	uint64		row;
	int			ret;

	ret = SPI_execute("SELECT id, name, warehouse_ids, pg_catalog.round(buffer_pct * 1000000)::int8, "
					  "       priority, max_qty, low_stock_threshold, active "
					  "  FROM omnichan.channel ORDER BY priority, id", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read omnichan.channel: %s", SPI_result_code_string(ret));

	*nchannels = SPI_processed;
	channels = palloc0(sizeof(Channel) * Max(SPI_processed, 1));
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Channel    *c = &channels[row];
		bool		isnull;
		Datum		d;
		Datum	   *elems;
		bool	   *nulls;
		int			n,
					i;

		c->id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		c->name = SPI_getvalue(tup, desc, 2);
		d = SPI_getbinval(tup, desc, 3, &isnull);
		deconstruct_array(DatumGetArrayTypeP(d), INT4OID, sizeof(int32), true,
						  TYPALIGN_INT, &elems, &nulls, &n);
		c->warehouses = palloc(sizeof(int32) * Max(n, 1));
		c->nwarehouses = 0;
		for (i = 0; i < n; i++)
			if (!nulls[i])
				c->warehouses[c->nwarehouses++] = DatumGetInt32(elems[i]);
		qsort(c->warehouses, c->nwarehouses, sizeof(int32), CompareInt32);
		c->buffer = DatumGetInt64(SPI_getbinval(tup, desc, 4, &isnull));
		c->priority = DatumGetInt32(SPI_getbinval(tup, desc, 5, &isnull));
		d = SPI_getbinval(tup, desc, 6, &isnull);
		c->has_max = !isnull;
		c->max_qty = isnull ? 0 : DatumGetInt32(d);
		c->threshold = DatumGetInt32(SPI_getbinval(tup, desc, 7, &isnull));
		c->active = DatumGetBool(SPI_getbinval(tup, desc, 8, &isnull));
	}
	return channels;
}

/* qsort comparator for overrides: by product, then channel */
static int
CompareOverride(const void *a, const void *b)
{
	const OverrideKey *x = &((const Override *) a)->key;
	const OverrideKey *y = &((const Override *) b)->key;

	if (x->product_id != y->product_id)
		return (x->product_id > y->product_id) - (x->product_id < y->product_id);
	return (x->channel_id > y->channel_id) - (x->channel_id < y->channel_id);
}

/*
 * LoadOverrides
 *		Per-product channel overrides, sorted by (product, channel): the
 *		products are allocated in id order, so the overrides of each are
 *		found by walking this array alongside.
 */
static Override *
LoadOverrides(int32 *product_ids, int nproducts, int *noverrides)
{
	Override   *overrides;
	uint64		row;
	int			ret;

	if (product_ids == NULL)
		ret = SPI_execute("SELECT product_id, channel_id, pg_catalog.round(buffer_pct * 1000000)::int8, "
						  "       max_qty, excluded FROM omnichan.product_channel_policy", true, 0);
	else
	{
		Oid			argtypes[1] = {INT4ARRAYOID};
		Datum		values[1];
		Datum	   *d = palloc(sizeof(Datum) * Max(nproducts, 1));
		int			i;

		for (i = 0; i < nproducts; i++)
			d[i] = Int32GetDatum(product_ids[i]);
		values[0] = PointerGetDatum(construct_array(d, nproducts, INT4OID, sizeof(int32),
													true, TYPALIGN_INT));
		ret = SPI_execute_with_args("SELECT product_id, channel_id, pg_catalog.round(buffer_pct * 1000000)::int8, "
									"       max_qty, excluded FROM omnichan.product_channel_policy "
									" WHERE product_id = ANY($1)",
									1, argtypes, values, NULL, true, 0);
	}
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not read omnichan.product_channel_policy: %s", SPI_result_code_string(ret));

	overrides = palloc0(sizeof(Override) * Max(SPI_processed, 1));
	for (row = 0; row < SPI_processed; row++)
	{
		HeapTuple	tup = SPI_tuptable->vals[row];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		Override   *o = &overrides[row];
		bool		isnull;
		Datum		d;

		o->key.product_id = DatumGetInt32(SPI_getbinval(tup, desc, 1, &isnull));
		o->key.channel_id = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		d = SPI_getbinval(tup, desc, 3, &isnull);
		o->has_buffer = !isnull;
		o->buffer = isnull ? 0 : DatumGetInt64(d);
		d = SPI_getbinval(tup, desc, 4, &isnull);
		o->has_max = !isnull;
		o->max_qty = isnull ? 0 : DatumGetInt32(d);
		d = SPI_getbinval(tup, desc, 5, &isnull);
		o->excluded = !isnull && DatumGetBool(d);
	}
	*noverrides = (int) SPI_processed;
	qsort(overrides, *noverrides, sizeof(Override), CompareOverride);
	return overrides;
}

/* the override of a channel among a product's overrides (or NULL) */
static inline Override *
FindOverride(Override *first, int n, int32 channel_id)
{
	int			i;

	for (i = 0; i < n; i++)
		if (first[i].key.channel_id == channel_id)
			return &first[i];
	return NULL;
}

/*
 * PoolFor
 *		Index of the pool with exactly these (sorted) warehouses, added when
 *		new.
 */
static int
PoolFor(int32 **pools, int *sizes, int *npools, int32 *whs, int n)
{
	int			p;

	for (p = 0; p < *npools; p++)
		if (sizes[p] == n && memcmp(pools[p], whs, sizeof(int32) * n) == 0)
			return p;
	pools[*npools] = whs;
	sizes[*npools] = n;
	return (*npools)++;
}

/* Overlap: do two channels share a warehouse? */
static bool
Overlap(Channel *a, Channel *b)
{
	int			i = 0,
				j = 0;

	while (i < a->nwarehouses && j < b->nwarehouses)
	{
		if (a->warehouses[i] == b->warehouses[j])
			return true;
		if (a->warehouses[i] < b->warehouses[j])
			i++;
		else
			j++;
	}
	return false;
}

PG_FUNCTION_INFO_V1(omnichan_allocate_bulk);

/*
 * omnichan_allocate_bulk
 *		SQL: omnichan.allocate_bulk(product_ids int[] DEFAULT NULL)
 *		RETURNS TABLE (product_id, channel_id, channel, quantity, mode, pool,
 *		left_before)
 *
 * One row per product (every storable product and kit when NULL) and
 * channel.  mode is normal, low_stock, inactive, excluded or archived.
 */
Datum
omnichan_allocate_bulk(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	ArrayType  *product_arr = PG_ARGISNULL(0) ? NULL : PG_GETARG_ARRAYTYPE_P(0);
	int32	   *products;
	int			nproducts;
	Channel    *channels;
	int			nchannels;
	int32	  **pools;
	int		   *pool_sizes;
	int			npools = 0;
	int		   *group_of;
	int64	   *group_threshold;
	int		   *group_pool;
	Override   *overrides;
	int			noverrides,
				oi = 0;
	AtsResult  *res;
	Allocation *alloc;
	Datum	   *names;
	Datum		modes[lengthof(mode_names)];
	int			i,
				j,
				k;

	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();

	products = AtsProductIds(product_arr, &nproducts);
	channels = LoadChannels(&nchannels);
	overrides = LoadOverrides(products, nproducts, &noverrides);

	/*
	 * Pools: each active channel's own warehouse set, and the union of each
	 * group of overlapping channels (union-find by repeated merging; there
	 * are few channels).
	 */
	pools = palloc(sizeof(int32 *) * Max(2 * nchannels, 1));
	pool_sizes = palloc(sizeof(int) * Max(2 * nchannels, 1));
	group_of = palloc(sizeof(int) * Max(nchannels, 1));
	for (i = 0; i < nchannels; i++)
		group_of[i] = i;
	for (i = 0; i < nchannels; i++)
	{
		if (!channels[i].active)
			continue;
		channels[i].own_pool = PoolFor(pools, pool_sizes, &npools,
									   channels[i].warehouses, channels[i].nwarehouses);
		for (j = 0; j < i; j++)
			if (channels[j].active && Overlap(&channels[i], &channels[j]) &&
				group_of[j] != group_of[i])
			{
				int			from = group_of[i],
							to = group_of[j];

				for (k = 0; k < nchannels; k++)
					if (group_of[k] == from)
						group_of[k] = to;
			}
	}
	group_threshold = palloc0(sizeof(int64) * Max(nchannels, 1));
	group_pool = palloc(sizeof(int) * Max(nchannels, 1));
	for (i = 0; i < nchannels; i++)
	{
		int32	   *u;
		int			nu = 0;

		group_pool[i] = -1;
		if (!channels[i].active || group_of[i] != i)
			continue;
		/* i is the representative of a group: union of the members' sets */
		u = palloc(sizeof(int32) * 1);
		for (k = 0; k < nchannels; k++)
		{
			if (!channels[k].active || group_of[k] != i)
				continue;
			u = repalloc(u, sizeof(int32) * (nu + channels[k].nwarehouses));
			for (j = 0; j < channels[k].nwarehouses; j++)
			{
				int			m;
				bool		dup = false;

				for (m = 0; m < nu; m++)
					dup |= (u[m] == channels[k].warehouses[j]);
				if (!dup)
					u[nu++] = channels[k].warehouses[j];
			}
			group_threshold[i] = Max(group_threshold[i], channels[k].threshold);
		}
		qsort(u, nu, sizeof(int32), CompareInt32);
		group_pool[i] = PoolFor(pools, pool_sizes, &npools, u, nu);
	}
	for (i = 0; i < nchannels; i++)
		channels[i].group = group_of[i];

	res = AtsCompute(products, nproducts, npools, pools, pool_sizes);
	alloc = palloc(sizeof(Allocation) * Max(nchannels, 1));
	names = palloc(sizeof(Datum) * Max(nchannels, 1));
	for (j = 0; j < nchannels; j++)
		names[j] = CStringGetTextDatum(channels[j].name);
	for (k = 0; k < (int) lengthof(mode_names); k++)
		modes[k] = CStringGetTextDatum(mode_names[k]);

	for (i = 0; i < res->nproducts; i++)
	{
		int32		pid = res->products[i];
		AtsProduct *info = hash_search(res->product_info, &pid, HASH_FIND, NULL);
		int			g;
		Override   *povr;
		int			npovr = 0;

		if (info == NULL)
			continue;			/* no such product */

		/* the product's overrides: products come in id order */
		while (oi < noverrides && overrides[oi].key.product_id < pid)
			oi++;
		povr = &overrides[oi];
		while (oi + npovr < noverrides && overrides[oi + npovr].key.product_id == pid)
			npovr++;

		/* first the channels that show nothing whatever the stock */
		for (j = 0; j < nchannels; j++)
		{
			Channel    *c = &channels[j];
			Override   *o = FindOverride(povr, npovr, c->id);

			alloc[j].has_left = false;
			alloc[j].pool = 0;
			alloc[j].quantity = 0;
			alloc[j].mode = -1;
			if (!c->active)
			{
				alloc[j].mode = MODE_INACTIVE;
			}
			else if (!info->active)
			{
				alloc[j].mode = MODE_ARCHIVED;
			}
			else if (o != NULL && o->excluded)
			{
				alloc[j].mode = MODE_EXCLUDED;
			}
		}

		/* then each group: normal mode or the low-stock waterfall */
		for (g = 0; g < nchannels; g++)
		{
			int64		pool_units;
			bool		low;
			int64		left;

			if (group_pool[g] < 0)
				continue;
			pool_units = QtyFloorUnits(AtsLookup(res, pid, group_pool[g])->ats);
			low = pool_units <= group_threshold[g];
			left = pool_units;

			for (j = 0; j < nchannels; j++)
			{
				Channel    *c = &channels[j];
				Override   *o;
				Qty			buffer;
				bool		has_max;
				int64		max_qty,
							own_units,
							own_normal;

				if (c->group != g || !c->active)
					continue;
				alloc[j].pool = pool_units;
				if (alloc[j].mode >= 0)
					continue;	/* archived or excluded */

				o = FindOverride(povr, npovr, c->id);
				buffer = (o && o->has_buffer) ? o->buffer : c->buffer;
				has_max = (o && o->has_max) ? true : c->has_max;
				max_qty = (o && o->has_max) ? o->max_qty : c->max_qty;

				own_units = QtyFloorUnits(AtsLookup(res, pid, c->own_pool)->ats);
				own_normal = ApplyBuffer(own_units, buffer);
				if (has_max)
					own_normal = Min(own_normal, max_qty);

				if (!low)
				{
					alloc[j].mode = MODE_NORMAL;
					alloc[j].quantity = own_normal;
				}
				else
				{
					int64		take = ApplyBuffer(left, buffer);

					if (has_max)
						take = Min(take, max_qty);
					alloc[j].mode = MODE_LOW_STOCK;
					alloc[j].has_left = true;
					alloc[j].left = left;
					alloc[j].quantity = Min(take, own_normal);
					left -= take;
				}
			}
		}

		for (j = 0; j < nchannels; j++)
		{
			Datum		values[7];
			bool		nulls[7] = {false};

			values[0] = Int32GetDatum(pid);
			values[1] = Int32GetDatum(channels[j].id);
			values[2] = names[j];
			values[3] = Int32GetDatum((int32) Min(alloc[j].quantity, PG_INT32_MAX));
			values[4] = modes[alloc[j].mode];
			values[5] = Int64GetDatum(alloc[j].pool);
			if (alloc[j].has_left)
				values[6] = Int64GetDatum(alloc[j].left);
			else
				nulls[6] = true;
			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
		}
	}
	SPI_finish();

	PG_RETURN_NULL();
}
