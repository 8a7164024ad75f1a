/*-------------------------------------------------------------------------
 *
 * json.c
 *	  The connectors' JSON API (json.h), implemented with jansson.
 *
 * This is the only file that includes <jansson.h>, whose json_object() and
 * json_typeof() clash with PostgreSQL's utils/builtins.h; so it includes no
 * PostgreSQL header that pulls that one in.
 *
 * jansson allocates with malloc.  Every document created here registers a
 * reset callback on the memory context current at its creation, which
 * releases the document when that context is reset or deleted — including
 * when an error unwinds the transaction — so no path leaks one.  Values
 * inside a document are borrowed and must not outlive it.
 *
 * Copyright (c) 2026, the omnichan authors
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <jansson.h>

#include "utils/memutils.h"

#include "json.h"

#define AS_JSON(v)	((json_t *) (v))
#define AS_OC(v)	((OcJson *) (v))

static void ReleaseDocument(void *arg);
static json_t *NewObject(void);
static OcJson *Own(json_t *root);
static void Check(int rc, const char *what);

/*
 * NewObject
 *		An empty JSON object.  Not json_object(): the server exports a SQL
 *		function of that name, which the dynamic linker would bind our call
 *		to; json_pack() reaches jansson's own json_object() from inside
 *		libjansson, where the call is bound locally.
 */
static json_t *
NewObject(void)
{
	return json_pack("{}");
}

/* ReleaseDocument: memory context reset callback */
static void
ReleaseDocument(void *arg)
{
	json_decref(AS_JSON(arg));
}

/*
 * Own
 *		Ties a new jansson document to the current memory context.
 */
