"""The books follow corporate actions: ``trading_apply_actions`` (trading/sql/actions/0013.sql)
moves each position holding an action's instrument, books the action's cash and writes an
entry, once; a position is the replay of its executions and its entries (trading.replay).
Actions are stated as the loaders state them (the owner's marketdata_action_set)."""

from __future__ import annotations

import random
import threading
import time
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import (
    DataError,
    IntegrityError,
    ProgrammingError,
    connection,
    connections,
    transaction,
)
from psycopg import errors

from dashboard.positions import valued_positions
from marketdata.models import CorporateAction, DailyBar, Instrument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from qvp_site.models import AuditEntry
from tests.fixtures.trading import T0, fill, make_order
from trading import books
from trading.models import ActionEntry, CashEntry, Execution, Position
from trading.replay import Adjust, position_events, replay, replay_books
from trading.snapshots import take_snapshots

D = Decimal
EX = date(2024, 6, 3)  # T0 is 2024-05-13: the fills come before the ex-date
EX_AT = datetime(2024, 6, 3, tzinfo=UTC)
TERMS = ("ratio", "amount", "currency", "pay_date", "new_instrument", "cost_fraction",
         "final_price")  # fmt: skip


def state(stock: Instrument, kind: str, ex: date = EX, **terms) -> None:
    """An action as the loaders state it."""
    values = [terms.get(t) for t in TERMS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [stock.pk, kind, ex, *values],
        )


def apply(through: date = EX) -> int:
    """The daily job's application, as its command acts."""
    with acting_as("apply_actions"):
        return books.apply_actions(through)


def equity(symbol: str) -> Instrument:
    return Instrument.objects.create(symbol=symbol, asset_class="equity", exchange="XNAS")


def buy(account, stock, quantity, price, at: datetime | None = None) -> Execution:
    side = "buy" if D(str(quantity)) > 0 else "sell"
    order = make_order(account, stock, side=side, quantity=str(abs(D(str(quantity)))))
    return fill(order, quantity, price, at=at)


def held(account, stock) -> tuple[Decimal, Decimal, Decimal]:
    p = Position.objects.get(account=account, instrument=stock)
    return p.quantity, p.average_cost, p.realized_pnl


def action_cash(account, kind: str) -> list[tuple[Decimal, str, datetime]]:
    rows = CashEntry.objects.filter(account=account, kind=kind).order_by("id")
    return list(rows.values_list("amount", "currency", "entry_at"))


def close_before(stock: Instrument, close: float, at: datetime = EX_AT - timedelta(days=3)):
    """The daily close the cash in lieu is paid at (adjusted by the action's factor)."""
    partitions.prepare_load("marketdata_dailybar", at, at)
    DailyBar.objects.create(
        instrument=stock, ts=at, open=close, high=close, low=close, close=close, volume=1
    )


def assert_replayed(account, stock) -> None:
    """The position is the replay of its executions and its entries."""
    expected = replay(position_events(account.pk, stock.pk), stock.multiplier)
    assert held(account, stock) == expected


def test_a_2_for_1_split_doubles_quantity_and_halves_cost(account, instrument):
    buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    assert apply() == 1
    assert held(account, instrument) == (D(200), D(25), D(0))
    entry = ActionEntry.objects.get(account=account)
    assert entry.quantity_before * entry.average_cost_before == D(5000)  # the same cost basis
    assert entry.quantity_after * entry.average_cost_after == D(5000)
    assert (entry.cash, entry.cash_entry, entry.ex_at) == (None, None, EX_AT)
    assert_replayed(account, instrument)


def test_a_3_for_2_split_of_an_odd_quantity_pays_the_fraction_in_lieu(account, instrument):
    buy(account, instrument, 101, "30")
    close_before(instrument, 33.0)  # 22 a new share
    state(instrument, "split", ratio="1.5")
    apply()
    # 151.5 shares at 20: 151 kept, half a share sold at 22 (1 of P&L), 11 paid in cash.
    assert held(account, instrument) == (D(151), D(20), D(1))
    assert action_cash(account, "in_lieu") == [(D(11), "USD", EX_AT)]
    entry = ActionEntry.objects.get(account=account)
    assert (entry.price, entry.cash, entry.cash_entry.amount) == (D(22), D(11), D(11))
    assert_replayed(account, instrument)


