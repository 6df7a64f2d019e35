"""The system page: the engine, the time-series tables, scheduler jobs and ingests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from marketdata.models import Ingest
from qvp_site.db.scans import distinct_leading_values
from qvp_site.models import JobRun, TimeSeriesAggregate
from qvp_site.scheduler import cron_trigger, discover

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


@dataclass(frozen=True)
class ScheduledJob:
    """A job of the scheduler's: its timetable, when it runs next, and its latest run."""

    job: str
    timetable: str | None  # None: switched off (QVP_SCHEDULE)
    next_run: datetime | None
    latest: JobRun | None


def next_run(timetable: str, after: datetime) -> datetime | None:
    """When a cron timetable (UTC, as ``manage.py scheduler`` reads it) fires next."""
    return cron_trigger(timetable).get_next_fire_time(None, after)


def schedule(latest: list[JobRun], now: datetime | None = None) -> list[ScheduledJob]:
    """Every job the scheduler runs, with its next run after ``now``, and the latest runs
    of jobs no longer registered (a job removed since), by name."""
    now = now or timezone.now()
    runs = {run.job: run for run in latest}
    jobs = discover()
    lines = [
        ScheduledJob(
            job=name,
            timetable=job.timetable,
            next_run=next_run(job.timetable, now) if job.timetable else None,
            latest=runs.get(name),
        )
        for name, job in jobs.items()
    ]
    lines += [ScheduledJob(name, None, None, run) for name, run in runs.items() if name not in jobs]
    return sorted(lines, key=lambda line: line.job)
