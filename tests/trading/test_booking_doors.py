"""One way into the books (trading/books.py): the API, the admin and import_executions book
executions alike and are refused alike."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from tests.fixtures.trading import fill, make_order
from trading import books
from trading.models import Execution, Order, Position

HEADER = (
    "exec_id,account,client_order_id,symbol,side,quantity,price,fee,executed_at,kind,supersedes"
)
SECOND_BUST = "execution x1 was already busted or corrected"


@pytest.fixture
def busted(account, instrument) -> Execution:
    """Order o-1 (10 to buy) with a fill x1 of 4, busted once."""
    order = make_order(account, instrument, client_order_id="o-1", quantity="10")
    original = fill(order, 4, "10", exec_id="x1")
    books.bust(original, "x1-bust", "booked twice")
    return original


def imported(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "executions.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n")
    out = StringIO()
    call_command("import_executions", str(path), stdout=out)
    return out.getvalue()


def test_a_second_bust_is_refused_by_the_same_rule_through_the_api(admin_client, busted):
    response = admin_client.post(
        f"/api/v1/executions/{busted.pk}/bust/", {}, content_type="application/json"
    )
    assert response.status_code == 409
    body = response.json()
    assert body["rule"] == "execution_superseded_once"
    assert body["detail"] == f"{SECOND_BUST} by x1-bust"


def test_a_second_bust_is_refused_by_the_same_rule_through_the_admin(admin_client, busted):
    response = admin_client.post(
        reverse("admin:trading_execution_changelist"),
        {"action": "bust", "_selected_action": [busted.pk]},
    )
    (message,) = [str(m) for m in get_messages(response.wsgi_request)]
    rule = "Refused by the database rule execution_superseded_once"
    assert message.endswith(f": {rule}: {SECOND_BUST} by x1-bust")


def test_a_second_bust_is_refused_by_the_same_rule_through_the_import(tmp_path, busted):
    with pytest.raises(CommandError) as refused:
        imported(tmp_path, "b2,alpha,o-1,AAPL,sell,-4,10,0,2024-05-13T15:00:00Z,bust,x1")
    assert f"line 2: execution b2: {SECOND_BUST}" in str(refused.value)
    assert Execution.objects.filter(supersedes=busted).count() == 1


def test_an_execution_booked_by_the_api_is_a_replay_for_the_import(
    admin_client, account, instrument, tmp_path
):
    order = make_order(account, instrument, client_order_id="o-2", quantity="10")
    fill_in = {"exec_id": "y1", "order": order.pk, "side": "buy", "quantity": "3",
               "price": "10", "fee": "0", "executed_at": "2024-05-13T15:00:00Z"}  # fmt: skip
    response = admin_client.post("/api/v1/executions/", fill_in, content_type="application/json")
    assert response.status_code == 201, response.content
    out = imported(tmp_path, "y1,alpha,o-2,AAPL,buy,3,10,0,2024-05-13T15:00:00Z,fill,")
    assert "1 rows read, 0 booked, 1 already booked" in out
    order.refresh_from_db()
    assert order.filled_quantity == 3
    assert Position.objects.get(account=account, instrument=instrument).quantity == 3


def test_the_admin_books_its_add_form_as_the_other_doors(admin_client, account, instrument):
    order = make_order(account, instrument, client_order_id="o-3", quantity="10")
    form = {"exec_id": "z1", "order": order.pk, "account": account.pk,
            "instrument": instrument.pk, "side": "buy", "quantity": "10", "price": "10",
            "fee": "0", "liquidity": "unknown", "executed_at_0": "2024-05-13",
            "executed_at_1": "15:00:00", "kind": "fill", "reason": ""}  # fmt: skip
    response = admin_client.post(reverse("admin:trading_execution_add"), form)
    assert response.status_code == 302
    booked = Execution.objects.get(exec_id="z1")
    assert response["Location"].endswith(reverse("admin:trading_execution_changelist"))
    assert (booked.position_sequence, booked.order_filled_after) == (1, 10)
    assert Order.objects.get(pk=order.pk).status == "filled"
