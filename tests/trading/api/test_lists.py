"""Every trading list: bad filters answered 400 naming the parameter, and a bounded number of
queries per list."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from marketdata.models import Instrument
from tests.clients import client_of
from tests.fixtures.trading import T0, fill, make_order
from trading.models import Account, BacktestRun, CashEntry

D = Decimal


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
