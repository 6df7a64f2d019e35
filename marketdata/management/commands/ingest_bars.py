from __future__ import annotations

from django.core.management.base import BaseCommand

from marketdata.ingest import command
from marketdata.models import Ingest

TIMEFRAMES = {"1m": Ingest.Kind.BARS_1M, "1d": Ingest.Kind.BARS_1D}


class Command(BaseCommand):
    help = (
        "Load a CSV or Parquet file of OHLCV bars of one instrument into the 1-minute or daily "
        "bar table. The columns are recognised from the header (Yahoo, timestamp/open/high/"
        "low/close[/volume], backtrader; --columns for others). A file with bad rows is "
        "refused whole, each bad line listed, unless --skip-invalid. The summary counts rows "
        "inserted (new times), revised (stored bars whose values the file changes: each old "
        "bar is kept as a revision, readable as known before the load with known_at, listed "
        "on the load's Ingest in the admin) and unchanged. Re-loading a file changes nothing "
        "and records no revision; every load is recorded (admin: Ingests)."
    )

    def add_arguments(self, parser):
        command.add_arguments(parser)
        parser.add_argument("--timeframe", required=True, choices=sorted(TIMEFRAMES))
        parser.add_argument(
            "--adjusted-through",
            type=command.date_argument,
            metavar="YYYY-MM-DD",
            help="the file's prices and volumes were split-adjusted by its vendor through this"
            " date (Yahoo's Close: the day it was downloaded): the load divides out the splits"
            " and stock dividends with ex-dates after each row and on or before the date, so"
            " that the rows are stored as traded and a later split adjusts them once. The"
            " splits must be loaded first (ingest_actions): the load divides out those known"
            " when it runs, and records the date on its Ingest",
        )

    def handle(self, *args, **options):
        command.run(self, TIMEFRAMES[options["timeframe"]], options)
