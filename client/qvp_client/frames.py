"""Arrow tables turned into what the caller asked for: pandas (the default), Polars, Arrow.

What each gives for the API's types:

- times: Arrow ``timestamp[us, tz=UTC]``; pandas ``datetime64[us, UTC]``; Polars
  ``Datetime("us", "UTC")``;
- NUMERIC (money, quantities): Arrow ``decimal128(p, s)`` of the column's precision; pandas
  an ``object`` column of ``decimal.Decimal``; Polars ``Decimal(p, s)``;
- floats: ``double``; ``float64``; ``Float64``;
- integers: ``int64``; ``int64`` (``float64`` when the column has nulls); ``Int64``;
- text and JSON (as text): ``string``; pandas' string dtype; ``String``;
- vectors: ``fixed_size_list<float>[n]``; an ``object`` column of numpy arrays;
  ``Array(Float32, n)``.

pandas gets what ``pyarrow.Table.to_pandas()`` gives: decimals stay exact as Python
``Decimal`` objects (an ``object`` column; ``.astype(float)`` when exactness does not
matter). For Arrow-backed pandas columns throughout, take ``output="arrow"`` and call
``table.to_pandas(types_mapper=pandas.ArrowDtype)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

import pyarrow as pa

from qvp_client.ranges import as_utc

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

Output = Literal["pandas", "polars", "arrow"]
OUTPUTS: tuple[Output, ...] = ("pandas", "polars", "arrow")
# What a read returns, by ``output``.
Frame: TypeAlias = "pd.DataFrame | pl.DataFrame | pa.Table"
TIMESTAMP = pa.timestamp("us", tz="UTC")


def checked_output(output: str) -> Output:
    for known in OUTPUTS:
        if output == known:
            return known
    raise ValueError(f"output: one of {', '.join(OUTPUTS)}, not {output!r}")


def convert(table: pa.Table, output: Output) -> Frame:
    """``table`` as ``output`` asks."""
    if output == "arrow":
        return table
    if output == "polars":
        try:
            import polars
        except ImportError as error:
            raise ImportError(
                'output="polars" needs Polars: pip install "qvp-client[polars]"'
            ) from error
        return polars.from_arrow(table)
    return table.to_pandas()


def concatenated(tables: Sequence[pa.Table]) -> pa.Table:
    """The chunks' tables one after the other (their schemas unified: a chunk with no rows
    may type a column of nulls otherwise)."""
    if len(tables) == 1:
        return tables[0]
    return pa.concat_tables(tables, promote_options="default")


# --- JSON rows into Arrow -----------------------------------------------------------------
Column: TypeAlias = "tuple[str, pa.DataType]"


def decimal(precision: int, scale: int) -> pa.DataType:
    return pa.decimal128(precision, scale)


def table_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> pa.Table:
    """JSON rows as an Arrow table of the given columns (in that order; others left out):
    times parsed to UTC microseconds, decimal text to exact decimals."""
    arrays = [_array([row.get(name) for row in rows], kind) for name, kind in columns]
    return pa.Table.from_arrays(arrays, names=[name for name, _ in columns])


def _array(values: list[Any], kind: pa.DataType) -> pa.Array:
    if pa.types.is_timestamp(kind):
        # A page's few rows: parsed one by one (Arrow's strptime takes no fractions).
        return pa.array([None if v is None else as_utc(v, "time") for v in values], kind)
    if pa.types.is_decimal(kind):
        return pa.array([None if v is None else Decimal(str(v)) for v in values], kind)
    return pa.array(values, kind)


def frame_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column], output: Output) -> Frame:
    return convert(table_of(rows, columns), output)
