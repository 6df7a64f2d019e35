"""The client's HTTP: the token on every request, refusals raised as exceptions, and retries
with exponential backoff on 429 and 503 honouring ``Retry-After``.

Why a POST is retried on 429 and 503 (and only on those): both say the server did nothing.
QVP answers 429 from its throttles, which DRF checks before the view runs, so nothing was
read or written; it answers 503 when a statement ran past the request's time limit, and every
request of an identified user runs in one transaction that any answer of 400 or more rolls
back (qvp_site/acting.py), so nothing it wrote remains; a proxy answers 503 when it could not
hand the request on. No other failure is retried for a POST: a broken connection or a 502/504
may come after the server committed. On top of that QVP's writes are idempotent by key: an
execution by its exec id (a replay returns the booked one), a signal by agent, symbol and time,
a bar by its time (upserted), an order by its client order id (which the client always sends).
A proxy in front of QVP that answers 503 after the server had the request (some do on an
upstream timeout) breaks the first argument: give ``RetryPolicy(retry_writes=False)`` then.
"""

from __future__ import annotations

import email.utils
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests  # type: ignore[import-untyped, unused-ignore]

from qvp_client import errors

RETRIED = frozenset({429, 503})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BY_STATUS: dict[int, type[errors.QvpError]] = {
    400: errors.Refused,
    401: errors.Unauthorized,
    403: errors.Forbidden,
    404: errors.NotFound,
    406: errors.NotAcceptable,
    409: errors.Refused,
    429: errors.Throttled,
    503: errors.Unavailable,
}
# What DRF and QVP's token check say when they refuse who is asking. The server answers these
# 403 rather than 401 (DRF takes the challenge of its first authenticator, the session's,
# which has none), so the client tells them from a refused permission by their text.
AUTHENTICATION_FAILURES = (
    "Authentication credentials were not provided.",
    "Incorrect authentication credentials.",
    "invalid or revoked token",
    "expired token",
    "the token's user is inactive",
    "Authorization: Token <key>",
    "a key is ASCII",
)
# The part of a body that is not JSON kept on the exception (an HTML page of a proxy).
TEXT_KEPT = 2000


@dataclass(frozen=True)
class RetryPolicy:
    """How 429 and 503 are retried.

    ``attempts``: requests in all, the first included (1: never retry). Without a
    ``Retry-After`` the n-th retry waits ``backoff * factor ** (n - 1)`` seconds (at most
    ``max_backoff``), give or take ``jitter`` of it, so that many clients do not come back at
    once. A ``Retry-After`` is waited as given, unless it is longer than ``max_wait``: then the
    client gives up at once rather than sleep that long. ``retry_writes``: retry POSTs too
    (see this module's docstring for why that is safe with QVP)."""

    attempts: int = 5
    backoff: float = 0.5
    factor: float = 2.0
    max_backoff: float = 30.0
    max_wait: float = 300.0
    jitter: float = 0.1
    retry_writes: bool = True

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts: at least 1 (the first request)")
        if self.backoff < 0 or self.factor < 1 or self.max_backoff < 0 or self.max_wait < 0:
            raise ValueError("backoff, max_backoff and max_wait >= 0, factor >= 1")

    def wait(self, retry: int, retry_after: float | None) -> float | None:
        """Seconds to wait before the ``retry``-th retry (1 for the first); None: give up."""
        if retry >= self.attempts:
            return None
        if retry_after is not None:
            return retry_after if retry_after <= self.max_wait else None
        base = min(self.backoff * self.factor ** (retry - 1), self.max_backoff)
        # Jitter is no secret: the standard generator is what it needs.
        return max(0.0, base * (1 + self.jitter * (2 * random.random() - 1)))  # noqa: S311


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: a number of seconds, or an HTTP date; None if absent or
    unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def api_root(url: str) -> str:
    """The API's root (``.../api/v1/``) from the site's address or the root itself."""
    base = url.rstrip("/")
    if not base.endswith("/api/v1"):
        base += "/api/v1"
    return base + "/"


