"""Shared test setup: engine-dependent skips with their reasons, the application's role."""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Callable
from io import StringIO

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.backends.signals import connection_created
from django.dispatch import receiver

from qvp_site.db import engine, roles
from tests.db_roles import acting

# Fixtures shared across the test packages (tests/fixtures/): plugins, so that no conftest
# imports another's.
pytest_plugins = [
    "tests.fixtures.marketdata",
    "tests.fixtures.trading",
    "tests.fixtures.trading_api",
    "tests.fixtures.throttling",
]


@receiver(connection_created)
def _tests_may_empty_the_audit_log(sender, connection, **kwargs):
    """Test flushes TRUNCATE every table; the audit log allows it only when told (tests)."""
    with connection.cursor() as cursor:
        cursor.execute("SET qvp.allow_audit_truncate = on")


@pytest.fixture(scope="session", autouse=True)
def _audit_files_of_the_tests_own(tmp_path_factory):
    """The audit chain's key, keyring and checkpoint file in a folder of the run's own (and
    so for the commands tests run as subprocesses): the site's var/audit speaks of the site's
    database, not the test database."""
    folder = tmp_path_factory.mktemp("audit")
    paths = {
        "QVP_AUDIT_SIGNING_KEY_FILE": folder / "secrets" / "audit_signing_key",
        "QVP_AUDIT_PUBLIC_KEYS": folder / "public_keys.json",
        "QVP_AUDIT_CHECKPOINTS": folder / "checkpoints.jsonl",
    }
    for name, path in paths.items():
        setattr(settings, name, path)
        os.environ[name] = str(path)
    os.environ.pop("QVP_AUDIT_SIGNING_KEY", None)
    settings.QVP_AUDIT_SIGNING_KEY = ""


@pytest.fixture(scope="session", autouse=True)
def _citus_workers_test_database(request):
    """On a Citus cluster, the workers' copies of the test database go with it."""
    if not settings.QVP_CITUS_WORKERS:
        yield
        return
    request.getfixturevalue("django_db_setup")
    name = connection.settings_dict["NAME"]
    yield
    from qvp_site.db import citus

    citus.drop_on_workers(name, connection)


@pytest.fixture(scope="session", autouse=True)
def _citus_flushes_the_tables_with_rows(_citus_workers_test_database):
    """On a Citus cluster, a transactional test's flush truncates only the tables that hold
    rows: one TRUNCATE of every table (each distributed one's partitions on every shard) took
    about 10 s there, and the suite has a thousand such tests. Whether a table holds a row is
    asked of all of them in one statement. Where sequences are reset, every table, as Django
    does."""
    if not settings.QVP_CITUS_WORKERS:
        yield
        return
    from django.db.backends.postgresql.operations import DatabaseOperations

    plain = DatabaseOperations.sql_flush

    def sql_flush(self, style, tables, *, reset_sequences=False, allow_cascade=False):
        if not reset_sequences:
            tables = _with_rows(self.connection, tables)
        return plain(
            self, style, tables, reset_sequences=reset_sequences, allow_cascade=allow_cascade
        )

    DatabaseOperations.sql_flush = sql_flush
    yield
    DatabaseOperations.sql_flush = plain


# The tables that refer, by foreign key, to any of the tables given, and to those, and so on:
# TRUNCATE refuses a table another refers to unless that one goes with it, rows or not.
_REFERRING = """
WITH RECURSIVE held(rel) AS (
    SELECT unnest(%s::regclass[])
    UNION
    SELECT c.conrelid FROM pg_constraint c JOIN held h ON c.confrelid = h.rel
    WHERE c.contype = 'f'
)
SELECT DISTINCT c.relname::text FROM held h JOIN pg_class c ON c.oid = h.rel
"""


# Whether a probe sees every row a TRUNCATE would remove: the session may read past row-level
# security, and no other session of the database is inside a transaction (a write still in
# flight commits after a probe, where TRUNCATE would wait for it).
_PROBE_SEES_ALL = """
SELECT (SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user)
   AND NOT EXISTS (SELECT 1 FROM pg_stat_activity
                   WHERE datname = current_database() AND pid <> pg_backend_pid()
                     AND backend_type = 'client backend' AND xact_start IS NOT NULL
                     AND application_name NOT LIKE 'citus%%')
"""


def _with_rows(connection, tables: list[str]) -> list[str]:
    """Those of ``tables`` that hold a row, asked in one statement, with those of ``tables``
    that refer to them; all of them where a probe might not see every row. With none, the
    flush runs nothing, and Django sends no ``post_migrate``: the content types and the
    permissions always hold rows, so it does not happen."""
    if not tables:
        return []
    from psycopg import sql

    with connection.cursor() as cursor:
        cursor.execute(_PROBE_SEES_ALL)
        if not cursor.fetchone()[0]:
            return tables

    probes = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {} WHERE EXISTS (SELECT 1 FROM {} LIMIT 1)").format(
            sql.Literal(table), sql.Identifier(table)
        )
        for table in tables
    )
    with connection.cursor() as cursor:
        cursor.execute(probes.as_string(cursor.connection))
        held = [connection.ops.quote_name(row[0]) for row in cursor.fetchall()]
        if not held:
            return []
        cursor.execute(_REFERRING, [held])
        referring = {row[0] for row in cursor.fetchall()}
    return [table for table in tables if table in referring]


