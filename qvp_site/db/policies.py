"""TimescaleDB policy jobs kept in line with the settings (QVP_RETENTION)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qvp_site.db import catalog
from qvp_site.db.intervals import Interval
from qvp_site.db.plpgsql import do_block, interval, regclass
from qvp_site.db.quoting import ident, literal

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper


def sync_retention_policy(cursor: CursorWrapper, table: str) -> str:
    """Make ``table``'s retention job match the retention in force; says what it did."""
    (series,) = catalog.time_series(cursor, table)
    wanted = series.retention
    cursor.execute(
        "SELECT config->>'drop_after' FROM timescaledb_information.jobs"
        " WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
        [table],
    )
    row = cursor.fetchone()
    current = row[0] if row else None
    if wanted is None and current is None:
        return "no retention"
    if wanted is not None and current is not None:
        cursor.execute("SELECT %s::interval = %s::interval", [wanted.sql(), current])
        if cursor.fetchone()[0]:
            return f"retention {current} (unchanged)"
    regclass = ident(table)
    cursor.execute("SELECT remove_retention_policy(%s::regclass, if_exists => true)", [regclass])
    if wanted is None:
        return "retention policy removed"
    cursor.execute(
        "SELECT add_retention_policy(%s::regclass, drop_after => %s::interval)",
        [regclass, wanted.sql()],
    )
    return f"retention policy set to {wanted.sql()}"


def retention_policy_sql(table: str, drop_after: Interval | None) -> str:
    """SQL giving ``table`` a retention job that drops chunks older than ``drop_after``, or
    none: what ``sync_retention_policy`` does, decided by the server. A job that already
    drops after the same interval is left alone, keeping its id and its history."""
    remove = f"remove_retention_policy({regclass(table)}, if_exists => true)"
    if drop_after is None:
        return f"SELECT {remove}"
    wanted = interval(drop_after)
    return do_block(f"""
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM timescaledb_information.jobs
        WHERE proc_name = 'policy_retention' AND hypertable_name = {literal(table)}
          AND (config->>'drop_after')::interval = {wanted}
    ) THEN
        PERFORM {remove};
        PERFORM add_retention_policy({regclass(table)}, drop_after => {wanted});
    END IF;
END
""")
