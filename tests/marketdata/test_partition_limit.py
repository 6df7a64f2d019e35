"""One load cannot flood the database with partitions: a load makes them only for the
intervals its rows fall in, and one that would make more new ones than
QVP_MAX_NEW_PARTITIONS_PER_LOAD is refused whole, naming the range and the count, with nothing
made: through the API (bars, signals, news), the ingest commands and the partition functions.

Partitions are DDL, which the flush after a transactional test leaves in place, so each test
loads a range of its own, far from the other tests' rows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from marketdata.models import DailyBar, Ingest, MinuteBar
from qvp_site.db import engine, partitions
from signals.models import Agent, NewsArticle, Signal

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/bars/"
WEEK = timedelta(days=7)


def bar(ts: datetime) -> dict:
    return {"ts": ts.isoformat(), "open": 10, "high": 11, "low": 9, "close": 10.5, "volume": 1}


def post_bars(client, timeframe: str, times: list[datetime]):
    body = {"symbol": "AAPL", "timeframe": timeframe, "bars": [bar(ts) for ts in times]}
    return client.post(URL, body, content_type="application/json")


def made_in(table: str, start: datetime, end: datetime) -> list[datetime]:
    """The lower bounds of the partitions (TimescaleDB: chunks) of ``table`` that hold a
    time in [start, end)."""
    with connection.cursor() as cursor:
        if engine.is_timescaledb():
            cursor.execute(
                "SELECT range_start FROM timescaledb_information.chunks WHERE hypertable_name = %s"
                " AND range_end > %s AND range_start < %s ORDER BY 1",
                [table, start, end],
            )
            return [row[0] for row in cursor.fetchall()]
        found = partitions.partitions(cursor, table)
    return [p.lower for p in found if p.upper > start and p.lower < end]


def weekly(start: datetime, count: int) -> list[datetime]:
    return [start + i * WEEK for i in range(count)]


@pytest.fixture
def limit(settings):
    settings.QVP_MAX_NEW_PARTITIONS_PER_LOAD = 3
    return 3


def test_two_daily_bars_years_apart_make_two_partitions_not_those_between(admin_client, instrument):
    times = [datetime(1900, 3, 1, tzinfo=UTC), datetime(1904, 3, 1, tzinfo=UTC)]
    response = post_bars(admin_client, "1d", times)
    assert response.status_code == 201, response.json()
    assert DailyBar.objects.count() == 2
    years = [lower.year for lower in made_in("marketdata_dailybar", times[0], times[1] + WEEK)]
    assert len(years) == 2
    if not engine.is_timescaledb():  # TimescaleDB cuts its chunks from 1970, not by the year
        assert years == [1900, 1904]


def test_minute_bars_a_century_apart_make_two_partitions(admin_client, instrument):
    # Every 7-day partition between them would be some 5,000.
    times = [datetime(1901, 6, 3, 14, 30, tzinfo=UTC), datetime(1999, 6, 7, 14, 30, tzinfo=UTC)]
    response = post_bars(admin_client, "1m", times)
    assert response.status_code == 201, response.json()
    assert len(made_in("marketdata_minutebar", times[0], times[1] + WEEK)) == 2


def test_a_batch_needing_more_new_partitions_than_the_limit_is_refused_with_nothing_made(
    admin_client, instrument, limit
):
    times = weekly(datetime(1910, 1, 5, 12, tzinfo=UTC), limit + 1)
    response = post_bars(admin_client, "1m", times)
    assert response.status_code == 400
    (message,) = response.json()["bars"]
    assert "from 1910-01-05 12:00:00+00:00 to 1910-01-26 12:00:00+00:00" in message
    assert f"would make {limit + 1} new" in message
    assert "marketdata_minutebar" in message
    assert f"at most {limit}" in message
    assert "QVP_MAX_NEW_PARTITIONS_PER_LOAD" in message
    assert made_in("marketdata_minutebar", times[0] - WEEK, times[-1] + WEEK) == []
    assert not MinuteBar.objects.exists()
    assert not Ingest.objects.filter(status=Ingest.Status.LOADED).exists()


def test_partitions_that_exist_do_not_count_against_the_limit(admin_client, instrument, limit):
    times = weekly(datetime(1920, 1, 6, 12, tzinfo=UTC), limit + 2)
    assert post_bars(admin_client, "1m", times[:2]).status_code == 201  # two made already
    response = post_bars(admin_client, "1m", times)
    assert response.status_code == 201, response.json()
    assert MinuteBar.objects.count() == limit + 2


def test_the_command_refuses_the_file_by_name_with_nothing_made(instrument, limit, tmp_path):
    times = weekly(datetime(1930, 2, 3, 9, 30, tzinfo=UTC), limit + 1)
    rows = [f"{ts:%Y-%m-%d %H:%M:%S},10,11,9,10.5,100" for ts in times]
    path = Path(tmp_path / "spread.csv")
    path.write_text("\n".join(["timestamp,open,high,low,close,volume", *rows]) + "\n")
    with pytest.raises(CommandError) as refused:
        call_command(
            "ingest_bars", str(path), "--symbol", "AAPL", "--timeframe", "1m", stdout=StringIO()
        )
    message = str(refused.value)
    assert message.startswith("refused spread.csv: ")
    assert "from 1930-02-03 09:30:00+00:00 to 1930-02-24 09:30:00+00:00" in message
    assert f"would make {limit + 1} new" in message
    assert made_in("marketdata_minutebar", times[0] - WEEK, times[-1] + WEEK) == []
    assert not MinuteBar.objects.exists()
    record = Ingest.objects.get()
    assert record.status == Ingest.Status.REFUSED
    assert f"would make {limit + 1} new" in record.error_summary


def test_the_command_reads_naive_times_in_the_files_zone(instrument, limit, tmp_path):
    # 23:30 in Tokyo on Monday 1940-01-08 is 14:30 UTC that day: the partition of that week,
    # found with the file's zone, holds the row.
    path = Path(tmp_path / "tokyo.csv")
    path.write_text("timestamp,open,high,low,close,volume\n1940-01-08 23:30:00,10,11,9,10.5,1\n")
    call_command(
        "ingest_bars",
        str(path),
        "--symbol",
        "AAPL",
        "--timeframe",
        "1m",
        "--tz",
        "Asia/Tokyo",
        stdout=StringIO(),
    )
    assert MinuteBar.objects.get().ts == datetime(1940, 1, 8, 14, 30, tzinfo=UTC)


def test_a_signal_batch_needing_too_many_partitions_is_refused_naming_ts(
    admin_client, instrument, limit
):
    Agent.objects.create(name="momentum_agent", kind="momentum")
    times = weekly(datetime(1950, 1, 2, tzinfo=UTC), limit + 1)
    batch = [
        {
            "agent": "momentum_agent",
            "symbol": instrument.symbol,
            "ts": ts.isoformat(),
            "strength": 0.4,
            "confidence": 0.7,
            "horizon": "1 00:00:00",
            "explanation": {},
        }
        for ts in times
    ]
    response = admin_client.post("/api/v1/signals/", batch, content_type="application/json")
    assert response.status_code == 400, response.json()
    (message,) = response.json()["ts"]
    what = "chunks" if engine.is_timescaledb() else "partitions"
    assert f"would make {limit + 1} new {what} of signals_signal" in message
    assert made_in("signals_signal", times[0] - WEEK, times[-1] + WEEK) == []
    assert not Signal.objects.exists()


def test_two_signals_a_thousand_years_apart_make_two_partitions(admin_client, instrument):
    # Every 7-day partition between them would be some 62,000.
    Agent.objects.create(name="momentum_agent", kind="momentum")
    times = [datetime(1801, 1, 5, tzinfo=UTC), datetime(2990, 1, 5, tzinfo=UTC)]
    batch = [
        {"agent": "momentum_agent", "symbol": instrument.symbol, "ts": ts.isoformat(),
         "strength": 0.4, "confidence": 0.7, "horizon": "1 00:00:00", "explanation": {}}
        for ts in times
    ]  # fmt: skip
    response = admin_client.post("/api/v1/signals/", batch, content_type="application/json")
    assert response.status_code == 201, response.json()
    assert Signal.objects.count() == 2
    # Those ahead of now exist already (made by migrate and maintain): count apart from them.
    assert len(made_in("signals_signal", times[0], datetime(1900, 1, 1, tzinfo=UTC))) == 1
    assert len(made_in("signals_signal", datetime(2900, 1, 1, tzinfo=UTC), times[1] + WEEK)) == 1


def test_news_needing_too_many_partitions_is_refused_by_file_name(db, tmp_path, settings):
    settings.QVP_MAX_NEW_PARTITIONS_PER_LOAD = 1
    path = Path(tmp_path / "old-news.csv")
    path.write_text(
        "published_at,source,headline\n"
        "1960-01-04T10:00:00Z,Reuters,One\n"
        "1960-06-01T10:00:00Z,Reuters,Two\n"
    )
    with pytest.raises(CommandError) as refused:
        call_command("ingest_news", str(path), stdout=StringIO())
    message = str(refused.value)
    assert message.startswith("refused old-news.csv: ")
    assert "would make 2 new" in message
    start, end = datetime(1959, 12, 1, tzinfo=UTC), datetime(1960, 7, 1, tzinfo=UTC)
    assert made_in("signals_newsarticle", start, end) == []
    assert not NewsArticle.objects.exists()


@pytest.mark.parametrize("hours", [5, 1])
def test_the_rows_intervals_are_found_by_the_server_whatever_their_number(
    db, django_assert_max_num_queries, hours
):
    start = datetime(1970, 1, 5, tzinfo=UTC)
    times = [start + timedelta(hours=h) for h in range(0, 24 * 30, hours)]
    with connection.cursor() as cursor:
        sql = "SELECT unnest(%s::timestamptz[]) AS ts"
        with django_assert_max_num_queries(3):
            needs = partitions.rows_needs(cursor, "marketdata_minutebar", sql, [times])
    assert needs is not None
    assert (needs.first, needs.last) == (times[0], times[-1])
    assert len(needs.lowers) in (5, 6)  # 30 days over 7-day intervals, as aligned
    assert needs.lowers == sorted(set(needs.lowers))


@pytest.mark.parametrize("value", ["0", "-5", "many"])
def test_the_setting_must_be_a_positive_integer(value):
    env = {**os.environ, "QVP_MAX_NEW_PARTITIONS_PER_LOAD": value}
    env["DJANGO_SETTINGS_MODULE"] = "qvp_site.settings"
    found = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.INSTALLED_APPS"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert found.returncode != 0
    assert "ImproperlyConfigured" in found.stderr
    assert "QVP_MAX_NEW_PARTITIONS_PER_LOAD" in found.stderr


@pytest.mark.timescaledb
def test_timescaledb_counts_the_chunks_the_rows_would_make(admin_client, instrument, limit):
    times = weekly(datetime(1915, 3, 1, 12, tzinfo=UTC), limit + 1)
    response = post_bars(admin_client, "1m", times)
    assert response.status_code == 400
    assert f"would make {limit + 1} new chunks" in response.json()["bars"][0]
    assert made_in("marketdata_minutebar", times[0] - WEEK, times[-1] + WEEK) == []
    within = post_bars(admin_client, "1m", times[:limit])
    assert within.status_code == 201, within.json()
    assert len(made_in("marketdata_minutebar", times[0], times[limit - 1] + WEEK)) == limit
