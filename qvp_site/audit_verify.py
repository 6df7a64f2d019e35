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
- the catalog (``audit_catalog``): the audit functions as their SQL file defines them, the
  log's tables with their own triggers only, each audited table's trigger as declared;
- the rows (``audit_rows``): each live row is the last state the log records for it (a change
  made with triggers off, or by ``session_replication_role = replica``, shows here).

Times are computed by the server and read as text or seconds, so that no value an attacker
wrote (an infinite time, a time zone) can stop the check. Works on a Django cursor or a
psycopg one (``restore`` checks a database it has just loaded).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from qvp_site.audit_catalog import function_problems, trigger_problems
from qvp_site.audit_keys import (
    SIGNED_AT_MICROS_SQL,
    Checkpoint,
    parse_checkpoint,
    signature_problem,
    signed_at_text,
)
from qvp_site.audit_report import Report, one
from qvp_site.audit_rows import row_problems
from qvp_site.db.audit import AUDIT_TABLE, FIRST_BROKEN_LINK_SQL, GENESIS, HEAD_SQL

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from qvp_site.audit_report import Cursor

HEAD_GONE = "the chain's head row (qvp_audit_head) is gone"


def pin_search_path(cursor: Cursor) -> None:
    """Names resolve to the catalog and public only, for the rest of the transaction: a schema
    named after the verifying role, or a search_path set on the role or database, would let
    another function or table stand in for the chain's."""
    cursor.execute("SELECT set_config('search_path', 'pg_catalog, public', true)")


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
    seq, operation, table, row_key, at = one(cursor)
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
    report.unsigned, report.oldest_unsigned_age, report.last_signed_age = one(cursor)


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
    report.began = one(cursor)[0]
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
