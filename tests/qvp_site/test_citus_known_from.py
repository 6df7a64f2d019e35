"""On Citus the application's role writes market data, and still never says when a row was
learnt: ``known_from`` is the database's, set on the shards (marketdata 0021,
``KnownFromSetOnTheShards``). Raw SQL as trading_app through the coordinator (an INSERT, a
COPY, an INSERT naming the column), as trading_app logged in on the worker that holds the
instrument's shard, writing the shard itself, and as the owner, who dates the rows of a load.
Runs on a Citus cluster; skipped elsewhere with the reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection
from psycopg import errors

from marketdata.models import DailyBar, Instrument
from qvp_site.db import partitions, roles

pytestmark = [pytest.mark.citus, pytest.mark.django_db(transaction=True)]
DAY = datetime(2026, 3, 2, tzinfo=UTC)
FORGED = datetime(2020, 1, 1, tzinfo=UTC)
COLUMNS = "instrument_id, ts, open, high, low, close, volume"


@pytest.fixture
def instrument(transactional_db) -> Instrument:
    """An instrument, and partitions for its bars of a week either side of DAY, committed."""
    partitions.prepare_load("marketdata_dailybar", DAY - timedelta(days=7), DAY + timedelta(days=7))
    return Instrument.objects.create(symbol="KNOWN", asset_class="equity", exchange="XNAS")


def _known_from(instrument: Instrument, day: datetime) -> datetime:
    return DailyBar.objects.get(instrument=instrument, ts=day).known_from


def _transaction_time(conn: psycopg.Connection) -> datetime:
    return conn.execute("SELECT now()").fetchone()[0]


def _app_role_on(host: str, port: int, password: str) -> psycopg.Connection:
    """A session of the application's role on a worker."""
    return psycopg.connect(
        host=host,
        port=port,
        dbname=connection.settings_dict["NAME"],
        user=roles.APP_ROLE,
        password=password,
        autocommit=True,
    )


def test_the_app_role_inserts_and_copies_bars_dated_by_the_database(connect_as_app, instrument):
    conn = connect_as_app()
    with conn.transaction():
        began = _transaction_time(conn)
        conn.execute(
            f"INSERT INTO marketdata_dailybar ({COLUMNS}) VALUES (%s, %s, 10, 11, 9, 10.5, 100)",
            [instrument.id, DAY],
        )
        with conn.cursor().copy(f"COPY marketdata_dailybar ({COLUMNS}) FROM STDIN") as copy:
            copy.write_row((instrument.id, DAY + timedelta(days=1), 10, 11, 9, 10.5, 100))
    after = datetime.now(UTC)
    for day in (DAY, DAY + timedelta(days=1)):
        assert began <= _known_from(instrument, day) <= after


def test_the_app_role_naming_known_from_is_refused_by_the_coordinator(connect_as_app, instrument):
    conn = connect_as_app()
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(
            f"INSERT INTO marketdata_dailybar ({COLUMNS}, known_from)"
            " VALUES (%s, %s, 10, 11, 9, 10.5, 100, %s)",
            [instrument.id, DAY, FORGED],
        )
    assert not DailyBar.objects.filter(instrument=instrument).exists()


def test_the_app_role_on_the_worker_cannot_date_a_row_of_the_shard(app_role_password, instrument):
    """The role's grant of the column on the shards is what the coordinator's rows need; a
    session of its own on the worker, writing the shard directly or through the worker's copy
    of the table, gets now() all the same."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT shard_name('marketdata_dailybar'::regclass, s.shardid), p.nodename, p.nodeport"
            " FROM (SELECT get_shard_id_for_distribution_column('marketdata_dailybar', %s)"
            " AS shardid) AS s JOIN pg_dist_shard_placement p USING (shardid)",
            [instrument.id],
        )
        shard, host, port = cursor.fetchone()
        cursor.execute("SELECT nextval(pg_get_serial_sequence('marketdata_dailybar', 'id'))")
        row_id = cursor.fetchone()[0]
    with _app_role_on(host, port, app_role_password) as worker:
        worker.execute("SET citus.override_table_visibility = off")
        with worker.transaction():
            began = _transaction_time(worker)
            worker.execute(
                f'INSERT INTO "{shard}" (id, {COLUMNS}, known_from)'
                " VALUES (%s, %s, %s, 10, 11, 9, 10.5, 100, %s)",
                [row_id, instrument.id, DAY, FORGED],
            )
    assert began <= _known_from(instrument, DAY) <= datetime.now(UTC)
    # Through the worker's copy of the distributed table, which routes it there: refused (the
    # copy has the coordinator's grants), or, where it has the shards', dated all the same.
    with _app_role_on(host, port, app_role_password) as worker:
        try:
            with worker.transaction():
                began = _transaction_time(worker)
                worker.execute(
                    f"INSERT INTO marketdata_dailybar ({COLUMNS}, known_from)"
                    " VALUES (%s, %s, 10, 11, 9, 10.5, 100, %s)",
                    [instrument.id, DAY + timedelta(days=1), FORGED],
                )
        except errors.InsufficientPrivilege:
            return
    assert began <= _known_from(instrument, DAY + timedelta(days=1)) <= datetime.now(UTC)


def test_the_owner_still_dates_the_rows_of_a_load(instrument):
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO marketdata_dailybar ({COLUMNS}, known_from)"
            " VALUES (%s, %s, 10, 11, 9, 10.5, 100, %s)",
            [instrument.id, DAY, FORGED],
        )
    assert _known_from(instrument, DAY) == FORGED
