"""Rolling volatility estimators over OHLC bars, vectorised with numpy.

Every estimator returns an array as long as the bars, holding the annualised volatility
estimated from the ``window`` most recent observations ending at that bar, and NaN until the
window is full. Range estimators (Parkinson, Garman-Klass, Rogers-Satchell) need one bar per
observation, so their first estimate is at index ``window - 1``; estimators that use the
previous close (close-to-close, Yang-Zhang, EWMA) need ``window + 1`` bars, so theirs is at
index ``window``.

Formulas (ln = natural log, sums over the window of n observations):

- close-to-close: sample standard deviation (n - 1) of r_t = ln(C_t / C_{t-1}).
- Parkinson (1980): var = sum(ln(H/L)^2) / (4 n ln 2).
- Garman-Klass (1980): var = mean(0.5 ln(H/L)^2 - (2 ln 2 - 1) ln(C/O)^2).
- Rogers-Satchell (1991): var = mean(ln(H/C) ln(H/O) + ln(L/C) ln(L/O)).
- Yang-Zhang (2000): var = var_overnight + k var_open_close + (1 - k) var_RS, with
  sample variances (n - 1) of ln(O_t / C_{t-1}) and ln(C_t / O_t), the Rogers-Satchell
  variance over the same bars, and k = 0.34 / (1.34 + (n + 1) / (n - 1)).
- EWMA (RiskMetrics): var_t = lam var_{t-1} + (1 - lam) r_t^2, started at index ``window``
  from the mean of the first ``window`` squared close-to-close returns.

Annualisation multiplies the per-bar variance by ``periods_per_year`` (the bar frequency's own
factor, see ``PERIODS_PER_YEAR``).
"""

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

# Bars per year by bar frequency: 252 trading days; a regular US session has 390 minutes.
TRADING_DAYS = 252
SESSION_MINUTES = 390
PERIODS_PER_YEAR: dict[str, float] = {
    "1m": TRADING_DAYS * SESSION_MINUTES,
    "5m": TRADING_DAYS * SESSION_MINUTES / 5,
    "15m": TRADING_DAYS * SESSION_MINUTES / 15,
    "1h": TRADING_DAYS * SESSION_MINUTES / 60,
    "1d": TRADING_DAYS,
    "1w": 52,
}


@dataclass(frozen=True)
class OHLC:
    """Bar prices as float arrays of equal length, oldest first."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def __post_init__(self) -> None:
        for name in ("open", "high", "low", "close"):
            object.__setattr__(self, name, np.asarray(getattr(self, name), dtype=float))
        lengths = {len(self.open), len(self.high), len(self.low), len(self.close)}
        if len(lengths) != 1:
            raise ValueError(f"open, high, low and close differ in length: {sorted(lengths)}")
        if np.any(self.low > self.high):
            raise ValueError("low is above high in at least one bar")
        prices = np.concatenate([self.open, self.high, self.low, self.close])
        if np.any(prices[~np.isnan(prices)] <= 0):
            raise ValueError("prices must be positive")

    def __len__(self) -> int:
        return len(self.close)


def _check(window: int, periods_per_year: float, minimum: int = 1) -> None:
    if int(window) != window or window < minimum:
        raise ValueError(f"window must be an integer of at least {minimum}, got {window!r}")
    if not periods_per_year > 0:
        raise ValueError(f"periods_per_year must be positive, got {periods_per_year!r}")


def _placed(values: np.ndarray, length: int) -> np.ndarray:
    """Right-align ``values`` (one per completed window) in an array of ``length`` NaNs."""
    out = np.full(length, np.nan)
    if len(values):
        out[length - len(values) :] = values
    return out


def _rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum over each window by differences of a cumulative sum: O(n) whatever the window.
    A window holding a NaN sums to NaN (and only that window, not every later one)."""
    if len(x) < window:
        return np.empty(0)
    missing = np.isnan(x)
    totals = np.concatenate([[0.0], np.cumsum(np.where(missing, 0.0, x))])
    gaps = np.concatenate([[0], np.cumsum(missing)])
    sums = totals[window:] - totals[:-window]
    return np.where(gaps[window:] - gaps[:-window] > 0, np.nan, sums)


