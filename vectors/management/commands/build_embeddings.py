from __future__ import annotations

from datetime import datetime

from django.core.management.base import BaseCommand, CommandError
from django.db.models import QuerySet
from tqdm import tqdm

from marketdata.fields import as_date, command_instruments
from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.code_version import code_version
from qvp_site.per_instrument import InstrumentRun, raise_if_failed
from qvp_site.times import TIME_HELP, time_argument
from vectors import embeddings, regimes
from vectors.models import FeatureBuild

ACTOR = "build_embeddings"


def named_instruments(symbols: list[str] | None, since: datetime | None = None) -> QuerySet:
    """The instruments named by --symbol options (all when none): each the one that bore the
    symbol on --since's date (else today), refusing unknown and ambiguous ones."""
    instruments = Instrument.objects.order_by("symbol")
    if symbols:
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        on = as_date(since) if since else None
        found = command_instruments("--symbol", wanted, on)
        instruments = instruments.filter(id__in=[i.id for i in found])
    return instruments


class Command(BaseCommand):
    help = (
        "Embed bars as vectors: the 128 standardised features of each 390-minute window "
        "closing every 15 minutes (vectors/features.py), then the 64-d volatility signature "
        "of each day with its k-means regime. Incremental: only windows and days not stored "
        "yet, by binary COPY. --rebuild reloads every window without the HNSW index and "
        "builds it after (needs the tables' owner). Each build reads the bars as known at one "
        "moment (--known-at; default the settled moment) and records it with the code's "
        "version; --repeat BUILD computes that build's windows again from the same bars and "
        "says whether every feature is identical."
    )

    def add_arguments(self, parser):
        parser.add_argument("--symbol", action="append", metavar="S", help="only this symbol")
        parser.add_argument(
            "--since",
            type=time_argument,
            help=f"windows closing from this time on, {TIME_HELP} (default: after the "
            "newest stored)",
        )
        parser.add_argument("--rebuild", action="store_true", help="reload every window")
        parser.add_argument(
            "--clusters", type=int, default=regimes.DEFAULT_CLUSTERS, help="regimes to find"
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")
        parser.add_argument(
            "--known-at",
            type=time_argument,
            help=f"read the bars as the system knew them then, {TIME_HELP} (default: the"
            " settled moment, recorded)",
        )
        parser.add_argument(
            "--repeat",
            type=int,
            metavar="BUILD",
            help="compute a stored build's windows again and compare; writes nothing",
        )

    def handle(self, *args, symbol=None, since=None, rebuild=False, clusters, **options):
        if options["repeat"] is not None:
            return self._repeat(options["repeat"])
        if not 2 <= clusters <= 12:
            raise CommandError("--clusters must lie between 2 and 12")
        instruments = named_instruments(symbol, since)

        def progress(items, what="features"):
            return tqdm(
                items,
                desc=what,
                unit="instrument",
                disable=options["no_progress"],
                file=self.stderr,
            )

        windows, signatures = InstrumentRun("embeddings"), InstrumentRun("regimes")
        instruments = list(instruments)
        # A new feature set committed before its first build, where the engine wants it
        # (vectors/store.py, fitted_apart): the build's COPY, as the scheduler's role, then
        # sees its key on the workers.
        with acting_as(ACTOR):
            embeddings.prepare_set(instruments, since=since, known_at=options["known_at"])
        with acting_as(ACTOR):
            regimes.prepare_set(instruments)
        with acting_as(ACTOR):
            report = embeddings.build(
                instruments, since=since, rebuild=rebuild, progress=progress, run=windows,
                known_at=options["known_at"],
            )  # fmt: skip
        for name, count in sorted(report.created.items()):
            self.stdout.write(f"{name}: {count:,} feature windows embedded.")
        note = " (HNSW index rebuilt after the load)" if report.rebuilt_index else ""
        self.stdout.write(f"{report.total:,} feature embeddings written{note}.")
        if report.build is not None:
            self.stdout.write(
                f"Build {report.build.pk}: bars as known at {report.build.known_at.isoformat()}."
            )
        with acting_as(ACTOR):
            created = regimes.build(
                instruments,
                clusters=clusters,
                progress=lambda i: progress(i, "regimes"),
                run=signatures,
            )
        self.stdout.write(f"{sum(created.values()):,} regime signatures written.")
        for line in windows.lines() + signatures.lines():
            self.stdout.write(line)
        raise_if_failed(windows, signatures)

    def _repeat(self, build_id: int) -> None:
        build = FeatureBuild.objects.select_related("feature_set").filter(pk=build_id).first()
        if build is None:
            raise CommandError(f"--repeat: no feature build {build_id}")
        differences = embeddings.repeat(build)
        for line in differences[:20]:
            self.stdout.write(line)
        if differences:
            raise CommandError(
                f"build {build_id} is not repeated: {len(differences)} difference(s)"
            )
        same = "the same" if build.code_version == code_version() else "other"
        self.stdout.write(
            f"Build {build_id} repeated: every window identical (bars as known at"
            f" {build.known_at.isoformat()}; {same} code than the build's)."
        )
