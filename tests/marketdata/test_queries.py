"""Named bar queries against hand-computed values, on the engine in use."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketdata.models import DailyBar, Instrument, MinuteBar
from marketdata.prices import latest_prices
from tests.marketdata.conftest import START


def bar(instrument, minutes, o, h, l, c, v=1.0):  # noqa: E741 - OHLC
    return MinuteBar(
        instrument=instrument,
        ts=START + timedelta(minutes=minutes),
        open=o,
        high=h,
        low=l,
        close=c,
        volume=v,
    )


@pytest.fixture
def bars(instrument, partitioned_for):
    MinuteBar.objects.bulk_create(
        [
            bar(instrument, 0, 10, 11, 9, 10.5, 100),
            bar(instrument, 1, 10.5, 12, 10, 11, 50),
            bar(instrument, 59, 11, 11.5, 8, 9, 25),
            bar(instrument, 60, 9, 9.5, 8.5, 9.2, 10),
            bar(instrument, 60 * 24 * 7 + 5, 20, 21, 19, 20.5, 7),  # the next Monday
        ]
    )
    return instrument


def test_bucketed_hourly_ohlcv(bars):
    rows = list(MinuteBar.objects.for_symbol("AAPL").bucketed("1h"))
    assert [
        (r["bucket"], r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in rows
    ] == [
        (START, 10, 12, 8, 9, 175),
        (START + timedelta(hours=1), 9, 9.5, 8.5, 9.2, 10),
        (START + timedelta(days=7), 20, 21, 19, 20.5, 7),
    ]


def test_bucketed_weekly_starts_on_monday(bars):
    rows = list(MinuteBar.objects.for_symbol("AAPL").bucketed("1w"))
    assert [(r["bucket"], r["open"], r["close"], r["volume"]) for r in rows] == [
        (START, 10, 9.2, 185),
        (START + timedelta(days=7), 20, 20.5, 7),
    ]


def test_between_is_half_open(bars):
    qs = MinuteBar.objects.for_symbol("AAPL").between(
        START + timedelta(minutes=1), START + timedelta(minutes=60)
    )
    assert list(qs.values_list("close", flat=True)) == [11, 9]


def test_returns(bars):
    rows = list(
        MinuteBar.objects.for_symbol("AAPL").with_returns().values_list("simple_return", flat=True)
    )
    assert rows[0] is None
    assert rows[1] == pytest.approx(11 / 10.5 - 1)


def test_latest_bar_per_instrument(bars, django_assert_max_num_queries):
    other = Instrument.objects.create(symbol="MSFT", asset_class="equity")
    MinuteBar.objects.bulk_create([bar(other, 3, 5, 6, 4, 5.5)])
    with django_assert_max_num_queries(1):
        latest = {b.instrument_id: b.close for b in MinuteBar.objects.latest_per_instrument()}
    assert latest == {bars.id: 20.5, other.id: 5.5}


def test_latest_prices_as_of_a_time(bars, django_assert_max_num_queries):
    daily_only = Instrument.objects.create(symbol="ORCL", asset_class="equity")
    DailyBar.objects.create(
        instrument=daily_only, ts=START - timedelta(days=3), open=2, high=2, low=2, close=2
    )
    with django_assert_max_num_queries(1):
        prices = latest_prices([bars.id, daily_only.id], as_of=START + timedelta(minutes=30))
    assert prices[bars.id].price == 11
    assert prices[bars.id].ts == START + timedelta(minutes=1)
    assert (prices[daily_only.id].price, prices[daily_only.id].source) == (2, "daily")
    assert latest_prices([bars.id], as_of=START - timedelta(days=30)) == {}
