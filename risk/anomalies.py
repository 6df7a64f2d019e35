"""Market-data anomalies of an instrument's minute bars over a window, found in SQL by
``risk_market_anomalies`` (risk/sql/anomalies/0008.sql), the function behind the design
documents' ``SELECT * FROM detect_market_data_anomalies('AAPL', 24)``: return and volume
outliers by a robust z-score (median and MAD), and gaps where the exchange's trading calendar
says the market was open and no bar exists.

What SQL cannot do is done here, before the function is called: the trading calendar lives in
Python (``exchange_calendars``), so the sessions of the window are copied into
``TradingPeriod`` (``load_sessions``). The findings are then upserted into ``MarketAnomaly``
(running again restates them) in the statement that calls the function, and returned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from django.db import connection, transaction

from marketdata import sessions
from marketdata.models import Instrument

# Instruments whose exchange has no calendar of its own trade around the clock or the week
# (the SQL function falls back the same way).
# FX's is named "24/5" but its periods are marketdata.sessions' FX week.
FX_WEEK = "24/5"
CALENDAR_BY_ASSET_CLASS = {"crypto": "24/7", "fx": FX_WEEK}
OUTLIER_COLUMNS = ["ts", "kind", "value", "score"]
GAP_COLUMNS = ["ts", "until", "value"]

# The function's findings, those that are anomalies stored, in one statement.
DETECT_SQL = """
WITH found AS MATERIALIZED (
    SELECT * FROM risk_market_anomalies(%(instrument)s, %(start)s, %(end)s, %(threshold)s)
), stored AS (
    INSERT INTO risk_marketanomaly (instrument_id, ts, kind, value, score, until)
    SELECT %(instrument)s, ts, kind, value, score, until FROM found
    WHERE kind IN ('return', 'volume', 'gap')
    ON CONFLICT (instrument_id, kind, ts)
    DO UPDATE SET value = EXCLUDED.value, score = EXCLUDED.score, until = EXCLUDED.until,
                  detected_at = now()
)
SELECT ts, kind, value, score, until, detail FROM found ORDER BY ts, kind
"""

# A calendar's range widened to take in [start, end), and its periods there restated.
LOAD_SQL = """
WITH calendar AS (
    INSERT INTO risk_tradingcalendar (name, sessions_from, sessions_to)
    VALUES (%(name)s, %(start)s, %(end)s)
    ON CONFLICT (name) DO UPDATE
    SET sessions_from = least(risk_tradingcalendar.sessions_from, EXCLUDED.sessions_from),
        sessions_to = greatest(risk_tradingcalendar.sessions_to, EXCLUDED.sessions_to),
        loaded_at = now()
    RETURNING id
), gone AS (
    DELETE FROM risk_tradingperiod p USING calendar c
    WHERE p.calendar_id = c.id AND p.opens_at < %(end)s AND p.closes_at > %(start)s
)
INSERT INTO risk_tradingperiod (calendar_id, opens_at, closes_at)
SELECT c.id, o, e FROM calendar c,
    unnest(%(opens)s::timestamptz[], %(closes)s::timestamptz[]) AS p(o, e)
ON CONFLICT (calendar_id, opens_at) DO UPDATE SET closes_at = EXCLUDED.closes_at
"""


@dataclass(frozen=True)
class Anomalies:
    symbol: str
    start: datetime
    end: datetime
    bars: int
    calendar: str | None  # None: no calendar known for the instrument, gaps not measured
    outliers: pd.DataFrame  # ts, kind, value, score
    gaps: pd.DataFrame  # ts (first missing minute), until (last), value (minutes missing)
    unmeasured: list[tuple[datetime, datetime, str]]  # [start, end) where gaps were not measured


def calendar_name(instrument: Instrument) -> str | None:
    names = set(xcals.get_calendar_names(include_aliases=True))
    if instrument.exchange in names:
        return instrument.exchange
    return CALENDAR_BY_ASSET_CLASS.get(instrument.asset_class)


def _loaded(name: str) -> tuple[datetime, datetime] | None:
    """The range of calendar ``name`` loaded already (every period within it), if any."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT sessions_from, sessions_to FROM risk_tradingcalendar WHERE name = %s", [name]
        )
        found = cursor.fetchone()
    return (found[0], found[1]) if found else None


