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

The chain's SQL is versioned with the migrations that install it (``qvp_site/sql/audit/``).
Which tables are audited is declared beside their models with ``@audited``; the migration that
installs a table's triggers uses ``AuditChanges``, and ``tests/migrations`` compares the two.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from qvp_site.db.quoting import ident
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState
    from django.db.models import Model

ModelClass = TypeVar("ModelClass", bound="type[Model]")

# Models declared audited (``app_label.ModelName``), filled as their modules load.
AUDITED_MODELS: set[str] = set()


def audited(model: ModelClass) -> ModelClass:
    """Class decorator: every insert, update and delete of the model's table goes into the
    audit log (installed by an ``AuditChanges`` operation in the model's migrations)."""
    AUDITED_MODELS.add(model._meta.label)
    return model


GENESIS = "0" * 64
AUDIT_TABLE = "qvp_site_auditentry"

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


def audit_triggers_sql(table: str) -> list[str]:
    name = ident(table)
    return [
        f"CREATE OR REPLACE TRIGGER qvp_audit_lock BEFORE INSERT OR UPDATE OR DELETE ON {name}"
        " FOR EACH STATEMENT EXECUTE FUNCTION qvp_audit_lock_head()",
        f"CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE ON {name}"
        " FOR EACH ROW EXECUTE FUNCTION qvp_audit_row()",
    ]


def drop_audit_triggers_sql(table: str) -> list[str]:
    name = ident(table)
    return [
        f"DROP TRIGGER IF EXISTS qvp_audit ON {name}",
        f"DROP TRIGGER IF EXISTS qvp_audit_lock ON {name}",
    ]


class AuditChanges(SqlOperation):
    """Record every insert, update and delete of a model's table in the audit log."""

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
