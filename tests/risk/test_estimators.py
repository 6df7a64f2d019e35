"""Volatility estimators: hand-computed values on a tiny series, and agreement with the
textbook formulas written out bar by bar on a longer random series."""

import math

import numpy as np
import pytest

from risk.estimators import (
    ESTIMATORS,
    OHLC,
    PERIODS_PER_YEAR,
    close_to_close,
    ewma,
    garman_klass,
    parkinson,
    rogers_satchell,
    yang_zhang,
)

LN2 = math.log(2.0)
GK_C = 2 * LN2 - 1


def tiny() -> OHLC:
    """Four bars built from log prices so every log ratio below is a round number."""
    logs = np.array(
        [
            # open, high, low, close (natural log of price / 100)
            [0.00, 0.02, -0.01, 0.01],
            [0.02, 0.05, 0.01, 0.03],
            [0.02, 0.04, 0.00, 0.01],
            [0.03, 0.06, 0.02, 0.05],
        ]
    )
    p = 100 * np.exp(logs)
    return OHLC(open=p[:, 0], high=p[:, 1], low=p[:, 2], close=p[:, 3])


def test_close_to_close_by_hand():
    # returns 0.02, -0.02, 0.04; window 2 at bar 2: mean 0, sample var 0.0008
    # at bar 3: returns -0.02, 0.04 -> mean 0.01, var (0.0009 + 0.0009) / 1
    vol = close_to_close(tiny(), 2, 252)
    assert np.isnan(vol[:2]).all()
    assert vol[2] == pytest.approx(math.sqrt(0.0008 * 252))
    assert vol[3] == pytest.approx(math.sqrt(0.0018 * 252))


def test_parkinson_by_hand():
    # ln(H/L) per bar: 0.03, 0.04, 0.04, 0.04
    vol = parkinson(tiny(), 2, 252)
    assert np.isnan(vol[0])
    assert vol[1] == pytest.approx(math.sqrt((0.0009 + 0.0016) / 2 / (4 * LN2) * 252))
    assert vol[2] == pytest.approx(math.sqrt(0.0016 / (4 * LN2) * 252))


def test_garman_klass_by_hand():
    # bars 1 and 2: ln(H/L) = 0.04, ln(C/O) = +-0.01
    vol = garman_klass(tiny(), 2, 252)
    assert np.isnan(vol[0])
    assert vol[2] == pytest.approx(math.sqrt((0.5 * 0.0016 - GK_C * 0.0001) * 252))


def test_rogers_satchell_by_hand():
    # bar 0: 0.01*0.02 + (-0.02)(-0.01) = 0.0004; bar 1: 0.02*0.03 + (-0.02)(-0.01) = 0.0008
    vol = rogers_satchell(tiny(), 2, 252)
    assert np.isnan(vol[0])
    assert vol[1] == pytest.approx(math.sqrt(0.0006 * 252))
    assert vol[2] == pytest.approx(math.sqrt(0.0008 * 252))


def test_yang_zhang_by_hand():
    # bars 1-2: overnight 0.01, -0.01 (sample var 0.0002); open-close 0.01, -0.01 (0.0002);
    # Rogers-Satchell 0.0008 each; k = 0.34 / (1.34 + 3 / 1)
    k = 0.34 / (1.34 + 3.0)
    vol = yang_zhang(tiny(), 2, 252)
    assert np.isnan(vol[:2]).all()
    assert vol[2] == pytest.approx(math.sqrt((0.0002 + k * 0.0002 + (1 - k) * 0.0008) * 252))


def test_ewma_by_hand():
    # returns 0.02, -0.02, 0.04; window 1 seeds 0.0004 at bar 1, then lam = 0.9:
    # bar 2: 0.9*0.0004 + 0.1*0.0004 = 0.0004; bar 3: 0.9*0.0004 + 0.1*0.0016 = 0.00052
    vol = ewma(tiny(), 1, 252, lam=0.9)
    assert np.isnan(vol[0])
    assert vol[1:] == pytest.approx(np.sqrt(np.array([0.0004, 0.0004, 0.00052]) * 252))


def random_bars(n: int = 60, seed: int = 7) -> OHLC:
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.r_[100.0, close[:-1]] * np.exp(rng.normal(0, 0.003, n))
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0, 0.004, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0, 0.004, n)))
    return OHLC(open=open_, high=high, low=low, close=close)


def sample_var(xs: list[float]) -> float:
    m = sum(xs) / len(xs)
    return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)


