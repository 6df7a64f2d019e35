"""Ingest benchmark: 1,000,000 one-minute bars from a CSV through ``ingest_bars``, against
``psql \\copy`` of the same file, in one run on the same server; then the same million again
with 1% of them corrected, and once more unchanged.

    .venv/bin/python bench/ingest.py [--rows N] [--corrected 0.01]

The file is a random walk with volatility clustering (GARCH(1,1) returns, bars around the
clock on weekdays). ``\\copy`` loads it twice, into tables beside marketdata_minutebar:

- *key*: the same columns, primary key, unique (instrument, ts) key and partitioning;
- *twin*: the same again plus the CHECK rules and the foreign key to the instrument, i.e.
  everything ``ingest_bars`` pays for on the real table.

The partitions of the range are created before anything is timed, for all three tables
(``ingest_bars`` would otherwise create them on demand). Prints rows/s and the ratios; the
goal is ingest >= 0.7 of ``\\copy`` (key) and >= 200,000 rows/s. Then the bars' bytes per
row (``known_from`` is 8 of them).

Revisions: the file again with ``--corrected`` of its bars (scattered at random) given another
close, loaded by ``ingest_bars`` over the stored ones: its rate, the revisions it stored and
their bytes each (marketdata_minutebarrevision with its indexes, per revision). Then the
corrected file once more: a load that changes nothing and keeps nothing, its rate beside.

Everything happens in a throwaway database of the configured server (bench/support/
scratch.py), dropped at the end: revisions are never deleted, and the development data is
never touched. Not a test.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_ingest")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.support.sizes import describe, table_size  # noqa: E402
from marketdata.models import Instrument, MinuteBar, MinuteBarRevision  # noqa: E402
from qvp_site.db import catalog, engine, partitions  # noqa: E402
from qvp_site.db.quoting import ident  # noqa: E402

SYMBOL = "BENCH.INGEST"
TABLE = MinuteBar._meta.db_table
REVISIONS = MinuteBarRevision._meta.db_table
START = datetime(2020, 1, 6, tzinfo=UTC)  # a Monday
GOAL_RATIO = 0.7  # issue 27
GOAL_ROWS_PER_SECOND = 200_000


def generate(path: Path, rows: int, seed: int = 20240513) -> tuple[datetime, datetime]:
    """Write ``rows`` one-minute bars; returns the first and last bar's time."""
    rng = random.Random(seed)  # noqa: S311 - market noise, not secrets
    long_run = 0.0005**2  # per-minute variance, about 18% a year
    alpha, beta = 0.06, 0.93
    omega = long_run * (1 - alpha - beta)
    variance, close, ts = long_run, 100.0, START
    minute = timedelta(minutes=1)
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        chunk = []
        for _ in range(rows):
            if ts.weekday() == 5:  # Saturday 00:00: on to Monday
                ts += timedelta(days=2)
            shock = rng.gauss(0.0, math.sqrt(variance))
            variance = omega + alpha * shock * shock + beta * variance
            open_, close = close, close * math.exp(shock)
            spread = abs(rng.gauss(0.0, math.sqrt(variance)))
            high = max(open_, close) * (1 + spread)
            low = min(open_, close) * (1 - spread)
            volume = 1 + int(rng.expovariate(1 / 800) * (1 + 2000 * abs(shock)))
            chunk.append(
                f"{ts.isoformat()},{open_:.4f},{high:.4f},{low:.4f},{close:.4f},{volume}\n"
            )
            if len(chunk) == 50_000:
                out.writelines(chunk)
                chunk.clear()
            last, ts = ts, ts + minute
        out.writelines(chunk)
    return START, last


