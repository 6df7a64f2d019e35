"""A single execution POSTed (the API's busiest write, issue 27): its order and any execution
booked under its exec id read in one query, booked in one call without a savepoint of its
own; and a batch's refusal by the database names the item it refused (``refused_index``)."""

from __future__ import annotations

from decimal import Decimal as D

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from tests.fixtures.trading import T0, make_order
from tests.fixtures.trading_api import execution, post
from trading import books as booking
from trading.api import executions
from trading.models import Execution, Position


def statements_of(client, body: dict, status: int) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        post(client, "/api/v1/executions/", body, status=status)
    return [q["sql"] for q in queries.captured_queries]


def test_a_single_fill_reads_its_order_once_and_books_in_one_call(alice, order):
    sql = statements_of(alice, execution(order, 5, exec_id="one"), 201)
    booking = next(n for n, s in enumerate(sql) if "trading_book_executions" in s)
    before = sql[:booking]
    # The order's query carries the exec id's lookup; nothing else reads executions first.
    assert [s for s in before if "trading_execution" in s and "trading_order" not in s] == []
    assert sum("trading_book_executions" in s for s in sql) == 1
    # Only the request's own savepoint (the test's transaction holds the request's).
    assert sum(s.startswith("SAVEPOINT") for s in sql) == 1
    position = Position.objects.get(account=order.account, instrument=order.instrument)
    assert (position.quantity, position.last_sequence) == (D(5), 1)


def test_a_single_replay_and_conflict_are_answered_as_before(alice, order):
    first = post(alice, "/api/v1/executions/", execution(order, 5, exec_id="again"))
    replay = post(alice, "/api/v1/executions/", execution(order, 5, exec_id="again"), 200)
    assert replay["id"] == first["id"]
    body = post(alice, "/api/v1/executions/", execution(order, 6, exec_id="again"), 409)
    assert body["rule"] == "execution_exec_id_unique_per_account"
    # The last fill of a filled order comes back as a replay, not refused beyond quantity.
    post(alice, "/api/v1/executions/", execution(order, 95, exec_id="rest"))
    post(alice, "/api/v1/executions/", execution(order, 95, exec_id="rest"), 200)
    assert Execution.objects.filter(order=order).count() == 2


def test_a_single_fill_refused_by_the_database_leaves_nothing(alice, order, monkeypatch):
    """Without its own savepoint, the database's refusal still answers 400 by its rule, and
    the request's transaction is rolled back."""
    monkeypatch.setattr(executions, "fill_problem", lambda item, filled: None)
    body = post(alice, "/api/v1/executions/", execution(order, 101, exec_id="big"), 400)
    assert body["rule"] == "execution_within_order_quantity"
    assert Execution.objects.count() == 0
    assert post(alice, "/api/v1/executions/", execution(order, 100, exec_id="ok"))["id"]


def test_a_duplicate_exec_id_names_the_item_of_the_account_that_holds_it(books):
    """Two items share an exec id in two accounts; the second account holds it already with
    other terms: the refusal names the second item, not the first with that exec id."""
    held = books["beta-fill"].exec_id
    rows = [
        booking.fill_row(books["alpha-order"], held, D(1), D(10), T0),
        booking.fill_row(books["beta-order"], held, D(2), D(10), T0),
    ]
    with acting_as("test"):
        with pytest.raises(DatabaseError) as refused, transaction.atomic():
            booking.book_many(rows)
        assert "already booked with different terms" in str(refused.value)
        assert executions.refused_index(refused.value, list(enumerate(rows))) == 1


@pytest.mark.django_db(transaction=True)
def test_a_refusal_by_row_level_security_names_the_item_of_its_account(desks, app_role_password):
    stock = Instrument.objects.create(symbol="RLS9", asset_class="equity")
    mine = make_order(desks["alpha"], stock, quantity="10")
    theirs = make_order(desks["beta"], stock, quantity="10")
    rows = [
        booking.fill_row(mine, "a-1", D(1), D(10), T0),
        booking.fill_row(theirs, "b-1", D(1), D(10), T0),
    ]
    params = connection.settings_dict
    with psycopg.connect(
        dbname=params["NAME"], host=params.get("HOST") or None, port=params.get("PORT") or None,
        user="trading_app", password=app_role_password,
    ) as conn:  # fmt: skip
        conn.execute("SELECT set_config('qvp.user_id', %s, false)", [str(desks["alice"].pk)])
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as raised:
            conn.execute(
                booking.BOOK, [[None, None], *([r[c] for r in rows] for c in booking.COLUMNS)]
            )
    error = DatabaseError(str(raised.value))
    error.__cause__ = raised.value
    assert executions.refused_index(error, list(enumerate(rows))) == 1


def test_a_refusal_names_the_item_whose_exec_id_it_names_not_a_prefix_of_it():
    """Exec ids "A" and "A: B": the refusal of "A: B" begins with "execution A: " too, and
    names the second item."""
    rows = [{"account_id": 1, "exec_id": "A"}, {"account_id": 1, "exec_id": "A: B"}]
    refused = DatabaseError("execution A: B: fills 11 beyond the order's quantity 10")
    assert executions.refused_index(refused, list(enumerate(rows))) == 1
    refused = DatabaseError("execution A: fills 11 beyond the order's quantity 10")
    assert executions.refused_index(refused, list(enumerate(rows))) == 0
