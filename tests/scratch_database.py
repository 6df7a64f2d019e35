"""An empty database of its own on the test server, and the environment that points
``manage.py`` in a child process at it, as an operator's would: for tests of what commands do
to a database the suite's test database must not be (unmigrated, migrated back)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from django.conf import settings
from django.db import connection
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent


def conninfo(dbname: str) -> dict:
    """psycopg's connection parameters for ``dbname`` on the test database's server."""
    db = connection.settings_dict
    info = {"dbname": dbname, "user": db["USER"], "host": db["HOST"], "port": db["PORT"]}
    if db["PASSWORD"]:
        info["password"] = db["PASSWORD"]
    return {k: v for k, v in info.items() if v not in ("", None)}


def child_environment(dbname: str) -> dict[str, str]:
    """This process's environment, the database ``dbname`` instead of the test database."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if settings.EMBEDDED_DATABASE:
        env.pop("DATABASE_URL", None)
        env["QVP_DATABASE_NAME"] = dbname
    else:
        url = urlsplit(os.environ["DATABASE_URL"])
        env["DATABASE_URL"] = urlunsplit(url._replace(path=f"/{dbname}"))
    return env


@contextmanager
def empty_database(prefix: str) -> Iterator[str]:
    """A new, empty database named ``<prefix>_<random>``, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg.connect(**conninfo(settings.DATABASES["default"]["NAME"]), autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


def run_manage(env: dict[str, str], *args: str, refused: bool = False) -> str:
    """``manage.py args`` in a child process with ``env``: its output; with ``refused``, its
    error output, the command having failed (either way the other is a test failure)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    said = f"manage.py {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    assert (done.returncode != 0) == refused, said
    return done.stderr if refused else done.stdout
