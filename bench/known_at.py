"""A year of one symbol's minute bars read as known before 1,000 scattered corrections, against
the same read of the present: median of several runs each, through the ORM and in raw SQL.

    .venv/bin/python bench/known_at.py [--runs 15] [--corrections 1000] [--explain]

Goal: the read as known at a moment at most 1.5 times as long as the read of the present.

It loads a year of demo minute bars (390 a day, 252 days: 98,280) of an instrument of its
own and the same of ``--others`` instruments beside it (so that the plans are those of a
table of many instruments), notes the time t, then corrects 1,000 bars of its instrument drawn
at random over the year through ``ingest_bars`` (so the revisions are the pipeline's own:
marketdata_merge_bars keeps each replaced bar in marketdata_minutebarrevision), and ANALYZEs
both tables as autovacuum would.
Then, alternating the two in every run so that they share whatever else loads the machine:

- ORM: ``MinuteBar.objects.for_symbol(S).between(a, b).known_at(t)`` fetched whole with
  ``values_list``, against the same without ``known_at``;
- SQL: ``SELECT ... FROM marketdata_minutebar_known_at(t) WHERE instrument_id = ... AND ts
  ...`` against the same from the table, fetched whole by psycopg: the database's part alone;
- the server's own execution time of each SQL read (EXPLAIN ANALYZE, timing off, best of 5).

It checks that the read as known at t gives the bars as loaded and the present read the
corrected ones. ``--explain`` prints both SQL reads' plans. Everything happens in a
throwaway database of the configured server (bench/support/scratch.py). Not a test.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_known_at")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from marketdata import demo  # noqa: E402
from marketdata.models import Instrument, MinuteBar, MinuteBarRevision  # noqa: E402
from qvp_site.db import engine  # noqa: E402
from qvp_site.db.intervals import parse_interval  # noqa: E402

SYMBOL = "BENCH.KNOWNAT"
GOAL_RATIO = 1.5
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
DAY = parse_interval("1 day")
Rows = list[tuple]


@dataclass(frozen=True)
class Loaded:
    instrument_id: int
    start: datetime  # the reads' range: [start, end)
    end: datetime
    known_at: datetime  # after the load, before the corrections
    as_loaded: Rows


def load_year(symbol: str) -> tuple[Instrument, demo.Bars]:
    """A year of demo minute bars of a new instrument, COPYed in one transaction."""
    spec = replace(demo.DEMO_SYMBOLS["AAPL"], symbol=symbol)
    minute = demo.generate(spec, demo.last_completed_weekday(), demo.TRADING_DAYS_PER_YEAR, 2024)
    daily = demo.daily_from_minutes(minute)
    demo.prepare_partitions(connection, minute, daily)
    with transaction.atomic():
        instrument = Instrument.objects.create(symbol=symbol, asset_class="equity")
        demo.load(connection, instrument.id, minute, daily)
    return instrument, minute


def load(others: int) -> Loaded:
    """The symbol's year and ``others`` symbols' beside it, then t. With other instruments'
    bars in the partitions, as in use, the reads' plans are those of a table of many
    instruments (with one, a scan of whole partitions wins)."""
    instrument, minute = load_year(SYMBOL)
    for number in range(1, others + 1):
        load_year(f"{SYMBOL}.{number}")
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")  # later than the loads' known_from
        known_at = cursor.fetchone()[0]
    first, last = demo.time_range(minute)
    start, end = DAY.floor(first), DAY.add(DAY.floor(last))
    return Loaded(instrument.id, start, end, known_at, read_orm(start, end))


def correct(count: int, seed: int = 20240515) -> int:
    """Correct ``count`` bars drawn at random from the stored ones through ``ingest_bars``:
    a vendor's file of just those bars, each with a close 0.1% away (high and low widened to
    hold it). Returns the revisions the load stored."""
    rng = random.Random(seed)  # noqa: S311 - which bars a vendor corrects, not secrets
    bars = list(MinuteBar.objects.filter(instrument__symbol=SYMBOL).values_list(*COLUMNS))
    chosen = sorted(rng.sample(bars, count))
    before = MinuteBarRevision.objects.count()
    with tempfile.TemporaryDirectory(prefix="qvp-bench-known-at-") as tmp:
        path = Path(tmp) / "corrections.csv"
        with path.open("w") as out:
            out.write("timestamp,open,high,low,close,volume\n")
            for ts, open_, high, low, close, volume in chosen:
                new_close = close * (1.001 if rng.random() < 0.5 else 0.999)
                out.write(
                    f"{ts.isoformat()},{open_!r},{max(high, new_close)!r},"
                    f"{min(low, new_close)!r},{new_close!r},{volume!r}\n"
                )
        call_command("ingest_bars", str(path), "--symbol", SYMBOL, "--timeframe", "1m",
                     stdout=StringIO())  # fmt: skip
    return MinuteBarRevision.objects.count() - before


def read_orm(start: datetime, end: datetime, known_at: datetime | None = None) -> Rows:
    """The bars of [start, end) as a list of tuples, through the ORM (as known at a moment,
    or now)."""
    bars = MinuteBar.objects.for_symbol(SYMBOL).between(start, end).known_at(known_at)
    return list(bars.values_list(*COLUMNS))


def sql_read(loaded: Loaded, *, known: bool) -> tuple[str, list]:
    """The same read in plain SQL, from the function or the table."""
    source = "marketdata_minutebar_known_at(%s)" if known else "marketdata_minutebar"
    params: list = [loaded.known_at] if known else []
    sql = (
        f"SELECT {', '.join(COLUMNS)} FROM {source}"
        " WHERE instrument_id = %s AND ts >= %s AND ts < %s ORDER BY ts"
    )
    return sql, [*params, loaded.instrument_id, loaded.start, loaded.end]


def fetch(sql: str, params: list) -> Rows:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def timed_pair(a: Callable[[], object], b: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median milliseconds of ``a`` and of ``b`` over ``runs`` runs after a warm-up of each,
    the two alternating (which goes first alternates too) so that they share the load."""
    a(), b()
    times: tuple[list[float], list[float]] = ([], [])
    for run in range(runs):
        order = ((0, a), (1, b)) if run % 2 == 0 else ((1, b), (0, a))
        for index, call in order:
            started = time.perf_counter()
            call()
            times[index].append((time.perf_counter() - started) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def server_ms(sql: str, params: list) -> float:
    """The server's own execution time of ``sql``, without per-node timing, best of five."""
    best = float("inf")
    with connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
            best = min(best, cursor.fetchone()[0][0]["Execution Time"])
    return best


def explain(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join("    " + line for (line,) in cursor.fetchall())


def check(loaded: Loaded, corrected: int) -> Rows:
    """The read as known at t gives the bars as loaded; the present differs in exactly the
    corrected bars. Returns the present."""
    then = read_orm(loaded.start, loaded.end, loaded.known_at)
    now = read_orm(loaded.start, loaded.end)
    assert then == loaded.as_loaded, "the read as known at t is not the bars as loaded"
    assert fetch(*sql_read(loaded, known=True)) == then, "the SQL read disagrees with the ORM's"
    changed = sum(1 for old, new in zip(then, now, strict=True) if old != new)
    assert changed == corrected, f"{changed} bars differ from t to now, {corrected} corrected"
    return now


def line(label: str, known_ms: float, present_ms: float) -> str:
    ratio = known_ms / present_ms
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    return (
        f"  {label:<34} known_at {known_ms:7.1f} ms   present {present_ms:7.1f} ms"
        f"   ratio {ratio:.2f} (goal <= {GOAL_RATIO}: {verdict})"
    )


def measure(loaded: Loaded, bars: int, revisions: int, runs: int, show_plans: bool) -> None:
    info = engine.detect()
    print(f"Engine: {info.engine} (PostgreSQL {info.server_version})")
    print(f"{bars:,} minute bars of {SYMBOL} in [{loaded.start:%Y-%m-%d}, {loaded.end:%Y-%m-%d}),"
          f" {revisions:,} of them corrected after t (revisions stored: {revisions:,});"
          f" median of {runs} runs each, after a warm-up:")  # fmt: skip
    orm = timed_pair(
        lambda: read_orm(loaded.start, loaded.end, loaded.known_at),
        lambda: read_orm(loaded.start, loaded.end),
        runs,
    )
    known_sql, present_sql = sql_read(loaded, known=True), sql_read(loaded, known=False)
    raw = timed_pair(lambda: fetch(*known_sql), lambda: fetch(*present_sql), runs)
    server = server_ms(*known_sql), server_ms(*present_sql)
    print(line("ORM, values_list fetched whole", *orm))
    print(line("SQL, fetched whole by psycopg", *raw))
    print(line("SQL, the server alone (best of 5)", *server))
    print(f"  ORM minus SQL: known_at {orm[0] - raw[0]:.1f} ms, present {orm[1] - raw[1]:.1f} ms")
    if show_plans:
        print("Plan of the read as known at t:")
        print(explain(*known_sql))
        print("Plan of the read of the present:")
        print(explain(*present_sql))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--corrections", type=int, default=1000)
    parser.add_argument("--others", type=int, default=3, help="other symbols' years beside")
    parser.add_argument("--explain", action="store_true", help="print both SQL reads' plans")
    args = parser.parse_args()
    if args.runs < 1 or args.corrections < 1 or args.others < 0:
        parser.error("--runs >= 1, --corrections >= 1, --others >= 0")
    with throwaway_database():
        started = time.perf_counter()
        loaded = load(args.others)
        if args.corrections > len(loaded.as_loaded):
            parser.error(f"--corrections: at most {len(loaded.as_loaded):,} bars to correct")
        revisions = correct(args.corrections)
        with connection.cursor() as cursor:
            # Statistics as autovacuum would gather them, so the plans are a live system's.
            cursor.execute("ANALYZE marketdata_minutebar")
            cursor.execute(f"ANALYZE {MinuteBarRevision._meta.db_table}")
        check(loaded, revisions)
        print(f"loaded and corrected in {time.perf_counter() - started:.1f} s")
        measure(loaded, len(loaded.as_loaded), revisions, args.runs, args.explain)


if __name__ == "__main__":
    main()
