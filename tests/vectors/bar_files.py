"""Minute bars as a file, loaded by ``ingest_bars``: for the tests that correct bars after a
run and repeat it (tests/vectors/test_rerun.py, test_feature_builds.py)."""

from __future__ import annotations

from datetime import datetime
from io import StringIO
from pathlib import Path

from django.core.management import call_command

from marketdata import demo

HEADER = "timestamp,open,high,low,close,volume"


def bars_csv(minute: demo.Bars, corrected: dict[int, float]) -> str:
    """The bars as a file; ``corrected``: new closes by row (the high or low follows)."""
    rows = [HEADER]
    for i, ts in enumerate(minute.ts.astype("M8[s]").astype(datetime)):
        o, h, lo, c = (float(a[i]) for a in (minute.open, minute.high, minute.low, minute.close))
        if i in corrected:
            c = corrected[i]
            h, lo = max(h, c), min(lo, c)
        # repr: the same doubles back, so rows not corrected load as unchanged.
        rows.append(f"{ts:%Y-%m-%d %H:%M:%S},{o!r},{h!r},{lo!r},{c!r},{float(minute.volume[i])!r}")
    return "\n".join(rows) + "\n"


def ingest_spy(tmp_path: Path, name: str, text: str) -> str:
    """Load ``text`` as SPY's minute bars; what ``ingest_bars`` said."""
    path = tmp_path / name
    path.write_text(text)
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", "SPY", "--timeframe", "1m", stdout=out)
    return out.getvalue()
