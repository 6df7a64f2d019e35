"""Volatility estimates of instruments from their bars, stored as a time series.

Each instrument's recent bars are read in one statement, every estimator runs over them as a
whole array (``risk.estimators``), and the estimates of the newest ``history`` bars are
upserted in one statement per instrument, so re-running restates rather than duplicates. The
bars are read as known at ``known_at`` (None: the present) and adjusted for corporate actions
by ``adjustment`` (``marketdata_<table>_adjusted``, marketdata/sql/actions/0012.sql): by default
for everything a holder received (``total_return``), so that a split's ex-date is not a day the
price halved and a dividend's not a fall of the dividend.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection

from marketdata import adjusting
from marketdata.models import Instrument
from marketdata.presence import instruments_with_bars
from marketdata.querysets import ADJUSTMENTS
from qvp_site.db import partitions
from qvp_site.per_instrument import InstrumentRun
from risk.estimators import ESTIMATORS, OHLC, PERIODS_PER_YEAR

TABLE = "risk_volatilityestimate"
# Bars read before the first estimate wanted: EWMA depends on where it starts, and after 250
# bars its start weighs 0.94^250 (about 2e-7) in the estimate.
WARM_UP = 250
BAR_TABLES = {"1m": "marketdata_minutebar", "1d": "marketdata_dailybar"}
# The same tables as known at a time (NULL: the present), adjusted for corporate actions: the
# functions' arguments are the adjustment and the time.
BAR_SOURCES = {"1m": "marketdata_minutebar_adjusted", "1d": "marketdata_dailybar_adjusted"}
# Returns and volatility are of what a holder earned: continuous across splits and dividends.
DEFAULT_ADJUSTMENT = "total_return"

# The first of each instrument's newest bars is found as traded, on the (instrument, ts) key:
# the adjusted read then adjusts those bars alone, not every bar of the instrument's history
# (its join to the factors leaves the bars unordered, so a LIMIT alone would sort them all).
RECENT_BARS_SQL = """
SELECT ids.id, b.ts, b.open, b.high, b.low, b.close
FROM unnest(%(ids)s::bigint[]) AS ids(id)
CROSS JOIN LATERAL (
    SELECT coalesce((
        SELECT ts FROM {raw} WHERE instrument_id = ids.id AND ts <= %(as_of)s
        ORDER BY ts DESC OFFSET %(bars)s - 1 LIMIT 1
    ), '-infinity') AS first
) AS since
CROSS JOIN LATERAL (
    SELECT ts, open, high, low, close
    FROM {source}(%(adjustment)s::text, %(known_at)s::timestamptz)
    WHERE instrument_id = ids.id AND ts >= since.first AND ts <= %(as_of)s
    ORDER BY ts DESC LIMIT %(bars)s
) AS b
ORDER BY ids.id, b.ts
"""

# Where the factors are computed apart (Citus, marketdata/adjusting.py), which plans no lateral
# lookup from a list of ids: each instrument's newest bars looked up from its key, distributed
# beside its bars, on its shard, as traded; the factors are applied to those bars alone.
KEYED_RECENT_BARS_SQL = """
(SELECT k.id AS instrument_id, b.ts, b.open, b.high, b.low, b.close
 FROM marketdata_instrument_key k
 CROSS JOIN LATERAL (
    SELECT r.ts, r.open, r.high, r.low, r.close FROM {raw} r
    WHERE r.instrument_id = k.id AND r.ts <= %s
    ORDER BY r.ts DESC LIMIT %s
 ) AS b
 WHERE k.id = ANY(%s::bigint[]))
"""
OHLC_COLUMNS = ["instrument_id", "ts", "open", "high", "low", "close"]

UPSERT_SQL = """
INSERT INTO risk_volatilityestimate (instrument_id, ts, timeframe, estimator, "window", value)
SELECT %(instrument)s, ts, %(timeframe)s, estimator, %(window)s, value
FROM unnest(%(ts)s::timestamptz[], %(estimator)s::text[], %(value)s::float8[])
    AS e(ts, estimator, value)
ON CONFLICT (instrument_id, timeframe, estimator, "window", ts)
DO UPDATE SET value = EXCLUDED.value
"""


def checked_adjustment(adjustment: str) -> str:
    """``adjustment`` if it is one the bars can be read by, else a ValueError naming it (the
    database's reads would take an unknown one for "raw" without a word)."""
    if adjustment not in ADJUSTMENTS:
        raise ValueError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}, not {adjustment!r}")
    return adjustment


def _active_instruments(
    timeframe: str, as_of: datetime, known_at: datetime | None
) -> list[tuple[int, str, bool]]:
    """Every active instrument: id, symbol, and whether it has a bar at or before ``as_of``
    (whether it has one does not depend on the adjustment: read as traded)."""
    active = list(Instrument.objects.filter(active=True).order_by("id").values_list("id", "symbol"))
    with_bars = instruments_with_bars(
        BAR_TABLES[timeframe], [id_ for id_, _ in active], until=as_of, known_at=known_at
    )
    return [(id_, symbol, id_ in with_bars) for id_, symbol in active]


