"""Portfolio snapshots: values computed by hand, FX both ways, what has no price, daily P&L
across a deposit, and snapshots of the past that ignore later and busted executions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from tests.fixtures.trading import T0, fill, make_order
from trading import books, snapshots
from trading.models import Account, CashEntry, PortfolioSnapshot
from trading.snapshots import take_snapshot_series, take_snapshots, take_snapshots_at

MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True, params=["engine's road", "prices apart"])
def _road(request, monkeypatch):
    """Each test by the engine's road, and by the one Citus takes (the pairs, their prices
    looked up apart, then the statement given them), which must give the same numbers."""
    if request.param == "prices apart":
        monkeypatch.setattr(snapshots, "_prices_apart", lambda connection: True)


@pytest.fixture(autouse=True)
def _partitions(db):
    for table in ("marketdata_minutebar", "marketdata_dailybar", "trading_portfoliosnapshot"):
        partitions.prepare_load(table, T0 - timedelta(days=10), T0 + timedelta(days=10))


def bar(instrument: Instrument, at: datetime, close: str, model=MinuteBar) -> None:
    price = float(close)
    model.objects.create(
        instrument=instrument, ts=at, open=price, high=price, low=price, close=price
    )


def deposit(account: Account, amount: str, at: datetime, currency: str | None = None) -> None:
    kind = "deposit" if Decimal(amount) > 0 else "withdrawal"
    CashEntry.objects.create(
        account=account,
        kind=kind,
        amount=Decimal(amount),
        currency=currency or account.base_currency,
        entry_at=at,
    )


def snapshot(account: Account, at: datetime) -> PortfolioSnapshot:
    take_snapshots(at, [account.id])
    return PortfolioSnapshot.objects.get(account=account, ts=at)


def amounts(*values: str) -> tuple[Decimal, ...]:
    return tuple(Decimal(v) for v in values)


def money(snap: PortfolioSnapshot) -> tuple:
    return snap.cash, snap.market_value, snap.nav, snap.gross_exposure, snap.net_exposure


@pytest.fixture
def future(db):
    return Instrument.objects.create(symbol="ES", asset_class="future", multiplier=50)


@pytest.fixture
def sap(db):
    return Instrument.objects.create(symbol="SAP", asset_class="equity", currency="EUR")


@pytest.fixture
def eurusd(db):
    return Instrument.objects.create(symbol="EURUSD", asset_class="fx", currency="USD")


def test_nav_cash_and_exposures_by_hand(account, instrument, future):
    deposit(account, "100000", T0 - timedelta(hours=1))
    fill(make_order(account, instrument), 100, "190", fee="1", at=T0 + MINUTE)
    fill(make_order(account, future, side="sell", quantity="1"), -1, "100", fee="4", at=T0)
    bar(instrument, T0 + 5 * MINUTE, "195")
    bar(instrument, T0 + 20 * MINUTE, "999")  # after the snapshot: not its price
    bar(future, T0 + 5 * MINUTE, "110")

    snap = snapshot(account, T0 + 10 * MINUTE)

    # cash 100,000 - 19,000 - 1 + 5,000 - 4; AAPL 100 * 195; ES -1 * 110 * 50
    assert money(snap) == amounts("85995", "14000", "99995", "25000", "14000")
    assert (snap.currency, snap.unpriced, snap.daily_pnl) == ("USD", [], None)


def test_daily_bars_price_what_has_no_minute_bars(account, instrument):
    deposit(account, "1000", T0 - timedelta(days=2))
    fill(make_order(account, instrument), 10, "50", at=T0 - timedelta(days=2))
    bar(instrument, T0 - timedelta(days=1), "60", model=DailyBar)
    assert snapshot(account, T0).market_value == Decimal("600")


def test_fx_converts_to_the_base_currency_through_the_pair_or_its_inverse(
    account, instrument, sap, eurusd
):
    euro = Account.objects.create(name="euro", base_currency="EUR")
    deposit(account, "10000", T0 - timedelta(hours=1))
    deposit(euro, "10000", T0 - timedelta(hours=1))
    fill(make_order(account, sap), 10, "200", at=T0)  # pays 2,000 EUR
    fill(make_order(euro, instrument), 10, "100", at=T0)  # pays 1,000 USD
    bar(sap, T0 + MINUTE, "210")
    bar(instrument, T0 + MINUTE, "125")
    bar(eurusd, T0 + MINUTE, "1.25")
    at = T0 + 2 * MINUTE
    take_snapshots(at)

    # USD account: EUR at 1.25 USD: SAP 10 * 210 * 1.25; cash 10,000 - 2,000 * 1.25
    usd = PortfolioSnapshot.objects.get(account=account, ts=at)
    assert money(usd) == amounts("7500", "2625", "10125", "2625", "2625")
    # EUR account: USD at 1 / 1.25 = 0.8 EUR: AAPL 10 * 125 * 0.8; cash 10,000 - 1,000 * 0.8
    eur = PortfolioSnapshot.objects.get(account=euro, ts=at)
    assert money(eur) == amounts("9200", "1000", "10200", "1000", "1000")
    assert eur.currency == "EUR"


def test_the_latest_rate_at_or_before_the_time_converts(account, sap, eurusd):
    deposit(account, "500", T0, currency="EUR")
    bar(eurusd, T0 - timedelta(hours=2), "1.1")
    bar(eurusd, T0 + timedelta(hours=2), "1.3")
    assert snapshot(account, T0).cash == Decimal("550")


def test_what_has_no_price_or_rate_is_left_out_and_named(account, instrument, sap):
    deposit(account, "10000", T0 - timedelta(hours=1))
    deposit(account, "5000", T0 - timedelta(hours=1), currency="JPY")
    fill(make_order(account, instrument), 10, "100", at=T0)  # AAPL has no bar
    fill(make_order(account, sap), 4, "50", at=T0)  # priced, but no EUR -> USD rate
    bar(sap, T0, "55")

    snap = snapshot(account, T0 + MINUTE)

    assert money(snap) == (Decimal("9000"), 0, Decimal("9000"), 0, 0)  # EUR cash is out too
    assert sorted(snap.unpriced, key=str) == sorted(
        [
            {"symbol": "AAPL", "quantity": 10, "missing": "price"},
            {"symbol": "SAP", "quantity": 4, "missing": "rate EUR->USD"},
            {"cash": "EUR", "amount": -200, "missing": "rate EUR->USD"},
            {"cash": "JPY", "amount": 5000, "missing": "rate JPY->USD"},
        ],
        key=str,
    )


def test_daily_pnl_is_the_nav_change_less_deposits_and_withdrawals(account, instrument):
    day1, day2, day3 = T0, T0 + timedelta(days=1), T0 + timedelta(days=2)
    deposit(account, "10000", day1 - timedelta(hours=1))
    fill(make_order(account, instrument), 100, "50", at=day1 - MINUTE)
    bar(instrument, day1 - MINUTE, "50")
    bar(instrument, day2 - MINUTE, "53")
    bar(instrument, day3 - MINUTE, "52")
    deposit(account, "5000", day1 + timedelta(hours=3))
    deposit(account, "-2000", day2 + timedelta(hours=3))

    first, second, third = (snapshot(account, day) for day in (day1, day2, day3))

    assert (first.nav, first.daily_pnl) == (Decimal("10000"), None)
    # NAV 5,000 + 5,000 cash + 100 * 53 = 15,300: a change of 5,300, of which 5,000 deposited
    assert (second.nav, second.daily_pnl) == (Decimal("15300"), Decimal("300"))
    # NAV 3,000 + 5,200 = 13,200: -2,100, of which -2,000 withdrawn
    assert (third.nav, third.daily_pnl) == (Decimal("13200"), Decimal("-100"))


def test_a_series_in_one_statement_equals_snapshots_taken_one_by_one(account, instrument):
    deposit(account, "10000", T0 - timedelta(days=3))
    for day, price in enumerate(["50", "51", "49.5", "52", "55"]):
        at = T0 - timedelta(days=3) + timedelta(days=day, hours=1)
        fill(make_order(account, instrument), 10 * (day + 1), price, fee="1", at=at)
        bar(instrument, at, price)
        if day == 2:
            deposit(account, "2500", at + MINUTE)
    start, end = T0 - timedelta(days=3), T0 + timedelta(days=1)

    assert take_snapshot_series(start, end, timedelta(hours=12)) == 9
    series = list(PortfolioSnapshot.objects.order_by("ts").values_list("ts", "nav", "daily_pnl"))
    PortfolioSnapshot.objects.all().delete()
    for ts, _, _ in series:
        take_snapshots(ts)
    one_by_one = list(
        PortfolioSnapshot.objects.order_by("ts").values_list("ts", "nav", "daily_pnl")
    )

    assert series == one_by_one
    assert series[0][2] is None
    assert all(pnl is not None for _, _, pnl in series[1:])
    assert sum(pnl for _, _, pnl in series[1:]) == series[-1][1] - series[0][1] - 2500


def test_a_series_follows_the_last_snapshot_before_it(account, instrument):
    deposit(account, "1000", T0 - timedelta(days=1))
    fill(make_order(account, instrument), 10, "10", at=T0 - timedelta(days=1))
    bar(instrument, T0 - timedelta(days=1), "10")
    bar(instrument, T0 + timedelta(hours=1), "12")
    take_snapshots(T0 - timedelta(hours=1))
    take_snapshots_at([T0 + timedelta(hours=2), T0 + timedelta(hours=3)])
    pnl = PortfolioSnapshot.objects.get(ts=T0 + timedelta(hours=2)).daily_pnl
    assert pnl == Decimal("20")


def test_a_past_snapshot_ignores_later_and_busted_executions(account, instrument):
    t1, t2, t3 = T0, T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    deposit(account, "10000", t1 - MINUTE)
    order = make_order(account, instrument, quantity="500")
    first = fill(order, 100, "10", fee="2", at=t1)
    fill(order, -100, "10", fee="-2", at=t2, kind="bust", supersedes=first)
    fill(order, 50, "11", fee="1", at=t3)
    replaced = fill(order, 100, "10", at=t3)
    fill(order, 80, "10", at=t3 + MINUTE, kind="correction", supersedes=replaced)
    bar(instrument, t1, "20")
    # Every execution is booked before any snapshot is taken: the past is derived, not read
    # from the positions table (which holds 130 now).

    held = snapshot(account, t1 + MINUTE)  # the fill as booked then, before its bust
    assert (held.cash, held.market_value) == (Decimal("8998"), Decimal("2000"))
    busted = snapshot(account, t2 + MINUTE)
    assert (busted.cash, busted.market_value, busted.unpriced) == (Decimal("10000"), 0, [])
    corrected = snapshot(account, t3 + 2 * MINUTE)
    # 50 @ 11 + 1 fee and 80 @ 10 (the correction's terms, not the replaced 100)
    assert corrected.cash == Decimal("10000") - 551 - 800
    assert corrected.market_value == 130 * 20


def test_taking_a_snapshot_again_restates_it(account, instrument):
    deposit(account, "1000", T0 - timedelta(hours=1))
    bar(instrument, T0 - MINUTE, "10")
    assert take_snapshots(T0) == 1
    fill(make_order(account, instrument), 5, "10", at=T0 - MINUTE)  # booked late
    assert take_snapshots(T0) == 1
    snap = PortfolioSnapshot.objects.get()
    assert (snap.cash, snap.market_value, snap.nav) == (Decimal("950"), 50, 1000)


def test_only_the_accounts_asked_for_and_only_those_with_books(account, instrument):
    other = Account.objects.create(name="other")
    Account.objects.create(name="empty")
    deposit(account, "1", T0)
    deposit(other, "2", T0)
    assert take_snapshots(T0, [other.id]) == 1
    assert take_snapshots(T0 + MINUTE) == 2
    assert take_snapshots(T0 - MINUTE) == 0  # before any books
    assert not PortfolioSnapshot.objects.filter(account__name="empty").exists()


def test_the_application_role_writes_snapshots_as_a_declared_actor(
    account, instrument, as_app_role
):
    with acting_as("snapshot test"):
        # The application's role adds cash by the books' function only.
        books.add_cash(account.pk, "deposit", Decimal(100), entry_at=T0)
        assert take_snapshots(T0) == 1


def test_command_snapshots_the_named_account_at_the_given_time(account, instrument):
    other = Account.objects.create(name="other")
    deposit(account, "100", T0)
    deposit(other, "100", T0)
    out = StringIO()
    call_command(
        "snapshot_portfolios", "--account", "alpha", "--as-of", "2024-05-13T15:00", stdout=out
    )
    snap = PortfolioSnapshot.objects.get()
    assert (snap.account, snap.ts) == (account, datetime(2024, 5, 13, 15, tzinfo=UTC))
    assert "alpha: NAV 100.00 USD" in out.getvalue()


def test_command_refuses_an_unknown_account_or_time(account):
    with pytest.raises(CommandError, match="no account named 'nobody'"):
        call_command("snapshot_portfolios", "--account", "nobody")
    with pytest.raises(CommandError, match="--as-of"):
        call_command("snapshot_portfolios", "--as-of", "yesterday")


def test_a_scheduler_job_takes_the_snapshots():
    from qvp_site.scheduler import discover

    jobs = discover()
    assert "snapshot-portfolios" in jobs


@pytest.mark.django_db(transaction=True)
def test_a_snapshot_taken_again_at_its_knowledge_time_gives_the_same_numbers(
    account, instrument, tmp_path
):
    """A bust booked later (of a fill before the snapshot's time) and a corrected bar change
    the present; the snapshot taken again with its recorded known_at does not change."""
    deposit(account, "10000", T0 - timedelta(hours=1))
    first = fill(make_order(account, instrument), 10, "100", at=T0)
    path = tmp_path / "bars.csv"
    path.write_text(f"timestamp,open,high,low,close\n{T0 + MINUTE:%Y-%m-%d %H:%M:%S},1,1,1,1\n")
    call_command(
        "ingest_bars", str(path), "--symbol", instrument.symbol, "--timeframe", "1m",
        stdout=StringIO(),
    )  # fmt: skip
    at = T0 + 10 * MINUTE
    taken = snapshot(account, at)
    assert taken.known_at is not None
    assert taken.code_version
    before = money(taken)

    path.write_text(f"timestamp,open,high,low,close\n{T0 + MINUTE:%Y-%m-%d %H:%M:%S},2,2,2,2\n")
    call_command(
        "ingest_bars", str(path), "--symbol", instrument.symbol, "--timeframe", "1m",
        stdout=StringIO(),
    )  # fmt: skip
    with acting_as("test"):
        fill(first.order, -10, "100", at=T0 + MINUTE, kind="bust", supersedes=first)

    assert money(snapshot(account, at)) != before  # the present has changed
    take_snapshots(at, [account.id], known_at=taken.known_at)
    again = PortfolioSnapshot.objects.get(account=account, ts=at)
    assert money(again) == before
    assert again.known_at == taken.known_at


@pytest.mark.django_db(transaction=True)
def test_no_role_chooses_when_an_execution_or_cash_was_booked(account, instrument, connect_as_app):
    """A read as known takes created_at for the booking time: an execution or a cash entry
    backdated by its writer would read as known before it was. The database sets it."""
    backdated = datetime(2000, 1, 1, tzinfo=UTC)
    order = make_order(account, instrument)
    booked = fill(order, 1, "10", at=T0, created_at=backdated)
    entry = CashEntry.objects.create(
        account=account, kind="deposit", amount=Decimal(5), currency="USD", entry_at=T0,
        created_at=backdated,
    )  # fmt: skip
    for row in (booked, entry):
        row.refresh_from_db()
        assert row.created_at > backdated
