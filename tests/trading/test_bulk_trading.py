"""The trading lists in the bulk formats (orders, executions, cash, portfolio snapshots): the
JSON list's rows and columns in Arrow, Parquet and CSV, NUMERIC as decimal128 of the model's
precision equal to the JSON's decimal strings, the list's filters and range, and the wall
between desks: by the querysets, by row-level security alone (the querysets' scoping bypassed,
Django's connection acting as trading_app, which the reader mirrors), and an auditor's view
of every account.

The reader opens its own connection: the rows must be committed (``transaction=True``)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pytest
from django.db import connection

from qvp_site.db import partitions, roles
from tests.bulk import as_json, bulk_table, json_rows
from tests.clients import client_of
from tests.fixtures.trading import T0, fill, make_order
from tests.fixtures.trading_api import iso
from trading.api.scoping import ScopedViewSet
from trading.models import CashEntry, PortfolioSnapshot

pytestmark = pytest.mark.django_db(transaction=True)

D = Decimal
LATER = T0 + timedelta(days=30)
EARLIER = T0 - timedelta(days=30)
URLS = {
    "orders": "/api/v1/orders/",
    "executions": "/api/v1/executions/",
    "cash": "/api/v1/cash/",
    "snapshots": "/api/v1/portfolio/snapshots/",
}
TIME = {"orders": "created_at", "executions": "executed_at", "cash": "entry_at", "snapshots": "ts"}


def days_from(moment: datetime, days: int = 1) -> dict[str, str]:
    return {"start": iso(moment - timedelta(days=days)), "end": iso(moment + timedelta(days=days))}


# The range each list is read in, and one holding a single record of each desk's account. An
# order's created_at is now unless given (the books' orders: now), the others' times are given.
NOW = datetime.now(UTC)
RANGES = {name: days_from(T0) for name in URLS} | {"orders": days_from(NOW)}
OUTSIDE = {name: days_from(LATER) for name in URLS} | {"orders": days_from(EARLIER)}
# Each list's NUMERIC columns and the model's precision.
DECIMALS = {
    "orders": {"quantity": (20, 8), "limit_price": (20, 8), "filled_quantity": (20, 8)},
    "executions": {
        "quantity": (20, 8),
        "price": (20, 8),
        "fee": (24, 8),
        "position_average_cost_after": (28, 12),
        "position_realized_pnl_after": (24, 8),
    },
    "cash": {"amount": (24, 8)},
    "snapshots": {"cash": (24, 8), "nav": (24, 8), "daily_pnl": (24, 8)},
}
JSON_TEXT = {"snapshots": {"unpriced"}}  # JSON columns: text in the bulk formats


def snapshot(account, ts, cash, value, **extra) -> PortfolioSnapshot:
    return PortfolioSnapshot.objects.create(
        account=account,
        ts=ts,
        currency="USD",
        cash=D(cash),
        market_value=D(value),
        nav=D(cash) + D(value),
        gross_exposure=abs(D(value)),
        net_exposure=D(value),
        **extra,
    )


@pytest.fixture
def ledger(books, instrument):
    """Beside ``books`` (an order half filled and a deposit in each desk's account): in alpha a
    limit order filled in two (one with a fee, one a fraction), a withdrawal, snapshots (one
    with a holding unpriced, one without a P&L); and in each desk's account a record of each
    kind outside ``RANGES`` (``OUTSIDE``)."""
    alpha = books["alpha"]
    limit = make_order(
        alpha, instrument, quantity="10.5", order_type="limit", limit_price=D("187.123456789")
    )
    books["alpha-limit"] = limit
    fill(limit, "10", "187.1", fee="0.00000001", at=T0 + timedelta(hours=1))
    fill(limit, "0.5", "187.12345678", at=T0 + timedelta(hours=2, microseconds=7))
    CashEntry.objects.create(
        account=alpha, kind="withdrawal", amount=D("-12.5"), currency="USD", entry_at=T0
    )
    partitions.prepare_load("trading_portfoliosnapshot", T0, LATER + timedelta(days=1))
    snapshot(alpha, T0, "1000", "0", daily_pnl=None)
    unpriced = [{"symbol": "XYZ", "quantity": "3"}]
    snapshot(
        alpha, T0 + timedelta(days=1), "-870.5", "1871.23", daily_pnl=D("0.73"), unpriced=unpriced
    )
    for name in ("alpha", "beta"):
        account = books[name]
        snapshot(account, T0 + timedelta(hours=12), "500", "250.25", daily_pnl=D("-1"))
        fill(make_order(account, instrument, quantity="1"), "1", "9", at=LATER)
        make_order(account, instrument, quantity="1", created_at=EARLIER)
        CashEntry.objects.create(
            account=account, kind="deposit", amount=D(1), currency="USD", entry_at=LATER
        )
        snapshot(account, LATER, "1", "0")
    return books


@pytest.fixture
def alice(ledger):
    return client_of(ledger["alice"])


@pytest.fixture
def rls_only(ledger, app_role_password, monkeypatch):
    """Django's connection acts as trading_app (the reader acts as the role Django's
    connection does) and the lists' scoping by the querysets is bypassed: row-level security
    alone keeps the desks apart. The role is reset before the test's tables are emptied."""
    monkeypatch.setattr(ScopedViewSet, "visible", lambda self, rows: rows)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    yield ledger
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def read(value):
    """A value read from Arrow as the JSON list writes it: decimals as DRF does ('{:f}': no
    exponent, e.g. 0.00000000 where str() gives 0E-8)."""
    return format(value, "f") if isinstance(value, Decimal) else as_json(value)


