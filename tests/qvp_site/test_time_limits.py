"""No request holds the database for long: each statement of a request, a stream, a command and
the scheduler runs within its own limit (statement_timeout, local to the transaction), and a
request past its limit answers 503 naming it, its writes rolled back, never a 500.

The database is made slow the way it gets slow in production: another connection holds a lock
the request's query must wait for, and a lock wait is cancelled by statement_timeout too.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import call_command
from django.db import OperationalError, connection, transaction
from django.urls import reverse
from rest_framework.test import APIClient

from qvp_site import time_limits
from qvp_site.acting import acting_as, declare
from qvp_site.management.commands import scheduler as scheduler_command
from qvp_site.models import ApiToken
from qvp_site.scheduler import Job
from qvp_site.tokens import create_token

ROOT = Path(__file__).resolve().parents[2]
INSTRUMENTS = "/api/v1/instruments/"
INSTRUMENTS_TABLE = "marketdata_instrument"


def statement_timeout(conn=connection) -> str:
    with conn.cursor() as cursor:
        cursor.execute("SHOW statement_timeout")
        return cursor.fetchone()[0]


@contextmanager
def table_locked(table: str) -> Iterator[None]:
    """Another session holds ``table`` in ACCESS EXCLUSIVE mode: every read of it waits."""
    params = connection.settings_dict
    other = psycopg.connect(
        dbname=params["NAME"],
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
    )
    try:
        # Should the request not give up (no limit), the server ends this session after 5 s
        # and the test fails rather than hangs.
        other.execute("SET lock_timeout = '5s'")
        other.execute("SET idle_in_transaction_session_timeout = '5s'")
        other.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            other.rollback()
        other.close()


@pytest.fixture
def program(django_user_model, db) -> tuple[APIClient, ApiToken]:
    """A client holding a token: DRF reads it, and records its use, inside the request's
    transaction, before the view reads anything."""
    user = django_user_model.objects.create_user("robot")
    token, key = create_token(user, name="robot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client, token


@pytest.fixture
def short_request_limit(settings):
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 0.2


@pytest.fixture(autouse=True)
def _a_commands_process(monkeypatch):
    """Each test starts, and ends, in a command's process."""
    monkeypatch.setattr(time_limits, "_process_context", time_limits.COMMAND)


# --- Requests ------------------------------------------------------------------------------------
def test_an_api_request_past_its_limit_answers_503_naming_it_and_writes_nothing(
    program, short_request_limit
):
    client, token = program
    assert token.last_used_at is None
    started = time.monotonic()
    with table_locked(INSTRUMENTS_TABLE):
        response = client.get(INSTRUMENTS)
    assert time.monotonic() - started < 4  # cancelled at the limit, not at the lock's end
    assert response.status_code == 503, response.content
    assert response.json() == {
        "detail": "the database took longer than the request limit of 0.2 s"
        " (QVP_REQUEST_STATEMENT_TIMEOUT)",
        "rule": "statement_timeout",
    }
    assert int(response["Retry-After"]) > 0
    # The token's use, written before the slow read, went with the rolled-back transaction.
    token.refresh_from_db()
    assert token.last_used_at is None
    # The connection serves the next request: nothing is left half-done on it.
    assert client.get(INSTRUMENTS).status_code == 200


def test_a_page_past_its_limit_answers_a_plain_503(admin_client, short_request_limit):
    with table_locked(INSTRUMENTS_TABLE):
        response = admin_client.get(reverse("admin:marketdata_instrument_changelist"))
    assert response.status_code == 503
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert "QVP_REQUEST_STATEMENT_TIMEOUT" in response.content.decode()
    assert response["Retry-After"]


def test_the_limit_is_local_to_the_requests_transaction(
    django_user_model, transactional_db, short_request_limit
):
    """Set with set_config(..., true) by the statement that names the user: gone with the
    transaction, so a pooled server connection never carries it to the next client."""
    before = statement_timeout()
    user = django_user_model.objects.create_user("alice")
    client = APIClient()
    client.force_authenticate(user)
    assert client.get(INSTRUMENTS).status_code == 200
    assert statement_timeout() == before
    with transaction.atomic(), time_limits.within(time_limits.REQUEST):
        declare(user)
        assert statement_timeout() == "200ms"
    assert statement_timeout() == before


