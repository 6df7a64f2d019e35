"""A position replayed in Python from its executions and its corporate-action entries: the
reference the books are checked against (tests, ``bench/executions.py``). The database's
``trading_position_step`` and ``trading_action_effect`` (trading/sql/books/0007.sql,
trading/sql/actions/0013.sql) are the ones that keep the books; this mirrors their rules and
their rounding, independently.

Events are fills, ``(signed quantity, price)``, and the actions' events below, in the order
of time: an action's entry at its ex moment, after every execution dated before it and before
every one dated at or after it, whenever either was booked (a correction where the trade it
corrects stood); executions between two ex moments in the order they were booked (the
position's sequence). ``position_events`` reads them from
the books (``trading_replay_through``, trading/sql/books/0014.sql, is the database's order).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import datetime

    from marketdata.models import CorporateAction
    from trading.models import ActionEntry

AVERAGE_PLACES = Decimal("1e-12")
MONEY_PLACES = Decimal("1e-8")
ZERO = Decimal(0)


@dataclass(frozen=True)
class Adjust:
    """A split (``factor`` = ratio) or a stock dividend (``factor`` = 1 + ratio): quantity x
    factor, average cost / factor; for whole shares, the fraction sold at ``price`` (cash in
    lieu; None: at the adjusted average cost)."""

    factor: Decimal
    price: Decimal | None = None
    whole: bool = True


@dataclass(frozen=True)
class Dividend:
    """A cash dividend of ``amount`` a share: cash, the position unchanged."""

    amount: Decimal


@dataclass(frozen=True)
class SpinOff:
    """The old instrument's side of a spin-off: its average cost x (1 - ``cost_fraction``)."""

    cost_fraction: Decimal


@dataclass(frozen=True)
class Received:
    """The new instrument's side of a spin-off: ``quantity`` received at ``cost`` a share, then
    whole shares (the fraction at ``price``; None: at ``cost``)."""

    quantity: Decimal
    cost: Decimal
    price: Decimal | None = None
    whole: bool = True


@dataclass(frozen=True)
class Delisting:
    """The position closed at ``final_price``."""

    final_price: Decimal


Action = Adjust | Dividend | SpinOff | Received | Delisting
Event = tuple[Decimal, Decimal] | Action


@dataclass
class Books:
    """A position and the cash its actions paid (executions' cash is the ledger's own)."""

    quantity: Decimal = ZERO
    average_cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    action_cash: Decimal = ZERO

    def as_tuple(self) -> tuple[Decimal, Decimal, Decimal]:
        return self.quantity, self.average_cost, self.realized_pnl


def _money(value: Decimal) -> Decimal:
    return value.quantize(MONEY_PLACES, ROUND_HALF_UP)


def _average(value: Decimal) -> Decimal:
    return value.quantize(AVERAGE_PLACES, ROUND_HALF_UP)


def step(books: Books, fill_qty: Decimal, price: Decimal, multiplier: Decimal) -> None:
    """One fill: average cost weighted on increases, unchanged on reductions, the fill's price
    when the position flips, zero when flat; realized P&L on reductions."""
    qty, avg = books.quantity, books.average_cost
    new_qty = qty + fill_qty
    if qty == 0 or (qty > 0) == (fill_qty > 0):
        books.average_cost = _average((abs(qty) * avg + abs(fill_qty) * price) / abs(new_qty))
    else:
        closed = min(abs(fill_qty), abs(qty))
        sign = 1 if qty > 0 else -1
        books.realized_pnl += _money(closed * (price - avg) * sign * multiplier)
        if new_qty == 0:
            books.average_cost = ZERO
        elif (new_qty > 0) != (qty > 0):
            books.average_cost = price
    books.quantity = new_qty


def _snapped(quantity: Decimal, held: Decimal) -> Decimal:
    """A whole quantity a hair off, from a ratio stored to 10 decimals (1:3 as 0.3333333333),
    made whole: within the ratio's rounding, as trading_action_effect does."""
    whole = quantity.quantize(Decimal(1), ROUND_HALF_UP)
    if abs(quantity - whole) <= max(abs(held) * Decimal("1e-10"), Decimal("1e-8")):
        return whole
    return quantity


def _sell_fraction(books: Books, price: Decimal, multiplier: Decimal) -> None:
    """Whole shares: the fraction (toward zero) sold at ``price``, paid in cash."""
    fraction = books.quantity - books.quantity.quantize(Decimal(1), ROUND_DOWN)
    if fraction:
        step(books, -fraction, price, multiplier)
        books.action_cash += _money(fraction * price * multiplier)


