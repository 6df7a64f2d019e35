from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from marketdata.fields import as_date, command_instruments
from marketdata.models import Instrument, MinuteBar
from marketdata.presence import instruments_with_bars
from qvp_site.acting import acting_as
from qvp_site.per_instrument import InstrumentRun, raise_if_failed
from qvp_site.times import TIME_HELP, time_argument
from risk.anomalies import Anomalies, detect


class Command(BaseCommand):
    help = (
        "Detect market-data anomalies of a symbol's minute bars (of every active instrument "
        "with minute bars when no --symbol is given) over the last HOURS before a time "
        "(default: now): returns and volumes that are outliers by a robust z-score (median "
        "and MAD), and gaps where the exchange's trading calendar says the market was open "
        "and no bar exists, found by the SQL function risk_market_anomalies (behind "
        "detect_market_data_anomalies) once the calendar's sessions are loaded for it. Prints "
        "them and stores them (running again restates them). An "
        "instrument without minute bars is skipped; one that fails is named, the others are "
        "stored, and the command exits with an error."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--symbol", action="append", help="the instrument's symbol (repeatable; default all)"
        )
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

    def handle(self, *args, symbol=None, hours, as_of=None, threshold, **options):
        instruments = self._instruments(symbol, as_of)
        if hours <= 0:
            raise CommandError("--hours must be positive")
        if threshold <= 0:
            raise CommandError("--threshold must be positive")
        run = InstrumentRun("anomalies")
        end = as_of or timezone.now()
        # Instruments with minute bars at all, in one query: a daily-only instrument has
        # no minutes to miss, and its whole window would otherwise read as one gap.
        with_minutes = instruments_with_bars(MinuteBar._meta.db_table, [i.id for i in instruments])
        with acting_as("detect_anomalies"):
            for instrument in instruments:
                if instrument.id not in with_minutes:
                    run.skip(instrument.symbol, "no minute bars")
                    continue
                with run.each(instrument.symbol):
                    self._report(detect(instrument, hours, end, threshold))
        for line in run.lines():
            self.stdout.write(line)
        raise_if_failed(run)

    def _instruments(self, symbols: list[str] | None, as_of: datetime | None) -> list[Instrument]:
        """The --symbol instruments, each the one that bore it on --as-of's date (else
        today); all active ones when none is named."""
        if not symbols:
            return list(Instrument.objects.filter(active=True).order_by("symbol"))
        wanted = list(dict.fromkeys(symbols))
        return command_instruments("--symbol", wanted, as_date(as_of) if as_of else None)

    def _report(self, found: Anomalies) -> None:
        self.stdout.write(
            f"{found.symbol}: {found.bars} bar(s) from {found.start:%Y-%m-%d %H:%M} to"
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
        if found.calendar:
            for lower, upper, why in found.unmeasured:
                self.stdout.write(f"  {lower:%Y-%m-%d %H:%M} to {upper:%Y-%m-%d %H:%M}: {why}")
