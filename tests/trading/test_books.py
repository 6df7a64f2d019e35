"""The database keeps the books: executions move orders, positions and cash, by every door."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from tests.fixtures.trading import T0, fill, make_order
from trading.models import CashEntry, Execution, Order, Position

D = Decimal


@contextmanager
def refused(rule: str):
    """The statement is refused by the rule (CHECK constraint or trigger) named ``rule``; the
    test's transaction goes on (the refusal is undone to a savepoint)."""
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        yield error
    assert error.value.__cause__.diag.constraint_name == rule, str(error.value)


def sql(statement: str, params=()):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)


def position(account, instrument) -> Position:
    return Position.objects.get(account=account, instrument=instrument)


def test_fills_move_order_position_and_cash(account, instrument):
    order = make_order(account, instrument, quantity="10")
    fill(order, 4, "100.00", fee="1.50")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("partially_filled", D(4))
    fill(order, 6, "110.00")
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("filled", D(10))
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(10), D(106), D(0))
    assert pos.last_sequence == 2
    cash = sorted(CashEntry.objects.values_list("kind", "amount", "currency"))
    assert cash == [
        ("fee", D("-1.5"), "USD"),
        ("trade", D(-660), "USD"),
        ("trade", D(-400), "USD"),
    ]


def test_reduction_keeps_cost_and_realizes_flip_resets_cost(account, instrument):
    fill(make_order(account, instrument, quantity="10"), 10, "100")
    sell = make_order(account, instrument, side="sell", quantity="25")
    fill(sell, -4, "110")
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(6), D(100), D(40))
    fill(sell, -21, "90")  # closes 6 at a loss of 10 each, then 15 short at 90
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(-15), D(90), D(-20))
    cover = make_order(account, instrument, quantity="15")
    fill(cover, 15, "80")  # the short gains 10 a share
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(0), D(0), D(130))


def test_multiplier_scales_cash_and_realized_pnl(account):
    from marketdata.models import Instrument

    option = Instrument.objects.create(
        symbol="AAPL240621C200", asset_class="option", multiplier=100
    )
    fill(make_order(account, option, quantity="2"), 2, "3.50")
    fill(make_order(account, option, side="sell", quantity="2"), -2, "4.00")
    assert position(account, option).realized_pnl == D(100)
    assert sorted(CashEntry.objects.values_list("amount", flat=True)) == [D(-700), D(800)]


def test_each_execution_records_its_place_in_the_position(account, instrument):
    order = make_order(account, instrument, quantity="3")
    executions = [fill(order, 1, "10") for _ in range(3)]
    sequences = Execution.objects.filter(pk__in=[e.pk for e in executions]).order_by("pk")
    assert list(sequences.values_list("position_sequence", flat=True)) == [1, 2, 3]


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"quantity": "0"}, "execution_quantity_not_zero"),
        ({"side": "sell"}, "execution_side_matches_sign"),
        ({"price": "0"}, "execution_price_positive"),
        ({"price": "-1"}, "execution_price_positive"),
        ({"quantity": "11"}, "execution_within_order_quantity"),
        ({"fee": "-1"}, "execution_fee_not_negative"),
        ({"liquidity": "dark"}, "execution_liquidity_known"),
    ],
)
def test_raw_sql_execution_refused_by_named_rule(account, instrument, values, rule):
    order = make_order(account, instrument, quantity="10")
    row = {"quantity": "5", "side": "buy", "price": "100", "fee": "0", "liquidity": "unknown"}
    row.update(values)
    with refused(rule):
        sql(
            "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
            " quantity, price, fee, liquidity, executed_at, kind, reason, created_at)"
            " VALUES ('raw-1', %s, %s, %s, %s, %s, %s, %s, %s, %s, 'fill', '', now())",
            [order.pk, account.pk, instrument.pk, row["side"], row["quantity"], row["price"],
             row["fee"], row["liquidity"], T0],
        )  # fmt: skip
    assert not Execution.objects.exists()
    assert not Position.objects.exists()


