"""The base of the project's migration operations: statements rendered, then run as they are.

An operation that changes no model state says what it runs in ``forwards_sql`` and
``backwards_sql``; this base runs each statement through ``schema_editor.execute`` without
parameters, so that ``sqlmigrate`` collects the very text that runs (% signs included), and
leaves out models the router keeps off the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db.migrations.operations.base import Operation

if TYPE_CHECKING:
    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState


class SqlOperation(Operation):
    """Reversible, shown by ``sqlmigrate``; subclasses render their statements."""

    reversible = True
    reduces_to_sql = True

    def state_forwards(self, app_label: str, state: ProjectState) -> None:
        pass

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        """The statements forwards, for the state after the operation."""
        raise NotImplementedError

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        """The statements backwards, for the state before it was undone."""
        raise NotImplementedError

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        _execute(schema_editor, self.forwards_sql(app_label, schema_editor, to_state))

    def database_backwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        _execute(schema_editor, self.backwards_sql(app_label, schema_editor, from_state))

    def routed_model(
        self,
        app_label: str,
        model_name: str,
        schema_editor: BaseDatabaseSchemaEditor,
        state: ProjectState,
    ) -> Any:
        """The model, or None where the router keeps it off this database. A migration state's
        model is built at run time from its migrations: typed ``Any``, as ``get_model`` is."""
        model = state.apps.get_model(app_label, model_name)
        return model if self.allow_migrate_model(schema_editor.connection.alias, model) else None


def _execute(schema_editor: BaseDatabaseSchemaEditor, statements: list[str]) -> None:
    for statement in statements:
        schema_editor.execute(statement, params=None)
