"""Ingest benchmark: 1,000,000 one-minute bars from a CSV through ``ingest_bars``, against
``psql \\copy`` of the same file, in one run on the same server.

    .venv/bin/python bench/ingest.py [--rows N]

The file is a random walk with volatility clustering (GARCH(1,1) returns, bars around the
clock on weekdays). ``\\copy`` loads it twice, into tables beside marketdata_minutebar:

- *key*: the same columns, primary key, unique (instrument, ts) key and partitioning;
- *twin*: the same again plus the CHECK rules and the foreign key to the instrument, i.e.
  everything ``ingest_bars`` pays for on the real table.

The partitions of the range are created before anything is timed, for all three tables
(``ingest_bars`` would otherwise create them on demand). Prints rows/s and the ratios; the
goal is ingest >= 0.5 of ``\\copy`` (key) and >= 200,000 rows/s. It cleans up after itself:
its tables dropped, its instrument's bars, aggregates and ingest records deleted, the
partitions it created dropped. Not a test.
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

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from marketdata.models import Ingest, Instrument, MinuteBar  # noqa: E402
from qvp_site.db import aggregates, catalog, engine, partitions  # noqa: E402
from qvp_site.db.quoting import ident  # noqa: E402

SYMBOL = "BENCH.INGEST"
TABLE = MinuteBar._meta.db_table
START = datetime(2020, 1, 6, tzinfo=UTC)  # a Monday
GOAL_RATIO = 0.5
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


def clean_up(instrument_id: int | None, tables: list[str], created: list[str], span) -> None:
    with connection.cursor() as cursor:
        for name in tables:
            cursor.execute(f"DROP TABLE IF EXISTS {ident(name)}")
        if instrument_id is None:
            return
        cursor.execute(f"DELETE FROM {TABLE} WHERE instrument_id = %s", [instrument_id])
        for name in created:  # empty now, unless something else wrote there meanwhile
            cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {ident(name)})")
            if cursor.fetchone()[0]:
                cursor.execute(f"DROP TABLE {ident(name)}")
    if span:
        aggregates.refresh_table(TABLE, *span)  # its buckets recomputed: gone
    Ingest.objects.filter(instrument_id=instrument_id).delete()
    Ingest.objects.filter(symbol=SYMBOL, instrument__isnull=True).delete()
    Instrument.objects.filter(id=instrument_id).delete()


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    leftover = Instrument.objects.filter(symbol=SYMBOL).first()
    if leftover:  # an interrupted run
        clean_up(leftover.id, [], [], None)
    tables = ["bench_ingest_copy_key", "bench_ingest_copy_twin"]
    instrument, created, span = None, [], None
    with tempfile.TemporaryDirectory(prefix="qvp-bench-ingest-") as tmp:
        path = Path(tmp) / "bars.csv"
        started = time.perf_counter()
        span = generate(path, args.rows)
        print(f"generated {path.name} in {time.perf_counter() - started:.1f} s")
        try:
            instrument = Instrument.objects.create(symbol=SYMBOL, asset_class="equity")
            if not engine.is_timescaledb():
                created = partitions.ensure_partitions(TABLE, width(), *span)
            for name in tables:
                create_copy_table(name, instrument.id, *span, twin=name.endswith("twin"))
            ingest_s, out = run_ingest(path)
            key_s = psql_copy(tables[0], path)
            twin_s = psql_copy(tables[1], path)
            report(args.rows, path.stat().st_size, ingest_s, key_s, twin_s, out)
        finally:
            clean_up(instrument.id if instrument else None, tables, created, span)


if __name__ == "__main__":
    main()
