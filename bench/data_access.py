"""Data access benchmark: rows per second out of the site into a pandas DataFrame and into an
Arrow table, by every way a quant has (the API's JSON pages, its Arrow stream, Parquet and
CSV, the Python client, SQL by ADBC as the research role), in one run on the same data; then
the server worker's peak memory for one bulk request of 100,000 to 10,000,000 rows.

    .venv/bin/python bench/data_access.py [--runs 3] [--json-runs 1] [--no-10m]
        [--memory-formats arrow] [--skip-json]

The site is served as in production: gunicorn with the project's settings (sync workers; one
worker here, so that every request lands on the process whose memory is read) connecting as
``trading_app``, in a throwaway database made by Django's test machinery (migrations,
``create_db_roles``) and dropped at the end (bench/support/scratch.py, served.py).

Data (one instrument each, loaded before anything is timed, then VACUUM ANALYZE):

- *a year*: 252 sessions of demo minute bars (marketdata.demo, AAPL's model: 98,280 rows),
  loaded by binary COPY as the demo and bench/buckets.py load them;
- *a million*: 1,000,000 minute bars of a symbol traded around the clock (694 days), the
  same demo generator and COPY. Minute bars, not ticks, so that both sizes are the same list
  (bars/), the same columns and the same query, and differ only in their count: the server is
  told ``QVP_API_BULK_MAX_DAYS=695`` (the default is 366) so one bulk request holds them;
- *memory*: the largest list one bulk request reads: 10,000,000 trade ticks of one symbol, 20
  a second (5.8 days, written by one INSERT ... SELECT from generate_series per 2,000,000),
  read through ticks/ when ticks answer bulk formats; otherwise minute bars of 19 years of a
  24/7 symbol (the bulk limit raised to hold them), and the output says which.

Each way reads the whole range of a data set (``--runs`` times, the best time kept; the JSON
pages ``--json-runs`` times, as they take a minute for a million rows), the ways in turn (a
run of each, then the next), so that load from elsewhere falls on all alike. Beside each,
the CPU seconds of a read (of the run that spent least): the server worker's, the PostgreSQL
backends' of the bench database (PostgreSQL 18's I/O workers, shared by every database, are
not counted), and the bench's own (reading, decoding, making the DataFrame); and the rows per
CPU second of the three together: what a read costs, whatever else runs on the machine.

- JSON pages: ``bars/?page_size=5000`` following ``next``, each body parsed by json.loads, the
  rows made a DataFrame (ts parsed by pd.to_datetime) or an Arrow table (ts cast); the time
  into each is the download's plus that conversion's;
- Arrow stream: ``?format=arrow``, read by pyarrow as it arrives (ipc.open_stream); pandas by
  Table.to_pandas after it;
- Parquet: ``?format=parquet``, downloaded, then pq.read_table (its footer comes last);
- CSV: ``?format=csv``, read by pyarrow.csv as it arrives (ts as timestamp[us, UTC]);
- the client (``client/``, qvp_client): ``Client(url, token, chunk=<the server's limit>)``,
  ``.bars(..., output="arrow")`` and ``output="pandas"`` as two calls; "client: not available"
  when it cannot be imported or lacks what is needed;
- ADBC: ``adbc_driver_postgresql.dbapi`` connected as ``qvp_research`` (trading_app, said so,
  where the research role does not exist or cannot log in), the same columns of the same rows
  by one SELECT, fetch_arrow_table; the connection opened before the timing, as a notebook's
  is (the API's reader keeps its connections open between requests likewise).

Goals, printed beside the figures: the Arrow stream >= 1,000,000 rows/s into an Arrow table,
and >= 0.6 of the direct ADBC read's rate.

Memory: one bulk request per size (``?format=arrow`` by default, ``--memory-formats`` for
Parquet and CSV too), read and thrown away batch by batch by the bench; the worker's resident
set before, its peak during the request (VmHWM, reset before it by /proc/<pid>/clear_refs:
bench/support/workers.py), the rise between them, and the worker's CPU seconds (its cost
whatever else runs). Goal: flat, i.e. from the second largest size to the largest the peak
rises by less than a tenth of what the added rows take in Arrow (a server that held the rows
would grow by all of it; the Arrow stream's bytes per row are the yardstick for every format,
Parquet's answer being compressed). The smallest size is not the reference: its answer
(8 MB) is smaller than the batches the driver reads and the writer's buffers, which any larger
one fills.

Two cores are shared with whatever else runs on the machine: the load average is printed at
the start and the end, as figures are only comparable between quiet runs.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_data_access")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

import adbc_driver_postgresql.dbapi as adbc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from bench.support.served import serving  # noqa: E402
from bench.support.workers import (  # noqa: E402
    backends_cpu,
    cpu_seconds,
    gunicorn_workers,
    memory,
    reset_peak,
)
from marketdata import demo  # noqa: E402
from marketdata.models import Instrument  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.api.bulk import reader as bulk_reader  # noqa: E402
from qvp_site.db import partitions  # noqa: E402
from qvp_site.tokens import create_token  # noqa: E402

MINUTE_TABLE, TICK_TABLE = "marketdata_minutebar", "marketdata_tick"
BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume", "vwap", "trade_count")
TICK_COLUMNS = ("ts", "sequence", "kind", "price", "size", "bid", "ask", "bid_size", "ask_size",
                "side")  # fmt: skip
MILLION = 1_000_000
PAGE_SIZE = 5000
TICK_STEP = timedelta(milliseconds=50)
MINUTE = timedelta(minutes=1)
INSERT_BATCH = 2_000_000  # rows per INSERT ... SELECT of the memory data
GOAL_RATE = 1_000_000
GOAL_RATIO = 0.6
FLAT_SHARE = 0.1
RESEARCH_ROLE = "qvp_research"
MB = 1e6


# --- Data -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSet:
    """One instrument's rows of one list over [start, end): ``rows`` of them."""

    label: str
    path: str  # under /api/v1/
    table: str
    columns: tuple[str, ...]
    order: str  # the API's order, for the direct SQL
    symbol: str
    instrument_id: int
    start: datetime
    rows: int
    step: timedelta | None  # rows evenly spaced: the time of row n is start + n * step
    end: datetime
    about: str = ""  # what it is, in a sentence

    def params(self) -> dict[str, str]:
        extra = {"timeframe": "1m"} if self.path == "bars/" else {}
        return {"symbol": self.symbol, **extra, "start": iso(self.start), "end": iso(self.end)}

    def first(self, rows: int) -> DataSet:
        """The data set of its first ``rows`` rows (evenly spaced ones only)."""
        assert self.step is not None
        return replace(self, rows=rows, end=self.start + rows * self.step)

    def days(self) -> int:
        return -(-(self.end - self.start) // timedelta(days=1))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def instrument(symbol: str, asset_class: str) -> int:
    with acting_as("bench"):
        return Instrument.objects.create(symbol=symbol, asset_class=asset_class).pk


def copy_minute_bars(instrument_id: int, bars: demo.Bars) -> None:
    partitions.prepare_load(MINUTE_TABLE, *demo.time_range(bars))
    with transaction.atomic():
        demo.copy_bars(connection, MINUTE_TABLE, instrument_id, bars)


def seed_year() -> DataSet:
    """252 sessions of the demo's AAPL minute bars (98,280)."""
    symbol = "BENCH.YEAR"
    spec = replace(demo.DEMO_SYMBOLS["AAPL"], symbol=symbol)
    bars = demo.generate(spec, demo.last_completed_weekday(), demo.TRADING_DAYS_PER_YEAR, 2024)
    pk = instrument(symbol, "equity")
    copy_minute_bars(pk, bars)
    first, last = demo.time_range(bars)
    day = timedelta(days=1)
    start = first.replace(hour=0, minute=0)
    end = last.replace(hour=0, minute=0) + day
    about = f"{len(bars):,} minute bars of 252 sessions (demo AAPL)"
    return DataSet("a year", "bars/", MINUTE_TABLE, BAR_COLUMNS, "ts", symbol, pk, start,
                   len(bars), None, end, about)  # fmt: skip


def around_the_clock(rows: int, start: datetime, seed: int) -> demo.Bars:
    """``rows`` demo minute bars (EURUSD's model) on every minute from ``start``: a market
    that never closes (the demo's FX trades on weekdays only)."""
    spec = replace(demo.DEMO_SYMBOLS["EURUSD"], symbol="BENCH.24X7", start_price=60_000.0,
                   tick_size=0.01)  # fmt: skip
    days = -(-rows // demo.SESSION_MINUTES[demo.FX])  # FX trades each New York session
    bars = demo.generate(spec, demo.last_completed_weekday(), days, seed)
    cut = demo.Bars(**{name: column[:rows] for name, column in bars.columns().items()})
    first = np.datetime64(start.replace(tzinfo=None), "us")
    cut.ts = first + np.arange(rows, dtype=np.int64) * np.timedelta64(60_000_000, "us")
    return cut


def seed_million() -> DataSet:
    symbol = "BENCH.24X7"
    start = midnight() - MILLION * MINUTE
    pk = instrument(symbol, "crypto")
    copy_minute_bars(pk, around_the_clock(MILLION, start, 2025))
    about = f"{MILLION:,} minute bars of a 24/7 symbol ({(MILLION * MINUTE).days + 1} days)"
    return DataSet("a million", "bars/", MINUTE_TABLE, BAR_COLUMNS, "ts", symbol, pk, start,
                   MILLION, MINUTE, start + MILLION * MINUTE, about)  # fmt: skip


def ticks_answer_bulk() -> bool:
    """Whether ticks/ offers the bulk formats in the code the server runs (being wired)."""
    from marketdata.api import TickViewSet
    from qvp_site.api.bulk import BulkFormats

    return issubclass(TickViewSet, BulkFormats)


TICKS_SQL = """
INSERT INTO marketdata_tick (instrument_id, ts, sequence, kind, price, size, side)
SELECT %(id)s, %(start)s::timestamptz + g * %(step)s::interval, g, 'trade',
       floor((100 + 5 * sin(g / 50000.0) + random() * 0.2) * 100) / 100,
       1 + floor(random() * 500), CASE WHEN random() < 0.5 THEN 'buy' ELSE 'sell' END
FROM generate_series(%(low)s::int8, %(high)s::int8) AS g
"""
BARS_SQL = """
INSERT INTO marketdata_minutebar
    (instrument_id, ts, open, high, low, close, volume, vwap, trade_count)
SELECT %(id)s, %(start)s::timestamptz + g * %(step)s::interval, p, p * 1.001, p * 0.999, p,
       100 + floor(random() * 1000), p, 1 + floor(random() * 20)::int
FROM (SELECT g, floor((100 + 5 * sin(g / 50000.0)) * 100) / 100 AS p
      FROM generate_series(%(low)s::int8, %(high)s::int8) AS g) AS s
"""


def seed_memory(rows: int) -> DataSet:
    """The largest list: ``rows`` ticks of one symbol (or minute bars, see the module)."""
    if ticks_answer_bulk():
        symbol, step, sql = "BENCH.TICKS", TICK_STEP, TICKS_SQL
        start = midnight() - timedelta(days=7)
        about = f"ticks/ ({rows:,} trades, 20 a second)"
        base = DataSet("memory", "ticks/", TICK_TABLE, TICK_COLUMNS, "ts, sequence", symbol, 0,
                       start, rows, step, start, about)  # fmt: skip
    else:
        symbol, step, sql = "BENCH.DEEP", MINUTE, BARS_SQL
        start = midnight() - rows * MINUTE
        about = f"bars/ ({rows:,} minute bars, 24/7; ticks do not answer bulk yet)"
        base = DataSet("memory", "bars/", MINUTE_TABLE, BAR_COLUMNS, "ts", symbol, 0, start,
                       rows, step, start, about)  # fmt: skip
    pk = instrument(symbol, "crypto")
    found = replace(base, instrument_id=pk, end=start + rows * step)
    partitions.prepare_load(found.table, start, found.end - step)
    for low in range(0, rows, INSERT_BATCH):
        high = min(low + INSERT_BATCH, rows) - 1
        with transaction.atomic(), connection.cursor() as cursor:
            micros = f"{step // timedelta(microseconds=1)} microseconds"
            params: dict[str, Any] = {"id": pk, "start": start, "step": micros, "low": low,
                                      "high": high}  # fmt: skip
            cursor.execute(sql, params)
    return found


def vacuumed() -> None:
    """Visibility and statistics as a live system has them (and hint bits set): the first
    read of freshly loaded rows would otherwise write them."""
    with connection.cursor() as cursor:
        for table in (MINUTE_TABLE, TICK_TABLE):
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def bench_token() -> str:
    with acting_as("bench"):
        user = User.objects.create_user("bench-data-access")
        return create_token(user, "bench/data_access.py")[1]


# --- Reading --------------------------------------------------------------------------------
class BenchError(Exception):
    """A way of reading that did not give the data set's rows."""


class Counted(io.RawIOBase):
    """A response read by pyarrow, counting its bytes. ``read(n)`` is http.client's, which
    returns ``n`` bytes unless the body ends: pyarrow's IPC reader takes a short read for a
    truncated stream."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        super().__init__()
        self.response = response
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self.response.read(None if size is None or size < 0 else size)
        self.count += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass
class Site:
    port: int
    token: str
    bulk_days: int
    worker: int  # the pid of the gunicorn worker serving it
    database: str

    @contextmanager
    def get(self, path: str, params: dict[str, str]) -> Iterator[Counted]:
        """GET /api/v1/<path>?<params>, or a path from a page's ``next`` (starting with /,
        its query its own): the response's body, after a 200 (else BenchError)."""
        target = path if path.startswith("/") else f"/api/v1/{path}?{urlencode(params)}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("GET", target, headers={"Authorization": f"Token {self.token}"})
            response = conn.getresponse()
            if response.status != 200:
                body = response.read()[:300].decode(errors="replace")
                raise BenchError(f"GET {target[:120]}: {response.status} {body}")
            yield Counted(response)
        finally:
            conn.close()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Timing:
    """One read: seconds into an Arrow table, into a DataFrame, and bytes downloaded."""

    arrow: float | None
    pandas: float | None
    size: int | None = None
    reads: int = 1  # reads of the data set it made (the client: into Arrow, then pandas)
    cpu: Spent | None = None  # per read


Way = Callable[[Site, DataSet], Timing]
UTC_US = pa.timestamp("us", tz="UTC")


def checked(rows: int, data: DataSet, what: str) -> None:
    if rows != data.rows:
        raise BenchError(f"{what} gave {rows:,} rows, not {data.rows:,}")


def json_pages(site: Site, data: DataSet) -> Timing:
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    size = 0
    target: str | None = None
    params = {**data.params(), "page_size": str(PAGE_SIZE)}
    while True:
        with site.get(target or data.path, params) as body:
            page = json.loads(body.read())
            size += body.count
        rows.extend(page["results"])
        if not page.get("next"):
            break
        parts = urlsplit(page["next"])
        target = f"{parts.path}?{parts.query}"
    fetched = time.perf_counter() - started
    checked(len(rows), data, "the JSON pages")
    began = time.perf_counter()
    frame = pd.DataFrame.from_records(rows)
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True, format="ISO8601")
    into_pandas = time.perf_counter() - began
    began = time.perf_counter()
    table = pa.Table.from_pylist(rows)
    table = table.set_column(0, "ts", pc.cast(table.column("ts"), UTC_US))
    into_arrow = time.perf_counter() - began
    return Timing(fetched + into_arrow, fetched + into_pandas, size)


