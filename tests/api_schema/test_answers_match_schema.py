"""Every answer of the API is the one its OpenAPI schema documents, successful ones included.

The fuzz test (tests/test_api_fuzz.py) sends mostly refused requests to a nearly empty
database: a list that answers no row checks no row's schema. Here a database holds at least one
row of every resource, a superuser (who sees every account, and reads the audit log) sends
each operation of the schema one valid request, and schemathesis checks the answer: a 2xx,
documented, with the documented content type and body. Every list answers at least one row,
and a list in pages at least two. Then what else a client meets: answers of another shape
(another timeframe, a batch, a symbol with no price), second pages (each list's: a row on
each), each write sent again (a retry: 200, 404 or 409), a null body.

The operations are the schema's, so a new one is a new test: it fails until a request for it
is written in ``READS`` (GET) or ``WRITES`` (the rest), which the failure names. The bulk
formats' suffixed reads (``bars.arrow``) are tests/bulk's: they read on a connection of their
own, which cannot see this test's uncommitted rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connection, transaction
from django.utils import timezone
from drf_spectacular.generators import SchemaGenerator
from schemathesis import checks

from marketdata.models import (
    CorporateAction,
    DailyBar,
    DailyBarRevision,
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    OptionQuote,
    Tick,
    TickRevision,
)
from qvp_site.acting import acting_as
from qvp_site.api.bulk.formats import FORMATS
from qvp_site.db import partitions
from qvp_site.models import AuditEntry, TimeSeriesTable
from qvp_site.tokens import create_token
from risk.models import FactorExposure, RiskAlert, RiskLimit, RiskMetric, VolatilityEstimate
from signals.models import (
    Agent,
    AgentMetric,
    AlternativeData,
    FusedSignal,
    NewsArticle,
    Signal,
    SignalPerformance,
    SocialSentiment,
)
from tests.clients import client_of
from tests.fixtures.trading import fill, make_order
from tests.fixtures.trading_api import an_order, backtest, execution, iso
from tests.vectors.conftest import END, load_demo
from trading import tca
from trading.models import (
    Account,
    BacktestRun,
    CashEntry,
    ExecutionCost,
    PortfolioSnapshot,
    Position,
)
from trading.snapshots import take_snapshots
from vectors import embeddings, patterns, regimes
from vectors.models import FeatureEmbedding

RAW_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(RAW_SCHEMA)
schema.app = WSGIHandler()
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
WRITE_METHODS = ("post", "put", "patch", "delete")


def _operations(methods: tuple[str, ...]) -> list[tuple[str, str]]:
    """(METHOD, path) of the schema's operations of ``methods``, but the bulk formats' own."""
    return sorted(
        (method.upper(), path)
        for path, item in RAW_SCHEMA["paths"].items()
        for method in item
        if method in methods and not any(path.endswith(f".{name}") for name in FORMATS)
    )


# The demo's SPY: 80 sessions of minute and daily bars up to END (enough for a regime
# signature and a market state), built into embeddings, regimes and strategy patterns.
SYMBOL = "SPY"
SESSIONS = 80
T0 = datetime(2024, 5, 13, 14, 30, tzinfo=UTC)  # a session of the demo's, the other rows' time
T = T0 + timedelta(minutes=5)


@dataclass
class World:
    """The seeded rows that requests name (path ids, bodies)."""

    user: Any
    token: str
    spy: Instrument
    account: Account
    order: Any
    booked: Any
    agent: Agent
    limit: RiskLimit
    alert: RiskAlert
    ids: dict[str, int]


# --- the seed ---------------------------------------------------------------------------------


def _partitions() -> None:
    """Every time-series table's partitions over the seeded times (none on TimescaleDB)."""
    start = datetime.combine(END, datetime.min.time(), UTC) - timedelta(days=2 * SESSIONS)
    for table in TimeSeriesTable.objects.values_list("table_name", flat=True):
        partitions.prepare_load(table, start, T0 + timedelta(days=30))


def _vectors(spy: Instrument) -> None:
    """Embeddings, regimes and strategy patterns (with their backtest runs) from the bars."""
    embeddings.build([spy])
    regimes.build([spy])
    patterns.build([spy])


