"""Reading a list in a bulk format in tests, and comparing it with the list's JSON pages."""

from __future__ import annotations

import io
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq


def bulk_table(client, url: str, params: dict, fmt: str = "arrow") -> pa.Table:
    """The list at ``url`` in ``fmt`` (arrow, parquet, csv) as an Arrow table."""
    response = client.get(url, {**params, "format": fmt})
    assert response.status_code == 200, response.content
    body = b"".join(response.streaming_content)
    if fmt == "arrow":
        return pa.ipc.open_stream(body).read_all()
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body))
    return pa_csv.read_csv(io.BytesIO(body))


def json_rows(client, url: str, params: dict) -> list[dict]:
    """Every row of the JSON list, page after page (numbered or cursor pages)."""
    rows: list[dict] = []
    response = client.get(url, {**params, "page_size": 5000})
    while True:
        assert response.status_code == 200, response.content
        page = response.json()
        rows.extend(page["results"])
        if not page.get("next"):
            return rows
        response = client.get(page["next"])


def as_json(value: Any) -> Any:
    """A value read from Arrow as the JSON list writes it."""
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def assert_same_rows(table: pa.Table, rows: list[dict], key: str = "id") -> None:
    """``table`` holds the JSON ``rows``: the same columns, and the same values row by row
    (matched by ``key``, the lists' orders may differ)."""
    assert table.column_names == list(rows[0]), (table.column_names, list(rows[0]))
    read = {row[key]: {k: as_json(v) for k, v in row.items()} for row in table.to_pylist()}
    expected = {row[key]: row for row in rows}
    assert read.keys() == expected.keys()
    for name, row in expected.items():
        for column, value in row.items():
            got = read[name][column]
            if isinstance(value, str) and isinstance(got, str) and value.endswith("Z"):
                got, value = _moment(got), _moment(value)
            assert got == value, (name, column, got, value)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
