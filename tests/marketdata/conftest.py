from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qvp_site.db import partitions

START = datetime(2024, 5, 13, tzinfo=UTC)  # a Monday


@pytest.fixture
def partitioned_for(db):
    """The partitions the tests' rows need around START (on the plain engine; none needed on
    TimescaleDB), made the way a load makes them."""
    for table in ("marketdata_minutebar", "marketdata_dailybar"):
        partitions.prepare_load(table, START - timedelta(days=14), START + timedelta(days=14))
    for table in ("marketdata_tick", "marketdata_optionquote"):
        partitions.prepare_load(table, START - timedelta(days=2), START + timedelta(days=2))
