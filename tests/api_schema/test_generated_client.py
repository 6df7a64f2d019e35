"""A client generated from the schema with openapi-python-client and the shipped
configuration (client/openapi-python-client.yaml) is a client a desk can work with.

The generator warns of nothing it could not read (a warning is an operation or a model left out
or typed loosely), every module it writes imports, and a desk's day runs through its typed
functions against the live test server: instruments, a year of minute bars page after page,
buckets, an order placed and filled, the position, VaR, a feature search, similar regimes and a
strategy recommendation. Every answer the client receives is checked by schemathesis against
the operation it came from, successful answers included, so that a documented field the
generated model trusts (non-null, required, of its type) is what the server sends."""

from __future__ import annotations

import importlib
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import httpx
import pyarrow as pa
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection

from marketdata.models import Instrument, MinuteBar
from qvp_site.db import partitions
from qvp_site.tokens import create_token
from risk.var import value_at_risk
from tests.api_schema.conftest import PACKAGE, Generated
from tests.vectors.conftest import load_demo
from trading.models import Account
from vectors import embeddings, patterns, regimes, search
from vectors.models import FeatureEmbedding

# What openapi-python-client prints of a part of the schema it could not generate.
WARNINGS = ("warning", "error", "unable to parse", "skipping", "cannot parse", "unsupported")

# A year of AAPL's sessions, 13:30 to 20:00 UTC on weekdays: 101,400 minute bars.
FIRST_DAY, LAST_DAY = date(2023, 5, 15), date(2024, 5, 10)  # a Monday, a Friday
SESSION_OPEN, SESSION_MINUTES = time(13, 30), 390
PAGE_SIZE = 5000  # API_MAX_PAGE_SIZE: 21 pages
AS_OF = datetime.combine(LAST_DAY, time(20, 0), UTC)  # the year's last close

# One statement: the bars' minutes from the sessions' days, prices of two waves (so that the
# daily returns VaR reads go up and down) that never repeat a bar, a null volume now and then
# (a nullable field the generated model must take).
YEAR_OF_BARS = """
WITH minutes AS (
    SELECT (day + %(open)s::time + m * interval '1 minute') AT TIME ZONE 'UTC' AS ts,
           (day::date - %(first)s::date) * %(per_day)s + m AS n
    FROM generate_series(%(first)s::timestamp, %(last)s::timestamp, interval '1 day') AS day,
         generate_series(0, %(per_day)s - 1) AS m
    WHERE extract(isodow FROM day) < 6
), priced AS (
    SELECT ts, n, 150 + 20 * sin(n / 30000.0) + 2 * sin(n / 97.0) AS price FROM minutes
)
INSERT INTO marketdata_minutebar
    (instrument_id, ts, open, high, low, close, volume, vwap, trade_count)
SELECT %(instrument)s, ts, price, price + 0.05, price - 0.05, price + 0.01,
       CASE WHEN n %% 97 <> 0 THEN 1000 + n %% 100 END, price + 0.005, n %% 50
FROM priced
"""
# The daily bars of those minutes, at each day's midnight UTC.
DAYS_OF_BARS = """
INSERT INTO marketdata_dailybar (instrument_id, ts, open, high, low, close, volume)
SELECT instrument_id, date_trunc('day', ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
       (array_agg(open ORDER BY ts))[1], max(high), min(low),
       (array_agg(close ORDER BY ts DESC))[1], sum(volume)
FROM marketdata_minutebar
WHERE instrument_id = %(instrument)s
GROUP BY instrument_id, 2
"""


def session_minutes() -> list[datetime]:
    """Every bar's time of the year, in order."""
    days = (FIRST_DAY + timedelta(days=n) for n in range((LAST_DAY - FIRST_DAY).days + 1))
    return [
        datetime.combine(day, SESSION_OPEN, UTC) + timedelta(minutes=m)
        for day in days
        if day.isoweekday() < 6
        for m in range(SESSION_MINUTES)
    ]


# --- the generator ---------------------------------------------------------------------------


def test_the_generator_warns_of_nothing(generated: Generated):
    assert generated.returncode == 0, f"the generator failed:\n{generated.output}"
    warned = [
        line
        for line in generated.output.splitlines()
        if any(word in line.lower() for word in WARNINGS)
    ]
    assert not warned, f"the generator warned:\n{generated.output}"


