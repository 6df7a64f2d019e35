"""A load's summaries on plain PostgreSQL: the coarse ones rolled up from the finest, safely.

``qvp_site.db.aggregates`` refreshes each aggregate of a table by itself from the source rows:
after a million minute bars, the hourly and the daily summaries each sort the million. Here,
after a load, one statement sums the finest aggregate's buckets from the rows (hours from
minute bars) and writes them and every coarser aggregate that is a function of them (days
from those hours), the rows read once.

Two things made a first attempt (taken out in 0e2edc1) wrong; both are closed by construction:

- **Ranges taken apart.** It took each aggregate's pending range in turn, so a load that
  committed between the hourly and the daily refresh had its range taken with the daily's and
  rolled up from hours computed before its bars were visible; its own refresh then found the
  daily mark gone, and the days missed its bars for good. Here the marks of every aggregate
  of the group are taken in the transaction that writes them, after the refreshes' locks
  (``qvp_agg:<name>``, the ones ``qvp_site.db.aggregates.refresh`` takes), and a coarse bucket
  is only ever rolled up from the fine buckets the same statement has just summed from the
  rows, never from stored ones. Every load whose mark is taken committed before it (a mark
  commits with its rows), so the statement, whose snapshot is later, sees its rows; a load
  that commits later keeps its mark for its own refresh. A failure rolls back the taking too.
- **Float sums in another order.** A day's volume summed from 24 hourly sums differs from the
  bars' sum (added in time order) when rounding happens. A coarse bucket is rolled up only
  where that cannot happen: every value of its summed columns a whole number, none negative,
  and the total below 2**53, so that every partial sum, in any order, is an exact float (an
  integer below 2**53). Any other bucket (fractional crypto volumes, say) is summed from the
  rows as before, in the same statement's transaction, by the refresh's own query
  (``qvp_summary_select``).

TimescaleDB keeps its continuous aggregates, refreshed by ``qvp_site.db.aggregates`` as
before; so does any aggregate no other rolls up from, any a role may not refresh (its range
stays pending for the next ``maintain``), and on Citus the summaries distributed beside their
rows, each summed from the rows on the shards (``_rolled_up_here``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connections, transaction

from qvp_site.db import aggregates, catalog, engine
from qvp_site.db.buckets import bucket_sql
from qvp_site.db.catalog import Aggregate
from qvp_site.db.quoting import ident

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

WORK_MEM = "256MB"

# Below this, whole numbers are exact floats and so are their sums, in any order.
EXACT_BELOW = 2**53

# A coarse column from the fine buckets' column of the same function of the same rows.
_ROLLUPS = {
    "first": "(array_agg({c} ORDER BY bucket ASC))[1]",
    "last": "(array_agg({c} ORDER BY bucket ASC))[count(*)]",
    "min": "min({c})",
    "max": "max({c})",
    "sum": "sum({c})",
    "count": "sum({c})",
}


@dataclass(frozen=True)
class RollupGroup:
    """The finest aggregate of a table and the coarser ones rolled up from it."""

    fine: Aggregate
    coarse: tuple[Aggregate, ...]

    @property
    def members(self) -> list[Aggregate]:
        """By name: the catalog's order, which every refresh of the table (``refresh_table``,
        ``maintain``, the loads' marks) takes its locks in, so that none waits in a cycle."""
        return sorted([self.fine, *self.coarse], key=lambda a: a.name)


def refresh_after_commit(
    table: str, start: datetime, end: datetime, using: str = "default"
) -> None:
    """``qvp_site.db.aggregates.refresh_after_commit`` for a load: the range marked pending in
    the load's transaction (so it commits with the rows), then after the commit the pending
    ranges refreshed, rolled up where ``rollup_group`` finds a group."""
    connection = connections[using]
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table=table)
    for agg in found:  # by name, as the catalog lists them: the refreshes lock in that order
        aggregates.mark_pending(connection, agg.name, start, end)
    transaction.on_commit(lambda: refresh_marked(found, using), using=using)


