"""The feature pipeline on known inputs; the same bars give the same vector."""

from __future__ import annotations

import numpy as np
import pytest

from vectors import features
from vectors.features import FEATURE_NAMES, WINDOW, Scaler, Windows

N = WINDOW + 1


def column(name: str) -> int:
    return FEATURE_NAMES.index(name)


def steady_climb(step: float = 0.001) -> Windows:
    """Closes rising by exactly ``step`` in log every bar, opens at the previous close, a
    fixed range around each bar, constant volume."""
    close = np.exp(np.log(100.0) + step * np.arange(N))[None, :]
    open_ = np.concatenate(([[close[0, 0]]], close[:, :-1]), axis=1)
    return Windows(
        open=open_,
        high=close * 1.001,
        low=open_ * 0.999,
        close=close,
        volume=np.full((1, N), 500.0),
    )


def test_there_are_128_named_features():
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == features.DIMENSIONS == 128


def test_a_steady_climb_has_the_features_it_should():
    raw = features.compute(steady_climb())[0]
    for h in (1, 10, 60, 390):
        assert raw[column(f"ret_{h}")] == pytest.approx(0.001 * h, rel=1e-9)
    assert raw[column("rvol_390")] == pytest.approx(np.log(0.001), rel=1e-6)
    assert raw[column("trend_r2_390")] == pytest.approx(1.0)
    assert raw[column("efficiency_390")] == pytest.approx(1.0)
    assert raw[column("up_share_390")] == 1.0
    assert raw[column("drawdown_390")] == 0.0
    assert raw[column("gap_sum")] == pytest.approx(0.0, abs=1e-12)
    assert raw[column("volume_rel_5")] == pytest.approx(0.0, abs=1e-12)
    for i in range(features.VOLUME_SLICES):
        assert raw[column(f"volume_slice_{i}")] == pytest.approx(0.1)
    assert raw[column("close_location_390")] == pytest.approx(1.0, abs=0.01)
    # Correlations with a constant volume are undefined: unknown, not zero.
    undefined = [column("volume_trend"), column("volume_abs_return_corr")]
    assert np.isnan(raw[undefined]).all()
    assert np.isfinite(np.delete(raw, undefined)).all()


def test_returns_and_gaps_of_a_hand_made_window():
    w = steady_climb(0.0)  # flat at 100
    close = w.close.copy()
    close[0, -1] = 101.0  # the last bar jumps one per cent, opening where it closed before
    raw = features.compute(Windows(w.open, np.maximum(w.high, close), w.low, close, w.volume))[0]
    assert raw[column("ret_1")] == pytest.approx(np.log(1.01))
    assert raw[column("ret_390")] == pytest.approx(np.log(1.01))
    assert raw[column("rvol_390")] == pytest.approx(np.log(np.log(1.01) / np.sqrt(390)))
    assert raw[column("max_abs_return_in_vols")] == pytest.approx(np.sqrt(390))


def test_unknown_volume_is_nan_in_the_raw_features_and_centred_when_scaled():
    w = steady_climb()
    raw = features.compute(Windows(w.open, w.high, w.low, w.close, np.full((1, N), np.nan)))
    volume = [i for i, n in enumerate(FEATURE_NAMES) if n.startswith(("volume", "vwap"))]
    assert np.isnan(raw[0, volume]).all()
    assert np.isfinite(np.delete(raw[0], volume)).all()
    scaler = Scaler(center=np.zeros(128), scale=np.ones(128))
    assert (scaler.transform(raw)[0, volume] == 0).all()


def test_the_same_bars_give_the_same_features_wherever_the_window_sits():
    rng = np.random.default_rng(3)
    n = 3000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    bars = {
        "open": np.r_[100.0, close[:-1]],
        "high": close * 1.0005,
        "low": np.minimum(close, np.r_[100.0, close[:-1]]) * 0.9995,
        "close": close,
        "volume": rng.uniform(100, 200, n),
    }
    bars["high"] = np.maximum(bars["high"], bars["open"])
    ends = np.arange(WINDOW, n, 7)
    everything = features.compute(features.windows_ending_at(bars, ends))
    # The same window alone, and its bars cut out of the history: bit for bit the same.
    alone = features.compute(features.windows_ending_at(bars, ends[100:101]))
    cut = {k: v[ends[100] - WINDOW : ends[100] + 1] for k, v in bars.items()}
    from_cut = features.compute(features.windows_ending_at(cut, [WINDOW]))
    assert np.array_equal(everything[100], alone[0])
    assert np.array_equal(alone, from_cut)
    scaler = Scaler.fit(everything)
    assert np.array_equal(scaler.transform(everything[100:101]), scaler.transform(alone))


def test_a_window_needs_all_its_bars():
    bars = {k: np.ones(500) for k in ("open", "high", "low", "close", "volume")}
    with pytest.raises(ValueError, match="a window needs 391 bars"):
        features.windows_ending_at(bars, [389])
    short = {k: v[:100] for k, v in bars.items()}
    assert features.compute(features.windows_ending_at(short, [])).shape == (0, 128)


def test_robust_scaling_centres_on_the_median_and_clips():
    raw = np.array([[1.0, 5.0], [2.0, 5.0], [3.0, 5.0], [4.0, 5.0], [1000.0, 5.0]])
    scaler = Scaler.fit(raw)
    assert scaler.center.tolist() == [3.0, 5.0]
    assert scaler.scale[0] == pytest.approx(1.4826)
    assert scaler.scale[1] == 1.0  # constant: no spread at all, left as it is
    z = scaler.transform(raw)
    assert z.dtype == np.float32
    assert z[2].tolist() == [0.0, 0.0]
    assert z[4, 0] == features.CLIP
