"""What became of each instrument in one run of a job that walks instruments.

A job that walks every instrument (embeddings, regimes, patterns, volatility estimates) must
not let one instrument's odd data stop the others: each instrument's work runs in a savepoint
of its own (``InstrumentRun.each``), and an error there is rolled back to it, recorded against
the instrument (here, and as an ERROR log record naming it, which the system log keeps) while
the run goes on. An instrument with nothing to compute is a skip with its reason, not an
error. The command then says which failed and exits with an error (``raise_if_failed``), after
the others' results were committed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from django.core.management.base import CommandError
from django.db import transaction

logger = logging.getLogger(__name__)


class InstrumentsFailed(CommandError):
    """Some instruments of a run failed; the others' results are stored."""


@dataclass
class InstrumentRun:
    """Failures and skips of one run of ``task``, by symbol. ``isolated=False`` (what a
    caller gets that asked for no record, as the demo's seed) lets an error propagate."""

    task: str
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    isolated: bool = True
    # A first pass whose failures the real run meets and logs again: recorded here, not logged.
    quiet: bool = False

    @contextmanager
    def each(self, symbol: str) -> Iterator[None]:
        """Run one instrument's work in a savepoint; an error is recorded, not raised."""
        try:
            with transaction.atomic():
                yield
        except Exception as error:
            if not self.isolated:
                raise
            self.failed[symbol] = f"{type(error).__name__}: {error}"
            if self.quiet:
                return
            logger.error(
                "%s: %s failed and was left out: %s",
                self.task,
                symbol,
                self.failed[symbol],
                exc_info=True,
                extra={"task": self.task, "instrument": symbol},
            )

    def skip(self, symbol: str, reason: str) -> None:
        self.skipped[symbol] = reason

    def lines(self) -> list[str]:
        """One line per skipped or failed instrument, for a command's output."""
        out = [f"{self.task}: {s} skipped ({why})." for s, why in sorted(self.skipped.items())]
        out += [f"{self.task}: {s} FAILED ({error})." for s, error in sorted(self.failed.items())]
        return out


def raise_if_failed(*runs: InstrumentRun) -> None:
    """Stop the command with an error naming every instrument that failed in ``runs``."""
    failed = [f"{run.task}: {', '.join(sorted(run.failed))}" for run in runs if run.failed]
    if failed:
        raise InstrumentsFailed(
            f"instruments failed (the others' results are stored): {'; '.join(failed)}"
        )
