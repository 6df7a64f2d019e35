from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from marketdata.knowledge import known_at_argument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from qvp_site.times import TIME_HELP, time_argument
from trading.models import Account, PortfolioSnapshot
from trading.snapshots import ACTOR, TABLE, take_snapshots


def account_ids(names: list[str] | None) -> list[int] | None:
    """The ids of the accounts named by --account options (None: no option, every account);
    a name that matches none stops the command, naming it."""
    if not names:
        return None
    found = dict(Account.objects.filter(name__in=names).values_list("name", "id"))
    missing = [n for n in names if n not in found]
    if missing:
        raise CommandError(f"no account named {', '.join(map(repr, missing))}")
    return list(found.values())


class Command(BaseCommand):
    help = (
        "Snapshot portfolios: each account's cash, market value, NAV, gross and net exposure "
        "and daily P&L in its base currency as of a time (default: now, to the minute), from "
        "the books and the latest prices and FX rates at that time; holdings or cash without "
        "a price or rate are left out and listed. Taking the same time again restates it."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--account",
            action="append",
            metavar="NAME",
            help="only this account (repeat for several; default: every account with books)",
        )
        parser.add_argument(
            "--as-of",
            type=time_argument,
            help=f"the time to value at, {TIME_HELP} (default: now)",
        )
        parser.add_argument(
            "--known-at",
            type=known_at_argument,
            help="read the books and bars as the system knew them then (a snapshot's known_at"
            f" takes it again exactly), {TIME_HELP} (default: the settled moment, recorded)",
        )

    def handle(self, *args, account=None, as_of=None, known_at=None, **options):
        as_of = as_of or timezone.now().replace(second=0, microsecond=0)
        # Partitions first, in their own transaction: creating one locks the table.
        partitions.prepare_load(TABLE, as_of, as_of)
        with acting_as(ACTOR):
            ids = self._account_ids(account)
            written = take_snapshots(as_of, ids, known_at)
            snapshots = PortfolioSnapshot.objects.filter(ts=as_of).select_related("account")
            if ids is not None:
                snapshots = snapshots.filter(account_id__in=ids)
            for snap in snapshots.order_by("account__name"):
                self._report(snap)
        self.stdout.write(f"{written} snapshot(s) as of {as_of:%Y-%m-%d %H:%M:%S %Z}.")

    def _account_ids(self, names: list[str] | None) -> list[int] | None:
        return account_ids(names)

    def _report(self, snap: PortfolioSnapshot) -> None:
        pnl = "" if snap.daily_pnl is None else f", P&L {snap.daily_pnl:,.2f}"
        self.stdout.write(
            f"{snap.account.name}: NAV {snap.nav:,.2f} {snap.currency} (cash {snap.cash:,.2f},"
            f" market value {snap.market_value:,.2f}, gross {snap.gross_exposure:,.2f},"
            f" net {snap.net_exposure:,.2f}{pnl})"
        )
        for item in snap.unpriced:
            what = item.get("symbol") or f"cash {item.get('cash')}"
            self.stdout.write(self.style.WARNING(f"  left out: {what} (no {item['missing']})"))
