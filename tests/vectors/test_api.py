"""The vectors API: searches, and refusals that name the field."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from vectors import embeddings, regimes
from vectors.models import FeatureEmbedding

SEARCH = "/api/v1/vectors/features/search/"
SIMILAR = "/api/v1/vectors/regimes/similar/"


@pytest.fixture
def built(week_of_bars):
    embeddings.build(week_of_bars.values())
    return week_of_bars


def test_anonymous_requests_are_refused(db):
    assert APIClient().post(SEARCH, {}, format="json").status_code in (401, 403)
    assert APIClient().get(SIMILAR, {"symbol": "SPY"}).status_code in (401, 403)


def test_search_by_a_stored_embedding(api, built, django_assert_max_num_queries):
    stored = FeatureEmbedding.objects.filter(instrument__symbol="AAPL").order_by("ts")[30]
    with django_assert_max_num_queries(12):
        response = api.post(SEARCH, {"id": stored.id, "k": 5}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["feature_set"], body["metric"], body["k"]) == ("bars-1m v1", "cosine", 5)
    neighbours = body["neighbours"]
    assert len(neighbours) == 5
    assert stored.id not in [n["id"] for n in neighbours]
    assert [n["distance"] for n in neighbours] == sorted(n["distance"] for n in neighbours)


def test_search_by_a_vector_with_filters(api, built):
    vector = list(FeatureEmbedding.objects.order_by("id").first().embedding)
    response = api.post(
        SEARCH,
        {
            "vector": vector,
            "k": 20,
            "metric": "l2",
            "symbols": "SPY",
            "start": "2024-05-14",
            "end": "2024-05-16",
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    neighbours = response.json()["neighbours"]
    assert len(neighbours) == 20
    assert {n["symbol"] for n in neighbours} == {"SPY"}
    assert all("2024-05-14" <= n["ts"] < "2024-05-16" for n in neighbours)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"vector": [0.0] * 127}, "vector", "must have 128 dimensions, not 127"),
        ({"vector": ["NaN"] + [0.0] * 127}, "vector", "A valid number is required"),
        ({"metric": "manhattan"}, "metric", "not a valid choice"),
        ({"k": 1001}, "k", "less than or equal to 1000"),
        ({"k": 0}, "k", "greater than or equal to 1"),
        ({"vector": None, "id": 999999}, "id", "no embedding 999999"),
        ({"symbols": "ZZZ"}, "symbols", "unknown symbol ZZZ on "),
        ({"feature_set": "nope"}, "feature_set", "no feature set 'nope'"),
        ({"start": "2024-05-16", "end": "2024-05-14"}, "end", "must be after start"),
        ({"id": 1}, "vector", "give either a vector or an id"),
    ],
)
def test_bad_searches_are_refused_naming_the_field(api, built, change, field, message):
    payload = {"vector": [0.0] * 128, **change}
    payload = {k: v for k, v in payload.items() if v is not None}
    response = api.post(SEARCH, payload, format="json")
    assert response.status_code == 400
    assert message in str(response.json()[field])


def test_nan_sent_as_a_json_literal_is_refused(api, built):
    body = '{"vector": [NaN' + ", 0" * 127 + "]}"
    response = api.generic("POST", SEARCH, body, content_type="application/json")
    assert response.status_code == 400


def test_similar_regimes(api, months_of_bars):
    regimes.build(months_of_bars.values())
    response = api.get(SIMILAR, {"symbol": "SPY", "k": 4})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["current"]["symbol"] == "SPY"
    assert body["current"]["label"] in regimes.LABELS
    assert len(body["similar"]) == 4
    assert all(r["label"] and r["distance"] >= 0 for r in body["similar"])


def test_similar_regimes_refusals(api, week_of_bars):
    assert "unknown symbol" in str(api.get(SIMILAR, {"symbol": "ZZZ"}).json()["symbol"])
    response = api.get(SIMILAR, {"symbol": "SPY"})
    assert response.status_code == 400
    assert "no regimes for SPY" in str(response.json()["symbol"])


def test_a_range_that_ends_before_it_starts_is_refused_before_anything_is_looked_up(api, db):
    """With no embeddings stored at all, the request's own bad range is what is refused."""
    payload = {"vector": [1.0] * 128, "start": "2024-05-16", "end": "2024-05-14"}
    response = api.post(SEARCH, payload, format="json")
    assert response.status_code == 400
    assert list(response.json()) == ["end"]
