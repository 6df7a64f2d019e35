"""Who may see and do what: row-level security by raw SQL as the application's role, the
roles' limits, and the ORM under the application's role."""

from __future__ import annotations

from contextlib import contextmanager

import psycopg
import pytest
from django.db import ProgrammingError, connection, transaction
from psycopg import errors

from qvp_site.acting import declare
from qvp_site.db import engine
from tests.fixtures.trading import fill, make_order
from trading.models import Account, Order


@contextmanager
def acting(conn: psycopg.Connection, user=None, actor: str = ""):
    """A transaction on ``conn`` in which ``user`` (or the system ``actor``) acts, declared as
    the application declares it."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true)",
            [str(user.pk) if user else "", user.username if user else actor],
        )
        yield


def names(conn, table="trading_account", column="name") -> list[str]:
    return sorted(r[0] for r in conn.execute(f"SELECT {column} FROM {table}").fetchall())


@pytest.fixture
def books(desks, instrument):
    """An order and a fill in each desk's account, committed."""
    records = dict(desks)
    for name in ("alpha", "beta"):
        order = make_order(desks[name], instrument, client_order_id=f"{name}-1")
        fill(order, 5, "10")
        records[f"{name}-order"] = order
    return records


def insert_order(conn, account, instrument, client_order_id="raw"):
    conn.execute(
        "INSERT INTO trading_order (account_id, instrument_id, client_order_id, side, order_type,"
        " quantity, time_in_force, filled_quantity, status, status_reason, created_at,"
        " updated_at) VALUES (%s, %s, %s, 'buy', 'market', 1, 'day', 0, 'new', '', now(), now())",
        [account.pk, instrument.pk, client_order_id],
    )


def test_each_user_sees_only_their_accounts_rows(books, connect_as_app):
    conn = connect_as_app()
    for user, expected in (("alice", ["alpha"]), ("bob", ["beta"]), ("audrey", ["alpha", "beta"])):
        with acting(conn, books[user]):
            assert names(conn) == expected
            assert names(conn, "trading_order", "client_order_id") == [f"{a}-1" for a in expected]
            for table in ("trading_execution", "trading_position", "trading_cashentry"):
                count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                assert count == len(expected), (user, table)


def test_nobody_declared_sees_nothing_and_system_sees_all(books, connect_as_app):
    conn = connect_as_app()
    assert names(conn) == []
    assert conn.execute("SELECT count(*) FROM trading_execution").fetchone()[0] == 0
    with acting(conn, actor="system:test"):
        assert names(conn) == ["alpha", "beta"]


def test_writes_outside_ones_accounts_are_refused(books, instrument, connect_as_app):
    conn = connect_as_app()
    denied = pytest.raises(errors.InsufficientPrivilege, match="row-level security")
    with denied, acting(conn, books["alice"]):
        insert_order(conn, books["beta"], instrument)
    denied = pytest.raises(errors.InsufficientPrivilege, match="row-level security")
    with acting(conn, books["alice"]):
        insert_order(conn, books["alpha"], instrument)
        # Another desk's rows are invisible, so an update or delete reaches none of them.
        changed = conn.execute(
            "UPDATE trading_account SET name = name || '-x' WHERE id = %s", [books["beta"].pk]
        )
        assert changed.rowcount == 0
    # Orders are cancelled by the owner's function, which applies the same rule.
    with denied, acting(conn, books["alice"]):
        conn.execute("SELECT trading_cancel_order(%s, '')", [books["beta-order"].pk])
    assert Order.objects.get(client_order_id="beta-1").status == "partially_filled"


def test_auditors_read_everything_and_write_nothing(books, instrument, connect_as_app):
    conn = connect_as_app()
    for account in (books["alpha"], books["beta"]):
        denied = pytest.raises(errors.InsufficientPrivilege, match="row-level security")
        with denied, acting(conn, books["audrey"]):
            insert_order(conn, account, instrument)
    with acting(conn, books["audrey"]):
        changed = conn.execute("UPDATE trading_account SET name = name || '-x'")
        assert changed.rowcount == 0


def test_inactive_user_sees_nothing(books, connect_as_app):
    books["alice"].is_active = False
    books["alice"].save()
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        assert names(conn) == []


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE TABLE app_made (id int)",
        "ALTER TABLE trading_order ADD COLUMN x int",
        "UPDATE trading_position SET quantity = 0",
        "DELETE FROM trading_position",
        "UPDATE trading_order SET filled_quantity = 0",
        "UPDATE trading_order SET status = 'cancelled'",
        "INSERT INTO trading_cashentry (account_id, kind, amount, currency, entry_at, note,"
        " created_at) SELECT id, 'deposit', 1, 'USD', now(), '', now() FROM trading_account",
        "UPDATE trading_order SET quantity = 1",
        "DELETE FROM trading_order",
        "UPDATE trading_execution SET price = 1",
        "DELETE FROM trading_execution",
        "TRUNCATE trading_execution",
        "UPDATE qvp_site_auditentry SET actor = 'x'",
        "DELETE FROM qvp_site_auditentry",
        "TRUNCATE qvp_site_auditentry",
        "INSERT INTO qvp_site_auditentry (table_name, row_key, operation, actor, db_role, at,"
        " prev_hash, hash) VALUES ('t', '1', 'INSERT', 'me', 'me', now(), '', '')",
        "UPDATE qvp_audit_head SET last_hash = ''",
        "DROP TABLE trading_position",
    ],
)
def test_the_app_role_cannot(books, connect_as_app, statement):
    conn = connect_as_app()
    with pytest.raises(errors.InsufficientPrivilege), acting(conn, actor="system:test"):
        conn.execute(statement)


