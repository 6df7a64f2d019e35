"""Past volatility regimes like an instrument's current one, and what followed each."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection

from marketdata.models import Instrument
from marketdata.presence import keyed
from vectors.search import RegimeMatch, current_regime, similar_regimes

# The close at the end of each matched period and the closes 5 and 20 daily bars later:
# three index probes per match, in one statement for all of them (from the instruments' keys
# where the bars are distributed: marketdata.presence.keyed).
FOLLOWED_SQL = """
SELECT m.ord, p0.close, p5.close, p20.close
FROM unnest(%s::bigint[], %s::timestamptz[]) WITH ORDINALITY AS m(instrument_id, period_end, ord)
{keys}
LEFT JOIN LATERAL (SELECT close FROM marketdata_dailybar WHERE instrument_id = {instrument}
                     AND ts <= m.period_end ORDER BY ts DESC LIMIT 1) p0 ON true
LEFT JOIN LATERAL (SELECT close FROM marketdata_dailybar WHERE instrument_id = {instrument}
                     AND ts > m.period_end ORDER BY ts OFFSET 4 LIMIT 1) p5 ON true
LEFT JOIN LATERAL (SELECT close FROM marketdata_dailybar WHERE instrument_id = {instrument}
                     AND ts > m.period_end ORDER BY ts OFFSET 19 LIMIT 1) p20 ON true
ORDER BY m.ord
"""


# A match must be history: over this long before the current period's end, so that it is not
# the current regime's own yesterday and what followed it is known.
HORIZON = timedelta(days=28)


@dataclass(frozen=True)
class SimilarRegime:
    match: RegimeMatch
    return_5d: float | None  # None: fewer than 5 daily bars after the period
    return_20d: float | None

    @property
    def similarity(self) -> float:
        return 1.0 - self.match.distance


@dataclass(frozen=True)
class RegimeView:
    current_label: str
    current_end: datetime
    similar: list[SimilarRegime]
    horizon_days: int = HORIZON.days


def regimes_like_now(instrument: Instrument, k: int = 8) -> RegimeView | None:
    """The ``k`` past periods nearest ``instrument``'s current regime, each ending HORIZON
    or more before it (None without a current regime)."""
    current = current_regime(instrument)
    if current is None:
        return None
    matches = similar_regimes(current, k, ended_by=current.period_end - HORIZON)
    followed = _followed(matches)
    similar = [SimilarRegime(m, *followed[i]) for i, m in enumerate(matches)]
    return RegimeView(current.label, current.period_end, similar)


def _followed(matches: list[RegimeMatch]) -> list[tuple[float | None, float | None]]:
    if not matches:
        return []
    keys, instrument = keyed("m.instrument_id")
    with connection.cursor() as cursor:
        cursor.execute(
            FOLLOWED_SQL.format(keys=keys, instrument=instrument),
            [
                [m.regime.instrument_id for m in matches],
                [m.regime.period_end for m in matches],
            ],
        )
        found = {ord_: (_change(start, c5), _change(start, c20)) for ord_, start, c5, c20 in cursor}
    return [found.get(i, (None, None)) for i in range(1, len(matches) + 1)]


def _change(start, end) -> float | None:
    if start is None or end is None or start == 0:
        return None
    return float(end) / float(start) - 1.0
