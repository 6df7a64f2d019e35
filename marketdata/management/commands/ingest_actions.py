from __future__ import annotations

from pathlib import Path

from marketdata.actions_load import OPTIONAL, REQUIRED, describe, load_actions
from qvp_site.loading.file_command import FileLoadCommand
from qvp_site.loading.progress import Progress


class Command(FileLoadCommand):
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

    file_help = "the CSV file of corporate actions"

    def load(self, path: Path, dry_run: bool, progress: Progress):
        return load_actions(path, dry_run=dry_run, progress=progress)

    def report(self, result) -> None:
        self.stdout.write(self.style.SUCCESS(describe(result)))
