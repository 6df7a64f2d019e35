"""Volatility regime signatures (64-d) from the risk app's estimators, and their clustering.

Version 1. One signature per instrument and trading day, from ``risk.estimators`` (never a
copy of them), all as natural logs of annualised volatilities or of their ratios:

- daily bars: the six estimators at windows of 5, 10, 21, 42 and 63 days (30);
- minute bars at the day's last bar: the six at 30, 60, 120 and 240 minutes (24);
- shape (10): each estimator's term slope ln(v_5d / v_63d) (6); intraday against daily,
  ln(yang_zhang_240m / yang_zhang_21d); the volatility of volatility, the standard deviation
  of ln yang_zhang_5d over the last 21 days; ln(parkinson_21d / close_to_close_21d), which
  falls below zero when closes move more than ranges (gaps); ln(ewma_21d / close_to_close_63d).

Signatures are standardised like features (robust z-scores fitted on the version's first
build). Every build computes from the instrument's whole history (the EWMA depends on where
it starts) and stores only the days not stored yet. Regimes are then discovered by k-means
(scikit-learn) over all signatures of the version and named by their typical level of
volatility, calmest first; labels are stored on each row.

The bars are read adjusted for corporate actions (``bars.load``; by default ``total_return``),
so that a split's ex-date is not a day of extreme volatility.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction
from psycopg.types.json import Jsonb
from sklearn.cluster import KMeans

from marketdata.models import Instrument
from marketdata.querysets import ADJUSTMENTS
from qvp_site.db.binary_copy import copy_rows
from qvp_site.per_instrument import InstrumentRun
from risk.estimators import ESTIMATORS, OHLC, PERIODS_PER_YEAR
from vectors import bars, store
from vectors.models import FeatureSet, VolatilityRegime
from vectors.store import SetSpec, scaler_of

DAILY_WINDOWS = (5, 10, 21, 42, 63)
MINUTE_WINDOWS = (30, 60, 120, 240)
VOL_OF_VOL_DAYS = 21
SLICE = max(MINUTE_WINDOWS) + 2  # minute bars behind each day's intraday estimates
FIRST_DAY = max(DAILY_WINDOWS) + 1  # the first daily bar every daily estimator covers
LABELS = ("calm", "normal", "elevated", "stressed", "turbulent", "extreme")
DEFAULT_CLUSTERS = 4


def _names() -> list[str]:
    names = [f"{e}_{w}d" for e in ESTIMATORS for w in DAILY_WINDOWS]
    names += [f"{e}_{w}m" for e in ESTIMATORS for w in MINUTE_WINDOWS]
    names += [f"{e}_slope_5d_63d" for e in ESTIMATORS]
    names += ["intraday_vs_daily", "vol_of_vol_21d", "range_vs_close_21d", "ewma_vs_long"]
    return names


SIGNATURE_NAMES = _names()
assert len(SIGNATURE_NAMES) == 64, len(SIGNATURE_NAMES)
REGIMES = SetSpec(
    name="vol-regime",
    version=1,
    kind=FeatureSet.Kind.REGIME,
    timeframe="1d",
    stride=1440,
    feature_names=tuple(SIGNATURE_NAMES),
    description="vectors/regimes.py: risk.estimators over daily and minute windows",
)
TABLE = VolatilityRegime._meta.db_table
COLUMNS = (
    "instrument_id",
    "feature_set_id",
    "period_start",
    "period_end",
    "label",
    "signature",
    "statistics",
)
TYPES = ("int8", "int8", "timestamptz", "timestamptz", "text", "vector", "jsonb")


def _ohlc(series: bars.Series) -> OHLC:
    return OHLC(series.open, series.high, series.low, series.close)


def _estimates(series: bars.Series, windows, frequency: str) -> dict[str, np.ndarray]:
    ohlc = _ohlc(series)
    per_year = PERIODS_PER_YEAR[frequency]
    return {
        f"{name}_{w}{frequency[-1]}": fn(ohlc, w, per_year)
        for name, fn in ESTIMATORS.items()
        for w in windows
    }


@dataclass
class Signatures:
    period_start: np.ndarray  # datetime64[us]
    period_end: np.ndarray
    raw: np.ndarray  # (days, 64) natural logs


def _day_ends(minute: bars.Series, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each day's last minute bar, and whether the day has minute bars (none has
    when there are no minute bars at all)."""
    if not len(minute):
        return np.zeros(len(days), dtype=int), np.zeros(len(days), dtype=bool)
    minute_days = minute.ts.astype("M8[D]")
    last = np.flatnonzero(np.r_[minute_days[1:] != minute_days[:-1], True])
    at = np.minimum(np.searchsorted(minute_days[last], days), len(last) - 1)
    return last[at], minute_days[last][at] == days


