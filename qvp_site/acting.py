"""Telling the database who acts, for the audit trail and row-level security to read.

Each request and command runs in a transaction that starts with
``set_config('qvp.user_id', ..., true)`` and ``set_config('qvp.actor', ..., true)``: local to
that transaction, so a pooled connection never carries one user's identity into another's.
A program or command with no user acts as ``system:<name>``, which row-level security lets
read and write every account (see ``trading/sql/security.sql``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connections, transaction
from django.urls import Resolver404, resolve
from rest_framework.authentication import SessionAuthentication, TokenAuthentication

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
    """Each request is one transaction that starts by naming the logged-in user.

    ATOMIC_REQUESTS wraps the view in a savepoint inside it, so a view's exception undoes the
    view's writes; a response of 500 or more rolls the whole transaction back. API clients that
    log in by token are named again by DRF's authentication below, once DRF knows them.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if _non_atomic(request):
            return self.get_response(request)
        with transaction.atomic():
            declare(request.user)
            response = self.get_response(request)
            if response.status_code >= 500:
                transaction.set_rollback(True)
            return response


def _non_atomic(request) -> bool:
    """Views marked with ``transaction.non_atomic_requests`` (the health check) get none."""
    try:
        view = resolve(request.path_info).func
    except Resolver404:
        return False
    return "default" in getattr(view, "_non_atomic_requests", ())


def _declared(result):
    if result is not None and connections["default"].in_atomic_block:
        declare(result[0])
    return result


class ActingSessionAuthentication(SessionAuthentication):
    def authenticate(self, request):
        return _declared(super().authenticate(request))


class ActingTokenAuthentication(TokenAuthentication):
    def authenticate(self, request):
        return _declared(super().authenticate(request))
