"""The sealer: links the audit entries committed since its last round into the chain and signs
the new head (qvp_site/db/audit.py says why the two steps are apart from the writers).

A round links in the database (``qvp_audit_link``, one transaction), then signs the head with
the key the database never holds and, in one transaction, stores the checkpoint in
``qvp_site_auditcheckpoint`` and appends it to the file outside the database (flushed to disk)
before committing. It runs as the database's owner, in the scheduler's
process every ``QVP_AUDIT_SEAL_SECONDS``, sooner when a batch asks for it (``request_seal``: a
NOTIFY the sealer listens for), and as ``manage.py seal_audit``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from qvp_site.audit_keys import (
    Checkpoint,
    add_to_keyring,
    key_id,
    parse_checkpoint,
    sign,
    signature_problem,
    signing_key,
)
from qvp_site.models import AuditCheckpoint

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from django.db.backends.utils import CursorWrapper

logger = logging.getLogger(__name__)

CHANNEL = "qvp_audit_seal"
# Entries linked per transaction: a backlog is linked in bounded steps.
LINK_STEP = 50_000


def request_seal(cursor: CursorWrapper | psycopg.Cursor[Any]) -> None:
    """Ask the sealer for a round once the current transaction commits (after a batch)."""
    cursor.execute(f"NOTIFY {CHANNEL}")


@dataclass(frozen=True)
class Round:
    """What a round signed: a new checkpoint, or the same head again (a heartbeat)."""

    checkpoint: Checkpoint
    new: bool


def seal(key: Ed25519PrivateKey, checkpoints: Path | None = None) -> Round | None:
    """One round: link what is committed, then sign the head if this key has not signed it
    yet (a checkpoint, stored and appended to the file). A head that does not move is signed
    again into the head's heartbeat every half window, so that verify_audit can tell a silent
    sealer from a quiet desk. Returns what was signed, or None."""
    head_seq, head_hash = _link()
    if head_seq == 0:
        return None
    path = checkpoints or settings.QVP_AUDIT_CHECKPOINTS
    _store_lost_line(key, path)
    if not _checkpointed(key, head_seq, head_hash):
        checkpoint = sign(key, head_seq, head_hash, timezone.now())
        # Stored, then on disk, then committed: a failed append stores nothing; only a
        # commit lost after the append leaves a line the database lacks (_store_lost_line).
        with transaction.atomic():
            AuditCheckpoint.objects.create(**asdict(checkpoint))
            append_checkpoint(path, checkpoint)
        _beat(checkpoint)
        return Round(checkpoint, new=True)
    if _heartbeat_age(key) > settings.QVP_AUDIT_UNSIGNED_WINDOW / 2:
        beat = sign(key, head_seq, head_hash, timezone.now())
        _beat(beat)
        return Round(beat, new=False)
    return None


def _link() -> tuple[int, str]:
    """Link every committed entry, in bounded steps; the head."""
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT * FROM qvp_audit_link(%s)", [LINK_STEP])
            head_seq, head_hash, linked = cursor.fetchone()
        if linked < LINK_STEP:
            return head_seq, head_hash


def _checkpointed(key: Ed25519PrivateKey, head_seq: int, head_hash: str) -> bool:
    """Whether this key signed a checkpoint of this head. Only a signature that verifies
    counts: a row someone else wrote cannot stop a round."""
    public = key.public_key()
    kid = key_id(public)
    rows = AuditCheckpoint.objects.filter(key_id=kid, seq=head_seq, hash=head_hash)
    for row in rows.order_by("-id")[:3]:
        signed = Checkpoint(
            seq=row.seq,
            hash=row.hash,
            signed_at=row.signed_at.astimezone(UTC).isoformat(),
            key_id=row.key_id,
            signature=row.signature,
        )
        if signature_problem(signed, {kid: public}) is None:
            return True
    return False


def _store_lost_line(key: Ed25519PrivateKey, path: Path) -> None:
    """The file's last checkpoint, stored if its commit was lost (the sealer stopped between
    the file and the commit) and it is this key's: else verify_audit would name it for ever."""
    line = _last_line(path)
    if not line:
        return
    try:
        last = parse_checkpoint(json.loads(line))
    except ValueError:
        return  # verify_audit names it
    public = key.public_key()
    if signature_problem(last, {key_id(public): public}) is not None:
        return
    if not AuditCheckpoint.objects.filter(seq=last.seq, signature=last.signature).exists():
        AuditCheckpoint.objects.create(**asdict(last))


