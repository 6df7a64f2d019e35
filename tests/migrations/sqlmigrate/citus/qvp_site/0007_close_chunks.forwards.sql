BEGIN;
--
-- Raw SQL operation
--
-- TimescaleDB copies a hypertable's grants to each chunk it makes, so a chunk made by a load
-- would be open to whoever may use its hypertable: named directly, it shows and changes rows
-- around the hypertable's row-level security and statement triggers. This trigger, put on
-- every hypertable by `manage.py create_db_roles` (qvp_site/db/roles.py), takes every grant
-- but the owner's off the hypertable's chunks at the end of each statement that may have made
-- one, before any other session can see it. Reads and writes through the hypertable check the
-- hypertable's grants only. Installed by qvp_site 0007.

-- The one way relations are closed: every grant but the owner's taken off each of
-- ``relations``; returns those that had any. The trigger below closes a hypertable's chunks
-- with it, create_db_roles and maintain the whole chunks' schema (qvp_site/db/roles.py).
CREATE OR REPLACE FUNCTION qvp_close_relations(relations regclass[]) RETURNS SETOF regclass
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    relation regclass;
    grantees text;
BEGIN
    FOR relation, grantees IN
        SELECT c.oid::regclass,
               string_agg(DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                                        ELSE quote_ident(r.rolname) END, ', ')
        FROM pg_class c
        CROSS JOIN LATERAL aclexplode(c.relacl) AS a
        LEFT JOIN pg_roles r ON r.oid = a.grantee
        WHERE c.oid = ANY (relations) AND a.grantee <> c.relowner
        GROUP BY c.oid
    LOOP
        EXECUTE format('REVOKE ALL ON TABLE %s FROM %s', relation, grantees);
        RETURN NEXT relation;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION qvp_close_relations(regclass[]) FROM PUBLIC;

CREATE OR REPLACE FUNCTION qvp_close_chunks() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM qvp_close_relations(
        ARRAY(SELECT i.inhrelid::regclass FROM pg_inherits i WHERE i.inhparent = TG_RELID));
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION qvp_close_chunks() FROM PUBLIC;

COMMIT;
