"""As-of join benchmark (issue 26): the latest quote at or before each execution, in the
database (qvp_site/db/asof.py), against DuckDB's ``ASOF JOIN`` and ``pandas.merge_asof`` on
the same rows read out of PostgreSQL, in one run on the same data, answers compared.

    .venv/bin/python bench/asof.py [--runs 3] [--ticks 5000000] [--executions 100000]
                                   [--instruments 50] [--explain] [--json FILE]

Data, in a throwaway database made by Django's test machinery (every migration; dropped at the
end: bench/support/scratch.py), loaded before anything is timed, then VACUUM ANALYZE:

- ``--instruments`` instruments and ``--ticks`` ticks spread evenly over them and over
  ``DAYS`` days (one daily partition a day, made first by ``partitions.prepare_load``), on a
  grid of ``DAYS * 86400 / (ticks / instruments)`` seconds, by one INSERT ... SELECT from
  generate_series per ``INSERT_BATCH`` rows. One tick in four is a quote (bid, ask, sizes),
  the others trades; one tick in ten takes the time of the tick before it with the next
  sequence number, so that quotes tie on the time now and then (about 1 quote in 60 ties).
- The left side: ``--executions`` real executions (trading_execution), one account, a large
  buy and a sell order per instrument, booked by ``trading.books.book_query`` (the one
  INSERT ... SELECT ``import_executions`` books a file with, the books' triggers and audit
  trail following row by row) from a generate_series, ``EXECUTION_BATCH`` a transaction (in
  one, the booking slows down quadratically: see ``book_executions``). Their times are
  uniform over the ticks' days, one in ten exactly on the tick grid (an exact match,
  sometimes on a tie) and one in a thousand in the hour before the first tick (no quote:
  NULL).

The question: for each execution, the latest quote of its instrument at or before its
``executed_at`` (backward, exact matches allowed, no tolerance; ties on the time broken by the
highest sequence, as qvp_site/db/asof.py documents and pandas does on a frame sorted by
(ts, sequence)): the quote's id, time, sequence, bid and ask. Each way ``--runs`` times, the
ways in turn (a run of each, then the next), the best time of each kept:

- database, queryset: ``Execution.objects.order_by().asof(Tick.objects.quotes(),
  time="executed_at", columns=[...]).values_list(...)``. Join alone: the server's execution
  time of the SQL it generates (``EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON)``: the rows are
  made, not sent). End to end: the queryset iterated through Django and made a DataFrame.
- database, ``qvp_site.db.asof.arrow`` on 1 connection (``workers=1``): what a user calls for
  a DataFrame, the same queryset read by ``adbc_driver_postgresql`` (binary COPY into Arrow,
  QVP's bulk reader) acting as Django's connection, then ``.to_pandas()``. Join alone: the
  same statement's server execution time under the settings ``arrow`` reads with
  (``READ_SETTINGS``: Memoize off); end to end: the call and the DataFrame.
- database, ``asof.arrow`` on ``WORKERS`` (2) connections, its default here: the executions
  split by ``id % 2`` (``asof.split``), each part read on its own connection at once, on one
  snapshot. Join alone: the wall time of the parts' statements run at once, each on its own
  connection under EXPLAIN ANALYZE (made, not sent; settings set before the clock starts),
  from the first sent to the last answered; end to end: the call and the DataFrame. This is
  the database's figure in the goals (a statement uses one core; DuckDB's join uses its
  threads, one a core: both use the machine's two cores).
- DuckDB: the executions (id, instrument, time) and the quotes (id, instrument, ts, sequence,
  bid, ask) read out by ADBC into Arrow tables, then ``e ASOF LEFT JOIN q ON instrument AND
  e.executed_at >= q.ts`` in an in-memory DuckDB over them, into Arrow. Join alone: the
  query; end to end: both reads, the query, and the answer made a DataFrame.
- pandas: the same two reads, made DataFrames, sorted as merge_asof requires (executions by
  time, quotes by (ts, sequence)), then ``pd.merge_asof(by="instrument_id")``. Join alone:
  the sorts and the merge; end to end: the reads too.

The ADBC connections (the reads', and the one ``asof.arrow``'s reader keeps between reads) are
opened before the timing (as a notebook's is). Every way reads as the
Django connection's role (the superuser in development: row-level security not in the way).

Answers: per execution, the matched quote's id, time, bid and ask must be identical between
the database and pandas. DuckDB's ASOF JOIN breaks ties on the time arbitrarily (neither the
highest sequence nor the lowest: checked on 200,000 shuffled rows before writing this), so
it is compared on the matched quote's time for every execution, and on id, bid and ask where
one quote alone has that time; the executions whose match is a tie are counted, and how many
of them DuckDB answered with another quote of the tie than the other two.

Goals (issue 26): the database end to end (by ``asof.arrow`` on 2 connections) faster than
both paths that read the data out (against the faster of the two), and its join alone (the
2-connection wall time; the 1-connection figures are printed beside) within 3 times DuckDB's.
Then the full TCA refresh, once: ``trading.tca.refresh_detail`` over the
executions' range (known as of now, after the load), its seconds and the rows it wrote
(arrival prices, spreads, six markouts per execution, from the same ticks). Two cores shared
with whatever else runs: the load average is printed at the start and the end. ``--explain``
prints the database join's plan (EXPLAIN ANALYZE, BUFFERS); ``--json FILE`` writes the
figures and verdicts there too. Not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_asof")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

import adbc_driver_postgresql.dbapi as adbc  # noqa: E402
import duckdb  # noqa: E402
import pandas as pd  # noqa: E402
import psycopg  # noqa: E402
import pyarrow as pa  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from marketdata.models import Instrument, Tick  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.api.bulk import reader as bulk_reader  # noqa: E402
from qvp_site.db import partitions  # noqa: E402
from qvp_site.db.asof import READ_SETTINGS  # noqa: E402
from qvp_site.db.asof import arrow as asof_arrow  # noqa: E402
from qvp_site.db.asof import split as asof_split  # noqa: E402
from trading import books  # noqa: E402
from trading.models import Account, Execution, Order  # noqa: E402

TICK_TABLE, EXECUTION_TABLE = "marketdata_tick", "trading_execution"
START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday: the ticks' first instant
DAYS = 5
INSERT_BATCH = 1_000_000  # ticks per INSERT ... SELECT (each its own transaction)
EXECUTION_BATCH = 5_000  # executions booked per transaction (see book_executions)
GOAL_JOIN_RATIO = 3.0
DATABASE = "database (asof.arrow, 2 connections)"  # the database's way in the goals
ONE_CONNECTION = "database (asof.arrow, 1 connection)"
WORKERS = 2  # the connections asof.arrow reads on (its default on this 2-core machine)
# The answer's columns, the same in every way: the execution, then the matched quote.
COLUMNS = ["exec_id", "instrument_id", "executed_at", "quote_id", "quote_ts", "quote_sequence",
           "bid", "ask"]  # fmt: skip
LEFT_SQL = f"SELECT id AS exec_id, instrument_id, executed_at FROM {EXECUTION_TABLE}"
RIGHT_SQL = (
    "SELECT id AS quote_id, instrument_id, ts AS quote_ts, sequence AS quote_sequence, bid, ask"
    f" FROM {TICK_TABLE} WHERE kind = 'quote'"
)
DUCKDB_SQL = (
    "SELECT e.exec_id, e.instrument_id, e.executed_at, q.quote_id, q.quote_ts,"
    " q.quote_sequence, q.bid, q.ask"
    " FROM e ASOF LEFT JOIN q"
    " ON e.instrument_id = q.instrument_id AND e.executed_at >= q.quote_ts"
)


# --- Data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    instruments: int
    ticks: int
    executions: int

    @property
    def per_instrument(self) -> int:
        return self.ticks // self.instruments

    @property
    def step(self) -> timedelta:
        """The tick grid: the instrument's ticks evenly over ``DAYS`` days, in whole µs."""
        micros = DAYS * 86_400_000_000 // self.per_instrument
        return timedelta(microseconds=micros)


