"""Rows in memory take a file's road (``ingest_rows``, what POST /api/v1/bars/ writes with):
COPY, the same checks naming each bad row by its number, an Ingest record; and no temporary
file is written for them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from marketdata.ingest.pipeline import IngestOptions, ingest_rows
from marketdata.models import DailyBar, Ingest
from qvp_site.loading.refusals import IngestRefused
from tests.marketdata.conftest import START

HEADER = ("timestamp", "open", "high", "low", "close", "volume")
DAILY = IngestOptions(symbol="AAPL", kind=Ingest.Kind.BARS_1D)


def day(n: int, high: float = 11.0, volume: float | None = 100.0) -> list[object]:
    return [START + timedelta(days=n), 10.0, high, 9.0, 10.5, volume]


def test_rows_are_loaded_and_recorded_without_a_file(
    instrument, partitioned_for, no_temporary_files
):
    result = ingest_rows("api-batch-AAPL", HEADER, [day(0), day(1, volume=None)], DAILY)
    assert (result.rows_read, result.inserted) == (2, 2)
    assert list(DailyBar.objects.order_by("ts").values_list("volume", flat=True)) == [100, None]
    record = Ingest.objects.get()
    assert (record.file_name, record.path, record.status) == ("api-batch-AAPL", "", "loaded")
    assert len(record.sha256) == 64


def test_a_bad_row_is_refused_by_its_number_and_nothing_written(
    instrument, partitioned_for, no_temporary_files
):
    rows = [day(0), day(1, high=8.0), day(2), day(3, volume=-1.0)]
    with pytest.raises(IngestRefused) as refused:
        ingest_rows("api-batch-AAPL", HEADER, rows, DAILY)
    assert [row for row, _ in refused.value.rows] == [2, 4]
    message = str(refused.value)
    assert message.startswith("refused api-batch-AAPL: 2 bad rows, nothing written")
    assert "row 2: high below open, close or low" in message
    assert "row 4: negative volume" in message
    assert not DailyBar.objects.exists()
    assert Ingest.objects.get().status == "refused"


def test_rows_in_memory_cannot_set_bad_rows_aside(instrument):
    options = IngestOptions(symbol="AAPL", kind=Ingest.Kind.BARS_1D, skip_invalid=True)
    with pytest.raises(ValueError, match="no file beside which"):
        ingest_rows("api-batch-AAPL", HEADER, [day(0)], options)


def test_the_api_batch_writes_no_temporary_file(
    admin_client, instrument, partitioned_for, no_temporary_files, monkeypatch
):
    """POST /api/v1/bars/ with the serializer's checks gone: the load's checks refuse the bar
    by its item, from memory."""
    monkeypatch.setattr("marketdata.api.BatchBarSerializer.validate", lambda self, attrs: attrs)
    bars = [
        {"ts": (START + timedelta(days=n)).isoformat(), "open": 10, "high": high, "low": 9,
         "close": 10.5}
        for n, high in enumerate([11, 11, 8])
    ]  # fmt: skip
    body = {"symbol": "AAPL", "timeframe": "1d", "bars": bars}
    response = admin_client.post("/api/v1/bars/", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"bars": {"2": ["high below open, close or low"]}}
    body["bars"] = bars[:2]
    response = admin_client.post("/api/v1/bars/", body, content_type="application/json")
    assert (response.status_code, response.json()["inserted"]) == (201, 2)
