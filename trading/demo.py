"""Demo trading records on top of the demo bars: accounts, cash, orders, executions, snapshots.

Two accounts, each with a group of its own: ``demo-macro`` (USD) trades the index, a
momentum name and EURUSD; ``demo-stat-arb`` (EUR when EURUSD is seeded, so its USD trades
are valued through the inverse rate) trades AAPL and MSFT. On about half of the trading
days each account sends an order, filled in one to three executions at the closes of
consecutive minute bars of the demo data; some orders are cancelled after a partial fill,
one is cancelled unfilled, and one execution is busted. Sizes keep each position within a
fraction of the capital. Every execution goes through the database's books (one INSERT in
time order), then a daily snapshot is taken after each session's close.

Around each order, quote and trade ticks (``_ticks``): from three minutes before its creation
to a day after its last fill, a quote a second up to a minute after the last fill, then every
5 seconds to 5 minutes, every 30 seconds to 35 minutes and every 10 minutes to the next day
(away from the order, in the instrument's sessions only), and trades among them. Their mids
follow the minute bars' closes, and near the order sit half a spread off them, so that each
fill is at the touch: a market order's at the far side of the quote (it pays the
half-spread), a limit order's at the near side (it earns it). Then the executions'
costs are computed (``trading.tca.refresh``): the TCA page shows numbers measured against
quotes, as a desk's would be. Each execution names its venue and each order its account's
strategy, where the books record them, so that the costs group by both.

Everything is drawn from a generator seeded by ``seed``, so the same seed and dates give the
same records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.db.models import Max, Min

from marketdata import demo as bars_demo
from marketdata import sessions as market_sessions
from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from trading import books, tca
from trading.models import Account, CashEntry, Execution, Order
from trading.snapshots import take_snapshots_at

ACTOR = "seed_demo"
# Orders go in during New York's session (its calendar's: no holidays, early closes), five
# minutes before its close at the latest; the day's snapshot is taken at the close.
ORDER_CUTOFF = 5  # minutes before the close
TRADE_PROBABILITY = 0.55
PARTIAL_CANCEL_PROBABILITY = 0.08
LIMIT_PROBABILITY = 0.3

# Ticks around each order (module docstring): the windows before its creation and after its
# last fill, and the spacing of the quotes in each.
TICK_TABLE = "marketdata_tick"
QUOTES_BEFORE = np.timedelta64(3, "m")
DENSE_AFTER = np.timedelta64(1, "m")  # a quote a second up to a minute after the last fill
# Then (until, spacing) after the last fill: each markout horizon but the day has quotes
# no older than a few seconds at 1 s and 10 s, a few tens at 5 and 30 minutes.
LATER = (
    (np.timedelta64(5, "m"), np.timedelta64(5, "s")),
    (np.timedelta64(35, "m"), np.timedelta64(30, "s")),
)
# To a day after: every 10 minutes, counted back from the day after the last fill (so that
# the day's markout of the last fill reads a quote at that very time).
DAY = (np.timedelta64(1, "D"), np.timedelta64(10, "m"))
TRADE_EVERY = 10  # one dense quote in ten has a trade beside it; every later one to 35 min
# How long after the last fill the quote takes to settle back on the bars' path.
IMPACT_FADE = np.timedelta64(60, "s")
# The quoted spread, in basis points of the price (at least one tick).
SPREAD_BPS = {"SPY": 0.4, "AAPL": 1.0, "MSFT": 1.0, "NVDA": 1.6, "EURUSD": 0.8}
DEFAULT_SPREAD_BPS = 1.0
# Where the demo's executions trade (their MIC), by symbol; any equity venue otherwise.
VENUES = {
    "SPY": ("ARCX", "XNYS", "BATS"),
    "AAPL": ("XNAS", "BATS", "XNYS"),
    "MSFT": ("XNAS", "BATS", "XNYS"),
    "NVDA": ("XNAS", "BATS", "ARCX"),
    "EURUSD": ("EBS", "FXALL"),
}
DEFAULT_VENUES = ("XNAS", "XNYS", "ARCX")


@dataclass(frozen=True)
class DemoAccount:
    name: str
    group: str
    prefix: str  # of client order ids and exec ids
    capital: int
    universe: tuple[str, ...]
    # The largest position in one instrument, as a fraction of the capital.
    max_weight: float


HAS_VENUE = any(f.name == "venue" for f in Execution._meta.get_fields())
HAS_STRATEGY = any(f.name == "strategy" for f in Order._meta.get_fields())
# The strategy that decides each account's orders (where orders record one: trading 0016).
STRATEGIES = {"demo-macro": "macro-trend", "demo-stat-arb": "pairs-reversion"}

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
        self.sessions = self._new_york()

    def _new_york(self) -> market_sessions.Sessions:
        """New York's sessions over the bars' dates: the desk's trading days."""
        dated = [
            b.ts.astype("datetime64[D]") if b.session is None else b.session
            for b in self.bars.values()
        ]
        first, last = min(d[0] for d in dated), max(d[-1] for d in dated)
        calendar = market_sessions.DEFAULT_CALENDAR
        return market_sessions.exchange_sessions(calendar, first.astype(date), last.astype(date))

    def days(self) -> np.ndarray:
        return self.sessions.label

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
    if not any(len(minute) for minute, _ in batches.values()):
        return
    market = Market({spec: bars for spec, bars in batches.items() if len(bars[0])})
    rng = bars_demo.rng_for(seed, "trading-demo")
    plans = {a: _plan(a, market, rng) for a in ACCOUNTS}
    with acting_as(ACTOR):
        accounts = {a: _account(a, market) for a in ACCOUNTS}
        _deposits(accounts, market)
        executions = _book(accounts, plans, market, seed)
    times = [_day(close) for close in market.sessions.close]
    snapshots = take_snapshots_at(times, [a.id for a in accounts.values()])
    orders = sum(len(p) for p in plans.values())
    write(
        f"Trading demo: {len(accounts)} accounts, {orders} orders, {executions} executions,"
        f" {snapshots} daily snapshots in {time.monotonic() - started:.1f} s."
    )
    started = time.monotonic()
    ticks = _ticks([p for planned in plans.values() for p in planned], market, seed)
    written = time.monotonic()
    with acting_as(ACTOR):
        costs = _costs()
    write(
        f"TCA demo: {ticks:,} quote and trade ticks around the orders in"
        f" {written - started:.1f} s, the costs of {costs} executions in"
        f" {time.monotonic() - written:.1f} s."
    )


