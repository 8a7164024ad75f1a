/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  Change capture: statement-level triggers on Odoo's stock and sale
 *	  tables (and omnichan's own policy tables) that record which products'
 *	  available-to-sell may have moved, and wake the sync worker on commit.
 *
 * One trigger function, omnichan.capture(), serves every table.  It runs once
 * per statement, AFTER INSERT, UPDATE or DELETE, with the statement's
 * transition tables.  It reads them in C (no SQL per row):
 *
 *	- INSERT / DELETE: the products of the rows;
 *	- UPDATE: the products of the rows whose watched columns changed (old
 *	  and new product when the product itself changed); an update of
 *	  unwatched columns only (a quant's in_date, a move's description) records
 *	  nothing.
 *
 * Some tables map to products through another table (an order's lines, a
 * template's variants, a bill of materials' kits, an inbox order's lines):
 * one parameterized query per statement resolves them.  A change of a
 * channel records product 0, which means "every product".
 *
 * The product ids go into omnichan.stock_dirty_log, written directly with
 * the table access method (no SQL: the log has no index, trigger or rule),
 * after removing those this transaction already recorded (a
 * per-transaction hash that forgets what an aborted subtransaction recorded).
 * The log is append-only, so concurrent Odoo transactions never wait for each
 * other on it; the worker folds it into the coalesced set omnichan.stock_dirty
 * (see the install script's "Change capture" section).
 *
 * On commit of a transaction that recorded something, the commit callback
 * wakes the database's worker through shared memory (shmem.c).  A
 * rolled-back transaction leaves no row and wakes nobody.
 *
 * The trigger function is SECURITY DEFINER: Odoo's own role fires it and
 * needs no privilege on omnichan's tables.  If omnichan's log table is
 * missing (a broken installation), the trigger logs a warning, counts the
 * miss in shared memory (visible in omnichan.capture_status) and lets Odoo's
 * write go on: Odoo never fails because of omnichan.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "capture.h"
#include "shmem.h"

/* how a table's rows map to products */
typedef enum CaptureMap
{
	MAP_PRODUCT_COLUMN,			/* key column is a product id */
	MAP_ORDER_LINES,			/* key is a sale order: its lines' products */
	MAP_TEMPLATE_VARIANTS,		/* key is a template: its variants */
	MAP_BOM,					/* a bill of materials: its kit products */
	MAP_BOM_LINE,				/* key is a BoM: its kit products */
	MAP_INBOX_LINES,			/* key is an inbox order: its lines' products */
	MAP_ALL_PRODUCTS			/* any change: every product (id 0) */
} CaptureMap;

#define MAX_WATCHED 10

typedef struct CaptureTable
{
	const char *nspname;
	const char *relname;
	CaptureMap	map;
	const char *key;			/* column mapped to products */
	const char *pair;			/* column pairing old and new rows, or NULL */
	const char *watched[MAX_WATCHED];	/* UPDATE: columns that matter */
} CaptureTable;

/*
 * The tables omnichan watches.  The install script creates the triggers
 * (omnichan.capture_install) from omnichan._capture_spec(), which lists the
 * same tables and events.
 */
static const CaptureTable CaptureTables[] = {
	{"public", "stock_quant", MAP_PRODUCT_COLUMN, "product_id", "id",
	{"quantity", "reserved_quantity", "location_id", "product_id"}},
	{"public", "stock_move", MAP_PRODUCT_COLUMN, "product_id", "id",
	{"state", "product_qty", "product_uom_qty", "quantity", "product_uom",
	"location_id", "location_dest_id", "product_id", "sale_line_id"}},
	{"public", "sale_order_line", MAP_PRODUCT_COLUMN, "product_id", "id",
	{"product_id", "product_uom_qty", "product_uom", "qty_delivered",
	"display_type", "order_id", "state"}},
	{"public", "sale_order", MAP_ORDER_LINES, "id", "id",
	{"state", "warehouse_id"}},
	{"public", "product_product", MAP_PRODUCT_COLUMN, "id", "id",
	{"active", "product_tmpl_id"}},
	{"public", "product_template", MAP_TEMPLATE_VARIANTS, "id", "id",
	{"active", "type", "detailed_type", "uom_id"}},
	{"public", "mrp_bom", MAP_BOM, "product_id", "id",
	{"active", "type", "product_id", "product_tmpl_id", "product_qty",
	"product_uom_id", "sequence"}},
	{"public", "mrp_bom_line", MAP_BOM_LINE, "bom_id", "id",
	{"product_id", "product_qty", "product_uom_id", "bom_id"}},
	{"omnichan", "product_policy", MAP_PRODUCT_COLUMN, "product_id", NULL, {NULL}},
	{"omnichan", "product_channel_policy", MAP_PRODUCT_COLUMN, "product_id", NULL, {NULL}},
	{"omnichan", "channel", MAP_ALL_PRODUCTS, "id", "id",
	{"company_id", "warehouse_ids", "default_warehouse_id", "buffer_pct",
	"priority", "max_qty", "low_stock_threshold", "active"}},
	{"omnichan", "order_inbox", MAP_INBOX_LINES, "id", "id",
	{"state", "warehouse_id", "sale_order_id", "channel_id"}},
	{"omnichan", "order_inbox_line", MAP_PRODUCT_COLUMN, "product_id", NULL, {NULL}},
	{"omnichan", "listing", MAP_PRODUCT_COLUMN, "product_id", "id",
	{"product_id", "channel_id"}},
};

/* the queries of the mappings through another table */
static const char *const MapQueries[] = {
	[MAP_ORDER_LINES] =
	"SELECT DISTINCT product_id FROM public.sale_order_line "
	" WHERE order_id = ANY($1) AND product_id IS NOT NULL",
	[MAP_TEMPLATE_VARIANTS] =
	"SELECT id FROM public.product_product WHERE product_tmpl_id = ANY($1)",
	[MAP_BOM] =
	"SELECT id FROM public.product_product WHERE product_tmpl_id = ANY($1)",
	[MAP_BOM_LINE] =
	"SELECT DISTINCT pp.id FROM public.mrp_bom b "
	"  JOIN public.product_product pp "
	"    ON b.product_id = pp.id OR (b.product_id IS NULL AND pp.product_tmpl_id = b.product_tmpl_id) "
	" WHERE b.id = ANY($1)",
	[MAP_INBOX_LINES] =
	"SELECT DISTINCT product_id FROM omnichan.order_inbox_line "
	" WHERE inbox_id = ANY($1) AND product_id IS NOT NULL",
};

static SPIPlanPtr MapPlans[MAP_ALL_PRODUCTS + 1];
static SPIPlanPtr InsertPlan = NULL;

/* products this transaction recorded: product id -> subtransaction */
typedef struct RecordedEntry
{
	int32		product_id;
	SubTransactionId subid;
} RecordedEntry;

static HTAB *Recorded = NULL;
static bool WakeRequested = false;	/* omnichan._wake_on_commit() was called */
static bool CallbacksRegistered = false;
static TimestampTz LastWarning = 0;

/* a growable set of int32 collected from transition tables */
typedef struct IdList
{
	int32	   *ids;
	int			n;
	int			cap;
} IdList;

static const CaptureTable *FindTable(Relation rel);
static void IdListAdd(IdList *list, int32 id);
static int	AttnumOf(TupleDesc desc, const char *name);
static void CollectRows(Tuplestorestate *ts, TupleDesc desc, int key_att, int tmpl_att,
						IdList *ids, IdList *tmpl_ids);
static void CollectChanged(Tuplestorestate *old_ts, Tuplestorestate *new_ts, TupleDesc desc,
						   const CaptureTable *table, int key_att, int tmpl_att,
						   IdList *ids, IdList *tmpl_ids);
static void MapThrough(CaptureMap map, IdList *keys, IdList *products);
static void Record(IdList *products, Oid logrelid, bool *spi_connected);
static bool InsertDirect(IdList *ids, Oid logrelid);
static void InsertWithSql(IdList *ids, bool *spi_connected);
static ArrayType *IdArray(IdList *list);
static void CaptureXactCallback(XactEvent event, void *arg);
static void CaptureSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
								   SubTransactionId parentSubid, void *arg);
static Oid	LogTableOid(void);

PG_FUNCTION_INFO_V1(omnichan_capture);
PG_FUNCTION_INFO_V1(omnichan_capture_wakeups);
PG_FUNCTION_INFO_V1(omnichan_wake_on_commit);

/*
 * OmnichanCaptureInit
 *		Registers the transaction callbacks (once per process).
 */
void
OmnichanCaptureInit(void)
{
	if (CallbacksRegistered)
		return;
	RegisterXactCallback(CaptureXactCallback, NULL);
	RegisterSubXactCallback(CaptureSubXactCallback, NULL);
	CallbacksRegistered = true;
}

/*
 * CaptureXactCallback
 *		At commit of a transaction that recorded changes, wake the worker;
 *		at any end, forget the transaction's recorded set.  "Recorded
 *		changes" means the set is not empty: what a rolled-back
 *		subtransaction recorded was removed from it with its log rows, and a
 *		transaction left with nothing to report must not wake anyone.
 */
static void
CaptureXactCallback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
			if (Recorded != NULL && hash_get_num_entries(Recorded) > 0)
				OmnichanWakeDatabase(MyDatabaseId);
			else if (WakeRequested)
				OmnichanWakeWorker(MyDatabaseId);
			/* FALLTHROUGH */
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			/* the hash lived in TopTransactionContext, which goes away */
			Recorded = NULL;
			WakeRequested = false;
			break;
		default:
			break;
	}
}

