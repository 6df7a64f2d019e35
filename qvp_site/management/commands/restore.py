"""manage.py restore: pg_restore a backup into a new database, then check it; ``--to-time``:
the cluster as it was at a moment, from a base backup and the WAL archive, in a new data
directory served on a port of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from qvp_site import backups, point_in_time, wal_archive

DEFAULT_PORT = 5433


def moment(value: str) -> datetime:
    """--to-time: an ISO 8601 time; without a zone, UTC."""
    try:
        found = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(
            f"--to-time {value!r} is not a time: write 2026-12-05T10:41:07Z (ISO 8601)"
        ) from None
    return found if found.tzinfo else found.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into a NEW database on the same server "
        "(--database; an existing one is refused), with --jobs parallel pg_restore jobs. The "
        "file is checked against its manifest's SHA-256 first; afterwards every table's row "
        "count is compared with the manifest and the audit chain is verified. Exits with "
        "status 1 when anything differs. Point DATABASE_URL (or the app) at the new database "
        "once it is checked. "
        "--to-time T: the whole cluster as it was at T (ISO 8601; UTC without a zone), from "
        "the newest base backup before it and the WAL archive, into the NEW folder --target, "
        "left running on --port (its socket in that folder); the base backup's row counts and "
        "the audit chain are checked on the way. The running server is never touched."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "dump", type=Path, nargs="?", help="the .dump file (its .json beside it)"
        )
        parser.add_argument("--database", help="name of the database to create")
        parser.add_argument("--jobs", type=int, default=2, help="parallel jobs (default 2)")
        parser.add_argument("--to-time", type=moment, help="restore the cluster as it was then")
        parser.add_argument("--target", type=Path, help="--to-time: the new data folder")
        parser.add_argument(
            "--port", type=int, default=DEFAULT_PORT,
            help=f"--to-time: the restored server's port (default {DEFAULT_PORT})",
        )  # fmt: skip
        parser.add_argument("--base-backup", type=Path, help="--to-time: this base backup")

    def handle(self, *args, dump: Path | None, to_time: datetime | None, **options) -> None:
        if to_time is not None:
            if dump is not None or options["database"]:
                raise CommandError("--to-time restores the whole cluster: no dump, no --database")
            self._to_time(to_time, options["target"], options["port"], options["base_backup"])
            return
        if dump is None or not options["database"]:
            raise CommandError("give the .dump file and --database (or --to-time)")
        self._dump(dump, options["database"], options["jobs"])

    def _dump(self, dump: Path, database: str, jobs: int) -> None:
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

    def _to_time(self, target: datetime, folder: Path | None, port: int, base: Path | None) -> None:
        if not 1024 <= port <= 65535:
            raise CommandError(f"--port {port}: a port from 1024 to 65535")
        folder = folder or Path(settings.VAR_DIR) / "restores" / target.strftime(
            "%Y%m%dT%H%M%S.%fZ"
        )
        try:
            done = point_in_time.restore_to_time(
                target.astimezone(UTC), folder.resolve(), port, base=base,
                say=self.stdout.write,
            )  # fmt: skip
        except (backups.BackupError, wal_archive.WalArchiveError) as error:
            raise CommandError(str(error)) from error
        for table, (expected, found) in sorted(done.mismatches.items()):
            self.stderr.write(
                f"{table}: {expected} rows in base backup {done.base.path.name}'s count,"
                f" {found} replayed"
            )
        if done.audit_problem:
            self.stderr.write(done.audit_problem)
        self.stdout.write(
            f"restored the cluster as it was at {done.target.isoformat()} into {done.data_dir},"
            f" running: socket {done.socket_dir} port {done.port}; {done.database} holds"
            f" {done.tables} tables, {done.rows} rows. Connect with"
            f' psql "host={done.socket_dir} port={done.port} dbname={done.database}";'
            f" stop it with pg_ctl -D {done.data_dir} stop."
        )
        if not done.ok:
            raise CommandError("the restored cluster does NOT match (see above)")
        self.stdout.write(
            f"row counts match base backup {done.base.path.name} at its count, audit chain intact"
        )
