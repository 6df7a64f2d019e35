"""Each audited row against the last state the log records for it: a change made with the
triggers off, or by ``session_replication_role = replica``, shows here."""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
from django.apps import apps
from django.db import DatabaseError
from psycopg import sql

from qvp_site.audit_catalog import audit_trigger_in_order
from qvp_site.audit_report import Report, one
from qvp_site.db.audit import AUDIT_TABLE, AUDITED_MODELS, LEFT_OUT

if TYPE_CHECKING:
    from qvp_site.audit_report import Cursor

# Rows named per table at most; the count says how many more.
ROWS_NAMED = 50
# Types without an equality operator: compared as text.
TEXT_COMPARED = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}


# --- live rows ----------------------------------------------------------------------------------
def row_problems(cursor: Cursor, report: Report) -> None:
    for table in audited_tables():
        if audit_trigger_in_order(cursor, table, report):
            _compare_rows(cursor, table, LEFT_OUT.get(table, ()), report)


def audited_tables() -> list[str]:
    return sorted(apps.get_model(label)._meta.db_table for label in AUDITED_MODELS)


def _compare_rows(cursor: Cursor, table: str, left_out: tuple[str, ...], report: Report) -> None:
    cursor.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        [table],
    )
    columns = [(name, kind) for name, kind in cursor.fetchall() if name not in left_out]
    # In a savepoint: an entry holding what its column cannot take (written by hand) makes the
    # comparison fail, and that is named rather than ending the check.
    cursor.execute("SAVEPOINT qvp_audit_rows")
    try:
        cursor.execute(_rows_sql(table, columns), [table])
        rows = cursor.fetchall()
        cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
        report.rows_checked += one(cursor)[0]
    except (DatabaseError, psycopg.Error) as error:
        cursor.execute("ROLLBACK TO SAVEPOINT qvp_audit_rows")
        first_line = str(error).splitlines()[0]
        report.problems.append(
            f"{table}: its rows cannot be compared with the log ({first_line}): an entry holds"
            " a value its column cannot take (written by hand)"
        )
        return
    cursor.execute("RELEASE SAVEPOINT qvp_audit_rows")
    for row_key, entry, operation, live, differing in rows[:ROWS_NAMED]:
        problem = _row_problem(entry, operation, live, differing)
        report.problems.append(f"{table} row {row_key}: {problem}")
    if len(rows) > ROWS_NAMED:
        report.problems.append(f"{table}: {len(rows) - ROWS_NAMED} more rows unlike the log")


def _row_problem(entry: int | None, operation: str | None, live: bool, differing: list[str]) -> str:
    if entry is None:
        return "not in the audit log (written with its audit trigger off)"
    if operation == "DELETE":
        return f"present, but entry {entry} records its deletion (restored with the trigger off)"
    if not live:
        return f"missing, but entry {entry} ({operation}) records it (deleted with the trigger off)"
    return (
        f"differs from entry {entry} ({operation}), the last the log records, in"
        f" {', '.join(differing)} (changed with the trigger off)"
    )


def _rows_sql(table: str, columns: list[tuple[str, str]]) -> sql.Composed:
    """Each row whose live state is not its last entry's: (row key, entry, operation, live,
    differing columns). A column the entry does not hold (added later) is not compared."""
    differs = sql.SQL(", ").join(
        sql.SQL(
            "CASE WHEN l.new_row ? {name} AND (l.recorded).{col}{cast}"
            " IS DISTINCT FROM t.{col}{cast} THEN {name} END"
        ).format(
            name=sql.Literal(name),
            col=sql.Identifier(name),
            cast=sql.SQL("::text" if kind in TEXT_COMPARED else ""),
        )
        for name, kind in columns
    )
    return sql.SQL(
        """
        WITH last AS (
            -- The last in chain order: entries not linked yet are the newest, then by place
            -- (not by id, which whoever writes the log by hand chooses).
            SELECT DISTINCT ON (row_key) id, row_key, operation, new_row
            FROM {audit} WHERE table_name = %s
            ORDER BY row_key, seq IS NULL DESC, seq DESC, id DESC
        ), recorded AS (
            SELECT l.*, r AS recorded
            FROM last l, jsonb_populate_record(NULL::{table}, coalesce(l.new_row, '{{}}')) r
        ), compared AS (
            SELECT coalesce(l.row_key, t.id::text) AS row_key, l.id AS entry, l.operation,
                   t.id IS NOT NULL AS live,
                   array_remove(ARRAY[{differs}]::text[], NULL) AS differing
            FROM recorded l FULL JOIN {table} t ON t.id::text = l.row_key
        )
        SELECT * FROM compared
        WHERE entry IS NULL OR (operation = 'DELETE') = live
           OR (live AND cardinality(differing) > 0)
        ORDER BY row_key
        """
    ).format(audit=sql.Identifier(AUDIT_TABLE), table=sql.Identifier(table), differs=differs)