def test_execution_must_match_its_order(account, instrument):
    from marketdata.models import Instrument
    from trading.models import Account

    other_account = Account.objects.create(name="other")
    other_instrument = Instrument.objects.create(symbol="MSFT", asset_class="equity")
    order = make_order(account, instrument)
    for field, value in (("account_id", other_account.pk), ("instrument_id", other_instrument.pk)):
        with refused("execution_matches_order"):
            fill(order, 1, "10", **{field: value})
    sell = make_order(account, instrument, side="sell")
    with refused("execution_side_matches_order"):
        fill(sell, 1, "10")


def test_no_fill_beyond_order_quantity_across_executions(account, instrument):
    order = make_order(account, instrument, quantity="10")
    fill(order, 7, "10")
    with refused("execution_within_order_quantity"):
        fill(order, 4, "10")
    order.refresh_from_db()
    assert order.filled_quantity == D(7)


def test_cancelled_order_takes_no_fills(account, instrument):
    order = make_order(account, instrument)
    order.status = Order.Status.CANCELLED
    order.save()
    with refused("execution_order_open"):
        fill(order, 1, "10")


@pytest.mark.parametrize(
    ("start", "target", "legal"),
    [
        ("new", "cancelled", True),
        ("new", "rejected", True),
        ("new", "expired", True),
        ("partially_filled", "cancelled", True),
        ("partially_filled", "expired", True),
        ("new", "filled", False),
        ("new", "partially_filled", False),
        ("partially_filled", "rejected", False),
        ("filled", "cancelled", False),
        ("cancelled", "new", False),
        ("rejected", "cancelled", False),
    ],
)
def test_order_transitions(account, instrument, start, target, legal):
    order = make_order(account, instrument, quantity="10")
    if start == "partially_filled":
        fill(order, 5, "10")
    elif start == "filled":
        fill(order, 10, "10")
    elif start != "new":
        Order.objects.filter(pk=order.pk).update(status=start)
    if legal:
        Order.objects.filter(pk=order.pk).update(status=target)
        assert Order.objects.get(pk=order.pk).status == target
    else:
        with refused("order_legal_transition") as error:
            Order.objects.filter(pk=order.pk).update(status=target)
        assert f"cannot go from {start} to {target}" in str(error.value)


def test_order_terms_and_fills_are_not_editable(account, instrument):
    order = make_order(account, instrument, quantity="10")
    with refused("order_terms_fixed"):
        Order.objects.filter(pk=order.pk).update(quantity=20)
    with refused("order_filled_by_executions"):
        Order.objects.filter(pk=order.pk).update(filled_quantity=5)
    with refused("order_kept"):
        Order.objects.filter(pk=order.pk).delete()
    with refused("order_starts_new"):
        make_order(account, instrument, status="filled")


@pytest.mark.parametrize(
    ("values", "rule"),
    [
        ({"quantity": "0"}, "order_quantity_positive"),
        ({"order_type": "limit"}, "order_prices_match_type"),
        ({"order_type": "limit", "limit_price": "-5"}, "order_limit_price_positive"),
        ({"order_type": "market", "stop_price": "5"}, "order_prices_match_type"),
        ({"side": "hold"}, "order_side_known"),
        ({"time_in_force": "gtd"}, "order_time_in_force_known"),
    ],
)
def test_raw_sql_order_refused_by_named_rule(account, instrument, values, rule):
    row = {"side": "buy", "order_type": "market", "quantity": "10", "limit_price": None,
           "stop_price": None, "time_in_force": "day"}  # fmt: skip
    row.update(values)
    with refused(rule):
        sql(
            "INSERT INTO trading_order (account_id, instrument_id, client_order_id, side,"
            " order_type, quantity, limit_price, stop_price, time_in_force, filled_quantity,"
            " status, status_reason, created_at, updated_at) VALUES (%s, %s, 'raw', %s, %s, %s,"
            " %s, %s, %s, 0, 'new', '', now(), now())",
            [account.pk, instrument.pk, row["side"], row["order_type"], row["quantity"],
             row["limit_price"], row["stop_price"], row["time_in_force"]],
        )  # fmt: skip