# Tick n of the load is tick j = n / instruments of instrument n % instruments; j % 10 = 9
# takes tick j - 1's time (a tie, told apart by the sequence, j). A quote one in four.
TICKS_SQL = """
INSERT INTO marketdata_tick
    (instrument_id, ts, sequence, kind, price, size, bid, ask, bid_size, ask_size, side)
SELECT ids[1 + n %% cardinality(ids)],
       %(start)s::timestamptz + (j - (j %% 10 = 9)::int) * %(step)s::interval, j, kind,
       CASE WHEN kind = 'trade' THEN mid END,
       CASE WHEN kind = 'trade' THEN 1 + floor(random() * 500) END,
       CASE WHEN kind = 'quote' THEN mid - 0.01 END,
       CASE WHEN kind = 'quote' THEN mid + 0.01 END,
       CASE WHEN kind = 'quote' THEN 100 * (1 + floor(random() * 50)) END,
       CASE WHEN kind = 'quote' THEN 100 * (1 + floor(random() * 50)) END,
       CASE WHEN kind = 'quote' THEN '' WHEN random() < 0.5 THEN 'buy' ELSE 'sell' END
FROM (SELECT n, j, %(ids)s::bigint[] AS ids,
             CASE WHEN random() < 0.25 THEN 'quote' ELSE 'trade' END AS kind,
             round((100 + 10 * (n %% cardinality(%(ids)s::bigint[]))
                    + 5 * sin(j / 5000.0) + random() * 0.1)::numeric, 2)::float8 AS mid
      FROM (SELECT n, n / cardinality(%(ids)s::bigint[]) AS j
            FROM generate_series(%(low)s::int8, %(high)s::int8) AS n) AS g) AS t
"""


