"""The trading API: scoping by the users' groups (by the querysets, and by row-level security
under the application's role), the order lifecycle, idempotent executions, batches refused
whole, busts, cash, backtests, bad input answered 400 naming the field, the database's
refusals answered with their rule, and a bounded number of queries per list."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

from marketdata.models import Instrument
from qvp_site.acting import declare
from qvp_site.db import partitions
from tests.clients import client_of
from tests.trading.conftest import T0, fill, make_order
from trading.api import executions, orders
from trading.models import (
    Account,
    BacktestRun,
    BacktestTrade,
    CashEntry,
    Execution,
    Order,
    PortfolioSnapshot,
    Position,
)

D = Decimal


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def execution(order, quantity, price="10", exec_id="x-1", **extra) -> dict:
    quantity = D(str(quantity))
    return {
        "exec_id": exec_id,
        "order": order.id if isinstance(order, Order) else order,
        "side": "buy" if quantity > 0 else "sell",
        "quantity": str(quantity),
        "price": str(price),
        "executed_at": iso(T0),
        **extra,
    }


def an_order(account, **extra) -> dict:
    return {
        "account": account.id,
        "instrument": "AAPL",
        "client_order_id": "c-1",
        "side": "buy",
        "quantity": "100",
        **extra,
    }


@pytest.fixture
def books(desks, instrument):
    """In each desk's account: an order half filled (``<desk>-order``, ``<desk>-fill``), and
    a deposit. Tests under row-level security see only the acting user's rows after their
    first request, so they take these records from here rather than from the database."""
    records = dict(desks)
    for name in ("alpha", "beta"):
        order = make_order(desks[name], instrument, client_order_id=f"{name}-1")
        records[f"{name}-order"] = order
        records[f"{name}-fill"] = fill(order, 50, "10.00", exec_id=f"{name}-x1")
        CashEntry.objects.create(
            account=desks[name], kind="deposit", amount=D(1000), currency="USD", entry_at=T0
        )
    return records


@pytest.fixture(params=["querysets", "row-level security"])
def wall(request, app_role_password, books):
    """The scoping tests run twice: as the owner (the querysets scope), and as trading_app,
    where row-level security applies as well and must agree. (app_role_password is named
    here so that, session-scoped, its grants are made before the test's transaction begins:
    made inside it, they would be rolled back with it.)"""
    if request.param == "row-level security":
        request.getfixturevalue("as_app_role")
    return books


# --- Authentication --------------------------------------------------------------------------
URLS = [
    "/api/v1/accounts/",
    "/api/v1/orders/",
    "/api/v1/executions/",
    "/api/v1/positions/",
    "/api/v1/cash/",
    "/api/v1/portfolio/snapshots/",
    "/api/v1/backtests/",
]


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_are_refused(client, books, url):
    assert client.get(url).status_code in (401, 403)
    assert client.post(url, {}, content_type="application/json").status_code in (401, 403)


def test_anonymous_users_cannot_cancel_or_bust(client, books):
    order, booked = books["alpha-order"], books["alpha-fill"]
    assert client.post(f"/api/v1/orders/{order.id}/cancel/").status_code in (401, 403)
    assert client.post(f"/api/v1/executions/{booked.id}/bust/").status_code in (401, 403)
    assert Order.objects.filter(status="cancelled").count() == 0


# --- Who sees what ---------------------------------------------------------------------------
def account_names(client, url: str) -> set[str]:
    response = client.get(url)
    assert response.status_code == 200, response.content
    ids = {row["account"] for row in response.json()["results"]}
    return set(Account.objects.filter(id__in=ids).values_list("name", flat=True))


@pytest.mark.parametrize("url", URLS[1:-1])
@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", {"alpha"}), ("bob", {"beta"}), ("audrey", {"alpha", "beta"})],
)
def test_each_user_sees_the_accounts_their_groups_grant(wall, url, user, expected):
    assert account_names(client_of(wall[user]), url) == (set() if "snapshots" in url else expected)


@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", ["alpha"]), ("bob", ["beta"]), ("audrey", ["alpha", "beta"])],
)
def test_accounts_listed_are_those_granted(wall, user, expected):
    body = client_of(wall[user]).get("/api/v1/accounts/").json()
    assert [a["name"] for a in body["results"]] == expected


def test_another_desks_records_are_not_found(wall):
    alice = client_of(wall["alice"])
    beta_order, beta_execution = wall["beta-order"], wall["beta-fill"]
    assert alice.get(f"/api/v1/accounts/{wall['beta'].id}/").status_code == 404
    assert alice.get(f"/api/v1/orders/{beta_order.id}/").status_code == 404
    assert alice.get(f"/api/v1/executions/{beta_execution.id}/").status_code == 404
    assert alice.post(f"/api/v1/orders/{beta_order.id}/cancel/").status_code == 404
    assert alice.post(f"/api/v1/executions/{beta_execution.id}/bust/").status_code == 404
    # Filtering on an account one may not see is refused as unknown, revealing nothing.
    response = alice.get(f"/api/v1/orders/?account={wall['beta'].id}")
    assert response.status_code == 400
    assert "account" in response.json()


@pytest.mark.parametrize(("user", "other"), [("alice", "beta"), ("bob", "alpha")])
def test_nobody_orders_on_another_desks_account(wall, user, other):
    client = client_of(wall[user])
    response = client.post("/api/v1/orders/", an_order(wall[other]), format="json")
    assert response.status_code == 400
    assert "account" in response.json()
    response = client.post(
        "/api/v1/executions/", execution(wall[f"{other}-order"], 10), format="json"
    )
    assert response.status_code == 400
    assert "order" in response.json()
    deposit = {"account": wall[other].id, "kind": "deposit", "amount": "5"}
    assert "account" in client.post("/api/v1/cash/", deposit, format="json").json()
    own = wall["alpha" if other == "beta" else "beta"]
    assert client.post("/api/v1/orders/", an_order(own), format="json").status_code == 201


def test_the_auditor_reads_everything_and_changes_nothing(wall, instrument):
    audrey = client_of(wall["audrey"])
    order, booked = wall["alpha-order"], wall["alpha-fill"]
    writes = [
        ("/api/v1/orders/", an_order(wall["alpha"], client_order_id="c-9")),
        (f"/api/v1/orders/{order.id}/cancel/", {}),
        ("/api/v1/executions/", execution(order, 10)),
        (f"/api/v1/executions/{booked.id}/bust/", {}),
        ("/api/v1/cash/", {"account": wall["alpha"].id, "kind": "deposit", "amount": "5"}),
        ("/api/v1/accounts/", {"name": "gamma"}),
        ("/api/v1/backtests/", backtest()),
    ]
    for url, body in writes:
        assert audrey.post(url, body, format="json").status_code == 403, url
    # A refused request is rolled back whole, its naming of who acts included: name her again
    # for the test's own reads under row-level security.
    declare(wall["audrey"])
    order.refresh_from_db()
    assert (order.status, Execution.objects.count(), BacktestRun.objects.count()) == (
        "partially_filled",
        2,
        0,
    )
    assert audrey.get(f"/api/v1/orders/{order.id}/").status_code == 200


def test_row_level_security_scopes_even_unscoped_queries(books, as_app_role):
    """The second wall: under the application's role, a query that forgets visible_to()
    still returns only the acting user's rows."""
    declare(books["alice"])
    assert set(Order.objects.values_list("account__name", flat=True)) == {"alpha"}
    assert set(Execution.objects.values_list("account__name", flat=True)) == {"alpha"}
    declare(books["bob"])
    assert set(Position.objects.values_list("account__name", flat=True)) == {"beta"}


