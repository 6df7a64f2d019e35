"""What ``verify_audit`` checks, each check naming what it finds by table, row and entry:

- the links: every linked entry, in chain order, follows from the one before (no gap, no
  altered entry), and the head the sealer recorded is the last linked entry;
- the checkpoints, in the database and in the file outside it: each signed by a key of the
  keyring, and the chain still holds each one's hash at its place (a rewritten or truncated
  chain fails here, whoever re-hashed it); a checkpoint of the file the database lost is named;
- the window: entries not yet signed, and how old the oldest is, against
  ``QVP_AUDIT_UNSIGNED_WINDOW``;
- the rows: each audited table still has its triggers, enabled, and each of its live rows is
  the last state the log records for it (a change made with triggers off, or by
  ``session_replication_role = replica``, shows here).

Works on a Django cursor or a psycopg one (``restore`` checks a database it just loaded).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.apps import apps
from psycopg import sql

from qvp_site.audit_keys import Checkpoint, signature_problem
from qvp_site.db.audit import AUDIT_TABLE, AUDITED_MODELS, FIRST_BROKEN_LINK_SQL, GENESIS, HEAD_SQL

if TYPE_CHECKING:
    import psycopg
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from django.db.backends.utils import CursorWrapper

    Cursor = CursorWrapper | psycopg.Cursor[Any]

# Rows named per table at most; the count says how many more.
ROWS_NAMED = 50
# Types without an equality operator: compared as text.
TEXT_COMPARED = {"json", "xml", "point", "line", "lseg", "box", "path", "polygon", "circle"}


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    linked: int = 0
    head_hash: str = GENESIS
    unsigned: int = 0
    oldest_unsigned: datetime | None = None
    checkpoints: int = 0
    rows_checked: int = 0


def _one(cursor: Cursor) -> tuple[Any, ...]:
    """The one row an aggregate or a lookup by key returns."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the audit log's query returned no row")
    return tuple(row)


# --- links and head -----------------------------------------------------------------------------
def chain_problems(cursor: Cursor, report: Report) -> None:
    cursor.execute(FIRST_BROKEN_LINK_SQL)
    broken = cursor.fetchone()
    if broken is not None:
        report.problems.append(_broken_link(cursor, *broken))
    cursor.execute(HEAD_SQL)
    head_seq, head_hash, last_seq, last_hash, count = _one(cursor)
    report.linked, report.head_hash = count, last_hash or GENESIS
    if (head_seq, head_hash) != (last_seq or 0, last_hash or GENESIS):
        last = f"entry {last_seq} of the chain" if last_seq else "no entry (nothing is linked)"
        report.problems.append(
            f"the chain's head names entry {head_seq} of the chain (hash {head_hash}) but the"
            f" chain ends at {last}: entries were removed from its end, or the head was altered"
        )


def _describe(cursor: Cursor, entry_id: int) -> str:
    cursor.execute(
        f"SELECT seq, operation, table_name, row_key, at FROM {AUDIT_TABLE} WHERE id = %s",
        [entry_id],
    )
    seq, operation, table, row_key, at = _one(cursor)
    place = f"#{seq} of the chain" if seq is not None else "not linked yet"
    when = f"{at:%Y-%m-%d %H:%M:%S%z}"
    return f"entry {entry_id} ({place}: {operation} of {table} row {row_key} at {when})"


def _broken_link(cursor: Cursor, entry_id: int, wrong: str) -> str:
    where = f"audit chain broken at {_describe(cursor, entry_id)}"
    if wrong == "hash":
        return f"{where}: its hash does not match its content (the entry was altered)"
    if wrong == "seq":
        return f"{where}: entries before it in the chain are missing (removed)"
    return (
        f"{where}: its link to the entry before it is wrong (its prev_hash is not that entry's"
        " hash): entries before it were removed, inserted or altered"
    )


