"""Export the linked audit chain and its signed checkpoints for verification offline."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from qvp_site import audit_export


class Command(BaseCommand):
    help = (
        "Write the audit chain's linked entries, each with the exact text its hash covers, and "
        "the signed checkpoints as CSV (the admin's export of the audit log, the same format), "
        "for `manage.py verify_audit --file FILE` or `python qvp_site/audit_offline.py FILE "
        "--public-keys KEYRING`, which verify it without the database. The stretch written runs "
        "from the checkpoint before --from-seq to the first one at or after --to-seq, so that "
        "both ends are vouched for."
    )

    def add_arguments(self, parser):
        parser.add_argument("out", type=Path, help="the file to write (CSV)")
        parser.add_argument("--from-seq", type=int, default=1, help="the first entry, by place")
        parser.add_argument("--to-seq", type=int, help="the last entry, by place (default: all)")

    def handle(self, *args, out: Path, from_seq: int, to_seq: int | None, **options):
        if not out.parent.is_dir():
            raise CommandError(f"no folder {out.parent} to write {out.name} in")
        if from_seq < 1:
            raise CommandError(f"--from-seq must be 1 or more, not {from_seq}")
        if to_seq is not None and to_seq < from_seq:
            raise CommandError(f"--to-seq must be --from-seq ({from_seq}) or more, not {to_seq}")
        written = audit_export.AuditExported()
        # newline="": the CSV's line ends are the writer's, never translated.
        with audit_export.snapshot(), out.open("w", encoding="utf-8", newline="") as file:
            first, last = audit_export.stretch(from_seq, to_seq)
            file.writelines(audit_export.lines(first, last, written))
        self.stdout.write(f"{out}: {written}")
