"""Applying one migration operation with a schema editor, in the manner of Django's
tests/postgres_tests/test_operations.py, for the tests of the project's own operations; and
collecting the SQL it would run, as ``sqlmigrate`` does, to run it by hand."""

from __future__ import annotations

from django.db import connection, transaction
from django.db.migrations.state import ProjectState


def apply_operation(
    app_label: str, state: ProjectState, operation, *, backwards: bool = False
) -> ProjectState:
    """Apply ``operation`` forwards from ``state`` (or backwards to it); the new state."""
    new_state = state.clone()
    operation.state_forwards(app_label, new_state)
    with connection.schema_editor(atomic=True) as editor:
        if backwards:
            operation.database_backwards(app_label, editor, new_state, state)
        else:
            operation.database_forwards(app_label, editor, state, new_state)
    return new_state


def collect_sql(
    app_label: str, state: ProjectState, operation, *, backwards: bool = False
) -> list[str]:
    """The statements ``operation`` would run from ``state`` (or back to it), as
    ``sqlmigrate`` collects them: nothing runs."""
    new_state = state.clone()
    operation.state_forwards(app_label, new_state)
    with connection.schema_editor(collect_sql=True, atomic=False) as editor:
        if backwards:
            operation.database_backwards(app_label, editor, new_state, state)
        else:
            operation.database_forwards(app_label, editor, state, new_state)
    return editor.collected_sql


def run_script(statements: list[str]) -> None:
    """Run collected statements as one script in a transaction, as psql would run
    ``sqlmigrate``'s output (no parameters: the text is what runs)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("\n".join(statements))
