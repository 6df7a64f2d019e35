"""The feature pipeline: windows of bars -> 128 real features, and their standardisation.

Version 1 (``PIPELINE_VERSION``). A window is the last ``WINDOW`` bars ending at the bar it
describes, plus the close before them (for the first return and gap). Every feature is
computed from that window alone, row by row of a 2-D array of windows, so the same bars give
the same features bit for bit wherever the window sits in the history. Features, in the order
of ``FEATURE_NAMES`` (r = one-bar log returns, h/l/c/o/v = high, low, close, open, volume):

- returns at 16 horizons: ln(c_t / c_{t-h});
- realised volatility at 12 windows: ln sqrt(mean r^2) (per bar, so windows compare);
- range (19): ln of the mean of ln(h/l) at 7 windows, ln of the window's span
  ln(max h / min l) at 6, where the close sits in that span at 4, body to range at 2;
- gaps, ln(o_t / c_{t-1}) (6): mean |gap| at 3 windows, their sum, the largest, their
  share of the squared moves;
- volume profile (23): ln of recent mean volume over the window's at 7 windows, the
  window's volume in 10 equal slices (shares), its trend and coefficient of variation, the
  correlation of volume with |r|, the close against the volume-weighted typical price at 3;
- autocorrelation (19): of r at lags 1-10, of |r| at 5 lags (the standard sample ACF),
  variance ratios of overlapping returns at 4 horizons;
- trend strength (23): t-statistic and R^2 of a straight line through ln c at 6 windows,
  efficiency ratio at 5, the close against its moving average at 6;
- distribution (10): skewness and excess kurtosis at 2 windows, share of up bars at 3, the
  drawdown from the window's high at 2, the largest |r| in units of realised volatility.

Nothing is padded: a window with fewer bars is not a window. Missing volume (a feed without
it) leaves the volume features NaN in the raw features; standardisation puts them at the
centre (z = 0), so they neither help nor hurt a distance.

Standardisation (``Scaler``): robust z-scores, (x - median) / (1.4826 MAD), with the medians
and MADs fitted once per feature set version over the windows of its first build and stored
with it (``FeatureSet``); a MAD of zero falls back to the standard deviation, then to 1.
Scores are clipped to +-``CLIP`` so that one wild feature cannot decide a distance. After
that every feature weighs alike in L2 and cosine distances, which is what makes them mean
something across features measured in returns, ratios and counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

PIPELINE_VERSION = 1
WINDOW = 390  # bars: one US equity session of minute bars
DIMENSIONS = 128
CLIP = 8.0
MAD_TO_SIGMA = 1.4826
# Per-bar volatility below this is a market that did not move; its log would be -inf.
VOL_FLOOR = 1e-7
CHUNK = 2048  # windows per numpy pass: a (2048, 391) float array is 6 MB

RETURN_HORIZONS = (1, 2, 3, 5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 300, 390)
VOL_WINDOWS = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 240, 390)
RANGE_MEAN_WINDOWS = (5, 15, 30, 60, 120, 240, 390)
SPAN_WINDOWS = (15, 30, 60, 120, 240, 390)
LOCATION_WINDOWS = (15, 60, 240, 390)
BODY_WINDOWS = (30, 390)
GAP_WINDOWS = (30, 120, 390)
VOLUME_WINDOWS = (1, 5, 15, 30, 60, 120, 240)
VOLUME_SLICES = 10
VWAP_WINDOWS = (30, 120, 390)
AC_LAGS = tuple(range(1, 11))
ABS_AC_LAGS = (1, 2, 5, 10, 30)
VR_HORIZONS = (2, 5, 10, 30)
TREND_WINDOWS = (15, 30, 60, 120, 240, 390)
EFFICIENCY_WINDOWS = (10, 30, 60, 120, 390)
MA_WINDOWS = (10, 30, 60, 120, 240, 390)
MOMENT_WINDOWS = (60, 390)
UP_WINDOWS = (30, 120, 390)
DRAWDOWN_WINDOWS = (60, 390)


@dataclass(frozen=True)
class Windows:
    """``m`` windows of ``WINDOW + 1`` bars each, as (m, WINDOW + 1) arrays, oldest first."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def windows_ending_at(bars: dict[str, np.ndarray], ends: np.ndarray) -> Windows:
    """The windows ending at bar indexes ``ends`` (each at least ``WINDOW``) of ``bars``,
    a dict of equal-length arrays open/high/low/close/volume. Views, not copies."""
    ends = np.asarray(ends, dtype=np.int64)
    if len(ends) and ends.min() < WINDOW:
        raise ValueError(f"a window needs {WINDOW + 1} bars; the first end is {ends.min()}")
    start = ends - WINDOW
    if not len(ends):  # also where the bars are fewer than a window
        return Windows(*(np.empty((0, WINDOW + 1)) for _ in range(5)))

    def take(name: str) -> np.ndarray:
        view = sliding_window_view(np.asarray(bars[name], dtype=float), WINDOW + 1)
        return view[start]

    return Windows(*(take(name) for name in ("open", "high", "low", "close", "volume")))


