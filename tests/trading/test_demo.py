"""seed_demo's trading records agree with the books, the demo prices and the snapshots."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Q

from marketdata import demo as bars_demo
from marketdata.models import Instrument, MinuteBar
from marketdata.prices import latest_prices
from trading import demo
from trading.models import Account, CashEntry, Execution, Order, PortfolioSnapshot, Position

END = date(2024, 5, 17)
DAYS = 20


@pytest.fixture
def seeded(db) -> str:
    out = StringIO()
    call_command("seed_demo", "--days", str(DAYS), "--end", END.isoformat(), stdout=out)
    return out.getvalue()


def in_force():
    return Execution.objects.exclude(kind="bust").filter(superseded_by__isnull=True)


def test_each_position_is_the_sum_of_its_executions(seeded):
    assert "Trading demo: 2 accounts" in seeded
    sums = defaultdict(Decimal)
    for e in in_force():
        sums[e.account_id, e.instrument_id] += e.quantity
    positions = {(p.account_id, p.instrument_id): p.quantity for p in Position.objects.all()}
    assert positions == sums
    assert Execution.objects.count() > 10
    for order in Order.objects.all():
        filled = sum(abs(e.quantity) for e in in_force().filter(order=order))
        assert order.filled_quantity == filled


def test_fills_are_at_the_closes_of_the_demo_bars(seeded):
    fills = Execution.objects.filter(kind="fill").select_related("instrument")
    closes = {
        (b.instrument_id, b.ts): b.close
        for b in MinuteBar.objects.filter(ts__in=fills.values("executed_at"))
    }
    for e in fills:
        assert e.price == Decimal(str(closes[e.instrument_id, e.executed_at]))


def test_the_demo_has_partial_fills_cancels_and_a_bust(seeded):
    assert Execution.objects.filter(kind="bust").count() == 1
    assert Order.objects.filter(status="cancelled", filled_quantity=0).count() >= 2
    assert Order.objects.filter(Q(status="cancelled") & ~Q(filled_quantity=0)).exists()
    assert set(Account.objects.values_list("name", "base_currency", "groups__name")) == {
        ("demo-macro", "USD", "desk-macro"),
        ("demo-stat-arb", "EUR", "desk-stat-arb"),
    }


def test_daily_snapshots_value_the_books_at_the_latest_prices(seeded):
    snapshots = PortfolioSnapshot.objects.all()
    assert snapshots.count() == 2 * DAYS
    for snap in snapshots:
        assert snap.nav == snap.cash + snap.market_value
        assert snap.unpriced == []
    for account in Account.objects.all():
        last = snapshots.filter(account=account).order_by("-ts").first()
        cash, value = _valued(account, last.ts)
        # Python's decimals divide to more places than PostgreSQL's numeric: equal to 1e-6.
        assert abs(last.cash - cash) < Decimal("1e-6")
        assert abs(last.market_value - value) < Decimal("1e-6")
    pnl = snapshots.filter(account__name="demo-macro").exclude(daily_pnl=None)
    assert pnl.count() == DAYS - 1


def _valued(account: Account, at) -> tuple[Decimal, Decimal]:
    """Cash and market value recomputed from the current books (every execution is older)."""
    assert not Execution.objects.filter(executed_at__gt=at).exists()
    prices = latest_prices(Position.objects.values_list("instrument_id", flat=True), at)
    eurusd = Instrument.objects.get(symbol="EURUSD").id
    eur_in_usd = Decimal(str(latest_prices([eurusd], at)[eurusd].price))
    if account.base_currency == "USD":
        rate = {"USD": Decimal(1), "EUR": eur_in_usd}
    else:
        rate = {"USD": 1 / eur_in_usd, "EUR": Decimal(1)}
    cash = sum(c.amount * rate[c.currency] for c in CashEntry.objects.filter(account=account))
    value = sum(
        p.quantity * Decimal(str(prices[p.instrument_id].price)) * rate[p.instrument.currency]
        for p in Position.objects.filter(account=account).select_related("instrument")
    )
    return cash, value


def test_the_same_seed_plans_the_same_orders_and_another_seed_others():
    batches = {
        spec: (bars_demo.generate(spec, END, 5, 1), None)
        for spec in bars_demo.DEMO_SYMBOLS.values()
    }
    market = demo.Market(batches)

    def plans(seed: int) -> list:
        rng = bars_demo.rng_for(seed, "trading-demo")
        return [(p.symbol, p.quantity, p.fills) for p in demo._plan(demo.ACCOUNTS[0], market, rng)]

    assert plans(1) == plans(1)
    assert plans(1) != plans(2)


def test_seeding_again_adds_no_trading_records(seeded):
    executions = Execution.objects.count()
    out = StringIO()
    call_command(
        "seed_demo", "--days", str(DAYS), "--end", END.isoformat(), "--replace", stdout=out
    )
    assert "Demo accounts exist already" in out.getvalue()
    assert Execution.objects.count() == executions
