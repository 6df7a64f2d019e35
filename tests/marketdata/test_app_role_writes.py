"""The application's database role writes market data only through the load path: it may
SELECT and INSERT bars, ticks and option quotes, never UPDATE, DELETE or TRUNCATE them, and a
stored bar is rewritten only by ``marketdata_merge_bars``, which runs as the owner. Raw SQL as
trading_app, then the real loads (``ingest_bars``, ``POST /api/v1/bars/``) logged in as
trading_app, as the served site is; on TimescaleDB, a compressed chunk rewritten too.

Transactional: the loads commit, and ``connect_as_app`` sees only committed rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min
from psycopg import errors

from marketdata.apps import TIME_SERIES_TABLES
from marketdata.models import DailyBar, Ingest, Instrument, MinuteBar, OptionQuote, Tick
from qvp_site.db import roles
from qvp_site.db.aggregates import refresh_table
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db(transaction=True)

MERGE = roles.OWNERS_FUNCTIONS[3]
# The key each table's upsert would name.
KEYS = {
    "marketdata_minutebar": "instrument_id, ts",
    "marketdata_dailybar": "instrument_id, ts",
    "marketdata_tick": "instrument_id, ts, sequence",
    "marketdata_optionquote": 'underlying_id, expiry, strike, "right", ts',
}
HEADER = "timestamp,open,high,low,close,volume"


@pytest.fixture(autouse=True)
def _aggregates_emptied_afterwards(transactional_db) -> Iterator[None]:
    """The flush empties model tables only: recompute the aggregates over the minute bars a
    test wrote once they are gone."""
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        MinuteBar.objects.all().delete()
        refresh_table("marketdata_minutebar", span["first"], span["last"])


@pytest.fixture
def stored(instrument: Instrument, partitioned_for) -> Instrument:
    """One committed row in each market-data table, written by the owner."""
    values = {"open": 10, "high": 11, "low": 9, "close": 10.5}
    MinuteBar.objects.create(instrument=instrument, ts=START, **values)
    DailyBar.objects.create(instrument=instrument, ts=START, **values)
    Tick.objects.create(instrument=instrument, ts=START, sequence=0, price=10, size=1)
    OptionQuote.objects.create(
        underlying=instrument, ts=START, expiry=date(2024, 6, 21), strike=10, right="C", bid=1
    )
    return instrument


@pytest.fixture
def as_app_login(app_role_password: str) -> Iterator[Callable[[], None]]:
    """Log Django's connection in as trading_app from the call on, as the served site's is
    (qvp_site/serve.py); the owner's login comes back before the flush."""
    saved = dict(connection.settings_dict)

    def log_in() -> None:
        connection.close()
        connection.settings_dict.update(USER=roles.APP_ROLE, PASSWORD=app_role_password)

    yield log_in
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


@pytest.fixture
def served_as_app(as_app_login: Callable[[], None]) -> None:
    as_app_login()


def refused(conn: psycopg.Connection, statement: str, params: list | None = None) -> None:
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement, params)


# --- raw SQL as trading_app ------------------------------------------------------------------


@pytest.mark.parametrize("table", TIME_SERIES_TABLES)
@pytest.mark.parametrize("statement", ["UPDATE {} SET ts = ts", "DELETE FROM {}", "TRUNCATE {}"])
def test_the_app_role_cannot_update_delete_or_truncate_market_data(
    connect_as_app, stored, table, statement
):
    refused(connect_as_app(), statement.format(table))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        assert cursor.fetchone()[0] == 1


def test_the_app_role_has_select_and_insert_alone_on_market_data(app_role_password):
    """SELECT, and INSERT of every column but known_from, which the database sets."""
    kinds = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
    with connection.cursor() as cursor:
        for table in TIME_SERIES_TABLES:
            held = []
            for kind in kinds:
                cursor.execute(
                    "SELECT has_table_privilege(%s, %s, %s)", [roles.APP_ROLE, table, kind]
                )
                if cursor.fetchone()[0]:
                    held.append(kind)
            assert held == ["SELECT"], table
            cursor.execute(
                "SELECT has_column_privilege(%s, %s, 'ts', 'INSERT'),"
                " has_column_privilege(%s, %s, 'known_from', 'INSERT'),"
                " has_any_column_privilege(%s, %s, 'UPDATE')",
                [roles.APP_ROLE, table] * 3,
            )
            assert cursor.fetchone() == (True, False, False), table