def _market_data(spy: Instrument, user: Any, ids: dict[str, int]) -> None:
    """Listings, corporate actions, ticks, option quotes and two revisions of each kind."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'cash_dividend', '2024-02-09', NULL, 0.24, 'USD',"
            " NULL, NULL, NULL, NULL)",
            [spy.pk],
        )
    _listing_and_actions(user, ids)
    _spy_listing(spy, user)
    # Each bar's first two as they stood before a revision, known until T0 (their vwap left
    # null): two rows, so that the list is read in pages. The second names the user who acted.
    for model, revised in ((MinuteBar, MinuteBarRevision), (DailyBar, DailyBarRevision)):
        bars = list(model.objects.filter(instrument=spy).order_by("ts")[:2])
        assert len(bars) == 2
        for bar, by in zip(bars, (None, user), strict=True):
            values = {f: getattr(bar, f) for f in ("ts", "open", "high", "low", "close", "volume")}
            revised.objects.create(
                instrument=spy,
                row_id=bar.pk,
                **values,
                known_from=bar.ts,
                known_until=T0,
                change="revised",
                actor="seed",
                user=by,
            )
    _ticks_and_options(spy)
    ids["embedding"] = FeatureEmbedding.objects.values_list("id", flat=True).first() or 0


def _ticks_and_options(spy: Instrument) -> None:
    """A trade and a quote, each with a revision; a call quoted without its Greeks (null) and
    a put with them."""
    revision = {"known_until": T0, "change": "revised", "actor": "seed"}
    tick = Tick.objects.create(instrument=spy, ts=T0, sequence=1, price=520.1, size=100)
    quote = Tick.objects.create(
        instrument=spy, ts=T0, sequence=2, kind="quote", bid=520.0, ask=520.2, bid_size=3
    )
    TickRevision.objects.create(
        instrument=spy,
        ts=T0,
        sequence=1,
        price=520.0,
        size=100,
        row_id=tick.pk,
        known_from=T0 - timedelta(minutes=1),
        **revision,
    )
    # The quote as it stood before: its price and trade fields null, its ask size given.
    TickRevision.objects.create(
        instrument=spy,
        ts=T0,
        sequence=2,
        kind="quote",
        bid=519.9,
        ask=520.3,
        bid_size=2,
        ask_size=4,
        row_id=quote.pk,
        known_from=T0 - timedelta(minutes=2),
        **revision,
    )
    contract = {"underlying": spy, "ts": T0, "expiry": date(2024, 6, 21), "strike": 520}
    OptionQuote.objects.create(**contract, right="C", bid=9.5, ask=9.7)
    greeks = {"iv": 0.18, "delta": -0.45, "gamma": 0.02, "theta": -0.1, "vega": 0.5, "rho": -0.2}
    OptionQuote.objects.create(**contract, right="P", bid=8.1, ask=8.3, last=8.2, **greeks)


def _spy_listing(spy: Instrument, user: Any) -> None:
    """A second version of SPY's listing (its name from a date on), stated as a vendor's file
    would: its history has two rows. Its symbol stays SPY, which the other requests name."""
    version = {
        "instrument": spy.pk,
        "symbol": SYMBOL,
        "valid_from": "2024-01-02",
        "currency": spy.currency,
        "name": "SPDR S&P 500 ETF Trust",
    }
    answer = client_of(user).post("/api/v1/listings/", version, format="json")
    assert answer.status_code == 201, answer.content


def _listing_and_actions(user: Any, ids: dict[str, int]) -> None:
    """Every kind of corporate action (their answers differ by kind), on another instrument
    whose listing has every field filled in."""
    other = Instrument.objects.create(symbol="XYZ", asset_class="equity", exchange="XNYS")
    spun = Instrument.objects.create(symbol="XYZS", asset_class="equity", exchange="XNYS")
    # A new version of its listing, made as a vendor's file would, every identifier given.
    listing = {
        "instrument": other.pk,
        "symbol": "XYZ",
        "valid_from": "2020-01-02",
        "name": "XYZ Corp",
        "mic": "XNYS",
        "currency": "USD",
        "isin": "US0000000002",
        "figi": "BBG000000001",
        "vendor_ids": {"yahoo": "XYZ"},
    }
    answer = client_of(user).post("/api/v1/listings/", listing, format="json")
    assert answer.status_code == 201, answer.content
    ids["listed"] = other.pk
    actions = [
        (other.pk, "split", "2024-01-02", "4", None, "", None, None, None, None),
        (other.pk, "stock_dividend", "2024-02-01", "1.05", None, "", None, None, None, None),
        (other.pk, "spin_off", "2024-03-01", "0.5", None, "", None, spun.pk, "0.2", None),
        (spun.pk, "delisting", "2024-04-01", None, None, "", None, None, None, "0"),
    ]
    with connection.cursor() as cursor:
        for values in actions:
            cursor.execute(
                "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", values
            )


def _books(spy: Instrument, ids: dict[str, int]) -> tuple[Account, Any, Any]:
    """A desk's account: an order half filled, another open, a deposit, two snapshots (one
    written by hand, its recorded fields null; one taken); another desk's account, one fill."""
    account = Account.objects.create(name="alpha", base_currency="USD")
    account.groups.add(Group.objects.create(name="desk-alpha"))
    order = make_order(account, spy, quantity="100", client_order_id="alpha-1")
    booked = fill(order, 50, "520.00", fee="1", exec_id="alpha-x1", at=T0)
    make_order(account, spy, "sell", "10", order_type="limit", limit_price=Decimal("530.5"))
    # A run recorded with only what it must have: its results null.
    BacktestRun.objects.create(strategy="by-hand", period_start=T0, period_end=T)
    ids["cash"] = CashEntry.objects.create(
        account=account, kind="deposit", amount=Decimal(100_000), currency="USD", entry_at=T0
    ).pk
    ids["snapshot"] = PortfolioSnapshot.objects.create(
        account=account,
        ts=T0,
        currency="USD",
        cash=Decimal(74_000),
        market_value=Decimal(26_000),
        nav=Decimal(100_000),
        gross_exposure=Decimal(26_000),
        net_exposure=Decimal(26_000),
    ).pk
    # Taken as the snapshot job takes them: its P&L, knowledge time and code version filled.
    with acting_as("seed"):
        assert take_snapshots(T, [account.pk]) == 1
    # A second account, a second position and execution: those lists are read in pages.
    other = Account.objects.create(name="beta", base_currency="USD")
    bought = make_order(other, spy, quantity="20", client_order_id="beta-1")
    fill(bought, 20, "519.50", exec_id="beta-x1", at=T)
    return account, order, booked