/*
 * CaptureSubXactCallback
 *		A subtransaction that aborts takes its log rows with it: forget the
 *		products it (and its children, which have larger ids) recorded.
 */
static void
CaptureSubXactCallback(SubXactEvent event, SubTransactionId mySubid,
					   SubTransactionId parentSubid, void *arg)
{
	HASH_SEQ_STATUS seq;
	RecordedEntry *e;

	if (event != SUBXACT_EVENT_ABORT_SUB || Recorded == NULL)
		return;
	hash_seq_init(&seq, Recorded);
	while ((e = hash_seq_search(&seq)) != NULL)
		if (e->subid >= mySubid)
			hash_search(Recorded, &e->product_id, HASH_REMOVE, NULL);
}

/* FindTable: the watched-table entry of a relation, or NULL */
static const CaptureTable *
FindTable(Relation rel)
{
	const char *relname = RelationGetRelationName(rel);
	char	   *nspname = get_namespace_name(RelationGetNamespace(rel));
	int			i;

	for (i = 0; i < (int) lengthof(CaptureTables); i++)
		if (strcmp(CaptureTables[i].relname, relname) == 0 &&
			strcmp(CaptureTables[i].nspname, nspname) == 0)
			return &CaptureTables[i];
	return NULL;
}

/* IdListAdd: append an id */
static void
IdListAdd(IdList *list, int32 id)
{
	if (list->n == list->cap)
	{
		list->cap = Max(64, list->cap * 2);
		list->ids = list->ids ? repalloc(list->ids, sizeof(int32) * list->cap)
			: palloc(sizeof(int32) * list->cap);
	}
	list->ids[list->n++] = id;
}

