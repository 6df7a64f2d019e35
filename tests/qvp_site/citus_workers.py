"""A Citus worker of the test cluster stopped and started again, as a crash does it.

Only a worker on this machine whose ``pg_ctl`` the tests may run (as its data directory's
owner, or as root for it): its data directory and binaries are asked of the worker itself, so
nothing of how the cluster was built is written here. Elsewhere the tests that need it skip.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import connection

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LocalWorker:
    host: str
    port: int
    data_dir: Path
    pg_ctl: Path
    owner: str

    def _run(self, *args: str) -> None:
        command = [str(self.pg_ctl), "-D", str(self.data_dir), *args]
        if pwd.getpwuid(os.geteuid()).pw_name != self.owner:
            command = ["runuser", "-u", self.owner, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def crash(self) -> None:
        """Every process of the worker quits at once, nothing flushed (``-m immediate``)."""
        self._run("stop", "-m", "immediate")

    def start(self) -> None:
        self._run("start", "-w", "-l", str(self.data_dir / "log"))


def login() -> dict[str, str]:
    return {
        "user": connection.settings_dict["USER"],
        "password": connection.settings_dict["PASSWORD"],
    }


def worker_connection(host: str, port: int) -> psycopg.Connection:
    return psycopg.connect(
        host=host, port=port, dbname=connection.settings_dict["NAME"], autocommit=True, **login()
    )


def local_worker(host: str, port: int) -> LocalWorker | None:
    """The worker at host:port, if this process can stop and start it; else None."""
    if host not in LOCAL_HOSTS:
        return None
    with worker_connection(host, port) as conn:
        data_dir = Path(conn.execute("SELECT current_setting('data_directory')").fetchone()[0])
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
        binary = Path(os.readlink(f"/proc/{postmaster}/exe"))
        owner = pwd.getpwuid(data_dir.stat().st_uid).pw_name
    except (OSError, ValueError, IndexError, KeyError):
        return None
    if os.geteuid() not in (0, data_dir.stat().st_uid):
        return None
    return LocalWorker(host, port, data_dir, binary.with_name("pg_ctl"), owner)


def local_workers() -> list[LocalWorker]:
    found = [local_worker(host, port) for host, port in settings.QVP_CITUS_WORKERS]
    return [worker for worker in found if worker is not None]


@contextmanager
def crashed(worker: LocalWorker) -> Iterator[None]:
    """The worker down for the block; started again, whatever the block did."""
    worker.crash()
    try:
        yield
    finally:
        worker.start()
