from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from qvp_site.db.maintenance import maintain
from qvp_site.times import TIME_HELP, time_argument


class Command(BaseCommand):
    help = (
        "Maintain the time-series tables: partitions ahead of now (plain PostgreSQL), retention, "
        "compression where due (TimescaleDB), aggregates' recent windows; --daily adds ANALYZE, "
        "--weekly ANALYZE and VACUUM. Calls the SQL function qvp_maintain (daily_maintenance or "
        "weekly_maintenance), then does what it leaves: the aggregates' refresh and VACUUM. "
        "Safe to run twice at once; prints what it did."
    )

    def add_arguments(self, parser):
        parser.add_argument("--daily", action="store_true", help="also ANALYZE each table")
        parser.add_argument("--weekly", action="store_true", help="also ANALYZE and VACUUM")
        parser.add_argument(
            "--cover",
            nargs=2,
            metavar=("START", "END"),
            type=time_argument,
            help=f"also create the partitions covering START..END (plain PostgreSQL; {TIME_HELP})",
        )

    def handle(self, *args, **options):
        _refuse_unmigrated()
        cover = None
        if options["cover"]:
            cover = tuple(options["cover"])
            if cover[0] > cover[1]:
                raise CommandError("--cover: START is after END")
        maintain(
            report=self.stdout.write,
            analyze=options["daily"],
            vacuum=options["weekly"],
            cover=cover,
        )


def _refuse_unmigrated() -> None:
    """A database the migrations have not all reached has no tables (or not all) to maintain:
    say so, and what to run, instead of a traceback from the first missing table."""
    executor = MigrationExecutor(connection)
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        first = plan[0][0]
        count = "1 migration is" if len(plan) == 1 else f"{len(plan)} migrations are"
        raise CommandError(
            f"{count} not applied to this database (the first: {first.app_label}"
            f" {first.name}): run `manage.py migrate` first"
        )
