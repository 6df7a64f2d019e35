"""Booking by statement (trading/sql/books/0017.sql): a batch booked by
``trading_book_executions`` (the API, the admin and ``import_executions`` book through it) gives
exactly the books that booking its rows one by one gives (the per-row trigger, as a direct
INSERT books them): sequences, where the order and the position stood after each execution,
positions, orders and cash, with several fills of one position in a batch, busts, corrections
and a split before it; a row that breaks a rule refuses the whole batch naming it; the
acting user's right to trade is checked; and a caller cannot pass its own rows for a checked
batch."""

from __future__ import annotations

import json
import random
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import IntegrityError, connection, transaction

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from tests.fixtures.trading import T0, make_order
from tests.fixtures.trading_api import execution
from trading import books
from trading.models import Account, CashEntry, Execution, Order, Position
from trading.replay import position_events, replay

D = Decimal
EX = date(2024, 6, 3)
EX_AT = datetime.fromisoformat("2024-06-03T00:00:00+00:00")
DERIVED = (
    "position_sequence",
    "order_filled_after",
    "position_quantity_after",
    "position_average_cost_after",
    "position_realized_pnl_after",
)


@contextmanager
def refused(rule: str):
    """Refused by the rule named ``rule``; the test's transaction goes on."""
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        yield error
    assert error.value.__cause__.diag.constraint_name == rule, str(error.value)


def insert_rows(rows: list[dict]) -> None:
    """Book ``rows`` one by one by the per-row trigger: one direct multi-row INSERT."""
    columns = ", ".join(books.COLUMNS)
    values = ", ".join("(" + ", ".join(["%s"] * len(books.COLUMNS)) + ")" for _ in rows)
    params = [row[c] for row in rows for c in books.COLUMNS]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO trading_execution ({columns}) VALUES {values}", params)


def book_batch(rows: list[dict]) -> int:
    """Book ``rows`` as one batch, as ``import_executions`` does (``books.book_query``)."""
    values = {c: f"(r.e ->> '{c}')" for c in books.COLUMNS}
    source = "FROM jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS r(e, n) ORDER BY r.n"
    payload = [{c: None if row[c] is None else str(row[c]) for c in books.COLUMNS} for row in rows]
    with transaction.atomic(), connection.cursor() as cursor:
        return books.book_query(cursor, values, cursor.mogrify(source, [json.dumps(payload)]))


def fills(orders: list[Order], count: int, seed: int, prefix: str) -> list[dict]:
    """Random fills of ``orders`` (buys and sells that take positions long and short)."""
    rng = random.Random(seed)
    rows = []
    for n in range(count):
        order = rng.choice(orders)
        size = D(rng.randint(1, 40)) / (4 if n % 3 else 1)
        quantity = size if order.side == "buy" else -size
        price = D(rng.randint(9000, 11000)) / 100
        at = T0 + timedelta(seconds=n + 1)
        rows.append(books.fill_row(order, f"{prefix}-{n}", quantity, price, at, fee=D(n % 3) / 10))
    return rows


def desk(name: str, instruments: list[Instrument]) -> tuple[Account, list[Order]]:
    account = Account.objects.create(name=name, base_currency="USD")
    orders = [
        make_order(account, i, side=side, quantity="100000", client_order_id=f"{i.symbol}-{side}")
        for i in instruments
        for side in ("buy", "sell")
    ]
    return account, orders


def for_account(rows: list[dict], orders: list[Order]) -> list[dict]:
    """The same fills against another account's orders (the same place in its list)."""
    by_key = {(o.instrument_id, o.side): o for o in orders}
    out = []
    for row in rows:
        order = by_key[(row["instrument_id"], row["side"])]
        out.append({**row, "order_id": order.pk, "account_id": order.account_id})
    return out


