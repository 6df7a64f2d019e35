"""Books no role can forge: by raw SQL as trading_app, nothing but the books' own functions
writes an order's fills and fill-driven status, a position, or a trade or fee cash entry,
whatever the role builds in pg_temp (a trigger on a temporary table raised
pg_trigger_depth() past the checks of version 0005). Orders are cancelled and cash is added
through the owner's functions, which check the acting user's accounts as row-level security
does; the real paths (booking, busts, corrections, cancels, deposits) still work."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction
from psycopg import errors

from tests.fixtures.trading import T0, fill, make_order
from trading.models import CashEntry, Execution, Order, Position

D = Decimal
CASH = "SELECT id FROM trading_add_cash(%s, %s, %s, NULL, NULL, %s)"
CANCEL = "SELECT status, status_reason FROM trading_cancel_order(%s, %s)"


@contextmanager
def acting(conn: psycopg.Connection, user=None, actor: str = ""):
    """A transaction on ``conn`` in which ``user`` (or the system ``actor``) acts."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true)",
            [str(user.pk) if user else "", user.username if user else actor],
        )
        yield


@pytest.fixture
def books(desks, instrument):
    """In each desk's account an order of 10 filled 5 (``<desk>-1``, exec id ``<desk>-x1``),
    committed (connect_as_app's connections see only committed rows)."""
    records = dict(desks)
    for name in ("alpha", "beta"):
        order = make_order(desks[name], instrument, client_order_id=f"{name}-1", quantity="10")
        records[f"{name}-order"] = order
        records[f"{name}-fill"] = fill(order, 5, "10", exec_id=f"{name}-x1")
    return records


def snapshot() -> tuple:
    """Everything the forgeries aim at, to compare before and after."""
    return (
        sorted(Order.objects.values_list("id", "status", "filled_quantity")),
        sorted(Position.objects.values_list("id", "quantity", "average_cost", "realized_pnl")),
        sorted(CashEntry.objects.values_list("id", "kind", "amount")),
        sorted(Execution.objects.values_list("id", "price", "quantity")),
    )


# What a forger writes; each needs a privilege trading_app does not have.
FORGERIES = {
    "order filled with no fill": "UPDATE trading_order SET filled_quantity = quantity,"
    " status = 'filled' WHERE client_order_id = 'alpha-1'",
    "order marked filled": "UPDATE trading_order SET status = 'filled'"
    " WHERE client_order_id = 'alpha-1'",
    "order cancelled around the function": "UPDATE trading_order SET status = 'cancelled'"
    " WHERE client_order_id = 'alpha-1'",
    "a trade cash entry": "INSERT INTO trading_cashentry (account_id, kind, amount, currency,"
    " execution_id, entry_at, note, created_at) SELECT account_id, 'trade', 1000000, 'USD', id,"
    " now(), '', now() FROM trading_execution WHERE exec_id = 'alpha-x1'",
    "a deposit around the function": "INSERT INTO trading_cashentry (account_id, kind, amount,"
    " currency, entry_at, note, created_at) SELECT id, 'deposit', 1000000, 'USD', now(), '',"
    " now() FROM trading_account WHERE name = 'alpha'",
    "a position moved": "UPDATE trading_position SET quantity = 1000",
    "a position made": "INSERT INTO trading_position (account_id, instrument_id, quantity,"
    " average_cost, realized_pnl, last_sequence, updated_at) SELECT id, (SELECT min(id) FROM"
    " marketdata_instrument), 1, 1, 0, 0, now() FROM trading_account WHERE name = 'alpha'",
    "a position deleted": "DELETE FROM trading_position",
    "an execution edited": "UPDATE trading_execution SET price = 1",
    "a cash entry edited": "UPDATE trading_cashentry SET amount = 1000000",
}


def temp_trigger(conn: psycopg.Connection, statement: str, depth: int) -> str:
    """The attack on version 0005: a temporary table whose trigger (a function in pg_temp)
    runs ``statement``, ``depth`` tables deep; what sets it off."""
    for level in range(depth):
        conn.execute(f"CREATE TEMP TABLE forge_{level} (x int)")
        action = statement if level == depth - 1 else f"INSERT INTO forge_{level + 1} VALUES (1)"
        conn.execute(
            f"CREATE FUNCTION pg_temp.forge_{level}() RETURNS trigger LANGUAGE plpgsql AS"
            f" $forge$ BEGIN {action}; RETURN NEW; END $forge$"
        )
        conn.execute(
            f"CREATE TRIGGER forge_{level} AFTER INSERT ON forge_{level}"
            f" FOR EACH ROW EXECUTE FUNCTION pg_temp.forge_{level}()"
        )
    return "INSERT INTO forge_0 VALUES (1)"


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("depth", [0, 1, 3])
def test_no_forgery_of_the_books_by_the_app_role(books, connect_as_app, forgery, depth):
    before = snapshot()
    for who in ({"user": books["alice"]}, {"actor": "system:forger"}):
        conn = connect_as_app()
        with acting(conn, **who):
            conn.execute("SET LOCAL qvp.books = 'writing'")  # the books' marker, forged
            statement = FORGERIES[forgery]
            if depth:
                statement = temp_trigger(conn, statement, depth)
            with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
                conn.execute(statement)
    assert snapshot() == before


