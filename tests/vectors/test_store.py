"""Binary COPY built with numpy (qvp_site.db.binary_copy.copy_columns): what goes in comes
back, across chunks, with unknown raw values as NULL elements; bad vectors refused naming
their row."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from django.db import DataError, IntegrityError, connection, transaction

from marketdata.models import Instrument
from qvp_site.db import binary_copy, set_aside
from vectors import embeddings
from vectors.models import FeatureEmbedding

from .test_search import make_set

COLUMNS = ("n", "ts", "v", "raw")
TYPES = ("int8", "timestamptz", "vector", "float8[]")


@pytest.fixture
def table(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE copied (n int8, ts timestamptz, v vector(4), raw float8[])"
        )
    return "copied"


def rows(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = rng.integers(-(2**62), 2**62, count)
    ts = np.datetime64("1999-12-31T23:59:59.999999", "us") + rng.integers(0, 10**15, count)
    v = rng.standard_normal((count, 4)).astype(np.float32) * 1e3
    raw = rng.standard_normal((count, 3)) / 7
    return n, ts, v, raw


def read_back() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT n, ts, v::text, raw FROM copied ORDER BY n")
        return cursor.fetchall()


def test_what_is_copied_comes_back_exactly(table, monkeypatch):
    monkeypatch.setattr(binary_copy, "CHUNK_ROWS", 7)  # several chunks, the last one short
    n, ts, v, raw = rows(30)
    raw[3, 1], raw[17, 0], raw[17, 2] = np.nan, np.inf, -np.inf  # unknown: NULL elements
    columns = binary_copy.columns_of(COLUMNS, TYPES, (n, ts, v, raw), {"v": 4})
    assert binary_copy.copy_columns(table, columns) == 30
    order = np.argsort(n)
    got = read_back()
    assert [r[0] for r in got] == n[order].tolist()
    expected_ts = ts[order].astype(datetime)
    assert [r[1] for r in got] == [t.replace(tzinfo=UTC) for t in expected_ts]
    # float4 in, float4 out: the text form parses back to the very same values.
    stored_v = np.array([np.array(r[2][1:-1].split(","), dtype=np.float32) for r in got])
    assert np.array_equal(stored_v, v[order])
    expected_raw = np.where(np.isfinite(raw), raw, np.nan)[order]
    stored_raw = np.array([[np.nan if x is None else x for x in r[3]] for r in got])
    assert np.array_equal(stored_raw, expected_raw, equal_nan=True)
    assert got[list(order).index(17)][3][0] is None


def test_a_wrong_dimension_is_refused_naming_the_row(table):
    n, ts, v, raw = rows(3)
    ragged = [v[0], v[1], v[2][:3]]
    with pytest.raises(ValueError, match="row 2: v has 3 dimensions, not 4"):
        binary_copy.columns_of(COLUMNS, TYPES, (n, ts, ragged, raw), {"v": 4})
    with pytest.raises(ValueError, match="row 0: v has 4 dimensions, not 5"):
        binary_copy.columns_of(COLUMNS, TYPES, (n, ts, v, raw), {"v": 5})


@pytest.mark.parametrize("bad", [np.nan, np.inf, 1e39])  # 1e39 overflows a float4
def test_nan_or_infinity_in_a_vector_is_refused_naming_the_row(table, bad):
    n, ts, v, raw = rows(5)
    v = v.astype(np.float64)
    v[3, 2] = bad
    with pytest.raises(ValueError, match="row 3: v has NaN or infinite values"):
        binary_copy.columns_of(COLUMNS, TYPES, (n, ts, v, raw), {"v": 4})
    assert read_back() == []


def test_times_must_say_they_are_utc(table):
    n, _, v, raw = rows(1)
    with pytest.raises(TypeError, match="ts: timestamptz values must be datetime64"):
        binary_copy.columns_of(COLUMNS, TYPES, (n, [datetime.now(UTC)], v, raw), {"v": 4})


def test_the_database_still_has_the_last_word(table):
    # A column declared 4-d given 4-d vectors, loaded into a 3-d column: PostgreSQL refuses
    # the whole COPY, naming the line.
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE narrow (v vector(3))")
    columns = binary_copy.columns_of(("v",), ("vector",), (rows(2)[2],), {"v": 4})
    with pytest.raises(DataError, match="expected 3 dimensions, not 4"), transaction.atomic():
        binary_copy.copy_columns("narrow", columns)


def foreign_keys() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
            " WHERE conrelid = 'vectors_featureembedding'::regclass AND contype = 'f'"
            " ORDER BY conname"
        )
        return cursor.fetchall()


def embedding_columns(instrument_ids, feature_set_id: int, start: str = "2024-01-01"):
    count = 3
    closes = np.datetime64(start, "us") + np.arange(count) * np.timedelta64(15, "m")
    v = np.ones((count, 128), dtype=np.float32)
    return embeddings.columns(instrument_ids, feature_set_id, closes, v, v.astype(float))


def test_a_bulk_load_adds_its_foreign_keys_back_checked(db):
    instrument = Instrument.objects.create(symbol="AAA", asset_class="equity")
    feature_set = make_set("bulk", 128)
    before = foreign_keys()
    assert len(before) == 2
    with transaction.atomic():
        with set_aside.ForeignKeysSetAside(embeddings.TABLE):
            assert foreign_keys() == []
            binary_copy.copy_columns(
                embeddings.TABLE, embedding_columns(instrument.id, feature_set.id)
            )
        assert foreign_keys() == before
    assert FeatureEmbedding.objects.count() == 3
    # A row pointing nowhere fails the whole load when the key comes back.
    owners = [instrument.id, instrument.id + 1000, instrument.id]
    rows = embedding_columns(owners, feature_set.id, start="2024-02-01")
    with (
        pytest.raises(IntegrityError, match="not present in table"),
        transaction.atomic(),
        set_aside.ForeignKeysSetAside(embeddings.TABLE),
    ):
        binary_copy.copy_columns(embeddings.TABLE, rows)
    assert FeatureEmbedding.objects.count() == 3
    assert foreign_keys() == before
