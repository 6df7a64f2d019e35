from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from marketdata.models import Instrument
from qvp_site.db import partitions
from qvp_site.db.intervals import parse_interval

START = datetime(2024, 5, 13, tzinfo=UTC)  # a Monday


@pytest.fixture
def instrument(db):
    return Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def partitioned_for(db):
    """Create the partitions a test's rows need on the plain engine (TimescaleDB needs none)."""

    def cover(
        table: str, width: str, start=START - timedelta(days=400), end=START + timedelta(days=60)
    ):
        from qvp_site.db import engine

        if not engine.is_timescaledb():
            partitions.ensure_partitions(table, parse_interval(width), start, end)

    cover("marketdata_minutebar", "7 days")
    cover("marketdata_dailybar", "1 year")
    cover("marketdata_tick", "1 day", START - timedelta(days=2), START + timedelta(days=2))
    cover("marketdata_optionquote", "1 day", START - timedelta(days=2), START + timedelta(days=2))
    return cover