/* AttnumOf: attribute number of a column, or 0 */
static int
AttnumOf(TupleDesc desc, const char *name)
{
	int			i;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return i + 1;
	}
	return 0;
}

/*
 * CollectRows
 *		The key column (and, for bills of materials, the template column when
 *		the key is NULL) of every row of a transition table.
 */
static void
CollectRows(Tuplestorestate *ts, TupleDesc desc, int key_att, int tmpl_att,
			IdList *ids, IdList *tmpl_ids)
{
	TupleTableSlot *slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);

	tuplestore_rescan(ts);
	while (tuplestore_gettupleslot(ts, true, false, slot))
	{
		bool		isnull;
		Datum		d = slot_getattr(slot, key_att, &isnull);

		if (!isnull)
			IdListAdd(ids, DatumGetInt32(d));
		else if (tmpl_att > 0)
		{
			d = slot_getattr(slot, tmpl_att, &isnull);
			if (!isnull)
				IdListAdd(tmpl_ids, DatumGetInt32(d));
		}
	}
	ExecDropSingleTupleTableSlot(slot);
}

/*
 * CollectChanged
 *		UPDATE: the keys of the rows whose watched columns changed, old and
 *		new.  The transition tables hold old and new versions in the same
 *		order; that is checked row by row with the pairing column, and if it
 *		ever does not hold, every row counts as changed (never miss one).
 */
