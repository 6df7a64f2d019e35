"""Market-data anomalies of an instrument's minute bars over a window (the design documents'
``detect_market_data_anomalies('AAPL', 24)``):

- return and volume outliers by a robust z-score: 0.6745 (x - median) / MAD, the MAD scaled
  so that the score is a standard normal's for normal data, and immune to the outliers
  themselves (a mean and standard deviation would be dragged by them). Returns are log returns
  between consecutive minutes (not across a session's gap); volume is taken as log(1 + v);
- gaps: the minutes the exchange's trading calendar (``exchange_calendars``) says were open
  and that have no bar, each run of consecutive missing minutes one gap.

Findings are upserted into ``MarketAnomaly`` (running again restates them) and returned.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from django.db import connection
from pandas.errors import Pandas4Warning

from marketdata.models import Instrument

MINUTE = np.timedelta64(1, "m")
# Instruments whose exchange has no calendar of its own trade around the clock or the week.
CALENDAR_BY_ASSET_CLASS = {"crypto": "24/7", "fx": "24/5"}

UPSERT_SQL = """
INSERT INTO risk_marketanomaly (instrument_id, ts, kind, value, score, until)
SELECT %(instrument)s, ts, kind, value, score, until
FROM unnest(%(ts)s::timestamptz[], %(kind)s::text[], %(value)s::float8[],
            %(score)s::float8[], %(until)s::timestamptz[]) AS a(ts, kind, value, score, until)
ON CONFLICT (instrument_id, kind, ts)
DO UPDATE SET value = EXCLUDED.value, score = EXCLUDED.score, until = EXCLUDED.until,
              detected_at = now()
"""


@dataclass(frozen=True)
class Anomalies:
    symbol: str
    start: datetime
    end: datetime
    bars: int
    calendar: str | None  # None: no calendar known for the instrument, gaps not measured
    outliers: pd.DataFrame  # ts, kind, value, score
    gaps: pd.DataFrame  # ts (first missing minute), until (last), value (minutes missing)


def robust_z(values: np.ndarray) -> np.ndarray:
    """0.6745 (x - median) / MAD; all zero where the MAD is zero (no spread to measure)."""
    median = np.median(values)
    mad = np.median(np.abs(values - median))
    if mad == 0:
        return np.zeros_like(values)
    return 0.6745 * (values - median) / mad


def outliers(
    ts: np.ndarray, close: np.ndarray, volume: np.ndarray, threshold: float
) -> pd.DataFrame:
    """Bars whose return (from the minute before) or volume scores beyond ``threshold``."""
    frames = []
    adjacent = np.flatnonzero(np.diff(ts) == MINUTE) + 1
    if len(adjacent) >= 3:
        returns = np.log(close[adjacent] / close[adjacent - 1])
        frames.append(_flagged(ts[adjacent], "return", returns, robust_z(returns), threshold))
    known = ~np.isnan(volume)
    if known.sum() >= 3:
        scores = robust_z(np.log1p(volume[known]))
        frames.append(_flagged(ts[known], "volume", volume[known], scores, threshold))
    frames = [f for f in frames if not f.empty]
    if not frames:
        return pd.DataFrame(columns=["ts", "kind", "value", "score"])
    return pd.concat(frames, ignore_index=True)


def _flagged(ts, kind: str, values, scores, threshold: float) -> pd.DataFrame:
    hit = np.abs(scores) > threshold
    return pd.DataFrame({"ts": ts[hit], "kind": kind, "value": values[hit], "score": scores[hit]})


@contextlib.contextmanager
def _calendar_library() -> Iterator[None]:
    # exchange_calendars 4.13 makes pandas calls that pandas 3.1 deprecates: the warnings are
    # the library's to fix, and say nothing about our data.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Pandas4Warning)
        yield


@functools.lru_cache(maxsize=16)
def calendar(name: str):
    with _calendar_library():
        return xcals.get_calendar(name)


def calendar_name(instrument: Instrument) -> str | None:
    names = set(xcals.get_calendar_names(include_aliases=True))
    if instrument.exchange in names:
        return instrument.exchange
    return CALENDAR_BY_ASSET_CLASS.get(instrument.asset_class)


def gaps(ts: np.ndarray, name: str, start: datetime, end: datetime) -> pd.DataFrame:
    """Runs of trading minutes in [start, end) with no bar."""
    cal = calendar(name)
    with _calendar_library():
        lo = max(pd.Timestamp(start), cal.first_minute)
        hi = min(pd.Timestamp(end) - pd.Timedelta(minutes=1), cal.last_minute)
        if lo > hi:
            return pd.DataFrame(columns=["ts", "until", "value"])
        minutes = cal.minutes_in_range(lo, hi)
    expected = minutes.tz_convert(None).to_numpy().astype("M8[us]")
    missing = expected[~np.isin(expected, ts.astype("M8[us]"))]
    if not len(missing):
        return pd.DataFrame(columns=["ts", "until", "value"])
    breaks = np.flatnonzero(np.diff(missing) != MINUTE)
    firsts = np.r_[0, breaks + 1]
    lasts = np.r_[breaks, len(missing) - 1]
    return pd.DataFrame(
        {
            "ts": missing[firsts],
            "until": missing[lasts],
            "value": (lasts - firsts + 1).astype(float),
        }
    )


def minute_bars(instrument_id: int, start: datetime, end: datetime) -> tuple[np.ndarray, ...]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ts, close, volume FROM marketdata_minutebar"
            " WHERE instrument_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
            [instrument_id, start, end],
        )
        frame = pd.DataFrame(cursor.fetchall(), columns=["ts", "close", "volume"])
    ts = pd.to_datetime(frame["ts"], utc=True).dt.tz_convert(None).to_numpy().astype("M8[us]")
    return ts, frame["close"].to_numpy(float), frame["volume"].to_numpy(float, na_value=np.nan)


def detect(
    instrument: Instrument, hours: float, end: datetime, threshold: float = 5.0
) -> Anomalies:
    """Find and store the anomalies of ``instrument``'s minute bars in [end - hours, end)."""
    if not hours > 0:
        raise ValueError("hours must be positive")
    if not threshold > 0:
        raise ValueError("threshold must be positive")
    start = end - timedelta(hours=hours)
    ts, close, volume = minute_bars(instrument.pk, start, end)
    found = outliers(ts, close, volume, threshold)
    name = calendar_name(instrument)
    missing = gaps(ts, name, start, end) if name else pd.DataFrame(columns=["ts", "until", "value"])
    _store(instrument.pk, found, missing)
    return Anomalies(instrument.symbol, start, end, len(ts), name, found, missing)


def _store(instrument_id: int, found: pd.DataFrame, missing: pd.DataFrame) -> None:
    if found.empty and missing.empty:
        return
    n_found, n_missing = len(found), len(missing)
    utc = [pd.Timestamp(t, tz="UTC") for t in [*found["ts"], *missing["ts"]]]
    until = [None] * n_found + [pd.Timestamp(t, tz="UTC") for t in missing["until"]]
    with connection.cursor() as cursor:
        cursor.execute(
            UPSERT_SQL,
            {
                "instrument": instrument_id,
                "ts": utc,
                "kind": [*found["kind"], *["gap"] * n_missing],
                "value": [*map(float, found["value"]), *map(float, missing["value"])],
                "score": [*map(float, found["score"]), *[None] * n_missing],
                "until": until,
            },
        )
