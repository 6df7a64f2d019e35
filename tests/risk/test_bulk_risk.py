"""Risk metrics (/api/v1/risk/metrics/) in the bulk formats: the JSON list's rows and columns
in Arrow, Parquet and CSV, oldest first, the list's filters and range, and the wall between
desks: by the querysets, by row-level security alone (the querysets' scoping bypassed, Django's
connection acting as trading_app, which the reader mirrors), and an auditor's view of every
account. The table has no NUMERIC column (values are floats, float64 in Arrow).

The reader opens its own connection: the rows must be committed (``transaction=True``)."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pytest

from qvp_site.db import roles
from risk.models import RiskMetric, RiskRun
from tests.bulk import assert_same_rows, bulk_table, json_rows
from tests.clients import client_of
from tests.fixtures.trading_api import iso
from tests.risk.conftest import day
from trading.api.scoping import ScopedViewSet

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/risk/metrics/"
RANGE = {"start": iso(day(0)), "end": iso(day(30))}


@pytest.fixture
def metrics(books):
    """Beside ``books``' metric of each desk's account (gross exposure at day 5): in alpha two
    VaRs of a run at day 6 (one at a time with microseconds), and in each account a metric
    at day 40, outside RANGE."""
    alpha = books["alpha"]
    run = RiskRun.objects.create(
        as_of=day(6),
        known_at=day(6),
        code_version="test",
        confidence=0.95,
        lookback=252,
        benchmark="SPY",
        volatility_window=20,
        actor="test",
    )
    for metric, moment in (("var_historical", day(6)), ("cvar_historical", day(6))):
        RiskMetric.objects.create(
            account=alpha,
            ts=moment + timedelta(microseconds=7),
            metric=metric,
            value=1234.5678901234,
            confidence=0.95,
            lookback=252,
            run=run,
        )
    for name in ("alpha", "beta"):
        RiskMetric.objects.create(account=books[name], ts=day(40), metric="sharpe", value=-0.5)
    books["run"] = run
    return books


@pytest.fixture
def rls_only(metrics, db_role, monkeypatch):
    """Django's connection acts as trading_app and the querysets' scoping is bypassed: row-level
    security alone keeps the desks apart. The role is reset before the tables are emptied."""
    monkeypatch.setattr(ScopedViewSet, "visible", lambda self, rows: rows)
    with db_role(roles.APP_ROLE):
        yield metrics


@pytest.fixture
def alice(metrics):
    return client_of(metrics["alice"])


def test_arrow_holds_the_json_lists_rows_oldest_first(alice, metrics):
    table = bulk_table(alice, URL, RANGE)
    rows = json_rows(alice, URL, RANGE)
    assert table.num_rows == len(rows) == 3
    assert_same_rows(table, rows)
    assert table.column("ts").to_pylist() == sorted(table.column("ts").to_pylist())
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("value").type == pa.float64()
    assert schema.field("lookback").type == pa.int32()
    assert schema.field("run").type == pa.int64()
    var = table.filter(pc.equal(table.column("metric"), "var_historical")).to_pylist()
    assert var[0]["value"] == 1234.5678901234  # a float survives exactly
    assert var[0]["run"] == metrics["run"].id
    assert var[0]["ts"].microsecond == 7


def test_parquet_and_csv_hold_the_same_rows(alice, metrics):
    arrow = bulk_table(alice, URL, RANGE)
    assert bulk_table(alice, URL, RANGE, "parquet").equals(arrow)
    response = alice.get(URL, {**RANGE, "format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    stamp = "20240101T000000Z-20240131T000000Z"
    assert response["Content-Disposition"] == f'attachment; filename="riskmetric-{stamp}.csv"'
    options = pa_csv.ConvertOptions(column_types=arrow.schema)
    body = io.BytesIO(b"".join(response.streaming_content))
    assert pa_csv.read_csv(body, convert_options=options).equals(arrow)


def test_the_lists_filters_and_range_narrow_the_rows(alice, metrics):
    params = {**RANGE, "metric": "cvar_historical"}
    assert bulk_table(alice, URL, params).column("metric").to_pylist() == ["cvar_historical"]
    later = {"start": iso(day(40)), "end": iso(day(41))}
    assert bulk_table(alice, URL, later).column("metric").to_pylist() == ["sharpe"]  # alpha's


@pytest.mark.parametrize("mode", ["querysets", "row-level security alone"])
@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", {"alpha"}), ("bob", {"beta"}), ("audrey", {"alpha", "beta"})],
)
def test_each_user_reads_their_desks_accounts(request, metrics, mode, user, expected):
    if mode != "querysets":
        request.getfixturevalue("rls_only")
    ids = set(bulk_table(client_of(metrics[user]), URL, RANGE).column("account").to_pylist())
    assert {name for name in ("alpha", "beta") if metrics[name].id in ids} == expected


def test_the_bypass_of_the_querysets_is_one(metrics, monkeypatch):
    """As the owner (no row-level security), bypassing the querysets shows alice beta's
    metrics: the test of row-level security alone above does test the database."""
    monkeypatch.setattr(ScopedViewSet, "visible", lambda self, rows: rows)
    table = bulk_table(client_of(metrics["alice"]), URL, RANGE)
    assert metrics["beta"].id in table.column("account").to_pylist()


def test_refusals_are_json(alice, metrics, client):
    response = alice.get(URL, {"format": "parquet", "start": RANGE["start"]})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"end"}
    bob = client_of(metrics["bob"])
    response = bob.get(URL, {**RANGE, "account": metrics["alpha"].id, "format": "csv"})
    assert response.status_code == 400
    assert "account" in response.json()
    assert client.get(URL, {**RANGE, "format": "arrow"}).status_code in (401, 403)


def test_rows_are_read_in_the_stream_not_by_django(alice, metrics, django_assert_max_num_queries):
    # The request's session and user, its transaction (begin, naming who acts, commit), is
    # the user an auditor, which role Django's connection acts as: none reads a row (the
    # reader does, on its own connection), so the count does not grow with the rows.
    with django_assert_max_num_queries(7):
        response = alice.get(URL, {**RANGE, "format": "arrow"})
        table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    assert table.num_rows == 3
