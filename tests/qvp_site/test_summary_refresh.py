"""The summaries of plain PostgreSQL are refreshed in SQL (qvp_site/sql/maintenance/0013.sql),
one implementation behind ``SELECT daily_maintenance();`` in psql, ``manage.py maintain`` and the
loads: the function refreshes them itself and leaves the command nothing of theirs; the refresh
is the owner's; its query is the one the migration created the summary with."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from marketdata.models import Instrument, MinuteBar
from qvp_site.backups import libpq_params
from qvp_site.db import catalog, partitions, roles
from qvp_site.db.aggregates import select_sql, summary_select
from tests.qvp_site.test_maintenance_functions import as_role, report

HOURLY = "marketdata_minutebar_1h"
SQL_CALLS = (
    f"qvp_refresh_summary('{HOURLY}', now() - interval '1 day', now())",
    f"qvp_refresh_summary_pending('{HOURLY}')",
    f"qvp_summary_select('{HOURLY}')",
    "qvp_refresh_summaries('marketdata_minutebar', false)",
)
PLAIN_ONLY = "summary tables are plain PostgreSQL's; TimescaleDB's continuous aggregates are"


@pytest.fixture
def plain(db, timescaledb):
    if timescaledb:
        pytest.skip(f"{PLAIN_ONLY} refreshed outside a transaction (see the test below)")


def three_bars(hour: datetime) -> Instrument:
    """An instrument with three minute bars in the hour from ``hour``: hand-checkable."""
    partitions.prepare_load("marketdata_minutebar", hour, hour + timedelta(hours=1))
    instrument = Instrument.objects.create(symbol="SUMM", asset_class="equity")
    for minute, (price, volume) in enumerate([(10.0, 100), (12.0, 200), (11.0, 300)]):
        MinuteBar.objects.create(
            instrument=instrument,
            ts=hour + timedelta(minutes=minute),
            open=price,
            high=price + 1,
            low=price - 1,
            close=price + 0.5,
            volume=volume,
        )
    return instrument


def call_in_savepoint(statement: str) -> None:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)


def hourly_row(instrument: Instrument) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT bucket, open, high, low, close, volume, bar_count FROM {HOURLY}"
            " WHERE instrument_id = %s ORDER BY bucket",
            [instrument.id],
        )
        return cursor.fetchall()


def expected(hour: datetime) -> list[tuple]:
    return [(hour, 10.0, 13.0, 9.0, 11.5, 600, 3)]


def test_daily_maintenance_refreshes_the_recent_window_in_sql(plain):
    hour = (timezone.now() - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    instrument = three_bars(hour)
    assert hourly_row(instrument) == []
    found = report("daily_maintenance()")
    assert hourly_row(instrument) == expected(hour)
    assert any(line.startswith(f"{HOURLY}: refreshed ") for line in found["done"]), found
    assert not any("refresh" in line for line in found["left"]), found["left"]


def test_a_range_the_application_left_pending_is_refreshed(plain, app_role_password):
    hour = (timezone.now() - timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
    instrument = three_bars(hour)
    # What a load by trading_app does: it may not refresh, so it marks the range it wrote.
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.APP_ROLE}")
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = %s, pending_to = %s"
            " WHERE view_name = %s",
            [hour, hour + timedelta(minutes=2), HOURLY],
        )
        cursor.execute("RESET ROLE")
    found = report("daily_maintenance(NULL, NULL, 'marketdata_minutebar')")
    assert hourly_row(instrument) == expected(hour)
    span = f"{hour:%Y-%m-%d %H:%M} .. {hour + timedelta(hours=1):%Y-%m-%d %H:%M}"
    assert f"{HOURLY}: refreshed pending {span}" in found["done"], found["done"]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pending_from, refreshed_at IS NOT NULL FROM qvp_timeseries_aggregate"
            " WHERE view_name = %s",
            [HOURLY],
        )
        assert cursor.fetchone() == (None, True)


def test_a_refresh_replaces_the_buckets_of_its_range_only(plain):
    hour = (timezone.now() - timedelta(days=20)).replace(minute=0, second=0, microsecond=0)
    instrument = three_bars(hour)
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM qvp_refresh_summary(%s, %s, %s)", [HOURLY, hour, hour])
        assert cursor.fetchone() == (hour, hour + timedelta(hours=1))
        MinuteBar.objects.filter(instrument=instrument).update(volume=1)
        later = hour + timedelta(hours=1)
        cursor.execute("SELECT * FROM qvp_refresh_summary(%s, %s, %s)", [HOURLY, later, later])
    assert hourly_row(instrument) == expected(hour)  # the bucket outside it is kept


@pytest.mark.parametrize("call", SQL_CALLS)
@pytest.mark.parametrize("role", [roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE])
def test_no_role_of_the_application_may_refresh_or_read_the_refresh(
    db, app_role_password, role, call
):
    with pytest.raises(DatabaseError, match="permission denied for function"):
        as_role(role, f"SELECT * FROM {call}")


def test_the_refresh_runs_the_query_the_summary_was_created_with(db):
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor)
        assert found
        for agg in found:
            where = f'"{agg.time_column}" >= %s AND "{agg.time_column}" < %s'
            assert summary_select(cursor, agg.name) == select_sql(agg, timescaledb=False)
            assert summary_select(cursor, agg.name, where) == select_sql(
                agg, timescaledb=False, where=where
            )


@pytest.mark.parametrize(
    ("call", "message"),
    [
        ("qvp_refresh_summary('nope', now(), now())", "no aggregate named nope"),
        ("qvp_summary_select('nope')", "no aggregate named nope"),
        (f"qvp_refresh_summary('{HOURLY}', now(), now() - interval '1 day')", "is not a range"),
        (f"qvp_refresh_summary('{HOURLY}', NULL, now())", "is not a range"),
    ],
)
def test_a_bad_call_is_refused_naming_what_is_wrong(db, call, message):
    with pytest.raises(DatabaseError, match=message):
        call_in_savepoint(f"SELECT * FROM {call}")


@pytest.mark.timescaledb
def test_a_continuous_aggregate_is_left_to_the_command(db):
    with pytest.raises(DatabaseError, match="is not a summary table"):
        call_in_savepoint(f"SELECT * FROM qvp_refresh_summary('{HOURLY}', now(), now())")
    found = report("daily_maintenance()")
    assert any(line.startswith(f"{HOURLY}: refresh of its pending") for line in found["left"])


@pytest.mark.django_db(transaction=True)
def test_maintenance_takes_the_summaries_locks_before_the_tables_ddl(timescaledb):
    """A load's refresh holds its summary's lock while it reads the table; the daily function
    making a partition (which holds the table until it commits) must not then wait for that
    lock, or each waits for the other. It takes the summaries' locks first."""
    if timescaledb:
        pytest.skip(f"{PLAIN_ONLY} refreshed outside a transaction")
    call = "daily_maintenance(NULL, NULL, 'marketdata_minutebar')"
    report(call)  # steady state, then one partition ahead to make again
    with connection.cursor() as cursor:
        cursor.execute(
            f"DROP TABLE {partitions.partitions(cursor, 'marketdata_minutebar')[-1].name}"
        )
    errors: list[Exception] = []
    params = libpq_params()  # here: a thread's own Django connection names the site's database

    def maintain() -> None:
        try:
            with psycopg.connect(**params, autocommit=True) as conn:
                conn.execute(f"SELECT {call}")
        except Exception as error:  # whatever it is, the assertion below names it
            errors.append(error)

    # The watch has its own connection in autocommit: a transaction reads pg_stat_activity once
    # and keeps that picture, so the load's own transaction would never see the wait begin.
    with psycopg.connect(**params) as load, psycopg.connect(**params, autocommit=True) as watch:
        load.execute(f"SELECT pg_advisory_xact_lock(hashtext('qvp_agg:{HOURLY}'))")
        thread = threading.Thread(target=maintain)
        thread.start()
        deadline = time.monotonic() + 30
        while not watch.execute(  # the maintenance's backend (its query not always shown yet)
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, f"the maintenance never waited: {errors}"
            time.sleep(0.05)
        try:
            load.execute("SELECT count(*) FROM marketdata_minutebar")  # the refresh's read
        except psycopg.Error as error:
            errors.append(error)
        load.rollback()
    thread.join(60)
    assert not errors, errors
