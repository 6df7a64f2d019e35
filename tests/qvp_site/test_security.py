"""The API under attack: tokens kept hashed, throttles, body limits, security headers, and the
production settings passing Django's deployment checks."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Group, Permission
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from qvp_site.models import ApiToken
from qvp_site.parsers import REASON
from qvp_site.tokens import create_token, digest
from trading.querysets import AUDITORS

URL = "/api/v1/instruments/"


@pytest.fixture
def bob(django_user_model):
    user = django_user_model.objects.create_user("bob")
    # Backtests are written with the model's permission (a bad body is then a 400).
    user.user_permissions.add(Permission.objects.get(codename="add_backtestrun"))
    return user


def client_with(key: str, keyword: str = "Token") -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"{keyword} {key}")
    return client


def rates(settings, **rate):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"anon": "1000/minute", "user": "1000/minute", **rate},
    }


def test_a_token_made_by_command_works_and_only_its_digest_is_kept(bob):
    out, err = StringIO(), StringIO()
    call_command(
        "api_token", "create", "bob", "risk notebook", "--days", "30", stdout=out, stderr=err
    )
    key = out.getvalue().strip()
    assert key.startswith("qvp_")
    assert "shown once" in err.getvalue()
    token = ApiToken.objects.get()
    assert token.digest == digest(key)
    assert token.expires_at > timezone.now() + timedelta(days=29)
    with connection.cursor() as cursor:  # the key is in no column of the table
        cursor.execute(
            "SELECT count(*) FROM qvp_site_apitoken t WHERE t::text LIKE %s", [f"%{key}%"]
        )
        assert cursor.fetchone()[0] == 0
    assert client_with(key).get(URL).status_code == 200
    assert client_with(key, "Bearer").get(URL).status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None


def test_revoked_expired_and_inactive_tokens_are_refused(bob):
    token, key = create_token(bob, "program")
    assert client_with(key).get(URL).status_code == 200
    call_command("api_token", "revoke", str(token.pk), stdout=StringIO())
    assert client_with(key).get(URL).status_code in (401, 403)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert token.revoked_by == "command:api_token"
    with pytest.raises(CommandError, match="revoked already"):
        call_command("api_token", "revoke", str(token.pk))

    _, expired = create_token(bob, "old", expires_at=timezone.now() - timedelta(seconds=1))
    assert client_with(expired).get(URL).status_code in (401, 403)
    _, fresh = create_token(bob, "fresh")
    bob.is_active = False
    bob.save()
    assert client_with(fresh).get(URL).status_code in (401, 403)


def test_the_list_shows_tokens_without_their_keys(bob):
    token, key = create_token(bob, "loader")
    gone, _ = create_token(bob, "gone")
    ApiToken.objects.filter(pk=gone.pk).update(revoked_at=timezone.now(), revoked_by="x")
    out = StringIO()
    call_command("api_token", "list", stdout=out)
    assert "loader" in out.getvalue()
    assert token.prefix in out.getvalue()
    assert key not in out.getvalue()
    assert "gone" not in out.getvalue()
    out = StringIO()
    call_command("api_token", "list", "--all", "--user", "bob", stdout=out)
    assert "gone" in out.getvalue()
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("api_token", "create", "nobody", "x")


def test_the_admin_adds_a_token_shows_its_key_once_and_revokes(admin_client, bob):
    response = admin_client.post(
        "/admin/qvp_site/apitoken/add/", {"user": bob.pk, "name": "feed"}, follow=True
    )
    assert response.status_code == 200
    token = ApiToken.objects.get(name="feed")
    shown = [str(m) for m in response.context["messages"]]
    key = next(word for m in shown for word in m.split() if word.startswith("qvp_"))
    assert token.digest == digest(key)
    assert token.created_by == "admin"
    assert client_with(key).get(URL).status_code == 200
    admin_client.post(
        "/admin/qvp_site/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [token.pk]},
    )
    token.refresh_from_db()
    assert token.revoked_by == "admin"
    assert client_with(key).get(URL).status_code in (401, 403)
    change = admin_client.get(f"/admin/qvp_site/apitoken/{token.pk}/change/")
    assert key.encode() not in change.content


def test_an_auditor_cannot_add_tokens(client, django_user_model):
    audrey = django_user_model.objects.create_user("audrey", is_staff=True)
    audrey.groups.add(Group.objects.get(name=AUDITORS))
    client.force_login(audrey)
    assert client.get("/admin/qvp_site/apitoken/").status_code == 200
    assert client.get("/admin/qvp_site/apitoken/add/").status_code == 403


def test_a_user_past_the_rate_is_told_to_wait(bob, settings):
    rates(settings, user="3/minute")
    _, key = create_token(bob, "busy")
    client = client_with(key)
    assert [client.get(URL).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert int(client.get(URL)["Retry-After"]) > 0


def test_requests_without_a_user_are_counted_per_address_wrong_keys_too(db, settings):
    rates(settings, anon="3/minute")
    guesser = client_with("qvp_wrong")
    assert [guesser.get(URL).status_code for _ in range(3)] == [403, 403, 403]
    assert guesser.get(URL).status_code == 429
    assert APIClient().get(URL).status_code == 429  # same address, no key at all
    other = APIClient(REMOTE_ADDR="10.0.0.9")
    assert other.get(URL).status_code == 403  # refused, but not throttled


def test_a_body_over_the_limit_is_refused_before_it_is_read(bob, settings):
    settings.QVP_MAX_REQUEST_BODY = 100
    _, key = create_token(bob, "big")
    response = client_with(key).post(
        "/api/v1/bars/", data="[" + "1," * 100 + "1]", content_type="application/json"
    )
    assert response.status_code == 413
    assert "exceeds 100 bytes" in response.json()["detail"]


def test_pages_carry_the_security_headers(client, db):
    response = client.get("/accounts/login/")
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def _django(code: str, **env: str) -> subprocess.CompletedProcess:
    """``code`` run by a fresh Python with the settings loaded from ``env``."""
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "QVP_", "DATABASE_URL"))
    }
    environment.update(env, DJANGO_SETTINGS_MODULE="qvp_site.settings")
    return subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=django_settings.BASE_DIR,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )


PRODUCTION = {
    "QVP_PRODUCTION": "true",
    "DJANGO_SECRET_KEY": "x" * 20 + "-a-long-random-production-secret-key-for-the-check",
    "DJANGO_ALLOWED_HOSTS": "qvp.example.com",
    "DATABASE_URL": "postgresql://qvp:secret@db.example.com:5432/qvp?sslmode=verify-full",
}


def test_the_production_settings_pass_the_deployment_checks():
    done = _django(
        "from django.core.management import call_command;"
        " call_command('check', '--deploy', '--fail-level', 'WARNING')",
        **PRODUCTION,
    )
    assert done.returncode == 0, done.stderr
    assert "no issues" in done.stdout


def test_sslmode_from_the_database_url_reaches_the_connection():
    done = _django(
        "from django.conf import settings; print(settings.DATABASES['default']['OPTIONS'])",
        **PRODUCTION,
    )
    assert done.returncode == 0, done.stderr
    assert "'sslmode': 'verify-full'" in done.stdout


def test_the_admin_lives_where_it_is_told():
    code = "from django.urls import reverse; print(reverse('admin:index'))"
    moved = _django(code, **PRODUCTION, QVP_ADMIN_URL="ops/desk-admin/")
    assert moved.stdout.strip() == "/ops/desk-admin/", moved.stderr
    refused = _django(code, **PRODUCTION, QVP_ADMIN_URL="/admin")
    assert "QVP_ADMIN_URL is a path like" in refused.stderr


@pytest.mark.parametrize(
    ("body", "refused"),
    [
        (
            '{"strategy": "x", "trades": [{"instrument": "SPY\\u0000"}]}',
            {"trades": [f"[0].instrument: {REASON}"]},
        ),
        ('{"strategy": "\\ud8c7"}', {"strategy": [REASON]}),
        ('[{"a": 1}, {"exec_id": "e\\u0000"}]', {"1": {"exec_id": [REASON]}}),
        ('{"a\\u0000": 1}', {"non_field_errors": [f"a key in it {REASON}"]}),
    ],
)
def test_text_the_database_cannot_store_is_a_400_naming_the_field(bob, body, refused):
    # Found by the fuzz test: a NUL in a symbol looked up by a related field was a 500.
    _, key = create_token(bob, "nul")
    response = client_with(key).post(
        "/api/v1/backtests/", data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json() == refused


def test_a_client_cannot_choose_the_address_it_is_counted_under(db, settings):
    # Found in review: without NUM_PROXIES, DRF took the client's own X-Forwarded-For.
    rates(settings, anon="2/minute")
    statuses = [
        APIClient(HTTP_X_FORWARDED_FOR=f"10.9.9.{n}").get(URL).status_code for n in range(3)
    ]
    assert statuses == [403, 403, 429]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("/instruments/A%00B/", "the path"),  # a page's symbol, looked up as it is
        ("/api/v1/bars/?symbol=AAPL%00", "query parameter 'symbol'"),
        ("/portfolio/?account=1&x%00=2", "a query parameter's name"),
    ],
)
def test_a_nul_in_the_path_or_a_query_parameter_is_a_400_not_a_500(bob, url, says):
    client = APIClient()
    client.force_login(bob)
    response = client.get(url)
    assert response.status_code == 400
    if url.startswith("/api/"):  # the API's refusals name the field
        assert response.json() == {"symbol": [REASON]}
    else:
        assert response.content.decode() == f"{says} {REASON}"
