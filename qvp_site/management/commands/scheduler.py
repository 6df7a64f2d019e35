from __future__ import annotations

import contextlib
import signal
from datetime import UTC

from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from django.core.management.base import BaseCommand, CommandError

from qvp_site import time_limits
from qvp_site.audit_sealer import start_sealer
from qvp_site.scheduler import cron_trigger, discover, run_job


class Command(BaseCommand):
    help = (
        "Run the periodic jobs on their timetables until stopped (one job at a time per name "
        "across all schedulers, each run recorded). --list shows the jobs; --run NAME runs one now."
    )

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="list the jobs and timetables")
        parser.add_argument("--run", metavar="NAME", help="run one job now and exit")

    def handle(self, *args, **options):
        # Its jobs (commands run in this process) and the sealer get the scheduler's time
        # limit, QVP_SCHEDULER_STATEMENT_TIMEOUT, not a command's (qvp_site/time_limits.py).
        time_limits.for_process(time_limits.SCHEDULER)
        jobs = discover()
        if options["list"]:
            for job in jobs.values():
                self.stdout.write(f"{job.name:24} {job.timetable or 'off'}")
            return
        if options["run"]:
            if options["run"] not in jobs:
                raise CommandError(f"no job {options['run']!r}; jobs: {', '.join(sorted(jobs))}")
            run = run_job(jobs[options["run"]])
            self.stdout.write(f"{run.job}: {run.status}\n{run.output}")
            if run.status == run.Status.FAILED:
                raise CommandError(f"job {run.job} failed")
            return
        scheduler = BlockingScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 300},
        )
        for job in jobs.values():
            if job.timetable:
                trigger = cron_trigger(job.timetable)
                scheduler.add_job(run_job, trigger, args=[job], id=job.name, name=job.name)
                self.stdout.write(f"scheduled {job.name}: {job.timetable}")
        sealer = start_sealer()
        if sealer is not None:
            self.stdout.write(f"sealing the audit chain every {sealer.every:g} s")

        def stop(*_: object) -> None:
            # A second signal (a service manager's, then the terminal's) finds it stopped.
            if sealer is not None:
                sealer.stop()
            with contextlib.suppress(SchedulerNotRunningError):
                scheduler.shutdown(wait=False)

        signal.signal(signal.SIGTERM, stop)
        self.stdout.write("scheduler running; Ctrl-C or SIGTERM stops it")
        with contextlib.suppress(KeyboardInterrupt, SystemExit):
            scheduler.start()
        if sealer is not None:
            sealer.stop()
            sealer.join(timeout=10)
