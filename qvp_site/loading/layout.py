"""A file's layout in the staging table: one column per field, and which column holds what.

Recognising a layout from a header is each app's business (``marketdata.ingest.layouts``
knows bars and ticks, ``signals.news_ingest`` news); staging and checks only need its shape.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qvp_site.db.quoting import ident, literal

# Epoch numbers are told apart by magnitude: below 1e11 seconds (until the year 5138), below
# 1e14 milliseconds, below 1e17 microseconds, else nanoseconds. Integer microseconds keep
# the arithmetic exact (a float of seconds cannot hold microseconds of today's dates).
_EPOCH_SQL = (
    "CASE WHEN abs({c}) < 1e20 THEN timestamptz 'epoch' + round({c} * CASE"
    " WHEN abs({c}) < 1e11 THEN 1e6 WHEN abs({c}) < 1e14 THEN 1e3 WHEN abs({c}) < 1e17 THEN 1"
    " ELSE 1e-3 END)::bigint * interval '1 microsecond' END"
)


class LayoutError(ValueError):
    """The header does not say where the data is, or ``--columns`` does not fit it."""


@dataclass(frozen=True)
class StageColumn:
    name: str  # the staging table's column
    type: str  # what COPY parses it as
    header: str  # the file's name for it ("" for the time of a split date/time)


@dataclass(frozen=True)
class Layout:
    """Where each role is in a file, and how its time is written.

    ``columns`` has one entry per field of a data row, in file order; ``roles`` maps each role
    found to its staging column. ``ts_kind`` is ``text`` (anything PostgreSQL reads as a
    timestamp; naive ones take the session time zone), ``epoch`` or ``split`` (a date column
    and a time column).
    """

    columns: tuple[StageColumn, ...]
    roles: dict[str, str]
    ts_kind: str

    @property
    def field_count(self) -> int:
        return len(self.columns)

    def ts_sql(self, tz: str) -> str:
        """The SQL for a row's time, as timestamptz, from the staging columns."""
        if self.ts_kind == "epoch":
            return _EPOCH_SQL.format(c=ident(self.roles["ts"]))
        if self.ts_kind == "split":
            date, time = ident(self.roles["date"]), ident(self.roles["time"])
            return f"(({date} + {time}) AT TIME ZONE {literal(tz)})"
        return ident(self.roles["ts"])

    def describe(self) -> str:
        """``ts=Date, open=Open, ...``: how the header was read, for messages."""
        by_column = {column: role for role, column in self.roles.items()}
        parts = []
        for col in self.columns:
            role = by_column.get(col.name)
            if role:
                parts.append(f"{role}={col.header or '(time)'}")
        return ", ".join(parts)


def normalize(name: str) -> str:
    """A header name compared loosely: lower-case letters and digits only ("Adj Close" is
    "adjclose"), so that every app's synonyms match the same way."""
    return re.sub(r"[^a-z0-9]", "", name.lower())
