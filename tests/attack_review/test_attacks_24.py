"""Attack review of issue 24 (bulk formats, the research role, the audit API: 8ffd1cb..1ef1e3e):
each test states a rule the commits promise (or the issue asks) and fails where a role, a door
or a sequence of ordinary events breaks it. A hole found is marked ``xfail(strict=True)`` until
it is fixed; the other tests are defences that held, where the suite did not try them yet.

The bulk reader opens its own connection: the rows must be committed (``transaction=True``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pyarrow as pa
import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, transaction
from django.test import RequestFactory
from psycopg import errors
from rest_framework.exceptions import NotAuthenticated
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from qvp_site import scheduler
from qvp_site.api.bulk import reader
from qvp_site.api.bulk.views import acting_preamble
from qvp_site.db import roles
from qvp_site.models import JobRun
from tests.clients import client_of
from tests.fixtures.trading import T0
from tests.fixtures.trading_api import iso
from tests.qvp_site.test_bulk_formats import RANGE, bars, bulk, user  # noqa: F401  (fixtures)
from tests.qvp_site.test_research_role import connect_as_research  # noqa: F401  (a fixture)
from trading.models import Order

pytestmark = pytest.mark.django_db(transaction=True)

EXECUTIONS = "/api/v1/executions/"
ORDERS = "/api/v1/orders/"
AROUND_T0 = {"start": iso(T0.replace(hour=0, minute=0)), "end": "2024-12-31T00:00:00Z"}
PROBE = (
    "SELECT current_user::text AS role,"
    " coalesce(current_setting('qvp.user_id', true), '') AS user_id,"
    " coalesce(current_setting('qvp.actor', true), '') AS actor,"
    " current_setting('transaction_read_only') AS read_only"
)


# --- Helpers ---------------------------------------------------------------------------------


def request_of(who: Any) -> Request:
    request = Request(APIRequestFactory().get("/"))
    request.user = who
    return request


def preamble_as_app_role(who: Any) -> list[str]:
    """The reader's preamble for ``who``'s request while Django's connection acts as
    trading_app, as the served site does: row-level security is the wall."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    try:
        return acting_preamble(request_of(who), "default")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")


def read_one(preamble: list[str], sql: str) -> dict[str, Any]:
    with reader.reading("default", preamble, sql) as batches:
        rows: list[dict[str, Any]] = batches.read_all().to_pylist()
    return rows[0]


def bulk_accounts(client: Any, ledger: dict) -> set[str]:
    response = client.get(EXECUTIONS, {**AROUND_T0, "format": "arrow"})
    assert response.status_code == 200, response.content
    table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    ids = set(table.column("account").to_pylist())
    return {name for name in ("alpha", "beta") if ledger[name].id in ids}


def reader_backends() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            # This run's database only: other runs on the server have readers of their own.
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
            " AND datname = current_database()",
            [reader.APPLICATION_NAME],
        )
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def rls_only(books, app_role_password, monkeypatch) -> Iterator[dict]:
    """Django's connection acts as trading_app and the querysets' scoping is bypassed: what
    keeps the desks apart in the bulk reads is the reader's row-level security alone."""
    from trading.api.scoping import ScopedViewSet

    monkeypatch.setattr(ScopedViewSet, "visible", lambda self, rows: rows)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    yield books
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


# --- Holes: the bulk reader ------------------------------------------------------------------


def test_a_bulk_read_for_nobody_logged_in_reads_no_account(books, app_role_password):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.APP_ROLE}")
        cursor.execute("SELECT count(*) FROM trading_order")
        assert cursor.fetchone()[0] == 0  # Django's connection, nobody named: no account
    with pytest.raises(NotAuthenticated):  # refused, never named the system
        preamble_as_app_role(AnonymousUser())


def test_a_kept_reader_connection_the_server_closed_is_not_used_again(bars, user):  # noqa: F811
    bulk(user, "arrow")  # leaves its connection idle in the reader's pool
    kept = reader_backends()
    assert kept
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", [kept])
    for _ in range(50):  # the backends exit a moment later
        if not set(kept) & set(reader_backends()):
            break
        time.sleep(0.1)
    body, _ = bulk(user, "arrow")
    assert pa.ipc.open_stream(body).read_all().num_rows == 50


