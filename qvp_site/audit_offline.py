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
from pathlib import Path

from qvp_site.audit_keys import AuditKeyError, Checkpoint, read_keyring, signature_problem

GENESIS = "0" * 64
SEPARATOR = "\x1f"


def entry_hash(fields: list[str]) -> str:
    """``qvp_audit_hash``: SHA-256 over the entry's fields, the previous hash first."""
    return hashlib.sha256(SEPARATOR.join(fields).encode()).hexdigest()


def read_lines(path: Path) -> Iterator[tuple[int, dict]]:
    with path.open() as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, json.loads(line)


def link_problems(entries: Iterable[tuple[int, dict]]) -> tuple[list[str], dict[int, str]]:
    """Each line whose hash or link does not hold; and seq -> hash of the export."""
    problems: list[str] = []
    hashes: dict[int, str] = {}
    previous: dict | None = None
    for number, entry in entries:
        seq, fields = entry["seq"], entry["fields"]
        where = f"line {number} (entry {entry['id']}, #{seq} of the chain)"
        if entry_hash(fields) != entry["hash"]:
            problems.append(f"{where}: its hash does not match its content")
        if previous is not None and (seq != previous["seq"] + 1 or fields[0] != previous["hash"]):
            problems.append(f"{where}: it does not follow entry #{previous['seq']} of the export")
        elif previous is None and seq == 1 and fields[0] != GENESIS:
            problems.append(f"{where}: the chain's first entry does not start from {GENESIS}")
        hashes[seq] = entry["hash"]
        previous = entry
    return problems, hashes


def checkpoint_problems(
    checkpoints: Iterable[tuple[int, dict]], hashes: dict[int, str], keyring_path: Path
) -> list[str]:
    keyring = read_keyring(keyring_path)
    problems = []
    for number, fields in checkpoints:
        checkpoint = Checkpoint(**{k: fields[k] for k in Checkpoint.__dataclass_fields__})
        where = f"checkpoint line {number} (entry #{checkpoint.seq} of the chain)"
        problem = signature_problem(checkpoint, keyring) or _reach(checkpoint, hashes)
        if problem:
            problems.append(f"{where}: {problem}")
    return problems


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path, help="the file `manage.py export_audit` wrote")
    parser.add_argument("--public-keys", type=Path, required=True, help="the keyring (JSON)")
    parser.add_argument("--checkpoints", type=Path, help="the sealer's checkpoint file")
    options = parser.parse_args(argv)
    try:
        lines = list(read_lines(options.export))
        problems, hashes = link_problems((n, e) for n, e in lines if e["kind"] == "entry")
        signed = [(n, e) for n, e in lines if e["kind"] == "checkpoint"]
        if options.checkpoints:
            signed += list(read_lines(options.checkpoints))
        problems += checkpoint_problems(signed, hashes, options.public_keys)
    except (OSError, ValueError, KeyError, TypeError, AuditKeyError) as error:
        print(f"cannot verify: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    if problems:
        return 1
    head = hashes[max(hashes)] if hashes else GENESIS
    print(f"audit export intact: {len(hashes)} entries, {len(signed)} checkpoints, head {head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