def make_instruments(count: int) -> list[int]:
    with acting_as("bench"):
        return [
            Instrument.objects.create(symbol=f"ASOF{n:03d}", asset_class="equity").pk
            for n in range(count)
        ]


def load_ticks(ids: list[int], sizes: Sizes) -> None:
    last = START + (sizes.per_instrument - 1) * sizes.step
    partitions.prepare_load(TICK_TABLE, START, last)
    micros = f"{sizes.step // timedelta(microseconds=1)} microseconds"
    total = sizes.per_instrument * sizes.instruments
    for low in range(0, total, INSERT_BATCH):
        high = min(low + INSERT_BATCH, total) - 1
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [low / total / 2])  # the same data each run
            cursor.execute(
                TICKS_SQL, {"ids": ids, "start": START, "step": micros, "low": low, "high": high}
            )
        print(f"  ticks: {high + 1:,} of {total:,} loaded", file=sys.stderr, flush=True)


def make_orders(ids: list[int]) -> None:
    """One account; a large buy and sell order per instrument, in a table the booking joins
    (bench_orders: instrument, side, order)."""
    with acting_as("bench"):
        account = Account.objects.create(name="bench-asof")
        rows = []
        for pk in ids:
            for side in ("buy", "sell"):
                order = Order.objects.create(
                    account=account, instrument_id=pk, client_order_id=f"{pk}-{side}",
                    side=side, quantity=10**9,
                )  # fmt: skip
                rows.append((pk, side, order.pk, account.pk))
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE bench_orders (instrument_id bigint, side text, order_id bigint,"
            " account_id bigint)"
        )
        cursor.executemany("INSERT INTO bench_orders VALUES (%s, %s, %s, %s)", rows)


# The executions by number n: instrument n % count; a time uniform over the days, one in ten
# on the tick grid, one in a thousand in the hour before the first tick.
EXECUTIONS_FROM = """
FROM (SELECT n, ids[1 + n %% cardinality(ids)] AS instrument_id,
             CASE WHEN random() < 0.5 THEN 'buy' ELSE 'sell' END AS side,
             (1 + floor(random() * 500))::numeric AS size,
             CASE WHEN n %% 1000 = 999
                  THEN %(start)s::timestamptz - random() * interval '1 hour'
                  WHEN n %% 10 = 0
                  THEN %(start)s::timestamptz
                       + floor(random() * %(per)s) * %(step)s::interval
                  ELSE %(start)s::timestamptz + random() * %(span)s::interval
             END AS at
      FROM generate_series(%(low)s::int8, %(high)s::int8) AS n,
           (SELECT %(ids)s::bigint[] AS ids) AS i) AS s
JOIN bench_orders o ON o.instrument_id = s.instrument_id AND o.side = s.side
ORDER BY s.n
"""
EXECUTION_VALUES = {
    "exec_id": "'asof-' || s.n",
    "order_id": "o.order_id",
    "account_id": "o.account_id",
    "instrument_id": "s.instrument_id",
    "side": "s.side",
    "quantity": "CASE WHEN s.side = 'buy' THEN s.size ELSE -s.size END",
    "price": "round((100 + random() * 10)::numeric, 4)",
    "fee": "round(s.size * 0.0035, 4)",
    "liquidity": "'removed'",
    "executed_at": "date_trunc('microseconds', s.at)",
    "kind": "'fill'",
    "supersedes_id": "NULL::bigint",
    "reason": "''",
    "venue": "''",  # unknown (trading 0016's column; ignored by a books without it)
}


