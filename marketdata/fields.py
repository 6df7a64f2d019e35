"""Instruments named by symbol in the API (query parameters, bodies) and the commands that
read symbols the same way (``fuse_signals --symbols``)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from marketdata.models import Instrument
from qvp_site.api.fields import NamedRecordField, NamedRecordListField

MAX_SYMBOLS = 1_000


class SymbolField(NamedRecordField):
    """An instrument's symbol; validates to the Instrument, refusing unknown symbols."""

    def __init__(self, **kwargs: Any):
        super().__init__(queryset=Instrument.objects.all(), key="symbol", noun="symbol", **kwargs)


class SymbolListField(NamedRecordListField):
    """Comma-separated symbols; validates to their Instruments in the order given."""

    def __init__(self, **kwargs: Any):
        super().__init__(
            queryset=Instrument.objects.all(),
            key="symbol",
            noun="symbol",
            most=MAX_SYMBOLS,
            **kwargs,
        )


def symbol_relation(**kwargs: Any) -> serializers.SlugRelatedField[Instrument]:
    """A model serializer's instrument, written and shown as its symbol."""
    if not kwargs.get("read_only"):
        kwargs["queryset"] = Instrument.objects.all()
    return serializers.SlugRelatedField(
        slug_field="symbol", help_text="the instrument's symbol", **kwargs
    )
