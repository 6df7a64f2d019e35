"""/healthz: the status for anyone, the engine's versions (or the error) for staff and for the
metrics token; the manifest of every static file never served."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.db import OperationalError
from django.test import Client

from qvp_site.db import engine

TOKEN = "metrics-token-for-tests"
DETAILS = {"engine", "timescaledb", "pgvector", "postgresql"}


@pytest.fixture
def metrics_token(settings):
    settings.QVP_METRICS_TOKEN = TOKEN
    return TOKEN


def test_anonymous_callers_get_the_status_only(client, db, metrics_token):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("header", ["Bearer wrong-token", "Token " + TOKEN, "Bearer"])
def test_a_wrong_token_gets_the_status_only(client, db, metrics_token, header):
    response = client.get("/healthz", HTTP_AUTHORIZATION=header)
    assert response.json() == {"status": "ok"}


def test_a_logged_in_user_who_is_not_staff_gets_the_status_only(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("quant"))
    assert client.get("/healthz").json() == {"status": "ok"}


def _check_details(body: dict) -> None:
    info = engine.detect()
    assert body["status"] == "ok"
    assert set(body) == {"status", *DETAILS}
    assert body["engine"] == info.engine
    assert body["pgvector"] == info.pgvector_version
    assert body["timescaledb"] == (info.timescaledb_version if info.is_timescaledb else None)
    assert body["postgresql"].split(".")[0].isdigit()


def test_staff_get_the_versions(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    _check_details(client.get("/healthz").json())


def test_the_metrics_token_gets_the_versions(client, db, metrics_token):
    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    _check_details(response.json())


def test_no_token_configured_opens_nothing(client, db, settings):
    settings.QVP_METRICS_TOKEN = ""
    assert client.get("/healthz", HTTP_AUTHORIZATION="Bearer ").json() == {"status": "ok"}


@pytest.fixture
def database_down(monkeypatch):
    def refuse(*args, **kwargs):
        raise OperationalError('connection to server at "db.internal" (10.1.2.3) refused')

    monkeypatch.setattr(engine, "detect", refuse)


def test_a_database_down_is_a_503_whose_error_only_staff_and_the_token_read(
    client, db, database_down, metrics_token, django_user_model
):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}

    response = client.get("/healthz", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 503
    assert response.json() == {
        "status": "unavailable",
        "error": 'connection to server at "db.internal" (10.1.2.3) refused',
    }

    staff = Client()
    staff.force_login(django_user_model.objects.create_user("ops", is_staff=True))
    assert "error" in staff.get("/healthz").json()


# --- The manifest of the static files --------------------------------------------------------
PRODUCTION_STORAGE = "whitenoise.storage.CompressedManifestStaticFilesStorage"


@pytest.fixture
def collected(tmp_path: Path, settings) -> Path:
    """A static root as collectstatic leaves it with the production storage: a file, its
    hashed copy, and the manifest naming it (written here: collecting every file is slow)."""
    settings.STORAGES = {**settings.STORAGES, "staticfiles": {"BACKEND": PRODUCTION_STORAGE}}
    settings.STATIC_ROOT = tmp_path
    (tmp_path / "qvp").mkdir()
    (tmp_path / "qvp" / "site.css").write_text("body {}\n")
    (tmp_path / "qvp" / "site.0123456789ab.css").write_text("body {}\n")
    manifest = {"paths": {"qvp/site.css": "qvp/site.0123456789ab.css"}, "version": "1.1"}
    for name in ("staticfiles.json", "staticfiles.json.gz", "staticfiles.json.br"):
        (tmp_path / name).write_text(json.dumps(manifest))
    return tmp_path


@pytest.mark.parametrize("debug", [False, True], ids=["production", "debug"])
def test_the_static_manifest_is_not_served(collected, settings, db, debug):
    # Under DEBUG WhiteNoise looks files up at each request (autorefresh) and with the finders.
    settings.DEBUG = debug
    client = Client()  # its handler loads the middleware with these settings
    assert client.get("/static/qvp/site.css").status_code == 200
    assert client.get("/static/qvp/site.0123456789ab.css").status_code == 200
    for name in ("staticfiles.json", "staticfiles.json.gz", "staticfiles.json.br"):
        response = client.get(f"/static/{name}", HTTP_ACCEPT_ENCODING="gzip, br")
        assert response.status_code == 404, name
        assert b"paths" not in response.content


def test_the_static_manifest_is_not_served_under_the_plain_storage_either(collected, settings, db):
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    assert Client().get("/static/staticfiles.json").status_code == 404
