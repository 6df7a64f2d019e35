"""The dashboard in a real browser: headless Chromium from Debian's packages, driven by
Playwright, against this site served on a loopback port.

Used by ``manage.py screenshots`` and the browser tests. Playwright drives the system's
Chromium (``executable_path``); it never downloads a browser of its own. Chromium runs with
``--no-sandbox`` (CI runs as root, where the sandbox cannot start) and without its
background networking, which a machine without the internet answers with errors.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler
from django.core.wsgi import get_wsgi_application
from django.db import connections
from django.test import Client

if TYPE_CHECKING:  # a development dependency: the site runs without it
    from django.contrib.auth.models import User
    from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize

T = TypeVar("T")
CHROMIUM = Path(os.environ.get("QVP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
)
DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}
ALL_CHARTS_DRAWN = (
    "() => [...document.querySelectorAll('[data-chart]')].every(el => el.dataset.drawn === 'true')"
)


@dataclass(frozen=True)
class DashboardPage:
    name: str
    path: str


def pages(symbol: str) -> list[DashboardPage]:
    """Each page of the dashboard, the instrument page for ``symbol``."""
    return [
        DashboardPage("overview", "/"),
        DashboardPage("instrument", f"/instruments/{symbol}/?tf=1d"),
        DashboardPage("instrument-1h", f"/instruments/{symbol}/?tf=1h"),
        DashboardPage("portfolio", "/portfolio/"),
        DashboardPage("risk", "/risk/"),
        DashboardPage("signals", "/signals/"),
        DashboardPage("tca", "/tca/"),
        DashboardPage("system", "/system/"),
    ]


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


@contextmanager
def serve() -> Iterator[str]:
    """This site on a free loopback port for the duration, as production serves it (static
    files by WhiteNoise: collected, or from the finders with WHITENOISE_USE_FINDERS);
    yields the base URL."""
    app = get_wsgi_application()
    server = ThreadedWSGIServer(("127.0.0.1", 0), _QuietHandler, allow_reuse_address=False)
    server.set_app(app)
    # Request threads are joined on close (each closes its database connections as it
    # ends): a test database can then be dropped at once. Close the browser first, or its
    # kept-alive connections hold their threads.
    server.daemon_threads = False
    thread = threading.Thread(target=server.serve_forever, name="qvp-site", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        connections.close_all()


def chromium_available() -> bool:
    return CHROMIUM.exists()


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium (Playwright's Browser)."""
    from playwright.sync_api import sync_playwright  # a development dependency

    if not chromium_available():
        raise FileNotFoundError(
            f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium package"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=list(CHROMIUM_ARGS), headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def _on_own_connection(work: Callable[[], T]) -> T:
    """``work`` done on a connection of its own, committed: the server's threads see it even
    when the caller is inside a transaction (a test's)."""

    def run() -> T:
        try:
            return work()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def session_key(user: User) -> str:
    """A session of ``user``'s, made the way a login makes one, without the password."""

    def login() -> str:
        client = Client()
        client.force_login(user)
        return client.cookies[settings.SESSION_COOKIE_NAME].value

    return _on_own_connection(login)


def logged_in(
    browser: Browser, base_url: str, user: User, viewport: ViewportSize = DESKTOP
) -> BrowserContext:
    """A browser context (Playwright's) in which ``user`` is logged in."""
    context = browser.new_context(viewport=viewport, base_url=base_url)
    context.add_cookies(
        [
            {
                "name": settings.SESSION_COOKIE_NAME,
                "value": session_key(user),
                "url": base_url,
                "httpOnly": True,
            }
        ]
    )
    return context


@contextmanager
def session(
    browser: Browser, base_url: str, user: User, viewport: ViewportSize = DESKTOP
) -> Iterator[BrowserContext]:
    """``logged_in`` for the duration, then closed and its session deleted: a command run
    against a real database leaves no live session behind."""
    context = logged_in(browser, base_url, user, viewport)
    try:
        yield context
    finally:
        keys = [c["value"] for c in context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME]
        context.close()
        _on_own_connection(lambda: Session.objects.filter(session_key__in=keys).delete())


def open_page(context: BrowserContext, path: str) -> Page:
    """A new tab at ``path``, once every chart on it is drawn."""
    page = context.new_page()
    page.goto(path)
    page.wait_for_function(ALL_CHARTS_DRAWN)
    return page
