"""What the migrations leave installed is the latest version of each SQL family, and the audit
triggers sit exactly on the tables whose models are declared ``@audited``.

The latest versions are installed into a scratch schema (first on the search path, in a
transaction rolled back afterwards) and each function and view is compared with its namesake in
public through the catalog: ``pg_get_functiondef`` and ``pg_get_viewdef`` reformat what a file
says, so the files' text is never compared with the database.
"""

from __future__ import annotations

import pytest
import sqlparse
from django.apps import apps
from django.db import connection, transaction

from qvp_site.db import engine, sqlfiles
from qvp_site.db.audit import AUDITED_MODELS

SCRATCH = "qvp_latest_sql"
UNINLINED = " SET search_path TO 'public', 'pg_temp'\n"

# Each function's definition with its schema taken out, keyed on name and argument types.
FUNCTIONS_IN = """
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       replace(pg_get_functiondef(p.oid), n.nspname || '.', '')
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = %s AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""
VIEWS_IN = """
SELECT c.relname, replace(pg_get_viewdef(c.oid), n.nspname || '.', '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relkind = 'v'
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
"""


def _definitions(cursor, query: str, schema: str) -> dict[str, str]:
    cursor.execute(query, [schema])
    found = dict(cursor.fetchall())
    if engine.is_citus(connection):  # the setting no file says (qvp_site/db/citus_functions.py)
        found = {name: text.replace(UNINLINED, "") for name, text in found.items()}
    return found


@pytest.fixture
def latest(db):
    """The functions and views of every family's latest version, as installed alone."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA {SCRATCH}")
        cursor.execute(f"SET LOCAL search_path = {SCRATCH}, public")
        citus = engine.is_citus(connection)
        if citus:
            # The families' triggers on the tables Citus distributes (set aside there, and
            # rolled back here with the rest): Citus refuses them unless told.
            cursor.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        # The Citus branches last, over the families whose functions they replace there.
        ordered = sorted(sqlfiles.families(), key=lambda f: sqlfiles.is_citus_branch(f[1]))
        for app_label, family in ordered:
            if citus or not sqlfiles.is_citus_branch(family):
                # A statement at a time, as a migration's RunSQL sends them: Citus passes DDL on
                # to the workers only as single statements.
                for statement in sqlparse.split(sqlfiles.latest_sql(app_label, family)):
                    cursor.execute(statement)
        cursor.execute("SET LOCAL search_path = public")
        functions = _definitions(cursor, FUNCTIONS_IN, SCRATCH)
        views = _definitions(cursor, VIEWS_IN, SCRATCH)
        transaction.set_rollback(True)
    return functions, views


def test_every_function_installed_is_its_latest_version(latest):
    functions, _views = latest
    assert functions, "the latest SQL versions define no function"
    with connection.cursor() as cursor:
        installed = _definitions(cursor, FUNCTIONS_IN, "public")
    missing = sorted(set(functions) - set(installed))
    differing = sorted(
        name for name in functions if name in installed and installed[name] != functions[name]
    )
    assert not missing, f"functions of the latest SQL versions not installed: {missing}"
    assert not differing, f"installed functions unlike their latest version: {differing}"


def test_every_view_installed_is_its_latest_version(latest):
    _functions, views = latest
    with connection.cursor() as cursor:
        installed = _definitions(cursor, VIEWS_IN, "public")
    differing = sorted(name for name in views if installed.get(name) != views[name])
    assert not differing, f"views missing or unlike their latest version: {differing}"


def _audited_tables(cursor) -> set[str]:
    cursor.execute(
        "SELECT DISTINCT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
        " WHERE t.tgname IN ('qvp_audit', 'qvp_audit_insert') AND NOT t.tgisinternal"
    )
    return {row[0] for row in cursor.fetchall()}


def test_the_audited_tables_are_those_declared_beside_their_models(db):
    declared = {apps.get_model(label)._meta.db_table for label in AUDITED_MODELS}
    assert declared >= {"trading_order", "trading_execution", "risk_risklimit"}
    with connection.cursor() as cursor:
        assert _audited_tables(cursor) == declared
        cursor.execute(
            "SELECT c.relname, count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname IN ('qvp_audit', 'qvp_audit_insert') GROUP BY c.relname"
        )
        assert all(count == 2 for _table, count in cursor.fetchall()), (
            "each audited table has its row trigger and its statement trigger for inserts"
        )
