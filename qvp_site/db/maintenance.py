"""``maintain``: the SQL functions ``qvp_maintain``, ``daily_maintenance`` and
``weekly_maintenance`` (qvp_site/sql/maintenance/0012.sql and 0013.sql) do every step that
runs in a transaction (partitions ahead, retention, compression where due, ANALYZE, and on
plain PostgreSQL the summaries' refresh); this module does what they leave, which their
report names: the settings they cannot read (QVP_RETENTION, recorded in the catalog
first), TimescaleDB's continuous aggregates (refreshed outside a transaction) and VACUUM.

Each step is safe to run twice at once: partition work and aggregate refreshes take advisory
locks, and TimescaleDB serialises its own chunk operations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from qvp_site.db import aggregates, catalog, engine
from qvp_site.db.catalog import retention_in_force
from qvp_site.db.quoting import ident

Report = Callable[[str], None]


def maintain(
    *,
    report: Report,
    analyze: bool = False,
    vacuum: bool = False,
    cover: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run every maintenance step over every time-series table, reporting each action;
    returns the SQL functions' report ({"done": [...], "left": [...]}). ``now`` is the end of
    the recent window of TimescaleDB's continuous aggregates; the SQL refresh of plain
    PostgreSQL's summaries reads the transaction's."""
    now = now or timezone.now()
    kind = "weekly" if vacuum else "daily" if analyze else None
    with transaction.atomic(), connection.cursor() as cursor:
        record_retention_settings(cursor)
    with connection.cursor() as cursor:
        tables = catalog.time_series(cursor)
    done: dict[str, Any] = {"done": [], "left": []}
    for series in tables:
        # A transaction a table: its partition DDL locks that table alone, and not for long;
        # its summaries are refreshed after that commits, in a transaction of their own.
        with transaction.atomic(), connection.cursor() as cursor:
            found = run_function(cursor, kind, cover, series.table)
        with transaction.atomic(), connection.cursor() as cursor:
            summaries = refresh_summaries(cursor, series.table)
        for key in done:
            done[key] += found[key] + summaries[key]
        for line in found["done"] + summaries["done"]:
            report(line)
    left_to_refresh = {line.split(":", 1)[0] for line in done["left"]}
    for series in tables:
        _refresh_aggregates(series.table, left_to_refresh, now, report)
        if vacuum:  # the function has analysed: VACUUM runs outside any transaction
            with connection.cursor() as cursor:
                cursor.execute(f"VACUUM {ident(series.table)}")
            report(f"{series.table}: vacuum")
    return done


def run_function(
    cursor: Any, kind: str | None, cover: tuple[datetime, datetime] | None, table: str
) -> dict[str, Any]:
    """Call ``qvp_maintain``, the function behind ``daily_maintenance`` and
    ``weekly_maintenance``, for ``table``: with ANALYZE for a daily or weekly run (``kind``),
    its summaries left to ``refresh_summaries``."""
    lower, upper = cover or (None, None)
    cursor.execute(
        "SELECT qvp_maintain(%s, %s, %s, %s, refresh => false)",
        [kind is not None, lower, upper, table],
    )
    return _report(cursor.fetchone()[0])


def refresh_summaries(cursor: Any, table: str) -> dict[str, Any]:
    """``qvp_refresh_summaries`` for ``table``: on plain PostgreSQL its summaries refreshed
    (done); on TimescaleDB its continuous aggregates named (left), for ``_refresh_aggregates``."""
    cursor.execute(
        "SELECT qvp_refresh_summaries(%s, %s)", [table, engine.is_timescaledb(connection)]
    )
    return _report(cursor.fetchone()[0])


def _report(found: Any) -> dict[str, Any]:
    return found if isinstance(found, dict) else json.loads(found)  # Django reads jsonb as text


def record_retention_settings(cursor: Any) -> None:
    """Write QVP_RETENTION into the catalog (``retention_setting``), where the SQL functions
    read it: 'off', the interval, or NULL where the setting leaves the migration's default.
    Only what changed is written."""
    overrides = {}
    for table in settings.QVP_RETENTION:
        interval = retention_in_force(table, None)  # parsed here: a bad value fails loudly
        overrides[table] = interval.sql() if interval is not None else "off"
    cursor.execute(
        "UPDATE qvp_timeseries_table t SET retention_setting = %s::jsonb ->> t.table_name"
        " WHERE t.retention_setting IS DISTINCT FROM %s::jsonb ->> t.table_name",
        [json.dumps(overrides), json.dumps(overrides)],
    )


def _refresh_aggregates(table: str, left: set[str], now: datetime, report: Report) -> None:
    """Refresh the aggregates of ``table`` the function left (TimescaleDB's), as it would."""
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table=table)
    for agg in (agg for agg in found if agg.name in left):
        if pending := aggregates.refresh_pending(agg):
            report(f"{agg.name}: refreshed pending {_span(*pending)}")
        lower, upper = aggregates.refresh(agg, agg.refresh_window.add(now, -1), now)
        report(f"{agg.name}: refreshed {_span(lower, upper)}")


def _span(lower: datetime, upper: datetime) -> str:
    return f"{lower:%Y-%m-%d %H:%M} .. {upper:%Y-%m-%d %H:%M}"
