"""The Citus cluster beside one node, on the same data: ingest, hourly buckets over every
instrument, a year of one symbol, vector search, the as-of join from the books.

    DATABASE_URL=postgresql://...coordinator.../qvp QVP_CITUS_WORKERS=host:port,... \\
        QVP_CITUS_SHARD_COUNT=4 .venv/bin/python bench/cluster.py [--instruments 100]
        [--bars 5000] [--vectors 20000] [--ticks 1000000] [--executions 10000]
        [--one-node URL]

Runs every measurement twice, each in a process of its own and a throwaway database
(bench/support/scratch.py): on the server ``DATABASE_URL`` names, then on one node (the
embedded server, or the one ``--one-node`` names), and prints them side by side. With
``--child`` it measures the configured server alone and prints its figures as JSON.

- **ingest**: ``--instruments`` files of ``--bars`` minute bars, through ``ingest_bars`` (the
  summaries' refresh included): rows per second.
- **hourly buckets over every instrument**: the hourly OHLCV of every instrument's bars,
  from the bars (the summary's own query) and from the hourly summary; and one refresh of the
  hourly summary over the whole range (``qvp_refresh_summary``). Median of 5.
- **a year of one symbol**: a year of demo minute bars (bench/buckets.py's load), its hourly
  buckets from the bars and from the summary. Median of 10.
- **vector search**: ``--vectors`` clustered points over the instruments, the HNSW index
  built after the load; recall@10 of the search service at its default ``ef_search`` against
  the true nearest (computed in numpy), with p50 and p95 latency; and a search filtered to one
  instrument (one shard on Citus).
- **the as-of join**: ``--ticks`` ticks over the instruments (bench/asof.py's load) and
  ``--executions`` executions booked; each execution's quote at its time
  (``Execution.objects.asof(Tick.objects.quotes())``), fetched whole. Median of 3.

On one machine the cluster's workers share its cores with the coordinator: the figures show
mostly what the cluster costs, not what more machines would gain (the README's "How it
scales, on paper", which reads the per-shard costs off these figures). Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.bar_files import START, ingest_all, write_files  # noqa: E402
from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_cluster")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

import numpy as np  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from marketdata.buckets import from_aggregate, from_bars  # noqa: E402
from marketdata.models import Instrument, MinuteBar  # noqa: E402
from qvp_site.db import aggregates, catalog, citus, engine  # noqa: E402
from qvp_site.db.binary_copy import copy_columns  # noqa: E402
from vectors import embeddings, search  # noqa: E402
from vectors.embeddings import FEATURES, TABLE  # noqa: E402
from vectors.models import FeatureEmbedding  # noqa: E402

HOURLY = "marketdata_minutebar_1h"
Figures = dict[str, float]


def median_ms(call: Callable[[], Any], runs: int) -> float:
    """The median of ``runs`` calls after a warm-up, in milliseconds."""
    call()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def fetched(sql: str, params: list[Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return len(cursor.fetchall())


# --- Ingest and buckets over every instrument --------------------------------------------------
def ingest(instruments: int, bars: int) -> Figures:
    with tempfile.TemporaryDirectory(prefix="qvp-bench-cluster-") as tmp:
        seconds = ingest_all(write_files(Path(tmp), instruments, bars))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_minutebar")
        cursor.execute(f"ANALYZE {HOURLY}")
    return {"ingest rows/s": instruments * bars / seconds}


def every_instrument(bars: int) -> Figures:
    end = START + timedelta(minutes=bars)
    with connection.cursor() as cursor:
        (hourly,) = [a for a in catalog.aggregates(cursor) if a.name == HOURLY]
    from_rows = aggregates.select_sql(
        hourly, timescaledb=engine.is_timescaledb(), where="ts >= %s AND ts < %s"
    )
    stored = f"SELECT * FROM {HOURLY} WHERE bucket >= %s AND bucket < %s"
    count = fetched(stored, [START, end])
    if fetched(from_rows, [START, end]) != count:
        raise SystemExit("the hourly summary and its bars disagree")
    figures = {
        "buckets": float(count),
        "all hourly from the bars ms": median_ms(lambda: fetched(from_rows, [START, end]), 5),
        "all hourly from the summary ms": median_ms(lambda: fetched(stored, [START, end]), 5),
    }
    if not engine.is_timescaledb():
        refresh = "SELECT * FROM qvp_refresh_summary(%s, %s, %s)"
        figures["refresh of the hourly summary ms"] = median_ms(
            lambda: fetched(refresh, [HOURLY, START, end]), 5
        )
    return figures


# --- A year of one symbol ----------------------------------------------------------------------
def one_year() -> Figures:
    from bench import buckets as year  # a year of demo bars for one symbol, and its removal

    instrument, hourly = year.load()
    try:
        if from_bars(hourly) != from_aggregate(HOURLY, hourly):
            raise SystemExit("the year's buckets from the bars and the summary disagree")
        return {
            "year bars": float(MinuteBar.objects.filter(instrument=instrument).count()),
            "year hourly from the bars ms": median_ms(lambda: from_bars(hourly), 10),
            "year hourly from the summary ms": median_ms(
                lambda: from_aggregate(HOURLY, hourly), 10
            ),
        }
    finally:
        year.remove(instrument)


# --- Vector search -----------------------------------------------------------------------------
def build_index(statement: str) -> float:
    """The HNSW index built, timed, with 1 GB of maintenance_work_mem where it is built: on
    Citus the setting sent on to the shards' sessions, in a message of its own."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if to_the_shards := engine.local_settings_reach_the_shards():
            cursor.execute(to_the_shards)
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute(statement)
    return time.perf_counter() - started


