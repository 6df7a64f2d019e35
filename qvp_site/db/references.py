"""References from time-series tables checked once per statement instead of once per row.

A foreign key checks each inserted row with its own query: a million-bar ingest spends more
time in those checks (about 4.7 s on the reference machine) than in writing the rows. For a
time-series table's reference to an ordinary table (bars to their instrument),
``EnforceReference`` replaces the constraint (the field becomes ``db_constraint=False``) with
two triggers that keep its promises, for raw SQL too:

- after each INSERT or UPDATE statement on the child, one query over the statement's new rows
  finds the keys missing from the parent and locks the others FOR KEY SHARE (as a foreign
  key does), so a concurrent delete of the parent waits for the load, or the load fails;
- before a parent row is deleted, or its key changed, it is refused while a child row refers
  to it (an index scan of the child's key, which starts with the reference).

Both raise ``foreign_key_violation`` with the constraint name a foreign key would have, and
the same message. Unlike a foreign key, TRUNCATE of the parent alone is not refused: only
the owner may truncate, and test flushes truncate every table at once.

The two trigger functions are versioned SQL (``marketdata/sql/references/``), installed by the
migration that first enforces a reference; the operation makes only the triggers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured

from qvp_site.db import engine
from qvp_site.db.quoting import ident, literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState


def _names(child: str, column: str) -> tuple[str, str, str]:
    """The child's statement triggers, and the parent's row trigger (names under 63 bytes)."""
    stem = f"{child}_{column}"[:40]
    return f"qvp_ref_{stem}_ins", f"qvp_ref_{stem}_upd", f"qvp_ref_{stem}_protect"


def enforce_sql(child: str, column: str, parent: str, key: str, constraint: str) -> list[str]:
    """The triggers on ``child`` and ``parent``, one statement each."""
    insert, update, protect = _names(child, column)
    check_args = ", ".join(literal(v) for v in (column, parent, key, constraint))
    protect_args = ", ".join(literal(v) for v in (child, column, key, constraint))
    return [
        f"DROP TRIGGER IF EXISTS {ident(insert)} ON {ident(child)}",
        f"CREATE TRIGGER {ident(insert)} AFTER INSERT ON {ident(child)}"
        " REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT"
        f" EXECUTE FUNCTION qvp_check_reference({check_args})",
        f"DROP TRIGGER IF EXISTS {ident(update)} ON {ident(child)}",
        f"CREATE TRIGGER {ident(update)} AFTER UPDATE ON {ident(child)}"
        " REFERENCING NEW TABLE AS qvp_new_rows FOR EACH STATEMENT"
        f" EXECUTE FUNCTION qvp_check_reference({check_args})",
        f"DROP TRIGGER IF EXISTS {ident(protect)} ON {ident(parent)}",
        f"CREATE TRIGGER {ident(protect)} BEFORE DELETE OR UPDATE OF {ident(key)}"
        f" ON {ident(parent)} FOR EACH ROW EXECUTE FUNCTION qvp_protect_referenced({protect_args})",
    ]


def drop_sql(child: str, column: str, parent: str) -> list[str]:
    insert, update, protect = _names(child, column)
    return [
        f"DROP TRIGGER IF EXISTS {ident(insert)} ON {ident(child)}",
        f"DROP TRIGGER IF EXISTS {ident(update)} ON {ident(child)}",
        f"DROP TRIGGER IF EXISTS {ident(protect)} ON {ident(parent)}",
    ]


class EnforceReference(SqlOperation):
    """Check ``model_name.field_name`` (a ForeignKey with ``db_constraint=False``) by
    statement, as the module's docstring says. Put it after the AlterField that drops the
    constraint, in the same migration."""

    def __init__(self, model_name: str, field_name: str):
        self.model_name = model_name
        self.field_name = field_name

    def _reference(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> tuple[str, ...] | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None:
            return None
        field = model._meta.get_field(self.field_name)
        child, column = model._meta.db_table, field.column
        parent = field.related_model._meta.db_table
        key = field.target_field.column
        # The name Django gives the constraint this replaces, so that errors read the same.
        constraint = f"{child}_{column}_fkey"
        return child, column, parent, key, constraint

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        _require_transition_tables(schema_editor.connection)
        reference = self._reference(app_label, schema_editor, state)
        return [] if reference is None else enforce_sql(*reference)

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        reference = self._reference(app_label, schema_editor, state)
        return [] if reference is None else drop_sql(*reference[:3])

    def describe(self) -> str:
        return f"Check {self.model_name}.{self.field_name} once per statement"

    @property
    def migration_name_fragment(self) -> str:
        return f"reference_{self.model_name.lower()}_{self.field_name.lower()}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name, self.field_name], {}


# Hypertables take statement triggers with transition tables from TimescaleDB 2.18 on.
TIMESCALEDB_TRANSITION_TABLES = (2, 18)


def _require_transition_tables(connection: BaseDatabaseWrapper) -> None:
    version = engine.detect(connection).timescaledb_version
    if version and tuple(int(p) for p in version.split(".")[:2]) < TIMESCALEDB_TRANSITION_TABLES:
        raise ImproperlyConfigured(
            f"TimescaleDB {version} refuses triggers with transition tables on hypertables,"
            " which check the references of time-series tables: update it to 2.18 or later"
        )