def _costs(ids: dict[str, int]) -> None:
    """The stored costs of the two fills (tca/executions' rows: two, so read in pages), as the
    job refreshes them; the quote at T0 prices them."""
    with acting_as("seed"):
        assert tca.refresh(T0 - timedelta(days=1), T0 + timedelta(days=1)) == 2
    ids["cost"] = ExecutionCost.objects.order_by("id").values_list("id", flat=True)[0]


def _signals(spy: Instrument, ids: dict[str, int]) -> Agent:
    """Two agents (one without a metric), two metrics, two signals and fused signals,
    performance, news, sentiment and alternative data (with the nullable fields null in a
    second row where they may be)."""
    agent = Agent.objects.create(name="momentum_agent", kind="momentum")
    AgentMetric.objects.create(agent=agent, ts=T0, latency_ms=12.5, errors=0, signals_emitted=3)
    AgentMetric.objects.create(
        agent=agent, ts=T0 - timedelta(minutes=1), latency_ms=30, errors=2, signals_emitted=0
    )
    # A second agent, with no metric (its latest null), and its signal: a short one.
    other = Agent.objects.create(
        name="reversal_agent", kind="mean_reversion", version="2", description="fades gaps"
    )
    Signal.objects.create(
        agent=other,
        instrument=spy,
        ts=T0,
        direction=-1,
        strength=-0.2,
        confidence=0.5,
        horizon=timedelta(hours=4),
    )
    ids["signal"] = Signal.objects.create(
        agent=agent,
        instrument=spy,
        ts=T0,
        direction=1,
        strength=0.4,
        confidence=0.7,
        horizon=timedelta(days=1),
        explanation={"why": "momentum"},
    ).pk
    ids["fused"] = FusedSignal.objects.create(
        instrument=spy,
        ts=T0,
        target_weight=0.4,
        confidence=0.7,
        method="equal",
        inputs=[{"agent": "momentum_agent", "weight": 1}],
        input_count=1,
    ).pk
    FusedSignal.objects.create(
        instrument=spy,
        ts=T0 - timedelta(days=1),
        target_weight=-0.1,
        confidence=0.3,
        method="equal",
        inputs=[{"agent": "momentum_agent", "weight": 0.5}, {"agent": "reversal_agent"}],
        input_count=2,
    )
    window = {"agent": agent, "window_start": T0 - timedelta(days=30), "window_end": T0}
    ids["performance"] = SignalPerformance.objects.create(
        **window,
        window_days=30,
        signal_count=20,
        hit_rate=0.55,
        information_coefficient=0.1,
        average_return=0.001,
        cumulative_return=0.02,
        known_at=T0,
    ).pk
    SignalPerformance.objects.create(**window, window_days=7, signal_count=0)
    ids["news"] = NewsArticle.objects.create(
        ts=T0, source="Reuters", headline="SPY up", symbols=[SYMBOL], sentiment=0.3
    ).pk
    NewsArticle.objects.create(
        ts=T0, source="Wire", headline="blank url", url="https://example.com/a", symbols=[]
    )
    ids["sentiment"] = SocialSentiment.objects.create(
        instrument=spy, ts=T0, platform="x", sentiment=0.2, mentions=10, bullish=6, bearish=4
    ).pk
    SocialSentiment.objects.create(
        instrument=spy, ts=T0, platform="reddit", sentiment=-0.1, mentions=4
    )
    ids["alternative"] = AlternativeData.objects.create(
        ts=T0, source="orbital", kind="cars", instrument=spy, payload={"count": 3}
    ).pk
    AlternativeData.objects.create(ts=T0, source="orbital", kind="ships", payload={"n": 1})
    return agent


