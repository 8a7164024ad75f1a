/*-------------------------------------------------------------------------
 *
 * json.h
 *	  A small JSON API for the marketplace connectors, backed by jansson
 *	  (json.c is the only file that includes <jansson.h>: it clashes with
 *	  PostgreSQL's utils/builtins.h).
 *
 * Documents are tied to a memory context: when the context is reset or
 * deleted (normally, or because of an error) the jansson document is
 * released, so no path leaks it.  Values returned by the accessors are
 * borrowed from their document.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#ifndef OMNICHAN_JSON_H
#define OMNICHAN_JSON_H

typedef struct OcJson OcJson;	/* a JSON value (opaque) */

/*
 * Parse untrusted input (at most len bytes, depth-limited).  NULL with
 * *error set (a palloc'd message, without the input) when it is not JSON.
 */
extern OcJson *OcJsonParse(const char *text, size_t len, char **error);

/* new documents, owned by the current memory context */
extern OcJson *OcJsonNewObject(void);
extern OcJson *OcJsonNewArray(void);

/* accessors: NULL when absent or of another type */
extern OcJson *OcJsonGet(OcJson *object, const char *key);
extern OcJson *OcJsonPath(OcJson *value, const char *path);	/* "a.b.0.c" */
extern OcJson *OcJsonAt(OcJson *array, int index);
extern int	OcJsonLength(OcJson *array);	/* -1 if not an array */
extern const char *OcJsonString(OcJson *value);
extern bool OcJsonInt(OcJson *value, int64 *out);	/* integer, or integral string */
extern bool OcJsonNumber(OcJson *value, double *out);
extern bool OcJsonIsObject(OcJson *value);
extern bool OcJsonIsNull(OcJson *value);

/* builders: the child is a new value created inside the parent */
extern void OcJsonSetString(OcJson *object, const char *key, const char *value);
extern void OcJsonSetInt(OcJson *object, const char *key, int64 value);
extern void OcJsonSetNumber(OcJson *object, const char *key, double value);
extern void OcJsonSetBool(OcJson *object, const char *key, bool value);
extern OcJson *OcJsonSetObject(OcJson *object, const char *key);
extern OcJson *OcJsonSetArray(OcJson *object, const char *key);
extern void OcJsonSetCopy(OcJson *object, const char *key, OcJson *value);
extern OcJson *OcJsonAppendObject(OcJson *array);
extern void OcJsonAppendString(OcJson *array, const char *value);
extern void OcJsonAppendCopy(OcJson *array, OcJson *value);

/* serialize (compact, keys in insertion order); palloc'd */
extern char *OcJsonDump(OcJson *value);

#endif							/* OMNICHAN_JSON_H */
