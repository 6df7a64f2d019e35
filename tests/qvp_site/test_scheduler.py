"""The scheduler: one run per job at a time across schedulers, every outcome recorded."""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from qvp_site.models import JobRun
from qvp_site.scheduler import Job, discover, lock_key, run_job

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_schedulers_never_run_a_job_twice_at_once():
    started, release = threading.Event(), threading.Event()

    def slow(out: StringIO) -> None:
        started.set()
        out.write("did the work")
        assert release.wait(timeout=30)

    job = Job(name="test-slow", cron="* * * * *", run=slow)
    results = {}

    def scheduler(name: str) -> None:
        try:
            results[name] = run_job(job)
        finally:
            connection.close()

    first = threading.Thread(target=scheduler, args=("first",))
    first.start()
    assert started.wait(timeout=30)
    second = threading.Thread(target=scheduler, args=("second",))
    second.start()
    second.join(timeout=30)
    release.set()
    first.join(timeout=30)

    assert results["second"].status == JobRun.Status.SKIPPED
    assert results["first"].status == JobRun.Status.SUCCEEDED
    assert results["first"].output == "did the work"
    assert results["first"].finished_at >= results["first"].started_at
    assert list(JobRun.objects.filter(job="test-slow").values_list("status", flat=True)) == [
        JobRun.Status.SKIPPED,
        JobRun.Status.SUCCEEDED,
    ]


def test_the_lock_is_released_after_a_run_so_the_next_one_runs():
    job = Job(name="test-quick", cron="* * * * *", run=lambda out: out.write("ok"))
    assert run_job(job).status == JobRun.Status.SUCCEEDED
    assert run_job(job).status == JobRun.Status.SUCCEEDED
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_key("test-quick")])
        assert cursor.fetchone()[0] is True  # nobody holds it any more
        cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_key("test-quick")])


def test_a_failing_job_is_recorded_with_its_traceback():
    def broken(out: StringIO) -> None:
        raise RuntimeError("the feed is down")

    run = run_job(Job(name="test-broken", cron="* * * * *", run=broken))
    assert run.status == JobRun.Status.FAILED
    assert "RuntimeError: the feed is down" in run.output


def test_maintain_is_a_scheduled_job_and_runs_from_the_command(settings):
    jobs = discover()
    assert jobs["maintain"].timetable == "*/15 * * * *"
    settings.QVP_SCHEDULE = {"maintain-weekly": "off"}
    assert jobs["maintain-weekly"].timetable is None
    out = StringIO()
    call_command("scheduler", run="maintain", stdout=out)
    assert "maintain: succeeded" in out.getvalue()
    assert JobRun.objects.get(job="maintain").status == JobRun.Status.SUCCEEDED
