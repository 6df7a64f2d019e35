"""How long one statement may keep the database busy: PostgreSQL's ``statement_timeout``,
per context.

Four limits, in seconds (settings.py's "Time limits" block; 0 sets none of QVP's own, so the
server's default for the role applies, which is no limit unless a DBA set one):

- ``QVP_REQUEST_STATEMENT_TIMEOUT``: each statement of a web request;
- ``QVP_STREAM_STATEMENT_TIMEOUT``: each statement of a streamed response (the admin's CSV
  export), which runs after the view has returned and its request's transaction has ended,
  and the stream as a whole (``Deadline``);
- ``QVP_SCHEDULER_STATEMENT_TIMEOUT``: the scheduler's jobs and its sealer;
- ``QVP_COMMAND_STATEMENT_TIMEOUT``: every other ``manage.py`` command.

How each is applied, and why:

1. In each transaction, with ``set_config('statement_timeout', ..., true)``: local to that
   transaction, so behind PgBouncer in transaction pooling mode it ends with the transaction
   and never reaches the next client of that server connection. ``qvp_site.acting.declare``
   sets it in the same statement that names who acts, so a request or a command's transaction
   pays no extra round trip for it; ``ActingUserMiddleware`` opens every identified request's
   transaction that way. A value of NULL (a limit of 0) is ``SET LOCAL ... TO DEFAULT``: the
   server's own default, not "no limit" forced over a DBA's ``ALTER ROLE ... SET``.
2. As the session's default, once per new connection (``connection_created``), for the
   statements outside a transaction of ours: anonymous requests (the login page), /healthz
   (``transaction.non_atomic_requests``), a command's autocommit queries. Only on a direct
   connection: with ``QVP_TRANSACTION_POOLING`` a session ``SET`` would stay on the pooled
   server connection and apply to whichever client PgBouncer hands it next, so there it is
   left to the database (``ALTER ROLE trading_app SET statement_timeout = '30s'``) or to
   PgBouncer's ``query_timeout``. The transaction-local limit of (1) holds either way.

A connection takes the limit of the context it is opened in: a request's while
``ActingUserMiddleware`` serves one (``within(REQUEST)``), else the process's (``COMMAND``
unless ``for_process`` said otherwise: the scheduler says ``SCHEDULER``, gunicorn's workers
``REQUEST``, see ``qvp_site/gunicorn_conf.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created

REQUEST, STREAM, SCHEDULER, COMMAND = "request", "stream", "scheduler", "command"
SETTING = {
    REQUEST: "QVP_REQUEST_STATEMENT_TIMEOUT",
    STREAM: "QVP_STREAM_STATEMENT_TIMEOUT",
    SCHEDULER: "QVP_SCHEDULER_STATEMENT_TIMEOUT",
    COMMAND: "QVP_COMMAND_STATEMENT_TIMEOUT",
}
# statement_timeout is a 32-bit count of milliseconds.
MAX_SECONDS = 2_147_483
QUERY_CANCELED = "57014"
RULE = "statement_timeout"
# Asked of a client whose request was cancelled: long enough for a burst of load, or a lock a
# job held, to pass, rather than an immediate retry that adds to it.
RETRY_AFTER_SECONDS = 30
# A worker that handles one response for longer than the longest limit plus this is stuck
# (rendering, a slow client): gunicorn's timeout, see worker_timeout.
WORKER_MARGIN_SECONDS = 30

_context: ContextVar[str | None] = ContextVar("qvp_time_limit_context", default=None)
_process_context = COMMAND


def seconds(name: str, raw: str) -> float:
    """A limit read from the environment: a number of seconds, 0 for none of QVP's own."""
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number of seconds") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise ImproperlyConfigured(
            f"{name}={raw!r} must be a number of seconds from 0 (no limit) to {MAX_SECONDS}"
        )
    return value


def limit(context: str) -> float:
    """The limit of ``context`` in seconds, as settings hold it (0: none of QVP's own)."""
    return float(getattr(settings, SETTING[context]))