def _day(day: np.datetime64) -> datetime:
    """A numpy day (its midnight) or time as an aware datetime in UTC."""
    return day.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def _plan(account: DemoAccount, market: Market, rng: np.random.Generator) -> list[PlannedOrder]:
    """The account's orders and fills over the demo days, sized against its positions."""
    universe = [s for s in account.universe if s in market.bars] or sorted(market.bars)
    held = dict.fromkeys(universe, Decimal(0))
    plans = []
    ny = market.sessions
    for start, length in zip(ny.open, ny.lengths(), strict=True):
        if rng.random() >= TRADE_PROBABILITY:
            continue
        symbol = universe[rng.integers(len(universe))]
        at = start + np.timedelta64(int(rng.integers(length - ORDER_CUTOFF)), "m")
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


def _book(accounts: dict[DemoAccount, Account], plans: dict, market: Market, seed: int) -> int:
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
                **({"strategy": STRATEGIES.get(spec.name, "")} if HAS_STRATEGY else {}),
            )
            orders.append((plan, order))
    Order.objects.bulk_create([o for _, o in orders])
    venues = bars_demo.rng_for(seed, "trading-demo-venues")
    for plan, order in orders:
        for k, (at, quantity, price) in enumerate(plan.fills, start=1):
            choices = VENUES.get(plan.symbol, DEFAULT_VENUES)
            venue = choices[int(venues.integers(len(choices)))]
            executions.append(_execution(order, k, at, quantity, price, venue))
    executions.sort(key=lambda e: (e.executed_at, e.exec_id))
    Execution.objects.bulk_create(executions)
    _bust(executions[len(executions) // 2])
    for plan, order in orders:
        if plan.cancel:
            books.cancel_order(order.pk, "demo")
    return len(executions) + 1


def _execution(
    order: Order, k: int, at: datetime, quantity: Decimal, price: Decimal, venue: str
) -> Execution:
    notional = abs(quantity) * price
    fee = max(Decimal("1.00"), (notional * Decimal("0.00002")).quantize(Decimal("0.01")))
    # The venue where the books have the field (trading 0016).
    where = {"venue": venue} if HAS_VENUE else {}
    return Execution(
        **where,
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
        **({"venue": original.venue} if HAS_VENUE else {}),
        reason="demo: busted by the venue",
    )


@dataclass
class TickColumns:
    """One instrument's ticks as columns, in time order (quotes at sequence 0, a trade beside
    a quote at sequence 1)."""

    ts: np.ndarray  # datetime64[us], UTC
    trade: np.ndarray  # bool: a trade, else a quote
    price: np.ndarray  # NaN for a quote (NULL in the table), as the other floats
    size: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    buyer: np.ndarray  # bool: a trade's aggressor bought (side "buy", else "sell")

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class QuoteWindows:
    """The times around one instrument's orders where ticks are written, and what the quotes
    need to put each fill at the touch."""

    # Near each order (kept even outside the sessions: a pre-open order has its arrival quote).
    dense: list[np.ndarray] = field(default_factory=list)
    later: list[np.ndarray] = field(default_factory=list)  # after it: in the sessions only
    trades: list[np.ndarray] = field(default_factory=list)
    fills: list[np.datetime64] = field(default_factory=list)
    # (from, last fill, direction): the quote's centre sits direction x half a spread off the
    # bars' path from ``from`` to the last fill, then settles back over IMPACT_FADE.
    impacts: list[tuple[np.datetime64, np.datetime64, int]] = field(default_factory=list)


def _ticks(plans: list[PlannedOrder], market: Market, seed: int) -> int:
    """Quotes and trades around the filled orders of ``plans``, made per instrument as numpy
    columns and written set-based (``_insert_ticks``); returns how many."""
    instruments = dict(Instrument.objects.values_list("symbol", "id"))
    by_symbol: dict[str, QuoteWindows] = {}
    for plan in plans:
        if plan.fills and plan.symbol in market.bars:
            _add_windows(by_symbol.setdefault(plan.symbol, QuoteWindows()), plan)
    rng = bars_demo.rng_for(seed, "trading-demo-ticks")
    batches = {
        instruments[symbol]: _tick_columns(symbol, windows, market, rng)
        for symbol, windows in sorted(by_symbol.items())
    }
    days = np.unique(np.concatenate([b.ts.astype("datetime64[D]") for b in batches.values()]))
    _prepare_tick_partitions(days)
    return _insert_ticks(batches)


def _add_windows(windows: QuoteWindows, plan: PlannedOrder) -> None:
    created = np.datetime64(plan.created_at.replace(tzinfo=None), "us")
    fills = [np.datetime64(at.replace(tzinfo=None), "us") for at, _, _ in plan.fills]
    last = max(fills)
    start = created - QUOTES_BEFORE
    dense = np.arange(start, last + DENSE_AFTER, np.timedelta64(1, "s"))
    windows.dense.append(dense)
    windows.trades.append(dense[::TRADE_EVERY])
    since = last + DENSE_AFTER
    for until, spacing in LATER:
        segment = np.arange(since, last + until, spacing)
        windows.later.append(segment)
        windows.trades.append(segment)
        since = last + until
    windows.later.append(np.arange(last + DAY[0], since, -DAY[1]))
    windows.fills += fills
    sign = 1 if plan.side == "buy" else -1
    # A market order takes the far side of the quote: the mid is below a buy's price.
    direction = -sign if plan.limit_price is None else sign
    windows.impacts.append((start, last, direction))


def _tick_columns(
    symbol: str, windows: QuoteWindows, market: Market, rng: np.random.Generator
) -> TickColumns:
    bars = market.bars[symbol]
    tick = float(market.specs[symbol].tick_size)
    per_unit = round(1 / tick)  # as the demo bars round to the tick grid
    later = np.unique(np.concatenate(windows.later))
    # Away from the orders, quotes only in the sessions (the minutes that have a bar).
    minutes = later.astype("datetime64[m]").astype("datetime64[us]")
    at = np.minimum(np.searchsorted(bars.ts, minutes), len(bars.ts) - 1)
    later = later[bars.ts[at] == minutes]
    ts = np.union1d(np.concatenate(windows.dense), later)
    ts = ts[ts <= bars.ts[-1] + np.timedelta64(1, "m")]
    micros, bar_micros = ts.astype(np.int64), bars.ts.astype(np.int64)
    # The bars' path: each close at its bar's time, a straight line between.
    path = np.interp(micros, bar_micros, bars.close)
    width = np.maximum(
        1, np.rint(path * SPREAD_BPS.get(symbol, DEFAULT_SPREAD_BPS) / 1e4 * per_unit)
    )
    lean = _impact(ts, windows.impacts)
    # A tick of noise now and then, never at a fill (which sits at the touch exactly).
    noise = rng.choice(np.array([-1.0, 0.0, 0.0, 0.0, 1.0]), size=len(ts))
    noise[np.isin(ts, np.array(windows.fills, dtype="datetime64[us]"))] = 0
    bid_units = np.rint(path * per_unit + (lean - 1) * width / 2 + noise)
    bid, ask = bid_units / per_unit, (bid_units + width) / per_unit
    trade_at = np.isin(ts, np.concatenate(windows.trades))
    lot = 1000.0 if symbol == "EURUSD" else 100.0
    return _with_trades(ts, bid, ask, trade_at, lot, rng)


def _impact(ts: np.ndarray, impacts: list[tuple[np.datetime64, np.datetime64, int]]) -> np.ndarray:
    """Per time, how many half-spreads the quote's centre sits off the bars' path: each
    order's direction from its window's start to its last fill, fading to nothing after."""
    lean = np.zeros(len(ts))
    for start, last, direction in impacts:  # a few hundred orders, each a slice of the times
        lo, hi = np.searchsorted(ts, [start, last + IMPACT_FADE], side="left")
        since = (ts[lo:hi] - last) / IMPACT_FADE
        lean[lo:hi] += direction * np.clip(1 - since, 0, 1)
    return lean


def _with_trades(
    ts: np.ndarray,
    bid: np.ndarray,
    ask: np.ndarray,
    trade_at: np.ndarray,
    lot: float,
    rng: np.random.Generator,
) -> TickColumns:
    """The quotes, and a trade beside each quote of ``trade_at``: at the ask for a buyer, at
    the bid for a seller."""
    count = len(ts)
    quote_sizes = rng.integers(1, 20, size=(2, count)) * lot
    traded = np.flatnonzero(trade_at)
    buyer = rng.random(len(traded)) < 0.5
    trade_price = np.where(buyer, ask[traded], bid[traded])
    nothing = np.full(len(traded), np.nan)
    return TickColumns(
        ts=np.concatenate([ts, ts[traded]]),
        trade=np.concatenate([np.zeros(count, bool), np.ones(len(traded), bool)]),
        price=np.concatenate([np.full(count, np.nan), trade_price]),
        size=np.concatenate([np.full(count, np.nan), rng.integers(1, 10, len(traded)) * lot]),
        bid=np.concatenate([bid, nothing]),
        ask=np.concatenate([ask, nothing]),
        bid_size=np.concatenate([quote_sizes[0], nothing]),
        ask_size=np.concatenate([quote_sizes[1], nothing]),
        buyer=np.concatenate([np.zeros(count, bool), buyer]),
    )


def _prepare_tick_partitions(days: np.ndarray) -> None:
    """The tick partitions of the days the ticks fall on, and only those (the site's own rows:
    not limited as a load's are)."""
    times = [_day(day) for day in days]
    with connection.cursor() as cursor:
        needs = partitions.rows_needs(
            cursor, TICK_TABLE, "SELECT unnest(%s::timestamptz[]) AS ts", [times]
        )
    if needs is not None:
        partitions.make_needed(needs, limited=False)


# The ticks go through a temporary table by binary COPY (numpy records, as the demo bars:
# no Python loop over rows), then into the ticks in one statement: a quote at sequence 0, the
# trade beside it at 1, NaN as NULL.
STAGING = "qvp_demo_ticks"
STAGING_COLUMNS = {  # column: its binary type
    "instrument_id": ">i8",
    "ts": ">i8",  # timestamptz: microseconds since 2000-01-01 UTC
    "trade": "?",
    "price": ">f8",
    "size": ">f8",
    "bid": ">f8",
    "ask": ">f8",
    "bid_size": ">f8",
    "ask_size": ">f8",
    "buyer": "?",
}
CREATE_STAGING = f"""
CREATE TEMPORARY TABLE {STAGING} (
    instrument_id bigint, ts timestamptz, trade boolean, price float8, size float8,
    bid float8, ask float8, bid_size float8, ask_size float8, buyer boolean
)
"""
INSERT_TICKS = f"""
INSERT INTO {TICK_TABLE}
    (instrument_id, ts, sequence, kind, price, size, bid, ask, bid_size, ask_size, side)
SELECT instrument_id, ts, CASE WHEN trade THEN 1 ELSE 0 END,
       CASE WHEN trade THEN 'trade' ELSE 'quote' END,
       nullif(price, 'NaN'), nullif(size, 'NaN'), nullif(bid, 'NaN'), nullif(ask, 'NaN'),
       nullif(bid_size, 'NaN'), nullif(ask_size, 'NaN'),
       CASE WHEN NOT trade THEN '' WHEN buyer THEN 'buy' ELSE 'sell' END
FROM {STAGING}
"""


def _insert_ticks(batches: dict[int, TickColumns]) -> int:
    """COPY every instrument's ticks into a temporary table, then one INSERT ... SELECT."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(CREATE_STAGING)
        for instrument_id, ticks in batches.items():
            _copy(cursor, instrument_id, ticks)
        cursor.execute(INSERT_TICKS)
        written = cursor.rowcount
        cursor.execute(f"DROP TABLE {STAGING}")
    return written


def _copy(cursor: Any, instrument_id: int, ticks: TickColumns) -> None:
    layout: list[tuple[str, str]] = [("fields", ">i2")]
    for name, kind in STAGING_COLUMNS.items():
        layout += [(f"{name}__length", ">i4"), (name, kind)]
    rows = np.empty(len(ticks), dtype=np.dtype(layout))
    rows["fields"] = len(STAGING_COLUMNS)
    for name, kind in STAGING_COLUMNS.items():
        rows[f"{name}__length"] = np.dtype(kind).itemsize
    rows["instrument_id"] = instrument_id
    rows["ts"] = (ticks.ts - bars_demo.PG_EPOCH).astype(np.int64)
    for name in list(STAGING_COLUMNS)[2:]:
        rows[name] = getattr(ticks, name)
    payload = memoryview(bars_demo.COPY_HEADER + rows.tobytes() + bars_demo.COPY_TRAILER)
    columns = ", ".join(STAGING_COLUMNS)
    with cursor.cursor.copy(f"COPY {STAGING} ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        for start in range(0, len(payload), bars_demo.COPY_CHUNK):
            copy.write(payload[start : start + bars_demo.COPY_CHUNK])


def _costs() -> int:
    """The costs of every demo execution, measured against the ticks just written."""
    span = Execution.objects.aggregate(first=Min("executed_at"), last=Max("executed_at"))
    if span["first"] is None:
        return 0
    return tca.refresh_detail(span["first"], span["last"] + timedelta(microseconds=1)).written
