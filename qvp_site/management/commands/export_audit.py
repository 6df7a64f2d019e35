"""Export the linked audit chain and its checkpoints for verification offline."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from qvp_site.audit_keys import SIGNED_AT_MICROS_SQL, signed_at_text
from qvp_site.db.audit import AUDIT_TABLE

# The fields qvp_audit_hash joins, as it renders them (qvp_site/sql/audit/0002.sql).
ENTRIES_SQL = f"""
SELECT seq, id, hash, ARRAY[prev_hash, id::text, table_name, row_key, operation,
       coalesce(old_row::text, ''), coalesce(new_row::text, ''), actor, db_role,
       extract(epoch FROM at)::text]
FROM {AUDIT_TABLE} WHERE seq >= %s ORDER BY seq
"""
CHECKPOINTS_SQL = f"""
SELECT seq, hash, {SIGNED_AT_MICROS_SQL}, key_id, signature FROM qvp_site_auditcheckpoint
WHERE seq >= %s ORDER BY seq, id
"""
BATCH = 10_000


class Command(BaseCommand):
    help = (
        "Write the audit chain's linked entries (with the exact text each hash covers) and the "
        "signed checkpoints as JSON lines, for `python -m qvp_site.audit_offline FILE "
        "--public-keys KEYRING`, which verifies them without the database."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="the file to write")
        parser.add_argument("--from-seq", type=int, default=1, help="the first entry, by place")

    def handle(self, *args, out: Path, from_seq: int, **options):
        if not out.parent.is_dir():
            raise CommandError(f"no folder {out.parent} to write {out.name} in")
        if from_seq < 1:
            raise CommandError(f"--from-seq must be 1 or more, not {from_seq}")
        entries = checkpoints = 0
        outermost = not connection.in_atomic_block
        with transaction.atomic(), connection.cursor() as cursor, out.open("w") as file:
            if outermost:  # one snapshot for the entries and the checkpoints
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            # Streamed from the server in batches: the log may not fit in memory.
            with connection.chunked_cursor() as stream:
                stream.execute(ENTRIES_SQL, [from_seq])
                while rows := stream.fetchmany(BATCH):
                    for seq, entry_id, hash_, fields in rows:
                        line = {"kind": "entry", "seq": seq, "id": entry_id, "hash": hash_}
                        file.write(json.dumps({**line, "fields": fields}) + "\n")
                    entries += len(rows)
            # From the one just before the first entry: it vouches for the export's start.
            cursor.execute(CHECKPOINTS_SQL, [from_seq - 1])
            for seq, hash_, micros, key_id, signature in cursor.fetchall():
                line = {"kind": "checkpoint", "seq": seq, "hash": hash_, "key_id": key_id}
                signed = {"signed_at": signed_at_text(micros), "signature": signature}
                file.write(json.dumps({**line, **signed}) + "\n")
                checkpoints += 1
        self.stdout.write(f"{out}: {entries} entries, {checkpoints} checkpoints")
