"""manage.py archive: old rows of a time-series table to Parquet, and back."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from qvp_site import archives
from qvp_site.acting import acting_as
from qvp_site.models import Archive
from qvp_site.times import TIME_HELP, time_argument


class Command(BaseCommand):
    help = (
        "Write the rows of a time-series table older than --before (and newer than the end "
        "of its last archive) to a Parquet file under QVP_ARCHIVE_DIR (or --directory), with "
        "the file's SHA-256 and the range recorded (see --list). Rows are not deleted: "
        "retention drops them later. --restore ID loads an archive back (rows still present "
        "are kept as they are); --list shows the archives."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--table", help="a time-series table, e.g. marketdata_minutebar")
        parser.add_argument(
            "--before", type=time_argument, help=f"archive rows older than this ({TIME_HELP})"
        )
        parser.add_argument("--directory", type=Path, help="where to write the file")
        parser.add_argument("--restore", type=int, metavar="ID", help="load archive ID back")
        parser.add_argument("--list", action="store_true", help="list the archives")

    def handle(self, *args, **options) -> None:
        try:
            if options["list"]:
                self._list()
            elif options["restore"] is not None:
                self._restore(options["restore"])
            else:
                self._archive(options["table"], options["before"], options["directory"])
        except archives.ArchiveError as error:
            raise CommandError(str(error)) from error

    def _archive(self, table: str | None, before: datetime | None, directory: Path | None) -> None:
        if not table or not before:
            raise CommandError("give --table and --before (or --restore ID, or --list)")
        with acting_as("archive"):
            record = archives.archive(table, before, directory)
        self.stdout.write(
            f"archive {record.pk}: {record.rows} rows of {table} before "
            f"{record.before.isoformat()} to {record.path} ({record.size_bytes} bytes, "
            f"sha256 {record.sha256})"
        )

    def _restore(self, archive_id: int) -> None:
        with acting_as("archive --restore"):
            result = archives.restore(archive_id)
        self.stdout.write(
            f"archive {archive_id}: {result.rows} rows read, {result.inserted} inserted into "
            f"{result.archive.table_name} ({result.rows - result.inserted} were there already)"
        )

    def _list(self) -> None:
        for record in Archive.objects.all():
            self.stdout.write(
                f"{record.pk}\t{record.table_name}\t{record.starts or '-'}\t{record.before}\t"
                f"{record.rows}\t{record.path}\t{record.sha256}"
            )
