"""Times given on a command line (``--as-of``, ``--since``, ``--before``...): one reading for
every command.

A value is an ISO 8601 date or time: ``2024-05-13`` (midnight), ``2024-05-13T09:30``,
``2024-05-13T09:30:00+02:00`` or ``...Z``. A date or time written without a zone is UTC, as
the API reads one (``qvp_site.api.fields.TimeField``) and as every stored time is kept, so
that the same text means the same instant at the prompt, in a script and over HTTP, whatever
the machine's own zone.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

# What a command's help says of its time options.
TIME_HELP = "YYYY-MM-DD[THH:MM[:SS]][+HH:MM], UTC unless a zone is given"


def parse_time(value: str) -> datetime:
    """``value`` as an aware datetime, UTC where it names no zone; ValueError if it is not
    an ISO 8601 date or time."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{value!r} is not an ISO date or time ({TIME_HELP})") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def time_argument(value: str) -> datetime:
    """``parse_time`` as an argparse ``type=``: a bad value stops the command with
    ``argument --as-of: '...' is not an ISO date or time (...)``, argparse naming the
    option (a ``CommandError`` when the command is called from code)."""
    try:
        return parse_time(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