def test_a_head_of_a_bulk_list_reads_no_row(bars, user, monkeypatch):  # noqa: F811
    reads: list[str] = []
    reading = reader.reading

    def counted(alias: str, preamble: list[str], sql: str) -> Any:
        reads.append(sql)
        return reading(alias, preamble, sql)

    monkeypatch.setattr(reader, "reading", counted)
    cookie = "; ".join(f"{name}={morsel.value}" for name, morsel in user.cookies.items())
    request = RequestFactory(HTTP_COOKIE=cookie).head("/api/v1/bars/", {**RANGE, "format": "csv"})
    statuses: list[str] = []

    def start_response(status: str, headers: Any, *exc_info: Any) -> Any:
        statuses.append(status)
        return lambda data: None

    body = WSGIHandler()(request.environ, start_response)
    try:
        for _chunk in body:  # what gunicorn's sync worker does with any response
            pass
    finally:
        body.close()
    assert statuses == ["200 OK"]
    assert reads == []


@pytest.mark.parametrize("suffix", ["csv", "arrow", "parquet", "json"])
def test_the_buckets_by_a_format_suffix_are_never_a_500(bars, user, suffix):  # noqa: F811
    user.raise_request_exception = False
    response = user.get(f"/api/v1/bars/buckets.{suffix}", {**RANGE, "width": "1h"})
    assert response.status_code == 200, response.content[:200]


# --- Holes: the research role ----------------------------------------------------------------


def test_research_cannot_stop_a_scheduled_job_by_holding_its_lock(connect_as_research):  # noqa: F811
    research = connect_as_research()
    job = scheduler.Job(name="attack-24-probe", cron="* * * * *", run=lambda out: None)
    try:
        research.execute("SELECT pg_advisory_lock(%s)", [scheduler.lock_key(job.name)])
    except errors.InsufficientPrivilege:
        return  # refused: the defence holds
    run = scheduler.run_job(job)
    assert run.status != JobRun.Status.SKIPPED, run.output


def test_research_writes_no_large_object(connect_as_research):  # noqa: F811
    research = connect_as_research()
    created: list[int] = []
    try:
        try:
            (oid,) = research.execute("SELECT lo_from_bytea(0, 'kept')").fetchone()
        except errors.InsufficientPrivilege:
            return  # refused: the defence holds
        created.append(oid)
        pytest.fail(f"qvp_research wrote large object {oid}")
    finally:
        with connection.cursor() as cursor:
            for oid in created:
                cursor.execute("SELECT lo_unlink(%s)", [oid])


def test_research_creates_no_temporary_table(connect_as_research):  # noqa: F811
    research = connect_as_research()
    with pytest.raises(errors.InsufficientPrivilege):
        research.execute("CREATE TEMPORARY TABLE scratch AS SELECT 1 AS x")


@pytest.mark.xfail(
    strict=True,
    reason="hole: qvp_research sets its own role's defaults (PostgreSQL lets any role ALTER ROLE"
    " itself SET a user-settable parameter): one statement removes the idle-in-transaction and"
    " statement limits create_db_roles set 'so that they hold for every client', for every"
    " later session of every researcher (until create_db_roles runs again), where a SET lasts"
    " one session. Then a notebook's open transaction holds back vacuum and queues a"
    " migration's lock with every request behind it.",
)
def test_research_cannot_lift_its_roles_limits(connect_as_research):  # noqa: F811
    # IN DATABASE: the setting lives with this run's test database, not the shared role.
    database = connection.settings_dict["NAME"]
    research = connect_as_research()
    try:
        with pytest.raises(errors.InsufficientPrivilege):
            research.execute(
                f'ALTER ROLE {roles.RESEARCH_ROLE} IN DATABASE "{database}"'
                " SET idle_in_transaction_session_timeout = 0"
            )
        later = connect_as_research()
        (idle,) = later.execute("SHOW idle_in_transaction_session_timeout").fetchone()
        assert idle != "0"
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER ROLE {roles.RESEARCH_ROLE} IN DATABASE "{database}" RESET ALL')


# --- Defences that held ----------------------------------------------------------------------


