"""Risk reads returns adjusted for corporate actions (risk/sql/functions/0006.sql): prices are
stored as traded, so a 2:1 split's ex-date is a -50% day read raw; the VaR's returns, the
volatility estimates and a risk run read ``total_return`` by default, where the return across
the ex-date is the day's move (as traded, the split undone) and a dividend counts on its
ex-date only. Where an instrument has no action every number is the same to the last digit as
read as traded."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import DataError, connection, transaction

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from risk import var
from risk.models import Metric, RiskMetric, RiskRun, VolatilityEstimate
from risk.runs import RunOptions, compute_risk, repeat_run
from risk.volatility import compute_volatility
from tests.risk.conftest import closes_from, daily_bars, day, hold, instrument
from trading import books
from trading.models import Account

DAYS = 40
SPLIT_DAY = 20  # the split's ex-date: the bar of day(20) is the first traded ex
DIVIDEND_DAY = 12
DIVIDEND = 1.5
AS_OF = day(DAYS)
LOOKBACK = DAYS
# Returns of the business, whatever its shares: the plain instrument trades them as they are.
RETURNS = np.random.default_rng(23).normal(0.0005, 0.012, DAYS)
VALUE = closes_from(RETURNS)  # closes of days 0..DAYS


def ex_date(k: int) -> date:
    return day(k).date()


def state(stock: Instrument, kind: str, ex: date, **terms) -> None:
    """An action as the loaders state it (the owner's marketdata_action_set)."""
    fields = ("ratio", "amount", "currency", "pay_date", "new_instrument", "cost_fraction",
              "final_price")  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [stock.id, kind, ex, *(terms.get(f) for f in fields)],
        )


def with_ranges(stock: Instrument, closes: np.ndarray) -> None:
    daily_bars(stock, closes, highs=closes * 1.01, lows=closes * 0.99)


@pytest.fixture
def plain(db) -> Instrument:
    """The business's shares without any action."""
    stock = instrument("PLAIN")
    with_ranges(stock, VALUE)
    return stock


@pytest.fixture
def split(db) -> Instrument:
    """The same business split 2:1 on day 20: as traded, every price from then on is half."""
    stock = instrument("SPLT")
    with_ranges(stock, VALUE / np.where(np.arange(DAYS + 1) >= SPLIT_DAY, 2.0, 1.0))
    state(stock, "split", ex_date(SPLIT_DAY), ratio=2)
    return stock


@pytest.fixture
def dividend(db) -> Instrument:
    """The business's prices with a cash dividend going ex on day 12."""
    stock = instrument("DIVI")
    with_ranges(stock, VALUE)
    ex = ex_date(DIVIDEND_DAY)
    state(stock, "cash_dividend", ex, amount=DIVIDEND, currency="USD", pay_date=ex)
    return stock


def returns_of(stock: Instrument, **read) -> np.ndarray:
    return var.daily_returns(np.array([stock.id]), AS_OF, LOOKBACK, **read)[:, 0]


def book(name: str, stock: Instrument, quantity: int) -> Account:
    account = Account.objects.create(name=name, base_currency="USD")
    hold(account, stock, quantity, "50")
    return account


def sql_var(account: Account, *adjustment: str) -> list[tuple]:
    arguments = ", %s" * len(adjustment)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT method, observations, portfolio_value, var, cvar"
            f" FROM calculate_var(%s, 0.8, %s, %s, NULL{arguments}) ORDER BY method",
            [account.id, LOOKBACK, AS_OF, *adjustment],
        )
        return cursor.fetchall()


def fetch(sql: str, params: list) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def sql_in_savepoint(read, *args):
    """``read(*args)`` in a savepoint: an error it raises leaves the test's transaction usable."""
    with transaction.atomic():
        return read(*args)


def estimates(stock: Instrument) -> dict[tuple[str, datetime], float]:
    rows = VolatilityEstimate.objects.filter(instrument=stock, timeframe="1d")
    return {(e, ts): v for e, ts, v in rows.values_list("estimator", "ts", "value")}