def book_executions(ids: list[int], sizes: Sizes) -> int:
    """Book the executions by ``EXECUTION_BATCH`` a transaction, as that many files would be.
    All 100,000 in one statement ran for over 7 minutes before it was stopped (2,000 took a
    second); by 5,000 they take about a minute. Likely why: in one transaction each order's
    and position's row is updated 1,000 times and more, and each update finds the row past
    the versions the transaction left behind (not pruned until it ends)."""
    make_orders(ids)
    params: dict[str, Any] = {
        "ids": ids, "start": START, "per": sizes.per_instrument,
        "step": f"{sizes.step // timedelta(microseconds=1)} microseconds",
        "span": f"{DAYS} days",
    }  # fmt: skip
    booked = 0
    for low in range(0, sizes.executions, EXECUTION_BATCH):
        high = min(low + EXECUTION_BATCH, sizes.executions) - 1
        with acting_as("bench"), connection.cursor() as cursor:
            cursor.execute("SELECT setseed(%s)", [low / sizes.executions / 2])
            source = composed(EXECUTIONS_FROM, {**params, "low": low, "high": high})
            booked += books.book_query(cursor, EXECUTION_VALUES, source)
        print(f"  executions: {booked:,} booked", file=sys.stderr, flush=True)
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_orders")
    return booked


def composed(sql: str, params: Any) -> str:
    """``sql`` with its parameters bound as literals (psycopg's client-side binding): for a
    statement run without parameters (ADBC, ``book_query``'s source)."""
    ops: Any = connection.ops  # PostgreSQL's operations have compose_sql, the base's not
    return str(ops.compose_sql(sql, params))


def vacuumed() -> None:
    """Visibility and statistics as a live system has them (and hint bits set)."""
    with connection.cursor() as cursor:
        for table in (TICK_TABLE, EXECUTION_TABLE):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def seed(sizes: Sizes) -> dict[str, float]:
    times: dict[str, float] = {}
    started = time.perf_counter()
    call_command("create_db_roles", stdout=StringIO())  # not shown: a password in it
    ids = make_instruments(sizes.instruments)
    times["instruments"] = time.perf_counter() - started
    started = time.perf_counter()
    load_ticks(ids, sizes)
    times["ticks"] = time.perf_counter() - started
    started = time.perf_counter()
    booked = book_executions(ids, sizes)
    times["executions"] = time.perf_counter() - started
    if booked != sizes.executions:
        raise SystemExit(f"booked {booked:,} executions, not {sizes.executions:,}")
    started = time.perf_counter()
    vacuumed()
    times["vacuum analyze"] = time.perf_counter() - started
    return times


def describe_data() -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(*) FILTER (WHERE kind = 'quote'), min(ts), max(ts)"
            f" FROM {TICK_TABLE}"
        )
        ticks, quotes, first, last = cursor.fetchone()
        cursor.execute(
            f"SELECT count(*) FROM (SELECT FROM {TICK_TABLE} WHERE kind = 'quote'"
            " GROUP BY instrument_id, ts HAVING count(*) > 1) AS t"
        )
        (tied,) = cursor.fetchone()
        cursor.execute(f"SELECT count(*), count(DISTINCT instrument_id) FROM {EXECUTION_TABLE}")
        executions, instruments = cursor.fetchone()
    return (
        f"{ticks:,} ticks ({quotes:,} quotes; {tied:,} times with several quotes of one"
        f" instrument) from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC;"
        f" {executions:,} executions over {instruments} instruments"
    )


# --- The ways -------------------------------------------------------------------------------
@dataclass
class Timing:
    join: float  # seconds
    end_to_end: float
    answer: pd.DataFrame


@dataclass
class Way:
    name: str
    run: Callable[[], Timing]
    join_note: str = ""
    joins: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    answer: pd.DataFrame | None = None
    error: str = ""

    def best(self) -> tuple[float | None, float | None]:
        return (min(self.joins) if self.joins else None, min(self.ends) if self.ends else None)


