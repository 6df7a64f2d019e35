"""The audit chain as a file an auditor verifies without the database: the one writer behind
``manage.py export_audit`` and the audit log's "Export CSV" in the admin. The format, and its
verifier (stdlib and ``cryptography`` alone), are ``qvp_site/audit_offline.py``'s.

Each entry is written with the exact text its hash covers, as PostgreSQL renders it for
``qvp_audit_hash`` (the rows as ``jsonb::text``, the time as epoch seconds), never re-read
into Python values: JSON re-serialised in Python sorts keys differently and turns NUMERIC into
floats, and no hash could be recomputed. An export is a stretch of the chain between signed
checkpoints: from the entry after the checkpoint before the first one asked for (or the
chain's first) to the first checkpoint at or after the last one asked for (or the chain's
head), so that its start and its end are vouched for. Only linked entries are in it: those
not linked yet are in no chain until the sealer's next round (seconds).

The caller holds the snapshot: ``snapshot()`` opens a read-only, repeatable-read transaction,
so that the entries and the checkpoints are of one moment.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connections, transaction

from qvp_site import time_limits
from qvp_site.acting import declare
from qvp_site.audit_keys import SIGNED_AT_MICROS_SQL, signed_at_text
from qvp_site.audit_offline import COLUMNS, escape
from qvp_site.db.audit import AUDIT_TABLE

# The stretch of the chain between the checkpoints around [first, last]: see the module.
RANGE_SQL = """
SELECT coalesce((SELECT max(seq) FROM qvp_site_auditcheckpoint WHERE seq < %(first)s), 0) + 1,
       (SELECT min(seq) FROM qvp_site_auditcheckpoint WHERE seq >= %(last)s),
       (SELECT coalesce(max(seq), 0) FROM qvp_site_auditcheckpoint WHERE seq < %(last)s)
"""
# The columns of audit_offline.COLUMNS; the hashed ones as qvp_audit_hash renders them
# (qvp_site/sql/audit/0011.sql). `at` for people, in UTC whatever the session's zone.
ENTRIES_SQL = f"""
SELECT 'entry', seq, id::text, hash, prev_hash, table_name, row_key, operation,
       coalesce(old_row::text, ''), coalesce(new_row::text, ''), actor, db_role,
       extract(epoch FROM at)::text,
       to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'), '', '', ''
FROM {AUDIT_TABLE} WHERE seq BETWEEN %s AND %s ORDER BY seq
"""
CHECKPOINTS_SQL = f"""
SELECT seq, hash, {SIGNED_AT_MICROS_SQL}, key_id, signature FROM qvp_site_auditcheckpoint
WHERE seq BETWEEN %s AND %s ORDER BY seq, id
"""
BATCH = 5_000


@dataclass
class AuditExported:
    """What an export held: its stretch of the chain and its records."""

    first: int = 0
    last: int = 0
    entries: int = 0
    checkpoints: int = 0

    def __str__(self) -> str:
        stretch = f"#{self.first} to #{self.last}" if self.entries else "no entries"
        return f"{self.entries} entries ({stretch}), {self.checkpoints} checkpoints"


@contextmanager
def snapshot(
    using: str = "default",
    user: AbstractBaseUser | None = None,
    actor: str = "export_audit",
    limit: str | None = None,
) -> Iterator[None]:
    """A read-only transaction of one snapshot (when it is the outermost one), in which
    ``user`` (or the command ``actor``) acts within ``limit``'s time."""
    connection = connections[using]
    outermost = not connection.in_atomic_block
    with transaction.atomic(using=using):
        if outermost:  # before any statement: one snapshot for entries and checkpoints
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        declare(user, actor=actor, using=using, limit=limit)
        yield


def stretch(first: int | None, last: int | None, using: str = "default") -> tuple[int, int]:
    """The seqs [from, to] an export of entries ``first`` to ``last`` (None: the chain's
    ends) holds: from the entry after the checkpoint before ``first`` to the first checkpoint
    at or after ``last``, else the last one before it. Entries no checkpoint signs yet are in
    no export (nothing offline could vouch for them); to < from when nothing is to export."""
    first = first or 1
    with connections[using].cursor() as cursor:
        cursor.execute(RANGE_SQL, {"first": first, "last": last or 2**62})
        start, signed, before = cursor.fetchone()
    return (start, signed or before)


def _row(cells: Sequence[object]) -> list[str]:
    return [escape("" if cell is None else str(cell)) for cell in cells]


def _csv(rows: Iterable[Sequence[object]]) -> str:
    """``rows`` as CSV text (the csv module's quoting and line ends)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(_row(row) for row in rows)
    return buffer.getvalue()


def lines(
    first: int,
    last: int,
    written: AuditExported | None = None,
    using: str = "default",
    deadline: time_limits.Deadline | None = None,
) -> Iterator[str]:
    """The export of entries ``first`` to ``last`` (a ``stretch``) and the checkpoints from
    the one just before it, CSV line by line, streamed from the server in batches (the log
    may not fit in memory); counted into ``written``. Within ``snapshot()``."""
    written = written if written is not None else AuditExported()
    written.first, written.last = first, last
    yield _csv([COLUMNS])
    connection = connections[using]
    with connection.chunked_cursor() as stream:
        stream.execute(ENTRIES_SQL, [first, last])
        while rows := stream.fetchmany(BATCH):
            if deadline is not None:
                deadline.check()
            written.entries += len(rows)
            yield _csv(rows)
    with connection.cursor() as cursor:
        # From the one just before the first entry: it vouches for the export's start.
        cursor.execute(CHECKPOINTS_SQL, [first - 1, last])
        signed = [
            ("checkpoint", seq, "", hash_, *[""] * 10, signed_at_text(micros), key_id, signature)
            for seq, hash_, micros, key_id, signature in cursor.fetchall()
        ]
    written.checkpoints = len(signed)
    yield _csv(signed)
