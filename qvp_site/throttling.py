"""Requests without a user are counted per address, before DRF's permissions refuse them.

DRF checks throttles after permissions, so its AnonRateThrottle never sees a request to an
endpoint that needs a user: that one gets a 401 at once, as often as a client likes. Here the
count happens during authentication instead, which comes first: ``AnonymousRateLimit`` is the
last authenticator (a request none of the others identified), and a key that fails
``ApiTokenAuthentication`` is counted the same way, so guessing keys is slowed to the rate
of QVP_API_THROTTLE_ANON per address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from rest_framework import authentication, exceptions, throttling
from rest_framework.settings import api_settings

if TYPE_CHECKING:
    _RateThrottle = throttling.SimpleRateThrottle  # the mixin goes on DRF's throttles
else:
    _RateThrottle = object


class _CurrentRates(_RateThrottle):
    """Rates read from the settings when used, not when DRF was imported."""

    def get_rate(self) -> str | None:
        # Texts such as "100/min" (the stubs say numbers).
        rates: dict[str, str | None] = api_settings.DEFAULT_THROTTLE_RATES  # type: ignore[assignment]
        if self.scope is None:
            raise ImproperlyConfigured(f"{type(self).__name__} has no throttle scope")
        return rates[self.scope]


class UserRateThrottle(_CurrentRates, throttling.UserRateThrottle):
    """DRF's, per user."""


class _PerAddress(_CurrentRates, throttling.SimpleRateThrottle):
    scope = "anon"

    def get_cache_key(self, request, view):
        # Not request.user: reading it during authentication would authenticate again.
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def count_anonymous(request) -> None:
    """Count a request without a user against its address; raises Throttled past the rate."""
    limit = _PerAddress()
    if not limit.allow_request(request, None):  # type: ignore[arg-type]  # needs no view
        raise exceptions.Throttled(limit.wait())


class AnonymousRateLimit(authentication.BaseAuthentication):
    """The last authenticator: identifies nobody, counts who the others did not identify."""

    def authenticate(self, request):
        count_anonymous(request)
        return None
