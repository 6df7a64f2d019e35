"""The feature embeddings' list (``GET /api/v1/vectors/features/``) in JSON pages and in the
bulk formats: the same rows and columns, vectors as fixed-size lists of 4-byte floats (their
text in CSV) or left out with ``vectors=false``, the feature set, symbols and time filters,
refusals naming the parameter; every logged-in user reads every row (market data's), as the
application's database role too.

The reader opens its own connection: the rows must be committed (``transactional_db``)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from django.db import connection
from rest_framework.test import APIClient

from marketdata.models import Instrument
from qvp_site.db import roles
from tests.bulk import assert_same_rows, bulk_table, json_rows
from tests.clients import client_of
from vectors.embeddings import FEATURES
from vectors.models import FEATURE_DIMENSIONS, FeatureEmbedding, FeatureSet

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/vectors/features/"
T0 = datetime(2024, 5, 13, 13, 45, tzinfo=UTC)
WEEK = {"start": "2024-05-13T00:00:00Z", "end": "2024-05-20T00:00:00Z"}
WINDOWS = 20  # per instrument in the week, every 15 minutes from T0
VECTOR = pa.list_(pa.float32(), FEATURE_DIMENSIONS)


def feature_set(version: int) -> FeatureSet:
    names = [f"f{i}" for i in range(FEATURE_DIMENSIONS)]
    return FeatureSet.objects.create(
        name=FEATURES.name,
        version=version,
        kind=FeatureSet.Kind.FEATURES,
        dimensions=FEATURE_DIMENSIONS,
        timeframe="1m",
        stride=15,
        feature_names=names,
        center=[0.0] * FEATURE_DIMENSIONS,
        scale=[1.0] * FEATURE_DIMENSIONS,
        fitted_rows=1,
    )


def embed(fs: FeatureSet, instrument: Instrument, moments: list[datetime], seed: int) -> None:
    # Values that 4-byte floats do not hold exactly (0.1...): what the JSON writes of them
    # and what Arrow reads must still be the same numbers.
    vectors = np.random.default_rng(seed).normal(size=(len(moments), FEATURE_DIMENSIONS)) / 10
    FeatureEmbedding.objects.bulk_create(
        FeatureEmbedding(
            feature_set=fs,
            instrument=instrument,
            ts=ts,
            embedding=vector.astype(np.float32),
            raw=[float(x) for x in vector],
        )
        for ts, vector in zip(moments, vectors, strict=True)
    )


@pytest.fixture
def embedded(db):
    """The default set (FEATURES' version) over a week of AAPL and SPY, one window before the
    week and one after it; a newer version of the set over AAPL's week."""
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    spy = Instrument.objects.create(symbol="SPY", asset_class="equity", exchange="ARCX")
    week = [T0 + timedelta(minutes=15 * i, microseconds=3) for i in range(WINDOWS)]
    outside = [T0 - timedelta(days=3), T0 + timedelta(days=8)]
    current = feature_set(FEATURES.version)
    embed(current, aapl, [*week, *outside], seed=1)
    embed(current, spy, week, seed=2)
    embed(feature_set(FEATURES.version + 1), aapl, week, seed=3)
    return current


@pytest.fixture
def quant(django_user_model):
    return client_of(django_user_model.objects.create_user("quant", password="pw-quant-1234"))


def as_float4(rows: list[dict]) -> list[dict]:
    """The JSON rows with their vectors as 4-byte floats widened, as Arrow's float32 reads
    them: the JSON writes each float4 as its shortest decimal ("0.061488554"), the same
    float4, not the same double."""
    for row in rows:
        if "embedding" in row:
            row["embedding"] = np.array(row["embedding"], dtype=np.float32).tolist()
    return rows


def csv_rows(client: APIClient, params: dict) -> list[dict]:
    response = client.get(URL, {**params, "format": "csv"})
    assert response.status_code == 200, response.content
    return list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))


def test_the_list_in_arrow_is_its_json_pages_with_the_vectors(embedded, quant):
    table = bulk_table(quant, URL, WEEK)
    rows = as_float4(json_rows(quant, URL, WEEK))
    assert table.num_rows == len(rows) == 2 * WINDOWS
    assert_same_rows(table, rows)
    assert table.column_names == ["id", "symbol", "feature_set", "ts", "embedding"]
    assert table.schema.field("embedding").type == VECTOR
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert set(table.column("feature_set").to_pylist()) == {f"{FEATURES.name}:{FEATURES.version}"}
    moments = table.column("ts").to_pylist()
    assert moments == sorted(moments)  # oldest first
    stored = FeatureEmbedding.objects.get(pk=table.column("id")[0].as_py())
    first = table.column("embedding")[0].values.to_numpy()
    assert np.array_equal(first, np.asarray(stored.embedding, dtype=np.float32))


