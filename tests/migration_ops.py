"""Applying one migration operation with a schema editor, in the manner of Django's
tests/postgres_tests/test_operations.py, for the tests of the project's own operations."""

from __future__ import annotations

from django.db import connection
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