def true_nearest(points: np.ndarray, ids: np.ndarray, asked: np.ndarray, k: int) -> list[set]:
    """The true k nearest by cosine, in numpy: on Citus an exact search in the database
    would need every shard's session told not to use its index."""
    unit = points / np.linalg.norm(points, axis=1, keepdims=True)
    return [set(ids[np.argsort(-(unit @ (q / np.linalg.norm(q))))[:k]].tolist()) for q in asked]


def vector_search(count: int, instrument_ids: list[int], queries: int = 200) -> Figures:
    from bench import vectors as bench_vectors  # its points, index and measure

    points, raw, asked = bench_vectors.clustered_vectors(count, queries)
    feature_set = FEATURES.fitted(raw)
    owners = np.array(instrument_ids)[np.arange(count) % len(instrument_ids)]
    closes = np.datetime64("2020-01-01", "us") + np.arange(count) * np.timedelta64(15, "m")
    index = bench_vectors.hnsw_definition()
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {bench_vectors.HNSW_NAME}")
    copy_columns(TABLE, embeddings.columns(owners, feature_set.id, closes, points, raw))
    build = build_index(index)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    stored = FeatureEmbedding.objects.filter(feature_set=feature_set).order_by("ts")
    ids = np.array(stored.values_list("id", flat=True))
    truth = true_nearest(points, ids, asked, bench_vectors.K)
    recall, p50, p95, _rate = bench_vectors.measure(asked, feature_set, truth)
    one = instrument_ids[len(instrument_ids) // 2]

    def one_instrument() -> None:
        for q in asked[:50]:
            search.nearest_features(search.FeatureQuery(q, feature_set, k=10, instruments=[one]))

    return {
        "vectors": float(count),
        "hnsw build s": build,
        "recall@10": recall,
        "search p50 ms": p50,
        "search p95 ms": p95,
        "one-instrument search p50 ms": median_ms(one_instrument, 3) / 50,
    }


# --- The as-of join from the books --------------------------------------------------------------
def asof_join(ticks: int, executions: int, instrument_ids: list[int]) -> Figures:
    from bench import asof as bench_asof  # its ticks, bookings and queryset

    sizes = bench_asof.Sizes(len(instrument_ids), ticks, executions)
    call_command("create_db_roles", stdout=StringIO())  # the books' roles
    bench_asof.load_ticks(instrument_ids, sizes)
    booked = bench_asof.book_executions(instrument_ids, sizes)
    bench_asof.vacuumed()
    rows = len(list(bench_asof.database_queryset()))
    if rows != booked:
        raise SystemExit(f"the as-of join gave {rows:,} rows for {booked:,} executions")
    return {
        "ticks": float(ticks),
        "executions": float(booked),
        "as-of join ms": median_ms(lambda: list(bench_asof.database_queryset()), 3),
    }


def measure(args: argparse.Namespace) -> Figures:
    info = engine.detect()
    figures: Figures = {"workers": float(info.citus_workers or 0)}
    figures |= ingest(args.instruments, args.bars)
    figures |= every_instrument(args.bars)
    figures |= one_year()
    ids = list(Instrument.objects.filter(symbol__startswith="CL").values_list("id", flat=True))
    figures |= vector_search(args.vectors, ids)
    figures |= asof_join(args.ticks, args.executions, ids)
    return figures


# --- Both runs, side by side -------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    with throwaway_database() as name:
        try:
            figures = measure(args)
            print(json.dumps(figures), flush=True)
        finally:
            if engine.is_citus():
                citus.drop_on_workers(name, connection)


def run(argv: list[str], env: dict[str, str], label: str) -> Figures:
    print(f"{label}: measuring...", file=sys.stderr, flush=True)
    done = subprocess.run(
        [sys.executable, __file__, "--child", *argv],
        env=env, stdout=subprocess.PIPE, text=True, check=True,
    )  # fmt: skip
    return json.loads(done.stdout.strip().splitlines()[-1])


def one_node_env(url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QVP_CITUS_")}
    env.pop("DATABASE_URL", None)
    env["QVP_ENGINE"] = "auto"
    if url:
        env["DATABASE_URL"] = url
    return env


def table(cluster: Figures, one_node: Figures) -> None:
    print(f"{'':<36}{'cluster':>14}{'one node':>14}{'ratio':>8}")
    for key in cluster:
        a, b = cluster[key], one_node.get(key)
        ratio = f"{a / b:8.2f}" if b else ""
        print(f"{key:<36}{a:>14,.3f}{(b if b is not None else float('nan')):>14,.3f}{ratio}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=100)
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--vectors", type=int, default=20_000)
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--executions", type=int, default=10_000)
    parser.add_argument("--one-node", help="the one-node server's URL (default: embedded)")
    parser.add_argument("--child", action="store_true", help="measure this server alone")
    return parser.parse_args()


def main() -> None:
    args = arguments()
    if args.child:
        child(args)
        return
    argv = [
        f"--instruments={args.instruments}", f"--bars={args.bars}",
        f"--vectors={args.vectors}", f"--ticks={args.ticks}",
        f"--executions={args.executions}",
    ]  # fmt: skip
    cluster = run(argv, dict(os.environ), "the configured server")
    one_node = run(argv, one_node_env(args.one_node), "one node")
    table(cluster, one_node)


if __name__ == "__main__":
    main()
