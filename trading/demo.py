"""Demo trading records on top of the demo bars: accounts, cash, orders, executions, snapshots.

Two accounts, each with a group of its own: ``demo-macro`` (USD) trades the index, a
momentum name and EURUSD; ``demo-stat-arb`` (EUR when EURUSD is seeded, so its USD trades
are valued through the inverse rate) trades AAPL and MSFT. On about half of the trading
days each account sends an order, filled in one to three executions at the closes of
consecutive minute bars of the demo data; some orders are cancelled after a partial fill,
one is cancelled unfilled, and one execution is busted. Sizes keep each position within a
fraction of the capital. Every execution goes through the database's books (one INSERT in
time order), then a daily snapshot is taken after each session's close.

Everything is drawn from a generator seeded by ``seed``, so the same seed and dates give the
same records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
from django.contrib.auth.models import Group

from marketdata import demo as bars_demo
from marketdata.models import Instrument
from qvp_site.acting import acting_as
from trading import books
from trading.models import Account, CashEntry, Execution, Order
from trading.snapshots import take_snapshots_at

ACTOR = "seed_demo"
# Orders go in during the US session, a few minutes before its 20:00 UTC close at the latest;
# the day's snapshot follows the close.
SESSION_OPEN = timedelta(hours=13, minutes=30)
ORDER_WINDOW = 385  # minutes after the open
SNAPSHOT_AT = timedelta(hours=20)
TRADE_PROBABILITY = 0.55
PARTIAL_CANCEL_PROBABILITY = 0.08
LIMIT_PROBABILITY = 0.3


@dataclass(frozen=True)
class DemoAccount:
    name: str
    group: str
    prefix: str  # of client order ids and exec ids
    capital: int
    universe: tuple[str, ...]
    # The largest position in one instrument, as a fraction of the capital.
    max_weight: float


ACCOUNTS = (
    DemoAccount("demo-macro", "desk-macro", "mac", 2_000_000, ("SPY", "NVDA", "EURUSD"), 0.3),
    DemoAccount("demo-stat-arb", "desk-stat-arb", "arb", 1_000_000, ("AAPL", "MSFT"), 0.2),
)


@dataclass
class PlannedOrder:
    account: DemoAccount
    symbol: str
    side: str
    quantity: Decimal
    created_at: datetime
    limit_price: Decimal | None
    fills: list[tuple[datetime, Decimal, Decimal]] = field(default_factory=list)  # at, qty, px
    cancel: bool = False


class Market:
    """The demo bars by symbol: closes at given minutes, on the tick grid as decimals."""

    def __init__(self, batches: dict):
        self.bars = {spec.symbol: minute for spec, (minute, _) in batches.items()}
        self.specs = {spec.symbol: spec for spec in batches}

    def days(self) -> np.ndarray:
        first = next(iter(self.bars.values()))
        return np.unique(first.ts.astype("datetime64[D]"))

    def index(self, symbol: str, at: np.datetime64) -> int | None:
        ts = self.bars[symbol].ts
        i = int(np.searchsorted(ts, at))
        return i if i < len(ts) and ts[i] == at else None

    def close(self, symbol: str, i: int) -> Decimal:
        exponent = Decimal(str(self.specs[symbol].tick_size)).as_tuple().exponent
        places = max(0, -int(exponent))  # a tick size is finite: its exponent is a number
        return Decimal(f"{self.bars[symbol].close[i]:.{places}f}")

    def time(self, symbol: str, i: int) -> datetime:
        return self.bars[symbol].ts[i].astype(datetime).replace(tzinfo=UTC)


def seed(batches: dict, seed: int, write: Callable[[str], None]) -> None:
    """Add the demo accounts and their records over the bars of ``batches`` (seed_demo's
    {spec: (minute bars, daily bars)}, loaded already); nothing when one exists already."""
    if Account.objects.filter(name__in=[a.name for a in ACCOUNTS]).exists():
        write("Demo accounts exist already: no demo trading records added.")
        return
    started = time.monotonic()
    market = Market(batches)
    if not market.bars:
        return
    rng = bars_demo.rng_for(seed, "trading-demo")
    plans = {a: _plan(a, market, rng) for a in ACCOUNTS}
    with acting_as(ACTOR):
        accounts = {a: _account(a, market) for a in ACCOUNTS}
        _deposits(accounts, market)
        executions = _book(accounts, plans, market)
    times = [_day(d) + SNAPSHOT_AT for d in market.days()]
    snapshots = take_snapshots_at(times, [a.id for a in accounts.values()])
    orders = sum(len(p) for p in plans.values())
    write(
        f"Trading demo: {len(accounts)} accounts, {orders} orders, {executions} executions,"
        f" {snapshots} daily snapshots in {time.monotonic() - started:.1f} s."
    )


def _day(day: np.datetime64) -> datetime:
    return day.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def _plan(account: DemoAccount, market: Market, rng: np.random.Generator) -> list[PlannedOrder]:
    """The account's orders and fills over the demo days, sized against its positions."""
    universe = [s for s in account.universe if s in market.bars] or sorted(market.bars)
    held = dict.fromkeys(universe, Decimal(0))
    plans = []
    for day in market.days():
        if rng.random() >= TRADE_PROBABILITY:
            continue
        symbol = universe[rng.integers(len(universe))]
        start = np.datetime64(_day(day).replace(tzinfo=None) + SESSION_OPEN, "us")
        at = start + np.timedelta64(int(rng.integers(ORDER_WINDOW)), "m")
        i = market.index(symbol, at)
        if i is None:
            continue
        order = _order(account, market, symbol, i, held[symbol], rng)
        if order is not None:
            held[symbol] += sum(q for _, q, _ in order.fills)
            plans.append(order)
    if plans:  # one order cancelled before any fill, the day after the first
        first = plans[0]
        plans.append(
            PlannedOrder(account, first.symbol, "buy", first.quantity, first.created_at, None)
        )
        plans[-1].created_at += timedelta(days=1)
        plans[-1].cancel = True
    return plans


