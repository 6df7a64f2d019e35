"""Vector search benchmark: load, index builds, recall and latency, in a throwaway database.

    .venv/bin/python bench/vectors.py [--n 100000] [--source pipeline|clustered] [--queries 1000]

- Vectors: ``pipeline`` (the default up to 200,000) runs vectors/features.py over windows of
  demo minute bars (marketdata/demo.py, five symbols, a year, made in memory) and scales them
  as a build does; ``clustered`` (the default beyond) draws points around 200 centres, a
  stand-in for real features at scale (isotropic random vectors are the worst case for any
  ANN index and no model of real features). The report says which was used.
- Load: binary COPY of complete rows (instrument, feature set, time, vector, the 128 raw
  features; for ``clustered``, the points themselves) into vectors_featureembedding with no
  vector index, as a first build loads (vectors.store: checks, encoding, COPY, foreign keys
  added back and checked, commit: all timed), and of the vector column alone into a bare
  table, in rows per second.
- Index builds: HNSW as the table's migrations define it (cosine; m and ef_construction read
  from its definition, which the load sets aside and the build restores) and IVFFlat (lists =
  rows / 1000, sqrt(rows) past a million), timed.
- Queries: held-out vectors (windows or points not in the table); the exact top 10 of each is
  computed in the same database by a sequential scan (its latency is reported too); then,
  through ``vectors.search.nearest_features`` (the API's service: pgvector's settings and the
  query with the symbols joined, in one round trip), recall@10, p50 / p95 latency and
  queries per second at several ef_search (HNSW) and probes (IVFFlat).
- Single inserts, with the HNSW index in place, through ``vectors.store.insert_embedding``
  (one prepared INSERT per row, values in binary): one client, all in one transaction (the
  index's own cost per row) and each row its own transaction; then ``--clients`` (8) threads,
  each with its own connection, each row its own transaction, as an API's or a pipeline's
  writers would write them at once; then the same rows by the same clients in transactions
  of ``--batch`` (10) rows, each a binary COPY, as a writer holding a few windows would.

Goals: recall@10 >= 0.95 with p50 < 2 ms through the search service at 100,000 vectors
(issue 7); complete rows loaded >= 120,000 rows/s and single inserts >= 1,000 rows/s from 8
clients with 100,000 rows in the table (issue 27). Not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
BENCH_DATABASE = "bench_qvp_vectors"
os.environ["QVP_TEST_DATABASE_NAME"] = BENCH_DATABASE

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.db import connection, transaction  # noqa: E402

from marketdata import demo  # noqa: E402
from marketdata.models import Instrument  # noqa: E402
from qvp_site.db.binary_copy import columns_of, copy_columns  # noqa: E402
from qvp_site.db.vector_indexes import (  # noqa: E402
    IVFFLAT,
    VectorIndex,
    ivfflat_lists,
    vector_index_definitions,
)
from vectors import embeddings, features, search, store  # noqa: E402
from vectors.embeddings import FEATURES, TABLE  # noqa: E402

HNSW_NAME, IVF_NAME = "featureembedding_cosine_hnsw", "bench_featureembedding_ivfflat"
EF_SEARCH = (10, 20, 40, 80, 160)
PROBES = (1, 5, 10, 20, 40)
K = 10
T0 = datetime(2020, 1, 1, tzinfo=UTC)
END = datetime(2024, 5, 17, tzinfo=UTC).date()


def pipeline_vectors(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n + queries windows of demo bars, spread evenly over five symbols' year of minute bars,
    scaled by a scaler fitted on the n stored ones. Returns (vectors, raw, query vectors)."""
    per_symbol = (n + queries) // len(demo.DEFAULT_SYMBOLS) + 1
    raws = []
    for spec in [demo.DEMO_SYMBOLS[s] for s in demo.DEFAULT_SYMBOLS]:
        bars = demo.generate(spec, END, demo.TRADING_DAYS_PER_YEAR, seed=42)
        columns = {k: getattr(bars, k) for k in ("open", "high", "low", "close", "volume")}
        ends = np.linspace(features.WINDOW, len(bars) - 1, per_symbol).astype(int)
        raws.append(features.compute(features.windows_ending_at(columns, np.unique(ends))))
    raw = np.concatenate(raws)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(raw))
    stored, held_out = order[:n], order[n : n + queries]
    scaler = features.Scaler.fit(raw[stored])
    return scaler.transform(raw[stored]), raw[stored], scaler.transform(raw[held_out])


