"""One round of the audit sealer, or rounds until stopped."""

from __future__ import annotations

import signal

from django.core.management.base import BaseCommand, CommandError
from django.db import ProgrammingError

from qvp_site.audit_keys import AuditKeyError, signing_key
from qvp_site.audit_sealer import Sealer, seal


class Command(BaseCommand):
    help = (
        "Link the audit entries committed since the last round into the hash chain and sign "
        "the new head with the audit signing key (QVP_AUDIT_SIGNING_KEY or its file), storing "
        "the checkpoint in the database and appending it to the checkpoint file. --loop keeps "
        "sealing (the scheduler does this in its own process)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--loop", action="store_true", help="seal until SIGTERM or Ctrl-C")

    def handle(self, *args, loop: bool, **options):
        try:
            key = signing_key()
        except AuditKeyError as error:
            raise CommandError(str(error)) from error
        if key is None:
            raise CommandError(
                "no audit signing key: set QVP_AUDIT_SIGNING_KEY, or make the key file with"
                " `manage.py audit_key --create`"
            )
        if loop:
            sealer = Sealer(key)
            signal.signal(signal.SIGTERM, lambda *_: sealer.stop())
            sealer.start()
            try:
                while sealer.is_alive():
                    sealer.join(timeout=1)
            except KeyboardInterrupt:
                sealer.stop()
                sealer.join(timeout=10)
            return
        try:
            made = seal(key)
        except ProgrammingError as error:  # linking is the owner's
            raise CommandError(f"{error}: run the sealer as the database's owner") from error
        if made is None:
            self.stdout.write("audit chain: nothing new to sign")
            return
        signed = made.checkpoint
        what = "signed" if made.new else "signed again (heartbeat)"
        self.stdout.write(
            f"audit chain {what} at entry #{signed.seq} (hash {signed.hash}) by key {signed.key_id}"
        )
