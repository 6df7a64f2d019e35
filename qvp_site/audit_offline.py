"""Verify an export of the audit chain offline: no database, no Django settings, the public
keys alone.

``manage.py export_audit`` writes one JSON line per linked entry, in chain order, with the
exact text PostgreSQL hashed (``qvp_audit_hash``): the fields, the previous hash first, to be
joined by the unit separator (0x1F); the rows as ``jsonb::text``, the time as seconds since
the epoch. Then one line per checkpoint the database holds. Anyone can check the links with
SHA-256 and the checkpoints with Ed25519, those of the export and of a checkpoint file:

    python -m qvp_site.audit_offline EXPORT --public-keys KEYRING [--checkpoints FILE]

Exit status 0 when every link holds and every checkpoint the export reaches verifies and
names the hash the export holds at its place; 1 with each problem named otherwise.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qvp_site.audit_keys import (
    AuditKeyError,
    Checkpoint,
    parse_checkpoint,
    read_keyring,
    signature_problem,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

GENESIS = "0" * 64
SEPARATOR = "\x1f"
# The fields qvp_audit_hash joins: the previous hash, id, table, row key, operation, old and
# new rows, actor, database role, time.
FIELDS = 10


def entry_hash(fields: list[str]) -> str:
    """``qvp_audit_hash``: SHA-256 over the entry's fields, the previous hash first (text no
    UTF-8 holds, such as a lone surrogate, cannot be what the database hashed)."""
    return hashlib.sha256(SEPARATOR.join(fields).encode(errors="replace")).hexdigest()


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                found = json.loads(line)
                if not isinstance(found, dict):
                    raise ValueError(f"{path} line {number}: not a JSON object")
                yield number, found


@dataclass
class Chain:
    """What the export's entries say: seq -> hash, and where it starts."""

    hashes: dict[int, str] = field(default_factory=dict)
    first_seq: int = 0
    first_link: str = GENESIS
    problems: list[str] = field(default_factory=list)


def _fields_problem(entry: dict[str, Any]) -> str | None:
    """The fields must be the ten strings the hash joined, none holding the separator: else
    two contents could hash alike."""
    fields = entry.get("fields")
    if not isinstance(fields, list) or len(fields) != FIELDS:
        return f"it does not hold the {FIELDS} fields its hash covers"
    if not all(isinstance(f, str) and SEPARATOR not in f for f in fields):
        return "a field is not text, or holds the 0x1F that separates the fields"
    if not isinstance(entry.get("seq"), int) or not isinstance(entry.get("hash"), str):
        return "its seq or hash is malformed"
    return None


def read_chain(entries: Iterable[tuple[int, dict[str, Any]]]) -> Chain:
    """Each line whose hash or link does not hold, and the export's hashes by place."""
    chain = Chain()
    previous: dict[str, Any] | None = None
    for number, entry in entries:
        where = f"line {number} (entry {entry.get('id')}, #{entry.get('seq')} of the chain)"
        problem = _fields_problem(entry)
        if problem:
            chain.problems.append(f"{where}: {problem}")
            continue
        seq, fields = entry["seq"], entry["fields"]
        if entry_hash(fields) != entry["hash"]:
            chain.problems.append(f"{where}: its hash does not match its content")
        if previous is None:
            chain.first_seq, chain.first_link = seq, fields[0]
        elif seq != previous["seq"] + 1 or fields[0] != previous["hash"]:
            chain.problems.append(f"{where}: it does not follow entry #{previous['seq']}")
        chain.hashes[seq] = entry["hash"]
        previous = entry
    return chain


def checkpoint_problems(
    checkpoints: Iterable[tuple[int, dict[str, Any]]],
    chain: Chain,
    keyring: dict[str, Ed25519PublicKey],
) -> list[Checkpoint]:
    """The checkpoints that verify and agree with the export; the others named in
    ``chain.problems``."""
    valid = []
    for number, fields in checkpoints:
        where = f"checkpoint line {number} (entry #{fields.get('seq')} of the chain)"
        try:
            checkpoint = parse_checkpoint(fields)
        except ValueError as error:
            chain.problems.append(f"{where}: not a checkpoint ({error})")
            continue
        problem = signature_problem(checkpoint, keyring) or _reach(checkpoint, chain.hashes)
        if problem:
            chain.problems.append(f"{where}: {problem}")
        elif checkpoint not in valid:  # the export's and the file's copies are one
            valid.append(checkpoint)
    return valid


def _reach(checkpoint: Checkpoint, hashes: dict[int, str]) -> str | None:
    """What is wrong with where the export stands at the checkpoint's place (an export that
    starts after it cannot say)."""
    if not hashes or checkpoint.seq < min(hashes):
        return None
    held = hashes.get(checkpoint.seq)
    if held is None:
        return (
            f"the export ends at #{max(hashes)}, before it: entries were removed from the"
            " chain's end (or the export is older than the checkpoint)"
        )
    if held != checkpoint.hash:
        return f"the export holds hash {held} there, not the signed {checkpoint.hash}"
    return None


def anchor_problems(chain: Chain, valid: list[Checkpoint]) -> list[str]:
    """An export is vouched for only from a known start (the chain's first entry, or a signed
    checkpoint just before its first entry) up to a signed checkpoint within it."""
    if not chain.hashes:
        return []
    problems = []
    vouched = chain.first_seq == 1 and chain.first_link == GENESIS
    vouched = vouched or any(
        c.seq == chain.first_seq - 1 and c.hash == chain.first_link for c in valid
    )
    if not vouched:
        problems.append(
            f"the export starts at #{chain.first_seq} from hash {chain.first_link}, which"
            " neither the chain's start nor a signed checkpoint vouches for"
        )
    if not any(c.seq in chain.hashes for c in valid):
        problems.append("no signed checkpoint falls within the export: nothing vouches for it")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the file `manage.py export_audit` wrote")
    parser.add_argument("--public-keys", type=Path, required=True, help="the keyring (JSON)")
    parser.add_argument("--checkpoints", type=Path, help="the sealer's checkpoint file")
    options = parser.parse_args(argv)
    try:
        keyring = read_keyring(options.public_keys)
        lines = list(read_lines(options.export))
        signed = [(n, e) for n, e in lines if e.get("kind") == "checkpoint"]
        if options.checkpoints:
            signed += list(read_lines(options.checkpoints))
    except (OSError, ValueError, AuditKeyError) as error:
        print(f"cannot verify: {error}", file=sys.stderr)
        return 2
    chain = read_chain((n, e) for n, e in lines if e.get("kind") == "entry")
    valid = checkpoint_problems(signed, chain, keyring)
    problems = chain.problems + anchor_problems(chain, valid)
    for problem in problems:
        print(problem)
    if problems:
        return 1
    head = chain.hashes[max(chain.hashes)] if chain.hashes else GENESIS
    after = sum(1 for seq in chain.hashes if seq > max((c.seq for c in valid), default=0))
    print(
        f"audit export intact: {len(chain.hashes)} entries, {len(valid)} checkpoints, head"
        f" {head}; {after} entries after the last checkpoint are not signed yet"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