def correct(source: Path, path: Path, share: float, seed: int = 20240514) -> int:
    """Copy ``source`` to ``path`` with ``share`` of its bars, drawn at random over the whole
    file, given a close 0.1% up or down (high and low widened to hold it); returns how many."""
    lines = source.read_text().splitlines(keepends=True)
    rng = random.Random(seed)  # noqa: S311 - which bars a vendor corrects, not secrets
    chosen = rng.sample(range(1, len(lines)), round((len(lines) - 1) * share))
    for number in chosen:
        ts, open_, high, low, close, volume = lines[number].rstrip("\n").split(",")
        new_close = float(close) * (1.001 if rng.random() < 0.5 else 0.999)
        high_ = max(float(high), new_close)
        low_ = min(float(low), new_close)
        lines[number] = f"{ts},{open_},{high_:.4f},{low_:.4f},{new_close:.4f},{volume}\n"
    path.write_text("".join(lines))
    return len(chosen)


def width():
    with connection.cursor() as cursor:
        return catalog.time_series(cursor, TABLE)[0].chunk_interval


def create_copy_table(name: str, instrument_id: int, first, last, *, twin: bool) -> None:
    """A table beside marketdata_minutebar for \\copy: same columns (the instrument as the
    default, the file having none), keys and partitioning; ``twin`` adds CHECKs and the FK."""
    extra = " INCLUDING CONSTRAINTS" if twin else ""
    partitioned = "" if engine.is_timescaledb() else " PARTITION BY RANGE (ts)"
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE {ident(name)} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING IDENTITY"
            f"{extra}){partitioned}"
        )
        cursor.execute(
            f"ALTER TABLE {ident(name)} ALTER instrument_id SET DEFAULT {int(instrument_id)},"
            f" ADD PRIMARY KEY (id, ts), ADD UNIQUE (instrument_id, ts)"
        )
        if twin:
            cursor.execute(
                f"ALTER TABLE {ident(name)} ADD FOREIGN KEY (instrument_id)"
                " REFERENCES marketdata_instrument (id) DEFERRABLE INITIALLY DEFERRED"
            )
        if engine.is_timescaledb():
            cursor.execute(
                "SELECT create_hypertable(%s::regclass, by_range('ts', %s::interval))",
                [ident(name), width().sql()],
            )
        else:  # directly: qvp_create_partition serves registered time-series tables only
            for lower, upper in partitions.bounds_covering(width(), first, last):
                part = partitions.partition_name(name, lower, width())
                cursor.execute(
                    f"CREATE TABLE {ident(part)} PARTITION OF {ident(name)}"
                    " FOR VALUES FROM (%s) TO (%s)",
                    [lower, upper],
                )


