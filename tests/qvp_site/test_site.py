"""The health check, authentication on every page, and the migrations matching the models."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver

from qvp_site.db import engine

OPEN_TO_ANONYMOUS = {"healthz", "login"}


def test_healthz_answers_anonymous_users_with_the_status_only(client, db):
    """The versions are for staff and the metrics token (tests/qvp_site/test_healthz.py)."""
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_refuses_writes(client, db):
    assert client.post("/healthz").status_code == 405


def _paths(resolver=None, prefix=""):
    """One concrete path per URL pattern (arguments filled with 1)."""
    for pattern in (resolver or get_resolver()).url_patterns:
        route = prefix + str(pattern.pattern).lstrip("^").rstrip("$").replace("\\Z", "")
        if isinstance(pattern, URLResolver):
            yield from _paths(pattern, route)
        elif isinstance(pattern, URLPattern):
            route = re.sub(r"\(\?P<app_label>[^)]*\)/", "auth/", route)
            path = "/" + (
                route.replace("<path:object_id>", "1")
                .replace("<path:content_type_id>", "1")
                .replace("<path:app_label>", "auth")
                .replace("<int:", "<")
            )
            for token in ("<id>", "<pk>", "<object_id>", "<uidb64>", "<token>", "<url>"):
                path = path.replace(token, "1")
            if "<" in path or "(?" in path or "\\" in path:
                continue
            yield pattern.name, path


def test_every_page_but_healthz_and_login_refuses_anonymous_users(client, db, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "10000/minute", "user": "10000/minute"},
    }
    checked = 0
    for name, path in _paths():
        if name in OPEN_TO_ANONYMOUS:
            continue
        response = client.get(path)
        checked += 1
        if path.startswith("/api/") or path == "/metrics":  # for programs: no login page
            assert response.status_code in (401, 403), path
        else:
            assert response.status_code in (302, 404), path
            if response.status_code == 302:
                assert "/login/" in response["Location"], path
    assert checked > 10


def test_api_answers_401_or_403_not_a_redirect(client, db):
    response = client.get("/api/v1/")
    assert response.status_code in (401, 403)


def test_login_page_is_open_and_logged_in_users_see_the_dashboard(client, django_user_model):
    assert client.get("/accounts/login/").status_code == 200
    user = django_user_model.objects.create_user(
        "quant", password="a-long-test-password", is_staff=True
    )
    client.force_login(user)
    assert client.get("/").status_code == 200
    response = client.get("/system/")
    assert response.status_code == 200
    assert engine.detect().engine.encode() in response.content


def test_migrations_match_the_models(db):
    out = StringIO()
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


@pytest.fixture
def fresh_engine():
    engine.forget()
    yield
    engine.forget()


def test_engine_can_be_forced_off(db, fresh_engine):
    with override_settings(QVP_ENGINE="postgresql"):
        assert engine.detect().engine == engine.POSTGRESQL
        assert engine.detect().timescaledb_version is None


def test_engine_on_fails_loudly_where_timescaledb_is_missing(db, fresh_engine):
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        installed = cursor.fetchone()[0] == 1
    with override_settings(QVP_ENGINE="timescaledb"):
        if installed:
            assert engine.detect().is_timescaledb
        else:
            with pytest.raises(
                ImproperlyConfigured, match="QVP_ENGINE=timescaledb but TimescaleDB"
            ):
                engine.detect()


def test_citus_asked_for_fails_loudly_where_the_database_has_no_workers(db, fresh_engine):
    if engine.is_citus():
        pytest.skip("the database is on a Citus cluster: tests/qvp_site/test_citus_engine.py")
    engine.forget()
    with (
        override_settings(QVP_ENGINE="citus"),
        pytest.raises(
            ImproperlyConfigured,
            match="QVP_ENGINE=citus but Citus cannot be used: the extension is not",
        ),
    ):
        engine.detect()


@pytest.mark.parametrize(
    ("older", "engine_name"), [("auto", "auto"), ("on", "timescaledb"), ("off", "postgresql")]
)
def test_qvp_timescaledb_is_the_engine_settings_older_spelling(older, engine_name):
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; print(settings.QVP_ENGINE)"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "qvp_site.settings", "QVP_TIMESCALEDB": older},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert done.stdout.split()[-1] == engine_name


@pytest.mark.parametrize("model", ["jobrun", "timeseriestable", "timeseriesaggregate"])
def test_admin_lists_the_site_records_read_only(admin_client, model):
    response = admin_client.get(f"/admin/qvp_site/{model}/")
    assert response.status_code == 200
    assert b"to view | Django site admin" in response.content  # read-only: "Select ... to view"
    assert f"/admin/qvp_site/{model}/add/".encode() not in response.content


def test_healthz_answers_503_when_the_database_is_down(client, monkeypatch):
    from django.db import OperationalError

    def refuse(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(engine, "detect", refuse)
    response = client.get("/healthz")
    assert response.status_code == 503
    # The error is named to staff and the metrics token only (tests/qvp_site/test_healthz.py).
    assert response.json() == {"status": "unavailable"}


@pytest.mark.parametrize(
    ("workers", "said"),
    [
        ("127.0.0.1:55601,[::1]:55602", "[('127.0.0.1', 55601), ('::1', 55602)]"),
        ("::1:5432", "write an IPv6 address as [address]:port"),
        ("worker", "'worker' is not host:port"),
    ],
)
def test_citus_workers_are_read_as_host_and_port(workers, said):
    read = "from django.conf import settings; print(settings.QVP_CITUS_WORKERS)"
    environment = {"DJANGO_SETTINGS_MODULE": "qvp_site.settings", "QVP_CITUS_WORKERS": workers}
    done = subprocess.run(
        [sys.executable, "-c", read], env={**os.environ, **environment},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert said in done.stdout + done.stderr
