"""Verify an export of the audit chain offline: Python 3.11 and the ``cryptography`` package,
the public keys, nothing else (no database, no Django, not this project: copy the file).

    python audit_offline.py EXPORT.csv --public-keys public_keys.json [--checkpoints FILE]

The export (``manage.py export_audit FILE``, or "Export CSV" on the audit log in the admin) is
CSV in UTF-8: a header, then one record per linked entry in chain order, then one per signed
checkpoint, with the columns of ``COLUMNS``. Every cell is either covered by a hash or a
signature, or checked against one that is:

- an entry's ``hash`` is SHA-256 (hex) of the UTF-8 bytes of ``HASHED`` joined by 0x1F, each
  exactly as the database hashed it (``qvp_audit_hash``): the rows as PostgreSQL's jsonb text
  ('' for none: the keys in jsonb's order, numbers as written, 100.50 stays 100.50), the time
  as epoch seconds (``at_epoch``); ``at`` is that time in ISO 8601 for people and must name
  the same instant; ``prev_hash`` is the hash of the entry before (64 zeros for the first),
  ``seq`` its place;
- a checkpoint's Ed25519 ``signature`` covers the bytes
  ``qvp-audit-checkpoint/1\\n<seq>\\n<hash>\\n<signed_at>\\n<key_id>\\n``; it vouches for the
  chain up to entry ``seq`` whose hash is ``hash``. The keyring is a JSON object, key id ->
  public key (32 bytes in hex); a key's id is the first 16 hex digits of the SHA-256 of them.

A cell a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage
return), or starting with an apostrophe, is written with one apostrophe more in front: drop
one leading apostrophe from every cell before use.

Exit status 0 when every hash and link holds, the export starts at the chain's start or right
after a signed checkpoint, and a checkpoint within it verifies and names the hash the export
holds at its place; 1 with each problem named by line otherwise; 2 when the files cannot be
read.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
SEPARATOR = "\x1f"
KEY_ID_LENGTH = 16
COLUMNS = (
    "kind", "seq", "id", "hash", "prev_hash", "table_name", "row_key", "operation", "old_row",
    "new_row", "actor", "db_role", "at_epoch", "at", "signed_at", "key_id", "signature",
)  # fmt: skip
# What qvp_audit_hash joins, in its order.
HASHED = (
    "prev_hash", "id", "table_name", "row_key", "operation", "old_row", "new_row", "actor",
    "db_role", "at_epoch",
)  # fmt: skip
SIGNED = ("seq", "hash", "signed_at", "key_id", "signature")
# Empty in a checkpoint's record: what only an entry has.
ENTRY_ONLY = tuple(c for c in COLUMNS if c not in SIGNED and c != "kind")
ESCAPED = ("=", "+", "-", "@", "\t", "\r", "'")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def escape(text: str) -> str:
    """A cell as the export writes it (see the module: ``unescape`` undoes it)."""
    return f"'{text}" if text.startswith(ESCAPED) else text


def unescape(cell: str) -> str:
    return cell[1:] if cell.startswith("'") else cell


def entry_hash(fields: Sequence[str]) -> str:
    """``qvp_audit_hash``: SHA-256 over the entry's fields, the previous hash first (text no
    UTF-8 holds, such as a lone surrogate, cannot be what the database hashed)."""
    return hashlib.sha256(SEPARATOR.join(fields).encode(errors="replace")).hexdigest()


def checkpoint_message(seq: int, head_hash: str, signed_at: str, key_id: str) -> bytes:
    """What a checkpoint's signature covers, byte for byte."""
    return f"qvp-audit-checkpoint/1\n{seq}\n{head_hash}\n{signed_at}\n{key_id}\n".encode()


def is_hex(value: object, length: int) -> bool:
    return isinstance(value, str) and len(value) == length and set(value) <= set("0123456789abcdef")


def key_id(public: Ed25519PublicKey) -> str:
    """A public key's id: the first 16 hex digits of SHA-256 over its raw bytes."""
    return hashlib.sha256(public.public_bytes_raw()).hexdigest()[:KEY_ID_LENGTH]


def parse_keyring(text: str) -> dict[str, Ed25519PublicKey]:
    """Key id -> public key from the keyring's JSON; ValueError saying what is wrong."""
    try:
        keys = {
            kid: Ed25519PublicKey.from_public_bytes(bytes.fromhex(key))
            for kid, key in json.loads(text).items()
        }
    except (ValueError, AttributeError, TypeError) as error:
        raise ValueError(f"not a keyring of key id -> public key in hex ({error})") from error
    for kid, public in keys.items():
        if key_id(public) != kid:
            raise ValueError(f"key {kid} is not the id of its public key")
    return keys


