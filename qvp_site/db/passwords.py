"""Setting a role's password without the password crossing the wire or landing in a log.

``ALTER ROLE ... PASSWORD 'secret'`` is a statement like any other: pg_stat_statements keeps
utility statements word for word (and the monitoring functions show them to the read-only
role), and ``log_statement`` would write it to the server's log. The client computes the
SCRAM-SHA-256 verifier instead (libpq's PQencryptPasswordConn) and sends that: it proves
nothing to whoever reads it, since logging in takes the password itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg
    from django.db.backends.utils import CursorWrapper


def set_password(cursor: CursorWrapper | psycopg.Cursor[Any], role: str, password: str) -> None:
    """``ALTER ROLE role PASSWORD <verifier>`` on ``cursor``'s connection."""
    raw = getattr(cursor, "cursor", cursor)  # Django's wrapper holds psycopg's cursor
    verifier = raw.connection.pgconn.encrypt_password(
        password.encode(), role.encode(), b"scram-sha-256"
    )
    cursor.execute(
        sql.SQL("ALTER ROLE {} PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(verifier.decode())
        )
    )


# Statements that set a password in clear, as kept by pg_stat_statements before this module.
_CLEAR_PASSWORDS = r"(?i)\mPASSWORD\s+'(?!SCRAM-SHA-256\$|md5)"


def forget_clear_passwords(cursor: CursorWrapper | psycopg.Cursor[Any]) -> int:
    """Drop from pg_stat_statements every statement that set a password in clear (what earlier
    versions sent); the number dropped. Needs the extension and the right to reset it (a
    superuser, or a grant): without them, nothing is done and 0 comes back."""
    cursor.execute("SELECT to_regclass('pg_stat_statements') IS NOT NULL")
    if not _one(cursor):
        return 0
    cursor.execute("SAVEPOINT qvp_forget_passwords")
    try:
        cursor.execute(
            "SELECT count(pg_stat_statements_reset(userid, dbid, queryid))"
            " FROM pg_stat_statements WHERE query ~ %s",
            [_CLEAR_PASSWORDS],
        )
        forgotten = int(_one(cursor))
    except Exception:  # not ours to reset: leave it to the server's administrator
        cursor.execute("ROLLBACK TO SAVEPOINT qvp_forget_passwords")
        return 0
    cursor.execute("RELEASE SAVEPOINT qvp_forget_passwords")
    return forgotten


def _one(cursor: CursorWrapper | psycopg.Cursor[Any]) -> Any:
    row = cursor.fetchone()
    assert row is not None  # an aggregate or a scalar SELECT: always one row
    return row[0]
