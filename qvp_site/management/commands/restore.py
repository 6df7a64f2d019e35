"""manage.py restore: pg_restore a backup into a new database, then check it."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site import backups


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into a NEW database on the same server "
        "(--database; an existing one is refused), with --jobs parallel pg_restore jobs. The "
        "file is checked against its manifest's SHA-256 first; afterwards every table's row "
        "count is compared with the manifest and the audit chain is verified. Exits with "
        "status 1 when anything differs. Point DATABASE_URL (or the app) at the new database "
        "once it is checked."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("dump", type=Path, help="the .dump file (its .json beside it)")
        parser.add_argument("--database", required=True, help="name of the database to create")
        parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (default 2)")

    def handle(self, *args, dump: Path, database: str, jobs: int, **options) -> None:
        try:
            report = backups.restore(dump, database, jobs=jobs)
        except backups.BackupError as error:
            raise CommandError(str(error)) from error
        if report.warnings:
            self.stderr.write(report.warnings)
        for table, (expected, found) in sorted(report.mismatches.items()):
            self.stderr.write(f"{table}: {expected} rows in the backup, {found} restored")
        if report.audit_problem:
            self.stderr.write(report.audit_problem)
        if not report.ok:
            raise CommandError(f"restored {database} does NOT match the backup (see above)")
        self.stdout.write(
            f"restored {dump} into {database}: {report.tables} tables, {report.rows} rows, "
            "row counts match the backup, audit chain intact"
        )
