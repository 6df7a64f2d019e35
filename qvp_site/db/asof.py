"""As-of joins: for each row of a queryset, the latest row of a time-series table at or before
its time for the same instrument (or the first at or after it), as ``pandas.merge_asof`` does.

One set-based statement on either engine: each left row meets the right table through

    LEFT JOIN LATERAL (SELECT ... FROM right r WHERE r.instrument_id = left.instrument_id
                       AND r.ts <= left.ts AND r.ts >= left.ts - <bound>
                       ORDER BY r.ts DESC, r.sequence DESC LIMIT 1) asof0 ON true

which PostgreSQL runs as a nested loop with, per left row, a descending scan of the right
table's (instrument, ts[, sequence]) index that stops at the first row it finds (EXPLAIN
ANALYZE: "Index Scan Backward ... loops=<left rows>"), never a scan of the instrument's rows.
Both time bounds are index conditions, and the partitions (chunks) outside them are pruned at
run time. Without a tolerance of a day or less the lookup is made in two steps, the day
nearest the left time and then the rest, the second only where the first found nothing
(``_steps`` says why and what it measured). A right queryset filtered on ``kind='quote'``
(``Tick.objects.quotes()``) reads the partial index ``tick_quote_by_time`` and no trade.

Ties on the right time are broken as pandas breaks them on a right frame sorted by
(time, ``tie_break``): backward takes the *last* row of the tied ones (the highest sequence of
a tick), forward the *first* (the lowest). ``allow_exact=False`` asks strictly before (after);
``tolerance`` is inclusive (pandas' too); ``offset`` moves the left time first (markouts: the
first quote at or after the fill plus five minutes). tests/marketdata/test_asof.py compares
the answers with merge_asof's on 100 random cases.

The right rows' columns come back as annotations (``asof_bid``...), so the queryset stays a
queryset: filter, annotate, aggregate, count, use it as a subquery, join two as-of reads (the
quote at the fill and the one five minutes later, with two prefixes). The psql side is
marketdata/sql/asof/0015.sql.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import ExpressionWrapper, OuterRef, Value
from django.db.models.expressions import Col
from django.db.models.sql.constants import LOUTER

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler
    from django.db.models.sql.query import Query

Direction = Literal["backward", "forward"]
DIRECTIONS: tuple[str, ...] = ("backward", "forward")
QS = TypeVar("QS", bound="models.QuerySet[Any, Any]")


class LateralJoin:
    """``LEFT JOIN LATERAL (<select>) <alias> ON true`` in a query's FROM clause, the select a
    ``template`` over subqueries (``{0}``, ``{1}``... each rendered in parentheses).

    Django has no LATERAL; this stands in its ``alias_map`` beside the ``Join``s with the
    attributes the query reads of a join, and relabels its subqueries' references to the
    outer query when Django renames the outer aliases (the queryset used as a subquery)."""

    join_type = LOUTER
    nullable = True
    filtered_relation = None
    join_field = None

    def __init__(
        self,
        template: str,
        subqueries: Sequence[Query],
        alias: str,
        parent_alias: str,
        table_name: str,
    ):
        self.template = template
        self.subqueries = list(subqueries)
        self.table_alias = alias
        self.parent_alias = parent_alias
        # Django keys its table map by table name: a name of the join's own.
        self.table_name = table_name

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        # Params in the order their placeholders appear in the template.
        compiled = [subquery.as_sql(compiler, connection) for subquery in self.subqueries]
        order = [int(n) for n in _PLACEHOLDER.findall(self.template)]
        params = [p for n in order for p in compiled[n][1]]
        select = self.template.format(*(sql for sql, _ in compiled))
        alias = compiler.quote_name_unless_alias(self.table_alias)
        return f"LEFT JOIN LATERAL ({select}) {alias} ON true", params

    def relabeled_clone(self, change_map: dict[str, str]) -> LateralJoin:
        return LateralJoin(
            self.template,
            [subquery.relabeled_clone(change_map) for subquery in self.subqueries],
            change_map.get(self.table_alias, self.table_alias),
            change_map.get(self.parent_alias, self.parent_alias),
            self.table_name,
        )

    def demote(self) -> LateralJoin:
        return self  # always LEFT: a left row without a match keeps its place

    def promote(self) -> LateralJoin:
        return self

    @property
    def identity(self) -> tuple[Any, ...]:
        return (self.__class__, self.table_name, self.table_alias)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LateralJoin):
            return NotImplemented
        return self.identity == other.identity

    def __hash__(self) -> int:
        return hash(self.identity)


_PLACEHOLDER = re.compile(r"\{(\d+)\}")

# How far from the left time the first step looks (see ``asof``): a day holds the latest
# quote of a live feed, and reaches into two daily partitions at most.
FIRST_STEP = timedelta(days=1)

# The second step runs only where the first found nothing: at most one row either way, so no
# ORDER BY over the two (which would run both).
STEPPED = (
    "SELECT * FROM {0} AS near UNION ALL"
    " SELECT * FROM {1} AS far WHERE NOT EXISTS (SELECT FROM {0} AS near)"
)


def asof(
    left: QS,
    right: models.QuerySet[Any] | type[models.Model],
    *,
    time: str = "ts",
    by: str = "instrument_id",
    right_time: str = "ts",
    right_by: str = "instrument_id",
    direction: Direction = "backward",
    tolerance: timedelta | None = None,
    allow_exact: bool = True,
    offset: timedelta | None = None,
    columns: Sequence[str] | None = None,
    tie_break: Sequence[str] | None = None,
    prefix: str = "asof_",
) -> QS:
    """``left`` with, for each row, the columns of the right row as of its time, annotated as
    ``<prefix><column>`` (NULL where no right row matches).

    ``left``: any queryset with an instrument (``by``: a field or annotation name) and a time
    (``time``). ``right``: a model or a queryset of one (``Tick.objects.quotes()``, a read
    ``known_at(t)``), its rows matched on ``right_by`` and ordered by ``right_time`` then
    ``tie_break`` (default: ``sequence`` where the model has one, else its primary key).
    ``direction``: "backward" (the latest at or before) or "forward" (the first at or after).
    ``tolerance``: how far from the left time a match may lie (inclusive); ``allow_exact``:
    whether a right row at exactly the left time matches; ``offset``: added to the left time
    first. ``columns``: the right fields returned (default: every concrete field)."""
    right_qs = right.all() if isinstance(right, models.QuerySet) else right._default_manager.all()
    right_model = right_qs.model
    _check(left, direction, tolerance, offset, prefix)
    columns = list(columns) if columns is not None else _concrete_fields(right_model)
    tie_break = list(tie_break) if tie_break is not None else _default_tie_break(right_model)
    fields = [_field(right_model, name, "columns") for name in columns]
    for name in (right_time, right_by, *tie_break):
        _field(right_model, name, "right_time/right_by/tie_break")

    at: Any = OuterRef(time)
    if offset:
        at = _shifted(at, offset)
    sign = "-" if direction == "backward" else ""
    names = [f.attname for f in fields]

    def lookup(bounds: dict[str, Any]) -> models.QuerySet[Any]:
        inner = right_qs.filter(**{right_by: OuterRef(by)}, **bounds)
        inner = inner.order_by(*(f"{sign}{name}" for name in (right_time, *tie_break)))
        return inner.values(*names)[:1]

    qs = left.all()
    query = qs.query
    parent = query.get_initial_alias()
    bounds = _time_bounds(right_time, at, direction, tolerance, allow_exact)
    if tolerance is not None and tolerance <= FIRST_STEP:
        template, steps = "SELECT * FROM {0} AS near", [lookup(bounds)]
    else:
        near, far = _steps(right_time, at, direction, bounds)
        template, steps = STEPPED, [lookup(near), lookup(far)]
    subqueries = [
        step.query.resolve_expression(query, allow_joins=True, reuse=None) for step in steps
    ]
    alias = _new_alias(query)
    # Typed for Django's own joins; ours has what the query reads of one.
    query.alias_map[alias] = cast(Any, LateralJoin(template, subqueries, alias, parent, alias))
    query.alias_refcount[alias] = 1
    query.table_map[alias] = [alias]
    return qs.annotate(**{f"{prefix}{f.attname}": Col(alias, f, f) for f in fields})


def _steps(
    right_time: str, at: Any, direction: str, bounds: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The bounds split at a day from the left time: the near step, then the far one.

    On plain PostgreSQL a lookup merges the newest (or oldest) row of every partition on its
    side of the left time: the refusing default partition keeps the planner from scanning the
    partitions in order and stopping at the first match (TimescaleDB's ordered chunk scan
    should stop; not measured, no TimescaleDB on the server measured). That is two index
    pages a partition for each left row, 700 over a year of daily tick partitions. Measured
    on 1,000,000 ticks in 5 daily partitions (5% quotes, on 5 instruments of 20), 835 trades
    joined to their latest quote: 10,101 buffers in two steps (12 a row, however many
    partitions lie behind), about 15 a row in one step over these 5 partitions and 2 more a
    row for each partition further back; with a tolerance of an hour (one step) 2,586, 3 a
    row. A left row with nothing in its day pays both steps: the 3,122 trades of the
    instruments without quotes read about 20 a row."""
    edge = _shifted(at, -FIRST_STEP if direction == "backward" else FIRST_STEP)
    if direction == "backward":
        near = {**bounds, f"{right_time}__gte": edge}
        far = {k: v for k, v in bounds.items() if not k.endswith(("__lte", "__lt"))}
        far[f"{right_time}__lt"] = edge
    else:
        near = {**bounds, f"{right_time}__lte": edge}
        far = {k: v for k, v in bounds.items() if not k.endswith(("__gte", "__gt"))}
        far[f"{right_time}__gt"] = edge
    return near, far