def bulk(fmt: str) -> Way:
    def read(site: Site, data: DataSet) -> Timing:
        started = time.perf_counter()
        with site.get(data.path, {**data.params(), "format": fmt}) as body:
            table = READERS[fmt](body)
            size = body.count
        into_arrow = time.perf_counter() - started
        checked(table.num_rows, data, f"?format={fmt}")
        table.to_pandas()
        return Timing(into_arrow, time.perf_counter() - started, size)

    return read


def _arrow(body: Counted) -> pa.Table:
    return pa.ipc.open_stream(body).read_all()


def _parquet(body: Counted) -> pa.Table:
    return pq.read_table(pa.BufferReader(body.read()))


def _csv(body: Counted) -> pa.Table:
    options = pa_csv.ConvertOptions(column_types={"ts": UTC_US})
    return pa_csv.read_csv(body, convert_options=options)


READERS: dict[str, Callable[[Counted], pa.Table]] = {
    "arrow": _arrow,
    "parquet": _parquet,
    "csv": _csv,
}


def python_client(site: Site) -> tuple[Way | None, str]:
    """The client's read, or None and why not."""
    try:
        from qvp_client import Client  # type: ignore[import-not-found, unused-ignore]
    except Exception as error:  # any failure to import: "not available"
        return None, f"not importable ({type(error).__name__}: {error})"
    if not callable(getattr(Client, "bars", None)):
        return None, "qvp_client.Client has no bars()"
    try:
        client = Client(site.url(), site.token, chunk=timedelta(days=site.bulk_days),
                        progress=False)  # fmt: skip
        how = f"Client(url, token, chunk={site.bulk_days} days): one request per read"
    except TypeError:
        client = Client(site.url(), site.token)
        how = "Client(url, token): its default chunks"

    def read(site: Site, data: DataSet) -> Timing:
        timings: list[float] = []
        for output in ("arrow", "pandas"):
            started = time.perf_counter()
            found = client.bars(data.symbol, data.start, data.end, output=output)
            timings.append(time.perf_counter() - started)
            checked(len(found), data, f"the client ({output})")
        return Timing(timings[0], timings[1], reads=2)

    return read, how


