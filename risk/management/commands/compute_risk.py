from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from marketdata.knowledge import known_at_argument
from marketdata.querysets import ADJUSTMENTS
from qvp_site.per_instrument import InstrumentRun, raise_if_failed
from qvp_site.times import TIME_HELP, time_argument
from risk.models import RiskRun
from risk.runs import RunOptions, compute_risk, repeat_run
from risk.volatility import DEFAULT_ADJUSTMENT
from trading.management.commands.snapshot_portfolios import account_ids


class Command(BaseCommand):
    help = (
        "Compute risk as of a time (default: now, to the minute): volatility estimates of every "
        "instrument with daily bars, then per account VaR and CVaR (historical, parametric, "
        "Monte Carlo), portfolio metrics from its snapshots, exposures and factor exposures, "
        "all stored at that time; then check the risk limits, raise an alert per new breach "
        "and deliver it by email and webhook as configured. Running the same time again "
        "restates it and raises nothing twice. Each run is recorded with the knowledge time it "
        "read (--known-at: market data and executions as the system knew them then; default "
        "the settled moment, just before every transaction still open) and its code version; "
        "--repeat RUN measures a stored run again and says whether every number is identical."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--account",
            action="append",
            metavar="NAME",
            help="only this account (repeat for several; default: every account)",
        )
        parser.add_argument(
            "--as-of",
            type=time_argument,
            help=f"the time to compute at, {TIME_HELP} (default: now)",
        )
        parser.add_argument(
            "--known-at",
            type=known_at_argument,
            help=(
                f"read market data and executions as known at this time, {TIME_HELP} (default:"
                " the settled moment); a run of the past checks no limit"
            ),
        )
        parser.add_argument(
            "--adjustment",
            choices=ADJUSTMENTS,
            help=(
                "how the returns read are adjusted for corporate actions: raw (as traded),"
                f" split, total_return (dividends too; the default, {DEFAULT_ADJUSTMENT})"
            ),
        )
        parser.add_argument(
            "--repeat",
            type=int,
            metavar="RUN",
            help="measure stored run RUN again (its as-of, known-at, options and accounts)",
        )
        parser.add_argument("--confidence", type=float, default=0.95, help="VaR confidence")
        parser.add_argument("--lookback", type=int, default=252, help="days of returns")
        parser.add_argument("--benchmark", default="SPY", help="the benchmark's symbol")

    def handle(self, *args, account=None, as_of=None, known_at=None, repeat=None, **options):
        adjustment = options["adjustment"]
        if repeat is not None:
            return self._repeat(repeat, account, as_of, known_at, adjustment)
        if not 0 < options["confidence"] < 1:
            raise CommandError("--confidence must be between 0 and 1 (exclusive)")
        if options["lookback"] < 2:
            raise CommandError("--lookback must be at least 2 days")
        as_of = as_of or timezone.now().replace(second=0, microsecond=0)
        run = RunOptions(options["confidence"], options["lookback"], options["benchmark"])
        report = compute_risk(
            as_of,
            account_ids(account),
            run,
            InstrumentRun("volatility"),
            known_at=known_at,
            adjustment=adjustment or DEFAULT_ADJUSTMENT,
        )
        assert report.known_at is not None
        self.stdout.write(
            f"Risk run {report.run_id} as of {as_of:%Y-%m-%d %H:%M:%S %Z}, known at"
            f" {report.known_at.isoformat()}: {report.volatility_estimates} volatility"
            f" estimate(s), {report.metrics} metric(s), {report.exposures} factor exposure(s),"
            f" {len(report.alerts_raised)} alert(s) raised, {report.deliveries} delivered."
        )
        for line in report.instruments.lines():
            self.stdout.write(line)
        raise_if_failed(report.instruments)

    def _repeat(self, run_id: int, account, as_of, known_at, adjustment) -> None:
        if account or as_of or known_at or adjustment:
            raise CommandError(
                "--repeat takes the run's own accounts, --as-of, --known-at and --adjustment"
            )
        if not RiskRun.objects.filter(pk=run_id).exists():
            raise CommandError(f"no risk run {run_id}")
        report = repeat_run(run_id)
        if report.identical:
            self.stdout.write(
                f"Run {report.run_id} repeats run {run_id}: {report.compared} value(s), identical."
            )
            return
        for (account_id, name), (stored, found) in report.differences.items():
            self.stdout.write(f"  account {account_id} {name}: stored {stored!r}, now {found!r}")
        raise CommandError(
            f"run {report.run_id} repeats run {run_id}: {len(report.differences)} of"
            f" {report.compared} value(s) differ"
        )
