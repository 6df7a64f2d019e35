"""Django's `migrate`, with each migration recorded in the transaction that applies it.

Django commits a migration that leaves deferred SQL (the indexes and foreign keys of a new
table) and only then records it as applied, in a statement of its own. A stop between the two
(Ctrl-C during the first `make run`) leaves tables that no row in django_migrations accounts
for: every later `migrate` tries to create them again ("relation ... already exists") and the
site never starts. Here an atomic migration's work and its record commit together or not at all.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError
from django.core.management.commands import migrate
from django.db import transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration

from qvp_site.db import engine
from qvp_site.db.distribution import NotUnappliedOnCitus


class RecordedInTransaction(MigrationExecutor):
    """Applies (and unapplies) each atomic migration and its record in one transaction, and
    refuses, before running any, a plan that would unapply what this engine cannot."""

    def migrate(self, targets, plan=None, state=None, fake=False, fake_initial=False):
        if not fake:
            full = plan if plan is not None else self.migration_plan(targets)
            _refuse_what_cannot_go_back(self.connection, full)
        return super().migrate(targets, plan, state, fake, fake_initial)

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


def _refuse_what_cannot_go_back(connection: Any, plan: list[tuple[Migration, bool]]) -> None:
    """On Citus the distribution is not unapplied in place (Citus undistributes no table with
    an identity column): a plan that would unapply it is refused whole, naming the migration,
    instead of after the migrations before it in the plan were undone."""
    if not engine.is_citus(connection):
        return
    for migration, backwards in plan:
        if not backwards:
            continue
        refusing = [op for op in migration.operations if isinstance(op, NotUnappliedOnCitus)]
        if refusing:
            raise CommandError(
                f"{migration.app_label} {migration.name} cannot be unapplied, and nothing was:"
                f" {refusing[0].citus_refusal()}."
            )