class Transport:
    """Requests to one QVP server with one token, through one connection pool."""

    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float | tuple[float, float] = (10.0, 300.0),
        retry: RetryPolicy | None = None,
        session: Any = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "qvp-client",
    ) -> None:
        self.root = api_root(url)
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.session: Any = session or requests.Session()
        self.session.headers["User-Agent"] = user_agent
        if token:
            self.session.headers["Authorization"] = f"Token {token}"

    def close(self) -> None:
        self.session.close()

    def url(self, path_or_url: str) -> str:
        """An endpoint's URL (``bars/``), or a link the server gave (a page's ``next``) put on
        the client's own origin: the token goes to no other host than the one it was given
        for, whatever a proxy wrote into a link."""
        if "://" not in path_or_url:
            return urljoin(self.root, path_or_url.lstrip("/"))
        root, link = urlsplit(self.root), urlsplit(path_or_url)
        return urlunsplit((root.scheme, root.netloc, link.path, link.query, ""))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        accept: str = "application/json",
        stream: bool = False,
    ) -> Any:
        """The response (a ``requests.Response``) to a request answered 2xx; otherwise the
        exception for its status, after the retries of 429 and 503."""
        url, method = self.url(path_or_url), method.upper()
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Accept": accept}
        if data is not None:
            headers["Content-Type"] = "application/json"
        retries = method in SAFE_METHODS or self.retry.retry_writes
        retry = 0
        while True:
            response = self._send(method, url, params, data, headers, stream)
            if response.status_code < 400:
                return response
            retry += 1
            wait = None
            if retries and response.status_code in RETRIED:
                after = retry_after_seconds(response.headers.get("Retry-After"))
                wait = self.retry.wait(retry, after)
            if wait is None:
                raise failure(response, retry)
            response.close()  # back to the pool before sleeping
            self.sleep(wait)

    def _send(
        self,
        method: str,
        url: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        headers: dict[str, str],
        stream: bool,
    ) -> Any:
        try:
            return self.session.request(
                method,
                url,
                params=params,
                data=data,
                headers=headers,
                stream=stream,
                timeout=self.timeout,
                allow_redirects=method in SAFE_METHODS,
            )
        except requests.ConnectionError as error:
            raise errors.Unavailable(f"{method} {url}: no connection: {error}", url=url) from error
        except requests.Timeout as error:
            raise errors.Unavailable(f"{method} {url}: timed out: {error}", url=url) from error


def body_of(response: Any) -> Any:
    """The response's JSON body, or its text (cut) when it is not JSON."""
    try:
        text: str = response.text
    except (requests.RequestException, UnicodeDecodeError):  # a broken stream
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text[:TEXT_KEPT]


def failure(response: Any, attempts: int) -> errors.QvpError:
    """The exception for a response of 400 or more."""
    status: int = response.status_code
    body = body_of(response)
    kind = BY_STATUS.get(status) or (errors.ServerError if status >= 500 else errors.QvpError)
    if status == 403 and _authentication_failed(body):
        kind = errors.Unauthorized
    request = response.request
    url = str(request.url) if request is not None else str(response.url)
    problems = errors.problems_of(body)
    if problems:
        said = errors.describe(problems)
    elif isinstance(body, str) and body.strip():
        said = " " + body.strip().splitlines()[0][:200]
    else:
        said = ""
    tries = f" (after {attempts} attempts)" if status in RETRIED and attempts > 1 else ""
    method = request.method if request is not None else "request"
    message = f"{method} {url}: {status} {response.reason or ''}{tries}:{said}".rstrip(":")
    return kind(message, status=status, url=url, body=body)


def _authentication_failed(body: Any) -> bool:
    detail = body.get("detail") if isinstance(body, dict) else None
    return isinstance(detail, str) and detail.startswith(AUTHENTICATION_FAILURES)
