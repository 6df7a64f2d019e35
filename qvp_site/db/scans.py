"""Loose index scans: the distinct values of a column that leads an index, found by skipping
through the index from one value to the next, where SELECT DISTINCT would read every row
(PostgreSQL plans no skip scan for it)."""

from __future__ import annotations

from typing import Any

from django.db import connection

from qvp_site.db.quoting import ident


def distinct_leading_values(column: str, table: str, limit: int = 200) -> list[Any]:
    """Distinct values of a column that leads an index of ``table``, found by skipping
    through the index from one value to the next (a loose index scan): a handful of index
    probes, where SELECT DISTINCT would read every row."""
    col, tab = ident(column), ident(table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH RECURSIVE found(value, n) AS (
                (SELECT {col}, 1 FROM {tab} ORDER BY {col} LIMIT 1)
                UNION ALL
                SELECT (SELECT e.{col} FROM {tab} e WHERE e.{col} > found.value
                        ORDER BY e.{col} LIMIT 1), n + 1
                FROM found WHERE found.value IS NOT NULL AND n < %s
            )
            SELECT value FROM found WHERE value IS NOT NULL
            """,
            [limit],
        )
        return [row[0] for row in cursor.fetchall()]
