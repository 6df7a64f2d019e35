"""What every load's checks share: the rejected rows' table and its summary.

Each app writes its own rules (one set-based statement filling the staging's REJECTED table
with ``(line, reason)``); reading them back is the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from qvp_site.loading.staging import REJECTED

SHOWN = 20  # bad rows listed in a refusal; the rest are counted


@dataclass(frozen=True)
class Rejection:
    """The bad rows of a file: how many, and the first few (position, reason)."""

    total: int
    first: list[tuple[int, str]]


def rejection(cursor: Any, total: int) -> Rejection:
    """The summary of the ``total`` rows in REJECTED: the first ``SHOWN`` of them, in order,
    so that a refusal lists the same rows whichever app refused."""
    first: list[tuple[int, str]] = []
    if total:
        cursor.execute(f"SELECT line, reason FROM {REJECTED} ORDER BY line LIMIT {SHOWN}")
        first = cursor.fetchall()
    return Rejection(total=total, first=first)


def all_rejected(cursor: Any) -> list[tuple[int, str]]:
    """Every rejected row, in order: for the rejects file set beside a loaded file."""
    cursor.execute(f"SELECT line, reason FROM {REJECTED} ORDER BY line")
    return list(cursor.fetchall())
