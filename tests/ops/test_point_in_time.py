"""Point-in-time recovery (issue 29) on a scratch site of the module's own, archiving its WAL
into its var/wal as a site does by default (the suite's server does not archive): a base
backup, writes, a moment noted, more writes, the segment switched into the archive; then
``restore --to-time`` the moment into a new folder served on another port finds the first
writes and not the second, its base backup's row counts and the audit chain checked. A
moment the archive cannot reach is refused naming the one it can; a restore killed half-way
leaves the running server as it was, and the next restore into the same folder starts again.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qvp_site.db import embedded, postmaster
from tests.scratch_site import ScratchSite, scratch_site

PORT = 5491
FIRST, SECOND = ("pitr-first-a", "pitr-first-b"), ("pitr-second",)


@pytest.fixture(scope="module")
def site() -> Iterator[ScratchSite]:
    """A migrated scratch site with a base backup, the first writes, the moment after them
    (``site.moment``), the second writes, and all of it in the archive."""
    with scratch_site("pitr", archive=True) as scratch:
        scratch.manage("migrate", "-v", "0", timeout=600)
        scratch.manage("create_db_roles")
        scratch.manage("audit_key", "--create")
        archive = scratch.var_dir.resolve() / "wal"
        assert f"WAL archived into {archive}" in scratch.manage("embedded_db", "status")
        with busy_writers(scratch):  # commits in flight while the base backup counts
            assert "base backup" in scratch.manage("backup", "--base")
        accounts(scratch, FIRST)
        scratch.moment = server_time(scratch)  # type: ignore[attr-defined]  (the module's mark)
        time.sleep(1.1)  # the second writes commit well after the moment
        accounts(scratch, SECOND)
        switch_into_archive(scratch)
        yield scratch
        for folder in scratch.var_dir.glob("restored*"):
            if postmaster.read(folder) is not None:
                postmaster.pg_ctl(folder, "stop", "-m", "immediate")


@contextmanager
def busy_writers(site: ScratchSite, writers: int = 4) -> Iterator[None]:
    """Clients committing one row at a time into a table of their own, until the block ends."""
    with site.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pitr_busy (id bigserial PRIMARY KEY)")
    stop = threading.Event()

    def write() -> None:
        with site.connect() as conn:
            while not stop.is_set():
                conn.execute("INSERT INTO pitr_busy DEFAULT VALUES")

    threads = [threading.Thread(target=write) for _ in range(writers)]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)


def accounts(site: ScratchSite, names: tuple[str, ...]) -> None:
    """Audited rows (trading accounts), as the owner writes them."""
    with site.connect() as conn:
        for name in names:
            conn.execute(
                "INSERT INTO trading_account (name, base_currency) VALUES (%s, 'USD')", [name]
            )


def server_time(site: ScratchSite) -> datetime:
    return site.query("SELECT clock_timestamp()")[0][0]


def switch_into_archive(site: ScratchSite) -> None:
    """The current segment closed and archived (what QVP_WAL_ARCHIVE_TIMEOUT does in time)."""
    (segment,) = site.query("SELECT pg_walfile_name(pg_switch_wal())")[0]
    deadline = time.monotonic() + 60
    while (site.query("SELECT last_archived_wal FROM pg_stat_archiver")[0][0] or "") < segment:
        assert time.monotonic() < deadline, f"{segment} never reached the archive"
        time.sleep(0.1)


def restored(site: ScratchSite, folder: Path) -> psycopg.Connection[Any]:
    """The owner's connection to the restored cluster (the backed-up one's password)."""
    return psycopg.connect(
        host=str(postmaster.socket_dir(folder)), port=PORT, dbname="qvp",
        user=embedded.SUPERUSER, password=embedded.password(site.var_dir, embedded.SUPERUSER),
        autocommit=True, connect_timeout=10,
    )  # fmt: skip


def names_in(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("SELECT name FROM trading_account WHERE name LIKE 'pitr-%'").fetchall()
    return {name for (name,) in rows}


def restore(site: ScratchSite, folder: Path, moment: datetime, check: bool = True) -> str:
    args = ("--to-time", moment.isoformat(), "--target", str(folder), "--port", str(PORT))
    return site.manage("restore", *args, check=check, timeout=600)


def test_the_cluster_as_it_was_at_the_moment(site):
    folder = site.var_dir / "restored"
    out = restore(site, folder, site.moment)
    assert "row counts match base backup" in out, out
    assert "audit chain intact" in out, out
    with restored(site, folder) as conn:
        assert names_in(conn) == set(FIRST)
        audited = conn.execute(
            "SELECT count(*) FROM qvp_site_auditentry WHERE table_name = 'trading_account'"
        ).fetchone()[0]
        assert audited == len(FIRST)
        assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] is False
        archiving = conn.execute("SHOW archive_mode").fetchone()[0]
    assert archiving == "off"  # it never writes into the archive it was restored from
    # Its new timeline's history goes to the archive should it become the site's (archiving).
    assert (folder / "pg_wal" / "archive_status" / "00000002.history.ready").exists()
    with site.connect() as live:  # the running server has everything
        assert names_in(live) == set(FIRST + SECOND)
    postmaster.pg_ctl(folder, "stop", "-m", "fast")


def test_a_moment_after_the_archive_is_refused_naming_the_last_one(site):
    out = restore(site, site.var_dir / "restored-late", site.moment + timedelta(hours=1), False)
    assert (
        "is not before the last archived transaction: the times that can be reached are any before"
        in out
    ), out
    assert not (site.var_dir / "restored-late").exists()


def test_a_moment_before_every_base_backup_is_refused(site):
    out = restore(site, site.var_dir / "restored-early", site.moment - timedelta(days=1), False)
    assert "is before every base backup: the earliest time a restore can reach is" in out, out


def test_a_restore_killed_half_way_leaves_the_running_server_untouched(site):
    folder = site.var_dir / "restored-killed"
    live_pid = postmaster.read(site.pgdata).pid
    args = ("--to-time", site.moment.isoformat(), "--target", str(folder), "--port", str(PORT))
    process = site.start("restore", *args)
    deadline = time.monotonic() + 120
    while postmaster.read(folder) is None:  # killed once its server replays
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, "the restored server never started"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert postmaster.read(site.pgdata).pid == live_pid
    with site.connect() as live:
        assert names_in(live) == set(FIRST + SECOND)
    out = restore(site, folder, site.moment)  # into the same folder: it starts again
    assert "audit chain intact" in out, out
    with restored(site, folder) as conn:
        assert names_in(conn) == set(FIRST)
    postmaster.pg_ctl(folder, "stop", "-m", "fast")


def test_the_application_role_may_neither_back_up_nor_restore_the_cluster(site):
    site.env["QVP_DATABASE_ROLE"] = "app"
    try:
        made = site.manage("backup", "--base", check=False)
        back = restore(site, site.var_dir / "restored-app", site.moment, check=False)
    finally:
        del site.env["QVP_DATABASE_ROLE"]
    for out, what in ((made, "a base backup"), (back, "a restore to a time")):
        assert f"{what} is the database owner's: connected as trading_app" in out, out
    assert len(list((site.var_dir / "basebackups").iterdir())) == 1
    # Below the command, the server's own rule: the role may not stream the cluster's files.
    host, port = embedded.address(site.var_dir)
    done = subprocess.run(
        [str(postmaster.bin_dir() / "pg_basebackup"), "-D", str(site.var_dir / "stolen"),
         "-h", host, "-p", str(port), "-U", "trading_app", "--no-password"],
        env={**site.env, "PGPASSWORD": embedded.password(site.var_dir, "trading_app")},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "permission denied to start WAL sender" in done.stderr, done.stderr
