"""What ``verify_audit`` found: the problems it names and the figures it quotes, shared by
the checks of the chain (``audit_verify``), of the catalog (``audit_catalog``) and of the rows
(``audit_rows``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg

from qvp_site.db.audit import GENESIS

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    Cursor = CursorWrapper | psycopg.Cursor[Any]


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    linked: int = 0
    head_hash: str = GENESIS
    unsigned: int = 0
    # Seconds since the oldest entry not yet signed was written, and since the newest valid
    # checkpoint was signed (None: there is none).
    oldest_unsigned_age: float | None = None
    last_signed_age: float | None = None
    checkpoints: int = 0
    rows_checked: int = 0
    # When verify began, by the server's clock (its first statement, which takes the snapshot).
    began: str = ""


def one(cursor: Cursor) -> tuple[Any, ...]:
    """The one row an aggregate or a lookup by key returns."""
    row = cursor.fetchone()
    if row is None:
        raise LookupError("the audit log's query returned no row")
    return tuple(row)