@dataclass(frozen=True)
class Signed:
    """A checkpoint as read: where it was read, and what its signature covers."""

    where: str
    seq: int
    hash: str
    signed_at: str
    key_id: str
    signature: str


@dataclass
class Verdict:
    """What the export holds and what is wrong with it."""

    problems: list[str] = field(default_factory=list)
    hashes: dict[int, str] = field(default_factory=dict)  # seq -> hash
    first: tuple[int, str] | None = None  # the first entry's seq and link
    signed: list[Signed | str] = field(default_factory=list)  # str: what is malformed
    valid: set[tuple[int, str]] = field(default_factory=set)  # verified (seq, hash)
    last: tuple[int, str] | None = None  # the previous entry's seq and hash

    def summary(self) -> str:
        head = self.hashes[max(self.hashes)] if self.hashes else GENESIS
        return (
            f"audit export intact: {len(self.hashes)} entries, {len(self.valid)} signed"
            f" checkpoints, head {head}"
        )


def read_export(path: Path) -> Iterator[tuple[int, dict[str, str] | None]]:
    """(line, cells) per record after the header, the line its record starts on; cells None
    for a record that has not one cell per column."""
    with path.open(encoding="utf-8-sig", newline="") as file:
        reader = csv.reader(file)
        if next(reader, None) != list(COLUMNS):
            raise ValueError(f"{path} line 1: not an audit export (header {','.join(COLUMNS)})")
        start = reader.line_num + 1
        for row in reader:
            cells = dict(zip(COLUMNS, map(unescape, row), strict=False))
            yield start, cells if len(row) == len(COLUMNS) else None
            start = reader.line_num + 1


def _time_problem(at_epoch: str, at: str) -> str | None:
    """Whether ``at`` (for people) names the instant ``at_epoch`` (hashed) does."""
    try:
        micros = Decimal(at_epoch) * 1_000_000
        moment = datetime.fromisoformat(at)
        hashed = EPOCH + timedelta(microseconds=int(micros))
    except (ArithmeticError, InvalidOperation, ValueError):
        return f"its time {at!r} or {at_epoch!r} is not one"
    if moment.tzinfo is None or moment != hashed or micros != int(micros):
        return f"its time {at} is not the time its hash covers ({hashed.isoformat()})"
    return None


def check_entry(verdict: Verdict, line: int, cells: dict[str, str]) -> None:
    where = f"line {line} (entry {cells['id']}, #{cells['seq']} of the chain)"
    fields = [cells[name] for name in HASHED]
    if not cells["seq"].isdecimal() or any(cells[name] for name in SIGNED[2:]):
        verdict.problems.append(f"{where}: its seq is not a number, or it has checkpoint cells")
        return
    if any(SEPARATOR in f for f in fields):
        verdict.problems.append(f"{where}: a cell holds the 0x1F that separates the fields")
    problem = _time_problem(cells["at_epoch"], cells["at"])
    if problem:
        verdict.problems.append(f"{where}: {problem}")
    if entry_hash(fields) != cells["hash"]:
        verdict.problems.append(f"{where}: its hash does not match its content")
    seq = int(cells["seq"])
    if verdict.last is None:
        verdict.first = (seq, cells["prev_hash"])
    elif (seq, cells["prev_hash"]) != (verdict.last[0] + 1, verdict.last[1]):
        verdict.problems.append(f"{where}: it does not follow entry #{verdict.last[0]}")
    verdict.hashes[seq] = cells["hash"]
    verdict.last = (seq, cells["hash"])


def read_checkpoint(where: str, cells: Mapping[str, object]) -> Signed | str:
    """A checkpoint's signed fields, or what is malformed."""
    seq = cells.get("seq")
    seq = int(seq) if isinstance(seq, str) and seq.isdecimal() else seq
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return f"{where}: not a checkpoint (seq {seq!r})"
    found = {name: cells.get(name) for name in SIGNED[1:]}
    lengths = {"hash": 64, "key_id": KEY_ID_LENGTH, "signature": 128}
    bad = [n for n, length in lengths.items() if not is_hex(found[n], length)]
    if bad or not isinstance(found["signed_at"], str) or not found["signed_at"]:
        return f"{where}: not a checkpoint ({', '.join(bad) or 'signed_at'} malformed)"
    return Signed(where, seq, **{name: str(value) for name, value in found.items()})