def test_client_order_id_unique_per_account(account, instrument):
    from trading.models import Account

    make_order(account, instrument, client_order_id="A1")
    make_order(Account.objects.create(name="other"), instrument, client_order_id="A1")
    with refused("order_client_id_unique_per_account"):
        make_order(account, instrument, client_order_id="A1")


def test_positions_and_execution_cash_are_written_by_executions_only(account, instrument):
    fill(make_order(account, instrument), 5, "10")
    pos = position(account, instrument)
    with refused("position_kept_by_executions"):
        Position.objects.filter(pk=pos.pk).update(quantity=6)
    with refused("position_kept_by_executions"):
        Position.objects.filter(pk=pos.pk).delete()
    with refused("cash_trade_entries_from_executions"):
        CashEntry.objects.create(
            account=account, kind="trade", amount=5, currency="USD",
            execution=Execution.objects.get(), entry_at=T0,
        )  # fmt: skip
    with refused("cash_never_edited"):
        CashEntry.objects.update(amount=1)
    with refused("execution_never_edited"):
        Execution.objects.update(price=11)
    with refused("execution_never_edited"):
        sql("DELETE FROM trading_execution")


@pytest.mark.parametrize(
    ("kind", "amount", "rule"),
    [
        ("deposit", "-5", "cash_deposit_positive"),
        ("withdrawal", "5", "cash_withdrawal_negative"),
        ("deposit", "0", "cash_amount_not_zero"),
        ("bonus", "5", "cash_kind_known"),
    ],
)
def test_cash_rules(account, kind, amount, rule):
    with refused(rule):
        CashEntry.objects.create(
            account=account, kind=kind, amount=D(amount), currency="USD", entry_at=T0
        )


def test_same_execution_twice_is_booked_once(account, instrument):
    order = make_order(account, instrument, quantity="10")
    first = fill(order, 10, "100", exec_id="dup-1", at=T0)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
            " quantity, price, fee, liquidity, executed_at, kind, reason, created_at)"
            " VALUES ('dup-1', %s, %s, %s, 'buy', 10, 100, 0, 'unknown', %s, 'fill', '', now())"
            " RETURNING id",
            [order.pk, account.pk, instrument.pk, T0],
        )
        assert cursor.fetchall() == []  # skipped, not an error: the fill is full already
    assert Execution.objects.get().pk == first.pk
    assert position(account, instrument).quantity == D(10)
    with refused("execution_exec_id_unique_per_account"):
        fill(order, 5, "99", exec_id="dup-1", at=T0)


def test_an_exec_id_is_unique_within_its_account_only(account, instrument):
    from trading.models import Account

    other = Account.objects.create(name="other")
    mine = fill(make_order(account, instrument, quantity="10"), 10, "100", exec_id="venue-7")
    theirs = fill(make_order(other, instrument, quantity="10"), 3, "99", exec_id="venue-7")
    assert (mine.account_id, theirs.account_id) == (account.pk, other.pk)
    assert Position.objects.get(account=other).quantity == D(3)
    with refused("execution_exec_id_unique_per_account"):
        fill(make_order(other, instrument, quantity="10"), 4, "99", exec_id="venue-7")


def bust(execution: Execution, exec_id: str = "bust-1") -> Execution:
    return Execution.objects.create(
        exec_id=exec_id, order_id=execution.order_id, account_id=execution.account_id,
        instrument_id=execution.instrument_id, side="sell" if execution.quantity > 0 else "buy",
        quantity=-execution.quantity, price=execution.price, fee=-execution.fee,
        executed_at=T0, kind="bust", supersedes=execution, reason="broker bust",
    )  # fmt: skip