def assert_same_rows(table: pa.Table, rows: list[dict], json_text=()) -> None:
    """``table`` holds the JSON ``rows`` exactly (matched by id): the same columns, decimals
    of the same digits, times of the same moment, JSON columns the same JSON as text."""
    assert table.column_names == list(rows[0])
    got = {row["id"]: {k: read(v) for k, v in row.items()} for row in table.to_pylist()}
    expected = {row["id"]: row for row in rows}
    assert got.keys() == expected.keys()
    for key, row in expected.items():
        for column, value in row.items():
            cell = got[key][column]
            if column in json_text:
                cell = json.loads(cell)
            elif isinstance(value, str) and value.endswith("Z"):  # the same moment
                cell, value = datetime.fromisoformat(cell), datetime.fromisoformat(value)
            assert cell == value, (key, column, cell, value)


def accounts_read(client, name: str, ledger) -> set[str]:
    table = bulk_table(client, URLS[name], RANGES[name])
    ids = set(table.column("account").to_pylist())
    return {name for name in ("alpha", "beta") if ledger[name].id in ids}


@pytest.mark.parametrize("name", list(URLS))
def test_arrow_holds_the_json_lists_rows_oldest_first(alice, ledger, name):
    url = URLS[name]
    table = bulk_table(alice, url, RANGES[name])
    rows = json_rows(alice, url, RANGES[name])
    assert table.num_rows == len(rows) >= 2
    assert_same_rows(table, rows, JSON_TEXT.get(name, ()))
    times = table.column(TIME[name]).to_pylist()
    assert times == sorted(times)  # oldest first (the JSON pages are newest first)
    for column, (precision, scale) in DECIMALS[name].items():
        assert table.schema.field(column).type == pa.decimal128(precision, scale)
    assert table.schema.field(TIME[name]).type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("account").type == pa.int64()


def test_the_decimals_are_the_jsons_digits_exactly(alice, ledger):
    params = {**RANGES["executions"], "order": ledger["alpha-limit"].id}
    table = bulk_table(alice, URLS["executions"], params)
    (tiny, half) = table.to_pylist()
    assert tiny["fee"] == D("0.00000001")
    assert tiny["price"] == D("187.1")
    assert half["fee"] == D(0)
    assert format(half["fee"], "f") == "0.00000000"
    assert half["executed_at"].microsecond == 7
    assert half["instrument"] == "AAPL"  # the symbol, as in the JSON
    orders = bulk_table(alice, URLS["orders"], {**RANGES["orders"], "status": "filled"})
    (limit,) = (row for row in orders.to_pylist() if row["id"] == ledger["alpha-limit"].id)
    assert limit["limit_price"] == D("187.12345679")  # rounded as stored
    assert limit["stop_price"] is None
    assert limit["filled_quantity"] == D("10.5")


