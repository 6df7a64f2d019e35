"""Signals, fused signals, news and sentiment in the bulk formats (Arrow, Parquet, CSV): the
JSON pages' rows and columns, oldest first, with the lists' filters; horizons as durations,
JSON as its text, news symbols as lists; every logged-in user reads every row, in bulk as in
JSON and as the application's database role; anonymous users and other actions are refused
in JSON.

The reader opens its own connection: the rows must be committed (``transactional_db``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pyarrow as pa
import pytest
from django.db import connection
from rest_framework import serializers
from rest_framework.test import APIClient

from qvp_site.db import roles
from signals.models import FusedSignal, NewsArticle, Signal, SocialSentiment
from tests.bulk import assert_same_rows, bulk_table, json_rows
from tests.clients import client_of
from tests.signals.conftest import START
from tests.signals.test_api import user_with

pytestmark = pytest.mark.django_db(transaction=True)

SIGNALS = "/api/v1/signals/"
FUSED = "/api/v1/signals/fused/"
NEWS = "/api/v1/news/"
SENTIMENT = "/api/v1/sentiment/"
WEEK = {"start": START.isoformat(), "end": (START + timedelta(days=7)).isoformat()}
HOURS = 30  # rows per instrument (and agent) in the week, one an hour from START + 1 h


def at(hour: int, microseconds: int = 0):
    return START + timedelta(hours=hour, microseconds=microseconds)


@pytest.fixture
def world(partitioned, aapl, msft, momentum, reversion):
    """A week of each list's rows, and one row before it and one after it (outside WEEK)."""
    hours = [-1, *range(1, HOURS + 1), 7 * 24]
    pairs = [(agent, instrument) for agent in (momentum, reversion) for instrument in (aapl, msft)]
    Signal.objects.bulk_create(
        Signal(
            agent=agent,
            instrument=instrument,
            ts=at(h, microseconds=7),
            direction=1 if h % 2 else -1,
            strength=0.25 if h % 2 else -0.5,
            confidence=0.75,
            horizon=timedelta(days=h % 3 + 1, seconds=90, microseconds=5),
            explanation={"reason": f"=hour {h}", "features": {"r": h / 10}},
        )
        for agent, instrument in pairs
        for h in hours
    )
    FusedSignal.objects.bulk_create(
        FusedSignal(
            instrument=instrument,
            ts=at(h),
            target_weight=0.125 * (h % 5),
            confidence=0.5,
            method=method,
            inputs=[{"agent": "momentum_agent", "weight": 1.0}],
            input_count=1,
        )
        for instrument in (aapl, msft)
        for method in ("weighted", "vote")
        for h in hours
    )
    NewsArticle.objects.bulk_create(
        NewsArticle(
            ts=at(h),
            source="wire" if h % 2 else "blog",
            headline=f"story {h}",
            body="+ a body a spreadsheet would read as a formula",
            url=f"https://news.example/{h}",
            symbols=["AAPL", "MSFT"] if h % 3 == 0 else ["AAPL"],
            sentiment=None if h % 4 == 0 else 0.5,
        )
        for h in hours
    )
    SocialSentiment.objects.bulk_create(
        SocialSentiment(
            instrument=instrument,
            ts=at(h),
            platform=platform,
            sentiment=-0.25,
            mentions=100 + h,
            bullish=40,
            bearish=30,
        )
        for instrument in (aapl, msft)
        for platform in ("reddit", "x")
        for h in hours
    )


@pytest.fixture
def reader(django_user_model):
    """A logged-in user with no permission at all: the lists need none to be read."""
    return client_of(user_with("reader"))


@pytest.fixture
def auditor(django_user_model):
    return client_of(user_with("auditor", group="auditors"))


JSON_COLUMNS = ("explanation", "inputs")


def canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


def as_json_rows(table: pa.Table) -> pa.Table:
    """``table`` with its durations as the JSON list writes them, and its JSON texts
    canonical (keys sorted: PostgreSQL's jsonb text orders them its own way)."""
    duration = serializers.DurationField()
    for index, name in enumerate(table.column_names):
        values = table.column(name).to_pylist()
        if pa.types.is_duration(table.schema.field(name).type):
            texts = [duration.to_representation(v) for v in values]
            table = table.set_column(index, name, pa.array(texts))
        elif name in JSON_COLUMNS:
            table = table.set_column(
                index, name, pa.array([canonical(json.loads(v)) for v in values])
            )
    return table


