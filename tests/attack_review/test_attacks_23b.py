"""Attack review of issue 23's second round (d0244fa..HEAD): trading 0014 (an action applies to
the position held at its ex moment, whenever it is applied; entries replay at their ex
moments), marketdata 0013 (the ex moment follows the exchange; adjusted reads take a lower
bound on ts) and the snapshots' dividends (receivable from the ex moment, a close from before
it priced less the dividend). Each test states a rule a user relies on and fails where an
ordinary sequence of events (a correction, a late action, a listing stated later, a trade on
the ex morning, a spin-off, a large holding) breaks it. A failing test is a
hole found; a passing one a defence that held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction

from marketdata.models import DailyBar, Instrument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from tests.fixtures.trading import make_order
from tests.trading.test_corporate_actions import (
    EX,
    EX_AT,
    action_cash,
    apply,
    assert_replayed,
    buy,
    close_before,
    held,
    state,
)
from trading import books
from trading.models import Account, ActionEntry, CashEntry, Execution, PortfolioSnapshot
from trading.snapshots import take_snapshots

D = Decimal
EVE = EX_AT - timedelta(days=1)  # the last close before the ex-date: 2024-06-02 00:00 UTC
PAY = EX + timedelta(days=20)


def snapshot(account: Account, *moments: datetime) -> dict[datetime, PortfolioSnapshot]:
    """The account's snapshots at ``moments`` (as known now), by time."""
    partitions.prepare_load("trading_portfoliosnapshot", min(moments), max(moments))
    with acting_as("test"):
        for moment in sorted(moments):
            take_snapshots(moment, [account.pk])
    return {s.ts: s for s in account.snapshots.all()}


def deposit(account: Account, amount: str, currency: str = "USD") -> None:
    CashEntry.objects.create(
        account=account, kind="deposit", amount=D(amount), currency=currency,
        entry_at=EVE - timedelta(days=30),
    )  # fmt: skip


def correct(original: Execution, quantity: int, price: str, at: datetime) -> Execution:
    """A correction of ``original`` (its terms restated), booked and dated ``at``."""
    return Execution.objects.create(
        exec_id=f"{original.exec_id}-fix", order=original.order, account=original.account,
        instrument=original.instrument, side=original.side, quantity=D(quantity),
        price=D(price), executed_at=at, kind="correction", supersedes=original,
    )  # fmt: skip


# --- trading 0014: the position held at the ex moment ----------------------------------------


def test_a_fill_corrected_on_the_ex_date_before_a_late_split_is_still_split(account, instrument):
    """Friday's fill of 100 at 50 is corrected on Monday, the ex-date, at 10:00 UTC (the price
    was 49); the 2:1 split is learnt at noon and applied then. The 100 shares were held at the
    ex moment, so they split: 200 at 24.5. trading_position_at replays the executions dated
    before the ex moment that are in force *now*: the original is superseded and the
    correction is dated after the ex moment, so the state at the ex moment is 0 shares and the
    split is skipped (todo: ``s.quantity <> 0``). It is not listed as left out either (no
    entry after it): the position stays 100 at 49 while every price from the ex-date on is
    halved, and nothing says so. Fix: date a correction (and a bust) at its original's time
    when replaying to an ex moment (the refusal rule already judges a correction by its
    original's date), or leave such a position out and list it."""
    original = buy(account, instrument, 100, "50")
    correct(original, 100, "49", EX_AT + timedelta(hours=10))
    state(instrument, "split", ratio=2)
    apply()
    assert held(account, instrument) == (D(200), D("24.5"), D(0))


