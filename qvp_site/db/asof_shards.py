"""The as-of join where the market data is distributed (Citus) and the left rows are not on
its shards: the books, or the instruments, kept on the coordinator.

Citus runs a correlated ``LATERAL ... LIMIT 1`` on the shards only when the instrument it looks
up comes from a distributed table colocated with the right one, joined on its distribution
column; when it comes from a local table, a CTE or a list of values, it refuses it ("Limit
clause is currently unsupported when a lateral subquery references a column from complex
subqueries, CTEs or local tables"). So there the lookups start from the instruments' keys,
distributed beside the market data (as ``marketdata/presence.py``'s probes do), with the left
rows' instruments and times beside them:

    LEFT JOIN (
        WITH asof0_k AS MATERIALIZED (SELECT DISTINCT by, at FROM (<the left rows' pairs>) s)
        SELECT asof0_k.by AS asof0_by, asof0_k.at AS asof0_at, asof0_q0.*
        FROM marketdata_instrument_key asof0_i JOIN asof0_k ON asof0_k.by = asof0_i.id
        LEFT JOIN LATERAL (<the steps, as on one node, from asof0_i.id and asof0_k.at>) asof0_q0
        ON true OFFSET 0
    ) asof0 ON asof0.asof0_by = <the left row's instrument> AND asof0.asof0_at = <its time>

Citus reads the CTE on the coordinator and sends its rows with each shard's task; each shard
joins them to its own instruments' keys and runs their lookups as one node runs them (a scan
of the index that stops at the first row), the shards at once; the answers come back to the
coordinator, which joins them to the left rows there. ``OFFSET 0`` keeps it that way round:
without it Citus may instead ship the left table to the shards as a subquery of its own, which
with row-level security (the executions') it cannot plan ("cannot handle unplanned
sub-select"). A lookup's answer depends only on the instrument and the time, so each distinct
pair is looked up once. The pairs are read, as the statement is compiled, from the rows the
query reads (``_pairs``): its later filters, and ``arrow``'s parts, narrow the lookups too.

A right side read as known at a past moment is the union of the table and its revisions,
which Citus does not run inside a lookup: it is read apart (``read_apart``), each part looked
up in a lateral of its own (``asof0_q0``, ``asof0_q1``), and ``Winner`` takes the answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.db import NotSupportedError
from django.db.models import DateTimeField, Expression, Field
from django.db.models.expressions import Col
from django.db.models.sql.where import AND, WhereNode

from qvp_site.db import engine

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler
    from django.db.models.sql.query import Query


@dataclass(frozen=True)
class Placement:
    """The tables an as-of join reads and the columns it matches them on, which decide where
    its lookups can start."""

    right_table: str
    right_by: str  # the right table's column naming the instrument
    key_table: str  # the keys of the instruments the right column refers to
    left_table: str
    left_by: str | None  # the left table's column, when ``by`` names one

    def starts_from_keys(self, connection: BaseDatabaseWrapper) -> bool:
        """Whether the lookups must start from the instruments' keys: the right table is
        distributed by its instrument beside the keys, and the left one is not beside it."""
        if not engine.distributes_market_data(connection):
            return False
        right = engine.distribution(self.right_table, connection)
        keys = engine.distribution(self.key_table, connection)
        if right is None or keys is None or right != (self.right_by, keys[1]):
            return False
        return engine.distribution(self.left_table, connection) != (self.left_by, right[1])


@dataclass(frozen=True)
class Winner:
    """Which of two parts' answers a lookup takes (a right side read apart, see asof.py's
    ``_from_keys``): the one found, or of two the later by ``order`` (the right time, then the
    tie-break), the earlier going forward."""

    order: list[str]  # the columns, as the parts' lookups return them
    direction: str

    def second_wins(self, first: str, second: str, quote: Callable[[str], str]) -> str:
        """SQL: whether the answer of the lookup ``second`` (an alias) is taken over
        ``first``'s."""
        compared = ">" if self.direction == "backward" else "<"
        ours, theirs = (
            ", ".join(f"{quote(a)}.{quote(c)}" for c in self.order) for a in (second, first)
        )
        time = quote(self.order[0])
        return (
            f"{quote(second)}.{time} IS NOT NULL"
            f" AND ({quote(first)}.{time} IS NULL OR ({ours}) {compared} ({theirs}))"
        )


