"""Vectors for the demo data, in one call from seed_demo: kept short, since `make run` seeds.

Feature embeddings of the last four weeks (every window before them is a
``build_embeddings --since`` away), regime signatures of every day (they need the history),
and pattern backtests with decisions over the last twelve weeks. Replaces what the demo
instruments had, since seed_demo may have replaced their bars.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta

from django.db.models import Max

from marketdata.models import Instrument, MinuteBar
from vectors import embeddings, patterns, regimes

FEATURE_SPAN = timedelta(weeks=4)
PATTERN_SPAN = timedelta(weeks=12)


def seed(instruments: list[Instrument], write: Callable[[str], object]) -> None:
    started = time.monotonic()
    newest = MinuteBar.objects.filter(instrument__in=instruments).aggregate(t=Max("ts"))["t"]
    if newest is None:
        return
    features = embeddings.build(instruments, since=newest - FEATURE_SPAN, rebuild=True)
    days = regimes.build(instruments, replace=True)
    found = patterns.build(instruments, since=newest - PATTERN_SPAN)
    write(
        f"Vectors: {features.total:,} feature embeddings, {sum(days.values()):,} regime "
        f"signatures, {sum(found.values()):,} strategy patterns in "
        f"{time.monotonic() - started:.1f} s."
    )
