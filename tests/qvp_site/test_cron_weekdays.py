"""The scheduler's timetables fire when cron would: days of the week counted from Sunday = 0,
not APScheduler's Monday = 0 (its from_crontab would run "1-5" Tuesday to Saturday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from qvp_site.scheduler import cron_trigger

SUNDAY = datetime(2026, 11, 1, tzinfo=UTC)


def fire_days(timetable: str, days: int = 14) -> list[str]:
    """The days of the week ``timetable`` fires on over ``days`` days from a Sunday."""
    trigger, at, found = cron_trigger(timetable), SUNDAY, []
    while (at := trigger.get_next_fire_time(None, at)) < SUNDAY + timedelta(days=days):
        found.append(at.strftime("%a"))
        at += timedelta(minutes=1)
    return found


@pytest.mark.parametrize(
    ("timetable", "days"),
    [
        ("5 20 * * 1-5", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
        ("0 2 * * 0", ["Sun"]),
        ("0 2 * * 7", ["Sun"]),
        ("0 2 * * 5-7", ["Sun", "Fri", "Sat"]),  # from a Sunday
        ("0 2 * * */2", ["Sun", "Tue", "Thu", "Sat"]),
        ("0 2 * * 1,3", ["Mon", "Wed"]),
        ("0 2 * * mon-fri", ["Mon", "Tue", "Wed", "Thu", "Fri"]),
    ],
)
def test_days_of_the_week_as_cron_counts_them(timetable, days):
    assert fire_days(timetable, 7) == days


def test_every_day_and_every_quarter_hour_are_unchanged():
    assert len(fire_days("30 0 * * *")) == 14
    assert cron_trigger("*/15 * * * *").get_next_fire_time(None, SUNDAY) == SUNDAY


def test_a_day_out_of_range_is_refused_by_name():
    with pytest.raises(ValueError, match="day of week '8'"):
        cron_trigger("0 2 * * 8")
