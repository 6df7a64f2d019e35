"""API clients for tests."""

from __future__ import annotations

from rest_framework.test import APIClient


class SiteClient(APIClient):
    """Posts as the site's own clients do: a page's form as a browser sends it (multipart),
    JSON to the API (the API reads nothing else: TEST_REQUEST_DEFAULT_FORMAT)."""

    def post(self, path, data=None, format=None, content_type=None, follow=False, **extra):
        if format is None and content_type is None and not str(path).startswith("/api/"):
            format = "multipart"
        return super().post(path, data, format, content_type, follow, **extra)


def client_of(user) -> APIClient:
    """A session client: the middleware and DRF name the user to the database, as the site
    does, so row-level security sees who acts."""
    client = SiteClient()
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
