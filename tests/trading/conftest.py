from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from marketdata.models import Instrument
from trading.models import Account, Execution, Order

T0 = datetime(2024, 5, 13, 14, 30, tzinfo=UTC)
_ids = itertools.count(1)


@pytest.fixture
def instrument(db):
    return Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def account(db):
    return Account.objects.create(name="alpha", base_currency="USD")


def make_order(account, instrument, side="buy", quantity="100", **extra) -> Order:
    return Order.objects.create(
        account=account,
        instrument=instrument,
        client_order_id=extra.pop("client_order_id", f"co-{next(_ids)}"),
        side=side,
        quantity=Decimal(quantity),
        **extra,
    )


def fill(order, quantity, price, *, fee="0", exec_id=None, at=None, **extra) -> Execution:
    """Book an execution of ``order`` (signed quantity as given)."""
    quantity = Decimal(str(quantity))
    values = {
        "account_id": order.account_id,
        "instrument_id": order.instrument_id,
        "side": "buy" if quantity > 0 else "sell",
        **extra,
    }
    return Execution.objects.create(
        exec_id=exec_id or f"ex-{next(_ids)}",
        order=order,
        quantity=quantity,
        price=Decimal(str(price)),
        fee=Decimal(str(fee)),
        executed_at=at or T0 + timedelta(seconds=next(_ids)),
        **values,
    )


@pytest.fixture
def desks(db):
    """Two desks with an account each, a trader in each, and an auditor."""
    from django.contrib.auth import get_user_model

    users = get_user_model()
    alpha_group, beta_group = (
        Group.objects.create(name="desk-alpha"),
        Group.objects.create(name="desk-beta"),
    )
    auditors = Group.objects.get_or_create(name="auditors")[0]
    alpha, beta = Account.objects.create(name="alpha"), Account.objects.create(name="beta")
    alpha.groups.add(alpha_group)
    beta.groups.add(beta_group)
    alice = users.objects.create_user("alice", password="pw-alice-1234")
    bob = users.objects.create_user("bob", password="pw-bob-1234")
    audrey = users.objects.create_user("audrey", password="pw-audrey-1234")
    alice.groups.add(alpha_group)
    bob.groups.add(beta_group)
    audrey.groups.add(auditors)
    return {"alpha": alpha, "beta": beta, "alice": alice, "bob": bob, "audrey": audrey}
