"""Building feature embeddings from minute bars: incremental, by binary COPY.

Windows end at bars that close on a multiple of the feature set's stride (15 minutes), so an
incremental run and a full one embed the same instants. A run embeds only the windows not yet
stored (per instrument, from the newest stored one on, or from ``since``); the first run of a
version fits its scaler on the windows it computes, and every later run reuses it.

A build reads the bars as known at one moment (by default the settled moment,
``marketdata.knowledge``) and records it, the code's version and the windows it embedded in a
``FeatureBuild``; ``repeat`` computes those windows again from the bars as known then and says
whether every raw feature is identical to what is stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
from django.db import transaction
from django.db.models import Max

from marketdata.knowledge import knowledge_time
from marketdata.models import Instrument, MinuteBar
from qvp_site.code_version import code_version
from qvp_site.db.binary_copy import columns_of, copy_columns
from qvp_site.db.set_aside import table_is_empty
from qvp_site.per_instrument import InstrumentRun
from vectors import bars, features, store
from vectors.models import FEATURE_DIMENSIONS, FeatureBuild, FeatureEmbedding, FeatureSet
from vectors.store import SetSpec, scaler_of

FEATURES = SetSpec(
    name="bars-1m",
    version=features.PIPELINE_VERSION,
    kind=FeatureSet.Kind.FEATURES,
    timeframe="1m",
    stride=15,
    feature_names=tuple(features.FEATURE_NAMES),
    description="vectors/features.py over the last 390 minute bars, every 15 minutes",
)
TABLE = FeatureEmbedding._meta.db_table
COLUMNS = ("instrument_id", "feature_set_id", "ts", "embedding", "raw")
TYPES = ("int8", "int8", "timestamptz", "vector", "float8[]")


@dataclass
class Pending:
    """Windows of one instrument computed and not yet stored."""

    instrument: Instrument
    closes: np.ndarray  # datetime64[us]
    raw: np.ndarray


@dataclass
class BuildReport:
    created: dict[str, int] = field(default_factory=dict)
    feature_set: FeatureSet | None = None
    rebuilt_index: bool = False
    build: FeatureBuild | None = None  # the record of what it read and wrote, if it wrote

    @property
    def total(self) -> int:
        return sum(self.created.values())


def pending_windows(
    instrument: Instrument,
    spec: SetSpec,
    since: datetime | None,
    newest: datetime | None,
    known_at: datetime | None = None,
) -> Pending:
    """The instrument's windows not stored yet: closing at or after ``since``, or else after
    the newest stored window (all of them on a first build), from the bars as known at
    ``known_at`` (None: the present)."""
    start = since or newest
    closes, ends, series = _windows(instrument, spec.stride, start, known_at)
    if start is not None:
        moment = np.datetime64(start.astimezone(UTC).replace(tzinfo=None), "us")
        keep = closes >= moment if since is not None else closes > moment
        ends, closes = ends[keep], closes[keep]
    if since is not None and newest is not None and len(closes):
        closes, ends = _not_stored(instrument, spec, closes, ends)
    raw = features.compute(features.windows_ending_at(series.columns(), ends))
    return Pending(instrument, closes, raw)


def _windows(instrument: Instrument, stride: int, start, known_at):
    """The instants windows close at (and the bars they end at) from ``start``'s lookback on."""
    series = bars.load(
        instrument.id, lookback_from=start, lookback=features.WINDOW + 2, known_at=known_at
    )
    ends = bars.stride_ends(series, stride, features.WINDOW)
    return series.closes_at()[ends], ends, series


def _not_stored(instrument, spec, closes, ends):
    """Drop windows already embedded (a ``since`` older than the newest stored window)."""
    stored = FeatureEmbedding.objects.filter(
        instrument=instrument,
        feature_set__name=spec.name,
        feature_set__version=spec.version,
        ts__gte=bars.to_datetimes(closes[:1])[0],
    ).values_list("ts", flat=True)
    have = np.array([t.astimezone(UTC).replace(tzinfo=None) for t in stored], dtype="M8[us]")
    keep = ~np.isin(closes, have)
    return closes[keep], ends[keep]


def build(
    instruments: Iterable[Instrument],
    *,
    since: datetime | None = None,
    rebuild: bool = False,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    spec: SetSpec = FEATURES,
    run: InstrumentRun | None = None,
    known_at: datetime | None = None,
) -> BuildReport:
    """Embed the windows of ``instruments`` not stored yet, in one transaction, from the bars
    as known at ``known_at`` (default: the settled moment), recorded; ``rebuild`` deletes
    theirs first (bars replaced) and loads without the vector index. An instrument with too
    few minute bars for a window is a skip in ``run``; one that fails is recorded there and
    the others go on."""
    run = run if run is not None else InstrumentRun("embeddings", isolated=False)
    report = BuildReport()
    instruments = list(instruments)
    prepare_set(instruments, since=since, spec=spec, known_at=known_at)
    with transaction.atomic():
        store.lock_builds()
        known_at = knowledge_time(known_at)
        stored = spec.stored()
        if rebuild and stored is not None:
            FeatureEmbedding.objects.filter(feature_set=stored, instrument__in=instruments).delete()
        newest = _newest(stored)
        pending = _pending(progress(instruments), spec, since, newest, known_at, run)
        if not pending:
            report.feature_set = stored
            return report
        feature_set = spec.fitted(np.concatenate([p.raw for p in pending]))
        with store.bulk_load(TABLE, rebuild=rebuild, empty=table_is_empty(TABLE)) as aside:
            for p in pending:
                with run.each(p.instrument.symbol):
                    report.created[p.instrument.symbol] = _copy(feature_set, p)
        report.feature_set, report.rebuilt_index = feature_set, bool(aside.definitions)
        report.build = _record(feature_set, known_at, pending)
    return report


