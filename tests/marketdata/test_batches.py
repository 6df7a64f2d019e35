"""POST /api/v1/bars/: a JSON batch through the same checks and upsert as a file."""

from __future__ import annotations

import pytest

from marketdata.models import Ingest, MinuteBar

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/api/v1/bars/"


def item(minute: int, **change) -> dict:
    bar = {
        "ts": f"2024-05-13T14:{minute:02d}:00Z",
        "open": 10.0,
        "high": 11.0,
        "low": 9.0,
        "close": 10.5,
        "volume": 100,
    }
    return {**bar, **change}


@pytest.fixture
def api(admin_client, instrument, partitioned_for):
    return admin_client


def post(client, bars, symbol="AAPL"):
    return client.post(URL, {"symbol": symbol, "bars": bars}, content_type="application/json")


def test_a_batch_is_written_and_a_repeat_changes_nothing(api):
    bars = [item(0), item(1), item(2, close=10.9)]
    first = post(api, bars)
    assert first.status_code == 201, first.json()
    assert (first.json()["inserted"], first.json()["updated"]) == (3, 0)
    again = post(api, bars)
    assert (again.json()["inserted"], again.json()["updated"], again.json()["unchanged"]) == (
        0,
        0,
        3,
    )
    changed = post(api, [item(1, close=10.8)])
    assert changed.json()["updated"] == 1
    assert MinuteBar.objects.get(ts="2024-05-13T14:01:00Z").close == 10.8
    assert Ingest.objects.filter(file_name__startswith="api-batch-AAPL-").count() == 3


def test_a_bad_batch_is_refused_whole_with_the_index_and_field_of_each_bad_item(api):
    bars = [item(0), item(1, high=10.2), item(2, low=-1.0), item(3, volume=-5), item(4, open="NaN")]
    response = post(api, bars)
    assert response.status_code == 400
    errors = response.json()["bars"]
    assert set(errors) == {"1", "2", "3", "4"}
    assert "high" in errors["1"]
    assert "low" in errors["2"]
    assert "volume" in errors["3"]
    assert "open" in errors["4"]
    assert MinuteBar.objects.count() == 0


def test_a_repeated_time_names_both_items(api):
    response = post(api, [item(0), item(1), item(0, close=10.1)])
    assert response.status_code == 400
    assert "repeats the time of item 0" in str(response.json()["bars"]["2"])
    assert MinuteBar.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"symbol": "NOPE", "bars": [item(0)]}, "symbol"),
        ({"symbol": "AAPL", "bars": []}, "bars"),
        ({"symbol": "AAPL", "timeframe": "5m", "bars": [item(0)]}, "timeframe"),
        ({"symbol": "AAPL", "bars": [{"ts": "yesterday", "open": 1}]}, "bars"),
    ],
)
def test_bad_requests_name_the_field(api, body, field):
    response = api.post(URL, body, content_type="application/json")
    assert response.status_code == 400
    assert field in response.json()


def test_anonymous_batches_are_refused(client, instrument):
    assert post(client, [item(0)]).status_code in (401, 403)


def test_the_database_checks_still_name_the_item_when_the_serializer_lets_a_row_through(
    api, monkeypatch
):
    monkeypatch.setattr("marketdata.api.BatchBarSerializer.validate", lambda self, attrs: attrs)
    response = post(api, [item(0), item(1), item(2, high=10.2)])
    assert response.status_code == 400
    assert list(response.json()["bars"]) == ["2"]
    assert "high" in response.json()["bars"]["2"][0]
    assert MinuteBar.objects.count() == 0