def psql_copy(name: str, path: Path) -> float:
    """Seconds for psql's \\copy of ``path`` into ``name``."""
    db = settings.DATABASES["default"]
    psql = _psql_binary()
    env = {
        **os.environ,
        "PGHOST": str(db["HOST"] or ""),
        "PGPORT": str(db["PORT"] or ""),
        "PGUSER": db["USER"] or "",
        "PGPASSWORD": db["PASSWORD"] or "",
        "PGDATABASE": db["NAME"],
    }
    command = (
        f"\\copy {name} (ts, open, high, low, close, volume) FROM '{path}'"
        " WITH (FORMAT csv, HEADER true)"
    )
    checkpoint()
    started = time.perf_counter()
    subprocess.run([psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", command], env=env, check=True)
    return time.perf_counter() - started


def _psql_binary() -> str:
    from qvp_site.db import postmaster

    return str(postmaster.bin_dir() / "psql")


def checkpoint() -> None:
    """Start each timed load with no dirty buffers left by the one before."""
    with connection.cursor() as cursor:
        cursor.execute("CHECKPOINT")


def run_ingest(path: Path) -> tuple[float, str]:
    out = StringIO()
    checkpoint()
    started = time.perf_counter()
    call_command(
        "ingest_bars", str(path), "--symbol", SYMBOL, "--timeframe", "1m", "-v", "2", stdout=out
    )
    return time.perf_counter() - started, out.getvalue()


def report(rows: int, size: int, ingest_s: float, key_s: float, twin_s: float, out: str) -> None:
    def line(what: str, seconds: float) -> str:
        return f"  {what:<58} {seconds:7.2f} s {rows / seconds:>11,.0f} rows/s"

    rate = rows / ingest_s
    print(f"{rows:,} one-minute bars, {size / 1e6:.1f} MB of CSV, {engine.detect().engine}")
    print(line("ingest_bars (stage, check, write, commit, aggregates)", ingest_s))
    print(line("psql \\copy, same columns + keys + partitioning (key)", key_s))
    print(line("psql \\copy, + the CHECK rules and the instrument FK (twin)", twin_s))
    print(f"  ratio ingest / \\copy key:  {key_s / ingest_s:.2f}  (goal >= {GOAL_RATIO})")
    print(f"  ratio ingest / \\copy twin: {twin_s / ingest_s:.2f}")
    verdict = "met" if rate >= GOAL_ROWS_PER_SECOND else "not met"
    print(f"  {rate:,.0f} rows/s end to end: goal of {GOAL_ROWS_PER_SECOND:,} {verdict}")
    print("  ingest_bars said: " + " ".join(out.split()))


def report_revisions(
    rows: int, changed: int, first_s: float, runs: list[tuple[float, int, str]]
) -> None:
    """The corrected reload (and the unchanged one after it): rate, revisions, their bytes."""
    (corrected_s, kept, out), (again_s, kept_again, again_out) = runs
    with connection.cursor() as cursor:
        size = table_size(cursor, REVISIONS)
    heap, total = size.per_row()
    share = changed / rows
    print(f"The same {rows:,} bars again, {changed:,} of them ({share:.1%}) corrected, scattered:")
    print(f"  {'ingest_bars over the stored bars':<58} {corrected_s:7.2f} s"
          f" {rows / corrected_s:>11,.0f} rows/s")  # fmt: skip
    print(f"  {first_s / corrected_s:.2f} of the first load's rate")
    print(f"  revisions stored: {kept:,} (bars corrected: {changed:,});"
          f" {REVISIONS} {size.total / 1e6:.2f} MB with its indexes,"
          f" {total:.0f} B each ({heap:.0f} B heap)")  # fmt: skip
    print("  ingest_bars said: " + " ".join(out.split()))
    print(f"  {'the corrected file once more (changes nothing)':<58} {again_s:7.2f} s"
          f" {rows / again_s:>11,.0f} rows/s, revisions stored: {kept_again:,}")  # fmt: skip
    print("  ingest_bars said: " + " ".join(again_out.split()))


def ingest_counting(path: Path) -> tuple[float, int, str]:
    """``run_ingest`` of ``path`` and how many revisions it stored."""
    before = MinuteBarRevision.objects.count()
    seconds, out = run_ingest(path)
    return seconds, MinuteBarRevision.objects.count() - before, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--corrected", type=float, default=0.01, help="share of the bars corrected on reload"
    )
    args = parser.parse_args()
    if args.rows < 2 or not 0 < args.corrected <= 1:
        parser.error("--rows >= 2, 0 < --corrected <= 1")
    tables = ["bench_ingest_copy_key", "bench_ingest_copy_twin"]
    with tempfile.TemporaryDirectory(prefix="qvp-bench-ingest-") as tmp, throwaway_database():
        path, corrected = Path(tmp) / "bars.csv", Path(tmp) / "corrected.csv"
        started = time.perf_counter()
        span = generate(path, args.rows)
        changed = correct(path, corrected, args.corrected)
        print(
            f"generated {path.name} and {corrected.name} in {time.perf_counter() - started:.1f} s"
        )
        instrument = Instrument.objects.create(symbol=SYMBOL, asset_class="equity")
        if not engine.is_timescaledb():
            partitions.ensure_partitions(TABLE, width(), *span)
        for name in tables:
            create_copy_table(name, instrument.id, *span, twin=name.endswith("twin"))
        ingest_s, out = run_ingest(path)
        key_s = psql_copy(tables[0], path)
        twin_s = psql_copy(tables[1], path)
        report(args.rows, path.stat().st_size, ingest_s, key_s, twin_s, out)
        with connection.cursor() as cursor:
            print("  " + describe(cursor, TABLE))
        runs = [ingest_counting(corrected), ingest_counting(corrected)]
        report_revisions(args.rows, changed, ingest_s, runs)


if __name__ == "__main__":
    main()