# --- ADBC, as the research role -----------------------------------------------------------
def research_login() -> tuple[str, str, str]:
    """The role the direct read connects as, its password, and a note when it is not
    qvp_research."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [RESEARCH_ROLE])
        found = cursor.fetchone()
    password = getattr(settings, "QVP_RESEARCH_DB_PASSWORD", "")
    if found and found[0] and password:
        return RESEARCH_ROLE, password, ""
    why = "does not exist" if not found else "cannot log in (no password set)"
    return "trading_app", settings.QVP_APP_DB_PASSWORD, f"{RESEARCH_ROLE} {why}"


def adbc_conninfo(role: str, password: str) -> str:
    params = connection.settings_dict
    options = {
        k: v for k, v in params.get("OPTIONS", {}).items() if k not in bulk_reader.NOT_CONNINFO
    }
    given = {"dbname": params["NAME"], "user": role, "password": password,
             "host": params["HOST"], "port": params["PORT"], **options}  # fmt: skip
    return make_conninfo(**{k: v for k, v in given.items() if v not in ("", None)})


@dataclass
class Direct:
    """An open ADBC connection and whom it is as."""

    connection: Any
    role: str
    note: str = ""

    def read(self, site: Site, data: DataSet) -> Timing:
        sql = (
            f"SELECT {', '.join(data.columns)} FROM {data.table}"
            f" WHERE instrument_id = {int(data.instrument_id)}"
            f" AND ts >= '{iso(data.start)}' AND ts < '{iso(data.end)}' ORDER BY {data.order}"
        )
        started = time.perf_counter()
        with self.connection.cursor() as cursor:
            cursor.execute(sql)
            table = cursor.fetch_arrow_table()
        into_arrow = time.perf_counter() - started
        checked(table.num_rows, data, "ADBC")
        table.to_pandas()
        self.connection.rollback()  # no transaction left open between reads
        return Timing(into_arrow, time.perf_counter() - started)


def direct_connection() -> Direct:
    role, password, note = research_login()
    try:
        return Direct(adbc.connect(adbc_conninfo(role, password)), role, note)
    except Exception as error:  # the driver raises several classes
        if role != RESEARCH_ROLE:
            raise
        note = f"{RESEARCH_ROLE} could not connect ({type(error).__name__}: {error})"
        fallback = adbc_conninfo("trading_app", settings.QVP_APP_DB_PASSWORD)
        return Direct(adbc.connect(fallback), "trading_app", note)


# --- Measuring ------------------------------------------------------------------------------
@dataclass
class Row:
    data: DataSet
    way: str
    arrow: float | None = None  # best seconds
    pandas: float | None = None
    size: int | None = None
    error: str = ""
    runs: int = 0
    cpu: Spent | None = None  # the run's that spent the least

    def add(self, timing: Timing) -> None:
        self.runs += 1
        self.arrow = _best(self.arrow, timing.arrow)
        self.pandas = _best(self.pandas, timing.pandas)
        if timing.cpu is not None and (self.cpu is None or timing.cpu.total < self.cpu.total):
            self.cpu = timing.cpu
        self.size = timing.size if timing.size is not None else self.size

    def rate(self, seconds: float | None) -> float | None:
        return None if seconds is None else self.data.rows / seconds


def _best(kept: float | None, new: float | None) -> float | None:
    if new is None:
        return kept
    return new if kept is None else min(kept, new)


@dataclass(frozen=True)
class WayPlan:
    name: str
    read: Way | None  # None: not available
    note: str = ""  # why not
    served: bool = True  # by the site (its worker's CPU counted)


@dataclass
class Plan:
    ways: list[WayPlan]
    runs: dict[str, int] = field(default_factory=dict)  # name -> runs, where not the default
    notes: list[str] = field(default_factory=list)  # printed under the table


def measure(site: Site, data: DataSet, plan: Plan, runs: int) -> list[Row]:
    """Each way's runs taken in turn (a run of each way, then the next run of each), so that
    a spell of load from elsewhere falls on all of them alike."""
    rows = [Row(data, w.name, error=w.note if w.read is None else "") for w in plan.ways]
    rounds = max([runs, *plan.runs.values()])
    for run in range(rounds):
        for row, way in zip(rows, plan.ways, strict=True):
            if way.read is None or row.error or run >= plan.runs.get(way.name, runs):
                continue
            try:
                row.add(on_worker(site, way, data))
            except (BenchError, OSError, http.client.HTTPException) as error:
                row.error = str(error)[:200]
            except Exception as error:  # the client's own errors
                row.error = f"{type(error).__name__}: {error}"[:200]
        print(f"  {data.label}: run {run + 1} of {rounds} done", file=sys.stderr, flush=True)
    return rows


@dataclass(frozen=True)
class Spent:
    """CPU seconds of the server worker (None: a read the site does not serve), of
    PostgreSQL's backends of the bench database, and of this process (reading, decoding)."""

    worker: float | None
    postgres: float
    bench: float

    @property
    def total(self) -> float:
        return (self.worker or 0.0) + self.postgres + self.bench


