"""The client against the live test server: a quant with an API token, a desk's account,
AAPL's minute and daily bars, and an agent, all committed (the server reads them from its
own connections)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from qvp_client import Client, RetryPolicy

from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.db import partitions
from qvp_site.tokens import create_token
from signals.models import Agent
from signals.systemlog import DatabaseLogHandler
from trading.models import Account

START = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)  # a Monday's open
MINUTES = 3 * 24 * 60 + 90  # three days and a half of minute bars, every minute
DAYS = 40  # daily bars before START
WRITES = ["add_signal", "add_minutebar", "change_minutebar", "add_ingest"]


def minute_bars(instrument: Instrument) -> list[MinuteBar]:
    """A bar a minute from START on, prices that never repeat (so that a row missed or
    doubled shows), a null volume now and then."""
    return [
        MinuteBar(
            instrument=instrument,
            ts=START + timedelta(minutes=n),
            open=100 + n / 100,
            high=101 + n / 100,
            low=99 + n / 100,
            close=100.5 + n / 100,
            volume=None if n % 97 == 0 else 1000 + n,
            vwap=100.25 + n / 100,
            trade_count=n % 50,
        )
        for n in range(MINUTES)
    ]


def daily_bars(instrument: Instrument) -> list[DailyBar]:
    """Daily closes that move up and down by day, so that VaR has returns to measure."""
    rows = []
    for n in range(DAYS):
        close = 150 + 5 * ((n * 7) % 5) - n / 4
        ts = (START - timedelta(days=DAYS - n)).replace(hour=0, minute=0)
        rows.append(
            DailyBar(
                instrument=instrument,
                ts=ts,
                open=close,
                high=close + 1,
                low=close - 1,
                close=close,
                volume=10_000,
            )
        )
    return rows


@pytest.fixture
def no_connection_left(transactional_db) -> Iterator[None]:
    """After each test, no connection of the live server's left on the test database: the
    log writer's records written, then any idle one closed. (A request refused 400 leaves
    its thread's persistent connection idle after its ROLLBACK until the server stops,
    which is after the run drops the test database: the drop would fail, and the database
    be left behind.) The server's connections check their health before use, so one closed
    here is opened again by the next request."""
    yield
    for handler in logging.getLogger().handlers:
        if isinstance(handler, DatabaseLogHandler):
            handler.flush()
    others = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    deadline = time.monotonic() + 1
    with connection.cursor() as cursor:
        cursor.execute(others)
        while cursor.fetchall() and time.monotonic() < deadline:
            time.sleep(0.05)
            cursor.execute(others)
        cursor.execute(f"SELECT pg_terminate_backend(pid) FROM ({others}) AS left_open")


@pytest.fixture
def world(transactional_db, no_connection_left) -> dict:
    """The quant, their desk's account, AAPL with its bars, an agent (committed)."""
    for table in ("marketdata_minutebar", "marketdata_dailybar", "signals_signal"):
        partitions.prepare_load(table, START - timedelta(days=DAYS + 2), START + timedelta(days=8))
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    MinuteBar.objects.bulk_create(minute_bars(aapl))
    DailyBar.objects.bulk_create(daily_bars(aapl))
    Agent.objects.create(name="momentum_agent", kind="momentum")
    desk = Group.objects.create(name="desk-quant")
    account = Account.objects.create(name="quant-book", base_currency="USD")
    account.groups.add(desk)
    quant = get_user_model().objects.create_user("quant", password="pw-quant-1234")
    quant.groups.add(desk)
    quant.user_permissions.add(*Permission.objects.filter(codename__in=WRITES))
    _, key = create_token(quant, "client tests")
    return {"aapl": aapl, "account": account, "quant": quant, "key": key}


@pytest.fixture
def qvp(live_server, world) -> Iterator[Client]:
    """The client, as a quant would make it (retries waiting no time in tests)."""
    with Client(live_server.url, world["key"], retry=RetryPolicy(backoff=0)) as client:
        yield client


@pytest.fixture
def api(live_server, world) -> Iterator[requests.Session]:
    """The JSON API by hand, with the same token: what the client's answers are held to."""
    session = requests.Session()
    session.headers["Authorization"] = f"Token {world['key']}"
    session.base = f"{live_server.url}/api/v1/"  # type: ignore[attr-defined]
    yield session
    session.close()


def json_rows(api: requests.Session, path: str, params: dict) -> list[dict]:
    """Every row of a JSON list, page after page."""
    url, rows = f"{api.base}{path}", []  # type: ignore[attr-defined]
    query: dict | None = {**params, "page_size": 5000}
    while url:
        response = api.get(url, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["results"])
        url, query = page["next"], None
    return rows
