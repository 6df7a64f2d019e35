-- A load's record (marketdata_ingest) is the load's word on what it was: the revisions it kept
-- name it, and the merges check it (marketdata/sql/revisions/0009.sql: the load must be
-- running, of the same kind and symbol). Installed by marketdata 0010 with the table's audit
-- triggers. Whichever role writes, through whichever door:
--
-- * what identifies a load is set when it starts and never changes: its file (file_name,
--   path), its kind and symbol, who started it (os_user; user_id, which may only become NULL:
--   Django's SET_NULL when the user is deleted, the audit log keeping who it was) and when
--   (started_at);
-- * a load that has finished (loaded, refused, failed) is final: nothing else changes. While it
--   runs, its outcome is filled in (status, counts, sha256, instrument, rejects file, error).
--   The pipeline's last save writes every column, those unchanged with their own values;
-- * a load's record is never deleted (the application's role has no DELETE on the table:
--   marketdata/apps.py; this refuses the owner too, and nothing in the product deletes one).
--
-- The owner could drop or disable this trigger; what it then lets through is still recorded
-- by the table's audit trigger (and with that one off too, verify_audit finds the live row
-- unlike the last state the log records).
CREATE OR REPLACE FUNCTION marketdata_ingest_kept() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    identity constant text[] := ARRAY['file_name', 'path', 'kind', 'symbol', 'os_user',
                                      'started_at', 'user_id'];
    changed text[];
    fixed text[];
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'ingest % (%) is the record of a load: it is never deleted',
            OLD.id, OLD.status
            USING ERRCODE = 'restrict_violation', CONSTRAINT = 'ingest_kept';
    END IF;
    -- Every column the update changes, by name: a column added later is covered too.
    SELECT coalesce(array_agg(n.key ORDER BY n.key), '{}') INTO changed
    FROM jsonb_each(to_jsonb(NEW)) AS n JOIN jsonb_each(to_jsonb(OLD)) AS o USING (key)
    WHERE n.value IS DISTINCT FROM o.value;
    IF NEW.user_id IS NULL THEN  -- the user deleted: the one change any load may take
        changed := array_remove(changed, 'user_id');
    END IF;
    SELECT coalesce(array_agg(c ORDER BY c), '{}') INTO fixed
    FROM unnest(changed) AS c WHERE c = ANY (identity);
    IF cardinality(fixed) > 0 THEN
        RAISE EXCEPTION 'ingest %: % never changes (what identifies a load)',
            OLD.id, array_to_string(fixed, ', ')
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ingest_identity_unchanged';
    END IF;
    IF OLD.status <> 'running' AND cardinality(changed) > 0 THEN
        RAISE EXCEPTION 'ingest % is %: a finished load is final (% not changed)',
            OLD.id, OLD.status, array_to_string(changed, ', ')
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ingest_finished_final';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_ingest_kept BEFORE UPDATE OR DELETE ON marketdata_ingest
FOR EACH ROW EXECUTE FUNCTION marketdata_ingest_kept();