@dataclass(frozen=True)
class Clocks:
    worker: float
    postgres: dict[int, float]
    bench: float

    @classmethod
    def now(cls, site: Site) -> Clocks:
        return cls(cpu_seconds(site.worker), backends_cpu(site.database), time.process_time())

    def since(self, before: Clocks, reads: int, served: bool) -> Spent:
        """Per read. A backend that began since counts from 0; one that ended is not seen."""
        postgres = sum(t - before.postgres.get(pid, 0.0) for pid, t in self.postgres.items())
        worker = (self.worker - before.worker) / reads if served else None
        return Spent(worker, postgres / reads, (self.bench - before.bench) / reads)


def on_worker(site: Site, way: WayPlan, data: DataSet) -> Timing:
    """``way``'s read, and the CPU it took."""
    assert way.read is not None
    before = Clocks.now(site)
    timing = way.read(site, data)
    timing.cpu = Clocks.now(site).since(before, timing.reads, way.served)
    return timing


def warm_up(site: Site, data: DataSet) -> None:
    """A first bulk read and a first page: the worker's imports, the reader's connection."""
    small = replace(data, end=data.start + timedelta(days=3))
    for fmt in ("arrow", "parquet", "csv"):
        with site.get(small.path, {**small.params(), "format": fmt}) as body:
            body.read()
    with site.get(small.path, {**small.params(), "page_size": "10"}) as body:
        body.read()


