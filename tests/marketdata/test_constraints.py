"""The database refuses what is not a bar, a tick or a quote, through the ORM and raw SQL."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, NotSupportedError, connection, transaction

from marketdata.models import Instrument, MinuteBar, OptionQuote, Tick
from qvp_site.db import engine
from tests.marketdata.conftest import START

GOOD_BAR = {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100.0}


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"open": 0.0, "low": 0.0}, "minutebar_prices_positive"),
        ({"low": -1.0}, "minutebar_prices_positive"),
        ({"high": 10.2}, "minutebar_high_is_highest"),  # below the close
        ({"high": 8.0, "low": 7.0}, "minutebar_high_is_highest"),
        ({"low": 10.4}, "minutebar_low_is_lowest"),  # above the open
        ({"volume": -5.0}, "minutebar_volume_not_negative"),
        ({"vwap": 0.0}, "minutebar_vwap_positive"),
        ({"trade_count": -1}, "minutebar_trade_count_not_negative"),
        # NaN passes "> 0" in PostgreSQL (it sorts above every number): refused as not finite.
        ({k: float("nan") for k in ("open", "high", "low", "close")}, "minutebar_values_finite"),
        ({"volume": float("inf")}, "minutebar_values_finite"),
    ],
)
def test_a_bar_that_is_not_a_bar_is_refused(instrument, partitioned_for, change, rule):
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        MinuteBar.objects.create(instrument=instrument, ts=START, **{**GOOD_BAR, **change})
    columns = {**GOOD_BAR, **change, "instrument_id": instrument.id, "ts": START}
    names = ", ".join(columns)
    placeholders = ", ".join(["%s"] * len(columns))
    with (
        pytest.raises(IntegrityError, match=rule),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            f"INSERT INTO marketdata_minutebar ({names}) VALUES ({placeholders})",
            list(columns.values()),
        )


def test_a_good_bar_is_kept_and_a_second_one_at_the_same_time_is_refused(
    instrument, partitioned_for
):
    MinuteBar.objects.create(instrument=instrument, ts=START, **GOOD_BAR)
    MinuteBar.objects.create(
        instrument=instrument, ts=START, **{**GOOD_BAR, "volume": None}
    ) if False else None
    with pytest.raises(IntegrityError, match=r"Key \(instrument_id, ts\)"), transaction.atomic():
        MinuteBar.objects.create(instrument=instrument, ts=START, **GOOD_BAR)
    assert MinuteBar.objects.count() == 1


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"price": -1.0, "size": 1.0}, "tick_price_positive"),
        ({"price": 10.0, "size": -1.0}, "tick_size_not_negative"),
        ({"kind": "trade", "price": None, "size": 1.0}, "tick_trade_has_price_and_size"),
        ({"kind": "quote", "bid": 10.1, "ask": 10.0}, "tick_bid_not_above_ask"),
        ({"kind": "quote", "bid": 0.0, "ask": 10.0}, "tick_quote_prices_positive"),
        (
            {"kind": "quote", "bid": 9.0, "ask": 10.0, "bid_size": -1.0},
            "tick_quote_sizes_not_negative",
        ),
        ({"kind": "bbo", "price": 1.0, "size": 1.0}, "tick_kind_known"),
        ({"price": float("nan"), "size": 1.0}, "tick_values_finite"),
        ({"price": 1.0, "size": 1.0, "side": "hold"}, "tick_side_known"),
    ],
)
def test_a_tick_that_is_not_a_tick_is_refused(instrument, partitioned_for, fields, rule):
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        Tick.objects.create(instrument=instrument, ts=START, sequence=1, **fields)


def test_ticks_sharing_a_timestamp_are_kept_apart_by_sequence(instrument, partitioned_for):
    for sequence, price in enumerate([3068.0, 3069.0]):
        Tick.objects.create(instrument=instrument, ts=START, sequence=sequence, price=price, size=1)
    assert list(Tick.objects.values_list("price", flat=True)) == [3068.0, 3069.0]


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"right": "X"}, "optionquote_right_c_or_p"),
        ({"strike": 0.0}, "optionquote_strike_positive"),
        ({"bid": 2.0, "ask": 1.5}, "optionquote_bid_not_above_ask"),
        ({"bid": -0.1}, "optionquote_prices_not_negative"),
        ({"iv": -0.2}, "optionquote_iv_not_negative"),
        ({"delta": 1.2}, "optionquote_delta_within_1"),
        ({"gamma": -0.01}, "optionquote_gamma_not_negative"),
        ({"vega": float("nan")}, "optionquote_values_finite"),
    ],
)
def test_an_option_quote_that_is_not_one_is_refused(instrument, partitioned_for, fields, rule):
    quote = {"strike": 180.0, "right": "C", "expiry": "2024-06-21", **fields}
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        OptionQuote.objects.create(underlying=instrument, ts=START, **quote)


@pytest.mark.parametrize(
    ("fields", "rule"),
    [
        ({"asset_class": "bond"}, "instrument_asset_class_known"),
        ({"currency": "usd"}, "instrument_currency_code"),
        ({"tick_size": 0}, "instrument_tick_size_positive"),
        ({"multiplier": 0}, "instrument_multiplier_positive"),
        ({"symbol": ""}, "instrument_symbol_not_empty"),
    ],
)
def test_an_instrument_is_checked_too(db, fields, rule):
    with pytest.raises(IntegrityError, match=rule), transaction.atomic():
        Instrument.objects.create(**{"symbol": "X", "asset_class": "equity", **fields})


def test_deleting_an_instrument_with_bars_is_refused(instrument, partitioned_for):
    from django.db.models import ProtectedError

    MinuteBar.objects.create(instrument=instrument, ts=START, **GOOD_BAR)
    with pytest.raises(ProtectedError):
        instrument.delete()
    rule = "marketdata_minutebar_instrument_id_fkey"
    with connection.cursor() as cursor:
        with pytest.raises(IntegrityError, match=rule), transaction.atomic():
            cursor.execute("DELETE FROM marketdata_instrument WHERE id = %s", [instrument.id])
        with pytest.raises(IntegrityError, match=rule), transaction.atomic():
            cursor.execute(
                "UPDATE marketdata_instrument SET id = -1 WHERE id = %s", [instrument.id]
            )
        cursor.execute(
            "UPDATE marketdata_instrument SET active = false WHERE id = %s", [instrument.id]
        )
    MinuteBar.objects.all().delete()
    # Without bars, its history in the security master still refers to it: an instrument
    # keeps its id for life (it is delisted instead).
    with pytest.raises(ProtectedError, match="Listing"):
        instrument.delete()


def test_a_bar_of_an_unknown_instrument_is_refused(instrument, partitioned_for):
    rule = "marketdata_minutebar_instrument_id_fkey"
    bar = {**GOOD_BAR, "ts": START}
    refused = rf"(?s){rule}.*Key \(instrument_id\)=\(-7\)"
    with pytest.raises(IntegrityError, match=refused), transaction.atomic():
        MinuteBar.objects.bulk_create(
            [MinuteBar(instrument=instrument, **bar), MinuteBar(instrument_id=-7, **bar)]
        )
    MinuteBar.objects.create(instrument=instrument, **bar)
    moved = pytest.raises(IntegrityError, match=rule)
    if engine.is_citus():  # Citus refuses any change of a row's distribution column first
        moved = pytest.raises(NotSupportedError, match="modifying the partition value")
    with moved, transaction.atomic():
        MinuteBar.objects.update(instrument_id=-7)
    assert MinuteBar.objects.get().instrument_id == instrument.id