def check_checkpoint(
    verdict: Verdict, signed: Signed, keyring: dict[str, Ed25519PublicKey]
) -> None:
    public = keyring.get(signed.key_id)
    message = checkpoint_message(signed.seq, signed.hash, signed.signed_at, signed.key_id)
    if public is None:
        verdict.problems.append(f"{signed.where}: its key {signed.key_id} is not in the keyring")
        return
    try:
        public.verify(bytes.fromhex(signed.signature), message)
    except InvalidSignature:
        verdict.problems.append(f"{signed.where}: its signature does not verify (forged, altered)")
        return
    held = verdict.hashes.get(signed.seq)
    if signed.seq > (end := max(verdict.hashes, default=0)):
        verdict.problems.append(
            f"{signed.where}: the export ends at #{end}, before it: entries were removed from"
            " its end"
        )
    elif held is not None and held != signed.hash:
        verdict.problems.append(f"{signed.where}: the export holds hash {held} at #{signed.seq}")
    else:
        verdict.valid.add((signed.seq, signed.hash))


def check_anchors(verdict: Verdict) -> None:
    """Vouched for only from a known start (the chain's, or a checkpoint right before the
    export's first entry) up to a signed checkpoint within it."""
    if verdict.first is None:
        verdict.problems.append("the export holds no entry: nothing to vouch for")
        return
    seq, link = verdict.first
    if not ((seq, link) == (1, GENESIS) or (seq - 1, link) in verdict.valid):
        verdict.problems.append(
            f"the export starts at #{seq} from hash {link}, which neither the chain's start"
            " nor a signed checkpoint vouches for"
        )
    if not any(s in verdict.hashes for s, _hash in verdict.valid):
        verdict.problems.append("no signed checkpoint falls within the export: nothing vouches")
        return
    reach = max(s for s, _hash in verdict.valid)
    if unsigned := sorted(s for s in verdict.hashes if s > reach):
        # Anyone can append entries and recompute their hashes: only a signature vouches.
        verdict.problems.append(
            f"entries #{unsigned[0]} to #{unsigned[-1]} come after the last signed checkpoint"
            f" (#{reach}): no signature vouches for them"
        )


def verify_export(
    path: Path, keyring: dict[str, Ed25519PublicKey], checkpoints: Path | None = None
) -> Verdict:
    """Every problem of the export at ``path`` (and of the sealer's checkpoint file, JSON
    lines, if given); ValueError or OSError when a file cannot be read at all."""
    verdict = Verdict()
    for line, cells in read_export(path):
        if cells is None:
            verdict.problems.append(f"line {line}: not {len(COLUMNS)} cells")
        elif cells["kind"] == "entry":
            check_entry(verdict, line, cells)
        elif cells["kind"] == "checkpoint" and not any(cells[n] for n in ENTRY_ONLY):
            where = f"line {line} (checkpoint at #{cells['seq']})"
            verdict.signed.append(read_checkpoint(where, dict(cells)))
        else:
            verdict.problems.append(f"line {line}: neither an entry nor a checkpoint")
    if checkpoints is not None:
        for number, text in enumerate(checkpoints.read_text().splitlines(), start=1):
            where = f"{checkpoints} line {number}"
            found = json.loads(text) if text.strip() else None
            if isinstance(found, dict):
                verdict.signed.append(read_checkpoint(f"{where} (checkpoint)", found))
    for signed in verdict.signed:
        if isinstance(signed, str):
            verdict.problems.append(signed)
        else:
            check_checkpoint(verdict, signed, keyring)
    check_anchors(verdict)
    return verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Verify an export of QVP's audit chain.")
    parser.add_argument("export", type=Path, help="the CSV file export_audit or the admin wrote")
    parser.add_argument("--public-keys", type=Path, required=True, help="the keyring (JSON)")
    parser.add_argument("--checkpoints", type=Path, help="the sealer's checkpoint file")
    options = parser.parse_args(argv)
    try:
        keyring = parse_keyring(options.public_keys.read_text())
        verdict = verify_export(options.export, keyring, options.checkpoints)
    except (OSError, ValueError, csv.Error) as error:
        print(f"cannot verify: {error}", file=sys.stderr)
        return 2
    print("\n".join(verdict.problems) or verdict.summary())
    return 1 if verdict.problems else 0


if __name__ == "__main__":
    sys.exit(main())