# --- Memory ---------------------------------------------------------------------------------
@dataclass
class Peak:
    rows: int
    fmt: str
    seconds: float
    before: int  # the worker's resident set before the request
    peak: int  # its peak during it
    size: int  # bytes of the answer
    cpu: float  # the worker's CPU seconds for it

    @property
    def growth(self) -> int:
        return self.peak - self.before


def only_worker(port: int) -> int:
    workers = gunicorn_workers(port)
    if len(workers) != 1:
        raise BenchError(f"expected one gunicorn worker, found {workers}")
    return workers[0]


def one_request(site: Site, data: DataSet, fmt: str) -> tuple[int, int]:
    """Read one bulk answer, throwing each part away: its rows (where countable) and bytes."""
    rows = 0
    with site.get(data.path, {**data.params(), "format": fmt}) as body:
        if fmt == "arrow":
            rows = sum(batch.num_rows for batch in pa.ipc.open_stream(body))
        else:
            newlines = 0
            while chunk := body.read(1 << 20):
                newlines += chunk.count(b"\n")
            rows = newlines - 1 if fmt == "csv" else data.rows  # Parquet: not counted
        return rows, body.count


def arrow_row_bytes(site: Site, data: DataSet) -> float:
    """What a row of ``data`` takes in Arrow (its stream's bytes per row, of 100,000): the
    yardstick of flat memory, whatever the format (Parquet's answer is compressed)."""
    sample = data.first(min(100_000, data.rows))
    return one_request(site, sample, "arrow")[1] / sample.rows