def database_queryset() -> Any:
    return (
        Execution.objects.order_by()
        .asof(
            Tick.objects.quotes(),
            time="executed_at",
            columns=["id", "ts", "sequence", "bid", "ask"],
        )
        .values_list(
            "id",
            "instrument_id",
            "executed_at",
            "asof_id",
            "asof_ts",
            "asof_sequence",
            "asof_bid",
            "asof_ask",
        )
    )


def server_seconds(sql: str, params: Any, settings: dict[str, str] | None = None) -> float:
    """The server's own execution time of ``sql``: its rows made, not sent (no per-node
    timing, which would slow it); under ``settings`` (``SET LOCAL``) where given."""
    with transaction.atomic(), connection.cursor() as cursor:
        for name, value in (settings or {}).items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) {sql}", params)
        return float(cursor.fetchone()[0][0]["Execution Time"]) / 1000


def database_way() -> Timing:
    sql, params = database_queryset().query.sql_with_params()
    join = server_seconds(sql, params)
    started = time.perf_counter()
    answer = pd.DataFrame(list(database_queryset()), columns=COLUMNS)
    return Timing(join, time.perf_counter() - started, answer)


class Reads:
    """The connections (opened before the timing) and the reads of the other ways."""

    def __init__(self) -> None:
        info = bulk_reader.conninfo("default")
        self.connection = adbc.connect(info)
        # asof.arrow's reader keeps its connections between reads: opened here too, not timed.
        asof_arrow(Instrument.objects.order_by().values_list("id"), workers=WORKERS)
        # The parts' statements timed on connections of their own, at once (Django's is one).
        self.part_connections = [psycopg.connect(info) for _ in range(WORKERS)]
        self.pool = ThreadPoolExecutor(WORKERS)
        self.part_seconds: list[list[float]] = []  # each run's parts' server execution times
        self.duckdb_threads = ""

    def close(self) -> None:
        self.pool.shutdown()
        for part_connection in self.part_connections:
            part_connection.close()
        self.connection.close()

    def arrow(self, sql: str) -> pa.Table:
        with self.connection.cursor() as cursor:
            cursor.execute(sql)
            table = cursor.fetch_arrow_table()
        self.connection.rollback()  # no transaction left open between reads
        return table

    def database_arrow(self) -> Timing:
        """The queryset read by ``qvp_site.db.asof.arrow`` on one connection (ADBC into
        Arrow), then pandas; the join alone timed under the settings that read uses (Memoize
        off)."""
        sql, params = database_queryset().query.sql_with_params()
        join = server_seconds(sql, params, READ_SETTINGS)
        started = time.perf_counter()
        answer = asof_arrow(database_queryset(), workers=1).to_pandas()
        answer.columns = COLUMNS
        return Timing(join, time.perf_counter() - started, answer)

    def database_parallel(self) -> Timing:
        """The same read on ``WORKERS`` connections at once (``asof.arrow(workers=...)``: the
        executions split by id). Join alone: the wall time of the parts' statements run at
        once, each on its own connection under EXPLAIN ANALYZE (made, not sent), from the
        first sent to the last answered."""
        parts = [_composed(part) for part in asof_split(database_queryset(), WORKERS)]
        if len(parts) != WORKERS:
            raise RuntimeError(f"asof.split gave {len(parts)} parts, not {WORKERS}")
        for part_connection in self.part_connections:
            _read_settings(part_connection)  # their transactions begun: not timed
        try:
            started = time.perf_counter()
            futures = [
                self.pool.submit(_explained, part_connection, part)
                for part_connection, part in zip(self.part_connections, parts, strict=True)
            ]
            self.part_seconds.append([future.result() for future in futures])
            join = time.perf_counter() - started
        finally:
            for part_connection in self.part_connections:
                part_connection.rollback()
        started = time.perf_counter()
        answer = asof_arrow(database_queryset(), workers=WORKERS).to_pandas()
        answer.columns = COLUMNS
        return Timing(join, time.perf_counter() - started, answer)

    def duckdb(self) -> Timing:
        started = time.perf_counter()
        left, right = self.arrow(LEFT_SQL), self.arrow(RIGHT_SQL)
        with duckdb.connect() as con:
            threads = con.execute("SELECT current_setting('threads')").fetchall()[0]
            self.duckdb_threads = str(threads[0] if threads else "?")
            con.register("e", left)
            con.register("q", right)
            began = time.perf_counter()
            joined = con.sql(DUCKDB_SQL).to_arrow_table()
            join = time.perf_counter() - began
        answer = joined.to_pandas()
        return Timing(join, time.perf_counter() - started, answer)

    def pandas(self) -> Timing:
        started = time.perf_counter()
        left, right = self.arrow(LEFT_SQL).to_pandas(), self.arrow(RIGHT_SQL).to_pandas()
        began = time.perf_counter()
        left = left.sort_values("executed_at", kind="stable")
        right = right.sort_values(["quote_ts", "quote_sequence"], kind="stable")
        answer = pd.merge_asof(
            left, right, left_on="executed_at", right_on="quote_ts", by="instrument_id",
            direction="backward", allow_exact_matches=True,
        )  # fmt: skip
        join = time.perf_counter() - began
        return Timing(join, time.perf_counter() - started, answer[COLUMNS])


