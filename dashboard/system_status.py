"""The system page: the engine, the time-series tables, scheduler jobs and ingests."""

from __future__ import annotations

from django.db import connection

from marketdata.models import Ingest
from qvp_site.models import JobRun, TimeSeriesAggregate

# Each job's latest run: one probe of the (job, -started_at) index per job name, the names
# found by skipping through the same index (a loose index scan), not by reading every run.
LATEST_RUNS_SQL = """
WITH RECURSIVE jobs(job) AS (
    (SELECT job FROM qvp_site_jobrun ORDER BY job LIMIT 1)
    UNION ALL
    SELECT (SELECT r.job FROM qvp_site_jobrun r WHERE r.job > jobs.job ORDER BY r.job LIMIT 1)
    FROM jobs WHERE jobs.job IS NOT NULL
)
SELECT latest.id FROM jobs
CROSS JOIN LATERAL (
    SELECT id FROM qvp_site_jobrun r WHERE r.job = jobs.job ORDER BY started_at DESC LIMIT 1
) latest
WHERE jobs.job IS NOT NULL
"""


def latest_job_runs() -> list[JobRun]:
    with connection.cursor() as cursor:
        cursor.execute(LATEST_RUNS_SQL)
        ids = [row[0] for row in cursor.fetchall()]
    return list(JobRun.objects.filter(id__in=ids).order_by("job"))


def recent_ingests(limit: int = 15) -> list[Ingest]:
    return list(Ingest.objects.select_related("instrument", "user").order_by("-started_at")[:limit])


def aggregates() -> list[TimeSeriesAggregate]:
    return list(TimeSeriesAggregate.objects.order_by("view_name"))
