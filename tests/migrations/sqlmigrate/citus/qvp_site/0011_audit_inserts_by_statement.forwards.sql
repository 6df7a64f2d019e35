BEGIN;
--
-- Raw SQL operation
--
-- The audit chain with inserts recorded by statement (see qvp_site/db/audit.py). Installed by
-- qvp_site 0011, over version 0010: an INSERT writes its entries in one statement, from its
-- transition table, instead of one trigger call per row; updates and deletes stay row by row
-- (an update that changes nothing writes no entry, which a statement would have to find by
-- joining old and new rows on a key the table may not have). The entries are the same as the
-- row trigger's, column for column, in the rows' order. Every function of the chain is here,
-- so that verify_audit can hold the installed ones to this file. qvp_audit_lock_head is gone:
-- its statement trigger took nothing since 0010 and cost a call per statement.

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

-- One entry per changed row, unlinked (seq, prev_hash and hash are the sealer's): the updates
-- and deletes of every audited table, and the inserts of a table qvp_audit_install could not
-- put under qvp_audit_insert. The trigger's arguments name columns kept out of the record (a
-- password hash, a token's digest, a login's time); an update that changes no other column
-- writes no entry. Rows are rendered in UTC, whatever the writer's time zone, so that an entry
-- compares with the row it records.
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

-- One entry per row an INSERT wrote, in one statement over its transition table (`inserted`),
-- as qvp_audit_row writes them: the same columns, the same columns left out (the trigger's
-- arguments), rendered in UTC, `at` taken per row. A transition table is read in the order
-- its rows were written, and ids are drawn as the entries are inserted: the entries' ids, and
-- so the chain's order, follow the rows' order. Entries of rows of different statements stay
-- in statement order, as AFTER triggers fire at the end of each statement.
CREATE OR REPLACE FUNCTION qvp_audit_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    left_out text[] := '{}';
BEGIN
    IF TG_NARGS > 0 THEN left_out := TG_ARGV; END IF;
    INSERT INTO qvp_site_auditentry (table_name, row_key, operation, old_row, new_row, actor,
                                     db_role, at)
    SELECT TG_TABLE_NAME, r.new_row ->> 'id', 'INSERT', NULL, r.new_row,
           -- As in qvp_audit_row: no field of the hash may hold 0x1F.
           translate(coalesce(nullif(current_setting('qvp.actor', true), ''), session_user),
                     chr(31), ''),
           session_user, clock_timestamp()
    FROM (SELECT to_jsonb(i) - left_out AS new_row FROM inserted i) r;
    RETURN NULL;
END $$;

-- Whether `relation`'s inserts can be recorded by statement: a plain table, neither a partition
-- nor a partitioned table (a statement trigger on the parent does not fire for an insert
-- straight into a partition; a partition's row triggers take no transition table), outside any
-- inheritance, and not a TimescaleDB hypertable (which takes no transition table).
CREATE OR REPLACE FUNCTION qvp_audit_by_statement(relation regclass) RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    hypertable boolean := false;
BEGIN
    IF to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL THEN
        EXECUTE 'SELECT EXISTS (SELECT 1 FROM _timescaledb_catalog.hypertable h'
                ' WHERE to_regclass(format(''%I.%I'', h.schema_name, h.table_name)) = $1)'
        INTO hypertable USING relation;
    END IF;
    RETURN NOT hypertable AND EXISTS (
        SELECT 1 FROM pg_class c
        WHERE c.oid = relation AND c.relkind = 'r' AND NOT c.relispartition
          AND NOT EXISTS (SELECT 1 FROM pg_inherits i
                          WHERE i.inhrelid = c.oid OR i.inhparent = c.oid));
END $$;

-- Put `relation` under audit in its form: inserts by statement (qvp_audit_insert) and updates
-- and deletes by row (qvp_audit), or everything by row where a transition table cannot be
-- used. `left_out` names the columns kept out of its entries. Replaces what was there (the
-- statement trigger of releases before 0011 included), in the caller's transaction.
CREATE OR REPLACE FUNCTION qvp_audit_install(relation regclass, left_out text[] DEFAULT '{}')
RETURNS text
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    arguments text;
BEGIN
    SELECT coalesce(string_agg(quote_literal(c.name), ', ' ORDER BY c.n), '') INTO arguments
    FROM unnest(left_out) WITH ORDINALITY AS c(name, n);
    EXECUTE format('DROP TRIGGER IF EXISTS qvp_audit_lock ON %s', relation);
    IF qvp_audit_by_statement(relation) THEN
        EXECUTE format('CREATE OR REPLACE TRIGGER qvp_audit AFTER UPDATE OR DELETE ON %s'
                       ' FOR EACH ROW EXECUTE FUNCTION qvp_audit_row(%s)', relation, arguments);
        EXECUTE format('CREATE OR REPLACE TRIGGER qvp_audit_insert AFTER INSERT ON %s'
                       ' REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT'
                       ' EXECUTE FUNCTION qvp_audit_insert(%s)', relation, arguments);
        RETURN 'by statement';
    END IF;
    EXECUTE format('DROP TRIGGER IF EXISTS qvp_audit_insert ON %s', relation);
    EXECUTE format('CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON %s'
                   ' FOR EACH ROW EXECUTE FUNCTION qvp_audit_row(%s)', relation, arguments);
    RETURN 'by row';
END $$;
REVOKE ALL ON FUNCTION qvp_audit_install(regclass, text[]) FROM PUBLIC;

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
REVOKE ALL ON FUNCTION qvp_audit_row(), qvp_audit_insert() FROM PUBLIC;

--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_user'::regclass, ARRAY['password', 'last_login']::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_group'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_permission'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('django_content_type'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_user_groups'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_user_user_permissions'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('auth_group_permissions'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('qvp_site_apitoken'::regclass, ARRAY['digest', 'last_used_at']::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_account'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_account_groups'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_order'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_execution'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_position'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_cashentry'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('trading_actionentry'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('marketdata_ingest'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('marketdata_listing'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('marketdata_corporateaction'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
SELECT qvp_audit_install('risk_risklimit'::regclass, ARRAY[]::text[]);
--
-- Raw SQL operation
--
DROP FUNCTION qvp_audit_lock_head();
COMMIT;
