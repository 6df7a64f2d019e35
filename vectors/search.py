"""Similarity search: nearest feature embeddings, similar regimes, nearest strategy patterns.

Every search runs in a transaction that sets ``hnsw.ef_search`` and pgvector's iterative
index scan (``hnsw.iterative_scan = relaxed_order``, pgvector 0.8): when a filter (an
instrument, a time range, a feature set) discards candidates, the scan goes on through the
graph until k rows pass it instead of returning fewer. Relaxed order may hand rows back
slightly out of order, so results are sorted by distance again here. The HNSW indexes are
built for cosine distance (vectors/migrations/0002); L2 and inner-product searches are exact
scans, correct but slower (see bench/vectors.py for both).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from pgvector.django import CosineDistance, L2Distance, MaxInnerProduct

from marketdata.models import Instrument
from vectors.models import FeatureEmbedding, FeatureSet, StrategyPattern, VolatilityRegime

METRICS = {"cosine": CosineDistance, "l2": L2Distance, "inner_product": MaxInnerProduct}
METRIC_CHOICES = tuple(METRICS)  # named VectorMetricEnum in the schema (settings)
MAX_K = 1000  # pgvector's largest ef_search
EF_SEARCH = getattr(settings, "QVP_VECTOR_EF_SEARCH", 40)


# pgvector's settings for a search, with its defaults (used where its library is not loaded
# into the session yet): HNSW's and IVFFlat's iterative scans, their candidate counts.
SCAN_DEFAULTS = {
    "hnsw.ef_search": "40",
    "hnsw.iterative_scan": "off",
    "ivfflat.probes": "1",
    "ivfflat.iterative_scan": "off",
}


@contextmanager
def index_scan(k: int, ef_search: int | None = None, probes: int | None = None) -> Iterator[None]:
    """A transaction whose HNSW scans look at ``ef_search`` candidates (at least k), IVFFlat
    scans at ``probes`` lists (a table may carry one on request), both carrying on
    iteratively past filtered-out rows. Inside a caller's transaction (an API request is one)
    the settings are put back afterwards, so they reach no other query."""
    wanted = {
        "hnsw.ef_search": str(min(MAX_K, max(k, ef_search or EF_SEARCH))),
        "hnsw.iterative_scan": "relaxed_order",
        "ivfflat.probes": str(probes or SCAN_DEFAULTS["ivfflat.probes"]),
        "ivfflat.iterative_scan": "relaxed_order",
    }
    # Its own transaction forgets the settings when it ends; a caller's must have them put back.
    nested = connection.in_atomic_block
    with transaction.atomic(), connection.cursor() as cursor:
        before = _set_scan(cursor, wanted)
        try:
            yield
        finally:
            if nested:
                _set_scan(cursor, before)


def _set_scan(cursor, values: dict[str, str]) -> dict[str, str]:
    """Set ``values`` for the transaction in one round trip; returns what they were (the
    select list is evaluated left to right, so each is read before it is set)."""
    names = list(values)
    cursor.execute(
        "SELECT "
        + ", ".join(
            ["coalesce(current_setting(%s, true), %s), set_config(%s, %s, true)"] * len(names)
        ),
        [x for name in names for x in (name, SCAN_DEFAULTS[name], name, values[name])],
    )
    row = cursor.fetchone()
    return dict(zip(names, row[::2], strict=True))


@dataclass(frozen=True)
class FeatureQuery:
    vector: np.ndarray
    feature_set: FeatureSet
    k: int = 10
    metric: str = "cosine"
    instruments: Sequence[int] = ()
    start: datetime | None = None
    end: datetime | None = None
    exclude_id: int | None = None


@dataclass(frozen=True)
class Neighbour:
    id: int
    symbol: str
    ts: datetime
    distance: float


def distance_expression(metric: str, field: str, vector: np.ndarray):
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r} ({', '.join(METRICS)})")
    return METRICS[metric](field, np.asarray(vector, dtype=np.float32))


def features_queryset(query: FeatureQuery) -> QuerySet:
    """The k nearest embeddings' rows, nearest first (the SQL the index must serve)."""
    qs = FeatureEmbedding.objects.filter(feature_set=query.feature_set)
    if query.instruments:
        qs = qs.filter(instrument_id__in=list(query.instruments))
    if query.start is not None:
        qs = qs.filter(ts__gte=query.start)
    if query.end is not None:
        qs = qs.filter(ts__lt=query.end)
    if query.exclude_id is not None:
        qs = qs.exclude(id=query.exclude_id)
    distance = distance_expression(query.metric, "embedding", query.vector)
    return (
        qs.annotate(distance=distance, symbol=F("instrument__symbol"))
        .order_by("distance")
        .values("id", "symbol", "ts", "distance")[: query.k]
    )


def symbols(ids: set[int]) -> dict[int, str]:
    return dict(Instrument.objects.filter(id__in=ids).values_list("id", "symbol"))