def apply_action(books: Books, action: Action, multiplier: Decimal) -> None:
    """What ``action`` does to the position, as trading_action_effect does."""
    if isinstance(action, Adjust):
        held = books.quantity
        books.quantity = _money(held * action.factor)
        if action.whole:
            books.quantity = _snapped(books.quantity, held)
        books.average_cost = _average(books.average_cost / action.factor)
        if action.whole and books.quantity != books.quantity.to_integral_value(ROUND_DOWN):
            price = action.price if action.price is not None else _money(books.average_cost)
            _sell_fraction(books, price, multiplier)
    elif isinstance(action, Dividend):
        books.action_cash += _money(books.quantity * action.amount * multiplier)
    elif isinstance(action, SpinOff):
        books.average_cost = _average(books.average_cost * (1 - action.cost_fraction))
    elif isinstance(action, Received):
        step(books, action.quantity, action.cost, multiplier)
        if action.whole and books.quantity != books.quantity.to_integral_value(ROUND_DOWN):
            price = action.price if action.price is not None else _money(action.cost)
            _sell_fraction(books, price, multiplier)
    else:
        held = books.quantity
        step(books, -held, action.final_price, multiplier)
        books.action_cash += _money(held * action.final_price * multiplier)


def replay_books(events: Iterable[Event], multiplier: Decimal = Decimal(1)) -> Books:
    """The position and its actions' cash after ``events`` in order."""
    books = Books()
    for event in events:
        if isinstance(event, tuple):
            fill_qty, price = event
            step(books, fill_qty, price, multiplier)
        else:
            apply_action(books, event, multiplier)
    return books


def replay(
    events: Iterable[Event], multiplier: Decimal = Decimal(1)
) -> tuple[Decimal, Decimal, Decimal]:
    """Quantity, average cost and realized P&L after fills, ``(signed quantity, price)``, and
    corporate actions' events, in order."""
    return replay_books(events, multiplier).as_tuple()


def position_events(account_id: int, instrument_id: int) -> list[Event]:
    """A position's events as the books hold them, in time order: its executions in force
    (fills and corrections not superseded) and its corporate-action entries, each action by its
    terms (and, for cash in lieu, the price the entry paid at: a market input)."""
    from trading.models import ActionEntry, Execution

    entries = list(
        ActionEntry.objects.filter(account_id=account_id, instrument_id=instrument_id)
        .select_related("action", "action__instrument", "instrument")
        .order_by("ex_at", "position_sequence")
    )
    moments = [entry.ex_at for entry in entries]
    rows = Execution.objects.filter(account_id=account_id, instrument_id=instrument_id).values(
        "id", "kind", "executed_at", "supersedes_id", "position_sequence", "quantity", "price"
    )
    every = {row["id"]: row for row in rows}
    replaced = {row["supersedes_id"] for row in every.values()}
    # (the latest ex moment at or before the row, entries before executions, sequence)
    keyed: list[tuple[int, int, int, Event]] = [
        (
            bisect_right(moments, placed_at(row, every)),
            1,
            row["position_sequence"],
            (row["quantity"], row["price"]),
        )
        for row in every.values()
        if row["kind"] != Execution.Kind.BUST and row["id"] not in replaced
    ]
    for entry in entries:
        epoch = bisect_right(moments, entry.ex_at)  # the entries of one moment share an epoch
        keyed.append((epoch, 0, entry.position_sequence, action_event(entry)))
    return [event for *_, event in sorted(keyed, key=lambda row: row[:3])]


def placed_at(row: dict, every: dict[int, dict]) -> datetime:
    """Where an execution stands in time: a correction where the trade it corrects (through
    any chain of corrections) stood, anything else at its own time (trading_placed_at)."""
    while row["supersedes_id"] is not None:
        row = every[row["supersedes_id"]]
    return row["executed_at"]


def _term(action: CorporateAction, name: str) -> Decimal:
    """A term the action's kind states (its CHECK constraints hold it)."""
    value = getattr(action, name)
    if value is None:
        raise ValueError(f"corporate action {action.pk}: a {action.kind} without {name}")
    return Decimal(value)


def action_event(entry: ActionEntry) -> Action:
    """The event of an ActionEntry, from its action's terms."""
    from trading.models import ActionEntry

    action, whole = entry.action, entry.instrument.asset_class == "equity"
    kind = action.kind
    if kind == "split":
        return Adjust(_term(action, "ratio"), entry.price, whole)
    if kind == "stock_dividend":
        return Adjust(1 + _term(action, "ratio"), entry.price, whole)
    if kind == "cash_dividend":
        return Dividend(_term(action, "amount"))
    if kind == "delisting":
        return Delisting(_term(action, "final_price"))
    ratio, fraction = _term(action, "ratio"), _term(action, "cost_fraction")
    if entry.instrument_id == action.instrument_id:
        return SpinOff(fraction)
    # The new shares: as many as the old position held x ratio, at its moved cost a share.
    old = ActionEntry.objects.get(
        account_id=entry.account_id, action_id=action.pk, instrument_id=action.instrument_id
    )
    delivered = _money(old.quantity_before * ratio)
    cost = _average(old.average_cost_before * fraction / ratio)
    return Received(delivered, cost, entry.price, whole)
