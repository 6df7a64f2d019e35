"""On Citus, no SQL function that reads a distributed table is inlined into its caller's query.

PostgreSQL inlines a plain SQL function into the query that calls it. Citus plans a query
before that happens, and looks for such functions where it can: called with parameters, it
refuses the query. Where it does not look (a function called inside a CTE, say), the inlined
body is planned by PostgreSQL alone, which reads the coordinator's shell of the distributed
table: empty. The answer then has no row of the table and no error: a dividend with no close
before it, a count of 0.

A function with a setting of its own is never inlined: run on its own, its body goes through
Citus's planner, which answers right or refuses. So after every ``migrate`` on Citus, each SQL
function of the public schema whose definition names a distributed table, or a view over
one, gets ``SET search_path = public, pg_temp`` (the path it ran with). A function defined
again (``CREATE OR REPLACE`` drops its settings) is seen to again by the next ``migrate``.
"""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from qvp_site.db import engine

# The relations a function must not read inlined: the distributed tables (their partitions
# included, by the names pg_dist_partition gives) and the views over them, views of views
# too.
_READ_BY_NAME = """
WITH RECURSIVE distributed AS (
    SELECT logicalrelid AS oid FROM pg_dist_partition
),
readable(oid) AS (
    SELECT oid FROM distributed
    UNION
    SELECT r.ev_class FROM pg_depend d
    JOIN pg_rewrite r ON r.oid = d.objid
    JOIN readable s ON s.oid = d.refobjid
    WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class <> d.refobjid
)
SELECT c.relname FROM readable s JOIN pg_class c ON c.oid = s.oid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public'
"""

# SQL functions of public, inlinable (no settings of their own), whose definition names one of
# those relations as a word of its own.
INLINED_READERS_SQL = f"""
WITH names AS ({_READ_BY_NAME})
SELECT p.oid::regprocedure::text FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = 'public' AND l.lanname = 'sql' AND p.proconfig IS NULL
  AND p.prokind = 'f'
  AND EXISTS (SELECT 1 FROM names
              WHERE pg_get_functiondef(p.oid) ~ ('\\m' || names.relname || '\\M'))
ORDER BY 1
"""


def keep_readers_uninlined(connection: BaseDatabaseWrapper) -> list[str]:
    """On Citus, give each SQL function that reads a distributed table a setting of its own
    (see the module's docstring); the functions changed. Elsewhere nothing."""
    if not engine.is_citus(connection):
        return []
    with connection.cursor() as cursor:
        cursor.execute(INLINED_READERS_SQL)
        readers = [row[0] for row in cursor.fetchall()]
        for signature in readers:
            # A signature as regprocedure prints it: quoted where it needs to be.
            cursor.execute(f"ALTER FUNCTION {signature} SET search_path = public, pg_temp")
    return readers
