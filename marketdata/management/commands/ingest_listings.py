from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketdata.listings_load import OPTIONAL, REQUIRED, describe, load_listings
from qvp_site.loading.progress import ProgressBar
from qvp_site.loading.refusals import IngestRefused


class Command(BaseCommand):
    help = (
        "Load the security master from a CSV file (header: "
        + ", ".join(REQUIRED)
        + "; optional: "
        + ", ".join(OPTIONAL)
        + ", and any vendor:<name> columns). Rows are grouped into instruments by instrument"
        " id, else figi, else isin (a group no existing instrument carries is a new one);"
        " within one, each row holds from its valid_from (YYYY-MM-DD; empty: since always)"
        " until the next row's, and before the first the instrument had no terms. Bad lines"
        " are listed with their numbers and reasons and nothing is written; loading a file"
        " again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the CSV file of listings")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check and report what would change, then roll everything back",
        )

    def handle(self, *args, path: Path, dry_run: bool, **options):
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        with ProgressBar(self) as progress:
            try:
                result = load_listings(path, dry_run=dry_run, progress=progress)
            except IngestRefused as refused:
                raise CommandError(str(refused)) from refused
        *instruments, total = describe(result)
        for line in instruments:
            self.stdout.write(f"  {line}")
        self.stdout.write(self.style.SUCCESS(total))