def _composed(queryset: Any) -> str:
    sql, params = queryset.query.sql_with_params()
    return composed(sql, params)


def _read_settings(part_connection: psycopg.Connection[Any]) -> None:
    """``READ_SETTINGS`` as ``asof.arrow`` reads, in a transaction begun (rolled back after)."""
    with part_connection.cursor() as cursor:
        for name, value in READ_SETTINGS.items():
            cursor.execute("SELECT set_config(%s, %s, true)", [name, value])


def _explained(part_connection: psycopg.Connection[Any], sql: str) -> float:
    """The server's execution time of ``sql`` on ``part_connection`` (planned, made, not sent)."""
    with part_connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, SUMMARY ON, FORMAT JSON) {sql}")
        row = cursor.fetchone()
    assert row is not None
    return float(row[0][0]["Execution Time"]) / 1000


def measure(ways: list[Way], runs: int) -> None:
    """Each way's runs taken in turn, so that a spell of load from elsewhere falls on all."""
    for run in range(runs):
        for way in ways:
            if way.error:
                continue
            try:
                timing = way.run()
            except Exception as error:  # a way that fails is reported, the others go on
                way.error = f"{type(error).__name__}: {error}"[:300]
                continue
            way.joins.append(timing.join)
            way.ends.append(timing.end_to_end)
            way.answer = timing.answer
        print(f"  run {run + 1} of {runs} done", file=sys.stderr, flush=True)


# --- Answers --------------------------------------------------------------------------------
def normalised(answer: pd.DataFrame) -> pd.DataFrame:
    """One row per execution, by its id; ids nullable integers, times UTC µs."""
    frame = answer[COLUMNS].copy()
    for name in ("exec_id", "instrument_id", "quote_id", "quote_sequence"):
        frame[name] = frame[name].astype("Int64")
    for name in ("executed_at", "quote_ts"):
        frame[name] = pd.to_datetime(frame[name], utc=True).astype("datetime64[us, UTC]")
    for name in ("bid", "ask"):
        frame[name] = frame[name].astype("float64")
    return frame.sort_values("exec_id").reset_index(drop=True)


