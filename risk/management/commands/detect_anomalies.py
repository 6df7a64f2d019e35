from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.times import TIME_HELP, time_argument
from risk.anomalies import detect


class Command(BaseCommand):
    help = (
        "Detect market-data anomalies of a symbol's minute bars over the last HOURS before a "
        "time (default: now): returns and volumes that are outliers by a robust z-score "
        "(median and MAD), and gaps where the exchange's trading calendar says the market was "
        "open and no bar exists. Prints them and stores them (running again restates them)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbol", required=True, help="the instrument's symbol")
        parser.add_argument("--hours", type=float, default=24.0, help="the window (default 24)")
        parser.add_argument(
            "--as-of", type=time_argument, help=f"the window's end, {TIME_HELP} (default: now)"
        )
        parser.add_argument(
            "--threshold",
            type=float,
            default=5.0,
            help="robust z-score beyond which a bar is an outlier",
        )

    def handle(self, *args, symbol, hours, as_of=None, threshold, **options):
        instrument = Instrument.objects.filter(symbol=symbol).first()
        if instrument is None:
            raise CommandError(f"--symbol: no instrument {symbol!r}")
        if hours <= 0:
            raise CommandError("--hours must be positive")
        if threshold <= 0:
            raise CommandError("--threshold must be positive")
        with acting_as("detect_anomalies"):
            found = detect(instrument, hours, as_of or timezone.now(), threshold)
        self.stdout.write(
            f"{symbol}: {found.bars} bar(s) from {found.start:%Y-%m-%d %H:%M} to"
            f" {found.end:%Y-%m-%d %H:%M} UTC; {len(found.outliers)} outlier(s),"
            f" {len(found.gaps)} gap(s)"
            + ("" if found.calendar else " (no trading calendar known: gaps not measured)")
        )
        for row in found.outliers.itertuples():
            self.stdout.write(
                f"  {row.ts:%Y-%m-%d %H:%M} {row.kind} {row.value:.6g} z={row.score:.1f}"
            )
        for row in found.gaps.itertuples():
            self.stdout.write(
                f"  {row.ts:%Y-%m-%d %H:%M} gap to {row.until:%H:%M}:"
                f" {int(row.value)} minute(s) missing"
            )
