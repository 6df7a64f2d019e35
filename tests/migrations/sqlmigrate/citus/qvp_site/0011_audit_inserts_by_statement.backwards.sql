BEGIN;
--
-- Raw SQL operation
--
-- The audit chain without a global queue (see qvp_site/db/audit.py). Installed by qvp_site
-- 0010, over version 0002: a writer no longer takes the chain's head. The row trigger writes
-- the entry alone; the sealer (qvp_site/audit_sealer.py) links the entries committed since its
-- last round, in the order it finds them, with qvp_audit_link, then signs the new head with a
-- key the database never holds. Every function of the chain is here, so that verify_audit
-- can hold the installed ones to this file (qvp_audit_hash as version 0002 had it).

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

-- Kept because released migrations put its statement trigger on every audited table; since
-- 0010 it takes nothing (the head it took made audited transactions wait for each other).
CREATE OR REPLACE FUNCTION qvp_audit_lock_head() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    RETURN NULL;
END $$;

-- One entry per changed row, unlinked (seq, prev_hash and hash are the sealer's). The trigger's
-- arguments name columns kept out of the record (a password hash, a token's digest, a login's
-- time); an update that changes no other column writes no entry. Rows are rendered in UTC,
-- whatever the writer's time zone, so that an entry compares with the row it records.
CREATE OR REPLACE FUNCTION qvp_audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    left_out text[] := '{}';
    old_row jsonb;
    new_row jsonb;
BEGIN
    IF TG_NARGS > 0 THEN left_out := TG_ARGV; END IF;
    IF TG_OP <> 'INSERT' THEN old_row := to_jsonb(OLD) - left_out; END IF;
    IF TG_OP <> 'DELETE' THEN new_row := to_jsonb(NEW) - left_out; END IF;
    IF TG_OP = 'UPDATE' AND old_row = new_row THEN
        RETURN NULL;
    END IF;
    INSERT INTO qvp_site_auditentry (table_name, row_key, operation, old_row, new_row, actor,
                                     db_role, at)
    VALUES (TG_TABLE_NAME, coalesce(new_row, old_row) ->> 'id', TG_OP, old_row, new_row,
            -- The hash joins the fields with 0x1F: none may hold one (the actor is whatever
            -- the application set), or a field's end could be moved and keep the hash.
            translate(coalesce(nullif(current_setting('qvp.actor', true), ''), session_user),
                      chr(31), ''),
            session_user, clock_timestamp());
    RETURN NULL;
END $$;

-- The state of every row of `relation` when its auditing begins, one SNAPSHOT entry each, so
-- that every live row has a recorded state to be compared with (verify_audit).
CREATE OR REPLACE FUNCTION qvp_audit_snapshot(relation regclass, left_out text[] DEFAULT '{}')
RETURNS bigint
LANGUAGE plpgsql SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    written bigint;
BEGIN
    EXECUTE format(
        'INSERT INTO qvp_site_auditentry (table_name, row_key, operation, new_row, actor,'
        ' db_role, at) SELECT %L, r.id::text, ''SNAPSHOT'', to_jsonb(r) - $1, ''migration'','
        ' session_user, clock_timestamp() FROM %s r ORDER BY r.id',
        (SELECT relname FROM pg_class WHERE oid = relation), relation)
    USING left_out;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END $$;
REVOKE ALL ON FUNCTION qvp_audit_snapshot(regclass, text[]) FROM PUBLIC;

-- The sealer's step in the database: link up to `max_entries` entries not linked yet, oldest
-- first, each to the one before, and move the head; returns the head and how many were
-- linked. Entries of transactions still open are not visible and are linked by a later round,
-- after those linked now: the chain's order (seq) is the order entries were linked in. The
-- head's row lock lets one linker run at a time.
CREATE OR REPLACE FUNCTION qvp_audit_link(max_entries integer DEFAULT 100000)
RETURNS TABLE (head_seq bigint, head_hash text, linked integer)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    at_seq bigint;
    at_hash text;
    at_entry bigint;
    entry record;
    ids bigint[] := '{}';
    links text[] := '{}';
    hashes text[] := '{}';
BEGIN
    SELECT h.last_seq, h.last_hash, h.last_id INTO at_seq, at_hash, at_entry
    FROM qvp_audit_head h FOR UPDATE;
    FOR entry IN
        SELECT e.id, e.table_name, e.row_key, e.operation, e.old_row, e.new_row, e.actor,
               e.db_role, e.at
        FROM qvp_site_auditentry e WHERE e.seq IS NULL ORDER BY e.id LIMIT max_entries
    LOOP
        ids := ids || entry.id;
        links := links || at_hash;
        at_hash := qvp_audit_hash(at_hash, entry.id, entry.table_name, entry.row_key,
                                  entry.operation, entry.old_row, entry.new_row, entry.actor,
                                  entry.db_role, entry.at);
        hashes := hashes || at_hash;
        at_entry := entry.id;
    END LOOP;
    IF cardinality(ids) > 0 THEN
        UPDATE qvp_site_auditentry e
        SET seq = at_seq + l.n, prev_hash = l.link, hash = l.entry_hash
        FROM unnest(ids, links, hashes) WITH ORDINALITY AS l(entry_id, link, entry_hash, n)
        WHERE e.id = l.entry_id;
        at_seq := at_seq + cardinality(ids);
        UPDATE qvp_audit_head h SET last_seq = at_seq, last_hash = at_hash, last_id = at_entry;
    END IF;
    RETURN QUERY SELECT at_seq, at_hash, cardinality(ids);
END $$;
REVOKE ALL ON FUNCTION qvp_audit_link(integer) FROM PUBLIC;

-- Entries are append-only: the one change allowed is the sealer's linking of an entry not
-- linked yet, which leaves its content as it was.
CREATE OR REPLACE FUNCTION qvp_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
       AND (NEW.id, NEW.table_name, NEW.row_key, NEW.operation, NEW.old_row, NEW.new_row,
            NEW.actor, NEW.db_role, NEW.at)
           IS NOT DISTINCT FROM (OLD.id, OLD.table_name, OLD.row_key, OLD.operation,
                                 OLD.old_row, OLD.new_row, OLD.actor, OLD.db_role, OLD.at)
    THEN
        RETURN NEW;
    END IF;
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
    UPDATE qvp_audit_head SET last_id = NULL, last_seq = 0, locked_by = NULL, heartbeat = NULL,
        last_hash = '0000000000000000000000000000000000000000000000000000000000000000';
    RETURN NULL;
END $$;

-- Signed checkpoints are append-only too (qvp_site_auditcheckpoint).
CREATE OR REPLACE FUNCTION qvp_audit_refuse_checkpoint_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit checkpoints are append-only: % of checkpoint % refused', TG_OP, OLD.id
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE OR REPLACE TRIGGER qvp_audit_checkpoint_append_only
    BEFORE UPDATE OR DELETE ON qvp_site_auditcheckpoint
    FOR EACH ROW EXECUTE FUNCTION qvp_audit_refuse_checkpoint_change();
CREATE OR REPLACE TRIGGER qvp_audit_checkpoint_truncate BEFORE TRUNCATE ON qvp_site_auditcheckpoint
    FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_guard_truncate();
REVOKE ALL ON FUNCTION qvp_audit_lock_head(), qvp_audit_row() FROM PUBLIC;

--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON risk_risklimit;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "risk_risklimit" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "risk_risklimit" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON marketdata_corporateaction;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "marketdata_corporateaction" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "marketdata_corporateaction" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON marketdata_listing;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "marketdata_listing" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "marketdata_listing" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON marketdata_ingest;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "marketdata_ingest" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "marketdata_ingest" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_actionentry;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_actionentry" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_actionentry" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_cashentry;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_cashentry" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_cashentry" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_position;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_position" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_position" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_execution;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_execution" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_execution" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_order;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_order" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_order" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_account_groups;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_account_groups" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_account_groups" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON trading_account;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "trading_account" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "trading_account" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON qvp_site_apitoken;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "qvp_site_apitoken" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "qvp_site_apitoken" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row('digest', 'last_used_at');
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_group_permissions;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_group_permissions" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_group_permissions" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_user_user_permissions;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_user_user_permissions" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_user_user_permissions" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_user_groups;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_user_groups" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_user_groups" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON django_content_type;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "django_content_type" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "django_content_type" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_permission;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_permission" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_permission" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_group;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_group" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_group" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();
--
-- Raw SQL operation
--
DROP TRIGGER IF EXISTS qvp_audit_insert ON auth_user;
CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON "auth_user" FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();
CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON "auth_user" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row('password', 'last_login');
--
-- Raw SQL operation
--
DROP FUNCTION IF EXISTS qvp_audit_install(regclass, text[]), qvp_audit_by_statement(regclass), qvp_audit_insert();
COMMIT;