static void
CollectChanged(Tuplestorestate *old_ts, Tuplestorestate *new_ts, TupleDesc desc,
			   const CaptureTable *table, int key_att, int tmpl_att,
			   IdList *ids, IdList *tmpl_ids)
{
	TupleTableSlot *o = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	TupleTableSlot *n = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	int			pair_att = table->pair ? AttnumOf(desc, table->pair) : 0;
	int			watched[MAX_WATCHED];
	int			nwatched = 0;
	int			i;
	bool		paired = (pair_att > 0);

	for (i = 0; i < MAX_WATCHED && table->watched[i] != NULL; i++)
	{
		int			att = AttnumOf(desc, table->watched[i]);

		if (att > 0)
			watched[nwatched++] = att;
	}

	tuplestore_rescan(old_ts);
	tuplestore_rescan(new_ts);
	while (paired && tuplestore_gettupleslot(old_ts, true, false, o))
	{
		bool		changed = false;
		bool		onull,
					nnull;
		Datum		od,
					nd;

		if (!tuplestore_gettupleslot(new_ts, true, false, n))
		{
			paired = false;
			break;
		}
		od = slot_getattr(o, pair_att, &onull);
		nd = slot_getattr(n, pair_att, &nnull);
		if (onull || nnull || DatumGetInt32(od) != DatumGetInt32(nd))
		{
			paired = false;
			break;
		}
		for (i = 0; i < nwatched && !changed; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, watched[i] - 1);

			od = slot_getattr(o, watched[i], &onull);
			nd = slot_getattr(n, watched[i], &nnull);
			if (onull != nnull)
				changed = true;
			else if (!onull && !datum_image_eq(od, nd, att->attbyval, att->attlen))
				changed = true;
		}
		if (!changed)
			continue;
		od = slot_getattr(o, key_att, &onull);
		nd = slot_getattr(n, key_att, &nnull);
		if (!onull)
			IdListAdd(ids, DatumGetInt32(od));
		if (!nnull && (onull || DatumGetInt32(od) != DatumGetInt32(nd)))
			IdListAdd(ids, DatumGetInt32(nd));
		if (tmpl_att > 0 && (onull || nnull))
		{
			od = slot_getattr(o, tmpl_att, &onull);
			nd = slot_getattr(n, tmpl_att, &nnull);
			if (!onull)
				IdListAdd(tmpl_ids, DatumGetInt32(od));
			if (!nnull)
				IdListAdd(tmpl_ids, DatumGetInt32(nd));
		}
	}
	ExecDropSingleTupleTableSlot(o);
	ExecDropSingleTupleTableSlot(n);

	if (!paired)
	{
		/* no reliable pairing: every row, old and new, counts */
		ids->n = 0;
		tmpl_ids->n = 0;
		CollectRows(old_ts, desc, key_att, tmpl_att, ids, tmpl_ids);
		CollectRows(new_ts, desc, key_att, tmpl_att, ids, tmpl_ids);
	}
}

