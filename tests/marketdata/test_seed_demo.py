"""seed_demo: the same bars for the same seed, other bars for another, bars that obey the
rules of a bar, daily bars that agree with the minutes, aggregates refreshed.

The command refreshes the aggregates after its commit, which TimescaleDB refuses inside a
transaction: hence the transactional tests.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from marketdata import demo
from marketdata.buckets import BucketRequest, from_aggregate, from_bars
from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.db import status
from qvp_site.db.aggregates import refresh_table
from qvp_site.db.intervals import parse_interval

END = date(2024, 5, 17)  # a Friday
SMALL = ["--days", "5", "--symbols", "AAPL,MSFT", "--end", END.isoformat()]
CHECKSUM_SQL = """
SELECT md5(string_agg(concat_ws(',', i.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume,
                                b.vwap, b.trade_count), ';' ORDER BY i.symbol, b.ts))
FROM {table} b JOIN marketdata_instrument i ON i.id = b.instrument_id
"""


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *SMALL, *args, stdout=out)
    return out.getvalue()


def checksum() -> tuple[str, str]:
    """A digest of every minute and daily bar by symbol and time (ids differ between runs)."""
    with connection.cursor() as cursor:
        found = []
        for table in ("marketdata_minutebar", "marketdata_dailybar"):
            cursor.execute(CHECKSUM_SQL.format(table=table))
            found.append(cursor.fetchone()[0])
    return tuple(found)


@pytest.fixture
def clean_aggregates(transactional_db):
    """Empty the aggregates of what a test seeded (the flush empties model tables only)."""
    yield
    MinuteBar.objects.all().delete()
    refresh_table(
        "marketdata_minutebar", datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)
    )


@pytest.mark.django_db(transaction=True)
def test_the_same_seed_gives_the_same_bars_and_another_seed_others(clean_aggregates):
    out = seed("--seed", "7")
    assert "AAPL: 1,950 minute bars and 5 daily bars" in out
    assert "MSFT: 1,950 minute bars" in out
    assert "Refreshed marketdata_minutebar_1h" in out
    with connection.cursor() as cursor:  # analysed: the system page's estimates are the rows
        assert status.estimate(cursor, "marketdata_minutebar")[0] == 2 * 5 * 390
    first = checksum()
    seed("--seed", "7", "--replace")
    assert checksum() == first
    seed("--seed", "8", "--replace")
    assert checksum()[0] != first[0]
    assert MinuteBar.objects.count() == 2 * 5 * 390


@pytest.mark.django_db(transaction=True)
def test_seeded_bars_daily_bars_and_aggregates_agree(clean_aggregates):
    seed("--seed", "3")
    aapl = Instrument.objects.get(symbol="AAPL")
    assert (aapl.asset_class, aapl.exchange) == ("equity", "XNAS")
    minutes = MinuteBar.objects.filter(instrument=aapl)
    times = list(minutes.values_list("ts", flat=True))
    assert (times[0], times[-1]) == (
        datetime(2024, 5, 13, 13, 30, tzinfo=UTC),
        datetime(2024, 5, 17, 19, 59, tzinfo=UTC),
    )
    by_day = list(minutes.bucketed("1d"))
    daily = list(DailyBar.objects.filter(instrument=aapl).order_by("ts"))
    assert [(d.ts, d.open, d.high, d.low, d.close, d.volume) for d in daily] == [
        (b["bucket"], b["open"], b["high"], b["low"], b["close"], b["volume"]) for b in by_day
    ]
    asked = BucketRequest(
        aapl.id,
        parse_interval("1h"),
        datetime(2024, 5, 13, tzinfo=UTC),
        datetime(2024, 5, 18, tzinfo=UTC),
    )
    assert from_aggregate("marketdata_minutebar_1h", asked) == from_bars(asked)


@pytest.mark.django_db(transaction=True)
def test_if_empty_leaves_a_database_with_instruments_alone(clean_aggregates):
    Instrument.objects.create(symbol="ORCL", asset_class="equity")
    assert "no demo data loaded" in seed("--if-empty")
    assert not MinuteBar.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_bars_are_replaced_only_when_asked(clean_aggregates):
    seed("--seed", "1")
    with pytest.raises(CommandError, match="AAPL has bars already: pass --replace"):
        seed("--seed", "1")


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--symbols", "AAPL,XYZ"], "unknown demo symbols XYZ"), (["--days", "0"], "--days")],
)
def test_bad_arguments_are_refused(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args, stdout=StringIO())


# --- The generator, without a database -------------------------------------------------------
def test_generation_is_deterministic_per_seed_and_symbol():
    spec = demo.DEMO_SYMBOLS["NVDA"]
    one, again = demo.generate(spec, END, 5, 1), demo.generate(spec, END, 5, 1)
    other = demo.generate(spec, END, 5, 2)
    for name, column in one.columns().items():
        assert np.array_equal(column, again.columns()[name]), name
    assert not np.array_equal(one.close, other.close)


def test_bars_obey_the_rules_of_a_bar():
    for spec in demo.DEMO_SYMBOLS.values():
        bars = demo.generate(spec, END, 20, 5)
        assert (bars.low > 0).all()
        assert (bars.high >= np.maximum(bars.open, bars.close)).all()
        assert (bars.low <= np.minimum(bars.open, bars.close)).all()
        assert (bars.volume >= 0).all()
        assert (bars.vwap >= bars.low).all()
        assert (bars.vwap <= bars.high).all()
        assert (bars.open[1:] == bars.close[:-1]).mean() > 0.9  # gaps only overnight


def test_sessions_are_new_yorks_for_equities_and_from_17_00_new_york_for_fx():
    equity = demo.generate(demo.DEMO_SYMBOLS["SPY"], date(2024, 5, 19), 6, 1).ts  # a Sunday
    days = np.unique(equity.astype("datetime64[D]"))
    assert [str(d) for d in days] == [f"2024-05-{d}" for d in (10, 13, 14, 15, 16, 17)]
    minutes = (equity - equity.astype("datetime64[D]")).astype("timedelta64[m]").astype(int)
    # 9:30 to 16:00 New York in daylight saving time.
    assert (minutes.min(), minutes.max(), len(equity)) == (13 * 60 + 30, 19 * 60 + 59, 6 * 390)
    fx = demo.generate(demo.DEMO_SYMBOLS["EURUSD"], END, 2, 1).ts
    assert len(fx) == 2 * 1440
    # Thursday's session opens at 17:00 New York on Wednesday; Friday's closes at 17:00.
    assert (str(fx[0]), str(fx[-1])) == ("2024-05-15T21:00:00.000000", "2024-05-17T20:59:00.000000")


def test_last_completed_weekday():
    saturday = datetime(2024, 5, 18, 12, tzinfo=UTC)
    assert demo.last_completed_weekday(saturday) == date(2024, 5, 17)
    assert demo.last_completed_weekday(datetime(2024, 5, 20, 23, tzinfo=UTC)) == END


def test_garch_blocks_match_the_recursion():
    shocks = np.random.default_rng(0).standard_t(5, 3000) / np.sqrt(5 / 3)
    fast = demo.garch_variance(shocks, 0.05, 0.94)
    slow = [1.0]
    for z in shocks[:-1]:
        slow.append(0.01 + (0.05 * z * z + 0.94) * slow[-1])
    np.testing.assert_allclose(fast, slow, rtol=1e-9)
    assert 0.5 < fast.mean() < 2  # unit variance on average


def test_volatility_clusters():
    bars = demo.generate(demo.DEMO_SYMBOLS["SPY"], END, 60, 9)
    returns = np.diff(np.log(bars.close))
    returns = returns[np.arange(1, len(bars)) % 390 != 0]  # the overnight gaps left out
    size = np.abs(returns)
    # Large moves follow large moves ten minutes on; the moves themselves hardly correlate.
    assert np.corrcoef(size[:-10], size[10:])[0, 1] > 0.1
    assert abs(np.corrcoef(returns[:-1], returns[1:])[0, 1]) < 0.05
