"""Many-row questions about signals, news and alternative data, each served by an index."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marketdata.querysets import TimeRangeQuerySet


class SignalQuerySet(TimeRangeQuerySet):
    """``for_symbol`` and ``between`` over the (instrument, ts) index."""


class NewsQuerySet(TimeRangeQuerySet):
    def about(self, *symbols: str) -> NewsQuerySet:
        """Articles naming every one of ``symbols`` (the symbols GIN index)."""
        return self.filter(symbols__contains=list(symbols))


class AlternativeDataQuerySet(TimeRangeQuerySet):
    def matching(
        self, values: Mapping[str, Any] | None = None, /, **more: Any
    ) -> AlternativeDataQuerySet:
        """Rows whose payload holds these values: ``payload @> {...}`` (the GIN index).

        Keys that come from a user go in the mapping, never as keyword arguments: any key is
        a payload key then, "self" or "values" included (both parameters are positional-only,
        so a splatted key could not collide with them either)."""
        return self.filter(payload__contains={**(values or {}), **more})

    def of_kind(self, kind: str, source: str | None = None) -> AlternativeDataQuerySet:
        rows = self.filter(kind=kind)
        return rows.filter(source=source) if source else rows
