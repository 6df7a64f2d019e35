"""manage.py seed_demo: the demo data of every app, in order (bars, then trading, risk,
signals and vectors over them).

It lives in the dashboard because it sits on top of every app, as the dashboard does: each
app keeps its own ``demo`` module, and only this command knows them all.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.db.models import Max, Min

from marketdata import demo
from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.acting import acting_as
from qvp_site.db import catalog
from qvp_site.db.aggregates import refresh_table
from qvp_site.db.quoting import ident
from risk import demo as risk_demo
from signals import demo as signals_demo
from trading import demo as trading_demo
from vectors import demo as vectors_demo


def symbol_list(value: str) -> list[str]:
    """``--symbols``: a comma-separated list, upper-cased, blanks dropped."""
    return [s.strip().upper() for s in value.split(",") if s.strip()]


class Command(BaseCommand):
    help = (
        "Load synthetic one-minute bars (GBM with clustered volatility, an intraday volume "
        "profile) and the daily bars made from them (one a session) for demo symbols, over "
        "the New York trading days ending with the last completed weekday: equities in their "
        "exchange's sessions (no holidays, early closes at 13:00 New York), FX from Sunday "
        "17:00 to Friday 17:00 New York, crypto every day; identical for the same seed and "
        "dates. "
        "Refreshes the hourly and daily aggregates of the range. The first time, also demo "
        "trading accounts with cash, orders and executions at the bars' closes, and their "
        "daily portfolio snapshots."
    )

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
        parser.add_argument(
            "--symbols",
            type=symbol_list,
            default=list(demo.DEFAULT_SYMBOLS),
            help=f"comma-separated, among {','.join(demo.DEMO_SYMBOLS)}"
            f" (default: {','.join(demo.DEFAULT_SYMBOLS)})",
        )
        parser.add_argument(
            "--days",
            type=int,
            default=demo.TRADING_DAYS_PER_YEAR,
            help="New York trading days (sessions) the demo covers; each symbol trades its own"
            " sessions over their dates (default: a year, 252)",
        )
        parser.add_argument(
            "--end",
            type=date.fromisoformat,
            default=None,
            help="last day, YYYY-MM-DD (default: the last completed weekday)",
        )
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="do nothing when any instrument exists (what `make run` uses)",
        )
        parser.add_argument(
            "--replace",
            action="store_true",
            help="replace the bars of symbols that have some (refused otherwise)",
        )

    def handle(self, *args, seed, symbols, days, end, if_empty, replace, **options):
        if if_empty and Instrument.objects.exists():
            self.stdout.write("Instruments exist already: no demo data loaded.")
            return
        specs = self._specs(symbols, days)
        end = end or demo.last_completed_weekday()
        started = time.monotonic()
        # One transaction: a seed stopped half-way (make run interrupted on its first start)
        # leaves nothing, so the next start seeds again instead of finding instruments and
        # skipping the rest for good.
        with transaction.atomic():
            batches = {spec: self._generate(spec, end, days, seed) for spec in specs}
            for minute, daily in batches.values():
                demo.prepare_partitions(connection, minute, daily)
            replaced = self._load(batches, replace)
            first, last = self._range(batches, replaced)
            # After the commit, as TimescaleDB refuses to refresh inside a transaction: at once
            # when the command runs on its own, later when a caller holds a transaction.
            transaction.on_commit(lambda: self._refresh(first, last))
            trading_demo.seed(batches, seed, self.stdout.write)
            signals_demo.seed(batches, seed, self.stdout.write)
            with acting_as("seed_demo"):
                symbols = [spec.symbol for spec in specs]
                vectors_demo.seed(
                    list(Instrument.objects.filter(symbol__in=symbols)), self.stdout.write
                )
            risk_demo.seed(self.stdout.write)
        self.stdout.write(f"Seed {seed}: done in {time.monotonic() - started:.1f} s.")

    def _refresh(self, first: datetime, last: datetime) -> None:
        # Statistics first: the refresh plans with them, and the system page's row estimates
        # read them (a table autovacuum has not reached yet would show about none).
        with connection.cursor() as cursor:
            for series in catalog.time_series(cursor):
                cursor.execute(f"ANALYZE {ident(series.table)}")
        self.stdout.write("Analysed the time-series tables.")
        for name, lower, upper in refresh_table(demo.MINUTE_TABLE, first, last):
            self.stdout.write(f"Refreshed {name} over [{lower:%Y-%m-%d}, {upper:%Y-%m-%d}).")

    def _specs(self, symbols: list[str], days: int) -> list[demo.DemoSymbol]:
        unknown = sorted(set(symbols) - set(demo.DEMO_SYMBOLS))
        if unknown:
            known = ", ".join(demo.DEMO_SYMBOLS)
            raise CommandError(f"unknown demo symbols {', '.join(unknown)} (known: {known})")
        if days < 1:
            raise CommandError("--days must be at least 1")
        return [demo.DEMO_SYMBOLS[s] for s in dict.fromkeys(symbols)]

    def _generate(self, spec: demo.DemoSymbol, end: date, days: int, seed: int) -> tuple:
        try:
            minute = demo.generate(spec, end, days, seed)
        except ValueError as error:  # dates outside the exchange calendar's range
            raise CommandError(f"--end {end} with --days {days}: {error}") from None
        return minute, demo.daily_from_minutes(minute)

    @transaction.atomic
    def _load(self, batches: dict, replace: bool) -> list[tuple[datetime, datetime]]:
        """Instruments and bars in one transaction: a failed seed leaves nothing behind.
        Returns the time ranges of bars it replaced, which need refreshing too."""
        replaced = []
        for spec, (minute, daily) in batches.items():
            instrument = self._instrument(spec)
            replaced += self._clear(instrument, replace)
            demo.load(connection, instrument.id, minute, daily)
            first, last = demo.time_range(minute)
            self.stdout.write(
                f"{spec.symbol}: {len(minute):,} minute bars and {len(daily):,} daily bars,"
                f" {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC."
            )
        return replaced

    def _instrument(self, spec: demo.DemoSymbol) -> Instrument:
        instrument, _ = Instrument.objects.get_or_create(
            symbol=spec.symbol,
            defaults={
                "asset_class": spec.asset_class,
                "exchange": spec.exchange,
                "currency": spec.currency,
                "tick_size": str(spec.tick_size),
            },
        )
        return instrument

    def _clear(self, instrument: Instrument, replace: bool) -> list[tuple[datetime, datetime]]:
        """Delete the instrument's bars when asked to replace them; refuse to mix otherwise."""
        minute = MinuteBar.objects.filter(instrument=instrument)
        span = _span(minute)
        if span is None and not DailyBar.objects.filter(instrument=instrument).exists():
            return []
        if not replace:
            raise CommandError(
                f"{instrument.symbol} has bars already: pass --replace to replace them"
            )
        minute.delete()
        DailyBar.objects.filter(instrument=instrument).delete()
        return [span] if span else []

    def _range(self, batches: dict, replaced: list) -> tuple[datetime, datetime]:
        spans = [demo.time_range(minute) for minute, _ in batches.values()] + replaced
        return min(s[0] for s in spans), max(s[1] for s in spans)


def _span(bars) -> tuple[datetime, datetime] | None:
    found = bars.aggregate(first=Min("ts"), last=Max("ts"))
    return (found["first"], found["last"]) if found["first"] else None