def module_names(package: Path) -> list[str]:
    """The dotted names of the package's modules, from its files."""
    root = package.parent
    return sorted(
        ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
        for path in package.rglob("*.py")
    )


def test_every_generated_module_imports_and_every_operation_has_one(
    qvp_api: ModuleType, generated: Generated, openapi_document: dict[str, Any]
):
    names = module_names(generated.package)
    failed = {}
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # any error is the finding, named with its module
            failed[name] = f"{type(error).__name__}: {error}"
    assert not failed, failed
    # No operation left out: one module for each operationId, in its tag's package.
    operations = {
        operation["operationId"]
        for item in openapi_document["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    generated_operations = {n.rsplit(".", 1)[1] for n in names if n.count(".") == 3}
    assert generated_operations == operations
    assert hasattr(qvp_api, "AuthenticatedClient")


# --- the answers' check ----------------------------------------------------------------------


@dataclass
class SchemaChecks:
    """httpx's event hooks on the generated client: each request sent is recorded under the
    workflow's current step, and each answer validated by schemathesis against its
    operation's documented answer (status, media type, body) before the client parses it."""

    schema: Any
    prefix: str = ""  # the servers' path, which the schema's paths leave out
    step: str = ""
    sent: list[tuple[str, str, str]] = field(default_factory=list)
    checked: list[tuple[str, str, str]] = field(default_factory=list)

    def request(self, request: httpx.Request) -> None:
        self.sent.append((self.step, request.method, request.url.path))

    def response(self, response: httpx.Response) -> None:
        response.read()  # the hook runs before the body is read
        request = response.request
        label = f"{request.method} {request.url.path} answered {response.status_code}"
        path = request.url.path.removeprefix(self.prefix)
        operation = self.schema.find_operation_by_path(request.method, path)
        assert operation is not None, f"{label}: no operation of the schema"
        # validate_response passes what it cannot check: an undocumented status or media type.
        assert operation.responses.find_by_status_code(response.status_code), (
            f"{label}: an undocumented status\n{response.text[:2000]}"
        )
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        documented = self.schema.get_content_types(operation, response)
        assert media_type in documented, f"{label}: {media_type!r}, documented {documented}"
        operation.validate_response(response)  # raises naming each mismatch
        self.checked.append((self.step, request.method, request.url.path))

    def hooks(self) -> dict[str, Any]:
        return {"event_hooks": {"request": [self.request], "response": [self.response]}}

    def assert_every_answer_checked(self, steps: list[str]) -> None:
        assert self.checked == self.sent, "an answer went unchecked"
        assert sorted({step for step, _, _ in self.checked}) == sorted(steps)


@pytest.fixture(scope="module")
def schema(openapi_document: dict[str, Any]) -> Any:
    return schemathesis.openapi.from_dict(openapi_document)


def undocumented(value: Any, where: str = "answer") -> list[str]:
    """The fields of a parsed answer that its model does not name: the generated models keep
    them in ``additional_properties``, which schemathesis lets pass (no schema forbids them)."""
    if isinstance(value, list):
        return [
            found for n, item in enumerate(value) for found in undocumented(item, f"{where}[{n}]")
        ]
    extra = getattr(value, "additional_properties", None)
    if extra is None or not attrs.has(type(value)):
        return []
    found = [f"{where}.{name}" for name in extra]
    for attribute in attrs.fields(type(value)):
        if attribute.name != "additional_properties":
            found += undocumented(getattr(value, attribute.name), f"{where}.{attribute.name}")
    return found


def call(qvp_api: ModuleType, tag: str, operation_id: str, **kwargs: Any) -> Any:
    """The generated operation's sync_detailed, asserting a 2xx whose parsed body has no field
    the schema leaves out."""
    module = importlib.import_module(f"{qvp_api.__name__}.api.{tag}.{operation_id}")
    response = module.sync_detailed(**kwargs)
    assert 200 <= response.status_code < 300, (operation_id, response.content[:2000])
    assert not undocumented(response.parsed), (operation_id, undocumented(response.parsed))
    return response


# --- the desk's world ------------------------------------------------------------------------


@dataclass(frozen=True)
class Desk:
    aapl: Instrument
    account: Account
    key: str
    minutes: list[datetime]


@pytest.fixture
def desk(transactional_db, no_connection_left) -> Desk:
    """A quant with a token and a desk's account, and a year of AAPL's minute bars with their
    daily bars, committed (the live server reads them on its own connections)."""
    start = datetime.combine(FIRST_DAY, time(0), UTC)
    for table in ("marketdata_minutebar", "marketdata_dailybar"):
        partitions.prepare_load(table, start - timedelta(days=1), AS_OF + timedelta(days=1))
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    parameters: dict[str, Any] = {
        "instrument": aapl.id,
        "first": FIRST_DAY,
        "last": LAST_DAY,
        "open": SESSION_OPEN,
        "per_day": SESSION_MINUTES,
    }
    with connection.cursor() as cursor:
        cursor.execute(YEAR_OF_BARS, parameters)
        cursor.execute(DAYS_OF_BARS, parameters)
    group = Group.objects.create(name="desk-quant")
    account = Account.objects.create(name="quant-book", base_currency="USD")
    account.groups.add(group)
    quant = get_user_model().objects.create_user("quant", password="pw-quant-1234")
    quant.groups.add(group)
    _, key = create_token(quant, "generated client")
    return Desk(aapl, account, key, session_minutes())


def vectors_built() -> dict[str, Instrument]:
    """The demo's SPY and NVDA over 80 sessions, built into feature embeddings, volatility
    regimes and strategy patterns (committed)."""
    built = load_demo(("SPY", "NVDA"), 80)
    embeddings.build(built.values())
    regimes.build(built.values())
    call_command(
        "build_patterns", "--symbol", "SPY", "--symbol", "NVDA", "--no-progress", stdout=StringIO()
    )
    return built


@pytest.fixture
def client_with_checks(
    qvp_api: ModuleType, schema: Any, openapi_document: dict[str, Any], live_server, desk: Desk
) -> Iterator[tuple[Any, SchemaChecks]]:
    """The generated client as a quant makes it, its every answer checked."""
    servers = openapi_document.get("servers") or [{"url": ""}]
    checks = SchemaChecks(schema, prefix=urlsplit(servers[0]["url"]).path.rstrip("/"))
    client = qvp_api.AuthenticatedClient(
        base_url=live_server.url,
        token=desk.key,
        prefix="Token",
        timeout=httpx.Timeout(60),
        raise_on_unexpected_status=True,
        httpx_args=checks.hooks(),
    )
    with client:
        yield client, checks


# --- the workflow ----------------------------------------------------------------------------


def read_year_of_bars(qvp_api: ModuleType, client: Any) -> tuple[list[Any], int]:
    """Every bar of the year, page after page, following each page's cursor."""
    rows: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        extra = {"cursor": cursor} if cursor else {}
        page = call(
            qvp_api,
            "bars",
            "bars_list",
            client=client,
            symbol="AAPL",
            start=datetime.combine(FIRST_DAY, time(0), UTC),
            end=AS_OF,
            page_size=PAGE_SIZE,
            **extra,
        ).parsed
        rows.extend(page.results)
        pages += 1
        if not page.next_:
            return rows, pages
        (cursor,) = parse_qs(urlsplit(page.next_).query)["cursor"]


def test_a_desks_day_through_the_generated_client(qvp_api, client_with_checks, desk):
    built = vectors_built()
    client, checks = client_with_checks
    models = importlib.import_module(f"{PACKAGE}.models")

    checks.step = "instruments"
    listed = call(qvp_api, "instruments", "instruments_list", client=client).parsed
    assert [i.symbol for i in listed.results] == ["AAPL", "NVDA", "SPY"]
    assert listed.count == 3
    assert listed.results[0].id == desk.aapl.id

    checks.step = "bars"
    bars, pages = read_year_of_bars(qvp_api, client)
    assert len(desk.minutes) == 101_400
    assert pages == 21  # the last one of 1,400 bars
    assert [bar.ts for bar in bars] == desk.minutes  # none missed, doubled or out of order
    stored = MinuteBar.objects.filter(instrument=desk.aapl).order_by("ts")
    assert [bar.close for bar in bars] == list(stored.values_list("close", flat=True))
    volumes = list(stored.values_list("volume", flat=True))
    assert [bar.volume for bar in bars] == volumes
    assert volumes.count(None) > 1000

    checks.step = "buckets"
    week = datetime(2024, 5, 6, tzinfo=UTC)  # the year's last week, Monday to Friday
    found = call(
        qvp_api,
        "bars",
        "bars_buckets_retrieve",
        client=client,
        symbol="AAPL",
        start=week,
        end=week + timedelta(days=5),
        width="1d",
    ).parsed
    in_week = [bar for bar in bars if week <= bar.ts < week + timedelta(days=5)]
    by_day = [list(g) for _, g in itertools.groupby(in_week, key=lambda bar: bar.ts.date())]
    assert [b.bucket for b in found.buckets] == [week + timedelta(days=n) for n in range(5)]
    assert [b.bar_count for b in found.buckets] == [SESSION_MINUTES] * 5
    assert [(b.open_, b.close) for b in found.buckets] == [
        (day[0].open_, day[-1].close) for day in by_day
    ]
    assert [b.high for b in found.buckets] == [max(bar.high for bar in day) for day in by_day]

    checks.step = "order"
    limit_without_price = models.OrderRequest(
        account=desk.account.id,
        instrument="AAPL",
        client_order_id="desk-day-0",
        side=models.SideEnum.BUY,
        quantity="100",
        order_type=models.OrderTypeEnum.LIMIT,
    )
    orders_create = importlib.import_module(f"{PACKAGE}.api.orders.orders_create")
    refused = orders_create.sync_detailed(client=client, body=limit_without_price)
    assert refused.status_code == 400
    assert list(refused.parsed.additional_properties) == ["limit_price"]
    body = models.OrderRequest(
        account=desk.account.id,
        instrument="AAPL",
        client_order_id="desk-day-1",
        side=models.SideEnum.BUY,
        quantity="100",
    )
    order = call(qvp_api, "orders", "orders_create", client=client, body=body).parsed
    assert (order.account, order.instrument, order.status.value) == (
        desk.account.id,
        "AAPL",
        "new",
    )
    assert Decimal(order.quantity) == 100
    assert Decimal(order.filled_quantity) == 0

    checks.step = "executions"
    fills = [
        models.ExecutionRequest(
            exec_id=f"desk-fill-{n}",
            order=order.id,
            side=models.SideEnum.BUY,
            quantity=quantity,
            price=price,
            executed_at=AS_OF - timedelta(minutes=10 - n),
        )
        for n, (quantity, price) in enumerate([("60", "187.125"), ("40", "187.5")])
    ]
    booked = call(qvp_api, "executions", "executions_create", client=client, body=fills).parsed
    assert [Decimal(e.position_quantity_after) for e in booked] == [60, 100]
    assert Decimal(booked[-1].order_filled_after) == 100
    assert [e.exec_id for e in booked] == ["desk-fill-0", "desk-fill-1"]

    checks.step = "position"
    positions = call(
        qvp_api, "positions", "positions_list", client=client, account=desk.account.id
    ).parsed
    (position,) = positions.results
    assert (position.instrument, Decimal(position.quantity)) == ("AAPL", 100)
    assert Decimal(position.average_cost) == Decimal("187.275")  # (60 x 187.125 + 40 x 187.5) / 100
    assert position.last_execution_at == AS_OF - timedelta(minutes=9)

    checks.step = "var"
    var = call(
        qvp_api,
        "risk",
        "risk_var_list",
        client=client,
        account=desk.account.id,
        confidence=0.95,
        lookback=60,
        as_of=AS_OF,
    ).parsed
    (expected,) = value_at_risk(desk.account.id, confidence=0.95, lookback=60, as_of=AS_OF)
    assert var.var is not None
    assert var.var > 0
    assert (var.var, var.cvar, var.observations) == (
        expected.var,
        expected.cvar,
        expected.observations,
    )
    assert var.portfolio_value == pytest.approx(expected.portfolio_value)

    checks.step = "feature search"
    first = FeatureEmbedding.objects.filter(instrument=built["SPY"]).order_by("ts", "id").first()
    assert first is not None
    query = models.FeatureSearchRequest(id=first.id, k=5, symbols="SPY")
    result = call(
        qvp_api, "vectors", "vectors_features_search_create", client=client, body=query
    ).parsed
    distances = [n.distance for n in result.neighbours]
    assert len(result.neighbours) == result.k == 5
    assert distances == sorted(distances)
    assert {n.symbol for n in result.neighbours} == {"SPY"}
    assert first.id not in [n.id for n in result.neighbours]

    checks.step = "similar regimes"
    similar = call(
        qvp_api, "vectors", "vectors_regimes_similar_retrieve", client=client, symbol="SPY", k=4
    ).parsed
    current = search.current_regime(built["SPY"])
    assert current is not None
    assert (similar.current.id, similar.current.symbol) == (current.id, "SPY")
    matches = search.similar_regimes(current, 4)
    assert [r.id for r in similar.similar] == [m.regime.id for m in matches]
    assert [r.distance for r in similar.similar] == [m.distance for m in matches]

    checks.step = "recommendation"
    advice = call(
        qvp_api,
        "vectors",
        "vectors_strategies_recommend_retrieve",
        client=client,
        symbol="SPY",
        k=30,
    ).parsed
    assert advice.symbol == "SPY"
    assert len(advice.evidence) == 30
    assert advice.best == advice.ranked[0].strategy
    assert advice.best in patterns.STRATEGIES
    assert sum(s.patterns for s in advice.ranked) == 30
    evidence = [p.distance for p in advice.evidence]
    assert evidence == sorted(evidence)

    checks.assert_every_answer_checked(
        [
            "instruments",
            "bars",
            "buckets",
            "order",
            "executions",
            "position",
            "var",
            "feature search",
            "similar regimes",
            "recommendation",
        ]
    )


# --- the bulk formats' own operation ---------------------------------------------------------

ARROW_PATH = "/api/v1/bars.arrow"


def test_a_year_of_bars_in_arrow_through_the_generated_client(
    qvp_api, client_with_checks, desk, openapi_document
):
    operation = openapi_document["paths"].get(ARROW_PATH, {}).get("get")
    if operation is None:
        pytest.skip(f"the schema has no operation GET {ARROW_PATH} yet")
    client, checks = client_with_checks
    checks.step = "bars in arrow"
    tag = operation["tags"][0].replace("-", "_")
    response = call(
        qvp_api,
        tag,
        operation["operationId"],
        client=client,
        symbol="AAPL",
        start=datetime.combine(FIRST_DAY, time(0), UTC),
        end=AS_OF,
    )
    table = pa.ipc.open_stream(response.content).read_all()
    assert table.num_rows == len(desk.minutes)
    assert table["ts"].to_pylist() == desk.minutes
    checks.assert_every_answer_checked(["bars in arrow"])


# --- the check itself ------------------------------------------------------------------------


def answer(status: int, **content: Any) -> httpx.Response:
    """An answer to GET /api/v1/positions/, as the client's transport hands it to the hook."""
    request = httpx.Request("GET", "http://testserver/api/v1/positions/")
    response = httpx.Response(status, request=request, **content)
    response.elapsed = timedelta(0)  # set by a transport; schemathesis reads it
    return response


def test_the_check_refuses_what_the_schema_does_not_document(schema):
    checks = SchemaChecks(schema, step="positions")
    checks.response(answer(200, json={"count": 0, "next": None, "previous": None, "results": []}))
    assert checks.checked == [("positions", "GET", "/api/v1/positions/")]
    # A documented field missing, a status and a media type the operation does not document.
    page = {"count": 1, "next": None, "previous": None, "results": [{"id": 1}]}
    with pytest.raises(AssertionError, match='"account" is a required property'):
        checks.response(answer(200, json=page))
    with pytest.raises(AssertionError, match="an undocumented status"):
        checks.response(answer(418, json={}))
    with pytest.raises(AssertionError, match="'text/html', documented"):
        checks.response(answer(200, text="<p>", headers={"content-type": "text/html"}))
    assert len(checks.checked) == 1
