"""Each request names who acts to the database, in a transaction of its own."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.db import connection
from django.http import HttpResponse
from django.test import RequestFactory
from rest_framework.test import APIClient

from marketdata.api import InstrumentViewSet
from qvp_site.acting import ActingUserMiddleware, acting_as, declare
from qvp_site.tokens import create_token


def settings_seen() -> tuple[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('qvp.user_id', true), current_setting('qvp.actor', true)"
        )
        return cursor.fetchone()


def run_middleware(user, status=200, path="/"):
    seen = {}

    def view(request):
        seen["settings"] = settings_seen()
        Group.objects.create(name="written-by-the-request")
        return HttpResponse(status=status)

    request = RequestFactory().get(path)
    request.user = user
    ActingUserMiddleware(view)(request)
    return seen.get("settings")


def test_a_logged_in_request_names_its_user(django_user_model, db):
    alice = django_user_model.objects.create_user("alice")
    assert run_middleware(alice) == (str(alice.pk), "alice")
    assert Group.objects.filter(name="written-by-the-request").exists()


def test_a_refused_request_leaves_nothing(django_user_model, db):
    alice = django_user_model.objects.create_user("alice")
    run_middleware(alice, status=400)
    assert not Group.objects.filter(name="written-by-the-request").exists()


def test_the_name_is_forgotten_with_the_transaction(django_user_model, transactional_db):
    alice = django_user_model.objects.create_user("alice")
    run_middleware(alice)
    assert settings_seen() in ((None, None), ("", ""))


def test_anonymous_requests_name_nobody(db):
    assert run_middleware(AnonymousUser()) in ((None, None), ("", ""))


def test_a_token_names_its_user_through_drf(django_user_model, db, monkeypatch):
    bob = django_user_model.objects.create_user("bob")
    _, key = create_token(bob, "acting test")
    seen = []
    listing = InstrumentViewSet.list
    monkeypatch.setattr(
        InstrumentViewSet,
        "list",
        lambda *a, **kw: seen.append(settings_seen()) or listing(*a, **kw),
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.get("/api/v1/instruments/").status_code == 200
    assert seen == [(str(bob.pk), "bob")]


def test_commands_act_as_the_system(db):
    with acting_as("import_executions"):
        assert settings_seen() == ("", "system:import_executions")


def test_declare_outside_a_transaction_is_an_error(transactional_db):
    with pytest.raises(RuntimeError, match="outside a transaction"):
        declare(None, actor="x")
