"""The researchers' database role ``qvp_research``, from the side that would break it: raw SQL
as the role (psycopg and ADBC, over a connection of its own), reading market data, signals and
vectors, and refused the books of accounts, the audit trail, who is who and every write."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from io import StringIO
from urllib.parse import quote

import adbc_driver_postgresql.dbapi
import psycopg
import pyarrow as pa
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import InternalError, ProgrammingError, connection, transaction
from django.test.utils import CaptureQueriesContext
from psycopg import errors

from marketdata import adjusting
from marketdata.models import Instrument, MinuteBar
from qvp_site.db import partitions, roles
from qvp_site.management.commands.create_db_roles import Command as CreateDbRoles
from signals.models import Agent, Signal
from tests.vectors.sets import make_set
from vectors.models import FEATURE_DIMENSIONS, FeatureEmbedding

T0 = datetime(2024, 5, 13, 14, 30, tzinfo=UTC)


def _conninfo(password: str) -> dict:
    params = connection.settings_dict
    return {
        "dbname": params["NAME"],
        "host": params.get("HOST") or None,
        "port": params.get("PORT") or None,
        "user": roles.RESEARCH_ROLE,
        "password": password,
    }


def research_uri(password: str) -> str:
    """A libpq URI for qvp_research (host and port as parameters: a socket's folder or a
    host name alike), as a researcher gives ADBC or Polars."""
    info = _conninfo(password)
    query = "&".join(
        f"{key}={quote(str(info[key]), safe='')}" for key in ("host", "port") if info[key]
    )
    return f"postgresql://{info['user']}:{quote(password, safe='')}@/{info['dbname']}?{query}"


@pytest.fixture
def connect_as_research(transactional_db, research_role_password):
    """Open connections as qvp_research to the test database (data must be committed)."""
    opened: list[psycopg.Connection] = []

    def connect() -> psycopg.Connection:
        conn = psycopg.connect(**_conninfo(research_role_password), autocommit=True)
        opened.append(conn)
        return conn

    yield connect
    for conn in opened:
        conn.close()


def unit_vector(index: int) -> list[float]:
    vector = [0.0] * FEATURE_DIMENSIONS
    vector[index] = 1.0
    return vector


@pytest.fixture
def research_data(transactional_db) -> dict:
    """A minute bar, a signal and two feature embeddings, committed."""
    for table in ("marketdata_minutebar", "signals_signal"):
        partitions.prepare_load(table, T0 - timedelta(days=1), T0 + timedelta(days=1))
    instrument = Instrument.objects.create(symbol="RSCH", asset_class="equity", exchange="XNAS")
    MinuteBar.objects.create(
        instrument=instrument, ts=T0, open=100, high=102, low=99.5, close=101.5, volume=1200
    )
    agent = Agent.objects.create(name="momentum_agent", kind="momentum")
    Signal.objects.create(
        agent=agent, instrument=instrument, ts=T0, direction=1, strength=0.5, confidence=0.9,
        horizon=timedelta(days=1), explanation={"reason": "trend"},
    )  # fmt: skip
    feature_set = make_set("research", FEATURE_DIMENSIONS)
    for minutes, index in ((0, 0), (15, 1)):
        FeatureEmbedding.objects.create(
            instrument=instrument, feature_set=feature_set, ts=T0 + timedelta(minutes=minutes),
            embedding=unit_vector(index), raw=[0.0] * FEATURE_DIMENSIONS,
        )  # fmt: skip
    return {"instrument": instrument, "feature_set": feature_set}


# --- What it reads ----------------------------------------------------------------------------


def test_research_reads_bars_signals_and_embeddings(connect_as_research, research_data):
    conn = connect_as_research()
    instrument = research_data["instrument"].id
    bars = conn.execute(
        "SELECT ts, close FROM marketdata_minutebar WHERE instrument_id = %s", [instrument]
    ).fetchall()
    assert bars == [(T0, 101.5)]
    signals = conn.execute(
        "SELECT a.name, s.direction FROM signals_signal s JOIN signals_agent a ON a.id = s.agent_id"
        " WHERE s.instrument_id = %s",
        [instrument],
    ).fetchall()
    assert signals == [("momentum_agent", 1)]
    (dimensions,) = conn.execute(
        "SELECT vector_dims(embedding) FROM vectors_featureembedding WHERE instrument_id = %s"
        " ORDER BY ts LIMIT 1",
        [instrument],
    ).fetchone()
    assert dimensions == FEATURE_DIMENSIONS


def test_research_searches_vectors(connect_as_research, research_data):
    """A nearest-neighbour search, as a researcher writes it: the query vector as text."""
    conn = connect_as_research()
    query = str(unit_vector(1))
    nearest = conn.execute(
        "SELECT e.ts, e.embedding <-> %s::vector AS distance FROM vectors_featureembedding e"
        " JOIN vectors_featureset f ON f.id = e.feature_set_id WHERE f.name = 'research'"
        " ORDER BY e.embedding <-> %s::vector LIMIT 2",
        [query, query],
    ).fetchall()
    assert [ts for ts, _ in nearest] == [T0 + timedelta(minutes=15), T0]
    assert nearest[0][1] == 0


def test_research_calls_the_market_data_functions(connect_as_research, research_data):
    """The adjusted reads and the knowledge time run with the caller's rights on research's
    tables (or, marketdata_settled_at, the owner's, granted to it)."""
    conn = connect_as_research()
    instrument = research_data["instrument"].id
    (settled,) = conn.execute("SELECT marketdata_settled_at()").fetchone()
    adjusted = (
        "SELECT close FROM marketdata_minutebar_adjusted('total_return', %s)"
        " WHERE instrument_id = %s"
    )
    if adjusting.factors_apart(connection):  # Citus: refused, for research as for any role
        with pytest.raises(errors.FeatureNotSupported, match="distributed planning"):
            conn.execute(adjusted, [settled, instrument])
    else:
        assert conn.execute(adjusted, [settled, instrument]).fetchall() == [(101.5,)]
    assert conn.execute(
        "SELECT count(*) FROM marketdata_action_factors('split', NULL)"
    ).fetchone() == (0,)
    assert conn.execute("SELECT marketdata_ex_moment(%s, %s)", [instrument, T0.date()]).fetchone()
    assert conn.execute("SELECT count(*) FROM marketdata_minutebar_1h").fetchone() is not None


def test_research_sees_every_row_of_its_tables(db, research_role_password):
    """No table research reads has row-level security: the role sees every row, as the owner
    does (the account-scoped tables are trading's and risk's, and closed to it)."""
    with connection.cursor() as cursor:
        readable = sorted(roles.research_access(cursor, roles._relations(cursor)))
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace"
            " AND relrowsecurity AND relname = ANY (%s)",
            [readable],
        )
        assert cursor.fetchall() == []
    assert {"marketdata_minutebar", "signals_signal", "vectors_featureembedding"} <= set(readable)


