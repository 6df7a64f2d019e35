"""A stop between a migration's work and its record leaves neither (the first `make run`)."""

from __future__ import annotations

import pytest
from django.core.management import get_commands
from django.db import connection, migrations, models
from django.db.migrations.state import ProjectState

from qvp_site.management.commands.migrate import RecordedInTransaction

pytestmark = pytest.mark.django_db


def probe_migration() -> migrations.Migration:
    """A new table with an indexed column: its index is deferred SQL, the case Django records
    after its commit."""
    migration = migrations.Migration("0001_probe", "qvp_probe")
    migration.operations = [
        migrations.CreateModel(
            "Probe",
            [
                ("id", models.BigAutoField(primary_key=True)),
                ("code", models.CharField(max_length=8, db_index=True)),
            ],
        )
    ]
    return migration


def test_migrate_is_the_command_that_records_in_the_transaction() -> None:
    assert get_commands()["migrate"] == "qvp_site"


def test_a_stop_before_the_record_leaves_no_table(monkeypatch) -> None:
    executor = RecordedInTransaction(connection)

    def stopped(app_label: str, name: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(executor.recorder, "record_applied", stopped)
    with pytest.raises(KeyboardInterrupt):
        executor.apply_migration(ProjectState(), probe_migration())
    assert "qvp_probe_probe" not in connection.introspection.table_names()


def test_a_migration_and_its_record_land_together() -> None:
    executor = RecordedInTransaction(connection)
    executor.apply_migration(ProjectState(), probe_migration())
    assert "qvp_probe_probe" in connection.introspection.table_names()
    assert ("qvp_probe", "0001_probe") in executor.recorder.applied_migrations()
