"""Telling the database who acts, for the audit trail and row-level security to read.

Each request and command runs in a transaction that starts with
``set_config('qvp.user_id', ..., true)`` and ``set_config('qvp.actor', ..., true)``: local to
that transaction, so a pooled connection never carries one user's identity into another's.
A program or command with no user acts as ``system:<name>``, which row-level security lets
read and write every account (see ``trading/sql/security/0003.sql``).

The same statement sets the transaction's time limit, ``set_config('statement_timeout', ...,
true)``: a request's, a stream's, a command's or the scheduler's (``qvp_site/time_limits.py``),
at no extra round trip. A request whose statement runs past its limit answers 503 naming the
limit, with Retry-After, never a 500, and its transaction is rolled back.
"""

from __future__ import annotations

import logging
import select
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache, lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, models, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, URLResolver, get_resolver, get_urlconf
from psycopg import pq
from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication, get_authorization_header

from qvp_site import replicas, time_limits
from qvp_site.db import outages
from qvp_site.models import ApiToken
from qvp_site.tokens import ApiTokenAuthentication

SYSTEM_PREFIX = "system:"
UNAVAILABLE_RULE = "database_unavailable"
UNAVAILABLE_MESSAGE = (
    "the database could not serve the request (a server or, on a cluster, a worker is"
    " unavailable, or the request met a deadlock): the request did not complete; try again"
)
UNKNOWN_OUTCOME_MESSAGE = (
    "the database became unavailable while committing the request: whether its writes were"
    " kept is unknown; read them back before sending it again"
)

logger = logging.getLogger(__name__)


DECLARE_SQL = (
    "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true),"
    " set_config('statement_timeout', %s, true)"
)


def declaration(
    user=None, *, actor: str | None = None, limit: str | None = None
) -> tuple[str, list[str | None]]:
    """The statement and parameters of ``declare``: for a connection Django does not hold
    (the bulk reader's, ``qvp_site.api.bulk.reader``)."""
    if user is not None and user.is_authenticated:
        user_id, label = str(user.pk), user.get_username()
    else:
        user_id, label = "", f"{SYSTEM_PREFIX}{actor}" if actor else ""
    return DECLARE_SQL, [user_id, label, time_limits.milliseconds(limit or time_limits.current())]


def declare(
    user=None, *, actor: str | None = None, using: str = "default", limit: str | None = None
) -> None:
    """Tell the database that ``user`` (or the system ``actor``) acts in this transaction, and
    how long each of its statements may take: ``limit``'s time (a context of
    ``qvp_site.time_limits``), by default the one the code runs in."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("declare() outside a transaction would be forgotten at once")
    with connection.cursor() as cursor:
        cursor.execute(*declaration(user, actor=actor, limit=limit))


def limit_transaction(using: str = "default") -> None:
    """The time limit of the context the code runs in, for the transaction open on ``using``,
    where nobody is named yet (a program's token is read later, by DRF)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT set_config('statement_timeout', %s, true)",
            [time_limits.milliseconds(time_limits.current())],
        )


@contextmanager
def acting_as(
    actor: str, user=None, using: str = "default", limit: str | None = None
) -> Iterator[None]:
    """A transaction in which a command (``actor``) or a user acts, within ``limit``'s time
    (by default the context's: a command's, the scheduler's)."""
    with transaction.atomic(using=using):
        declare(user, actor=actor, using=using, limit=limit)
        yield


