"""``daily_maintenance()`` and ``weekly_maintenance()``, the design documents' calls, in raw
SQL: refused to every role of the application, and as the owner they do what runs in a
transaction (a partition ahead made, an expired one dropped, an old chunk's rows gone) and name
in their report what they leave to ``manage.py maintain``, which does it after calling them."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from qvp_site.db import catalog, partitions, roles
from qvp_site.db.maintenance import maintain, record_retention_settings
from signals.models import SystemLog
from tests.scratch_database import child_environment, empty_database, run_manage

ROLES = (roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE)
CALLS = ("daily_maintenance()", "weekly_maintenance()", "qvp_maintain()")


def report(call: str = "daily_maintenance()") -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {call}")
        found = cursor.fetchone()[0]
    return found if isinstance(found, dict) else json.loads(found)  # Django reads jsonb as text


def as_role(role: str, statement: str) -> None:
    """``statement`` as ``role`` in a savepoint (a failure rolls it back, and the role too)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(statement)


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("role", ROLES)
def test_no_role_of_the_application_may_maintain(db, app_role_password, role, call):
    with pytest.raises(DatabaseError, match="permission denied for function"):
        as_role(role, f"SELECT {call}")


def test_daily_makes_a_partition_ahead_and_drops_an_expired_one(db, timescaledb):
    if timescaledb:
        pytest.skip("partitions are the plain engine's; chunks: the test below")
    report()  # steady state: every partition ahead made
    with connection.cursor() as cursor:
        (logs,) = catalog.time_series(cursor, "signals_systemlog")
        ahead = partitions.partitions(cursor, "marketdata_minutebar")[-1].name
        cursor.execute(f"DROP TABLE {ahead}")
    old = timezone.now() - timedelta(days=400)
    (expired,) = partitions.ensure_partitions("signals_systemlog", logs.chunk_interval, old, old)
    found = report()
    assert f"marketdata_minutebar: 1 partition(s) created: {ahead}" in found["done"]
    dropped = [line for line in found["done"] if line.startswith("signals_systemlog: retention")]
    assert len(dropped) == 1, found["done"]
    assert dropped[0].endswith(expired)
    assert "signals_systemlog: analyze" in found["done"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s), to_regclass(%s)", [ahead, expired])
        assert cursor.fetchone() == (ahead, None)
        cursor.execute(
            "SELECT retention_last_result FROM qvp_timeseries_table"
            " WHERE table_name = 'signals_systemlog'"
        )
        assert cursor.fetchone()[0].startswith("1 partition(s) older than")


@pytest.mark.timescaledb
def test_daily_drops_an_expired_chunk_and_compresses(db):
    old = timezone.now() - timedelta(days=400)
    SystemLog.objects.create(ts=old, level="INFO", logger="t", message="old")
    found = report()
    assert any(
        line.startswith("signals_systemlog: retention 90 days: ") and "chunk(s) dropped" in line
        for line in found["done"]
    ), found["done"]
    assert any("chunk(s) compressed or already so" in line for line in found["done"])
    assert not SystemLog.objects.filter(ts=old).exists()


def test_the_report_names_what_is_left_to_the_command(db, timescaledb):
    with connection.cursor() as cursor:
        aggregates = [agg.name for agg in catalog.aggregates(cursor)]
    daily, weekly = report(), report("weekly_maintenance()")
    assert aggregates
    # A continuous aggregate is refreshed outside a transaction: left. A summary table is
    # refreshed by the function itself (tests/qvp_site/test_summary_refresh.py).
    where = daily["left"] if timescaledb else daily["done"]
    for agg in aggregates:
        assert any(line.startswith(f"{agg}: refresh") for line in where), agg
    assert any("VACUUM" in line for line in weekly["left"])
    assert not any("VACUUM" in line for line in daily["left"])


def test_the_command_prints_the_functions_report_and_does_what_it_leaves(transactional_db):
    # Committed: TimescaleDB refreshes a continuous aggregate outside a transaction only.
    lines: list[str] = []
    found = maintain(report=lines.append, analyze=True)
    assert lines[: len(found["done"])] == found["done"]
    with connection.cursor() as cursor:
        aggregates = [agg.name for agg in catalog.aggregates(cursor)]
    for agg in aggregates:  # each left refresh, done
        assert any(line.startswith(f"{agg}: refreshed ") for line in lines), agg


def test_the_retention_setting_reaches_the_function(transactional_db, settings):
    settings.QVP_RETENTION = {"signals_systemlog": "30 days", "signals_newsarticle": "off"}
    try:
        maintain(report=lambda line: None)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT table_name, retention_setting,"
                " qvp_retention_in_force(retention_setting, retention_default)::text"
                " FROM qvp_timeseries_table WHERE table_name LIKE 'signals_%%' ORDER BY 1"
            )
            found = {name: (setting, force) for name, setting, force in cursor.fetchall()}
        done = report()["done"]  # in psql as well, without the command
    finally:  # the catalog outlives the test: the settings' defaults back
        settings.QVP_RETENTION = {}
        with connection.cursor() as cursor:
            record_retention_settings(cursor)
    assert found["signals_systemlog"] == ("30 days", "30 days")
    assert found["signals_newsarticle"] == ("off", None)
    assert found["signals_signal"] == (None, None)
    assert any(line.startswith("signals_systemlog: retention 30 days") for line in done), done


def test_one_table_at_a_time_touches_that_table_alone(db):
    """The command calls the function a table at a time, each in its own transaction, so
    that a table's partition DDL does not hold the others' locks until all are done."""
    found = report("weekly_maintenance(NULL, NULL, 'signals_systemlog')")
    named = {line.split(":")[0] for line in found["done"] + found["left"]}
    with connection.cursor() as cursor:
        own = {agg.name for agg in catalog.aggregates(cursor, source_table="signals_systemlog")}
    assert named <= {"signals_systemlog"} | own, named
    assert "signals_systemlog: analyze" in found["done"]
    assert any(line.startswith("signals_systemlog: VACUUM") for line in found["left"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relation::regclass::text FROM pg_locks WHERE pid = pg_backend_pid()"
            " AND mode = 'ShareUpdateExclusiveLock' AND relation IS NOT NULL"
        )
        locked = {name for (name,) in cursor.fetchall()}
    assert not {name for name in locked if name.startswith("marketdata_")}, locked


def test_the_command_on_an_unmigrated_database_says_to_migrate(db):
    """Run by a scheduler against a database created but not migrated: one line naming what to
    run, no traceback."""
    with empty_database("qvp_unmigrated") as name:
        env = child_environment(name)
        env.pop("QVP_CITUS_WORKERS", None)  # a database of one server, not yet the cluster's
        refusal = run_manage(env, "maintain", refused=True)
    assert "Traceback" not in refusal, refusal
    assert "migrations are not applied to this database" in refusal, refusal
    assert "run `manage.py migrate` first" in refusal, refusal
