from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site.loading.progress import ProgressBar
from trading.imports import OPTIONAL, REQUIRED, ImportRefused, import_executions


class Command(BaseCommand):
    help = (
        "Book the executions of a CSV file (header: "
        + ", ".join(REQUIRED)
        + "; optional: "
        + ", ".join(OPTIONAL)
        + "; quantity signed, buys positive; times without a zone are UTC) in file order, "
        "through the same rules as every other door. Bad lines are listed with their numbers "
        "and reasons and nothing is written; executions booked already are left alone, so "
        "importing a file again books nothing new."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the CSV file of executions")

    def handle(self, *args, path: Path, **options):
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        with ProgressBar(self) as progress:
            try:
                result = import_executions(path, progress)
            except ImportRefused as refused:
                raise CommandError(str(refused)) from refused
        self.stdout.write(
            self.style.SUCCESS(
                f"{result.file_name}: {result.rows_read:,} rows read, {result.booked:,} booked,"
                f" {result.already_booked:,} already booked in {result.seconds:.2f} s."
            )
        )