@pytest.fixture(autouse=True)
def _plain_static_files_and_a_fresh_cache(settings):
    """Pages render without collectstatic having run: the manifest storage is production's.
    Each test counts its API requests in a cache of its own (the throttles' counts)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": secrets.token_hex(8),
        }
    }


@pytest.fixture(autouse=True)
def _bulk_reads_closed():
    """The bulk formats' reader keeps idle connections of its own: closed after each test,
    before its tables are emptied or its database dropped."""
    yield
    from qvp_site.api.bulk import reader  # here: importing it needs the settings

    reader.close_all()


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Users made by tests hash their passwords with a fast hasher (not for production)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _engine_markers(request):
    """``@pytest.mark.timescaledb`` runs only where the database has TimescaleDB,
    ``@pytest.mark.citus`` only on a Citus cluster, ``@pytest.mark.embedded`` only on the
    embedded server."""
    if request.node.get_closest_marker("embedded") and not settings.EMBEDDED_DATABASE:
        pytest.skip("needs the embedded server; DATABASE_URL points elsewhere")
    if request.node.get_closest_marker("timescaledb"):
        request.getfixturevalue("db")
        if not engine.is_timescaledb():
            pytest.skip("needs TimescaleDB; this database is plain PostgreSQL")
    if request.node.get_closest_marker("citus"):
        request.getfixturevalue("db")
        if not engine.is_citus():
            pytest.skip("needs a Citus cluster; this database is on one server")


@pytest.fixture
def timescaledb(db) -> bool:
    """Whether the test database uses the TimescaleDB engine."""
    return engine.is_timescaledb()


@pytest.fixture(scope="session")
def app_role_password(django_db_setup, django_db_blocker) -> str:
    """The roles made by ``create_db_roles`` on the test database, and trading_app's password.
    On the embedded server it is the generated one (settings' default), which every test run
    and the served site share: roles are the server's, so a run that set another would lock the
    others out. With DATABASE_URL and no QVP_APP_DB_PASSWORD, a fresh one."""
    return _roles_made_with("QVP_APP_DB_PASSWORD", django_db_blocker)


@pytest.fixture(scope="session")
def research_role_password(app_role_password, django_db_blocker) -> str:
    """qvp_research's password, set by ``create_db_roles`` on the test database's server. On
    the embedded server the generated one (settings' default), shared by every run and the
    site, as trading_app's is; with DATABASE_URL and no QVP_RESEARCH_DB_PASSWORD, a fresh one."""
    return _roles_made_with("QVP_RESEARCH_DB_PASSWORD", django_db_blocker)


def _roles_made_with(setting: str, django_db_blocker) -> str:
    """``create_db_roles`` run with the password ``setting`` names (the configured one, or a
    fresh one where none is), which is returned; the setting itself is left as it was."""
    saved = getattr(settings, setting)
    password = saved or secrets.token_urlsafe(16)
    with django_db_blocker.unblock():
        setattr(settings, setting, password)
        try:
            call_command("create_db_roles", stdout=StringIO())
        finally:
            setattr(settings, setting, saved)
    return password


def _conninfo(user: str, password: str) -> dict:
    params = connection.settings_dict
    return {
        "dbname": params["NAME"],
        "host": params.get("HOST") or None,
        "port": params.get("PORT") or None,
        "user": user,
        "password": password,
        "autocommit": True,
    }


@pytest.fixture
def connect_as_app(transactional_db, app_role_password):
    """Open connections as trading_app to the test database (data must be committed)."""
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(**_conninfo(roles.APP_ROLE, app_role_password))
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


# Tests that switch role: committed fixtures on a Citus cluster (tests/db_roles.py says why);
# so too tests marked ``committed_on_citus``, whose reads reach the workers over connections
# of their own (the workers' statistics, say).
SWITCHES_ROLE = frozenset({"as_app_role", "db_role"})
COMMITTED_ON_CITUS = ("switches_role", "committed_on_citus")


@pytest.hookimpl(tryfirst=True)  # before pytest-django orders the transactional tests last
def pytest_collection_modifyitems(config, items):
    if not settings.QVP_CITUS_WORKERS:
        return
    for item in items:
        named = not SWITCHES_ROLE.isdisjoint(getattr(item, "fixturenames", ()))
        if not (named or any(item.get_closest_marker(m) for m in COMMITTED_ON_CITUS)):
            continue
        marker = item.get_closest_marker("django_db")
        args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
        item.add_marker(pytest.mark.django_db(*args, **{**kwargs, "transaction": True}), False)


@pytest.fixture
def db_role(db, app_role_password) -> Callable[[str], contextlib.AbstractContextManager]:
    """``with db_role(role):`` runs a block as that database role."""
    return acting


@pytest.fixture
def as_app_role(db, app_role_password):
    """The rest of the test runs as trading_app, as the served site does: row-level security
    and the role's limits apply to the ORM and the API from here on."""
    with acting(roles.APP_ROLE):
        yield


@pytest.fixture
def no_temporary_files(monkeypatch):
    """Every way the standard library makes a temporary file or folder fails the test: for
    loads from memory, which must never go through a file."""

    def refused(*args, **kwargs):
        raise AssertionError("a temporary file was made")

    for name in (
        "mkstemp",
        "mkdtemp",
        "NamedTemporaryFile",
        "TemporaryFile",
        "SpooledTemporaryFile",
        "TemporaryDirectory",
    ):
        monkeypatch.setattr(tempfile, name, refused)