def same_as_json(table: pa.Table, rows: list[dict]) -> None:
    """``assert_same_rows``, the JSON columns compared as their canonical text."""
    texts = [{k: canonical(v) if k in JSON_COLUMNS else v for k, v in r.items()} for r in rows]
    assert_same_rows(as_json_rows(table), texts)


def csv_rows(client: APIClient, url: str, params: dict) -> list[dict]:
    response = client.get(url, {**params, "format": "csv"})
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


# --- Signals -------------------------------------------------------------------------------
def test_signals_in_arrow_are_the_json_pages_oldest_first(world, reader):
    table = bulk_table(reader, SIGNALS, WEEK)
    rows = json_rows(reader, SIGNALS, WEEK)
    assert table.num_rows == len(rows) == 4 * HOURS
    same_as_json(table, rows)
    assert table.column_names[:3] == ["agent", "symbol", "id"]  # as the JSON rows have them
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("horizon").type == pa.duration("us")
    assert schema.field("direction").type == pa.int16()
    assert schema.field("strength").type == pa.float64()
    assert schema.field("explanation").type == pa.string()
    first = table.slice(0, 1).to_pylist()[0]
    assert first["ts"] == at(1, microseconds=7)  # microseconds survive
    assert first["horizon"] == timedelta(days=2, seconds=90, microseconds=5)
    moments = table.column("ts").to_pylist()
    assert moments == sorted(moments)


def test_signals_in_parquet_and_csv_hold_the_same_rows(world, reader):
    arrow = bulk_table(reader, SIGNALS, WEEK)
    assert bulk_table(reader, SIGNALS, WEEK, "parquet").equals(arrow)
    rows = csv_rows(reader, SIGNALS, WEEK)
    assert len(rows) == arrow.num_rows
    first, expected = rows[0], arrow.slice(0, 1).to_pylist()[0]
    assert (first["agent"], first["symbol"]) == (expected["agent"], expected["symbol"])
    assert int(first["horizon"]) == expected["horizon"] // timedelta(microseconds=1)
    explanation = json.loads(first["explanation"])  # the JSON text, whole
    assert explanation == json.loads(expected["explanation"])
    assert explanation["reason"].startswith("=hour")  # inside the JSON, not a formula's start


def test_the_signals_filters_narrow_the_bulk_rows(world, reader):
    query = {**WEEK, "agent": "reversion_agent", "symbols": "MSFT"}
    table = bulk_table(reader, SIGNALS, query)
    assert table.num_rows == HOURS
    assert set(table.column("agent").to_pylist()) == {"reversion_agent"}
    assert set(table.column("symbol").to_pylist()) == {"MSFT"}
    same_as_json(table, json_rows(reader, SIGNALS, query))
    day = {"start": at(1).isoformat(), "end": at(3).isoformat()}  # hours 1 and 2
    assert bulk_table(reader, SIGNALS, day).num_rows == 4 * 2


def test_an_empty_range_of_signals_has_the_schema_of_a_full_one(world, reader):
    empty = {"start": "2023-01-02T00:00:00Z", "end": "2023-01-03T00:00:00Z"}
    table = bulk_table(reader, SIGNALS, empty)
    assert table.num_rows == 0
    assert table.schema.equals(bulk_table(reader, SIGNALS, WEEK).schema)


def test_bad_bulk_parameters_are_refused_in_json_naming_them(world, reader):
    for query, named in [
        ({"format": "arrow"}, {"start", "end"}),
        ({**WEEK, "symbols": "NOPE", "format": "parquet"}, {"symbols"}),
        (
            {"start": "2024-01-01T00:00:00Z", "end": "2025-06-01T00:00:00Z", "format": "csv"},
            {"end"},
        ),
    ]:
        response = reader.get(SIGNALS, query)
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == named


def test_one_signal_is_not_offered_in_a_bulk_format(world, reader):
    signal = Signal.objects.filter(ts__gte=START).first()
    response = reader.get(f"{SIGNALS}{signal.pk}/", {"format": "arrow"})
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"