def test_no_partition_or_chunk_of_market_data_lets_the_app_role_update_or_delete(
    app_role_password, stored
):
    """Partitions and chunks named directly hold the same rows: none may be rewritten."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT i.inhrelid::regclass::text FROM pg_inherits i"
            " WHERE i.inhparent = ANY (%s::regclass[])",
            [list(TIME_SERIES_TABLES)],
        )
        children = [row[0] for row in cursor.fetchall()]
        assert children  # partitions (plain PostgreSQL) or chunks (TimescaleDB) exist
        for child in children:
            cursor.execute(
                "SELECT has_table_privilege(%s, %s, 'UPDATE, DELETE, TRUNCATE')",
                [roles.APP_ROLE, child],
            )
            assert not cursor.fetchone()[0], child


@pytest.mark.parametrize("table", TIME_SERIES_TABLES)
def test_an_upsert_that_would_rewrite_a_row_is_refused(connect_as_app, stored, table):
    conn = connect_as_app()
    columns = ", ".join(KEYS[table].split(", "))
    select = f"SELECT {columns} FROM {table}"
    refused(
        conn,
        f"INSERT INTO {table} ({columns}) {select} ON CONFLICT ({KEYS[table]})"
        " DO UPDATE SET ts = EXCLUDED.ts",
    )


def test_the_app_role_inserts_new_bars_and_ticks(connect_as_app, stored):
    conn = connect_as_app()
    later = START + timedelta(minutes=1)
    conn.execute(
        "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close)"
        " VALUES (%s, %s, 1, 2, 1, 2)",
        [stored.id, later],
    )
    # ON CONFLICT DO NOTHING (the ticks' load) takes no more than INSERT.
    conn.execute(
        "INSERT INTO marketdata_tick (instrument_id, ts, sequence, kind, price, size, side)"
        " VALUES (%s, %s, 0, 'trade', 10, 1, '') ON CONFLICT DO NOTHING",
        [stored.id, START],
    )
    assert MinuteBar.objects.count() == 2
    assert Tick.objects.count() == 1


@pytest.fixture
def load(stored: Instrument) -> Ingest:
    """A load of the stored instrument's minute bars that runs: every merge names one."""
    return Ingest.objects.create(file_name="raw.csv", kind="bars-1m", symbol=stored.symbol)


def _merge(conn: psycopg.Connection, target: str, instrument_id: int, close: float, load):
    return conn.execute(
        "SELECT * FROM marketdata_merge_bars(%s::regclass, %s, %s, %s, %s, %s, %s, %s,"
        " NULL, NULL, NULL)",
        [target, instrument_id, load.id, [START], [10.0], [11.0], [9.0], [close]],
    ).fetchone()


def test_the_merge_rewrites_a_bar_as_the_owner_and_counts(connect_as_app, stored, load):
    conn = connect_as_app()
    assert _merge(conn, "marketdata_minutebar", stored.id, 10.5, load) == (0, 0, 0)  # unchanged
    assert _merge(conn, "marketdata_minutebar", stored.id, 10.7, load) == (0, 1, 1)
    assert MinuteBar.objects.get().close == 10.7
    # A bar the function did not receive a column of keeps its stored value.
    bar = DailyBar.objects.get()
    bar.volume = 500
    bar.save(update_fields=["volume"])  # Citus refuses a SET of the distribution column
    daily = Ingest.objects.create(file_name="raw.csv", kind="bars-1d", symbol=stored.symbol)
    assert _merge(conn, "marketdata_dailybar", stored.id, 10.8, daily) == (0, 1, 1)
    assert (DailyBar.objects.get().close, DailyBar.objects.get().volume) == (10.8, 500)


@pytest.mark.parametrize(
    "target", ["marketdata_tick", "marketdata_optionquote", "trading_position", "auth_user"]
)
def test_the_merge_refuses_any_table_but_bars(connect_as_app, stored, target, load):
    refused(
        connect_as_app(),
        "SELECT * FROM marketdata_merge_bars(%s::regclass, %s, %s, %s, %s, %s, %s, %s,"
        " NULL, NULL, NULL)",
        [target, stored.id, load.id, [START], [10.0], [11.0], [9.0], [10.0]],
    )


