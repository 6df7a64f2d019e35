"""A database on a Citus cluster, prepared before its migrations run.

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
    if key in _prepared:
        return True
    login = _login(connection)
    for host, port in workers:
        _database_with_citus(host, port, database, login)
    with connection.cursor() as cursor:
        cursor.execute("CREATE EXTENSION IF NOT EXISTS citus")
        host = connection.settings_dict.get("HOST") or "localhost"
        port = int(connection.settings_dict.get("PORT") or 5432)
        cursor.execute("SELECT citus_set_coordinator_host(%s, %s)", [host, port])
        for worker_host, worker_port in workers:
            cursor.execute(
                "SELECT citus_add_node(%s, %s) WHERE NOT EXISTS (SELECT 1 FROM pg_dist_node"
                " WHERE nodename = %s AND nodeport = %s)",
                [worker_host, worker_port, worker_host, worker_port],
            )
    engine.forget()  # detected before the extension was there
    _prepared.add(key)
    return True


def _login(connection: BaseDatabaseWrapper) -> dict[str, Any]:
    """The coordinator's user and password, which the workers are given too."""
    found = connection.settings_dict
    return {"user": found.get("USER") or None, "password": found.get("PASSWORD") or None}


def _worker(host: str, port: int, database: str, login: dict[str, Any]) -> psycopg.Connection[Any]:
    return psycopg.connect(host=host, port=port, dbname=database, autocommit=True, **login)


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
