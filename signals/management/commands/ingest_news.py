from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site.loading.progress import ProgressBar
from qvp_site.loading.refusals import IngestRefused
from signals.news_ingest import ingest_news


class Command(BaseCommand):
    help = (
        "Load news articles from a CSV, Parquet or JSON-lines file: time (published_at), "
        "source and headline, and optionally body, url, symbols (a list, or separated by , ; "
        "| or spaces; each must be a known instrument) and sentiment in [-1, 1]. A file with "
        "a bad line is refused whole, each bad line named with its reasons; re-loading a "
        "file changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="a .csv, .parquet or .jsonl file")

    def handle(self, *args, path: Path, **options):
        if not path.is_file():
            raise CommandError(f"no file at {path}")
        with ProgressBar(self) as progress:
            try:
                result = ingest_news(path, progress)
            except IngestRefused as refused:
                raise CommandError(str(refused)) from refused
        self.stdout.write(f"Read {path.name} as {result.layout}.")
        self.stdout.write(
            self.style.SUCCESS(
                f"News: {result.rows_read:,} rows read, {result.inserted:,} inserted,"
                f" {result.unchanged:,} already there."
            )
        )
