"""Many-row questions about signals, news and alternative data, each served by an index."""

from __future__ import annotations

from marketdata.querysets import TimeRangeQuerySet


class SignalQuerySet(TimeRangeQuerySet):
    """``for_symbol`` and ``between`` over the (instrument, ts) index."""


class NewsQuerySet(TimeRangeQuerySet):
    def about(self, *symbols: str) -> NewsQuerySet:
        """Articles naming every one of ``symbols`` (the symbols GIN index)."""
        return self.filter(symbols__contains=list(symbols))


class AlternativeDataQuerySet(TimeRangeQuerySet):
    def matching(self, **values) -> AlternativeDataQuerySet:
        """Rows whose payload holds these values: ``payload @> {...}`` (the GIN index)."""
        return self.filter(payload__contains=values)

    def of_kind(self, kind: str, source: str | None = None) -> AlternativeDataQuerySet:
        rows = self.filter(kind=kind)
        return rows.filter(source=source) if source else rows
