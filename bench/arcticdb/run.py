"""ArcticDB's side of bench/peers.py, run by .venv-arcticdb's Python (see requirements.txt):
load the CSV into a local LMDB library, read the year, resample it hourly; prints the
seconds and counts as one JSON object. Not Django: it imports nothing of the project.

    .venv-arcticdb/bin/python bench/arcticdb/run.py FILE FOLDER SYMBOL START END RUNS
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from collections.abc import Callable
from typing import Any

import arcticdb as adb
import pandas as pd

AGGREGATES = {
    "open": ("open", "first"),
    "high": ("high", "max"),
    "low": ("low", "min"),
    "close": ("close", "last"),
    "volume": ("volume", "sum"),
}


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = work()
    return time.perf_counter() - started, result


def best(work: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """The fastest of ``runs`` runs (load from elsewhere falls on all alike)."""
    return min((timed(work) for _ in range(runs)), key=lambda pair: pair[0])


def main(path: str, folder: str, symbol: str, start: str, end: str, runs: str) -> None:
    warnings.simplefilter("ignore")
    library = adb.Arctic(f"lmdb://{folder}/arctic").get_library("bars", create_if_missing=True)
    # A time-indexed frame: ArcticDB's date ranges and resampling need one.
    parse, frame = timed(lambda: pd.read_csv(path, parse_dates=["timestamp"], index_col=0))
    write, _ = timed(lambda: library.write(symbol, frame))
    span = (pd.Timestamp(start), pd.Timestamp(end) - pd.Timedelta(microseconds=1))
    read, year = best(lambda: library.read(symbol, date_range=span).data, int(runs))
    query = adb.QueryBuilder().resample("1h").agg(AGGREGATES)
    hourly_s, hourly = best(
        lambda: library.read(symbol, date_range=span, query_builder=query).data, int(runs)
    )
    found = {"read_csv": parse, "write": write, "read": read, "read_rows": len(year)}
    found |= {"buckets": hourly_s, "bucket_count": len(hourly), "version": adb.__version__}
    print(json.dumps(found))


if __name__ == "__main__":
    main(*sys.argv[1:])
