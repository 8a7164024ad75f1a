--
-- install: the extension installs in a preloaded server, reports its
-- version, defines its settings and reserves the omnichan.* prefix.
--
-- a database without Odoo's tables is refused with a clear error
\set regress_db :DBNAME
\c postgres
\set VERBOSITY sqlstate
CREATE EXTENSION omnichan;
\set VERBOSITY default
\set SHOW_CONTEXT never
CREATE EXTENSION omnichan;
\unset SHOW_CONTEXT
SELECT count(*) AS installed FROM pg_extension WHERE extname = 'omnichan';
\c :regress_db

CREATE EXTENSION omnichan;

-- the SQL script and the loaded library agree on the version
SELECT extversion = omnichan.library_version() AS versions_match,
       extrelocatable
  FROM pg_extension WHERE extname = 'omnichan';

-- every object of the extension lives in schema omnichan (or is an index
-- on an Odoo table that the extension owns)
SELECT DISTINCT pg_describe_object(d.classid, d.objid, 0) ~ '^(schema omnichan|.* omnichan\.)' AS in_schema
  FROM pg_depend d
 WHERE d.refclassid = 'pg_extension'::regclass
   AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'omnichan')
   AND d.deptype = 'e';

-- the extension cannot be moved to another schema
ALTER EXTENSION omnichan SET SCHEMA public;

-- every setting has a description and the right context
SELECT name, setting, unit, context, vartype, short_desc <> '' AS described,
       extra_desc <> '' AS explained
  FROM pg_settings WHERE name LIKE 'omnichan.%' ORDER BY name;

-- the prefix is reserved: a typo is an error, not a silent placeholder
SET omnichan.count_manual_quotation = on;

-- superuser-only settings cannot be changed by an ordinary role
CREATE ROLE omnichan_install_probe;
SET ROLE omnichan_install_probe;
SET omnichan.count_manual_quotations = on;
RESET ROLE;
DROP ROLE omnichan_install_probe;

-- the schema is not open to PUBLIC
SELECT has_schema_privilege('public', 'omnichan', 'USAGE') AS public_usage;