def test_research_has_its_limits(connect_as_research):
    """Set on the role, so every client's session starts with them (5 and 10 minutes and 10
    connections unless the environment says otherwise)."""
    conn = connect_as_research()
    found = dict(
        conn.execute(
            "SELECT name, setting::bigint FROM pg_settings"
            " WHERE name IN ('statement_timeout', 'idle_in_transaction_session_timeout')"
        ).fetchall()
    )
    assert found == {
        "statement_timeout": round(settings.QVP_RESEARCH_DB_STATEMENT_TIMEOUT * 1000),
        "idle_in_transaction_session_timeout": round(settings.QVP_RESEARCH_DB_IDLE_TIMEOUT * 1000),
    }
    limit = conn.execute(
        "SELECT rolconnlimit FROM pg_roles WHERE rolname = current_user"
    ).fetchone()
    assert limit == (settings.QVP_RESEARCH_DB_CONNECTION_LIMIT,)


def test_adbc_reads_bars_as_arrow(research_data, research_role_password):
    uri = research_uri(research_role_password)
    with adbc_driver_postgresql.dbapi.connect(uri) as conn, conn.cursor() as cursor:
        cursor.execute(
            "SELECT ts, close, volume FROM marketdata_minutebar WHERE instrument_id = $1",
            parameters=(research_data["instrument"].id,),
        )
        table = cursor.fetch_arrow_table()
    assert table.num_rows == 1
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.column("close").to_pylist() == [101.5]


