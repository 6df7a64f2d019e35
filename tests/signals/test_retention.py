"""The design's policies on the signals tables: recorded in the catalog from the settings,
applied by TimescaleDB's jobs or, on plain PostgreSQL, by maintain dropping partitions;
QVP_RETENTION overrides a table's retention at run time."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from qvp_site.db import catalog, partitions
from qvp_site.db.intervals import parse_interval
from signals.models import SystemLog


def series(table: str) -> catalog.TimeSeries:
    with connection.cursor() as cursor:
        (found,) = catalog.time_series(cursor, table)
    return found


def test_the_catalog_holds_the_design_figures_from_the_settings(db):
    assert settings.QVP_SIGNALS_COMPRESS_AFTER == "30 days"
    assert series("signals_signal").compress_after == "30 days"
    assert series("signals_signal").retention is None  # signals are kept
    logs = series("signals_systemlog")
    assert logs.compress_after == settings.QVP_SYSTEMLOG_COMPRESS_AFTER == "7 days"
    assert logs.retention == parse_interval("90 days")
    assert series("signals_newsarticle").retention == parse_interval("1 year")


def test_qvp_retention_overrides_a_table(db, settings):
    settings.QVP_RETENTION = {"signals_systemlog": "30 days", "signals_newsarticle": "off"}
    assert series("signals_systemlog").retention == parse_interval("30 days")
    assert series("signals_newsarticle").retention is None


@pytest.mark.timescaledb
def test_timescaledb_jobs(db):
    with connection.cursor() as cursor:
        # The compression job names its table in its config (qvp_site/db/operations.py).
        cursor.execute(
            "SELECT coalesce(hypertable_name, config->>'hypertable') AS name, proc_name,"
            " config->>'drop_after', config->>'compress_after'"
            " FROM timescaledb_information.jobs"
            " WHERE coalesce(hypertable_name, config->>'hypertable') LIKE 'signals_%%'"
            " ORDER BY 1, 2"
        )
        jobs = {(table, proc): drop or compress for table, proc, drop, compress in cursor}
    assert jobs == {
        ("signals_newsarticle", "policy_retention"): "1 year",
        ("signals_signal", "qvp_compress_job"): "30 days",
        ("signals_systemlog", "qvp_compress_job"): "7 days",
        ("signals_systemlog", "policy_retention"): "90 days",
    }


@pytest.mark.django_db(transaction=True)  # TimescaleDB refreshes aggregates outside one
def test_maintain_drops_system_logs_past_their_retention():
    now = timezone.now()
    old, recent = now - timedelta(days=120), now - timedelta(days=3)
    for ts in (old, recent):
        partitions.prepare_load("signals_systemlog", ts, ts)
        SystemLog.objects.create(ts=ts, level="INFO", logger="t", message=str(ts))
    out = StringIO()
    call_command("maintain", stdout=out)
    assert "signals_systemlog: retention" in out.getvalue()
    assert list(SystemLog.objects.filter(logger="t").values_list("ts", flat=True)) == [recent]
