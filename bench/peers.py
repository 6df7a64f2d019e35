"""QVP beside what a quant would use instead: ArcticDB and DuckDB, on the same million minute
bars and the same year of one symbol, in one run.

    .venv/bin/python bench/peers.py [--rows 1000000]

The bars are bench/ingest.py's file (its generator, imported: a GARCH random walk, bars
around the clock on weekdays), written once to a CSV that all three load. Each does three
things, with its defaults:

- *load* the file. QVP: ``ingest_bars`` (parse and check every line, stage, write with
  revisions, refresh the hourly and daily aggregates, commit; the partitions made on
  demand) into a throwaway database of the configured server (bench/support/scratch.py).
  ArcticDB: ``pandas.read_csv`` then ``Library.write`` into a local LMDB library (the two
  timed apart and together), run in an environment of its own (``.venv-arcticdb``, made by
  ``make bench`` from bench/arcticdb/requirements.txt: ArcticDB declares pandas < 3). DuckDB:
  ``CREATE TABLE ... AS SELECT * FROM read_csv(...)`` into a database file.
- *read a year* of the symbol into a pandas DataFrame. QVP: the API's bulk Arrow read
  (``bars/?format=arrow``, qvp_site/api/bulk: authentication, the acting transaction, the
  ADBC COPY), served in-process by Django's test client (no socket, no gunicorn), then
  ``Table.to_pandas``. ArcticDB: ``Library.read(date_range=...)``. DuckDB: a SELECT of
  the range, ``.df()``.
- *hourly buckets* (OHLCV) of that year into a DataFrame. QVP: ``marketdata.buckets.
  bucketed`` (the hourly aggregate where it covers the range, as the API's buckets/ reads
  it). ArcticDB: a ``QueryBuilder`` resample to 1h (first, max, min, last, sum). DuckDB:
  ``time_bucket`` with ``arg_min``/``arg_max`` for open and close.

Prints the seconds, rows/s and the ratios (QVP's time over each peer's: above 1, QVP is
slower), then what QVP does that the peers do not. A peer that cannot be imported is
reported missing. Not a test: it prints figures; the machine's load says how noisy they are.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_peers")
# The in-process API's throttle counts in a cache of the bench's own (a bench measures the
# site, not the throttle), as bench/support/served.py does for gunicorn.
CACHE = tempfile.mkdtemp(prefix="qvp-bench-peers-cache-")
atexit.register(shutil.rmtree, CACHE, ignore_errors=True)
os.environ["DJANGO_CACHE_URL"] = f"filecache://{CACHE}"
os.environ["QVP_API_THROTTLE_USER"] = "10000000/minute"

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.test import Client  # noqa: E402

from bench import ingest  # noqa: E402 - its generator and its ingest_bars run
from marketdata.buckets import BucketRequest, bucketed  # noqa: E402
from marketdata.models import Instrument  # noqa: E402
from qvp_site.api.bulk import reader  # noqa: E402
from qvp_site.db import engine  # noqa: E402
from qvp_site.db.intervals import parse_interval  # noqa: E402

YEAR = timedelta(days=365)
RUNS = 3  # reads and buckets: the best of three, each peer's connection or library open
ARCTICDB_PYTHON = ROOT / ".venv-arcticdb" / "bin" / "python"
QVP_DOES = (
    "refuses a bad line naming it and its field, and then loads nothing of the file;"
    " ArcticDB stores whatever pandas parsed, DuckDB whatever its CSV sniffer guessed",
    "rules kept by the database: one bar per instrument and minute (a reload replaces,"
    " never duplicates), prices positive and finite, high the highest and low the lowest,"
    " volume not negative, the instrument known",
    "one transaction per load: a failed or interrupted load leaves nothing, and no reader"
    " sees half of one (ArcticDB versions a write without checking its contents; DuckDB's"
    " CREATE TABLE AS is atomic and checks nothing)",
    "revisions: a bar a later load corrects keeps what it replaced and since when each was"
    " known, so reads as known at a past moment give what was known then (ArcticDB keeps"
    " whole versions of a symbol; DuckDB keeps nothing)",
    "hourly and daily aggregates kept up to date by the load, in its transaction",
    "each load recorded (file, who, what came of it) in an audited record its revisions name",
    "roles and row-level security in the database for every read, the API user acting in"
    " the transaction: bars are for every authenticated user, trading data is scoped to its"
    " accounts by row-level security; the peers are files whoever can open them reads whole",
)


@dataclass
class Timed:
    seconds: float
    rows: int
    note: str = ""


@dataclass
class Peer:
    name: str
    load: Timed | None = None
    read: Timed | None = None
    buckets: Timed | None = None
    missing: str = ""
    parts: dict[str, float] = field(default_factory=dict)


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def best(work: Callable[[], Any], runs: int = RUNS) -> tuple[float, Any]:
    """The fastest of ``runs`` runs of ``work`` (load from elsewhere falls on all alike)."""
    found = [timed(work) for _ in range(runs)]
    return min(found, key=lambda pair: pair[0])


# --- QVP ------------------------------------------------------------------------------------


def qvp(path: Path, rows: int, start: datetime, end: datetime) -> Peer:
    peer = Peer("QVP")
    instrument = Instrument.objects.create(symbol=ingest.SYMBOL, asset_class="equity")
    seconds, said = ingest.run_ingest(path)
    peer.load = Timed(seconds, rows, " ".join(said.split()))
    client = Client()
    client.force_login(quant())
    # The bulk reader keeps its connection between reads, as a notebook keeps its session.
    qvp_read(client, start, start + timedelta(days=1))
    seconds, frame = best(lambda: qvp_read(client, start, end))
    peer.read = Timed(seconds, len(frame))
    request = BucketRequest(instrument.id, parse_interval("1 hour"), start, end)
    seconds, found = best(lambda: qvp_buckets(request))
    peer.buckets = Timed(seconds, len(frame), f"{len(found[0]):,} buckets from {found[1]}")
    return peer


def qvp_buckets(request: BucketRequest) -> tuple[pd.DataFrame, str]:
    """Hourly OHLCV as the API's buckets/ reads them, into pandas, and their source."""
    found = bucketed(request)
    return pd.DataFrame(found.rows), found.source


