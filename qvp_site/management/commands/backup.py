"""manage.py backup: pg_dump in the custom format, with a manifest of row counts and checksum."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site import backups


class Command(BaseCommand):
    help = (
        "Back up the database with pg_dump (custom format) to --output (default: "
        "var/backups/<database>-<UTC time>.dump), with a manifest beside it (<name>.json: "
        "SHA-256 and the row count of every table, taken in the dump's own snapshot)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--output", type=Path, help="the .dump file to write")

    def handle(self, *args, output: Path | None, **options) -> None:
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
