"""PostgreSQL on the embedded server, started when a connection first needs it.

Importing the settings starts nothing (a ``manage.py --help`` or a test collection needs no
server); whatever connects first (``manage.py migrate``, the web server, the test runner making
its database) starts the server, and a later connection that finds it stopped (``make db-stop``)
starts it again. A connection that fails for another reason fails as it would have.
"""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base

from qvp_site.db import embedded


class DatabaseWrapper(base.DatabaseWrapper):
    # Whether this process has seen the server ask for passwords (an old cluster that trusted
    # every connection is upgraded by the first process that connects to it).
    _passwords_checked: ClassVar[bool] = False

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            # Start the server, or make the site's database; retry only when one was missing.
            if not embedded.ensure_running(settings.VAR_DIR, settings.DATABASE_NAME):
                raise
            connection = super().get_new_connection(conn_params)
        if not DatabaseWrapper._passwords_checked:
            embedded.start(settings.VAR_DIR)  # running: only checks (once) that it asks
            DatabaseWrapper._passwords_checked = True
        return connection
