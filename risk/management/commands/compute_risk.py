from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from qvp_site.per_instrument import InstrumentRun, raise_if_failed
from qvp_site.times import TIME_HELP, time_argument
from risk.runs import RunOptions, compute_risk
from trading.management.commands.snapshot_portfolios import account_ids


class Command(BaseCommand):
    help = (
        "Compute risk as of a time (default: now, to the minute): volatility estimates of every "
        "instrument with daily bars, then per account VaR and CVaR (historical, parametric, "
        "Monte Carlo), portfolio metrics from its snapshots, exposures and factor exposures, "
        "all stored at that time; then check the risk limits, raise an alert per new breach "
        "and deliver it by email and webhook as configured. Running the same time again "
        "restates it and raises nothing twice."
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
        parser.add_argument("--confidence", type=float, default=0.95, help="VaR confidence")
        parser.add_argument("--lookback", type=int, default=252, help="days of returns")
        parser.add_argument("--benchmark", default="SPY", help="the benchmark's symbol")

    def handle(self, *args, account=None, as_of=None, **options):
        if not 0 < options["confidence"] < 1:
            raise CommandError("--confidence must be between 0 and 1 (exclusive)")
        if options["lookback"] < 2:
            raise CommandError("--lookback must be at least 2 days")
        as_of = as_of or timezone.now().replace(second=0, microsecond=0)
        run = RunOptions(options["confidence"], options["lookback"], options["benchmark"])
        report = compute_risk(as_of, account_ids(account), run, InstrumentRun("volatility"))
        self.stdout.write(
            f"Risk as of {as_of:%Y-%m-%d %H:%M:%S %Z}: {report.volatility_estimates} volatility"
            f" estimate(s), {report.metrics} metric(s), {report.exposures} factor exposure(s),"
            f" {len(report.alerts_raised)} alert(s) raised, {report.deliveries} delivered."
        )
        for line in report.instruments.lines():
            self.stdout.write(line)
        raise_if_failed(report.instruments)
