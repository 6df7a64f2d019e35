"""Logins throttled per (user, address) with a doubling backoff (qvp_site/logins.py): the
dashboard's login form and the admin's, the answer naming when to try again, the lockouts in
the admin (auditors read-only), and the address never taken from a client's own header."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Group, Permission
from django.test import Client, RequestFactory
from django.utils import timezone

from qvp_site import logins
from qvp_site.auditors import AUDITORS

PASSWORD = "correct-horse-battery-staple"
ADDRESS_A = "198.51.100.7"
ADDRESS_B = "203.0.113.9"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD, is_staff=True)


@pytest.fixture
def limits(settings):
    """The defaults, spelled out so that the arithmetic below reads on its own."""
    settings.AXES_FAILURE_LIMIT = 5
    settings.QVP_LOGIN_BACKOFF = timedelta(minutes=1)
    settings.QVP_LOGIN_BACKOFF_MAX = timedelta(hours=1)
    return settings


def log_in(
    client: Client,
    password: str,
    address: str = ADDRESS_A,
    path: str = LOGIN,
    csrfmiddlewaretoken: str | None = None,
    **extra,
):
    data = {"username": "alice", "password": password}
    if csrfmiddlewaretoken is not None:
        data["csrfmiddlewaretoken"] = csrfmiddlewaretoken
    return client.post(path, data, REMOTE_ADDR=address, **extra)


def logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def wait(seconds: float, username: str = "alice") -> None:
    """As if ``seconds`` had passed since the pair's failures."""
    for attempt in AccessAttempt.objects.filter(username=username):
        attempt.attempt_time -= timedelta(seconds=seconds)
        attempt.save(update_fields=["attempt_time"])


def retry_after(response) -> int:
    return int(response["Retry-After"])


def test_forty_wrong_passwords_lock_the_pair_and_say_when_to_retry(client, alice, limits):
    answers = [log_in(client, f"guess-{n}") for n in range(40)]
    assert [r.status_code for r in answers[:4]] == [200] * 4
    assert b"did not match" in answers[0].content
    assert {r.status_code for r in answers[4:]} == {429}
    for response in answers[4:]:
        assert 55 <= retry_after(response) <= 60
        # The login page itself, naming the time to come back.
        assert b"Too many failed logins for this user from your address" in response.content
        assert b"Try again at " in response.content
        assert b" UTC (in 1 minute)" in response.content
        assert b'name="password"' in response.content
    # The refused attempts were not counted: the fifth failure locked, nothing after it.
    attempt = AccessAttempt.objects.get(username="alice")
    assert attempt.failures_since_start == 5


def test_the_record_keeps_no_password_nor_csrf_token(client, alice, limits):
    log_in(client, "hunter2-guess", csrfmiddlewaretoken="csrf-token-value")
    stored = AccessAttempt.objects.get(username="alice").post_data
    assert "hunter2-guess" not in stored
    assert "csrf-token-value" not in stored


def test_the_user_still_logs_in_from_another_address_and_others_from_this_one(
    client, alice, django_user_model, limits
):
    django_user_model.objects.create_user("bob", password=PASSWORD)
    for n in range(10):
        log_in(client, f"guess-{n}")
    assert log_in(client, PASSWORD).status_code == 429

    elsewhere = Client()
    response = log_in(elsewhere, PASSWORD, address=ADDRESS_B)
    assert response.status_code == 302
    assert logged_in(elsewhere)

    bob = Client()
    response = bob.post(LOGIN, {"username": "bob", "password": PASSWORD}, REMOTE_ADDR=ADDRESS_A)
    assert response.status_code == 302


def test_a_correct_password_while_locked_is_refused(client, alice, limits):
    for n in range(5):
        log_in(client, f"guess-{n}")
    response = log_in(client, PASSWORD)
    assert response.status_code == 429
    assert not logged_in(client)
    # Once the backoff is served, the right password logs in and the failures are forgotten.
    wait(61)
    response = log_in(client, PASSWORD)
    assert response.status_code == 302
    assert logged_in(client)
    assert not AccessAttempt.objects.filter(username="alice").exists()


def test_the_backoff_doubles_with_each_failure_after_a_lockout_up_to_its_cap(client, alice, limits):
    for n in range(5):
        response = log_in(client, f"guess-{n}")
    assert 55 <= retry_after(response) <= 60
    expected = 60
    for n in range(8):
        wait(expected + 1)  # the lockout is served: one more try is checked...
        response = log_in(client, f"again-{n}")
        assert response.status_code == 429  # ...fails, and locks for twice as long
        expected = min(expected * 2, 3600)
        assert expected - 5 <= retry_after(response) <= expected, n
        assert log_in(client, PASSWORD).status_code == 429  # still locked
    assert expected == 3600  # the cap was reached
    assert logins.backoff(10_000) == timedelta(hours=1)


def test_the_served_sites_role_records_reads_and_lifts_lockouts(as_app_role, client, alice, limits):
    """The site runs as trading_app (qvp_site/serve.py): it writes axes' tables itself."""
    codes = [log_in(client, f"guess-{n}").status_code for n in range(6)]
    assert codes == [200] * 4 + [429] * 2
    wait(61)
    assert log_in(client, "again").status_code == 429
    wait(121)
    assert log_in(client, PASSWORD).status_code == 302
    assert not AccessAttempt.objects.exists()


def test_guessing_from_a_logged_in_session_locks_too(client, alice, django_user_model, limits):
    """A 429 rolls back the request's transaction (qvp_site/acting.py): the lockout's answer is
    made outside it, so the failure that locked is kept."""
    client.force_login(django_user_model.objects.create_user("mallory", password=PASSWORD))
    codes = [log_in(client, f"guess-{n}").status_code for n in range(7)]
    assert codes == [200] * 4 + [429] * 3
    assert AccessAttempt.objects.get(username="alice").failures_since_start == 5


