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

    def handle(self, *args, **options):
        command.run(self, TIMEFRAMES[options["timeframe"]], options)
