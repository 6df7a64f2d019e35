"""The one way to ask the latest price of instruments as of a time.

Trading, risk and the dashboard all value positions through here: the close of the newest
minute bar at or before ``as_of``, or of the newest daily bar when that is newer (an
instrument with daily data only). One statement for any number of instruments, each lookup a
backward scan of the (instrument, ts) key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

LATEST_PRICES_SQL = """
SELECT i.id, latest.ts, latest.close, latest.source
FROM unnest(%(ids)s::bigint[]) AS i(id)
CROSS JOIN LATERAL (
    SELECT ts, close, source FROM (
        (SELECT ts, close, 'minute' AS source FROM marketdata_minutebar
         WHERE instrument_id = i.id AND ts <= %(as_of)s ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts, close, 'daily' AS source FROM marketdata_dailybar
         WHERE instrument_id = i.id AND ts <= %(as_of)s ORDER BY ts DESC LIMIT 1)
    ) AS candidates
    ORDER BY ts DESC LIMIT 1
) AS latest
"""


@dataclass(frozen=True)
class Price:
    instrument_id: int
    ts: datetime
    price: float
    source: str  # "minute" or "daily": which bars it came from


def latest_prices(instrument_ids: Iterable[int], as_of: datetime | None = None) -> dict[int, Price]:
    """Latest close per instrument at or before ``as_of`` (default now); instruments with no
    bar by then are absent from the answer."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    with connection.cursor() as cursor:
        cursor.execute(LATEST_PRICES_SQL, {"ids": ids, "as_of": as_of or timezone.now()})
        return {row[0]: Price(*row) for row in cursor.fetchall()}