def test_the_admin_login_is_throttled_with_the_message_on_its_page(client, alice, limits):
    codes = [log_in(client, f"guess-{n}", path=ADMIN_LOGIN).status_code for n in range(6)]
    assert codes == [200] * 4 + [429] * 2
    response = log_in(client, PASSWORD, path=ADMIN_LOGIN)
    assert response.status_code == 429
    assert 1 <= retry_after(response) <= 60
    assert b"Try again at " in response.content
    assert b"Django administration" in response.content
    assert not logged_in(client)
    # The pair is the same whichever form it guessed through.
    assert log_in(client, PASSWORD).status_code == 429


def test_a_clients_own_x_forwarded_for_does_not_choose_its_address(client, alice, limits):
    codes = [
        log_in(client, f"guess-{n}", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}").status_code
        for n in range(7)
    ]
    assert codes == [200] * 4 + [429] * 3
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {ADDRESS_A}


def test_behind_a_proxy_the_address_is_the_one_the_proxy_appended(client, alice, limits):
    limits.REST_FRAMEWORK = {**limits.REST_FRAMEWORK, "NUM_PROXIES": 1}
    proxy = "10.0.0.2"
    for n in range(5):
        # The client wrote the first entry; the proxy appended the address it saw.
        log_in(client, f"guess-{n}", address=proxy, HTTP_X_FORWARDED_FOR=f"1.2.3.4, {ADDRESS_A}")
    assert AccessAttempt.objects.get().ip_address == ADDRESS_A
    assert (
        log_in(client, PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=ADDRESS_A).status_code == 429
    )
    other = log_in(Client(), PASSWORD, address=proxy, HTTP_X_FORWARDED_FOR=ADDRESS_B)
    assert other.status_code == 302
    # Text that is no address counts as the proxy, never as itself (nor as a 500).
    response = log_in(Client(), "wrong", address=proxy, HTTP_X_FORWARDED_FOR="not-an-address")
    assert response.status_code == 200
    assert AccessAttempt.objects.filter(ip_address=proxy).exists()


@pytest.fixture
def locked_alice(client, alice, limits):
    for n in range(5):
        log_in(client, f"guess-{n}")
    return AccessAttempt.objects.get(username="alice")


def test_staff_see_the_lockout_in_the_admin_and_lift_it(admin_client, locked_alice):
    response = admin_client.get("/admin/axes/accessattempt/")
    assert response.status_code == 200
    assert b"alice" in response.content
    assert ADDRESS_A.encode() in response.content
    assert b"locked until" in response.content.lower()
    page = response.content.decode()
    row = page[page.index(ADDRESS_A) :]
    assert '<td class="field-locked_until">-</td>' not in row.split("</tr>")[0]

    url = f"/admin/axes/accessattempt/{locked_alice.pk}/delete/"
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert log_in(Client(), PASSWORD).status_code == 302


def test_an_auditor_sees_the_lockout_and_cannot_delete_it(client, django_user_model, locked_alice):
    auditor = django_user_model.objects.create_user("audrey", password=PASSWORD, is_staff=True)
    auditor.groups.add(Group.objects.get(name=AUDITORS))
    # Whatever a group grants: every permission on axes' records.
    auditor.user_permissions.add(*Permission.objects.filter(content_type__app_label="axes"))
    client.force_login(auditor)

    listing = client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200
    assert b"alice" in listing.content
    assert b"delete_selected" not in listing.content
    assert client.get(f"/admin/axes/accessattempt/{locked_alice.pk}/change/").status_code == 200
    url = f"/admin/axes/accessattempt/{locked_alice.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    bulk = {"action": "delete_selected", "_selected_action": [locked_alice.pk], "post": "yes"}
    assert client.post("/admin/axes/accessattempt/", bulk).status_code == 403
    assert AccessAttempt.objects.filter(pk=locked_alice.pk).exists()


def test_the_api_takes_no_password(client, alice, settings):
    """No door of the API checks a password, so none needs a throttle of its own: HTTP basic
    credentials, right ones included, are not a login."""
    classes = settings.REST_FRAMEWORK["DEFAULT_AUTHENTICATION_CLASSES"]
    assert not any("Basic" in name for name in classes)
    basic = base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
    response = client.get("/api/v1/instruments/", HTTP_AUTHORIZATION=f"Basic {basic}")
    assert response.status_code in (401, 403)


def test_a_lockout_under_the_api_answers_detail_and_rule(db, limits):
    request = RequestFactory().post("/api/v1/anything/", REMOTE_ADDR=ADDRESS_A)
    AccessAttempt.objects.create(
        username="alice",
        ip_address=ADDRESS_A,
        user_agent="<unknown>",
        http_accept="*/*",
        path_info="/",
        failures_since_start=5,
        get_data="",
        post_data="",
    )
    response = logins.lockout_response(request, None, {"username": "alice"})
    assert response.status_code == 429
    assert 1 <= retry_after(response) <= 60
    body = json.loads(response.content)
    assert body["rule"] == logins.RULE
    assert body["detail"].startswith("Too many failed logins")


def test_a_password_checked_without_a_request_is_not_throttled(alice, limits):
    from django.contrib.auth import authenticate

    assert authenticate(username="alice", password=PASSWORD) is not None
    assert authenticate(username="alice", password="wrong") is None
    assert not AccessAttempt.objects.exists()


def test_the_lockout_message_names_the_time_in_utc():
    now = timezone.now().replace(hour=10, minute=0, second=0, microsecond=0)
    message = logins.lockout_message(now + timedelta(seconds=150), now)
    assert "Try again at 10:02:30 UTC (in 3 minutes)." in message