def test_bust_restores_order_position_and_cash(account, instrument):
    order = make_order(account, instrument, quantity="10")
    fill(order, 4, "100", fee="1")
    second = fill(order, 6, "110", fee="2")
    sell = make_order(account, instrument, side="sell", quantity="5")
    fill(sell, -5, "120")
    bust(second)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("partially_filled", D(4))
    pos = position(account, instrument)
    # Replayed without the busted fill: 4 @ 100, then sell 5 @ 120 -> 1 short at 120.
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(-1), D(120), D(80))
    assert pos.last_sequence == 4
    assert sum(CashEntry.objects.values_list("amount", flat=True)) == D(-400 - 1 + 600)
    assert Execution.objects.get(pk=second.pk).superseded_by.kind == "bust"


def test_bust_rules(account, instrument):
    order = make_order(account, instrument, quantity="10")
    original = fill(order, 4, "100")
    with refused("execution_bust_mirrors_original"):
        Execution.objects.create(
            exec_id="bad-bust", order=order, account=account, instrument=instrument,
            side="sell", quantity=-3, price=100, executed_at=T0, kind="bust",
            supersedes=original,
        )  # fmt: skip
    done = bust(original)
    with refused("execution_superseded_once"):
        bust(original, exec_id="bust-2")
    with refused("execution_supersedes_same_order"):
        bust(done, exec_id="bust-of-bust")


def test_correction_replaces_the_original(account, instrument):
    order = make_order(account, instrument, quantity="10")
    original = fill(order, 4, "100")
    Execution.objects.create(
        exec_id="corr-1", order=order, account=account, instrument=instrument, side="buy",
        quantity=5, price=D("99.5"), executed_at=T0, kind="correction", supersedes=original,
    )  # fmt: skip
    order.refresh_from_db()
    assert order.filled_quantity == D(5)
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost) == (D(5), D("99.5"))
    assert sum(CashEntry.objects.values_list("amount", flat=True)) == D("-497.5")


def test_bust_of_a_filled_order_reopens_it(account, instrument):
    order = make_order(account, instrument, quantity="10")
    only = fill(order, 10, "100")
    bust(only)
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("new", D(0))
    pos = position(account, instrument)
    assert (pos.quantity, pos.average_cost, pos.realized_pnl) == (D(0), D(0), D(0))


def test_each_execution_keeps_where_its_order_and_position_stood_after_it(account, instrument):
    order = make_order(account, instrument, quantity="10")
    first, second = fill(order, 4, "100"), fill(order, 6, "110")
    sell = fill(make_order(account, instrument, side="sell", quantity="15"), -15, "120")
    rows = Execution.objects.filter(pk__in=[first.pk, second.pk, sell.pk]).order_by("pk")
    assert list(
        rows.values_list(
            "order_filled_after", "position_quantity_after", "position_average_cost_after",
            "position_realized_pnl_after",
        )
    ) == [(D(4), D(4), D(100), D(0)), (D(10), D(10), D(106), D(0)),
          (D(15), D(-5), D(120), D(140))]  # fmt: skip


def test_a_multi_row_insert_books_each_row_in_order(account, instrument):
    order = make_order(account, instrument, quantity="10")
    sql(
        "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
        " quantity, price, fee, liquidity, executed_at, kind, reason, created_at)"
        " SELECT 'm' || g, %s, %s, %s, 'buy', g, 100 + g, 0, 'unknown', %s, 'fill', '', now()"
        " FROM generate_series(1, 4) g",
        [order.pk, account.pk, instrument.pk, T0],
    )
    order.refresh_from_db()
    assert (order.status, order.filled_quantity) == ("filled", D(10))
    pos = position(account, instrument)
    assert (pos.quantity, pos.last_sequence) == (D(10), 4)
    assert pos.average_cost == D(1 * 101 + 2 * 102 + 3 * 103 + 4 * 104) / 10
    assert CashEntry.objects.count() == 4
    with refused("execution_within_order_quantity"):
        sql(
            "INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side,"
            " quantity, price, fee, liquidity, executed_at, kind, reason, created_at)"
            " VALUES ('over', %s, %s, %s, 'buy', 1, 100, 0, 'unknown', %s, 'fill', '', now())",
            [order.pk, account.pk, instrument.pk, T0],
        )
