"""The audit chain's signing key: make it, rotate it, show its public half."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from qvp_site.audit_keys import (
    AuditKeyError,
    add_to_keyring,
    create_key_file,
    public_hex,
    signing_key,
)


class Command(BaseCommand):
    help = (
        "Manage the Ed25519 key the sealer signs the audit chain with. --create makes the key "
        "file (QVP_AUDIT_SIGNING_KEY_FILE, 0600) unless a key is set up, and adds its public key "
        "to the keyring (QVP_AUDIT_PUBLIC_KEYS) auditors verify with; --rotate moves the old key "
        "file aside and makes a new one (checkpoints signed by the old key still verify: its "
        "public key stays in the keyring). Without an option, shows the key in force."
    )

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--create", action="store_true", help="make a key if there is none")
        action.add_argument("--rotate", action="store_true", help="replace the key file's key")

    def handle(self, *args, create: bool, rotate: bool, **options):
        try:
            key = signing_key()
        except AuditKeyError as error:
            raise CommandError(str(error)) from error
        path = settings.QVP_AUDIT_SIGNING_KEY_FILE
        if rotate:
            if settings.QVP_AUDIT_SIGNING_KEY:
                raise CommandError("the key comes from QVP_AUDIT_SIGNING_KEY: rotate it there")
            if path.exists():
                retired = path.with_name(f"{path.name}.retired-{datetime.now(UTC):%Y%m%dT%H%M%S}")
                path.rename(retired)
                self.stdout.write(f"old key moved to {retired}")
            key = None
        if key is None and (create or rotate):
            key = create_key_file(path)
            self.stdout.write(f"made the audit signing key {path}")
        if key is None:
            raise CommandError(
                f"no audit signing key: QVP_AUDIT_SIGNING_KEY is empty and {path} does not"
                " exist (make one with --create)"
            )
        kid = add_to_keyring(settings.QVP_AUDIT_PUBLIC_KEYS, key.public_key())
        self.stdout.write(
            f"audit signing key {kid}, public key {public_hex(key.public_key())}"
            f" (in the keyring {settings.QVP_AUDIT_PUBLIC_KEYS})"
        )
