"""Telling the database who acts, for the audit trail and row-level security to read.

Each request and command runs in a transaction that starts with
``set_config('qvp.user_id', ..., true)`` and ``set_config('qvp.actor', ..., true)``: local to
that transaction, so a pooled connection never carries one user's identity into another's.
A program or command with no user acts as ``system:<name>``, which row-level security lets
read and write every account (see ``trading/sql/security/0003.sql``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction
from django.urls import Resolver404, resolve
from rest_framework.authentication import SessionAuthentication

from qvp_site import replicas
from qvp_site.tokens import ApiTokenAuthentication

SYSTEM_PREFIX = "system:"


def declare(user=None, *, actor: str | None = None, using: str = "default") -> None:
    """Tell the database that ``user`` (or the system ``actor``) acts in this transaction."""
    connection = connections[using]
    if not connection.in_atomic_block:
        raise RuntimeError("declare() outside a transaction would be forgotten at once")
    if user is not None and user.is_authenticated:
        user_id, label = str(user.pk), user.get_username()
    else:
        user_id, label = "", f"{SYSTEM_PREFIX}{actor}" if actor else ""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true)",
            [user_id, label],
        )


@contextmanager
def acting_as(actor: str, user=None, using: str = "default") -> Iterator[None]:
    """A transaction in which a command (``actor``) or a user acts."""
    with transaction.atomic(using=using):
        declare(user, actor=actor, using=using)
        yield


class ActingUserMiddleware:
    """Each request of a logged-in user or a program with a token is one transaction that
    starts by naming who acts; a response of 400 or more rolls it back, so a refused request
    leaves nothing behind (DRF's refusals are responses, not exceptions, by the time they get
    here). Programs that log in by token are named by DRF's authentication below, once DRF
    knows them. Anonymous requests (the login page, /healthz) need neither.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _non_atomic(request) or not _identified(request):
            return self.get_response(request)
        # Read-only requests read a replica when there are some (qvp_site/replicas.py).
        with transaction.atomic(), replicas.request_routing(request):
            if request.user.is_authenticated:
                _declare_request_user(request.user)
                request._qvp_declared = request.user.pk
            response = self.get_response(request)
            if response.status_code >= 400:
                transaction.set_rollback(True)
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
