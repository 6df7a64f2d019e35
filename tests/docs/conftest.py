"""Fixtures of other test packages the notebook's test needs: the live server's connections
closed after it (tests/client), and the research role's password and URL (tests/qvp_site)."""

from tests.client.conftest import no_connection_left  # noqa: F401
from tests.qvp_site.test_research_role import research_role_password  # noqa: F401