def refresh_marked(found: list[Aggregate], using: str = "default") -> None:
    """Refresh the pending ranges of ``found``: a rollup group together, the others one by one
    (``refresh_pending``). Those the role may not refresh stay pending, for ``maintain``."""
    connection = connections[using]
    owned = [agg for agg in found if _owns(using, agg.name)]
    group = rollup_group(owned) if _rolled_up_here(connection, owned) else None
    if group is not None:
        refresh_group(group, using)
    for agg in owned:
        if group is None or agg not in group.members:
            aggregates.refresh_pending(agg, using)


def _rolled_up_here(connection: BaseDatabaseWrapper, found: list[Aggregate]) -> bool:
    """Whether ``found`` may be rolled up: not on TimescaleDB, which refreshes its continuous
    aggregates itself, nor on Citus where they are distributed beside their rows. There each
    is refreshed from the rows on the shards, an ``INSERT ... SELECT`` per shard
    (qvp_site/db/distributed_summaries.py), where the rollup's one statement would bring the
    fine buckets to the coordinator and send them back. Asked of Citus's catalog each time,
    not of ``engine.distribution``'s cache: a process that began before the migration that
    distributed them would take them for the coordinator's."""
    if engine.is_timescaledb(connection):
        return False
    if not engine.is_citus(connection):
        return True
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_dist_partition"
            " WHERE logicalrelid = ANY(%s::regclass[]))",
            [[ident(agg.name) for agg in found]],
        )
        return bool(cursor.fetchone()[0])


def rolls_up(coarse: Aggregate, fine: Aggregate) -> bool:
    """Whether ``coarse``'s buckets are a function of ``fine``'s: the same rows, time and
    groups; fixed widths from the same origin, the coarse a multiple of the fine (each fine
    bucket inside one coarse bucket); each coarse column one that combines (no avg) of a
    function and column the fine one holds."""
    cw, fw = coarse.bucket_width, fine.bucket_width
    if coarse.name == fine.name or cw.is_calendar or fw.is_calendar:
        return False
    same = (coarse.source_table, coarse.time_column, list(coarse.group_by)) == (
        fine.source_table,
        fine.time_column,
        list(fine.group_by),
    )
    multiple = cw.fixed > fw.fixed and cw.fixed % fw.fixed == timedelta(0)
    held = {(function, column) for _, function, column in fine.columns}
    return same and multiple and all(f in _ROLLUPS and (f, c) in held for _, f, c in coarse.columns)


def rollup_group(found: list[Aggregate]) -> RollupGroup | None:
    """The finest aggregate of ``found`` that others roll up from, with them; None if none."""
    for fine in sorted(found, key=lambda a: (a.bucket_width.is_calendar, a.bucket_width.fixed)):
        coarse = tuple(c for c in found if rolls_up(c, fine))
        if coarse:
            return RollupGroup(fine, coarse)
    return None


def refresh_group(
    group: RollupGroup, using: str = "default"
) -> list[tuple[str, datetime, datetime]]:
    """Take the group's pending ranges and refresh them, in one transaction: the fine
    buckets summed from the rows over every range taken, the coarse ones rolled up from
    them (or summed from the rows where a rollup would not be exact). Returns what was done."""
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # The fine buckets sort a load's rows by bucket and time (first and last): a million
        # minute bars sort in memory in 256 MB, the load's own setting, where the default
        # spills them to disk.
        cursor.execute("SELECT set_config('work_mem', %s, true)", [WORK_MEM])
        for agg in group.members:  # the locks `refresh` takes, in the order all refreshes do
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"qvp_agg:{agg.name}"])
        ranges = _take_marks(cursor, group)
        if not ranges:
            return []
        fine_range = _fine_range(group.fine, ranges)
        coarse = [(agg, ranges[agg.name]) for agg in group.coarse if agg.name in ranges]
        for agg, (lower, upper) in [(group.fine, fine_range), *coarse]:
            cursor.execute(
                f"DELETE FROM {ident(agg.name)} WHERE bucket >= %s AND bucket < %s", [lower, upper]
            )
        inexact = _write_rolled_up(cursor, group.fine, fine_range, coarse)
        for agg, lower, upper in inexact:
            _write_from_rows(cursor, agg, lower, upper)
        done = [(group.fine.name, *fine_range), *((a.name, lo, hi) for a, (lo, hi) in coarse)]
        for name, lower, upper in done:
            cursor.execute(
                "UPDATE qvp_timeseries_aggregate SET refreshed_at = now(), refreshed_from = %s,"
                " refreshed_to = %s WHERE view_name = %s",
                [lower, upper, name],
            )
    return done


