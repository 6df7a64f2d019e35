"""A database on a Citus cluster, prepared before its migrations run.

Preparing needs a superuser (CREATE EXTENSION citus, registering nodes) the first time; a
database already prepared is only checked. The coordinator reaches its workers with its own
server-side credentials (a .pgpass of the server's OS user, or pg_dist_authinfo), not with
the password this process uses.

A new database on the coordinator is a plain database: Citus needs its extension in that
database on every node, and the workers registered in it (the coordinator keeps its list of
nodes per database). ``prepare`` does both for the database of a connection, from
``QVP_CITUS_WORKERS``; it runs before ``migrate`` (a ``pre_migrate`` handler), for the site's
database and for the test database alike, and again changes nothing.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import sql

from qvp_site.db import engine

_prepared: set[tuple[str, str]] = set()


def prepare(connection: BaseDatabaseWrapper) -> bool:
    """The extension in ``connection``'s database on every worker and on the coordinator, and
    the workers registered; False when no worker is configured (nothing to do)."""
    workers = settings.QVP_CITUS_WORKERS
    if not workers:
        return False
    database = connection.settings_dict["NAME"]
    key = (connection.alias, database)
    if key in _prepared or _complete(connection, workers):
        _prepared.add(key)
        return True
    login = _login(connection)
    for host, port in workers:
        _database_with_citus(host, port, database, login)
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS citus")
        cursor.execute("SELECT citus_set_coordinator_host(%s, %s)", list(_coordinator(connection)))
        for worker_host, worker_port in workers:
            cursor.execute(
                "SELECT citus_add_node(%s, %s) WHERE NOT EXISTS (SELECT 1 FROM pg_dist_node"
                " WHERE nodename = %s AND nodeport = %s)",
                [worker_host, worker_port, worker_host, worker_port],
            )
    engine.forget()  # detected before the extension was there
    _prepared.add(key)
    return True


def _complete(connection: BaseDatabaseWrapper, workers: list[tuple[str, int]]) -> bool:
    """Whether the database is prepared already: the extension in it and every worker
    registered (then nothing needing a superuser is done again)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'")
        if cursor.fetchone() is None:
            return False
        cursor.execute("SELECT nodename, nodeport FROM pg_dist_node WHERE groupid <> 0")
        registered = set(cursor.fetchall())
    return all((host, port) in registered for host, port in workers)


def _coordinator(connection: BaseDatabaseWrapper) -> tuple[str, int]:
    """Where the workers reach the coordinator: QVP_CITUS_COORDINATOR, else the address this
    process connects to (which must then be a network one, not a socket)."""
    if settings.QVP_CITUS_COORDINATOR:
        return settings.QVP_CITUS_COORDINATOR
    host = connection.settings_dict.get("HOST") or ""
    if not host or host.startswith("/"):
        raise ImproperlyConfigured(
            "Citus: the coordinator is reached over a socket here; set QVP_CITUS_COORDINATOR"
            " to the host:port its workers reach it at"
        )
    return host, int(connection.settings_dict.get("PORT") or 5432)


def _login(connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """The coordinator's user and password, which the workers are given too."""
    found = connection.settings_dict
    return {"user": found.get("USER") or None, "password": found.get("PASSWORD") or None}


def _worker(host: str, port: int, database: str, login: dict[str, Any]) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(
            host=host, port=port, dbname=database, autocommit=True, connect_timeout=10, **login
        )
    except psycopg.OperationalError as error:
        raise ImproperlyConfigured(
            f"Citus worker {host}:{port} (QVP_CITUS_WORKERS): {error}"
        ) from error


def _database_with_citus(host: str, port: int, database: str, login: dict[str, Any]) -> None:
    with _worker(host, port, "postgres", login) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if not found.fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    with _worker(host, port, database, login) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS citus")


def drop_on_workers(database: str, connection: BaseDatabaseWrapper) -> None:
    """The worker's copies of ``database`` dropped (the test database's, when it goes)."""
    login = _login(connection)
    for host, port in settings.QVP_CITUS_WORKERS:
        with _worker(host, port, "postgres", login) as conn:
            drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
            conn.execute(drop.format(sql.Identifier(database)))
    _prepared.discard((connection.alias, database))
