"""The extensions the project needs: pgvector always, TimescaleDB where it is the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import router

from qvp_site.db import engine
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState


class InstallExtensions(SqlOperation):
    """``CREATE EXTENSION`` for pgvector, and for TimescaleDB where the engine uses it.

    The engine is read from the server (``engine.detect``): the one fact of the catalog the
    statements depend on. Backwards drops what it installed, as ``CreateExtension`` does.
    """

    def _extensions(self, app_label: str, schema_editor: BaseDatabaseSchemaEditor) -> list[str]:
        if not router.allow_migrate(schema_editor.connection.alias, app_label):
            return []
        engine.forget()
        timescaledb = engine.detect(schema_editor.connection).is_timescaledb
        return ["vector", "timescaledb"] if timescaledb else ["vector"]

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        names = self._extensions(app_label, schema_editor)
        return [f"CREATE EXTENSION IF NOT EXISTS {name}" for name in names]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        names = reversed(self._extensions(app_label, schema_editor))
        return [f"DROP EXTENSION IF EXISTS {name}" for name in names]

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        super().database_forwards(app_label, schema_editor, from_state, to_state)
        engine.forget()  # the engine detected changes with the extension

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        super().database_backwards(app_label, schema_editor, from_state, to_state)
        engine.forget()

    def describe(self) -> str:
        return "Install the extensions (pgvector, and TimescaleDB where it is the engine)"

    @property
    def migration_name_fragment(self) -> str:
        return "install_extensions"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}