def _pending(
    instruments: Iterable[Instrument],
    spec: SetSpec,
    since: datetime | None,
    newest: dict[int, datetime],
    known_at: datetime,
    run: InstrumentRun,
) -> list[Pending]:
    """Each instrument's windows not embedded yet; one with none at all is a skip in ``run``."""
    pending = []
    for instrument in instruments:
        with run.each(instrument.symbol):
            found = pending_windows(instrument, spec, since, newest.get(instrument.id), known_at)
            if len(found.closes):
                pending.append(found)
            elif instrument.id not in newest and since is None:
                run.skip(instrument.symbol, _why_no_window(instrument, spec))
    return pending


def prepare_set(
    instruments: list[Instrument],
    *,
    since: datetime | None = None,
    spec: SetSpec = FEATURES,
    known_at: datetime | None = None,
) -> None:
    """A new set stored before the build of its first windows, where the engine wants it
    (``store.fitted_apart``); nothing where the set is stored or on one node."""

    def raw() -> list[np.ndarray]:
        # A first pass: the build's own meets (and records) an instrument's failure again.
        scratch = InstrumentRun("embeddings", isolated=True, quiet=True)
        pending = _pending(instruments, spec, since, {}, knowledge_time(known_at), scratch)
        return [p.raw for p in pending]

    store.fitted_apart(spec, raw)


def _record(feature_set: FeatureSet, known_at: datetime, pending: list[Pending]) -> FeatureBuild:
    windows = {
        str(p.instrument.id): [*(t.isoformat() for t in bars.to_datetimes(p.closes[[0, -1]])),
                               len(p.closes)]
        for p in pending
    }  # fmt: skip
    return FeatureBuild.objects.create(
        feature_set=feature_set, known_at=known_at, code_version=code_version(), windows=windows
    )


def repeat(build: FeatureBuild) -> list[str]:
    """Compute the windows ``build`` embedded again, from the bars as known at its
    ``known_at``, and compare their raw features with those stored: the differences found,
    none when every window is identical to the last bit. Writes nothing."""
    differences: list[str] = []
    for instrument_id, (first, last, count) in sorted(build.windows.items()):
        instrument = Instrument.objects.get(pk=int(instrument_id))
        lower, upper = datetime.fromisoformat(first), datetime.fromisoformat(last)
        closes, ends, series = _windows(instrument, build.feature_set.stride, lower, build.known_at)
        keep = (closes >= _instant(lower)) & (closes <= _instant(upper))
        raw = features.compute(features.windows_ending_at(series.columns(), ends[keep]))
        stored = (
            FeatureEmbedding.objects.filter(
                feature_set=build.feature_set, instrument=instrument, ts__range=(lower, upper)
            )
            .order_by("ts")
            .values_list("ts", "raw")
        )
        differences += _compare(instrument.symbol, bars.to_datetimes(closes[keep]), raw, stored)
        if int(keep.sum()) != count:
            differences.append(f"{instrument.symbol}: {int(keep.sum())} windows, built {count}")
    return differences


def _instant(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(UTC).replace(tzinfo=None), "us")


def _compare(symbol: str, closes: list[datetime], raw: np.ndarray, stored) -> list[str]:
    rows = list(stored)
    if [ts for ts, _ in rows] != list(closes):
        return [f"{symbol}: the windows stored are not those computed again"]
    kept = np.array([[np.nan if v is None else v for v in values] for _, values in rows])
    found = []
    for index, (ts, _) in enumerate(rows):
        if not np.array_equal(kept[index], raw[index], equal_nan=True):
            found.append(f"{symbol} {ts:%Y-%m-%d %H:%M}: raw features differ")
    return found


def _why_no_window(instrument: Instrument, spec: SetSpec) -> str:
    """An instrument with no window embedded yet and none to embed: too few minute bars."""
    count = MinuteBar.objects.filter(instrument=instrument)[: features.WINDOW + 1].count()
    if not count:
        return "no minute bars"
    if count <= features.WINDOW:
        return f"{count} minute bar(s), a window needs {features.WINDOW + 1}"
    return f"no window of {features.WINDOW + 1} bars closes on a {spec.stride}-minute mark"


def _newest(feature_set: FeatureSet | None) -> dict[int, datetime]:
    if feature_set is None:
        return {}
    rows = (
        FeatureEmbedding.objects.filter(feature_set=feature_set)
        .values("instrument_id")
        .annotate(newest=Max("ts"))
        .order_by()
    )
    return {row["instrument_id"]: row["newest"] for row in rows}


def columns(
    instrument_ids: np.ndarray,
    feature_set_id: int,
    closes: np.ndarray,
    vectors: np.ndarray,
    raw: np.ndarray,
) -> list:
    """The table's COPY columns for these rows (checked: see qvp_site.db.binary_copy.columns_of)."""
    ids = np.broadcast_to(np.asarray(instrument_ids, dtype=np.int64), (len(closes),))
    sets = np.full(len(closes), feature_set_id, dtype=np.int64)
    values = (ids, sets, closes, vectors, raw)
    return columns_of(COLUMNS, TYPES, values, {"embedding": FEATURE_DIMENSIONS})


def _copy(feature_set: FeatureSet, pending: Pending) -> int:
    vectors = scaler_of(feature_set).transform(pending.raw)
    found = columns(pending.instrument.id, feature_set.id, pending.closes, vectors, pending.raw)
    return copy_columns(TABLE, found)
