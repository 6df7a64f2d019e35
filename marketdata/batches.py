"""Bars posted as a JSON batch: validated item by item, then written by the ingest pipeline.

The serializer names the index and field of each bad item; the batch then goes the way of a
file (staging, the same checks in SQL, straight insert or upsert, partitions, aggregates, an
Ingest record), so the API and the commands keep one set of rules. A batch lands whole or not
at all.
"""

from __future__ import annotations

import csv
import math
import tempfile
from pathlib import Path

from django.utils import timezone
from rest_framework import serializers

from marketdata.ingest.pipeline import IngestOptions, IngestRefused, IngestResult, ingest_file
from marketdata.models import Ingest, Instrument

MAX_BATCH = 10_000
KINDS = {"1m": Ingest.Kind.BARS_1M, "1d": Ingest.Kind.BARS_1D}
COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")


class FiniteFloatField(serializers.FloatField):
    def to_internal_value(self, data) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


class BatchBarSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    open = FiniteFloatField()
    high = FiniteFloatField()
    low = FiniteFloatField()
    close = FiniteFloatField()
    volume = FiniteFloatField(required=False, allow_null=True, min_value=0)

    def validate(self, attrs: dict) -> dict:
        errors = {}
        for name in ("open", "high", "low", "close"):
            if attrs[name] <= 0:
                errors[name] = "must be positive"
        if attrs["high"] < max(attrs["open"], attrs["close"], attrs["low"]):
            errors["high"] = "is below the open, close or low"
        if attrs["low"] > min(attrs["open"], attrs["close"]):
            errors["low"] = "is above the open or close"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class BarBatchSerializer(serializers.Serializer):
    symbol = serializers.SlugRelatedField(
        slug_field="symbol", queryset=Instrument.objects.all(), help_text="an existing symbol"
    )
    timeframe = serializers.ChoiceField(choices=sorted(KINDS), default="1m")
    bars = serializers.ListField(
        child=BatchBarSerializer(), allow_empty=False, max_length=MAX_BATCH
    )

    def validate_bars(self, bars: list[dict]) -> list[dict]:
        seen: dict = {}
        for index, bar in enumerate(bars):
            if bar["ts"] in seen:
                raise serializers.ValidationError(
                    {index: {"ts": [f"repeats the time of item {seen[bar['ts']]}"]}}
                )
            seen[bar["ts"]] = index
        return bars


def write_batch(instrument: Instrument, timeframe: str, bars: list[dict], user) -> IngestResult:
    """Write validated bars through the ingest pipeline; IngestRefused names item indexes."""
    with tempfile.TemporaryDirectory(prefix="qvp-batch-") as folder:
        stamp = timezone.now().strftime("%Y%m%dT%H%M%S%f")
        path = Path(folder) / f"api-batch-{instrument.symbol}-{stamp}.csv"
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(COLUMNS)
            for bar in bars:
                writer.writerow(
                    [bar["ts"].isoformat(), *(repr(bar[c]) for c in COLUMNS[1:5]), _volume(bar)]
                )
        options = IngestOptions(symbol=instrument.symbol, kind=KINDS[timeframe])
        try:
            return ingest_file(path, options, user=user)
        except IngestRefused as refusal:
            # Line 1 of the file is its header: line n holds item n - 2.
            refusal.items = {line - 2: reason for line, reason in refusal.rows}
            raise


def _volume(bar: dict) -> str:
    return "" if bar.get("volume") is None else repr(bar["volume"])
