"""Compression on TimescaleDB leaves nothing open: TimescaleDB gives a compressed chunk its
hypertable's grants and fires no trigger when it makes one, so its own compression policy left
each compressed chunk open to the application role (INSERT around the load path) until the
next ``maintain``. The job that replaces the policy compresses and closes in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import DatabaseError, connection

from marketdata.models import MinuteBar
from qvp_site.db.aggregates import refresh_table
from qvp_site.db.operations import COMPRESS_JOB
from tests.qvp_site.test_partition_access import assert_closed, children

pytestmark = pytest.mark.timescaledb

# Every job that compresses a table, whichever kind: TimescaleDB's policies name their
# hypertable, the project's job names it in its config.
COMPRESSION_JOBS = """
SELECT coalesce(hypertable_name, config->>'hypertable'), proc_name, job_id, config
FROM timescaledb_information.jobs
WHERE proc_name IN ('policy_compression', %s) ORDER BY 1
"""


def _compression_jobs() -> list[tuple[str, str, int, dict]]:
    with connection.cursor() as cursor:
        cursor.execute(COMPRESSION_JOBS, [COMPRESS_JOB])
        return cursor.fetchall()


def test_every_compressed_table_has_the_closing_job_and_no_policy(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name, compress_after::interval FROM qvp_timeseries_table"
            " WHERE compress_after IS NOT NULL ORDER BY table_name"
        )
        wanted = cursor.fetchall()
        cursor.execute(
            "SELECT config->>'hypertable', (config->>'compress_after')::interval"
            " FROM timescaledb_information.jobs WHERE proc_name = %s ORDER BY 1",
            [COMPRESS_JOB],
        )
        jobs = cursor.fetchall()
    assert {"marketdata_minutebar", "signals_signal"} <= {table for table, _ in wanted}
    assert jobs == wanted
    policies = [row for row in _compression_jobs() if row[1] == "policy_compression"]
    assert not policies, f"TimescaleDB's compression policy left in place: {policies}"


def test_the_compression_job_closes_what_it_compresses(
    transactional_db, app_role_password, instrument
):
    """Run as TimescaleDB's scheduler runs it, the minute bars' compression job leaves no
    chunk it made reachable by either role."""
    old = datetime(2024, 1, 2, 15, tzinfo=UTC)
    MinuteBar.objects.create(instrument=instrument, ts=old, open=1, high=1, low=1, close=1)
    [job] = [row[2] for row in _compression_jobs() if row[0] == "marketdata_minutebar"]
    before = children()
    try:
        with connection.cursor() as cursor:
            cursor.execute("CALL run_job(%s)", [job])
            cursor.execute(
                "SELECT count(*) FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'marketdata_minutebar' AND is_compressed"
            )
            assert cursor.fetchone()[0] >= 1
        made = {name: parent for name, parent in children().items() if name not in before}
        assert_closed(made)
    finally:
        MinuteBar.objects.all().delete()
        refresh_table("marketdata_minutebar", old, old)


def test_a_bad_job_config_is_refused_naming_what_it_needs(db):
    config = '{"hypertable": "signals_signal"}'
    with connection.cursor() as cursor, pytest.raises(DatabaseError, match="compress_after"):
        cursor.execute(f"CALL {COMPRESS_JOB}(0, %s)", [config])