def test_a_bulk_read_of_signals_takes_a_bounded_number_of_queries(
    world, reader, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = reader.get(SIGNALS, {**WEEK, "format": "arrow"})
        body = b"".join(response.streaming_content)
    assert pa.ipc.open_stream(body).read_all().num_rows == 4 * HOURS


# --- Fused signals, news, sentiment -----------------------------------------------------------
def test_fused_signals_in_bulk_are_the_json_pages(world, reader):
    table = bulk_table(reader, FUSED, WEEK)
    assert table.num_rows == 4 * HOURS
    same_as_json(table, json_rows(reader, FUSED, WEEK))
    assert set(table.column("symbol").to_pylist()) == {"AAPL", "MSFT"}
    assert table.schema.field("input_count").type == pa.int32()
    assert table.schema.field("inputs").type == pa.string()
    query = {**WEEK, "method": "vote", "symbols": "AAPL"}
    narrowed = bulk_table(reader, FUSED, query, "parquet")
    assert narrowed.num_rows == HOURS
    assert set(narrowed.column("method").to_pylist()) == {"vote"}
    assert len(csv_rows(reader, FUSED, query)) == HOURS


def test_news_in_bulk_are_the_json_pages_symbols_as_lists(world, reader):
    table = bulk_table(reader, NEWS, WEEK)
    assert table.num_rows == HOURS
    same_as_json(table, json_rows(reader, NEWS, WEEK))
    assert table.schema.field("symbols").type == pa.list_(pa.string())
    about_msft = bulk_table(reader, NEWS, {**WEEK, "symbol": "MSFT", "source": "wire"})
    assert about_msft.num_rows == len([h for h in range(1, HOURS + 1) if h % 6 == 3])
    assert all("MSFT" in s for s in about_msft.column("symbols").to_pylist())
    assert bulk_table(reader, NEWS, WEEK, "parquet").equals(table)
    rows = csv_rows(reader, NEWS, WEEK)
    assert len(rows) == HOURS
    assert rows[2]["symbols"] == '["AAPL", "MSFT"]'  # hour 3: the array as JSON
    assert rows[0]["body"].startswith("'+ a body")  # no formula for a spreadsheet to run


def test_sentiment_in_bulk_is_the_json_pages(world, reader):
    table = bulk_table(reader, SENTIMENT, WEEK)
    assert table.num_rows == 4 * HOURS
    same_as_json(table, json_rows(reader, SENTIMENT, WEEK))
    assert table.schema.field("mentions").type == pa.int32()
    query = {**WEEK, "platform": "x", "symbols": "MSFT"}
    narrowed = bulk_table(reader, SENTIMENT, query, "parquet")
    assert narrowed.num_rows == HOURS
    assert set(narrowed.column("symbol").to_pylist()) == {"MSFT"}
    assert len(csv_rows(reader, SENTIMENT, query)) == HOURS


# --- Who reads ---------------------------------------------------------------------------------
@pytest.mark.parametrize("url", [SIGNALS, FUSED, NEWS, SENTIMENT])
def test_anonymous_users_are_refused_in_json(world, url):
    response = APIClient().get(url, {**WEEK, "format": "arrow"})
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize("url", [SIGNALS, FUSED, NEWS, SENTIMENT])
def test_every_logged_in_user_reads_every_row_as_in_json(world, reader, auditor, url):
    """No account owns these rows: a user without any permission and an auditor read the
    same rows, all of them, in bulk as in JSON."""
    expected = bulk_table(reader, url, WEEK)
    assert sorted(expected.column("id").to_pylist()) == sorted(
        row["id"] for row in json_rows(reader, url, WEEK)
    )
    assert bulk_table(auditor, url, WEEK).equals(expected)


@pytest.fixture
def as_app_role_for_the_session(transactional_db, app_role_password):
    """Django's connection as trading_app, as the served site's: each request's transaction
    commits as served, and the bulk reader acts as the role it finds. Reset afterwards."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


@pytest.mark.parametrize("url", [SIGNALS, FUSED, NEWS, SENTIMENT])
def test_the_application_role_reads_the_same_rows(world, reader, as_app_role_for_the_session, url):
    expected = bulk_table(reader, url, WEEK)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    assert bulk_table(reader, url, WEEK).equals(expected)
    assert len(csv_rows(reader, url, WEEK)) == expected.num_rows
