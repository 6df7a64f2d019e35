"""A command that loads one file all or nothing (``ingest_listings``, ``ingest_actions``): its
path and ``--dry-run``, a missing file and a refused load as a ``CommandError`` naming them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from qvp_site.loading.progress import Progress, ProgressBar
from qvp_site.loading.refusals import IngestRefused


class FileLoadCommand(BaseCommand):
    file_help = "the CSV file"  # the path argument's help: what the file holds

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path, help=self.file_help)
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="check and report what would change, then roll everything back",
        )

    def handle(self, *args: Any, path: Path, dry_run: bool, **options: Any) -> None:
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        with ProgressBar(self) as progress:
            try:
                result = self.load(path, dry_run, progress)
            except IngestRefused as refused:
                raise CommandError(str(refused)) from refused
        self.report(result)

    def load(self, path: Path, dry_run: bool, progress: Progress) -> Any:
        """Load ``path`` (rolled back when ``dry_run``); what it did, for ``report``."""
        raise NotImplementedError

    def report(self, result: Any) -> None:
        raise NotImplementedError