def test_the_books_functions_refuse_accounts_the_user_may_not_trade(books, connect_as_app):
    beta_order, before = books["beta-order"].pk, snapshot()
    conn = connect_as_app()
    for who in ({"user": books["alice"]}, {"user": books["audrey"]}, {}):
        for statement, params in (
            (CANCEL, [beta_order, "not mine"]),
            (CASH, [books["beta"].pk, "deposit", 1_000_000, "not mine"]),
        ):
            not_yours = pytest.raises(errors.InsufficientPrivilege, match="row-level security")
            with not_yours, acting(conn, **who):
                conn.execute(statement, params)
    # An order or account that does not exist is refused alike: none is revealed.
    with acting(conn, books["alice"]):
        for statement, params in ((CANCEL, [987654, ""]), (CASH, [987654, "deposit", 1, ""])):
            with pytest.raises(errors.InsufficientPrivilege) as missing, conn.transaction():
                conn.execute(statement, params)
            assert "row-level security" in str(missing.value)
    assert snapshot() == before


def test_shadows_in_pg_temp_fool_no_function_of_the_books(books, connect_as_app):
    """Tables and functions of the books' names in pg_temp, first on the search path, that
    would hand alice the beta account: the owner's functions read public's."""
    beta, before = books["beta"], snapshot()
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        conn.execute(
            "CREATE TEMP TABLE trading_account_groups AS SELECT %s::bigint AS account_id,"
            " group_id FROM auth_user_groups WHERE user_id = %s",
            [beta.pk, books["alice"].pk],
        )
        conn.execute(
            "CREATE TEMP TABLE trading_account AS SELECT * FROM trading_account LIMIT 0;"
            "CREATE FUNCTION pg_temp.trading_group_accounts(boolean) RETURNS SETOF bigint"
            f" LANGUAGE sql AS 'SELECT {beta.pk}::bigint';"
            "CREATE FUNCTION pg_temp.trading_may_trade(bigint) RETURNS boolean"
            " LANGUAGE sql AS 'SELECT true';"
            "CREATE FUNCTION pg_temp.trading_sees_all(boolean, name) RETURNS boolean"
            " LANGUAGE sql AS 'SELECT true';"
            "CREATE FUNCTION pg_temp.trading_books_writing(oid) RETURNS boolean"
            " LANGUAGE sql AS 'SELECT true';"
            "SET search_path = pg_temp, public"
        )
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute(CASH, [beta.pk, "deposit", 1_000_000, "shadowed"])
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute(CANCEL, [books["beta-order"].pk, "shadowed"])
        conn.execute("SET LOCAL qvp.books = 'writing'")
        with pytest.raises(errors.InsufficientPrivilege), conn.transaction():
            conn.execute(FORGERIES["order filled with no fill"])
    assert snapshot() == before


