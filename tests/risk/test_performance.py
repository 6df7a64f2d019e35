"""Portfolio metrics from snapshots: known values, and the SQL function agreeing with Python."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from django.db import connection

from risk.performance import portfolio_performance
from tests.risk.conftest import closes_from, daily_bars, day, instrument
from trading.models import PortfolioSnapshot

FIELDS = ("total_return", "volatility", "sharpe", "sortino", "max_drawdown", "beta")


def snapshots(account, navs, flows=None) -> None:
    """Daily snapshots with these NAVs; ``flows[k]`` deposited just before snapshot k."""
    flows = flows or {}
    rows = []
    for k, nav in enumerate(navs):
        nav = Decimal(str(round(nav, 8)))
        pnl = None if k == 0 else nav - rows[-1].nav - Decimal(str(flows.get(k, 0)))
        rows.append(
            PortfolioSnapshot(
                account=account,
                ts=day(k),
                currency="USD",
                cash=nav,
                market_value=0,
                nav=nav,
                gross_exposure=0,
                net_exposure=0,
                daily_pnl=pnl,
            )
        )
    PortfolioSnapshot.objects.bulk_create(rows)


def sql_metrics(account_id, lookback, benchmark, risk_free, as_of):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT observations, total_return, volatility, sharpe, sortino, max_drawdown, beta"
            " FROM calculate_portfolio_metrics(%s, %s, %s, %s, %s)",
            [account_id, lookback, benchmark, risk_free, as_of],
        )
        return cursor.fetchone()


def test_known_values(account):
    # Returns +10%, -20%, +25%: wealth 1.1, 0.88, 1.1; the drawdown is 0.22 / 1.1 = 20%.
    snapshots(account, [1000, 1100, 880, 1100])
    r = np.array([0.1, -0.2, 0.25])
    perf = portfolio_performance(account.id, day(3), lookback=10, benchmark="NONE")
    assert perf.observations == 3
    assert perf.total_return == pytest.approx(0.1)
    assert perf.max_drawdown == pytest.approx(0.2)
    sd = np.sqrt(((r - r.mean()) ** 2).sum() / 2)
    assert perf.volatility == pytest.approx(sd * np.sqrt(252))
    assert perf.sharpe == pytest.approx(r.mean() / sd * np.sqrt(252))
    assert perf.sortino == pytest.approx(r.mean() / np.sqrt(0.04 / 3) * np.sqrt(252))
    assert perf.beta is None  # no such benchmark


def test_deposits_are_not_returns(account):
    # NAV doubles on day 2 only because 1000 was deposited: the return that day is zero.
    snapshots(account, [1000, 1000, 2000], flows={2: 1000})
    perf = portfolio_performance(account.id, day(2), lookback=10, benchmark="NONE")
    assert perf.total_return == pytest.approx(0.0)


def test_beta_against_the_benchmark(account):
    bench = np.array([0.01, -0.02, 0.015, 0.005, -0.01, 0.02])
    daily_bars(instrument("SPY"), closes_from(bench, 500.0))
    # The account moves 1.5 times the benchmark plus a constant: beta is exactly 1.5.
    navs = 1e6 * np.cumprod(np.r_[1.0, 1 + 1.5 * bench + 0.001])
    snapshots(account, navs)
    perf = portfolio_performance(account.id, day(6), lookback=10, benchmark="SPY")
    assert perf.beta == pytest.approx(1.5, rel=1e-6)


def test_sql_function_agrees_with_python(account):
    rng = np.random.default_rng(5)
    bench = rng.normal(0.0004, 0.01, 200)
    daily_bars(instrument("SPY"), closes_from(bench, 500.0))
    navs = 1e6 * np.cumprod(np.r_[1.0, 1 + 0.8 * bench + rng.normal(0.0002, 0.006, 200)])
    snapshots(account, navs, flows={50: 20_000, 120: -10_000})
    for lookback, risk_free in ((30, 0.0), (150, 0.04)):
        perf = portfolio_performance(
            account.id, day(200), lookback=lookback, benchmark="SPY", risk_free=risk_free
        )
        row = sql_metrics(account.id, lookback, "SPY", risk_free, day(200))
        assert row[0] == perf.observations == lookback
        for name, value in zip(FIELDS, row[1:], strict=True):
            assert value == pytest.approx(getattr(perf, name), rel=1e-6, abs=1e-9), name


def test_no_argument_form_covers_every_account(account):
    snapshots(account, [1000, 1010, 1005])
    with connection.cursor() as cursor:
        cursor.execute("SELECT account_id, observations FROM calculate_portfolio_metrics()")
        assert cursor.fetchall() == [(account.id, 2)]
