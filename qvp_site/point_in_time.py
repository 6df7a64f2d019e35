"""``manage.py restore --to-time T``: the cluster as it was at T, in a NEW data directory.

Recovery restores a whole cluster, so it never touches the running one: the newest base
backup counted before T (``qvp_site.base_backups``) is checked (``pg_verifybackup``), copied
into a new folder and started on a port and socket of its own, with the archive
(``QVP_WAL_ARCHIVE_DIR``) as its ``restore_command`` and archiving off (it must never write
into the archive it reads). It replays in two legs:

1. to the WAL position the base backup's rows were counted at, where it pauses: every table's
   row count is compared with the manifest's (the base backup and the WAL replayed onto it
   give back what was there);
2. restarted with T as the target, to T, then promoted: the audit chain is walked there.

T after the last transaction the archive holds is refused, naming the latest time that can be
reached. A restore killed half-way leaves its folder marked unfinished (``MARK``); the next
restore into it stops whatever runs there and starts again.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings

from qvp_site import base_backups, wal_archive
from qvp_site.backups import (
    BackupError,
    audit_chain_problem,
    connect_with,
    libpq_params,
    row_counts,
)
from qvp_site.base_backups import BaseBackup
from qvp_site.db import postmaster

MARK = "QVP_RESTORE_UNFINISHED"
AUTO_CONF = "postgresql.auto.conf"
BEGIN, END = "# --- manage.py restore --to-time ---", "# --- end of restore --to-time ---"
POLL_SECONDS = 0.2
HISTORY = re.compile(r"^[0-9A-F]{8}\.history$")


@dataclass
class Restored:
    """What a restore to a time made, and what it found."""

    data_dir: Path
    socket_dir: Path
    port: int
    database: str
    base: BaseBackup
    target: datetime
    mismatches: dict[str, tuple[int, int | None]]
    audit_problem: str | None
    tables: int
    rows: int

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.audit_problem is None


def restore_to_time(
    target: datetime,
    data_dir: Path,
    port: int,
    *,
    base: Path | None = None,
    using: str = "default",
    say: Callable[[str], None] = lambda line: None,
) -> Restored:
    """Restore the cluster as it was at ``target`` into the new ``data_dir``, left running
    on ``port`` (its socket in ``data_dir``, or the temp dir if that path is too long)."""
    owner = libpq_params(using)
    base_backups.refuse_application_roles(owner, "a restore to a time")
    archive = _archive()
    backup = _base_backup(target, base)
    _reachable(archive, backup, target)
    _clear_unfinished(data_dir)
    say(f"base backup {backup.path.name} (counted {backup.counted_at}), checking it")
    _verify(backup)
    _copy(backup, data_dir)
    # The restored cluster's own roles and passwords are the backed-up ones: the owner's.
    params = {
        "user": owner.get("user", ""),
        "password": owner.get("password", ""),
        "dbname": backup.database,
        "host": str(postmaster.socket_dir(data_dir)),
        "port": str(port),
    }
    say(f"replaying to the base backup's count ({backup.counted_lsn})")
    _recovery_settings(data_dir, archive, f"recovery_target_lsn = '{backup.counted_lsn}'", "pause")
    _start(data_dir, port)
    _wait(data_dir, params, "SELECT pg_get_wal_replay_pause_state() = 'paused'", "to pause")
    mismatches = _compare_counts(backup, params, say)
    say(f"replaying to {target.isoformat()}")
    postmaster.pg_ctl(data_dir, "stop", "-m", "fast")
    stop_at = f"recovery_target_time = '{target.isoformat()}'"
    _recovery_settings(data_dir, archive, stop_at, "promote")
    _start(data_dir, port)
    _wait(data_dir, params, "SELECT NOT pg_is_in_recovery()", "to be promoted")
    with _connect(params) as conn:
        found = row_counts(conn)
        problem = audit_chain_problem(conn)
    _archive_history_when_switched_in(data_dir)
    _without_recovery_settings(data_dir)
    (data_dir / MARK).unlink()
    return Restored(
        data_dir, Path(params["host"]), port, backup.database, backup, target, mismatches,
        problem, len(found), sum(found.values()),
    )  # fmt: skip


def _compare_counts(
    backup: BaseBackup, params: dict[str, str], say: Callable[[str], None]
) -> dict[str, tuple[int, int | None]]:
    """Each table's rows where the replay paused against the base backup's count: the tables
    that differ, with what each held."""
    if not backup.counts_exact:
        say(
            f"row counts not compared: base backup {backup.path.name} counted them while"
            " writers held the tables"
        )
        return {}
    with _connect(params) as conn:
        counted = row_counts(conn)
    return {
        table: (expected, counted.get(table))
        for table, expected in backup.row_counts.items()
        if counted.get(table) != expected
    }


def _archive_history_when_switched_in(data_dir: Path) -> None:
    """The new timeline's history file (the newest in pg_wal) marked for the archive: promoted
    with archiving off, the server would never hand it over, and should this cluster become
    the site's (it then archives), a later restore could not follow it onto its timeline."""
    wal = data_dir / "pg_wal"
    histories = sorted(p.name for p in wal.iterdir() if HISTORY.match(p.name))
    if histories:
        ready = wal / "archive_status" / f"{histories[-1]}.ready"
        ready.touch()
        postmaster.give_to_server(ready)