def test_only_superusers_create_accounts(books, django_user_model):
    body = {"name": "gamma", "base_currency": "EUR", "groups": ["desk-alpha"]}
    assert (
        client_of(books["alice"]).post("/api/v1/accounts/", body, format="json").status_code == 403
    )
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    response = client_of(root).post("/api/v1/accounts/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["groups"] == ["desk-alpha"]
    # The new account is alpha's desk's now.
    names = [
        a["name"] for a in client_of(books["alice"]).get("/api/v1/accounts/").json()["results"]
    ]
    assert names == ["alpha", "gamma"]
    bad = client_of(root).post("/api/v1/accounts/", {"name": "x", "base_currency": "eur"})
    assert (bad.status_code, list(bad.json())) == (400, ["base_currency"])


# --- Orders ----------------------------------------------------------------------------------
@pytest.fixture
def alice(desks, instrument) -> APIClient:
    return client_of(desks["alice"])


def post(client: APIClient, url: str, body, status: int = 201) -> dict | list:
    response = client.post(url, body, format="json")
    assert response.status_code == status, response.content
    return response.json()


def test_the_order_lifecycle_through_the_api(alice, desks):
    order = post(
        alice, "/api/v1/orders/", an_order(desks["alpha"], order_type="limit", limit_price="10.5")
    )
    assert (order["status"], D(order["filled_quantity"]), order["instrument"]) == ("new", 0, "AAPL")
    post(alice, "/api/v1/executions/", execution(order["id"], 40, "10.5"))
    assert alice.get(f"/api/v1/orders/{order['id']}/").json()["status"] == "partially_filled"

    cancelled = post(alice, f"/api/v1/orders/{order['id']}/cancel/", {"reason": "done"}, 200)
    assert (cancelled["status"], cancelled["status_reason"]) == ("cancelled", "done")
    # Cancelling again changes nothing; a fill on a cancelled order is refused.
    again = post(alice, f"/api/v1/orders/{order['id']}/cancel/", {"reason": "twice"}, 200)
    assert (again["status"], again["status_reason"]) == ("cancelled", "done")
    refused = post(alice, "/api/v1/executions/", execution(order["id"], 10, exec_id="x-2"), 400)
    assert "cancelled" in refused["order"][0]


def test_cancelling_a_filled_order_is_refused_by_the_database(alice, desks):
    order = post(alice, "/api/v1/orders/", an_order(desks["alpha"], quantity="10"))
    post(alice, "/api/v1/executions/", execution(order["id"], 10))
    assert alice.get(f"/api/v1/orders/{order['id']}/").json()["status"] == "filled"
    body = post(alice, f"/api/v1/orders/{order['id']}/cancel/", {}, 409)
    assert body == {
        "detail": f"order {order['id']}: cannot go from filled to cancelled",
        "rule": "order_legal_transition",
    }
    assert Order.objects.get(id=order["id"]).status == "filled"


def test_a_rejected_order_cannot_be_cancelled(alice, desks, instrument):
    order = make_order(desks["alpha"], instrument)
    Order.objects.filter(id=order.id).update(status="rejected")
    body = post(alice, f"/api/v1/orders/{order.id}/cancel/", {}, 409)
    assert "cannot go from rejected to cancelled" in body["detail"]


def test_orders_filter(alice, desks, instrument):
    msft = Instrument.objects.create(symbol="MSFT", asset_class="equity")
    first = make_order(desks["alpha"], instrument)
    second = make_order(desks["alpha"], msft)
    Order.objects.filter(id=first.id).update(status="cancelled")
    make_order(desks["beta"], instrument)

    def ids(query: str) -> list[int]:
        response = alice.get(f"/api/v1/orders/{query}")
        assert response.status_code == 200, response.content
        return [o["id"] for o in response.json()["results"]]

    assert ids("") == [second.id, first.id]
    assert ids("?symbol=MSFT") == [second.id]
    assert ids("?status=cancelled") == [first.id]
    assert ids(f"?account={desks['alpha'].id}&status=new") == [second.id]
    assert ids("?since=2000-01-01&until=2999-01-01") == [second.id, first.id]
    assert ids("?until=2000-01-01") == []


# --- Executions ------------------------------------------------------------------------------
@pytest.fixture
def order(desks, instrument) -> Order:
    return make_order(desks["alpha"], instrument, quantity="100")


def test_an_execution_posted_twice_is_booked_once(alice, order):
    first = alice.post("/api/v1/executions/", execution(order, 30, fee="1"), format="json")
    again = alice.post("/api/v1/executions/", execution(order, 30, fee="1"), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    assert Execution.objects.filter(exec_id="x-1").count() == 1
    position = Position.objects.get(account=order.account, instrument=order.instrument)
    assert position.quantity == 30
    order.refresh_from_db()
    assert order.filled_quantity == 30


def test_the_same_exec_id_with_other_terms_is_a_conflict(alice, order):
    post(alice, "/api/v1/executions/", execution(order, 30))
    body = post(alice, "/api/v1/executions/", execution(order, 31), status=409)
    assert body["rule"] == "trading_execution_exec_id_key"
    assert "x-1" in body["detail"]
    assert Execution.objects.get(exec_id="x-1").quantity == 30


def test_a_batch_is_booked_in_order_and_replayed(alice, order):
    batch = [execution(order, 20, "10", exec_id=f"b-{i}") for i in range(3)]
    created = post(alice, "/api/v1/executions/", batch)
    assert [e["exec_id"] for e in created] == ["b-0", "b-1", "b-2"]
    assert [e["position_sequence"] for e in created] == [1, 2, 3]
    replayed = post(alice, "/api/v1/executions/", batch, status=200)
    assert replayed == created
    order.refresh_from_db()
    assert (order.filled_quantity, order.status) == (60, "partially_filled")


def test_a_batch_with_bad_items_is_refused_whole(alice, order, instrument):
    batch = [
        execution(order, 10, exec_id="ok-1"),
        execution(order, 10, price="0", exec_id="bad-price"),
        execution(order, -10, exec_id="bad-side"),  # a sell of a buy order
        execution(order, 10, exec_id="ok-2"),
        {**execution(order, 10, exec_id="bad-sign"), "side": "sell"},
        execution(999_999, 10, exec_id="no-order"),
    ]
    body = post(alice, "/api/v1/executions/", batch, status=400)
    assert body == {
        "1": {"price": ["must be positive"]},
        "2": {"side": [f"order {order.id} is a buy order"]},
        "4": {
            "quantity": ["is signed by its side: buys positive, sells negative"],
            "side": [f"order {order.id} is a buy order"],
        },
        "5": {"order": ["no order 999999 that you may trade"]},
    }
    assert Execution.objects.count() == 0


def test_an_exec_id_that_is_not_a_string_is_refused_by_name(alice, order):
    # Found by the fuzz test: a JSON object as exec_id was a 500 before the serializer ran.
    batch = [execution(order, 10, exec_id="ok"), {**execution(order, 10), "exec_id": {}}]
    body = post(alice, "/api/v1/executions/", batch, status=400)
    assert list(body) == ["1"]
    assert list(body["1"]) == ["exec_id"]
    assert Execution.objects.count() == 0


def test_a_batch_beyond_the_orders_quantity_is_refused_naming_the_item(alice, order):
    batch = [execution(order, 60, exec_id="a"), execution(order, 60, exec_id="b")]
    body = post(alice, "/api/v1/executions/", batch, status=400)
    assert list(body) == ["1"]
    assert "beyond its quantity" in body["1"]["quantity"][0]
    assert Execution.objects.count() == 0


def test_the_database_judges_what_the_serializer_lets_through(alice, order, monkeypatch):
    """With the serializer's quantity check gone, the trigger refuses the batch's second
    fill: 400 with the rule and the item, and the first fill is undone with it."""
    monkeypatch.setattr(executions, "fill_problem", lambda item, filled: None)
    batch = [execution(order, 60, exec_id="a"), execution(order, 60, exec_id="b")]
    body = post(alice, "/api/v1/executions/", batch, status=400)
    assert (body["rule"], body["index"]) == ("execution_within_order_quantity", 1)
    assert "beyond its quantity" in body["detail"]
    assert Execution.objects.count() == 0
    order.refresh_from_db()
    assert order.filled_quantity == 0


def test_a_check_constraint_answers_with_its_name(alice, desks, monkeypatch):
    monkeypatch.setattr(orders, "price_problems", lambda attrs: {})
    body = post(alice, "/api/v1/orders/", an_order(desks["alpha"], limit_price="10"), status=400)
    assert body["rule"] == "order_prices_match_type"
    assert Order.objects.count() == 0


def test_executions_filter(alice, order, desks, instrument):
    other = make_order(desks["alpha"], instrument)
    fill(order, 10, "10", exec_id="e-1", at=T0)
    fill(other, 10, "10", exec_id="e-2", at=T0 + timedelta(hours=1))
    fill(make_order(desks["beta"], instrument), 10, "10", exec_id="e-3", at=T0)

    def exec_ids(query: str) -> list[str]:
        response = alice.get(f"/api/v1/executions/{query}")
        assert response.status_code == 200, response.content
        return [e["exec_id"] for e in response.json()["results"]]

    assert exec_ids("") == ["e-2", "e-1"]
    assert exec_ids(f"?order={order.id}") == ["e-1"]
    assert exec_ids(f"?since={iso(T0 + timedelta(minutes=1))}") == ["e-2"]
    assert exec_ids(f"?until={iso(T0 + timedelta(minutes=1))}&symbol=AAPL") == ["e-1"]
    assert exec_ids(f"?account={desks['alpha'].id}&kind=bust") == []


# --- Busts -----------------------------------------------------------------------------------
def test_a_bust_restores_the_order_position_and_cash(alice, order):
    post(alice, "/api/v1/executions/", execution(order, 40, "10", exec_id="keep"))
    booked = post(alice, "/api/v1/executions/", execution(order, 60, "12", fee="2"))
    bust = post(alice, f"/api/v1/executions/{booked['id']}/bust/", {"reason": "wrong price"})
    assert (bust["exec_id"], bust["kind"], bust["supersedes"]) == ("x-1-bust", "bust", booked["id"])
    assert (D(bust["quantity"]), D(bust["fee"]), bust["side"]) == (D(-60), D(-2), "sell")

    position = Position.objects.get(account=order.account, instrument=order.instrument)
    assert (position.quantity, position.average_cost) == (40, 10)
    order.refresh_from_db()
    assert (order.filled_quantity, order.status) == (40, "partially_filled")
    cash = sum(CashEntry.objects.filter(account=order.account).values_list("amount", flat=True))
    assert cash == D(-400)

    again = post(alice, f"/api/v1/executions/{booked['id']}/bust/", {}, status=409)
    assert again["rule"] == "execution_superseded_once"
    of_bust = post(alice, f"/api/v1/executions/{bust['id']}/bust/", {}, status=400)
    assert of_bust["rule"] == "execution_supersedes_same_order"


def test_a_bust_takes_the_clients_exec_id(alice, order):
    booked = post(alice, "/api/v1/executions/", execution(order, 5))
    bust = post(alice, f"/api/v1/executions/{booked['id']}/bust/", {"exec_id": "venue-b-77"})
    assert bust["exec_id"] == "venue-b-77"
    other = post(alice, "/api/v1/executions/", execution(order, 5, exec_id="other"))
    taken = post(alice, f"/api/v1/executions/{other['id']}/bust/", {"exec_id": "x-1"}, 409)
    assert (taken["rule"], Execution.objects.count()) == ("trading_execution_exec_id_key", 3)


# --- Positions, cash, snapshots --------------------------------------------------------------
def test_positions_are_read_only_and_filter_by_account(wall):
    alice = client_of(wall["alice"])
    rows = alice.get(f"/api/v1/positions/?account={wall['alpha'].id}").json()["results"]
    assert [(r["instrument"], D(r["quantity"])) for r in rows] == [("AAPL", D(50))]
    assert alice.post("/api/v1/positions/", {}, format="json").status_code == 405
    assert alice.delete(f"/api/v1/positions/{rows[0]['id']}/").status_code == 405


def test_a_deposit_and_what_cash_refuses(alice, desks):
    alpha = desks["alpha"]
    deposit = post(
        alice, "/api/v1/cash/", {"account": alpha.id, "kind": "deposit", "amount": "500"}
    )
    assert (deposit["currency"], D(deposit["amount"]), deposit["execution"]) == (
        "USD",
        D(500),
        None,
    )
    refusals = [
        ({"kind": "trade", "amount": "5"}, "kind"),
        ({"kind": "fee", "amount": "-5"}, "kind"),
        ({"kind": "deposit", "amount": "-5"}, "amount"),
        ({"kind": "withdrawal", "amount": "5"}, "amount"),
        ({"kind": "adjustment", "amount": "0"}, "amount"),
        ({"kind": "deposit", "amount": "5", "currency": "usd"}, "currency"),
        ({"kind": "deposit", "amount": "NaN"}, "amount"),
    ]
    for body, field in refusals:
        answer = post(alice, "/api/v1/cash/", {"account": alpha.id, **body}, status=400)
        assert list(answer) == [field], (body, answer)
    listed = alice.get("/api/v1/cash/?kind=deposit").json()["results"]
    assert [D(c["amount"]) for c in listed] == [D(500)]


def test_snapshots_are_read_only_and_filter(alice, desks):
    partitions.prepare_load("trading_portfoliosnapshot", T0, T0 + timedelta(days=3))
    for account in (desks["alpha"], desks["beta"]):
        for day in range(3):
            PortfolioSnapshot.objects.create(
                account=account,
                ts=T0 + timedelta(days=day),
                currency="USD",
                cash=D(100),
                market_value=D(day),
                nav=D(100 + day),
                gross_exposure=D(day),
                net_exposure=D(day),
            )
    url = f"/api/v1/portfolio/snapshots/?account={desks['alpha'].id}&since={iso(T0)}"
    rows = alice.get(url + f"&until={iso(T0 + timedelta(days=2))}").json()["results"]
    assert [D(r["nav"]) for r in rows] == [D(101), D(100)]
    assert alice.post("/api/v1/portfolio/snapshots/", {}, format="json").status_code == 405


# --- Backtests -------------------------------------------------------------------------------
def backtest(**extra) -> dict:
    return {
        "strategy": "momentum",
        "parameters": {"lookback": 20},
        "period_start": "2024-01-01T00:00:00Z",
        "period_end": "2024-06-01T00:00:00Z",
        "status": "succeeded",
        "sharpe": 1.4,
        "max_drawdown": 0.12,
        "trades": [
            {
                "instrument": "AAPL",
                "ts": "2024-02-01T15:00:00Z",
                "side": "buy",
                "quantity": "10",
                "price": "180",
            },
            {
                "instrument": "AAPL",
                "ts": "2024-03-01T15:00:00Z",
                "side": "sell",
                "quantity": "-10",
                "price": "190",
                "pnl": "100",
            },
        ],
        **extra,
    }


def test_a_backtest_with_its_trades(alice, desks):
    run = post(alice, "/api/v1/backtests/", backtest())
    assert (run["created_by"], run["trade_count"], "trades" in run) == ("alice", 2, False)
    trades = alice.get(f"/api/v1/backtests/{run['id']}/trades/").json()["results"]
    assert [(t["side"], D(t["quantity"])) for t in trades] == [("buy", D(10)), ("sell", D(-10))]
    # Anyone but an auditor records runs; everyone reads them.
    audrey = client_of(desks["audrey"])
    assert [
        r["id"] for r in audrey.get("/api/v1/backtests/?strategy=momentum").json()["results"]
    ] == [run["id"]]
    assert audrey.get("/api/v1/backtests/?strategy=other").json()["results"] == []


def test_a_backtest_with_a_bad_trade_is_refused_whole(alice):
    bad = backtest()
    bad["trades"][1]["price"] = "0"
    bad["trades"].append({**bad["trades"][0], "ts": "2025-01-01T00:00:00Z"})
    body = post(alice, "/api/v1/backtests/", bad, status=400)
    assert body == {"trades": {"1": {"price": ["must be positive"]}}}
    body = post(
        alice, "/api/v1/backtests/", {**backtest(), "trades": [bad["trades"][2]]}, status=400
    )
    assert body == {"trades": {"0": {"ts": ["lies outside the run's period"]}}}
    assert (BacktestRun.objects.count(), BacktestTrade.objects.count()) == (0, 0)


# --- Bad input -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-5"}, "quantity"),
        ({"quantity": "1e30"}, "quantity"),
        ({"quantity": "NaN"}, "quantity"),
        ({"side": "short"}, "side"),
        ({"instrument": "NOPE"}, "instrument"),
        ({"account": 999_999}, "account"),
        ({"account": "alpha"}, "account"),
        ({"order_type": "limit"}, "limit_price"),
        ({"limit_price": "10"}, "limit_price"),
        ({"order_type": "stop", "stop_price": "-1"}, "stop_price"),
        ({"order_type": "stop_limit", "limit_price": "10"}, "stop_price"),
        ({"time_in_force": "forever"}, "time_in_force"),
        ({"client_order_id": ""}, "client_order_id"),
        ({"client_order_id": "taken"}, "client_order_id"),
        ({"client_order_id": "a\x00b"}, "client_order_id"),
    ],
)
def test_bad_orders_answer_400_naming_the_field(alice, desks, instrument, changes, field):
    make_order(desks["alpha"], instrument, client_order_id="taken")
    body = post(alice, "/api/v1/orders/", {**an_order(desks["alpha"]), **changes}, status=400)
    assert list(body) == [field], body


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-5"}, "quantity"),
        ({"price": "-1"}, "price"),
        ({"fee": "-1"}, "fee"),
        ({"liquidity": "dark"}, "liquidity"),
        ({"executed_at": "noon"}, "executed_at"),
        ({"exec_id": ""}, "exec_id"),
        ({"exec_id": "x" * 65}, "exec_id"),
        ({"order": "abc"}, "order"),
        ({"order": 2**70}, "order"),
        ({"quantity": "500"}, "quantity"),
    ],
)
def test_bad_executions_answer_400_naming_the_field(alice, order, changes, field):
    body = post(alice, "/api/v1/executions/", {**execution(order, 10), **changes}, status=400)
    assert list(body) == [field], body


