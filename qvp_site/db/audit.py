"""The audit trail: a trigger writes every change of an audited table; a sealer links the
entries into a hash chain and signs its head with a key the database never holds.

Each linked entry's hash is SHA-256 over the previous entry's hash and the entry's own content
(``qvp_audit_hash``), so an entry edited, removed or slipped in breaks the chain where it
happened; anyone can recompute it from an export. A superuser could re-hash the whole chain,
so the chain is anchored by checkpoints: the head's position and hash, signed with Ed25519 by
the sealer (``qvp_site/audit_sealer.py``), kept in ``qvp_site_auditcheckpoint`` and in a file
outside the database. ``verify_audit`` checks the links, the signatures against the public
keys alone, that the chain still reaches every checkpoint, and that every audited row's live
state is the last state the log records (a change made with triggers off shows there).

No global queue: a writer takes no shared lock. The triggers write the entries unlinked
(``seq`` null): an INSERT's by statement, from its transition table (``qvp_audit_insert``,
since qvp_site 0011; by row on a table that cannot take a transition table: a partition, a
partitioned table, a hypertable), an UPDATE's or DELETE's row by row (``qvp_audit_row``). The
sealer's ``qvp_audit_link`` links the entries committed since its last round in the order it
finds them (oldest id first), so the chain's order is the order of
linking, and the entries of a transaction still open join a later round. Writers of
different accounts never wait for each other; what is not signed yet is the window the
setting ``QVP_AUDIT_UNSIGNED_WINDOW`` bounds and ``verify_audit`` reports.

Who acted comes from the transaction's ``qvp.actor`` setting (``qvp_site.acting``), else the
database role. A trigger's arguments name columns kept out of the record (a password hash, a
token's digest, the time of a login), and an update that changes nothing else writes no entry.

The chain's SQL is versioned with the migrations that install it (``qvp_site/sql/audit/``).
Which tables are audited is declared beside their models with ``@audited`` (and here, for
Django's own tables, in ``AUDITED_MODELS``); a migration that puts a table under audit uses
``AuditChangesByStatement`` (``AuditChanges`` is the form of releases before qvp_site 0011,
kept for them: its statement trigger's function is gone since), and ``tests/migrations``
compares the two.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, TypeVar

from qvp_site.db.quoting import ident, literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState
    from django.db.models import Model

ModelClass = TypeVar("ModelClass", bound="type[Model]")

# Models declared audited (``app_label.ModelName``), filled as their modules load, and
# Django's tables that say who may see and do what (audited by qvp_site 0010, trading 0008).
AUDITED_MODELS: set[str] = {
    "auth.User",
    "auth.Group",
    "auth.Permission",
    "contenttypes.ContentType",
    "auth.User_groups",
    "auth.User_user_permissions",
    "auth.Group_permissions",
}


def audited(model: ModelClass) -> ModelClass:
    """Class decorator: every insert, update and delete of the model's table goes into the
    audit log (installed by an ``AuditChanges`` operation in the model's migrations)."""
    AUDITED_MODELS.add(model._meta.label)
    return model


GENESIS = "0" * 64

# Columns kept out of an audited table's entries (its trigger's arguments, set by the migration
# that audits it): secrets, and what changes on every login or use. verify_audit holds each
# table's trigger to this, so that a column cannot be dropped from the record unseen.
LEFT_OUT: dict[str, tuple[str, ...]] = {
    "auth_user": ("password", "last_login"),
    "qvp_site_apitoken": ("digest", "last_used_at"),
}
AUDIT_TABLE = "qvp_site_auditentry"

# The first linked entry that does not follow from the one before it, in chain order: its
# place (a gap means entries were removed), a field the hash cannot pin down (NULL, or holding
# the 0x1F that separates the fields: two entries could then hash alike), its link, or its own
# hash.
FIRST_BROKEN_LINK_SQL = f"""
SELECT id, CASE WHEN seq <> expected THEN 'seq'
               WHEN ambiguous THEN 'ambiguous'
               WHEN prev_hash <> coalesce(previous, '{GENESIS}') THEN 'prev_hash'
               ELSE 'hash' END
FROM (
    SELECT id, seq, prev_hash, hash, lag(hash) OVER chain AS previous,
           row_number() OVER chain AS expected,
           strpos(concat(prev_hash, table_name, row_key, operation, actor, db_role), chr(31)) > 0
           OR num_nulls(prev_hash, table_name, row_key, operation, actor, db_role, at) > 0
               AS ambiguous,
           qvp_audit_hash(prev_hash, id, table_name, row_key, operation, old_row, new_row,
                          actor, db_role, at) AS computed
    FROM {AUDIT_TABLE} WHERE seq IS NOT NULL
    WINDOW chain AS (ORDER BY seq)
) AS chain
WHERE seq <> expected OR ambiguous OR prev_hash <> coalesce(previous, '{GENESIS}')
   OR hash IS DISTINCT FROM computed
ORDER BY seq LIMIT 1
"""
# The head the sealer recorded, the last linked entry, and how many entries are linked.
HEAD_SQL = f"""
SELECT h.last_seq, h.last_hash, e.seq, e.hash,
       (SELECT count(*) FROM {AUDIT_TABLE} WHERE seq IS NOT NULL)
FROM qvp_audit_head h
LEFT JOIN LATERAL (SELECT seq, hash FROM {AUDIT_TABLE} WHERE seq IS NOT NULL
                   ORDER BY seq DESC LIMIT 1) e ON true
"""


def audit_triggers_sql(table: str, left_out: Sequence[str] = ()) -> list[str]:
    """The audit triggers of ``table`` as released migrations before qvp_site 0011 install
    them (their output is frozen); ``left_out`` names columns kept out of its entries."""
    name = ident(table)
    arguments = ", ".join(literal(column) for column in left_out)
    return [
        f"CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON {name}"
        " FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head()",
        f"CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON {name}"
        f" FOR EACH ROW EXECUTE FUNCTION qvp_audit_row({arguments})",
    ]


def drop_audit_triggers_sql(table: str) -> list[str]:
    name = ident(table)
    return [
        f"DROP TRIGGER IF EXISTS qvp_audit ON {name}",
        f"DROP TRIGGER IF EXISTS qvp_audit_lock ON {name}",
    ]


def audit_triggers_by_statement_sql(table: str, left_out: Sequence[str] = ()) -> list[str]:
    """The audit triggers of ``table`` since qvp_site 0011: inserts by statement, updates and
    deletes by row, or all by row where a transition table cannot be used
    (``qvp_audit_install`` decides); ``left_out`` names columns kept out of its entries."""
    columns = ", ".join(literal(column) for column in left_out)
    return [
        f"SELECT qvp_audit_install({literal(ident(table))}::regclass, ARRAY[{columns}]::text[])"
    ]


def drop_audit_triggers_by_statement_sql(table: str) -> list[str]:
    name = ident(table)
    return [
        f"DROP TRIGGER IF EXISTS qvp_audit_insert ON {name}",
        f"DROP TRIGGER IF EXISTS qvp_audit ON {name}",
    ]


class AuditChanges(SqlOperation):
    """Record every insert, update and delete of a model's table in the audit log, in the
    form of releases before qvp_site 0011 (a migration after it fails on the function it
    calls): new migrations use ``AuditChangesByStatement``."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        return [] if model is None else audit_triggers_sql(model._meta.db_table)

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        return [] if model is None else drop_audit_triggers_sql(model._meta.db_table)

    def describe(self) -> str:
        return f"Audit every change of {self.model_name}"

    @property
    def migration_name_fragment(self) -> str:
        return f"audit_{self.model_name.lower()}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name], {}


class AuditChangesByStatement(AuditChanges):
    """Record every insert (by statement), update and delete of a model's table in the audit
    log (needs qvp_site 0011)."""

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        return [] if model is None else audit_triggers_by_statement_sql(model._meta.db_table)

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None:
            return []
        return drop_audit_triggers_by_statement_sql(model._meta.db_table)
