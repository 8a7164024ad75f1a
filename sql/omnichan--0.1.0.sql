/*-------------------------------------------------------------------------
 *
 * omnichan--0.1.0.sql
 *	  Install script of omnichan 0.1.0.
 *
 * Everything lives in schema "omnichan" (created by CREATE EXTENSION, see
 * omnichan.control).  Objects are written defensively against search_path:
 * every reference is schema-qualified.  Sections follow the parts of the
 * system (ARCHITECTURE.md); later versions ship upgrade scripts
 * omnichan--0.1.0--X.sql and never edit this file once released.
 *
 *-------------------------------------------------------------------------
 */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION omnichan" to load this file. \quit

-------------------------------------------------------------------------------
-- Module
-------------------------------------------------------------------------------

CREATE FUNCTION omnichan.library_version()
RETURNS text
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE
AS 'MODULE_PATHNAME', 'omnichan_library_version';

COMMENT ON FUNCTION omnichan.library_version() IS
'Version of the loaded omnichan shared library; compare with pg_extension.extversion.';

REVOKE ALL ON SCHEMA omnichan FROM PUBLIC;