def test_a_reverse_split_with_no_close_pays_in_lieu_at_the_average_cost(account, instrument):
    buy(account, instrument, 105, "2")
    state(instrument, "split", ratio="0.1")
    apply()
    # 10.5 shares at 20; the half share at 20 a share: no P&L.
    assert held(account, instrument) == (D(10), D(20), D(0))
    assert action_cash(account, "in_lieu") == [(D(10), "USD", EX_AT)]
    assert_replayed(account, instrument)


def test_a_cash_dividend_is_booked_on_the_pay_date_for_a_long_and_a_short(desks, instrument):
    alpha, beta = desks["alpha"], desks["beta"]
    buy(alpha, instrument, 100, "50")
    buy(beta, instrument, -40, "50")
    state(instrument, "cash_dividend", amount="0.5", currency="USD", pay_date=date(2024, 6, 20))
    assert apply() == 2
    paid = datetime(2024, 6, 20, tzinfo=UTC)
    assert action_cash(alpha, "dividend") == [(D(50), "USD", paid)]
    assert action_cash(beta, "dividend") == [(D(-20), "USD", paid)]  # the short pays it
    assert held(alpha, instrument) == (D(100), D(50), D(0))
    assert held(beta, instrument) == (D(-40), D(50), D(0))
    # Snapshots: the dividend counts from its ex moment (receivable); its payment moves nothing.
    with acting_as("test"):
        take_snapshots(EX_AT - timedelta(hours=1), [alpha.pk])
        take_snapshots(paid - timedelta(hours=1), [alpha.pk])
        take_snapshots(paid, [alpha.pk])
    cash = dict(alpha.snapshots.values_list("ts", "cash"))
    assert cash[paid - timedelta(hours=1)] - cash[EX_AT - timedelta(hours=1)] == D(50)
    assert cash[paid] == cash[paid - timedelta(hours=1)]


def test_a_stock_dividend(account, instrument):
    buy(account, instrument, 100, "21")
    state(instrument, "stock_dividend", ratio="0.05")
    apply()
    assert held(account, instrument) == (D(105), D(20), D(0))
    assert not CashEntry.objects.filter(kind="in_lieu").exists()
    assert_replayed(account, instrument)


