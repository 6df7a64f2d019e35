"""The WAL archive: the segments it holds, the latest moment they reach, gaps, and trimming.

The embedded server copies each finished WAL segment into ``QVP_WAL_ARCHIVE_DIR`` (the wheel's
``basic_archive``; ``qvp_site.db.embedded.Archiving``); a server of one's own does the same
with its ``archive_command``. A segment's name is its timeline and position (24 hex digits),
so names sort in WAL order within a timeline; ``<timeline>.history`` and ``.backup`` files sit
beside them. ``restore --to-time`` replays from here (``qvp_site.point_in_time``).
"""

from __future__ import annotations

import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from qvp_site.db import postmaster

SEGMENT = re.compile(r"^[0-9A-F]{24}$")
# pg_waldump's description of a transaction's end, in UTC (TZ=UTC below).
END_OF_TRANSACTION = re.compile(
    r"desc: (?:COMMIT|ABORT) (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?) UTC"
)
# How pg_waldump says it reached the end of the WAL written (not an error of the archive's).
END_OF_WAL = re.compile(
    r"invalid record length|could not find a valid record|invalid magic number"
    r"|incorrect prev-link|unexpected pageaddr|contrecord"
)
# The newest segments read for the last commit before giving up: an archive whose last
# gigabyte holds no commit at all has nothing later to restore to anyway.
SEGMENTS_SEARCHED = 64


class WalArchiveError(Exception):
    """The archive cannot give what was asked (the message says what and why)."""


def segments(folder: Path) -> list[str]:
    """The WAL segments in ``folder``, in WAL order (timeline, then position)."""
    if not folder.is_dir():
        return []
    return sorted(name for name in os.listdir(folder) if SEGMENT.match(name))


def last_commit_time(folder: Path) -> datetime | None:
    """The time of the last transaction's end recorded in the archive: the latest moment a
    recovery from it can stop at (a recovery target is met by a commit after it). None when
    the newest segments hold none."""
    for name in reversed(segments(folder)[-SEGMENTS_SEARCHED:]):
        # A segment's records up to its end; pg_waldump exits 1 at the end of WAL ("invalid
        # record length"), which every switched or last segment has.
        done = subprocess.run(
            [str(postmaster.bin_dir() / "pg_waldump"), f"--path={folder}", "--rmgr=Transaction",
             name],
            capture_output=True, text=True, env={**os.environ, "TZ": "UTC"}, check=False,
        )  # fmt: skip
        found = END_OF_TRANSACTION.findall(done.stdout)
        if found:
            return datetime.fromisoformat(found[-1]).replace(tzinfo=UTC)
        if done.returncode != 0 and not END_OF_WAL.search(done.stderr):
            raise WalArchiveError(f"pg_waldump cannot read {folder / name}: {done.stderr.strip()}")
    return None


def gaps(folder: Path, first: str) -> list[str]:
    """The segments missing between ``first`` (a segment's name) and the newest one on its
    timeline: a recovery stops at the first, short of what comes after it."""
    timeline = first[:8]
    held = [name for name in segments(folder) if name[:8] == timeline and name >= first]
    if not held:
        return [first]
    per_log = 0x100000000 // _segment_size(folder / held[-1])
    wanted = range(_number(first, per_log), _number(held[-1], per_log) + 1)
    have = {_number(name, per_log) for name in held}
    return [_name(timeline, n, per_log) for n in wanted if n not in have]


def _segment_size(path: Path) -> int:
    size = path.stat().st_size
    if size <= 0 or size & (size - 1):
        raise WalArchiveError(f"{path}: {size} bytes is not a WAL segment's size (a power of two)")
    return size


def _number(name: str, per_log: int) -> int:
    return int(name[8:16], 16) * per_log + int(name[16:24], 16)


def _name(timeline: str, number: int, per_log: int) -> str:
    return f"{timeline}{number // per_log:08X}{number % per_log:08X}"


def trim(folder: Path, keep_from: str) -> int:
    """Remove the segments before ``keep_from`` (``pg_archivecleanup``); how many went."""
    before = len(segments(folder))
    done = subprocess.run(
        [str(postmaster.bin_dir() / "pg_archivecleanup"), str(folder), keep_from],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise WalArchiveError(f"pg_archivecleanup {folder} {keep_from}: {done.stderr.strip()}")
    return before - len(segments(folder))
