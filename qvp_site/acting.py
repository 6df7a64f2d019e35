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

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connections, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework.authentication import SessionAuthentication

from qvp_site import replicas, time_limits
from qvp_site.tokens import ApiTokenAuthentication

SYSTEM_PREFIX = "system:"


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
                if not time_limits.cancelled(error):
                    raise
                return cancelled_response(request, error)

    def _respond(self, request):
        if _non_atomic(request) or not _identified(request):
            return self.get_response(request)
        # Read-only requests read a replica when there are some (qvp_site/replicas.py).
        with transaction.atomic(), replicas.request_routing(request) as routing:
            if request.user.is_authenticated:
                _declare_request_user(request.user)  # with the request's time limit
                request._qvp_declared = request.user.pk
            else:
                for alias in ["default", *([routing.replica] if routing else [])]:
                    limit_transaction(alias)
            response = self.get_response(request)
            if response.status_code >= 400:
                transaction.set_rollback(True)
            return response

    def process_exception(self, request, exception):
        """A view's (or DRF's) statement cancelled: 503, and the request's transactions are
        rolled back (one whose statement failed cannot commit anyway)."""
        if not time_limits.cancelled(exception):
            return None
        for connection in connections.all(initialized_only=True):
            if connection.in_atomic_block:
                transaction.set_rollback(True, using=connection.alias)
        return cancelled_response(request, exception)


def cancelled_response(request: HttpRequest, error: BaseException) -> HttpResponse:
    """503 naming the limit: ``{detail, rule}`` for the API, as its other refusals, and a
    plain page for the dashboard and the admin; with Retry-After."""
    message = time_limits.message(time_limits.REQUEST, error)
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": message, "rule": time_limits.RULE}, status=503)
    else:
        response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(time_limits.RETRY_AFTER_SECONDS)
    return response


def _declare_request_user(user) -> None:
    """On the replica the request reads, if it reads one; else on the primary."""
    if not replicas.declare_request_user(user):
        declare(user)


def _identified(request) -> bool:
    return "HTTP_AUTHORIZATION" in request.META or request.user.is_authenticated


def _non_atomic(request) -> bool:
    """Views marked with ``transaction.non_atomic_requests`` (the health check) get none."""
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return False
    return "default" in getattr(view, "_non_atomic_requests", ())


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
    def authenticate(self, request):
        return _declared(request, super().authenticate(request))
