"""How feature embeddings are written (vectors.store): a first load sets aside the B-tree
indexes and keys and gets every one back, checked (a duplicate or a row pointing nowhere
still fails the whole load) with what it loaded exact; a single row by ``insert_embedding``
is exact, refuses bad input naming the field, and keeps the keys' checks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.db import IntegrityError, connection, transaction

from marketdata.models import Instrument
from qvp_site.db import binary_copy
from vectors import embeddings, store
from vectors.models import FeatureEmbedding

from .sets import make_set

TABLE = embeddings.TABLE
T0 = datetime(2024, 1, 2, 15, 0, tzinfo=UTC)


def indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = %s::regclass ORDER BY 1",
            [TABLE],
        )
        return dict(cursor.fetchall())


def constraints() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint"
            " WHERE conrelid = %s::regclass ORDER BY conname",
            [TABLE],
        )
        return cursor.fetchall()


def rows(owners, feature_set_id: int, count: int, start: str = "2024-01-01", seed: int = 0):
    rng = np.random.default_rng(seed)
    closes = np.datetime64(start, "us") + np.arange(count) * np.timedelta64(15, "m")
    vectors = rng.standard_normal((count, 128)).astype(np.float32)
    raw = rng.standard_normal((count, 128))
    return embeddings.columns(owners, feature_set_id, closes, vectors, raw), vectors, raw


def load(*batches, empty: bool = True) -> None:
    """Each batch copied in one first load (``empty``) or rebuild, in one transaction."""
    with transaction.atomic(), store.bulk_load(TABLE, rebuild=not empty, empty=empty):
        for batch in batches:
            binary_copy.copy_columns(TABLE, batch)


def insert_checked(*args) -> None:
    """One row by insert_embedding, its deferred keys checked at once, in a savepoint."""
    with transaction.atomic():
        store.insert_embedding(*args)
        with connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.fixture
def instrument(db) -> Instrument:
    return Instrument.objects.create(symbol="AAA", asset_class="equity")


@pytest.fixture
def feature_set(db):
    return make_set("writes", 128)


def test_a_first_load_gets_every_index_and_key_back(instrument, feature_set, monkeypatch):
    monkeypatch.setattr(binary_copy, "CHUNK_ROWS", 7)  # several chunks
    indexes_before, constraints_before = indexes(), constraints()
    columns, vectors, raw = rows(instrument.id, feature_set.id, 30)
    with transaction.atomic():
        with store.bulk_load(TABLE, rebuild=False, empty=True):
            kept = set(indexes())
            # Only the primary key is maintained row by row during the load.
            assert kept == {"vectors_featureembedding_pkey"}
            assert binary_copy.copy_columns(TABLE, columns) == 30
        assert indexes() == indexes_before
        assert constraints() == constraints_before
    stored = FeatureEmbedding.objects.order_by("ts")
    assert np.array_equal([np.asarray(r.embedding, dtype=np.float32) for r in stored], vectors)
    assert [r.raw for r in stored] == raw.tolist()


def test_a_duplicate_in_a_first_load_fails_it_whole(instrument, feature_set):
    before = indexes()
    columns, _, _ = rows(instrument.id, feature_set.id, 5)
    again, _, _ = rows(instrument.id, feature_set.id, 5, seed=1)  # the same windows
    with pytest.raises(IntegrityError, match="featureembedding_by_window"):
        load(columns, again)
    assert FeatureEmbedding.objects.count() == 0
    assert indexes() == before


def test_a_row_pointing_nowhere_fails_a_first_load_whole(instrument, feature_set):
    columns, _, _ = rows([instrument.id, instrument.id + 1000, instrument.id], feature_set.id, 3)
    with pytest.raises(IntegrityError, match="not present in table"):
        load(columns)
    assert FeatureEmbedding.objects.count() == 0
    assert len([c for c in constraints() if c[1].startswith("FOREIGN KEY")]) == 2


def test_a_load_into_a_table_with_rows_keeps_its_btrees(instrument, feature_set):
    """A rebuild of one set among others rebuilds no B-tree over every row: a duplicate is
    refused by the index in place, at the COPY."""
    columns, _, _ = rows(instrument.id, feature_set.id, 3)
    binary_copy.copy_columns(TABLE, columns)
    with connection.cursor() as cursor:  # the rows' deferred keys checked: a committed load
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    with transaction.atomic(), store.bulk_load(TABLE, rebuild=True, empty=False):
        assert "featureembedding_by_window" in indexes()
    with pytest.raises(IntegrityError, match="featureembedding_by_window"):
        load(columns, empty=False)
    assert FeatureEmbedding.objects.count() == 3


def test_a_single_insert_stores_exactly_what_it_was_given(instrument, feature_set):
    rng = np.random.default_rng(3)
    vector = rng.standard_normal(128).astype(np.float32) * 1e3
    raw = rng.standard_normal(128) / 7
    raw[5], raw[9] = np.nan, np.inf  # unknown: stored as NULL, as the bulk load stores them
    pk = store.insert_embedding(instrument.id, feature_set.id, T0, vector, raw)
    row = FeatureEmbedding.objects.get(pk=pk)
    assert (row.instrument_id, row.feature_set_id, row.ts) == (instrument.id, feature_set.id, T0)
    assert np.array_equal(np.asarray(row.embedding, dtype=np.float32), vector)
    assert row.raw[5] is None
    assert row.raw[9] is None
    kept = [v for i, v in enumerate(row.raw) if i not in (5, 9)]
    assert kept == [v for i, v in enumerate(raw.tolist()) if i not in (5, 9)]


@pytest.mark.parametrize(
    ("field", "vector", "raw", "message"),
    [
        ("embedding", np.ones(127), np.ones(128), r"embedding has shape \(127,\), not \(128,\)"),
        ("embedding", np.full(128, np.nan), np.ones(128), "embedding has NaN or infinite"),
        ("embedding", np.full(128, 1e39), np.ones(128), "embedding has NaN or infinite"),
        ("raw", np.ones(128), np.ones(12), r"raw has shape \(12,\), not \(128,\)"),
    ],
)
def test_a_bad_single_row_is_refused_naming_the_field(
    instrument, feature_set, field, vector, raw, message
):
    with pytest.raises(ValueError, match=message):
        store.insert_embedding(instrument.id, feature_set.id, T0, vector, raw)
    assert FeatureEmbedding.objects.count() == 0


def test_a_single_row_keeps_the_keys_checks(instrument, feature_set):
    ones = np.ones(128)
    store.insert_embedding(instrument.id, feature_set.id, T0, ones, ones)
    with pytest.raises(IntegrityError, match="featureembedding_by_window"):
        insert_checked(instrument.id, feature_set.id, T0, ones, ones)
    later = T0 + timedelta(minutes=15)
    with pytest.raises(IntegrityError, match="not present in table"):
        insert_checked(instrument.id + 1000, feature_set.id, later, ones, ones)
    assert FeatureEmbedding.objects.count() == 1


def test_the_application_role_inserts_single_rows(instrument, feature_set, as_app_role):
    ones = np.ones(128)
    pk = store.insert_embedding(instrument.id, feature_set.id, T0, ones, ones)
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone()[0] == "trading_app"
    assert FeatureEmbedding.objects.filter(pk=pk).exists()
