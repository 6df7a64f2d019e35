"""Positions valued at the latest prices: market value and unrealised P&L."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from django.db.models import QuerySet

from marketdata.prices import latest_prices
from trading.models import Position


@dataclass(frozen=True)
class ValuedPosition:
    position: Position
    price: Decimal | None  # None: no bar yet, so no value
    priced_at: datetime | None

    @property
    def units(self) -> Decimal:
        """Quantity times the contract multiplier (1 for shares and currencies)."""
        return self.position.quantity * self.position.instrument.multiplier

    @property
    def market_value(self) -> Decimal | None:
        """In the instrument's currency, as the price is."""
        return None if self.price is None else self.units * self.price

    @property
    def unrealized_pnl(self) -> Decimal | None:
        if self.price is None:
            return None
        return self.units * (self.price - self.position.average_cost)


def valued_positions(positions: QuerySet[Position]) -> list[ValuedPosition]:
    """The open positions of ``positions`` (a scoped queryset) with their latest prices: two
    statements whatever their number."""
    rows = list(
        positions.exclude(quantity=0)
        .select_related("account", "instrument")
        .order_by("account__name", "instrument__symbol")
    )
    # Split-adjusted: the morning a split goes ex, the positions hold its shares before any
    # bar is traded in them, at the last close divided by its ratio.
    prices = latest_prices((p.instrument_id for p in rows), adjustment="split")
    valued = []
    for position in rows:
        price = prices.get(position.instrument_id)
        valued.append(
            ValuedPosition(
                position,
                None if price is None else Decimal(str(price.price)),
                None if price is None else price.ts,
            )
        )
    return valued
