from __future__ import annotations

from pathlib import Path

from marketdata.listings_load import OPTIONAL, REQUIRED, describe, load_listings
from qvp_site.loading.file_command import FileLoadCommand
from qvp_site.loading.progress import Progress


class Command(FileLoadCommand):
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

    file_help = "the CSV file of listings"

    def load(self, path: Path, dry_run: bool, progress: Progress):
        return load_listings(path, dry_run=dry_run, progress=progress)

    def report(self, result) -> None:
        *instruments, total = describe(result)
        for line in instruments:
            self.stdout.write(f"  {line}")
        self.stdout.write(self.style.SUCCESS(total))
