"""Attack review of issue 23 (corporate actions: ac68f84..a3e51dc): each test states a rule the
commits promise (or the issue asks) and fails where a role, a door or a sequence of ordinary
events breaks it. A failing test here is a hole found; a passing one a defence that held."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, IntegrityError, connection, transaction
from psycopg import errors

from marketdata.models import CorporateAction, DailyBar, Instrument
from tests.clients import client_of
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
from trading.models import ActionEntry, CashEntry

D = Decimal
NEXT = EX + timedelta(days=1)


def withdraw(stock: Instrument, kind: str, ex: date) -> None:
    """What POST corporate-actions/withdraw/ does (the owner's function)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_action_withdraw(%s, %s, %s)", [stock.pk, kind, ex])


def current_ratio_product(stock: Instrument) -> Decimal:
    """The product of the ratios of the current splits of ``stock``: what the books' quantity
    must have been multiplied by, since the prices are adjusted by exactly these."""
    product = D(1)
    for ratio in CorporateAction.objects.filter(
        instrument=stock, kind="split", known_until__isnull=True
    ).values_list("ratio", flat=True):
        product *= ratio or D(1)  # a split always states its ratio (CHECK)
    return product


def tried(change: Callable[[], object]) -> None:
    """A change the database may refuse (a refusal is an acceptable defence)."""
    try:
        with transaction.atomic():
            change()
    except DatabaseError:
        pass


# --- Numbers ---------------------------------------------------------------------------------


def test_a_1_for_3_reverse_split_keeps_whole_shares(account, instrument, tmp_path: Path):
    """The loader reads "1:3" as round(1/3, 10) = 0.3333333333 and the books multiply by it:
    300 shares become 99.99999999, truncated to 99, and almost a whole share is sold "in lieu".
    A holder of a round lot in a 1-for-3 (or 2-for-3, 1-for-7...) reverse split loses a share
    for cash at the close, and gets a realized P&L and a cash entry nobody traded."""
    buy(account, instrument, 300, "10")
    path = tmp_path / "actions.csv"
    path.write_text(f"instrument,kind,ex_date,ratio\n{instrument.pk},split,{EX},1:3\n")
    call_command("ingest_actions", str(path), stdout=StringIO())
    apply()
    quantity, average_cost, _ = held(account, instrument)
    assert quantity == D(100)
    assert abs(average_cost * quantity - D(3000)) < D("1e-6")  # the cost basis kept
    assert action_cash(account, "in_lieu") == []


# --- Applied, then restated or withdrawn ------------------------------------------------------


def test_a_split_withdrawn_after_it_was_applied_leaves_no_split_in_the_books(account, instrument):
    """An announced split is applied at 00:05 on its ex-date, then cancelled (withdrawn) later
    that day. The prices are no longer adjusted by it (nor did they halve), but the position
    stays doubled at half the cost: the NAV reads double, and nothing in the books says why.
    Either the withdrawal is refused once applied, or the books take the split back."""
    buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    assert apply() == 1
    tried(lambda: withdraw(instrument, "split", EX))
    apply()
    assert held(account, instrument)[0] == D(100) * current_ratio_product(instrument)


def test_a_split_whose_ex_date_is_corrected_is_not_applied_twice(account, instrument):
    """A vendor corrects a split's ex-date by one day: the operator withdraws the wrong one
    and states the right one (the API's only way to move an ex-date). The applied-once rule
    matches instrument, kind and ex-date, so the corrected split is applied again: 100 shares
    become 400 instead of 200."""
    buy(account, instrument, 100, "50")
    state(instrument, "split", ratio=2)
    assert apply() == 1

    def correct() -> None:
        withdraw(instrument, "split", EX)
        state(instrument, "split", ex=NEXT, ratio=2)

    tried(correct)
    tried(lambda: apply(NEXT))
    assert held(account, instrument)[0] == D(200)


def test_a_dividend_whose_ex_date_is_corrected_is_not_paid_twice(account, instrument):
    """The same correction of a cash dividend's ex-date books the dividend a second time: 50
    of cash becomes 100, money the account never received."""
    buy(account, instrument, 100, "50")
    paid: dict[str, Any] = {"amount": "0.5", "currency": "USD", "pay_date": EX + timedelta(days=20)}
    state(instrument, "cash_dividend", **paid)
    assert apply() == 1

    def correct() -> None:
        withdraw(instrument, "cash_dividend", EX)
        state(instrument, "cash_dividend", ex=NEXT, **paid)

    tried(correct)
    tried(lambda: apply(NEXT))
    # The trade's 5000 out, one dividend of 50 in, however a correction is recorded.
    assert sum(CashEntry.objects.filter(account=account).values_list("amount", flat=True)) == D(
        -4950
    )


def test_a_split_restated_after_it_was_applied_moves_the_books_by_its_terms(account, instrument):
    """A split stated 2:1 by mistake and restated 3:1 after the daily job applied it: the
    prices are adjusted by 3 from then on, the position stays at 2x (the restatement is
    silently never applied), so its value is off by a third for ever. Either the books follow
    the restatement (an entry for the difference) or the restatement of an applied action is
    refused: it is refused now (trading_action_applied_stays)."""
    buy(account, instrument, 100, "60")
    state(instrument, "split", ratio=2)
    assert apply() == 1
    tried(lambda: state(instrument, "split", ratio=3))
    apply()
    assert held(account, instrument)[0] == D(100) * current_ratio_product(instrument)


# --- Positions held on the ex-date ------------------------------------------------------------


def test_a_split_learnt_after_the_position_traded_ex_still_splits_the_shares_held(
    account, instrument
):
    """The issue: "on the ex-date a split changes a position's quantity". A split the vendor's
    file brings a day late (or the job running late) finds the position traded on the ex-date:
    it was left out for ever (held in trading 0013; mended by trading 0014, which applies an
    action to the position held at its ex moment and replays what traded after it). 100
    shares held through a 2:1 split must not stay 100 while every price after is half."""
    buy(account, instrument, 100, "50")
    buy(account, instrument, 10, "25", at=EX_AT + timedelta(hours=15))  # traded ex
    state(instrument, "split", ratio=2)  # learnt after that fill
    apply()
    assert held(account, instrument)[0] == D(210)  # 100 held at the ex moment x 2, then 10


def test_one_action_the_books_cannot_hold_does_not_stop_every_other_account(desks, instrument):
    """The loader and the API accept a split ratio up to 1e10 (the column's digits), the books
    hold quantities below 1e12: one such action on alpha's 1000 shares makes the whole of
    trading_apply_actions fail ("numeric field overflow", naming neither the action nor the
    account), so beta's ordinary 2:1 split of another stock is never applied either, today
    or on any later day the job runs, until someone finds and withdraws the bad action.
    (Since trading 0014 each action is also applied alone, refused with a warning.)"""
    other = Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")
    buy(desks["alpha"], instrument, 1000, "50")
    buy(desks["beta"], other, 100, "50")
    # Refused when stated, whoever states it (action_ratio_in_range; the loaders name the line).
    with pytest.raises(IntegrityError, match="action_ratio_in_range"), transaction.atomic():
        state(instrument, "split", ratio="9999999999")
    state(other, "split", ratio=2)
    try:
        with transaction.atomic():
            call_command("apply_actions", "--through", EX.isoformat(), stdout=StringIO())
    except CommandError:
        pass
    assert held(desks["beta"], other)[0] == D(200)


def test_a_bust_after_a_spin_off_takes_the_busted_shares_out(account, instrument):
    """A fill of SPUN dated on the ex-date, booked before the job, comes before the spin-off's
    entry in the position's sequence; in trading 0013 the entry counted it and a bust left the
    10 shares in while refunding their cash. Mended by trading 0014: the new shares are
    received at the ex moment, before that fill, and the replay places entries at their ex
    moments, so the bust takes the 10 out."""
    spun = Instrument.objects.create(symbol="SPUN", asset_class="equity", exchange="XNAS")
    buy(account, instrument, 100, "60")
    late = buy(account, spun, 10, "20", at=EX_AT + timedelta(hours=15))
    state(instrument, "spin_off", ratio="0.5", new_instrument=spun.pk, cost_fraction="0.2")
    apply()
    books.bust(late)
    assert held(account, spun)[0] == D(50)  # the 50 received; the 10 bought were busted
    assert_replayed(account, spun)


# --- Adjusted reads ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_daily_bar_of_the_ex_date_loaded_in_its_own_time_zone_is_not_adjusted(tmp_path: Path):
    """The ex moment was 00:00 UTC of the ex-date (marketdata 0012; marketdata 0013 makes it the
    exchange's midnight when earlier), but a daily file loaded with --tz (the way to
    load a Paris or Tokyo vendor's dates) stamps each day at local midnight: the ex-date's own
    bar lies at 22:00 (15:00) UTC the day before, so a split adjusted it although it traded ex.
    The ex-date's candle is drawn at half the price traded, and a dividend's total-return
    factor takes that bar's close as the close before the ex-date. (The same rule makes
    ingest_bars --adjusted-through multiply the ex-date's row of a vendor file back by the
    split: stored at double the price traded.)"""
    stock = Instrument.objects.create(symbol="AIR", asset_class="equity", exchange="XPAR")
    state(stock, "split", ratio=2)
    path = tmp_path / "air.csv"
    path.write_text(
        "Date,Open,High,Low,Close,Volume\n"
        f"{EX - timedelta(days=3)},100,100,100,100,10\n"
        f"{EX},50,50,50,50,20\n"
    )
    call_command(
        "ingest_bars",
        str(path),
        *("--symbol", "AIR", "--timeframe", "1d", "--tz", "Europe/Paris"),
        stdout=StringIO(),
    )
    closes = list(
        DailyBar.objects.adjusted("split")
        .filter(instrument=stock)
        .order_by("ts")
        .values_list("close", flat=True)
    )
    assert closes == [50.0, 50.0]  # the day before halved; the ex-date as traded


# --- Defences that held (kept: each guards a rule a regression would break silently) ---------


def test_entries_are_never_written_for_a_future_ex_date_by_the_app_role(
    account, instrument, connect_as_app
):
    """trading_app, as a job, cannot apply an action before its ex-date (p_through in the
    future is refused), so no fill still to come before the ex moment is refused for it."""
    buy(account, instrument, 100, "50")
    future = date.today() + timedelta(days=5)
    state(instrument, "split", ex=future, ratio=2)
    conn = connect_as_app()  # autocommitting: the setting holds for the session
    conn.execute("SELECT set_config('qvp.actor', 'system:attacker', false)")
    with pytest.raises(errors.InvalidParameterValue):
        conn.execute("SELECT trading_apply_actions(%s)", [future])
    conn.execute("SELECT trading_apply_actions(NULL)")
    assert not ActionEntry.objects.exists()
    assert held(account, instrument)[0] == D(100)


def test_a_3_for_2_split_of_an_odd_short_buys_the_fraction_back(account, instrument):
    """A short of 101 at 30 through a 3:2 split with the close at 33 (22 a new share): short
    151 at 20, half a share bought back at 22 (a loss of 1) and 11 paid, the replay agreeing;
    the sign of every number is the short's."""
    buy(account, instrument, -101, "30")
    close_before(instrument, 33.0)
    state(instrument, "split", ratio="1.5")
    apply()
    assert held(account, instrument) == (D(-151), D(20), D(-1))
    assert action_cash(account, "in_lieu") == [(D(-11), "USD", EX_AT)]
    assert_replayed(account, instrument)


def test_security_definer_functions_search_pg_temp_last(db):
    """Every SECURITY DEFINER function of the schema names its search_path with pg_temp last
    (the owner's corporate-action writers and trading_apply_actions included): a temporary
    table of trading_app's could otherwise stand in for the owner's tables (the hole of the
    review of issues 21 and 22)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, coalesce((SELECT c FROM unnest(p.proconfig) c"
            "  WHERE c LIKE 'search_path=%%'), '')"
            " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
            " WHERE n.nspname = 'public' AND p.prosecdef"
        )
        found = dict(cursor.fetchall())
    for name in ("marketdata_action_set", "marketdata_action_withdraw", "trading_apply_actions"):
        assert name in found
    unsafe = {
        name: path for name, path in found.items() if not path.replace(" ", "").endswith(",pg_temp")
    }
    assert unsafe == {}


def test_a_dividend_not_paid_yet_is_not_cash_on_the_portfolio_page(desks, instrument):
    """The issue: a cash dividend is "booked to the cash ledger on the pay date". The job
    books it on the ex-date, dated on the pay date, and the portfolio page sums every entry
    whatever its date: alice sees the dividend as cash in hand from the ex-date on, weeks
    before it is paid (and can spend it)."""
    alpha = desks["alpha"]
    buy(alpha, instrument, 100, "50")  # 2024: -5000 of trade cash
    today = datetime.now(UTC).date()
    state(
        instrument,
        "cash_dividend",
        ex=today,
        amount="0.5",
        currency="USD",
        pay_date=today + timedelta(days=20),
    )
    assert apply(today) == 1
    page = client_of(desks["alice"]).get("/portfolio/")
    balances = {
        (row["account__name"], row["currency"]): row["balance"] for row in page.context["cash"]
    }
    assert balances == {("alpha", "USD"): D(-5000)}


def test_a_position_opened_on_the_ex_date_receives_no_dividend(account, instrument):
    """Bought on the ex-date (after the job ran at 00:05), the shares trade without the
    dividend: the next day's job, and any later one, pays nothing for them and lists no
    position left out."""
    buy(account, instrument, 100, "50", at=EX_AT + timedelta(hours=14))
    state(instrument, "cash_dividend", amount="0.5", currency="USD", pay_date=NEXT)
    out = StringIO()
    for through in (EX, NEXT, NEXT + timedelta(days=30)):
        call_command("apply_actions", "--through", through.isoformat(), stdout=out)
    assert action_cash(account, "dividend") == []
    assert not ActionEntry.objects.exists()
    assert "left out" not in out.getvalue()