def clustered_vectors(n: int, queries: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points around 200 centres; their raw features are the points themselves."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((200, features.DIMENSIONS)) * 2
    points = centres[rng.integers(0, 200, n + queries)]
    points += rng.standard_normal(points.shape)
    points = points.astype(np.float32)
    return points[:n], points[:n].astype(np.float64), points[n:]


def setup(vectors: np.ndarray, raw: np.ndarray) -> tuple[list[int], object]:
    instruments = [
        Instrument.objects.create(symbol=s, asset_class="equity") for s in demo.DEFAULT_SYMBOLS
    ]
    feature_set = FEATURES.fitted(raw)
    return [i.id for i in instruments], feature_set


def hnsw_definition() -> str:
    """The table's HNSW index as its migrations made it (CREATE INDEX), before the load
    drops it: the build and the inserts measure the index the application has."""
    with connection.cursor() as cursor:
        return vector_index_definitions(cursor, TABLE)[HNSW_NAME]


def load(vectors, raw, instrument_ids, feature_set) -> tuple[float, float]:
    """COPY rates (rows/s): complete rows into the table, and the vector column alone into a
    bare table. The first is a first build's write (vectors.store.bulk_load around
    qvp_site.db.binary_copy.copy_columns): the rows' checks and encoding (columns_of), the
    foreign keys and the B-tree indexes set aside, the COPY, the indexes built again
    (uniqueness checked) and the keys added back (checked), and the commit: all timed."""
    n = len(vectors)
    owners = np.array(instrument_ids)[np.arange(n) % len(instrument_ids)]
    closes = np.datetime64(T0.replace(tzinfo=None), "us") + np.arange(n) * np.timedelta64(15, "m")
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX IF EXISTS {HNSW_NAME}")
    started = time.perf_counter()
    with transaction.atomic(), store.bulk_load(TABLE, rebuild=False, empty=True):
        copy_columns(TABLE, embeddings.columns(owners, feature_set.id, closes, vectors, raw))
    rows_rate = n / (time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_vector_only (embedding vector(128) NOT NULL)")
    started = time.perf_counter()
    with transaction.atomic():
        only = columns_of(("embedding",), ("vector",), (vectors,), {"embedding": 128})
        copy_columns("bench_vector_only", only)
    vector_rate = n / (time.perf_counter() - started)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_vector_only")
        cursor.execute(f"VACUUM ANALYZE {TABLE}")
    return rows_rate, vector_rate


def build(statement: str) -> float:
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '1GB'")
        cursor.execute(statement)
    return time.perf_counter() - started


def exact(queries: np.ndarray, feature_set) -> tuple[list[set[int]], np.ndarray]:
    """The true top k of each query, by a sequential scan in the database (the search
    service's SQL with index scans off, in one round trip), and its latency."""
    truth, latency = [], []
    for q in queries:
        started = time.perf_counter()
        sql, params = search.features_sql(search.FeatureQuery(q, feature_set, k=K))
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL enable_indexscan = off; " + sql, params)
            cursor.nextset()
            truth.append({row[0] for row in cursor.fetchall()})
        latency.append(time.perf_counter() - started)
    return truth, np.array(latency)


def measure(queries, feature_set, truth, **setting) -> tuple[float, float, float, float]:
    """recall@k, p50 and p95 latency (ms), queries per second through the search service."""
    hits, latency = 0, []
    started_all = time.perf_counter()
    for q, true in zip(queries, truth, strict=True):
        started = time.perf_counter()
        found = search.nearest_features(search.FeatureQuery(q, feature_set, k=K), **setting)
        latency.append(time.perf_counter() - started)
        hits += len(true & {n.id for n in found})
    elapsed = time.perf_counter() - started_all
    ms = np.array(latency) * 1000
    return hits / (K * len(queries)), *np.percentile(ms, [50, 95]), len(queries) / elapsed


def single_inserts(
    vectors, instrument_ids, feature_set, *, clients: int, commit_each: bool, batch: int = 1
) -> float:
    """Rows per second written one INSERT per row through ``vectors.store.insert_embedding``
    (the app's single-row path), with the HNSW index in place: by ``clients`` threads, each
    with its own connection, each row its own transaction (what a trickle of writes from an
    API or a pipeline costs, commits included) or, with one client and ``commit_each``
    false, all in one transaction (the index's own cost per row). With ``batch`` > 1, each
    transaction is a binary COPY of that many rows (the road ``build_embeddings`` takes), as
    a writer holding a few windows at once would write them."""
    per = len(vectors) // clients
    ready = threading.Barrier(clients + 1)
    failures: list[BaseException] = []

    def client(number: int) -> None:
        instrument_id = instrument_ids[number % len(instrument_ids)]
        owner = {"instrument_id": instrument_id, "feature_set": feature_set}
        rows = range(number * per, (number + 1) * per)
        try:
            connection.ensure_connection()  # connected before the clock starts
            ready.wait()
            if batch > 1:
                for first in range(rows.start, rows.stop, batch):
                    with transaction.atomic():
                        _copy(range(first, min(first + batch, rows.stop)), vectors, **owner)
            elif commit_each:
                for row in rows:  # autocommit: each row its own transaction
                    _insert(row, vectors[row], instrument_id, feature_set)
            else:
                with transaction.atomic():
                    for row in rows:
                        _insert(row, vectors[row], instrument_id, feature_set)
        except BaseException as error:  # reported by the main thread
            failures.append(error)
            ready.abort()
        finally:
            if threading.current_thread() is not threading.main_thread():
                connection.close()

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    rate = per * clients / (time.perf_counter() - started)
    if failures:
        raise failures[0]
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE ts < %s", [T0])
    return rate


def _insert(row: int, vector: np.ndarray, instrument_id: int, feature_set) -> None:
    # Before the loaded rows' first window: no key taken; the raw features are the vector's.
    ts = T0 - timedelta(minutes=row + 1)
    store.insert_embedding(instrument_id, feature_set.id, ts, vector, vector.astype(np.float64))


def _copy(rows: range, vectors: np.ndarray, instrument_id: int, feature_set) -> None:
    # The same windows and values as _insert, by binary COPY.
    closes = np.datetime64(T0.replace(tzinfo=None), "us") - (np.array(rows) + 1) * np.timedelta64(
        1, "m"
    )
    chosen = vectors[rows.start : rows.stop]
    found = embeddings.columns(
        instrument_id, feature_set.id, closes, chosen, chosen.astype(np.float64)
    )
    copy_columns(TABLE, found)


def insert_vectors(queries: np.ndarray, count: int) -> np.ndarray:
    """``count`` vectors not in the table: the held-out queries, again with noise as needed."""
    rng = np.random.default_rng(1)
    repeats = queries[np.arange(count) % len(queries)]
    noise = rng.standard_normal(repeats.shape).astype(np.float32) * 0.05
    noise[: len(queries)] = 0
    return repeats + noise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors in the table")
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--source", choices=("pipeline", "clustered"), default=None)
    parser.add_argument("--clients", type=int, default=8, help="threads inserting at once")
    parser.add_argument("--insert-rows", type=int, default=4_000, help="rows they insert")
    parser.add_argument(
        "--batch", type=int, default=10, help="rows per transaction in the batched writes"
    )
    args = parser.parse_args()
    source = args.source or ("pipeline" if args.n <= 200_000 else "clustered")

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        started = time.perf_counter()
        maker = pipeline_vectors if source == "pipeline" else clustered_vectors
        vectors, raw, queries = maker(args.n, args.queries)
        n = len(vectors)
        load1, load5, _ = os.getloadavg()
        print(
            f"machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min), {load5:.1f}"
            " (5 min): latencies are only as good as the machine is idle"
        )
        print(
            f"{n:,} vectors of 128 dimensions from {source}"
            f" ({time.perf_counter() - started:.1f} s to make); {len(queries):,} queries"
        )
        instrument_ids, feature_set = setup(vectors, raw)
        hnsw = hnsw_definition()
        rows_rate, vector_rate = load(vectors, raw, instrument_ids, feature_set)
        what = "raw features" if source == "pipeline" else "the points as raw features"
        print(
            f"binary COPY, no vector index: {rows_rate:,.0f} rows/s (complete rows, {what});"
            f" {vector_rate:,.0f} vectors/s (vector column alone)"
        )
        options = hnsw[hnsw.index(" WITH ") + 6 :]
        print(f"HNSW build {options}: {build(hnsw):.1f} s")
        truth, exact_latency = exact(queries, feature_set)
        p50, p95 = np.percentile(exact_latency * 1000, [50, 95])
        print(
            f"exact scan (sequential, in SQL): p50 {p50:.1f} ms, p95 {p95:.1f} ms,"
            f" {1 / exact_latency.mean():.0f} q/s"
        )
        print(
            f"{'index':8} {'setting':>14} {'recall@10':>10} {'p50 ms':>8} {'p95 ms':>8} {'q/s':>7}"
        )
        for ef in EF_SEARCH:
            recall, p50, p95, qps = measure(queries, feature_set, truth, ef_search=ef)
            print(
                f"{'HNSW':8} {f'ef_search {ef}':>14} {recall:10.3f} {p50:8.2f} {p95:8.2f}"
                f" {qps:7.0f}"
            )
        writes = {"instrument_ids": instrument_ids, "feature_set": feature_set}
        one = single_inserts(queries[:500], clients=1, commit_each=False, **writes)
        each = single_inserts(queries[500:], clients=1, commit_each=True, **writes)
        rows = insert_vectors(queries, args.insert_rows)
        many = single_inserts(rows, clients=args.clients, commit_each=True, **writes)
        batched = single_inserts(
            rows, clients=args.clients, commit_each=True, batch=args.batch, **writes
        )
        print(
            f"single INSERTs with the HNSW index ({n:,} rows in the table), vectors.store"
            f".insert_embedding: {one:,.0f} rows/s in one transaction, 1 client;"
            f" {each:,.0f} rows/s committed one by one, 1 client;"
            f" {many:,.0f} rows/s committed one by one, {args.clients} clients"
            f" ({len(rows) // args.clients * args.clients:,} rows); {batched:,.0f} rows/s in"
            f" transactions of {args.batch} rows by binary COPY, {args.clients} clients"
        )
        ivf = VectorIndex(IVF_NAME, TABLE, "embedding", method=IVFFLAT)
        seconds = build(ivf.sql(n))
        print(f"IVFFlat build (lists {ivfflat_lists(n)}): {seconds:.1f} s")
        with connection.cursor() as cursor:
            cursor.execute(f"DROP INDEX {HNSW_NAME}")
        for probes in PROBES:
            recall, p50, p95, qps = measure(queries, feature_set, truth, probes=probes)
            print(
                f"{'IVFFlat':8} {f'probes {probes}':>14} {recall:10.3f} {p50:8.2f} {p95:8.2f}"
                f" {qps:7.0f}"
            )
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