def test_a_temporary_table_named_like_the_bars_is_refused(connect_as_app, stored, load):
    conn = connect_as_app()
    conn.execute("CREATE TEMP TABLE marketdata_minutebar (LIKE public.marketdata_minutebar)")
    refused(
        conn,
        "SELECT * FROM marketdata_merge_bars('pg_temp.marketdata_minutebar'::regclass, %s,"
        " %s, %s, %s, %s, %s, %s, NULL, NULL, NULL)",
        [stored.id, load.id, [START], [10.0], [11.0], [9.0], [10.0]],
    )


def test_the_merge_needs_the_prices_one_value_per_time_and_a_load(connect_as_app, stored, load):
    conn = connect_as_app()
    with pytest.raises(errors.NullValueNotAllowed):
        conn.execute(
            "SELECT * FROM marketdata_merge_bars('marketdata_minutebar', %s, %s, %s, %s, %s,"
            " %s, NULL, NULL, NULL, NULL)",
            [stored.id, load.id, [START], [10.0], [11.0], [9.0]],
        )
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute(
            "SELECT * FROM marketdata_merge_bars('marketdata_minutebar', %s, %s, %s, %s, %s,"
            " %s, %s, %s, NULL, NULL)",
            [stored.id, load.id, [START], [10.0], [11.0], [9.0], [10.0], [1.0, 2.0]],
        )
    # The tables' rules hold inside the function too: a high below the low is refused.
    with pytest.raises(errors.CheckViolation):
        _merge(conn, "marketdata_minutebar", stored.id, 12.0, load)
    # A revision names the load that brought it: one of another table, or one that ended, is
    # refused.
    with pytest.raises(errors.InvalidParameterValue, match="not a load of marketdata_dailybar"):
        _merge(conn, "marketdata_dailybar", stored.id, 10.7, load)
    Ingest.objects.filter(pk=load.pk).update(status="loaded")
    with pytest.raises(errors.InvalidParameterValue, match="not a load of marketdata_minutebar"):
        _merge(conn, "marketdata_minutebar", stored.id, 10.7, load)


def test_only_the_app_role_may_run_the_merge(app_role_password):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_function_privilege(%s, %s, 'EXECUTE'),"
            " has_function_privilege(%s, %s, 'EXECUTE'),"
            " (SELECT prosecdef FROM pg_proc WHERE oid = %s::regprocedure)",
            [roles.APP_ROLE, MERGE, roles.READONLY_ROLE, MERGE, MERGE],
        )
        assert cursor.fetchone() == (True, False, True)
        cursor.execute(
            "SELECT count(*) FROM aclexplode((SELECT proacl FROM pg_proc"
            " WHERE oid = %s::regprocedure)) WHERE grantee = 0",
            [MERGE],
        )
        assert cursor.fetchone()[0] == 0  # not PUBLIC's


# --- the load path, logged in as trading_app --------------------------------------------------


def _bars(count: int, start: datetime = START, changed: int | None = None) -> list[str]:
    rows = []
    for i in range(count):
        o = 100 + (i % 7) * 0.1
        close = o + (0.4 if i == changed else 0.2)
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{ts},{o:.2f},{o + 0.5:.2f},{o - 0.5:.2f},{close:.2f},{100 + i}")
    return rows