def _risk(
    spy: Instrument, account: Account, user: Any, ids: dict[str, int]
) -> tuple[RiskLimit, RiskAlert]:
    """Two metrics, exposures and volatility estimates, limits, an alert in each state."""
    ids["metric"] = RiskMetric.objects.create(
        account=account, ts=T0, metric="var_historical", value=1e3, confidence=0.99, lookback=60
    ).pk
    RiskMetric.objects.create(account=account, ts=T0, metric="gross_exposure", value=26e3)
    ids["exposure"] = FactorExposure.objects.create(
        account=account, ts=T0, factor="market", exposure=1.1
    ).pk
    FactorExposure.objects.create(account=account, ts=T0, factor="size", exposure=-0.3)
    VolatilityEstimate.objects.create(
        instrument=spy, ts=T0, estimator="parkinson", window=20, value=0.2
    )
    VolatilityEstimate.objects.create(
        instrument=spy, ts=T0, timeframe="1m", estimator="yang_zhang", window=390, value=0.18
    )
    limit = RiskLimit.objects.create(
        account=account, metric="gross_exposure", threshold=10, severity="critical"
    )
    alerted = RiskLimit.objects.create(
        account=account, metric="beta", threshold=1, severity="warning"
    )
    alert = RiskAlert.objects.create(
        limit=alerted,
        account=account,
        metric=alerted.metric,
        value=2,
        threshold=1,
        direction="above",
        severity="warning",
        measured_at=T0,
    )
    # One alert acknowledged and one resolved: who acted, and when, no longer null.
    for k, state in enumerate(("acknowledged", "resolved")):
        moment = T + timedelta(minutes=k)
        # A limit of its own: a limit has one alert open (or acknowledged) at a time.
        other = RiskLimit.objects.create(account=account, metric="volatility", threshold=k + 1)
        RiskAlert.objects.create(
            limit=other,
            account=account,
            metric=other.metric,
            value=3,
            threshold=1,
            direction="above",
            severity="critical",
            measured_at=moment,
            state=state,
            acknowledged_by=user,
            acknowledged_at=moment,
            **({"resolved_by": user, "resolved_at": moment} if state == "resolved" else {}),
        )
    return limit, alert


def _seed() -> World:
    _partitions()
    spy = load_demo((SYMBOL,), SESSIONS)[SYMBOL]
    # What the shared bodies trade (tests/fixtures/trading_api.py's backtest).
    Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    _vectors(spy)
    user = get_user_model().objects.create_superuser("root", password="pw-root-1234")
    ids: dict[str, int] = {}
    _market_data(spy, user, ids)
    account, order, booked = _books(spy, ids)
    _costs(ids)
    agent = _signals(spy, ids)
    limit, alert = _risk(spy, account, user, ids)
    for name, model in (
        ("backtest", BacktestRun),
        ("action", CorporateAction),
        ("position", Position),
        ("audit", AuditEntry),
    ):
        ids[name] = model.objects.order_by("id").values_list("id", flat=True)[0]
    _, token = create_token(user, "answers match the schema")
    return World(user, token, spy, account, order, booked, agent, limit, alert, ids)


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker) -> Iterator[World]:
    """The seed, made once for the module in a transaction rolled back at its end; each test
    runs in a savepoint of its own within it (pytest-django's ``db``)."""
    with django_db_blocker.unblock(), transaction.atomic():
        yield _seed()
        transaction.set_rollback(True)


