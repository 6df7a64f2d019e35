"""How fresh each instrument's data is: its latest minute and daily bar, and the gaps in its
minute bars found by ``detect_anomalies`` lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from marketdata.presence import latest_bar_times

GAP_WINDOW = timedelta(days=30)
# The active instruments and their gaps, from the coordinator's tables (the anomalies' (instrument,
# ts) index); their latest bars are probed apart (marketdata.presence, two backward index probes
# each, which Citus runs on the instruments' shards): the page stays fast however long the
# history.
GAPS_SQL = """
SELECT i.id, i.symbol, g.gaps, g.missing, g.last_gap
FROM marketdata_instrument i
LEFT JOIN LATERAL (SELECT count(*) AS gaps, sum(value) AS missing, max(ts) AS last_gap
                   FROM risk_marketanomaly
                   WHERE instrument_id = i.id AND kind = 'gap' AND ts >= %(since)s) g ON true
WHERE i.active
ORDER BY i.symbol
LIMIT %(limit)s
"""


@dataclass(frozen=True)
class Freshness:
    symbol: str
    latest_minute: datetime | None
    latest_daily: datetime | None
    gaps: int  # gaps in the minute bars over GAP_WINDOW
    minutes_missing: float | None
    last_gap: datetime | None

    @property
    def latest(self) -> datetime | None:
        found = [ts for ts in (self.latest_minute, self.latest_daily) if ts is not None]
        return max(found, default=None)

    @property
    def age(self) -> timedelta | None:
        return None if self.latest is None else timezone.now() - self.latest


def freshness(limit: int = 100) -> list[Freshness]:
    """The active instruments' freshness, by symbol, ``limit`` at most."""
    with connection.cursor() as cursor:
        cursor.execute(GAPS_SQL, {"since": timezone.now() - GAP_WINDOW, "limit": limit})
        rows = cursor.fetchall()
    latest = latest_bar_times(row[0] for row in rows)
    return [
        Freshness(symbol, *latest.get(id_, (None, None)), gaps or 0, missing, last_gap)
        for id_, symbol, gaps, missing, last_gap in rows
    ]
