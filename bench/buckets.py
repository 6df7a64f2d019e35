"""Hourly buckets over a year of one symbol's minute bars, from the bars and from the hourly
aggregate: median and p95 of 30 runs each. A benchmark, not a test: `make bench` runs it.

Goal: under 50 ms median from the bars on plain PostgreSQL, under 5 ms from the aggregate.
It loads a year of demo bars (about 98,000) into an instrument of its own in the configured
database, and removes them again afterwards (the partitions it needed stay, as after a load).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

import django

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from marketdata import demo  # noqa: E402
from marketdata.buckets import (  # noqa: E402
    BucketRequest,
    aggregate_sql,
    bucketed,
    from_aggregate,
    from_bars,
)
from marketdata.models import DailyBar, Instrument, MinuteBar  # noqa: E402
from qvp_site.db import engine  # noqa: E402
from qvp_site.db.aggregates import refresh_table  # noqa: E402
from qvp_site.db.intervals import parse_interval  # noqa: E402

SYMBOL = "BENCH.BUCKETS"
RUNS = 30
HOURLY = "marketdata_minutebar_1h"
DAY = parse_interval("1 day")


def timed(call, runs: int = RUNS) -> tuple[float, float, object]:
    """Median and p95 in milliseconds of ``runs`` calls after a warm-up, and the last result."""
    result = call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1], result


def remove(instrument: Instrument) -> None:
    """Delete the benchmark's bars, and its buckets from the aggregates. The instrument stays
    (its history in the security master keeps it: an instrument keeps its id for life), and
    the next run loads its bars again."""
    span = MinuteBar.objects.filter(instrument=instrument).values_list("ts", flat=True)
    first, last = span.order_by("ts").first(), span.order_by("-ts").first()
    with transaction.atomic():
        MinuteBar.objects.filter(instrument=instrument).delete()
        DailyBar.objects.filter(instrument=instrument).delete()
    if first is not None:
        refresh_table("marketdata_minutebar", first, last)


def load() -> tuple[Instrument, BucketRequest]:
    """A year of demo minute bars for the benchmark instrument, aggregates refreshed."""
    leftover = Instrument.objects.filter(symbol=SYMBOL, active=True).first()
    if leftover is not None:  # from an earlier run, or one that was interrupted
        remove(leftover)
    spec = replace(demo.DEMO_SYMBOLS["AAPL"], symbol=SYMBOL)
    minute = demo.generate(spec, demo.last_completed_weekday(), demo.TRADING_DAYS_PER_YEAR, 2024)
    daily = demo.daily_from_minutes(minute)
    demo.prepare_partitions(connection, minute, daily)
    with transaction.atomic():
        instrument = leftover or Instrument.objects.create(symbol=SYMBOL, asset_class="equity")
        demo.load(connection, instrument.id, minute, daily)
    first, last = demo.time_range(minute)
    refresh_table("marketdata_minutebar", first, last)
    with connection.cursor() as cursor:
        # Statistics as autovacuum would gather them, so the plans are those of a live system.
        cursor.execute("ANALYZE marketdata_minutebar")
        cursor.execute(f"ANALYZE {HOURLY}")
    hourly = BucketRequest(
        instrument.id, parse_interval("1h"), DAY.floor(first), DAY.add(DAY.floor(last))
    )
    return instrument, hourly


def server_ms(sql: str, params) -> float:
    """The server's own execution time of ``sql`` (EXPLAIN ANALYZE without per-node
    timing, which would slow it), best of five."""
    times = []
    with connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
            times.append(cursor.fetchone()[0][0]["Execution Time"])
    return min(times)


def report(label: str, median: float, p95: float, goal: float | None = None) -> None:
    verdict = (
        "" if goal is None else f"  goal < {goal:g} ms: {'met' if median < goal else 'MISSED'}"
    )
    print(f"  {label:<44} median {median:7.1f} ms   p95 {p95:7.1f} ms{verdict}")


def main() -> None:
    call_command("migrate", verbosity=0)  # `make bench` may come before `make run`
    info = engine.detect()
    print(f"Engine: {info.engine} (PostgreSQL {info.server_version})")
    instrument, hourly = load()
    try:
        bars = MinuteBar.objects.filter(instrument=instrument).count()
        queryset = (
            MinuteBar.objects.filter(instrument=instrument)
            .between(hourly.start, hourly.end)
            .bucketed("1h")
        )
        raw = timed(lambda: from_bars(hourly))
        aggregate = timed(lambda: from_aggregate(HOURLY, hourly))
        auto = timed(lambda: bucketed(hourly))
        iterated = timed(lambda: list(queryset.all()))
        rows = raw[2]
        assert rows == aggregate[2], "the aggregate and the bars disagree"
        assert auto[2].source == HOURLY
        print(f"Hourly buckets of {bars:,} minute bars of {SYMBOL}: {len(rows):,} buckets,")
        print(f"median and p95 of {RUNS} runs after a warm-up:")
        goal = 50 if not info.is_timescaledb else None
        report("from the bars (BarQuerySet.bucketed)", *raw[:2], goal)
        report("from the hourly aggregate", *aggregate[:2], 5)
        report("chosen (coverage check, then aggregate)", *auto[:2])
        report("from the bars, rows made by Django's loaders", *iterated[:2])
        in_bars = server_ms(*queryset.query.sql_with_params())
        params = [instrument.id, hourly.start, hourly.end]
        in_aggregate = server_ms(aggregate_sql(HOURLY, hourly.width), params)
        print("Execution in the server alone (EXPLAIN ANALYZE, best of 5):")
        print(f"  from the bars {in_bars:.1f} ms, from the hourly aggregate {in_aggregate:.1f} ms")
    finally:
        remove(instrument)


if __name__ == "__main__":
    main()
