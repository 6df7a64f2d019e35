"""The knowledge time a run records when it reads the present.

A run (a risk run, a performance measure, a backtest) that wants to be repeated reads market
data as known at one moment and records it. "Now" will not do: a load that began before now and
commits after would be known from its start, with values the run could not see. The settled
moment, ``marketdata_settled_at()`` (marketdata/sql/revisions/0009.sql), is just before every
transaction still open; what is known by then is already committed and stays so.
"""

from __future__ import annotations

from datetime import datetime

from django.db import connection


def settled_at() -> datetime:
    """The latest moment whose knowledge is settled: read as known at it, and record it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT marketdata_settled_at()")
        return cursor.fetchone()[0]
