from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from marketdata.actions_load import OPTIONAL, REQUIRED, describe, load_actions
from qvp_site.loading.progress import ProgressBar
from qvp_site.loading.refusals import IngestRefused


class Command(BaseCommand):
    help = (
        "Load corporate actions from a CSV file (header: symbol, "
        + ", ".join(REQUIRED)
        + "; optional: "
        + ", ".join(OPTIONAL)
        + "). kind is split, cash_dividend, stock_dividend, spin_off or delisting; a symbol"
        " (and a spin-off's new_symbol) names the instrument that bore it on the ex-date"
        " (YYYY-MM-DD); a split's ratio is new shares per old one, also written 3:2 or"
        " 3-for-2. Bad lines are listed with their numbers, fields and reasons and nothing"
        " is written; an action stated again with other terms is restated (the old version"
        " kept, closed); loading a file again changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the CSV file of corporate actions")
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
                result = load_actions(path, dry_run=dry_run, progress=progress)
            except IngestRefused as refused:
                raise CommandError(str(refused)) from refused
        self.stdout.write(self.style.SUCCESS(describe(result)))