def _minute_estimates(minute: bars.Series, ends: np.ndarray) -> dict[str, np.ndarray]:
    """The minute estimators at each of ``ends``, from the bars that end there alone: the
    last ``SLICE`` bars before each end, laid end to end, so the work is per day rather than
    per minute and a day's value depends on its own bars (the EWMA starts in each slice)."""
    take = np.clip(ends[:, None] + np.arange(-SLICE + 1, 1), 0, None).ravel()
    sliced = bars.Series(**{k: v[take] for k, v in minute.columns().items()}, period=minute.period)
    ohlc = _ohlc(sliced)
    per_year = PERIODS_PER_YEAR["1m"]
    out = {}
    for name, fn in ESTIMATORS.items():
        for w in MINUTE_WINDOWS:
            values = fn(ohlc, w, per_year) if name != "ewma" else _slice_ewma(ohlc, w, ends)
            out[f"{name}_{w}m"] = values.reshape(len(ends), SLICE)[:, -1]
    return out


def _slice_ewma(ohlc: OHLC, window: int, ends: np.ndarray) -> np.ndarray:
    """EWMA restarted in each slice (it is recursive: run over the whole series, a day's
    value would depend on every earlier day's slice)."""
    per_year = PERIODS_PER_YEAR["1m"]
    rows = [
        ESTIMATORS["ewma"](
            OHLC(
                *(
                    getattr(ohlc, f)[i * SLICE : (i + 1) * SLICE]
                    for f in ("open", "high", "low", "close")
                )
            ),
            window,
            per_year,
        )
        for i in range(len(ends))
    ]
    return np.concatenate(rows) if rows else np.empty(0)


def skip_reason(daily: bars.Series, minute: bars.Series) -> str | None:
    """Why an instrument's bars can give no signature at all (None: they may give some)."""
    if not len(daily):
        return "no daily bars"
    if not len(minute):
        return "no minute bars"
    if len(daily) <= FIRST_DAY:
        return f"{len(daily)} daily bar(s), a signature needs {FIRST_DAY + 1}"
    return None


def _no_signatures() -> Signatures:
    empty = np.array([], dtype="M8[us]")
    return Signatures(empty, empty, np.empty((0, len(SIGNATURE_NAMES))))


@np.errstate(divide="ignore", invalid="ignore")  # a zero volatility's log is left out below
def signatures(daily: bars.Series, minute: bars.Series) -> Signatures:
    """The raw signature of every day with a full daily history and minute bars (none for
    an instrument with only one kind of bars, or too few)."""
    if skip_reason(daily, minute) is not None:
        return _no_signatures()
    logs = {k: np.log(v) for k, v in _estimates(daily, DAILY_WINDOWS, "1d").items()}
    index, has_minutes = _day_ends(minute, daily.ts.astype("M8[D]"))
    has_minutes &= index >= SLICE - 1
    intraday = {k: np.log(v) for k, v in _minute_estimates(minute, index).items()}
    columns = [logs[n] for n in SIGNATURE_NAMES[:30]]
    columns += [intraday[n] for n in SIGNATURE_NAMES[30:54]]
    columns += [logs[f"{e}_5d"] - logs[f"{e}_63d"] for e in ESTIMATORS]
    columns.append(intraday["yang_zhang_240m"] - logs["yang_zhang_21d"])
    yz5 = logs["yang_zhang_5d"]
    vol_of_vol = np.full(len(yz5), np.nan)
    if len(yz5) >= VOL_OF_VOL_DAYS:
        rolling = np.lib.stride_tricks.sliding_window_view(yz5, VOL_OF_VOL_DAYS)
        vol_of_vol[VOL_OF_VOL_DAYS - 1 :] = rolling.std(axis=1, ddof=1)
    columns.append(vol_of_vol)
    columns.append(logs["parkinson_21d"] - logs["close_to_close_21d"])
    columns.append(logs["ewma_21d"] - logs["close_to_close_63d"])
    raw = np.column_stack(columns)
    keep = has_minutes & np.isfinite(raw).all(axis=1)
    keep[:FIRST_DAY] = False
    ends = minute.closes_at()[index]
    return Signatures(daily.ts[keep], ends[keep], raw[keep])


