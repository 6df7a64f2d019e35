"""Logins throttled per (user name, address) with a backoff that doubles, by django-axes.

Every password check goes through ``LoginThrottleBackend`` first (AUTHENTICATION_BACKENDS):
the dashboard's login form, the admin's, and anything else calling ``authenticate`` with a
request. Axes records each failure per user name, address and user agent
(``axes_accessattempt``); ``BackoffHandler`` adds the failures of one user name from one
address and decides:

* below ``AXES_FAILURE_LIMIT`` failures, logins are answered as usual;
* from the limit on, that user name is refused from that address, its password not even
  checked, until ``QVP_LOGIN_BACKOFF`` after the last failure, then twice that after the next
  failure, and so on up to ``QVP_LOGIN_BACKOFF_MAX``. A refused attempt is not counted (it
  would only push the time further for someone who is already waiting).

Only the pair is locked: the same user from another address, and other users from this
one, log in as usual, so that nobody can lock the admin out by guessing from elsewhere.
Failures are forgotten ``QVP_LOGIN_MEMORY`` after the last one, or at a successful login
from that address. The answer to a locked pair is a 429 with ``Retry-After`` (seconds) and a
message saying at what time to try again: the login page itself where the refusal came from
a login form, ``{detail, rule}`` on the API.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_credentials
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db.models import Max, QuerySet, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from rest_framework.settings import api_settings

# The API's refusals name the rule they apply (qvp_site/refusals.py).
RULE = "login_throttle"
# 2**30 times the first backoff is past any cap anyone sets: no bigger powers computed.
_MAX_DOUBLINGS = 30


def client_address(request: HttpRequest) -> str | None:
    """The address a login is counted under: the one DRF's throttles count requests under.

    Behind a proxy (DJANGO_BEHIND_PROXY, so NUM_PROXIES = 1) the proxy's last
    X-Forwarded-For entry, the peer it saw; else the peer's own address. What a client writes
    into X-Forwarded-For itself never chooses the address. An entry that is not an address (a
    proxy that does not append one) counts as the peer, the proxy, rather than as the text.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    proxies = api_settings.NUM_PROXIES or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if proxies and forwarded:
        entries = [entry.strip() for entry in forwarded.split(",")]
        candidate = entries[-min(proxies, len(entries))]
        if _is_address(candidate):
            return candidate
    return peer if peer is not None and _is_address(peer) else None


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def backoff(failures: int) -> timedelta:
    """How long a pair with this many failures waits after its last one (none below the
    limit): QVP_LOGIN_BACKOFF at the limit, doubling with each failure after it, capped."""
    beyond = failures - settings.AXES_FAILURE_LIMIT
    if beyond < 0:
        return timedelta(0)
    first: timedelta = settings.QVP_LOGIN_BACKOFF
    cap: timedelta = settings.QVP_LOGIN_BACKOFF_MAX
    return min(first * 2 ** min(beyond, _MAX_DOUBLINGS), cap)


@dataclass(frozen=True)
class Failures:
    """The remembered failures of one user name from one address."""

    count: int
    last: datetime | None

    @property
    def retry_at(self) -> datetime | None:
        """When the pair may try again; None while it is below the limit."""
        if self.last is None or self.count < settings.AXES_FAILURE_LIMIT:
            return None
        return self.last + backoff(self.count)

    def locked(self, now: datetime) -> bool:
        retry_at = self.retry_at
        return retry_at is not None and now < retry_at


def _remembered(attempts: QuerySet[AccessAttempt], now: datetime) -> Failures:
    # One row per user agent: a client changing its agent adds to the same count.
    totals = attempts.filter(attempt_time__gte=now - settings.QVP_LOGIN_MEMORY).aggregate(
        count=Sum("failures_since_start"), last=Max("attempt_time")
    )
    return Failures(count=totals["count"] or 0, last=totals["last"])


