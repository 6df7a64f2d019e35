"""The demo trades as the markets do: equities in New York's sessions (no bar on its holidays,
none after 13:00 New York on an early close, 9:30 to 16:00 New York in winter and summer), FX
from Sunday 17:00 to Friday 17:00 New York, crypto every day (marketdata/sessions.py).

Read back from the database after ``seed_demo``, in New York's time, as a desk would check."""

from __future__ import annotations

from datetime import date
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from marketdata import demo, sessions

# NYSE holidays on weekdays, and its early closes (13:00 New York), 2025-11 to 2026-12.
HOLIDAYS = [
    date(2025, 11, 27),
    date(2025, 12, 25),
    date(2026, 1, 1),
    date(2026, 1, 19),
    date(2026, 2, 16),
    date(2026, 4, 3),
    date(2026, 5, 25),
    date(2026, 6, 19),
    date(2026, 7, 3),
    date(2026, 9, 7),
    date(2026, 11, 26),
]
EARLY_CLOSES = [date(2025, 11, 28), date(2025, 12, 24), date(2026, 11, 27), date(2026, 12, 24)]
# The seeded window: 40 New York sessions to Tuesday 2026-01-20, from 2025-11-20.
SEEDED_END, SEEDED_DAYS = date(2026, 1, 20), 40

BY_NEW_YORK_DAY_SQL = """
SELECT (b.ts AT TIME ZONE 'America/New_York')::date AS day, count(*),
       min((b.ts AT TIME ZONE 'America/New_York')::time),
       max((b.ts AT TIME ZONE 'America/New_York')::time)
FROM marketdata_minutebar b JOIN marketdata_instrument i ON i.id = b.instrument_id
WHERE i.symbol = %s GROUP BY 1 ORDER BY 1
"""
DAILY_SQL = """
SELECT b.ts::date FROM marketdata_dailybar b JOIN marketdata_instrument i
ON i.id = b.instrument_id WHERE i.symbol = %s ORDER BY 1
"""


def rows(sql: str, *params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@pytest.fixture
def seeded(db) -> str:
    out = StringIO()
    call_command(
        "seed_demo",
        "--symbols",
        "AAPL,EURUSD,BTCUSD",
        "--days",
        str(SEEDED_DAYS),
        "--end",
        SEEDED_END.isoformat(),
        stdout=out,
    )
    return out.getvalue()


def test_equities_trade_new_yorks_sessions_holidays_and_early_closes_included(seeded):
    by_day = {day: (n, first, last) for day, n, first, last in rows(BY_NEW_YORK_DAY_SQL, "AAPL")}
    assert len(by_day) == SEEDED_DAYS
    assert min(by_day) == date(2025, 11, 20)
    assert not set(HOLIDAYS) & set(by_day)  # Thanksgiving, Christmas, New Year, MLK day
    for early in (date(2025, 11, 28), date(2025, 12, 24)):
        n, first, last = by_day[early]
        assert (n, str(first), str(last)) == (210, "09:30:00", "12:59:00")
    full = {(n, str(a), str(b)) for d, (n, a, b) in by_day.items() if d not in EARLY_CLOSES}
    assert full == {(390, "09:30:00", "15:59:00")}
    daily = [d for (d,) in rows(DAILY_SQL, "AAPL")]
    assert daily == sorted(by_day)  # one daily bar a session, none on a holiday


def test_fx_trades_from_sunday_17_00_to_friday_17_00_new_york(seeded):
    by_day = {day: (n, first, last) for day, n, first, last in rows(BY_NEW_YORK_DAY_SQL, "EURUSD")}
    assert not [d for d in by_day if d.weekday() == 5]  # no Saturday
    sundays = [v for d, v in by_day.items() if d.weekday() == 6]
    fridays = [v for d, v in by_day.items() if d.weekday() == 4]
    assert sundays
    assert {(n, str(first)) for n, first, _ in sundays} == {(7 * 60, "17:00:00")}
    assert fridays
    assert {str(last) for _, _, last in fridays} == {"16:59:00"}
    # A daily bar a weekday, named by the day its session ends on.
    daily = [d for (d,) in rows(DAILY_SQL, "EURUSD")]
    assert daily
    assert all(d.weekday() < 5 for d in daily)
    assert daily[-1] == SEEDED_END


def test_crypto_trades_every_minute_of_every_day(seeded):
    utc_days = rows(
        """SELECT b.ts::date, count(*) FROM marketdata_minutebar b
           JOIN marketdata_instrument i ON i.id = b.instrument_id
           WHERE i.symbol = 'BTCUSD' GROUP BY 1 ORDER BY 1"""
    )
    days = [d for d, _ in utc_days]
    assert {n for _, n in utc_days} == {1440}
    every = range(days[0].toordinal(), SEEDED_END.toordinal() + 1)
    assert days == [date.fromordinal(o) for o in every]
    assert date(2025, 12, 6) in days
    assert date(2025, 12, 25) in days
    assert [d for (d,) in rows(DAILY_SQL, "BTCUSD")] == days


def test_the_generator_skips_a_years_holidays_and_closes_early():
    """A year of AAPL to 2026-12-04 (no database): the 2026 holidays and early closes."""
    bars = demo.generate(demo.DEMO_SYMBOLS["AAPL"], date(2026, 12, 4), 252, 1)
    days = bars.session.astype(date)
    assert not set(HOLIDAYS) & set(days)
    daily = demo.daily_from_minutes(bars)
    assert len(daily) == 252
    assert not set(HOLIDAYS) & set(daily.ts.astype("datetime64[D]").astype(date))
    late = bars.ts[days == date(2026, 11, 27)]
    # 9:30 to 13:00 New York in winter: 14:30 to 18:00 UTC.
    assert (str(late[0]), str(late[-1]), len(late)) == (
        "2026-11-27T14:30:00.000000",
        "2026-11-27T17:59:00.000000",
        210,
    )


def test_fx_sessions_follow_new_yorks_daylight_saving():
    found = sessions.fx_sessions(date(2024, 3, 8), date(2024, 3, 11))  # Friday to Monday
    assert [str(d) for d in found.label] == ["2024-03-08", "2024-03-11"]
    # Friday closes at 17:00 EST (22:00 UTC); Monday opens Sunday 17:00 EDT (21:00 UTC).
    assert [str(t) for t in found.close[:1]] == ["2024-03-08T22:00:00.000000"]
    assert [str(t) for t in found.open[1:]] == ["2024-03-10T21:00:00.000000"]
    assert (found.lengths() == 1440).all()


def test_minutes_are_built_from_the_sessions():
    found = sessions.exchange_sessions("XNYS", date(2025, 12, 23), date(2025, 12, 26))
    when = sessions.minutes(found)
    assert [str(d) for d in found.label] == ["2025-12-23", "2025-12-24", "2025-12-26"]
    assert list(found.lengths()) == [390, 210, 390]
    assert len(when.ts) == 990
    assert (np.diff(when.ts)[when.position[1:] > 0] == sessions.MINUTE).all()
    assert str(when.ts[when.position == 0][1]) == "2025-12-24T14:30:00.000000"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--end", "2099-01-02"], r"--end 2099-01-02 with --days 5: the XNYS calendar covers"),
        (["--end", "2024-05-17", "--days", "99999"], "sessions to 2024-05-17, not 99999"),
    ],
)
def test_dates_outside_the_calendar_are_refused(db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", "--symbols", "AAPL", "--days", "5", *args, stdout=StringIO())