def memory_peaks(site: Site, data: DataSet, sizes: list[int], formats: list[str]) -> list[Peak]:
    pid = only_worker(site.port)
    found = []
    for fmt in formats:
        one_request(site, data.first(1000), fmt)  # the format's code loaded, not counted
        for rows in sizes:
            part = data.first(rows)
            before, cpu = memory(pid).rss, cpu_seconds(pid)
            reset_peak(pid)
            started = time.perf_counter()
            read, size = one_request(site, part, fmt)
            seconds = time.perf_counter() - started
            after, cpu = memory(pid), cpu_seconds(pid) - cpu
            if only_worker(site.port) != pid:
                raise BenchError("the worker was replaced during the request")
            checked(read, part, f"the {fmt} answer")
            found.append(Peak(rows, fmt, seconds, before, after.peak, size, cpu))
            print(f"  memory: {fmt} {rows:,} done", file=sys.stderr, flush=True)
    return found


# --- Report ---------------------------------------------------------------------------------
def cell(value: float | None, width: int, fmt: str = ",.0f") -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}{fmt}}"


def report(rows: list[Row], args: argparse.Namespace, notes: list[str]) -> None:
    print(f"\nRows per second into an Arrow table and a pandas DataFrame, best of {args.runs}"
          f" runs (the JSON pages {args.json_runs}); CPU seconds per read, of the run that"
          " spent least: the server worker's, PostgreSQL's backends', the bench's own")  # fmt: skip
    for data in dict.fromkeys(r.data for r in rows):
        print(f"  {data.label}: {data.about}")
    print(f"{'data':<10} {'way':<28} {'MB':>6} {'Arrow rows/s':>13} {'pandas rows/s':>14}"
          f" {'worker':>7} {'PG':>6} {'bench':>6} {'rows/CPU s':>11}")  # fmt: skip
    for row in rows:
        size = None if row.size is None else row.size / MB
        line = f"{row.data.label:<10} {row.way:<28} {cell(size, 6, ',.1f')}"
        if row.error and row.arrow is None:
            print(f"{line}  {row.error}")
            continue
        rates = f"{cell(row.rate(row.arrow), 13)} {cell(row.rate(row.pandas), 14)}"
        print(f"{line} {rates} {cpu_cells(row)}")
    for row in rows:
        if row.error and row.arrow is not None:
            print(f"{row.data.label}, {row.way}: a run failed: {row.error}")
    for note in notes:
        print(note)
    for data in dict.fromkeys(r.data for r in rows):
        goals(data, [r for r in rows if r.data == data])


