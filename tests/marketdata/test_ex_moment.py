"""An action's ex moment follows its exchange (marketdata/sql/actions/0013.sql): 00:00 of the
ex-date in the exchange's time zone where that comes before 00:00 UTC (east of UTC), else 00:00
UTC. A daily file of a Paris or Tokyo vendor loaded with ``--tz`` stamps each day at local
midnight: the ex-date's own bar, and every bar after it, trade ex and are read as traded; the
day before's (its minute bars, its daily bar) are adjusted.

A 2:1 split of ex-date Wednesday 2024-05-15: Tuesday trades at 100, Wednesday at 50."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from exchange_calendars import get_calendar_names
from exchange_calendars.calendar_utils import global_calendar_dispatcher

from marketdata.models import DailyBar, Instrument, MinuteBar
from marketdata.security_master import Terms, set_terms

EX = date(2024, 5, 15)  # a Wednesday
TUESDAY, WEDNESDAY = EX - timedelta(days=1), EX
M = timedelta(minutes=1)

# Names of exchange_calendars' calendars of four letters that are not MICs (XNYS, XCBT...).
NOT_MICS = {"NYSE", "CBOT", "NYFE", "HKEX", "TASE"}

# exchange -> (time zone, the session's first minute in local time)
EXCHANGES = {
    "XPAR": ("Europe/Paris", timedelta(hours=9)),
    "XTKS": ("Asia/Tokyo", timedelta(hours=9)),
    "XNYS": ("America/New_York", timedelta(hours=9, minutes=30)),
}


def midnight(day: date, zone: str) -> datetime:
    """00:00 of ``day`` in ``zone``, as --tz stamps a daily bar."""
    return datetime.combine(day, datetime.min.time(), ZoneInfo(zone)).astimezone(UTC)


def split(instrument: Instrument, ex: date = EX, ratio: int = 2) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, %s, NULL, NULL, NULL, NULL, NULL, NULL)",
            [instrument.pk, ex, ratio],
        )


def dividend(instrument: Instrument, amount: str, ex: date = EX) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'cash_dividend', %s, NULL, %s, %s, NULL, NULL,"
            " NULL, NULL)",
            [instrument.pk, ex, Decimal(amount), instrument.currency],
        )


def ex_moment(instrument: Instrument, ex: date = EX) -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_ex_moment(%s::bigint, %s::date)", [instrument.pk, ex])
        return cursor.fetchone()[0]


def bar(model, instrument: Instrument, ts: datetime, close: float):
    return model(
        instrument=instrument, ts=ts, open=close, high=close, low=close, close=close, volume=10
    )


def trading_on(exchange: str) -> Instrument:
    """An instrument of ``exchange`` whose Tuesday and Wednesday are stamped as its exchange
    trades them: daily bars at local midnight (``--tz``), minute bars of each session."""
    zone, opens = EXCHANGES[exchange]
    stock = Instrument.objects.create(
        symbol=f"S{exchange}", asset_class="equity", exchange=exchange, currency="EUR"
    )
    days = [(TUESDAY, 100.0), (WEDNESDAY, 50.0)]
    DailyBar.objects.bulk_create(bar(DailyBar, stock, midnight(d, zone), c) for d, c in days)
    MinuteBar.objects.bulk_create(
        bar(MinuteBar, stock, midnight(d, zone) + opens + k * M, c)
        for d, c in days
        for k in range(2)
    )
    return stock


def closes(model, stock: Instrument, adjustment: str = "split") -> list[tuple[datetime, float]]:
    rows = model.objects.adjusted(adjustment).filter(instrument=stock).order_by("ts")
    return list(rows.values_list("ts", "close"))


@pytest.mark.parametrize("exchange", ["XPAR", "XTKS"])
def test_east_of_utc_the_ex_dates_bars_trade_ex_and_the_day_befores_are_adjusted(
    exchange, partitioned_for
):
    zone, _opens = EXCHANGES[exchange]
    stock = trading_on(exchange)
    split(stock)
    assert ex_moment(stock) == midnight(EX, zone)  # 22:00 (15:00) UTC on Tuesday
    assert [c for _ts, c in closes(DailyBar, stock)] == [50.0, 50.0]
    assert [c for _ts, c in closes(MinuteBar, stock)] == [50.0] * 4
    # Raw: as traded, the day before at 100.
    assert [c for _ts, c in closes(DailyBar, stock, "raw")] == [100.0, 50.0]


def test_east_of_utc_a_dividend_is_measured_by_the_close_of_the_day_before(partitioned_for):
    """Total return: the factor is 1 - amount / the last close before the ex moment, Tuesday's
    (100), not the ex-date's own bar (50 at 22:00 UTC on Tuesday), which stays as traded."""
    stock = trading_on("XPAR")
    dividend(stock, "2")
    tuesday, wednesday = closes(DailyBar, stock, "total_return")
    assert tuesday[1] == pytest.approx(100.0 * (1 - 2 / 100), rel=1e-12)
    assert wednesday[1] == 50.0


