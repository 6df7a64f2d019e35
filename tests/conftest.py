"""Shared test setup: engine-dependent skips with their reasons."""

from __future__ import annotations

import pytest
from django.conf import settings

from qvp_site.db import engine


@pytest.fixture(autouse=True)
def _plain_static_files(settings):
    """Pages render without collectstatic having run: the manifest storage is production's."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


@pytest.fixture(autouse=True)
def _engine_markers(request):
    """``@pytest.mark.timescaledb`` runs only where the database has TimescaleDB;
    ``@pytest.mark.embedded`` only on the embedded server."""
    if request.node.get_closest_marker("embedded") and not settings.EMBEDDED_DATABASE:
        pytest.skip("needs the embedded server; DATABASE_URL points elsewhere")
    if request.node.get_closest_marker("timescaledb"):
        request.getfixturevalue("db")
        if not engine.is_timescaledb():
            pytest.skip("needs TimescaleDB; this database is plain PostgreSQL")


@pytest.fixture
def timescaledb(db) -> bool:
    """Whether the test database uses the TimescaleDB engine."""
    return engine.is_timescaledb()
