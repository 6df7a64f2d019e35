"""TimescaleDB policy jobs kept in line with the settings (QVP_RETENTION): by the migrations
here, and at each ``maintain`` by the SQL function ``qvp_maintain_chunks``."""

from __future__ import annotations

from qvp_site.db.intervals import Interval
from qvp_site.db.plpgsql import do_block, interval, regclass
from qvp_site.db.quoting import literal


def retention_policy_sql(table: str, drop_after: Interval | None) -> str:
    """SQL giving ``table`` a retention job that drops chunks older than ``drop_after``, or
    none, decided by the server (as ``maintain`` does, qvp_site/sql/maintenance/0012.sql). A
    job that already drops after the same interval is left alone, keeping its id and its
    history."""
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