def books_of(account: Account) -> dict:
    """What the books hold for ``account``, comparable across accounts."""
    executions = Execution.objects.filter(account=account).order_by("id")
    return {
        "executions": [
            (e.exec_id, e.order.client_order_id, *(getattr(e, f) for f in DERIVED))
            for e in executions.select_related("order")
        ],
        "positions": sorted(
            Position.objects.filter(account=account).values_list(
                "instrument_id", "quantity", "average_cost", "realized_pnl", "last_sequence"
            )
        ),
        "orders": sorted(
            Order.objects.filter(account=account).values_list(
                "client_order_id", "filled_quantity", "status"
            )
        ),
        "cash": [
            (c.execution and c.execution.exec_id, c.kind, c.amount, c.currency, c.entry_at, c.note)
            for c in CashEntry.objects.filter(account=account)
            .select_related("execution")
            .order_by("execution__id", "kind", "id")
        ],
    }


@pytest.fixture
def instruments(db) -> list[Instrument]:
    return [
        Instrument.objects.create(symbol="BS1", asset_class="equity"),
        Instrument.objects.create(symbol="BS2", asset_class="equity"),
        Instrument.objects.create(symbol="BS3C", asset_class="option", multiplier=100),
    ]


def calls(function: str) -> int:
    """How often this transaction called ``function`` (track_functions is on)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(calls), 0) FROM pg_stat_xact_user_functions WHERE funcname = %s",
            [function],
        )
        return int(cursor.fetchone()[0])


def test_a_batch_books_exactly_as_row_by_row(instruments):
    by_rows, rows_orders = desk("by-rows", instruments)
    by_batch, batch_orders = desk("by-batch", instruments)
    history = fills(rows_orders, 12, seed=1, prefix="h")
    insert_rows(history)
    insert_rows(for_account(history, batch_orders))
    batch = fills(rows_orders, 300, seed=2, prefix="b")
    insert_rows(batch)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL track_functions = 'all'")
    assert book_batch(for_account(batch, batch_orders)) == 300
    # By statement: checked once, not a call of the per-row trigger.
    assert (calls("trading_book_batch_checked"), calls("trading_execution_books")) == (1, 0)
    assert books_of(by_batch) == books_of(by_rows)
    for position in Position.objects.filter(account=by_batch):
        multiplier = position.instrument.multiplier
        expected = replay(position_events(by_batch.pk, position.instrument_id), multiplier)
        assert (position.quantity, position.average_cost, position.realized_pnl) == expected


def test_a_batch_after_busts_and_corrections_books_as_row_by_row(instruments):
    by_rows, rows_orders = desk("by-rows", instruments)
    by_batch, batch_orders = desk("by-batch", instruments)
    for account, orders in ((by_rows, rows_orders), (by_batch, batch_orders)):
        insert_rows(for_account(fills(rows_orders, 10, seed=3, prefix="h"), orders))
        first, second = Execution.objects.filter(account=account).order_by("id")[:2]
        books.book({**books.bust_row(first, "h-bust", ""), "executed_at": T0 + timedelta(hours=1)})
        correction = books.fill_row(second.order, "h-corr", second.quantity * 2, D("101.5"), T0)
        books.book({**correction, "kind": "correction", "supersedes_id": second.pk})
    batch = fills(rows_orders, 50, seed=4, prefix="b")
    insert_rows(batch)
    book_batch(for_account(batch, batch_orders))
    assert books_of(by_batch) == books_of(by_rows)


def test_a_batch_holding_a_bust_is_booked_row_by_row_alike(instruments):
    by_rows, rows_orders = desk("by-rows", instruments)
    by_batch, batch_orders = desk("by-batch", instruments)
    for account, orders, book in (
        (by_rows, rows_orders, insert_rows),
        (by_batch, batch_orders, book_batch),
    ):
        rows = for_account(fills(rows_orders, 20, seed=5, prefix="b"), orders)
        book(rows[:10])
        original = Execution.objects.get(account=account, exec_id="b-3")
        bust = books.bust_row(original, "b-3-bust", "broker bust")
        book([*rows[10:15], {**bust, "executed_at": T0 + timedelta(hours=1)}, *rows[15:]])
    assert books_of(by_batch) == books_of(by_rows)


def test_a_batch_after_a_split_starts_where_the_split_left_the_position(db):
    stock = Instrument.objects.create(symbol="SPLT", asset_class="equity", exchange="XNAS")
    by_rows, rows_orders = desk("by-rows", [stock])
    by_batch, batch_orders = desk("by-batch", [stock])
    history = fills(rows_orders[:1], 3, seed=6, prefix="h")
    insert_rows(history)
    insert_rows(for_account(history, batch_orders))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, 2, NULL, NULL, NULL, NULL, NULL, NULL)",
            [stock.pk, EX],
        )
    with acting_as("apply_actions"):
        assert books.apply_actions(EX) == 2
    later = [
        {**row, "executed_at": EX_AT + timedelta(hours=15, seconds=n)}
        for n, row in enumerate(fills(rows_orders, 20, seed=7, prefix="b"))
    ]
    insert_rows(later)
    book_batch(for_account(later, batch_orders))
    assert books_of(by_batch) == books_of(by_rows)
    before = [{**later[0], "exec_id": "early", "executed_at": EX_AT - timedelta(minutes=1)}]
    with refused("execution_before_applied_action"):
        book_batch(for_account(before, batch_orders))


@pytest.mark.parametrize(
    ("change", "rule", "words"),
    [
        ({"quantity": D(200000)}, "execution_within_order_quantity", "beyond its quantity"),
        ({"side": "sell", "quantity": D(-1)}, "execution_side_matches_order", "buy order"),
        ({"price": D(0)}, "execution_price_positive", "price must be positive"),
        ({"instrument_id": "other"}, "execution_matches_order", "must be those of order"),
    ],
)
def test_a_row_that_breaks_a_rule_refuses_the_batch_naming_it(instruments, change, rule, words):
    account, orders = desk("desk", instruments[:2])
    insert_rows(fills(orders, 5, seed=8, prefix="h"))
    before = books_of(account)
    rows = fills(orders[:1], 10, seed=9, prefix="b")  # the first instrument's buy order
    if change.get("instrument_id") == "other":
        change = {"instrument_id": instruments[1].pk}
    rows[6] = {**rows[6], **change}
    with refused(rule) as error:
        book_batch(rows)
    message = error.value.__cause__.diag.message_primary
    assert message.startswith("execution b-6: "), message
    assert words in message
    assert books_of(account) == before  # nothing written: not the rows before it either
    with refused(rule) as by_rows:  # in the per-row trigger's words
        insert_rows(rows)
    assert by_rows.value.__cause__.diag.message_primary == message


def test_a_batch_fills_up_to_the_order_and_refuses_beyond_it(instruments):
    account, _ = desk("desk", instruments[:1])
    order = make_order(account, instruments[0], quantity="10", client_order_id="small")
    rows = [books.fill_row(order, f"f-{n}", D(3), D(100), T0) for n in range(4)]
    with refused("execution_within_order_quantity") as error:
        book_batch(rows)
    message = error.value.__cause__.diag.message_primary
    assert message.startswith("execution f-3: fills 3.00000000 of order"), message
    assert message.endswith("(9.00000000 filled already)"), message
    assert book_batch(rows[:3]) == 3
    order.refresh_from_db()
    assert (order.filled_quantity, order.status) == (D(9), "partially_filled")


def test_a_cancelled_order_takes_no_fills_in_a_batch(instruments):
    _, orders = desk("desk", instruments[:1])
    with acting_as("tests"):
        books.cancel_order(orders[0].pk)
    with refused("execution_order_open"):
        book_batch(fills(orders[:1], 3, seed=10, prefix="b"))


def test_a_replayed_batch_books_nothing_and_other_terms_are_refused(instruments):
    account, orders = desk("desk", instruments[:1])
    rows = fills(orders, 20, seed=11, prefix="b")
    assert book_batch(rows) == 20
    booked = books_of(account)
    assert book_batch(rows) == 0
    assert books_of(account) == booked
    with refused("execution_exec_id_unique_per_account"):
        book_batch([*rows[:3], {**rows[3], "price": rows[3]["price"] + 1}])


def app_connection(app_role_password: str) -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"], host=params.get("HOST") or None, port=params.get("PORT") or None,
        user="trading_app", password=app_role_password, autocommit=False,
    )  # fmt: skip


def arrays_of(rows: list[dict]) -> list[list]:
    return [[None for _ in rows], *([row[c] for row in rows] for c in books.COLUMNS)]


CALL = "SELECT * FROM trading_book_executions({})".format(
    ", ".join(f"%s::{books.TYPES[c]}[]" for c in books.ARGUMENTS)
)


@pytest.mark.django_db(transaction=True)
def test_the_app_role_books_only_accounts_its_user_may_trade(desks, app_role_password):
    stock = Instrument.objects.create(symbol="RLS1", asset_class="equity")
    order = make_order(desks["beta"], stock, quantity="10")
    rows = [books.fill_row(order, "x-1", D(1), D(10), T0)]
    with app_connection(app_role_password) as conn:
        conn.execute("SELECT set_config('qvp.user_id', %s, false)", [str(desks["alice"].pk)])
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
            conn.execute(CALL, arrays_of(rows))
        conn.rollback()
        conn.execute("SELECT set_config('qvp.user_id', %s, false)", [str(desks["bob"].pk)])
        conn.execute(CALL, arrays_of(rows))
        conn.commit()
    position = Position.objects.get(account=desks["beta"], instrument=stock)
    assert (position.quantity, position.last_sequence) == (D(1), 1)


@pytest.mark.django_db(transaction=True)
def test_the_app_role_cannot_pass_its_own_rows_for_a_checked_batch(desks, app_role_password):
    stock = Instrument.objects.create(symbol="RLS2", asset_class="equity")
    order = make_order(desks["beta"], stock, quantity="10")
    with app_connection(app_role_password) as conn:
        conn.execute("SELECT set_config('qvp.user_id', %s, false)", [str(desks["bob"].pk)])
        conn.execute("SELECT set_config('qvp.books_batch', 'on', false)")
        conn.execute("SELECT set_config('qvp.books', 'writing', false)")
        conn.execute(
            "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
            " quantity, price, fee, liquidity, executed_at, kind, reason, position_sequence,"
            " order_filled_after, position_quantity_after, position_average_cost_after,"
            " position_realized_pnl_after) VALUES ('forged', %s, %s, %s, 'buy', 2, 10, 0,"
            " 'unknown', %s, 'fill', '', 99, 0, 1000, 1, 5000)",
            [order.pk, desks["beta"].pk, stock.pk, T0],
        )
        conn.commit()
    forged = Execution.objects.get(exec_id="forged")
    assert [getattr(forged, f) for f in DERIVED] == [1, D(2), D(2), D(10), D(0)]
    position = Position.objects.get(account=desks["beta"], instrument=stock)
    assert (position.quantity, position.average_cost, position.last_sequence) == (D(2), D(10), 1)


def test_a_post_takes_as_many_queries_for_one_execution_as_for_a_batch(
    alice, order, django_assert_max_num_queries
):
    # The session and its user, the request's transaction (3), the auditor and tradable
    # checks, the order and the exec ids booked already, the booking in a savepoint (3), and
    # the booked rows read back.
    with django_assert_max_num_queries(13):
        response = alice.post("/api/v1/executions/", execution(order, 1), format="json")
    assert response.status_code == 201, response.content
    batch = [execution(order, 1, exec_id=f"b-{n}") for n in range(50)]
    with django_assert_max_num_queries(14):  # and the sealer's request
        response = alice.post("/api/v1/executions/", batch, format="json")
    assert response.status_code == 201, response.content
    assert [e["position_sequence"] for e in response.json()] == list(range(2, 52))
    order.refresh_from_db()
    assert order.filled_quantity == 51