def cpu_cells(row: Row) -> str:
    cpu = row.cpu
    if cpu is None:
        return ""
    return (
        f"{cell(cpu.worker, 7, '.2f')} {cpu.postgres:>6.2f} {cpu.bench:>6.2f}"
        f" {row.data.rows / cpu.total:>11,.0f}"
    )


def goals(data: DataSet, rows: list[Row]) -> None:
    by_way = {r.way.split(" (")[0]: r for r in rows}
    stream, direct = by_way.get("Arrow stream"), by_way.get("ADBC direct")
    if stream is None or stream.arrow is None:
        print(f"goals, {data.label}: no Arrow stream figure")
        return
    rate = data.rows / stream.arrow
    verdict = "met" if rate >= GOAL_RATE else "MISSED"
    line = f"goals, {data.label}: Arrow stream {rate:,.0f} rows/s (>= {GOAL_RATE:,}: {verdict})"
    if direct is not None and direct.arrow is not None:
        ratio = direct.arrow / stream.arrow
        verdict = "met" if ratio >= GOAL_RATIO else "MISSED"
        line += f"; {ratio:.2f} of ADBC direct (>= {GOAL_RATIO}: {verdict})"
    print(line)
    if stream.cpu is not None and stream.cpu.worker:
        cost = f"  CPU: the worker {data.rows / stream.cpu.worker:,.0f} rows per its CPU second"
        if direct is not None and direct.cpu is not None:
            cost += (
                f"; the stream {stream.cpu.total:.2f} s of CPU in all per read, ADBC direct"
                f" {direct.cpu.total:.2f} s ({direct.cpu.total / stream.cpu.total:.2f} of its"
                " rows per CPU second)"
            )
        print(cost)


def report_memory(peaks: list[Peak], data: DataSet, pid: int, row_bytes: float) -> None:
    print(f"\nServer worker's memory, one bulk request of {data.about} (gunicorn worker {pid})")
    print(f"{'format':<8} {'rows':>11} {'seconds':>8} {'rows/s':>10} {'worker CPU s':>12}"
          f" {'answer MB':>10} {'RSS before MB':>14} {'peak MB':>8} {'rise MB':>8}")  # fmt: skip
    for p in peaks:
        print(f"{p.fmt:<8} {p.rows:>11,} {p.seconds:>8.2f} {p.rows / p.seconds:>10,.0f}"
              f" {p.cpu:>12.2f} {p.size / MB:>10.1f} {p.before / MB:>14.1f} {p.peak / MB:>8.1f}"
              f" {p.growth / MB:>8.1f}")  # fmt: skip
    for fmt in dict.fromkeys(p.fmt for p in peaks):
        flat(fmt, [p for p in peaks if p.fmt == fmt], row_bytes)