def _take_marks(cursor: CursorWrapper, group: RollupGroup) -> dict[str, tuple[datetime, datetime]]:
    """Every pending range of the group, cleared in this transaction; each widened to its
    aggregate's whole buckets. Rows locked by name, the order loads mark them in."""
    names = [agg.name for agg in group.members]
    cursor.execute(
        "SELECT view_name, pending_from, pending_to FROM qvp_timeseries_aggregate"
        " WHERE view_name = ANY(%s) ORDER BY view_name FOR UPDATE",
        [names],
    )
    pending = {name: (lower, upper) for name, lower, upper in cursor.fetchall() if lower}
    if pending:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = NULL, pending_to = NULL"
            " WHERE view_name = ANY(%s)",
            [list(pending)],
        )
    by_name = {agg.name: agg for agg in group.members}
    return {name: aggregates.aligned(by_name[name], *span) for name, span in pending.items()}


def _fine_range(
    fine: Aggregate, ranges: dict[str, tuple[datetime, datetime]]
) -> tuple[datetime, datetime]:
    """The fine buckets to sum: every range taken (coarse ones hold whole fine buckets)."""
    lower = min(lower for lower, _ in ranges.values())
    upper = max(upper for _, upper in ranges.values())
    return aggregates.aligned(fine, lower, fine.bucket_width.add(upper, -1))


def _write_rolled_up(
    cursor: CursorWrapper,
    fine: Aggregate,
    fine_range: tuple[datetime, datetime],
    coarse: list[tuple[Aggregate, tuple[datetime, datetime]]],
) -> list[tuple[Aggregate, datetime, datetime]]:
    """One statement: the fine buckets of ``fine_range`` from the rows, written, and each
    coarse aggregate's buckets of its range rolled up from them where exact. Returns, for
    each coarse aggregate with buckets left out, the range [first, end of last) of those."""
    parts = [f"fine AS MATERIALIZED ({_fine_select(cursor, fine)})", _insert_fine(fine)]
    params: list[datetime] = list(fine_range)
    tails = []
    for i, (agg, span) in enumerate(coarse):
        parts.append(f"c{i} AS MATERIALIZED ({_rollup_select(agg, fine)})")
        parts.append(f"w{i} AS ({_insert(agg, f'c{i}', 'WHERE exact')})")
        params.extend(span)
        tails.append(f"SELECT {i}, min(bucket), max(bucket) FROM c{i} WHERE NOT exact")
    # With no coarse range taken (another refresh took those marks), the hours alone.
    tails = tails or ["SELECT 0, NULL::timestamptz, NULL::timestamptz WHERE false"]
    cursor.execute(f"WITH {', '.join(parts)} {' UNION ALL '.join(tails)}", params)
    left = []
    for i, first, last in cursor.fetchall():
        if first is not None:
            agg = coarse[i][0]
            left.append((agg, first, agg.bucket_width.add(last)))
    return left


