from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from marketdata.models import DailyBar, Instrument
from qvp_site.db import partitions
from risk.models import FactorExposure, RiskAlert, RiskLimit, RiskMetric, VolatilityEstimate
from tests.fixtures.trading import fill, make_order
from trading.models import Account

# Daily bars at midnight UTC from START on, one per calendar day (the SQL keys days by date).
START = datetime(2024, 1, 1, tzinfo=UTC)
TABLES = (
    "marketdata_minutebar",
    "marketdata_dailybar",
    "trading_portfoliosnapshot",
    "risk_volatilityestimate",
    "risk_riskmetric",
    "risk_factorexposure",
)


@pytest.fixture(autouse=True)
def _partitions(db):
    """The partitions the tests' rows need (plain engine; none on TimescaleDB)."""
    for table in TABLES:
        partitions.prepare_load(table, START - timedelta(days=5), START + timedelta(days=400))


def day(k: int) -> datetime:
    return START + timedelta(days=k)


def daily_bars(instrument: Instrument, closes, volumes=None, highs=None, lows=None) -> None:
    closes = np.asarray(closes, dtype=float)
    highs = closes if highs is None else highs
    lows = closes if lows is None else lows
    DailyBar.objects.bulk_create(
        DailyBar(
            instrument=instrument,
            ts=day(k),
            open=float(c),
            high=float(h),
            low=float(lo),
            close=float(c),
            volume=None if volumes is None else float(volumes[k]),
        )
        for k, (c, h, lo) in enumerate(zip(closes, highs, lows, strict=True))
    )


def closes_from(returns, start: float = 100.0) -> np.ndarray:
    return start * np.cumprod(np.r_[1.0, 1.0 + np.asarray(returns, dtype=float)])


def instrument(symbol: str, **extra) -> Instrument:
    return Instrument.objects.create(
        symbol=symbol, asset_class=extra.pop("asset_class", "equity"), **extra
    )


def hold(account: Account, instrument: Instrument, quantity, price) -> None:
    """Book a position of ``quantity`` at ``price`` through an order and its fill."""
    quantity = Decimal(str(quantity))
    side = "buy" if quantity > 0 else "sell"
    order = make_order(account, instrument, side=side, quantity=str(abs(quantity)))
    fill(order, quantity, price, at=START)


@pytest.fixture
def account(db) -> Account:
    return Account.objects.create(name="risk-book", base_currency="USD")


@pytest.fixture
def books(desks):
    """For each of alpha and beta: a position, a metric, an exposure, a limit and its alert."""
    stock = instrument("HAND")
    daily_bars(stock, closes_from([-0.05, -0.02, 0.01, 0.03, 0.04], 10.0))
    for name in ("alpha", "beta"):
        account = desks[name]
        hold(account, stock, 100, "10")
        RiskMetric.objects.create(account=account, ts=day(5), metric="gross_exposure", value=1e3)
        FactorExposure.objects.create(account=account, ts=day(5), factor="market", exposure=1.1)
        limit = RiskLimit.objects.create(
            account=account, metric="gross_exposure", threshold=10, severity="critical"
        )
        desks[f"{name}_alert"] = RiskAlert.objects.create(
            limit=limit,
            account=account,
            metric=limit.metric,
            value=1e3,
            threshold=10,
            direction="above",
            severity="critical",
            measured_at=day(5),
        )
    VolatilityEstimate.objects.create(
        instrument=stock, ts=day(5), estimator="parkinson", window=20, value=0.2
    )
    return desks
