"""The instrument page's candles adjusted for corporate actions: split-adjusted by default,
``?adjustment=raw|split|total_return`` to choose, kept across the timeframe switch.

SPLT trades about 100 until a 2 for 1 split goes ex on Thursday 2026-03-05 and about 50 after;
drawn as traded, the chart would fall by half that Thursday. No demo: the page of an instrument
with nothing but bars and actions.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.db import partitions
from tests.clients import client_of

# Every test by both roads of the factors (tests/fixtures/marketdata.py).
pytestmark = pytest.mark.usefixtures("factors_road")

DAYS = [datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4, 5, 6, 9, 10)]
EX_DATE = date(2026, 3, 5)
# As traded: 100, 101, 102 before the split; 53, 54, 55, 56 after it.
CLOSES = [100, 101, 102, 53, 54, 55, 56]
SPLIT_CLOSES = [50.0, 50.5, 51.0, 53.0, 54.0, 55.0, 56.0]
MINUTE = timedelta(minutes=1)


def chart_data(response, chart_id: str = "chart-candles") -> dict:
    html = response.content.decode()
    start = html.index(f'<script id="{chart_id}" type="application/json">')
    return json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])


def candles(response) -> list[dict]:
    return chart_data(response)["series"][0]["data"]


def state(instrument: Instrument, kind: str, ex_date: date, ratio=None, amount=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            [instrument.id, kind, ex_date, ratio, amount, "USD" if amount else None],
        )


@pytest.fixture
def operator(db):
    return client_of(get_user_model().objects.create_superuser("candles-operator"))


@pytest.fixture
def split_daily(db) -> Instrument:
    """SPLT: daily bars only, a 2 for 1 split in the middle of them."""
    partitions.prepare_load("marketdata_dailybar", DAYS[0], DAYS[-1])
    splt = Instrument.objects.create(symbol="SPLT", asset_class="equity")
    DailyBar.objects.bulk_create(
        DailyBar(instrument=splt, ts=day, open=c, high=c + 2, low=c - 2, close=c, volume=100)
        for day, c in zip(DAYS, CLOSES, strict=True)
    )
    state(splt, "split", EX_DATE, ratio=2)
    return splt


@pytest.fixture
def split_minutes(db) -> Instrument:
    """SPLM: minute bars on the Wednesday before the split and on its ex-date."""
    wednesday, thursday = DAYS[2] + timedelta(hours=15), DAYS[3] + timedelta(hours=15)
    partitions.prepare_load("marketdata_minutebar", wednesday, thursday + timedelta(hours=1))
    splm = Instrument.objects.create(symbol="SPLM", asset_class="equity")
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=splm, ts=start + n * MINUTE, open=c, high=c, low=c, close=c, volume=10)
        for start, c in ((wednesday, 100), (thursday, 51))
        for n in range(3)
    )
    state(splm, "split", EX_DATE, ratio=2)
    return splm


def test_daily_candles_are_split_adjusted_by_default(operator, split_daily):
    response = operator.get("/instruments/SPLT/?tf=1d")
    assert response.context["adjustment"] == "split"
    assert response.context["source"] == "marketdata_dailybar_adjusted"
    assert [c["close"] for c in candles(response)] == SPLIT_CLOSES
    # Volumes the other way: twice the shares before the split.
    volumes = chart_data(response)["series"][1]["data"]
    assert [v["value"] for v in volumes] == [200.0] * 3 + [100.0] * 4
    assert b"split-adjusted" in response.content


def test_raw_candles_are_the_prices_as_traded(operator, split_daily):
    response = operator.get("/instruments/SPLT/?tf=1d&adjustment=raw")
    assert response.context["source"] == "marketdata_dailybar"
    assert [c["close"] for c in candles(response)] == [float(c) for c in CLOSES]


def test_total_return_candles_take_the_dividends_too(operator, split_daily):
    """A dividend of 1.08 ex on Monday 9 March, after Friday's close of 54: every earlier
    candle times 1 - 1.08 / 54 = 0.98 besides the split."""
    state(split_daily, "cash_dividend", date(2026, 3, 9), amount="1.08")
    response = operator.get("/instruments/SPLT/?tf=1d&adjustment=total_return")
    closes = [c["close"] for c in candles(response)]
    expected = [c * 0.98 for c in SPLIT_CLOSES[:5]] + SPLIT_CLOSES[5:]
    assert closes == pytest.approx(expected, rel=1e-12)
    # The split alone, asked: the dividend leaves it be.
    split = operator.get("/instruments/SPLT/?tf=1d&adjustment=split")
    assert [c["close"] for c in candles(split)] == SPLIT_CLOSES


def test_a_week_spanning_the_ex_date_is_computed_from_the_adjusted_bars(operator, split_daily):
    weekly = candles(operator.get("/instruments/SPLT/?tf=1w"))
    # The week of 2 March: opens at Monday's adjusted 50, its low Monday's adjusted 49.
    assert [(c["open"], c["high"], c["low"], c["close"]) for c in weekly] == [
        (50.0, 56.0, 49.0, 54.0),
        (55.0, 58.0, 53.0, 56.0),
    ]


def test_an_unknown_adjustment_is_the_default_and_the_switch_keeps_the_choice(
    operator, split_daily
):
    response = operator.get("/instruments/SPLT/?tf=1d&adjustment=nonsense")
    assert response.context["adjustment"] == "split"
    raw = operator.get("/instruments/SPLT/?tf=1w&adjustment=raw").content.decode()
    # The timeframe links keep the adjustment; the adjustment links keep the timeframe.
    assert 'href="?adjustment=raw&amp;tf=1d" data-tf="1d"' in raw
    assert 'href="?tf=1w&amp;adjustment=split" data-adjustment="split"' in raw
    assert 'data-adjustment="raw" aria-current="true"' in raw


def test_a_split_before_the_window_leaves_the_candles_as_traded(operator, split_daily):
    """An action whose ex-date precedes every candle adjusts none: the read stays the table's
    (and, for minute bars, the aggregates')."""
    late = Instrument.objects.create(symbol="LATE", asset_class="equity")
    DailyBar.objects.bulk_create(
        DailyBar(instrument=late, ts=day, open=10, high=11, low=9, close=10, volume=1)
        for day in DAYS[4:]
    )
    state(late, "split", date(2025, 1, 2), ratio=2)  # long before the 366 days shown
    response = operator.get("/instruments/LATE/?tf=1d")
    assert response.context["source"] == "marketdata_dailybar"
    assert [c["close"] for c in candles(response)] == [10.0] * 3


@pytest.mark.parametrize("tf", ["1m", "1h"])
def test_minute_and_hourly_candles_are_adjusted_too(operator, split_minutes, tf):
    response = operator.get(f"/instruments/SPLM/?tf={tf}")
    assert response.context["source"] == "marketdata_minutebar_adjusted"
    closes = [c["close"] for c in candles(response)]
    assert closes == ([50.0] * 3 + [51.0] * 3 if tf == "1m" else [50.0, 51.0])
    raw = operator.get(f"/instruments/SPLM/?tf={tf}&adjustment=raw")
    assert next(c["close"] for c in candles(raw)) == 100.0
