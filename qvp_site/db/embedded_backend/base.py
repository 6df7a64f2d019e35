"""PostgreSQL on the embedded server, started when a connection first needs it.

Importing the settings starts nothing (a ``manage.py --help`` or a test collection needs no
server); whatever connects first (``manage.py migrate``, the web server, the test runner making
its database) starts the server, and a later connection that finds it stopped (``make db-stop``)
starts it again. A connection that fails for another reason fails as it would have.
"""

from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

import psycopg
from django.conf import settings
from django.db.backends.postgresql import base

from qvp_site.db import embedded, postmaster

logger = logging.getLogger(__name__)


class DatabaseWrapper(base.DatabaseWrapper):
    # Whether this process has seen the server ask for passwords (an old cluster that trusted
    # every connection is upgraded by the first process that connects to it).
    _passwords_checked: ClassVar[bool] = False

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            connection = super().get_new_connection(conn_params)
        except psycopg.OperationalError:
            # Start the server, or make the site's database, then try once more. Retry even when
            # nothing was missing: the connection may have met a server another process was
            # starting ("the database system is starting up") that is ready by now.
            _ensure_running()
            connection = super().get_new_connection(conn_params)
        if not DatabaseWrapper._passwords_checked:
            # Running: only checks (once) that it asks; were it stopped a moment ago, it starts
            # as the site's settings say.
            archiving = embedded.site_archiving()
            try:
                embedded.start(settings.VAR_DIR, archiving=archiving)
            except postmaster.ServerError as error:
                connection.close()
                raise psycopg.OperationalError(str(error)) from error
            DatabaseWrapper._passwords_checked = True
            _say_if_archiving_differs(connection, archiving)
        return connection


def _say_if_archiving_differs(connection: Any, archiving: embedded.Archiving) -> None:
    """A warning when the running server archives otherwise than this process's settings say
    (`make test` and `make run` share it): read on the connection just made, any role may."""
    try:
        mode, folder = connection.execute(
            "SELECT current_setting('archive_mode'),"
            " current_setting('basic_archive.archive_directory', true)"
        ).fetchone()
        connection.rollback()
    except psycopg.Error as error:  # a warning's reading never fails the connection
        logger.warning("could not read the server's archiving settings: %s", error)
        connection.rollback()
        return
    if differs := embedded.archiving_differs(mode, folder, archiving):
        logger.warning(differs)


def _ensure_running() -> None:
    """``embedded.ensure_running`` for this process. The site's server processes (gunicorn's
    workers, the scheduler: ``QVP_EMBEDDED_MAY_INIT=0``, set by qvp_site/serve.py) start an
    existing cluster but never make one. A server that cannot start is a database error here
    (so /healthz answers its 503), its cause kept for ``manage.py`` to print in a line."""
    may_init = os.environ.get("QVP_EMBEDDED_MAY_INIT", "1") != "0"
    try:
        embedded.ensure_running(
            settings.VAR_DIR, settings.DATABASE_NAME, may_init=may_init,
            archiving=embedded.site_archiving(),
        )  # fmt: skip
    except postmaster.ServerError as error:
        raise psycopg.OperationalError(str(error)) from error
