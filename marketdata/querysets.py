"""Many-row behaviour of market data, with names: bars of a symbol in a range, buckets, latest."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import models
from django.db.models import F, Max, Min, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lag
from django.db.models.sql.datastructures import BaseTable

from qvp_site.db.buckets import Bucket, First, Last


class KnownAt(BaseTable):
    """A market-data table as the system knew it at ``moment``: its SQL function
    ``<table>_known_at(moment)`` (marketdata/sql/revisions/0009.sql) in the table's place,
    under the table's name, so every filter, annotation and aggregate of a queryset reads it
    unchanged. The function is plain SQL, which PostgreSQL inlines: the filters reach the
    indexes of both the table and its revisions."""

    def __init__(self, table_name: str, alias: str | None, moment: datetime):
        super().__init__(table_name, alias)
        self.moment = moment

    def as_sql(self, compiler, connection) -> tuple[str, list[Any]]:
        function = connection.ops.quote_name(f"{self.table_name}_known_at")
        # As Django names the alias elsewhere: quoted when it is the table's name, bare when
        # it is a subquery's (U0).
        alias = compiler.quote_name_unless_alias(self.table_alias or self.table_name)
        return f"{function}(%s) AS {alias}", [self.moment]

    def relabeled_clone(self, change_map: dict[str | None, str]) -> KnownAt:
        alias = change_map.get(self.table_alias) or self.table_alias
        return self.__class__(self.table_name, alias, self.moment)

    @property
    def identity(self) -> tuple[Any, ...]:
        return (self.__class__, self.table_name, self.table_alias, self.moment)


class InstrumentQuerySet(models.QuerySet):
    def universe(self, on: date, known_at: datetime | None = None) -> InstrumentQuerySet:
        """The instruments listed (or suspended) on ``on``, as known at ``known_at``: those
        delisted since included (no survivorship bias). The security master's
        ``marketdata_universe`` (marketdata/sql/listings/0011.sql) decides."""
        universe = RawSQL(
            "SELECT instrument_id FROM marketdata_universe(%s::date, %s::timestamptz)",
            [on, known_at],
        )
        return self.filter(id__in=universe)


class TimeRangeQuerySet(models.QuerySet):
    def _merge_sanity_check(self, other: models.QuerySet) -> None:
        """``a | b``, ``a & b`` and ``a ^ b`` keep the left side's table: refuse to combine
        reads of market data as known at different moments rather than drop one silently."""
        super()._merge_sanity_check(other)  # type: ignore[misc]
        if _moment(self) != _moment(other):
            raise TypeError(
                "cannot combine market data read as known at different moments"
                f" ({_moment(self)} and {_moment(other)}): combine them known at the same one"
            )

    def known_at(self, moment: datetime | None):
        """The rows as the system knew them at ``moment``: the values then current, rows
        learnt later left out, rows deleted since put back. None: the present."""
        if moment is None:
            return self.all()
        qs = self.all()
        alias = qs.query.get_initial_alias()
        table = qs.query.alias_map[alias]
        qs.query.alias_map[alias] = KnownAt(table.table_name, table.table_alias, moment)
        return qs

    def for_symbol(self, symbol: str, on: date | None = None):
        """Rows of the instrument that bore ``symbol`` on ``on`` (default today; the security
        master's rule, none when it names none). The instrument's id comes from a scalar
        subquery, run once, so that the plan is a range scan of the (instrument, ts) key
        rather than a join the planner may turn into a scan of every instrument's rows."""
        resolved = RawSQL(
            "SELECT instrument_id FROM marketdata_resolve_symbols(ARRAY[%s]::text[],"
            " coalesce(%s::date, current_date))",
            [symbol, on],
        )
        return self.filter(instrument_id=resolved)

    def between(self, start: datetime | None = None, end: datetime | None = None):
        """Rows with start <= ts < end (either bound may be open)."""
        qs = self
        if start is not None:
            qs = qs.filter(ts__gte=start)
        if end is not None:
            qs = qs.filter(ts__lt=end)
        return qs


def _moment(queryset: models.QuerySet) -> datetime | None:
    """The moment a queryset reads its table as known at; None for the present."""
    alias = queryset.query.base_table
    table = queryset.query.alias_map.get(alias) if alias else None
    return table.moment if isinstance(table, KnownAt) else None


class BarQuerySet(TimeRangeQuerySet):
    def bucketed(self, width: str) -> models.QuerySet:
        """OHLCV per instrument and bucket of ``width`` ("1h", "1d", "1w", "1mo", any interval),
        open and close taken at the first and last bar of each bucket."""
        return (
            self.annotate(bucket=Bucket("ts", width))
            .values("instrument_id", "bucket")
            .annotate(
                open=First("open"),
                high=Max("high"),
                low=Min("low"),
                close=Last("close"),
                volume=Sum("volume"),
            )
            .order_by("instrument_id", "bucket")
        )

    def latest_per_instrument(self) -> BarQuerySet:
        """The newest bar of each instrument (DISTINCT ON over the (instrument, ts) key)."""
        return self.order_by("instrument_id", "-ts").distinct("instrument_id")

    def with_returns(self) -> BarQuerySet:
        """Each bar with ``previous_close`` and its simple ``return`` on it (NULL for the first)."""
        previous = models.Window(
            Lag("close"), partition_by=[F("instrument_id")], order_by=F("ts").asc()
        )
        return self.annotate(previous_close=previous).annotate(
            simple_return=F("close") / F("previous_close") - 1
        )


class TickQuerySet(TimeRangeQuerySet):
    pass