def milliseconds(context: str) -> str | None:
    """``statement_timeout``'s value for ``context``; None (the server's default) for 0."""
    value = limit(context)
    if not value:
        return None
    return str(max(1, round(value * 1000)))  # a limit under a millisecond is not "none"


def current() -> str:
    """The context the code runs in: a request's while one is served, else the process's."""
    return _context.get() or _process_context


@contextmanager
def within(context: str) -> Iterator[None]:
    """Connections opened and transactions declared inside take ``context``'s limit."""
    token = _context.set(context)
    try:
        yield
    finally:
        _context.reset(token)


def for_process(context: str) -> None:
    """This process serves ``context`` (the scheduler, gunicorn's workers): the connections
    it opens from now on take its limit, and so do those open already."""
    global _process_context
    _process_context = context
    if not settings.configured:
        return  # gunicorn's post_fork: nothing has connected yet
    for connection in connections.all(initialized_only=True):
        if connection.connection is not None and _sets_session_defaults(connection):
            _set_session_default(connection, milliseconds(context))


def _sets_session_defaults(connection) -> bool:
    return connection.vendor == "postgresql" and not settings.QVP_TRANSACTION_POOLING


def _set_session_default(connection, value: str | None) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('statement_timeout', %s, false)", [value])


def session_default(sender, connection, **kwargs) -> None:
    """``connection_created``: the context's limit as the new session's default, on a direct
    connection only (see the module's docstring)."""
    value = milliseconds(current())
    if value is not None and _sets_session_defaults(connection):
        _set_session_default(connection, value)


# Connected here, at import: settings.py imports this module, so every process that loads
# settings (the site, every command, the scheduler) has it before its first connection.
connection_created.connect(session_default, dispatch_uid="qvp_time_limits_session_default")


def cancelled(error: BaseException) -> bool:
    """Whether ``error`` is PostgreSQL cancelling a statement (57014, query_canceled): by
    statement_timeout, or by an operator's pg_cancel_backend."""
    cause = error.__cause__ if isinstance(error, DatabaseError) else None
    return getattr(cause, "sqlstate", None) == QUERY_CANCELED


def _primary(error: BaseException) -> str:
    cause = error.__cause__
    return getattr(getattr(cause, "diag", None), "message_primary", None) or str(cause)


def by_timeout(error: BaseException) -> bool:
    """Whether the cancellation was statement_timeout's ("canceling statement due to statement
    timeout"), not an operator's or a standby's."""
    return "statement timeout" in _primary(error)


def message(context: str, error: BaseException | None = None) -> str:
    """What a cancelled statement tells the client or the operator: the limit, by name."""
    if error is not None and not by_timeout(error):
        return f"the database cancelled the statement: {_primary(error)}"
    value = limit(context)
    if not value:
        return "the database took longer than its own statement_timeout allows"
    return f"the database took longer than the {context} limit of {value:g} s ({SETTING[context]})"


class TimeLimitExceeded(Exception):
    """A stream ran past its limit: raised into the server, which cuts the response short so
    the client sees an incomplete download rather than a file that looks whole."""


class Deadline:
    """The end of a stream's time: ``check`` raises TimeLimitExceeded once it has passed."""

    def __init__(self, context: str) -> None:
        self.context = context
        value = limit(context)
        self.at = time.monotonic() + value if value else None

    def check(self) -> None:
        if self.at is not None and time.monotonic() > self.at:
            raise TimeLimitExceeded(message(self.context))


def worker_timeout(request_seconds: float, stream_seconds: float) -> int:
    """gunicorn's timeout for a sync worker: the longest response the site serves (a request,
    or a stream as a whole) and a margin; 0, gunicorn's "never", when either has no limit."""
    if not request_seconds or not stream_seconds:
        return 0
    return math.ceil(max(request_seconds, stream_seconds)) + WORKER_MARGIN_SECONDS
