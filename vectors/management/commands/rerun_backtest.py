from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from qvp_site.times import TIME_HELP, time_argument
from trading import reruns
from trading.models import BacktestRun


class Command(BaseCommand):
    help = (
        "Rerun a stored backtest run of a strategy QVP knows (the rules of build_patterns) over "
        "exactly its data: the bars as known at the run's known_at, its period and parameters. "
        "Says whether the trades and metrics are identical to the last digit (or the first "
        "differences), and whether the code differs from the run's. Writes nothing. Exits 1 "
        "when the rerun differs, as diff does."
    )

    def add_arguments(self, parser):
        parser.add_argument("id", type=int, help="the backtest run's id")
        parser.add_argument(
            "--known-at",
            type=time_argument,
            help="read the bars as known at this time instead of the run's known_at (what "
            f"corrections learnt since would change), {TIME_HELP}",
        )

    def handle(self, *args, id: int, known_at=None, **options):
        run = BacktestRun.objects.filter(pk=id).first()
        if run is None:
            raise CommandError(f"no backtest run {id}")
        try:
            report = reruns.rerun(run, known_at=known_at)
        except reruns.RerunRefused as refused:
            raise CommandError(f"{refused.field}: {refused.message}") from None
        for line in report.lines():
            self.stdout.write(line)
        if not report.identical:
            raise CommandError(f"the rerun of backtest {id} differs from the stored run")
