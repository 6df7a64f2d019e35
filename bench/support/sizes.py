"""How much disk a table takes per row, partitions (or TimescaleDB chunks) included."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSize:
    heap: int  # bytes of the rows themselves (with TOAST)
    total: int  # heap and every index
    rows: int

    def per_row(self) -> tuple[float, float]:
        """Heap and total bytes per row."""
        rows = max(self.rows, 1)
        return self.heap / rows, self.total / rows


def table_size(cursor, table: str) -> TableSize:
    """``table``'s bytes as its files hold them now (no VACUUM run first). A partitioned
    table's are its partitions' (its own size is 0); a hypertable's are its chunks'
    (hypertable_detailed_size)."""
    cursor.execute("SELECT count(*) FROM " + _quoted(cursor, table))
    rows = cursor.fetchone()[0]
    if _is_hypertable(cursor, table):
        cursor.execute(
            "SELECT coalesce(table_bytes, 0) + coalesce(toast_bytes, 0), total_bytes"
            " FROM hypertable_detailed_size(%s::regclass)",
            [table],
        )
    else:
        # pg_partition_tree lists nothing for a table that is not partitioned.
        cursor.execute(
            "SELECT sum(pg_table_size(relid)), sum(pg_total_relation_size(relid))"
            " FROM (SELECT relid FROM pg_partition_tree(%s::regclass)"
            "       UNION SELECT %s::regclass) AS parts",
            [table, table],
        )
    heap, total = cursor.fetchone()
    return TableSize(heap=int(heap), total=int(total), rows=int(rows))


def average_row_bytes(cursor, table: str, where: str = "TRUE", params=()) -> float:
    """The mean pg_column_size of a whole row (its tuple, header excluded) of ``table``."""
    cursor.execute(
        f"SELECT coalesce(avg(pg_column_size(t.*)), 0) FROM {_quoted(cursor, table)} AS t"
        f" WHERE {where}",
        list(params),
    )
    return float(cursor.fetchone()[0])


def describe(cursor, table: str) -> str:
    """One line: ``table``'s rows and bytes per row (heap, with indexes, the tuple alone)."""
    size = table_size(cursor, table)
    heap, total = size.per_row()
    row = average_row_bytes(cursor, table)
    return (
        f"{table}: {size.rows:,} rows, {heap:.1f} B/row heap, {total:.1f} B/row with indexes,"
        f" {row:.1f} B pg_column_size(row)"
    )


def _is_hypertable(cursor, table: str) -> bool:
    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    if not cursor.fetchone()[0]:
        return False
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables"
        " WHERE hypertable_name = %s)",
        [table],
    )
    return cursor.fetchone()[0]


def _quoted(cursor, table: str) -> str:
    cursor.execute("SELECT quote_ident(%s)", [table])
    return cursor.fetchone()[0]
