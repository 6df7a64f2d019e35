"""What a bulk list reads: one SQL statement, and the Arrow type of each of its columns.

A list's rows are its queryset (filters, the user's scoping and ordering as the JSON list
has them) narrowed to the columns of the JSON rows: ``values()`` of each column's path or
expression under a neutral alias (``c0``, ``c1``…: a column's name may be a model field's, which
``values()`` would refuse as an alias), compiled by Django and wrapped in a select that names
the columns and casts what Arrow reads better as text (JSON, UUIDs; in CSV, vectors and
arrays, the latter as JSON). Each column's Arrow type follows from its Django field, so that
an empty answer has the same schema as a full one: NUMERIC(p, s) is ``decimal128(p, s)``, a
vector ``fixed_size_list<float32>[dim]``, a time ``timestamp[us, UTC]``, a duration
``duration[us]`` (in CSV, its count of microseconds).

The statement is composed with its parameters as literals (``compose_sql``, psycopg's own
quoting on Django's connection): COPY, which the reader streams with, takes no parameters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from django.contrib.postgres.fields import ArrayField
from django.db import connections, models
from django.db.models import F, QuerySet
from django.db.models.expressions import Combinable
from pgvector.django import VectorField

from qvp_site.db.quoting import ident

Column = str | Combinable  # a path ("instrument__symbol") or an expression
# SQL casts to text, whatever the format: Arrow reads them as text anyway, or as bytes.
TEXT_FIELDS = (models.JSONField, models.UUIDField, models.GenericIPAddressField)
# Fields whose Arrow type is a list: CSV writes them as their PostgreSQL text.
LIST_FIELDS = (VectorField, ArrayField)


@dataclass(frozen=True)
class ReadColumn:
    name: str
    field: models.Field[Any, Any]
    type: pa.DataType
    as_text: bool  # selected as its text

    @property
    def kind(self) -> str:
        """How the reader turns what the driver gives into ``type``."""
        if isinstance(self.field, models.DecimalField):
            return "decimal"
        if isinstance(self.field, VectorField) and not self.as_text:
            return "vector"
        return "plain"


@dataclass(frozen=True)
class ReadPlan:
    """A statement to stream (literal SQL), the database it reads and its columns."""

    alias: str
    sql: str
    columns: tuple[ReadColumn, ...]

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type) for c in self.columns])


def arrow_type(field: models.Field[Any, Any]) -> pa.DataType:
    """The Arrow type of a column of ``field``."""
    if isinstance(field, models.DecimalField):
        digits: int | None = field.max_digits  # None for an expression's (the stubs: int)
        places: int | None = field.decimal_places
        if digits is None or places is None:
            return pa.string()  # of no declared size: its exact text
        return pa.decimal128(digits, places)
    if isinstance(field, VectorField):
        return pa.list_(pa.float32(), field.dimensions)
    if isinstance(field, ArrayField):
        return pa.list_(arrow_type(field.base_field))
    for classes, kind in _SIMPLE_TYPES:
        if isinstance(field, classes):
            return kind
    if isinstance(field, models.ForeignKey):
        return arrow_type(field.target_field)
    return pa.string()


_SIMPLE_TYPES: tuple[tuple[type | tuple[type, ...], pa.DataType], ...] = (
    (models.DateTimeField, pa.timestamp("us", tz="UTC")),
    (models.DateField, pa.date32()),
    (models.DurationField, pa.duration("us")),
    (models.BooleanField, pa.bool_()),
    ((models.BigIntegerField, models.BigAutoField), pa.int64()),
    ((models.SmallIntegerField, models.SmallAutoField), pa.int16()),
    ((models.IntegerField, models.AutoField), pa.int32()),
    (models.FloatField, pa.float64()),
)


def plan(queryset: QuerySet[Any], columns: Mapping[str, Column], *, csv: bool) -> ReadPlan:
    """The statement reading ``columns`` (name -> path or expression) of ``queryset``'s
    rows, in its order."""
    aliases = {f"c{i}": name for i, name in enumerate(columns)}
    keys = _ordering_keys(queryset)
    selected = queryset.values(
        **{alias: _expression(columns[name]) for alias, name in aliases.items()},
        **{alias: F(path) for alias, (path, _descending) in keys.items()},
    )
    # An empty queryset (.none()) compiles to a query of no rows, not EmptyResultSet.
    compiler = selected.query.get_compiler(using=selected.db, elide_empty=False)
    inner, params = compiler.as_sql()
    fields = {
        alias: (name, selected.query.annotations[alias].output_field)
        for alias, name in aliases.items()
    }
    order = [f"q.{ident(alias)}{' DESC' if desc else ''}" for alias, (_p, desc) in keys.items()]
    return wrapped(selected.db, inner, params, fields, csv=csv, order_by=order)


def _ordering_keys(queryset: QuerySet[Any]) -> dict[str, tuple[str, bool]]:
    """The queryset's ordering as columns of their own (alias -> path, descending), for the
    outer select to order by again: Citus does not keep a subquery's order once a distributed
    table is in it (it unites the shards' answers), so the order is said where the rows come
    out. On one node the planner sorts once. None where an ordering is not a field's path."""
    ordering = [key for key in queryset.query.order_by if isinstance(key, str) and key != "?"]
    if len(ordering) != len(queryset.query.order_by):
        return {}
    return {f"o{i}": (key.lstrip("-"), key.startswith("-")) for i, key in enumerate(ordering)}


def wrapped(
    alias: str,
    sql: str,
    params: Sequence[Any],
    fields: Mapping[str, tuple[str, models.Field[Any, Any]]],
    *,
    csv: bool,
    order_by: Sequence[str] = (),
) -> ReadPlan:
    """The statement reading ``sql``'s columns (its column -> the name to give it, and the
    Django field its values are of), in its order (``order_by``: the outer select's keys,
    where ``sql`` selects them): for lists read by SQL of their own too."""
    read = []
    outer = []
    for column, (name, field) in fields.items():
        as_text = isinstance(field, TEXT_FIELDS) or (csv and isinstance(field, LIST_FIELDS))
        read.append(ReadColumn(name, field, pa.string() if as_text else arrow_type(field), as_text))
        outer.append(_select(column, field, name, as_text))
    # A projection of the ordered subquery: PostgreSQL keeps its rows' order (no join, no
    # aggregate above it to reorder them); Citus keeps the one said here.
    statement = f"SELECT {', '.join(outer)} FROM ({sql}) AS q"
    if order_by:
        statement += f" ORDER BY {', '.join(order_by)}"
    return ReadPlan(alias, compose(alias, statement, params), tuple(read))


def compose(alias: str, sql: str, params: Sequence[Any]) -> str:
    """``sql`` with ``params`` as literals, quoted by psycopg on ``alias``'s connection."""
    operations: Any = connections[alias].ops  # PostgreSQL's: the stubs know the base class
    composed: str = operations.compose_sql(sql, list(params))
    return composed


def _expression(column: Column) -> Combinable:
    return F(column) if isinstance(column, str) else column


def _select(alias: str, field: models.Field[Any, Any], name: str, as_text: bool) -> str:
    value = f"q.{ident(alias)}"
    if as_text and isinstance(field, ArrayField):
        value = f"to_jsonb({value})::text"  # ["a","b"], as JSON and as vectors are written
    elif as_text:
        value = f"{value}::text"
    elif isinstance(field, models.DurationField):
        # Microseconds: the driver reads an interval as months, days and nanoseconds, which
        # neither Parquet nor CSV writes; a duration has no months (Django's has none).
        value = f"(extract(epoch FROM {value}) * 1000000)::int8"
    return f"{value} AS {ident(name)}"