def qvp_read(client: Client, start: datetime, end: datetime) -> pd.DataFrame:
    """The symbol's bars over [start, end) through the API's bulk Arrow read, into pandas."""
    params = {
        "symbol": ingest.SYMBOL,
        "timeframe": "1m",
        "start": start.isoformat(),
        "end": end.isoformat(),
        "format": "arrow",
    }
    response = client.get("/api/v1/bars/", params)
    if response.status_code != 200:
        raise SystemExit(f"bars/?format=arrow: {response.status_code} {response.content[:300]!r}")
    body = b"".join(response.streaming_content)
    return pa.ipc.open_stream(body).read_all().to_pandas()


def quant():
    user, _ = get_user_model().objects.get_or_create(username="bench-peers-quant")
    return user


# --- ArcticDB -------------------------------------------------------------------------------


def arcticdb(path: Path, rows: int, start: datetime, end: datetime, folder: Path) -> Peer:
    """ArcticDB in its own environment (bench/arcticdb: it declares pandas < 3)."""
    peer = Peer("ArcticDB")
    if not ARCTICDB_PYTHON.exists():
        peer.missing = f"no {ARCTICDB_PYTHON.parent.parent.name} (make bench makes it)"
        return peer
    arguments = [path, folder, ingest.SYMBOL, start.isoformat(), end.isoformat(), RUNS]
    done = subprocess.run(
        [ARCTICDB_PYTHON, ROOT / "bench" / "arcticdb" / "run.py", *map(str, arguments)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        peer.missing = f"failed: {done.stderr.strip().splitlines()[-1:]}"
        return peer
    found = json.loads(done.stdout)
    parse, write = found["read_csv"], found["write"]
    peer.name = f"ArcticDB {found['version']}"
    peer.parts = {"read_csv": parse, "write": write}
    peer.load = Timed(parse + write, rows, f"read_csv {parse:.2f} s + write {write:.2f} s")
    peer.read = Timed(found["read"], found["read_rows"])
    peer.buckets = Timed(found["buckets"], found["read_rows"], f"{found['bucket_count']:,} buckets")
    return peer


# --- DuckDB ---------------------------------------------------------------------------------


def duckdb_peer(path: Path, rows: int, start: datetime, end: datetime, folder: Path) -> Peer:
    peer = Peer("DuckDB")
    try:
        import duckdb
    except ImportError as error:
        peer.missing = f"not installed ({error})"
        return peer
    database = duckdb.connect(str(folder / "peers.duckdb"))
    try:
        seconds, _ = timed(
            lambda: database.execute("CREATE TABLE bars AS SELECT * FROM read_csv(?)", [str(path)])
        )
        peer.load = Timed(seconds, rows)
        range_sql = "WHERE timestamp >= ? AND timestamp < ?"
        seconds, year = best(
            lambda: database.execute(f"SELECT * FROM bars {range_sql}", [start, end]).df()
        )
        peer.read = Timed(seconds, len(year))
        sql = (
            "SELECT time_bucket(INTERVAL 1 hour, timestamp) AS bucket,"
            " arg_min(open, timestamp) AS open, max(high) AS high, min(low) AS low,"
            " arg_max(close, timestamp) AS close, sum(volume) AS volume, count(*) AS bar_count"
            f" FROM bars {range_sql} GROUP BY bucket ORDER BY bucket"
        )
        seconds, hourly = best(lambda: database.execute(sql, [start, end]).df())
        peer.buckets = Timed(seconds, len(year), f"{len(hourly):,} buckets")
    finally:
        database.close()
    return peer


# --- the report -----------------------------------------------------------------------------


def report(peers: list[Peer], rows: int, size: int) -> None:
    qvp_peer = peers[0]
    load1, load5, _ = os.getloadavg()
    print(
        f"{rows:,} one-minute bars, {size / 1e6:.1f} MB of CSV; QVP on {engine.detect().engine};"
        f" machine: {os.cpu_count()} CPUs, load average {load1:.1f} (1 min), {load5:.1f} (5 min)"
    )
    header = f"{'':24} {'load (rows/s)':>22} {'read a year (rows/s)':>22} {'hourly (bars/s)':>22}"
    print(header)
    for peer in peers:
        if peer.missing:
            print(f"{peer.name:24} missing: {peer.missing}")
            continue
        cells = [cell(getattr(peer, step)) for step in ("load", "read", "buckets")]
        print(f"{peer.name:24} " + " ".join(f"{c:>22}" for c in cells))
    for peer in peers[1:]:
        if peer.missing:
            continue
        ratios = [
            ratio(getattr(qvp_peer, step), getattr(peer, step))
            for step in ("load", "read", "buckets")
        ]
        print(f"{'QVP / ' + peer.name:24} " + " ".join(f"{r:>22}" for r in ratios))
    print("(QVP / peer: QVP's seconds over the peer's; above 1, QVP takes longer)")
    for peer in peers:
        notes = [f"{step} {t.note}" for step in ("load", "read", "buckets")
                 if (t := getattr(peer, step)) is not None and t.note]  # fmt: skip
        if notes:
            print(f"{peer.name}: " + "; ".join(notes))
    print("What QVP does that neither peer does:")
    for line in QVP_DOES:
        print(f"  - {line}")


def cell(found: Timed | None) -> str:
    if found is None:
        return "-"
    return f"{found.seconds:6.2f} s {found.rows / found.seconds:>10,.0f}/s"


def ratio(ours: Timed | None, theirs: Timed | None) -> str:
    if ours is None or theirs is None:
        return "-"
    return f"{ours.seconds / theirs.seconds:.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if args.rows < 2:
        parser.error("--rows >= 2")
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the in-process client
    with tempfile.TemporaryDirectory(prefix="qvp-bench-peers-") as tmp, throwaway_database():
        folder = Path(tmp)
        path = folder / "bars.csv"
        first, last = ingest.generate(path, args.rows)
        start = first.astimezone(UTC)
        end = min(start + YEAR, last + timedelta(minutes=1))
        try:
            peers = [qvp(path, args.rows, start, end)]
        finally:
            reader.close_all()  # the bulk read's kept connections, before the drop
        peers.append(arcticdb(path, args.rows, start, end, folder))
        peers.append(duckdb_peer(path, args.rows, start, end, folder))
        checked(peers)
        report(peers, args.rows, path.stat().st_size)


def checked(peers: list[Peer]) -> None:
    """Every peer read the same rows (else the comparison compares nothing)."""
    counts = {p.name: p.read.rows for p in peers if p.read is not None}
    if len(set(counts.values())) > 1:
        print(f"WARNING: the year's reads gave different row counts: {counts}")


if __name__ == "__main__":
    main()
