"""vectors 0007 on a Citus cluster: the feature embeddings and regimes distributed by
instrument beside the market data, their keys to the feature sets kept by a reference table;
the strategy patterns on the coordinator with the backtest runs. A row that would point
nowhere is refused, whichever door it comes by. Runs where DATABASE_URL points at a
coordinator; skipped elsewhere."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import IntegrityError, ProgrammingError, connection, transaction

from marketdata.models import Instrument
from qvp_site.db import roles
from qvp_site.db.binary_copy import copy_columns
from vectors import embeddings

from .conftest import load_demo
from .sets import make_set

pytestmark = pytest.mark.citus
TABLE = "vectors_featureembedding"


def citus_tables() -> dict[str, tuple[str, str | None, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT logicalrelid::text, partmethod, column_to_column_name(logicalrelid, partkey),"
            " colocationid FROM pg_dist_partition"
        )
        return {name: (method, column, group) for name, method, column, group in cursor}


def test_the_vectors_sit_beside_their_instruments_market_data(db):
    found = citus_tables()
    for name in ("vectors_featureembedding", "vectors_volatilityregime"):
        assert found[name] == ("h", "instrument_id", found["marketdata_minutebar"][2]), name
    assert found["vectors_featureset_key"][:2] == ("n", None)  # a reference table
    # The sets, their builds, and the patterns with the backtest runs stay the coordinator's.
    for name in ("vectors_featureset", "vectors_featurebuild", "vectors_strategypattern"):
        assert name not in found, name


def embedding_columns(instrument_id: int, feature_set_id: int) -> list:
    closes = np.datetime64("2024-01-02T15:00", "us") + np.arange(2) * np.timedelta64(15, "m")
    rng = np.random.default_rng(9)
    vectors = rng.standard_normal((2, 128)).astype(np.float32)
    return embeddings.columns(instrument_id, feature_set_id, closes, vectors, vectors * 2.0)


def test_an_embedding_of_no_set_is_refused_as_an_integrity_error(db):
    """By COPY, as the builds load them: Citus relays the worker's refusal without its
    SQLSTATE, and the load raises the IntegrityError PostgreSQL's own COPY gives."""
    instrument = Instrument.objects.create(symbol="EMB", asset_class="equity")
    refused = pytest.raises(IntegrityError, match="featureembedding_feature_set_id_fkey")
    with refused, transaction.atomic():
        copy_columns(TABLE, embedding_columns(instrument.id, 987654321))


def test_a_set_with_embeddings_cannot_be_deleted_below_the_orm(db):
    instrument = Instrument.objects.create(symbol="EMB", asset_class="equity")
    feature_set = make_set("citus-set", 128)
    copy_columns(TABLE, embedding_columns(instrument.id, feature_set.id))
    refused = pytest.raises(IntegrityError, match="still referenced")
    with refused, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM vectors_featureset WHERE id = %s", [feature_set.id])


def test_a_new_set_gets_its_key_on_every_node(db):
    feature_set = make_set("citus-new-set", 128)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM vectors_featureset_key WHERE id = %s", [feature_set.id]
        )
        assert cursor.fetchone()[0] == 1


@pytest.mark.parametrize("keys", ["vectors_featureset_key", "signals_agent_key"])
@pytest.mark.parametrize("role", [roles.APP_ROLE, roles.RESEARCH_ROLE, roles.READONLY_ROLE])
def test_no_role_makes_a_key_of_its_own(db, app_role_password, role, keys):
    """A key comes only with its set or agent (the owner's trigger): a planted key would let
    an embedding name a set, or a signal an agent, that never was."""
    denied = pytest.raises(ProgrammingError, match="permission denied")
    with denied, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(f"INSERT INTO {keys} (id) VALUES (987654323)")


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_builds_new_sets_first_embeddings_and_regimes(app_role_password):
    """The scheduler's job (``build_embeddings``) as trading_app, the first of its feature
    sets. The owner's trigger writes a new set's key over the owner's connections to the
    workers, and the build's COPY checks its foreign key over the application's own: the
    command stores each new set in a transaction of its own first (``prepare_set``), then
    the build's COPY sees its key. Built in the build's transaction, the COPY was refused."""
    load_demo(("SPY",), 80)  # committed, as the owner: enough days for regime signatures
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    try:
        call_command("build_embeddings", "--no-progress", stdout=StringIO())
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    for table in ("vectors_featureembedding", "vectors_volatilityregime"):
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT count(*) FROM {table}")
            assert cursor.fetchone()[0] > 0, table
