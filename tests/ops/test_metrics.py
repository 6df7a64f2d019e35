"""GET /metrics: who may read it, and the figures it gives (Prometheus text format)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from marketdata.models import Ingest
from qvp_site.models import JobRun

TOKEN = "s3cret-scraper-token"


@pytest.fixture
def configured(settings):
    settings.QVP_METRICS_TOKEN = TOKEN
    return settings


def samples(body: bytes) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_anonymous_is_refused_and_told_to_bring_a_token(client, configured, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"qvp_" not in response.content


def test_a_wrong_token_or_a_user_who_is_not_staff_is_refused(client, configured, db):
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Token {TOKEN}"}).status_code == 401
    user = get_user_model().objects.create_user("trader", password="pw-trader-1234")
    client.force_login(user)
    assert client.get("/metrics").status_code == 403


def test_no_token_configured_means_no_token_accepted(client, settings, db):
    settings.QVP_METRICS_TOKEN = ""
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401


def test_the_token_or_a_staff_user_gets_the_figures(client, configured, db):
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=")
    staff = get_user_model().objects.create_user("ops", password="pw-ops-12345", is_staff=True)
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


def test_requests_are_counted_by_route_and_status(client, configured, db):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    before = samples(client.get("/metrics", headers=auth).content)
    for _ in range(3):
        client.get("/healthz")
    client.get("/no/such/page")
    after = samples(client.get("/metrics", headers=auth).content)
    healthz = {"method": "GET", "route": "healthz", "status": "200"}
    assert (
        value(after, "qvp_http_requests_total", **healthz)
        - value(before, "qvp_http_requests_total", **healthz)
        == 3
    )
    latency = {"method": "GET", "route": "healthz"}
    assert (
        value(after, "qvp_http_request_duration_seconds_count", **latency)
        - value(before, "qvp_http_request_duration_seconds_count", **latency)
        == 3
    )
    assert any(
        k[0] == "qvp_http_requests_total" and ("route", "<unmatched>") in k[1] for k in after
    )


def test_ingests_job_runs_and_connections_come_from_the_database(client, configured, db):
    now = timezone.now()
    # A load's record starts running (marketdata/sql/ingests/0010.sql), then ends.
    loaded = Ingest.objects.create(file_name="a.csv", kind="bars-1m", symbol="AAPL")
    Ingest.objects.filter(pk=loaded.pk).update(
        status="loaded", inserted=100, rejected=2, finished_at=now
    )
    refused = Ingest.objects.create(file_name="b.csv", kind="bars-1m", symbol="AAPL")
    Ingest.objects.filter(pk=refused.pk).update(status="refused")
    JobRun.objects.create(job="maintain", status="succeeded", started_at=now - timedelta(seconds=7),
                          finished_at=now)  # fmt: skip
    JobRun.objects.create(job="maintain", status="failed", started_at=now, finished_at=now)
    found = samples(client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"}).content)
    assert value(found, "qvp_ingests_total", kind="bars-1m", status="loaded") == 1
    assert value(found, "qvp_ingests_total", kind="bars-1m", status="refused") == 1
    assert value(found, "qvp_ingest_rows_total", kind="bars-1m", outcome="inserted") == 100
    assert value(found, "qvp_ingest_rows_total", kind="bars-1m", outcome="rejected") == 2
    assert value(
        found, "qvp_ingest_last_loaded_timestamp_seconds", kind="bars-1m"
    ) == pytest.approx(now.timestamp())
    assert value(found, "qvp_job_runs_total", job="maintain", status="failed") == 1
    assert value(found, "qvp_job_last_success_duration_seconds", job="maintain") == pytest.approx(7)
    assert value(found, "qvp_db_connections", state="active") >= 1
    assert value(found, "qvp_db_max_connections") > 0


WORKER = """
import os, sys
sys.path.insert(0, os.getcwd())
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
from qvp_site import metrics
for _ in range(int(sys.argv[1])):
    metrics.REQUESTS.labels("GET", "healthz", "200").inc()
"""

SCRAPE = """
import os, sys
sys.path.insert(0, os.getcwd())
from prometheus_client import CollectorRegistry, generate_latest, multiprocess
registry = CollectorRegistry()
multiprocess.MultiProcessCollector(registry)
sys.stdout.write(generate_latest(registry).decode())
"""


def test_counters_of_several_worker_processes_add_up(tmp_path):
    """As under gunicorn: two workers count, a third process (any worker) reports the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    for count in ("2", "5"):
        subprocess.run([sys.executable, "-c", WORKER, count], env=env, check=True)
    out = subprocess.run([sys.executable, "-c", SCRAPE], env=env, check=True, capture_output=True)
    found = samples(out.stdout)
    assert value(found, "qvp_http_requests_total", method="GET", route="healthz", status="200") == 7
