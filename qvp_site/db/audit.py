"""The audit trail: a trigger writes every change of an audited table into a hash chain.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own content, so an
entry edited, removed or slipped in later breaks the chain where it happened.

How the chain stays linear under concurrent writers: the chain head (one row in
``qvp_audit_head``) is taken by a statement-level trigger before an audited statement touches
any row: the transaction's first audited statement updates it (``locked_by``), which holds it
until the transaction ends. Writers to audited tables therefore take turns from their first
audited statement to their commit; taking the head before any row lock means two writers never
hold each other's rows (no deadlock through the head). The cost is that audited transactions
do not overlap, which ``bench/executions.py`` measures. Within the transaction the last hash
is carried in a transaction-local setting, so the head row is written twice per transaction,
not once per entry (a row updated thousands of times in one transaction makes every later
lookup of it walk all its versions). A deferred trigger seals the head with the last entry at
commit. Under REPEATABLE READ a writer that waited for the head gets a serialization failure
rather than a stale head, so the chain cannot fork.

Who acted comes from the transaction's ``qvp.actor`` setting (``qvp_site.acting``), else the
database role.
"""

from __future__ import annotations

from django.db.migrations.operations.base import Operation

from qvp_site.db.quoting import ident

GENESIS = "0" * 64
AUDIT_TABLE = "qvp_site_auditentry"

INSTALL_SQL = f"""
CREATE TABLE IF NOT EXISTS qvp_audit_head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id bigint,
    last_hash text NOT NULL,
    locked_by xid8
);
INSERT INTO qvp_audit_head (singleton, last_id, last_hash) VALUES (true, NULL, '{GENESIS}')
ON CONFLICT DO NOTHING;

-- The one definition of an entry's hash, used by the trigger and by verify_audit.
CREATE OR REPLACE FUNCTION qvp_audit_hash(
    prev_hash text, id bigint, table_name text, row_key text, operation text,
    old_row jsonb, new_row jsonb, actor text, db_role text, at timestamptz
) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(concat_ws(E'\\x1f',
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
        SELECT id, hash INTO last_entry FROM {AUDIT_TABLE} ORDER BY id DESC LIMIT 1;
        PERFORM set_config('qvp.audit_last_hash', coalesce(last_entry.hash, '{GENESIS}'), true);
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
    entry_id := nextval('{AUDIT_TABLE}_id_seq'::regclass);
    entry_hash := qvp_audit_hash(prev_hash, entry_id, TG_TABLE_NAME, entry_key, TG_OP,
                                 old_row, new_row, entry_actor, session_user, entry_at);
    INSERT INTO {AUDIT_TABLE} (id, table_name, row_key, operation, old_row, new_row, actor,
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
    UPDATE qvp_audit_head SET last_id = NULL, last_hash = '{GENESIS}', locked_by = NULL;
    RETURN NULL;
END $$;

CREATE OR REPLACE TRIGGER qvp_audit_append_only BEFORE UPDATE OR DELETE ON {AUDIT_TABLE}
    FOR EACH ROW EXECUTE FUNCTION qvp_audit_refuse_change();
CREATE OR REPLACE TRIGGER qvp_audit_truncate BEFORE TRUNCATE ON {AUDIT_TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_guard_truncate();
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
CREATE CONSTRAINT TRIGGER qvp_audit_seal AFTER UPDATE ON qvp_audit_head
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.locked_by IS NOT NULL)
    EXECUTE FUNCTION qvp_audit_seal();
REVOKE ALL ON FUNCTION qvp_audit_lock_head(), qvp_audit_row(), qvp_audit_seal() FROM PUBLIC;
"""

UNINSTALL_SQL = f"""
DROP TRIGGER IF EXISTS qvp_audit_append_only ON {AUDIT_TABLE};
DROP TRIGGER IF EXISTS qvp_audit_truncate ON {AUDIT_TABLE};
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
DROP FUNCTION IF EXISTS qvp_audit_guard_truncate(), qvp_audit_refuse_change(), qvp_audit_row(),
    qvp_audit_lock_head(), qvp_audit_seal();
DROP FUNCTION IF EXISTS qvp_audit_hash(text, bigint, text, text, text, jsonb, jsonb, text, text,
    timestamptz);
DROP TABLE IF EXISTS qvp_audit_head;
"""

# The first entry that does not follow from the one before it; then whether the head agrees
# with the last entry (an entry removed from the end leaves the head pointing past it).
FIRST_BROKEN_LINK_SQL = f"""
SELECT id, CASE WHEN prev_hash <> coalesce(previous, '{GENESIS}') THEN 'prev_hash'
               ELSE 'hash' END
FROM (
    SELECT id, prev_hash, hash, lag(hash) OVER (ORDER BY id) AS previous,
           qvp_audit_hash(prev_hash, id, table_name, row_key, operation, old_row, new_row,
                          actor, db_role, at) AS computed
    FROM {AUDIT_TABLE}
) AS chain
WHERE prev_hash <> coalesce(previous, '{GENESIS}') OR hash <> computed
ORDER BY id LIMIT 1
"""
HEAD_SQL = f"""
SELECT h.last_id, h.last_hash, e.id, e.hash, (SELECT count(*) FROM {AUDIT_TABLE})
FROM qvp_audit_head h
LEFT JOIN LATERAL (SELECT id, hash FROM {AUDIT_TABLE} ORDER BY id DESC LIMIT 1) e ON true
"""


def audit_triggers_sql(table: str) -> str:
    name = ident(table)
    return (
        f"CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON {name}"
        " FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head();"
        f" CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON {name}"
        " FOR EACH ROW EXECUTE FUNCTION qvp_audit_row();"
    )


def _run(schema_editor, statements: str) -> None:
    # Without parameters: the functions' bodies hold % signs of their own.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(statements)


def drop_audit_triggers_sql(table: str) -> str:
    name = ident(table)
    return (
        f"DROP TRIGGER IF EXISTS qvp_audit ON {name};"
        f" DROP TRIGGER IF EXISTS qvp_audit_lock ON {name};"
    )


class InstallAuditLog(Operation):
    """The chain head, the hash, the audit triggers' functions, and the log's protection."""

    reversible = True
    reduces_to_sql = False

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        _run(schema_editor, INSTALL_SQL)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        _run(schema_editor, UNINSTALL_SQL)

    def describe(self):
        return "Install the hash-chained audit log's triggers and protection"

    @property
    def migration_name_fragment(self):
        return "install_audit_log"

    def deconstruct(self):
        return self.__class__.__qualname__, [], {}


class AuditChanges(Operation):
    """Record every insert, update and delete of a model's table in the audit log."""

    reversible = True
    reduces_to_sql = False

    def __init__(self, model_name: str):
        self.model_name = model_name

    def state_forwards(self, app_label, state):
        pass

    def _table(self, app_label, schema_editor, state) -> str | None:
        model = state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return None
        return model._meta.db_table

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if table := self._table(app_label, schema_editor, to_state):
            _run(schema_editor, audit_triggers_sql(table))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if table := self._table(app_label, schema_editor, from_state):
            _run(schema_editor, drop_audit_triggers_sql(table))

    def describe(self):
        return f"Audit every change of {self.model_name}"

    @property
    def migration_name_fragment(self):
        return f"audit_{self.model_name.lower()}"

    def deconstruct(self):
        return self.__class__.__qualname__, [self.model_name], {}