def test_the_app_role_can_do_its_work(books, instrument, connect_as_app):
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        insert_order(conn, books["alpha"], instrument, "app-1")
        conn.execute(
            "SELECT trading_cancel_order(id, 'test') FROM trading_order"
            " WHERE client_order_id = 'app-1'"
        )
        conn.execute(
            "SELECT trading_add_cash(%s, 'deposit', 1000, 'USD', now(), '')", [books["alpha"].pk]
        )
        assert conn.execute("SELECT count(*) FROM qvp_site_auditentry").fetchone()[0] > 0


def test_the_app_role_makes_partitions_only_through_the_owners_function(books, connect_as_app):
    if engine.is_timescaledb():
        pytest.skip("TimescaleDB makes its chunks itself")
    conn = connect_as_app()
    conn.execute(
        "SELECT qvp_create_partition('marketdata_minutebar'::regclass,"
        " 'marketdata_minutebar_p20300107', '2030-01-07', '2030-01-14')"
    )
    assert conn.execute(
        "SELECT to_regclass('marketdata_minutebar_p20300107') IS NOT NULL"
    ).fetchone()[0]
    with pytest.raises(errors.InsufficientPrivilege, match="not a partitioned time-series"):
        conn.execute(
            "SELECT qvp_create_partition('trading_order'::regclass, 'trading_order_p1',"
            " '2030-01-07', '2030-01-14')"
        )
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(
            "CREATE TABLE marketdata_minutebar_p20300114 PARTITION OF marketdata_minutebar"
            " FOR VALUES FROM ('2030-01-14') TO ('2030-01-21')"
        )


@pytest.mark.parametrize(
    ("name", "lower", "upper"),
    [
        # A partition's name over one second: the real one could never be made.
        ("marketdata_minutebar_p20300114", "2030-01-14", "2030-01-14 00:00:01"),
        # Wide, overlapping the partitions to come.
        ("marketdata_minutebar_p20300114", "2030-01-14", "2031-01-14"),
        # Not aligned to the table's chunk interval (weeks from Monday 2000-01-03).
        ("marketdata_minutebar_p20300115", "2030-01-15", "2030-01-22"),
        # Right bounds under another name.
        ("marketdata_minutebar_pzzz", "2030-01-14", "2030-01-21"),
    ],
)
def test_the_partition_function_makes_only_partitions_qvp_makes(
    books, connect_as_app, name, lower, upper
):
    if engine.is_timescaledb():
        pytest.skip("TimescaleDB makes its chunks itself")
    conn = connect_as_app()
    with pytest.raises(errors.InvalidParameterValue, match="not one qvp makes"):
        conn.execute("SELECT qvp_create_partition('marketdata_minutebar'::regclass, %s, %s, %s)",
                     [name, lower, upper])  # fmt: skip
    assert conn.execute("SELECT to_regclass(%s) IS NULL", [name]).fetchone()[0]


def test_readonly_role_reads_every_account_and_writes_nothing(books, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE trading_readonly")
        try:
            cursor.execute("SELECT name FROM trading_account ORDER BY name")
            assert [r[0] for r in cursor.fetchall()] == ["alpha", "beta"]
            with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
                cursor.execute("INSERT INTO trading_account (name, base_currency, created_at)"
                               " VALUES ('x', 'USD', now())")  # fmt: skip
        finally:
            cursor.execute("RESET ROLE")


def test_orm_under_the_app_role_sees_the_users_accounts(desks, as_app_role):
    with transaction.atomic():
        declare(desks["bob"])
        assert list(Account.objects.values_list("name", flat=True)) == ["beta"]
    with transaction.atomic():
        declare(desks["audrey"])
        assert list(Account.objects.values_list("name", flat=True)) == ["alpha", "beta"]


def snapshot_partitions(desks) -> list[str]:
    """A snapshot of each desk's account, committed; the partitions or chunks holding them."""
    from decimal import Decimal

    from django.utils import timezone

    from trading.models import PortfolioSnapshot

    zero, now = Decimal(0), timezone.now()
    for name in ("alpha", "beta"):
        PortfolioSnapshot.objects.create(
            account=desks[name], ts=now, currency="USD", cash=zero, market_value=zero,
            nav=zero, gross_exposure=zero, net_exposure=zero,
        )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT DISTINCT tableoid::regclass::text FROM trading_portfoliosnapshot")
        return [row[0] for row in cursor.fetchall()]


def test_a_partition_is_no_way_around_row_level_security(books, connect_as_app):
    """Named directly, a partition (or chunk) would show every account's snapshots to nobody
    and let alice change bob's: the application's role has no privilege on it at all."""
    conn = connect_as_app()
    held = snapshot_partitions(books)
    assert held
    assert "trading_portfoliosnapshot" not in held
    assert conn.execute("SELECT count(*) FROM trading_portfoliosnapshot").fetchone()[0] == 0
    for partition in held:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(f"SELECT count(*) FROM {partition}")
        for statement in (
            f"UPDATE {partition} SET nav = 1 WHERE account_id = %s",
            f"DELETE FROM {partition} WHERE account_id = %s",
        ):
            with pytest.raises(errors.InsufficientPrivilege), acting(conn, books["alice"]):
                conn.execute(statement, [books["beta"].pk])
    with acting(conn, books["alice"]):
        assert conn.execute("SELECT count(*) FROM trading_portfoliosnapshot").fetchone()[0] == 1
