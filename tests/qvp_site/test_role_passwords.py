"""A role's password never lands where another role can read it: pg_stat_statements keeps
utility statements word for word and the monitoring functions show them to trading_readonly,
so ``ALTER ROLE ... PASSWORD 'secret'`` sent by create_db_roles once handed trading_app's
password to whoever holds trading_readonly's."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from psycopg import sql

from qvp_site.db import roles

SECRET = "correct-horse-battery-staple-4711"


def _statements_as_readonly() -> str:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT to_regprocedure('qvp_slow_statements(integer)') IS NOT NULL")
        if not cursor.fetchone()[0]:
            pytest.skip("no qvp_slow_statements on this server (pg_stat_statements not loaded)")
        cursor.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(roles.READONLY_ROLE)))
        cursor.execute(
            "SELECT coalesce(string_agg(query, ' '), '') FROM qvp_slow_statements(100000)"
        )
        (shown,) = cursor.fetchone()
        cursor.execute("RESET ROLE")  # SET LOCAL outlives a released savepoint
    return shown


@pytest.fixture
def secret_password(app_role_password, settings):
    """create_db_roles run with a known password for trading_readonly (restored after)."""
    original = settings.QVP_READONLY_DB_PASSWORD  # the generated one on the embedded server
    settings.QVP_READONLY_DB_PASSWORD = SECRET
    yield SECRET
    settings.QVP_READONLY_DB_PASSWORD = original
    call_command("create_db_roles", stdout=StringIO())


def test_the_roles_passwords_are_sent_as_verifiers(db, secret_password, app_role_password):
    with connection.cursor() as cursor:  # what create_db_roles does, before it cleans up
        roles.ensure_role(cursor, roles.RoleSpec(roles.READONLY_ROLE, SECRET))
        roles.ensure_role(cursor, roles.RoleSpec(roles.APP_ROLE, app_role_password))
    shown = _statements_as_readonly()
    assert SECRET not in shown
    assert app_role_password not in shown


def test_passwords_an_earlier_version_sent_in_clear_are_forgotten(db, secret_password):
    with connection.cursor() as cursor:  # as an earlier create_db_roles did
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(roles.READONLY_ROLE), sql.Literal(SECRET)
            )
        )
    if SECRET not in _statements_as_readonly():
        pytest.skip("this server's pg_stat_statements does not keep utility statements")
    out = StringIO()
    call_command("create_db_roles", stdout=out)
    assert SECRET not in _statements_as_readonly()
    assert "with a password in clear forgotten" in out.getvalue()
