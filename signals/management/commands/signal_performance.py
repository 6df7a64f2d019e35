from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from marketdata.knowledge import known_at_argument
from qvp_site.acting import acting_as
from qvp_site.times import TIME_HELP, time_argument
from signals.models import Agent
from signals.performance import AgentPerformance, refresh


class Command(BaseCommand):
    help = (
        "Measure agents' signals against the returns that followed them over their horizon "
        "(hit rate, information coefficient, average return, count) over the last --days "
        "days, and the cumulative return of following them without overlap (capital split "
        "equally among the instruments, each share taking one signal at a time over its "
        "horizon, compounded; signals/sql/performance/0008.sql), print it and keep it as the "
        "agent's performance for that window. "
        "The same as SELECT * FROM calculate_signal_performance('NAME', DAYS)."
    )

    def add_arguments(self, parser):
        who = parser.add_mutually_exclusive_group(required=True)
        who.add_argument("--agent", action="append", help="an agent's name (repeatable)")
        who.add_argument("--all", action="store_true", help="every active agent")
        parser.add_argument(
            "--days",
            type=int,
            action="append",
            help="window in days, counted back from --as-of (repeatable; default 30)",
        )
        parser.add_argument(
            "--as-of", type=time_argument, help=f"end of the window, {TIME_HELP} (default: now)"
        )
        parser.add_argument(
            "--known-at",
            type=known_at_argument,
            help="read market data as the system knew it then (a stored measure's known_at"
            f" repeats it exactly), {TIME_HELP} (default: now)",
        )

    def handle(self, *args, agent, all, days, as_of, known_at, **options):
        windows = sorted(set(days or [30]))
        if any(d < 1 for d in windows):
            raise CommandError("--days must be at least 1")
        if agent:
            known = set(Agent.objects.filter(name__in=agent).values_list("name", flat=True))
            if unknown := sorted(set(agent) - known):
                raise CommandError(f"no agent named {', '.join(unknown)}")
        try:
            with acting_as("signal_performance"):
                rows = refresh(windows, agent, as_of, known_at)
        except DatabaseError as error:
            raise CommandError(str(error).strip()) from error
        for row in rows:
            self.stdout.write(describe(row))
        self.stdout.write(f"{len(rows)} performance row(s) stored.")


def describe(p: AgentPerformance) -> str:
    def pct(value):
        return "n/a" if value is None else f"{value:+.2%}"

    hit = "n/a" if p.hit_rate is None else f"{p.hit_rate:.1%}"
    ic = "n/a" if p.information_coefficient is None else f"{p.information_coefficient:+.3f}"
    return (
        f"{p.agent} {p.window_days}d ({p.window_start:%Y-%m-%d %H:%M} .. "
        f"{p.window_end:%Y-%m-%d %H:%M} UTC): {p.signal_count} signals, hit rate {hit}, "
        f"IC {ic}, average return {pct(p.average_return)}, "
        f"cumulative return {pct(p.cumulative_return)} (non-overlapping holdings)"
    )