# --- What it may not do -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "table",
    [
        "trading_account",
        "trading_execution",
        "trading_order",
        "trading_position",
        "trading_cashentry",
        "trading_portfoliosnapshot",
        "trading_backtestrun",
        "risk_riskmetric",
        "qvp_site_auditentry",
        "qvp_audit_head",
        "qvp_site_apitoken",
        "auth_user",
        "django_session",
        "axes_accessattempt",
        "signals_systemlog",
    ],
)
def test_research_is_refused_the_books_the_audit_and_who_is_who(connect_as_research, table):
    conn = connect_as_research()
    (exists,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL", [table]).fetchone()
    if not exists:
        pytest.skip(f"{table} is not installed here")
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(f"SELECT * FROM {table} LIMIT 1")


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT backtest_id FROM vectors_strategypattern",  # a link into the books
        "SELECT actor FROM marketdata_minutebarrevision",  # who changed a bar
        "SELECT user_id FROM marketdata_dailybarrevision",
        "SELECT os_user FROM marketdata_ingest",
        "SELECT path FROM marketdata_ingest",
    ],
)
def test_research_is_refused_the_withheld_columns(connect_as_research, statement):
    conn = connect_as_research()
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)


def test_research_reads_the_rest_of_a_table_with_withheld_columns(connect_as_research):
    conn = connect_as_research()
    assert (
        conn.execute("SELECT id, strategy, position FROM vectors_strategypattern").fetchall() == []
    )
    assert conn.execute("SELECT id, status FROM marketdata_ingest").fetchall() == []


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close)"
        " VALUES (1, '2024-05-13T14:30Z', 1, 1, 1, 1)",
        "UPDATE marketdata_minutebar SET close = 0",
        "DELETE FROM marketdata_minutebar",
        "TRUNCATE marketdata_minutebar",
        "UPDATE signals_signal SET strength = 0",
        "DELETE FROM vectors_featureembedding",
        "SELECT marketdata_delete('marketdata_minutebar'::regclass, 1, '-infinity', 'infinity')",
        "CREATE TABLE research_scratch (id int)",
        "CREATE TABLE public.research_scratch (id int)",
        "CREATE SCHEMA research_scratch",
    ],
)
def test_research_writes_nothing(connect_as_research, research_data, statement):
    conn = connect_as_research()
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(statement)
    assert conn.execute("SELECT count(*) FROM marketdata_minutebar").fetchone() == (1,)


def test_research_has_no_privilege_on_a_partition(db, research_role_password):
    """Named directly, a partition would be read around its parent's grants."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid"
            " WHERE has_table_privilege(%s, c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE')",
            [roles.RESEARCH_ROLE],
        )
        assert cursor.fetchall() == []


# --- create_db_roles --------------------------------------------------------------------------


def as_research(statement: str) -> list[tuple]:
    """``statement`` as qvp_research in a savepoint of the test's transaction."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.RESEARCH_ROLE}")
        cursor.execute(statement)
        rows = cursor.fetchall() if cursor.description else []
        cursor.execute("RESET ROLE")
    return rows


