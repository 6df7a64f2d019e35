"""How a load reports its progress: a tqdm bar on a terminal, or nothing.

Loads take any ``Progress``; ``NoProgress`` is the default for callers that show none (the
API, jobs, tests), ``ProgressBar`` the commands' bar.
"""

from __future__ import annotations

import sys
from typing import Any, Protocol

from django.core.management.base import BaseCommand


class Progress(Protocol):
    def start(self, description: str, total: int | None, unit: str) -> None: ...

    def update(self, advance: int) -> None: ...


class NoProgress:
    """Progress nobody watches: every report is dropped."""

    def start(self, description: str, total: int | None, unit: str) -> None:
        pass

    def update(self, advance: int) -> None:
        pass


class ProgressBar:
    """A tqdm bar on stderr when stdout is a terminal; nothing otherwise (logs, pipes, tests)."""

    def __init__(self, command: BaseCommand) -> None:
        self.enabled = command.stdout.isatty()
        self.bar: Any = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def start(self, description: str, total: int | None, unit: str) -> None:
        if not self.enabled:
            return
        from tqdm import tqdm

        self.close()
        self.bar = tqdm(
            total=total, desc=description, unit=unit, unit_scale=True, file=sys.stderr, leave=False
        )

    def update(self, advance: int) -> None:
        if self.bar is not None:
            self.bar.update(advance)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
