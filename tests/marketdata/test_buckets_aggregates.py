"""Buckets from the hourly and daily aggregates equal buckets from the bars once the
aggregates are refreshed, on the engine in use; which aggregate serves which request.

Refreshing a TimescaleDB continuous aggregate is refused inside a transaction, hence the
transactional tests here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from django.db import connection, transaction

from marketdata import demo
from marketdata.buckets import (
    BucketRequest,
    bucket_count,
    bucketed,
    from_aggregate,
    from_bars,
    serving_aggregate,
)
from marketdata.models import Instrument, MinuteBar
from qvp_site.db.aggregates import refresh_table
from qvp_site.db.intervals import parse_interval

HOURLY, DAILY = "marketdata_minutebar_1h", "marketdata_minutebar_1d"
# Ten New York sessions to Friday 2024-06-07, a month's end inside: Friday 2024-05-24 to
# June 7, Memorial Day (Monday 2024-05-27) closed.
LAST_DAY, DAYS = date(2024, 6, 7), 10
START, END = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 7, 1, tzinfo=UTC)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def request(instrument_id=1, width="1h", start=START, end=END, timeframe="1m"):
    return BucketRequest(instrument_id, parse_interval(width), start, end, timeframe)


@pytest.mark.parametrize(
    ("width", "start", "end", "expected"),
    [
        ("1h", START, END, HOURLY),
        ("4h", START, END, HOURLY),
        ("90 minutes", START, END, None),  # an hour straddles two of its buckets
        ("30 minutes", START, END, None),
        ("1d", START, END, DAILY),
        ("3 days", START, END, DAILY),
        ("1w", START, END, DAILY),
        ("1mo", START, END, DAILY),
        ("1d", at(2024, 5, 1, 13), END, HOURLY),  # not on a day boundary: hours tile it
        ("1h", at(2024, 5, 1, 13, 30), END, None),
    ],
)
def test_the_coarsest_aligned_aggregate_serves(width, start, end, expected):
    assert serving_aggregate(request(width=width, start=start, end=end)) == expected


def test_daily_bars_are_never_read_from_the_minute_aggregates():
    assert serving_aggregate(request(width="1w", timeframe="1d")) is None


@pytest.mark.parametrize(
    ("width", "start", "end", "count"),
    [
        ("1h", at(2024, 5, 1), at(2024, 5, 2), 24),
        ("1h", at(2024, 5, 1, 0, 30), at(2024, 5, 1, 2, 0, 1), 3),
        ("1mo", at(2024, 1, 15), at(2024, 3, 1), 2),
        ("1mo", at(2024, 1, 15), at(2024, 3, 2), 3),
        ("1w", at(2024, 5, 1), at(2024, 5, 8), 2),  # Wednesday to Wednesday
    ],
)
def test_bucket_count(width, start, end, count):
    assert bucket_count(parse_interval(width), start, end) == count


@pytest.fixture
def loaded(transactional_db):
    """Two weeks of demo bars for an equity and for FX (whose hours span midnight), in the
    database with the aggregates refreshed; the aggregates are emptied again afterwards (the
    flush after a transactional test empties model tables only)."""
    made = []
    for spec in (demo.DEMO_SYMBOLS["AAPL"], demo.DEMO_SYMBOLS["EURUSD"]):
        instrument = Instrument.objects.create(symbol=f"{spec.symbol}.AGG", asset_class="equity")
        minute = demo.generate(spec, LAST_DAY, DAYS, seed=11)
        daily = demo.daily_from_minutes(minute)
        demo.prepare_partitions(connection, minute, daily)
        with transaction.atomic():
            demo.load(connection, instrument.id, minute, daily)
        made.append(instrument)
    first, last = demo.time_range(minute)
    refresh_table("marketdata_minutebar", first, last)
    yield made
    MinuteBar.objects.all().delete()
    refresh_table("marketdata_minutebar", START, END)


WIDTHS = ["1h", "2h", "4h", "1d", "3 days", "1w", "1mo"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fill", [False, True])
def test_aggregates_give_the_bars_buckets_after_a_refresh(loaded, fill):
    for instrument in loaded:
        for width in WIDTHS:
            asked = request(instrument.id, width)
            name = serving_aggregate(asked)
            from_table = from_aggregate(name, asked, fill)
            assert from_table == from_bars(asked, fill), (instrument, width)
            assert from_table, (instrument, width)
            if fill:
                assert len(from_table) == bucket_count(asked.width, START, END)


@pytest.mark.django_db(transaction=True)
def test_hand_checked_hourly_and_monthly_buckets_from_the_aggregates(loaded):
    aapl = loaded[0]
    hours = from_aggregate(HOURLY, request(aapl.id, "1h"))
    assert len(hours) == DAYS * 7  # 13:30-20:00 UTC: one half hour and six whole ones
    assert {(h["bucket"].hour, h["bar_count"]) for h in hours} == {(13, 30)} | {
        (hour, 60) for hour in range(14, 20)
    }
    months = from_aggregate(DAILY, request(aapl.id, "1mo"))
    assert [(m["bucket"], m["bar_count"]) for m in months] == [
        (at(2024, 5, 1), 5 * 390),  # May 24 and 28-31
        (at(2024, 6, 1), 5 * 390),  # June 3-7
    ]
    assert months[0]["close"] == hours[5 * 7 - 1]["close"]
    assert months[1]["open"] == hours[5 * 7]["open"]


@pytest.mark.django_db(transaction=True)
def test_bars_answer_until_a_refresh_covers_new_ones(loaded):
    aapl = loaded[0]
    asked = request(aapl.id, "1h")
    assert bucketed(asked).source == HOURLY
    late = at(2024, 6, 8, 13, 30)  # a Saturday: in the last partition, after the last bar
    MinuteBar.objects.create(instrument=aapl, ts=late, open=1, high=1, low=1, close=1, volume=1)
    found = bucketed(asked)
    assert found.source == "marketdata_minutebar"
    assert found.rows[-1]["bucket"] == at(2024, 6, 8, 13)
    refresh_table("marketdata_minutebar", late, late)
    assert bucketed(asked).source == HOURLY
    assert bucketed(asked).rows == bucketed(asked, source="bars").rows


@pytest.mark.django_db(transaction=True)
def test_the_api_reads_the_aggregate_and_says_so(loaded, client, django_user_model):
    client.force_login(django_user_model.objects.create_user("quant"))
    url = "/api/v1/bars/buckets/?symbol=AAPL.AGG&width=1w&start=2024-05-01&end=2024-07-01"
    body = client.get(url).json()
    assert body["source"] == DAILY
    assert [b["bucket"] for b in body["buckets"]] == [
        "2024-05-20T00:00:00Z",  # Friday 24th
        "2024-05-27T00:00:00Z",
        "2024-06-03T00:00:00Z",
    ]
    bars = client.get(url.replace("start=2024-05-01", "start=2024-05-01T00:30:00Z")).json()
    assert bars["source"] == "marketdata_minutebar"
    assert bars["buckets"] == body["buckets"]


def test_a_forced_aggregate_must_serve():
    with pytest.raises(ValueError, match="no aggregate serves"):
        bucketed(request(width="90 minutes"), source="aggregate")
