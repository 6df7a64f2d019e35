"""The bulk formats' machinery, on the bars list: Arrow, Parquet and CSV with the JSON list's
rows and columns, types that survive, the bounded range, refusals in JSON, the reader's own
connection acting as Django's does, its time limit, and a client that goes away mid-stream.

The reader opens its own connection: the rows must be committed (``transactional_db``)."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from django.db import connection

from marketdata.models import Instrument, MinuteBar
from qvp_site import time_limits
from qvp_site.api.bulk import reader
from qvp_site.api.bulk.columns import ReadColumn, arrow_type
from qvp_site.db import roles
from qvp_site.db.partitions import prepare_load
from tests.clients import client_of

pytestmark = pytest.mark.django_db(transaction=True)

T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
ARROW = "application/vnd.apache.arrow.stream"
RANGE = {"symbol": "AAPL", "start": "2024-03-04T00:00:00Z", "end": "2024-03-05T00:00:00Z"}


@pytest.fixture
def bars():
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    prepare_load("marketdata_minutebar", T0, T0 + timedelta(days=1))
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=aapl,
            ts=T0 + timedelta(minutes=i, microseconds=7),
            open=100 + i,
            high=101 + i,
            low=99 + i,
            close=100.5 + i,
            volume=1000 * i if i % 3 else None,
            trade_count=i,
        )
        for i in range(50)
    )
    return aapl


@pytest.fixture
def user(django_user_model):
    return client_of(django_user_model.objects.create_user("quant", password="pw-quant-1234"))


def bulk(client, fmt: str, **params):
    response = client.get("/api/v1/bars/", {**RANGE, **params, "format": fmt})
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content), response


def json_rows(client) -> list[dict]:
    return client.get("/api/v1/bars/", {**RANGE, "page_size": 5000}).json()["results"]


def test_arrow_holds_the_json_lists_rows_and_columns_oldest_first(bars, user):
    body, response = bulk(user, "arrow")
    assert response["Content-Type"] == "application/vnd.apache.arrow.stream"
    table = pa.ipc.open_stream(body).read_all()
    rows = json_rows(user)
    assert table.column_names == list(rows[0])
    assert table.num_rows == len(rows) == 50
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("trade_count").type == pa.int32()
    first = table.slice(0, 2).to_pylist()
    assert first[0]["ts"] == T0 + timedelta(microseconds=7)  # microseconds survive
    assert first[0]["volume"] is None
    assert first[1]["volume"] == 1000.0
    assert table.column("close").to_pylist() == [row["close"] for row in rows]


def test_parquet_and_csv_hold_the_same_rows(bars, user):
    arrow = pa.ipc.open_stream(bulk(user, "arrow")[0]).read_all()
    body, response = bulk(user, "parquet")
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert pq.read_table(io.BytesIO(body)).equals(arrow)
    body, response = bulk(user, "csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        'filename="bar-20240304T000000Z-20240305T000000Z.csv"' in (response["Content-Disposition"])
    )
    options = pa_csv.ConvertOptions(column_types=arrow.schema)
    assert pa_csv.read_csv(io.BytesIO(body), convert_options=options).equals(arrow)


def test_the_format_may_be_asked_by_accept(bars, user):
    response = user.get("/api/v1/bars/", RANGE, HTTP_ACCEPT="application/vnd.apache.parquet")
    assert response.status_code == 200
    assert pq.read_table(io.BytesIO(b"".join(response.streaming_content))).num_rows == 50


def test_an_empty_range_has_the_schema_of_a_full_one(bars, user):
    empty = {"start": "2023-01-01T00:00:00Z", "end": "2023-01-02T00:00:00Z"}
    table = pa.ipc.open_stream(bulk(user, "arrow", **empty)[0]).read_all()
    assert table.num_rows == 0
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert bulk(user, "csv", **empty)[0].startswith(b'"ts","open"')
    assert pq.read_table(io.BytesIO(bulk(user, "parquet", **empty)[0])).num_rows == 0


def test_a_bulk_read_needs_a_bounded_range(bars, user, settings):
    response = user.get("/api/v1/bars/", {"symbol": "AAPL", "format": "arrow"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(response.json()) == {"start", "end"}
    settings.QVP_API_BULK_MAX_RANGE = timedelta(hours=6)
    response = user.get("/api/v1/bars/", {**RANGE, "format": "csv"})
    assert response.status_code == 400
    assert response.json() == {"end": ["at most 6 hours after start (QVP_API_BULK_MAX_DAYS)"]}


def test_the_lists_own_parameters_are_checked_as_for_json(bars, user):
    response = user.get("/api/v1/bars/", {**RANGE, "symbol": "NOPE", "format": "parquet"})
    assert response.status_code == 400
    assert "symbol" in response.json()


def test_nobody_reads_without_logging_in(bars, client):
    response = client.get("/api/v1/bars/", {**RANGE, "format": "arrow"})
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"


def test_an_unknown_format_is_refused(bars, user):
    response = user.get("/api/v1/bars/", {**RANGE, "format": "xlsx"})
    assert response.status_code == 406
    assert response.json() == {
        "detail": "format='xlsx' is not offered here; offered: api, arrow, csv, json, parquet"
    }
    response = user.get("/api/v1/bars/", RANGE, HTTP_ACCEPT="application/x-xlsx")
    assert response.status_code == 406


def test_rows_are_read_in_the_stream_not_by_django(bars, user, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        response = user.get("/api/v1/bars/", {**RANGE, "format": "arrow"})
        table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    assert table.num_rows == 50


def test_the_reader_acts_as_the_role_and_user_djangos_connection_does(bars, user):
    """Row-level security reads the role and qvp.user_id: the reader's transaction has the
    ones Django's connection has, and the stream's time limit."""
    from django.contrib.auth import get_user_model
    from rest_framework.request import Request
    from rest_framework.test import APIRequestFactory

    from qvp_site.api.bulk.views import acting_preamble

    quant = get_user_model().objects.get(username="quant")
    request = Request(APIRequestFactory().get("/"))
    request.user = quant
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    try:
        preamble = acting_preamble(request, "default")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    probe = (
        "SELECT current_user::text AS role, current_setting('qvp.user_id') AS user_id,"
        " (SELECT setting FROM pg_settings WHERE name = 'statement_timeout') AS timeout,"
        " current_setting('transaction_read_only') AS read_only"
    )
    with reader.reading("default", preamble, probe) as batches:
        row = batches.read_all().to_pylist()[0]
    expected = time_limits.milliseconds(time_limits.STREAM)
    assert row == {
        "role": roles.APP_ROLE,
        "user_id": str(quant.pk),
        "timeout": expected or "0",
        "read_only": "on",
    }


def test_a_stream_past_its_time_limit_is_cut_short(bars, user, settings):
    settings.QVP_STREAM_STATEMENT_TIMEOUT = 0.001
    response = user.get(
        "/api/v1/bars/",
        {**RANGE, "format": "arrow", "symbol": "AAPL"},
    )
    assert response.status_code == 200  # the headers left before the rows were read
    with pytest.raises(time_limits.TimeLimitExceeded):
        b"".join(response.streaming_content)


def test_a_client_gone_mid_stream_leaves_no_connection_behind(bars, user):
    response = user.get("/api/v1/bars/", {**RANGE, "format": "arrow"})
    next(iter(response.streaming_content))
    response.close()  # the server closes the response when the client is gone
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND state <> 'idle'",
            [reader.APPLICATION_NAME],
        )
        assert cursor.fetchone()[0] == 0


@pytest.mark.parametrize(
    ("sql", "kind", "expected"),
    [
        ("SELECT 12.3400::numeric(12,4) AS v", "decimal", Decimal("12.3400")),
        ("SELECT NULL::numeric(12,4) AS v", "decimal", None),
        ("SELECT '[1.5,-2,0.25]'::vector(3) AS v", "vector", [1.5, -2.0, 0.25]),
        ("SELECT NULL::vector(3) AS v", "vector", None),
    ],
)
def test_numeric_and_vectors_keep_their_types(bars, sql, kind, expected):
    from django.db import models
    from pgvector.django import VectorField

    field = (
        models.DecimalField(max_digits=12, decimal_places=4)
        if kind == "decimal"
        else VectorField(dimensions=3)
    )
    column = ReadColumn("v", field, arrow_type(field), as_text=False)
    with reader.reading("default", [], sql) as batches:
        schema = pa.schema([pa.field("v", arrow_type(field))])
        batch = reader.converted(batches.read_next_batch(), [column], schema)
    assert batch.schema.field("v").type == arrow_type(field)
    assert batch.column(0).to_pylist() == [expected]


def test_a_bulk_format_is_offered_on_lists_only(bars, user):
    response = user.get("/api/v1/bars/revisions/", {**RANGE, "format": "csv"})
    assert response.status_code == 406
    assert response.json() == {"detail": "format='csv' is not offered here; offered: api, json"}


def test_a_list_of_no_rows_at_all_reads_as_empty(bars):
    from qvp_site.api.bulk.columns import plan

    read = plan(MinuteBar.objects.none(), {"ts": "ts", "close": "close"}, csv=False)
    with reader.reading(read.alias, [], read.sql) as batches:
        assert batches.read_all().num_rows == 0


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        ("application/vnd.apache.arrow.stream, application/json;q=0.5", ARROW),
        ("application/vnd.apache.arrow.stream;q=1.0, application/json;q=0.1", ARROW),
        ("application/vnd.apache.arrow.stream;q=0.2, application/json", "application/json"),
        ("text/csv;q=0, application/json;q=0.3", "application/json"),
    ],
)
def test_accept_is_read_by_the_clients_preferences(bars, user, accept, media_type):
    response = user.get("/api/v1/bars/", RANGE, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == media_type


def test_a_preferred_format_a_route_does_not_offer_falls_back_to_the_next(bars, user):
    accept = "application/vnd.apache.arrow.stream, application/json;q=0.5"
    response = user.get("/api/v1/bars/revisions/", RANGE, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"


def test_a_suffix_no_route_offers_names_nothing(bars, user):
    """``accounts/0.5/`` is no account in a format called 5: a 404, as a path naming
    nothing; ``?format=`` of the same is a 406 naming the parameter."""
    assert user.get("/api/v1/accounts/0.5/").status_code == 404
    assert user.get("/api/v1/bars.xlsx", RANGE).status_code == 404
    assert user.get("/api/v1/bars/", {**RANGE, "format": "xlsx"}).status_code == 406