def flat(fmt: str, peaks: list[Peak], row_bytes: float) -> None:
    """The verdict between the two largest sizes: below the smallest, the answer is less than
    the driver's batches and the writer's buffers, which a larger one fills and stays at."""
    if len(peaks) < 2:
        return
    smaller, larger = peaks[-2], peaks[-1]
    rise = larger.peak - smaller.peak
    more = (larger.rows - smaller.rows) * row_bytes
    verdict = "met" if rise < FLAT_SHARE * more else "MISSED"
    print(f"goal, {fmt}: peak flat: {rise / MB:+.1f} MB from {smaller.rows:,} to {larger.rows:,}"
          f" rows (< {FLAT_SHARE:.0%} of the {more / MB:,.0f} MB the rows take more in Arrow:"
          f" {verdict})")  # fmt: skip


# --- Running it -----------------------------------------------------------------------------
def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each way (best kept)")
    parser.add_argument("--json-runs", type=int, default=1, help="runs of the JSON pages")
    parser.add_argument("--skip-json", action="store_true", help="leave the JSON pages out")
    parser.add_argument(
        "--no-10m",
        action="store_true",
        help="memory up to 1,000,000 rows (seeding 10,000,000 takes minutes)",
    )
    parser.add_argument("--memory-formats", default="arrow",
                        help="comma-separated: arrow, parquet, csv")  # fmt: skip
    args = parser.parse_args()
    args.formats = [f.strip() for f in args.memory_formats.split(",") if f.strip()]
    if args.runs < 1 or args.json_runs < 1 or not args.formats:
        parser.error("--runs and --json-runs >= 1, --memory-formats not empty")
    if unknown := set(args.formats) - set(READERS):
        parser.error(f"--memory-formats: unknown {', '.join(sorted(unknown))}")
    args.sizes = [100_000, MILLION] + ([] if args.no_10m else [10 * MILLION])
    return args


@contextmanager
def phase(times: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    times[name] = time.perf_counter() - started


def seed_all(args: argparse.Namespace, times: dict[str, float]) -> tuple[list[DataSet], DataSet]:
    with phase(times, "roles"):
        call_command("create_db_roles", stdout=StringIO())  # not shown: a password in it
    with phase(times, "a year"):
        year = seed_year()
    with phase(times, "a million"):
        million = seed_million()
    with phase(times, f"memory ({args.sizes[-1]:,})"):
        deep = seed_memory(args.sizes[-1])
    with phase(times, "vacuum analyze"):
        vacuumed()
    return [year, million], deep


def ways(site: Site, direct: Direct, args: argparse.Namespace) -> Plan:
    client, client_note = python_client(site)
    plan = Plan([])
    if not args.skip_json:
        plan.ways.append(WayPlan(f"JSON pages (page_size={PAGE_SIZE})", json_pages))
        plan.runs[plan.ways[-1].name] = args.json_runs
    plan.ways += [
        WayPlan("Arrow stream (?format=arrow)", bulk("arrow")),
        WayPlan("Parquet (?format=parquet)", bulk("parquet")),
        WayPlan("CSV (?format=csv)", bulk("csv")),
        WayPlan("client (qvp_client)", client, f"client: not available ({client_note})"),
        WayPlan(f"ADBC direct (as {direct.role})", direct.read, served=False),
    ]
    if client is not None:
        plan.notes.append(f"client: {client_note}")
    if direct.note:
        plan.notes.append(f"ADBC direct read as {direct.role}: {direct.note}")
    return plan


def main() -> int:
    args = arguments()
    print(f"load average at the start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    times: dict[str, float] = {}
    started = time.perf_counter()
    with throwaway_database() as database:
        times["database"] = time.perf_counter() - started
        sets, deep = seed_all(args, times)
        token = bench_token()
        print("ready in " + ", ".join(f"{name} {s:.0f} s" for name, s in times.items()))
        bulk_days = max(d.days() for d in [*sets, deep])
        # Read by the served site's settings (serving() passes this process's environment).
        os.environ["QVP_API_BULK_MAX_DAYS"] = str(bulk_days)
        direct = direct_connection()
        connection.close()  # the served site and the direct read are the database's clients
        try:
            with serving(1, database) as port:
                site = Site(port, token, bulk_days, only_worker(port), database)
                warm_up(site, sets[0])
                plan = ways(site, direct, args)
                rows = [r for data in sets for r in measure(site, data, plan, args.runs)]
                row_bytes = arrow_row_bytes(site, deep)
                peaks = memory_peaks(site, deep, args.sizes, args.formats)
                pid = only_worker(port)
        finally:
            with suppress(Exception):
                direct.connection.close()
        print(f"\nserver: gunicorn, 1 sync worker, as trading_app; bulk limit {bulk_days} days")
        report(rows, args, plan.notes)
        report_memory(peaks, deep, pid, row_bytes)
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
