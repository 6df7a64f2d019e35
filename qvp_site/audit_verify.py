"""What ``verify_audit`` checks, each check naming what it finds by table, row and entry:

- the links: every linked entry, in chain order, follows from the one before (no gap, no
  altered entry, no field the hash cannot pin down), and the head the sealer recorded is the
  last linked entry;
- the checkpoints, in the database and in the file outside it: each signed by a key of the
  keyring, and the chain still holds each one's hash at its place (a rewritten or truncated
  chain fails here, whoever re-hashed it); a checkpoint of the file the database lost is named,
  and so is a missing file;
- the window: entries not yet signed and how old the oldest is, and how long ago the sealer
  last signed (it signs again at least every half window), against
  ``QVP_AUDIT_UNSIGNED_WINDOW``;
- the rows: each audited table still has its trigger, enabled for every session, keeping out
  exactly the columns declared (``LEFT_OUT``), and each live row is the last state the log
  records for it (a change made with triggers off, or by ``session_replication_role =
  replica``, shows here).

Times are computed by the server and read as text or seconds, so that no value an attacker
wrote (an infinite time, a time zone) can stop the check. Works on a Django cursor or a
psycopg one (``restore`` checks a database it has just loaded).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from django.apps import apps
from django.db import DatabaseError
from psycopg import sql

from qvp_site.audit_keys import (
    SIGNED_AT_MICROS_SQL,
    Checkpoint,
    parse_checkpoint,
    signature_problem,
    signed_at_text,
)
from qvp_site.db import sqlfiles
from qvp_site.db.audit import (
    AUDIT_TABLE,
    AUDITED_MODELS,
    FIRST_BROKEN_LINK_SQL,
    GENESIS,
    HEAD_SQL,
    LEFT_OUT,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from django.db.backends.utils import CursorWrapper

    Cursor = CursorWrapper | psycopg.Cursor[Any]

# pg_trigger.tgtype of FOR EACH ROW (1) AFTER INSERT (4) OR DELETE (8) OR UPDATE (16).
AFTER_EACH_ROW_CHANGE = 1 | 4 | 8 | 16
HEAD_GONE = "the chain's head row (qvp_audit_head) is gone"
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
    # Seconds since the oldest entry not yet signed was written, and since the newest valid
    # checkpoint was signed (None: there is none).
    oldest_unsigned_age: float | None = None
    last_signed_age: float | None = None
    checkpoints: int = 0
    rows_checked: int = 0
    # When verify began, by the server's clock (its first statement, which takes the snapshot).
    began: str = ""


def pin_search_path(cursor: Cursor) -> None:
    """Names resolve to the catalog and public only, for the rest of the transaction: a schema
    named after the verifying role, or a search_path set on the role or database, would let
    another function or table stand in for the chain's."""
    cursor.execute("SELECT set_config('search_path', 'pg_catalog, public', true)")


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
    head = cursor.fetchone()
    if head is None:
        report.problems.insert(0, f"{HEAD_GONE}: the chain cannot be checked (it was deleted)")
        return
    head_seq, head_hash, last_seq, last_hash, count = head
    report.linked, report.head_hash = count, last_hash or GENESIS
    if (head_seq, head_hash) != (last_seq or 0, last_hash or GENESIS):
        last = f"entry {last_seq} of the chain" if last_seq else "no entry (nothing is linked)"
        report.problems.append(
            f"the chain's head names entry {head_seq} of the chain (hash {head_hash}) but the"
            f" chain ends at {last}: entries were removed from its end, or the head was altered"
        )


def _describe(cursor: Cursor, entry_id: int) -> str:
    cursor.execute(
        "SELECT seq, operation, table_name, row_key, (at AT TIME ZONE 'UTC')::text"
        f" FROM {AUDIT_TABLE} WHERE id = %s",
        [entry_id],
    )
    seq, operation, table, row_key, at = _one(cursor)
    place = f"#{seq} of the chain" if seq is not None else "not linked yet"
    return f"entry {entry_id} ({place}: {operation} of {table} row {row_key} at {at} UTC)"


BROKEN = {
    "hash": "its hash does not match its content (the entry was altered)",
    "seq": "entries before it in the chain are missing (removed)",
    "ambiguous": (
        "a field its hash covers is empty (NULL) or holds the 0x1F that separates the fields,"
        " so another content could hash alike (the entry was altered)"
    ),
    "prev_hash": (
        "its link to the entry before it is wrong (its prev_hash is not that entry's hash):"
        " entries before it were removed, inserted or altered"
    ),
}


