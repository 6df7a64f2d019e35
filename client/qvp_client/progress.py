"""A progress bar for long downloads (tqdm, the ``progress`` extra): chunks done of the
range's chunks, and bytes received.

``progress=None`` (the default) shows it when tqdm is installed for a download of more than
one chunk, and for one chunk once it has lasted ``LONG`` seconds (tqdm's ``delay``: a quick
read draws nothing); ``True`` always, at once (and asks for tqdm); ``False`` never.
"""

from __future__ import annotations

import importlib.util
from types import TracebackType
from typing import Any

LONG = 2.0  # seconds a one-chunk download runs before its bars appear, by default


def wanted(progress: bool | None, chunks: int) -> tuple[bool, float]:
    """Whether to show the bars, and after how many seconds."""
    if progress is None:
        installed = importlib.util.find_spec("tqdm") is not None
        return installed, 0.0 if chunks > 1 else LONG
    if progress and importlib.util.find_spec("tqdm") is None:
        raise ImportError('progress=True needs tqdm: pip install "qvp-client[progress]"')
    return progress, 0.0


class Progress:
    """Two bars, chunks and bytes; does nothing when not ``shown``."""

    def __init__(self, what: str, chunks: int, shown: bool, delay: float = 0.0) -> None:
        self.chunks_bar: Any = None
        self.bytes_bar: Any = None
        if not shown:
            return
        from tqdm.auto import tqdm

        self.chunks_bar = tqdm(total=chunks, desc=what, unit="chunk", position=0, delay=delay)
        self.bytes_bar = tqdm(
            desc="received", unit="B", unit_scale=True, unit_divisor=1024, position=1, delay=delay
        )

    def bytes(self, count: int) -> None:
        if self.bytes_bar is not None:
            self.bytes_bar.update(count)

    def chunk_done(self, rows: int) -> None:
        if self.chunks_bar is not None:
            self.chunks_bar.update(1)
            self.chunks_bar.set_postfix(rows=rows, refresh=False)

    def close(self) -> None:
        for bar in (self.bytes_bar, self.chunks_bar):
            if bar is not None:
                bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()
