"""Bars through the client's Arrow reads: pandas, Polars and Arrow with the API's types and
the JSON API's values; a range over the server's limit read in chunks, none doubled or
missed; buckets cut by a chunk's edge put together again; bars written in batches."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from qvp_client import Refused

from marketdata.models import Tick
from qvp_site.db import partitions
from tests.client.conftest import MINUTES, START, json_rows

END = START + timedelta(minutes=MINUTES)
COLUMNS = ["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]


def test_bars_come_as_arrow_pandas_and_polars_with_the_json_apis_values(qvp, api):
    expected = json_rows(api, "bars/", {"symbol": "AAPL", "start": START, "end": END})
    assert len(expected) == MINUTES

    table = qvp.bars("AAPL", START, END, output="arrow")
    assert isinstance(table, pa.Table)
    assert table.column_names == COLUMNS
    assert table.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("close").type == pa.float64()
    assert pa.types.is_integer(table.schema.field("trade_count").type)
    rows = table.to_pylist()
    assert [row["ts"] for row in rows] == [pd.Timestamp(r["ts"]) for r in expected]
    for name in COLUMNS[1:]:
        assert [row[name] for row in rows] == [r[name] for r in expected], name

    frame = qvp.bars("AAPL", START, END)  # pandas, the default
    assert isinstance(frame, pd.DataFrame)
    assert str(frame["ts"].dtype) == "datetime64[us, UTC]"
    assert frame["close"].dtype == "float64"
    assert frame["close"].tolist() == [r["close"] for r in expected]
    assert frame["volume"].isna().sum() == sum(r["volume"] is None for r in expected)

    polars = qvp.bars("AAPL", START, END, output="polars")
    assert isinstance(polars, pl.DataFrame)
    assert polars.schema["ts"] == pl.Datetime("us", "UTC")
    assert polars["high"].to_list() == [r["high"] for r in expected]


def test_a_range_over_the_servers_limit_is_read_in_chunks_none_doubled_or_missed(
    qvp, api, settings
):
    settings.QVP_API_BULK_MAX_RANGE = timedelta(days=1)
    # The default chunk (366 days) is over this server's limit: refused, naming end.
    with pytest.raises(Refused) as refused:
        qvp.bars("AAPL", START, END)
    assert [p.field for p in refused.value.problems] == ["end"]

    # Chunks of 7 hours: 12 requests, edges inside the bars' minutes.
    table = qvp.bars("AAPL", START, END, chunk=timedelta(hours=7), output="arrow")
    times = table["ts"].to_pylist()
    assert len(times) == MINUTES == len(set(times))
    assert times == sorted(times)
    assert all(b - a == timedelta(minutes=1) for a, b in itertools.pairwise(times))
    expected = json_rows(api, "bars/", {"symbol": "AAPL", "start": START, "end": END})
    assert table["close"].to_pylist() == [r["close"] for r in expected]


def test_a_progress_bar_counts_chunks_and_bytes(qvp, capsys):
    qvp.bars("AAPL", START, END, chunk=timedelta(days=1), progress=True)
    shown = capsys.readouterr().err
    assert "4/4" in shown
    assert "B" in shown


def test_buckets_cut_by_a_chunks_edge_are_put_together_again(qvp, api):
    whole = qvp.buckets("AAPL", START, END, "1h", output="arrow")
    assert whole.num_rows == MINUTES // 60 + 1
    # Chunks of 90 minutes: every other chunk edge cuts an hour in two.
    cut = qvp.buckets("AAPL", START, END, "1h", chunk=timedelta(minutes=90), output="arrow")
    assert cut.to_pylist() == whole.to_pylist()
    assert cut.schema == whole.schema


def test_ticks_come_as_the_json_apis_rows(qvp, api, world):
    partitions.prepare_load("marketdata_tick", START, START + timedelta(days=1))
    Tick.objects.bulk_create(
        Tick(
            instrument=world["aapl"],
            ts=START + timedelta(seconds=n // 2, microseconds=7),  # two ticks a moment
            sequence=n,
            kind="trade" if n % 3 else "quote",
            price=None if n % 3 == 0 else 100 + n / 8,
            size=None if n % 3 == 0 else 10 * n,
            bid=100 + n / 8 - 0.01 if n % 3 == 0 else None,
            ask=100 + n / 8 + 0.01 if n % 3 == 0 else None,
        )
        for n in range(9)
    )
    end = START + timedelta(hours=1)
    expected = json_rows(api, "ticks/", {"symbol": "AAPL", "start": START, "end": end})
    table = qvp.ticks("AAPL", START, end, output="arrow")
    assert table.column_names == list(expected[0])
    assert table["sequence"].to_pylist() == list(range(9))
    for name in ("kind", "price", "size", "bid", "ask"):
        assert table[name].to_pylist() == [r[name] for r in expected], name
    assert table["ts"].to_pylist() == [pd.Timestamp(r["ts"]) for r in expected]