static OcJson *
Own(json_t *root)
{
	MemoryContextCallback *cb;

	if (root == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	cb = MemoryContextAllocExtended(CurrentMemoryContext, sizeof(MemoryContextCallback),
									MCXT_ALLOC_NO_OOM);
	if (cb == NULL)
	{
		json_decref(root);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	cb->func = ReleaseDocument;
	cb->arg = root;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	return AS_OC(root);
}

/* Check: a jansson builder call failed (out of memory) */
static void
Check(int rc, const char *what)
{
	if (rc != 0)
		elog(ERROR, "could not build JSON (%s)", what);
}

/*
 * OcJsonParse
 *		Parses untrusted input.  The error message never quotes the input.
 */
OcJson *
OcJsonParse(const char *text, size_t len, char **error)
{
	json_error_t err;
	json_t	   *root;

	*error = NULL;
	if (text == NULL)
	{
		*error = pstrdup("empty body");
		return NULL;
	}
	root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (root == NULL)
	{
		*error = psprintf("invalid JSON at line %d, column %d", err.line, err.column);
		return NULL;
	}
	return Own(root);
}

OcJson *
OcJsonNewObject(void)
{
	return Own(NewObject());
}

OcJson *
OcJsonNewArray(void)
{
	return Own(json_array());
}

OcJson *
OcJsonGet(OcJson *object, const char *key)
{
	if (object == NULL || !json_is_object(AS_JSON(object)))
		return NULL;
	return AS_OC(json_object_get(AS_JSON(object), key));
}

OcJson *
OcJsonAt(OcJson *array, int index)
{
	if (array == NULL || !json_is_array(AS_JSON(array)) || index < 0)
		return NULL;
	return AS_OC(json_array_get(AS_JSON(array), (size_t) index));
}

int
OcJsonLength(OcJson *array)
{
	if (array == NULL || !json_is_array(AS_JSON(array)))
		return -1;
	return (int) json_array_size(AS_JSON(array));
}

/*
 * OcJsonPath
 *		Follows a dotted path; numeric parts index arrays ("errors.0.code").
 */
OcJson *
OcJsonPath(OcJson *value, const char *path)
{
	char		part[256];
	const char *p = path;

	while (value != NULL && *p)
	{
		const char *dot = strchr(p, '.');
		size_t		n = dot ? (size_t) (dot - p) : strlen(p);
		char	   *end;
		long		idx;

		if (n >= sizeof(part))
			return NULL;
		memcpy(part, p, n);
		part[n] = '\0';
		idx = strtol(part, &end, 10);
		if (n > 0 && *end == '\0' && json_is_array(AS_JSON(value)))
			value = OcJsonAt(value, (int) idx);
		else
			value = OcJsonGet(value, part);
		p = dot ? dot + 1 : p + n;
	}
	return value;
}

const char *
OcJsonString(OcJson *value)
{
	if (value == NULL || !json_is_string(AS_JSON(value)))
		return NULL;
	return json_string_value(AS_JSON(value));
}

bool
OcJsonInt(OcJson *value, int64 *out)
{
	json_t	   *v = AS_JSON(value);

	if (v == NULL)
		return false;
	if (json_is_integer(v))
	{
		*out = (int64) json_integer_value(v);
		return true;
	}
	if (json_is_real(v))
	{
		double		d = json_real_value(v);

		if (d == (double) (int64) d)
		{
			*out = (int64) d;
			return true;
		}
		return false;
	}
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		char	   *end;
		long long	n;

		if (*s == '\0')
			return false;
		errno = 0;
		n = strtoll(s, &end, 10);
		if (*end != '\0' || errno != 0)
			return false;
		*out = (int64) n;
		return true;
	}
	return false;
}

bool
OcJsonNumber(OcJson *value, double *out)
{
	json_t	   *v = AS_JSON(value);

	if (v == NULL || !json_is_number(v))
		return false;
	*out = json_number_value(v);
	return true;
}

bool
OcJsonIsObject(OcJson *value)
{
	return value != NULL && json_is_object(AS_JSON(value));
}

bool
OcJsonIsNull(OcJson *value)
{
	return value == NULL || json_is_null(AS_JSON(value));
}

void
OcJsonSetString(OcJson *object, const char *key, const char *value)
{
	Check(json_object_set_new(AS_JSON(object), key,
							  value ? json_string(value) : json_null()), key);
}

void
OcJsonSetInt(OcJson *object, const char *key, int64 value)
{
	Check(json_object_set_new(AS_JSON(object), key, json_integer((json_int_t) value)), key);
}

void
OcJsonSetNumber(OcJson *object, const char *key, double value)
{
	Check(json_object_set_new(AS_JSON(object), key, json_real(value)), key);
}

void
OcJsonSetBool(OcJson *object, const char *key, bool value)
{
	Check(json_object_set_new(AS_JSON(object), key, json_boolean(value)), key);
}

OcJson *
OcJsonSetObject(OcJson *object, const char *key)
{
	json_t	   *child = NewObject();

	Check(json_object_set_new(AS_JSON(object), key, child), key);
	return AS_OC(child);
}

OcJson *
OcJsonSetArray(OcJson *object, const char *key)
{
	json_t	   *child = json_array();

	Check(json_object_set_new(AS_JSON(object), key, child), key);
	return AS_OC(child);
}

void
OcJsonSetCopy(OcJson *object, const char *key, OcJson *value)
{
	Check(json_object_set_new(AS_JSON(object), key, json_deep_copy(AS_JSON(value))), key);
}

OcJson *
OcJsonAppendObject(OcJson *array)
{
	json_t	   *child = NewObject();

	Check(json_array_append_new(AS_JSON(array), child), "array element");
	return AS_OC(child);
}

void
OcJsonAppendString(OcJson *array, const char *value)
{
	Check(json_array_append_new(AS_JSON(array), json_string(value)), "array element");
}

void
OcJsonAppendCopy(OcJson *array, OcJson *value)
{
	Check(json_array_append_new(AS_JSON(array), json_deep_copy(AS_JSON(value))), "array element");
}

/*
 * OcJsonDump
 *		Compact serialization, palloc'd (jansson's malloc'd buffer is freed
 *		on every path).
 */
char *
OcJsonDump(OcJson *value)
{
	char	   *volatile dumped = json_dumps(AS_JSON(value), JSON_COMPACT | JSON_ENCODE_ANY);
	char	   *result = NULL;

	if (dumped == NULL)
		elog(ERROR, "could not serialize JSON");
	PG_TRY();
	{
		result = pstrdup(dumped);
	}
	PG_FINALLY();
	{
		free(dumped);
	}
	PG_END_TRY();
	return result;
}