def differing(a: pd.DataFrame, b: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Rows where any of ``columns`` differs (NULL equal to NULL)."""
    mask = pd.Series(False, index=a.index)
    for name in columns:
        left, right = a[name], b[name]
        both_null = left.isna() & right.isna()
        mask |= ~(both_null | (left == right).fillna(False))
    return mask


def tied(answer: pd.DataFrame, quotes: pd.DataFrame) -> pd.Series:
    """Rows whose matched quote's (instrument, time) has several quotes."""
    counts = quotes.groupby(["instrument_id", "quote_ts"]).size()
    several = counts[counts > 1].index
    keys = pd.MultiIndex.from_arrays([answer["instrument_id"], answer["quote_ts"]])
    return pd.Series(keys.isin(several), index=answer.index)


def compare(ways: list[Way], reads: Reads) -> list[str]:
    """The verdicts on the answers (the first way's the reference), a line each."""
    answers = {w.name: normalised(w.answer) for w in ways if w.answer is not None}
    reference_name = ways[0].name
    reference = answers[reference_name]
    exact = ["exec_id", "instrument_id", "executed_at", "quote_id", "quote_ts", "bid", "ask"]
    quotes = reads.arrow(RIGHT_SQL).select(["instrument_id", "quote_ts"]).to_pandas()
    quotes["quote_ts"] = quotes["quote_ts"].astype("datetime64[us, UTC]")
    ties = tied(reference, quotes)
    matched = int(reference["quote_id"].notna().sum())
    lines = [
        f"answers: {len(reference):,} executions, {matched:,} with a quote,"
        f" {int(ties.sum()):,} matched a time with several quotes (a tie)"
    ]
    for name, answer in answers.items():
        if name == reference_name:
            continue
        if len(answer) != len(reference):
            lines.append(f"  {name}: {len(answer):,} rows, not {len(reference):,}: DIFFERENT")
            continue
        if not name.startswith("DuckDB"):
            bad = int(differing(reference, answer, exact).sum())
            verdict = "identical" if not bad else f"DIFFERENT on {bad:,} rows"
            lines.append(f"  {name} vs {reference_name}: quote id, time, bid, ask: {verdict}")
            continue
        by_time = int(differing(reference, answer, [*exact[:3], "quote_ts"]).sum())
        untied = int(differing(reference[~ties], answer[~ties], exact).sum())
        other = int(differing(reference[ties], answer[ties], ["quote_id"]).sum())
        verdict = "identical" if not (by_time or untied) else "DIFFERENT"
        lines.append(
            f"  {name} vs {reference_name}: matched quote time on every row, id/bid/ask where"
            f" no tie: {verdict} ({by_time:,} times and {untied:,} untied rows differ); on the"
            f" {int(ties.sum()):,} ties DuckDB took another quote of the tie {other:,} times"
            " (its ASOF JOIN orders by the time alone)"
        )
    return lines


# --- Report ---------------------------------------------------------------------------------
def cell(value: float | None, width: int, fmt: str = ".3f") -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def report(ways: list[Way], runs: int) -> dict[str, Any]:
    print(f"\nBest of {runs} runs, seconds:")
    print(f"{'way':<38} {'join alone':>11} {'end to end':>11} {'rows':>9}  join alone is")
    figures: dict[str, Any] = {}
    for way in ways:
        join, end = way.best()
        rows = None if way.answer is None else len(way.answer)
        line = f"{way.name:<38} {cell(join, 11)} {cell(end, 11)} {cell(rows, 9, ',d')}"
        print(f"{line}  {way.join_note}" + (f"  FAILED: {way.error}" if way.error else ""))
        figures[way.name] = {"join_alone_s": join, "end_to_end_s": end, "rows": rows}
    return figures


def parts_summary(reads: Reads) -> list[str]:
    """The 2-connection join's parts: each one's server execution time in the best run."""
    if not reads.part_seconds:
        return []
    best = min(reads.part_seconds, key=max)
    times = ", ".join(f"{s:.3f}" for s in best)
    return [
        f"{DATABASE}: its {len(best)} parts' server execution times in the best run: {times} s"
        f" (rows split by execution id % {WORKERS}, each part on its own connection and core)"
    ]


def goals(ways: dict[str, Way], duckdb_threads: str, tca: list[str]) -> list[str]:
    db_join, db_end = ways[DATABASE].best()
    one_join, one_end = ways[ONE_CONNECTION].best()
    _, queryset_end = ways["database (queryset)"].best()
    duck_join, duck_end = ways["DuckDB ASOF JOIN"].best()
    _, pandas_end = ways["pandas.merge_asof"].best()
    lines = []
    others = [e for e in (duck_end, pandas_end) if e is not None]
    if db_end is not None and others:
        faster = min(others)
        ratio = db_end / faster
        lines.append(
            f"goal: the database end to end (asof.arrow, {WORKERS} connections) faster than"
            f" both read-out paths: {'met' if ratio < 1 else 'MISSED'} ({db_end:.3f} s /"
            f" {faster:.3f} s, the faster of DuckDB and pandas = {ratio:.2f}; on 1 connection"
            f" {cell(one_end, 0)} s = {(one_end or 0) / faster:.2f}; the queryset through"
            f" Django {cell(queryset_end, 0)} s = {(queryset_end or 0) / faster:.2f})"
        )
    if db_join is not None and duck_join:
        ratio = db_join / duck_join
        lines.append(
            f"goal: the database join alone ({WORKERS} connections at once, wall time) <="
            f" {GOAL_JOIN_RATIO:g} x DuckDB's (its {duckdb_threads or '?'} threads):"
            f" {'met' if ratio <= GOAL_JOIN_RATIO else 'MISSED'} ({db_join:.3f} s /"
            f" {duck_join:.3f} s = {ratio:.2f}; on 1 connection {cell(one_join, 0)} s ="
            f" {(one_join or 0) / duck_join:.2f})"
        )
    return lines + tca


def tca_refresh() -> list[str]:
    """The full TCA refresh over the executions' range, once, known as of now (the ticks were
    loaded moments ago: the default, the settled moment, may be before them)."""
    from trading import tca  # after django.setup(); its SQL may change under it: reported

    first = START - timedelta(hours=1)
    last = START + timedelta(days=DAYS)
    started = time.perf_counter()
    try:
        done = tca.refresh_detail(first, last, known_at=datetime.now(UTC))
    except Exception as error:  # the other figures stand: reported, not raised
        return [f"TCA refresh: FAILED: {type(error).__name__}: {error}"[:400]]
    seconds = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT count(*), count(spread_paid_bps), count(markout_5m_bps) FROM {tca.TABLE}"
        )
        rows, spreads, markouts = cursor.fetchone()
    return [
        f"TCA refresh (trading.tca.refresh_detail, {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d}):"
        f" {seconds:.1f} s, {done.written:,} rows written ({rows:,} in {tca.TABLE}, {spreads:,}"
        f" with a spread paid, {markouts:,} with a 5-minute markout), {done.removed:,} removed"
    ]


