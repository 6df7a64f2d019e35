"""Similarity search: nearest feature embeddings, similar regimes, nearest strategy patterns.

Every search sets ``hnsw.ef_search`` and pgvector's iterative index scan
(``hnsw.iterative_scan = relaxed_order``, pgvector 0.8): when a filter (an instrument, a time
range, a feature set) discards candidates, the scan goes on through the graph until k rows
pass it instead of returning fewer. Relaxed order may hand rows back slightly out of order, so
results are sorted by distance again here. The HNSW indexes are built for cosine distance
(vectors/migrations/0002); L2 and inner-product searches are exact scans, correct but slower
(see bench/vectors.py for both).

A row at no defined distance is no neighbour: pgvector's cosine distance from or to a zero
vector is NaN (and its 4-byte arithmetic can overflow to infinity on huge values), which
neither orders nor goes into JSON. Every search here leaves such rows out, as pgvector's HNSW
index does for zero vectors by cosine; so a search from a zero vector by cosine finds nothing.

A search is one round trip (``scanned``): the settings and the query go as one simple-query
string, so the search costs the server's time plus one network exchange, not four (BEGIN, the
settings, the query, COMMIT). The settings stay the search's own: outside a transaction the
string is PostgreSQL's implicit transaction, which ``SET LOCAL`` ends with; inside one (an API
request is one) the string opens a savepoint and rolls back to it after the query, which puts
the settings back (a search writes nothing). The feature search's SQL is written here rather
than compiled by the ORM per call, which took longer than the index scan itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import F, QuerySet
from pgvector.django import CosineDistance

from marketdata.models import Instrument
from qvp_site.db import engine
from vectors.models import FeatureEmbedding, FeatureSet, StrategyPattern, VolatilityRegime

# Each metric's pgvector operator (the smaller, the nearer).
OPERATORS = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
METRIC_CHOICES = tuple(OPERATORS)  # named VectorMetricEnum in the schema (settings)
MAX_K = 1000  # pgvector's largest ef_search
EF_SEARCH = getattr(settings, "QVP_VECTOR_EF_SEARCH", 40)
SAVEPOINT = "qvp_vector_search"
_UNDO = f"ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"


def scan_settings(k: int, ef_search: int | None = None, probes: int | None = None) -> str:
    """``SET LOCAL`` statements for a search of k rows: HNSW scans look at ``ef_search``
    candidates (at least k), IVFFlat scans at ``probes`` lists (a table may carry one on
    request), both carrying on iteratively past filtered-out rows."""
    ef = min(MAX_K, max(int(k), int(ef_search or EF_SEARCH)))
    return (
        f"SET LOCAL hnsw.ef_search = {ef}; SET LOCAL hnsw.iterative_scan = relaxed_order;"
        f" SET LOCAL ivfflat.probes = {max(1, int(probes or 1))};"
        " SET LOCAL ivfflat.iterative_scan = relaxed_order"
    )


def scanned(
    sql: str, params: Sequence, k: int, ef_search: int | None = None, probes: int | None = None
) -> tuple[list[str], list[tuple]]:
    """Run the search ``sql`` under ``scan_settings`` in one round trip; returns its column
    names and rows. Needs Django's default client-side binding (one string, several
    statements). On Citus, in four, or five inside a transaction (``_scanned_on_the_shards``)."""
    to_the_shards = engine.local_settings_reach_the_shards()
    if to_the_shards:
        return _scanned_on_the_shards(
            f"{to_the_shards}; {scan_settings(k, ef_search, probes)}", sql, params
        )
    nested = not connection.get_autocommit()
    script = f"{scan_settings(k, ef_search, probes)}; {sql}"
    if nested:
        script = f"SAVEPOINT {SAVEPOINT}; {script}; {_UNDO}"
    with connection.cursor() as cursor:
        try:
            cursor.execute(script, params)
        except DatabaseError:
            if nested:  # the rest of the string did not run: leave the caller's transaction usable
                cursor.execute(_UNDO)
            raise
        while cursor.description is None and cursor.nextset():
            pass  # past the SAVEPOINT and SETs' results to the query's
        return [c.name for c in cursor.description], cursor.fetchall()


def _scanned_on_the_shards(settings_sql: str, sql: str, params: Sequence) -> tuple[list, list]:
    """The search on Citus: its settings sent on to the shards' sessions, in a message of their
    own (Citus sends a propagated SET's whole query string to the workers, which would run the
    search there as a query within a query, refused), then the search; in a transaction, or a
    savepoint of the caller's, rolled back after it, which puts the settings back."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(settings_sql)
            cursor.execute(sql, params)
            found = [c.name for c in cursor.description], cursor.fetchall()
        transaction.set_rollback(True)  # a search writes nothing
    return found


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


def has_direction(vector: np.ndarray) -> bool:
    """Whether ``vector`` has a length in 4-byte floats (pgvector's arithmetic): a zero
    vector, or one so small its squares underflow, has no direction for cosine distance."""
    as_float4 = np.asarray(vector, dtype=np.float32)
    with np.errstate(over="ignore", under="ignore"):
        return bool(np.dot(as_float4, as_float4) > 0)


