"""The client's parts that need no server: refusals' shapes read into problems, Retry-After,
ranges cut into chunks, values made JSON, links kept on the client's own host."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from qvp_client.encoding import duration, plain, records
from qvp_client.errors import Problem, problems_of
from qvp_client.http import RetryPolicy, Transport, retry_after_seconds
from qvp_client.ranges import as_utc, chunks

T = datetime(2024, 5, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # A batch: items by index, fields within.
        (
            {"1": {"confidence": ["too high"]}, "3": {"symbol": ["unknown", "inactive"]}},
            [
                Problem(1, "confidence", ("too high",)),
                Problem(3, "symbol", ("unknown", "inactive")),
            ],
        ),
        # The request's fields.
        ({"end": ["at most 1 days"]}, [Problem(None, "end", ("at most 1 days",))]),
        # Items inside a field (bars of a batch).
        ({"bars": {"4": {"high": ["below the low"]}}}, [Problem(4, "high", ("below the low",))]),
        # A rule of the database, for an item.
        (
            {"detail": "already booked", "rule": "exec_id_unique", "index": 2},
            [Problem(2, None, ("already booked",), "exec_id_unique")],
        ),
        # A list serializer's errors, one object per item.
        ([{}, {"price": ["must be positive"]}], [Problem(1, "price", ("must be positive",))]),
        ("a proxy's page", [Problem(None, None, ("a proxy's page",))]),
    ],
)
def test_refusals_are_read_into_problems(body, expected):
    assert problems_of(body) == expected


def test_retry_after_in_seconds_or_as_a_date():
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert retry_after_seconds("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None
    policy = RetryPolicy(attempts=3, backoff=1, factor=3, jitter=0, max_backoff=2)
    assert [policy.wait(n, None) for n in (1, 2, 3)] == [1.0, 2.0, None]


def test_a_range_is_cut_into_consecutive_chunks():
    found = chunks(T, T + timedelta(hours=10), timedelta(hours=4))
    assert found == [
        (T, T + timedelta(hours=4)),
        (T + timedelta(hours=4), T + timedelta(hours=8)),
        (T + timedelta(hours=8), T + timedelta(hours=10)),
    ]
    with pytest.raises(ValueError, match="before end"):
        chunks(T, T, timedelta(hours=1))
    assert as_utc("2024-05-13") == T
    assert as_utc(date(2024, 5, 13)) == T
    assert as_utc("2024-05-13T02:00:00+02:00") == T
    with pytest.raises(ValueError, match="start"):
        as_utc("yesterday", "start")


def test_values_are_made_json():
    assert duration(timedelta(days=1, hours=2, microseconds=5)) == "P1DT2H0M0.000005S"
    assert plain(Decimal("1.50")) == "1.50"
    assert plain(pd.Timestamp("2024-05-13T14:30:00.5Z")) == "2024-05-13T14:30:00.500000Z"
    assert plain([np.int64(3), np.float64("nan"), pd.NaT, pd.NA]) == [3, None, None, None]
    frame = pd.DataFrame({"ts": [pd.Timestamp(T)], "x": [1.5], "y": [pd.NA]})
    assert records(frame) == [{"ts": "2024-05-13T00:00:00Z", "x": 1.5, "y": None}]
    with pytest.raises(TypeError, match="item 0"):
        records([1])


def test_links_are_followed_on_the_clients_own_host():
    transport = Transport("https://qvp.example.com", "key")
    assert transport.url("bars/") == "https://qvp.example.com/api/v1/bars/"
    link = "http://elsewhere:8000/api/v1/bars/?cursor=abc"
    assert transport.url(link) == "https://qvp.example.com/api/v1/bars/?cursor=abc"


def test_a_long_download_of_one_chunk_shows_its_progress_after_a_while():
    from qvp_client.progress import LONG, wanted

    assert wanted(None, 1) == (True, LONG)  # tqdm is installed here
    assert wanted(None, 3) == (True, 0.0)
    assert wanted(False, 3) == (False, 0.0)
    assert wanted(True, 1) == (True, 0.0)
