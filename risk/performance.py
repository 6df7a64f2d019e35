"""Portfolio performance from an account's snapshots (as ``calculate_portfolio_metrics`` in SQL).

Daily returns are each snapshot's P&L (NAV change less deposits and withdrawals) over the
previous NAV, the latest ``lookback`` of them (the database's ``risk_snapshot_returns``).
Annualised by 252 trading days:

- total return: compounded, prod(1 + r) - 1;
- volatility: sample standard deviation * sqrt(252);
- Sharpe: mean excess return (over ``risk_free`` a year) / standard deviation * sqrt(252);
- Sortino: mean excess return / sqrt(mean(min(excess, 0)^2)) * sqrt(252);
- maximum drawdown: the largest fall of compounded wealth from its running peak (from 1);
- beta: cov(r, b) / var(b) against the benchmark's daily returns on the same days.

The benchmark's bars and the snapshots are read as known at ``known_at`` (None: the present):
a snapshot taken again since with other numbers is read as it stood then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.db import connection

from risk.volatility import DEFAULT_ADJUSTMENT

YEAR = 252


@dataclass(frozen=True)
class PortfolioPerformance:
    observations: int
    total_return: float | None
    volatility: float | None
    sharpe: float | None
    sortino: float | None
    max_drawdown: float | None
    beta: float | None


PAIRED_RETURNS_SQL = """
SELECT s.ret, b.ret
FROM risk_snapshot_returns(%(account)s, %(as_of)s, %(lookback)s, %(known_at)s::timestamptz) s
LEFT JOIN risk_daily_returns(
    ARRAY(SELECT instrument_id FROM marketdata_resolve_symbols(
              ARRAY[%(benchmark)s], %(as_of)s::date, %(known_at)s::timestamptz)
          WHERE instrument_id IS NOT NULL),
    %(as_of)s, %(lookback)s + 10, %(known_at)s::timestamptz, %(adjustment)s
) b USING (day)
ORDER BY s.ts
"""


def paired_returns(
    account_id: int,
    as_of: datetime,
    lookback: int,
    benchmark: str,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> np.ndarray:
    """The account's daily returns (column 0) and the benchmark's on the same days (column 1,
    NaN where it has none)."""
    params: dict[str, Any] = {
        "account": account_id,
        "as_of": as_of,
        "lookback": lookback,
        "benchmark": benchmark,
        "known_at": known_at,
        "adjustment": adjustment,
    }
    with connection.cursor() as cursor:
        cursor.execute(PAIRED_RETURNS_SQL, params)
        rows = cursor.fetchall()
    return np.array(rows, dtype=float).reshape(-1, 2)


def _ratio(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 or not np.isfinite(denominator) else numerator / denominator


def max_drawdown(returns: np.ndarray) -> float:
    wealth = np.cumprod(1 + returns)
    peak = np.maximum.accumulate(np.r_[1.0, wealth])[1:]
    return float(np.max(1 - wealth / peak, initial=0.0))


def beta(returns: np.ndarray, bench: np.ndarray) -> float | None:
    if len(returns) < 2:
        return None
    return _ratio(float(np.cov(returns, bench, ddof=1)[0, 1]), float(np.var(bench, ddof=1)))


def performance_of(
    returns: np.ndarray, bench: np.ndarray, risk_free: float = 0.0
) -> PortfolioPerformance:
    """Metrics of daily ``returns``; ``bench`` the benchmark's returns paired with some of them."""
    n = len(returns)
    if n < 2:
        total = float(np.prod(1 + returns) - 1) if n else None
        return PortfolioPerformance(
            n, total, None, None, None, max_drawdown(returns) if n else None, None
        )
    excess = returns - risk_free / YEAR
    sd = float(returns.std(ddof=1))
    downside = float(np.sqrt(np.mean(np.minimum(excess, 0) ** 2)))
    root = np.sqrt(YEAR)
    sharpe, sortino = _ratio(excess.mean(), sd), _ratio(excess.mean(), downside)
    return PortfolioPerformance(
        observations=n,
        total_return=float(np.prod(1 + returns) - 1),
        volatility=sd * root,
        sharpe=None if sharpe is None else float(sharpe * root),
        sortino=None if sortino is None else float(sortino * root),
        max_drawdown=max_drawdown(returns),
        beta=None if len(bench) < 2 else beta(bench[:, 0], bench[:, 1]),
    )


def portfolio_performance(
    account_id: int,
    as_of: datetime,
    *,
    lookback: int = YEAR,
    benchmark: str = "SPY",
    risk_free: float = 0.0,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> PortfolioPerformance:
    both = paired_returns(account_id, as_of, lookback, benchmark, known_at, adjustment)
    paired = both[~np.isnan(both[:, 1])]
    return performance_of(both[:, 0], paired, risk_free)