def nearest_features(
    query: FeatureQuery, ef_search: int | None = None, probes: int | None = None
) -> list[Neighbour]:
    """The k embeddings nearest ``query.vector`` that pass its filters, nearest first."""
    with index_scan(query.k, ef_search, probes):
        rows = list(features_queryset(query))
    found = [Neighbour(r["id"], r["symbol"], r["ts"], r["distance"]) for r in rows]
    return sorted(found, key=lambda n: (n.distance, n.id))


# --- Regimes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegimeMatch:
    regime: VolatilityRegime
    symbol: str
    distance: float


def regimes_queryset(current: VolatilityRegime, k: int) -> QuerySet:
    distance = CosineDistance("signature", np.asarray(current.signature, dtype=np.float32))
    return (
        VolatilityRegime.objects.filter(feature_set_id=current.feature_set_id)
        .exclude(id=current.id)
        .annotate(distance=distance)
        .order_by("distance")[:k]
    )


def current_regime(instrument: Instrument) -> VolatilityRegime | None:
    return (
        VolatilityRegime.objects.filter(instrument=instrument)
        .order_by("-period_end", "-feature_set_id")
        .first()
    )


def similar_regimes(current: VolatilityRegime, k: int = 10) -> list[RegimeMatch]:
    """The k past periods (any instrument) whose signatures are nearest ``current``'s."""
    with index_scan(k):
        rows = list(regimes_queryset(current, k))
    names = symbols({r.instrument_id for r in rows})
    found = [RegimeMatch(r, names[r.instrument_id], r.distance) for r in rows]
    return sorted(found, key=lambda m: (m.distance, m.regime.id))


# --- Strategy patterns -----------------------------------------------------------------------
def patterns_queryset(state: np.ndarray, feature_set: FeatureSet, k: int) -> QuerySet:
    distance = CosineDistance("state", np.asarray(state, dtype=np.float32))
    return (
        StrategyPattern.objects.filter(feature_set=feature_set)
        .annotate(distance=distance)
        .order_by("distance")
        .values(
            "id",
            "strategy",
            "instrument_id",
            "ts",
            "position",
            "forward_return",
            "sharpe",
            "max_drawdown",
            "backtest_id",
            "distance",
        )[:k]
    )


def nearest_patterns(state: np.ndarray, feature_set: FeatureSet, k: int) -> list[dict]:
    with index_scan(k):
        rows = list(patterns_queryset(state, feature_set, k))
    names = symbols({r["instrument_id"] for r in rows})
    for row in rows:
        row["symbol"] = names[row.pop("instrument_id")]
    return sorted(rows, key=lambda r: (r["distance"], r["id"]))


@dataclass(frozen=True)
class StrategyScore:
    strategy: str
    patterns: int
    weight: float
    expected_return: float
    sharpe: float
    max_drawdown: float
    hit_rate: float


def rank_strategies(neighbours: list[dict]) -> list[StrategyScore]:
    """Strategies ranked by the outcomes of their nearest patterns, each weighted by its
    cosine similarity (1 - distance, no less than 0): the weighted mean return first, then
    the weighted mean Sharpe. A strategy whose patterns all point away weighs nothing."""
    if not neighbours:
        return []
    names = np.array([n["strategy"] for n in neighbours])
    weight = np.clip(1 - np.array([n["distance"] for n in neighbours], dtype=float), 0, None)
    outcome = {
        key: np.array([n[key] for n in neighbours], dtype=float)
        for key in ("forward_return", "sharpe", "max_drawdown")
    }
    scores = []
    for name in sorted(set(names.tolist())):
        mine = names == name
        w = weight[mine]
        total = w.sum()

        def mean(values: np.ndarray, w=w, total=total) -> float:
            return float((values * w).sum() / total) if total > 0 else 0.0

        scores.append(
            StrategyScore(
                strategy=name,
                patterns=int(mine.sum()),
                weight=float(total),
                expected_return=mean(outcome["forward_return"][mine]),
                sharpe=mean(outcome["sharpe"][mine]),
                max_drawdown=mean(outcome["max_drawdown"][mine]),
                hit_rate=mean((outcome["forward_return"][mine] > 0).astype(float)),
            )
        )
    return sorted(scores, key=lambda s: (-(s.weight > 0), -s.expected_return, -s.sharpe))


@dataclass(frozen=True)
class Recommendation:
    as_of: datetime
    ranked: list[StrategyScore]
    neighbours: list[dict]


def recommend(
    state: np.ndarray, feature_set: FeatureSet, as_of: datetime, k: int = 100
) -> Recommendation:
    """The best strategy for ``state``: its k nearest patterns' outcomes, by strategy."""
    neighbours = nearest_patterns(state, feature_set, k)
    return Recommendation(as_of, rank_strategies(neighbours), neighbours)