# --- Commands, the scheduler, streams -----------------------------------------------------------
def sleep_in_a_command() -> None:
    with acting_as("a command"), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(1)")


def test_a_command_gets_its_own_limit(db, settings):
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 30
    settings.QVP_COMMAND_STATEMENT_TIMEOUT = 0.2
    with acting_as("a command"):
        assert statement_timeout() == "200ms"
    with pytest.raises(OperationalError) as cancelled:
        sleep_in_a_command()
    assert time_limits.cancelled(cancelled.value)
    assert "QVP_COMMAND_STATEMENT_TIMEOUT" in time_limits.message(
        time_limits.COMMAND, cancelled.value
    )


def test_no_limit_of_ours_is_the_servers_default_not_a_forced_zero(db, settings):
    """0 resets to the role's or the server's statement_timeout (SET LOCAL ... TO DEFAULT), so a
    DBA's ALTER ROLE ... SET statement_timeout still holds for commands."""
    settings.QVP_COMMAND_STATEMENT_TIMEOUT = 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT reset_val FROM pg_settings WHERE name = 'statement_timeout'")
        server_default = cursor.fetchone()[0]
        cursor.execute("SET LOCAL statement_timeout = '7s'")
    with acting_as("a command"), connection.cursor() as cursor:
        cursor.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'")
        assert cursor.fetchone()[0] == server_default


def new_connection():
    """A new connection to the test database, as Django opens one (connection_created)."""
    fresh = connection.copy()
    fresh.ensure_connection()
    return fresh


@pytest.mark.parametrize(
    ("context", "setting"),
    [
        (time_limits.COMMAND, "QVP_COMMAND_STATEMENT_TIMEOUT"),
        (time_limits.SCHEDULER, "QVP_SCHEDULER_STATEMENT_TIMEOUT"),
        (time_limits.REQUEST, "QVP_REQUEST_STATEMENT_TIMEOUT"),
    ],
)
def test_a_new_connection_takes_its_processs_limit_as_the_session_default(
    db, settings, context, setting
):
    """Statements outside a transaction of ours (a command's autocommit queries, /healthz, the
    login page) are bounded too, on a direct connection."""
    settings.QVP_TRANSACTION_POOLING = False
    setattr(settings, setting, 1.5)
    time_limits.for_process(context)
    fresh = new_connection()
    try:
        assert statement_timeout(fresh) == "1500ms"
    finally:
        fresh.close()


def test_a_connection_opened_while_serving_a_request_takes_the_requests_limit(db, settings):
    """The connection a web worker opens in a request serves its next anonymous requests and
    /healthz (no transaction of ours) under the request's limit."""
    settings.QVP_TRANSACTION_POOLING = False
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 1.5
    with time_limits.within(time_limits.REQUEST):
        fresh = new_connection()
    try:
        assert statement_timeout(fresh) == "1500ms"
    finally:
        fresh.close()


def test_behind_transaction_pooling_no_session_default_is_set(db, settings):
    """A session SET would stay on PgBouncer's server connection for its next client."""
    settings.QVP_TRANSACTION_POOLING = True
    settings.QVP_COMMAND_STATEMENT_TIMEOUT = 1.5
    fresh = new_connection()
    try:
        with fresh.cursor() as cursor:
            cursor.execute("SELECT source FROM pg_settings WHERE name = 'statement_timeout'")
            assert cursor.fetchone()[0] != "session"
    finally:
        fresh.close()


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_runs_its_jobs_within_its_own_limit(settings, monkeypatch):
    settings.QVP_COMMAND_STATEMENT_TIMEOUT = 0
    settings.QVP_SCHEDULER_STATEMENT_TIMEOUT = 0.2

    def probe(out: StringIO) -> None:
        with acting_as("a job"):
            out.write(f"in its transactions {statement_timeout()}")
        out.write(f", outside them {statement_timeout()}")

    job = Job(name="test-probe", cron="* * * * *", run=probe)
    monkeypatch.setattr(scheduler_command, "discover", lambda: {job.name: job})
    out = StringIO()
    try:
        call_command("scheduler", run=job.name, stdout=out)
    finally:  # the scheduler set its limit on the open connection, outside any transaction
        with connection.cursor() as cursor:
            cursor.execute("RESET statement_timeout")
    assert "in its transactions 200ms, outside them 200ms" in out.getvalue()