@pytest.mark.xfail(
    strict=True,
    reason="Known hole, left open: the books void a busted fill from the start, snapshots from"
    " the bust's time; between an ex moment and a later bust of a fill of before it they differ.",
)
def test_a_fill_busted_on_the_ex_date_before_a_late_split_leaves_no_phantom_loss(
    account, instrument
):
    """The bust's side of the same rule. Friday's 100 at 50 is busted on Monday, the ex-date,
    at 10:00 UTC; the split is learnt at noon. The books skip the split (the fill is void, in
    force nowhere now: fair), but the snapshots count an execution until its bust's time: at
    09:00 on Monday the account held the 100 shares, with no entry to split them, priced at the
    split's halved close: -5000 of cash and 2500 of shares, a loss of 2500 that never was (the
    books and the snapshots disagree on what was held at the ex moment). Fix: one rule for
    both (the snapshots leave out a fill busted later from the ex moments it spans, or the
    books split the shares the snapshots say were held and the bust takes the split shares
    out, as it does for a fill of the ex-date)."""
    original = buy(account, instrument, 100, "50")
    close_before(instrument, 50.0, at=EVE)
    bust_row = books.bust_row(original, "late-bust", "")
    bust_row["executed_at"] = EX_AT + timedelta(hours=10)
    books.book(bust_row)
    state(instrument, "split", ratio=2)
    apply()
    morning = EX_AT + timedelta(hours=9)
    assert snapshot(account, morning)[morning].nav == D(0)


def test_two_late_actions_on_a_position_that_traded_after_each(account, instrument):
    """Defence: two splits learnt late, the position traded after each ex moment before
    either was applied: each applies to the shares held at its ex moment, in date order, and
    the position is the replay of its executions and entries."""
    later = EX + timedelta(days=7)
    buy(account, instrument, 100, "60")
    buy(account, instrument, 10, "30", at=EX_AT + timedelta(hours=15))
    buy(account, instrument, -20, "20", at=EX_AT + timedelta(days=7, hours=15))
    state(instrument, "split", ratio=2)
    state(instrument, "split", ex=later, ratio="1.5")
    assert apply(later) == 2
    assert held(account, instrument)[0] == D(295)  # (100 x 2 + 10) x 1.5 - 20
    assert_replayed(account, instrument)


def test_a_dividend_learnt_after_a_same_day_split_was_applied_is_paid_on_the_shares_before_it(
    account, instrument
):
    """The books' rule (trading_action_rank): a dividend of the ex-date of a split is paid on
    the shares held before the split. The split is applied at 00:05, the vendor's dividend
    file of the same ex-date arrives at 09:00: trading_entry_after looks only for entries of
    a *later* ex moment, and trading_position_at's state at the ex moment includes the
    entries of that very moment, so the dividend is paid on the 200 split shares: 100 of
    cash for a 50 dividend (a spin-off of that day learnt late likewise delivers twice the
    new shares; a dividend learnt after a same-day delisting is paid on nothing and listed
    nowhere). Fix: the state for an action excludes the entries of its moment of a later
    rank (or such an action counts as learnt after a later one: left out and listed)."""
    buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    assert apply() == 1
    state(instrument, "cash_dividend", amount="0.5", currency="USD", pay_date=PAY)
    apply()
    paid = [amount for amount, *_ in action_cash(account, "dividend")]
    listed = [row for row in books.actions_left_out(EX) if row[2] == "cash_dividend"]
    assert paid == [D(50)] or (paid == [] and listed)


def test_a_late_delisting_does_not_cash_shares_sold_after_it_a_second_time(account, instrument):
    """A delisting learnt late (its ex-date a day earlier than the last trade the account
    booked: a vendor's date off by one, or an OTC sale): the 100 shares held at its ex moment
    are closed at the final price, 400 paid, then the sale of the same 100 shares on the
    ex-date is replayed through the entry: the books hold a short of 100 in a delisted stock,
    and the shares were turned into cash twice (400 and the sale's 410). Version 0013 left
    the position out and listed it. Fix: an action that closes the position (a delisting) is
    not replayed through executions dated after it: leave such a position out and list it."""
    buy(account, instrument, 100, "10")
    buy(account, instrument, -100, "4.10", at=EX_AT + timedelta(hours=15))
    state(instrument, "delisting", final_price="4")
    apply()
    listed = [row for row in books.actions_left_out(EX) if row[2] == "delisting"]
    assert held(account, instrument)[0] == D(0) or listed
    assert held(account, instrument)[0] >= D(0)


