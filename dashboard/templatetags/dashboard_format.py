"""Number formats the dashboard's tables share, and ``pairs``: a mapping's items for a loop.

Every price on a page goes through ``price`` with its instrument (``{{ fill.price|price:
fill.instrument }}``): EURUSD's with five decimals, AAPL's with two, as their tick sizes say.
Durations go through ``duration``: "2 days", not Python's "2 days, 0:00:00".

A template's ``value.items`` looks the key "items" up before the method, so JSON stored with
a key named "items" (or "keys", "values") would hand its value to the loop: the page fails for
everyone while the record is shown. Loops over stored JSON go through ``pairs``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django import template

from qvp_site.db import status
from qvp_site.display import duration_text, price_text

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a signed percentage (0.0123 -> "+1.23 %"); a dash for no value."""
    if value is None:
        return "\u2013"  # an en dash, as the tables show for no value
    return f"{value * 100:+.{digits}f} %"


@register.filter
def spoken(value: object) -> str:
    """An interval as said ("1 day", "2 hours"), not PostgreSQL's literal ("1 days")."""
    return status.spoken(str(value))


@register.filter
def price(value: Decimal | float | None, instrument: Any = None) -> str:
    """A price with the decimals of its instrument's tick size (an Instrument, or the tick
    size itself); empty for no value, so that ``|default:"-"`` follows it."""
    return price_text(value, getattr(instrument, "tick_size", instrument))


@register.filter
def mid_price(value: Decimal | float | None, instrument: Any = None) -> str:
    """A mid (an arrival price, say) with one decimal more than its instrument's ticks: the
    middle of a one-tick spread sits on half a tick."""
    return price_text(value, getattr(instrument, "tick_size", instrument), extra=1)


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration in words: "2 days", "4 hours", "1 day 12 hours"."""
    return duration_text(value)


@register.filter
def brief(value: object) -> str:
    """A number in four significant digits, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@register.filter
def pairs(value: object) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping, by the method whatever its keys; none for
    anything else (a list, a number, text)."""
    if isinstance(value, dict):
        return list(dict.items(value))
    return []