class FromKeys:
    """The join's SQL when its lookups start from the instruments' keys (the module's
    docstring). ``names`` is the join's alias when made: its inner names, which stay when
    Django renames the outer aliases (``relabeled_clone``). ``arms``: the lookup (a template
    over its steps) in each part of the right side, one but for a read apart (two: the
    table's rows and the revisions, ``winner`` choosing between their answers)."""

    def __init__(
        self,
        placement: Placement,
        names: str,
        arms: Sequence[tuple[str, Sequence[Query]]],
        on: Sequence[Expression],
        columns: Sequence[str],
        winner: Winner,
    ):
        if not 1 <= len(arms) <= 2:
            raise ValueError(f"an as-of lookup reads one part or two, not {len(arms)}")
        self.placement = placement
        self.names = names
        self.arms = [(template, list(steps)) for template, steps in arms]
        self.on = list(on)  # the left row's instrument and time, in the outer query
        self.columns = list(columns)  # the right side's columns the join returns
        self.winner = winner

    @staticmethod
    def starts(names: str, key: Field[Any, Any]) -> tuple[Expression, Expression]:
        """The instrument and the time a step's lookup starts from: columns of the join's
        own relations (``key``: the right side's field of the instrument)."""
        return _Column(f'"{names}_i"."id"', key), _Column(f'"{names}_k"."at"', DateTimeField())

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, alias: str
    ) -> tuple[str, list[Any]]:
        n = self.names
        pairs = _pairs(compiler.query, n, self.on)
        # As the outer compiler would render an empty WHERE (Django's stubs omit the attribute).
        elide_empty = getattr(compiler, "elide_empty", True)
        pairs_sql, params = pairs.get_compiler(
            connection=connection, elide_empty=elide_empty
        ).as_sql()
        lookups = [formatted(t, steps, compiler, connection) for t, steps in self.arms]
        (by, by_params), (at, at_params) = (compiler.compile(e) for e in self.on)
        quoted = compiler.quote_name_unless_alias(alias)
        joins = " ".join(
            f'LEFT JOIN LATERAL ({sql}) "{n}_q{number}" ON true'
            for number, (sql, _) in enumerate(lookups)
        )
        keys = connection.ops.quote_name(self.placement.key_table)
        answer = self._answer(connection)
        sql = (
            f'LEFT JOIN (WITH "{n}_k" AS MATERIALIZED ('
            f'SELECT DISTINCT s."{n}_by" AS "by", s."{n}_at" AS "at" FROM ({pairs_sql}) s'
            f' WHERE s."{n}_by" IS NOT NULL AND s."{n}_at" IS NOT NULL)'
            f' SELECT "{n}_k"."by" AS "{n}_by", "{n}_k"."at" AS "{n}_at", {answer}'
            f' FROM {keys} "{n}_i" JOIN "{n}_k" ON "{n}_k"."by" = "{n}_i"."id"'
            f" {joins} OFFSET 0)"
            f' {quoted} ON {quoted}."{n}_by" = {by} AND {quoted}."{n}_at" = {at}'
        )
        step_params = [p for _, arm_params in lookups for p in arm_params]
        return sql, [*params, *step_params, *by_params, *at_params]

    def _answer(self, connection: BaseDatabaseWrapper) -> str:
        """The right side's columns, from the one lookup or the winning one of two."""
        first = f"{self.names}_q0"
        if len(self.arms) == 1:
            return f'"{first}".*'
        quote = connection.ops.quote_name
        second = f"{self.names}_q1"
        wins = self.winner.second_wins(first, second, quote)
        return ", ".join(
            f"CASE WHEN {wins} THEN {quote(second)}.{quote(c)}"
            f" ELSE {quote(first)}.{quote(c)} END AS {quote(c)}"
            for c in self.columns
        )

    def relabeled_clone(self, change_map: dict[str, str]) -> FromKeys:
        return FromKeys(
            self.placement,
            self.names,
            [(t, [step.relabeled_clone(change_map) for step in steps]) for t, steps in self.arms],
            [e.relabeled_clone(change_map) for e in self.on],
            self.columns,
            self.winner,
        )