class BackoffHandler(AxesDatabaseHandler):
    """Axes' database handler, with the doubling backoff above as its rule of lockouts."""

    def failures(self, request: Any, credentials: dict[str, Any] | None = None) -> Failures:
        """The request's pair's failures (the worst one, were several parameters set)."""
        now = timezone.now()
        found = [_remembered(q, now) for q in self.filter_user_attempts(request, credentials)]
        return max(found, key=lambda f: f.retry_at or now, default=Failures(0, None))

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        # Axes locks out when this reaches the limit, right after recording a failure: that
        # failure is the last, so the pair is then within its backoff.
        return self.failures(request, credentials).count

    def is_locked(self, request: Any, credentials: dict[str, Any] | None = None) -> bool:
        return self.failures(request, credentials).locked(timezone.now())

    def clean_expired_user_attempts(
        self, request: Any = None, credentials: dict[str, Any] | None = None
    ) -> int:
        # Axes would drop every record older than the request's own cool-off, whoever it is
        # about: the memory is what makes the next backoff longer, so it goes only when old.
        threshold = timezone.now() - settings.QVP_LOGIN_MEMORY
        count, _ = AccessAttempt.objects.filter(attempt_time__lt=threshold).delete()
        return count


def _handler(request: HttpRequest) -> BackoffHandler:
    """The configured handler, the request given the attributes axes reads (its address...)."""
    AxesProxyHandler.update_request(request)
    handler = AxesProxyHandler.get_implementation()
    if not isinstance(handler, BackoffHandler):
        raise TypeError(f"AXES_HANDLER is {type(handler).__name__}, not BackoffHandler")
    return handler


def retry_at(request: HttpRequest, credentials: dict[str, Any] | None = None) -> datetime:
    """When the request's locked pair may try again (now if it is not locked)."""
    now = timezone.now()
    return max(_handler(request).failures(request, credentials).retry_at or now, now)


def cool_off(request: HttpRequest | None) -> timedelta:
    """AXES_COOLOFF_TIME: the backoff the request's pair is serving (the first without one)."""
    if request is None:
        return settings.QVP_LOGIN_BACKOFF
    failures = _handler(request).failures(request)
    return max(backoff(failures.count), settings.QVP_LOGIN_BACKOFF)


def lockout_message(until: datetime, now: datetime | None = None) -> str:
    """The refusal, naming the time (UTC) to try again and how long that is from now."""
    wait = until - (now or timezone.now())
    minutes = max(1, math.ceil(wait.total_seconds() / 60))
    at = until.astimezone(UTC).strftime("%H:%M:%S UTC")
    return (
        "Too many failed logins for this user from your address. "
        f"Try again at {at} (in {minutes} minute{'s' if minutes != 1 else ''})."
    )


def retry_after_seconds(until: datetime, now: datetime | None = None) -> int:
    return max(1, math.ceil((until - (now or timezone.now())).total_seconds()))


def lockout_response(
    request: HttpRequest,
    original_response: HttpResponse | None,
    credentials: dict[str, Any] | None = None,
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: a 429 with Retry-After for a locked (user, address).

    Where the refusal came from a login form of this module, the page it rendered (the form,
    its message naming the time) is kept; the API answers ``{detail, rule}``; anything else
    gets the message as text.
    """
    now = timezone.now()
    until = retry_at(request, credentials)
    message = lockout_message(until, now)
    response: HttpResponse
    if request.path_info.startswith("/api/"):
        response = JsonResponse({"detail": message, "rule": RULE}, status=429)
    elif original_response is not None and getattr(request, "qvp_lockout_shown", False):
        response = original_response
        response.status_code = 429
        response.reason_phrase = "Too Many Requests"
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(retry_after_seconds(until, now))
    return response


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes' backend: refuses a locked pair before any other backend checks the password."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            # A command or a shell checking a password: no address to count it under, and
            # no door that a guesser could reach (the API takes tokens, not passwords).
            return None
        super().authenticate(request, username, password, **kwargs)
        return None


class LockoutMessageMixin:
    """For a login form: a locked pair is told when to try again, not that the password was
    wrong (it was not checked)."""

    request: HttpRequest | None
    cleaned_data: dict[str, Any]
    lockout: str | None = None

    def get_invalid_login_error(self) -> ValidationError:
        request = self.request
        if request is not None and getattr(request, "axes_locked_out", False):
            credentials = get_credentials(self.cleaned_data.get("username"))
            self.lockout = lockout_message(retry_at(request, credentials))
            request.qvp_lockout_shown = True  # type: ignore[attr-defined]
            return ValidationError(self.lockout, code="locked_out")
        return super().get_invalid_login_error()  # type: ignore[misc]


class LoginForm(LockoutMessageMixin, AuthenticationForm):
    """The dashboard's login form."""


class AdminLoginForm(LockoutMessageMixin, AdminAuthenticationForm):
    """The admin's login form."""
