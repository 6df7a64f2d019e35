"""Django's `migrate`, with each migration recorded in the transaction that applies it.

Django commits a migration that leaves deferred SQL (the indexes and foreign keys of a new
table) and only then records it as applied, in a statement of its own. A stop between the two
(Ctrl-C during the first `make run`) leaves tables that no row in django_migrations accounts
for: every later `migrate` tries to create them again ("relation ... already exists") and the
site never starts. Here an atomic migration's work and its record commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate
from django.db import transaction
from django.db.migrations.executor import MigrationExecutor


class RecordedInTransaction(MigrationExecutor):
    """Applies (and unapplies) each atomic migration and its record in one transaction."""

    def apply_migration(self, state, migration, fake=False, fake_initial=False):
        if fake or not migration.atomic:
            return super().apply_migration(state, migration, fake, fake_initial)
        # The schema editor's own transaction becomes a savepoint of this one.
        with transaction.atomic(using=self.connection.alias):
            return super().apply_migration(state, migration, fake, fake_initial)

    def unapply_migration(self, state, migration, fake=False):
        if fake or not migration.atomic:
            return super().unapply_migration(state, migration, fake)
        with transaction.atomic(using=self.connection.alias):
            return super().unapply_migration(state, migration, fake)


class Command(migrate.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        # Django's command builds its executor from its module's name for the class, and
        # offers no other way in.
        django_executor = migrate.MigrationExecutor
        migrate.MigrationExecutor = RecordedInTransaction  # type: ignore[misc]
        try:
            super().handle(*args, **options)
        finally:
            migrate.MigrationExecutor = django_executor  # type: ignore[misc]
