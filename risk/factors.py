"""Factor loadings of instruments, computed from their daily bars, and accounts' exposures.

Over the lookback of daily bars up to the time, for every instrument with bars:

- market: beta of its daily returns to the benchmark's, on the days both have one;
- size: log of its average daily traded value (close * volume), the size measure the bars
  carry (there are no shares outstanding in the data);
- momentum: its compounded return over the lookback, leaving out the most recent
  ``MOMENTUM_SKIP`` days (short-term reversal), as in the usual 12-1 momentum;
- volatility: the annualised standard deviation of its daily returns.

Style loadings are cross-sectional z-scores across the instruments; the market loading is the
beta itself. An account's exposure to a factor is the sum of its holdings' loadings weighted
by value over NAV (the latest snapshot's, else the holdings' gross value). The bars are read as
known at ``known_at`` (None: the present).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from django.db import connection

from marketdata import adjusting
from risk.estimators import PERIODS_PER_YEAR
from risk.models import Factor
from risk.volatility import DEFAULT_ADJUSTMENT, checked_adjustment

MOMENTUM_SKIP = 21

DAILY_BARS_SQL = """
SELECT b.instrument_id, (b.ts AT TIME ZONE 'UTC')::date AS day, b.close, b.volume
FROM risk_dailybars(%(known_at)s::timestamptz, %(adjustment)s) b
JOIN marketdata_instrument i ON i.id = b.instrument_id AND i.active
WHERE b.ts > %(since)s AND b.ts <= %(as_of)s
"""
# Where the factors are computed apart (Citus, marketdata/adjusting.py): the same read of the
# table (or its body as known at a time), the factors given for the bars since the start.
GIVEN_FACTORS_DAILY_BARS_SQL = """
SELECT b.instrument_id, (b.ts AT TIME ZONE 'UTC')::date AS day, b.close, b.volume
FROM {bars} AS b
JOIN marketdata_instrument i ON i.id = b.instrument_id AND i.active
WHERE b.ts > %s AND b.ts <= %s
"""
DAILY_BAR_COLUMNS = ["instrument_id", "ts", "close", "volume"]


def _daily_bars_statement(
    since: datetime, as_of: datetime, known_at: datetime | None, adjustment: str
) -> tuple[str, Any]:
    """The read of the daily bars on this engine, and its parameters."""
    if not adjusting.factors_apart(connection):
        named = {"since": since, "as_of": as_of, "known_at": known_at, "adjustment": adjustment}
        return DAILY_BARS_SQL, named
    raw = adjusting.raw_bars_sql(connection, "marketdata_dailybar", known_at)
    bars, params = adjusting.adjusted_bars_sql(
        connection, DAILY_BAR_COLUMNS, raw, checked_adjustment(adjustment), known_at, since
    )
    return GIVEN_FACTORS_DAILY_BARS_SQL.format(bars=bars), [*params, since, as_of]


def daily_panel(
    as_of: datetime,
    lookback: int,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Closes and volumes, days x instruments, over about ``lookback`` trading days, adjusted
    for corporate actions by ``adjustment``."""
    since = as_of - timedelta(days=int(lookback * 365 / 252) + 7)
    statement, params = _daily_bars_statement(since, as_of, known_at, adjustment)
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        frame = pd.DataFrame(cursor.fetchall(), columns=["instrument", "day", "close", "volume"])
    # Bars without a volume (NULL) read as None: as floats they are NaN, and a size without
    # volumes is not computable rather than an error.
    frame = frame.astype({"close": float, "volume": float})
    if frame.empty:
        return frame, frame
    closes = frame.pivot(index="day", columns="instrument", values="close").sort_index()
    volumes = frame.pivot(index="day", columns="instrument", values="volume").sort_index()
    return closes.tail(lookback + 1), volumes.tail(lookback + 1)


def _zscore(values: pd.Series) -> pd.Series:
    sd = values.std(ddof=0)
    if not np.isfinite(sd) or sd == 0:
        return values * 0.0
    return (values - values.mean()) / sd


def _beta(returns: pd.DataFrame, bench: pd.Series) -> pd.Series:
    """Beta of each column to ``bench`` over the days both have a return (vectorised)."""
    both = returns.notna() & bench.notna().to_numpy()[:, None]
    x = returns.where(both)
    b = pd.DataFrame(np.repeat(bench.to_numpy()[:, None], returns.shape[1], axis=1))
    b = b.set_axis(returns.index).set_axis(returns.columns, axis=1).where(both)
    n = both.sum()
    cov = ((x - x.mean()) * (b - b.mean())).sum() / (n - 1)
    var = ((b - b.mean()) ** 2).sum() / (n - 1)
    return (cov / var.replace(0, np.nan)).where(n >= 3)


def loadings(
    as_of: datetime,
    benchmark_id: int | None,
    lookback: int = 252,
    *,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> pd.DataFrame:
    """Instruments x factors: the loadings as of ``as_of`` (NaN where not computable)."""
    closes, volumes = daily_panel(as_of, lookback, known_at, adjustment)
    if closes.empty:
        return pd.DataFrame(columns=Factor.values)
    returns = closes.pct_change(fill_method=None).iloc[1:]
    skip = MOMENTUM_SKIP if len(closes) > 2 * MOMENTUM_SKIP else 0
    upto = closes.iloc[: len(closes) - skip]
    momentum = upto.ffill().iloc[-1] / upto.bfill().iloc[0] - 1
    size = np.log((closes * volumes).mean().where(lambda v: v > 0))
    vol = returns.std(ddof=1) * np.sqrt(PERIODS_PER_YEAR["1d"])
    if benchmark_id is not None and benchmark_id in returns.columns:
        beta = _beta(returns, returns[benchmark_id])
    else:
        beta = pd.Series(np.nan, index=closes.columns)
    return pd.DataFrame(
        {
            Factor.MARKET: beta,
            Factor.SIZE: _zscore(size.dropna()).reindex(closes.columns),
            Factor.MOMENTUM: _zscore(momentum.dropna()).reindex(closes.columns),
            Factor.VOLATILITY: _zscore(vol.dropna()).reindex(closes.columns),
        }
    )


def exposures(values: pd.Series, nav: float, table: pd.DataFrame) -> dict[str, float]:
    """Exposure per factor of holdings worth ``values`` (by instrument id) in a NAV of ``nav``:
    factors none of whose holdings has a loading are left out."""
    if nav == 0 or values.empty:
        return {}
    held = table.reindex(values.index)
    weights = values / nav
    result = {}
    for factor in table.columns:  # four factors, not rows
        known = held[factor].notna()
        if known.any():
            result[str(factor)] = float((weights[known] * held[factor][known]).sum())
    return result
