"""The extensions the project needs: pgvector always, TimescaleDB where it is the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import router
from django.db.migrations.operations.base import Operation

from qvp_site.db import engine

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState


class InstallExtensions(Operation):
    """``CREATE EXTENSION`` for pgvector, and for TimescaleDB where the engine uses it.

    The engine is read from the server (``engine.detect``): the one fact of the catalog the
    statements depend on. Backwards drops what it installed, as ``CreateExtension`` does.
    """

    reversible = True
    # Its statements go through schema_editor.execute: sqlmigrate shows them.
    reduces_to_sql = True

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass

    def _extensions(self, schema_editor: BaseDatabaseSchemaEditor) -> list[str]:
        engine.forget()
        timescaledb = engine.detect(schema_editor.connection).is_timescaledb
        return ["vector", "timescaledb"] if timescaledb else ["vector"]

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not router.allow_migrate(schema_editor.connection.alias, app_label):
            return
        for name in self._extensions(schema_editor):
            schema_editor.execute(f"CREATE EXTENSION IF NOT EXISTS {name}")
        engine.forget()

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        if not router.allow_migrate(schema_editor.connection.alias, app_label):
            return
        for name in reversed(self._extensions(schema_editor)):
            schema_editor.execute(f"DROP EXTENSION IF EXISTS {name}")
        engine.forget()

    def describe(self) -> str:
        return "Install the extensions (pgvector, and TimescaleDB where it is the engine)"

    @property
    def migration_name_fragment(self) -> str:
        return "install_extensions"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}