@pytest.fixture
def _one_connection() -> Iterator[None]:
    """As Django's test client does: requests keep the test's connection (and transaction)
    instead of closing it when they end."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def seeded(world, db, _one_connection) -> World:
    return world


# --- the requests -----------------------------------------------------------------------------

# A request: its path parameters and query (reads) or body (writes), from the seeded rows.
Request = Callable[[World], dict[str, Any]]
RANGE = {
    "symbol": SYMBOL,
    "start": iso(T0 - timedelta(days=200)),
    "end": iso(T0 + timedelta(days=30)),
}


def by_id(name: str) -> Request:
    return lambda w: {"path_parameters": {"id": w.ids[name]}}


def created_around_now() -> dict[str, str]:
    """A range holding the seeded orders, created when the seed ran (their fills are at T0)."""
    now = timezone.now()
    return {"start": iso(now - timedelta(days=1)), "end": iso(now + timedelta(days=1))}


AROUND_T0 = {"start": iso(T0 - timedelta(days=1)), "end": iso(T0 + timedelta(days=1))}
# The as-of reads: each time a row of SPY's matches (a quote and a trade at T0, the demo's
# bars), two times so that the answer's list holds two.
ASOF = {"symbol": SYMBOL, "at": [iso(T0), iso(T)]}


READS: dict[str, Request] = {
    "/api/v1/accounts/": lambda w: {},
    "/api/v1/accounts/{id}/": lambda w: {"path_parameters": {"id": w.account.pk}},
    "/api/v1/agents/": lambda w: {},
    "/api/v1/agents/{id}/": lambda w: {"path_parameters": {"id": w.agent.pk}},
    "/api/v1/agents/{id}/metrics/": lambda w: {"path_parameters": {"id": w.agent.pk}},
    "/api/v1/alternative-data/": lambda w: {},
    "/api/v1/asof/daily-bars/": lambda w: {"query": ASOF},
    "/api/v1/asof/minute-bars/": lambda w: {"query": ASOF},
    "/api/v1/asof/quotes/": lambda w: {"query": ASOF},
    "/api/v1/asof/ticks/": lambda w: {"query": ASOF},
    "/api/v1/asof/trades/": lambda w: {"query": ASOF},
    "/api/v1/alternative-data/{id}/": by_id("alternative"),
    "/api/v1/audit/": lambda w: {},
    "/api/v1/audit/{id}/": lambda w: {"path_parameters": {"id": w.ids["audit"]}},
    "/api/v1/backtests/": lambda w: {},
    "/api/v1/backtests/{id}/": by_id("backtest"),
    "/api/v1/backtests/{id}/trades/": by_id("backtest"),
    "/api/v1/bars/": lambda w: {"query": {"symbol": SYMBOL}},
    "/api/v1/bars/buckets/": lambda w: {"query": {**RANGE, "width": "1d"}},
    "/api/v1/bars/revisions/": lambda w: {"query": RANGE},
    "/api/v1/cash/": lambda w: {},
    "/api/v1/cash/{id}/": by_id("cash"),
    "/api/v1/corporate-actions/": lambda w: {},
    "/api/v1/corporate-actions/{id}/": by_id("action"),
    "/api/v1/executions/": lambda w: {},
    "/api/v1/executions/{id}/": lambda w: {"path_parameters": {"id": w.booked.pk}},
    "/api/v1/instruments/": lambda w: {},
    "/api/v1/instruments/{id}/": lambda w: {"path_parameters": {"id": w.spy.pk}},
    "/api/v1/instruments/{instrument_id}/listings/": lambda w: {
        "path_parameters": {"instrument_id": w.spy.pk}
    },
    "/api/v1/news/": lambda w: {},
    "/api/v1/news/{id}/": by_id("news"),
    "/api/v1/options/quotes/": lambda w: {"query": {"symbol": SYMBOL}},
    "/api/v1/orders/": lambda w: {},
    "/api/v1/orders/{id}/": lambda w: {"path_parameters": {"id": w.order.pk}},
    "/api/v1/portfolio/snapshots/": lambda w: {},
    "/api/v1/portfolio/snapshots/{id}/": by_id("snapshot"),
    "/api/v1/positions/": lambda w: {},
    "/api/v1/positions/{id}/": by_id("position"),
    "/api/v1/prices/latest/": lambda w: {"query": {"symbols": SYMBOL}},
    "/api/v1/risk/alerts/": lambda w: {},
    "/api/v1/risk/alerts/{id}/": lambda w: {"path_parameters": {"id": w.alert.pk}},
    "/api/v1/risk/exposures/": lambda w: {},
    "/api/v1/risk/exposures/{id}/": by_id("exposure"),
    "/api/v1/risk/limits/": lambda w: {},
    "/api/v1/risk/limits/{id}/": lambda w: {"path_parameters": {"id": w.limit.pk}},
    "/api/v1/risk/metrics/": lambda w: {},
    "/api/v1/risk/metrics/{id}/": by_id("metric"),
    "/api/v1/risk/var/": lambda w: {"query": {"account": w.account.pk}},
    "/api/v1/risk/volatility/": lambda w: {},
    "/api/v1/sentiment/": lambda w: {},
    "/api/v1/sentiment/{id}/": by_id("sentiment"),
    "/api/v1/signals/": lambda w: {},
    "/api/v1/signals/{id}/": by_id("signal"),
    "/api/v1/signals/fused/": lambda w: {},
    "/api/v1/signals/fused/{id}/": by_id("fused"),
    "/api/v1/signals/performance/": lambda w: {},
    "/api/v1/signals/performance/{id}/": by_id("performance"),
    "/api/v1/tca/executions/": lambda w: {},
    "/api/v1/tca/executions/{id}/": by_id("cost"),
    "/api/v1/tca/orders/": lambda w: {"query": created_around_now()},
    "/api/v1/tca/summary/": lambda w: {"query": AROUND_T0},
    "/api/v1/ticks/": lambda w: {"query": {"symbol": SYMBOL}},
    "/api/v1/ticks/revisions/": lambda w: {"query": RANGE},
    "/api/v1/universe/": lambda w: {},
    "/api/v1/vectors/features/": lambda w: {},
    "/api/v1/vectors/regimes/similar/": lambda w: {"query": {"symbol": SYMBOL}},
    "/api/v1/vectors/strategies/recommend/": lambda w: {"query": {"symbol": SYMBOL}},
}


# Answers of another shape than READS's: another timeframe or method, prices of a symbol with no
# bar, the vectors themselves, gaps filled with nulls, VaR over more days than there are.
VARIANTS: list[tuple[str, Request]] = [
    ("/api/v1/bars/", lambda w: {"query": {"symbol": SYMBOL, "timeframe": "1d"}}),
    ("/api/v1/bars/", lambda w: {"query": {"symbol": SYMBOL, "adjustment": "raw"}}),
    ("/api/v1/bars/buckets/", lambda w: {"query": {**RANGE, "width": "1h", "gapfill": "true"}}),
    ("/api/v1/bars/buckets/", lambda w: {"query": {**RANGE, "width": "7d", "timeframe": "1d"}}),
    ("/api/v1/bars/revisions/", lambda w: {"query": {**RANGE, "timeframe": "1d"}}),
    ("/api/v1/prices/latest/", lambda w: {"query": {"symbols": f"{SYMBOL},AAPL"}}),
    ("/api/v1/prices/latest/", lambda w: {"query": {"symbols": SYMBOL, "as_of": iso(T0)}}),
    ("/api/v1/risk/var/", lambda w: {"query": {"account": w.account.pk, "method": "parametric"}}),
    ("/api/v1/risk/var/", lambda w: {"query": {"account": w.account.pk, "method": "monte_carlo"}}),
    ("/api/v1/risk/var/", lambda w: {"query": {"account": w.account.pk, "lookback": 1000}}),
    ("/api/v1/vectors/features/", lambda w: {"query": {"vectors": "true"}}),
    (
        "/api/v1/instruments/{instrument_id}/listings/",
        lambda w: {"path_parameters": {"instrument_id": w.ids["listed"]}},
    ),
    ("/api/v1/executions/", lambda w: {"query": {"kind": "fill", "account": w.account.pk}}),
    ("/api/v1/backtests/", lambda w: {"query": {"page": 1}}),
    ("/api/v1/audit/", lambda w: {"query": {"table": "trading_order"}}),
    # No match before the data (null), the first quote after, within a tolerance, an offset.
    (
        "/api/v1/asof/quotes/",
        lambda w: {
            "query": {
                "symbol": SYMBOL,
                "at": [iso(T0 - timedelta(minutes=5)), iso(T0 - timedelta(days=400))],
                "direction": "forward",
                "tolerance": "PT10M",
                "allow_exact": "false",
                "offset": "60",
            }
        },
    ),
    ("/api/v1/tca/executions/", lambda w: {"query": {**AROUND_T0, "account": w.account.pk}}),
    (
        "/api/v1/tca/orders/",
        lambda w: {"query": {**created_around_now(), "account": w.account.pk}},
    ),
    (
        "/api/v1/tca/summary/",
        lambda w: {"query": {**AROUND_T0, "dimension": "side", "account": w.account.pk}},
    ),
]


def _call(world: World, method: str, path: str, request: dict[str, Any]):
    """The request sent through the whole site as the superuser's program: its case (which
    checks the answer) and the answer."""
    operation = schema[path][method]
    case = operation.Case(**request)
    headers = {"Authorization": f"Token {world.token}"}
    response = case.call(headers=headers)
    return case, response, headers


def _rows(body: Any) -> list | None:
    """The rows of a list's answer (a page's results, or a bare list); None for an object."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("results"), list):
        return body["results"]
    return None