@pytest.mark.parametrize(
    "body", [[], "text", 5, None, [1, 2], {"exec_id": None}, [{"exec_id": "a\x00"}]]
)
def test_odd_execution_bodies_are_refused_without_a_server_error(alice, order, body):
    response = alice.post("/api/v1/executions/", body, format="json")
    assert response.status_code == 400, response.content


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/orders/?account=abc", "account"),
        ("/api/v1/orders/?account=999999", "account"),
        ("/api/v1/orders/?account=99999999999999999999999", "account"),
        ("/api/v1/orders/?status=open", "status"),
        ("/api/v1/orders/?symbol=NOPE", "symbol"),
        ("/api/v1/orders/?since=2024-02-01&until=2024-01-01", "since"),
        ("/api/v1/executions/?order=-1", "order"),
        ("/api/v1/executions/?until=soon", "until"),
        ("/api/v1/positions/?symbol=NOPE", "symbol"),
        ("/api/v1/cash/?kind=gift", "kind"),
        ("/api/v1/portfolio/snapshots/?since=yesterday", "since"),
        ("/api/v1/backtests/?status=done", "status"),
    ],
)
def test_bad_filters_answer_400_naming_the_parameter(alice, url, field):
    response = alice.get(url)
    assert response.status_code == 400, response.content
    assert field in response.json()