def test_a_split_is_a_fall_of_half_as_traded_and_the_day_s_move_adjusted(split, plain):
    raw = returns_of(split, adjustment="raw")
    at = SPLIT_DAY - 1  # returns start at day 1
    assert raw[at] == pytest.approx((1 + RETURNS[at]) / 2 - 1)
    adjusted = returns_of(split)  # total_return, the default
    # Across the ex-date: the as-traded return with the split undone, 2 c_20 / c_19 - 1.
    assert adjusted[at] == pytest.approx(2 * (VALUE[SPLIT_DAY] / 2) / VALUE[at] - 1, rel=1e-12)
    assert np.abs(adjusted).max() < 0.1
    np.testing.assert_allclose(adjusted, returns_of(plain), rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(returns_of(split, adjustment="split"), adjusted, rtol=1e-12)
    # The days before and after the ex-date move as traded.
    away = np.arange(len(raw)) != at
    np.testing.assert_allclose(adjusted[away], raw[away], rtol=1e-9, atol=1e-15)


def test_the_var_of_a_split_book_is_that_of_the_same_value_unsplit(split, plain):
    """200 shares after a 2:1 split are worth 100 unsplit shares: the VaR (Python and SQL) is
    the same; read as traded, the split's day is a loss of half the book."""
    split_book, plain_book = book("split-book", split, 200), book("plain-book", plain, 100)
    methods = ("historical", "parametric", "monte_carlo")
    adjusted = var.value_at_risk(split_book.id, methods=methods, confidence=0.8,
                                 lookback=LOOKBACK, as_of=AS_OF)  # fmt: skip
    unsplit = var.value_at_risk(plain_book.id, methods=methods, confidence=0.8,
                                lookback=LOOKBACK, as_of=AS_OF)  # fmt: skip
    for a, b in zip(adjusted, unsplit, strict=True):
        assert a.portfolio_value == pytest.approx(b.portfolio_value, rel=1e-12)
        assert a.observations == b.observations == LOOKBACK
        assert (a.var, a.cvar) == pytest.approx((b.var, b.cvar), rel=1e-7)
    (raw,) = var.value_at_risk(split_book.id, confidence=0.8, lookback=LOOKBACK, as_of=AS_OF,
                               adjustment="raw")  # fmt: skip
    assert raw.cvar > 0.05 * raw.portfolio_value > adjusted[0].cvar
    # SQL: the default is Python's, 'raw' the as-traded one.
    sql = sql_var(split_book)
    assert sql == sql_var(split_book, "total_return")
    flat = [value for row in sql for value in row[3:]]
    assert flat == pytest.approx(
        [value for row in sql_var(plain_book) for value in row[3:]], rel=1e-7
    )
    assert sql[0][3:] == pytest.approx((adjusted[0].var, adjusted[0].cvar), rel=1e-9)
    assert sql_var(split_book, "raw")[0][4] == pytest.approx(raw.cvar, rel=1e-9)


def test_holdings_follow_a_split_the_books_applied(split, plain):
    """100 shares bought before the split are 200 from its ex-date on once the books applied
    it (``trading.books.apply_actions``): worth 100 unsplit shares, with the unsplit book's VaR."""
    held, unsplit = book("held-book", split, 100), book("plain-book", plain, 100)
    with acting_as("apply_actions"):
        books.apply_actions(ex_date(DAYS))
    before = var.holdings(held.id, day(SPLIT_DAY - 1))
    after = var.holdings(held.id, AS_OF)
    assert before.total == pytest.approx(100 * VALUE[SPLIT_DAY - 1], rel=1e-12)
    assert after.total == pytest.approx(100 * VALUE[DAYS], rel=1e-12)
    read = {"confidence": 0.8, "lookback": LOOKBACK, "as_of": AS_OF}
    ((found,), (expected,)) = (var.value_at_risk(a.id, **read) for a in (held, unsplit))
    assert (found.var, found.cvar) == pytest.approx((expected.var, expected.cvar), rel=1e-7)
    assert sql_var(held)[0][2:] == pytest.approx(sql_var(unsplit)[0][2:], rel=1e-7)


def test_the_app_role_reads_adjusted_returns_in_sql(split, plain, db_role):
    """trading_app, under row-level security, reads the actions inside calculate_var: the
    same numbers as the owner."""
    split_book = book("split-book", split, 200)
    owner = sql_var(split_book), sql_var(split_book, "raw")
    with db_role("trading_app"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('qvp.actor', 'system:test', true)")
        assert (sql_var(split_book), sql_var(split_book, "raw")) == owner
    assert owner[0] != owner[1]


def test_volatility_estimates_do_not_see_the_split(split, plain):
    ids = [split.id, plain.id]
    compute_volatility(AS_OF, instruments=ids, window=10, history=25, adjustment="raw")
    raw = estimates(split)
    compute_volatility(AS_OF, instruments=ids, window=10, history=25)
    adjusted, unsplit = estimates(split), estimates(plain)
    assert adjusted.keys() == unsplit.keys() == raw.keys()
    for key, value in adjusted.items():
        assert value == pytest.approx(unsplit[key], rel=1e-7), key
    spanning = ("close_to_close", day(SPLIT_DAY + 3))
    assert raw[spanning] > 5 * adjusted[spanning]


def test_a_cash_dividend_changes_total_return_returns_on_its_ex_date_only(dividend):
    raw = returns_of(dividend, adjustment="raw")
    at = DIVIDEND_DAY - 1
    total = returns_of(dividend)
    # The holder's return across the ex-date: the price, and the dividend on the close before.
    before, on = VALUE[DIVIDEND_DAY - 1], VALUE[DIVIDEND_DAY]
    assert total[at] == pytest.approx(on / (before - DIVIDEND) - 1, rel=1e-12)
    assert total[at] > raw[at]
    away = np.arange(len(raw)) != at
    np.testing.assert_allclose(total[away], raw[away], rtol=1e-12, atol=1e-15)
    # Splits alone: a dividend adjusts nothing.
    assert np.array_equal(returns_of(dividend, adjustment="split"), raw)


def test_without_actions_every_number_is_the_same_to_the_last_digit(plain):
    assert np.array_equal(returns_of(plain), returns_of(plain, adjustment="raw"))
    account = book("plain-book", plain, 100)
    methods = ("historical", "parametric", "monte_carlo")
    read = {"confidence": 0.8, "lookback": LOOKBACK, "as_of": AS_OF, "methods": methods}
    assert var.value_at_risk(account.id, **read) == var.value_at_risk(
        account.id, **read, adjustment="raw"
    )
    assert sql_var(account) == sql_var(account, "raw")
    compute_volatility(AS_OF, window=10, history=25, adjustment="raw")
    raw = estimates(plain)
    compute_volatility(AS_OF, window=10, history=25)
    assert estimates(plain) == raw


def test_an_action_learnt_later_does_not_adjust_a_read_as_known_before(plain):
    stock = instrument("LATE")
    with_ranges(stock, VALUE / np.where(np.arange(DAYS + 1) >= SPLIT_DAY, 2.0, 1.0))
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        (now,) = cursor.fetchone()
        learnt = now + timedelta(hours=2)
        cursor.execute(
            "INSERT INTO marketdata_corporateaction (instrument_id, kind, ex_date, ratio,"
            " currency, known_from) VALUES (%s, 'split', %s, 2, '', %s)",
            [stock.id, ex_date(SPLIT_DAY), learnt],
        )
    before = returns_of(stock, known_at=now + timedelta(hours=1))
    after = returns_of(stock, known_at=now + timedelta(hours=3))
    assert before[SPLIT_DAY - 1] < -0.4
    np.testing.assert_allclose(after, returns_of(plain), rtol=1e-9, atol=1e-15)


def test_a_risk_run_reads_adjusted_returns(split, plain):
    """compute_risk's VaR of the split book is the unsplit book's by default; as traded it is
    not. The command takes --adjustment."""
    split_book, plain_book = book("split-book", split, 200), book("plain-book", plain, 100)
    options = RunOptions(confidence=0.8, lookback=LOOKBACK, volatility_window=10)

    def cvar(account: Account) -> float:
        found = RiskMetric.objects.get(account=account, metric=Metric.CVAR_HISTORICAL, ts=AS_OF)
        return found.value

    compute_risk(AS_OF, [split_book.id, plain_book.id], options, adjustment="raw")
    raw = cvar(split_book)
    compute_risk(AS_OF, [split_book.id, plain_book.id], options)
    assert cvar(split_book) == pytest.approx(cvar(plain_book), rel=1e-7)
    assert raw > 2.5 * cvar(split_book)
    out = StringIO()
    call_command("compute_risk", "--as-of", AS_OF.isoformat(), "--account", "split-book",
                 "--lookback", str(LOOKBACK), "--confidence", "0.8", "--adjustment", "raw",
                 stdout=out)  # fmt: skip
    assert cvar(split_book) == pytest.approx(raw, rel=1e-12)


def test_a_run_as_traded_repeats_as_traded(split, plain):
    """A run records the adjustment it read, and its repeat reads the same: every number
    identical, where reading total_return would differ by the split."""
    split_book = book("split-book", split, 200)
    options = RunOptions(confidence=0.8, lookback=LOOKBACK, volatility_window=10)
    report = compute_risk(AS_OF, [split_book.id], options, adjustment="raw")
    run = RiskRun.objects.get(pk=report.run_id)
    assert run.adjustment == "raw"
    repeated = repeat_run(run.id)
    assert repeated.compared > 0
    assert repeated.identical, repeated.differences
    assert RiskRun.objects.get(pk=repeated.run_id).adjustment == "raw"


def test_an_unknown_adjustment_is_refused_by_name_before_anything_is_written(split):
    account = book("split-book", split, 200)
    with pytest.raises(ValueError, match="adjustment must be one of raw, split, total_return"):
        var.value_at_risk(account.id, as_of=AS_OF, adjustment="adjusted")
    with pytest.raises(ValueError, match="adjustment"):
        compute_volatility(AS_OF, adjustment="Total_Return")
    runs = RiskRun.objects.count()
    with pytest.raises(ValueError, match="adjustment"):
        compute_risk(AS_OF, [account.id], adjustment="")
    assert RiskRun.objects.count() == runs
    assert not VolatilityEstimate.objects.exists()
    with pytest.raises(DataError, match=r"adjustment must be one of .* not 'bogus'"):
        sql_in_savepoint(sql_var, account, "bogus")
    returns_sql = "SELECT * FROM risk_daily_returns(ARRAY[%s]::bigint[], %s, 5, NULL, NULL)"
    with pytest.raises(DataError, match="adjustment"):
        sql_in_savepoint(fetch, returns_sql, [split.id, AS_OF])
    with pytest.raises(CommandError, match="--adjustment"):
        call_command("compute_risk", "--adjustment", "adjusted", stdout=StringIO())
    with pytest.raises(CommandError, match="--adjustment"):
        call_command("compute_risk", "--repeat", "1", "--adjustment", "raw", stdout=StringIO())