def test_a_split_in_the_ratio_range_that_overflows_one_position_does_not_stop_every_account(
    desks, instrument
):
    """The previous review's hole, "one action the books cannot hold stops every account",
    was closed by a range on the ratio (action_ratio_in_range: up to 10000, "within what the
    books hold"). What the books hold depends on the position: alpha's 100 million shares
    (a large fund's holding, within the books' 1e12) split 10000:1 is 1e12, one digit too
    many: trading_apply_actions fails as a whole ("numeric field overflow", naming neither
    the action nor the account), and beta's ordinary 2:1 split of another stock is never
    applied, today or on any later day, until the action is withdrawn. Fix: apply each set
    (or each action) in its own subtransaction (BEGIN ... EXCEPTION) and list the action and
    the accounts refused, as actions_left_out lists the others."""
    other = Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")
    buy(desks["alpha"], instrument, 100_000_000, "1")
    buy(desks["beta"], other, 100, "50")
    state(instrument, "split", ratio="10000")  # accepted: in the range
    state(other, "split", ratio=2)
    try:
        with transaction.atomic():
            call_command("apply_actions", "--through", EX.isoformat(), stdout=StringIO())
    except (CommandError, DatabaseError):
        pass
    assert held(desks["beta"], other)[0] == D(200)


def test_a_late_reverse_split_with_cash_in_lieu_on_a_position_sold_ex(account, instrument):
    """Defence: 105 held at the ex moment of a 1-for-10 reverse split learnt late, 5 new shares
    sold on the ex-date before: 10 kept, half a share paid in lieu, then 5 sold; the position
    is the replay of its executions and entries, and a second run writes nothing."""
    buy(account, instrument, 105, "2")
    buy(account, instrument, -5, "20", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio="0.1")
    assert apply() == 1
    assert held(account, instrument)[0] == D(5)
    assert [amount for amount, *_ in action_cash(account, "in_lieu")] == [D(10)]
    assert_replayed(account, instrument)
    assert apply() == 0


