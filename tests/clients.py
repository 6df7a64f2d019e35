"""API clients for tests."""

from __future__ import annotations

from rest_framework.test import APIClient


def client_of(user) -> APIClient:
    """A session client: the middleware and DRF name the user to the database, as the site
    does, so row-level security sees who acts."""
    client = APIClient()
    client.force_login(user)
    return client
