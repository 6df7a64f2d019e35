"""/api/v1/orders/: the lifecycle, cancels the database refuses, filters, and bad orders
answered 400 naming the field or with the database's rule."""

from __future__ import annotations

from decimal import Decimal

import pytest

from marketdata.models import Instrument
from tests.fixtures.trading import make_order
from tests.fixtures.trading_api import an_order, execution, post
from trading.api import orders
from trading.models import Order

D = Decimal


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


def test_a_check_constraint_answers_with_its_name(alice, desks, monkeypatch):
    monkeypatch.setattr(orders, "price_problems", lambda attrs: {})
    body = post(alice, "/api/v1/orders/", an_order(desks["alpha"], limit_price="10"), status=400)
    assert body["rule"] == "order_prices_match_type"
    assert Order.objects.count() == 0


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