def _pairs(query: Query, names: str, on: Sequence[Expression]) -> Query:
    """The (instrument, time) pairs, as ``<names>_by`` and ``<names>_at``, of the rows
    ``query`` reads, or of more: they are joined back to the rows, so any superset answers the
    same. Its FROM and the conditions of its WHERE that no as-of join's columns decide, without
    its grouping and what filters groups, its order, DISTINCT or limits, and without the as-of
    joins that neither those conditions nor ``on`` read (each would look up again)."""
    if any(getattr(expression, "contains_aggregate", False) for expression in on):
        raise NotSupportedError(
            "on Citus an as-of join's instrument and time cannot be aggregates: join the rows,"
            " then group them"
        )
    pairs = query.clone()
    # The as-of joins, this one included (asof.py's LateralJoin, known by what it carries).
    laterals = {alias for alias, join in pairs.alias_map.items() if hasattr(join, "from_keys")}
    where = cast(Any, pairs.where).split_having_qualify()[0] or WhereNode()
    pairs.where = _without(where, laterals)
    pairs.group_by = None
    pairs.distinct, pairs.distinct_fields = False, ()
    # Every pair, not those of the first rows: a ``.first()`` or a slice looks up all of the
    # rows its filters keep (the rows' order may read the joins dropped here).
    pairs.clear_ordering(force=True)
    pairs.clear_limits()
    pairs.select_for_update = False
    pairs.clear_select_clause()
    for expression, name in zip(on, ("by", "at"), strict=True):
        pairs.add_annotation(expression, f"{names}_{name}")
    needed = _needed(pairs, laterals, _aliases(pairs.where) | _aliases_of(on))
    for alias in laterals - needed:
        pairs.alias_refcount[alias] = 0  # not rendered
    return pairs


def _needed(query: Query, laterals: set[str], read: set[str]) -> set[str]:
    """The as-of joins among ``laterals`` that ``read`` names, and those they read their own
    instrument and time from, in turn (a join timed by another's answer)."""
    needed: set[str] = set()
    waiting = list(read & laterals)
    while waiting:
        alias = waiting.pop()
        if alias in needed:
            continue
        needed.add(alias)
        from_keys = cast(Any, query.alias_map[alias]).from_keys
        # A join rendered laterally reads the outer row itself: keep them all then.
        reads = _aliases_of(from_keys.on) if from_keys else laterals
        waiting.extend(reads & laterals)
    return needed


def _aliases_of(expressions: Sequence[Expression]) -> set[str]:
    return {alias for expression in expressions for alias in _aliases(expression)}


def _without(where: WhereNode, aliases: set[str]) -> WhereNode:
    """``where`` without its conditions that read ``aliases``: the top-level ones joined by
    AND, or all of it (every row) when they are under OR or NOT."""
    if not _aliases(where) & aliases:
        return where
    if where.connector == AND and not where.negated:
        return WhereNode([c for c in where.children if not _aliases(c) & aliases], AND)
    return WhereNode()


def _aliases(node: Any) -> set[str]:
    """The aliases of the outer query's columns an expression or a WHERE reads: its own, and
    those a subquery in it reads of the outer query (``OuterRef``)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, Col):
            found.add(item.alias)
        elif isinstance(item, WhereNode):
            stack.extend(item.children)
        elif hasattr(item, "alias_map"):  # a subquery: what it reads of the outer query
            found |= {col.alias for col in item.get_external_cols()}
        elif hasattr(item, "get_source_expressions"):
            stack.extend(e for e in item.get_source_expressions() if e is not None)
    return found


class _Column(Expression):
    """A column of the join's own relations, by its SQL (names the join made, quoted)."""

    def __init__(self, sql: str, output_field: Field[Any, Any]):
        super().__init__(output_field=output_field)
        self.sql = sql

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper
    ) -> tuple[str, list[Any]]:
        return self.sql, []


def formatted(
    template: str,
    subqueries: Sequence[Query],
    compiler: SQLCompiler,
    connection: BaseDatabaseWrapper,
) -> tuple[str, list[Any]]:
    """``template`` over the compiled subqueries (``{0}``, ``{1}``...), and their params in
    the order their placeholders appear."""
    compiled = [_never_elided(subquery, connection) for subquery in subqueries]
    order = [int(n) for n in _PLACEHOLDER.findall(template)]
    params = [p for n in order for p in compiled[n][1]]
    return template.format(*(sql for sql, _ in compiled)), params


_PLACEHOLDER = re.compile(r"\{(\d+)\}")


def _never_elided(subquery: Query, connection: BaseDatabaseWrapper) -> tuple[str, list[Any]]:
    """A lookup's SQL (``Query.as_sql``), kept where its filters can match nothing (a right
    side ``filter(id__in=[])``): Django would raise EmptyResultSet and elide the whole
    statement, the left rows with it, where a lookup that finds nothing leaves them unanswered.
    Rendered as Django renders a WHERE that can never hold, ``0 = 1``."""
    sql, params = subquery.get_compiler(connection=connection, elide_empty=False).as_sql()
    return (f"({sql})" if subquery.subquery else sql), list(params)
