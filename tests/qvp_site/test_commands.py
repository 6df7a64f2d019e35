"""Set-up commands: prepare_site (what `make run` calls) and the embedded server."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import call_command

from marketdata.models import Instrument


@pytest.fixture
def prepared(db, monkeypatch, settings, tmp_path):
    # An instrument makes the database non-empty, so seed_demo --if-empty (tested on its own)
    # leaves it alone and these tests stay fast.
    Instrument.objects.create(symbol="KEEP", asset_class="equity")
    # The audit signing key it makes goes to the test's folder, not the site's var/.
    settings.QVP_AUDIT_SIGNING_KEY = ""
    settings.QVP_AUDIT_SIGNING_KEY_FILE = tmp_path / "secrets" / "audit_signing_key"
    settings.QVP_AUDIT_PUBLIC_KEYS = tmp_path / "audit" / "public_keys.json"

    def run(password: str | None) -> str:
        if password is None:
            monkeypatch.delenv("QVP_ADMIN_PASSWORD", raising=False)
        else:
            monkeypatch.setenv("QVP_ADMIN_PASSWORD", password)
        out = StringIO()
        call_command("prepare_site", stdout=out)
        return out.getvalue()

    return run


def test_prepare_site_generates_an_admin_password_once_and_prints_it(prepared):
    text = prepared(None)
    password = text.split("with password ")[1].split(" ")[0]
    assert len(password) >= 12
    assert authenticate(username="admin", password=password) is not None
    again = prepared(None)
    assert password not in again
    assert authenticate(username="admin", password=password) is not None


def test_prepare_site_makes_the_audit_signing_key_once(prepared, settings):
    prepared(None)
    key = settings.QVP_AUDIT_SIGNING_KEY_FILE.read_bytes()
    assert settings.QVP_AUDIT_SIGNING_KEY_FILE.stat().st_mode & 0o077 == 0
    prepared(None)
    assert settings.QVP_AUDIT_SIGNING_KEY_FILE.read_bytes() == key
    assert len(json.loads(settings.QVP_AUDIT_PUBLIC_KEYS.read_text())) == 1


def test_prepare_site_takes_the_password_from_the_environment(prepared):
    text = prepared("correct-horse-battery-staple")
    assert "correct-horse" not in text
    assert authenticate(username="admin", password="correct-horse-battery-staple") is not None
    assert authenticate(username="admin", password="admin") is None


@pytest.mark.embedded
def test_the_embedded_server_is_under_var_and_listens_on_a_socket_only(db):
    out = StringIO()
    call_command("embedded_db", "status", stdout=out)
    assert f"data {settings.VAR_DIR.resolve() / 'pgdata'}" in out.getvalue()
    assert settings.DATABASES["default"]["HOST"].startswith("/")


@pytest.mark.parametrize(
    ("cover", "message"),
    [
        (["2024-13-01", "2024-12-31"], r"argument --cover: .*is not an ISO date or time"),
        (["2024-06-01", "2024-01-01"], "START is after END"),
    ],
)
def test_maintain_refuses_a_bad_cover(db, cover, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("maintain", "--cover", *cover, stdout=StringIO())
