"""A throwaway database for a benchmark, on the configured server: made by Django's test
machinery (every migration), dropped at the end, so the development data is never touched
and a bench that stores revisions (which nothing deletes) leaves none behind."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper


def name_it(name: str) -> None:
    """Name the throwaway database; call before ``django.setup()`` (settings read it)."""
    os.environ["QVP_TEST_DATABASE_NAME"] = name


@contextmanager
def throwaway_database() -> Iterator[str]:
    """Make the database named by ``name_it`` (one left by an interrupted run is replaced),
    point the default connection at it while the block runs, then drop it; yields its name."""
    from django.db import connection

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, serialize=False)
    try:
        yield connection.settings_dict["NAME"]
    finally:
        _end_other_sessions(connection)
        connection.creation.destroy_test_db(old_name, verbosity=0)


def _end_other_sessions(connection: BaseDatabaseWrapper) -> None:
    """End the database's other sessions, which DROP DATABASE would refuse to drop it with:
    on Citus its maintenance daemon's and deadlock checks' (the benchmark's own are closed).
    Where the benchmark's role may not, the drop says why."""
    from django.db import DatabaseError

    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
    except DatabaseError as error:
        print(f"the database's other sessions were left: {error}", file=sys.stderr)
