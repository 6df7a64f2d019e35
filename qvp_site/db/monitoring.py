"""The monitoring views: ``system_health`` and the views it summarises.

``system_health`` is one row per reading (check, subject, value, unit, detail), so that one
``SELECT * FROM system_health`` answers "how is the database?"; the detail views behind it
(``system_table_sizes``, ``system_index_usage``, ``system_connections``,
``system_replication``, ``system_slow_statements``) give the full picture of each part.

What a plain role may not read of the server's statistics (other sessions' states, other
roles' statements, the replicas) is read by SECURITY DEFINER functions running as the owner,
which only the application's and the read-only roles may call. ``pg_stat_statements`` is
optional: ``qvp_slow_statements`` looks for the extension at each call and returns no rows
without it, so the views work on every server.

The SQL is versioned with the migration that installs it (``qvp_site/sql/monitoring/``); what
remains here is what the roles are granted.
"""

from __future__ import annotations

# The functions reveal the server's statistics: create_db_roles grants them to the application's
# and read-only roles only (qvp_site/db/roles.py).
FUNCTIONS = (
    "qvp_index_usage()",
    "qvp_connections()",
    "qvp_replication()",
    "qvp_slow_statements(integer)",
)
