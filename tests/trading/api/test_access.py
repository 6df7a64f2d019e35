"""Who may use the trading API: anonymous users refused; each user sees the accounts their
groups grant (by the querysets, and by row-level security under the application's role);
another desk's records are not found; the auditor reads everything and changes nothing."""

from __future__ import annotations

import pytest
from django.db import transaction

from qvp_site.acting import declare
from tests.clients import client_of
from tests.fixtures.trading_api import URLS, account_names, an_order, backtest, execution
from trading.models import BacktestRun, Execution, Order, Position


@pytest.mark.parametrize("url", URLS)
def test_anonymous_users_are_refused(client, books, url):
    assert client.get(url).status_code in (401, 403)
    assert client.post(url, {}, content_type="application/json").status_code in (401, 403)


def test_anonymous_users_cannot_cancel_or_bust(client, books):
    order, booked = books["alpha-order"], books["alpha-fill"]
    assert client.post(f"/api/v1/orders/{order.id}/cancel/").status_code in (401, 403)
    assert client.post(f"/api/v1/executions/{booked.id}/bust/").status_code in (401, 403)
    assert Order.objects.filter(status="cancelled").count() == 0


@pytest.mark.parametrize("url", URLS[1:-1])
@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", {"alpha"}), ("bob", {"beta"}), ("audrey", {"alpha", "beta"})],
)
def test_each_user_sees_the_accounts_their_groups_grant(wall, url, user, expected):
    assert account_names(client_of(wall[user]), url) == (set() if "snapshots" in url else expected)


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
    with transaction.atomic():  # a declaration lasts its transaction (on Citus, committed)
        declare(books["alice"])
        assert set(Order.objects.values_list("account__name", flat=True)) == {"alpha"}
        assert set(Execution.objects.values_list("account__name", flat=True)) == {"alpha"}
    with transaction.atomic():
        declare(books["bob"])
        assert set(Position.objects.values_list("account__name", flat=True)) == {"beta"}
