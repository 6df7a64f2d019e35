"""The signals API: batch validation by index and field, nothing written from a bad batch,
filters, permissions (auditors and users without the permission read only), fusion,
performance, news and agents with their metrics."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from rest_framework.test import APIClient

from marketdata.security_master import today
from signals.models import (
    Agent,
    AgentMetric,
    AlternativeData,
    FusedSignal,
    NewsArticle,
    Signal,
    SignalPerformance,
    SocialSentiment,
)
from tests.clients import client_of
from tests.signals.conftest import START

T = START + timedelta(hours=14)
WRITES = [
    "add_signal",
    "add_fusedsignal",
    "add_newsarticle",
    "add_agent",
    "change_agent",
    "add_agentmetric",
]


def user_with(name: str, *codenames: str, group: str | None = None):
    user = get_user_model().objects.create_user(name, password=f"pw-{name}-1234")
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def writer(db):
    return client_of(user_with("writer", *WRITES))


@pytest.fixture
def reader(db):
    return client_of(user_with("reader"))


@pytest.fixture
def auditor(db):
    return client_of(user_with("auditor", *WRITES, group="auditors"))


@pytest.fixture
def world(partitioned, aapl, msft, momentum, reversion):
    return {"aapl": aapl, "msft": msft, "momentum": momentum, "reversion": reversion}


def item(minutes=0, **changes) -> dict:
    return {
        "agent": "momentum_agent",
        "symbol": "AAPL",
        "ts": (T + timedelta(minutes=minutes)).isoformat(),
        "strength": 0.4,
        "confidence": 0.7,
        "horizon": "1 00:00:00",
        "explanation": {"features": {"return_20d": 0.031}, "reason": "20-day return above 0"},
        **changes,
    }


URLS = ["/api/v1/signals/", "/api/v1/signals/fused/", "/api/v1/signals/performance/",
        "/api/v1/news/", "/api/v1/agents/"]  # fmt: skip


@pytest.mark.parametrize("url", URLS)
def test_every_endpoint_refuses_anonymous_users(db, url):
    assert APIClient().get(url).status_code in (401, 403)
    assert APIClient().post(url, [], format="json").status_code in (401, 403)


def test_a_batch_is_written_in_one_statement(world, writer, django_assert_max_num_queries):
    batch = [item(minutes=k, symbol="AAPL" if k % 2 else "MSFT") for k in range(300)]
    # Auth and the acting user (7), agents, symbols, partitions (6 on plain PostgreSQL), the
    # insert: the same for 3 signals or 10,000.
    with django_assert_max_num_queries(16):
        response = writer.post("/api/v1/signals/", batch, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"created": 300, "unchanged": 0}
    signal = Signal.objects.get(instrument__symbol="MSFT", ts=T)
    assert signal.direction == 1  # from the strength's sign
    assert signal.horizon == timedelta(days=1)
    assert signal.explanation["reason"] == "20-day return above 0"
    again = writer.post("/api/v1/signals/", batch[:2], format="json")
    assert again.status_code == 200
    assert again.json() == {"created": 0, "unchanged": 2}


def test_a_bad_batch_is_refused_whole_naming_item_and_field(world, writer):
    batch = [
        item(),
        item(minutes=1, confidence=1.5),
        item(minutes=2, strength="NaN"),
        item(minutes=3, agent="nobody"),
        item(minutes=4, symbol="ZZZZ"),
        item(minutes=5, direction=-1),
        item(minutes=6, horizon="0"),
        item(minutes=7, explanation=[1, 2]),
        item(),  # repeats item 0
    ]
    response = writer.post("/api/v1/signals/", batch, format="json")
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {str(i) for i in range(1, 9)}
    assert "less than or equal to 1" in errors["1"]["confidence"][0]
    assert errors["2"]["strength"] == ["A valid number is required."]
    assert errors["3"]["agent"] == ["unknown agent 'nobody'"]
    assert errors["4"]["symbol"][0].startswith("unknown symbol ZZZZ on ")
    assert errors["5"]["direction"] == ["is -1 while strength 0.4 says 1"]
    assert errors["6"]["horizon"] == ["must be positive and at most 366 days"]
    assert "object" in errors["7"]["explanation"][0]
    assert errors["8"]["ts"] == ["repeats the agent, symbol and time of item 0"]
    assert Signal.objects.count() == 0


def test_a_single_signal_and_the_list_filters(world, writer, reader):
    assert writer.post("/api/v1/signals/", item(), format="json").status_code == 201
    writer.post(
        "/api/v1/signals/",
        [item(minutes=5, symbol="MSFT"), item(minutes=9, agent="reversion_agent", strength=-0.2)],
        format="json",
    )
    listed = reader.get("/api/v1/signals/").json()["results"]
    assert [s["ts"][11:16] for s in listed] == ["14:09", "14:05", "14:00"]
    assert listed[0]["agent"] == "reversion_agent"
    assert listed[0]["direction"] == -1
    by_agent = reader.get("/api/v1/signals/", {"agent": "reversion_agent"}).json()["results"]
    assert len(by_agent) == 1
    by_symbol = reader.get("/api/v1/signals/", {"symbols": "MSFT"}).json()["results"]
    assert [s["symbol"] for s in by_symbol] == ["MSFT"]
    since = (T + timedelta(minutes=1)).isoformat()
    until = (T + timedelta(minutes=6)).isoformat()
    ranged = reader.get("/api/v1/signals/", {"since": since, "until": until}).json()["results"]
    assert [s["symbol"] for s in ranged] == ["MSFT"]
    bad = reader.get("/api/v1/signals/", {"symbols": "ZZZZ"})
    assert bad.status_code == 400
    assert "symbols" in bad.json()


def test_writes_need_the_permission_and_auditors_only_read(world, reader, auditor):
    for client in (reader, auditor):
        assert client.post("/api/v1/signals/", [item()], format="json").status_code == 403
        assert client.post("/api/v1/signals/fused/", {}, format="json").status_code == 403
        assert client.post("/api/v1/news/", [], format="json").status_code == 403
        assert client.post("/api/v1/agents/", {"name": "x"}, format="json").status_code == 403
        assert client.get("/api/v1/signals/").status_code == 200
    assert Signal.objects.count() == 0


def test_fusion_and_performance(world, writer, reader):
    writer.post("/api/v1/signals/", [item(), item(agent="reversion_agent", strength=-0.8,
                                               confidence=0.5)], format="json")  # fmt: skip
    response = writer.post(
        "/api/v1/signals/fused/",
        {"as_of": (T + timedelta(hours=1)).isoformat(), "symbols": "AAPL"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    (fused,) = response.json()
    # Both agents unmeasured: the same prior skill, so confidence alone weighs them.
    assert fused["target_weight"] == pytest.approx((0.7 * 0.4 + 0.5 * -0.8) / 1.2)
    assert fused["method"] == "confidence_performance_weighted"
    assert {i["agent"] for i in fused["inputs"]} == {"momentum_agent", "reversion_agent"}
    assert FusedSignal.objects.count() == 1
    listed = reader.get("/api/v1/signals/fused/", {"symbols": "AAPL"}).json()["results"]
    assert listed[0]["id"] == fused["id"]
    SignalPerformance.objects.create(
        agent=world["momentum"], window_days=30, window_start=T - timedelta(days=30),
        window_end=T, signal_count=12, hit_rate=0.5,
    )  # fmt: skip
    rows = reader.get("/api/v1/signals/performance/", {"agent": "momentum_agent"}).json()
    assert [(r["agent"], r["window_days"], r["hit_rate"]) for r in rows["results"]] == [
        ("momentum_agent", 30, 0.5)
    ]
    assert reader.get("/api/v1/signals/performance/", {"days": "0"}).status_code == 400


def test_news_batches_go_through_the_ingest_checks(world, writer, reader):
    article = {"ts": T.isoformat(), "source": "Reuters", "headline": "Apple up",
               "symbols": ["AAPL"], "sentiment": 0.5}  # fmt: skip
    bad = [article, {**article, "headline": "b", "sentiment": 1.5},
           {**article, "headline": "c", "symbols": ["ZZZZ"]}]  # fmt: skip
    response = writer.post("/api/v1/news/", bad, format="json")
    assert response.status_code == 400
    assert "less than or equal to 1" in response.json()["1"]["sentiment"][0]
    response = writer.post("/api/v1/news/", [article, bad[2]], format="json")
    assert response.status_code == 400
    assert response.json() == {"1": ["unknown symbol(s) ZZZZ"]}
    assert NewsArticle.objects.count() == 0
    response = writer.post("/api/v1/news/", [article], format="json")
    assert response.json() == {"created": 1, "unchanged": 0}
    listed = reader.get("/api/v1/news/", {"symbol": "AAPL"}).json()["results"]
    assert [a["headline"] for a in listed] == ["Apple up"]
    assert reader.get("/api/v1/news/", {"symbol": "MSFT"}).json()["results"] == []


def test_agents_with_their_metrics(world, writer, reader, django_assert_max_num_queries):
    metric = {"ts": T.isoformat(), "latency_ms": 12.5, "errors": 1, "signals_emitted": 40}
    url = f"/api/v1/agents/{world['momentum'].id}/metrics/"
    assert writer.post(url, metric, format="json").status_code == 201
    later = {**metric, "ts": (T + timedelta(minutes=5)).isoformat(), "latency_ms": 8.0}
    writer.post(url, later, format="json")
    assert writer.post(url, {**metric, "latency_ms": "NaN"}, format="json").status_code == 400
    assert reader.post(url, metric, format="json").status_code == 403
    for k in range(5):  # more agents, not more queries
        Agent.objects.create(name=f"extra_{k}", kind="other")
    # Auth and the acting user (5), the count, the agents with their latest metric, their
    # performance.
    with django_assert_max_num_queries(8):
        agents = {a["name"]: a for a in reader.get("/api/v1/agents/").json()["results"]}
    assert agents["momentum_agent"]["latest_metric"]["latency_ms"] == 8.0
    assert agents["reversion_agent"]["latest_metric"] is None
    assert [m["latency_ms"] for m in reader.get(url).json()["results"]] == [8.0, 12.5]
    assert AgentMetric.objects.count() == 2
    created = writer.post("/api/v1/agents/", {"name": "news_agent", "kind": "sentiment"},
                          format="json")  # fmt: skip
    assert created.status_code == 201
    bad = writer.post("/api/v1/agents/", {"name": "x", "kind": "astrology"}, format="json")
    assert "kind" in bad.json()


def test_the_application_role_writes_signals_and_fuses(world, writer, as_app_role):
    """As the served site runs: trading_app, which owns nothing and runs no DDL."""
    response = writer.post("/api/v1/signals/", [item(), item(minutes=1)], format="json")
    assert response.status_code == 201, response.json()
    fused = writer.post("/api/v1/signals/fused/", {"as_of": T.isoformat()}, format="json")
    assert fused.status_code == 201, fused.json()


def test_social_sentiment_by_symbol_platform_and_time(world, reader, django_assert_max_num_queries):
    for hours, (instrument, platform) in enumerate(
        [(world["aapl"], "x"), (world["aapl"], "reddit"), (world["msft"], "x")]
    ):
        SocialSentiment.objects.create(
            instrument=instrument,
            ts=T + timedelta(hours=hours),
            platform=platform,
            sentiment=0.2 * hours,
            mentions=10 + hours,
        )
    with django_assert_max_num_queries(8):  # the instruments joined, not one query a row
        rows = reader.get("/api/v1/sentiment/").json()["results"]
    assert [(r["symbol"], r["platform"]) for r in rows] == [
        ("MSFT", "x"),
        ("AAPL", "reddit"),
        ("AAPL", "x"),
    ]
    aapl_x = reader.get("/api/v1/sentiment/?symbols=AAPL&platform=x").json()["results"]
    assert [(r["symbol"], r["mentions"]) for r in aapl_x] == [("AAPL", 10)]
    later = reader.get(f"/api/v1/sentiment/?since={(T + timedelta(hours=1)).isoformat()}")
    assert len(later.json()["results"]) == 2
    refused = reader.get("/api/v1/sentiment/?since=yesterday")
    assert refused.status_code == 400
    assert "since" in refused.json()
    # Read-only: loaded by their feeds, never through the API.
    assert reader.post("/api/v1/sentiment/", {}, format="json").status_code in (403, 405)
    assert SocialSentiment.objects.count() == 3


def test_alternative_data_by_kind_source_symbol_and_payload(world, reader):
    rows = [
        ("orbital", "parking_lots", world["aapl"], {"region": "EU", "cars": 120}),
        ("orbital", "parking_lots", world["msft"], {"region": "US", "cars": 80}),
        ("cards", "spending", None, {"region": "EU", "usd": 1.5e6}),
    ]
    for hours, (source, kind, instrument, payload) in enumerate(rows):
        AlternativeData.objects.create(
            ts=T + timedelta(hours=hours),
            source=source,
            kind=kind,
            instrument=instrument,
            payload=payload,
        )

    def kinds(query: str) -> list[tuple]:
        answer = reader.get(f"/api/v1/alternative-data/{query}")
        assert answer.status_code == 200, answer.content
        return [(r["kind"], r["symbol"]) for r in answer.json()["results"]]

    assert kinds("?kind=parking_lots") == [("parking_lots", "MSFT"), ("parking_lots", "AAPL")]
    assert kinds("?source=cards") == [("spending", None)]
    assert kinds("?symbols=AAPL") == [("parking_lots", "AAPL")]
    unknown = reader.get("/api/v1/alternative-data/?symbols=NOPE")
    assert unknown.status_code == 400
    assert unknown.json()["symbols"] == [f"unknown symbol NOPE on {today()}"]
    assert kinds('?contains={"region": "EU"}') == [("spending", None), ("parking_lots", "AAPL")]
    refused = reader.get("/api/v1/alternative-data/?contains=[1, 2]")
    assert refused.status_code == 400
    assert refused.json()["contains"] == ["must be a JSON object"]


@pytest.mark.parametrize("url", ["/api/v1/sentiment/", "/api/v1/alternative-data/"])
def test_sentiment_and_alternative_data_refuse_anonymous_users(db, url):
    assert APIClient().get(url).status_code in (401, 403)
