"""The knowledge time a run records when it reads the present.

A run (a risk run, a performance measure, a backtest) that wants to be repeated reads market
data as known at one moment and records it. "Now" will not do: a load that began before now and
commits after would be known from its start, with values the run could not see. The settled
moment, ``marketdata_settled_at()`` (marketdata/sql/revisions/0009.sql), is just before every
transaction still open; what is known by then is already committed and stays so.
"""

from __future__ import annotations

import argparse
from datetime import datetime

from django.db import connection

from qvp_site.times import time_argument


def settled_at() -> datetime:
    """The latest moment whose knowledge is settled: read as known at it, and record it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_settled_at()")
        return cursor.fetchone()[0]


class NotSettled(ValueError):
    """A knowledge time after the settled moment: loads and bookings still open may yet commit
    changes stamped before it, so a run read as known then could not be repeated."""


def knowledge_time(known_at: datetime | None) -> datetime:
    """The knowledge time a run reads and records: ``known_at``, else the settled moment.
    A ``known_at`` after the settled moment is refused (``NotSettled``), naming both."""
    settled = settled_at()
    if known_at is None:
        return settled
    if known_at > settled:
        raise NotSettled(
            f"known_at {known_at.isoformat()} is not settled yet: transactions still open may"
            f" change what was known then (the latest settled moment is {settled.isoformat()})"
        )
    return known_at


def known_at_argument(value: str) -> datetime:
    """``--known-at`` of a command that records its run: a time (``qvp_site.times``) that is
    settled already, else argparse names the option and why (a ``CommandError`` from code)."""
    moment = time_argument(value)
    try:
        return knowledge_time(moment)
    except NotSettled as refusal:
        raise argparse.ArgumentTypeError(str(refusal)) from None
