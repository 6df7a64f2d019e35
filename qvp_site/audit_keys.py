"""The keys that sign the audit chain's checkpoints, and what a checkpoint says.

The sealer signs with an Ed25519 private key the database never holds (the environment or a
file of the application's user); anyone verifies with the public keys alone. A key's id is the
start of its public key's SHA-256, carried by each checkpoint, so a key can be rotated while
checkpoints signed by the old one still verify: the keyring (a JSON file, key id -> public key
in hex) keeps every public key ever used.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from qvp_site import audit_offline

KEY_ID_LENGTH = audit_offline.KEY_ID_LENGTH


class AuditKeyError(Exception):
    """A signing key or keyring that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Checkpoint:
    """The chain's head at ``seq`` (entry position) with its ``hash``, signed at ``signed_at``
    by the key ``key_id``; ``signature`` in hex."""

    seq: int
    hash: str
    signed_at: str
    key_id: str
    signature: str

    def message(self) -> bytes:
        return checkpoint_message(self.seq, self.hash, self.signed_at, self.key_id)

    def as_line(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def parse_checkpoint(fields: dict[str, Any]) -> Checkpoint:
    """A checkpoint from its JSON form; ValueError naming the field that is not as signed."""
    checks: dict[str, Callable[[Any], bool]] = {
        "seq": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
        "hash": lambda v: audit_offline.is_hex(v, 64),
        "signed_at": lambda v: isinstance(v, str) and 0 < len(v) <= 64,
        "key_id": lambda v: audit_offline.is_hex(v, KEY_ID_LENGTH),
        "signature": lambda v: audit_offline.is_hex(v, 128),
    }
    if not isinstance(fields, dict):
        raise ValueError(f"not a JSON object: {fields!r}")
    for name, valid in checks.items():
        if name not in fields or not valid(fields[name]):
            raise ValueError(f"{name} is missing or malformed: {fields.get(name)!r}")
    return Checkpoint(**{name: fields[name] for name in checks})


# A checkpoint's time as the database gives it without a time zone's help: microseconds
# since the epoch (SQL), read back into the text the sealer signed.
SIGNED_AT_MICROS_SQL = (
    "CASE WHEN isfinite(signed_at) THEN (extract(epoch FROM signed_at) * 1000000)::bigint END"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def signed_at_text(micros: int | None) -> str:
    """``signed_at`` as the sealer signed it (UTC ISO 8601); "" when there is none (a time no
    datetime holds, written by hand: its signature then fails)."""
    return "" if micros is None else (EPOCH + timedelta(microseconds=micros)).isoformat()


# What a checkpoint's signature covers, byte for byte: defined once, in the verifier an auditor
# runs without this project (the README gives it for those who verify with other tools).
checkpoint_message = audit_offline.checkpoint_message


key_id = audit_offline.key_id


def public_hex(public: Ed25519PublicKey) -> str:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


# --- the private key ----------------------------------------------------------------------------
def signing_key() -> Ed25519PrivateKey | None:
    """The key in force: QVP_AUDIT_SIGNING_KEY (hex), else the key file; None when neither is
    set up. A key that is there but unreadable is an error, never silently skipped."""
    if settings.QVP_AUDIT_SIGNING_KEY:
        try:
            return Ed25519PrivateKey.from_private_bytes(
                bytes.fromhex(settings.QVP_AUDIT_SIGNING_KEY.strip())
            )
        except ValueError as error:
            raise AuditKeyError(
                "QVP_AUDIT_SIGNING_KEY must be an Ed25519 private key's 32 bytes in hex"
            ) from error
    path: Path = settings.QVP_AUDIT_SIGNING_KEY_FILE
    if not path.exists():
        return None
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as error:
        raise AuditKeyError(f"{path}: not a PEM private key ({error})") from error
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: not an Ed25519 key")
    return key


def create_key_file(path: Path) -> Ed25519PrivateKey:
    """A new key in ``path`` (0600, its folder 0700), which must not exist: a key is never
    overwritten, so that a checkpoint's key is not lost by mistake."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)
        out.flush()
        os.fsync(out.fileno())
    return key


# --- the keyring --------------------------------------------------------------------------------
def read_keyring(path: Path) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key, from ``path``; empty when there is no file."""
    if not path.exists():
        return {}
    try:  # read as the offline verifier reads it
        return audit_offline.parse_keyring(path.read_text())
    except ValueError as error:
        raise AuditKeyError(f"{path}: {error}") from error


def add_to_keyring(path: Path, public: Ed25519PublicKey) -> str:
    """Add ``public`` to the keyring (made if need be); returns its key id."""
    entries = {k: public_hex(v) for k, v in read_keyring(path).items()}
    kid = key_id(public)
    entries[kid] = public_hex(public)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(json.dumps(entries, indent=2, sort_keys=True) + "\n")
    draft.replace(path)
    return kid


# --- signing and verifying ----------------------------------------------------------------------
def sign(key: Ed25519PrivateKey, seq: int, head_hash: str, signed_at: datetime) -> Checkpoint:
    kid = key_id(key.public_key())
    at = signed_at.isoformat()
    signature = key.sign(checkpoint_message(seq, head_hash, at, kid)).hex()
    return Checkpoint(seq=seq, hash=head_hash, signed_at=at, key_id=kid, signature=signature)


def signature_problem(checkpoint: Checkpoint, keyring: dict[str, Ed25519PublicKey]) -> str | None:
    """None when ``checkpoint`` is signed by a key of the keyring; else what is wrong."""
    public = keyring.get(checkpoint.key_id)
    if public is None:
        return f"signed by key {checkpoint.key_id}, which is not in the keyring"
    try:
        public.verify(bytes.fromhex(checkpoint.signature), checkpoint.message())
    except (InvalidSignature, ValueError):
        return f"its signature does not verify with key {checkpoint.key_id} (forged or altered)"
    return None
