"""Fixtures of other test packages the notebook's test needs: the live server's connections
closed after it (tests/client); the research role's password is tests/conftest.py's."""

from tests.client.conftest import no_connection_left  # noqa: F401
