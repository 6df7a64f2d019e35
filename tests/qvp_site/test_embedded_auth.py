"""The embedded server asks every connection for its password (scram-sha-256).

Raw connections, as anyone on the machine could open them: without the password (none sent,
neither PGPASSWORD nor a password file read) or with a wrong one they are refused, over the
socket and over TCP; with the generated password they work. The passwords are kept under
var/secrets/ for the app's user alone. A cluster made before this (trust) is upgraded in place
on its next start: that is tried on a scratch server in a temporary directory, never on the
shared one under var/.
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from qvp_site.db import embedded, postmaster, roles

LOGINS = (embedded.SUPERUSER, roles.APP_ROLE, roles.READONLY_ROLE)


def configured_password(role: str) -> str:
    """The password settings connect and `create_db_roles` set with, for ``role``."""
    return {
        embedded.SUPERUSER: embedded.password(settings.VAR_DIR, embedded.SUPERUSER),
        roles.APP_ROLE: settings.QVP_APP_DB_PASSWORD,
        roles.READONLY_ROLE: settings.QVP_READONLY_DB_PASSWORD,
    }[role]


def connect(var_dir: Path, host: str, port: int | str, dbname: str, user: str, **auth: Any):
    """A raw connection; no password at all unless ``auth`` gives one."""
    options = {**embedded.without_password(var_dir), **auth}
    return psycopg.connect(
        host=host, port=port, dbname=dbname, user=user, connect_timeout=10, **options
    )


def assert_refused(var_dir: Path, host: str, port: int | str, dbname: str, user: str, **auth):
    with pytest.raises(psycopg.OperationalError, match="password"):
        connect(var_dir, host, port, dbname, user, **auth).close()


def current_user(var_dir: Path, host: str, port: int | str, dbname: str, user: str, pw: str):
    with connect(var_dir, host, port, dbname, user, password=pw) as conn:
        return conn.execute("SELECT current_user").fetchone()[0]


# --- The shared server under var/ -------------------------------------------------------------


@pytest.fixture
def shared(db, app_role_password) -> dict[str, Any]:
    """Where the shared server is, with the roles made on the test database."""
    params = connection.settings_dict
    return {"var_dir": settings.VAR_DIR, "host": params["HOST"], "port": params["PORT"],
            "dbname": params["NAME"]}  # fmt: skip


@pytest.mark.embedded
@pytest.mark.parametrize("role", LOGINS)
def test_the_socket_refuses_a_role_without_its_password(shared, role):
    assert_refused(**shared, user=role)
    assert_refused(**shared, user=role, password="not-" + configured_password(role))
    assert current_user(**shared, user=role, pw=configured_password(role)) == role


@pytest.mark.embedded
def test_settings_connect_with_the_generated_passwords(db):
    default = settings.DATABASES["default"]
    assert default["PASSWORD"]
    assert default["PASSWORD"] == configured_password(default["USER"])
    # Unless the environment names others, create_db_roles sets the generated ones.
    for role, setting in [(roles.APP_ROLE, "QVP_APP_DB_PASSWORD"),
                          (roles.READONLY_ROLE, "QVP_READONLY_DB_PASSWORD")]:  # fmt: skip
        if not os.environ.get(setting):
            assert getattr(settings, setting) == embedded.password(settings.VAR_DIR, role)


@pytest.mark.embedded
def test_every_rule_of_the_shared_servers_pg_hba_asks_for_a_password(db):
    """The server listens on its socket only (no TCP to try here; the scratch server below
    listens on 127.0.0.1): its host rules ask for a password as its local ones do."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW listen_addresses")
        assert cursor.fetchone()[0] == ""
        cursor.execute("SELECT type, address, auth_method, error FROM pg_hba_file_rules")
        rules = cursor.fetchall()
    assert {(kind, address) for kind, address, _, _ in rules} >= {
        ("local", None), ("host", "127.0.0.1"), ("host", "::1")
    }  # fmt: skip
    assert {(method, error) for _, _, method, error in rules} == {("scram-sha-256", None)}


@pytest.mark.embedded
def test_the_passwords_are_the_app_users_alone(db):
    folder = embedded.secrets_path(settings.VAR_DIR)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert folder.stat().st_uid == os.geteuid()
    for role in LOGINS:
        kept = folder / role
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600
        assert kept.stat().st_uid == os.geteuid()
        assert len(kept.read_text().strip()) >= 40  # secrets.token_urlsafe(32)


# --- Secrets, without a server ------------------------------------------------------------------


def test_a_password_is_generated_once_and_kept(tmp_path):
    first = embedded.password(tmp_path, roles.APP_ROLE)
    assert embedded.password(tmp_path, roles.APP_ROLE) == first
    assert embedded.password(tmp_path, roles.READONLY_ROLE) != first
    assert (tmp_path / "secrets" / roles.APP_ROLE).read_text().strip() == first
    kept = sorted(p.name for p in (tmp_path / "secrets").iterdir())
    assert kept == [roles.APP_ROLE, roles.READONLY_ROLE]  # no draft left behind


