"""Feature embeddings through the client: the list in Arrow with and without its vectors,
and the search of the nearest, the JSON API's answer as a frame."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pyarrow as pa
import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command
from qvp_client import Client, Refused

from qvp_site.tokens import create_token
from tests.vectors.conftest import END, load_demo
from vectors import embeddings, patterns, regimes
from vectors.models import FEATURE_DIMENSIONS, FeatureEmbedding


def researcher(live_server) -> tuple[Client, str]:
    _, key = create_token(get_user_model().objects.create_user("researcher"), "search")
    return Client(live_server.url, key), key


@pytest.fixture
def searcher(live_server, transactional_db, no_connection_left) -> Iterator[Client]:
    embeddings.build(load_demo(("AAPL", "SPY"), 7).values())
    client, _ = researcher(live_server)
    with client:
        yield client


def test_features_and_their_nearest(searcher):
    start, end = END - timedelta(days=14), END + timedelta(days=1)
    with_vectors = searcher.features(start, end, symbols=["AAPL"], output="arrow")
    stored = FeatureEmbedding.objects.filter(instrument__symbol="AAPL")
    assert with_vectors.num_rows == stored.count() > 0
    kind = with_vectors.schema.field("embedding").type
    assert kind == pa.list_(pa.float32(), FEATURE_DIMENSIONS)
    first = stored.order_by("ts", "id").first()
    assert with_vectors["id"][0].as_py() == first.id
    assert with_vectors["embedding"][0].as_py() == pytest.approx(list(first.embedding))

    without = searcher.features(start, end, symbols="AAPL", vectors=False)
    assert "embedding" not in without.columns
    assert without["id"].tolist() == with_vectors["id"].to_pylist()

    nearest = searcher.similar_features(id=first.id, k=5)
    assert len(nearest) == 5
    assert first.id not in nearest["id"].tolist()
    assert nearest["distance"].is_monotonic_increasing
    assert str(nearest["ts"].dtype) == "datetime64[us, UTC]"
    by_vector = searcher.similar_features(list(first.embedding), k=1, symbols=["SPY"])
    assert by_vector["symbol"].tolist() == ["SPY"]

    with pytest.raises(Refused) as refused:
        searcher.similar_features([1.0, 2.0])
    assert [p.field for p in refused.value.problems] == ["vector"]


def test_similar_regimes_and_recommendations_are_the_json_apis(
    live_server, transactional_db, no_connection_left
):
    built = load_demo(("SPY", "NVDA"), 80)
    regimes.build(built.values())
    call_command("build_patterns", "--no-progress", stdout=StringIO())
    client, key = researcher(live_server)
    root = f"{live_server.url}/api/v1/vectors/"

    def by_hand(path: str, params: dict) -> dict:
        headers = {"Authorization": f"Token {key}"}
        response = requests.get(root + path, params=params, headers=headers, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    with client:
        found = client.similar_regimes("SPY", k=4)
        expected = by_hand("regimes/similar/", {"symbol": "SPY", "k": 4})
        assert found.current == expected["current"]
        assert found.similar["id"].tolist() == [r["id"] for r in expected["similar"]]
        assert found.similar["distance"].tolist() == [r["distance"] for r in expected["similar"]]

        advice = client.recommend_strategies("SPY", k=30, output="polars")
        expected = by_hand("strategies/recommend/", {"symbol": "SPY", "k": 30})
        assert advice.best == expected["best"] in patterns.STRATEGIES
        assert advice.ranked["strategy"].to_list() == [r["strategy"] for r in expected["ranked"]]
        assert advice.evidence.height == 30
        assert advice.as_of.isoformat().startswith("2024-05-17T20:00")