def trading_periods(
    name: str, start: datetime, end: datetime
) -> tuple[datetime, datetime, list[datetime], list[datetime]] | None:
    """The spans calendar ``name`` trades without a break that overlap [start, end), a session
    with a midday break as two, and [start, end) cut to the calendar's own range; None where
    the calendar knows nothing of it."""
    if name == FX_WEEK:
        return _fx_periods(start, end)
    cal = sessions.calendar(name)
    with sessions.calendar_library():
        lo = max(pd.Timestamp(start), cal.first_minute)
        hi = min(pd.Timestamp(end), cal.last_minute + pd.Timedelta(minutes=1))
        if lo >= hi:
            return None
        days = cal.schedule.loc[(lo - pd.Timedelta(days=2)).date() : hi.date()]
    days = days[(days["open"] < hi) & (days["close"] > lo)]
    whole = days[days["break_start"].isna()]
    broken = days[days["break_start"].notna()]
    opens = [*whole["open"], *broken["open"], *broken["break_end"]]
    closes = [*whole["close"], *broken["break_start"], *broken["close"]]
    return lo.to_pydatetime(), hi.to_pydatetime(), _utc(opens), _utc(closes)


def _fx_periods(
    start: datetime, end: datetime
) -> tuple[datetime, datetime, list[datetime], list[datetime]]:
    """FX's sessions overlapping [start, end) as the market data keeps them
    (marketdata.sessions: 17:00 New York to 17:00, Sunday to Friday), not the library's
    "24/5", whose week runs Monday to Friday in UTC and would find gaps on Sunday evenings."""
    week = sessions.fx_sessions(start.date() - timedelta(days=1), end.date() + timedelta(days=1))
    lo, hi = _naive(start), _naive(end)
    keep = (week.open < hi) & (week.close > lo)
    return start, end, _aware(week.open[keep]), _aware(week.close[keep])


def _naive(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")


def _aware(stamps: np.ndarray) -> list[datetime]:
    return list(pd.DatetimeIndex(stamps).tz_localize(UTC).to_pydatetime())


def _utc(stamps: list[pd.Timestamp]) -> list[datetime]:
    return [stamp.tz_convert(UTC).to_pydatetime() for stamp in stamps]


def load_sessions(name: str, start: datetime, end: datetime) -> bool:
    """Copy calendar ``name``'s trading periods over [start, end) into ``TradingPeriod``
    where they are not yet (what the SQL function reads for gaps); whether it loaded any.
    The calendar's range only ever holds every period within it: a window apart from it is
    loaded with the stretch between them, or a later window there would find none."""
    if loaded := _loaded(name):
        if loaded[0] <= start and end <= loaded[1]:
            return False
        start, end = min(start, loaded[0]), max(end, loaded[1])
    found = trading_periods(name, start, end)
    if found is None:
        return False
    lo, hi, opens, closes = found
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            LOAD_SQL, {"name": name, "start": lo, "end": hi, "opens": opens, "closes": closes}
        )
    return True


def detect(
    instrument: Instrument, hours: float, end: datetime, threshold: float = 5.0
) -> Anomalies:
    """Find and store the anomalies of ``instrument``'s minute bars in [end - hours, end)."""
    if not hours > 0:
        raise ValueError("hours must be positive")
    if not threshold > 0:
        raise ValueError("threshold must be positive")
    start = end - timedelta(hours=hours)
    name = calendar_name(instrument)
    if name:
        load_sessions(name, start, end)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            DETECT_SQL,
            {"instrument": instrument.pk, "start": start, "end": end, "threshold": threshold},
        )
        rows = cursor.fetchall()
        cursor.execute(
            "SELECT count(*) FROM marketdata_minutebar"
            " WHERE instrument_id = %s AND ts >= %s AND ts < %s",
            [instrument.pk, start, end],
        )
        bars = cursor.fetchone()[0]
    return Anomalies(
        instrument.symbol,
        start,
        end,
        bars,
        name,
        _frame([r[:4] for r in rows if r[1] in ("return", "volume")], OUTLIER_COLUMNS),
        _frame([(r[0], r[4], r[2]) for r in rows if r[1] == "gap"], GAP_COLUMNS),
        [(r[0], r[4], r[5]) for r in rows if r[1] == "unmeasured"],
    )


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=columns)