# --- Queries per list ------------------------------------------------------------------------
# Each request of a logged-in user: its session and user, and its transaction (a savepoint in
# the test's, its release) which begins by naming who acts; then the view's queries.
REQUEST = 5


@pytest.mark.parametrize(
    ("url", "most"),
    [
        ("/api/v1/accounts/", REQUEST + 4),  # is the user an auditor; count, page; groups
        # is the user an auditor (twice: querysets.py asks once per visible_to); count, page
        ("/api/v1/orders/", REQUEST + 4),
        ("/api/v1/executions/", REQUEST + 3),  # a cursor page: no count
        ("/api/v1/positions/", REQUEST + 4),
        ("/api/v1/cash/", REQUEST + 4),
        ("/api/v1/backtests/", REQUEST + 2),  # count, page (with the trade counts)
    ],
)
def test_lists_make_a_bounded_number_of_queries(
    desks, instrument, django_assert_max_num_queries, url, most
):
    desk = desks["alpha"].groups.get()
    for n in range(10):
        account = Account.objects.create(name=f"alpha-{n}")
        account.groups.add(desk)
        symbol = Instrument.objects.create(symbol=f"S{n}", asset_class="equity")
        fill(make_order(account, symbol), 5, "10")
        CashEntry.objects.create(
            account=account, kind="deposit", amount=D(5), currency="USD", entry_at=T0
        )
        BacktestRun.objects.create(
            strategy="s",
            period_start=T0,
            period_end=T0 + timedelta(days=1),
            created_by=desks["alice"],
        )
    client = client_of(desks["alice"])
    with django_assert_max_num_queries(most):
        response = client.get(url)
    assert response.status_code == 200
    assert len(response.json()["results"]) >= 10


