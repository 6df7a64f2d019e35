from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from trading.management.commands.snapshot_portfolios import moment
from vectors import patterns


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
            "--since", type=moment, help="decisions from this time on, YYYY-MM-DD[THH:MM]"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def handle(self, *args, symbol=None, since=None, no_progress=False, **options):
        instruments = Instrument.objects.order_by("symbol")
        if symbol:
            wanted = {s.upper() for s in symbol}
            instruments = instruments.filter(symbol__in=wanted)
            missing = wanted - set(instruments.values_list("symbol", flat=True))
            if missing:
                raise CommandError(f"unknown symbols: {', '.join(sorted(missing))}")

        def progress(items):
            return tqdm(
                items, desc="backtests", unit="instrument", disable=no_progress, file=self.stderr
            )

        with acting_as("build_patterns"):
            written = patterns.build(instruments, since=since, progress=progress)
        for strategy, count in written.items():
            self.stdout.write(f"{strategy}: {count:,} patterns.")
        self.stdout.write(f"{sum(written.values()):,} strategy patterns written.")