def _broken_link(cursor: Cursor, entry_id: int, wrong: str) -> str:
    return f"audit chain broken at {_describe(cursor, entry_id)}: {BROKEN[wrong]}"


# --- checkpoints --------------------------------------------------------------------------------
def checkpoint_problems(
    cursor: Cursor,
    report: Report,
    keyring: dict[str, Ed25519PublicKey],
    checkpoint_file: Path | None,
) -> None:
    stored = _stored_checkpoints(cursor)
    from_file = _read_file(checkpoint_file, report) if checkpoint_file else {}
    if checkpoint_file and not checkpoint_file.exists() and report.linked:
        report.problems.append(
            f"no checkpoint file at {checkpoint_file}, yet {report.linked} entries are linked:"
            " the sealer appends every checkpoint to it (give its copy with --checkpoints)"
        )
    report.checkpoints = len(stored)
    named = [
        *((f"checkpoint {i} of the database", c) for i, c in stored.items()),
        *((f"checkpoint on line {n} of {checkpoint_file}", c) for n, c in from_file.items()),
    ]
    chain = _chain_hashes(cursor, {c.seq for _name, c in named})
    valid: list[Checkpoint] = []
    judged: dict[Checkpoint, str | None] = {}  # the file's copy of a stored one: checked once
    for name, checkpoint in named:
        if checkpoint not in judged:
            judged[checkpoint] = signature_problem(checkpoint, keyring) or _reach_problem(
                checkpoint, chain
            )
        problem = judged[checkpoint]
        if problem:
            report.problems.append(f"{name} (entry #{checkpoint.seq} of the chain): {problem}")
        else:
            valid.append(checkpoint)
    heartbeat = _heartbeat(cursor, report, keyring, chain)
    kept = set(stored.values())
    for line, checkpoint in from_file.items():
        if checkpoint not in kept:
            report.problems.append(
                f"checkpoint on line {line} of {checkpoint_file} (entry #{checkpoint.seq} of the"
                " chain) is not in the database: checkpoints were removed from it"
            )
    _window(cursor, report, valid + heartbeat)


def _heartbeat(
    cursor: Cursor,
    report: Report,
    keyring: dict[str, Ed25519PublicKey],
    chain: dict[int, str],
) -> list[Checkpoint]:
    """The head's heartbeat (the sealer's latest signature of a head that did not move), when
    it verifies; named when it does not."""
    cursor.execute("SELECT heartbeat::text FROM qvp_audit_head")
    found = cursor.fetchone()
    if not found or found[0] is None:
        return []
    try:
        beat = parse_checkpoint(json.loads(found[0]))
    except ValueError as error:
        report.problems.append(f"the chain head's heartbeat is not a checkpoint ({error})")
        return []
    chain = chain | _chain_hashes(cursor, {beat.seq})
    problem = signature_problem(beat, keyring) or _reach_problem(beat, chain)
    if problem:
        report.problems.append(f"the chain head's heartbeat (entry #{beat.seq}): {problem}")
        return []
    return [beat]


def _stored_checkpoints(cursor: Cursor) -> dict[int, Checkpoint]:
    cursor.execute(
        f"SELECT id, seq, hash, {SIGNED_AT_MICROS_SQL}, key_id, signature"
        " FROM qvp_site_auditcheckpoint ORDER BY seq, id"
    )
    return {
        i: Checkpoint(
            seq=seq, hash=hash_, signed_at=signed_at_text(micros), key_id=kid, signature=sig
        )
        for i, seq, hash_, micros, kid, sig in cursor.fetchall()
    }


def _read_file(path: Path, report: Report) -> dict[int, Checkpoint]:
    if not path.exists():
        return {}
    found = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            if not isinstance(fields, dict):
                raise ValueError("not a JSON object")
            found[number] = parse_checkpoint(fields)
        except ValueError as error:
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


def _window(cursor: Cursor, report: Report, valid: list[Checkpoint]) -> None:
    """What is not signed yet, and how long the sealer has been silent (ages in seconds, by
    the server's clock; an entry's time is whatever wrote it, a signed time is not)."""
    signed_up_to = max((c.seq for c in valid), default=0)
    # ISO 8601 in UTC, as the sealer writes it: ordered as text.
    last_signed = max((c.signed_at for c in valid), default=None)
    cursor.execute(
        # Ages to when verify began (its snapshot's time): what was signed after it is not in
        # view, so an age measured to the clock would grow while a long verify runs.
        "SELECT count(e.id), extract(epoch FROM b.at - min(e.at))::float8,"
        " extract(epoch FROM b.at - %s::timestamptz)::float8"
        " FROM (SELECT coalesce(%s::timestamptz, clock_timestamp()) AS at) b"
        f" LEFT JOIN {AUDIT_TABLE} e ON e.seq IS NULL OR e.seq > %s GROUP BY b.at",
        [last_signed, report.began or None, signed_up_to],
    )
    report.unsigned, report.oldest_unsigned_age, report.last_signed_age = _one(cursor)


