"""Intervals as the time-series machinery uses them: fixed widths, or whole calendar months.

``date_bin`` and partition arithmetic need to know which kind an interval is before they
build SQL, so intervals are parsed here rather than left to PostgreSQL.
"""

from __future__ import annotations

import re
from calendar import monthrange
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# TimescaleDB's time_bucket origin for fixed intervals: a Monday, so weeks start on Monday.
FIXED_ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
# ... and for month-based intervals, the first month of 2000.
MONTH_ORIGIN_INDEX = 2000 * 12

_UNITS = {
    "us": timedelta(microseconds=1),
    "microsecond": timedelta(microseconds=1),
    "ms": timedelta(milliseconds=1),
    "millisecond": timedelta(milliseconds=1),
    "s": timedelta(seconds=1),
    "sec": timedelta(seconds=1),
    "second": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "min": timedelta(minutes=1),
    "minute": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "hour": timedelta(hours=1),
    "d": timedelta(days=1),
    "day": timedelta(days=1),
    "w": timedelta(weeks=1),
    "week": timedelta(weeks=1),
}
_MONTH_UNITS = {"mo": 1, "mon": 1, "month": 1, "y": 12, "year": 12}
_PART = re.compile(r"\s*(\d+)\s*([a-z]+?)s?\s*(?=\d|$)")


@dataclass(frozen=True)
class Interval:
    """A width of time: either ``months`` (calendar) or ``fixed`` (exact), never both."""

    months: int = 0
    fixed: timedelta = timedelta(0)

    @property
    def is_calendar(self) -> bool:
        return self.months > 0

    def sql(self) -> str:
        """The interval as a PostgreSQL interval literal."""
        if self.is_calendar:
            return f"{self.months} months"
        micros = self.fixed // timedelta(microseconds=1)
        units = (("days", 86_400_000_000), ("hours", 3_600_000_000), ("minutes", 60_000_000),
                 ("seconds", 1_000_000))  # fmt: skip
        for unit, size in units:
            if micros % size == 0:
                return f"{micros // size} {unit}"
        return f"{micros} microseconds"

    def floor(self, ts: datetime) -> datetime:
        """Start of the bucket holding ``ts``, aligned as time_bucket aligns it (UTC)."""
        ts = ts.astimezone(UTC)
        if self.is_calendar:
            index = ts.year * 12 + ts.month - 1 - MONTH_ORIGIN_INDEX
            start = MONTH_ORIGIN_INDEX + (index // self.months) * self.months
            return datetime(start // 12, start % 12 + 1, 1, tzinfo=UTC)
        steps = (ts - FIXED_ORIGIN) // self.fixed
        return FIXED_ORIGIN + steps * self.fixed

    def add(self, ts: datetime, times: int = 1) -> datetime:
        if not self.is_calendar:
            return ts + self.fixed * times
        index = ts.year * 12 + ts.month - 1 + self.months * times
        year, month = index // 12, index % 12 + 1
        # The 31st of a month plus one month is the last day of the next one, as in PostgreSQL.
        return ts.replace(year=year, month=month, day=min(ts.day, monthrange(year, month)[1]))

    def __str__(self) -> str:
        return self.sql()


def parse_interval(value: str | timedelta | Interval) -> Interval:
    """Parse ``"7 days"``, ``"1h"``, ``"15 minutes"``, ``"1mo"``, ``"1 year"``, a timedelta.

    Raises ValueError naming the value when it is not a positive width of one kind.
    """
    if isinstance(value, Interval):
        return value
    if isinstance(value, timedelta):
        if value <= timedelta(0):
            raise ValueError(f"interval {value} must be positive")
        return Interval(fixed=value)
    text = str(value).strip().lower()
    months, fixed, pos = 0, timedelta(0), 0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        count, unit = int(match.group(1)), match.group(2)
        if unit in _MONTH_UNITS:
            months += count * _MONTH_UNITS[unit]
        elif unit in _UNITS:
            fixed += count * _UNITS[unit]
        else:
            raise ValueError(f"interval {value!r}: unknown unit {unit!r}")
        pos = match.end()
    if not text or pos != len(text):
        raise ValueError(
            f"interval {value!r} is not of the form '<n> <unit>' (e.g. '7 days', '1h')"
        )
    if months and fixed:
        raise ValueError(f"interval {value!r} mixes calendar months with a fixed width")
    if not months and fixed <= timedelta(0):
        raise ValueError(f"interval {value!r} must be positive")
    return Interval(months=months, fixed=fixed)
