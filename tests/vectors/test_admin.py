"""The vectors admin: read-only lists that open in a bounded number of queries, labels shown."""

from __future__ import annotations

import pytest

from vectors import embeddings, patterns, regimes
from vectors.models import FeatureEmbedding, VolatilityRegime


@pytest.fixture
def built(months_of_bars):
    embeddings.build([months_of_bars["SPY"]])
    regimes.build(months_of_bars.values())
    patterns.build([months_of_bars["SPY"]])
    return months_of_bars


@pytest.mark.parametrize(
    "model", ["featureset", "featureembedding", "volatilityregime", "strategypattern"]
)
def test_changelists_open_in_few_queries(admin_client, built, model, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = admin_client.get(f"/admin/vectors/{model}/")
    assert response.status_code == 200


def test_regimes_show_their_labels_and_nothing_can_be_edited(admin_client, built):
    page = admin_client.get("/admin/vectors/volatilityregime/").content.decode()
    labels = set(VolatilityRegime.objects.values_list("label", flat=True))
    assert all(label in page for label in labels)
    assert "Add volatility regime" not in page
    embedding = FeatureEmbedding.objects.first()
    response = admin_client.post(f"/admin/vectors/featureembedding/{embedding.id}/change/", {})
    assert response.status_code == 403