def build(
    instruments: Iterable[Instrument],
    *,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    clusters: int = DEFAULT_CLUSTERS,
    replace: bool = False,
    run: InstrumentRun | None = None,
    adjustment: str = bars.DEFAULT_ADJUSTMENT,
) -> dict[str, int]:
    """Store the signatures of days not stored yet (``replace``: the instruments' rows are
    deleted first, as after their bars were replaced), then discover and label the regimes.
    An instrument whose bars give none is a skip in ``run``, one that fails is recorded
    there and the others go on. The bars are adjusted for corporate actions by
    ``adjustment``."""
    if adjustment not in ADJUSTMENTS:  # before the lock and the deletion
        raise ValueError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}, not {adjustment!r}")
    run = run if run is not None else InstrumentRun("regimes", isolated=False)
    created: dict[str, int] = {}
    instruments = list(instruments)
    prepare_set(instruments, adjustment=adjustment)
    with transaction.atomic():
        store.lock_builds()
        if replace:
            VolatilityRegime.objects.filter(instrument__in=instruments).delete()
        computed = _computed(progress(instruments), run, adjustment)
        if not computed:
            return created
        feature_set = REGIMES.fitted(np.concatenate([s.raw for s in computed.values()]))
        for instrument, found in computed.items():
            with run.each(instrument.symbol):
                created[instrument.symbol] = _copy_new(instrument, feature_set, found)
        discover(feature_set, clusters)
    return created


def prepare_set(instruments: list[Instrument], adjustment: str = bars.DEFAULT_ADJUSTMENT) -> None:
    """The regimes' set stored before the build of its first signatures, where the engine
    wants it (``store.fitted_apart``); nothing where the set is stored or on one node."""

    def raw() -> list[np.ndarray]:
        # A first pass: the build's own meets (and records) an instrument's failure again.
        scratch = InstrumentRun("regimes", isolated=True, quiet=True)
        return [s.raw for s in _computed(instruments, scratch, adjustment).values()]

    store.fitted_apart(REGIMES, raw)


def _computed(
    instruments: Iterable[Instrument], run: InstrumentRun, adjustment: str
) -> dict[Instrument, Signatures]:
    """Each instrument's signatures, those with any."""
    computed = {}
    for instrument in instruments:
        with run.each(instrument.symbol):
            found = _signatures_of(instrument, run, adjustment)
            if len(found.raw):
                computed[instrument] = found
    return computed


def _signatures_of(instrument: Instrument, run: InstrumentRun, adjustment: str) -> Signatures:
    daily = bars.load(instrument.id, daily=True, adjustment=adjustment)
    minute = bars.load(instrument.id, adjustment=adjustment)
    found = signatures(daily, minute)
    if not len(found.raw):
        reason = skip_reason(daily, minute)
        run.skip(instrument.symbol, reason or "no day with a full daily history and its minutes")
    return found


def _copy_new(instrument: Instrument, feature_set: FeatureSet, found: Signatures) -> int:
    stored = VolatilityRegime.objects.filter(instrument=instrument, feature_set=feature_set)
    have = np.array(
        [t.replace(tzinfo=None) for t in stored.values_list("period_end", flat=True)],
        dtype="M8[us]",
    )
    new = ~np.isin(found.period_end, have)
    vectors = scaler_of(feature_set).transform(found.raw[new])
    statistics = [
        dict(zip(SIGNATURE_NAMES, np.round(row, 6).tolist(), strict=True)) for row in found.raw[new]
    ]
    rows = zip(
        [instrument.id] * len(vectors),
        [feature_set.id] * len(vectors),
        bars.to_datetimes(found.period_start[new]),
        bars.to_datetimes(found.period_end[new]),
        [""] * len(vectors),
        vectors,
        [Jsonb(s) for s in statistics],
        strict=True,
    )
    return copy_rows(TABLE, COLUMNS, TYPES, rows)


def discover(feature_set: FeatureSet, clusters: int = DEFAULT_CLUSTERS, seed: int = 0) -> dict:
    """k-means over every signature of ``feature_set``; labels by typical volatility
    (the median of yang_zhang_21d), calmest first. Returns label -> row count."""
    rows = list(
        VolatilityRegime.objects.filter(feature_set=feature_set).values_list(
            "id", "signature", "statistics__yang_zhang_21d"
        )
    )
    if len(rows) < clusters:
        return {}
    ids = np.array([r[0] for r in rows])
    points = np.array([r[1] for r in rows], dtype=float)
    level = np.array([r[2] for r in rows], dtype=float)
    found = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit_predict(points)
    order = np.argsort([np.median(level[found == c]) for c in range(clusters)])
    rank = np.empty(clusters, dtype=int)
    rank[order] = np.arange(clusters)
    names = [LABELS[i] if clusters <= len(LABELS) else f"regime-{i}" for i in range(clusters)]
    cluster = rank[found]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {TABLE} r SET cluster = u.cluster, label = u.label FROM"
            " unnest(%s::bigint[], %s::smallint[], %s::text[]) AS u(id, cluster, label)"
            " WHERE r.id = u.id",
            [ids.tolist(), cluster.tolist(), [names[c] for c in cluster]],
        )
    return {names[c]: int((cluster == c).sum()) for c in range(clusters)}