def window_problems(report: Report, window: float) -> None:
    """Entries waiting longer than ``window`` seconds for a signature, or a sealer silent
    longer than that while the chain has entries."""
    if report.unsigned and (report.oldest_unsigned_age or 0) > window:
        report.problems.append(
            f"{report.unsigned} entries not yet signed, the oldest for"
            f" {report.oldest_unsigned_age:.0f} s: longer than QVP_AUDIT_UNSIGNED_WINDOW"
            f" ({window:.0f} s). Is the sealer running (the scheduler, or `manage.py"
            " seal_audit`) with its key?"
        )
    silent = report.last_signed_age
    if report.linked and (silent is None or silent > window):
        since = "never" if silent is None else f"{silent:.0f} s ago"
        report.problems.append(
            f"the sealer last signed the chain {since}, longer than QVP_AUDIT_UNSIGNED_WINDOW"
            f" ({window:.0f} s) ago, though it signs at least every half window: what changed"
            " meanwhile was not anchored. Is the sealer running with its key?"
        )


# --- the functions the chain depends on --------------------------------------------------------
def function_problems(cursor: Cursor, report: Report) -> None:
    """Each audit function as its latest SQL version defines it: one function of its name in
    the whole database (an overload or a namesake in another schema could stand in for it),
    in public, with the same body, settings (a search_path changed would let another function
    stand in for one it calls) and SECURITY DEFINER. A superuser who rewrote the trigger's
    function could drop a column from every entry."""
    expected = audit_functions()
    cursor.execute(
        "SELECT p.proname, n.nspname, p.prosrc, coalesce(p.proconfig, '{}'), p.prosecdef"
        " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE p.proname = ANY(%s)",
        [sorted(expected)],
    )
    found: dict[str, list[tuple[str, tuple[str, list[str], bool]]]] = {}
    for name, schema, body, config, definer in cursor.fetchall():
        found.setdefault(name, []).append((schema, (body, sorted(config), definer)))
    for name, (body, config, definer) in sorted(expected.items()):
        versions = found.get(name, [])
        if not versions:
            report.problems.append(f"the audit function {name} is gone")
        elif len(versions) > 1:
            where = ", ".join(sorted(schema for schema, _ in versions))
            report.problems.append(
                f"the audit function {name} has namesakes (in {where}): another could stand in"
            )
        elif versions[0] != ("public", (body, sorted(config), definer)):
            report.problems.append(
                f"the audit function {name} is not as its SQL version defines it (its body,"
                " settings, schema or SECURITY DEFINER were changed)"
            )


# The triggers the log's own tables must have, and no others: one more could rewrite what the
# log is given (a BEFORE INSERT dropping a column) or lift its protection.
LOG_TRIGGERS = {
    AUDIT_TABLE: {"qvp_audit_append_only", "qvp_audit_truncate"},
    "qvp_site_auditcheckpoint": {
        "qvp_audit_checkpoint_append_only",
        "qvp_audit_checkpoint_truncate",
    },
    "qvp_audit_head": set(),
}


def trigger_problems(cursor: Cursor, report: Report) -> None:
    cursor.execute(
        "SELECT c.relname, t.tgname, t.tgenabled FROM pg_trigger t"
        " JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE c.oid = ANY(%s::regclass[]) AND NOT t.tgisinternal",
        [[f"public.{table}" for table in LOG_TRIGGERS]],
    )
    found: dict[str, dict[str, str]] = {table: {} for table in LOG_TRIGGERS}
    for table, name, enabled in cursor.fetchall():
        found[table][name] = enabled
    cursor.execute(
        "SELECT DISTINCT c.relname FROM pg_rewrite r JOIN pg_class c ON c.oid = r.ev_class"
        " WHERE c.oid = ANY(%s::regclass[])",
        [[f"public.{table}" for table in LOG_TRIGGERS]],
    )
    for (table,) in cursor.fetchall():
        report.problems.append(f"{table}: a rule was put on it, which could rewrite its rows")
    for table, wanted in LOG_TRIGGERS.items():
        extra = sorted(set(found[table]) - wanted)
        missing = sorted(wanted - set(found[table]))
        off = sorted(n for n, enabled in found[table].items() if n in wanted and enabled != "O")
        for names, what in ((extra, "unexpected"), (missing, "missing"), (off, "not enabled")):
            if names:
                report.problems.append(f"{table}: {what} trigger(s) {', '.join(names)}")


