from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from rest_framework.exceptions import ValidationError

from marketdata.fields import as_date, command_instruments, symbol_list
from qvp_site.acting import acting_as
from qvp_site.times import TIME_HELP, time_argument
from signals import fusion


class Command(BaseCommand):
    help = (
        "Fuse each instrument's running signals (the latest per active agent) into a target "
        f"weight by the {fusion.METHOD} method: confidence times the agent's measured skill "
        "(information coefficient over 30 days), stored with its inputs. Run it again for the "
        "same time and it replaces what it stored."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=time_argument, help=f"the time to fuse at, {TIME_HELP} (default: now)"
        )
        parser.add_argument("--symbols", help="comma-separated symbols (default: all)")

    def handle(self, *args, as_of, symbols, **options):
        ids = None
        if symbols:
            # The symbols of the instruments then: --as-of's date, else today.
            try:
                wanted = symbol_list(symbols)
            except ValidationError as error:
                raise CommandError(f"--symbols: {'; '.join(error.detail)}") from error
            on = as_date(as_of) if as_of else None
            ids = [i.id for i in command_instruments("--symbols", wanted, on)]
        with acting_as("fuse_signals"):
            result = fusion.fuse(as_of, ids)
        for fused in result.fused:
            self.stdout.write(
                f"{fused.instrument.symbol}: target weight {fused.target_weight:+.4f},"
                f" confidence {fused.confidence:.3f} from {fused.input_count} signal(s)"
            )
        self.stdout.write(
            f"{len(result.fused)} instrument(s) fused at {result.as_of:%Y-%m-%d %H:%M:%S} UTC."
        )
