from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from marketdata.knowledge import known_at_argument
from qvp_site.acting import acting_as
from qvp_site.times import TIME_HELP, time_argument
from trading import tca
from trading.models import Account

# The scheduled refresh's window when no range is given: two days back, so that yesterday's
# fills get their one-day markouts once the day has passed.
DEFAULT_WINDOW = timedelta(days=2)


class Command(BaseCommand):
    help = (
        "Transaction cost analysis of the executions of [--start, --end): with --refresh, "
        "compute their costs again (arrival price, slippage, spread paid, markouts; busted "
        "executions lose theirs, revised market data restates them); then print the count, "
        "the notional, the notional-weighted slippage and the markout curve with 95% "
        "confidence intervals, by --by. With --pending, refresh only what busts, corrections, "
        "market-data revisions and corporate actions queued since, and empty the queue."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", help="an account's id or name (default: every account)")
        parser.add_argument(
            "--start",
            type=time_argument,
            help=f"from, {TIME_HELP} (default: two days before --end, the scheduled job's window)",
        )
        parser.add_argument(
            "--end", type=time_argument, help=f"until (excluded), {TIME_HELP} (default: now)"
        )
        parser.add_argument(
            "--refresh", action="store_true", help="compute the range's costs again first"
        )
        parser.add_argument(
            "--pending",
            action="store_true",
            help="refresh the ranges queued by busts, corrections, market-data revisions and"
            " corporate actions, empty the queue, and stop (no range, no summary)",
        )
        parser.add_argument(
            "--known-at",
            type=known_at_argument,
            help=f"read market data as known then (default: the settled moment), {TIME_HELP}",
        )
        parser.add_argument(
            "--by", choices=tca.DIMENSIONS, default="all", help="group the summary by this"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["pending"]:
            self._pending(options)
            return
        start, end = self._range(options["start"], options["end"])
        account = self._account(options["account"])
        if options["refresh"]:
            done = tca.refresh_detail(start, end, account, options["known_at"])
            self.stdout.write(
                f"refreshed {start:%Y-%m-%d %H:%M:%S} to {end:%Y-%m-%d %H:%M:%S} UTC:"
                f" {done.written} written, {done.removed} removed"
                f" (market data as known at {done.known_at.isoformat()})"
            )
        with acting_as(tca.ACTOR):
            rows = tca.summary(options["by"], start, end, account)
        self._report(rows)

    def _pending(self, options: dict[str, Any]) -> None:
        given = [f"--{name}" for name in ("account", "start", "end") if options[name] is not None]
        given += ["--refresh"] if options["refresh"] else []
        if given:
            raise CommandError(f"--pending takes no {', '.join(given)}: it refreshes the queue")
        done = tca.refresh_pending(options["known_at"])
        self.stdout.write(
            f"pending: {done.ranges} queued ranges refreshed, {done.refreshed.written} written,"
            f" {done.refreshed.removed} removed"
            f" (market data as known at {done.refreshed.known_at.isoformat()})"
        )

    def _range(self, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
        end = end or timezone.now()
        start = start or end - DEFAULT_WINDOW
        if end <= start:
            raise CommandError(
                f"--end ({end.isoformat()}) must be after --start ({start.isoformat()})"
            )
        return start, end

    def _account(self, value: str | None) -> int | None:
        if value is None:
            return None
        with acting_as(tca.ACTOR):
            match = Account.objects.filter(name=value)
            if value.isdigit():
                match = match | Account.objects.filter(pk=int(value))
            ids = list(match.values_list("pk", flat=True))
        if len(ids) != 1:
            raise CommandError(f"--account: no account with the id or name {value!r}")
        return ids[0]

    def _report(self, rows: list[dict[str, Any]]) -> None:
        if not rows:
            self.stdout.write("0 executions.")
            return
        group = None
        for row in rows:
            if row["grp"] != group:
                group = row["grp"]
                self.stdout.write(
                    f"{group}: {row['executions']} executions, notional {row['notional']:,.2f}"
                )
            self.stdout.write(f"  {row['measure']:<12} {_measure(row)}")


def _measure(row: dict[str, Any]) -> str:
    if row["mean"] is None:
        return "n/a (no data)"
    ci = ""
    if row["ci_low"] is not None:
        ci = f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]"
    return f"{row['mean']:+8.2f} bps{ci} (n={row['n']})"