def _order(account, market, symbol, i, held, rng) -> PlannedOrder | None:
    price = market.close(symbol, i)
    limit = Decimal(account.capital * account.max_weight) / price
    # Towards a random target within the limit: reduces when near it, flips now and then.
    target = Decimal(float(rng.uniform(-1, 1))) * limit
    quantity = _lot(symbol, target - held)
    if quantity == 0:
        return None
    side = "buy" if quantity > 0 else "sell"
    sign = 1 if quantity > 0 else -1
    sizes = _split(abs(quantity), int(rng.integers(1, 4)), symbol)
    # The rest of an order cancelled after its first fill: only where a rest remains.
    cancel = len(sizes) > 1 and rng.random() < PARTIAL_CANCEL_PROBABILITY
    fills = []
    for k, size in enumerate(sizes[:1] if cancel else sizes):
        fills.append((market.time(symbol, i + k), sign * size, market.close(symbol, i + k)))
    limit_price = None
    if rng.random() < LIMIT_PROBABILITY:  # a limit the fills respect
        worst = max(p for _, _, p in fills) if sign > 0 else min(p for _, _, p in fills)
        limit_price = worst
    return PlannedOrder(
        account,
        symbol,
        side,
        abs(quantity),
        market.time(symbol, i) - timedelta(seconds=1),
        limit_price,
        fills,
        cancel,
    )


def _lot(symbol: str, quantity: Decimal) -> Decimal:
    """Shares in hundreds, EURUSD in thousands."""
    lot = Decimal(1000) if symbol == "EURUSD" else Decimal(100)
    return (quantity / lot).to_integral_value() * lot


def _split(quantity: Decimal, parts: int, symbol: str) -> list[Decimal]:
    lot = Decimal(1000) if symbol == "EURUSD" else Decimal(100)
    lots = int(quantity / lot)
    parts = max(1, min(parts, lots))
    sizes = [Decimal(lots // parts) * lot] * parts
    sizes[-1] += quantity - sum(sizes)
    return sizes


def _account(spec: DemoAccount, market: Market) -> Account:
    base = "EUR" if spec.name == "demo-stat-arb" and "EURUSD" in market.bars else "USD"
    account = Account.objects.create(name=spec.name, base_currency=base)
    account.groups.add(Group.objects.get_or_create(name=spec.group)[0])
    return account


def _deposits(accounts: dict[DemoAccount, Account], market: Market) -> None:
    """The capital before the first session; more capital and a withdrawal along the way."""
    days = market.days()
    # (day, capital times num / den, hour UTC)
    moves = ((0, 1, 1, 12), (len(days) // 2, 1, 4, 12), (len(days) * 3 // 4, -1, 10, 21))
    # Through the books' function, as every door adds cash (a few entries).
    for spec, account in accounts.items():
        for day, num, den, hour in moves:
            books.add_cash(
                account.pk,
                CashEntry.Kind.DEPOSIT if num > 0 else CashEntry.Kind.WITHDRAWAL,
                Decimal(spec.capital * num // den),
                currency=account.base_currency,
                entry_at=_day(days[day]) + timedelta(hours=hour),
                note="demo",
            )


def _book(accounts: dict[DemoAccount, Account], plans: dict, market: Market) -> int:
    """Orders, then every fill in one INSERT in time order, one bust, and the cancels."""
    instruments = dict(Instrument.objects.values_list("symbol", "id"))
    orders, executions = [], []
    for spec, planned in plans.items():
        for n, plan in enumerate(planned, start=1):
            order = Order(
                account=accounts[spec],
                instrument_id=instruments[plan.symbol],
                client_order_id=f"{spec.prefix}-{n:05d}",
                side=plan.side,
                order_type="limit" if plan.limit_price else "market",
                quantity=plan.quantity,
                limit_price=plan.limit_price,
                created_at=plan.created_at,
            )
            orders.append((plan, order))
    Order.objects.bulk_create([o for _, o in orders])
    for plan, order in orders:
        for k, (at, quantity, price) in enumerate(plan.fills, start=1):
            executions.append(_execution(order, k, at, quantity, price))
    executions.sort(key=lambda e: (e.executed_at, e.exec_id))
    Execution.objects.bulk_create(executions)
    _bust(executions[len(executions) // 2])
    for plan, order in orders:
        if plan.cancel:
            books.cancel_order(order.pk, "demo")
    return len(executions) + 1


def _execution(order: Order, k: int, at: datetime, quantity: Decimal, price: Decimal):
    notional = abs(quantity) * price
    fee = max(Decimal("1.00"), (notional * Decimal("0.00002")).quantize(Decimal("0.01")))
    return Execution(
        exec_id=f"{order.client_order_id}-{k}",
        order=order,
        account_id=order.account_id,
        instrument_id=order.instrument_id,
        side=order.side,
        quantity=quantity,
        price=price,
        fee=fee,
        liquidity="removed" if order.order_type == "market" else "added",
        executed_at=at,
    )


def _bust(original: Execution) -> None:
    Execution.objects.create(
        exec_id=f"{original.exec_id}-bust",
        order=original.order,
        account_id=original.account_id,
        instrument_id=original.instrument_id,
        side="sell" if original.quantity > 0 else "buy",
        quantity=-original.quantity,
        price=original.price,
        fee=-original.fee,
        liquidity=original.liquidity,
        executed_at=original.executed_at + timedelta(minutes=5),
        kind="bust",
        supersedes=original,
        reason="demo: busted by the venue",
    )
