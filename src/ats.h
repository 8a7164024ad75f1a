/*-------------------------------------------------------------------------
 *
 * ats.h
 *	  The available-to-sell engine: quantities per product and stock pool.
 *
 * A "pool" is a set of Odoo warehouses whose internal stock is summed.  The
 * engine computes, for a set of products and a list of pools, each term of
 *
 *		ats = max(0, on_hand - reserved - safety - pending)
 *
 * and, for kits (phantom bills of materials), the kit quantity derived from
 * the components.  Quantities are exact fixed-point integers in millionths
 * of the product's unit of measure (Qty), so that sums of decimal Odoo
 * quantities never turn 3 into 2.9999999 before a floor().
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_ATS_H
#define OMNICHAN_ATS_H

#include "utils/array.h"
#include "utils/hsearch.h"

/* fixed-point quantity: millionths of a unit */
typedef int64 Qty;

#define QTY_SCALE	INT64CONST(1000000)

/* one product in one pool */
typedef struct AtsKey
{
	int32		product_id;
	int32		pool;
} AtsKey;

typedef struct AtsEntry
{
	AtsKey		key;			/* hash key: must be first */
	Qty			on_hand;		/* quants in the pool's internal locations */
	Qty			reserved;		/* reserved on those quants */
	Qty			pending;		/* unreserved open demand (moves, orders) */
	Qty			safety;			/* the product's safety stock */
	Qty			ats;			/* result, >= 0 */
	bool		is_kit;			/* computed from components */
	bool		done;			/* result computed (kits: recursion guard) */
	bool		visiting;		/* kit cycle guard */
	Qty			demand[3];		/* while loading: the product's own demand
								 * terms (moves, sale lines, inbox), before
								 * kits are exploded into pending */
} AtsEntry;

/* a product's kit bill of materials, as chosen by Odoo's _bom_find */
typedef struct AtsKitLine
{
	int32		component_id;
	Qty			qty_per_run;	/* component units consumed by one BoM run */
} AtsKitLine;

typedef struct AtsKit
{
	int32		product_id;		/* hash key: must be first */
	Qty			run_qty;		/* kit units one BoM run makes */
	int			nlines;
	AtsKitLine *lines;			/* storable components only */
} AtsKit;

typedef struct AtsProduct
{
	int32		product_id;		/* hash key: must be first */
	bool		active;			/* product and template active */
	bool		storable;		/* product_template.type = 'product' */
} AtsProduct;

/* the result of one engine run; all memory in the caller's context */
typedef struct AtsResult
{
	int			npools;
	int			nproducts;
	int32	   *products;		/* products asked for (or all), in id order */
	HTAB	   *entries;		/* AtsKey -> AtsEntry */
	HTAB	   *kits;			/* product id -> AtsKit */
	HTAB	   *product_info;	/* product id -> AtsProduct */
	/*
	 * Bulk runs: the entries of products 0 .. dense_n - 1 in an array,
	 * dense[product_id * npools + pool] (no hashing in the hot loops); the
	 * entries of other products (and of every product in by-id runs) in
	 * "entries".
	 */
	AtsEntry   *dense;
	int32		dense_n;
	uint8	   *dense_info;		/* per product id < dense_n: ATS_INFO_* bits */
} AtsResult;

#define ATS_INFO_KNOWN		0x01	/* in product_info */
#define ATS_INFO_STORABLE	0x02

/*
 * Compute ATS.  product_ids NULL = every storable product and every kit;
 * pools[i] is an array of pool_sizes[i] warehouse ids.
 */
extern AtsResult *AtsCompute(int32 *product_ids, int nproduct_ids,
							 int npools, int32 **pools, int *pool_sizes);

/* entry of a product in a pool (never NULL for a product of the result) */
extern AtsEntry *AtsLookup(AtsResult *res, int32 product_id, int pool);

/* argument helpers (inside SPI) */
extern int32 *AtsResolveWarehouses(ArrayType *arr, bool company_isnull,
								   int32 company_id, int *n);
extern int32 *AtsProductIds(ArrayType *arr, int *n);

/* helpers shared with the allocation code */
extern Datum QtyGetNumeric(Qty q);
extern int64 QtyFloorUnits(Qty q);

#endif							/* OMNICHAN_ATS_H */
