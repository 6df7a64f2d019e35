"""The signals list written from plain rows (qvp_site.api.rows.RowsList): byte for byte what
SignalSerializer writes (names for the agent and symbol, floats, durations, JSON, times) for
every filter and page, in a bounded number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from qvp_site.api import rows as api_rows
from signals.models import Signal
from tests.clients import client_of
from tests.signals.conftest import START
from tests.signals.test_api import user_with

T = START + timedelta(hours=14)


@pytest.fixture
def world(partitioned, aapl, msft, momentum, reversion):
    explanations = [{}, {"features": {"return_20d": 0.031}, "reason": "é ✓"}, {"n": None}]
    for n in range(12):
        Signal.objects.create(
            agent=momentum if n % 2 else reversion,
            instrument=aapl if n % 3 else msft,
            ts=T + timedelta(minutes=n, microseconds=n * 7),
            direction=(-1, 0, 1)[n % 3],
            strength=(-0.1234567890123, 0.0, 0.5)[n % 3],
            confidence=1 / (n + 3),
            horizon=timedelta(days=n % 2, seconds=(n + 1) * 61, microseconds=n),
            explanation=explanations[n % 3],
        )


def _drf(monkeypatch, client, url):
    with monkeypatch.context() as patched:
        patched.setattr(api_rows, "plain", lambda *args: False)
        return client.get(url)


URLS = [
    "/api/v1/signals/",
    "/api/v1/signals/?page_size=5",
    "/api/v1/signals/?agent=momentum_agent",
    "/api/v1/signals/?symbols=MSFT",
    "/api/v1/signals/?symbols=AAPL,MSFT&agent=reversion_agent",
    f"/api/v1/signals/?since={(T + timedelta(minutes=3)).isoformat()}"
    f"&until={(T + timedelta(minutes=9)).isoformat()}",
]


@pytest.mark.parametrize("url", URLS)
def test_the_list_is_byte_for_byte_drfs(world, monkeypatch, url):
    client = client_of(user_with("reader"))
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    assert answer.json()["results"], "a list with rows compares something"
    assert answer.content == _drf(monkeypatch, client, url).content


def test_every_page_and_another_time_zone(world, monkeypatch):
    client = client_of(user_with("auditor", group="auditors"))
    url = "/api/v1/signals/?page_size=5"
    pages = 0
    with timezone.override("Asia/Kolkata"):
        while url:
            answer = client.get(url)
            assert answer.content == _drf(monkeypatch, client, url).content
            url, pages = answer.json()["next"], pages + 1
    assert pages == 3
    assert "+05:30" in answer.content.decode()


def test_names_durations_and_json_as_drf_writes_them(world):
    rows = client_of(user_with("reader")).get("/api/v1/signals/?page_size=3").json()["results"]
    assert [r["agent"] for r in rows] == ["momentum_agent", "reversion_agent", "momentum_agent"]
    assert rows[0]["symbol"] == "AAPL"
    assert rows[0]["horizon"] == "1 00:12:12.000011"
    assert rows[0]["explanation"] == {"n": None}


def test_no_query_per_row(world, django_assert_max_num_queries):
    client = client_of(user_with("reader"))
    # The request's own (session, user, savepoint, who acts, release) and the page, joined
    # to its agents and instruments: none per row.
    with django_assert_max_num_queries(6):
        answer = client.get("/api/v1/signals/")
    assert len(answer.json()["results"]) == 12