@pytest.mark.parametrize(("method", "path"), _operations(("get",)))
def test_each_read_answers_as_documented(seeded, method, path):
    assert path in READS, f"add READS[{path!r}]: the request that reads it (path ids, query)"
    case, response, headers = _call(seeded, method, path, READS[path](seeded))
    assert 200 <= response.status_code < 300, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)
    rows = _rows(response.json())
    assert rows is None or rows, f"{path} answered no row: seed one, so its schema is checked"


# --- the writes -------------------------------------------------------------------------------

LATER = T0 + timedelta(days=10)  # past the demo's last bar: a new bar, not a revision
BAR = {"ts": iso(LATER), "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100}
SIGNAL = {
    "agent": "momentum_agent",
    "symbol": SYMBOL,
    "ts": iso(T),
    "strength": 0.4,
    "confidence": 0.7,
    "horizon": "1 00:00:00",
}
ARTICLE = {"ts": iso(T), "source": "Reuters", "headline": "SPY up", "symbols": [SYMBOL]}
METRIC = {"ts": iso(T), "latency_ms": 12.5, "errors": 1, "signals_emitted": 40}
LIMIT = {"metric": "var_historical", "threshold": 5000, "severity": "warning"}


def _write(status: int, request: Request) -> tuple[int, Request]:
    """A write to no row in particular (a path without an id)."""
    return status, request


def on(row: Callable[[World], int], body: Any = None, status: int = 200) -> tuple[int, Request]:
    """A write to the row ``row`` names (the path's id), with ``body``."""

    def request(w: World) -> dict[str, Any]:
        made = {"path_parameters": {"id": row(w)}}
        return made if body is None else {**made, "body": body(w) if callable(body) else body}

    return status, request


# (METHOD, path): the documented 2xx it answers, and its request.
WRITES: dict[tuple[str, str], tuple[int, Request]] = {
    ("POST", "/api/v1/accounts/"): _write(201, lambda w: {"body": {"name": "gamma"}}),
    ("POST", "/api/v1/agents/"): _write(
        201, lambda w: {"body": {"name": "news_agent", "kind": "sentiment"}}
    ),
    ("PUT", "/api/v1/agents/{id}/"): on(
        lambda w: w.agent.pk, {"name": "momentum_agent", "kind": "other"}
    ),
    ("PATCH", "/api/v1/agents/{id}/"): on(lambda w: w.agent.pk, {"active": False}),
    ("POST", "/api/v1/agents/{id}/metrics/"): on(lambda w: w.agent.pk, METRIC, 201),
    ("POST", "/api/v1/backtests/"): _write(201, lambda w: {"body": backtest()}),
    # A run of build_patterns's, which records the knowledge time it read its bars at.
    ("POST", "/api/v1/backtests/{id}/rerun/"): on(lambda w: w.ids["backtest"], {}),
    ("POST", "/api/v1/bars/"): _write(
        201, lambda w: {"body": {"symbol": SYMBOL, "timeframe": "1m", "bars": [BAR]}}
    ),
    ("POST", "/api/v1/bars/delete/"): _write(
        200,
        lambda w: {"body": {"symbol": SYMBOL, "timeframe": "1m", "start": iso(T0), "end": iso(T)}},
    ),
    ("POST", "/api/v1/cash/"): _write(
        201, lambda w: {"body": {"account": w.account.pk, "kind": "deposit", "amount": "5"}}
    ),
    ("POST", "/api/v1/corporate-actions/"): _write(
        201,
        lambda w: {
            "body": {"symbol": SYMBOL, "kind": "split", "ex_date": "2024-01-02", "ratio": "4:1"}
        },
    ),
    ("POST", "/api/v1/corporate-actions/withdraw/"): _write(
        200,
        lambda w: {"body": {"symbol": SYMBOL, "kind": "cash_dividend", "ex_date": "2024-02-09"}},
    ),
    ("POST", "/api/v1/executions/"): _write(
        201, lambda w: {"body": execution(w.order, 10, "520", exec_id="x-9")}
    ),
    ("POST", "/api/v1/executions/{id}/bust/"): on(lambda w: w.booked.pk, {}, 201),
    ("POST", "/api/v1/listings/"): _write(
        201,
        lambda w: {
            "body": {
                "symbol": "SPYX",
                "instrument": w.spy.pk,
                "valid_from": "2024-06-03",
                "currency": "USD",
                "name": "SPDR S&P 500 ETF Trust",
            }
        },
    ),
    ("POST", "/api/v1/news/"): _write(201, lambda w: {"body": [ARTICLE]}),
    ("POST", "/api/v1/orders/"): _write(
        201, lambda w: {"body": an_order(w.account, instrument=SYMBOL, client_order_id="c-9")}
    ),
    ("POST", "/api/v1/orders/{id}/cancel/"): on(lambda w: w.order.pk, {}),
    ("POST", "/api/v1/risk/alerts/{id}/acknowledge/"): on(lambda w: w.alert.pk),
    ("POST", "/api/v1/risk/alerts/{id}/resolve/"): on(
        lambda w: w.alert.pk, {"resolution": "hedged"}
    ),
    ("POST", "/api/v1/risk/limits/"): _write(
        201, lambda w: {"body": {"account": w.account.pk, **LIMIT}}
    ),
    ("PUT", "/api/v1/risk/limits/{id}/"): on(
        lambda w: w.limit.pk, lambda w: {"account": w.account.pk, **LIMIT}
    ),
    ("PATCH", "/api/v1/risk/limits/{id}/"): on(lambda w: w.limit.pk, {"threshold": 6000}),
    ("DELETE", "/api/v1/risk/limits/{id}/"): on(lambda w: w.limit.pk, status=204),
    ("POST", "/api/v1/signals/"): _write(201, lambda w: {"body": [SIGNAL]}),
    ("POST", "/api/v1/signals/fused/"): _write(201, lambda w: {"body": {"as_of": iso(T)}}),
    ("POST", "/api/v1/vectors/features/search/"): _write(
        200, lambda w: {"body": {"id": w.ids["embedding"], "k": 3}}
    ),
}


@pytest.mark.parametrize(("method", "path"), _operations(WRITE_METHODS))
def test_each_write_answers_as_documented(seeded, method, path):
    assert (method, path) in WRITES, f"add WRITES[({method!r}, {path!r})]: its status, request"
    status, request = WRITES[method, path]
    case, response, headers = _call(seeded, method, path, request(seeded))
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)


