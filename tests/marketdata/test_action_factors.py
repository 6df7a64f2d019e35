"""Prices stored as traded, adjusted at read by the corporate actions known then
(marketdata/sql/actions/0012.sql): each kind's factor against a hand computation, the
knowledge time of actions and of the close a dividend's factor divides by, and the queryset
and latest-price reads that carry them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction

from marketdata import prices
from marketdata.models import CorporateAction, DailyBar, Instrument
from marketdata.prices import latest_prices
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db

DAYS = 10
T0 = datetime(2024, 6, 1, tzinfo=UTC)  # when the bars were learnt, after their days
EX = (START + timedelta(days=5)).date()  # an ex-date in the middle of the bars


@pytest.fixture
def aapl(partitioned_for) -> Instrument:
    """Ten daily bars as traded, closes 100, 101, ... 109, learnt at T0."""
    instrument = Instrument.objects.create(symbol="AAPL", asset_class="equity", currency="USD")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_dailybar (instrument_id, ts, open, high, low, close, volume,"
            " known_from)"
            " SELECT %s, %s::timestamptz + d * interval '1 day', 100 + d, 100 + d + 1,"
            " 100 + d - 1, 100 + d, 1000, %s FROM generate_series(0, %s) AS d",
            [instrument.id, START, T0, DAYS - 1],
        )
    return instrument


def state(instrument: Instrument, kind: str, ex: date, *, known_from: datetime | None = None,
          known_until: datetime | None = None, **terms) -> CorporateAction:  # fmt: skip
    """An action as marketdata_action_set states it, or learnt at ``known_from`` (the owner
    writing the history a test needs)."""
    fields = ("ratio", "amount", "currency", "pay_date", "new_instrument_id", "cost_fraction",
              "final_price")  # fmt: skip
    values = [terms.get(f) for f in fields]
    with connection.cursor() as cursor:
        if known_from is None:
            cursor.execute(
                "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [instrument.id, kind, ex, *values],
            )
        else:
            cursor.execute(
                "INSERT INTO marketdata_corporateaction (instrument_id, kind, ex_date, ratio,"
                " amount, currency, pay_date, new_instrument_id, cost_fraction, final_price,"
                " known_from, known_until)"
                " VALUES (%s, %s, %s, %s, %s, coalesce(%s, ''), %s, %s, %s, %s, %s, %s)",
                [instrument.id, kind, ex, *values, known_from, known_until],
            )
    return CorporateAction.objects.filter(instrument=instrument, kind=kind, ex_date=ex).latest("id")


def closes(adjustment: str, known_at: datetime | None = None) -> dict[date, float]:
    bars = DailyBar.objects.for_symbol("AAPL").known_at(known_at).adjusted(adjustment)
    return {bar.ts.date(): bar.close for bar in bars}


def raw_close(day: date) -> float:
    return 100 + (day - START.date()).days


def test_a_split_halves_the_prices_before_its_ex_date_and_doubles_their_volume(aapl) -> None:
    state(aapl, "split", EX, ratio=2)
    bars = {b.ts.date(): b for b in DailyBar.objects.for_symbol("AAPL").adjusted("split")}
    for day, bar in bars.items():
        factor = 0.5 if day < EX else 1
        assert bar.close == pytest.approx(raw_close(day) * factor, rel=1e-12)
        assert bar.high == pytest.approx((raw_close(day) + 1) * factor, rel=1e-12)
        assert bar.volume == pytest.approx(1000 / factor, rel=1e-12)
    assert closes("raw") == {day: raw_close(day) for day in bars}
    assert closes("total_return") == pytest.approx(closes("split"), rel=1e-12)


def test_a_reverse_split_and_a_stock_dividend(aapl) -> None:
    state(aapl, "split", EX, ratio="0.1")
    state(aapl, "stock_dividend", EX + timedelta(days=2), ratio="0.25")
    for day, close in closes("split").items():
        factor = (10 if day < EX else 1) * (1 / 1.25 if day < EX + timedelta(days=2) else 1)
        assert close == pytest.approx(raw_close(day) * factor, rel=1e-12)


def test_a_cash_dividend_adjusts_total_return_by_the_close_before_its_ex_date(aapl) -> None:
    state(aapl, "cash_dividend", EX, amount="2.5", currency="USD", pay_date=EX)
    before = raw_close(EX - timedelta(days=1))
    for day, close in closes("total_return").items():
        factor = 1 - 2.5 / before if day < EX else 1
        assert close == pytest.approx(raw_close(day) * factor, rel=1e-12)
    # Across the ex-date, as Yahoo's and Lean's factors make it: the price against the close
    # before less the dividend.
    adjusted = closes("total_return")
    across = adjusted[EX] / adjusted[EX - timedelta(days=1)]
    assert across == pytest.approx(raw_close(EX) / (before - 2.5), rel=1e-12)
    assert closes("split") == {day: raw_close(day) for day in adjusted}


def test_a_spin_off_moves_its_cost_fraction_out_of_the_total_return_prices(aapl) -> None:
    child = Instrument.objects.create(symbol="SPUN", asset_class="equity", currency="USD")
    state(aapl, "spin_off", EX, ratio="0.5", new_instrument_id=child.id, cost_fraction="0.2")
    for day, close in closes("total_return").items():
        assert close == pytest.approx(raw_close(day) * (0.8 if day < EX else 1), rel=1e-12)
    assert closes("split") == {day: raw_close(day) for day in closes("raw")}


def test_actions_compose_each_dividend_divided_by_the_close_as_traded(aapl) -> None:
    state(aapl, "split", EX, ratio=2)
    dividend_ex = EX + timedelta(days=2)
    state(aapl, "cash_dividend", dividend_ex, amount="1", currency="USD", pay_date=dividend_ex)
    dividend = 1 - 1 / raw_close(dividend_ex - timedelta(days=1))
    for day, close in closes("total_return").items():
        factor = (0.5 if day < EX else 1) * (dividend if day < dividend_ex else 1)
        assert close == pytest.approx(raw_close(day) * factor, rel=1e-12)


def test_a_delisting_adjusts_nothing(aapl) -> None:
    state(aapl, "delisting", EX, final_price="0")
    assert closes("total_return") == closes("raw")


def test_an_action_learnt_later_does_not_adjust_what_was_known_before(aapl) -> None:
    learnt = T0 + timedelta(days=30)
    state(aapl, "split", EX, ratio=2, known_from=learnt)
    assert closes("split", learnt - timedelta(seconds=1)) == closes("raw")
    assert closes("split", learnt)[EX - timedelta(days=1)] == raw_close(EX) / 2 - 0.5


def test_a_restated_action_adjusts_by_its_terms_of_the_moment(aapl) -> None:
    restated = T0 + timedelta(days=60)
    state(aapl, "split", EX, ratio=2, known_from=T0, known_until=restated)
    state(aapl, "split", EX, ratio=4, known_from=restated)
    day = EX - timedelta(days=1)
    assert closes("split", restated - timedelta(seconds=1))[day] == raw_close(day) / 2
    assert closes("split", restated)[day] == raw_close(day) / 4
    assert closes("split")[day] == raw_close(day) / 4


def test_stating_an_action_again_changes_nothing_and_other_terms_restate_it(aapl) -> None:
    def set_split(ratio: int) -> str:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT marketdata_action_set(%s, 'split', %s, %s, NULL, NULL, NULL, NULL, NULL,"
                " NULL)",
                [aapl.id, EX, ratio],
            )
            return cursor.fetchone()[0]

    assert [set_split(2), set_split(2), set_split(3)] == ["inserted", "unchanged", "restated"]
    versions = CorporateAction.objects.filter(instrument=aapl).order_by("id")
    assert [(v.ratio, v.known_until is None) for v in versions] == [(2, False), (3, True)]


def test_a_dividend_divides_by_the_close_known_then(aapl) -> None:
    """A close before the ex-date corrected later: a read as known before the correction
    divides by the close then known, one after by the corrected one."""
    day = EX - timedelta(days=1)
    corrected = T0 + timedelta(days=10)
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_dailybarrevision (row_id, instrument_id, ts, open, high,"
            " low, close, volume, known_from, known_until, change, actor, db_role)"
            " SELECT id, instrument_id, ts, open, high, low, 50, volume, known_from, %s,"
            " 'revised', 'test', current_user"
            " FROM marketdata_dailybar WHERE instrument_id = %s AND ts = %s",
            [corrected, aapl.id, datetime.combine(day, datetime.min.time(), UTC)],
        )
        cursor.execute(
            "UPDATE marketdata_dailybar SET known_from = %s WHERE instrument_id = %s AND ts = %s",
            [corrected, aapl.id, datetime.combine(day, datetime.min.time(), UTC)],
        )
    state(aapl, "cash_dividend", EX, amount="5", currency="USD", pay_date=EX, known_from=T0)
    first_day = START.date()
    before = closes("total_return", corrected - timedelta(seconds=1))
    after = closes("total_return", corrected)
    assert before[first_day] == pytest.approx(100 * (1 - 5 / 50), rel=1e-12)
    assert after[first_day] == pytest.approx(100 * (1 - 5 / raw_close(day)), rel=1e-12)


def test_latest_prices_are_adjusted_by_the_actions_after_them(aapl) -> None:
    state(aapl, "split", EX, ratio=2)
    before_ex = datetime.combine(EX - timedelta(days=1), datetime.min.time(), UTC)
    raw = latest_prices([aapl.id], as_of=before_ex)[aapl.id]
    adjusted = latest_prices([aapl.id], as_of=before_ex, adjustment="split")[aapl.id]
    assert (raw.ts, raw.price) == (before_ex, raw_close(EX - timedelta(days=1)))
    assert (adjusted.ts, adjusted.price) == (before_ex, raw.price / 2)
    today = latest_prices([aapl.id], adjustment="total_return")[aapl.id]
    assert today.price == latest_prices([aapl.id])[aapl.id].price
    learnt_later = latest_prices([aapl.id], before_ex, known_at=T0, adjustment="split")
    assert learnt_later[aapl.id].price == raw.price


def test_reads_adjusted_differently_are_not_combined(aapl) -> None:
    with pytest.raises(TypeError, match="adjusted differently"):
        list(DailyBar.objects.adjusted("split") | DailyBar.objects.all())
    with pytest.raises(ValueError, match="adjustment must be one of raw, split, total_return"):
        DailyBar.objects.adjusted("dividends")


def test_a_bucket_across_an_ex_date_is_made_of_adjusted_bars(aapl) -> None:
    """The week of 2024-05-13 holds five bars before the ex-date (halved) and two after."""
    state(aapl, "split", EX, ratio=2)
    weeks = DailyBar.objects.for_symbol("AAPL").adjusted("split").bucketed("1w")
    week = next(w for w in weeks if w["bucket"] == START)
    assert (week["open"], week["high"], week["low"], week["close"]) == (50, 107, 49.5, 106)
    assert week["volume"] == 5 * 2000 + 2 * 1000


def test_a_dividend_in_another_currency_than_the_instruments_is_refused(aapl) -> None:
    """Whoever states it (the loaders, the API, trading_app in psql): the factor divides the
    dividend by a price in the instrument's currency."""
    with pytest.raises(IntegrityError, match="paid in EUR, but it trades in USD"):
        state(aapl, "cash_dividend", EX, amount="1", currency="EUR", pay_date=EX)


