"""Times given to the client, and a long range cut into the server's bulk limit.

The server reads ``start`` (inclusive) and ``end`` (exclusive) and refuses a bulk read over
more than its limit (``QVP_API_BULK_MAX_DAYS``, 366 days by default): the client asks for
consecutive chunks ``[start, start + chunk)``, ``[start + chunk, start + 2 chunk)``, ... so
that every moment falls in exactly one of them (no row twice, none missed).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

# A datetime (aware, or naive read as UTC), a date (its midnight UTC), or ISO 8601 text.
Moment = datetime | date | str

DEFAULT_CHUNK = timedelta(days=366)
# The server's limit for ticks and option quotes (QVP_API_BULK_MAX_TICK_DAYS): a month.
TICK_CHUNK = timedelta(days=31)


def as_utc(moment: Moment, name: str = "time") -> datetime:
    """``moment`` as an aware UTC datetime; a naive one is taken to be UTC already."""
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.strip())
        except ValueError as error:
            raise ValueError(f"{name}: {moment!r} is not an ISO 8601 time") from error
    if not isinstance(moment, datetime):  # a date (datetime is a date too: tested first)
        moment = datetime.combine(moment, time(0), tzinfo=UTC)
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso(moment: datetime) -> str:
    """The text the server reads: ISO 8601 in UTC with microseconds when there are some."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def chunks(start: datetime, end: datetime, size: timedelta) -> list[tuple[datetime, datetime]]:
    """[start, end) as consecutive half-open ranges of at most ``size``."""
    if size <= timedelta(0):
        raise ValueError(f"chunk: must be positive, not {size}")
    if end <= start:
        raise ValueError(f"start ({iso(start)}) must be before end ({iso(end)})")
    found: list[tuple[datetime, datetime]] = []
    cursor = start
    while cursor < end:
        found.append((cursor, min(cursor + size, end)))
        cursor += size
    return found
