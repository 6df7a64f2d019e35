"""Requests without a user are counted per address, before DRF's permissions refuse them.

DRF checks throttles after permissions, so its AnonRateThrottle never sees a request to an
endpoint that needs a user: that one gets a 401 at once, as often as a client likes. Here the
count happens during authentication instead, which comes first: ``AnonymousRateLimit`` is the
last authenticator (a request none of the others identified), and a key that fails
``ApiTokenAuthentication`` is counted the same way, so guessing keys is slowed to the rate
of QVP_API_THROTTLE_ANON per address.

A user's count is DRF's (the times of their requests in the last period), kept in the cache;
with the file cache (the default, ``DJANGO_CACHE_URL=filecache://``), in a file per user
beside the cache's, updated in place under a lock (``HistoryFiles``): the cache writes a new
file and renames it over the old at every request, which cost 0.3 ms on a quiet disk and
5 ms on a busy one, and two workers could each read the history before either wrote it back
(a request not counted); in place and locked, neither.
"""

from __future__ import annotations

import fcntl
import hashlib
import math
import os
import time
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.core.cache.backends.filebased import FileBasedCache
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
    """DRF's, per user; with the file cache, its history in a file of the user's own."""

    def allow_request(self, request, view) -> bool:
        store = history_store()
        if store is None:
            return super().allow_request(request, view)
        self.cache = store  # type: ignore[assignment]  # DRF's get and set of the history go to the user's file
        with store.locked(self.get_cache_key(request, view)):
            return super().allow_request(request, view)


# How far ahead of this host's clock a stored time may be (another worker's host, a clock
# stepped back) and still count.
FUTURE_SLACK_SECONDS = 60.0


class HistoryFiles:
    """A history of request times per key (a throttle's), each in a file of ``directory``:
    the times as 8-byte floats, read and rewritten in place while the file is locked
    (``locked``), so that workers counting the same key take turns."""

    def __init__(self, directory: Path, make_key: Callable[[str], str] = str) -> None:
        self.directory = directory
        self.make_key = make_key  # the cache's: its KEY_PREFIX and VERSION part sites' counts
        self._fd: int | None = None

    @contextmanager
    def locked(self, key: str | None) -> Iterator[None]:
        if key is None:  # DRF counts nothing for it
            yield
            return
        name = hashlib.sha256(self.make_key(key).encode()).hexdigest()[:40] + ".times"
        path = os.path.join(self.directory, name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except FileNotFoundError:  # the first count here, or the directory was removed
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._fd = fd
            yield
        finally:
            self._fd = None
            os.close(fd)  # and the lock with it

    def get(self, key: str, default: Any = None) -> list[float]:
        data = os.pread(self._locked(), os.fstat(self._locked()).st_size, 0)
        if len(data) % 8:  # torn by a crash mid-write: forgotten, as an expired entry is
            return []
        # Only times this code could have written: a time not finite, or ahead of now, would
        # never expire (a user throttled for good) and makes DRF's wait() a 500.
        latest = time.time() + FUTURE_SLACK_SECONDS
        times = array("d", data)
        # Every time usable, as they are unless tampered with: a NaN or an infinity makes the
        # sum so (as does a sum too large, then filtered one by one), and the largest says
        # whether any is ahead. Two passes in C rather than a test per time in Python.
        if not times or (math.isfinite(sum(times)) and max(times) <= latest):
            return times.tolist()
        return [t for t in times.tolist() if math.isfinite(t) and t <= latest]

    def set(self, key: str, value: list[float], timeout: float | None = None) -> None:
        data = array("d", value).tobytes()
        os.pwrite(self._locked(), data, 0)
        os.ftruncate(self._locked(), len(data))

    def _locked(self) -> int:
        if self._fd is None:
            raise RuntimeError("HistoryFiles is read and written only within locked()")
        return self._fd


def history_store() -> HistoryFiles | None:
    """The user histories' files beside the file cache's; None with another cache (memory,
    Redis: DRF's own way)."""
    backend = caches["default"]
    if not isinstance(backend, FileBasedCache):
        return None
    directory = Path(backend._dir) / "throttle-history"  # type: ignore[attr-defined]
    return HistoryFiles(directory, backend.make_key)


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