def _last_line(path: Path, tail: int = 4096) -> str:
    """The file's last non-empty line (a checkpoint's line is far shorter than ``tail``)."""
    if not path.exists():
        return ""
    with path.open("rb") as file:
        file.seek(max(file.seek(0, os.SEEK_END) - tail, 0))
        lines = file.read().decode(errors="replace").splitlines()
    return next((line for line in reversed(lines) if line.strip()), "")


def _beat(checkpoint: Checkpoint) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE qvp_audit_head SET heartbeat = %s::jsonb", [checkpoint.as_line()])


def _heartbeat_age(key: Ed25519PrivateKey) -> float:
    """Seconds since this key last signed the head's heartbeat (infinite: never, or not a
    signature of this key)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT heartbeat FROM qvp_audit_head")
        found = cursor.fetchone()
    try:
        beat = parse_checkpoint(json.loads(found[0]) if found and found[0] else {})
    except ValueError:
        return math.inf
    public = key.public_key()
    if signature_problem(beat, {key_id(public): public}) is not None:
        return math.inf
    return (timezone.now() - datetime.fromisoformat(beat.signed_at)).total_seconds()


def append_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """One JSON line per checkpoint, on disk before the database has it: a checkpoint the
    database lost is still in the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as out:
        out.write(checkpoint.as_line() + "\n")
        out.flush()
        os.fsync(out.fileno())


class Sealer(threading.Thread):
    """Rounds until ``stop()``: every ``every`` seconds, or as soon as a batch asks."""

    def __init__(self, key: Ed25519PrivateKey, every: float | None = None):
        super().__init__(name="audit-sealer", daemon=True)
        self.key = key
        self.every = settings.QVP_AUDIT_SEAL_SECONDS if every is None else every
        self._stopping = threading.Event()

    def stop(self) -> None:
        self._stopping.set()

    def run(self) -> None:
        listener: psycopg.Connection[Any] | None = None
        try:
            while not self._stopping.is_set():
                self._round()
                listener = self._wait(listener)
        finally:
            if listener is not None:
                listener.close()
            connection.close()

    def _wait(self, listener: psycopg.Connection[Any] | None) -> psycopg.Connection[Any] | None:
        """Until a batch asks, the interval passes, or the sealer stops. The listening
        connection is opened again after a loss (the server restarted, or was not up yet);
        meanwhile the rounds keep their interval."""
        try:
            if listener is None or listener.closed:
                listener = _listen()
            _wait(listener, self.every, self._stopping)
            return listener
        except psycopg.Error as error:
            logger.warning(
                "audit sealer: not listening (%s); rounds go on every %gs", error, self.every
            )
            if listener is not None:
                listener.close()
            self._stopping.wait(self.every)
            return None

    def _round(self) -> None:
        close_old_connections()
        try:
            made = seal(self.key)
        except Exception:  # a failed round is logged and retried; the window shows it
            logger.exception("audit sealer: round failed")
            connection.close()
            return
        if made is not None and made.new:
            logger.info(
                "audit sealer: signed entry %s (%s)", made.checkpoint.seq, made.checkpoint.hash
            )


def _listen() -> psycopg.Connection[Any]:
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    listener = psycopg.connect(**params, autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    return listener


def _wait(listener: psycopg.Connection[Any], seconds: float, stopping: threading.Event) -> None:
    """Until a batch asks for a round, ``seconds`` pass, or the sealer stops."""
    step = min(seconds, 1.0)
    waited = 0.0
    while waited < seconds and not stopping.is_set():
        for _notice in listener.notifies(timeout=step, stop_after=1):
            return
        waited += step


def _database_runs_as_us() -> bool:
    """Whether the embedded server's data folder is this process's user's (not when the site
    runs as root: the server then runs as its own user)."""
    if not settings.EMBEDDED_DATABASE:
        return False
    pgdata = settings.VAR_DIR / "pgdata"
    return pgdata.exists() and pgdata.stat().st_uid == os.getuid()


def start_sealer() -> Sealer | None:
    """The sealer thread of this process, started; None (said in the log) without a key."""
    key = signing_key()
    if key is None:
        logger.warning(
            "audit sealer off: no signing key (QVP_AUDIT_SIGNING_KEY, or the file %s; make one"
            " with `manage.py audit_key --create`)",
            settings.QVP_AUDIT_SIGNING_KEY_FILE,
        )
        return None
    if _database_runs_as_us():
        logger.warning(
            "audit sealer: the embedded server runs as this OS user, so its superuser can read"
            " the signing key and the checkpoint file through SQL; in production keep them"
            " under another user or host (README, threat model)"
        )
    # Auditors verify with the keyring: the key in force is always in it.
    add_to_keyring(settings.QVP_AUDIT_PUBLIC_KEYS, key.public_key())
    sealer = Sealer(key)
    sealer.start()
    return sealer
