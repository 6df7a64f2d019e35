from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.models import Instrument, MinuteBar
from qvp_site.db import partitions
from signals.models import Agent

START = datetime(2024, 5, 13, tzinfo=UTC)  # a Monday

TABLES = (
    "marketdata_minutebar",
    "marketdata_dailybar",
    "signals_signal",
    "signals_fusedsignal",
    "signals_newsarticle",
    "signals_socialsentiment",
    "signals_alternativedata",
    "signals_agentmetric",
)


@pytest.fixture
def partitioned(db):
    """The partitions the tests' rows need around START (plain engine; none on TimescaleDB)."""
    for table in TABLES:
        partitions.prepare_load(table, START - timedelta(days=45), START + timedelta(days=14))


@pytest.fixture
def aapl(db):
    return Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def msft(db):
    return Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")


@pytest.fixture
def momentum(db):
    return Agent.objects.create(name="momentum_agent", kind="momentum")


@pytest.fixture
def reversion(db):
    return Agent.objects.create(name="reversion_agent", kind="mean_reversion")


def bar(instrument, ts, close) -> MinuteBar:
    return MinuteBar.objects.create(
        instrument=instrument, ts=ts, open=close, high=close, low=close, close=close
    )