def test_a_position_closed_before_and_reopened_after_a_late_split_is_not_split(account, instrument):
    """Defence: closed before the ex moment, reopened on the ex-date before the split was
    learnt: nothing was held then, so nothing is split, paid or listed."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, -100, "51")
    buy(account, instrument, 40, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio=2)
    state(instrument, "cash_dividend", amount="0.5", currency="USD", pay_date=PAY)
    assert apply() == 0
    assert held(account, instrument)[0] == D(40)
    assert not ActionEntry.objects.exists()
    assert books.actions_left_out(EX) == []


# --- The snapshots: NAV continuous across the ex-date ----------------------------------------


def test_a_position_bought_on_the_ex_date_is_priced_less_the_dividend(account, instrument):
    """The rule (trading/snapshots.py): "a close from before an ex moment prices the shares
    held after it ... less a dividend gone ex since". It is applied only to positions holding
    the dividend's entry (gone_ex joins trading_actionentry). 100 shares bought on the
    ex-date at 14:00 UTC at the ex price, 49 (the close before was 50, the dividend 1): the
    next intraday snapshot still reads Friday's close, whole, for them: NAV rises by 100 on
    the trade, a gain that is none (it goes away when the day's bar comes). The split's rule
    takes its factor from the actions, not from the entries. Fix: take the dividends gone ex
    between the close and the snapshot from the current actions (as known at known_at), as
    the split factor is, for every holding."""
    deposit(account, "10000")
    close_before(instrument, 50.0, at=EVE)
    state(instrument, "cash_dividend", amount="1", currency="USD", pay_date=PAY)
    apply()  # nothing held: nothing written
    before, after = EX_AT + timedelta(hours=13), EX_AT + timedelta(hours=15)
    buy(account, instrument, 100, "49", at=EX_AT + timedelta(hours=14))
    snaps = snapshot(account, before, after)
    assert snaps[after].nav == snaps[before].nav


def test_a_dividend_in_another_currency_than_the_share_is_refused_when_stated(instrument):
    """Defence: the snapshots do not take a dividend in another currency than the share's off
    the close from before its ex moment (the NAV would rise by it overnight), but no such
    dividend reaches the books: marketdata_action_set refuses it, naming the currencies."""
    with (
        pytest.raises(IntegrityError, match="paid in EUR, but it trades in USD"),
        transaction.atomic(),
    ):
        state(instrument, "cash_dividend", amount="1", currency="EUR", pay_date=PAY)


def test_a_spin_off_on_the_ex_morning_does_not_lift_the_nav(account, instrument):
    """The snapshots take a dividend off the close from before its ex moment, not a
    spin-off: 100 shares at 60 spin off 50 SPUN (when-issued at 24: exactly the 20% of the
    value the cost fraction says moved, the adjusted reads' total-return factor). From the ex
    moment the 50 new shares are held and priced (1200) while the parent is still priced at
    its close with them in it (6000): the NAV rises by 1200 overnight, and falls back when the
    parent's ex-date bar comes. Fix: price a parent's close from before a spin-off's ex moment
    by (1 - cost fraction), as marketdata_action_factors('total_return') does, or leave the
    new shares unpriced until the parent's first bar ex."""
    spun = Instrument.objects.create(symbol="SPUN", asset_class="equity", exchange="XNAS")
    buy(account, instrument, 100, "60")
    close_before(instrument, 60.0, at=EVE)
    close_before(spun, 24.0, at=EVE)
    state(instrument, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    assert apply() == 2
    before, morning = EX_AT - timedelta(hours=1), EX_AT + timedelta(hours=1)
    snaps = snapshot(account, before, morning)
    assert snaps[morning].nav == snaps[before].nav


def test_a_dividend_and_a_split_of_one_day_keep_the_nav_continuous(account, instrument):
    """Defence: a 2:1 split and a dividend of 1 (a share before the split) on one ex-date,
    applied at 00:05; overnight and across the pay date the NAV does not move: 200 shares at
    (50 - 1) / 2 and 100 receivable, then 100 paid."""
    buy(account, instrument, 100, "50")
    close_before(instrument, 50.0, at=EVE)
    state(instrument, "split", ratio=2)
    state(instrument, "cash_dividend", amount="1", currency="USD", pay_date=PAY)
    assert apply() == 2
    paid = datetime.combine(PAY, datetime.min.time(), UTC)
    moments = (EX_AT - timedelta(hours=1), EX_AT + timedelta(hours=1), paid + timedelta(hours=1))
    snaps = snapshot(account, *moments)
    assert {snaps[m].nav for m in moments} == {D(0)}


# --- marketdata 0013: the ex moment by exchange ----------------------------------------------


@pytest.mark.xfail(
    strict=True,
    reason="Known hole, left open: the ex moment follows the exchange as known now; a change of"
    " exchange after an action was applied moves the prices' ex moment, not the entry's.",
)
def test_a_listing_stated_after_a_split_was_applied_leaves_the_snapshot_as_it_was(account, db):
    """An instrument loaded with no exchange goes ex at 00:00 UTC: the split is applied, its
    entry dated then, and a snapshot is taken at 20:00 UTC on the eve (100 at 50). The
    security master then states its exchange, Tokyo. The ex moment of the prices moves to
    15:00 UTC on the eve (marketdata_exchange_time_zone is read "as known now", not at a
    read's known_at), the entry's does not: retaken with its own known_at, the snapshot holds
    the 100 shares of before the entry at the halved price of after the ex moment: 2500,
    half what it said and what was held. The books and the prices disagree on the ex moment
    for ever, and a snapshot is not reproducible with its known_at. Fix: refuse a change of
    exchange (listing or instrument) that moves the ex moment of an action applied to the
    books (as trading_action_applied_stays refuses a restatement), or read the listings as
    known at known_at and value the books' holdings at their entries' ex_at."""
    stock = Instrument.objects.create(symbol="7203", asset_class="equity", exchange="")
    buy(account, stock, 100, "50")
    close_before(stock, 50.0, at=EVE)
    state(stock, "split", ratio=2)
    assert apply() == 1
    assert ActionEntry.objects.get().ex_at == EX_AT
    eve = EX_AT - timedelta(hours=4)
    taken = snapshot(account, eve)[eve]
    assert taken.nav == D(0)  # -5000 of cash, 100 at 50
    Instrument.objects.filter(pk=stock.pk).update(exchange="XTKS")
    with acting_as("test"):
        take_snapshots(eve, [account.pk], known_at=taken.known_at)
    assert PortfolioSnapshot.objects.get(pk=taken.pk).nav == D(0)


def test_a_lower_bounded_adjusted_read_equals_the_whole_read(db):
    """Defence: reads of Tokyo and Auckland stocks (ex moments at 15:00 and 12:00 UTC on the
    eve) with a split and a dividend around the bound, bounded with >= and >, give the rows
    of the whole read from the bound on, for each adjustment."""
    stocks = [
        Instrument.objects.create(symbol=s, asset_class="equity", exchange=x)
        for s, x in (("7203", "XTKS"), ("AIR", "XNZE"), ("AAPL", "XNAS"))
    ]
    start = EX_AT - timedelta(days=6)
    partitions.prepare_load("marketdata_dailybar", start, EX_AT + timedelta(days=6))
    for stock in stocks:
        for hour in range(0, 12 * 24, 6):
            moment = start + timedelta(hours=hour)
            price = 100.0 + hour / 6
            DailyBar.objects.create(
                instrument=stock, ts=moment, open=price, high=price, low=price, close=price,
                volume=10,
            )  # fmt: skip
        state(stock, "split", ratio=2)
        state(stock, "cash_dividend", ex=EX + timedelta(days=1), amount="1", currency="USD")
        state(stock, "split", ex=EX - timedelta(days=1), ratio="1.5")
    for how in ("split", "total_return"):
        whole = list(
            DailyBar.objects.adjusted(how)
            .order_by("instrument", "ts")
            .values_list("instrument", "ts", "close", "volume")
        )
        for bound in (EX_AT - timedelta(hours=10), EX_AT - timedelta(hours=9), EX_AT):
            for lookup in ("gte", "gt"):
                expected = [
                    row for row in whole if (row[1] >= bound if lookup == "gte" else row[1] > bound)
                ]
                read = list(
                    DailyBar.objects.adjusted(how)
                    .filter(**{f"ts__{lookup}": bound})
                    .order_by("instrument", "ts")
                    .values_list("instrument", "ts", "close", "volume")
                )
                assert read == expected, (how, bound, lookup)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM marketdata_exchange")
        assert cursor.fetchone()[0] > 0


def test_a_trader_cannot_date_a_fill_before_a_late_applied_entry(account, instrument):
    """Defence: once the late split is applied at the ex moment, a fill dated before it (the
    position's past, which the entry recorded) is refused, and a later bust of a fill of the
    ex-date replays through the entry."""
    buy(account, instrument, 100, "50")
    late = buy(account, instrument, 10, "25", at=EX_AT + timedelta(hours=15))
    state(instrument, "split", ratio=2)
    apply()
    order = make_order(account, instrument, quantity="5")
    try:
        with transaction.atomic():
            books.book(books.fill_row(order, "back", D(5), D(50), EX_AT - timedelta(hours=1)))
        refused = False
    except DatabaseError:
        refused = True
    assert refused
    books.bust(late)
    assert held(account, instrument) == (D(200), D(25), D(0))
    assert_replayed(account, instrument)
