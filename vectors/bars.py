"""Bars as numpy columns for the pipelines: loaded in one query, resampled, cut into windows."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime

import numpy as np
from django.db import connection

from marketdata.models import DailyBar, MinuteBar
from qvp_site.db.quoting import ident

MINUTE = np.timedelta64(1, "m")
DAY = np.timedelta64(1, "D")


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
) -> Series:
    """The instrument's minute (or daily) bars in one query; with ``lookback_from``, only
    those from ``lookback`` bars before that time on (the windows reaching back from it).
    With ``known_at``, the bars as the system knew them then (corrections learnt later left
    out, deleted bars kept), so that a run can read again exactly what it read."""
    with connection.cursor() as cursor:
        cursor.execute(*query(instrument_id, daily, lookback_from, lookback, known_at))
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
) -> tuple[str, list]:
    """``load``'s statement and parameters."""
    source, source_params = _source(DailyBar if daily else MinuteBar, known_at)
    params: list = [*source_params, instrument_id]
    where = "instrument_id = %s"
    if lookback_from is not None:
        # The start is the bar `lookback` places before the time, found on the (instrument,
        # ts) key; with fewer bars than that before it, everything.
        where += (
            f" AND ts >= coalesce((SELECT ts FROM {source} WHERE instrument_id = %s AND ts < %s"
            " ORDER BY ts DESC OFFSET %s LIMIT 1), '-infinity')"
        )
        params += [*source_params, instrument_id, lookback_from, max(lookback - 1, 0)]
    # Times as microseconds since the epoch (exact in a float64 until the year 2255): numbers
    # convert to numpy at once, where a datetime per row costs more than the query.
    statement = (
        "SELECT (extract(epoch FROM ts) * 1000000)::int8, open, high, low, close,"
        f" coalesce(volume, 'NaN') FROM {source} WHERE {where} ORDER BY ts"
    )
    return statement, params


def _source(model: type[MinuteBar] | type[DailyBar], known_at: datetime | None) -> tuple[str, list]:
    """What to read bars from, and its parameters: the table, or the table as known at a time
    (``<table>_known_at(t)``, marketdata/sql/revisions/0009.sql: a SQL function PostgreSQL
    inlines, so the filters on instrument and time still reach the (instrument, ts) indexes of
    the table and of its revisions)."""
    table = model._meta.db_table
    if known_at is None:
        return ident(table), []
    return f"{ident(table + '_known_at')}(%s) AS bars", [known_at]


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
