"""What each database role may read and write, compared with the reviewed lists in
``role_access/<engine>/<role>.txt``; and that the lists hold no secret and grow only when
``create_db_roles`` runs with a table on a role's allow-list (qvp_site/db/roles.py).

A difference fails with the diff. When it is meant (a new table, a new column, a narrower
privilege), record the lists with ``QVP_RECORD_ROLE_ACCESS=1`` on each engine and have the
change reviewed as a security change: it is what the role's password opens.
"""

from __future__ import annotations

import difflib
import os
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection, transaction

from qvp_site.db import engine, roles

LISTS = Path(__file__).resolve().parent / "role_access"
RECORD = os.environ.get("QVP_RECORD_ROLE_ACCESS") == "1"
ROLES = (roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE)
HEADER = """\
# {role} on {engine}: what the role may do, one `relation.column PRIVILEGE` a line
# (`relation.* PRIVILEGE` for what is granted per table), in every schema the role may use;
# partitions, chunks and extensions' own relations are left out (closed to every role:
# tests/qvp_site/test_partition_access.py). Granted by `manage.py create_db_roles`
# (qvp_site/db/roles.py), compared by tests/qvp_site/test_role_access.py.
# A change to this file is a security review: it is what the role's password opens.
# Regenerate on each engine after a reviewed change:
#   QVP_RECORD_ROLE_ACCESS=1 CI=true .venv/bin/pytest -q tests/qvp_site/test_role_access.py
#   (TimescaleDB: the same with DATABASE_URL pointing to it)
"""


def _recorded(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line and not line.startswith("#")]


@pytest.mark.parametrize("role", ROLES)
def test_each_role_may_do_what_its_reviewed_list_says(db, app_role_password, role):
    with connection.cursor() as cursor:
        now = roles.role_access(cursor, role)
    name = engine.detect().engine
    path = LISTS / name / f"{role}.txt"
    if RECORD:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(HEADER.format(role=role, engine=name) + "\n".join(now) + "\n")
    assert path.exists(), f"no list {path.relative_to(LISTS.parent)}: record it (see header)"
    recorded = _recorded(path)
    diff = "\n".join(difflib.unified_diff(recorded, now, "reviewed", "now", lineterm=""))
    assert now == recorded, f"{role} may do other than reviewed (a security review):\n{diff}"


def _relations(lines: list[str]) -> set[str]:
    return {line.split(".", 1)[0] for line in lines}


def test_the_readonly_role_reads_no_secret(db, app_role_password):
    with connection.cursor() as cursor:
        lines = roles.role_access(cursor, roles.READONLY_ROLE)
    assert not [line for line in lines if not line.endswith(" SELECT")], "readonly writes"
    for table, secrets in roles.SECRET_COLUMNS.items():
        assert f"{table}.id SELECT" in lines
        assert not {f"{table}.{column} SELECT" for column in secrets} & set(lines)
    assert not {"django_session", "django_admin_log"} & _relations(lines)


