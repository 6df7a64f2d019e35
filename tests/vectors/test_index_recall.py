"""The feature embeddings' HNSW index (vectors/migrations/0006: m 12, ef_construction 48, made
smaller for faster inserts) still finds the true nearest neighbours: recall@10 through the
search service, at its default ef_search, against an exact search in numpy."""

from __future__ import annotations

import numpy as np
from django.db import connection

from marketdata.models import Instrument
from qvp_site.db.binary_copy import copy_columns
from qvp_site.db.vector_indexes import vector_index_definitions
from vectors import embeddings, search
from vectors.models import FeatureEmbedding

from .sets import make_set

RECALL_FLOOR = 0.95  # the search service's promise (README, bench/vectors.py; issue 7)
K = 10


def clustered(n: int, seed: int) -> np.ndarray:
    """Points around the same 100 centres in 128 dimensions, drawn with ``seed``."""
    centres = np.random.default_rng(0).standard_normal((100, 128)) * 2
    rng = np.random.default_rng(seed)
    return (centres[rng.integers(0, 100, n)] + rng.standard_normal((n, 128))).astype(np.float32)


def test_the_feature_index_is_the_one_made_for_writes(db):
    with connection.cursor() as cursor:
        definition = vector_index_definitions(cursor, embeddings.TABLE)
    assert "WITH (m='12', ef_construction='48')" in definition["featureembedding_cosine_hnsw"]


def test_recall_at_10_stays_above_the_floor(db):
    # Inserted with the index in place: each row goes into the graph as an insert does.
    instrument = Instrument.objects.create(symbol="RCL", asset_class="equity")
    feature_set = make_set("recall", 128)
    points = clustered(3000, seed=27)
    closes = np.datetime64("2024-01-01", "us") + np.arange(len(points)) * np.timedelta64(15, "m")
    columns = embeddings.columns(
        instrument.id, feature_set.id, closes, points, points.astype(np.float64)
    )
    copy_columns(embeddings.TABLE, columns)
    ids = np.array(FeatureEmbedding.objects.order_by("ts").values_list("id", flat=True))
    stored = points / np.linalg.norm(points, axis=1, keepdims=True)
    queries = clustered(100, seed=28)
    hits = 0
    for query in queries:
        cosine = stored @ (query / np.linalg.norm(query))
        true = set(ids[np.argsort(-cosine)[:K]].tolist())
        found = search.nearest_features(search.FeatureQuery(query, feature_set, k=K))
        hits += len(true & {n.id for n in found})
    recall = hits / (K * len(queries))
    assert recall >= RECALL_FLOOR, f"recall@10 {recall:.3f} under {RECALL_FLOOR}"