def test_a_kept_connection_carries_no_identity_into_the_next_read(rls_only):
    """Alice's read leaves its connection in the pool; Bob's read on that very connection
    sees beta's account alone, under row-level security alone, and a read with no preamble
    on it names nobody and is read only."""
    ledger = rls_only
    info = reader.conninfo("default")
    assert bulk_accounts(client_of(ledger["alice"]), ledger) == {"alpha"}
    (kept,) = reader._idle[info]
    assert bulk_accounts(client_of(ledger["bob"]), ledger) == {"beta"}
    assert reader._idle[info] == [kept]  # the same connection, read on and given back
    row = read_one([], PROBE)
    assert reader._idle[info] == [kept]
    assert (row["user_id"], row["actor"], row["read_only"]) == ("", "", "on")
    assert row["role"] == connection.settings_dict["USER"]


def test_a_stream_cut_short_does_not_lend_its_identity(rls_only):
    """Alice's stream is dropped after its first chunk: its connection is closed, not kept,
    and Bob's next read reads beta's account alone."""
    ledger = rls_only
    response: Any = client_of(ledger["alice"]).get(EXECUTIONS, {**AROUND_T0, "format": "arrow"})
    next(iter(response.streaming_content))
    response.close()
    assert bulk_accounts(client_of(ledger["bob"]), ledger) == {"beta"}


def test_a_read_that_fails_inside_its_transaction_is_not_kept(bars):  # noqa: F811
    preamble = ["SELECT set_config('qvp.user_id', '42', true)"]
    with (
        pytest.raises(Exception, match="division by zero"),
        reader.reading("default", preamble, "SELECT 1 / 0 AS x") as batches,
    ):
        batches.read_all()
    assert reader._idle.get(reader.conninfo("default"), []) == []
    assert read_one([], PROBE)["user_id"] == ""


def test_another_desks_account_in_bulk_is_refused_for_an_auditor_too(books):
    """An auditor reads every account; a desk's trader never another's, under either name of
    the parameter."""
    for name, expected in (("alice", 400), ("audrey", 200)):
        params = {**AROUND_T0, "account": books["beta"].id, "format": "csv"}
        response = client_of(books[name]).get(EXECUTIONS, params)
        assert response.status_code == expected, (name, response.content)


@pytest.mark.parametrize("fmt", ["csv", "arrow", "parquet"])
def test_a_bulk_format_on_a_write_is_refused_and_writes_nothing(books, fmt):
    before = Order.objects.count()
    body = {
        "account": books["alpha"].id,
        "instrument": "AAPL",
        "client_order_id": "bulk-post",
        "side": "buy",
        "quantity": "1",
    }
    response = client_of(books["alice"]).post(f"{ORDERS}?format={fmt}", body, format="json")
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"
    assert Order.objects.count() == before


@pytest.mark.parametrize(
    ("method", "params", "status"),
    [
        ("options", {"format": "csv"}, 406),
        ("get", {**RANGE, "format": "ARROW"}, 406),  # an unknown format: named, and what is offered
        ("get", {**RANGE, "start": "2024-03-06T00:00:00Z", "format": "csv"}, 400),
        ("get", {**RANGE, "start": "0001-01-01T00:00:00+14:00", "format": "csv"}, 400),
        ("get", {**RANGE, "end": "9999-12-31T23:59:59Z", "format": "parquet"}, 400),
        ("get", {**RANGE, "known_at": "not a time", "format": "arrow"}, 400),
        ("get", {**RANGE, "since": RANGE["start"], "format": "arrow"}, 400),  # both names
    ],
)
def test_odd_bulk_requests_are_refused_in_json_never_a_500(bars, user, method, params, status):  # noqa: F811
    response = getattr(user, method)(f"/api/v1/bars/?{urlencode(params)}")
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"


def test_a_format_suffix_on_a_list_is_its_query_parameter(bars, user):  # noqa: F811
    by_suffix = user.get("/api/v1/bars.csv", RANGE)
    by_query = user.get("/api/v1/bars/", {**RANGE, "format": "csv"})
    assert by_suffix.status_code == by_query.status_code == 200
    assert b"".join(by_suffix.streaming_content) == b"".join(by_query.streaming_content)


def test_the_bulk_filename_is_the_servers_not_the_clients(bars, user):  # noqa: F811
    """Content-Disposition is made of the route's basename and the range as parsed: nothing a
    client writes reaches the header."""
    hostile = {**RANGE, "start": '2024-03-04T00:00:00+00:00"\r\nX-Injected: 1'}
    response = user.get("/api/v1/bars/", {**hostile, "format": "csv"})
    assert response.status_code == 400
    # The same moment written with another offset: named in UTC.
    response = user.get(
        "/api/v1/bars/", {**RANGE, "start": "2024-03-04T01:00:00+01:00", "format": "csv"}
    )
    assert response["Content-Disposition"] == (
        'attachment; filename="bar-20240304T000000Z-20240305T000000Z.csv"'
    )


