"""Base backups (``manage.py backup --base``): what ``restore --to-time`` starts from.

A base backup is a folder under ``QVP_BASE_BACKUP_DIR`` named by its UTC time: pg_basebackup's
plain copy of the whole cluster with the WAL it needs to be consistent (``--wal-method=stream``,
so that it restores without the archive up to its end), its ``backup_manifest`` (checksums,
checked by ``pg_verifybackup`` before a restore) and ``qvp.json``: the database's row counts
taken in one snapshot after the copy, with the WAL position they were counted at. A restore
replays to that position first and compares, then goes on to the time asked for.

Retention: after each base backup, those the window (``QVP_PITR_WINDOW``) no longer needs are
removed, and the archive's WAL older than the oldest kept one.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from psycopg import sql

from qvp_site import wal_archive
from qvp_site.backups import (
    TABLES,
    BackupError,
    connect_with,
    libpq_env,
    libpq_params,
    one_row,
    pg_tool,
    row_counts,
    server_major,
    timescaledb_version,
)
from qvp_site.db import roles

MANIFEST = "qvp.json"
# The embedded server's log sits in its data folder: statements' text, not the cluster's.
SERVER_LOG = "log"
# backup_label's lines: "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)", and
# "START TIMELINE: 1".
START_WAL = re.compile(r"^START WAL LOCATION: \S+ \(file ([0-9A-F]{24})\)$", re.MULTILINE)
START_TIMELINE = re.compile(r"^START TIMELINE: (\d+)$", re.MULTILINE)
# How long each try of the count's hold waits for a table's writers (below deadlock_timeout,
# 1 s, so that in a cycle the hold, not a writer, gives up), and for how long it tries.
HOLD_TIMEOUT = "150ms"
HOLD_SECONDS = 15.0
HOLD_PAUSE = 0.25


@dataclass
class BaseBackup:
    """A base backup's manifest (``qvp.json``), and where it is."""

    database: str
    started_at: str
    start_wal: str  # the first WAL segment a restore from it needs
    counted_at: str
    counted_lsn: str
    server_version: str
    timescaledb: str | None
    row_counts: dict[str, int] = field(default_factory=dict)
    timeline: int = 1
    # False when writers kept the tables from the count's hold for HOLD_SECONDS: the counts
    # are then of a snapshot a replay cannot stop at exactly, and a restore does not hold to them.
    counts_exact: bool = True
    path: Path = field(default=Path(), compare=False)

    @classmethod
    def read(cls, folder: Path) -> BaseBackup:
        found = json.loads((folder / MANIFEST).read_text())
        return cls(**found, path=folder)

    @property
    def counted(self) -> datetime:
        return datetime.fromisoformat(self.counted_at)

    @property
    def server_major(self) -> int:
        return int(self.server_version.split(".")[0].split()[0])


