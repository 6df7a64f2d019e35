BEGIN;
--
-- Raw SQL operation
--
-- Compression that leaves nothing open (TimescaleDB). A compressed chunk is a new table that
-- TimescaleDB gives its hypertable's grants, and no trigger fires when it is made: compressed
-- by TimescaleDB's own policy, it stayed open to the application role (SELECT, INSERT around
-- the load path) until something closed it. Here a chunk is compressed and closed in one
-- transaction, so no other session ever sees it open: `maintain` and the job that replaces
-- TimescaleDB's compression policy (qvp_site/db/operations.py, ReplaceCompressionPolicy) both call
-- qvp_compress_chunks. Installed by qvp_site 0009, on both engines (plain PostgreSQL never
-- calls them).

-- Every grant but the owner's taken off the relations of TimescaleDB's chunks' schema that
-- are not the extension's own (chunks, compressed chunks, the hypertables behind compression
-- and continuous aggregates); returns those closed. create_db_roles calls it
-- (qvp_site/db/roles.py), and maintain after compressing (qvp_site/db/maintenance.py).
CREATE OR REPLACE FUNCTION qvp_close_timescaledb_chunks() RETURNS SETOF regclass
LANGUAGE sql SET search_path = public, pg_temp AS $$
    SELECT qvp_close_relations(ARRAY(
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = (SELECT oid FROM pg_namespace
                                WHERE nspname = '_timescaledb_internal')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                          AND d.objid = c.oid AND d.deptype = 'e')))
$$;
REVOKE ALL ON FUNCTION qvp_close_timescaledb_chunks() FROM PUBLIC;

-- Compresses the chunks of `hypertable` older than `older_than` (those compressed already
-- are left, those with rows added since compression are recompressed), then closes the
-- relations that made in its chunks' schemas, and those only: a job closing the whole schema
-- would touch relations other sessions are making or dropping. What is new is read from
-- pg_class before and after, not from TimescaleDB's catalog, whose shape changes between
-- versions. Returns the number of chunks compressed or already so. The owner's: compressing
-- needs the hypertable's ownership.
CREATE OR REPLACE FUNCTION qvp_compress_chunks(hypertable regclass, older_than interval)
RETURNS integer
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    schemas oid[];
    existing oid[];
    compressed integer;
BEGIN
    schemas := ARRAY(SELECT DISTINCT c.relnamespace FROM pg_class c
                     WHERE c.oid IN (SELECT show_chunks(hypertable)));
    existing := ARRAY(SELECT c.oid FROM pg_class c WHERE c.relnamespace = ANY (schemas));
    SELECT count(compress_chunk(c, if_not_compressed => true)) INTO compressed
    FROM show_chunks(hypertable, older_than => older_than) c;
    PERFORM qvp_close_relations(ARRAY(
        SELECT c.oid::regclass FROM pg_class c
        WHERE c.relnamespace = ANY (schemas) AND c.oid <> ALL (existing)
          AND c.relkind IN ('r', 'p')));
    RETURN compressed;
END
$$;
REVOKE ALL ON FUNCTION qvp_compress_chunks(regclass, interval) FROM PUBLIC;

-- The TimescaleDB job (add_job) that replaces a table's compression policy: its config holds
-- the table and the age to compress after, {"hypertable": ..., "compress_after": ...}. It runs
-- as the job's owner, the one who migrated.
CREATE OR REPLACE PROCEDURE qvp_compress_job(job_id integer, config jsonb)
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    IF config->>'hypertable' IS NULL OR config->>'compress_after' IS NULL THEN
        RAISE EXCEPTION 'job %: config needs "hypertable" and "compress_after", not %',
            job_id, config;
    END IF;
    PERFORM qvp_compress_chunks((config->>'hypertable')::regclass,
                                (config->>'compress_after')::interval);
END
$$;
REVOKE ALL ON PROCEDURE qvp_compress_job(integer, jsonb) FROM PUBLIC;

COMMIT;
