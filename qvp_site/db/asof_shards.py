"""The as-of join where the market data is distributed (Citus) and the left rows are not on
its shards: the books, kept on the coordinator, or the instruments, a reference table.

Citus runs a correlated ``LATERAL ... LIMIT 1`` on the shards only from a distributed table
colocated with the right one and joined on its distribution column. From a local table, a CTE
or a list of values it refuses it ("Limit clause is currently unsupported when a lateral
subquery references a column from complex subqueries, CTEs or local tables"). So there the
lookups start from the instruments' keys, distributed beside the market data (as
``marketdata/presence.py``'s probes do), with the left rows' instruments and times beside them:

    LEFT JOIN (
        WITH asof0_k AS MATERIALIZED (SELECT DISTINCT by, at FROM (<the left queryset>) s ...)
        SELECT asof0_k.by AS asof0_by, asof0_k.at AS asof0_at, asof0_q.*
        FROM marketdata_instrument_key asof0_i JOIN asof0_k ON asof0_k.by = asof0_i.id
        LEFT JOIN LATERAL (<the steps, as on one node, from asof0_i.id and asof0_k.at>) asof0_q
        ON true
    ) asof0 ON asof0.asof0_by = <the left row's instrument> AND asof0.asof0_at = <its time>

Citus reads the CTE on the coordinator and sends its rows with each shard's task; each shard
joins them to its own instruments' keys and runs their lookups, as one node runs them (a
backward scan of the index that stops at the first row), the shards at once; the answers come
back to the coordinator, which joins them to the left rows there. ``OFFSET 0`` keeps it that
way round: without it Citus may instead ship the left table to the shards as a subquery of its
own, which with row-level security (the executions') it cannot plan ("cannot handle unplanned
sub-select"). A lookup's answer depends only on
the instrument and the time, so each distinct pair is looked up once.

The pairs are those of the left queryset as it stood when ``asof()`` was called: a filter added
after it narrows the rows, not the lookups (filter first). A queryset read in parts (``arrow``'s
``workers``) looks every pair up in each part: on Citus the shards already share the work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db.models import DateTimeField, Expression, Field

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


class FromKeys:
    """The join's SQL when its lookups start from the instruments' keys (the module's
    docstring). ``names`` is the join's alias when made: its inner names, which stay when
    Django renames the outer aliases (``relabeled_clone``)."""

    def __init__(
        self,
        placement: Placement,
        names: str,
        pairs: Query,
        template: str,
        steps: Sequence[Query],
        on: Sequence[Expression],
    ):
        self.placement = placement
        self.names = names
        self.pairs = pairs  # the left queryset with ``<names>_by`` and ``<names>_at`` added
        self.template = template
        self.steps = list(steps)
        self.on = list(on)  # the left row's instrument and time, in the outer query

    @staticmethod
    def starts(names: str, key: Field[Any, Any]) -> tuple[Expression, Expression]:
        """The instrument and the time a step's lookup starts from: columns of the join's
        own relations (``key``: the right side's field of the instrument)."""
        return _Column(f'"{names}_i"."id"', key), _Column(f'"{names}_k"."at"', DateTimeField())

    def as_sql(
        self, compiler: SQLCompiler, connection: BaseDatabaseWrapper, alias: str
    ) -> tuple[str, list[Any]]:
        n = self.names
        pairs, params = self.pairs.get_compiler(connection=connection).as_sql()
        lookups, step_params = formatted(self.template, self.steps, compiler, connection)
        (by, by_params), (at, at_params) = (compiler.compile(e) for e in self.on)
        quoted = compiler.quote_name_unless_alias(alias)
        sql = (
            f'LEFT JOIN (WITH "{n}_k" AS MATERIALIZED ('
            f'SELECT DISTINCT s."{n}_by" AS by, s."{n}_at" AS at FROM ({pairs}) s'
            f' WHERE s."{n}_by" IS NOT NULL AND s."{n}_at" IS NOT NULL)'
            f' SELECT "{n}_k".by AS "{n}_by", "{n}_k".at AS "{n}_at", "{n}_q".*'
            f' FROM {self.placement.key_table} "{n}_i" JOIN "{n}_k" ON "{n}_k".by = "{n}_i".id'
            f' LEFT JOIN LATERAL ({lookups}) "{n}_q" ON true OFFSET 0)'
            f' {quoted} ON {quoted}."{n}_by" = {by} AND {quoted}."{n}_at" = {at}'
        )
        return sql, [*params, *step_params, *by_params, *at_params]

    def relabeled_clone(self, change_map: dict[str, str]) -> FromKeys:
        return FromKeys(
            self.placement,
            self.names,
            self.pairs,  # a query of its own: none of the outer aliases
            self.template,
            [step.relabeled_clone(change_map) for step in self.steps],
            [e.relabeled_clone(change_map) for e in self.on],
        )


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
    compiled = [subquery.as_sql(compiler, connection) for subquery in subqueries]
    order = [int(n) for n in _PLACEHOLDER.findall(template)]
    params = [p for n in order for p in compiled[n][1]]
    return template.format(*(sql for sql, _ in compiled)), params


_PLACEHOLDER = re.compile(r"\{(\d+)\}")