/* IdArray: an int4[] of a list */
static ArrayType *
IdArray(IdList *list)
{
	Datum	   *d = palloc(sizeof(Datum) * Max(list->n, 1));
	int			i;

	for (i = 0; i < list->n; i++)
		d[i] = Int32GetDatum(list->ids[i]);
	return construct_array(d, list->n, INT4OID, sizeof(int32), true, TYPALIGN_INT);
}

/*
 * MapThrough
 *		Products of keys that are not products (orders, templates, BoMs,
 *		inbox orders), with one query.
 */
static void
MapThrough(CaptureMap map, IdList *keys, IdList *products)
{
	Datum		values[1];
	Oid			argtypes[1] = {INT4ARRAYOID};
	uint64		row;
	int			ret;

	if (keys->n == 0)
		return;
	if (MapPlans[map] == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare(MapQueries[map], 1, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the change-capture query: %s",
				 SPI_result_code_string(SPI_result));
		MapPlans[map] = plan;
	}
	values[0] = PointerGetDatum(IdArray(keys));
	ret = SPI_execute_plan(MapPlans[map], values, NULL, true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "change-capture query failed: %s", SPI_result_code_string(ret));
	for (row = 0; row < SPI_processed; row++)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, 1, &isnull);

		if (!isnull)
			IdListAdd(products, DatumGetInt32(d));
	}
}

/*
 * Record
 *		Appends the products this transaction has not recorded yet to the
 *		log, with one INSERT.
 */
static void
Record(IdList *products, Oid logrelid, bool *spi_connected)
{
	IdList		fresh = {NULL, 0, 0};
	SubTransactionId subid = GetCurrentSubTransactionId();
	int			i;

	if (Recorded == NULL)
	{
		HASHCTL		ctl;

		memset(&ctl, 0, sizeof(ctl));
		ctl.keysize = sizeof(int32);
		ctl.entrysize = sizeof(RecordedEntry);
		ctl.hcxt = TopTransactionContext;
		Recorded = hash_create("omnichan recorded products", 256, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	for (i = 0; i < products->n; i++)
	{
		bool		found;
		RecordedEntry *e = hash_search(Recorded, &products->ids[i], HASH_ENTER, &found);

		if (!found)
		{
			e->subid = subid;
			IdListAdd(&fresh, products->ids[i]);
		}
	}
	if (fresh.n == 0)
		return;
	if (!InsertDirect(&fresh, logrelid))
		InsertWithSql(&fresh, spi_connected);
}

/*
 * InsertDirect
 *		Appends the rows with the table access method, without SQL: the log
 *		is a plain two-column table with no index, trigger or rule, so
 *		nothing else has to happen for an insert.  Returns false (nothing
 *		written) when the table is not exactly that, and SQL must be used.
 */
static bool
InsertDirect(IdList *ids, Oid logrelid)
{
	Relation	rel = table_open(logrelid, RowExclusiveLock);
	TupleDesc	desc = RelationGetDescr(rel);
	TupleTableSlot *slot;
	Datum		now = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp());
	int			i;

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relhasindex ||
		rel->rd_rel->relhasrules || rel->trigdesc != NULL || desc->natts != 2 ||
		TupleDescAttr(desc, 0)->atttypid != INT4OID ||
		TupleDescAttr(desc, 1)->atttypid != TIMESTAMPTZOID ||
		TupleDescAttr(desc, 0)->attisdropped || TupleDescAttr(desc, 1)->attisdropped)
	{
		table_close(rel, RowExclusiveLock);
		return false;
	}
	slot = table_slot_create(rel, NULL);
	for (i = 0; i < ids->n; i++)
	{
		ExecClearTuple(slot);
		slot->tts_values[0] = Int32GetDatum(ids->ids[i]);
		slot->tts_values[1] = now;
		slot->tts_isnull[0] = false;
		slot->tts_isnull[1] = false;
		ExecStoreVirtualTuple(slot);
		simple_table_tuple_insert(rel, slot);
	}
	ExecDropSingleTupleTableSlot(slot);
	table_close(rel, RowExclusiveLock);
	return true;
}