@pytest.mark.parametrize(("path", "request_of"), VARIANTS, ids=[p for p, _ in VARIANTS])
def test_reads_of_other_shapes_answer_as_documented(seeded, path, request_of):
    case, response, headers = _call(seeded, "GET", path, request_of(seeded))
    assert 200 <= response.status_code < 300, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)


# Every write sent again, as a client's retry does: the second answer is documented too,
# whatever it is (200 for what was recorded before, 400, 404 or 409 for what is done once).
@pytest.mark.parametrize(("method", "path"), sorted(WRITES))
def test_a_write_sent_again_answers_as_documented(seeded, method, path):
    status, request = WRITES[method, path]
    sent = request(seeded)
    _, first, _ = _call(seeded, method, path, sent)
    assert first.status_code == status, (path, first.status_code, first.text[:500])
    case, again, headers = _call(seeded, method, path, sent)
    case.validate_response(again, checks=CHECKS, headers=headers)


# Writes whose answer has another shape for another body: a batch (a list) where READS sent
# one item, or one item where it sent a batch.
WRITE_VARIANTS: list[tuple[str, str, int, Request]] = [
    (
        "POST",
        "/api/v1/executions/",
        201,
        lambda w: {
            "body": [
                execution(w.order, 5, "520", exec_id="x-10"),
                execution(w.order, 5, "521", exec_id="x-11"),
            ]
        },
    ),
    (
        "POST",
        "/api/v1/corporate-actions/",
        201,
        lambda w: {
            "body": [
                {"symbol": SYMBOL, "kind": "split", "ex_date": "2024-01-02", "ratio": "4:1"},
                {
                    "symbol": SYMBOL,
                    "kind": "cash_dividend",
                    "ex_date": "2024-03-15",
                    "amount": "0.5",
                    "currency": "USD",
                    "pay_date": "2024-04-01",
                },
            ]
        },
    ),
    ("POST", "/api/v1/signals/", 201, lambda w: {"body": SIGNAL}),
    ("POST", "/api/v1/news/", 201, lambda w: {"body": ARTICLE}),
    ("POST", "/api/v1/orders/", 201, lambda w: {"body": _limit_order(w)}),
]


