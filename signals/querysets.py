"""Many-row questions about signals, news and alternative data, each served by an index."""

from __future__ import annotations

from datetime import datetime

from django.db import models


class SignalQuerySet(models.QuerySet):
    def between(self, start: datetime | None = None, end: datetime | None = None):
        """Signals at or after ``start`` and before ``end``."""
        qs = self
        if start is not None:
            qs = qs.filter(ts__gte=start)
        if end is not None:
            qs = qs.filter(ts__lt=end)
        return qs

    def latest_per_agent_and_instrument(self, as_of: datetime):
        """Each agent's newest signal per instrument at or before ``as_of`` (DISTINCT ON over
        the (instrument, ts) index), still within its horizon."""
        return (
            self.filter(ts__lte=as_of, agent__active=True)
            .order_by("instrument_id", "agent_id", "-ts")
            .distinct("instrument_id", "agent_id")
        )


class NewsQuerySet(models.QuerySet):
    def about(self, *symbols: str):
        """Articles naming every one of ``symbols`` (the symbols GIN index)."""
        return self.filter(symbols__contains=list(symbols))


class AlternativeDataQuerySet(models.QuerySet):
    def matching(self, **values) -> AlternativeDataQuerySet:
        """Rows whose payload holds these values: ``payload @> {...}`` (the GIN index)."""
        return self.filter(payload__contains=values)

    def of_kind(self, kind: str, source: str | None = None) -> AlternativeDataQuerySet:
        qs = self.filter(kind=kind)
        return qs.filter(source=source) if source else qs
