"""manage.py delete_market_data: take a range of one instrument's market data out of the
present (a bad vendor file), keeping every row it removes as a revision."""

from __future__ import annotations

from argparse import ArgumentTypeError
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection, models, transaction

from marketdata.fields import as_date, command_instruments
from marketdata.models import DailyBar, Instrument, MinuteBar, OptionQuote, Tick
from qvp_site.acting import acting_as
from qvp_site.db import aggregates
from qvp_site.times import TIME_HELP, time_argument

ACTOR = "delete_market_data"


@dataclass(frozen=True)
class Kind:
    model: type[models.Model]
    description: str
    instrument_field: str = "instrument"  # an option quote's is its underlying

    @property
    def table(self) -> str:
        return self.model._meta.db_table


KINDS = {
    "1m": Kind(MinuteBar, "1-minute bars"),
    "1d": Kind(DailyBar, "daily bars"),
    "ticks": Kind(Tick, "ticks"),
    "options": Kind(OptionQuote, "option quotes", instrument_field="underlying"),
}
KINDS_TEXT = ", ".join(sorted(KINDS))


class Command(BaseCommand):
    help = (
        "Delete the market data of one instrument in [--start, --end) (option quotes: of the "
        "underlying), for a bad vendor file. The rows leave the present but stay readable as "
        "known before the deletion (known_at: MinuteBar.objects.known_at(t), or in SQL "
        "marketdata_minutebar_known_at(t)): each is kept as a revision with change 'deleted' "
        "and who deleted it. Without --yes it only says how many rows it would delete. The "
        "summaries (aggregates) of the range are refreshed after the deletion commits."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--symbol", required=True, help="the instrument, e.g. AAPL")
        parser.add_argument(
            "--kind",
            required=True,
            choices=sorted(KINDS),
            help="1m (minute bars), 1d (daily bars), ticks, options (quotes of the underlying)",
        )
        parser.add_argument(
            "--start", required=True, type=time_argument, help=f"first time deleted ({TIME_HELP})"
        )
        parser.add_argument(
            "--end", required=True, type=time_argument, help=f"end, not deleted ({TIME_HELP})"
        )
        parser.add_argument(
            "--yes", action="store_true", help="delete (without it: say how many rows, only)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        kind = KINDS.get(options["kind"])
        if kind is None:  # argparse refuses it first; called from code it may not
            raise CommandError(f"--kind: unknown kind {options['kind']!r} (one of {KINDS_TEXT})")
        start, end = _range(options["start"], options["end"])
        symbol: str = options["symbol"]
        instrument = _instrument(symbol, start)
        what = f"{kind.description} of {symbol} in [{start.isoformat()}, {end.isoformat()})"
        if not options["yes"]:
            count = _rows(kind, instrument, start, end).count()
            self.stdout.write(
                f"Would delete {count:,} {what}; nothing deleted. Run again with --yes to "
                "delete them (they stay readable as known before the deletion)."
            )
            return
        deleted, known_until, deferred = _delete(kind, instrument, start, end)
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {deleted:,} {what}: they left the present and stay readable as known"
                f" before {known_until.isoformat()} (known_at earlier than that), each kept as"
                " a 'deleted' revision."
            )
        )
        if deferred:
            self.stdout.write(self.style.WARNING(deferred))


def _range(start: Any, end: Any) -> tuple[datetime, datetime]:
    """[start, end), checked: parsed times (``call_command`` may pass text), start first."""
    times = []
    for name, value in (("--start", start), ("--end", end)):
        if isinstance(value, str):
            try:
                value = time_argument(value)
            except ArgumentTypeError as error:  # with the reason
                raise CommandError(f"{name}: {error}") from error
        if not isinstance(value, datetime):
            raise CommandError(f"{name}: {value!r} is not a time ({TIME_HELP})")
        times.append(value)
    if times[0] >= times[1]:
        raise CommandError(
            f"--start ({times[0].isoformat()}) must be before --end ({times[1].isoformat()}):"
            " the range is [start, end)"
        )
    return times[0], times[1]


def _instrument(symbol: str, start: datetime) -> Instrument:
    """The instrument that bore ``symbol`` on --start's date (FB in 2020: the one now META)."""
    if "\x00" in symbol:  # PostgreSQL refuses NUL in text: no such symbol, not an error
        raise CommandError(f"--symbol: no instrument {symbol!r}")
    return command_instruments("--symbol", [symbol], as_date(start))[0]


def _rows(kind: Kind, instrument: Instrument, start: datetime, end: datetime) -> Any:
    return kind.model._default_manager.filter(
        **{kind.instrument_field: instrument, "ts__gte": start, "ts__lt": end}
    )


def _delete(
    kind: Kind, instrument: Instrument, start: datetime, end: datetime
) -> tuple[int, datetime, str]:
    """Delete in one transaction that names the command as the actor (the revisions record
    it); the aggregates of the range are refreshed once it commits. Returns the rows deleted,
    the deletion's time (the revisions' ``known_until``) and, if the refresh after the commit
    failed, what was left to the next ``maintain``."""
    committed = False

    def mark() -> None:
        nonlocal committed
        committed = True

    try:
        with acting_as(ACTOR), connection.cursor() as cursor:
            cursor.execute(
                "SELECT marketdata_delete(%s::regclass, %s, %s, %s), now()",
                [kind.table, instrument.pk, start, end],
            )
            deleted, known_until = cursor.fetchone()
            transaction.on_commit(mark)
            if deleted:
                # Marked pending in this transaction, refreshed after the commit (TimescaleDB
                # refuses a refresh inside a transaction), as a load does.
                aggregates.refresh_after_commit(kind.table, start, end)
    except DatabaseError as error:
        if not committed:
            raise CommandError(f"nothing deleted: {error}".strip()) from error
        # The deletion stands; the range was marked pending with it, so the next `maintain`
        # refreshes the summaries. A connection the failure left broken is replaced.
        connection.close_if_unusable_or_obsolete()
        return (
            deleted,
            known_until,
            f"The summaries of the range are left to the next maintain: {error}",
        )
    return deleted, known_until, ""