def _archive() -> Path:
    folder = settings.QVP_WAL_ARCHIVE_DIR
    if folder is None:
        raise BackupError(
            "QVP_WAL_ARCHIVE_DIR is off: no WAL archive to replay (set it to the archive)"
        )
    if not Path(folder).is_dir():
        raise BackupError(f"{folder}: no WAL archive there (QVP_WAL_ARCHIVE_DIR)")
    return Path(folder).resolve()


def _base_backup(target: datetime, chosen: Path | None) -> BaseBackup:
    """The base backup given, or the newest one counted at or before ``target``."""
    if chosen is not None:
        if not (chosen / base_backups.MANIFEST).exists():
            raise BackupError(f"{chosen}: not a base backup (no {base_backups.MANIFEST})")
        backup = BaseBackup.read(chosen.resolve())
        if backup.counted > target:
            raise BackupError(
                f"base backup {chosen.name} was counted at {backup.counted_at}, after"
                f" {target.isoformat()}: choose an earlier one"
            )
        return _same_major(backup)
    backups = base_backups.listing()
    if not backups:
        raise BackupError("no base backup: make one with `manage.py backup --base`")
    before = [b for b in backups if b.counted <= target]
    if not before:
        raise BackupError(
            f"{target.isoformat()} is before every base backup: the earliest time a restore"
            f" can reach is {backups[0].counted_at} (base backup {backups[0].path.name})"
        )
    return _same_major(before[-1])


def _same_major(backup: BaseBackup) -> BaseBackup:
    """Only the PostgreSQL that wrote a cluster can run it: this restore runs the embedded
    server's."""
    runs = _wheel_major()
    if backup.server_major != runs:
        raise BackupError(
            f"base backup {backup.path.name} is of PostgreSQL {backup.server_version}: this"
            f" restore runs PostgreSQL {runs} (the embedded server's)"
        )
    return backup


def _reachable(archive: Path, backup: BaseBackup, target: datetime) -> None:
    """Refuse a target the archive cannot reach: after its last transaction, or past a gap."""
    last = wal_archive.last_commit_time(archive)
    if last is None or target >= last:  # a replay stops at the first commit after the target
        latest = f"any before {last.isoformat()}" if last else "none: no transaction archived"
        raise BackupError(
            f"{target.isoformat()} is not before the last archived transaction: the times"
            f" that can be reached are {latest} (the server hands its current segment to the"
            " archive at most QVP_WAL_ARCHIVE_TIMEOUT later, or at once with"
            " SELECT pg_switch_wal())"
        )
    missing = wal_archive.gaps(archive, backup.start_wal)
    if missing:
        raise BackupError(
            f"the archive {archive} lacks {len(missing)} WAL segment(s) after base backup"
            f" {backup.path.name}, from {missing[0]}: a recovery would stop there"
        )