def test_a_table_made_later_is_read_once_create_db_roles_runs(db, research_role_password):
    """A table of research's apps, made after create_db_roles ran (a later migration), has no
    grant until the command runs again, as it does after every migrate."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE signals_agent RENAME TO qvp_agent_saved")
        cursor.execute("CREATE TABLE signals_agent (LIKE qvp_agent_saved INCLUDING ALL)")
    with pytest.raises(ProgrammingError, match="permission denied"):
        as_research("SELECT name FROM signals_agent")
    call_command("create_db_roles", stdout=StringIO())
    assert as_research("SELECT name FROM signals_agent") == []


def test_create_db_roles_makes_the_research_role_idempotently(db, research_role_password):
    out = StringIO()
    call_command("create_db_roles", stdout=out)
    call_command("create_db_roles", stdout=out)
    assert out.getvalue().count("qvp_research: exists") == 2
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls, rolreplication"
            " FROM pg_roles WHERE rolname = %s",
            [roles.RESEARCH_ROLE],
        )
        assert cursor.fetchone() == (True, False, False, False, False, False)


def test_the_limits_are_altered_only_when_they_differ(db, research_role_password):
    """Two create_db_roles at once on one server (a deploy, a test run) would otherwise update
    the role's catalog rows both, and the second fail ("tuple concurrently updated")."""
    with CaptureQueriesContext(connection) as queries, connection.cursor() as cursor:
        roles.configure_research(
            cursor,
            statement_timeout=settings.QVP_RESEARCH_DB_STATEMENT_TIMEOUT,
            idle_timeout=settings.QVP_RESEARCH_DB_IDLE_TIMEOUT,
            connection_limit=settings.QVP_RESEARCH_DB_CONNECTION_LIMIT,
        )
    assert [q["sql"] for q in queries if "ALTER ROLE" in q["sql"]] == []


def test_create_db_roles_runs_again_after_a_concurrent_run(db, research_role_password, monkeypatch):
    """Another run on the server updated the roles' rows first: PostgreSQL fails this one,
    which runs again (its savepoint rolled back) and prints its lines once."""
    failures = iter([InternalError("tuple concurrently updated")])
    grant = roles.grant

    def grant_once_late(*args):
        for failure in failures:
            raise failure
        grant(*args)

    monkeypatch.setattr(roles, "grant", grant_once_late)
    out = StringIO()
    call_command("create_db_roles", stdout=out)
    assert out.getvalue().count("qvp_research: exists") == 1
    assert "grants applied" in out.getvalue()


def test_a_generated_password_is_shown_when_the_role_is_made_and_never_again(settings):
    research = roles.RoleSpec(roles.RESEARCH_ROLE, "generated-secret")
    settings.QVP_RESEARCH_DB_PASSWORD_GENERATED = True
    made = CreateDbRoles._role_line(research, created=True)
    assert "generated-secret" in made
    assert "shown once" in made
    assert "generated-secret" not in CreateDbRoles._role_line(research, created=False)
    settings.QVP_RESEARCH_DB_PASSWORD_GENERATED = False  # QVP_RESEARCH_DB_PASSWORD's: not shown
    assert "generated-secret" not in CreateDbRoles._role_line(research, created=True)


def test_without_a_password_the_command_says_research_cannot_log_in():
    nothing = roles.RoleSpec(roles.RESEARCH_ROLE, None)
    made = CreateDbRoles._role_line(nothing, created=True)
    assert "cannot log in until QVP_RESEARCH_DB_PASSWORD is set" in made
    assert "QVP_RESEARCH_DB_PASSWORD unset" in CreateDbRoles._role_line(nothing, created=False)


def test_a_role_that_needs_a_password_is_made_unable_to_log_in_without_one(db):
    """With pg_hba's trust or peer a login role without a password logs in all the same: the
    research role is NOLOGIN until a password is given (the test's transaction rolls the
    probe role back)."""
    probe = f"qvp_research_probe_{os.getpid()}"

    def can_login() -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolcanlogin FROM pg_roles WHERE rolname = %s", [probe])
            return cursor.fetchone()[0]

    with connection.cursor() as cursor:
        roles.ensure_role(cursor, roles.RoleSpec(probe, None, login_needs_password=True))
        assert not can_login()
        roles.ensure_role(cursor, roles.RoleSpec(probe, None, login_needs_password=True))
        assert not can_login()  # a run without the password changes nothing
        roles.ensure_role(cursor, roles.RoleSpec(probe, "a-long-secret", login_needs_password=True))
        assert can_login()
        roles.ensure_role(cursor, roles.RoleSpec(probe, None, login_needs_password=True))
        assert can_login()  # nor takes a login away
