"""A site of its own for tests that stop, kill or crash things: never the suite's server.

Its ``QVP_VAR_DIR`` is a temporary folder (its embedded server, secrets and audit keys live
there), no ``DATABASE_URL`` and none of the suite's ``QVP_*`` settings reach it, and its
commands run as subprocesses, as an operator runs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest

from qvp_site.db import embedded, postmaster

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ScratchSite:
    """A site of its own under ``var_dir``: its embedded server, keys and secrets."""

    var_dir: Path
    archive: bool = False
    env: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        # Nothing of the suite's site: no DATABASE_URL, none of its QVP_* settings (the audit
        # key files the test session points at included: this site makes and keeps its own
        # under var_dir, as a served site does). Its WAL archived into var/wal, as a site's
        # is by default, only when asked: the crash tests write gigabytes.
        kept = {k: v for k, v in os.environ.items() if not k.startswith(("QVP_", "DATABASE_"))}
        self.env = {**kept, "QVP_VAR_DIR": str(self.var_dir)}
        if not self.archive:
            self.env["QVP_WAL_ARCHIVE_DIR"] = "off"

    @property
    def pgdata(self) -> Path:
        return embedded.pgdata_path(self.var_dir)

    def manage(self, *args: str, check: bool = True, timeout: float = 300) -> str:
        """Run ``manage.py args``; its output (stdout then stderr)."""
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True,
            text=True, timeout=timeout, check=False,
        )  # fmt: skip
        output = done.stdout + done.stderr
        if check and done.returncode:
            pytest.fail(f"manage.py {' '.join(args)} exited {done.returncode}:\n{output[-3000:]}")
        return output

    def start(self, *args: str) -> subprocess.Popen[str]:
        """``manage.py args`` started, its output (stdout and stderr) in one pipe."""
        return subprocess.Popen(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip

    def connect(self, dbname: str = "qvp") -> psycopg.Connection[Any]:
        """The owner's connection to the site's database (postmaster.pid says where)."""
        host, port = embedded.address(self.var_dir)
        password = embedded.password(self.var_dir, embedded.SUPERUSER)
        return psycopg.connect(
            host=host, port=port, dbname=dbname, user=embedded.SUPERUSER, password=password,
            autocommit=True, connect_timeout=10,
        )  # fmt: skip

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.connect() as conn:
            return conn.execute(sql, params).fetchall()

    def log(self) -> str:
        return (self.pgdata / "log").read_text(errors="replace")

    def crash(self) -> None:
        """``pg_ctl stop -m immediate``: every process of the server quits at once, nothing
        flushed, no checkpoint; the next start replays the WAL."""
        running = postmaster.read(self.pgdata)
        assert running is not None, "no server to crash"
        # -W, then wait for this postmaster to be gone: a client that loses its connection
        # starts the server again at once (qvp_site/db/embedded_backend), and pg_ctl -w would
        # wait for the new one's postmaster.pid to go too.
        postmaster.pg_ctl(self.pgdata, "stop", "-m", "immediate", "-W")
        deadline = time.monotonic() + 60
        while Path(f"/proc/{running.pid}").exists():
            assert time.monotonic() < deadline, "the server did not stop"
            time.sleep(0.01)

    def restart(self) -> None:
        """Start the server again (unless a client has already)."""
        embedded.start(self.var_dir)

    def stop(self) -> None:
        if postmaster.read(self.pgdata) is not None:
            embedded.stop(self.var_dir)


@contextmanager
def scratch_site(prefix: str, *, archive: bool = False) -> Iterator[ScratchSite]:
    """A scratch site in a folder of its own under the temp dir, removed with its server.

    Not under pytest's temporary folders: pytest makes its base folder 0700 again whenever a
    session starts, and as root the server runs as another OS user that must reach its data.
    """
    home = Path(tempfile.mkdtemp(prefix=f"qvp-{prefix}-"))
    home.chmod(0o711)
    site = ScratchSite(home / "var", archive)
    try:
        yield site
    finally:
        site.stop()
        shutil.rmtree(home, ignore_errors=True)
