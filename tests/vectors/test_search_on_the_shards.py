"""A nearest-neighbour search over instruments on several shards: on Citus each shard searches
its own HNSW index and the coordinator merges their nearest, which must still find the true
neighbours (recall@10 against an exact search in numpy, on every engine); a search filtered to
one instrument reads that instrument's one shard."""

from __future__ import annotations

import numpy as np
import pytest
from django.conf import settings

from marketdata.models import Instrument
from qvp_site.db.binary_copy import copy_columns
from tests.plans import explained, plan_nodes, task_counts
from vectors import embeddings, search
from vectors.models import FeatureEmbedding

from .sets import make_set
from .test_index_recall import RECALL_FLOOR, clustered

K = 10
INSTRUMENTS = 12


@pytest.fixture
def stored(db):
    """3,000 clustered points spread over 12 instruments (on Citus, over the shards their
    instruments hash to), with their feature set, instruments, and the points as stored."""
    instruments = [
        Instrument.objects.create(symbol=f"SHD{n}", asset_class="equity").id
        for n in range(INSTRUMENTS)
    ]
    feature_set = make_set("shards", 128)
    points = clustered(3000, seed=31)
    owners = np.array(instruments)[np.arange(len(points)) % INSTRUMENTS]
    closes = np.datetime64("2024-01-01", "us") + np.arange(len(points)) * np.timedelta64(15, "m")
    copy_columns(
        embeddings.TABLE,
        embeddings.columns(owners, feature_set.id, closes, points, points.astype(np.float64)),
    )
    by_time = FeatureEmbedding.objects.filter(feature_set=feature_set).order_by("ts")
    ids = np.array(by_time.values_list("id", flat=True))
    return feature_set, instruments, ids, points / np.linalg.norm(points, axis=1, keepdims=True)


def _plan(query: search.FeatureQuery) -> dict:
    return explained(*search.features_sql(query))


def test_a_search_of_every_instrument_finds_the_true_nearest(stored):
    feature_set, _instruments, ids, unit = stored
    hits = 0
    queries = clustered(60, seed=32)
    for query in queries:
        true = set(ids[np.argsort(-(unit @ (query / np.linalg.norm(query))))[:K]].tolist())
        found = search.nearest_features(search.FeatureQuery(query, feature_set, k=K))
        hits += len(true & {n.id for n in found})
    recall = hits / (K * len(queries))
    assert recall >= RECALL_FLOOR, f"recall@10 {recall:.3f} under {RECALL_FLOOR}"


@pytest.mark.citus
def test_on_citus_every_shard_searches_its_own_index(stored):
    feature_set, _instruments, _ids, _unit = stored
    plan = _plan(search.FeatureQuery(clustered(1, seed=33)[0], feature_set, k=K))
    assert task_counts(plan) == [settings.QVP_CITUS_SHARD_COUNT]
    scans = {n.get("Index Name", "") for n in plan_nodes(plan) if n["Node Type"] == "Index Scan"}
    assert any(name.startswith("featureembedding_cosine_hnsw") for name in scans), scans


@pytest.mark.citus
def test_on_citus_a_search_of_one_instrument_reads_its_one_shard(stored):
    feature_set, instruments, _ids, _unit = stored
    query = search.FeatureQuery(
        clustered(1, seed=34)[0], feature_set, k=K, instruments=[instruments[3]]
    )
    assert task_counts(_plan(query)) == [1]
    found = search.nearest_features(query)
    assert len(found) == K
    assert {n.symbol for n in found} == {"SHD3"}
