"""Read replicas against a real streaming replica of the embedded server (pg_basebackup)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection, connections, transaction

from qvp_site import replicas
from qvp_site.db import postmaster
from trading.models import Account

ALIAS = "replica_0"
DOWN = "replica_down"  # a replica that does not answer
pytestmark = pytest.mark.django_db(transaction=True, databases=["default", ALIAS, DOWN])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def streaming_replica(django_db_setup, django_db_blocker):
    """A hot standby of the embedded server, in a temporary directory on another port. For
    this module's tests alone: kept to the session's end, it replayed every later test's WAL,
    about half a core of CI's two for the last forty minutes."""
    if not settings.EMBEDDED_DATABASE:
        pytest.skip("needs the embedded server to copy (DATABASE_URL points elsewhere)")
    primary = connection.settings_dict
    user = postmaster.os_user()
    home = Path(tempfile.mkdtemp(prefix="qvp-replica-"))
    if user:
        shutil.chown(home, user)
    data, port, binaries = home / "data", free_port(), postmaster.bin_dir()
    try:
        subprocess.run(
            [binaries / "pg_basebackup", "-h", primary["HOST"], "-p", str(primary["PORT"]),
             "-U", "postgres", "-D", data, "-R", "-X", "stream", "-c", "fast", "--no-sync"],
            user=user, check=True, capture_output=True, timeout=900,
            env={**os.environ, "PGPASSWORD": primary["PASSWORD"]},  # -R keeps it for the standby
        )  # fmt: skip
        subprocess.run(
            [binaries / "pg_ctl", "-D", data, "-w", "-t", "120", "-l", home / "log", "-o",
             # A throwaway copy: no fsync (nor its start-up sync of the whole directory).
             f"-p {port} -k {home} -c listen_addresses='' -c shared_buffers=64MB -c fsync=off",
             "start"],
            user=user, check=True, capture_output=True, timeout=180,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as error:
        shutil.rmtree(home, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        pytest.skip(f"cannot make a streaming replica: {error} {detail.decode()[-300:]}")
    # The replica as the database replica_0, connected as trading_app (row-level security
    # applies there, as it does to the served site); a mirror, so test flushes skip it.
    config = dict(primary)
    config.update(HOST=str(home), PORT=str(port), USER="trading_app",
                  TEST={**primary["TEST"], "MIRROR": "default"})  # fmt: skip
    settings.DATABASES[ALIAS] = connections.settings[ALIAS] = config
    settings.DATABASES[DOWN] = connections.settings[DOWN] = {**config, "PORT": "1"}
    try:
        yield config
    finally:
        for alias in (ALIAS, DOWN):
            connections[alias].close()
            connections.settings.pop(alias, None)
            settings.DATABASES.pop(alias, None)
        subprocess.run([binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], user=user,
                       capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def replica(streaming_replica, settings, app_role_password):
    streaming_replica["PASSWORD"] = app_role_password
    settings.QVP_REPLICA_ALIASES = [ALIAS]
    wait_replayed()
    yield ALIAS
    resume_replay()


def on_replica_as_superuser(statement: str):
    params = connections[ALIAS].get_connection_params()
    import psycopg

    with psycopg.connect(
        host=params["host"], port=params["port"], dbname=params["dbname"], user="postgres",
        password=connections["default"].settings_dict["PASSWORD"], autocommit=True,
    ) as conn:  # fmt: skip
        return conn.execute(statement).fetchone()


def wait_replayed(timeout: float = 60) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_current_wal_lsn()::text")
        target = cursor.fetchone()[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = on_replica_as_superuser(
            f"SELECT pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"
            " AND NOT pg_is_wal_replay_paused()"
        )[0]
        if done:
            return
        time.sleep(0.1)
    raise AssertionError(f"the replica did not replay up to {target} in {timeout} s")


def pause_replay() -> None:
    on_replica_as_superuser("SELECT pg_wal_replay_pause()")


def resume_replay() -> None:
    on_replica_as_superuser("SELECT pg_wal_replay_resume()")


def names(response) -> list[str]:
    assert response.status_code == 200, response.content
    body = response.json()
    return sorted(a["name"] for a in body.get("results", body))


def test_read_only_requests_read_the_replica_and_the_admin_the_primary(replica, client, desks):
    wait_replayed()
    client.force_login(desks["alice"])
    assert names(client.get("/api/v1/accounts/")) == ["alpha"]  # row-level security there too
    pause_replay()
    gamma = Account.objects.create(name="gamma")
    gamma.groups.add(*desks["alice"].groups.all())
    # The replica has not replayed gamma: the list came from it.
    assert names(client.get("/api/v1/accounts/")) == ["alpha"]
    admin = type(desks["alice"]).objects.create_superuser("root", password="pw-root-12345")
    client.force_login(admin)
    assert b"gamma" in client.get("/admin/trading/account/").content  # the admin: the primary
    resume_replay()
    wait_replayed()
    client.force_login(desks["alice"])
    assert names(client.get("/api/v1/accounts/")) == ["alpha", "gamma"]


def test_a_request_reads_its_own_writes_from_the_primary(replica, desks):
    wait_replayed()
    pause_replay()
    Account.objects.create(name="zeta")  # committed on the primary, not replayed
    # As ActingUserMiddleware serves a GET: a transaction on the primary, reads on the replica.
    with transaction.atomic(), replicas.routed(ALIAS) as state:
        replicas.declare_request_user(desks["audrey"])  # an auditor: sees every account
        assert sorted(Account.objects.values_list("name", flat=True)) == ["alpha", "beta"]
        with transaction.atomic():  # its own transaction on the primary: reads the primary
            assert "zeta" in Account.objects.values_list("name", flat=True)
        assert state.pinned
    with transaction.atomic(), replicas.routed(ALIAS) as state:
        replicas.declare_request_user(desks["audrey"])
        assert "zeta" not in Account.objects.values_list("name", flat=True)
        assert not state.pinned
        Account.objects.create(name="delta")  # a write: from now on, the primary
        assert state.pinned
        assert {"zeta", "delta"} <= set(Account.objects.values_list("name", flat=True))


def test_an_unreachable_replica_is_passed_over(replica, client, desks, settings):
    settings.QVP_REPLICA_ALIASES = [ALIAS, DOWN]
    client.force_login(desks["alice"])
    for _ in range(4):  # whichever is tried first, the request is served (by replica_0)
        assert names(client.get("/api/v1/accounts/")) == ["alpha"]
    settings.QVP_REPLICA_ALIASES = [DOWN]
    pause_replay()
    Account.objects.create(name="theta").groups.add(*desks["alice"].groups.all())
    # No replica left: the primary serves, and it has theta.
    assert names(client.get("/api/v1/accounts/")) == ["alpha", "theta"]


def test_a_replica_too_far_behind_is_passed_over(replica, client, desks, settings):
    settings.QVP_REPLICA_MAX_LAG_SECONDS = 1
    wait_replayed()
    replicas.forget_lag()
    client.force_login(desks["alice"])
    assert names(client.get("/api/v1/accounts/")) == ["alpha"]  # caught up: the replica
    pause_replay()
    Account.objects.create(name="kappa").groups.add(*desks["alice"].groups.all())
    time.sleep(1.5)
    replicas.forget_lag()
    # The replica has stalled for over a second with kappa received: the primary serves.
    assert names(client.get("/api/v1/accounts/")) == ["alpha", "kappa"]
    settings.QVP_REPLICA_MAX_LAG_SECONDS = 0  # no limit: the stalled replica again
    assert names(client.get("/api/v1/accounts/")) == ["alpha"]
    resume_replay()
    replicas.forget_lag()


def test_writes_and_unsafe_methods_never_go_to_a_replica(replica, client, desks):
    router = replicas.ReplicaRouter()
    assert router.db_for_read(Account) is None  # outside a routed request: the primary
    with replicas.routed(ALIAS):
        assert router.db_for_read(Account) == ALIAS
        assert router.db_for_write(Account) == "default"
        assert router.db_for_read(Account) == "default"  # after a write: the primary
    assert router.allow_migrate(ALIAS, "trading") is False


def test_replica_lag_is_measured(replica, desks):
    wait_replayed()
    assert replicas.replica_lag("default") is None  # the primary is no standby
    # Other sessions of the shared server keep writing: "caught up" is close, not exact.
    assert replicas.replica_lag(ALIAS)["lag_bytes"] < 16 << 20
    with connection.cursor() as cursor:
        # This replica (the shared server may have others): connected over its socket.
        cursor.execute("SELECT state FROM system_replication WHERE replica LIKE '%@local'")
        assert "streaming" in {state for (state,) in cursor.fetchall()}
    pause_replay()
    Account.objects.create(name="epsilon")
    time.sleep(1.2)
    lag = replicas.replica_lag(ALIAS)
    assert lag["lag_bytes"] > 0
    assert lag["lag_seconds"] > 1
    resume_replay()
    wait_replayed()
    caught_up = replicas.replica_lag(ALIAS)
    assert caught_up["lag_bytes"] < lag["lag_bytes"] or caught_up["lag_seconds"] < 1


def test_a_bulk_read_reads_the_replica_as_the_user(replica, client, desks):
    """The bulk formats' reader opens its own connection: to the replica the request was
    routed to, as the user, so row-level security there keeps the desks apart."""
    import pyarrow as pa

    from tests.fixtures.trading import T0
    from trading.models import CashEntry

    def amounts() -> list[str]:
        response = client.get(
            "/api/v1/cash/",
            {"start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z", "format": "arrow"},
        )
        assert response.status_code == 200, response.content
        table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
        return sorted(str(a) for a in table.column("amount").to_pylist())

    for account, amount in ((desks["alpha"], 100), (desks["beta"], 200)):
        CashEntry.objects.create(
            account=account, kind="deposit", amount=amount, currency="USD", entry_at=T0
        )
    wait_replayed()
    client.force_login(desks["alice"])
    assert amounts() == ["100.00000000"]  # beta's is not alice's
    pause_replay()
    CashEntry.objects.create(
        account=desks["alpha"], kind="deposit", amount=300, currency="USD", entry_at=T0
    )
    assert amounts() == ["100.00000000"]  # the replica has not replayed it: read there
    resume_replay()
    wait_replayed()
    assert amounts() == ["100.00000000", "300.00000000"]