@pytest.mark.parametrize("name", list(URLS))
def test_parquet_and_csv_hold_the_same_rows(alice, ledger, name):
    arrow = bulk_table(alice, URLS[name], RANGES[name])
    assert bulk_table(alice, URLS[name], RANGES[name], "parquet").equals(arrow)
    response = alice.get(URLS[name], {**RANGES[name], "format": "csv"})
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    options = pa_csv.ConvertOptions(column_types=arrow.schema)
    body = io.BytesIO(b"".join(response.streaming_content))
    assert pa_csv.read_csv(body, convert_options=options).equals(arrow)


@pytest.mark.parametrize(
    ("name", "params", "expected"),
    [
        ("orders", {"status": "filled"}, 2),  # the limit order, and the one filled LATER
        ("executions", {"kind": "fill", "symbol": "AAPL"}, 3),
        ("cash", {"kind": "withdrawal"}, 1),
        # T0 + 12 h; the one of T0 + 1 day lies at the range's end, which is exclusive
        ("snapshots", {"start": iso(T0 + timedelta(hours=1))}, 1),
    ],
)
def test_the_lists_filters_narrow_the_rows(alice, ledger, name, params, expected):
    params = {**RANGES[name], **params}
    table = bulk_table(alice, URLS[name], params)
    assert table.num_rows == len(json_rows(alice, URLS[name], params)) == expected


@pytest.mark.parametrize("name", list(URLS))
def test_rows_outside_the_range_are_left_out(alice, ledger, name):
    # Alpha's, not beta's: a record of each kind; in cash, the deposit and the fill's entry.
    expected = 2 if name == "cash" else 1
    assert bulk_table(alice, URLS[name], OUTSIDE[name]).num_rows == expected


def test_an_empty_range_keeps_the_types(alice, ledger):
    empty = {"start": "2020-01-01T00:00:00Z", "end": "2020-01-02T00:00:00Z"}
    table = bulk_table(alice, URLS["executions"], empty)
    assert table.num_rows == 0
    assert table.schema.field("price").type == pa.decimal128(20, 8)
    assert table.schema.field("instrument").type == pa.string()


@pytest.mark.parametrize("mode", ["querysets", "row-level security alone"])
@pytest.mark.parametrize("name", list(URLS))
@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", {"alpha"}), ("bob", {"beta"}), ("audrey", {"alpha", "beta"})],
)
def test_each_user_reads_their_desks_accounts(request, ledger, mode, name, user, expected):
    if mode != "querysets":
        request.getfixturevalue("rls_only")
    assert accounts_read(client_of(ledger[user]), name, ledger) == expected


def test_the_bypass_of_the_querysets_is_one(ledger, monkeypatch):
    """Without row-level security (the owner's role), bypassing the querysets shows alice
    beta's rows: the row-level security test above does test the database alone."""
    monkeypatch.setattr(ScopedViewSet, "visible", lambda self, rows: rows)
    assert accounts_read(client_of(ledger["alice"]), "cash", ledger) == {"alpha", "beta"}


@pytest.mark.parametrize("mode", ["querysets", "row-level security alone"])
def test_another_desks_account_is_refused_in_json_as_unknown(request, ledger, mode):
    if mode != "querysets":
        request.getfixturevalue("rls_only")
    bob = client_of(ledger["bob"])
    params = {**RANGES["executions"], "account": ledger["alpha"].id, "format": "parquet"}
    response = bob.get(URLS["executions"], params)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "account" in response.json()


def test_a_bulk_read_needs_a_bounded_range_and_a_list(alice, ledger):
    response = alice.get(URLS["orders"], {"format": "arrow"})
    assert response.status_code == 400
    assert set(response.json()) == {"start", "end"}
    order = ledger["alpha-order"]
    response = alice.get(f"{URLS['orders']}{order.id}/", {"format": "csv"})
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"


def test_nobody_reads_without_logging_in(ledger, client):
    response = client.get(URLS["cash"], {**RANGES["cash"], "format": "arrow"})
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("name", list(URLS))
def test_rows_are_read_in_the_stream_not_by_django(
    alice, ledger, name, django_assert_max_num_queries
):
    # The request's session and user, its transaction (begin, naming who acts, commit), is
    # the user an auditor, which role Django's connection acts as: none reads a row (the
    # reader does, on its own connection), so the count does not grow with the rows.
    with django_assert_max_num_queries(7):
        response = alice.get(URLS[name], {**RANGES[name], "format": "arrow"})
        table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    assert table.num_rows >= 2