def _fine_select(cursor: CursorWrapper, fine: Aggregate) -> str:
    """The refresh's buckets (``qvp_summary_select``) over [%s, %s), with a column per summed
    column saying whether its values are all whole and not negative (NULL where all are NULL)."""
    ts = ident(fine.time_column)
    where = f"{ts} >= %s AND {ts} < %s"
    guards = [
        f"bool_and({ident(c)} >= 0 AND {ident(c)} = trunc({ident(c)})) AS {ident(_guard(a))}"
        for a, function, c in fine.columns
        if function == "sum"
    ]
    select = aggregates.summary_select(cursor, fine.name, where)
    head, tail = select.split(f" FROM {ident(fine.source_table)}", 1)
    return f"{', '.join([head, *guards])} FROM {ident(fine.source_table)}{tail}"


def _guard(alias: str) -> str:
    return f"qvp_whole_{alias}"


def _insert_fine(fine: Aggregate) -> str:
    return f"written AS ({_insert(fine, 'fine', '')})"


def _insert(agg: Aggregate, cte: str, where: str) -> str:
    columns = ", ".join(ident(c) for c in _columns(agg))
    return f"INSERT INTO {ident(agg.name)} ({columns}) SELECT {columns} FROM {cte} {where}"


def _columns(agg: Aggregate) -> list[str]:
    """The summary table's columns, as CREATE TABLE AS made them from ``select_sql``."""
    return ["bucket", *agg.group_by, *(alias for alias, _, _ in agg.columns)]


def _rollup_select(coarse: Aggregate, fine: Aggregate) -> str:
    """``coarse``'s buckets in [%s, %s) from the fine CTE, and whether each is exact: every
    summed column's values whole and not negative, and its total below 2**53."""
    alias = {(function, column): name for name, function, column in fine.columns}
    groups = [ident(c) for c in coarse.group_by]
    items = [f"{bucket_sql(coarse.bucket_width, 'bucket', timescaledb=False)} AS bucket", *groups]
    exact = ["true"]
    for name, function, column in coarse.columns:
        fine_alias = alias[(function, column)]
        items.append(f"{_ROLLUPS[function].format(c=ident(fine_alias))} AS {ident(name)}")
        if function == "sum":
            exact.append(
                f"coalesce(bool_and({ident(_guard(fine_alias))}), true)"
                f" AND coalesce(sum({ident(fine_alias)}), 0) < {EXACT_BELOW}"
            )
    items.append(f"{' AND '.join(exact)} AS exact")
    return (
        f"SELECT {', '.join(items)} FROM fine WHERE bucket >= %s AND bucket < %s"
        f" GROUP BY {', '.join(['1', *groups])}"
    )


def _write_from_rows(
    cursor: CursorWrapper, agg: Aggregate, lower: datetime, upper: datetime
) -> None:
    """The buckets of ``agg`` in [lower, upper) the rollup left out, summed from the rows.

    The buckets are summed in a CTE of their own, materialised, before they meet the summary:
    on Citus the rows are on the shards and the summary on the coordinator, and Citus refuses
    a join of the two (the refresh failed whole, leaving every bucket to ``maintain``)."""
    ts = ident(agg.time_column)
    select = aggregates.summary_select(cursor, agg.name, f"{ts} >= %s AND {ts} < %s")
    same = " AND ".join(
        f"t.{ident(c)} IS NOT DISTINCT FROM s.{ident(c)}" for c in ["bucket", *agg.group_by]
    )
    columns = ", ".join(ident(c) for c in _columns(agg))
    cursor.execute(
        f"WITH s AS MATERIALIZED ({select})"
        f" INSERT INTO {ident(agg.name)} ({columns}) SELECT {columns} FROM s"
        f" WHERE NOT EXISTS (SELECT 1 FROM {ident(agg.name)} t WHERE {same})",
        [lower, upper],
    )


def _owns(using: str, relation: str) -> bool:
    """Whether the current role may refresh ``relation`` (owns it, or is a member of its owner)."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
            " WHERE oid = %s::regclass",
            [ident(relation)],
        )
        return bool(cursor.fetchone()[0])