/*
 * InsertWithSql
 *		Appends the rows with one INSERT (when the log table was altered).
 */
static void
InsertWithSql(IdList *ids, bool *spi_connected)
{
	Datum		values[1];
	Oid			argtypes[1] = {INT4ARRAYOID};
	int			ret;

	if (!*spi_connected)
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		*spi_connected = true;
	}
	if (InsertPlan == NULL)
	{
		SPIPlanPtr	plan = SPI_prepare("INSERT INTO omnichan.stock_dirty_log (product_id) "
									   "SELECT pg_catalog.unnest($1::int4[])", 1, argtypes);

		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare the change-capture insert: %s",
				 SPI_result_code_string(SPI_result));
		InsertPlan = plan;
	}
	values[0] = PointerGetDatum(IdArray(ids));
	ret = SPI_execute_plan(InsertPlan, values, NULL, false, 0);
	if (ret != SPI_OK_INSERT)
		elog(ERROR, "change-capture insert failed: %s", SPI_result_code_string(ret));
}

/*
 * LogTableOid
 *		The OID of omnichan's log table, or InvalidOid when it is missing:
 *		then warn (at most once a minute per process) and count the miss.
 */
static Oid
LogTableOid(void)
{
	Oid			nsp = get_namespace_oid("omnichan", true);
	OmnichanDbSlot *slot;
	TimestampTz now;

	Oid			relid = OidIsValid(nsp) ? get_relname_relid("stock_dirty_log", nsp) : InvalidOid;

	if (OidIsValid(relid))
		return relid;

	slot = OmnichanDbSlotFor(MyDatabaseId);
	if (slot != NULL)
		pg_atomic_fetch_add_u32(&slot->capture_errors, 1);
	now = GetCurrentTimestamp();
	if (TimestampDifferenceExceeds(LastWarning, now, 60 * 1000))
	{
		LastWarning = now;
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("omnichan change capture skipped: table omnichan.stock_dirty_log is missing"),
				 errdetail("The write goes on, but marketplace channels will not hear of this change."),
				 errhint("Reinstall with DROP EXTENSION omnichan; CREATE EXTENSION omnichan; then run omnichan.full_resync for each channel.")));
	}
	return InvalidOid;
}

/*
 * omnichan_capture
 *		The trigger function: AFTER INSERT / UPDATE / DELETE FOR EACH
 *		STATEMENT, with transition tables.
 */
