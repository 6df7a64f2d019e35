"""Value at risk and expected shortfall (CVaR) of an account over one day.

Holdings are what the account held at the time (the executions in force then, not today's
positions), valued at the latest close as of the time times the instrument's multiplier: the
database's ``risk_holdings``, which ``calculate_var`` in SQL reads as well. Returns are the
holdings' daily simple returns over the lookback, on the days all of them have one (the
database's ``risk_daily_returns``, read by ``calculate_var`` too). The P&L series is what
those holdings would have made on each of those days. Losses are positive numbers.

Both reads take a knowledge time ``known_at`` (None: the present): the bars as the system knew
them then and the executions booked by then, so a VaR of a stored run can be repeated exactly.
Returns are read adjusted for corporate actions by ``adjustment`` (by default
``total_return``: a split's ex-date is the day's move, not a fall of half, and a dividend's
counts the cash); holdings are valued as traded.

- historical: the (1 - confidence) quantile of that P&L, interpolated linearly (as SQL's
  ``percentile_cont``); CVaR the mean of the P&L at or below it.
- parametric (variance-covariance): normal P&L with mean w'mu and standard deviation
  sqrt(w' S w), S the returns' sample covariance.
- Monte Carlo: returns drawn from the multivariate normal with the sample mean and covariance,
  from a fixed seed (reproducible), then as historical over the draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection
from django.utils import timezone
from scipy.stats import norm

from risk.volatility import DEFAULT_ADJUSTMENT, checked_adjustment

METHODS = ("historical", "parametric", "monte_carlo")
MC_DRAWS = 20_000
MC_SEED = 20240513


@dataclass(frozen=True)
class Holdings:
    instrument_ids: np.ndarray  # int64
    values: np.ndarray  # float, in the account's currency

    @property
    def total(self) -> float:
        return float(self.values.sum())


@dataclass(frozen=True)
class VaRResult:
    method: str
    confidence: float
    lookback: int
    observations: int
    portfolio_value: float
    var: float | None  # None when there are too few observations
    cvar: float | None


def holdings(account_id: int, as_of: datetime, known_at: datetime | None = None) -> Holdings:
    """What the account held at ``as_of``, valued at the prices of then (unpriced holdings
    left out), as known at ``known_at``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT instrument_id, value FROM risk_holdings(%s, %s, %s)",
            [account_id, as_of, known_at],
        )
        rows = cursor.fetchall()
    ids = np.array([i for i, _ in rows], dtype=np.int64)
    return Holdings(ids, np.array([v for _, v in rows], dtype=float))


def daily_returns(
    instrument_ids: np.ndarray,
    as_of: datetime,
    lookback: int,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> np.ndarray:
    """Days x instruments matrix of daily simple returns (columns in ``instrument_ids``' order),
    from the bars as known at ``known_at``, adjusted by ``adjustment``."""
    checked_adjustment(adjustment)
    if not len(instrument_ids):
        return np.empty((0, 0))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT day, instrument_id, ret"
            " FROM risk_daily_returns(%s::bigint[], %s, %s, %s::timestamptz, %s::text)",
            [list(map(int, instrument_ids)), as_of, lookback, known_at, adjustment],
        )
        rows = cursor.fetchall()
    if not rows:
        return np.empty((0, len(instrument_ids)))
    frame = pd.DataFrame(rows, columns=["day", "instrument", "ret"])
    matrix = frame.pivot(index="day", columns="instrument", values="ret").sort_index()
    return matrix.reindex(columns=[int(i) for i in instrument_ids]).to_numpy(dtype=float)


def historical(pnl: np.ndarray, confidence: float) -> tuple[float, float]:
    q = float(np.quantile(pnl, 1 - confidence))  # linear, as percentile_cont
    return -q, -float(pnl[pnl <= q].mean())


def parametric(mu: float, sigma: float, confidence: float) -> tuple[float, float]:
    z = norm.ppf(confidence)
    return z * sigma - mu, sigma * norm.pdf(z) / (1 - confidence) - mu


def monte_carlo(
    returns: np.ndarray, values: np.ndarray, confidence: float, draws: int, seed: int
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    cov = np.atleast_2d(np.cov(returns, rowvar=False, ddof=1))
    simulated = rng.multivariate_normal(returns.mean(axis=0), cov, size=draws, method="cholesky")
    return historical(simulated @ values, confidence)


def validate(method: str, confidence: float, lookback: int) -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}")
    if not 0 < confidence < 1:
        raise ValueError("confidence must be between 0 and 1 (exclusive)")
    if lookback < 2:
        raise ValueError("lookback must be at least 2 days")


def value_at_risk(
    account_id: int,
    *,
    methods: tuple[str, ...] = ("historical",),
    confidence: float = 0.95,
    lookback: int = 252,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    draws: int = MC_DRAWS,
    seed: int = MC_SEED,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> list[VaRResult]:
    """VaR and CVaR of an account by each of ``methods`` at ``confidence`` over ``lookback``
    days, as of ``as_of`` (default now) and as known at ``known_at`` (default: the present),
    the returns adjusted by ``adjustment``; holdings and returns are read once for all."""
    for method in methods:
        validate(method, confidence, lookback)
    checked_adjustment(adjustment)
    as_of = as_of or timezone.now()
    held = holdings(account_id, as_of, known_at)
    returns = daily_returns(held.instrument_ids, as_of, lookback, known_at, adjustment)
    return [
        var_from(returns, held, method, confidence, lookback, draws, seed) for method in methods
    ]


def var_from(
    returns: np.ndarray,
    held: Holdings,
    method: str,
    confidence: float,
    lookback: int,
    draws: int = MC_DRAWS,
    seed: int = MC_SEED,
) -> VaRResult:
    """One method over a days x instruments ``returns`` matrix of ``held``'s instruments."""
    n = len(returns)
    var = cvar = None
    if n >= 2:
        pnl = returns @ held.values
        if method == "historical":
            var, cvar = historical(pnl, confidence)
        elif method == "parametric":
            var, cvar = parametric(float(pnl.mean()), float(pnl.std(ddof=1)), confidence)
        else:
            var, cvar = monte_carlo(returns, held.values, confidence, draws, seed)
    return VaRResult(method, confidence, lookback, n, held.total, var, cvar)
