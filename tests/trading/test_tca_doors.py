"""The doors of the fields transaction cost analysis groups by: an order's strategy, agent and
decision price through the API (as the application's role, row-level security on), refused by
name when bad; an execution's venue through the API and import_executions; what an older SQL
insert that names its columns without them gets."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction

from qvp_site.acting import declare
from signals.models import Agent
from tests.fixtures.trading import fill, make_order
from tests.fixtures.trading_api import an_order, execution, post
from trading.models import Execution, Order


@pytest.fixture
def momentum(db) -> Agent:
    return Agent.objects.create(name="mom-1", kind="momentum")


def test_an_order_records_who_decided_it_and_at_what_price(alice, desks, momentum, as_app_role):
    body = an_order(desks["alpha"], strategy="pairs", agent=momentum.pk, decision_price="99.5")
    answer = post(alice, "/api/v1/orders/", body)
    assert (answer["strategy"], answer["agent"], answer["decision_price"]) == (
        "pairs",
        momentum.pk,
        "99.50000000",
    )
    with transaction.atomic():  # as alice: the role sees her rows (on Citus, committed)
        declare(desks["alice"])
        saved = Order.objects.get(pk=answer["id"])
    assert (saved.strategy, saved.agent_id, saved.decision_price) == (
        "pairs",
        momentum.pk,
        Decimal("99.5"),
    )


def test_an_order_without_them_has_none(alice, desks, as_app_role):
    answer = post(alice, "/api/v1/orders/", an_order(desks["alpha"]))
    assert (answer["strategy"], answer["agent"], answer["decision_price"]) == ("", None, None)


@pytest.mark.parametrize(
    ("given", "field"),
    [
        ({"agent": 999999}, "agent"),
        ({"decision_price": "0"}, "decision_price"),
        ({"decision_price": "-1"}, "decision_price"),
        ({"strategy": "x" * 101}, "strategy"),
    ],
)
def test_a_bad_decision_field_is_a_400_naming_it(alice, desks, given, field):
    answer = post(alice, "/api/v1/orders/", an_order(desks["alpha"], **given), status=400)
    assert field in answer
    assert not Order.objects.exists()


def test_the_database_refuses_a_decision_price_that_is_not_positive(account, instrument):
    with pytest.raises(IntegrityError, match="order_decision_price_positive"):
        make_order(account, instrument, decision_price=Decimal(0))


def test_an_execution_shows_its_venue(alice, desks, instrument):
    placed = make_order(desks["alpha"], instrument)
    fill(placed, 10, "10", venue="XNAS")
    (row,) = alice.get("/api/v1/executions/").json()["results"]
    assert row["venue"] == "XNAS"


def test_an_execution_booked_through_the_api_keeps_its_venue(alice, desks, instrument):
    placed = make_order(desks["alpha"], instrument)
    answer = post(alice, "/api/v1/executions/", execution(placed, 10, venue="ARCX"))
    assert answer["venue"] == "ARCX"
    assert Execution.objects.get().venue == "ARCX"


def test_a_bust_keeps_the_venue_of_the_fill_it_takes_back(alice, desks, instrument):
    placed = make_order(desks["alpha"], instrument)
    busted = fill(placed, 10, "10", venue="XNAS")
    post(alice, f"/api/v1/executions/{busted.pk}/bust/", {"reason": "broker bust"})
    assert Execution.objects.get(kind="bust").venue == "XNAS"


def test_a_venue_too_long_is_a_400_naming_it(alice, desks, instrument):
    placed = make_order(desks["alpha"], instrument)
    answer = post(alice, "/api/v1/executions/", execution(placed, 10, venue="V" * 17), 400)
    assert "venue" in answer


HEADER = "exec_id,account,client_order_id,symbol,side,quantity,price,executed_at,venue"


def imported(tmp_path: Path, *lines: str) -> None:
    path = tmp_path / "executions.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    call_command("import_executions", str(path), stdout=StringIO())


def test_an_imported_file_may_name_the_venue(account, instrument, tmp_path):
    make_order(account, instrument, client_order_id="o-1", quantity="10")
    imported(
        tmp_path,
        "x1,alpha,o-1,AAPL,buy,4,10,2024-05-13T15:00:00Z,XNYS",
        "x2,alpha,o-1,AAPL,buy,4,10,2024-05-13T15:01:00Z,",
    )
    assert dict(Execution.objects.values_list("exec_id", "venue")) == {"x1": "XNYS", "x2": ""}


def test_an_imported_venue_too_long_refuses_its_line(account, instrument, tmp_path):
    from django.core.management.base import CommandError

    make_order(account, instrument, client_order_id="o-1", quantity="10")
    with pytest.raises(CommandError, match=r"line 2: .*venue longer than 16"):
        imported(tmp_path, f"x1,alpha,o-1,AAPL,buy,4,10,2024-05-13T15:00:00Z,{'V' * 17}")
    assert not Execution.objects.exists()


def test_an_insert_that_names_no_new_column_gets_their_defaults(account, instrument):
    placed = make_order(account, instrument)
    with connection.cursor() as cursor:
        # As the books' SQL inserts of busts and corrections, and older clients, name them.
        cursor.execute(
            "INSERT INTO trading_order (account_id, instrument_id, client_order_id, side,"
            " order_type, quantity, time_in_force, filled_quantity, status, status_reason)"
            " VALUES (%s, %s, 'raw-1', 'buy', 'market', 5, 'day', 0, 'new', '') RETURNING id",
            [account.pk, instrument.pk],
        )
        (raw,) = cursor.fetchone()
    fill(placed, 10, "10")
    assert Order.objects.filter(pk=raw).values_list("strategy", "agent", "decision_price")[0] == (
        "",
        None,
        None,
    )
    assert Execution.objects.get().venue == ""