# --- The features, group by group ------------------------------------------------------------
def _mean_last(x: np.ndarray, w: int) -> np.ndarray:
    return x[:, -w:].mean(axis=1)


def _log_vol(x: np.ndarray) -> np.ndarray:
    return np.log(np.maximum(x, VOL_FLOOR))


def _corr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation; NaN where either row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, (a * b).sum(axis=1) / denominator, np.nan)


def _returns(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    return [lc[:, -1] - lc[:, -1 - h] for h in RETURN_HORIZONS]


def _volatility(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    return [_log_vol(np.sqrt(_mean_last(r * r, n))) for n in VOL_WINDOWS]


def _range(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    hl = np.log(w.high[:, 1:] / w.low[:, 1:])
    body = np.abs(np.log(w.close[:, 1:] / w.open[:, 1:]))
    out = [_log_vol(_mean_last(hl, n)) for n in RANGE_MEAN_WINDOWS]
    for n in SPAN_WINDOWS:
        out.append(_log_vol(np.log(w.high[:, -n:].max(axis=1) / w.low[:, -n:].min(axis=1))))
    for n in LOCATION_WINDOWS:
        top, bottom = w.high[:, -n:].max(axis=1), w.low[:, -n:].min(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append(np.where(top > bottom, (w.close[:, -1] - bottom) / (top - bottom), 0.5))
    for n in BODY_WINDOWS:
        spread = _mean_last(hl, n)
        out.append(np.where(spread > 0, _mean_last(body, n) / np.maximum(spread, VOL_FLOOR), 0))
    return out


def _gaps(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    gap = np.log(w.open[:, 1:] / w.close[:, :-1])
    out = [_mean_last(np.abs(gap), n) for n in GAP_WINDOWS]
    out.append(gap.sum(axis=1))
    out.append(np.abs(gap).max(axis=1))
    moves = (r * r).sum(axis=1)
    out.append(np.where(moves > 0, (gap * gap).sum(axis=1) / np.maximum(moves, VOL_FLOOR**2), 0))
    return out


def _volume(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    v = w.volume[:, 1:]
    total = v.sum(axis=1)
    mean = total / WINDOW
    with np.errstate(invalid="ignore", divide="ignore"):
        out = [np.log(_mean_last(v, n) / mean) for n in VOLUME_WINDOWS]
        slices = v.reshape(len(v), VOLUME_SLICES, WINDOW // VOLUME_SLICES).sum(axis=2)
        out += list((slices / total[:, None]).T)
        ticks = np.broadcast_to(np.arange(WINDOW, dtype=float), v.shape)
        out.append(_corr(ticks, np.log1p(v)))
        out.append(v.std(axis=1) / mean)
        out.append(_corr(np.abs(r), v))
        typical = (w.high[:, 1:] + w.low[:, 1:] + w.close[:, 1:]) / 3
        for n in VWAP_WINDOWS:
            vwap = (typical[:, -n:] * v[:, -n:]).sum(axis=1) / v[:, -n:].sum(axis=1)
            out.append(np.log(w.close[:, -1] / vwap))
    # inf (no volume at all) is as unknown as NaN: both go to the centre when scaled.
    return [np.where(np.isfinite(x), x, np.nan) for x in out]


def _acf(x: np.ndarray, lags: tuple[int, ...]) -> list[np.ndarray]:
    """The sample autocorrelation (the standard estimator: sums over the overlap divided by
    the whole sum of squares); 0 for a flat window."""
    x = x - x.mean(axis=1, keepdims=True)
    total = np.einsum("ij,ij->i", x, x)
    safe = np.where(total > 0, total, 1.0)
    return [np.einsum("ij,ij->i", x[:, k:], x[:, :-k]) / safe for k in lags]


def _autocorrelation(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    out = _acf(r, AC_LAGS) + _acf(np.abs(r), ABS_AC_LAGS)
    variance = r.var(axis=1)
    for q in VR_HORIZONS:
        summed = lc[:, q:] - lc[:, :-q]  # overlapping q-bar returns
        ratio = summed.var(axis=1) / (q * np.where(variance > 0, variance, 1.0))
        out.append(np.where(variance > 0, ratio, 1.0))
    return out


def _trend(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    tstats, r2s = [], []
    for n in TREND_WINDOWS:
        y = lc[:, -n:]
        t = np.arange(n, dtype=float) - (n - 1) / 2
        y_centred = y - y.mean(axis=1, keepdims=True)
        # Row sums, not a matrix product: BLAS blocks rows differently by count, and the
        # same window must give the same bits whatever else is computed with it.
        slope = (y_centred * t).sum(axis=1) / (t @ t)
        residual = y_centred - slope[:, None] * t
        sse = (residual * residual).sum(axis=1)
        sst = (y_centred * y_centred).sum(axis=1)
        stderr = np.sqrt(sse / (n - 2) / (t @ t))
        with np.errstate(invalid="ignore", divide="ignore"):
            tstats.append(np.where(stderr > 0, slope / stderr, 0.0))
            r2s.append(np.where(sst > 0, 1 - sse / sst, 0.0))
    # A t-statistic grows without bound on a perfect line: its log keeps the sign and order.
    out = [np.sign(x) * np.log1p(np.abs(x)) for x in tstats] + r2s
    moves = np.abs(r)
    for n in EFFICIENCY_WINDOWS:
        path = moves[:, -n:].sum(axis=1)
        net = np.abs(lc[:, -1] - lc[:, -1 - n])
        out.append(np.where(path > 0, net / np.maximum(path, VOL_FLOOR), 0.0))
    for n in MA_WINDOWS:
        out.append(lc[:, -1] - np.log(_mean_last(w.close, n)))
    return out


def _distribution(w: Windows, lc: np.ndarray, r: np.ndarray) -> list[np.ndarray]:
    skews, kurts = [], []
    for n in MOMENT_WINDOWS:
        x = r[:, -n:] - r[:, -n:].mean(axis=1, keepdims=True)
        m2 = (x * x).mean(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            skews.append(np.where(m2 > 0, (x**3).mean(axis=1) / m2**1.5, 0.0))
            kurts.append(np.where(m2 > 0, (x**4).mean(axis=1) / (m2 * m2) - 3, 0.0))
    out = skews + kurts
    out += [_mean_last((r > 0).astype(float), n) for n in UP_WINDOWS]
    out += [lc[:, -1] - np.log(w.close[:, -n:].max(axis=1)) for n in DRAWDOWN_WINDOWS]
    rv = np.sqrt((r * r).mean(axis=1))
    out.append(np.where(rv > 0, np.abs(r).max(axis=1) / np.maximum(rv, VOL_FLOOR), 0.0))
    return out


def _names() -> list[str]:
    names = [f"ret_{h}" for h in RETURN_HORIZONS]
    names += [f"rvol_{n}" for n in VOL_WINDOWS]
    names += [f"range_mean_{n}" for n in RANGE_MEAN_WINDOWS]
    names += [f"range_span_{n}" for n in SPAN_WINDOWS]
    names += [f"close_location_{n}" for n in LOCATION_WINDOWS]
    names += [f"body_to_range_{n}" for n in BODY_WINDOWS]
    names += [f"gap_abs_mean_{n}" for n in GAP_WINDOWS]
    names += ["gap_sum", "gap_abs_max", "gap_share"]
    names += [f"volume_rel_{n}" for n in VOLUME_WINDOWS]
    names += [f"volume_slice_{i}" for i in range(VOLUME_SLICES)]
    names += ["volume_trend", "volume_cv", "volume_abs_return_corr"]
    names += [f"vwap_gap_{n}" for n in VWAP_WINDOWS]
    names += [f"autocorr_{k}" for k in AC_LAGS]
    names += [f"abs_autocorr_{k}" for k in ABS_AC_LAGS]
    names += [f"variance_ratio_{q}" for q in VR_HORIZONS]
    names += [f"trend_tstat_{n}" for n in TREND_WINDOWS]
    names += [f"trend_r2_{n}" for n in TREND_WINDOWS]
    names += [f"efficiency_{n}" for n in EFFICIENCY_WINDOWS]
    names += [f"ma_gap_{n}" for n in MA_WINDOWS]
    names += [f"skew_{n}" for n in MOMENT_WINDOWS]
    names += [f"excess_kurtosis_{n}" for n in MOMENT_WINDOWS]
    names += [f"up_share_{n}" for n in UP_WINDOWS]
    names += [f"drawdown_{n}" for n in DRAWDOWN_WINDOWS]
    names += ["max_abs_return_in_vols"]
    return names


GROUPS: tuple[Callable[[Windows, np.ndarray, np.ndarray], list[np.ndarray]], ...] = (
    _returns,
    _volatility,
    _range,
    _gaps,
    _volume,
    _autocorrelation,
    _trend,
    _distribution,
)
FEATURE_NAMES = _names()
assert len(FEATURE_NAMES) == DIMENSIONS, len(FEATURE_NAMES)


def _chunk_features(w: Windows) -> np.ndarray:
    lc = np.log(w.close)
    r = np.diff(lc, axis=1)
    columns = [column for group in GROUPS for column in group(w, lc, r)]
    return np.column_stack(columns)


def compute(windows: Windows) -> np.ndarray:
    """The raw features of each window, (m, 128) float64, in ``FEATURE_NAMES`` order.
    NaN only in volume features: volume unknown, or a correlation with a constant volume."""
    m = len(windows.close)
    out = np.empty((m, DIMENSIONS))
    for lo in range(0, m, CHUNK):
        part = Windows(
            *(getattr(windows, f)[lo : lo + CHUNK] for f in Windows.__dataclass_fields__)
        )
        out[lo : lo + CHUNK] = _chunk_features(part)
    return out


# --- Standardisation -------------------------------------------------------------------------
@dataclass(frozen=True)
class Scaler:
    """Robust z-scores with fitted centres (medians) and scales (1.4826 MAD)."""

    center: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> Scaler:
        if len(raw) == 0:
            raise ValueError("cannot fit a scaler on no windows")
        with np.errstate(invalid="ignore"):
            center = np.nanmedian(raw, axis=0)
            scale = MAD_TO_SIGMA * np.nanmedian(np.abs(raw - center), axis=0)
            spread = np.nanstd(raw, axis=0)
        center = np.nan_to_num(center, nan=0.0)  # a feature never seen: centre at 0
        scale = np.where(scale > 0, scale, np.where(spread > 0, spread, 1.0))
        return cls(center=center, scale=np.nan_to_num(scale, nan=1.0))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        """Scores as float32 (what pgvector stores), unknown features at 0, clipped."""
        z = (raw - self.center) / self.scale
        return np.clip(np.nan_to_num(z, nan=0.0), -CLIP, CLIP).astype(np.float32)