def test_an_export_streams_within_its_own_limit(admin_client, settings):
    """The rows are read after the view returned, in a transaction of the stream's own: its
    limit is QVP_STREAM_STATEMENT_TIMEOUT, and a stream past it is cut short, not finished."""
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 30
    settings.QVP_STREAM_STATEMENT_TIMEOUT = 0.2
    response = admin_client.get(reverse("admin:marketdata_instrument_export_csv"))
    assert response.status_code == 200
    with (
        table_locked(INSTRUMENTS_TABLE),
        pytest.raises(time_limits.TimeLimitExceeded, match="QVP_STREAM_STATEMENT_TIMEOUT"),
    ):
        b"".join(response.streaming_content)


def test_a_stream_stops_at_its_limit_as_a_whole(settings, monkeypatch):
    settings.QVP_STREAM_STATEMENT_TIMEOUT = 10
    clock = [1000.0]
    monkeypatch.setattr(time_limits.time, "monotonic", lambda: clock[0])
    deadline = time_limits.Deadline(time_limits.STREAM)
    clock[0] += 9
    deadline.check()
    clock[0] += 2
    with pytest.raises(time_limits.TimeLimitExceeded, match="stream limit of 10 s"):
        deadline.check()


def test_an_unlimited_stream_has_no_deadline(settings):
    settings.QVP_STREAM_STATEMENT_TIMEOUT = 0
    assert time_limits.Deadline(time_limits.STREAM).at is None


# --- Settings, gunicorn -------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["-1", "soon", "nan", "inf", "1e9"])
def test_a_limit_that_is_not_a_number_of_seconds_is_refused_by_name(raw):
    with pytest.raises(Exception, match=r"QVP_REQUEST_STATEMENT_TIMEOUT=") as refused:
        time_limits.seconds("QVP_REQUEST_STATEMENT_TIMEOUT", raw)
    assert type(refused.value).__name__ == "ImproperlyConfigured"


def test_limits_are_seconds_with_a_fraction_and_zero_for_none():
    assert time_limits.seconds("X", "0.2") == 0.2
    assert time_limits.seconds("X", "0") == 0


def test_settings_refuse_a_bad_limit_at_start():
    env = {
        **os.environ,
        "DATABASE_URL": "postgres://check@localhost.invalid/qvp",
        "QVP_SCHEDULER_STATEMENT_TIMEOUT": "-5",
    }
    result = subprocess.run(
        [sys.executable, "-c", "import qvp_site.settings"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: QVP_SCHEDULER_STATEMENT_TIMEOUT='-5'" in result.stderr


@pytest.mark.parametrize(
    ("request_limit", "stream_limit", "timeout"),
    [(None, None, 330), ("30", "600", 630), ("120", "60", 150), ("30", "0", 0)],
)
def test_gunicorns_timeout_is_above_the_longest_response(
    monkeypatch, request_limit, stream_limit, timeout
):
    for name, value in [
        ("QVP_REQUEST_STATEMENT_TIMEOUT", request_limit),
        ("QVP_STREAM_STATEMENT_TIMEOUT", stream_limit),
    ]:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    conf = importlib.reload(importlib.import_module("qvp_site.gunicorn_conf"))
    assert conf.worker_class == "sync"
    assert conf.timeout == timeout
    assert conf.graceful_timeout == (timeout or 30)
