"""API clients for tests."""

from __future__ import annotations

from rest_framework.test import APIClient


def client_of(user) -> APIClient:
    """A session client: the middleware and DRF name the user to the database, as the site
    does, so row-level security sees who acts."""
    client = APIClient()
    client.force_login(user)
    return client


def user_in(name: str, *groups: str, **fields):
    """A user in the named groups (made when missing)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(name, **fields)
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user