def test_the_read_only_role_writes_nothing_through_the_functions(books, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE trading_readonly")
        try:
            cursor.execute("SELECT set_config('qvp.actor', 'system:reader', false)")
            for statement, params in (
                (CANCEL, [books["alpha-order"].pk, ""]),
                (CASH, [books["alpha"].pk, "deposit", 5, ""]),
            ):
                denied = pytest.raises(ProgrammingError, match="permission denied")
                with denied, transaction.atomic():
                    cursor.execute(statement, params)
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute("RESET qvp.actor")


def test_the_roles_command_grants_the_functions_to_the_app_role(books, app_role_password):
    """A role made after the migrations gets the functions from ``create_db_roles``."""
    functions = ("trading_cancel_order(bigint, text)",
                 "trading_add_cash(bigint, text, numeric, text, timestamptz, text)")  # fmt: skip
    with connection.cursor() as cursor:
        for signature in functions:
            cursor.execute(f"REVOKE EXECUTE ON FUNCTION {signature} FROM trading_app")
        call_command("create_db_roles", stdout=StringIO())
        for signature in functions:
            cursor.execute(
                "SELECT has_function_privilege('trading_app', %s, 'EXECUTE'),"
                " has_function_privilege('trading_readonly', %s, 'EXECUTE')",
                [signature, signature],
            )
            assert cursor.fetchone() == (True, False), signature


def test_the_app_role_cancels_and_adds_cash_through_the_functions(books, connect_as_app):
    alpha, order = books["alpha"], books["alpha-order"]
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        assert conn.execute(CANCEL, [order.pk, "done"]).fetchone() == ("cancelled", "done")
        # Again: as it is.
        assert conn.execute(CANCEL, [order.pk, "twice"]).fetchone() == ("cancelled", "done")
        for kind, amount in (("deposit", 500), ("withdrawal", -100), ("adjustment", 7)):
            conn.execute(CASH, [alpha.pk, kind, amount, "desk"])
    with acting(conn, actor="system:cashier"):
        conn.execute(CASH, [books["beta"].pk, "deposit", 10, "command"])
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("cancelled", D(5))
    people = CashEntry.objects.exclude(kind__in=["trade", "fee"]).order_by("id")
    assert [(e.account_id, e.kind, e.amount, e.currency, e.note) for e in people] == [
        (alpha.pk, "deposit", D(500), "USD", "desk"),
        (alpha.pk, "withdrawal", D(-100), "USD", "desk"),
        (alpha.pk, "adjustment", D(7), "USD", "desk"),
        (books["beta"].pk, "deposit", D(10), "USD", "command"),
    ]


@pytest.mark.parametrize(
    ("kind", "amount", "rule"),
    [
        ("trade", 1_000_000, "cash_trade_entries_from_executions"),
        ("fee", -5, "cash_trade_entries_from_executions"),
        ("deposit", -5, "cash_deposit_positive"),
        ("bonus", 5, "cash_kind_known"),
    ],
)
@pytest.mark.parametrize("marker", ["", "writing"])
def test_the_cash_function_keeps_the_ledgers_rules(
    books, connect_as_app, kind, amount, rule, marker
):
    """Whatever the caller sets qvp.books to: the function runs as the tables' owner, so a
    marker that leaked into it would pass for the books writing."""
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        conn.execute("SELECT set_config('qvp.books', %s, true)", [marker])
        with pytest.raises(errors.IntegrityError) as refused, conn.transaction():
            conn.execute(CASH, [books["alpha"].pk, kind, amount, ""])
    assert refused.value.diag.constraint_name == rule


@pytest.mark.parametrize("marker", ["", "writing"])
def test_the_cancel_function_keeps_the_lifecycle(books, connect_as_app, instrument, marker):
    filled = make_order(books["alpha"], instrument, client_order_id="full", quantity="5")
    fill(filled, 5, "10")
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        conn.execute("SELECT set_config('qvp.books', %s, true)", [marker])
        with pytest.raises(errors.CheckViolation) as refused, conn.transaction():
            conn.execute(CANCEL, [filled.pk, ""])
    assert refused.value.diag.constraint_name == "order_legal_transition"
    assert Order.objects.get(pk=filled.pk).status == "filled"


def insert_execution(conn, order, exec_id: str, quantity, price, **extra) -> None:
    values = {"kind": "fill", "supersedes_id": None, "fee": 0, **extra}
    conn.execute(
        "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
        " quantity, price, fee, liquidity, executed_at, kind, supersedes_id, reason)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'unknown', %s, %s, %s, '')",
        [exec_id, order.pk, order.account_id, order.instrument_id,
         "buy" if quantity > 0 else "sell", quantity, price, values["fee"], T0,
         values["kind"], values["supersedes_id"]],
    )  # fmt: skip


def test_the_app_role_still_books_fills_busts_and_corrections(books, connect_as_app):
    order = books["alpha-order"]
    conn = connect_as_app()
    with acting(conn, books["alice"]):
        insert_execution(conn, order, "app-1", 3, "11", fee=1)
        first = conn.execute("SELECT id FROM trading_execution WHERE exec_id = 'app-1'")
        (first_id,) = first.fetchone()
        insert_execution(conn, order, "app-1-fix", 2, "11", kind="correction",
                         supersedes_id=first_id)  # fmt: skip
        insert_execution(conn, order, "app-2", 3, "12")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("filled", D(10))
    with acting(conn, books["alice"]):
        found = conn.execute("SELECT id FROM trading_execution WHERE exec_id = 'app-2'")
        (app_2,) = found.fetchone()
        insert_execution(conn, order, "app-2-bust", -3, "12", kind="bust",
                         supersedes_id=app_2)  # fmt: skip
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("partially_filled", D(7))
    position = Position.objects.get(account=order.account_id, instrument=order.instrument_id)
    assert position.quantity == D(7)
    trades = CashEntry.objects.filter(account=order.account_id, kind="trade")
    # 5 at 10 and 2 at 11 stand: what the ledger's trade entries add up to.
    assert sum(trades.values_list("amount", flat=True)) == D(-72)