def make(using: str = "default") -> BaseBackup:
    """A base backup of the server of ``using`` into ``QVP_BASE_BACKUP_DIR``, written under a
    hidden name and renamed once whole: a failed one leaves nothing that looks like a backup."""
    root = Path(settings.QVP_BASE_BACKUP_DIR)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target, partial = root / stamp, root / f".{stamp}.partial"
    if target.exists():
        raise BackupError(f"{target} exists: one base backup a second")
    params = libpq_params(using)
    refuse_application_roles(params, "a base backup")
    with connect_with(params) as conn:
        tool = pg_tool("pg_basebackup", server_major(conn))
    started = datetime.now(UTC)
    done = subprocess.run(
        [tool, f"--pgdata={partial}", "--format=plain", "--wal-method=stream",
         "--checkpoint=fast", "--manifest-checksums=SHA256", f"--label=qvp {stamp}",
         "--no-password"],
        env=libpq_env(params), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(partial, ignore_errors=True)
        raise BackupError(f"pg_basebackup failed: {done.stderr.strip()}")
    (partial / SERVER_LOG).unlink(missing_ok=True)  # pg_verifybackup is told (restore)
    try:
        backup = _manifest(params, partial, started)
        (partial / MANIFEST).write_text(json.dumps(_fields(backup), indent=2, sort_keys=True))
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    partial.rename(target)
    backup.path = target
    return backup


def archiving_warnings(using: str = "default") -> list[str]:
    """Why a base backup of ``using``'s server could not be replayed forward from: its WAL not
    archived, or the archiver failing (segments then pile up in pg_wal)."""
    warnings = []
    if settings.QVP_WAL_ARCHIVE_DIR is None:
        warnings.append("QVP_WAL_ARCHIVE_DIR is off: restore --to-time has no archive to read")
    with connect_with(libpq_params(using)) as conn:
        mode, failed, last_failed = one_row(
            conn.execute(
                "SELECT current_setting('archive_mode'), failed_count, last_failed_wal"
                " FROM pg_stat_archiver"
                " WHERE last_failed_time > coalesce(last_archived_time, '-infinity')"
                " UNION ALL SELECT current_setting('archive_mode'), 0, NULL LIMIT 1"
            )
        )
    if mode == "off":
        warnings.append("the server does not archive its WAL (archive_mode is off)")
    if failed:
        warnings.append(
            f"the server's archiver is failing: {failed} failure(s), {last_failed} last"
        )
    return warnings


def refuse_application_roles(params: dict[str, str], what: str) -> None:
    """The whole cluster is the owner's to copy or bring back: an application role could not
    count what row-level security hides from it, and has no right to the rest."""
    if params.get("user") in (roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE):
        raise BackupError(
            f"{what} is the database owner's: connected as {params['user']}"
            " (run it without QVP_DATABASE_ROLE=app, or with the owner's DATABASE_URL)"
        )


def _manifest(params: dict[str, str], copy: Path, started: datetime) -> BaseBackup:
    """The copy's manifest: where its WAL starts, and the database's rows counted after it at
    a WAL position a replay can stop at with exactly those rows (``_counted``)."""
    label = (copy / "backup_label").read_text()
    start, timeline = START_WAL.search(label), START_TIMELINE.search(label)
    if start is None or timeline is None:
        raise BackupError(f"{copy / 'backup_label'}: no START WAL LOCATION or START TIMELINE")
    with connect_with(params) as holder, connect_with(params) as counter:
        exact = _hold_writers(holder)
        # The counter's snapshot is taken as its first statement starts, the WAL position read
        # in it, while no writer of a counted table is in progress: every commit before that
        # position is in the snapshot, and no later one. The writers go on at once after.
        counter.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        lsn, at = one_row(
            counter.execute("SELECT pg_current_wal_insert_lsn()::text, clock_timestamp()")
        )
        holder.rollback()
        backup = BaseBackup(
            database=params["dbname"],
            started_at=started.isoformat(),
            start_wal=start.group(1),
            counted_at=at.astimezone(UTC).isoformat(),
            counted_lsn=lsn,
            server_version=str(one_row(counter.execute("SHOW server_version"))[0]),
            timescaledb=timescaledb_version(counter),
            row_counts=row_counts(counter),
            timeline=int(timeline.group(1)),
            counts_exact=exact,
        )
        counter.rollback()
    return backup


def _hold_writers(holder: psycopg.Connection[Any]) -> bool:
    """Every table of the public schema locked in SHARE mode on ``holder`` (left open): it
    waits until the writers in progress have finished and are visible to all, and keeps new
    ones out until ``holder`` ends (a moment later). A commit's WAL record is written before
    it becomes visible: without this, a replay to the count's position would hold commits the
    count did not see. Each try waits briefly (writers queue behind a waiting lock) and lets go
    of everything; after HOLD_SECONDS it gives up, answering False."""
    deadline = time.monotonic() + HOLD_SECONDS
    while True:
        try:
            tables = [name for (name,) in holder.execute(TABLES).fetchall()]
            holder.execute("SELECT set_config('lock_timeout', %s, true)", [HOLD_TIMEOUT])
            if tables:
                holder.execute(
                    sql.SQL("LOCK TABLE {} IN SHARE MODE").format(
                        sql.SQL(", ").join(sql.Identifier("public", name) for name in tables)
                    )
                )
            return True
        except (
            psycopg.errors.LockNotAvailable,
            psycopg.errors.DeadlockDetected,
            psycopg.errors.UndefinedTable,  # dropped since it was listed (a rebuild)
        ):
            holder.rollback()
        if time.monotonic() > deadline:
            return False
        time.sleep(HOLD_PAUSE)


def _fields(backup: BaseBackup) -> dict[str, object]:
    found = asdict(backup)
    found.pop("path")
    return found


def listing() -> list[BaseBackup]:
    """Every whole base backup under ``QVP_BASE_BACKUP_DIR``, oldest count first."""
    root = Path(settings.QVP_BASE_BACKUP_DIR)
    if not root.is_dir():
        return []
    found = [
        BaseBackup.read(folder)
        for folder in root.iterdir()
        if folder.is_dir() and not folder.name.startswith(".") and (folder / MANIFEST).exists()
    ]
    return sorted(found, key=lambda b: b.counted)


@dataclass
class Pruned:
    """What retention removed: base backups by folder name, and WAL segments."""

    backups: list[str]
    segments: int


def prune(now: datetime | None = None) -> Pruned:
    """Keep the base backups the window needs (every one counted inside it, and the newest
    before it, from which its first moment is reached); remove the others, and the archive's
    segments older than the oldest kept one's start."""
    now = now or datetime.now(UTC)
    backups = listing()
    start = now - settings.QVP_PITR_WINDOW
    inside = [b for b in backups if b.counted >= start]
    before = [b for b in backups if b.counted < start]
    kept = before[-1:] + inside
    gone = [b for b in backups if b not in kept]
    for backup in gone:
        shutil.rmtree(backup.path)
    archive = settings.QVP_WAL_ARCHIVE_DIR
    trimmed = 0
    if kept and archive is not None and Path(archive).is_dir():
        trimmed = wal_archive.trim(Path(archive), kept[0].start_wal)
    return Pruned([b.path.name for b in gone], trimmed)