def textbook(name: str, b: OHLC, t: int, n: int, lam: float = 0.94) -> float:
    """Per-bar variance at bar t over n observations, straight from the papers."""
    o, h, lo, c = (list(map(float, a)) for a in (b.open, b.high, b.low, b.close))
    ln = math.log
    bars = range(t - n + 1, t + 1)
    rs = [ln(h[i] / c[i]) * ln(h[i] / o[i]) + ln(lo[i] / c[i]) * ln(lo[i] / o[i]) for i in bars]
    if name == "close_to_close":
        return sample_var([ln(c[i] / c[i - 1]) for i in bars])
    if name == "parkinson":
        return sum(ln(h[i] / lo[i]) ** 2 for i in bars) / (4 * n * LN2)
    if name == "garman_klass":
        return sum(0.5 * ln(h[i] / lo[i]) ** 2 - GK_C * ln(c[i] / o[i]) ** 2 for i in bars) / n
    if name == "rogers_satchell":
        return sum(rs) / n
    if name == "yang_zhang":
        k = 0.34 / (1.34 + (n + 1) / (n - 1))
        overnight = sample_var([ln(o[i] / c[i - 1]) for i in bars])
        open_close = sample_var([ln(c[i] / o[i]) for i in bars])
        return overnight + k * open_close + (1 - k) * sum(rs) / n
    if name == "ewma":
        var = sum(ln(c[i] / c[i - 1]) ** 2 for i in range(1, n + 1)) / n
        for i in range(n + 1, t + 1):
            var = lam * var + (1 - lam) * ln(c[i] / c[i - 1]) ** 2
        return var
    raise AssertionError(name)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_agrees_with_textbook_formula(name):
    bars, window, ppy = random_bars(), 10, PERIODS_PER_YEAR["1d"]
    vol = ESTIMATORS[name](bars, window, ppy)
    assert len(vol) == len(bars)
    first = window - 1 if name in {"parkinson", "garman_klass", "rogers_satchell"} else window
    assert np.isnan(vol[:first]).all()
    assert not np.isnan(vol[first:]).any()
    for t in (first, first + 1, len(bars) - 1):
        assert vol[t] == pytest.approx(math.sqrt(textbook(name, bars, t, window) * ppy), rel=1e-9)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_annualised_with_the_frequency_factor(name):
    bars = random_bars()
    daily = ESTIMATORS[name](bars, 10, PERIODS_PER_YEAR["1d"])
    minute = ESTIMATORS[name](bars, 10, PERIODS_PER_YEAR["1m"])
    assert minute[20] == pytest.approx(daily[20] * math.sqrt(390))


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_short_series_is_all_nan(name):
    bars = random_bars(n=5)
    assert np.isnan(ESTIMATORS[name](bars, 10, 252)).all()


def test_constant_prices_have_zero_volatility():
    p = np.full(30, 50.0)
    bars = OHLC(open=p, high=p, low=p, close=p)
    for fn in ESTIMATORS.values():
        assert np.nanmax(fn(bars, 5, 252)) == 0.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 1}, "window must be an integer of at least 2"),
        ({"window": 2.5}, "window must be an integer"),
        ({"periods_per_year": 0}, "periods_per_year must be positive"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"window": 5, "periods_per_year": 252, **kwargs}
    with pytest.raises(ValueError, match=message):
        close_to_close(random_bars(), **args)


def test_bad_bars_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        OHLC(open=[1.0, 2.0], high=[2.0], low=[1.0], close=[1.0])
    with pytest.raises(ValueError, match="low is above high"):
        OHLC(open=[1.0], high=[1.0], low=[2.0], close=[1.0])
    with pytest.raises(ValueError, match="positive"):
        OHLC(open=[0.0], high=[1.0], low=[0.0], close=[1.0])
    with pytest.raises(ValueError, match="lam"):
        ewma(random_bars(), 5, 252, lam=1.0)


@pytest.mark.parametrize("name", ["close_to_close", "parkinson", "yang_zhang"])
def test_a_missing_bar_blanks_only_the_windows_holding_it(name):
    bars = random_bars()
    columns = [a.copy() for a in (bars.open, bars.high, bars.low, bars.close)]
    for column in columns:
        column[30] = np.nan
    holed = OHLC(*columns)
    vol, clean = ESTIMATORS[name](holed, 10, 252), ESTIMATORS[name](bars, 10, 252)
    assert np.isnan(vol[30:40]).any()
    assert vol[45:] == pytest.approx(clean[45:], rel=1e-9)
    assert vol[15:29] == pytest.approx(clean[15:29], rel=1e-9)
