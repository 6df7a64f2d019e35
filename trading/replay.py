"""A position replayed in Python from its executions: the reference the books are checked
against (tests, ``bench/executions.py``). The database's ``trading_position_step`` is the one
that keeps the books; this mirrors its rules and its rounding, independently."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal

AVERAGE_PLACES = Decimal("1e-12")
MONEY_PLACES = Decimal("1e-8")


def replay(
    executions: Iterable[tuple[Decimal, Decimal]], multiplier: Decimal = Decimal(1)
) -> tuple[Decimal, Decimal, Decimal]:
    """Quantity, average cost and realized P&L after (signed quantity, price) fills in order."""
    qty, avg, realized = Decimal(0), Decimal(0), Decimal(0)
    for fill_qty, price in executions:
        new_qty = qty + fill_qty
        if qty == 0 or (qty > 0) == (fill_qty > 0):
            weighted = (abs(qty) * avg + abs(fill_qty) * price) / abs(new_qty)
            avg = weighted.quantize(AVERAGE_PLACES, ROUND_HALF_UP)
        else:
            closed = min(abs(fill_qty), abs(qty))
            sign = 1 if qty > 0 else -1
            pnl = closed * (price - avg) * sign * multiplier
            realized += pnl.quantize(MONEY_PLACES, ROUND_HALF_UP)
            if new_qty == 0:
                avg = Decimal(0)
            elif (new_qty > 0) != (qty > 0):
                avg = price
        qty = new_qty
    return qty, avg, realized
