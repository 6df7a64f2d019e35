from __future__ import annotations

from django.core.management.base import BaseCommand
from tqdm import tqdm

from qvp_site.acting import acting_as
from qvp_site.per_instrument import InstrumentRun, raise_if_failed
from qvp_site.times import TIME_HELP, time_argument
from vectors import patterns
from vectors.management.commands.build_embeddings import named_instruments


class Command(BaseCommand):
    help = (
        "Backtest the pattern strategies (momentum, mean reversion, breakout, slow trend; "
        f"hourly decisions held {patterns.HORIZON} minutes, {patterns.FEE_BPS:g} bp a side) "
        "over each instrument's minute bars; store each run with its trades, and each trade "
        "as a strategy pattern: the 256-d market state it was decided in and its outcome. "
        "Replaces the runs this command made before for the same instruments."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbol", action="append", metavar="S", help="only this symbol")
        parser.add_argument(
            "--since", type=time_argument, help=f"decisions from this time on, {TIME_HELP}"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, symbol=None, since=None, no_progress=False, **options):
        instruments = named_instruments(symbol, since)

        def progress(items):
            return tqdm(
                items, desc="backtests", unit="instrument", disable=no_progress, file=self.stderr
            )

        run = InstrumentRun("patterns")
        with acting_as("build_patterns"):
            written = patterns.build(instruments, since=since, progress=progress, run=run)
        for strategy, count in written.items():
            self.stdout.write(f"{strategy}: {count:,} patterns.")
        self.stdout.write(f"{sum(written.values()):,} strategy patterns written.")
        for line in run.lines():
            self.stdout.write(line)
        raise_if_failed(run)
