--
-- drop_clean: CREATE EXTENSION omnichan followed by DROP EXTENSION omnichan
-- leaves no object behind, in any catalog, on Odoo's tables included.
--
CREATE TEMP TABLE catalog_snapshot (catalog text, objid oid);
CREATE FUNCTION pg_temp.take_snapshot() RETURNS SETOF catalog_snapshot
LANGUAGE sql AS $$
    SELECT 'pg_class', oid FROM pg_class
    UNION ALL SELECT 'pg_proc', oid FROM pg_proc
    UNION ALL SELECT 'pg_type', oid FROM pg_type
    UNION ALL SELECT 'pg_namespace', oid FROM pg_namespace
    UNION ALL SELECT 'pg_trigger', oid FROM pg_trigger
    UNION ALL SELECT 'pg_event_trigger', oid FROM pg_event_trigger
    UNION ALL SELECT 'pg_constraint', oid FROM pg_constraint
    UNION ALL SELECT 'pg_attrdef', oid FROM pg_attrdef
    UNION ALL SELECT 'pg_rewrite', oid FROM pg_rewrite
    UNION ALL SELECT 'pg_policy', oid FROM pg_policy
    UNION ALL SELECT 'pg_cast', oid FROM pg_cast
    UNION ALL SELECT 'pg_operator', oid FROM pg_operator
    UNION ALL SELECT 'pg_extension', oid FROM pg_extension
    UNION ALL SELECT 'pg_default_acl', oid FROM pg_default_acl
    UNION ALL SELECT 'pg_init_privs', objoid FROM pg_init_privs
    UNION ALL SELECT 'pg_publication', oid FROM pg_publication
$$;
INSERT INTO catalog_snapshot SELECT * FROM pg_temp.take_snapshot();

CREATE EXTENSION omnichan;
SELECT count(*) > 0 AS extension_has_members
  FROM pg_depend
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'omnichan');
DROP EXTENSION omnichan;

-- anything that exists now and did not exist before is a leftover
SELECT s.catalog, s.objid
  FROM pg_temp.take_snapshot() s
EXCEPT
SELECT catalog, objid FROM catalog_snapshot;

SELECT count(*) AS omnichan_schemas FROM pg_namespace WHERE nspname = 'omnichan';

DROP FUNCTION pg_temp.take_snapshot();
DROP TABLE catalog_snapshot;
