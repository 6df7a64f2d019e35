from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from qvp_site.db.maintenance import maintain


def _moment(value: str) -> datetime:
    try:
        moment = parse_datetime(value) or parse_datetime(f"{value}T00:00:00+00:00")
    except ValueError:  # well formed but impossible, such as month 13
        moment = None
    if moment is None:
        raise CommandError(f"--cover: {value!r} is not a date or time (YYYY-MM-DD[THH:MM])")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Command(BaseCommand):
    help = (
        "Maintain the time-series tables: partitions ahead of now (plain PostgreSQL), retention, "
        "compression where due (TimescaleDB), aggregates' recent windows; --daily adds ANALYZE, "
        "--weekly VACUUM ANALYZE. Safe to run twice at once; prints what it did."
    )

    def add_arguments(self, parser):
        parser.add_argument("--daily", action="store_true", help="also ANALYZE each table")
        parser.add_argument("--weekly", action="store_true", help="also VACUUM ANALYZE")
        parser.add_argument(
            "--cover",
            nargs=2,
            metavar=("START", "END"),
            help="also create the partitions covering START..END (plain PostgreSQL)",
        )

    def handle(self, *args, **options):
        cover = None
        if options["cover"]:
            cover = (_moment(options["cover"][0]), _moment(options["cover"][1]))
            if cover[0] > cover[1]:
                raise CommandError("--cover: START is after END")
        maintain(
            report=self.stdout.write,
            analyze=options["daily"],
            vacuum=options["weekly"],
            cover=cover,
        )
