"""Bars posted as a batch (``POST /api/v1/bars/``), written by the ingest pipeline.

The batch goes the way of a file (staging by COPY, the same checks in SQL, straight insert or
upsert, partitions, aggregates, an Ingest record), so the API and the commands keep one set of
rules; its rows go from memory, never through a temporary file. A batch lands whole or not at
all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.utils import timezone

from marketdata.ingest.pipeline import IngestOptions, IngestResult, ingest_rows
from marketdata.models import Ingest
from qvp_site.loading.refusals import IngestRefused

KINDS = {"1m": Ingest.Kind.BARS_1M, "1d": Ingest.Kind.BARS_1D}
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


def write_batch(
    symbol: str,
    timeframe: str,
    bars: Sequence[Mapping[str, object]],
    user: AbstractBaseUser | None,
) -> IngestResult:
    """Write bars (``ts``, ``open``, ``high``, ``low``, ``close``, optional ``volume``) as a
    load of ``timeframe`` of the instrument that bore ``symbol`` on the bars' dates (never a
    new one: a symbol unknown then is a SymbolRefused naming the candidates); an
    IngestRefused names the bad bars by their index in ``bars`` (``items``)."""
    stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
    # A batch where no bar names a volume has no volume column, as a file without one: a
    # correction of prices leaves the stored volumes alone rather than emptying them.
    columns = COLUMNS if any(bar.get("volume") is not None for bar in bars) else COLUMNS[:5]
    rows = [[bar["ts"], *(bar[c] for c in columns[1:5]), *_volume(bar, columns)] for bar in bars]
    options = IngestOptions(symbol=symbol, kind=KINDS[timeframe], create_instrument=False)
    try:
        return ingest_rows(f"api-batch-{symbol}-{stamp}", columns, rows, options, user=user)
    except IngestRefused as refusal:
        # Row n is item n - 1.
        refusal.items = {row - 1: reason for row, reason in refusal.rows}
        raise


def _volume(bar: Mapping[str, object], columns: Sequence[str]) -> list[object]:
    return [bar.get("volume")] if "volume" in columns else []
