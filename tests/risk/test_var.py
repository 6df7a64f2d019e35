"""VaR and CVaR: a portfolio computed by hand, the SQL function agreeing with Python."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import DataError, connection

from marketdata.models import Instrument
from risk.var import value_at_risk
from tests.fixtures.trading import fill, make_order
from tests.risk.conftest import closes_from, daily_bars, day, hold, instrument
from trading.books import bust_row
from trading.models import Execution

HAND_RETURNS = [-0.05, -0.02, 0.01, 0.03, 0.04]
HOUR = timedelta(hours=1)


@pytest.fixture
def hand_portfolio(account):
    """100 shares of one stock whose five daily returns are HAND_RETURNS."""
    stock = instrument("HAND")
    closes = closes_from(HAND_RETURNS, start=10.0)
    daily_bars(stock, closes)
    hold(account, stock, 100, "10")
    return account, 100 * closes[-1]


def sql_var(account_id, confidence, lookback, as_of):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT method, observations, portfolio_value, var, cvar"
            " FROM calculate_var(%s, %s, %s, %s) ORDER BY method",
            [account_id, confidence, lookback, as_of],
        )
        return {row[0]: row[1:] for row in cursor.fetchall()}


def test_historical_var_by_hand(hand_portfolio):
    account, value = hand_portfolio
    # P&L = value * r; the 20% quantile of five sorted returns sits 0.8 of the way from the
    # first (-0.05) to the second (-0.02): -0.026. Only -0.05 lies at or below it.
    (result,) = value_at_risk(account.id, confidence=0.8, lookback=5, as_of=day(5))
    assert result.observations == 5
    assert result.portfolio_value == pytest.approx(value)
    assert result.var == pytest.approx(0.026 * value)
    assert result.cvar == pytest.approx(0.05 * value)


def test_parametric_var_by_hand(hand_portfolio):
    account, value = hand_portfolio
    # mean 0.002; deviations -0.052 -0.022 0.008 0.028 0.038: sample variance 0.00548 / 4
    sd, z = np.sqrt(0.00548 / 4), 1.6448536269514722
    phi = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    (result,) = value_at_risk(
        account.id, methods=("parametric",), confidence=0.95, lookback=5, as_of=day(5)
    )
    assert result.var == pytest.approx(value * (z * sd - 0.002))
    assert result.cvar == pytest.approx(value * (sd * phi / 0.05 - 0.002))


def test_sql_function_agrees_on_the_hand_portfolio(hand_portfolio):
    account, value = hand_portfolio
    rows = sql_var(account.id, 0.8, 5, day(5))
    assert rows["historical"][0] == 5
    assert rows["historical"][1] == pytest.approx(value)
    assert rows["historical"][2:] == pytest.approx((0.026 * value, 0.05 * value))


def test_a_var_as_of_a_time_measures_the_book_of_that_time(hand_portfolio):
    """Holdings are the executions in force at the time, not today's positions: 100 more
    shares bought on day 4 are in the VaR as of day 5, not in that of day 4 (Python and SQL
    alike); a bust of them on day 5 takes them out again from then on."""
    account, value = hand_portfolio
    closes = closes_from(HAND_RETURNS, start=10.0)
    order = make_order(account, Instrument.objects.get(symbol="HAND"), quantity="100")
    bought = fill(order, Decimal(100), "10", at=day(4) + HOUR)
    (before,) = value_at_risk(account.id, confidence=0.8, lookback=5, as_of=day(4))
    assert before.portfolio_value == pytest.approx(100 * closes[4])
    assert sql_var(account.id, 0.8, 5, day(4))["historical"][1] == pytest.approx(100 * closes[4])
    (after,) = value_at_risk(account.id, confidence=0.8, lookback=5, as_of=day(5))
    assert after.portfolio_value == pytest.approx(2 * value)
    assert after.var == pytest.approx(2 * 0.026 * value)
    Execution.objects.create(
        **{**bust_row(bought, "bust-of-day-4", "booked twice"), "executed_at": day(5) + HOUR}
    )
    (busted,) = value_at_risk(account.id, confidence=0.8, lookback=5, as_of=day(6))
    assert busted.portfolio_value == pytest.approx(value)  # the last close is day 5's


def test_lookback_takes_the_latest_days(hand_portfolio):
    account, value = hand_portfolio
    # The last two returns are 0.03 and 0.04: the 5% quantile is 0.0305 (a gain).
    (result,) = value_at_risk(account.id, confidence=0.95, lookback=2, as_of=day(5))
    assert result.observations == 2
    assert result.var == pytest.approx(-0.0305 * value)
    # As of day 3 the returns known are the first three.
    (earlier,) = value_at_risk(account.id, confidence=0.8, lookback=5, as_of=day(3))
    assert earlier.observations == 3


@pytest.fixture
def two_stock_portfolio(account):
    """Long one stock and short another with correlated random returns over 120 days."""
    rng = np.random.default_rng(11)
    shocks = rng.multivariate_normal([0.0005, 0.0002], [[4e-4, 2e-4], [2e-4, 3e-4]], size=120)
    long_leg, short_leg = instrument("LONG"), instrument("SHRT")
    daily_bars(long_leg, closes_from(shocks[:, 0], 50.0))
    daily_bars(short_leg, closes_from(shocks[:, 1], 80.0))
    hold(account, long_leg, 300, "50")
    hold(account, short_leg, -150, "80")
    return account


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99])
@pytest.mark.parametrize("lookback", [20, 100])
def test_sql_function_agrees_with_python(two_stock_portfolio, confidence, lookback):
    account = two_stock_portfolio
    python = {
        r.method: r
        for r in value_at_risk(
            account.id,
            methods=("historical", "parametric"),
            confidence=confidence,
            lookback=lookback,
            as_of=day(120),
        )
    }
    sql = sql_var(account.id, confidence, lookback, day(120))
    for method in ("historical", "parametric"):
        observations, total, var, cvar = sql[method]
        assert observations == python[method].observations == lookback
        assert total == pytest.approx(python[method].portfolio_value, rel=1e-12)
        assert var == pytest.approx(python[method].var, rel=1e-9)
        assert cvar == pytest.approx(python[method].cvar, rel=1e-9)


def test_parametric_equals_the_covariance_formula(two_stock_portfolio):
    account = two_stock_portfolio
    (result,) = value_at_risk(
        account.id, methods=("parametric",), confidence=0.99, lookback=100, as_of=day(120)
    )
    closes = {}
    from marketdata.models import DailyBar

    for symbol in ("LONG", "SHRT"):
        closes[symbol] = np.array(
            DailyBar.objects.filter(instrument__symbol=symbol)
            .order_by("ts")
            .values_list("close", flat=True)
        )
    r = np.column_stack([c[1:] / c[:-1] - 1 for c in closes.values()])[-100:]
    w = np.array([300 * closes["LONG"][-1], -150 * closes["SHRT"][-1]])
    sigma = np.sqrt(w @ np.cov(r, rowvar=False) @ w)
    assert result.var == pytest.approx(2.3263478740408408 * sigma - w @ r.mean(axis=0))


def test_monte_carlo_is_reproducible_and_near_parametric(two_stock_portfolio):
    account = two_stock_portfolio
    kwargs = {"confidence": 0.95, "lookback": 100, "as_of": day(120)}
    parametric, mc = value_at_risk(account.id, methods=("parametric", "monte_carlo"), **kwargs)
    (again,) = value_at_risk(account.id, methods=("monte_carlo",), **kwargs)
    assert (mc.var, mc.cvar) == (again.var, again.cvar)
    assert mc.var == pytest.approx(parametric.var, rel=0.05)
    assert mc.cvar == pytest.approx(parametric.cvar, rel=0.05)
    (other_seed,) = value_at_risk(account.id, methods=("monte_carlo",), seed=1, **kwargs)
    assert other_seed.var != mc.var


def test_design_documents_form_covers_every_account(two_stock_portfolio):
    with connection.cursor() as cursor:
        cursor.execute("SELECT account_id, method FROM calculate_var(0.95, 252)")
        rows = cursor.fetchall()
    assert rows == [
        (two_stock_portfolio.id, "historical"),
        (two_stock_portfolio.id, "parametric"),
    ]


def test_no_holdings_means_no_var(account):
    (result,) = value_at_risk(account.id, as_of=day(10))
    assert (result.observations, result.portfolio_value, result.var) == (0, 0.0, None)


@pytest.mark.parametrize(
    ("confidence", "lookback", "message"),
    [(1.5, 10, "confidence must be between 0 and 1"), (0.95, 0, "lookback_days must be at least")],
)
def test_sql_function_refuses_bad_arguments(account, confidence, lookback, message):
    with pytest.raises(DataError, match=message):
        sql_var(account.id, confidence, lookback, day(1))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"methods": ("magic",)}, "method must be one of"),
        ({"confidence": 1.5}, "confidence must be between"),
        ({"lookback": 0}, "lookback must be at least"),
    ],
)
def test_python_refuses_bad_arguments(account, kwargs, message):
    with pytest.raises(ValueError, match=message):
        value_at_risk(account.id, **kwargs)
