"""``GET /metrics``: the site's figures in the Prometheus text format, for staff or a token.

Two kinds of figures:

- Counted in the web processes: requests and their latencies (``RequestMetricsMiddleware``).
  gunicorn serves with several worker processes, each with its own counters. When
  ``PROMETHEUS_MULTIPROC_DIR`` is set (``make run`` and the image set it), prometheus-client's
  multiprocess mode keeps each worker's counters in a file of that directory and a scrape,
  whichever worker answers it, adds up every worker's files, those of workers since restarted
  included: the totals are the site's, not one worker's. Only counters and histograms are
  counted this way (they add up honestly); nothing per-process is reported as a gauge. Without
  the variable (``runserver``, tests) the one process's counters are reported.
- Read from the database at each scrape (``DatabaseCollector``): ingests, scheduler job runs,
  connections and replication lag. They are the same whichever worker answers.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

# prometheus-client reads the variable when it is imported and needs the directory to exist.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

REQUESTS = Counter("qvp_http_requests", "HTTP requests answered", ["method", "route", "status"])
LATENCY = Histogram(
    "qvp_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


class RequestMetricsMiddleware:
    """Counts each request and its latency by method, URL pattern and status, and tells the
    client the same latency in a ``Server-Timing: app;dur=<ms>`` header (what the server
    spent, apart from the network and gunicorn's own work: bench/load.py reports it).

    The URL pattern (``api/v1/trading/orders/<int:pk>/``), not the path, so that the number of
    series stays bounded whatever clients ask for; paths that match nothing count as one.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        route = match.route if match is not None and match.route else "<unmatched>"
        method = request.method if request.method in KNOWN_METHODS else "OTHER"
        took = time.perf_counter() - started
        LATENCY.labels(method, route).observe(took)
        REQUESTS.labels(method, route, str(response.status_code)).inc()
        # A stream's time is that of its first bytes only: said as much by its name.
        name = "app-start" if response.streaming else "app"
        response.headers.setdefault("Server-Timing", f"{name};dur={took * 1000:.2f}")
        return response


KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class DatabaseCollector(Collector):
    """Ingests, job runs, connections and replication lag, read at scrape time."""

    def collect(self) -> Iterator:
        with connection.cursor() as cursor:
            yield from _ingests(cursor)
            yield from _job_runs(cursor)
            yield from _connections(cursor)


OUTCOMES = ("inserted", "updated", "rejected")


def _ingests(cursor) -> Iterator:
    cursor.execute(
        "SELECT kind, status, count(*), sum(inserted), sum(updated), sum(rejected),"
        " max(extract(epoch FROM finished_at)) FILTER (WHERE status = 'loaded')"
        " FROM marketdata_ingest GROUP BY kind, status"
    )
    loads = CounterMetricFamily(
        "qvp_ingests", "File loads by kind and outcome", labels=["kind", "status"]
    )
    rows = CounterMetricFamily(
        "qvp_ingest_rows", "Rows of loaded files", labels=["kind", "outcome"]
    )
    last = GaugeMetricFamily(
        "qvp_ingest_last_loaded_timestamp_seconds", "When the last load finished", labels=["kind"]
    )
    latest: dict[str, float] = {}
    totals: dict[tuple[str, str], float] = {}
    for kind, status, count, inserted, updated, rejected, finished in cursor.fetchall():
        loads.add_metric([kind, status], count)
        for outcome, value in zip(OUTCOMES, (inserted, updated, rejected), strict=True):
            totals[kind, outcome] = totals.get((kind, outcome), 0.0) + float(value or 0)
        if finished is not None:
            latest[kind] = max(latest.get(kind, 0.0), float(finished))
    for (kind, outcome), total in totals.items():
        rows.add_metric([kind, outcome], total)
    for kind, finished in latest.items():
        last.add_metric([kind], finished)
    yield from (loads, rows, last)


def _job_runs(cursor) -> Iterator:
    cursor.execute("SELECT job, status, count(*) FROM qvp_site_jobrun GROUP BY job, status")
    runs = CounterMetricFamily(
        "qvp_job_runs", "Scheduler job runs by outcome", labels=["job", "status"]
    )
    for job, status, count in cursor.fetchall():
        runs.add_metric([job, status], count)
    cursor.execute(
        "SELECT DISTINCT ON (job) job, extract(epoch FROM finished_at),"
        " extract(epoch FROM finished_at - started_at)"
        " FROM qvp_site_jobrun WHERE status = 'succeeded' ORDER BY job, started_at DESC"
    )
    success = GaugeMetricFamily(
        "qvp_job_last_success_timestamp_seconds", "When the job last succeeded", labels=["job"]
    )
    duration = GaugeMetricFamily(
        "qvp_job_last_success_duration_seconds", "How long its last success took", labels=["job"]
    )
    for job, finished, took in cursor.fetchall():
        success.add_metric([job], float(finished))
        duration.add_metric([job], float(took))
    yield from (runs, success, duration)


def _connections(cursor) -> Iterator:
    cursor.execute(
        "SELECT state, sum(connections) FROM qvp_connections()"
        " WHERE database = current_database() GROUP BY state"
    )
    connections = GaugeMetricFamily(
        "qvp_db_connections", "Connections to the database by state", labels=["state"]
    )
    for state, count in cursor.fetchall():
        connections.add_metric([state], float(count))
    cursor.execute("SELECT current_setting('max_connections')::int")
    limit = GaugeMetricFamily("qvp_db_max_connections", "The server's max_connections")
    limit.add_metric([], cursor.fetchone()[0])
    cursor.execute("SELECT replica, lag_seconds FROM qvp_replication()")
    lag = GaugeMetricFamily(
        "qvp_db_replication_lag_seconds", "How far each replica is behind", labels=["replica"]
    )
    for replica, seconds in cursor.fetchall():
        lag.add_metric([replica], float(seconds or 0))
    yield from (connections, limit, lag)


class _ThisProcess(Collector):
    """The default registry (this process's counters), when not in multiprocess mode."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()


def exposition() -> bytes:
    """Every figure, in the Prometheus text format."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ThisProcess())
    registry.register(DatabaseCollector())
    return generate_latest(registry)


def _bearer_token_matches(request: HttpRequest) -> bool:
    expected = settings.QVP_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if not expected or scheme.lower() != "bearer" or not given:
        return False
    # Constant time: the comparison does not tell how much of a guess was right.
    return hmac.compare_digest(given.strip().encode(), expected.encode())


@login_not_required  # a scraper has a token, not a session: checked here
@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """200 with the figures for a staff user or the configured bearer token; 401/403 else."""
    if not _bearer_token_matches(request):
        if not request.user.is_authenticated:
            response = HttpResponse("Authentication required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
        if not request.user.is_staff:
            return HttpResponse("Staff only\n", status=403)
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
