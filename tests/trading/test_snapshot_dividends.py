"""Snapshots count a cash dividend from its ex moment, as a receivable in cash, not from its pay
date (trading/snapshots.py): the share price drops by the dividend on the ex-date while the
cash is paid weeks later, and a NAV that waited for the payment would show a loss on the
ex-date and a gain on the pay date that are none."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from marketdata.models import DailyBar, Instrument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from tests.fixtures.trading import T0
from tests.trading.test_corporate_actions import EX, apply, buy, state
from trading.models import Account, ActionEntry, CashEntry, PortfolioSnapshot
from trading.snapshots import take_snapshot_series, take_snapshots

D = Decimal
PAY = EX + timedelta(days=20)
DIVIDEND = D("1")  # a share, in USD
FIRST, LAST = EX - timedelta(days=3), PAY + timedelta(days=2)
CLOSE, SNAPPED = time(20, tzinfo=UTC), time(21, tzinfo=UTC)  # each day's snapshot follows its close


def at(day: date, moment: time = SNAPPED) -> datetime:
    return datetime.combine(day, moment)


@pytest.fixture(autouse=True)
def _partitions(db):
    for table in ("marketdata_dailybar", "trading_portfoliosnapshot"):
        partitions.prepare_load(table, T0 - timedelta(days=2), at(LAST) + timedelta(days=2))


def closes(stock: Instrument) -> None:
    """A close of 50 every day up to the ex-date, then 49: the price drops by the dividend."""
    day = T0.date()
    while day <= LAST:
        price = 50.0 if day < EX else 50.0 - float(DIVIDEND)
        DailyBar.objects.create(
            instrument=stock, ts=at(day, CLOSE), open=price, high=price, low=price, close=price,
            volume=1,
        )  # fmt: skip
        day += timedelta(days=1)


def deposit(account: Account, amount: str) -> None:
    CashEntry.objects.create(
        account=account, kind="deposit", amount=D(amount), currency="USD",
        entry_at=T0 - timedelta(hours=1),
    )  # fmt: skip


def declared(stock: Instrument) -> None:
    """The dividend stated and applied by the daily job, paid 20 days after its ex-date."""
    state(stock, "cash_dividend", amount=str(DIVIDEND), currency="USD", pay_date=PAY)
    assert apply() >= 1


def daily(account: Account) -> dict[date, PortfolioSnapshot]:
    with acting_as("test"):
        take_snapshot_series(at(FIRST), at(LAST), accounts=[account.pk])
    return {s.ts.date(): s for s in account.snapshots.all()}


@pytest.fixture
def long(account, instrument) -> Account:
    deposit(account, "10000")
    buy(account, instrument, 100, "50")
    closes(instrument)
    declared(instrument)
    return account


def test_the_snapshot_of_the_ex_date_counts_the_dividend_as_cash(long):
    snaps = daily(long)
    paid_on = CashEntry.objects.get(account=long, kind="dividend").entry_at.date()
    assert paid_on == PAY  # the ledger books it on its pay date
    cash = {day: s.cash for day, s in snaps.items()}
    assert cash[EX - timedelta(days=1)] == D(5000)  # 10000 less the 100 shares at 50
    assert cash[EX] == D(5100)  # receivable from the ex-date on
    assert cash[PAY - timedelta(days=1)] == cash[PAY] == cash[LAST] == D(5100)  # paid: no move
    assert (snaps[EX].market_value, snaps[EX].unpriced) == (D(4900), [])


def test_the_nav_does_not_jump_on_the_ex_date_nor_the_pay_date(long):
    snaps = daily(long)
    assert len(snaps) == (LAST - FIRST).days + 1
    assert {s.nav for s in snaps.values()} == {D(10000)}
    # The price's drop and the receivable cancel on the ex-date; the payment moves nothing.
    pnl = {day: s.daily_pnl for day, s in snaps.items() if day != FIRST}
    assert set(pnl.values()) == {D(0)}
    assert snaps[EX].market_value - snaps[EX - timedelta(days=1)].market_value == D(-100)


def test_the_morning_of_the_ex_date_the_last_close_is_taken_ex_dividend(long):
    """After the ex moment, before the ex-date's first bar: the last close still holds the
    dividend, now receivable, so a share counts at that close less the dividend."""
    ex_at = ActionEntry.objects.get(account=long).ex_at
    morning, night_before = ex_at + timedelta(hours=1), ex_at - timedelta(hours=1)
    assert morning < at(EX, CLOSE)
    with acting_as("test"):
        take_snapshots(night_before, [long.pk])
        take_snapshots(morning, [long.pk])
    snaps = {s.ts: (s.cash, s.market_value, s.nav, s.daily_pnl) for s in long.snapshots.all()}
    assert snaps[night_before][:3] == (D(5000), D(5000), D(10000))
    assert snaps[morning] == (D(5100), D(4900), D(10000), D(0))


def test_a_snapshot_known_before_the_entry_was_applied_does_not_count_it(long):
    entry = ActionEntry.objects.get(account=long)
    before = entry.applied_at - timedelta(microseconds=1)
    with acting_as("test"):
        take_snapshots(at(EX), [long.pk], known_at=before)
    snap = long.snapshots.get(ts=at(EX))
    # Not known then: the books held no dividend yet, the price had dropped all the same.
    assert (snap.cash, snap.market_value, snap.known_at) == (D(5000), D(4900), before)
    # As known once applied, the same snapshot counts it; taken again at its recorded
    # knowledge time, it gives the same numbers.
    with acting_as("test"):
        take_snapshots(at(EX), [long.pk], known_at=entry.applied_at)
        known = long.snapshots.get(ts=at(EX))
        assert (known.cash, known.nav) == (D(5100), D(10000))
        take_snapshots(at(EX), [long.pk], known_at=known.known_at)
    assert long.snapshots.get(ts=at(EX)).cash == D(5100)


def test_a_short_pays_the_dividend_from_its_ex_date(account, instrument):
    deposit(account, "10000")
    buy(account, instrument, -40, "50")
    closes(instrument)
    declared(instrument)
    snaps = daily(account)
    assert snaps[EX - timedelta(days=1)].cash == D(12000)  # the short's proceeds
    assert snaps[EX].cash == snaps[PAY].cash == D(11960)  # owes 40 from the ex-date
    assert snaps[EX].market_value == D(-1960)
    assert {s.nav for s in snaps.values()} == {D(10000)}
    assert {s.daily_pnl for day, s in snaps.items() if day != FIRST} == {D(0)}


def test_shares_sold_before_the_pay_date_keep_the_dividend_receivable(long, instrument):
    """The dividend is owed to who held at the ex moment: sold in between, the shares are gone
    from the value and the receivable stays until it is paid."""
    sold_on = EX + timedelta(days=5)
    buy(long, instrument, -100, "49", at=at(sold_on, time(15, tzinfo=UTC)))
    snaps = daily(long)
    assert (snaps[sold_on].cash, snaps[sold_on].market_value) == (D(10000), D(0))
    assert {s.nav for s in snaps.values()} == {D(10000)}
    assert snaps[PAY].cash == snaps[LAST].cash == D(10000)


def test_a_dividend_paid_on_its_ex_date_counts_once(account, instrument):
    """Paid on its ex-date (or stated without a pay date), a dividend is the ledger's cash from
    then on, not a receivable besides."""
    deposit(account, "10000")
    buy(account, instrument, 100, "50")
    closes(instrument)
    state(instrument, "cash_dividend", amount=str(DIVIDEND), currency="USD", pay_date=EX)
    apply()
    snaps = daily(account)
    assert snaps[EX - timedelta(days=1)].cash == D(5000)
    assert snaps[EX].cash == snaps[LAST].cash == D(5100)
