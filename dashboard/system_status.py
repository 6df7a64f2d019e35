"""The system page: the engine, the time-series tables, scheduler jobs and ingests."""

from __future__ import annotations

from django.db import connection

from marketdata.models import Ingest
from qvp_site.db.scans import distinct_leading_values
from qvp_site.models import JobRun, TimeSeriesAggregate

# Each job's latest run: the job names by a loose index scan of the (job, -started_at) index,
# then one probe of it per name, never a read of every run.
LATEST_RUNS_SQL = """
SELECT latest.id FROM unnest(%s::text[]) AS jobs(job)
CROSS JOIN LATERAL (
    SELECT id FROM qvp_site_jobrun r WHERE r.job = jobs.job ORDER BY started_at DESC LIMIT 1
) latest
"""


def latest_job_runs() -> list[JobRun]:
    jobs = distinct_leading_values("job", table=JobRun._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(LATEST_RUNS_SQL, [jobs])
        ids = [row[0] for row in cursor.fetchall()]
    return list(JobRun.objects.filter(id__in=ids).order_by("job"))


def recent_ingests(limit: int = 15) -> list[Ingest]:
    return list(Ingest.objects.select_related("instrument", "user").order_by("-started_at")[:limit])


def aggregates() -> list[TimeSeriesAggregate]:
    return list(TimeSeriesAggregate.objects.order_by("view_name"))
