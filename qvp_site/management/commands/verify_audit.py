"""Verify the audit trail: links, signed checkpoints, the window not yet signed, live rows."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from qvp_site.audit_keys import AuditKeyError, read_keyring
from qvp_site.audit_verify import verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail with the public keys alone: every link of the hash chain, every "
        "signed checkpoint (in the database and in the checkpoint file) and that the chain "
        "still reaches it, how long the newest entries have waited for a signature, and that "
        "every audited row is the last state the log records. Names each problem by table, row "
        "and entry and exits with status 1; else prints 'audit chain intact: ...'."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--public-keys",
            type=Path,
            default=settings.QVP_AUDIT_PUBLIC_KEYS,
            help="the keyring: key id -> Ed25519 public key in hex (default: %(default)s)",
        )
        parser.add_argument(
            "--checkpoints",
            type=Path,
            default=settings.QVP_AUDIT_CHECKPOINTS,
            help="the checkpoint file the sealer appends to (default: %(default)s)",
        )
        parser.add_argument(
            "--skip-rows",
            action="store_true",
            help="leave out the comparison of every audited row with the log (the slow part)",
        )

    def handle(self, *args, public_keys: Path, checkpoints: Path, skip_rows: bool, **options):
        try:
            keyring = read_keyring(public_keys)
        except AuditKeyError as error:
            raise CommandError(str(error)) from error
        window = settings.QVP_AUDIT_UNSIGNED_WINDOW
        outermost = not connection.in_atomic_block
        with transaction.atomic(), connection.cursor() as cursor:
            if outermost:
                # One snapshot for the chain, the checkpoints and the rows.
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            report = verify(cursor, keyring, checkpoints, window, rows=not skip_rows)
        if report.problems:
            raise CommandError("\n".join(report.problems))
        self.stdout.write(
            f"audit chain intact: {report.linked} entries linked, head {report.head_hash};"
            f" {report.checkpoints} signed checkpoints; {report.unsigned} entries not yet signed"
            + ("" if skip_rows else f"; {report.rows_checked} audited rows match the log")
        )
