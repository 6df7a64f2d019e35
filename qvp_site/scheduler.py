"""The periodic jobs and how one run of a job is carried out.

Apps declare their jobs in a ``jobs.py`` module (discovered like ``admin.py``). Each run holds
a PostgreSQL advisory lock named after the job on a connection of its own, so two schedulers
never run the same job at once; every run, skip and failure is recorded as a JobRun.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import socket
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC

import psycopg
from apscheduler.triggers.cron import CronTrigger
from django.conf import settings
from django.core.management import call_command
from django.db import close_old_connections, connection
from django.utils import timezone
from django.utils.module_loading import autodiscover_modules

from qvp_site.models import JobRun

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """A job: its name, its default timetable (cron, UTC) and what it runs."""

    name: str
    cron: str
    run: Callable[[io.StringIO], None] = field(compare=False)

    @property
    def timetable(self) -> str | None:
        """The cron expression in force (QVP_SCHEDULE overrides; "off" disables)."""
        value = settings.QVP_SCHEDULE.get(self.name, self.cron).strip()
        return None if value.lower() == "off" else value


REGISTRY: dict[str, Job] = {}
# Cron counts the days of the week from Sunday = 0 (7 is Sunday too); APScheduler's numbers
# start at Monday = 0, and its from_crontab passes them through: "1-5" would run Tuesday to
# Saturday. Numbers are turned into the days' names, which both read alike.
CRON_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def cron_trigger(timetable: str) -> CronTrigger:
    """The trigger of a cron timetable (UTC) that fires when cron would."""
    fields = timetable.split()
    if len(fields) == 5:
        fields[4] = _weekday_names(fields[4])
    return CronTrigger.from_crontab(" ".join(fields), timezone=UTC)


def _weekday_names(field: str) -> str:
    """A crontab day-of-week field with its numbers as names: "1-5" -> "mon,tue,wed,thu,fri"."""
    if not any(c.isdigit() for c in field) or any(c.isalpha() for c in field):
        return field
    days: dict[str, None] = {}
    for item in field.split(","):
        span, _, step = item.partition("/")
        first_text, _, last_text = ("0", "-", "6") if span == "*" else span.partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if last_text else (6 if step else first)
            numbers = range(first, last + 1, int(step or 1))
        except ValueError:
            raise ValueError(f"day of week {field!r}: not a cron day-of-week field") from None
        if not numbers or not 0 <= first <= last <= 7:
            raise ValueError(f"day of week {field!r}: days are 0-7 (Sunday is 0 and 7)")
        days.update(dict.fromkeys(CRON_DAYS[n] for n in numbers))
    return ",".join(days)


def register(job: Job) -> Job:
    REGISTRY[job.name] = job
    return job


def command_job(name: str, cron: str, command: str, *args: str) -> Job:
    """A job that runs a management command."""

    def run(out: io.StringIO) -> None:
        call_command(command, *args, stdout=out, stderr=out)

    return register(Job(name=name, cron=cron, run=run))


def discover() -> dict[str, Job]:
    autodiscover_modules("jobs")
    return REGISTRY


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for a job name."""
    return int.from_bytes(
        hashlib.sha256(f"qvp-job:{name}".encode()).digest()[:8], "big", signed=True
    )


def run_job(job: Job) -> JobRun:
    """Run ``job`` once unless another scheduler is running it; record the outcome."""
    lock = connection.get_new_connection(connection.get_connection_params())
    lock.autocommit = True
    key = lock_key(job.name)
    acquired = False
    try:
        acquired = lock.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]
        if not acquired:
            now = timezone.now()
            logger.info("job %s skipped: it is running elsewhere", job.name)
            return _record(job, JobRun.Status.SKIPPED, now, "running elsewhere")
        return _run_locked(job)
    finally:
        # Released before the session closes: the server lets go of a closed session's locks
        # a moment later, and a run started in that moment would be skipped. A broken session
        # has lost its locks already.
        if acquired:
            with contextlib.suppress(psycopg.Error):
                lock.execute("SELECT pg_advisory_unlock(%s)", [key])
        lock.close()
        close_old_connections()


def _run_locked(job: Job) -> JobRun:
    run = _record(job, JobRun.Status.RUNNING, timezone.now(), "", finished=False)
    out = io.StringIO()
    try:
        job.run(out)
    except Exception:
        run.status = JobRun.Status.FAILED
        out.write(traceback.format_exc())
        logger.exception("job %s failed", job.name)
    else:
        run.status = JobRun.Status.SUCCEEDED
        logger.info("job %s succeeded", job.name)
    run.finished_at = timezone.now()
    run.output = out.getvalue()[-20000:]
    run.save(update_fields=["status", "finished_at", "output"])
    return run


def _record(job: Job, status: str, at, output: str, *, finished: bool = True) -> JobRun:
    return JobRun.objects.create(
        job=job.name,
        status=status,
        started_at=at,
        finished_at=at if finished else None,
        host=socket.gethostname(),
        pid=os.getpid(),
        output=output,
    )
