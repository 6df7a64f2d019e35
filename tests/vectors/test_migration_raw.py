"""vectors 0003: raw features from JSON to an array of doubles, and back, values kept."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from marketdata.models import Instrument
from qvp_site.db import engine

from .test_search import make_set

BEFORE, AFTER = ("vectors", "0002_vector_indexes"), ("vectors", "0003_raw_features_as_doubles")
RAW = [0.1, None, -2.5e-05, 12345.678901234567, 1e-300] + [float(i) for i in range(123)]


def migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def latest() -> tuple[str, str]:
    """vectors' newest migration: the other tests share this database and its later tables."""
    executor = MigrationExecutor(connection)
    (leaf,) = executor.loader.graph.leaf_nodes("vectors")
    return leaf


@pytest.mark.django_db(transaction=True)
def test_raw_features_convert_both_ways():
    if engine.is_citus():
        pytest.skip("on Citus vectors 0007's distribution is not unapplied in place")
    instrument = Instrument.objects.create(symbol="AAA", asset_class="equity")
    feature_set = make_set("migrated", 128)
    try:
        migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO vectors_featureembedding (instrument_id, feature_set_id, ts,"
                " embedding, raw) VALUES (%s, %s, now(), %s, %s::jsonb)",
                [instrument.id, feature_set.id, "[" + ",".join(["1"] * 128) + "]", _json(RAW)],
            )
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute("SELECT raw FROM vectors_featureembedding")
            assert cursor.fetchone()[0] == RAW  # exact doubles, the unknown one NULL
        migrate(BEFORE)
        with connection.cursor() as cursor:
            cursor.execute("SELECT raw = %s::jsonb FROM vectors_featureembedding", [_json(RAW)])
            assert cursor.fetchone()[0]
    finally:
        migrate(latest())


def _json(values: list) -> str:
    return "[" + ",".join("null" if v is None else repr(v) for v in values) + "]"
