"""CreateVectorIndex forwards and backwards, in the manner of Django's
tests/postgres_tests/test_operations.py: a model made for the tests through migration state,
the operation applied and reversed with a schema editor, the catalog inspected in between."""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pytest
from django.db import connection, migrations, models
from django.db.migrations.state import ProjectState
from pgvector.django import VectorField

from qvp_site.db.vector_indexes import (
    CreateVectorIndex,
    VectorIndex,
    create_vector_index,
    ivfflat_lists,
    vector_index_definitions,
)
from tests.migration_ops import apply_operation, collect_sql, run_script

APP = "vecops"
TABLE = "vecops_point"

pytestmark = pytest.mark.django_db(transaction=True)

CREATE_POINT = migrations.CreateModel(
    "Point",
    [
        ("id", models.BigAutoField(primary_key=True)),
        ("embedding", VectorField(dimensions=3)),
    ],
)


apply = partial(apply_operation, APP)
collect = partial(collect_sql, APP)


@pytest.fixture
def point_state():
    state = apply(ProjectState(), CREATE_POINT)
    yield state
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {TABLE} CASCADE")


def indexes() -> dict[str, str]:
    with connection.cursor() as cursor:
        return vector_index_definitions(cursor, TABLE)


def fill(rows: int) -> None:
    points = np.random.default_rng(0).standard_normal((rows, 3)).round(4)
    text = [f"[{a},{b},{c}]" for a, b, c in points.tolist()]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {TABLE} (embedding) SELECT unnest(%s::text[])::vector", [text])


def test_hnsw_forwards_with_its_operator_class_and_parameters_then_backwards(point_state):
    operation = CreateVectorIndex(
        "Point", "point_hnsw", "embedding", distance="l2", m=8, ef_construction=40
    )
    state = apply(point_state, operation)
    (definition,) = indexes().values()
    assert "USING hnsw (embedding vector_l2_ops)" in definition
    assert "m='8'" in definition
    assert "ef_construction='40'" in definition
    apply(state, operation)  # again: IF NOT EXISTS, nothing changes
    assert list(indexes()) == ["point_hnsw"]
    apply(point_state, operation, backwards=True)
    assert indexes() == {}
    apply(point_state, operation, backwards=True)  # dropping what is gone is no error


def test_hnsw_is_built_on_an_empty_table_and_serves_the_search(point_state):
    apply(point_state, CreateVectorIndex("Point", "point_hnsw", "embedding"))
    fill(200)
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # 200 rows: only to see the index is usable
        cursor.execute(f"EXPLAIN SELECT id FROM {TABLE} ORDER BY embedding <=> '[1,0,0]' LIMIT 5")
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "Index Scan using point_hnsw" in plan


def test_ivfflat_is_skipped_on_an_empty_table_with_a_note(point_state, caplog):
    operation = CreateVectorIndex("Point", "point_ivf", "embedding", method="ivfflat")
    with caplog.at_level(logging.WARNING, logger="qvp_site.db.vector_indexes"):
        apply(point_state, operation)
    assert indexes() == {}
    assert "IVFFlat index point_ivf not built: vecops_point has no rows" in caplog.text


def test_ivfflat_takes_its_lists_from_the_row_count(point_state):
    fill(2500)
    operation = CreateVectorIndex(
        "Point", "point_ivf", "embedding", method="ivfflat", distance="inner_product"
    )
    state = apply(point_state, operation)
    (definition,) = indexes().values()
    assert "USING ivfflat (embedding vector_ip_ops) WITH (lists='2')" in definition
    apply(point_state, operation, backwards=True)
    assert indexes() == {}
    apply(state, CreateVectorIndex("Point", "point_ivf", "embedding", "cosine", "ivfflat", lists=7))
    assert "vector_cosine_ops) WITH (lists='7')" in indexes()["point_ivf"]


@pytest.mark.parametrize("method", ["hnsw", "ivfflat"])
def test_sqlmigrate_shows_the_same_sql_for_an_empty_and_a_filled_table(point_state, method):
    operation = CreateVectorIndex("Point", "point_idx", "embedding", method=method)
    forwards, backwards = (
        collect(point_state, operation),
        collect(point_state, operation, backwards=True),
    )
    assert forwards
    assert backwards
    fill(1200)
    assert collect(point_state, operation) == forwards
    assert collect(point_state, operation, backwards=True) == backwards
    assert indexes() == {}  # collecting built nothing


def test_the_collected_ivfflat_sql_sizes_its_lists_when_it_runs(point_state):
    operation = CreateVectorIndex("Point", "point_ivf", "embedding", method="ivfflat")
    forwards = collect(point_state, operation)
    run_script(forwards)
    assert indexes() == {}  # an empty table: skipped
    fill(5000)
    run_script(forwards)
    assert "WITH (lists='5')" in indexes()["point_ivf"]
    run_script(collect(point_state, operation, backwards=True))
    assert indexes() == {}


def test_lists_follow_pgvectors_advice():
    assert [ivfflat_lists(n) for n in (1, 999, 5_000, 1_000_000, 4_000_000)] == [
        1,
        1,
        5,
        1000,
        2000,
    ]


def test_names_are_quoted(point_state):
    with connection.cursor() as cursor:
        create_vector_index(cursor, VectorIndex('odd "name"', TABLE, "embedding"))
    assert list(indexes()) == ['odd "name"']


def test_describe_name_fragment_and_deconstruct():
    operation = CreateVectorIndex("Point", "point_hnsw", "embedding")
    assert operation.describe() == (
        "Create hnsw index point_hnsw on Point.embedding for cosine distance"
        " (m=16, ef_construction=64)"
    )
    assert operation.migration_name_fragment == "hnsw_point_hnsw"
    assert operation.deconstruct() == (
        "CreateVectorIndex",
        [],
        {"model_name": "Point", "name": "point_hnsw", "field": "embedding"},
    )
    ivf = CreateVectorIndex("Point", "p_ivf", "embedding", "l2", "ivfflat", lists=10)
    _, _, kwargs = ivf.deconstruct()
    assert CreateVectorIndex(**kwargs).deconstruct() == ivf.deconstruct()
    assert ivf.describe().endswith("for l2 distance (lists=10)")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distance": "manhattan"}, "unknown distance 'manhattan'"),
        ({"method": "flat"}, "unknown method 'flat'"),
        ({"m": 1}, "m must lie between 2 and 100"),
        ({"m": 32, "ef_construction": 40}, "ef_construction must be at least twice m"),
        ({"method": "ivfflat", "lists": 0}, "lists must lie between 1 and 32768"),
    ],
)
def test_bad_arguments_are_refused_when_the_operation_is_made(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CreateVectorIndex("Point", "p", "embedding", **kwargs)
