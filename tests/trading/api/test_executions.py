"""/api/v1/executions/: idempotent executions, batches booked in order or refused whole,
busts, filters, and bad bodies answered 400 naming the field or with the database's rule."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from tests.clients import client_of
from tests.fixtures.trading import T0, fill, make_order
from tests.fixtures.trading_api import an_order, backtest, execution, iso, post
from trading.api import executions
from trading.models import CashEntry, Execution, Position

D = Decimal


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
    assert body["rule"] == "execution_exec_id_unique_per_account"
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
    assert (taken["rule"], Execution.objects.count()) == ("execution_exec_id_unique_per_account", 3)


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


def test_two_accounts_book_the_same_exec_id(books, as_app_role):
    """An exec id is unique within its account: alice's account takes the exec id beta's
    holds, with other terms, and neither learns of the other (no conflict, no replay)."""
    alice, bob = client_of(books["alice"]), client_of(books["bob"])
    alpha_order, beta_order = books["alpha-order"], books["beta-order"]
    taken = books["beta-fill"].exec_id
    mine = post(alice, "/api/v1/executions/", execution(alpha_order, 7, "11", exec_id=taken))
    assert (mine["account"], mine["exec_id"], D(mine["quantity"])) == (books["alpha"].id, taken, 7)
    # Again: alice's own execution comes back as the replay, never beta's.
    replay = post(alice, "/api/v1/executions/", execution(alpha_order, 7, "11", exec_id=taken), 200)
    assert replay["id"] == mine["id"]
    # In a batch too, and bob books an exec id alice's account holds.
    batch = [execution(alpha_order, 1, exec_id="shared-1"), execution(alpha_order, 1, "12")]
    post(alice, "/api/v1/executions/", batch)
    theirs = post(bob, "/api/v1/executions/", execution(beta_order, 2, exec_id="shared-1"))
    assert theirs["account"] == books["beta"].id
    # A bust may take an exec id of another account.
    bust = post(alice, f"/api/v1/executions/{mine['id']}/bust/", {"exec_id": "shared-1-b"})
    post(bob, f"/api/v1/executions/{theirs['id']}/bust/", {"exec_id": "shared-1-b"})
    assert bust["supersedes"] == mine["id"]
    # Each account's own exec id with other terms is still a conflict.
    body = post(alice, "/api/v1/executions/", execution(alpha_order, 2, exec_id=taken), 409)
    assert body["rule"] == "execution_exec_id_unique_per_account"


def test_another_accounts_exec_ids_tell_a_user_nothing(books):
    """Posting, replaying and busting under beta's exec ids answers alice exactly as under
    exec ids nobody holds: her own executions, never a 409 about beta's."""
    alice, order = client_of(books["alice"]), books["alpha-order"]
    answers = []
    for exec_id in (books["beta-fill"].exec_id, "nobody-has-it"):
        first = alice.post(
            "/api/v1/executions/", execution(order, 3, exec_id=exec_id), format="json"
        )
        again = alice.post(
            "/api/v1/executions/", execution(order, 3, exec_id=exec_id), format="json"
        )
        answers.append((first.status_code, again.status_code, first.json()["account"]))
    assert answers == [(201, 200, books["alpha"].id)] * 2
    assert Execution.objects.get(pk=books["beta-fill"].pk).quantity == 50
