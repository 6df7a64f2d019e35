"""Many-row behaviour of market data, with names: bars of a symbol in a range, buckets, latest."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, cast

from django.db import connections, models
from django.db.models import F, Max, Min, Sum
from django.db.models.expressions import Col, RawSQL
from django.db.models.functions import Lag
from django.db.models.lookups import Exact, GreaterThan, GreaterThanOrEqual, In
from django.db.models.sql.datastructures import BaseTable
from django.db.models.sql.where import AND

from marketdata import adjusting
from qvp_site.db import engine
from qvp_site.db.asof import AsOfQuerySetMixin
from qvp_site.db.buckets import Bucket, First, Last

# How a read adjusts prices for corporate actions: as traded, for splits (and stock dividends),
# or for everything a holder received (dividends and spin-offs too), back to the latest price.
ADJUSTMENTS = ("raw", "split", "total_return")


class KnownAt(BaseTable):
    """A market-data table as the system knew it at ``moment`` (None: now), its prices adjusted
    for corporate actions by ``adjustment``: the body of its SQL function
    ``<table>_known_at(moment)`` (marketdata/sql/revisions/0018.sql: the versions of the rows,
    ``<table>_history``, current at the moment), or ``<table>_adjusted(adjustment, moment)``
    (marketdata/sql/actions/0013.sql), in the table's place, under the table's name, so every
    filter, annotation and aggregate of a queryset reads it unchanged. The functions are plain
    SQL, which PostgreSQL inlines: the filters reach the indexes of the table, its revisions
    and the actions. An adjusted read passes the lower bound its filters put on ``ts``: the
    actions whose ex moments come before it adjust none of its rows, and are not looked at.
    Where the engine refuses that function over its bars (Citus), the factors are computed
    apart, for the instruments the filters name, and given to the read (marketdata/adjusting.py)."""

    def __init__(
        self,
        table_name: str,
        alias: str | None,
        moment: datetime | None,
        adjustment: str = "raw",
        revised_only: bool = False,
    ):
        super().__init__(table_name, alias)
        self.moment = moment
        self.adjustment = adjustment
        # Only the revisions current at the moment (``read_apart``): unadjusted, at a moment.
        self.revised_only = revised_only

    def as_sql(self, compiler, connection) -> tuple[str, list[Any]]:
        # As Django names the alias elsewhere: quoted when it is the table's name, bare when
        # it is a subquery's (U0).
        name = self.table_alias or self.table_name
        alias = compiler.quote_name_unless_alias(name)
        if self.adjustment == "raw":
            sql, params = self._bars(compiler, connection)
            return (sql if self.moment is None else f"{sql} AS {alias}"), params
        start = _lower_bound(compiler.query.where, name)
        if adjusting.factors_apart(connection):
            columns = [field.column for field in compiler.query.model._meta.concrete_fields]
            instruments = _instruments(compiler.query.where, name)
            sql, params = adjusting.adjusted_bars_sql(
                connection,
                columns,
                self._bars(compiler, connection, bare=True),
                self.adjustment,
                self.moment,
                start,
                instruments,
            )
            return f"{sql} AS {alias}", params
        function = connection.ops.quote_name(f"{self.table_name}_adjusted")
        return f"{function}(%s::text, %s::timestamptz, %s::timestamptz) AS {alias}", [
            self.adjustment,
            self.moment,
            start,
        ]

    def _bars(self, compiler, connection, bare: bool = False) -> tuple[str, list[Any]]:
        """The rows as known at the moment, unadjusted: the table (under its alias unless
        ``bare``), or the body of ``<table>_known_at(moment)`` written out."""
        if self.revised_only and self.moment is not None:
            columns = [field.column for field in compiler.query.model._meta.concrete_fields]
            quote = connection.ops.quote_name
            return adjusting.revised_at_sql(self.table_name, columns, self.moment, quote)
        if self.moment is None:
            if bare:
                return connection.ops.quote_name(self.table_name), []
            sql, params = super().as_sql(compiler, connection)
            return sql, list(params)
        return adjusting.known_at_sql(self.table_name, self.moment, connection.ops.quote_name)

    def relabeled_clone(self, change_map: dict[str | None, str]) -> KnownAt:
        alias = change_map.get(self.table_alias) or self.table_alias
        return self.__class__(
            self.table_name, alias, self.moment, self.adjustment, self.revised_only
        )

    @property
    def identity(self) -> tuple[Any, ...]:
        return (
            self.__class__,
            self.table_name,
            self.table_alias,
            self.moment,
            self.adjustment,
            self.revised_only,
        )


def _lower_bound(where: Any, alias: str) -> datetime | None:
    """The latest of the bounds ``ts >= t`` and ``ts > t`` that every row of a query's table
    ``alias`` must meet (conditions of its WHERE joined by AND, not under OR or NOT); None
    when there is none."""
    if where.connector != AND or where.negated:
        return None
    bounds = [
        child.rhs
        for child in where.children
        if isinstance(child, GreaterThan | GreaterThanOrEqual)
        and isinstance(child.lhs, Col)
        and child.lhs.alias == alias
        and child.lhs.target.column == "ts"
        and isinstance(child.rhs, datetime)
    ]
    return max(bounds, default=None)


def _instruments(where: Any, alias: str) -> list[int] | None:
    """The instruments a query's table ``alias`` is restricted to by ``instrument_id = n`` or
    ``instrument_id IN (...)`` among the conditions of its WHERE joined by AND; None when
    nothing restricts them."""
    if where.connector != AND or where.negated:
        return None
    for child in where.children:
        lhs = getattr(child, "lhs", None)
        if not (isinstance(lhs, Col) and lhs.alias == alias):
            continue
        if lhs.target.column != "instrument_id":
            continue
        # Values only: a subquery (a queryset, an expression) names no instruments here.
        if isinstance(child, Exact) and type(child.rhs) is int:
            return [child.rhs]
        values = child.rhs if isinstance(child.rhs, list | tuple | set | frozenset) else None
        if isinstance(child, In) and values and all(type(value) is int for value in values):
            return sorted(values)
    return None


def _read_as(queryset: models.QuerySet, **how: Any) -> models.QuerySet:
    """``queryset`` reading its table as known at a moment and adjusted as ``how`` says, what
    it said before kept for what ``how`` leaves out."""
    qs = queryset.all()
    alias = qs.query.get_initial_alias()
    table = qs.query.alias_map[alias]
    now = {"moment": _moment(qs), "adjustment": _adjustment(qs)} | how
    qs.query.alias_map[alias] = KnownAt(table.table_name, table.table_alias, **now)
    return qs


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


_RESOLVE_SQL = (
    "SELECT instrument_id FROM marketdata_resolve_symbols(ARRAY[%s]::text[],"
    " coalesce(%s::date, current_date))"
)


class TimeRangeQuerySet(AsOfQuerySetMixin, models.QuerySet):
    def _merge_sanity_check(self, other: models.QuerySet) -> None:
        """``a | b``, ``a & b`` and ``a ^ b`` keep the left side's table: refuse to combine
        reads of market data as known at different moments, or adjusted differently, rather
        than drop one silently."""
        super()._merge_sanity_check(other)  # type: ignore[misc]
        if _moment(self) != _moment(other):
            raise TypeError(
                "cannot combine market data read as known at different moments"
                f" ({_moment(self)} and {_moment(other)}): combine them known at the same one"
            )
        if _adjustment(self) != _adjustment(other):
            raise TypeError(
                "cannot combine market data adjusted differently"
                f" ({_adjustment(self)} and {_adjustment(other)})"
            )

    def known_at(self, moment: datetime | None):
        """The rows as the system knew them at ``moment``: the values then current, rows
        learnt later left out, rows deleted since put back. None: the present."""
        if moment is None and _moment(self) is None:
            return self.all()
        return _read_as(self, moment=moment)

    def read_apart(self) -> list[models.QuerySet]:
        """Querysets that each read one table and whose rows together are this read's: itself,
        or, read unadjusted as known at a past moment, the table's rows known then and the
        revisions current then. For a lookup Citus runs on the shards, where it cannot run
        the union of the two (qvp_site/db/asof_shards.py)."""
        moment = _moment(self)
        if moment is None or _adjustment(self) != "raw":
            return [self]
        current = _read_as(self, moment=None).filter(known_from__lte=moment)
        return [current, _read_as(self, revised_only=True)]

    def for_symbol(self, symbol: str, on: date | None = None):
        """Rows of the instrument that bore ``symbol`` on ``on`` (default today; the security
        master's rule, none when it names none). The instrument's id comes from a scalar
        subquery, run once, so that the plan is a range scan of the (instrument, ts) key
        rather than a join the planner may turn into a scan of every instrument's rows. Where
        the engine refuses the function inside a query over the table (Citus), the id is asked
        first, and the query goes to the one shard that holds the instrument's rows."""
        params = [symbol, on]
        if engine.inlines_sql_functions_into_queries(connections[self.db]):
            # A constant statement; the symbol and the date are parameters.
            return self.filter(instrument_id=RawSQL(_RESOLVE_SQL, params))  # noqa: S611
        with connections[self.db].cursor() as cursor:
            cursor.execute(_RESOLVE_SQL, params)
            found = cursor.fetchone()
        return self.filter(instrument_id=found[0] if found else None)  # None: no rows

    def between(self, start: datetime | None = None, end: datetime | None = None):
        """Rows with start <= ts < end (either bound may be open)."""
        qs = self
        if start is not None:
            qs = qs.filter(ts__gte=start)
        if end is not None:
            qs = qs.filter(ts__lt=end)
        return qs


def _table(queryset: models.QuerySet) -> KnownAt | None:
    alias = queryset.query.base_table
    table = queryset.query.alias_map.get(alias) if alias else None
    return table if isinstance(table, KnownAt) else None


def _moment(queryset: models.QuerySet) -> datetime | None:
    """The moment a queryset reads its table as known at; None for the present."""
    table = _table(queryset)
    return table.moment if table else None


def _adjustment(queryset: models.QuerySet) -> str:
    """How a queryset adjusts its prices for corporate actions ("raw": as traded)."""
    table = _table(queryset)
    return table.adjustment if table else "raw"


class BarQuerySet(TimeRangeQuerySet):
    def adjusted(self, adjustment: str) -> BarQuerySet:
        """The bars with their prices (and volumes) adjusted for corporate actions: "raw" as
        traded, "split" for splits and stock dividends, "total_return" for dividends and
        spin-offs too, back to the latest price, by the actions known when the rows are read
        as known (``known_at``)."""
        if adjustment not in ADJUSTMENTS:
            raise ValueError(
                f"adjustment must be one of {', '.join(ADJUSTMENTS)}, not {adjustment!r}"
            )
        if adjustment == _adjustment(self):
            return self.all()
        return cast("BarQuerySet", _read_as(self, adjustment=adjustment))

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
    def quotes(self) -> TickQuerySet:
        """The quotes only: ``kind = 'quote'`` as a constant, so that a lookup of the latest
        quote reads the partial index ``tick_quote_by_time`` and no trade."""
        return self.filter(kind="quote")

    def trades(self) -> TickQuerySet:
        return self.filter(kind="trade")
