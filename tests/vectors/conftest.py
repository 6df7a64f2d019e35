"""Demo bars in the test database, and embeddings built from them."""

from __future__ import annotations

from datetime import date

import pytest
from django.db import connection

from marketdata import demo
from marketdata.models import Instrument
from qvp_site.db import engine

END = date(2024, 5, 17)  # a Friday


def load_demo(symbols: tuple[str, ...], days: int) -> dict[str, Instrument]:
    """Demo minute and daily bars for ``symbols`` over ``days`` trading days ending END."""
    loaded = {}
    for symbol in symbols:
        spec = demo.DEMO_SYMBOLS[symbol]
        minute = demo.generate(spec, END, days, seed=7)
        daily = demo.daily_from_minutes(minute)
        demo.prepare_partitions(connection, minute, daily)
        instrument = Instrument.objects.create(
            symbol=symbol, asset_class=spec.asset_class, currency=spec.currency
        )
        demo.load(connection, instrument.id, minute, daily)
        loaded[symbol] = instrument
    return loaded


@pytest.fixture
def week_of_bars(db) -> dict[str, Instrument]:
    """Seven sessions of AAPL and SPY: 26 windows a session after the first."""
    return load_demo(("AAPL", "SPY"), 7)


@pytest.fixture
def months_of_bars(db) -> dict[str, Instrument]:
    """Eighty sessions of SPY and NVDA: enough daily history for regime signatures."""
    return load_demo(("SPY", "NVDA"), 80)


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("quant")


@pytest.fixture
def api(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user)
    return client


def plan(sql: str, params: list, k: int) -> str:
    """EXPLAIN of a search statement, run the way searches run (vectors.search.scanned)."""
    from vectors import search

    if engine.is_citus():  # every shard's plan: the one Citus shows may hold none of the rows
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL citus.explain_all_tasks = on")
    _, rows = search.scanned("EXPLAIN " + sql, params, k)
    return "\n".join(row[0] for row in rows)