def test_research_reads_no_other_roles_statements(connect_as_research, db):  # noqa: F811
    """pg_stat_statements is readable by PUBLIC, but the text of another role's statements is
    not the research role's to read."""
    research = connect_as_research()
    (exists,) = research.execute("SELECT to_regclass('pg_stat_statements') IS NOT NULL").fetchone()
    if not exists:
        pytest.skip("pg_stat_statements is not installed here")
    rows = research.execute(
        "SELECT s.query FROM pg_stat_statements s JOIN pg_roles r ON r.oid = s.userid"
        " WHERE r.rolname <> current_user AND s.query <> '<insufficient privilege>'"
    ).fetchall()
    assert rows == []


def test_research_calls_no_owners_function_of_the_books(connect_as_research):  # noqa: F811
    """Of the SECURITY DEFINER functions the research role may execute, none but the shared
    settled time is callable: the others are triggers."""
    research = connect_as_research()
    callable_ = research.execute(
        "SELECT p.oid::regprocedure::text FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND p.prosecdef"
        " AND has_function_privilege(p.oid, 'EXECUTE')"
        " AND p.prorettype <> 'trigger'::regtype"
    ).fetchall()
    assert callable_ == [("marketdata_settled_at()",)]


def test_research_cannot_read_the_books_through_a_view(connect_as_research):  # noqa: F811
    """Every view the research role reads runs with the reader's rights (security_invoker): a
    view owned by the owner would read the books with the owner's."""
    research = connect_as_research()
    definers = research.execute(
        "SELECT c.relname FROM pg_class c WHERE c.relkind IN ('v', 'm')"
        " AND c.relnamespace = 'public'::regnamespace"
        " AND (has_table_privilege(c.oid, 'SELECT') OR has_any_column_privilege(c.oid, 'SELECT'))"
        " AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)"
        # An extension's own views (pg_stat_statements', Citus's catalog views) are not the
        # project's: none reads the books.
        " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
        "                 AND d.objid = c.oid AND d.deptype = 'e')"
    ).fetchall()
    # TimescaleDB's continuous aggregates are views of their owner's rights by design: those
    # research reads summarise its own tables (the bars), nothing of the books.
    with connection.cursor() as cursor:
        cursor.execute("SELECT view_name, source_table FROM qvp_timeseries_aggregate")
        aggregates = dict(cursor.fetchall())
    others = [
        name for (name,) in definers if not aggregates.get(name, "").startswith("marketdata_")
    ]
    assert others == []


def test_the_research_role_reads_no_sequence(connect_as_research):  # noqa: F811
    research = connect_as_research()
    readable = research.execute(
        "SELECT c.relname FROM (SELECT oid, relname FROM pg_class WHERE relkind = 'S'"
        " AND relnamespace = 'public'::regnamespace OFFSET 0) AS c"  # the project's, not an
        " WHERE has_sequence_privilege(c.oid, 'SELECT, USAGE, UPDATE')"  # extension's catalog
    ).fetchall()
    assert readable == []


@pytest.mark.parametrize(
    "statement",
    [
        f"SET ROLE {roles.APP_ROLE}",
        f"SET ROLE {roles.READONLY_ROLE}",
        f"SET SESSION AUTHORIZATION {roles.APP_ROLE}",
    ],
)
def test_research_cannot_become_another_role(connect_as_research, statement):  # noqa: F811
    research = connect_as_research()
    with pytest.raises(errors.InsufficientPrivilege):
        research.execute(statement)


def test_research_cannot_end_the_sites_sessions(connect_as_research):  # noqa: F811
    """A notebook may not cancel or end a request's statement (or the scheduler's)."""
    research = connect_as_research()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (pid,) = cursor.fetchone()
    for function in ("pg_cancel_backend", "pg_terminate_backend"):
        with pytest.raises(errors.InsufficientPrivilege):
            # integer: Citus adds both functions of a bigint (its global pids).
            research.execute(f"SELECT {function}(%s::integer)", [pid])