def _recent_bars_statement(
    ids: list[int],
    timeframe: str,
    as_of: datetime,
    bars: int,
    known_at: datetime | None,
    adjustment: str,
) -> tuple[str, Any]:
    """The read of the instruments' newest bars on this engine, and its parameters."""
    if not adjusting.factors_apart(connection):
        named = {
            "ids": ids,
            "as_of": as_of,
            "bars": bars,
            "known_at": known_at,
            "adjustment": adjustment,
        }
        # As traded: the table itself, or as known at a time (marketdata/sql/revisions/0009.sql).
        raw = BAR_TABLES[timeframe] + ("" if known_at is None else "_known_at(%(known_at)s)")
        return RECENT_BARS_SQL.format(raw=raw, source=BAR_SOURCES[timeframe]), named
    raw, raw_params = adjusting.raw_bars_sql(connection, BAR_TABLES[timeframe], known_at)
    keyed = (KEYED_RECENT_BARS_SQL.format(raw=raw), [*raw_params, as_of, bars, ids])
    if adjustment != "raw":
        keyed = adjusting.adjusted_bars_sql(
            connection, OHLC_COLUMNS, keyed, adjustment, known_at, instruments=ids
        )
    sql, params = keyed
    return f"SELECT * FROM {sql} AS recent ORDER BY instrument_id, ts", params


def recent_bars(
    ids: list[int],
    timeframe: str,
    as_of: datetime,
    bars: int,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> dict[int, dict]:
    """The newest ``bars`` bars of each instrument, oldest first, as arrays, adjusted by
    ``adjustment``."""
    statement, params = _recent_bars_statement(
        ids, timeframe, as_of, bars, known_at, checked_adjustment(adjustment)
    )
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        rows = cursor.fetchall()
    if not rows:
        return {}
    instrument = np.array([r[0] for r in rows])
    columns = list(zip(*rows, strict=True))
    ts = np.array(columns[1], dtype=object)
    prices = np.array(columns[2:], dtype=float)  # open, high, low, close
    starts = np.flatnonzero(np.r_[True, instrument[1:] != instrument[:-1]])
    ends = np.r_[starts[1:], len(rows)]
    return {
        int(instrument[a]): {"ts": ts[a:b], "ohlc": OHLC(*prices[:, a:b])}
        for a, b in zip(starts, ends, strict=True)
    }


def estimate(ohlc: OHLC, window: int, periods_per_year: float) -> dict[str, np.ndarray]:
    return {name: fn(ohlc, window, periods_per_year) for name, fn in ESTIMATORS.items()}


def compute_volatility(
    as_of: datetime,
    *,
    instruments: Iterable[int] | None = None,
    timeframe: str = "1d",
    window: int = 20,
    history: int = 1,
    run: InstrumentRun | None = None,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> int:
    """Estimate every instrument's volatility by each estimator over ``window`` bars, for its
    newest ``history`` bars at or before ``as_of``; returns the estimates written. In ``run``,
    an instrument without bars enough is a skip, and one that fails is recorded while the
    others are stored. The bars are read as known at ``known_at`` (None: the present),
    adjusted for corporate actions by ``adjustment``."""
    if timeframe not in BAR_TABLES:
        raise ValueError(f"timeframe must be one of {', '.join(BAR_TABLES)}")
    if window < 2 or history < 1:
        raise ValueError("window must be at least 2 and history at least 1")
    checked_adjustment(adjustment)
    run = run if run is not None else InstrumentRun("volatility", isolated=False)
    kind = "daily" if timeframe == "1d" else "minute"
    symbols = _symbols(instruments, timeframe, as_of, run, kind, known_at)
    bars_wanted = window + history + WARM_UP
    series = recent_bars(sorted(symbols), timeframe, as_of, bars_wanted, known_at, adjustment)
    for missing in sorted(set(symbols) - set(series)):
        run.skip(symbols[missing], f"no {kind} bars")
    if not series:
        return 0
    tails = [bars["ts"][-history:] for bars in series.values()]
    partitions.prepare_load(TABLE, min(t[0] for t in tails), max(t[-1] for t in tails))
    written = 0
    for instrument, bars in series.items():
        with run.each(symbols[instrument]):
            stored = _store(instrument, bars, timeframe, window, history)
            if not stored:
                run.skip(
                    symbols[instrument],
                    f"{len(bars['ts'])} {kind} bar(s): too few for a {window}-bar estimate",
                )
            written += stored
    return written


def _symbols(
    instruments: Iterable[int] | None,
    timeframe: str,
    as_of: datetime,
    run: InstrumentRun,
    kind: str,
    known_at: datetime | None,
) -> dict[int, str]:
    """The instruments to estimate, by id with their symbols; active ones without bars by
    ``as_of`` are skips of ``run`` when every instrument is asked for."""
    if instruments is not None:
        wanted = sorted({int(i) for i in instruments})
        return dict(Instrument.objects.filter(id__in=wanted).values_list("id", "symbol"))
    found = {}
    for id_, symbol, has_bars in _active_instruments(timeframe, as_of, known_at):
        if has_bars:
            found[id_] = symbol
        else:
            run.skip(symbol, f"no {kind} bars")
    return found


def _store(instrument: int, bars: dict, timeframe: str, window: int, history: int) -> int:
    estimates = estimate(bars["ohlc"], window, PERIODS_PER_YEAR[timeframe])
    ts = bars["ts"][-history:]
    names = np.repeat(list(estimates), len(ts))
    values = np.concatenate([v[-history:] for v in estimates.values()])
    stamps = np.tile(ts, len(estimates))
    known = ~np.isnan(values)
    if not known.any():
        return 0
    with connection.cursor() as cursor:
        cursor.execute(
            UPSERT_SQL,
            {
                "instrument": instrument,
                "timeframe": timeframe,
                "window": window,
                "ts": list(stamps[known]),
                "estimator": list(names[known]),
                "value": values[known].tolist(),
            },
        )
        return cursor.rowcount
