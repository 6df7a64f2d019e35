"""The system page as a member of staff reads it: when each job runs next before any has run,
row counts of tables no ANALYZE has seen, intervals in words ("1 day", never "1 days")."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from dashboard import system_status
from qvp_site.db.status import spoken, table_status
from qvp_site.display import duration_text
from qvp_site.models import JobRun
from qvp_site.scheduler import discover
from signals.models import AlternativeData
from tests.clients import client_of

PLURAL_OF_ONE = re.compile(r"\b1 (microsecond|second|minute|hour|day|week|month|year)s\b")


@pytest.fixture
def operator(demo, db):
    return client_of(demo.operator)


def test_each_job_s_next_run_is_said_before_any_has_run(operator):
    JobRun.objects.all().delete()
    before = timezone.now()
    response = operator.get("/system/")
    after = timezone.now()
    html = response.content.decode()
    assert "No job has run yet" in html
    lines = {line.job: line for line in response.context["schedule"]}
    jobs = discover()
    assert set(lines) == set(jobs)
    for name, job in jobs.items():
        line = lines[name]
        assert line.latest is None
        assert line.timetable == job.timetable
        if job.timetable is None:  # off (base-backup, where no WAL is archived): never runs
            assert line.next_run is None
            continue
        # The next run after the moment the page was made: between the two around it.
        earliest = system_status.next_run(job.timetable, before)
        latest = system_status.next_run(job.timetable, after)
        assert earliest <= line.next_run <= latest
        assert before < line.next_run
        row = html[html.index(f'<tr data-job="{name}">') :]
        row = row[: row.index("</tr>")]
        assert f"{line.next_run:%Y-%m-%d %H:%M} UTC" in row
        assert "not run yet" in row


def test_the_next_run_follows_the_timetable_in_utc():
    monday_noon = datetime(2026, 11, 2, 12, 0, 30, tzinfo=UTC)
    assert system_status.next_run("5 20 * * 1-5", monday_noon) == datetime(
        2026, 11, 2, 20, 5, tzinfo=UTC
    )
    friday_night = datetime(2026, 11, 6, 21, tzinfo=UTC)
    assert system_status.next_run("5 20 * * 1-5", friday_night) == datetime(
        2026, 11, 9, 20, 5, tzinfo=UTC
    )
    assert system_status.next_run("*/15 * * * *", monday_noon) == datetime(
        2026, 11, 2, 12, 15, tzinfo=UTC
    )


def test_a_job_that_ran_shows_its_run_beside_its_next(operator):
    JobRun.objects.all().delete()
    started = timezone.now() - timedelta(minutes=3)
    JobRun.objects.create(
        job="maintain", status="succeeded", started_at=started, finished_at=started, output="ok"
    )
    response = operator.get("/system/")
    lines = {line.job: line for line in response.context["schedule"]}
    assert lines["maintain"].latest.output == "ok"
    assert lines["maintain"].next_run > timezone.now() - timedelta(seconds=5)
    assert "No job has run yet" not in response.content.decode()


def _never_analysed(table: str) -> None:
    """``table`` emptied in the test's transaction: TRUNCATE gives it (and its partitions or
    chunks) new files with no statistics, reltuples -1, as a freshly seeded table has."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {connection.ops.quote_name(table)}")


def _alternative_data(n: int) -> None:
    now = timezone.now()
    AlternativeData.objects.bulk_create(
        AlternativeData(ts=now - timedelta(hours=i), source="test", kind="count", payload={"n": i})
        for i in range(n)
    )


def _status_of(table: str):
    return next(s for s in table_status() if s.table == table)


def test_a_small_table_never_analysed_is_counted_exactly(operator):
    table = AlternativeData._meta.db_table
    _never_analysed(table)
    _alternative_data(37)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT max(reltuples) FROM pg_class WHERE relname LIKE %s AND relkind = 'r'",
            [f"%{table}%"],
        )
        assert cursor.fetchone()[0] == -1  # no estimate: what made the page say 0
    status = _status_of(table)
    assert (status.row_estimate, status.rows_counted) == (37, True)
    html = operator.get("/system/").content.decode()
    row = html[html.index(f"<code>{table}</code>") :]
    row = row[: row.index("</tr>")]
    assert '<td class="num rows">37</td>' in row


def test_an_analysed_table_shows_the_planner_s_estimate(operator):
    table = AlternativeData._meta.db_table
    _never_analysed(table)
    _alternative_data(37)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {connection.ops.quote_name(table)}")
    status = _status_of(table)
    assert (status.row_estimate, status.rows_counted) == (37, False)
    assert "≈ 37" in operator.get("/system/").content.decode()


def test_intervals_are_said_in_words():
    assert spoken("1 days") == "1 day"
    assert spoken("2 days") == "2 days"
    assert spoken("1 hours") == "1 hour"
    assert spoken("11 days") == "11 days"
    assert spoken("1 months") == "1 month"
    assert spoken("retention 1 days (drops partitions)") == "retention 1 day (drops partitions)"
    assert duration_text(timedelta(days=1)) == "1 day"
    assert duration_text(timedelta(days=2)) == "2 days"
    assert duration_text(timedelta(hours=12)) == "12 hours"
    assert duration_text(timedelta(seconds=90)) == "1 minute 30 seconds"
    assert duration_text(timedelta(milliseconds=412)) == "0.4 seconds"
    assert duration_text(timedelta(seconds=1)) == "1 second"
    assert duration_text(timedelta(seconds=3)) == "3 seconds"
    assert spoken("1 mon") == "1 month"
    assert spoken("3 mons 2 days") == "3 months 2 days"


def test_the_system_page_never_says_1_days(operator):
    html = operator.get("/system/").content.decode()
    assert not PLURAL_OF_ONE.search(html), PLURAL_OF_ONE.search(html).group()
    tick = html[html.index("<code>marketdata_tick</code>") :]
    assert tick[: tick.index("</tr>")].count("<td>1 day</td>") == 1  # its chunks' width
