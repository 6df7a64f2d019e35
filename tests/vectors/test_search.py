"""Nearest-neighbour searches: each metric's order against numpy, filters that still return
k rows, and the HNSW index serving each search (EXPLAIN)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import DataError, connection, transaction
from psycopg.types.json import Jsonb

from marketdata.models import Instrument
from qvp_site.db import engine
from qvp_site.db.binary_copy import copy_columns, copy_rows
from vectors import embeddings, regimes, search
from vectors.models import FeatureEmbedding, VolatilityRegime

from .conftest import plan
from .sets import make_set

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def clustered(n: int, dims: int, seed: int = 0) -> np.ndarray:
    """Points around 20 centres: closer to real features than isotropic noise."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((20, dims)) * 2
    return (centres[rng.integers(0, 20, n)] + rng.standard_normal((n, dims))).astype(np.float32)


@pytest.fixture
def synthetic(db):
    """3,000 clustered 128-d embeddings of three instruments, every 15 minutes, analysed."""
    instruments = [
        Instrument.objects.create(symbol=s, asset_class="equity") for s in ("AAA", "BBB", "CCC")
    ]
    feature_set = make_set("synthetic", 128)
    points = clustered(3000, 128)
    owners = [instruments[i % 3].id for i in range(len(points))]
    times = [T0 + timedelta(minutes=15 * i) for i in range(len(points))]
    closes = np.datetime64("2024-01-01", "us") + np.arange(len(points)) * np.timedelta64(15, "m")
    columns = embeddings.columns(owners, feature_set.id, closes, points, points.astype(float))
    copy_columns(embeddings.TABLE, columns)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vectors_featureembedding")
    ids = np.array(FeatureEmbedding.objects.order_by("ts").values_list("id", flat=True))
    return feature_set, instruments, points, ids, np.array(owners), np.array(times)


