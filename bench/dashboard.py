"""How fast each dashboard page is with the demo data: the server's render time (Django's
test client in-process, as a superuser: median and p95 of 20 renders, and the query count),
and in headless Chromium, timed by the browser from the start of navigation (median of 5): the
response received, every chart drawn (charts.js marks it), and the load event.
A benchmark, not a test: `make bench` runs it.

Goal (issue 8): every page under a second with the demo data.
It reads the configured database and seeds the demo there first if it has no demo symbol
(as `make run` does); run it with QVP_DATABASE_NAME=<name> for a database of its own.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
# Playwright's sync API keeps an event loop in this thread; the ORM calls beside it are sync.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

import django

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client, override_settings  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from dashboard import browser  # noqa: E402
from marketdata.models import Instrument  # noqa: E402

SYMBOL = "SPY"
USER = "bench-dashboard"
RENDERS = 20
LOADS = 5


def viewer():
    """A superuser of the benchmark's own, removed again at its end."""
    return get_user_model().objects.create_superuser(USER, password=None)


def server_times(client: Client, path: str) -> tuple[float, float, int]:
    """Median and p95 milliseconds of RENDERS renders after a warm-up, and the queries."""
    client.get(path)
    times = []
    for _ in range(RENDERS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            response = client.get(path)
            times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (path, response.status_code)
    return statistics.median(times), statistics.quantiles(times, n=20)[-1], len(queries)


# Milliseconds from the start of navigation, as the browser's Performance API records them.
TIMINGS = """() => {
  const nav = performance.getEntriesByType('navigation')[0];
  const drawn = performance.getEntriesByName('qvp-charts-drawn')[0];
  const charts = drawn ? drawn.startTime : nav.domContentLoadedEventEnd;  // a page without
  return [nav.responseEnd, charts, nav.loadEventEnd];
}"""


def browser_times(context, path: str) -> list[float]:
    """Medians over LOADS loads of: response received, charts drawn, load event (ms)."""
    loads = []
    for _ in range(LOADS):
        page = context.new_page()
        page.goto(path)
        page.wait_for_function(browser.ALL_CHARTS_DRAWN)
        loads.append(page.evaluate(TIMINGS))
        page.close()
    return [statistics.median(column) for column in zip(*loads, strict=True)]


def main() -> None:
    if not Instrument.objects.filter(symbol=SYMBOL).exists():
        print("No demo data here: seeding a year of it (seed_demo) ...")
        call_command("seed_demo", stdout=StringIO())
    get_user_model().objects.filter(username=USER).delete()  # left by an interrupted run
    user = viewer()
    try:
        measure(user)
    finally:
        user.delete()  # its sessions expire unused: nothing can log in as it


def measure(user) -> None:
    client = Client(HTTP_HOST="localhost")  # one of the default ALLOWED_HOSTS
    client.force_login(user)
    pages = browser.pages(SYMBOL)
    rows = {page.name: server_times(client, page.path) for page in pages}
    client.logout()
    with (
        override_settings(WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True),
        browser.serve() as url,
        browser.chromium() as chromium,
        browser.session(chromium, url, user) as context,
    ):
        loads = {page.name: browser_times(context, page.path) for page in pages}
    print("server: Django's render in-process; browser: ms from navigation start")
    head = ("page", "server p50", "p95", "queries", "response", "charts", "load")
    print(f"{head[0]:<15}" + "".join(f"{h:>11}" for h in head[1:]))
    for page in pages:
        p50, p95, queries = rows[page.name]
        response, drawn, loaded = loads[page.name]
        figures = (f"{p50:.1f}", f"{p95:.1f}", queries, f"{response:.0f}", f"{drawn:.0f}")
        print(f"{page.name:<15}" + "".join(f"{f:>11}" for f in (*figures, f"{loaded:.0f}")))
    slowest = max(drawn for _, drawn, _ in loads.values())
    print(f"Slowest page to its charts drawn: {slowest:.0f} ms (goal < 1000 ms).")


if __name__ == "__main__":
    main()
