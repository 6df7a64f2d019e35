"""The named queries and the indexes that serve them."""

from __future__ import annotations

import pytest
from django.db import connection

from signals.models import AlternativeData, NewsArticle
from tests.signals.conftest import START


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.fixture
def alternative(partitioned, aapl):
    rows = [
        {"region": "US", "metric": "parking", "cars": 310},
        {"region": "EU", "metric": "parking", "cars": 120},
        {"region": "US", "metric": "card_spend", "usd": 1.2e6},
    ]
    for k, payload in enumerate(rows):
        AlternativeData.objects.create(
            ts=START, source=f"vendor-{k}", kind=payload["metric"], payload=payload
        )


def test_alternative_data_by_payload_uses_the_gin_index(alternative):
    found = AlternativeData.objects.matching(region="US", metric="parking")
    assert [row.payload["cars"] for row in found] == [310]
    assert AlternativeData.objects.of_kind("card_spend").matching(region="US").count() == 1
    # (Partitions name their copies of the index after themselves.)
    assert "Index Cond: (payload @>" in plan(AlternativeData.objects.matching(region="US"))


def test_news_about_a_symbol_uses_the_gin_index(partitioned):
    for k, symbols in enumerate([["AAPL"], ["AAPL", "MSFT"], ["MSFT"]]):
        NewsArticle.objects.create(ts=START, source="R", headline=f"h{k}", symbols=symbols)
    assert NewsArticle.objects.about("AAPL").count() == 2
    assert NewsArticle.objects.about("AAPL", "MSFT").count() == 1
    assert "Index Cond: (symbols @>" in plan(NewsArticle.objects.about("MSFT"))
