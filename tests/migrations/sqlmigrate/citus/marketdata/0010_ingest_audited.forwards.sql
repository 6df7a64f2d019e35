BEGIN;
--
-- Raw SQL operation
--
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "marketdata_ingest" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "marketdata_ingest" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
SELECT qvp_audit_snapshot('marketdata_ingest'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
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
    identity constant text[] := ARRAY['id', 'file_name', 'path', 'kind', 'symbol', 'os_user',
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
    -- The user deleted: the one change any load may take (marketdata_ingest_user_gone checks
    -- at commit that the user is gone indeed).
    IF NEW.user_id IS NULL THEN
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

-- A load's record starts as the load starts: running, unfinished, dated now (within a few
-- minutes, for the clocks of the application's and the database's machines). One inserted
-- finished or backdated would be a load that never ran, which no update rule would see.
CREATE OR REPLACE FUNCTION marketdata_ingest_started() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    IF NEW.status <> 'running' OR NEW.finished_at IS NOT NULL THEN
        RAISE EXCEPTION 'a load''s record starts running and unfinished (not %)', NEW.status
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ingest_starts_running';
    END IF;
    IF NEW.started_at NOT BETWEEN now() - interval '5 minutes'
                              AND clock_timestamp() + interval '5 minutes' THEN
        RAISE EXCEPTION 'a load''s record is dated when it starts, not %', NEW.started_at
            USING ERRCODE = 'check_violation', CONSTRAINT = 'ingest_starts_now';
    END IF;
    RETURN NEW;
END
$$;

CREATE OR REPLACE TRIGGER marketdata_ingest_started BEFORE INSERT ON marketdata_ingest
FOR EACH ROW EXECUTE FUNCTION marketdata_ingest_started();

-- At commit: a load's user became NULL only because the user is deleted (Django's SET_NULL
-- runs before the user's DELETE, in the same transaction), never to erase who it was.
CREATE OR REPLACE FUNCTION marketdata_ingest_user_gone() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    IF NEW.user_id IS NULL AND OLD.user_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM auth_user WHERE id = OLD.user_id) THEN
        RAISE EXCEPTION 'ingest %: its user % is named until the user is deleted', OLD.id,
            OLD.user_id USING ERRCODE = 'check_violation', CONSTRAINT = 'ingest_user_kept';
    END IF;
    RETURN NULL;
END
$$;

DROP TRIGGER IF EXISTS marketdata_ingest_user_gone ON marketdata_ingest;
CREATE CONSTRAINT TRIGGER marketdata_ingest_user_gone
AFTER UPDATE OF user_id ON marketdata_ingest DEFERRABLE INITIALLY DEFERRED
FOR EACH ROW EXECUTE FUNCTION marketdata_ingest_user_gone();

COMMIT;