def _time_bounds(
    right_time: str, at: Any, direction: str, tolerance: timedelta | None, allow_exact: bool
) -> dict[str, Any]:
    """The right time's bounds: both are index conditions, so a lookup that finds nothing
    within the tolerance stops at its edge instead of reading every older row."""
    if direction == "backward":
        bounds = {f"{right_time}__{'lte' if allow_exact else 'lt'}": at}
        if tolerance is not None:
            bounds[f"{right_time}__gte"] = _shifted(at, -tolerance)
    else:
        bounds = {f"{right_time}__{'gte' if allow_exact else 'gt'}": at}
        if tolerance is not None:
            bounds[f"{right_time}__lte"] = _shifted(at, tolerance)
    return bounds


def _shifted(at: Any, by: timedelta) -> ExpressionWrapper[Any]:
    return ExpressionWrapper(
        at + Value(by, models.DurationField()), output_field=models.DateTimeField()
    )


def _check(
    left: models.QuerySet[Any],
    direction: str,
    tolerance: object,
    offset: object,
    prefix: str,
) -> None:
    # Checked whatever their declared types: a caller passing a query string's value.
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}, not {direction!r}")
    if tolerance is not None and (not isinstance(tolerance, timedelta) or tolerance < timedelta(0)):
        raise ValueError(f"tolerance must be a timedelta of zero or more, not {tolerance!r}")
    if offset is not None and not isinstance(offset, timedelta):
        raise ValueError(f"offset must be a timedelta, not {offset!r}")
    if not prefix.isidentifier():
        raise ValueError(f"prefix must be an identifier, not {prefix!r}")
    if left.query.is_sliced:
        raise TypeError("asof: the left queryset is sliced; slice after the as-of join")
    if left.query.combinator:
        raise TypeError(f"asof: the left queryset is a {left.query.combinator}; join each part")


def _field(model: type[models.Model], name: str, argument: str) -> models.Field[Any, Any]:
    try:
        field = model._meta.get_field(name)  # a name or an attname (instrument_id)
    except FieldDoesNotExist:
        field = None
    if not isinstance(field, models.Field) or not field.concrete:
        raise ValueError(f"{argument}: {model._meta.label} has no column {name!r}")
    return field


def _concrete_fields(model: type[models.Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


def _default_tie_break(model: type[models.Model]) -> list[str]:
    names = {f.name for f in model._meta.concrete_fields}
    return ["sequence"] if "sequence" in names else [model._meta.pk.attname]


def _new_alias(query: Query) -> str:
    taken = set(query.alias_map) | set(query.table_map)
    number = 0
    while f"asof{number}" in taken:
        number += 1
    return f"asof{number}"


class AsOfQuerySetMixin:
    """``queryset.asof(right, ...)``: see ``asof``."""

    def asof(self, right: models.QuerySet[Any] | type[models.Model], **options: Any) -> Self:
        return cast(Self, asof(cast("models.QuerySet[Any]", self), right, **options))