def _write(path: Path, rows: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _ingest(path: Path) -> str:
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", "APPROLE", "--timeframe", "1m", stdout=out)
    return out.getvalue()


def _row_versions() -> dict:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id, xmin::text FROM marketdata_minutebar")
        return dict(cursor.fetchall())


def test_ingest_bars_as_the_app_role_inserts_rewrites_one_bar_then_changes_nothing(
    served_as_app, tmp_path
):
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == roles.APP_ROLE
    assert "5 rows read, 5 inserted, 0 revised, 0 unchanged" in _ingest(
        _write(tmp_path / "first.csv", _bars(5))
    )
    corrected = _write(tmp_path / "corrected.csv", _bars(5, changed=2))
    assert "5 rows read, 0 inserted, 1 revised, 4 unchanged" in _ingest(corrected)
    versions = _row_versions()
    assert "5 rows read, 0 inserted, 0 revised, 5 unchanged" in _ingest(corrected)
    assert _row_versions() == versions  # not one row rewritten
    records = Ingest.objects.filter(symbol="APPROLE").order_by("started_at")
    assert [(r.status, r.inserted, r.updated, r.unchanged) for r in records] == [
        ("loaded", 5, 0, 0),
        ("loaded", 0, 1, 4),
        ("loaded", 0, 0, 5),
    ]
    assert MinuteBar.objects.get(ts=START + timedelta(minutes=2)).close == pytest.approx(100.6)


def test_a_file_without_volume_leaves_volume_alone_as_the_app_role(served_as_app, tmp_path):
    _ingest(_write(tmp_path / "first.csv", _bars(3)))
    no_volume = [row.rsplit(",", 1)[0] for row in _bars(3, changed=1)]
    out = _ingest(_write(tmp_path / "no_volume.csv", no_volume, "timestamp,open,high,low,close"))
    assert "3 rows read, 0 inserted, 1 revised, 2 unchanged" in out
    bar = MinuteBar.objects.get(ts=START + timedelta(minutes=1))
    assert (bar.close, bar.volume) == (pytest.approx(100.5), 101)


def test_the_merge_takes_a_big_load_in_slices(served_as_app, tmp_path, monkeypatch):
    monkeypatch.setattr("marketdata.ingest.writes.MERGE_SLICE", 4)
    _ingest(_write(tmp_path / "first.csv", _bars(10)))
    out = _ingest(_write(tmp_path / "more.csv", _bars(13, changed=9)))
    assert "13 rows read, 3 inserted, 1 revised, 9 unchanged" in out


def test_a_batch_posted_to_the_api_rewrites_a_bar_as_the_app_role(
    served_as_app, admin_client, instrument, partitioned_for
):
    def post(close: float):
        bar = {"ts": "2024-05-13T14:00:00Z", "open": 10, "high": 11, "low": 9, "close": close}
        response = admin_client.post(
            "/api/v1/bars/", {"symbol": "AAPL", "bars": [bar]}, content_type="application/json"
        )
        assert response.status_code == 201, response.json()
        body = response.json()
        return body["inserted"], body["updated"], body["unchanged"]

    assert post(10.5) == (1, 0, 0)
    assert post(10.5) == (0, 0, 1)
    assert post(10.7) == (0, 1, 0)
    assert MinuteBar.objects.get().close == 10.7


@pytest.mark.parametrize("url", ["/api/v1/bars/", "/api/v1/ticks/"])
@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_the_api_has_no_way_to_change_or_delete_market_data(
    stored, served_as_app, admin_client, url, method
):
    response = getattr(admin_client, method)(url, {}, content_type="application/json")
    assert response.status_code == 405
    for detail in (f"{url}1/", f"{url}{stored.symbol}/"):
        status = getattr(admin_client, method)(detail, {}, content_type="application/json")
        assert status.status_code in (404, 405), detail
    assert MinuteBar.objects.count() == Tick.objects.count() == 1


@pytest.mark.timescaledb
def test_a_compressed_chunk_is_rewritten_through_the_merge(as_app_login, tmp_path):
    old = datetime(2024, 1, 8, tzinfo=UTC)  # far past the compression policy's 7 days
    _ingest(_write(tmp_path / "first.csv", _bars(5, start=old)))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(compress_chunk(c, true))"
            " FROM show_chunks('marketdata_minutebar', older_than => now()) AS c"
        )
        assert cursor.fetchone()[0] >= 1
        cursor.execute(
            "SELECT bool_and(is_compressed) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'marketdata_minutebar'"
        )
        assert cursor.fetchone()[0]
    as_app_login()
    corrected = _write(tmp_path / "corrected.csv", _bars(6, start=old, changed=2))
    assert "6 rows read, 1 inserted, 1 revised, 4 unchanged" in _ingest(corrected)
    assert MinuteBar.objects.get(ts=old + timedelta(minutes=2)).close == pytest.approx(100.6)
    assert "6 rows read, 0 inserted, 0 revised, 6 unchanged" in _ingest(corrected)
