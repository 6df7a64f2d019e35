"""The feature pipelines read bars adjusted for corporate actions (``vectors.bars.load``, by
default ``total_return``): an instrument that split 2:1 gives the features, embeddings and
regime signatures of the same business unsplit, where its bars as traded (half the price from
the ex-date on) would show a crash in every window spanning the ex-date. Without an action the
bars read are the bars as traded, to the bit."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import numpy as np
import pytest
from django.db import connection

from marketdata import demo
from marketdata.models import Instrument
from qvp_site.db import engine
from tests.vectors.conftest import END
from vectors import bars, embeddings, features, regimes
from vectors.models import FeatureEmbedding

# Every test by both roads of the factors (tests/fixtures/marketdata.py).
pytestmark = pytest.mark.usefixtures("factors_road")

SESSIONS = 70  # regime signatures need 64 days of history: 6 of them
EX_SESSION = 67  # the split's ex-date, among the days with a signature


def halved_from(series: demo.Bars, moment: np.datetime64) -> demo.Bars:
    """``series`` as traded after a 2:1 split at ``moment``: prices half, volumes double."""
    after = series.ts >= moment
    price = np.where(after, 0.5, 1.0)
    return demo.Bars(
        ts=series.ts,
        open=series.open * price,
        high=series.high * price,
        low=series.low * price,
        close=series.close * price,
        volume=series.volume / price,
        vwap=series.vwap * price,
        trade_count=series.trade_count,
    )


@pytest.fixture
def twins(db) -> tuple[Instrument, Instrument, datetime]:
    """SPY's demo bars, and the same business's shares split 2:1 on the ex-date, stated as
    the loaders state it. Returns (unsplit, split, the ex-date's midnight UTC)."""
    spec = demo.DEMO_SYMBOLS["SPY"]
    minute = demo.generate(spec, END, SESSIONS, seed=7)
    days = np.unique(minute.ts.astype("M8[D]"))
    ex = days[EX_SESSION]
    split_minute = halved_from(minute, ex.astype("M8[us]"))
    loaded = []
    for symbol, series in (("SPY", minute), ("SPY.SPLIT", split_minute)):
        daily = demo.daily_from_minutes(series)
        demo.prepare_partitions(connection, series, daily)
        instrument = Instrument.objects.create(symbol=symbol, asset_class="equity")
        demo.load(connection, instrument.id, series, daily)
        loaded.append(instrument)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, 2, NULL, NULL, NULL, NULL, NULL, NULL)",
            [loaded[1].id, ex.astype(date)],
        )
    return loaded[0], loaded[1], datetime.combine(ex.astype(date), datetime.min.time())


def windows_across(series: bars.Series, ex: datetime) -> np.ndarray:
    """The 15-minute window ends whose windows hold bars before and after the ex-date."""
    ends = bars.stride_ends(series, 15, features.WINDOW)
    first_ex = int(np.searchsorted(series.ts, np.datetime64(ex, "us")))
    spanning = ends[(ends >= first_ex) & (ends - features.WINDOW < first_ex)]
    assert len(spanning) >= 20  # a session's windows
    return spanning


def in_split_shares(series: bars.Series) -> bars.Series:
    """The unsplit business's bars counted in the split's shares: prices half, volumes double
    (the features of volume are not all free of its scale: volume_trend reads log1p(v))."""
    columns = series.columns()
    scaled = {k: v / 2 for k, v in columns.items() if k in ("open", "high", "low", "close")}
    return bars.Series(**{**columns, **scaled, "volume": series.volume * 2}, period=series.period)


def raw_features(series: bars.Series, ends: np.ndarray) -> np.ndarray:
    return features.compute(features.windows_ending_at(series.columns(), ends))


def test_features_across_a_split_are_the_unsplit_business_s(twins):
    unsplit, split, ex = twins
    plain = bars.load(unsplit.id)
    adjusted = bars.load(split.id)  # total_return, the default
    np.testing.assert_allclose(adjusted.close, plain.close / 2, rtol=1e-12)
    np.testing.assert_allclose(adjusted.volume, plain.volume * 2, rtol=1e-12)
    ends = windows_across(plain, ex)
    expected = raw_features(in_split_shares(plain), ends)
    np.testing.assert_allclose(raw_features(adjusted, ends), expected, rtol=1e-7, atol=1e-9)
    # As traded, every window across the ex-date returns about -50% over its span.
    as_traded = raw_features(bars.load(split.id, adjustment="raw"), ends)
    ret_390 = features.FEATURE_NAMES.index("ret_390")
    assert np.all(as_traded[:, ret_390] < np.log(0.6))
    assert np.all(np.abs(expected[:, ret_390]) < 0.1)