# --- Schema ----------------------------------------------------------------------------------
def test_the_schema_generates_without_warnings_and_describes_the_trading_api(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=StringIO()
    )
    text = out.read_text()
    for path in (
        "/api/v1/accounts/",
        "/api/v1/orders/{id}/cancel/",
        "/api/v1/executions/{id}/bust/",
        "/api/v1/positions/",
        "/api/v1/cash/",
        "/api/v1/portfolio/snapshots/",
        "/api/v1/backtests/{id}/trades/",
    ):
        assert f"  {path}:" in text
    assert "ExecutionOrBatch" in text


# --- Under the application's role ------------------------------------------------------------
def test_orders_fills_and_busts_under_the_application_role(books, as_app_role):
    """The served site runs as trading_app: row-level security and the role's column grants
    apply to every write the API makes."""
    alice = client_of(books["alice"])
    order = post(alice, "/api/v1/orders/", an_order(books["alpha"], quantity="10"))
    booked = post(alice, "/api/v1/executions/", execution(order["id"], 4))
    post(alice, "/api/v1/executions/", execution(order["id"], 4), status=200)
    post(alice, f"/api/v1/executions/{booked['id']}/bust/", {})
    cancelled = post(alice, f"/api/v1/orders/{order['id']}/cancel/", {}, status=200)
    assert (cancelled["status"], D(cancelled["filled_quantity"])) == ("cancelled", 0)
    post(alice, "/api/v1/cash/", {"account": books["alpha"].id, "kind": "deposit", "amount": "1"})
    post(alice, "/api/v1/backtests/", backtest())


def test_a_superuser_creates_an_account_under_the_application_role(
    books, as_app_role, django_user_model
):
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    body = post(client_of(root), "/api/v1/accounts/", {"name": "gamma", "groups": ["desk-beta"]})
    assert body["name"] == "gamma"  # today: 403, {"rule": "row_level_security"}