class ActingUserMiddleware:
    """Each request of a logged-in user or a program with a token is one transaction that
    starts by naming who acts; a response of 400 or more rolls it back, so a refused request
    leaves nothing behind (DRF's refusals are responses, not exceptions, by the time they get
    here). Programs that log in by token are named by DRF's authentication below, once DRF
    knows them. Anonymous requests (the login page, /healthz) need neither: their statements
    run under the session's default limit (``time_limits.session_default``).

    Every statement of the request runs within QVP_REQUEST_STATEMENT_TIMEOUT; one cancelled
    (by the limit, or an operator) answers 503 naming the limit, and the transaction is
    rolled back.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        # Connections opened while serving take the request's limit as their session default.
        with time_limits.within(time_limits.REQUEST):
            try:
                return self._respond(request)
            except DatabaseError as error:  # in our own statements: not a view's exception
                answer = _unavailable_answer(request, error)
                if answer is None:
                    raise
                return answer

    def _respond(self, request):
        view = _view(request)
        if _non_atomic(view) or not _identified(request):
            return self.get_response(request)
        primary = connections["default"]
        spare_health_check(primary)
        primary._qvp_released_at = None  # type: ignore[attr-defined]  # until it ends cleanly
        # Read-only requests read a replica when there are some (qvp_site/replicas.py).
        with transaction.atomic(), replicas.request_routing(request) as routing:
            if request.user.is_authenticated:
                _declare_request_user(request.user)  # with the request's time limit
                request._qvp_declared = request.user.pk
            elif routing is None and _token_declares(request, view):
                # The token's lookup sets the limit and names its user in one statement
                # (ActingTokenAuthentication), the request's first: a round trip saved.
                request._qvp_token_declares = True
            else:
                for alias in ["default", *([routing.replica] if routing else [])]:
                    limit_transaction(alias)
            response = self.get_response(request)
            if response.status_code >= 400:
                transaction.set_rollback(True)
            else:
                request._qvp_committing = True  # what fails from here on fails the commit
        primary._qvp_released_at = time.monotonic()  # type: ignore[attr-defined]
        return response

    def process_exception(self, request, exception):
        """A view's (or DRF's) statement cancelled, or the database gone from under it: 503,
        and the request's transactions are rolled back (one whose statement failed cannot
        commit anyway)."""
        answer = _unavailable_answer(request, exception)
        if answer is None:
            return None
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block:
                transaction.set_rollback(True, using=connection.alias)
        return answer


def _unavailable_answer(request: HttpRequest, error: BaseException) -> HttpResponse | None:
    """503 for a statement cancelled (its limit named) or for a database that could not
    serve (OperationalError: the server restarting, a connection lost, on Citus a worker
    down, a deadlock); None for any other error, a bug, which stays a 500."""
    if time_limits.cancelled(error):
        return cancelled_response(request, error)
    if not outages.is_outage(error):
        return None
    # The cause (a worker's address, say) goes to the log, not to the client.
    logger.warning("request %s answered 503: %s", request.path_info, error)
    if getattr(request, "_qvp_committing", False):
        # Gone during the commit: whether the request's writes were kept is unknown, and a
        # client that sent them again could write them twice. No Retry-After.
        return unavailable_response(request, UNKNOWN_OUTCOME_MESSAGE, UNAVAILABLE_RULE, retry=False)
    return unavailable_response(request, UNAVAILABLE_MESSAGE, UNAVAILABLE_RULE)


# How long after a request ended cleanly on a connection the next one may take it without
# Django's health check (CONN_HEALTH_CHECKS: a ``SELECT 1`` round trip before each request's
# first statement), provided nothing has arrived on its socket since (``spare_health_check``).
QUIET_REUSE_SECONDS = 5.0


def spare_health_check(connection: Any) -> None:  # the stubs lack the health-check fields
    """Mark ``connection`` as checked, sparing the request Django's ``SELECT 1``, when its
    previous request ended cleanly (committed or rolled back, no error since) less than
    ``QUIET_REUSE_SECONDS`` ago and its socket has nothing to read: a server that ends a
    connection (a restart, pg_terminate_backend, an idle timeout, PgBouncer's) writes its
    FATAL message or closes the socket, which makes it readable. Whatever else made it
    readable (a notice, a parameter's new value), and any other case, gets Django's check as
    before. (A network path that died without a word fails the SELECT 1 no sooner: both wait
    for TCP to give up.)"""
    raw = connection.connection
    released = getattr(connection, "_qvp_released_at", None)
    if (
        raw is None
        or released is None
        or connection.health_check_done
        or not connection.health_check_enabled
        or connection.errors_occurred
        or time.monotonic() - released > QUIET_REUSE_SECONDS
        or raw.closed
        or raw.broken
        or raw.info.transaction_status != pq.TransactionStatus.IDLE
    ):
        return
    quiet = select.poll()
    quiet.register(raw.fileno(), select.POLLIN | select.POLLPRI)
    if not quiet.poll(0):  # neither data, nor EOF, nor an error
        connection.health_check_done = True


def cancelled_response(request: HttpRequest, error: BaseException) -> HttpResponse:
    """503 naming the limit."""
    message = time_limits.message(time_limits.REQUEST, error)
    return unavailable_response(request, message, time_limits.RULE)


def unavailable_response(
    request: HttpRequest, message: str, rule: str, *, retry: bool = True
) -> HttpResponse:
    """503: ``{detail, rule}`` for the API, as its other refusals, and a plain page for the
    dashboard and the admin; with Retry-After unless sending it again is unsafe."""
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": message, "rule": rule}, status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    if retry:
        response["Retry-After"] = str(time_limits.RETRY_AFTER_SECONDS)
    return response


def _declare_request_user(user) -> None:
    """On the replica the request reads, if it reads one; else on the primary."""
    if not replicas.declare_request_user(user):
        declare(user)


def _identified(request) -> bool:
    return "HTTP_AUTHORIZATION" in request.META or request.user.is_authenticated


def _view(request) -> Callable[..., Any] | None:
    """The view the handler will resolve the path to (it resolves it again: Django's)."""
    return _view_by(get_resolver(get_urlconf()), request.path_info)


# Resolving a path of the API tries some 30 patterns, one by one: its view is remembered, for
# as many paths as a worker meets often. By resolver, which Django makes anew whenever the
# URLs change (ROOT_URLCONF, clear_url_caches).
@lru_cache(maxsize=512)
def _view_by(resolver: URLResolver, path: str) -> Callable[..., Any] | None:
    try:
        return resolver.resolve(path).func
    except Resolver404:
        return None


def _non_atomic(view: Callable[..., Any] | None) -> bool:
    """Views marked with ``transaction.non_atomic_requests`` (the health check) get none."""
    return "default" in getattr(view, "_non_atomic_requests", ())


def _token_declares(request, view: Callable[..., Any] | None) -> bool:
    """Whether the request's first statement will be ActingTokenAuthentication's lookup,
    which sets the request's limit itself: an API view whose authenticators before it are
    the session's only (they read no database for a request without a session), and a
    token in the Authorization header. Anything else gets its limit here."""
    # Split as DRF splits it (bytes, ASCII whitespace): a keyword it would not see, behind a
    # no-break space say, must not leave the request's limit to a lookup that never runs.
    words = get_authorization_header(request).split()
    if (
        not words
        or words[0].lower().decode(errors="replace") not in ApiTokenAuthentication.keywords
    ):
        return False
    from rest_framework.views import APIView  # here: DRF's settings import this module

    view_class = getattr(view, "cls", None)
    if not (isinstance(view_class, type) and issubclass(view_class, APIView)):
        return False
    for authenticator in view_class.authentication_classes:
        if issubclass(authenticator, ActingTokenAuthentication):
            return True
        if not issubclass(authenticator, SessionAuthentication):
            return False
    return False


def _declared(request, result):
    """Name DRF's user to the database, unless the middleware already named the same one."""
    if result is None or not connections["default"].in_atomic_block:
        return result
    user = result[0]
    if getattr(request._request, "_qvp_declared", None) != user.pk:
        _declare_request_user(user)
        request._request._qvp_declared = user.pk
    return result


class ActingSessionAuthentication(SessionAuthentication):
    def authenticate(self, request):
        return _declared(request, super().authenticate(request))


class ActingTokenAuthentication(ApiTokenAuthentication):
    """A token's user named to the database: in the statement that finds the token when
    ActingUserMiddleware left the request's limit to it (``_token_declares``), else after."""

    declares = False

    def authenticate(self, request):
        self.declares = getattr(request._request, "_qvp_token_declares", False)
        if not self.declares:
            return _declared(request, super().authenticate(request))
        try:
            result = super().authenticate(request)
        except exceptions.APIException:  # refused (401), or throttled (429)
            # The lookup named the token's user only if the token was valid then; should
            # it have expired since, the request is refused and nobody stays named. (A
            # refusal before the lookup sets the request's limit here.)
            declare(None)
            raise
        if result is None:  # no lookup ran after all: the request's limit, nobody named
            declare(None)
        else:
            request._request._qvp_declared = result[0].pk
        return result

    def _find(self, key_digest: str) -> ApiToken | None:
        if not self.declares:
            return super()._find(key_digest)
        limit = time_limits.milliseconds(time_limits.current())
        with connections["default"].cursor() as cursor:
            cursor.execute(_token_statement(), [limit, key_digest])
            row = cursor.fetchone()
        return _token_of(row)


@cache
def _token_statement() -> str:
    """One round trip: the request's time limit set; the token of a digest and its user
    found; that user named to the database (``DECLARE_SQL``'s settings) if the token is valid
    (not revoked, not expired, its user active), else nobody. One row, NULLs when no token
    has the digest."""
    user_model = get_user_model()
    columns = [f"t.{f.column}" for f in ApiToken._meta.concrete_fields]
    columns += [f"u.{f.column}" for f in user_model._meta.concrete_fields]
    username_field = user_model._meta.get_field(user_model.USERNAME_FIELD)
    assert isinstance(username_field, models.Field)  # a column, not a relation
    username = username_field.column
    return (
        "SELECT found.* FROM (SELECT set_config('statement_timeout', %s, true)) AS limited"
        f" LEFT JOIN LATERAL (SELECT {', '.join(columns)},"
        " set_config('qvp.user_id', CASE WHEN v.valid THEN u.id::text ELSE '' END, true),"
        f" set_config('qvp.actor', CASE WHEN v.valid THEN u.{username} ELSE '' END, true),"
        # The moment the expiry was judged by, for the application to judge it by too: by
        # its own clock, a lagging one would accept what the database named nobody for.
        " statement_timestamp()"
        f" FROM {ApiToken._meta.db_table} t JOIN {user_model._meta.db_table} u ON u.id = t.user_id"
        " CROSS JOIN LATERAL (SELECT t.revoked_at IS NULL AND u.is_active AND"
        " (t.expires_at IS NULL OR t.expires_at > statement_timestamp()) AS valid) v"
        " WHERE t.digest = %s) AS found ON true"
    )


def _token_of(row: tuple | None) -> ApiToken | None:
    """The token and its user, as Django would have loaded them, from ``_token_statement``'s
    row."""
    if row is None or row[0] is None:
        return None
    user_model = get_user_model()
    token_fields = [f.attname for f in ApiToken._meta.concrete_fields]
    user_fields = [f.attname for f in user_model._meta.concrete_fields]
    token = ApiToken.from_db("default", token_fields, row[: len(token_fields)])
    end = len(token_fields) + len(user_fields)
    token.user = user_model.from_db("default", user_fields, row[len(token_fields) : end])
    # statement_timestamp(), which ApiTokenAuthentication._now reads (not a field: no column)
    token.judged_at = row[-1]  # type: ignore[attr-defined]
    return token