def test_embedding_builds_store_the_unsplit_features(twins):
    unsplit, split, ex = twins
    since = datetime(ex.year, ex.month, ex.day, tzinfo=UTC)
    embeddings.build([unsplit, split], since=since)
    stored = {
        (instrument_id, ts): raw
        for instrument_id, ts, raw in FeatureEmbedding.objects.values_list(
            "instrument_id", "ts", "raw"
        )
    }
    plain = {ts: raw for (i, ts), raw in stored.items() if i == unsplit.id}
    halved = {ts: np.array(raw) for (i, ts), raw in stored.items() if i == split.id}
    assert plain.keys() == halved.keys()
    assert len(plain) > 20
    # The unsplit business's windows at the same instants, counted in the split's shares.
    series = in_split_shares(bars.load(unsplit.id))
    instants = bars.to_datetimes(series.closes_at())
    ends = np.array([instants.index(ts) for ts in sorted(plain)])
    expected = raw_features(series, ends)
    found = np.array([halved[ts] for ts in sorted(plain)])
    np.testing.assert_allclose(found, expected, rtol=1e-7, atol=1e-9)


def test_regime_signatures_do_not_see_the_split(twins):
    unsplit, split, _ = twins
    expected = regimes.signatures(bars.load(unsplit.id, daily=True), bars.load(unsplit.id))
    found = regimes.signatures(bars.load(split.id, daily=True), bars.load(split.id))
    assert len(found.raw) == len(expected.raw) == SESSIONS - regimes.FIRST_DAY
    np.testing.assert_allclose(found.raw, expected.raw, rtol=1e-7, atol=1e-9)
    as_traded = regimes.signatures(
        bars.load(split.id, daily=True, adjustment="raw"), bars.load(split.id, adjustment="raw")
    )
    close_to_close = regimes.SIGNATURE_NAMES.index("close_to_close_5d")
    after = EX_SESSION - regimes.FIRST_DAY  # the ex-date's signature, and the four after
    assert np.all(as_traded.raw[after:, close_to_close] > expected.raw[after:, close_to_close] + 1)
    created = regimes.build([split], adjustment="split")
    assert created == {"SPY.SPLIT": SESSIONS - regimes.FIRST_DAY}


def test_without_actions_the_bars_are_those_as_traded_to_the_bit(twins):
    unsplit, _, _ = twins
    for daily in (False, True):
        default, raw = bars.load(unsplit.id, daily=daily), bars.load(unsplit.id, daily=daily,
                                                                      adjustment="raw")  # fmt: skip
        for name, column in default.columns().items():
            assert np.array_equal(column, getattr(raw, name), equal_nan=True), name


def test_the_adjusted_read_is_inlined_onto_the_indexes(db, factors_road):
    """By either road no function is left to run per read but the given factors."""
    moment = datetime(2024, 5, 13, tzinfo=UTC)
    for known_at in (None, moment):
        statement, params = bars.query(7, False, moment, 400, known_at, "total_return")
        inlined = '"marketdata_minutebar_adjusted"(%s::text' in statement
        assert inlined == (factors_road == "in the read"), statement
        with connection.cursor() as cursor:
            if engine.is_citus():  # the setting reaches the shards' plans too
                cursor.execute("SET LOCAL citus.propagate_set_commands = 'local'")
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        # The given factors' list (g) and each one's bounds (u): one row per instrument.
        assert not re.search(r"Function Scan on (?!g\b|unnest u\b)", plan), plan
        assert "Seq Scan" not in plan, plan


def test_an_unknown_adjustment_is_refused_by_name(db):
    with pytest.raises(ValueError, match="adjustment must be one of raw, split, total_return"):
        bars.load(1, adjustment="adjusted")
    with pytest.raises(ValueError, match="adjustment"):
        regimes.build([], adjustment="TR")