def _rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    return _rolling_sum(x, window) / window


def _rolling_var(x: np.ndarray, window: int) -> np.ndarray:
    """Sample variance (n - 1) over each window. Centred on the series' mean first, so the
    sums of squares stay small and their differences lose no precision worth having."""
    centre = np.nanmean(x) if np.isfinite(x).any() else 0.0
    x = x - centre
    s1, s2 = _rolling_sum(x, window), _rolling_sum(x * x, window)
    return (s2 - s1 * s1 / window) / (window - 1)


def _annualised(variance: np.ndarray, periods_per_year: float) -> np.ndarray:
    # A tiny negative variance from rounding is zero volatility, not NaN.
    return np.sqrt(np.clip(variance, 0.0, None) * periods_per_year)


def _returns(bars: OHLC) -> np.ndarray:
    return np.log(bars.close[1:] / bars.close[:-1])


def _rs_terms(bars: OHLC) -> np.ndarray:
    h, low, o, c = bars.high, bars.low, bars.open, bars.close
    return np.log(h / c) * np.log(h / o) + np.log(low / c) * np.log(low / o)


def close_to_close(bars: OHLC, window: int, periods_per_year: float) -> np.ndarray:
    _check(window, periods_per_year, minimum=2)
    variance = _rolling_var(_returns(bars), window)
    return _placed(_annualised(variance, periods_per_year), len(bars))


def parkinson(bars: OHLC, window: int, periods_per_year: float) -> np.ndarray:
    _check(window, periods_per_year)
    hl = np.log(bars.high / bars.low) ** 2
    variance = _rolling_mean(hl, window) / (4.0 * np.log(2.0))
    return _placed(_annualised(variance, periods_per_year), len(bars))


def garman_klass(bars: OHLC, window: int, periods_per_year: float) -> np.ndarray:
    _check(window, periods_per_year)
    hl = np.log(bars.high / bars.low) ** 2
    co = np.log(bars.close / bars.open) ** 2
    variance = _rolling_mean(0.5 * hl - (2.0 * np.log(2.0) - 1.0) * co, window)
    return _placed(_annualised(variance, periods_per_year), len(bars))


def rogers_satchell(bars: OHLC, window: int, periods_per_year: float) -> np.ndarray:
    _check(window, periods_per_year)
    variance = _rolling_mean(_rs_terms(bars), window)
    return _placed(_annualised(variance, periods_per_year), len(bars))


def yang_zhang(bars: OHLC, window: int, periods_per_year: float) -> np.ndarray:
    _check(window, periods_per_year, minimum=2)
    overnight = np.log(bars.open[1:] / bars.close[:-1])
    open_close = np.log(bars.close[1:] / bars.open[1:])
    rs = _rs_terms(bars)[1:]
    k = 0.34 / (1.34 + (window + 1) / (window - 1))
    variance = (
        _rolling_var(overnight, window)
        + k * _rolling_var(open_close, window)
        + (1.0 - k) * _rolling_mean(rs, window)
    )
    return _placed(_annualised(variance, periods_per_year), len(bars))


def ewma(bars: OHLC, window: int, periods_per_year: float, lam: float = 0.94) -> np.ndarray:
    _check(window, periods_per_year)
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam must be strictly between 0 and 1, got {lam!r}")
    squared = _returns(bars) ** 2
    if len(squared) < window:
        return np.full(len(bars), np.nan)
    seed = squared[:window].mean()
    # var_t = lam var_{t-1} + (1 - lam) r_t^2 as a linear filter (no loop over rows),
    # continuing from the seed variance held at the last return of the first window.
    later, _ = lfilter([1.0 - lam], [1.0, -lam], squared[window:], zi=[lam * seed])
    variance = np.concatenate([[seed], later])
    return _placed(_annualised(variance, periods_per_year), len(bars))


ESTIMATORS: dict[str, Callable[..., np.ndarray]] = {
    "close_to_close": close_to_close,
    "parkinson": parkinson,
    "garman_klass": garman_klass,
    "rogers_satchell": rogers_satchell,
    "yang_zhang": yang_zhang,
    "ewma": ewma,
}
