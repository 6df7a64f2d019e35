"""Numbers as a person reads them on a page (the dashboard's templates, the admin's lists):
a price with its instrument's tick, a duration in days, hours and minutes. The API and the
exports keep their machine formats; these are for human-facing text only.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation

# Without a tick size: the price's own decimals, within these bounds.
FALLBACK_PLACES = (2, 8)
UNITS = (("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1))


def price_places(tick_size: Decimal | float | str | None) -> int | None:
    """The decimals a price on the grid of ``tick_size`` has: 2 for 0.01 (and 0.25), 5 for
    0.00001, none for 1 or 5; None when there is no (valid) tick size."""
    try:
        tick = Decimal(str(tick_size)).normalize() if tick_size is not None else None
    except InvalidOperation:
        return None
    if tick is None or not tick.is_finite() or tick <= 0:
        return None
    return max(0, -int(tick.as_tuple().exponent))


def price_text(
    value: Decimal | float | str | None, tick_size: Decimal | float | None, extra: int = 0
) -> str:
    """``value`` with the decimals of ``tick_size`` (and ``extra`` more: a mid between two
    ticks sits on half a tick) and thousands grouped: "1.08345" for EURUSD (tick 0.00001),
    "60,000.00" at a tick of 0.01. Without a tick size, its own decimals (two to eight).
    Empty for no value, so that a ``default`` filter applies."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    if not number.is_finite():
        return str(value)
    places = price_places(tick_size)
    if places is not None:
        places += extra
    else:
        own = max(0, -int(number.normalize().as_tuple().exponent))
        places = min(max(own, FALLBACK_PLACES[0]), FALLBACK_PLACES[1])
    return f"{number:,.{places}f}"


def duration_text(value: timedelta | None) -> str:
    """A duration in words, largest units first, zero parts left out: "2 days", "4 hours",
    "1 day 12 hours", "30 minutes", "90 seconds" is "1 minute 30 seconds", under ten seconds
    to a tenth ("0.4 seconds"); never "1 days" nor Python's "2 days, 0:00:00"."""
    if value is None:
        return ""
    tenths = round(value.total_seconds(), 1)
    if abs(tenths) < 10 and tenths != round(tenths):  # a job's run: "0.4 seconds", not "0"
        return f"{tenths:.1f} seconds"
    seconds = round(value.total_seconds())
    if seconds == 0:
        return "0 seconds"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    parts = []
    for unit, size in UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return sign + " ".join(parts)