# --- checkpoints --------------------------------------------------------------------------------
def checkpoint_problems(
    cursor: Cursor,
    report: Report,
    keyring: dict[str, Ed25519PublicKey],
    checkpoint_file: Path | None,
) -> None:
    cursor.execute(
        "SELECT id, seq, hash, signed_at, key_id, signature FROM qvp_site_auditcheckpoint"
        " ORDER BY seq, id"
    )
    stored = {
        row[0]: Checkpoint(
            seq=row[1], hash=row[2], signed_at=row[3].isoformat(), key_id=row[4], signature=row[5]
        )
        for row in cursor.fetchall()
    }
    from_file = _read_file(checkpoint_file, report) if checkpoint_file else {}
    report.checkpoints = len(stored)
    chain = _chain_hashes(cursor, {c.seq for c in [*stored.values(), *from_file.values()]})
    signed: list[int] = []
    for name, checkpoint in [
        *((f"checkpoint {i} of the database", c) for i, c in stored.items()),
        *((f"checkpoint on line {n} of {checkpoint_file}", c) for n, c in from_file.items()),
    ]:
        problem = signature_problem(checkpoint, keyring) or _reach_problem(checkpoint, chain)
        if problem:
            report.problems.append(f"{name} (entry #{checkpoint.seq} of the chain): {problem}")
        else:
            signed.append(checkpoint.seq)
    kept = set(stored.values())
    for line, checkpoint in from_file.items():
        if checkpoint not in kept:
            report.problems.append(
                f"checkpoint on line {line} of {checkpoint_file} (entry #{checkpoint.seq} of the"
                " chain) is not in the database: checkpoints were removed from it"
            )
    _window(cursor, report, max(signed, default=0))


def _read_file(path: Path, report: Report) -> dict[int, Checkpoint]:
    if not path.exists():
        return {}
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            found[number] = Checkpoint(**{k: fields[k] for k in Checkpoint.__dataclass_fields__})
        except (ValueError, KeyError, TypeError) as error:
            report.problems.append(f"{path} line {number}: not a checkpoint ({error})")
    return found


def _chain_hashes(cursor: Cursor, seqs: set[int]) -> dict[int, str]:
    cursor.execute(f"SELECT seq, hash FROM {AUDIT_TABLE} WHERE seq = ANY(%s)", [sorted(seqs)])
    return dict(cursor.fetchall())


def _reach_problem(checkpoint: Checkpoint, chain: dict[int, str]) -> str | None:
    held = chain.get(checkpoint.seq)
    if held is None:
        return "the chain no longer reaches it (entries were removed from its end)"
    if held != checkpoint.hash:
        return (
            f"the chain holds hash {held} there, not the signed {checkpoint.hash}: entries up"
            " to it were rewritten"
        )
    return None


def _window(cursor: Cursor, report: Report, signed_up_to: int) -> None:
    cursor.execute(
        f"SELECT count(*), min(at) FROM {AUDIT_TABLE} WHERE seq IS NULL OR seq > %s",
        [signed_up_to],
    )
    report.unsigned, report.oldest_unsigned = _one(cursor)


# --- live rows ----------------------------------------------------------------------------------
def row_problems(cursor: Cursor, report: Report) -> None:
    for table in audited_tables():
        left_out = _trigger_problem_or_left_out(cursor, table, report)
        if left_out is not None:
            _compare_rows(cursor, table, left_out, report)


def audited_tables() -> list[str]:
    return sorted(apps.get_model(label)._meta.db_table for label in AUDITED_MODELS)


def _trigger_problem_or_left_out(cursor: Cursor, table: str, report: Report) -> list[str] | None:
    cursor.execute(
        "SELECT t.tgenabled, t.tgargs FROM pg_trigger t"
        " WHERE t.tgrelid = to_regclass(%s) AND t.tgname = 'qvp_audit'",
        [table],
    )
    found = cursor.fetchone()
    if found is None:
        report.problems.append(f"{table}: its audit trigger is gone; its changes go unrecorded")
        return None
    enabled, arguments = found
    if enabled == "D":
        report.problems.append(f"{table}: its audit trigger is disabled; its changes go unrecorded")
    return [a.decode() for a in bytes(arguments).split(b"\x00") if a]


def _compare_rows(cursor: Cursor, table: str, left_out: list[str], report: Report) -> None:
    cursor.execute(
        "SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid"
        " WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped"
        " ORDER BY a.attnum",
        [table],
    )
    columns = [(name, kind) for name, kind in cursor.fetchall() if name not in left_out]
    cursor.execute(_rows_sql(table, columns), [table])
    rows = cursor.fetchall()
    cursor.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    report.rows_checked += _one(cursor)[0]
    for row_key, entry, operation, live, differing in rows[:ROWS_NAMED]:
        report.problems.append(
            f"{table} row {row_key}: " + _row_problem(entry, operation, live, differing)
        )
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
            SELECT DISTINCT ON (row_key) id, row_key, operation, new_row
            FROM {audit} WHERE table_name = %s ORDER BY row_key, id DESC
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


def verify(
    cursor: Cursor,
    keyring: dict[str, Ed25519PublicKey],
    checkpoint_file: Path | None,
    rows: bool = True,
) -> Report:
    report = Report()
    chain_problems(cursor, report)
    checkpoint_problems(cursor, report, keyring, checkpoint_file)
    if rows:
        row_problems(cursor, report)
    return report
