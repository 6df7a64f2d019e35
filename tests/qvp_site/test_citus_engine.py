"""A database on a Citus cluster (QVP_CITUS_WORKERS): prepared before its migrations, the test
database included (the extension in it on every node, the workers registered), and detected as
the Citus engine. Runs where DATABASE_URL points at a coordinator; skipped elsewhere."""

from __future__ import annotations

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from qvp_site.db import citus, engine

pytestmark = pytest.mark.citus


def test_the_engine_is_citus_with_its_workers(db):
    found = engine.detect()
    assert found.is_citus
    assert found.citus_workers == len(settings.QVP_CITUS_WORKERS) > 0
    assert found.timescaledb_version is None


def test_the_test_database_has_the_extension_on_every_worker(db):
    name = connection.settings_dict["NAME"]
    login = {
        "user": connection.settings_dict["USER"],
        "password": connection.settings_dict["PASSWORD"],
    }
    for host, port in settings.QVP_CITUS_WORKERS:
        with psycopg.connect(host=host, port=port, dbname=name, **login) as conn:
            found = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
            assert found.fetchone() is not None, (host, port)


def test_preparing_again_changes_nothing(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT nodename, nodeport FROM pg_dist_node ORDER BY 1, 2")
        before = cursor.fetchall()
    citus._prepared.clear()
    assert citus.prepare(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nodename, nodeport FROM pg_dist_node ORDER BY 1, 2")
        assert cursor.fetchall() == before
