"""As-of joins: for each row of a queryset, the latest row of a time-series table at or before
its time for the same instrument (or the first at or after it), as ``pandas.merge_asof`` does.

One set-based statement on either engine: each left row meets the right table through

    LEFT JOIN LATERAL (
        (SELECT ... FROM right r WHERE r.instrument_id = left.instrument_id
         AND r.ts <= left.ts AND r.ts >= left.ts - '1 hour'
         ORDER BY r.ts DESC, r.sequence DESC LIMIT 1)
        UNION ALL (... the rest of the day ... LIMIT 1) UNION ALL (... beyond ... LIMIT 1)
        LIMIT 1) asof0 ON true

which PostgreSQL runs as a nested loop with, per left row, a descending scan of the right
table's (instrument, ts[, sequence]) index that stops at the first row it finds (EXPLAIN
ANALYZE: "Index Scan Backward ... loops=<left rows>"), never a scan of the instrument's rows.
Both time bounds are index conditions, and the partitions (chunks) outside them are pruned at
run time. The steps (within an hour, the day, beyond; a tolerance ends them) run in turn and
the outer LIMIT stops at the first that finds a row (``_steps`` says why and what it
measured). A right queryset filtered on ``kind='quote'`` (``Tick.objects.quotes()``) reads a
partial index of the quotes and no trade: ``tick_quote_asof`` (marketdata 0016) carries id,
bid and ask, so a join asking only for those (and the time and sequence) reads no table row.

One statement runs on one core: PostgreSQL never runs a subquery with a LIMIT in a parallel
worker (it could answer differently there), nor a correlated subplan, and a non-inlined
function per row costs more than it saves (a PARALLEL SAFE SQL function on two workers: 2-4 s
for what the subquery does in 0.7 s). 100,000 left rows against 5,000,000 ticks: about 0.6 s
on one core (bench/asof.py), 6 us a lookup, of which the index descent is most (one
partition named directly costs the same per lookup). ``arrow`` uses the other cores itself:
the left rows split by primary key into parts read at once on connections of their own, on
one snapshot (``workers``): on two, the statements 0.32 s (wall) and the read end to end
0.41 s, against 0.55 s and 0.66 s on one (bench/asof.py; DuckDB's ASOF JOIN, on its two
threads, 0.16 s over tables already read out).

Ties on the right time are broken as pandas breaks them on a right frame sorted by
(time, ``tie_break``): backward takes the *last* row of the tied ones (the highest sequence of
a tick), forward the *first* (the lowest). ``allow_exact=False`` asks strictly before (after);
``tolerance`` is inclusive (pandas' too); ``offset`` moves the left time first (markouts: the
first quote at or after the fill plus five minutes). tests/marketdata/test_asof.py compares
the answers with merge_asof's on 100 random cases.

The right rows' columns come back as annotations (``asof_bid``...), so the queryset stays a
queryset: filter, annotate, aggregate, count, use it as a subquery, join two as-of reads (the
quote at the fill and the one five minutes later, with two prefixes).

Where the market data is distributed (Citus), the lookups run on its shards: as above from a
left table distributed beside it (the trades and the quotes); from the books on the
coordinator, or the instruments, they start from the instruments' keys there, with the left
rows' instruments and times sent to each shard (``asof_shards``). The psql side is
marketdata/sql/asof/0016.sql. ``arrow(queryset)`` reads a queryset's rows into Arrow by binary
COPY (``pandas`` by ``.to_pandas()``): 100,000 rows in about 0.06 s, where iterating the
queryset through Django takes 1-2 s.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar, cast

from django.core.exceptions import FieldDoesNotExist
from django.db import connections, models
from django.db.models import ExpressionWrapper, F, OuterRef, Value
from django.db.models.expressions import Col
from django.db.models.functions import Abs, Mod
from django.db.models.lookups import Exact
from django.db.models.sql.constants import LOUTER

from qvp_site.db.asof_shards import FromKeys, Placement, Winner, formatted
from qvp_site.db.distribution import key_table

if TYPE_CHECKING:
    import pyarrow as pa
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
        from_keys: FromKeys | None = None,
    ):
        self.template = template
        self.subqueries = list(subqueries)
        self.table_alias = alias
        self.parent_alias = parent_alias
        # Django keys its table map by table name: a name of the join's own.
        self.table_name = table_name
        # The same join where the lookups must start from the instruments' keys (Citus).
        self.from_keys = from_keys

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        if self.from_keys and self.from_keys.placement.starts_from_keys(connection):
            return self.from_keys.as_sql(compiler, connection, self.table_alias)
        select, params = formatted(self.template, self.subqueries, compiler, connection)
        alias = compiler.quote_name_unless_alias(self.table_alias)
        return f"LEFT JOIN LATERAL ({select}) {alias} ON true", params

    def relabeled_clone(self, change_map: dict[str, str]) -> LateralJoin:
        return LateralJoin(
            self.template,
            [subquery.relabeled_clone(change_map) for subquery in self.subqueries],
            change_map.get(self.table_alias, self.table_alias),
            change_map.get(self.parent_alias, self.parent_alias),
            self.table_name,
            self.from_keys.relabeled_clone(change_map) if self.from_keys else None,
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


# The steps of a lookup (see ``_steps``): within an hour of the left time, then a day, then
# beyond; a tolerance ends them. An hour holds the latest quote of a live feed and reaches
# into two daily partitions for one left row in 24; a day holds the latest bar of a
# minute series and the previous session's close.
STEPS: tuple[timedelta, ...] = (timedelta(hours=1), timedelta(days=1))


def _stepped(count: int) -> str:
    """The lookup's steps in order, each ``ORDER BY ... LIMIT 1``, under one ``LIMIT 1``: the
    Append of a UNION ALL runs its arms in turn and the outer limit stops it at the first row,
    so a step runs only where the ones before found nothing (no NOT EXISTS re-running a step,
    no ORDER BY over the steps, which would run them all)."""
    if count == 1:
        return "SELECT * FROM {0} AS step0"
    arms = " UNION ALL ".join(f"SELECT * FROM {{{n}}} AS step{n}" for n in range(count))
    return f"{arms} LIMIT 1"


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

    lookup = _Lookup(
        right_by=right_by,
        right_time=right_time,
        tie_break=tuple(tie_break),
        names=tuple(f.attname for f in fields),
        direction=direction,
        tolerance=tolerance,
        allow_exact=allow_exact,
    )
    qs = left.all()
    query = qs.query
    parent = query.get_initial_alias()
    alias = _new_alias(query)
    at: Any = _shifted(OuterRef(time), offset) if offset else OuterRef(time)
    template, subqueries = _resolved(lookup.steps(right_qs, OuterRef(by), at), query)
    from_keys = _from_keys(left, query, right_qs, lookup, by, time, offset, alias)
    join = LateralJoin(template, subqueries, alias, parent, alias, from_keys)
    # Typed for Django's own joins; ours has what the query reads of one.
    query.alias_map[alias] = cast(Any, join)
    query.alias_refcount[alias] = 1
    query.table_map[alias] = [alias]
    return qs.annotate(**{f"{prefix}{f.attname}": Col(alias, f, f) for f in fields})


@dataclass(frozen=True)
class _Lookup:
    """What an as-of join looks up in its right side, for each left row."""

    right_by: str
    right_time: str
    tie_break: tuple[str, ...]
    names: tuple[str, ...]  # the right side's columns returned
    direction: Direction
    tolerance: timedelta | None
    allow_exact: bool

    @property
    def order(self) -> list[str]:
        return [self.right_time, *self.tie_break]

    def steps(
        self,
        right: models.QuerySet[Any],
        key: Any,
        at: Any,
        *,
        with_order: bool = False,
        one_step: bool = False,
    ) -> list[models.QuerySet[Any]]:
        """The lookup's steps in ``right`` for the instrument ``key`` at the time ``at``
        (``_steps``). ``with_order``: return the ordering columns too (a part of a read apart,
        its answer compared with the other's); ``one_step``: no steps (the revisions, few)."""
        sign = "-" if self.direction == "backward" else ""
        order = [f"{sign}{name}" for name in self.order]
        extra = [name for name in self.order if name not in self.names] if with_order else []

        def step(bounds: dict[str, Any]) -> models.QuerySet[Any]:
            inner = right.filter(**{self.right_by: key}, **bounds).order_by(*order)
            return inner.values(*self.names, *extra)[:1]

        rt = self.right_time
        bounds = _time_bounds(rt, at, self.direction, self.tolerance, self.allow_exact)
        if one_step:
            return [step(bounds)]
        return [step(b) for b in _steps(rt, at, self.direction, self.tolerance, bounds)]


def _resolved(steps: Sequence[models.QuerySet[Any]], query: Query) -> tuple[str, list[Query]]:
    """The steps under one ``LIMIT 1`` (``_stepped``), as subqueries of ``query``."""
    subqueries = [
        step.query.resolve_expression(query, allow_joins=True, reuse=None) for step in steps
    ]
    return _stepped(len(steps)), subqueries


def _from_keys(
    left: models.QuerySet[Any],
    query: Query,
    right: models.QuerySet[Any],
    lookup: _Lookup,
    by: str,
    time: str,
    offset: timedelta | None,
    alias: str,
) -> FromKeys | None:
    """The join's form for Citus, where its lookups start from the instruments' keys
    (``asof_shards``), for the left rows of ``left`` (``query``: its clone the join goes in);
    None where the right side's instrument is not a foreign key to a primary key, so has no
    keys' table.

    A right side read as known at a moment is read apart (``read_apart``: the table's rows
    known then, the revisions current then), each part looked up on its own and the latest
    (the earliest going forward) of their answers taken: Citus cannot run their union in a
    lookup. The revisions are few: their lookup is one step."""
    right_field = right.model._meta.get_field(lookup.right_by)
    # The keys' table holds the instruments' primary keys.
    if not isinstance(right_field, models.ForeignKey) or not right_field.target_field.primary_key:
        return None
    placement = Placement(
        right_table=right.model._meta.db_table,
        right_by=right_field.column,
        key_table=key_table(cast(Any, right_field.related_model)._meta.db_table),
        left_table=left.model._meta.db_table,
        left_by=_column_of(left.model, by),
    )
    at: Any = _shifted(F(time), offset) if offset else F(time)
    on = [F(by).resolve_expression(query), at.resolve_expression(query)]
    key, key_at = FromKeys.starts(alias, right_field.target_field)
    parts = right.read_apart() if hasattr(right, "read_apart") else [right]
    apart = len(parts) > 1
    arms = [
        _resolved(lookup.steps(part, key, key_at, with_order=apart, one_step=n > 0), query)
        for n, part in enumerate(parts)
    ]
    order = [cast(str, _column_of(right.model, name)) for name in lookup.order]
    winner = Winner(order, lookup.direction)
    columns = [cast(str, _column_of(right.model, name)) for name in lookup.names]
    return FromKeys(placement, alias, arms, on, columns, winner)


def _column_of(model: type[models.Model], name: str) -> str | None:
    """The column ``name`` names on ``model``'s table, if it names one (not an annotation)."""
    try:
        field = model._meta.get_field(name)
    except FieldDoesNotExist:
        return None
    return field.column if isinstance(field, models.Field) and field.concrete else None


def _steps(
    right_time: str,
    at: Any,
    direction: str,
    tolerance: timedelta | None,
    bounds: dict[str, Any],
) -> list[dict[str, Any]]:
    """The bounds split at ``STEPS`` from the left time (those nearer than the tolerance):
    within an hour, then the rest of the day, then beyond (or the tolerance's edge).

    Why: a lookup is a descending scan of the (instrument, ts, ...) index of each partition
    its time bounds reach, merged (Merge Append), and on plain PostgreSQL an unbounded one
    reaches every partition behind the left time (the refusing default partition keeps the
    planner from scanning them in order and stopping at the first match), two index pages
    each. Measured (bench/asof.py: 100,000 executions, 5,000,000 ticks in 5 daily
    partitions, a quote every 17 s an instrument): one step bounded by a day read 5.8 buffers
    a row (two partitions nearly always), one bounded by an hour 3.1 (one partition but for
    the first hour of a day), and the later steps never ran; the join 0.65-0.75 s against
    1.2 s. A row with nothing within the hour pays the hour's probe (3 buffers) before the
    next step."""
    edges = [e for e in STEPS if tolerance is None or e < tolerance]
    backward = direction == "backward"
    # The bound on the left time's side of a step, and the one away from it.
    near_key, far_key = ("__lt", "__gte") if backward else ("__gt", "__lte")
    steps: list[dict[str, Any]] = []
    for index, edge in enumerate(edges):
        step = dict(bounds) if index == 0 else {}
        if index:
            step[f"{right_time}{near_key}"] = _edge(at, edges[index - 1], backward)
        step[f"{right_time}{far_key}"] = _edge(at, edge, backward)
        steps.append(step)
    if not edges:
        return [bounds]
    last = {k: v for k, v in bounds.items() if k.endswith(far_key)}  # the tolerance's edge
    last[f"{right_time}{near_key}"] = _edge(at, edges[-1], backward)
    steps.append(last)
    return steps


def _edge(at: Any, distance: timedelta, backward: bool) -> ExpressionWrapper[Any]:
    return _shifted(at, -distance if backward else distance)


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


# What ``arrow`` sets for its read unless told otherwise: the planner caches each lateral
# lookup's answer by its left key (Memoize) when it expects keys to repeat, and an as-of join's
# left times seldom do; every row then pays a hash and a miss. Measured on bench/asof.py's
# join (100,000 executions of distinct times, 5,000,000 ticks), interleaved runs: 0.54 s
# without against 0.62 s with.
READ_SETTINGS: dict[str, str] = {"enable_memoize": "off"}


def default_workers() -> int:
    """The connections ``arrow`` reads an unordered queryset on unless told: one a core, at
    most two (PostgreSQL runs the join's lookups on one core a statement, see the module's
    docstring; more parts than cores only queue, and each is a connection of the server's)."""
    return min(2, os.cpu_count() or 1)


def arrow(
    queryset: models.QuerySet[Any],
    *,
    settings: Mapping[str, str] | None = None,
    workers: int | None = None,
) -> pa.Table:
    """The rows of ``queryset`` (an as-of join's, or any) as an Arrow table, its columns named
    as the statement names them (``values_list``/``values``: the field and annotation names).

    Read by the ADBC driver (binary COPY decoded in C++, ``qvp_site.api.bulk.reader``) on a
    connection of its own, acting as Django's connection on the queryset's database acts:
    the same role, the same user or system actor (row-level security reads them), the same
    statement time limit; read only, in a transaction of its own, so it sees what is
    committed, not what the caller's open transaction has written. ``settings``: planner
    settings for the read (``SET LOCAL``), by default ``READ_SETTINGS``.

    ``workers``: how many connections read it at once (``split``: disjoint parts by the left
    primary key, the rows of part k those with ``abs(pk % workers) = k``), each acting as above,
    all on one snapshot (exported by the first, imported by the others), so the parts are
    the rows one statement would read (on Citus, the coordinator's snapshot: the workers'
    sessions take their own, so rows written on the shards during the read may be in one part
    and not another); the tables are concatenated part after part, so the
    rows come in no promised order. Default ``default_workers()`` for a queryset that can be
    split, one connection for one that cannot: ordered (``order_by`` or its model's
    ``Meta.ordering``: the one connection keeps PostgreSQL's order, collations and NULLs
    included; ``.order_by()`` to read in parallel), sliced, distinct, grouped or windowed
    (filtering the left rows would change those answers). Asked for more than one on such a
    queryset, ``ValueError`` says why."""
    from qvp_site.api.bulk import reader  # the driver: not loaded by what never reads so

    alias = queryset.db
    ops: Any = connections[alias].ops  # PostgreSQL's operations have compose_sql
    statements = [_composed(ops, part) for part in split(queryset, workers)]
    chosen = READ_SETTINGS if settings is None else settings
    preamble = _acting_preamble(alias) + [
        str(ops.compose_sql("SELECT set_config(%s, %s, true)", [name, value]))
        for name, value in chosen.items()
    ]
    if len(statements) == 1:
        with reader.reading(alias, preamble, statements[0]) as batches:
            return batches.read_all()
    return _read_in_parts(alias, preamble, statements)


def split(queryset: QS, workers: int | None = None) -> list[QS]:
    """``queryset`` as ``workers`` disjoint querysets whose rows together are its rows (see
    ``arrow``); a one-element list when it is read whole.

    By ``abs(pk % workers)``: each part's left scan is the queryset's own with one more filter (an
    index it uses still serves), and consecutive keys fall in turn into each part, so the
    parts are balanced whatever the instruments' sizes (a hash of the instrument would put
    50 instruments' rows unevenly on two). The planner estimates the filter at 0.5 % of the
    rows (no statistics on the expression): a left side of several tables may get nested
    loops where it had hash joins."""
    wanted = _checked_workers(workers)
    reason = _unsplittable(queryset)
    if wanted > 1 and reason and workers is not None:
        raise ValueError(f"workers={workers}: the queryset cannot be read in parts: {reason}")
    if wanted == 1 or reason:
        return [queryset]
    column = _split_column(queryset.model)
    assert column is not None  # _unsplittable said so
    # abs: PostgreSQL's remainder of a negative key is negative (-3 % 2 = -1).
    remainder = Abs(Mod(F(column), Value(wanted)))
    return [queryset.filter(Exact(remainder, Value(part))) for part in range(wanted)]


def _checked_workers(workers: object) -> int:
    if workers is None:
        return default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number of 1 or more, not {workers!r}")
    return workers


def _unsplittable(queryset: models.QuerySet[Any]) -> str:
    """Why filtering the left rows into parts would not give the queryset's rows ('' if
    nothing says so)."""
    query = queryset.query
    if _split_column(queryset.model) is None:
        return f"{queryset.model._meta.label} has no integer primary key to split it by"
    if queryset.ordered:
        return "it is ordered (its order_by or its model's ordering); .order_by() clears it"
    if query.is_sliced or query.combinator:
        return "it is sliced or combined (union...)"
    if query.distinct:
        return "it is distinct (rows of different parts may be equal)"
    if query.group_by is not None or any(
        getattr(e, "contains_aggregate", False) for e in query.annotations.values()
    ):
        return "it is grouped or aggregated (a group's rows would fall in several parts)"
    if any(getattr(e, "contains_over_clause", False) for e in query.annotations.values()):
        return "it has a window function (over a part's rows, not all)"
    return ""


def _split_column(model: type[models.Model]) -> str | None:
    """The integer primary key's column (the first integer one of a composite key)."""
    fields = getattr(model._meta, "pk_fields", None) or [model._meta.pk]
    for pk in fields:
        if isinstance(pk, models.IntegerField):  # AutoField and BigAutoField too
            return pk.attname
    return None


def _composed(ops: Any, queryset: models.QuerySet[Any]) -> str:
    sql, params = queryset.query.sql_with_params()
    return str(ops.compose_sql(sql, params))


def _read_in_parts(alias: str, preamble: list[str], statements: list[str]) -> pa.Table:
    """Each statement on a connection of its own, at once (threads: the driver waits on the
    server and decodes without the GIL), all on the first one's snapshot, imported by the
    others before any statement runs (the first's transaction stays open until they end)."""
    import pyarrow as pa

    from qvp_site.api.bulk import reader

    info = reader.conninfo(alias)
    opened: list[Any] = []
    done = False
    try:
        for _ in statements:
            opened.append(reader.begun(info))
        snapshot = _exported(opened[0])
        for connection in opened[1:]:
            _imported(connection, snapshot)
        with ThreadPoolExecutor(len(statements), thread_name_prefix="asof-arrow") as pool:
            futures = [
                pool.submit(_read, connection, preamble, statement)
                for connection, statement in zip(opened, statements, strict=True)
            ]
            tables = [future.result() for future in futures]  # the first error raised
        done = True
    finally:
        for connection in opened:
            if done and reader.rolled_back(connection):
                reader.give_back(info, connection)
            else:
                reader.close(connection)
    return pa.concat_tables(tables)


def _exported(connection: Any) -> str:
    """The snapshot of ``connection``'s transaction, taken now (repeatable read: its own
    statement reads it too, not one taken later)."""
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute("SELECT pg_export_snapshot()")
        (snapshot,) = cursor.fetchone()
    return str(snapshot)


def _imported(connection: Any, snapshot: str) -> None:
    # A snapshot's name is the server's (hex digits and dashes): checked, then quoted.
    if not _SNAPSHOT.fullmatch(snapshot):
        raise RuntimeError(f"unexpected snapshot name {snapshot!r}")
    with connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        cursor.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")


_SNAPSHOT = re.compile(r"[0-9A-Fa-f-]+")


def _read(connection: Any, preamble: Sequence[str], statement: str) -> pa.Table:
    with connection.cursor() as cursor:
        for line in preamble:
            cursor.execute(line)
        cursor.execute(statement)
        return cursor.fetch_arrow_table()


def _acting_preamble(alias: str) -> list[str]:
    """The statements that make the reader's transaction act as Django's does on ``alias``."""
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user = session_user, current_user::text,"
            " coalesce(current_setting('qvp.user_id', true), ''),"
            " coalesce(current_setting('qvp.actor', true), ''),"
            " current_setting('statement_timeout')"
        )
        same_role, role, user_id, actor, timeout = cursor.fetchone()
    ops: Any = connection.ops
    statements = [] if same_role else [str(ops.compose_sql("SET LOCAL ROLE %s", [role]))]
    declare = (
        "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true),"
        " set_config('statement_timeout', %s, true)"
    )
    statements.append(str(ops.compose_sql(declare, [user_id, actor, timeout])))
    statements.append("SET LOCAL TimeZone = 'UTC'")
    return statements
