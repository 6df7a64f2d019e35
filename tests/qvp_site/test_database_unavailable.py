"""A request whose database goes away under it (the server ending its connection, as a restart,
an operator's pg_terminate_backend or, on Citus, a worker's crash does) answers 503 with
Retry-After and a rule, as a statement past its time limit does: never a 500, and no address
or server message handed to the client. A bug's error stays a 500."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from django.db import connection
from rest_framework.test import APIClient

from marketdata import api
from marketdata.models import Instrument
from qvp_site.acting import UNAVAILABLE_RULE

INSTRUMENTS_TABLE = "marketdata_instrument"


def _other_session() -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        autocommit=True,
    )


@contextmanager
def ended_while_waiting(table: str) -> Iterator[list[int]]:
    """Another session locks ``table``; whoever comes to wait on it has its connection ended
    by the server (pg_terminate_backend). Yields the pids ended."""
    holder, watcher = _other_session(), _other_session()
    ended: list[int] = []
    stop = threading.Event()

    def end_the_waiters() -> None:
        while not stop.is_set():
            waiting = watcher.execute(
                "SELECT pid FROM pg_locks WHERE relation = %s::regclass AND NOT granted",
                [table],
            ).fetchall()
            for (pid,) in waiting:
                # integer: Citus adds pg_terminate_backend(bigint, ...), of its global pids.
                watcher.execute("SELECT pg_terminate_backend(%s::integer)", [pid])
                ended.append(pid)
            time.sleep(0.01)

    holder.execute("SET idle_in_transaction_session_timeout = '10s'")  # never hangs the suite
    holder.execute("BEGIN")
    holder.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
    ender = threading.Thread(target=end_the_waiters, daemon=True)
    ender.start()
    try:
        yield ended
    finally:
        stop.set()
        ender.join(timeout=10)
        holder.close()
        watcher.close()


@pytest.fixture
def superuser_client(django_user_model, transactional_db) -> APIClient:
    user = django_user_model.objects.create_superuser("boss", password="x" * 20)
    client = APIClient()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    "path", ["/api/v1/instruments/", "/admin/marketdata/instrument/"], ids=["api", "admin"]
)
def test_a_request_whose_connection_the_server_ends_answers_503(superuser_client, path):
    with ended_while_waiting(INSTRUMENTS_TABLE) as ended:
        response = superuser_client.get(path)
    assert ended, "no request waited on the lock"
    assert response.status_code == 503, response.content
    assert int(response["Retry-After"]) > 0
    body = response.content.decode()
    assert "terminating connection" not in body  # the server's words go to the log
    if path.startswith("/api/"):
        assert response.json()["rule"] == UNAVAILABLE_RULE
    # The next request gets a connection of its own and is served.
    assert superuser_client.get(path).status_code == 200


def test_a_bug_stays_a_500(superuser_client, monkeypatch):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(api.InstrumentViewSet, "list", broken)
    superuser_client.raise_request_exception = False
    assert superuser_client.get("/api/v1/instruments/").status_code == 500


def test_an_error_that_would_fail_again_is_no_outage(superuser_client):
    """A lock not available within lock_timeout (55P03), filed by psycopg under
    OperationalError like an outage, fails the same way if sent again: no 503 inviting a
    retry."""
    holder = _other_session()
    try:
        holder.execute("BEGIN")
        holder.execute(f"LOCK TABLE {INSTRUMENTS_TABLE} IN ACCESS EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '100ms'")  # this session's, the request's too
        superuser_client.raise_request_exception = False
        response = superuser_client.get("/api/v1/instruments/")
    finally:
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")
    assert response.status_code == 500


def test_gone_during_the_commit_says_the_outcome_is_unknown_and_invites_no_retry(
    superuser_client,
):
    """The database fails the commit itself (a deferred check raising serialization_failure
    at COMMIT stands in for a connection lost then): the writes may or may not have been
    kept, so the answer says so and carries no Retry-After."""
    Instrument.objects.create(symbol="COMMIT", asset_class="equity")
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION pg_temp.fail_at_commit() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'gone' USING ERRCODE = '40001'; END $$"
        )
        cursor.execute(
            "CREATE CONSTRAINT TRIGGER fail_at_commit AFTER INSERT ON marketdata_ingest"
            " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
            " EXECUTE FUNCTION pg_temp.fail_at_commit()"
        )
    try:
        bar = {"ts": "2026-03-02T00:00:00Z", "open": 10, "high": 11, "low": 9, "close": 10.5}
        body = {"symbol": "COMMIT", "timeframe": "1d", "bars": [bar]}
        response = superuser_client.post("/api/v1/bars/", body, format="json")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER fail_at_commit ON marketdata_ingest")
    assert response.status_code == 503, response.content
    assert response.json()["rule"] == UNAVAILABLE_RULE
    assert "unknown" in response.json()["detail"]
    assert "Retry-After" not in response