def as_role(role: str, statement: str) -> list[tuple]:
    """``statement`` run as ``role`` in a savepoint of the test's transaction (a failure
    rolls the savepoint back, and the role with it)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        cursor.execute("RESET ROLE")
    return rows


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT session_key FROM django_session",
        "SELECT session_data FROM django_session",
        "SELECT password FROM auth_user",
        "SELECT * FROM auth_user",
        "SELECT digest FROM qvp_site_apitoken",
        "SELECT change_message FROM django_admin_log",
    ],
)
def test_raw_sql_as_the_readonly_role_reads_no_secret(db, app_role_password, statement):
    with pytest.raises(ProgrammingError, match="permission denied"):
        as_role(roles.READONLY_ROLE, statement)


def test_the_readonly_role_reads_who_is_who_without_passwords(db, app_role_password, desks):
    rows = as_role(roles.READONLY_ROLE, "SELECT username FROM auth_user ORDER BY username")
    assert rows == [("alice",), ("audrey",), ("bob",)]
    assert as_role(roles.READONLY_ROLE, "SELECT prefix, name FROM qvp_site_apitoken") == []


def _default_grants() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT d.defaclrole::regrole::text, d.defaclobjtype, a.grantee::regrole::text"
            " FROM pg_default_acl d, aclexplode(d.defaclacl) a"
            " WHERE a.grantee IN (SELECT oid FROM pg_roles WHERE rolname = ANY(%s))",
            [list(ROLES)],
        )
        return cursor.fetchall()


def test_no_default_privileges_hand_the_roles_new_tables(db, app_role_password):
    with connection.cursor() as cursor:
        for role in ROLES:  # as earlier versions of create_db_roles left them
            cursor.execute(
                f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO {role}"
            )
            cursor.execute(f"ALTER DEFAULT PRIVILEGES GRANT USAGE ON SEQUENCES TO {role}")
    assert _default_grants()
    call_command("create_db_roles", stdout=StringIO())
    assert _default_grants() == []


def test_a_table_on_no_allow_list_gets_nothing(db, app_role_password):
    """A table no app declares (made by hand, or an app the lists do not know) is read by
    neither role, even after create_db_roles runs again."""
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE qvp_unlisted (id int, secret text)")
    call_command("create_db_roles", stdout=StringIO())
    with connection.cursor() as cursor:
        for role in ROLES:
            assert not {"qvp_unlisted"} & _relations(roles.role_access(cursor, role))
    for role in ROLES:
        with pytest.raises(ProgrammingError, match="permission denied"):
            as_role(role, "SELECT secret FROM qvp_unlisted")


def test_a_table_gets_its_grants_when_create_db_roles_runs(db, app_role_password):
    """A table of an app, made after create_db_roles ran (a later migration), has no grant
    until the command runs again, as it does after every migrate."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE signals_agent RENAME TO qvp_agent_saved")
        cursor.execute("CREATE TABLE signals_agent (LIKE qvp_agent_saved INCLUDING ALL)")
    with pytest.raises(ProgrammingError, match="permission denied"):
        as_role(roles.READONLY_ROLE, "SELECT name FROM signals_agent")
    call_command("create_db_roles", stdout=StringIO())
    assert as_role(roles.READONLY_ROLE, "SELECT name FROM signals_agent") == []
    assert as_role(roles.APP_ROLE, "SELECT name FROM signals_agent") == []


def test_no_owners_function_is_executable_by_public(db, app_role_password):
    """A SECURITY DEFINER function runs with the owner's rights: each is executed by the roles
    that need it, never by PUBLIC (any role on the server). Trigger functions too: nobody calls
    one, but any role may attach one it may execute to a table of its own, temporary ones
    included, with arguments of its choosing (qvp_site 0014)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.oid::regprocedure::text FROM pg_proc p"
            " WHERE p.pronamespace = 'public'::regnamespace AND p.prosecdef"
            " AND has_function_privilege('public', p.oid, 'EXECUTE')"
        )
        assert cursor.fetchall() == []


@pytest.mark.parametrize(
    "function",
    [
        "qvp_check_reference('instrument_id', 'auth_user', 'id', 'x')",
        "qvp_protect_referenced('auth_user', 'id', 'id', 'x')",
        "marketdata_instrument_listed()",
        "trading_action_applied_stays()",
    ],
)
@pytest.mark.parametrize("role", ROLES)
def test_no_role_attaches_an_owners_trigger_function_to_a_table_of_its_own(
    db, app_role_password, role, function
):
    """The attack qvp_site 0014 closes: a temporary table of the role's, a trigger on it
    running the owner's function with the role's arguments. A role that may make no
    temporary table is stopped a step earlier."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_database_privilege(%s, current_database(), 'TEMP')", [role])
        may_make_tables = cursor.fetchone()[0]
    # Refused the temporary table: as the database's TEMP privilege says, or, where this
    # session already made one of its own (the owner's staging), by the owner's temporary schema.
    no_table = r"(to create temporary tables|for schema pg_temp_\d+)"
    refusal = "for function" if may_make_tables else no_table
    with pytest.raises(ProgrammingError, match=f"permission denied {refusal}"):
        as_role(
            role,
            "CREATE TEMP TABLE qvp_mine (instrument_id bigint, id bigint);"
            " CREATE TRIGGER qvp_mine_trigger AFTER INSERT ON qvp_mine"
            f" FOR EACH ROW EXECUTE FUNCTION {function}",
        )