def has_finite_length(vector: np.ndarray) -> bool:
    """Whether ``vector``'s squared length is finite in 4-byte floats (pgvector's)."""
    as_float4 = np.asarray(vector, dtype=np.float32)
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.dot(as_float4, as_float4)))


def defined(distance: float | None) -> bool:
    """Whether a row's distance is a number a result can order and show."""
    return distance is not None and math.isfinite(distance)


def vector_text(vector: np.ndarray) -> str:
    """pgvector's text form; float32 values printed as floats round-trip exactly."""
    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def operator(metric: str) -> str:
    if metric not in OPERATORS:
        raise ValueError(f"unknown metric {metric!r} ({', '.join(OPERATORS)})")
    return OPERATORS[metric]


FEATURES_SQL = (
    "SELECT e.id, i.symbol, e.ts, e.embedding {operator} %s::vector AS distance"
    f" FROM {FeatureEmbedding._meta.db_table} e"
    f" JOIN {Instrument._meta.db_table} i ON i.id = e.instrument_id"
    " WHERE {where} ORDER BY distance LIMIT %s"
)


def features_sql(query: FeatureQuery) -> tuple[str, list]:
    """The k nearest embeddings' rows, nearest first (the SQL the index must serve): only the
    columns a result shows, the symbol joined in, no vector or raw features sent back."""
    where: list[str] = ["e.feature_set_id = %s"]
    params: list[Any] = [query.feature_set.pk]
    if query.instruments:
        where.append("e.instrument_id = ANY(%s)")
        params.append([int(i) for i in query.instruments])
    for condition, value in (
        ("e.ts >= %s", query.start),
        ("e.ts < %s", query.end),
        ("e.id <> %s", query.exclude_id),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = FEATURES_SQL.format(operator=operator(query.metric), where=" AND ".join(where))
    return sql, [vector_text(query.vector), *params, int(query.k)]


def nearest_features(
    query: FeatureQuery, ef_search: int | None = None, probes: int | None = None
) -> list[Neighbour]:
    """The k embeddings nearest ``query.vector`` that pass its filters, nearest first."""
    sql, params = features_sql(query)
    _, rows = scanned(sql, params, query.k, ef_search, probes)
    found = [Neighbour(*row) for row in rows]
    return sorted((n for n in found if defined(n.distance)), key=lambda n: (n.distance, n.id))


def compiled(queryset: QuerySet) -> tuple[str, list]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


# --- Regimes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RegimeMatch:
    regime: VolatilityRegime
    symbol: str
    distance: float


# What a match shows; its signature and statistics stay in the database until asked for
# (deferred fields of the instance).
REGIME_FIELDS = [
    "id",
    "instrument_id",
    "feature_set_id",
    "period_start",
    "period_end",
    "label",
    "cluster",
]


def regimes_queryset(
    current: VolatilityRegime, k: int, ended_by: datetime | None = None
) -> QuerySet:
    distance = CosineDistance("signature", np.asarray(current.signature, dtype=np.float32))
    found = VolatilityRegime.objects.filter(feature_set_id=current.feature_set_id)
    if ended_by is not None:
        found = found.filter(period_end__lte=ended_by)
    return (
        found.exclude(id=current.id)
        .annotate(distance=distance, symbol=F("instrument__symbol"))
        .order_by("distance")
        .values_list(*REGIME_FIELDS, "symbol", "distance")[:k]
    )


def current_regime(instrument: Instrument) -> VolatilityRegime | None:
    return (
        VolatilityRegime.objects.filter(instrument=instrument)
        .order_by("-period_end", "-feature_set_id")
        .first()
    )


def similar_regimes(
    current: VolatilityRegime, k: int = 10, ended_by: datetime | None = None
) -> list[RegimeMatch]:
    """The k past periods (any instrument) whose signatures are nearest ``current``'s, only
    those ending by ``ended_by`` if given (the iterative index scan keeps k rows coming)."""
    names, rows = scanned(*compiled(regimes_queryset(current, k, ended_by)), k)
    found = []
    for row in rows:
        values = dict(zip(names, row, strict=True))
        regime = VolatilityRegime.from_db(
            connection.alias, REGIME_FIELDS, [values[f] for f in REGIME_FIELDS]
        )
        if defined(values["distance"]):
            found.append(RegimeMatch(regime, values["symbol"], values["distance"]))
    return sorted(found, key=lambda m: (m.distance, m.regime.id))


# --- Strategy patterns -----------------------------------------------------------------------
def patterns_queryset(state: np.ndarray, feature_set: FeatureSet, k: int) -> QuerySet:
    distance = CosineDistance("state", np.asarray(state, dtype=np.float32))
    return (
        StrategyPattern.objects.filter(feature_set=feature_set)
        .annotate(distance=distance, symbol=F("instrument__symbol"))
        .order_by("distance")
        .values(
            "id",
            "strategy",
            "symbol",
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
    names, rows = scanned(*compiled(patterns_queryset(state, feature_set, k)), k)
    found = [dict(zip(names, row, strict=True)) for row in rows]
    found = [r for r in found if defined(r["distance"])]
    return sorted(found, key=lambda r: (r["distance"], r["id"]))


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
