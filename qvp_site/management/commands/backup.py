"""manage.py backup: pg_dump in the custom format, with a manifest of row counts and checksum;
``--base``: a base backup (pg_basebackup) for point-in-time recovery, then retention."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site import backups, base_backups, wal_archive


class Command(BaseCommand):
    help = (
        "Back up the database with pg_dump (custom format) to --output (default: "
        "var/backups/<database>-<UTC time>.dump), with a manifest beside it (<name>.json: "
        "SHA-256 and the row count of every table, taken in the dump's own snapshot). "
        "--base: a base backup of the whole cluster (pg_basebackup, with its WAL) into "
        "QVP_BASE_BACKUP_DIR, the start of `restore --to-time`; then the base backups and "
        "archived WAL that QVP_PITR_WINDOW no longer needs are removed."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", type=Path, help="the .dump file to write")
        parser.add_argument(
            "--base", action="store_true", help="a base backup for point-in-time recovery"
        )

    def handle(self, *args, output: Path | None, base: bool, **options) -> None:
        if base:
            if output is not None:
                raise CommandError(
                    "--output names a dump: a base backup goes to QVP_BASE_BACKUP_DIR"
                )
            self._base()
            return
        path = output or backups.default_backup_path()
        try:
            manifest = backups.backup(path)
        except backups.BackupError as error:
            raise CommandError(str(error)) from error
        rows = sum(manifest.row_counts.values())
        self.stdout.write(
            f"backed up {manifest.database} to {path} ({path.stat().st_size} bytes, "
            f"{len(manifest.row_counts)} tables, {rows} rows, sha256 {manifest.sha256})"
        )

    def _base(self) -> None:
        try:
            made = base_backups.make()
            pruned = base_backups.prune()
        except (backups.BackupError, wal_archive.WalArchiveError) as error:
            raise CommandError(str(error)) from error
        rows = sum(made.row_counts.values())
        self.stdout.write(
            f"base backup {made.path}: WAL from {made.start_wal}, {len(made.row_counts)} tables"
            f" and {rows} rows of {made.database} counted at {made.counted_at}"
            f" (WAL {made.counted_lsn})"
        )
        for warning in base_backups.archiving_warnings():
            self.stderr.write(f"warning: {warning}")
        for name in pruned.backups:
            self.stdout.write(f"removed base backup {name} (older than QVP_PITR_WINDOW needs)")
        if pruned.segments:
            self.stdout.write(f"removed {pruned.segments} archived WAL segment(s) before it")