def test_loosened_permissions_are_tightened_on_read(tmp_path):
    embedded.password(tmp_path, embedded.SUPERUSER)
    folder, kept = tmp_path / "secrets", tmp_path / "secrets" / embedded.SUPERUSER
    folder.chmod(0o755)
    kept.chmod(0o644)
    embedded.password(tmp_path, embedded.SUPERUSER)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600


def test_only_the_servers_logins_have_kept_passwords(tmp_path):
    with pytest.raises(ValueError, match="no password is kept for 'someone'"):
        embedded.password(tmp_path, "someone")


# --- A cluster made before passwords, upgraded on its next start ---------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def trusting_cluster() -> Iterator[dict[str, Any]]:
    """A scratch cluster as the wheel's initdb makes it (trust everywhere), running, with data
    and the application's roles (as an older create_db_roles left them), on the socket and on
    127.0.0.1 (another port than any other server's)."""
    user = postmaster.os_user()
    home = Path(tempfile.mkdtemp(prefix="qvp-auth-"))
    var_dir = home / "var"
    var_dir.mkdir()
    if user:
        shutil.chown(home, user)
        shutil.chown(var_dir, user)
    pgdata, port, binaries = embedded.pgdata_path(var_dir), free_port(), postmaster.bin_dir()
    run = {"user": user, "check": True, "capture_output": True, "timeout": 180}
    try:
        subprocess.run([binaries / "initdb", "-D", pgdata, "--auth=trust", "--auth-local=trust",
                        "--encoding=utf8", "-U", "postgres"], **run)  # fmt: skip
        subprocess.run(
            [binaries / "pg_ctl", "-D", pgdata, "-w", "-t", "120", "-l", home / "log", "-o",
             f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c shared_buffers=16MB"
             " -c fsync=off", "start"], **run,
        )  # fmt: skip
    except (subprocess.SubprocessError, OSError) as error:
        shutil.rmtree(home, ignore_errors=True)
        detail = getattr(error, "stderr", b"") or b""
        pytest.fail(f"cannot start a scratch server: {error} {detail.decode()[-300:]}")
    try:
        with psycopg.connect(host=str(home), port=port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:  # fmt: skip
            conn.execute("CREATE TABLE kept (value integer)")
            conn.execute("INSERT INTO kept VALUES (42)")
            for role in (roles.APP_ROLE, roles.READONLY_ROLE):
                conn.execute(f"CREATE ROLE {role} LOGIN")
        yield {"var_dir": var_dir, "socket": str(home), "port": port}
    finally:
        subprocess.run([binaries / "pg_ctl", "-D", pgdata, "-m", "immediate", "stop"],
                       user=user, capture_output=True, check=False)  # fmt: skip
        shutil.rmtree(home, ignore_errors=True)


def test_a_trusting_cluster_is_upgraded_in_place_on_start(trusting_cluster):
    var_dir, port = trusting_cluster["var_dir"], trusting_cluster["port"]
    ways = [(trusting_cluster["socket"], port), ("127.0.0.1", port)]
    for host, at in ways:  # before: anyone is anyone, with no password
        assert current_user(var_dir, host, at, "postgres", "postgres", pw="") == "postgres"

    server = embedded.start(var_dir)  # the running server, adopted as the settings do

    hba = embedded.pgdata_path(var_dir) / "pg_hba.conf"
    assert hba.read_text() == embedded.PG_HBA
    for host, at in ways:
        for role in LOGINS:
            assert_refused(var_dir, host, at, "postgres", role)
            assert_refused(var_dir, host, at, "postgres", role, password="wrong")
            kept = embedded.password(var_dir, role)
            assert current_user(var_dir, host, at, "postgres", role, pw=kept) == role
    with server.connect() as conn:  # nothing lost
        assert conn.execute("SELECT value FROM kept").fetchall() == [(42,)]
    secrets_dir = embedded.secrets_path(var_dir)
    assert stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    assert {stat.S_IMODE((secrets_dir / r).stat().st_mode) for r in LOGINS} == {0o600}

    # The next start finds it done and changes nothing.
    written = hba.stat().st_mtime_ns
    assert embedded.start(var_dir).password == server.password
    assert hba.stat().st_mtime_ns == written


def test_a_lost_superuser_password_is_refused_with_the_way_back(trusting_cluster):
    var_dir, port = trusting_cluster["var_dir"], trusting_cluster["port"]
    first = embedded.start(var_dir).password
    kept = embedded.secrets_path(var_dir) / embedded.SUPERUSER
    kept.unlink()
    with pytest.raises(RuntimeError, match=r"postgres is missing.*change scram-sha-256 to trust"):
        embedded.start(var_dir)
    assert not kept.exists()  # no password made up that the server does not hold

    # The way back the message gives: trust again, reloaded, then a start sets a new one.
    hba = embedded.pgdata_path(var_dir) / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))
    postmaster.pg_ctl(embedded.pgdata_path(var_dir), "reload")
    again = embedded.start(var_dir).password
    assert again != first
    assert_refused(var_dir, "127.0.0.1", port, "postgres", embedded.SUPERUSER, password=first)
    assert current_user(var_dir, "127.0.0.1", port, "postgres", "postgres", pw=again) == "postgres"