Datum
omnichan_capture(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	const CaptureTable *table;
	TupleDesc	desc;
	int			key_att,
				tmpl_att = 0;
	IdList		keys = {NULL, 0, 0};
	IdList		tmpl_ids = {NULL, 0, 0};
	IdList		products = {NULL, 0, 0};
	TriggerEvent ev;
	Oid			logrelid;
	bool		spi_connected = false;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("omnichan.capture() must be called as a trigger")));
	ev = trigdata->tg_event;
	if (!TRIGGER_FIRED_FOR_STATEMENT(ev) || !TRIGGER_FIRED_AFTER(ev))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("omnichan.capture() must be fired AFTER ... FOR EACH STATEMENT")));

	table = FindTable(trigdata->tg_relation);
	if (table == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("omnichan.capture() does not know table \"%s\"",
						RelationGetRelationName(trigdata->tg_relation)),
				 errhint("Create omnichan's triggers with omnichan.capture_install().")));

	OmnichanCaptureInit();

	desc = RelationGetDescr(trigdata->tg_relation);
	key_att = AttnumOf(desc, table->key);
	if (table->map == MAP_BOM)
		tmpl_att = AttnumOf(desc, "product_tmpl_id");
	if (key_att == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_COLUMN),
				 errmsg("table \"%s\" has no column \"%s\"",
						RelationGetRelationName(trigdata->tg_relation), table->key)));

	if (TRIGGER_FIRED_BY_INSERT(ev) && trigdata->tg_newtable)
		CollectRows(trigdata->tg_newtable, desc, key_att, tmpl_att, &keys, &tmpl_ids);
	else if (TRIGGER_FIRED_BY_DELETE(ev) && trigdata->tg_oldtable)
		CollectRows(trigdata->tg_oldtable, desc, key_att, tmpl_att, &keys, &tmpl_ids);
	else if (TRIGGER_FIRED_BY_UPDATE(ev) && trigdata->tg_oldtable && trigdata->tg_newtable)
	{
		if (table->pair != NULL)
			CollectChanged(trigdata->tg_oldtable, trigdata->tg_newtable, desc, table,
						   key_att, tmpl_att, &keys, &tmpl_ids);
		else
		{
			CollectRows(trigdata->tg_oldtable, desc, key_att, tmpl_att, &keys, &tmpl_ids);
			CollectRows(trigdata->tg_newtable, desc, key_att, tmpl_att, &keys, &tmpl_ids);
		}
	}

	if (keys.n == 0 && tmpl_ids.n == 0)
		return PointerGetDatum(NULL);
	logrelid = LogTableOid();
	if (!OidIsValid(logrelid))
		return PointerGetDatum(NULL);

	/* only the mappings through another table need SQL */
	if (table->map != MAP_PRODUCT_COLUMN && table->map != MAP_ALL_PRODUCTS &&
		!(table->map == MAP_BOM && tmpl_ids.n == 0))
	{
		if (SPI_connect() != SPI_OK_CONNECT)
			elog(ERROR, "SPI_connect failed");
		spi_connected = true;
	}
	switch (table->map)
	{
		case MAP_PRODUCT_COLUMN:
			products = keys;
			break;
		case MAP_ALL_PRODUCTS:
			IdListAdd(&products, 0);
			break;
		case MAP_BOM:
			/* kits named by variant, plus the variants of template BoMs */
			products = keys;
			MapThrough(MAP_BOM, &tmpl_ids, &products);
			break;
		default:
			MapThrough(table->map, &keys, &products);
			break;
	}
	if (products.n > 0)
		Record(&products, logrelid, &spi_connected);
	if (spi_connected)
		SPI_finish();

	return PointerGetDatum(NULL);
}

/*
 * omnichan_capture_wakeups
 *		SQL: omnichan.capture_wakeups() RETURNS TABLE (wakeups bigint,
 *		last_wakeup timestamptz, capture_errors bigint, worker_pid int)
 *		for the current database.
 */
Datum
omnichan_capture_wakeups(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false};
	OmnichanDbSlot *slot = OmnichanDbSlotFor(MyDatabaseId);
	uint64		last;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (slot == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
				 errmsg("omnichan serves at most %d databases per cluster", OMNICHAN_MAX_DATABASES)));
	values[0] = Int64GetDatum((int64) pg_atomic_read_u64(&slot->wakeups));
	last = pg_atomic_read_u64(&slot->last_wakeup);
	if (last == 0)
		nulls[1] = true;
	else
		values[1] = TimestampTzGetDatum((TimestampTz) last);
	values[2] = Int64GetDatum((int64) pg_atomic_read_u32(&slot->capture_errors));
	values[3] = Int32GetDatum((int32) slot->worker_pid);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

/*
 * omnichan_wake_on_commit
 *		SQL: omnichan._wake_on_commit(): the worker of this database is woken
 *		when the current transaction commits (queued jobs, control functions).
 */
Datum
omnichan_wake_on_commit(PG_FUNCTION_ARGS)
{
	OmnichanCaptureInit();
	WakeRequested = true;
	PG_RETURN_VOID();
}
