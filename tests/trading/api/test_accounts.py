"""/api/v1/accounts/: listed as granted; created by superusers only."""

from __future__ import annotations

import pytest

from tests.clients import client_of
from tests.fixtures.trading_api import post


@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", ["alpha"]), ("bob", ["beta"]), ("audrey", ["alpha", "beta"])],
)
def test_accounts_listed_are_those_granted(wall, user, expected):
    body = client_of(wall[user]).get("/api/v1/accounts/").json()
    assert [a["name"] for a in body["results"]] == expected


def test_only_superusers_create_accounts(books, django_user_model):
    body = {"name": "gamma", "base_currency": "EUR", "groups": ["desk-alpha"]}
    assert (
        client_of(books["alice"]).post("/api/v1/accounts/", body, format="json").status_code == 403
    )
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    response = client_of(root).post("/api/v1/accounts/", body, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["groups"] == ["desk-alpha"]
    # The new account is alpha's desk's now.
    names = [
        a["name"] for a in client_of(books["alice"]).get("/api/v1/accounts/").json()["results"]
    ]
    assert names == ["alpha", "gamma"]
    bad = client_of(root).post("/api/v1/accounts/", {"name": "x", "base_currency": "eur"})
    assert (bad.status_code, list(bad.json())) == (400, ["base_currency"])


def test_a_superuser_creates_an_account_under_the_application_role(
    books, as_app_role, django_user_model
):
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    body = post(client_of(root), "/api/v1/accounts/", {"name": "gamma", "groups": ["desk-beta"]})
    assert body["name"] == "gamma"  # today: 403, {"rule": "row_level_security"}
