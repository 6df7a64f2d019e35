from __future__ import annotations

from django.core.management.base import BaseCommand

from marketdata.ingest import command
from marketdata.models import Ingest


class Command(BaseCommand):
    help = (
        "Load a CSV or Parquet file of trade or quote ticks of one instrument into the tick "
        "table. Tardis trades and one-price bar files (price = close, size = volume) are "
        "recognised; --columns for others. A tick's sequence is its trade id, else its place "
        "among the file's ticks of the same time, so no tick is merged into another. A file "
        "with bad rows is refused whole unless --skip-invalid; re-loading it changes nothing."
    )

    def add_arguments(self, parser):
        command.add_arguments(parser)

    def handle(self, *args, **options):
        command.run(self, Ingest.Kind.TICKS, options)
