"""CSV files of minute bars for the ingest benchmarks: one per instrument, prices apart per
instrument, the same every run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

START = datetime(2026, 3, 2, tzinfo=UTC)


def write_files(folder: Path, instruments: int, bars: int) -> list[tuple[str, Path]]:
    """One CSV of ``bars`` minute bars from ``START`` for each of ``instruments`` symbols
    (CL000, CL001...): (symbol, path) each."""
    files = []
    for n in range(instruments):
        path = folder / f"c{n:03}.csv"
        base = 20.0 + n
        with path.open("w") as f:
            f.write("timestamp,open,high,low,close,volume\n")
            for i in range(bars):
                ts = (START + timedelta(minutes=i)).isoformat()
                price = base + (i % 97) * 0.01
                f.write(f"{ts},{price},{price + 0.05},{price - 0.05},{price + 0.01},{100 + i}\n")
        files.append((f"CL{n:03}", path))
    return files


def ingest_all(files: list[tuple[str, Path]]) -> float:
    """Each file through ``ingest_bars``, one after another; the seconds they took."""
    from django.core.management import call_command  # after django.setup()

    started = time.perf_counter()
    for symbol, path in files:
        call_command(
            "ingest_bars", str(path), "--symbol", symbol, "--timeframe", "1m", stdout=StringIO()
        )
    return time.perf_counter() - started