def test_a_spin_off_moves_the_cost_fraction(account, instrument):
    spun = equity("SPUN")
    buy(account, instrument, 100, "60")
    state(instrument, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    assert apply() == 2  # the old position and the new one
    assert held(account, instrument) == (D(100), D(48), D(0))
    # 50 new shares carrying 20% of the 6000 of cost basis: 24 a share.
    assert held(account, spun) == (D(50), D(24), D(0))
    assert_replayed(account, instrument)
    assert_replayed(account, spun)


def test_a_delisting_closes_the_position_at_the_final_price(account, instrument):
    buy(account, instrument, 100, "10")
    state(instrument, "delisting", final_price="4")
    apply()
    assert held(account, instrument) == (D(0), D(0), D(-600))
    assert action_cash(account, "delisting") == [(D(400), "USD", EX_AT)]
    assert_replayed(account, instrument)


def books_state() -> tuple:
    return (
        sorted(Position.objects.values_list("id", "quantity", "average_cost", "realized_pnl")),
        sorted(CashEntry.objects.values_list("id", "amount")),
        sorted(ActionEntry.objects.values_list("id", "quantity_after")),
    )


def test_applying_twice_changes_nothing(account, instrument):
    buy(account, instrument, 101, "30")
    state(instrument, "split", ratio="1.5")
    state(instrument, "cash_dividend", amount="1", currency="USD", pay_date=EX)
    assert apply() == 2
    before = books_state()
    assert apply() == 0
    assert apply(EX + timedelta(days=30)) == 0
    assert books_state() == before
    # Once applied, an action is neither restated nor withdrawn: the books would hold a split
    # the prices no longer know (trading_action_applied_stays).
    with pytest.raises(IntegrityError, match="applied to the books already"), transaction.atomic():
        state(instrument, "split", ratio="3")
    with (
        pytest.raises(IntegrityError, match="neither withdrawn nor restated"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "SELECT marketdata_action_withdraw(%s, 'cash_dividend', %s)", [instrument.pk, EX]
        )
    assert apply() == 0
    assert books_state() == before


def test_an_action_withdrawn_before_its_ex_date_is_not_applied(account, instrument):
    buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_action_withdraw(%s, 'split', %s)", [instrument.pk, EX])
    assert apply() == 0
    assert held(account, instrument) == (D(100), D(50), D(0))
    assert not ActionEntry.objects.exists()


def test_actions_apply_in_ex_date_order_and_only_through_the_date(account, instrument):
    buy(account, instrument, 10, "40")
    state(instrument, "split", ex=EX, ratio=2)
    state(instrument, "split", ex=EX + timedelta(days=7), ratio=2)
    assert apply(EX) == 1
    assert held(account, instrument)[0] == D(20)
    assert apply(EX + timedelta(days=7)) == 1
    assert held(account, instrument) == (D(40), D(10), D(0))
    with pytest.raises(DataError, match="after tomorrow"), transaction.atomic():
        apply(date.today() + timedelta(days=2))


@contextmanager
def refused(rule: str):
    with pytest.raises(IntegrityError) as error, transaction.atomic():
        yield
    assert error.value.__cause__.diag.constraint_name == rule, str(error.value)


def test_executions_dated_before_an_applied_ex_date_are_refused(account, instrument):
    first = buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    apply()
    with refused("execution_before_applied_action"):
        buy(account, instrument, 10, "50", at=EX_AT - timedelta(minutes=1))
    with refused("execution_before_applied_action"):
        books.bust(first)
    # After the ex moment, fills take the position as the split left it.
    later = buy(account, instrument, 100, "31", at=EX_AT + timedelta(hours=15))
    assert held(account, instrument) == (D(300), D(27), D(0))
    later.refresh_from_db()
    assert later.position_sequence == 3  # the fill, the split's entry, this fill
    # A bust after the entry replays through it.
    books.bust(later)
    assert held(account, instrument) == (D(200), D(25), D(0))
    assert_replayed(account, instrument)


def test_a_position_that_traded_ex_before_the_action_was_applied_splits_the_shares_held_then(
    account, instrument
):
    """The job runs late (or the split is learnt late): the 100 shares held at the ex moment
    become 200, then the 10 bought ex (in new shares) follow: 210, the cost basis kept."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, 10, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio=2)
    # A position opened after its instrument's ex-date is no concern of the action.
    late = equity("LATE")
    buy(account, late, 10, "25", at=EX_AT + timedelta(hours=15))
    state(late, "split", ratio=2)
    out = StringIO()
    call_command("apply_actions", "--through", EX.isoformat(), stdout=out)
    assert held(account, instrument) == (D(210), D(25), D(0))
    assert held(account, late)[0] == D(10)
    assert "1 corporate-action entries" in out.getvalue()
    assert "left out" not in out.getvalue()
    entry = ActionEntry.objects.get(account=account, instrument=instrument)
    assert (entry.quantity_before, entry.quantity_after) == (D(100), D(200))
    assert_replayed(account, instrument)


def test_a_sale_on_the_ex_date_before_the_split_was_applied_realizes_nothing(account, instrument):
    """Selling 50 new shares at the split price is no loss: replayed after the split, at its
    adjusted average cost, not against the old shares' cost (as booked, it was -1250)."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, -50, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio=2)
    assert apply() == 1
    assert held(account, instrument) == (D(150), D(25), D(0))
    assert_replayed(account, instrument)


def test_a_position_sold_out_on_the_ex_date_is_still_paid_and_split(account, instrument):
    """All 100 shares sold ex (as 200 new ones) before the job ran: the position reads -100
    until the split is applied, then 0; a dividend of the same ex-date is paid on the 100."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, -200, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "cash_dividend", amount="0.5", currency="USD", pay_date=EX)
    state(instrument, "split", ratio=2)
    assert held(account, instrument)[0] == D(-100)
    assert apply() == 2
    assert held(account, instrument) == (D(0), D(0), D(0))
    assert [amount for amount, *_ in action_cash(account, "dividend")] == [D(50)]
    assert_replayed(account, instrument)


def test_an_execution_before_a_late_applied_split_is_still_refused(account, instrument):
    """The rule of the past holds for an action applied late too: nothing is booked, busted or
    corrected before its ex moment once it is applied."""
    first = buy(account, instrument, 100, "50")
    buy(account, instrument, 10, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio=2)
    apply()
    with refused("execution_before_applied_action"):
        books.bust(first)
    with refused("execution_before_applied_action"):
        buy(account, instrument, 10, "50", at=EX_AT - timedelta(hours=1))
    assert held(account, instrument)[0] == D(210)


def test_two_spin_offs_into_one_instrument_on_one_day_each_deliver(account, instrument):
    """Two holdings spun off into one new company the same day: each delivers its shares (one
    statement moving the new position twice failed the whole daily run)."""
    other, spun = equity("OTHR"), equity("SPUN")
    buy(account, instrument, 100, "60")
    buy(account, other, 40, "10")
    for stock in (instrument, other):
        state(stock, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    assert apply() == 4
    quantity, average_cost, _ = held(account, spun)
    assert quantity == D(70)
    assert abs(quantity * average_cost - (D(6000) + D(400)) * D("0.2")) < D("1e-6")
    assert_replayed(account, spun)


def test_a_spin_off_received_into_a_position_that_traded_ex(account, instrument):
    """The new shares are received at the ex moment, before the new instrument's fills dated
    after it, booked before the job ran."""
    spun = equity("SPUN")
    buy(account, instrument, 100, "60")
    buy(account, spun, 10, "20", at=EX_AT + timedelta(hours=15))
    state(instrument, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    assert apply() == 2
    entry = ActionEntry.objects.get(account=account, instrument=spun)
    assert (entry.quantity_before, entry.quantity_after) == (D(0), D(50))
    assert held(account, spun)[0] == D(60)
    assert_replayed(account, spun)


def test_the_command_refuses_a_bad_date_naming_it(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--through: '2024-13-01' is not a date"):
        call_command("apply_actions", "--through", "2024-13-01", stdout=StringIO())


def test_the_position_is_the_replay_of_its_executions_and_entries(account, instrument):
    """A random mix of fills (long, short, flips) and actions of every kind but delisting."""
    rng = random.Random(23)
    spun = equity("SPUN")
    close_before(instrument, 41.0, at=datetime(2024, 1, 1, tzinfo=UTC))
    moment, ex = T0 - timedelta(days=120), date(2024, 1, 1)
    for _ in range(8):
        for _ in range(rng.randint(1, 4)):
            quantity = rng.choice([-1, 1]) * rng.randint(1, 60)
            moment += timedelta(hours=rng.randint(1, 30))
            buy(account, instrument, quantity, f"{rng.uniform(5, 90):.2f}", at=moment)
        ex = max(ex, moment.date()) + timedelta(days=1)
        kind = rng.choice(["split", "split", "stock_dividend", "cash_dividend", "spin_off"])
        terms = {
            "split": {"ratio": rng.choice(["2", "1.5", "0.25", "3"])},
            "stock_dividend": {"ratio": rng.choice(["0.05", "0.1", "0.333"])},
            "cash_dividend": {"amount": "0.37", "currency": "USD", "pay_date": ex},
            "spin_off": {"ratio": "0.3", "new_instrument": spun.pk, "cost_fraction": "0.15"},
        }[kind]
        state(instrument, kind, ex=ex, **terms)
        apply(ex)
        moment = datetime.combine(ex, datetime.min.time(), UTC) + timedelta(hours=14)
    kinds = set(ActionEntry.objects.values_list("action__kind", flat=True))
    assert len(kinds) >= 3, kinds  # the mix reached the books
    for stock in (instrument, spun):
        if Position.objects.filter(instrument=stock).exists():
            events = position_events(account.pk, stock.pk)
            replayed = replay_books(events, stock.multiplier)
            assert held(account, stock) == replayed.as_tuple()
    paid = CashEntry.objects.filter(account=account, kind__in=["dividend", "in_lieu"])
    expected = sum(
        replay_books(position_events(account.pk, s.pk)).action_cash
        for s in (instrument, spun)
        if Position.objects.filter(instrument=s).exists()
    )
    assert sum(paid.values_list("amount", flat=True)) == expected


def test_the_replay_by_hand():
    # 101 at 30, 3:2 split with 22 in lieu: 151 at 20, half a share sold (1 of P&L).
    assert replay([(D(101), D(30)), Adjust(D("1.5"), D(22))]) == (D(151), D(20), D(1))


def test_entries_are_audited(account, instrument):
    buy(account, instrument, 101, "30")
    state(instrument, "split", ratio="1.5")
    apply()
    entry = ActionEntry.objects.get()
    logged = AuditEntry.objects.get(table_name="trading_actionentry", row_key=str(entry.pk))
    assert (logged.operation, logged.actor) == ("INSERT", "system:apply_actions")
    assert logged.new_row["quantity_after"] in (151, "151.00000000")
    position = Position.objects.get(account=account, instrument=instrument)
    moved = AuditEntry.objects.filter(
        table_name="trading_position", row_key=str(position.pk), actor="system:apply_actions"
    )
    assert moved.count() == 1


def test_only_who_writes_every_account_applies_actions(desks, instrument):
    state(instrument, "split", ratio=2)
    refused = pytest.raises(ProgrammingError, match="command or job")
    with refused, transaction.atomic(), acting_as("", user=desks["alice"]):
        books.apply_actions(EX)


@pytest.fixture
def applied(desks, instrument):
    """alpha holds 101 AAPL, split 3:2 with cash in lieu, committed (connect_as_app's
    connections see only committed rows)."""
    buy(desks["alpha"], instrument, 101, "30")
    state(instrument, "split", ratio="1.5")
    apply()
    return desks


def test_the_app_role_writes_no_entry_and_no_position(applied, connect_as_app):
    before = books_state()
    entry = ActionEntry.objects.get()
    forgeries = [
        "INSERT INTO trading_actionentry (account_id, instrument_id, action_id, position_sequence,"
        " ex_at, quantity_before, quantity_after, average_cost_before, average_cost_after,"
        " realized_pnl, applied_at) SELECT account_id, instrument_id, action_id, 99, ex_at, 0,"
        " 1000, 0, 0, 0, now() FROM trading_actionentry",
        "UPDATE trading_actionentry SET quantity_after = 1000",
        "DELETE FROM trading_actionentry",
        "UPDATE trading_position SET quantity = 1000",
        f"SELECT trading_add_cash({entry.account_id}, 'dividend', 1000, NULL, NULL, 'forged')",
    ]
    conn = connect_as_app()
    for forgery in forgeries:
        with conn.transaction():
            conn.execute("SELECT set_config('qvp.actor', 'system:forger', true)")
            conn.execute("SET LOCAL qvp.books = 'writing'")  # the books' marker, forged
            try:
                with conn.transaction():
                    conn.execute(forgery)
            except (errors.InsufficientPrivilege, errors.CheckViolation):
                pass  # refused; an UPDATE or DELETE no policy allows touches no row
    assert books_state() == before


def test_the_app_role_applies_actions_as_a_job(desks, instrument, connect_as_app):
    buy(desks["alpha"], instrument, 100, "50")
    state(instrument, "split", ratio=2)
    conn = connect_as_app()
    with conn.transaction():
        conn.execute("SELECT set_config('qvp.actor', 'system:apply_actions', true)")
        (written,) = conn.execute("SELECT trading_apply_actions(%s)", [EX]).fetchone()
    assert written == 1
    assert held(desks["alpha"], instrument) == (D(200), D(25), D(0))


def test_a_user_of_another_account_does_not_see_its_entries(applied, connect_as_app):
    conn = connect_as_app()
    for user, seen in ((applied["bob"], 0), (applied["alice"], 1), (applied["audrey"], 1)):
        with conn.transaction():
            conn.execute(
                "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true)",
                [str(user.pk), user.username],
            )
            (count,) = conn.execute("SELECT count(*) FROM trading_actionentry").fetchone()
        assert count == seen, user.username


def test_an_action_of_the_past_moves_the_snapshot_holdings_from_its_ex_moment(account, instrument):
    buy(account, instrument, 100, "50")
    close_before(instrument, 50.0, at=EX_AT - timedelta(days=1))
    close_before(instrument, 26.0, at=EX_AT + timedelta(hours=20))
    state(instrument, "split", ratio=2)
    apply()
    with acting_as("test"):
        take_snapshots(EX_AT - timedelta(hours=1), [account.pk])
        take_snapshots(EX_AT + timedelta(days=1), [account.pk])
    values = dict(account.snapshots.values_list("ts", "market_value"))
    assert values[EX_AT - timedelta(hours=1)] == D(5000)  # 100 at 50
    assert values[EX_AT + timedelta(days=1)] == D(5200)  # 200 at 26
    # The holdings of the past for other readers (risk): the same rule.
    with connection.cursor() as cursor:
        for moment, quantity in ((EX_AT - timedelta(hours=1), 100), (EX_AT, 200)):
            cursor.execute("SELECT * FROM trading_held_at(%s, %s)", [account.pk, moment])
            assert cursor.fetchall() == [(instrument.pk, D(quantity))]
    assert CorporateAction.objects.count() == 1


def test_the_morning_a_split_goes_ex_the_shares_are_worth_what_they_were(account, instrument):
    """Applied at 00:05 on the ex-date, before any bar of the day: the position holds twice
    the shares, each priced at the last close halved, for every reader that values it (the
    snapshot, risk's holdings, the dashboard); not twice the value."""
    buy(account, instrument, 100, "50")
    close_before(instrument, 50.0, at=EX_AT - timedelta(days=1))
    state(instrument, "split", ratio=2)
    apply()
    morning = EX_AT + timedelta(hours=1)
    with acting_as("test"):
        take_snapshots(morning, [account.pk])
    assert account.snapshots.get(ts=morning).market_value == D(5000)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quantity, price, value FROM risk_holdings(%s, %s)", [account.pk, morning]
        )
        assert cursor.fetchall() == [(200.0, 25.0, 5000.0)]
    (row,) = valued_positions(Position.objects.filter(account=account))
    assert (row.position.quantity, row.price) == (D(200), D(25))


def test_an_action_learnt_after_a_later_one_was_applied_is_left_out(account, instrument):
    """A dividend learnt late, its ex-date before a split applied already: the position no
    longer holds its shares of then, so it is left out and listed, not paid on the split's."""
    buy(account, instrument, 100, "50")
    state(instrument, "split", ex=EX + timedelta(days=7), ratio=2)
    assert apply(EX + timedelta(days=7)) == 1
    state(instrument, "cash_dividend", amount="1", currency="USD", pay_date=EX)
    assert apply(EX + timedelta(days=7)) == 0
    assert action_cash(account, "dividend") == []
    assert held(account, instrument)[0] == D(200)
    out = StringIO()
    call_command("apply_actions", "--through", (EX + timedelta(days=7)).isoformat(), stdout=out)
    assert (
        f"left out: alpha AAPL cash_dividend ex {EX}: an action applied to the position first"
        in out.getvalue()
    )


def test_the_ex_moment_is_midnight_at_the_instruments_exchange(account):
    """A Paris stock goes ex at midnight in Paris (22:00 UTC the day before, in summer): a fill
    at 22:30 UTC on the eve traded ex, in the split's shares, and the entry is dated then."""
    air = Instrument.objects.create(symbol="AIR", asset_class="equity", exchange="XPAR")
    buy(account, air, 100, "50")
    buy(account, air, 10, "25", at=EX_AT - timedelta(hours=1, minutes=30))
    state(air, "split", ratio=2)
    assert apply() == 1
    entry = ActionEntry.objects.get(account=account, instrument=air)
    assert entry.ex_at == EX_AT - timedelta(hours=2)
    assert held(account, air) == (D(210), D(25), D(0))
    assert_replayed(account, air)


def test_an_action_applies_once_its_ex_moment_has_come(account):
    """A Tokyo stock goes ex at 15:00 UTC the day before its ex-date, when its prices do: the
    books follow from then (the job runs hourly), not from 00:00 UTC; a US stock's action of
    tomorrow waits for tomorrow's 00:00 UTC, whatever --through says."""
    tomorrow = date.today() + timedelta(days=1)
    tokyo = Instrument.objects.create(symbol="7203", asset_class="equity", exchange="XTKS")
    us = equity("LATER")
    for stock in (tokyo, us):
        buy(account, stock, 100, "50")
        state(stock, "split", ex=tomorrow, ratio=2)
    now = datetime.now(UTC)
    come = now >= datetime.combine(tomorrow, datetime.min.time(), UTC) - timedelta(hours=9)
    with acting_as("apply_actions"):
        written = books.apply_actions(tomorrow)
    assert written == (1 if come else 0)
    assert held(account, tokyo)[0] == (D(200) if come else D(100))
    assert held(account, us)[0] == D(100)


def test_an_action_the_books_cannot_hold_is_refused_alone_and_named(desks, instrument):
    """A 10000:1 split (in the ratio's range) of a large holding overflows the position's
    digits: that action is refused, with a warning naming it, and another account's split of
    another stock the same day is still applied."""
    alpha, beta = desks["alpha"], desks["beta"]
    other = equity("OTHR")
    buy(alpha, instrument, 100_000_000, "1")
    buy(beta, other, 100, "50")
    state(instrument, "split", ratio=10000)
    state(other, "split", ratio=2)
    out, err = StringIO(), StringIO()
    call_command("apply_actions", "--through", EX.isoformat(), stdout=out, stderr=err)
    assert held(alpha, instrument)[0] == D(100_000_000)
    assert held(beta, other)[0] == D(200)
    assert "1 corporate-action entries" in out.getvalue()
    assert "refused: corporate action" in err.getvalue()
    assert f"(split of AAPL, ex {EX}) not applied: numeric field overflow" in err.getvalue()


def test_a_late_delisting_of_a_position_that_traded_after_it_is_left_out(account, instrument):
    """Shares sold on the delisting's ex-date before it was learnt: closing the position at
    the final price and replaying the sale after it would cash the same shares twice and leave
    a short in a delisted stock: left out and named instead."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, -100, "45", at=EX_AT + timedelta(hours=15))
    state(instrument, "delisting", final_price="4")
    out = StringIO()
    call_command("apply_actions", "--through", EX.isoformat(), stdout=out)
    assert held(account, instrument)[0] == D(0)
    assert action_cash(account, "delisting") == []
    assert f"left out: alpha AAPL delisting ex {EX}: the position traded after" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_a_fill_of_the_new_instrument_booked_while_a_spin_off_applies_is_kept(account, instrument):
    """The first fill of the spun-off stock, dated on the ex-date, is being booked (its
    position row made, not yet committed) when the job applies the spin-off: the job waits for
    it, then receives the new shares before it in time, so neither is lost and each has its
    own slot (the job once overwrote the position the fill had just made)."""
    spun = equity("SPUN")
    buy(account, instrument, 100, "60")
    state(instrument, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    booked = threading.Event()

    def book_the_fill() -> None:
        try:
            with transaction.atomic():
                buy(account, spun, 10, "20", at=EX_AT + timedelta(hours=15))
                booked.set()
                time.sleep(1.5)
        finally:
            booked.set()
            connections.close_all()

    other = threading.Thread(target=book_the_fill)
    other.start()
    booked.wait()
    assert apply() == 2
    other.join()
    assert held(account, spun)[0] == D(60)
    sequences = [
        *Execution.objects.filter(instrument=spun).values_list("position_sequence", flat=True),
        *ActionEntry.objects.filter(instrument=spun).values_list("position_sequence", flat=True),
    ]
    assert sorted(sequences) == [1, 2]
    assert_replayed(account, spun)
