"""Stored volatility estimates equal the estimators' output; factor loadings from the data."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from marketdata.models import MinuteBar
from risk.estimators import ESTIMATORS, OHLC, PERIODS_PER_YEAR
from risk.factors import exposures, loadings
from risk.models import VolatilityEstimate
from risk.volatility import compute_volatility
from tests.risk.conftest import START, closes_from, daily_bars, day, instrument


def test_stored_estimates_are_the_estimators_series(db):
    rng = np.random.default_rng(2)
    stock = instrument("VOLA")
    closes = closes_from(rng.normal(0, 0.02, 40))
    highs, lows = (
        closes * np.exp(rng.uniform(0, 0.02, 41)),
        closes * np.exp(-rng.uniform(0, 0.02, 41)),
    )
    daily_bars(stock, closes, highs=highs, lows=lows)
    written = compute_volatility(day(40), window=10, history=5)
    assert written == 6 * 5
    bars = OHLC(open=closes, high=highs, low=lows, close=closes)
    for name, fn in ESTIMATORS.items():
        expected = fn(bars, 10, PERIODS_PER_YEAR["1d"])[-5:]
        stored = VolatilityEstimate.objects.filter(estimator=name, timeframe="1d").order_by("ts")
        assert list(stored.values_list("ts", flat=True)) == [day(k) for k in range(36, 41)]
        assert np.allclose(list(stored.values_list("value", flat=True)), expected, rtol=1e-12)


def test_minute_estimates_use_the_minute_factor(db):
    stock = instrument("MINU")
    closes = closes_from(np.tile([0.001, -0.001], 15))
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=stock, ts=START + timedelta(minutes=k), open=c, high=c, low=c, close=c)
        for k, c in enumerate(closes)
    )
    compute_volatility(START + timedelta(hours=1), timeframe="1m", window=10)
    stored = VolatilityEstimate.objects.get(estimator="close_to_close")
    returns = np.log(closes[1:] / closes[:-1])[-10:]
    assert stored.value == pytest.approx(np.std(returns, ddof=1) * np.sqrt(252 * 390))


def test_bad_arguments(db):
    with pytest.raises(ValueError, match="timeframe"):
        compute_volatility(day(1), timeframe="5m")


def test_factor_loadings(db):
    rng = np.random.default_rng(9)
    market = rng.normal(0, 0.01, 60)
    spec = {  # symbol: beta, drift, idiosyncratic sd, volume
        "MKT": (1.0, 0.0, 0.0, 1e7),
        "HIGH": (2.0, 0.004, 0.02, 1e6),
        "LOW": (0.5, -0.004, 0.002, 1e8),
    }
    ids, simple = {}, {}
    for symbol, (beta, drift, sd, volume) in spec.items():
        made = instrument(symbol)
        ids[symbol] = made.pk
        returns = beta * market + drift + rng.normal(0, sd, 60) * (sd > 0)
        closes = closes_from(returns)
        simple[symbol] = closes[1:] / closes[:-1] - 1
        daily_bars(made, closes, volumes=np.full(61, volume))
    table = loadings(day(60), ids["MKT"], lookback=60)
    assert table.loc[ids["MKT"], "market"] == pytest.approx(1.0)
    for symbol in ("HIGH", "LOW"):  # the regression slope on the benchmark's returns
        slope = np.polyfit(simple["MKT"], simple[symbol], 1)[0]
        assert table.loc[ids[symbol], "market"] == pytest.approx(slope)
    for style in ("size", "momentum", "volatility"):
        assert table[style].sum() == pytest.approx(0.0, abs=1e-9)
    assert table["momentum"].idxmax() == ids["HIGH"]
    assert table["volatility"].idxmax() == ids["HIGH"]
    assert table["size"].idxmax() == ids["LOW"]  # most traded value
    held = pd.Series({ids["HIGH"]: 600.0, ids["LOW"]: -200.0})
    result = exposures(held, 1000.0, table)
    expected = 0.6 * table.loc[ids["HIGH"], "market"] - 0.2 * table.loc[ids["LOW"], "market"]
    assert result["market"] == pytest.approx(expected)
    assert exposures(pd.Series(dtype=float), 1000.0, table) == {}