def plan_summary(explain: bool) -> list[str]:
    """The database join's plan: buffers and the lateral lookups' loops; the whole plan with
    ``--explain``."""
    sql, params = database_queryset().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS, TIMING OFF) {sql}", params)
        text = "\n".join(row[0] for row in cursor.fetchall())
    top = plan["Plan"]
    rows = max(int(top.get("Actual Rows", 0)), 1)
    hit, read = int(top.get("Shared Hit Blocks", 0)), int(top.get("Shared Read Blocks", 0))
    lines = [
        f"database plan: {top['Node Type']}, {hit + read:,} buffers ({read:,} read from"
        f" outside shared buffers), {(hit + read) / rows:.1f} a row;"
        f" planning {plan.get('Planning Time', 0):.1f} ms"
    ]
    if explain:
        lines.append(text)
    return lines


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each way (best kept)")
    parser.add_argument("--ticks", type=int, default=5_000_000)
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--instruments", type=int, default=50)
    parser.add_argument("--explain", action="store_true", help="print the database's plan")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    if args.runs < 1 or args.instruments < 1 or args.executions < 1:
        parser.error("--runs, --instruments, --executions >= 1")
    if args.ticks < 10 * args.instruments:
        parser.error("--ticks: at least 10 per instrument")
    return args


def main() -> int:
    args = arguments()
    sizes = Sizes(args.instruments, args.ticks, args.executions)
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    started = time.perf_counter()
    with throwaway_database():
        times = {"database": time.perf_counter() - started, **seed(sizes)}
        print("ready in " + ", ".join(f"{name} {s:.0f} s" for name, s in times.items()))
        print(f"data: {describe_data()}")
        reads = Reads()
        try:
            ways = [
                Way("database (queryset)", database_way, "server execution (EXPLAIN ANALYZE)"),
                Way(ONE_CONNECTION, reads.database_arrow, "the same statement"),
                Way(DATABASE, reads.database_parallel, f"wall time of its {WORKERS} parts at once"),
                Way("DuckDB ASOF JOIN", reads.duckdb, "the query over Arrow, into Arrow"),
                Way("pandas.merge_asof", reads.pandas, "the two sorts and the merge"),
            ]
            measure(ways, args.runs)
            ways[3].join_note += f" (DuckDB's {reads.duckdb_threads or '?'} threads)"
            figures = report(ways, args.runs)
            lines = compare(ways, reads) + plan_summary(args.explain)
            lines += parts_summary(reads)
            lines += goals({w.name: w for w in ways}, reads.duckdb_threads, tca_refresh())
        finally:
            reads.close()
            bulk_reader.close_all()  # asof.arrow's kept connections: the database is dropped
    for line in lines:
        print(line)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        figures["notes"] = lines
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
