"""Bars as numpy columns for the pipelines: loaded in one query, resampled, cut into windows.

The pipelines read prices adjusted for corporate actions, by default for everything a holder
received (``total_return``): features, signatures and backtests see a continuous series, not a
split's ex-date as a fall of half nor a dividend's as a fall of the dividend. Where an
instrument has no action its bars are multiplied by exactly 1: the same features to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
from django.db import connection

from marketdata import adjusting
from marketdata.models import DailyBar, MinuteBar
from marketdata.querysets import ADJUSTMENTS
from qvp_site.db.quoting import ident

MINUTE = np.timedelta64(1, "m")
DAY = np.timedelta64(1, "D")
DEFAULT_ADJUSTMENT = "total_return"


@dataclass(frozen=True)
class Series:
    """One instrument's bars, oldest first; ``ts`` is each bar's start (datetime64[us], UTC)
    and ``period`` its length, so ``ts + period`` is when the bar closed."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    period: np.timedelta64

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "period"}

    def closes_at(self) -> np.ndarray:
        return self.ts + self.period

    def tail(self, start: int) -> Series:
        return Series(**{k: v[start:] for k, v in self.columns().items()}, period=self.period)


def load(
    instrument_id: int,
    *,
    daily: bool = False,
    lookback_from: datetime | None = None,
    lookback: int = 0,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> Series:
    """The instrument's minute (or daily) bars in one query; with ``lookback_from``, only
    those from ``lookback`` bars before that time on (the windows reaching back from it).
    With ``known_at``, the bars as the system knew them then (corrections learnt later left
    out, deleted bars kept), so that a run can read again exactly what it read. Prices and
    volumes adjusted for the corporate actions known then by ``adjustment`` ("raw": as
    traded)."""
    statement = query(instrument_id, daily, lookback_from, lookback, known_at, adjustment)
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        rows = np.array(cursor.fetchall(), dtype=float).reshape(-1, 6)
    open_, high, low, close, volume = (np.ascontiguousarray(rows[:, i]) for i in range(1, 6))
    return Series(
        rows[:, 0].astype(np.int64).astype("M8[us]"),
        open_,
        high,
        low,
        close,
        volume,
        period=DAY if daily else MINUTE,
    )


def query(
    instrument_id: int,
    daily: bool,
    lookback_from: datetime | None,
    lookback: int,
    known_at: datetime | None,
    adjustment: str = "raw",
) -> tuple[str, list]:
    """``load``'s statement and parameters (``load`` names its adjustment; without one, the
    bars as traded)."""
    model = DailyBar if daily else MinuteBar
    source, source_params = _source(model, known_at, adjustment, instrument_id)
    params: list = [*source_params, instrument_id]
    where = "instrument_id = %s"
    if lookback_from is not None:
        # The start is the bar `lookback` places before the time, found on the (instrument,
        # ts) key; with fewer bars than that before it, everything. Which bars there are does
        # not depend on the adjustment: read as traded, without the actions.
        start, start_params = _source(model, known_at, "raw", instrument_id)
        where += (
            f" AND ts >= coalesce((SELECT ts FROM {start} WHERE instrument_id = %s AND ts < %s"
            " ORDER BY ts DESC OFFSET %s LIMIT 1), '-infinity')"
        )
        params += [*start_params, instrument_id, lookback_from, max(lookback - 1, 0)]
    # Times as microseconds since the epoch (exact in a float64 until the year 2255): numbers
    # convert to numpy at once, where a datetime per row costs more than the query.
    statement = (
        "SELECT (extract(epoch FROM ts) * 1000000)::int8, open, high, low, close,"
        f" coalesce(volume, 'NaN') FROM {source} WHERE {where} ORDER BY ts"
    )
    return statement, params


def _source(
    model: type[MinuteBar] | type[DailyBar],
    known_at: datetime | None,
    adjustment: str,
    instrument_id: int,
) -> tuple[str, list]:
    """What to read the instrument's bars from, and its parameters: the table, the table as
    known at a time (the body of ``<table>_known_at(t)``, marketdata/sql/revisions/0018.sql,
    written out: marketdata/adjusting.py), or either adjusted for corporate actions
    (``<table>_adjusted(adjustment, t)``, marketdata/sql/actions/0012.sql, a SQL function
    PostgreSQL inlines; on Citus its factors computed apart), so the filters on instrument
    and time still reach the (instrument, ts) indexes of the table, of its revisions and of
    the actions."""
    if adjustment not in ADJUSTMENTS:
        raise ValueError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}, not {adjustment!r}")
    table = model._meta.db_table
    if adjustment == "raw" or adjusting.factors_apart(connection):
        bars = adjusting.raw_bars_sql(connection, table, known_at)
        if adjustment == "raw":
            return (f"{bars[0]} AS bars", bars[1])
        columns = [field.column for field in model._meta.concrete_fields]
        sql, params = adjusting.adjusted_bars_sql(
            connection, columns, bars, adjustment, known_at, instruments=[instrument_id]
        )
        return f"{sql} AS bars", params
    return f"{ident(table + '_adjusted')}(%s::text, %s::timestamptz) AS bars", [
        adjustment,
        known_at,
    ]


def resample(series: Series, minutes: int) -> Series:
    """Bars of ``minutes`` minutes made from minute bars (aligned to the UTC epoch); a bucket
    holds the bars that exist, so a session's last bucket may be shorter."""
    if not len(series):  # reduceat needs at least one bar
        empty = np.empty(0)
        step = np.timedelta64(minutes, "m").astype("m8[us]")
        return Series(np.empty(0, dtype="M8[us]"), empty, empty, empty, empty, empty, step)
    buckets = series.ts.astype("M8[m]").astype(np.int64) // minutes
    starts = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    ends = np.concatenate((starts[1:], [len(series)])) - 1
    return Series(
        ts=(buckets[starts] * minutes).astype("M8[m]").astype("M8[us]"),
        open=series.open[starts],
        high=np.maximum.reduceat(series.high, starts),
        low=np.minimum.reduceat(series.low, starts),
        close=series.close[ends],
        volume=np.add.reduceat(series.volume, starts),
        period=np.timedelta64(minutes, "m").astype("m8[us]"),
    )


def stride_ends(series: Series, stride_minutes: int, first: int) -> np.ndarray:
    """Indexes (from ``first`` on) of the bars that close on a multiple of ``stride_minutes``
    since the epoch: the same instants whichever range is loaded, so incremental builds and
    full ones pick the same windows."""
    closes = series.closes_at().astype("M8[m]").astype(np.int64)
    ends = np.flatnonzero(closes % stride_minutes == 0)
    return ends[ends >= first]


def to_datetimes(stamps: np.ndarray) -> list[datetime]:
    return [t.replace(tzinfo=UTC) for t in stamps.astype("M8[us]").astype(datetime)]