_FUNCTION = re.compile(
    r"CREATE OR REPLACE (?:FUNCTION|PROCEDURE) (\w+)\(.*?\)(.*?)AS \$\$(.*?)\$\$", re.DOTALL
)
_SETTING = re.compile(r"SET (\w+) = (.+?)(?=\s+SET\s|\s+AS\s|$)", re.DOTALL)


def audit_functions() -> dict[str, tuple[str, list[str], bool]]:
    """name -> (body, settings as pg_proc keeps them, SECURITY DEFINER), from the audit
    family's latest version, which defines every function of the chain."""
    text = sqlfiles.latest_sql("qvp_site", "audit")
    found = {}
    for name, header, body in _FUNCTION.findall(text):
        settings = [
            f"{_GUC_NAMES.get(k.lower(), k)}={v.strip().strip(chr(39))}"
            for k, v in _SETTING.findall(header + " AS ")
        ]
        found[name] = (body, settings, "SECURITY DEFINER" in header)
    return found


# GUC names as pg_proc keeps them.
_GUC_NAMES = {"timezone": "TimeZone", "search_path": "search_path"}


# --- live rows ----------------------------------------------------------------------------------
def row_problems(cursor: Cursor, report: Report) -> None:
    for table in audited_tables():
        if _trigger_in_order(cursor, table, report):
            _compare_rows(cursor, table, LEFT_OUT.get(table, ()), report)


def audited_tables() -> list[str]:
    return sorted(apps.get_model(label)._meta.db_table for label in AUDITED_MODELS)


def _trigger_in_order(cursor: Cursor, table: str, report: Report) -> bool:
    """Whether ``table``'s audit trigger is there, fires in every session ('O': origin, the
    default; 'A': always) and keeps out exactly the declared columns. A problem says what
    else; the rows are still compared where the trigger exists."""
    cursor.execute(
        "SELECT t.tgenabled, t.tgargs,"
        " CASE WHEN t.tgfoid = 'public.qvp_audit_row()'::regprocedure THEN 'qvp_audit_row'"
        " ELSE t.tgfoid::regprocedure::text END, t.tgtype FROM pg_trigger t"
        " WHERE t.tgrelid = to_regclass(%s) AND t.tgname = 'qvp_audit'",
        [table],
    )
    found = cursor.fetchone()
    if found is None:
        report.problems.append(f"{table}: its audit trigger is gone; its changes go unrecorded")
        return False
    enabled, arguments, function, kind = found
    if (function, kind) != ("qvp_audit_row", AFTER_EACH_ROW_CHANGE):
        report.problems.append(
            f"{table}: its audit trigger calls {function} (type {kind}), not qvp_audit_row"
            " after each row inserted, updated or deleted"
        )
    if enabled not in ("O", "A"):
        report.problems.append(
            f"{table}: its audit trigger is {'disabled' if enabled == 'D' else 'replica-only'};"
            " its changes go unrecorded"
        )
    left_out = tuple(a.decode() for a in bytes(arguments).split(b"\x00") if a)
    if left_out != LEFT_OUT.get(table, ()):
        report.problems.append(
            f"{table}: its audit trigger keeps {', '.join(left_out) or 'nothing'} out of the"
            f" record, not the declared {', '.join(LEFT_OUT.get(table, ())) or 'nothing'}"
        )
    return True


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
        report.rows_checked += _one(cursor)[0]
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


def verify(
    cursor: Cursor,
    keyring: dict[str, Ed25519PublicKey],
    checkpoint_file: Path | None,
    window: float,
    rows: bool = True,
) -> Report:
    report = Report()
    pin_search_path(cursor)
    cursor.execute("SELECT clock_timestamp()::text")
    report.began = _one(cursor)[0]
    chain_problems(cursor, report)
    if report.problems and report.problems[0].startswith(HEAD_GONE):
        return report
    checkpoint_problems(cursor, report, keyring, checkpoint_file)
    window_problems(report, window)
    function_problems(cursor, report)
    trigger_problems(cursor, report)
    if rows:
        row_problems(cursor, report)
    return report