def exact(points: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    p, q = points.astype(np.float64), query.astype(np.float64)
    if metric == "l2":
        return np.sqrt(((p - q) ** 2).sum(axis=1))
    if metric == "inner_product":
        return -(p @ q)
    return 1 - (p @ q) / (np.linalg.norm(p, axis=1) * np.linalg.norm(q))


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_each_metric_orders_as_numpy_does(synthetic, metric):
    feature_set, _, points, ids, _, _ = synthetic
    query = clustered(1, 128, seed=9)[0]
    found = search.nearest_features(
        search.FeatureQuery(query, feature_set, k=10, metric=metric), ef_search=400
    )
    distances = exact(points, query, metric)
    order = np.argsort(distances, kind="stable")[:10]
    assert [n.id for n in found] == ids[order].tolist()
    assert np.allclose([n.distance for n in found], distances[order], rtol=1e-4, atol=1e-4)


def test_a_filtered_search_returns_k_rows_that_pass_the_filters(synthetic):
    feature_set, instruments, points, ids, owners, times = synthetic
    start, end = T0 + timedelta(days=5), T0 + timedelta(days=20)
    query = search.FeatureQuery(
        points[0], feature_set, k=40, instruments=[instruments[1].id], start=start, end=end
    )
    found = search.nearest_features(query)
    assert len(found) == 40
    assert {n.symbol for n in found} == {"BBB"}
    assert all(start <= n.ts < end for n in found)
    # And they are the nearest such rows (exact answer from numpy over the same filter).
    allowed = (owners == instruments[1].id) & (times >= start) & (times < end)
    distances = np.where(allowed, exact(points, points[0], "cosine"), np.inf)
    best = set(ids[np.argsort(distances)[:40]].tolist())
    assert len(best & {n.id for n in found}) >= 38  # approximate search: recall 0.95


def test_searching_by_a_stored_embedding_leaves_it_out(synthetic):
    feature_set, _, points, ids, _, _ = synthetic
    query = search.FeatureQuery(points[5], feature_set, k=5, exclude_id=int(ids[5]))
    assert int(ids[5]) not in [n.id for n in search.nearest_features(query)]


def test_the_feature_search_uses_its_hnsw_index(synthetic):
    # 3,000 analysed rows: the planner picks the index on its own costs (no enable_seqscan).
    feature_set, instruments, points, *_ = synthetic
    query = search.FeatureQuery(points[0], feature_set, k=10)
    assert "Index Scan using featureembedding_cosine_hnsw" in plan(*search.features_sql(query), 10)
    # Filters keep the index (the iterative scan goes on past rows the filter drops).
    filtered = search.FeatureQuery(
        points[0], feature_set, k=10, instruments=[instruments[0].id], start=T0 + timedelta(days=2)
    )
    assert "Index Scan using featureembedding_cosine_hnsw" in plan(
        *search.features_sql(filtered), 10
    )


def test_the_regime_search_uses_its_hnsw_index(db):
    instrument = Instrument.objects.create(symbol="AAA", asset_class="equity")
    feature_set = make_set("synthetic-regime", 64, kind="regime")
    points = clustered(3000, 64)
    starts = [T0 + timedelta(days=i) for i in range(len(points))]
    copy_rows(
        regimes.TABLE,
        regimes.COLUMNS,
        regimes.TYPES,
        (
            (instrument.id, feature_set.id, s, s + timedelta(hours=20), "", p, Jsonb({}))
            for s, p in zip(starts, points, strict=True)
        ),
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE vectors_volatilityregime")
    current = VolatilityRegime.objects.order_by("-period_end").first()
    queryset = search.regimes_queryset(current, 10)
    assert "Index Scan using volatilityregime_cosine_hnsw" in plan(*search.compiled(queryset), 10)
    matches = search.similar_regimes(current, 10)
    assert len(matches) == 10
    assert {m.symbol for m in matches} == {"AAA"}
    # The signature stays in the database until asked for, and is the stored one then.
    assert "signature" in matches[0].regime.get_deferred_fields()
    stored = points[(matches[0].regime.period_start - T0).days]
    assert np.allclose(matches[0].regime.signature, stored)


SETTINGS = "SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.iterative_scan')"


def settings_now() -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(SETTINGS)
        return cursor.fetchone()


def test_a_search_is_one_round_trip_under_its_own_settings(synthetic, django_assert_num_queries):
    feature_set, _, points, *_ = synthetic
    # On Citus the settings go apart, for the shards (vectors/search.py): within the test's
    # transaction, a savepoint, the settings, the search and the savepoint's rollback and release.
    with django_assert_num_queries(5 if engine.is_citus() else 1):
        assert len(search.nearest_features(search.FeatureQuery(points[0], feature_set))) == 10
    # The settings hold for the statement that searches, in its string...
    assert search.scanned(SETTINGS, [], k=100)[1] == [("100", "relaxed_order")]
    assert search.scanned(SETTINGS, [], k=10, ef_search=25)[1] == [("25", "relaxed_order")]
    # ...and reach nothing after it on the same connection.
    assert settings_now()[1] == "off"


def test_inside_a_transaction_the_search_puts_the_settings_back(synthetic):
    feature_set, _, points, *_ = synthetic
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL hnsw.ef_search = 77")
        assert search.scanned(SETTINGS, [], k=100)[1] == [("100", "relaxed_order")]
        assert len(search.nearest_features(search.FeatureQuery(points[0], feature_set))) == 10
        assert settings_now() == ("77", "off")
    assert settings_now()[1] == "off"


def test_a_failed_search_leaves_the_callers_transaction_usable(synthetic):
    feature_set, _, points, ids, *_ = synthetic
    with transaction.atomic():
        with pytest.raises(DataError, match="different vector dimensions"):
            search.nearest_features(search.FeatureQuery(points[0][:3], feature_set))
        assert settings_now()[1] == "off"
        assert FeatureEmbedding.objects.filter(id=int(ids[0])).exists()


def test_an_unknown_metric_is_refused(synthetic):
    feature_set, _, points, *_ = synthetic
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        search.features_sql(search.FeatureQuery(points[0], feature_set, metric="manhattan"))
