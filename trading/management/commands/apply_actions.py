from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from qvp_site.acting import acting_as
from trading.books import actions_left_out, apply_actions

ACTOR = "apply_actions"


def through_date(text: str) -> date:
    """--through's date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError as error:
        raise CommandError(f"--through: {text!r} is not a date (YYYY-MM-DD)") from error


class Command(BaseCommand):
    help = (
        "Apply corporate actions to the books: every current split, dividend, spin-off and "
        "delisting whose ex moment has come (with an ex-date up to --through, if given) and "
        "not applied yet moves the positions that held its instrument then and books its cash, "
        "an entry per position (applying again changes nothing); a position that traded after "
        "the ex moment is split or paid on the shares it held then. Lists the positions left "
        "out, and why, and the actions the books refused."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--through", metavar="DATE", help="the last ex-date to apply, YYYY-MM-DD"
        )

    def handle(self, *args, through=None, **options):
        last = through_date(through) if through else None
        refused: list[str] = []
        try:
            with acting_as(ACTOR):
                written = apply_actions(last, refused)
                left_out = actions_left_out(last)
        except DatabaseError as error:
            raise CommandError(f"--through {last}: {error}".strip()) from error
        until = f"ex-dates through {last}" if last else "ex moments come by now"
        self.stdout.write(f"{written} corporate-action entries written ({until})")
        for account, symbol, kind, ex_date, why in left_out:
            self.stdout.write(f"left out: {account} {symbol} {kind} ex {ex_date}: {why}")
        for message in refused:
            self.stderr.write(f"refused: {message}")
