"""Verify the audit trail: links, signed checkpoints, the window not yet signed, live rows; or
an export of it, without the database (``--file``)."""

from __future__ import annotations

import csv
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from qvp_site.audit_keys import AuditKeyError, read_keyring
from qvp_site.audit_offline import verify_export
from qvp_site.audit_verify import verify


class Command(BaseCommand):
    help = (
        "Verify the audit trail with the public keys alone: every link of the hash chain, every "
        "signed checkpoint (in the database and in the checkpoint file) and that the chain "
        "still reaches it, how long the newest entries have waited for a signature, and that "
        "every audited row is the last state the log records. Names each problem by table, row "
        "and entry and exits with status 1; else prints 'audit chain intact: ...'. With --file, "
        "verifies an export (export_audit, the admin's) instead, without the database: each "
        "entry's hash, the links, the checkpoints' signatures; problems named by line."
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
            help="the checkpoint file the sealer appends to (default: QVP_AUDIT_CHECKPOINTS,"
            " with --file none: an export of part of the chain ends before the file's last)",
        )
        parser.add_argument(
            "--skip-rows",
            action="store_true",
            help="leave out the comparison of every audited row with the log (the slow part)",
        )
        parser.add_argument(
            "--file",
            type=Path,
            help="an export to verify instead of the database, which is not read at all",
        )

    def handle(self, *args, public_keys: Path, checkpoints: Path | None, file: Path | None,
               skip_rows: bool, **options):  # fmt: skip
        try:
            keyring = read_keyring(public_keys)
        except AuditKeyError as error:
            raise CommandError(str(error)) from error
        if file is not None:
            return self.verify_file(file, keyring, checkpoints, skip_rows)
        window = settings.QVP_AUDIT_UNSIGNED_WINDOW
        checkpoints = checkpoints or settings.QVP_AUDIT_CHECKPOINTS
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

    def verify_file(self, file: Path, keyring, checkpoints: Path | None, skip_rows: bool):
        if skip_rows:
            raise CommandError("--skip-rows is of the database's check: --file reads no rows")
        if not keyring:
            raise CommandError("no public key to verify with: give the keyring (--public-keys)")
        try:
            verdict = verify_export(file, keyring, checkpoints)
        except (OSError, ValueError, csv.Error) as error:
            raise CommandError(
                f"--file {file}: cannot be read as an audit export ({error})"
            ) from error
        if verdict.problems:
            raise CommandError("\n".join(f"{file}: {p}" for p in verdict.problems))
        self.stdout.write(f"{file}: {verdict.summary()}")
