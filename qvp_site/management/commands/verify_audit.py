"""Walk the audit log's hash chain and name the first broken link."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from qvp_site.db.audit import FIRST_BROKEN_LINK_SQL, GENESIS, HEAD_SQL
from qvp_site.models import AuditEntry


class Command(BaseCommand):
    help = (
        "Verify the audit log: recompute every entry's hash and its link to the entry before "
        "it (one pass in SQL), then check that the chain head names the last entry. Prints "
        "'audit chain intact: N entries, head <hash>', or names the first broken link and "
        "exits with status 1."
    )

    def handle(self, *args, **options) -> None:
        outermost = not connection.in_atomic_block
        with transaction.atomic(), connection.cursor() as cursor:
            if outermost:
                # One snapshot for the chain and the head: a writer committing between the
                # two reads would otherwise look like a head past the last entry.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            else:
                # Inside a transaction that wrote to audited tables, the head is sealed only
                # at its commit: seal it now (then defer the seal again for later writes).
                cursor.execute("SET CONSTRAINTS qvp_audit_seal IMMEDIATE")
                cursor.execute("SET CONSTRAINTS qvp_audit_seal DEFERRED")
            cursor.execute(FIRST_BROKEN_LINK_SQL)
            broken = cursor.fetchone()
            if broken is not None:
                raise CommandError(broken_link_message(*broken))
            cursor.execute(HEAD_SQL)
            head_id, head_hash, last_id, last_hash, count = cursor.fetchone()
        if (head_id, head_hash) != (last_id, last_hash or GENESIS):
            raise CommandError(head_mismatch_message(head_id, head_hash, last_id, last_hash))
        self.stdout.write(f"audit chain intact: {count} entries, head {head_hash}")


def broken_link_message(entry_id: int, wrong: str) -> str:
    entry = AuditEntry.objects.get(pk=entry_id)
    where = (
        f"audit chain broken at entry {entry.pk} ({entry.operation} of {entry.table_name} "
        f"row {entry.row_key} at {entry.at:%Y-%m-%d %H:%M:%S%z})"
    )
    if wrong == "hash":
        return f"{where}: its hash does not match its content (the entry was altered)"
    before = AuditEntry.objects.filter(pk__lt=entry.pk).order_by("-pk").first()
    previous = f"entry {before.pk}" if before else "the start of the log"
    return (
        f"{where}: its link to the previous entry is wrong (its prev_hash is not the hash of "
        f"{previous}): entries before it were removed, inserted or altered"
    )


def head_mismatch_message(
    head_id: int | None, head_hash: str, last_id: int | None, last_hash: str | None
) -> str:
    last = f"entry {last_id} (hash {last_hash})" if last_id else "no entry (the log is empty)"
    named = f"entry {head_id} (hash {head_hash})" if head_id else f"no entry (hash {head_hash})"
    return (
        f"audit chain head names {named} but the log ends at {last}: entries were removed "
        "from the end of the log, or the head was altered"
    )