def test_parquet_and_csv_hold_the_same_vectors(embedded, quant):
    arrow = bulk_table(quant, URL, WEEK)
    assert bulk_table(quant, URL, WEEK, "parquet").equals(arrow)
    rows = csv_rows(quant, WEEK)
    assert len(rows) == arrow.num_rows
    assert list(rows[0]) == arrow.column_names
    text = rows[0]["embedding"]
    assert text[0] + text[-1] == "[]"  # pgvector's text, "[x,y,...]"
    values = np.array(json.loads(text), dtype=np.float32)
    assert np.array_equal(values, arrow.column("embedding")[0].values.to_numpy())


def test_vectors_false_leaves_the_vector_column_out_of_every_format(embedded, quant):
    without = {**WEEK, "vectors": "false"}
    rows = json_rows(quant, URL, without)
    assert list(rows[0]) == ["id", "symbol", "feature_set", "ts"]
    for fmt in ("arrow", "parquet", "csv"):
        table = bulk_table(quant, URL, without, fmt)
        assert table.column_names == ["id", "symbol", "feature_set", "ts"], fmt
        assert table.num_rows == 2 * WINDOWS
    assert_same_rows(bulk_table(quant, URL, without), rows)
    assert list(csv_rows(quant, without)[0]) == ["id", "symbol", "feature_set", "ts"]
    assert "embedding" in bulk_table(quant, URL, {**WEEK, "vectors": "true"}).column_names


def test_the_filters_narrow_the_rows(embedded, quant):
    spy = bulk_table(quant, URL, {**WEEK, "symbols": "SPY"})
    assert spy.num_rows == WINDOWS
    assert set(spy.column("symbol").to_pylist()) == {"SPY"}
    hour = {"start": "2024-05-13T14:00:00Z", "end": "2024-05-13T15:00:00Z"}
    assert bulk_table(quant, URL, hour, "parquet").num_rows == 2 * 4
    # The set's name alone is its newest version: another version's rows only.
    newest = {**WEEK, "feature_set": FEATURES.name}
    table = bulk_table(quant, URL, newest)
    assert table.num_rows == WINDOWS
    assert set(table.column("feature_set").to_pylist()) == {
        f"{FEATURES.name}:{FEATURES.version + 1}"
    }
    assert_same_rows(table, as_float4(json_rows(quant, URL, newest)))
    named = {**WEEK, "feature_set": f"{FEATURES.name}:{FEATURES.version}"}
    assert bulk_table(quant, URL, named).equals(bulk_table(quant, URL, WEEK))


def test_bad_parameters_are_refused_in_json_naming_them(embedded, quant):
    for query, named in [
        ({**WEEK, "feature_set": "nope"}, {"feature_set"}),
        ({**WEEK, "feature_set": f"{FEATURES.name}:x"}, {"feature_set"}),
        ({**WEEK, "vectors": "maybe"}, {"vectors"}),
        ({**WEEK, "symbols": "NOPE"}, {"symbols"}),
    ]:
        for fmt in ("json", "arrow"):
            response = quant.get(URL, {**query, "format": fmt})
            assert response.status_code == 400, (query, fmt, response.content)
            assert response["Content-Type"] == "application/json"
            assert set(response.json()) == named
    response = quant.get(URL, {"format": "csv", "symbols": "SPY"})
    assert response.status_code == 400
    assert set(response.json()) == {"start", "end"}


def test_with_no_set_built_the_list_is_empty_with_its_columns(quant):
    assert quant.get(URL).json()["results"] == []
    table = bulk_table(quant, URL, WEEK)
    assert table.num_rows == 0
    assert table.schema.field("embedding").type == VECTOR
    response = quant.get(URL, {**WEEK, "format": "csv", "vectors": "false"})
    assert b"".join(response.streaming_content) == b'"id","symbol","feature_set","ts"\n'


def test_a_bulk_read_takes_a_bounded_number_of_queries(
    embedded, quant, django_assert_max_num_queries
):
    with django_assert_max_num_queries(12):
        response = quant.get(URL, {**WEEK, "format": "arrow"})
        table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    assert table.num_rows == 2 * WINDOWS


def test_one_embedding_is_no_route_and_search_still_answers(embedded, quant):
    stored = FeatureEmbedding.objects.filter(feature_set=embedded).first()
    response = quant.post(f"{URL}search/", {"id": stored.pk, "k": 3}, format="json")
    assert response.status_code == 200, response.content
    assert len(response.json()["neighbours"]) == 3
    assert quant.get(f"{URL}{stored.pk}/").status_code == 404


def test_anonymous_users_are_refused_in_json(embedded):
    for fmt in ("json", "arrow"):
        response = APIClient().get(URL, {**WEEK, "format": fmt})
        assert response.status_code in (401, 403)
        assert response["Content-Type"] == "application/json"


@pytest.fixture
def as_app_role_for_the_session(transactional_db, app_role_password):
    """Django's connection as trading_app, as the served site's; reset afterwards."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def test_the_application_role_reads_the_same_rows(embedded, quant, as_app_role_for_the_session):
    expected = bulk_table(quant, URL, WEEK)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    assert bulk_table(quant, URL, WEEK).equals(expected)
    assert bulk_table(quant, URL, {**WEEK, "vectors": "false"}, "csv").num_rows == WINDOWS * 2