def _clear_unfinished(data_dir: Path) -> None:
    """A folder left by a restore that was killed is cleared; any other is refused."""
    if not data_dir.exists():
        return
    if not (data_dir / MARK).exists():
        raise BackupError(f"{data_dir} exists: restore into a new folder (--target)")
    if postmaster.read(data_dir) is not None:
        postmaster.pg_ctl(data_dir, "stop", "-m", "immediate")
    # Renamed aside first: a removal cut short leaves no folder that looks finished.
    aside = data_dir.with_name(f".{data_dir.name}.removing")
    shutil.rmtree(aside, ignore_errors=True)
    data_dir.rename(aside)
    shutil.rmtree(aside)


def _verify(backup: BaseBackup) -> None:
    done = subprocess.run(
        [str(postmaster.bin_dir() / "pg_verifybackup"), "--quiet",
         f"--ignore={base_backups.MANIFEST}", f"--ignore={base_backups.SERVER_LOG}",
         str(backup.path)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"base backup {backup.path}: {done.stderr.strip() or done.stdout}")


def _copy(backup: BaseBackup, data_dir: Path) -> None:
    """The base backup copied into ``data_dir``, marked unfinished before anything else goes
    in, and made the server's."""
    data_dir.mkdir(mode=0o700, parents=True)
    (data_dir / MARK).write_text(f"restore from {backup.path} under way\n")
    shutil.copytree(  # the source's server log too is in its data folder: not this one's
        backup.path, data_dir, ignore=shutil.ignore_patterns(base_backups.MANIFEST, "log"),
        dirs_exist_ok=True,
    )  # fmt: skip
    (data_dir / "recovery.signal").touch()
    postmaster.give_to_server(data_dir)


def _recovery_settings(data_dir: Path, archive: Path, stop_at: str, action: str) -> None:
    """The recovery's settings, at the end of postgresql.auto.conf (replacing the last leg's):
    the archive read, never written, and where to stop."""
    conf = data_dir / AUTO_CONF
    text = conf.read_text() if conf.exists() else ""
    if BEGIN in text:
        text = text[: text.index(BEGIN)]
    block = "\n".join([
        BEGIN,
        f"restore_command = 'cp \"{archive}/%f\" \"%p\"'",
        "archive_mode = 'off'",
        "hot_standby = 'on'",
        stop_at,
        f"recovery_target_action = '{action}'",
        END,
    ])  # fmt: skip
    postmaster.replace_file(conf, text + block + "\n")  # keeps the server's owner and mode


def _without_recovery_settings(data_dir: Path) -> None:
    """Recovery's settings taken out once promoted: the running server keeps them until it
    restarts, then runs as its postgresql.conf says (archiving off unless set there, or by
    the embedded server's start should it become the site's)."""
    conf = data_dir / AUTO_CONF
    text = conf.read_text()
    if BEGIN in text:
        postmaster.replace_file(conf, text[: text.index(BEGIN)])


def _start(data_dir: Path, port: int) -> None:
    try:
        postmaster.start(data_dir, port, {})
    except postmaster.ServerError as error:
        raise BackupError(f"the restored server did not start: {error}") from error


def _connect(params: dict[str, str]) -> psycopg.Connection[Any]:
    return connect_with(params, autocommit=True, connect_timeout=10)


def _wait(data_dir: Path, params: dict[str, str], check: str, what: str) -> None:
    """Until ``check`` holds on the restored server; an error with its log if it stops."""
    while True:
        if postmaster.read(data_dir) is None:
            raise BackupError(f"the restored server stopped before {what}: {_log(data_dir)}")
        try:
            with _connect(params) as conn:
                found = conn.execute(check).fetchone()
            if found and found[0]:
                return
        except psycopg.OperationalError:
            pass  # restarting, or not yet consistent
        time.sleep(POLL_SECONDS)


def _log(data_dir: Path) -> str:
    lines = (data_dir / "log").read_text(errors="replace").splitlines()
    return "\n".join(lines[-15:])


def _wheel_major() -> int:
    out = subprocess.run(
        [str(postmaster.bin_dir() / "postgres"), "--version"], capture_output=True, text=True,
        check=True,
    ).stdout  # fmt: skip
    return int(out.split()[-1].split(".")[0])
