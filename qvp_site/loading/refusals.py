"""The refusal of a load: nothing written, and which rows are bad and why.

Market data, executions and news refuse a file in the same words, so that the command line,
the API and the admin show one message whatever was loaded.
"""

from __future__ import annotations

from qvp_site.loading.checks import Rejection


class IngestRefused(Exception):
    """The file was not loaded: its bad rows, or a layout that cannot be read."""

    def __init__(
        self, message: str, rejected: int = 0, rows: list[tuple[int, str]] | None = None
    ) -> None:
        super().__init__(message)
        self.rejected = rejected
        self.rows = rows or []  # the first bad rows: (line or row position, reason)


def refusal_message(name: str, label: str, rejection: Rejection) -> str:
    """``refused <name>: N bad rows, nothing written``, then the first bad rows, each by its
    ``label`` (``line`` or ``row``) and position, and how many more there are."""
    rows = "row" if rejection.total == 1 else "rows"
    lines = [f"refused {name}: {rejection.total} bad {rows}, nothing written"]
    lines += [f"  {label} {position}: {reason}" for position, reason in rejection.first]
    if rejection.total > len(rejection.first):
        lines.append(f"  ... and {rejection.total - len(rejection.first)} more")
    return "\n".join(lines)


def refused(name: str, label: str, rejection: Rejection) -> IngestRefused:
    """The exception for ``rejection``, carrying its message, count and first rows."""
    return IngestRefused(refusal_message(name, label, rejection), rejection.total, rejection.first)