def test_in_the_us_the_ex_moment_is_00_00_utc_as_before(partitioned_for):
    stock = trading_on("XNYS")
    split(stock)
    assert ex_moment(stock) == datetime(2024, 5, 15, tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_ex_moment(%s::date)", [EX])  # version 0012's
        assert cursor.fetchone()[0] == ex_moment(stock)
    assert [c for _ts, c in closes(DailyBar, stock)] == [50.0, 50.0]
    assert [c for _ts, c in closes(MinuteBar, stock)] == [50.0] * 4


@pytest.mark.parametrize("exchange", ["", "ZZZZ", "Euronext Paris"])
def test_a_blank_or_unknown_exchange_keeps_00_00_utc(exchange, db):
    stock = Instrument.objects.create(symbol="ODD", asset_class="equity", exchange=exchange)
    assert ex_moment(stock) == datetime(2024, 5, 15, tzinfo=UTC)


def test_the_security_masters_mic_on_the_ex_date_comes_before_todays_exchange(db):
    """An instrument listed in Paris until June, in New York since (its row holds today's
    exchange): its ex moments of the Paris days stay Paris's."""
    stock = Instrument.objects.create(symbol="MOVE", asset_class="equity", exchange="XNYS")
    moved = date(2024, 6, 1)
    set_terms(stock.pk, None, moved, Terms(symbol="MOVE", currency="EUR", mic="XPAR"))
    set_terms(stock.pk, moved, None, Terms(symbol="MOVE", currency="USD", mic="XNYS"))
    assert ex_moment(stock, EX) == midnight(EX, "Europe/Paris")
    assert ex_moment(stock, moved) == datetime(2024, 6, 1, tzinfo=UTC)
    # A version with no MIC stated falls back on the instrument's exchange.
    blank = Instrument.objects.create(symbol="BLNK", asset_class="equity", exchange="XTKS")
    set_terms(blank.pk, None, None, Terms(symbol="BLNK", currency="JPY"))
    assert ex_moment(blank) == midnight(EX, "Asia/Tokyo")


def test_the_adjusted_reads_follow_the_security_masters_mic_too(partitioned_for):
    """The reads' factors (marketdata_action_factors) follow the same rule as
    marketdata_ex_moment: a stock whose row says XNYS today, listed in Paris on the ex-date."""
    stock = trading_on("XPAR")
    set_terms(stock.pk, None, None, Terms(symbol=stock.symbol, currency="EUR", mic="XPAR"))
    Instrument.objects.filter(pk=stock.pk).update(exchange="XNYS")
    split(stock)
    assert [c for _ts, c in closes(DailyBar, stock)] == [50.0, 50.0]


@pytest.mark.django_db(transaction=True)
def test_a_paris_file_adjusted_through_the_ex_date_stores_the_ex_dates_row_as_given(
    tmp_path: Path,
):
    """``ingest_bars --adjusted-through`` divides the vendor's split out of the rows before the
    ex moment only: the ex-date's row, stamped at Paris midnight, was never adjusted."""
    stock = Instrument.objects.create(symbol="AIR", asset_class="equity", exchange="XPAR")
    split(stock)
    path = tmp_path / "air.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        f"{EX - timedelta(days=3)},50,50,50,50,20\n"  # traded at 100 (10 shares)
        f"{EX},50,50,50,50,20\n"
        f"{EX + timedelta(days=1)},51,51,51,51,20\n"
    )
    out = StringIO()
    call_command(
        "ingest_bars",
        str(path),
        *("--symbol", "AIR", "--timeframe", "1d", "--tz", "Europe/Paris"),
        *("--adjusted-through", EX.isoformat()),
        stdout=out,
    )
    assert "1 rows divided back" in out.getvalue()
    stored = DailyBar.objects.filter(instrument=stock).order_by("ts")
    assert list(stored.values_list("close", "volume")) == [
        (100.0, 10.0),
        (50.0, 20.0),
        (51.0, 20.0),
    ]
    assert [c for _ts, c in closes(DailyBar, stock)] == [50.0, 50.0, 51.0]


# --- The exchanges' table ----------------------------------------------------------------------


def test_the_exchanges_time_zones_are_exchange_calendars(db):
    """The table holds every calendar of exchange_calendars named by a MIC, each with the
    calendar's time zone: a newer version that adds or moves one needs a migration."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT mic, time_zone FROM marketdata_exchange")
        zones = dict(cursor.fetchall())
    names = get_calendar_names(include_aliases=True)
    mics = {name for name in names if re.fullmatch("[A-Z0-9]{4}", name)} - NOT_MICS
    assert zones.keys() == mics
    # The calendars' class attribute (making 70 calendars takes seconds).
    factories = global_calendar_dispatcher._calendar_factories
    resolve = global_calendar_dispatcher.resolve_alias
    assert {mic: str(factories[resolve(mic)].tz) for mic in mics} == zones
    assert zones["XPAR"] == "Europe/Paris"
    assert zones["XNAS"] == "America/New_York"


def test_an_unknown_time_zone_is_refused_by_the_owner_too(db):
    with (
        pytest.raises(DatabaseError, match="Mars/Olympus"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO marketdata_exchange (mic, time_zone) VALUES ('XMRS', 'Mars/Olympus')"
        )


def test_the_app_role_reads_the_exchanges_and_writes_none(connect_as_app):
    with connect_as_app() as conn, conn.cursor() as cursor:
        cursor.execute("SELECT time_zone FROM marketdata_exchange WHERE mic = 'XPAR'")
        assert cursor.fetchone() == ("Europe/Paris",)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cursor.execute("UPDATE marketdata_exchange SET time_zone = 'UTC' WHERE mic = 'XPAR'")


def test_a_listing_mic_the_table_does_not_know_falls_back_to_the_exchange(db):
    """A listing naming a segment MIC (XJAS, not in marketdata_exchange) still goes ex at
    Tokyo's midnight, from the instrument's own exchange, rather than at 00:00 UTC."""
    stock = Instrument.objects.create(symbol="6758", asset_class="equity", exchange="XTKS")
    set_terms(stock.pk, None, None, Terms(symbol="6758", currency="JPY", mic="XJAS"))
    Instrument.objects.filter(pk=stock.pk).update(exchange="XTKS")
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_ex_moment(%s, DATE '2024-06-03')", [stock.pk])
        assert cursor.fetchone()[0] == datetime(2024, 6, 2, 15, tzinfo=UTC)
