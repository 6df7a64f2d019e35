"""``detect_market_data_anomalies('AAPL', 24)``, the design documents' call, in raw SQL as each
role that reads market data: the same rows as ``detect_anomalies`` stores (the command calls the
same function), a clear refusal of an unknown symbol and of a role without market data, and the
part of a window whose trading sessions are not loaded named as not measured."""

from __future__ import annotations

import secrets
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from qvp_site.db import roles
from tests.risk.test_anomalies import CLOSE, MISSING, OPEN, SPIKE, session  # noqa: F401

# as_role's fixtures are the owner's: committed first on Citus (tests/db_roles.py). There the
# research role reaches the workers as itself, so it must be able to log in (its password set).
pytestmark = pytest.mark.switches_role

READERS = (roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE)
COLUMNS = "ts, kind, value, score, until"


def as_role(role: str, statement: str, params: list | None = None) -> list[tuple]:
    """``statement`` as ``role`` in a savepoint (a failure rolls it back, and the role too)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(statement, params or [])
        rows = cursor.fetchall()
        cursor.execute("RESET ROLE")
    return rows


def stored() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM risk_marketanomaly ORDER BY ts, kind")
        return cursor.fetchall()


@pytest.mark.parametrize("role", READERS)
def test_each_reader_gets_the_rows_the_command_stores(session, research_role_password, role):  # noqa: F811
    call_command(
        "detect_anomalies", "--symbol", "AAPL", "--hours", "72", "--as-of", CLOSE.isoformat(),
        stdout=StringIO(),
    )  # fmt: skip
    found = as_role(
        role,
        f"SELECT {COLUMNS} FROM detect_market_data_anomalies('AAPL', 72, %s)"
        " WHERE kind <> 'unmeasured' ORDER BY ts, kind",
        [CLOSE],
    )
    assert found == stored()
    kinds = [(kind, ts) for ts, kind, *_ in found]
    assert ("return", SPIKE) in kinds
    assert ("gap", MISSING[0][0]) in kinds
    assert len(found) == 5  # two returns, a volume, two gaps


def test_the_design_documents_call_reads_now_and_a_day(session, app_role_password):  # noqa: F811
    # Nothing in the last 24 hours, and AAPL's sessions not loaded for them: no outlier, no
    # gap, and the window named as not measured, with what loads it.
    rows = as_role(
        roles.READONLY_ROLE, "SELECT kind, detail FROM detect_market_data_anomalies('AAPL', 24)"
    )
    assert [kind for kind, _ in rows] == ["unmeasured"]
    assert "manage.py detect_anomalies" in rows[0][1]


def test_a_window_without_sessions_is_named_not_measured(session, research_role_password):  # noqa: F811
    rows = as_role(
        roles.RESEARCH_ROLE,
        "SELECT ts, kind, until, detail FROM detect_market_data_anomalies('AAPL', 72, %s)",
        [CLOSE],
    )
    assert {kind for _, kind, _, _ in rows} == {"return", "volume", "unmeasured"}
    (unmeasured,) = [row for row in rows if row[1] == "unmeasured"]
    assert unmeasured[0] == CLOSE - timedelta(hours=72)
    assert unmeasured[2] == CLOSE
    assert "no trading sessions loaded" in unmeasured[3]


def test_an_unknown_symbol_is_refused_naming_it(session, app_role_password):  # noqa: F811
    with pytest.raises(DatabaseError, match=r"unknown symbol NOPE on \d{4}-\d\d-\d\d"):
        as_role(roles.APP_ROLE, "SELECT * FROM detect_market_data_anomalies('NOPE', 24)")
    with pytest.raises(DatabaseError, match="hours must be positive, not 0"):
        as_role(roles.APP_ROLE, "SELECT * FROM detect_market_data_anomalies('AAPL', 0)")


def test_a_role_without_market_data_is_refused(session, app_role_password):  # noqa: F811
    stranger = f"qvp_test_stranger_{secrets.token_hex(4)}"
    with connection.cursor() as cursor:
        # Dropped afterwards: on Citus the test's statements are committed (switches_role).
        cursor.execute(f"CREATE ROLE {stranger} NOLOGIN")
    try:
        with pytest.raises(DatabaseError, match=f"role {stranger} may not read market data"):
            as_role(stranger, "SELECT * FROM detect_market_data_anomalies('AAPL', 24)")
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP ROLE {stranger}")


def test_the_function_writes_nothing(session, app_role_password):  # noqa: F811
    # As the read-only role, which may write nothing: it runs, and stores nothing.
    as_role(
        roles.READONLY_ROLE,
        "SELECT * FROM detect_market_data_anomalies('AAPL', 8, %s)",
        [OPEN + timedelta(hours=7)],
    )
    assert stored() == []


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO risk_tradingcalendar (name, sessions_from, sessions_to, loaded_at)"
        " VALUES ('XNYS', now() - interval '1 day', now(), now()) RETURNING id",
        "DELETE FROM risk_tradingperiod RETURNING id",
        "UPDATE risk_tradingperiod SET closes_at = closes_at - interval '1 hour' RETURNING id",
    ],
)
def test_the_application_role_cannot_rewrite_the_sessions(session, app_role_password, statement):  # noqa: F811
    """A login that could write the market shut would hide a gap from the anomaly function:
    the sessions are the owner's (detect_anomalies) to load."""
    call_command("detect_anomalies", "--symbol", "AAPL", "--as-of", CLOSE.isoformat(),
                 "--hours", "8", stdout=StringIO())  # fmt: skip
    with pytest.raises(DatabaseError, match="permission denied"):
        as_role(roles.APP_ROLE, statement)