def test_an_action_announced_for_a_later_ex_date_leaves_the_prices_as_traded(aapl) -> None:
    """Back-adjusted to the latest price: a split stated today for an ex-date ahead adjusts
    nothing until that day, so the latest price stays the one traded."""
    state(aapl, "split", date.today() + timedelta(days=30), ratio=2)
    assert closes("split") == closes("raw")
    assert latest_prices([aapl.id], adjustment="split") == latest_prices([aapl.id])


def test_nan_terms_are_refused_and_extra_digits_change_nothing(aapl) -> None:
    with pytest.raises(IntegrityError, match="NaN is not a number it states"), transaction.atomic():
        state(aapl, "split", EX, ratio="NaN")
    state(aapl, "split", EX, ratio="1.33333333333333")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, 1.333333333333333333, NULL, NULL,"
            " NULL, NULL, NULL, NULL)",
            [aapl.id, EX],
        )
        assert cursor.fetchone()[0] == "unchanged"


@pytest.mark.parametrize("adjustment", ["split", "total_return"])
def test_latest_prices_adjusted_apart_are_the_same(aapl, monkeypatch, adjustment) -> None:
    """The road Citus takes (the prices found first, then adjusted in a statement of the
    coordinator's tables) gives the one statement's prices."""
    CorporateAction.objects.create(instrument=aapl, kind="split", ex_date=EX, ratio=2)
    CorporateAction.objects.create(
        instrument=aapl, kind="cash_dividend", ex_date=EX + timedelta(days=2), amount=1,
        currency="USD",
    )  # fmt: skip
    asked = [
        ([aapl.id], START + timedelta(days=3), None),
        ([aapl.id], None, None),
        ([aapl.id], START + timedelta(days=3), T0),
        ([aapl.id, 987654], None, T0),  # one with no bar: absent either way
    ]
    together = [latest_prices(ids, at, known, adjustment) for ids, at, known in asked]
    monkeypatch.setattr(prices, "_adjusted_apart", lambda connection: True)
    apart = [latest_prices(ids, at, known, adjustment) for ids, at, known in asked]
    assert apart == together
    assert (
        together[0][aapl.id].price
        != latest_prices([aapl.id], START + timedelta(days=3))[aapl.id].price
    )  # adjusted indeed
