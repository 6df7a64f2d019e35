BEGIN;
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "qvp_site_apitoken";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "qvp_site_apitoken";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_group_permissions";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_group_permissions";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_user_user_permissions";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_user_user_permissions";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_user_groups";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_user_groups";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "django_content_type";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "django_content_type";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_permission";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_permission";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_group";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_group";
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit ON "auth_user";
DROP TRIGGER IF EXISTS qvp_audit_lock ON "auth_user";
--
-- Raw SQL operation
--

SELECT qvp_audit_link();
DROP TRIGGER IF EXISTS qvp_audit_checkpoint_append_only ON qvp_site_auditcheckpoint;
DROP TRIGGER IF EXISTS qvp_audit_checkpoint_truncate ON qvp_site_auditcheckpoint;
DROP FUNCTION IF EXISTS qvp_audit_link(integer), qvp_audit_snapshot(regclass, text[]),
    qvp_audit_refuse_checkpoint_change();
ALTER TABLE qvp_audit_head DROP COLUMN last_seq, DROP COLUMN heartbeat;
-- The audit log's hash chain, its head, the audit triggers' functions and the log's
-- protection (see qvp_site/db/audit.py). Installed by qvp_site 0002.
CREATE TABLE IF NOT EXISTS qvp_audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id bigint,
    last_hash text NOT NULL,
    locked_by xid8
);
INSERT INTO qvp_audit_head (singleton, last_id, last_hash) VALUES (true, NULL, '0000000000000000000000000000000000000000000000000000000000000000')
ON CONFLICT DO NOTHING;

-- The one definition of an entry's hash, used by the trigger and by verify_audit.
CREATE OR REPLACE FUNCTION qvp_audit_hash(
    prev_hash text, id bigint, table_name text, row_key text, operation text,
    old_row jsonb, new_row jsonb, actor text, db_role text, at timestamptz
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(concat_ws(E'\x1f',
        prev_hash, id::text, table_name, row_key, operation,
        coalesce(old_row::text, ''), coalesce(new_row::text, ''), actor, db_role,
        extract(epoch FROM at)::text), 'UTF8')), 'hex')
$$;

-- Before each audited statement: take the head, once per transaction (again if a rolled-back
-- savepoint or an early seal let it go), and start from the last entry written.
CREATE OR REPLACE FUNCTION qvp_audit_lock_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    last_entry record;
BEGIN
    UPDATE qvp_audit_head SET locked_by = pg_current_xact_id()
    WHERE locked_by IS DISTINCT FROM pg_current_xact_id();
    IF FOUND THEN
        SELECT id, hash INTO last_entry FROM qvp_site_auditentry ORDER BY id DESC LIMIT 1;
        PERFORM set_config('qvp.audit_last_hash', coalesce(last_entry.hash, '0000000000000000000000000000000000000000000000000000000000000000'), true);
        PERFORM set_config('qvp.audit_last_id', coalesce(last_entry.id::text, ''), true);
    END IF;
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION qvp_audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    prev_hash text := current_setting('qvp.audit_last_hash');
    old_row jsonb;
    new_row jsonb;
    entry_id bigint;
    entry_key text;
    entry_actor text := coalesce(nullif(current_setting('qvp.actor', true), ''), session_user);
    entry_at timestamptz := clock_timestamp();
    entry_hash text;
BEGIN
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD); END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW); END IF;
    entry_key := coalesce(new_row, old_row) ->> 'id';
    entry_id := nextval('qvp_site_auditentry_id_seq'::regclass);
    entry_hash := qvp_audit_hash(prev_hash, entry_id, TG_TABLE_NAME, entry_key, TG_OP,
                                 old_row, new_row, entry_actor, session_user, entry_at);
    INSERT INTO qvp_site_auditentry (id, table_name, row_key, operation, old_row, new_row, actor,
                               db_role, at, prev_hash, hash)
    VALUES (entry_id, TG_TABLE_NAME, entry_key, TG_OP, old_row, new_row, entry_actor,
            session_user, entry_at, prev_hash, entry_hash);
    PERFORM set_config('qvp.audit_last_hash', entry_hash, true);
    PERFORM set_config('qvp.audit_last_id', entry_id::text, true);
    RETURN NULL;
END $$;

-- At commit: the head records the last entry this transaction wrote (as it wrote it) and
-- lets go.
CREATE OR REPLACE FUNCTION qvp_audit_seal() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE qvp_audit_head SET locked_by = NULL,
        last_id = nullif(current_setting('qvp.audit_last_id', true), '')::bigint,
        last_hash = current_setting('qvp.audit_last_hash', true);
    RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION qvp_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % of entry % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END $$;

-- Emptying the log (test flushes) starts a new chain; outside tests it is refused.
CREATE OR REPLACE FUNCTION qvp_audit_guard_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF coalesce(current_setting('qvp.allow_audit_truncate', true), '') <> 'on' THEN
        RAISE EXCEPTION 'the audit log is append-only: TRUNCATE refused'
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    UPDATE qvp_audit_head SET last_id = NULL, last_hash = '0000000000000000000000000000000000000000000000000000000000000000', locked_by = NULL;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER qvp_audit_append_only BEFORE UPDATE OR DELETE ON qvp_site_auditentry
    FOR EACH ROW EXECUTE FUNCTION qvp_audit_refuse_change();
CREATE OR REPLACE TRIGGER qvp_audit_truncate BEFORE TRUNCATE ON qvp_site_auditentry
    FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_guard_truncate();
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
CREATE CONSTRAINT TRIGGER qvp_audit_seal AFTER UPDATE ON qvp_audit_head
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.locked_by IS NOT NULL)
    EXECUTE FUNCTION qvp_audit_seal();
REVOKE ALL ON FUNCTION qvp_audit_lock_head(), qvp_audit_row(), qvp_audit_seal() FROM PUBLIC;

--
-- Raw SQL operation
--
-- (no-op)
--
-- Create index audit_unlinked_idx on field(s) id of model auditentry
--
DROP INDEX IF EXISTS "audit_unlinked_idx";
--
-- Custom state/database change combination
--
-- (no-op)
--
-- Alter field prev_hash on auditentry
--
ALTER TABLE "qvp_site_auditentry" ALTER COLUMN "prev_hash" SET NOT NULL;
--
-- Alter field hash on auditentry
--
ALTER TABLE "qvp_site_auditentry" ALTER COLUMN "hash" SET NOT NULL;
--
-- Add field seq to auditentry
--
ALTER TABLE "qvp_site_auditentry" DROP COLUMN "seq" CASCADE;
--
-- Create index audit_checkpoint_seq_idx on field(s) -seq of model auditcheckpoint
--
DROP INDEX IF EXISTS "audit_checkpoint_seq_idx";
--
-- Create model AuditCheckpoint
--
DROP TABLE "qvp_site_auditcheckpoint" CASCADE;
COMMIT;