def _limit_order(w: World) -> dict[str, Any]:
    return an_order(
        w.account,
        instrument=SYMBOL,
        client_order_id="c-10",
        side="sell",
        order_type="limit",
        limit_price="530.25",
        time_in_force="gtc",
    )


@pytest.mark.parametrize(
    ("method", "path", "status", "request_of"),
    WRITE_VARIANTS,
    ids=[f"{m}-{p}-{k}" for k, (m, p, _, _) in enumerate(WRITE_VARIANTS)],
)
def test_writes_of_other_shapes_answer_as_documented(seeded, method, path, status, request_of):
    case, response, headers = _call(seeded, method, path, request_of(seeded))
    assert response.status_code == status, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)


def test_no_request_is_for_an_operation_the_schema_no_longer_has():
    """The tables name the schema's operations only: a renamed route leaves no stale entry."""
    assert set(READS) - {path for _, path in _operations(("get",))} == set()
    assert set(WRITES) - set(_operations(WRITE_METHODS)) == set()
    assert {path for path, _ in VARIANTS} <= set(READS)
    assert {(method, path) for method, path, _, _ in WRITE_VARIANTS} <= set(WRITES)


def _paged() -> list[str]:
    """The GET operations that take a page size: lists in pages."""
    return [
        path
        for _, path in _operations(("get",))
        if any(p["name"] == "page_size" for p in RAW_SCHEMA["paths"][path]["get"]["parameters"])
    ]


@pytest.mark.parametrize("path", _paged())
def test_a_second_page_answers_as_documented(seeded, path):
    """Pages of one row: the links to the next and previous pages are filled in (URLs) with
    the operation's documented parameters."""
    first = READS[path](seeded)
    first["query"] = {**first.get("query", {}), "page_size": 1}
    case, response, headers = _call(seeded, "GET", path, first)
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)
    following = response.json()["next"]
    assert following, f"{path}: seed a second row, so that its pages are checked"
    query = dict(parse_qsl(urlsplit(following).query))
    # The link's parameters (a cursor, a page) are the operation's documented ones.
    documented = {p["name"] for p in RAW_SCHEMA["paths"][path]["get"]["parameters"]}
    assert set(query) <= documented, (path, set(query) - documented)
    case, response, headers = _call(seeded, "GET", path, {**first, "query": query})
    assert response.status_code == 200, (path, response.status_code, response.text[:500])
    case.validate_response(response, checks=CHECKS, headers=headers)
    assert response.json()["previous"], path


@pytest.mark.parametrize(("method", "path"), [key for key in sorted(WRITES) if key[0] != "DELETE"])
def test_a_null_body_is_refused_as_documented(seeded, method, path):
    """JSON ``null`` for the body: refused (the fields it lacks named), as the schema says."""
    _, request = WRITES[method, path]
    sent = {**request(seeded), "body": None, "media_type": "application/json"}
    case, response, headers = _call(seeded, method, path, sent)
    case.validate_response(response, checks=CHECKS, headers=headers)
