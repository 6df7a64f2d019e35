"""Market data in the bulk formats (Arrow, Parquet, CSV): the ticks list, the buckets and the
bars read adjusted or as known at a moment give the JSON's rows, with the same parameters.

AAPL trades on Tuesday, splits 2 for 1 on Wednesday (ex-date 2024-05-15) and pays a cash
dividend of 1.10 ex Thursday (as in test_adjusted_reads). Its bars and ticks are learnt two
hours before the test (``now``), the actions at its start: ``known_at`` an hour ago (``moment``)
sees the rows and no action. MSFT's rows lie in the same times, for no AAPL read to return.

The reader opens its own connection: the rows must be committed (``transaction=True``).
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from marketdata.models import DailyBar, Instrument, MinuteBar, Tick
from qvp_site.db import roles
from qvp_site.db.aggregates import refresh_table
from tests.bulk import as_json, bulk_table, json_rows
from tests.clients import client_of
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db(transaction=True)

S, M, H, DAY = timedelta(seconds=1), timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
TUESDAY, WEDNESDAY, THURSDAY = START + DAY, START + 2 * DAY, START + 3 * DAY
OPEN = 14 * H + 30 * M  # 14:30 UTC, the US open
EX_SPLIT, EX_DIVIDEND = date(2024, 5, 15), date(2024, 5, 16)

# (ts, open, high, low, close, volume): minute bars either side of the split and dividend,
# two hours apart on Tuesday so that hourly buckets have a gap.
MINUTES = [
    (TUESDAY + OPEN, 100, 110, 90, 104, 1000),
    (TUESDAY + OPEN + M, 104, 106, 100, 102, 500),
    (TUESDAY + OPEN + 2 * H, 102, 105, 101, 103, None),
    (WEDNESDAY + OPEN, 52, 53, 49, 50, 3000),
    (WEDNESDAY + OPEN + M, 50, 56, 50, 55, 1000),
    (THURSDAY + OPEN, 54, 61, 54, 60, 2000),
]
DAYS = [
    (TUESDAY, 100, 110, 90, 104, 1500),
    (WEDNESDAY, 52, 56, 49, 55, 4000),
    (THURSDAY, 54, 61, 54, 60, 2000),
]
WEEK = {"start": "2024-05-13T00:00:00Z", "end": "2024-05-20T00:00:00Z"}
TICKS_URL, BARS_URL = "/api/v1/ticks/", "/api/v1/bars/"
BUCKETS_URL = "/api/v1/bars/buckets/"


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def state(instrument: Instrument, kind: str, ex_date: date, ratio=None, amount=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            [instrument.id, kind, ex_date, ratio, amount, "USD" if amount else None],
        )


def delete(table: str, instrument: Instrument, start: datetime, end: datetime) -> None:
    """Delete rows as the API does: a 'deleted' revision each, readable as known before."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_delete(%s::regclass, %s, %s, %s)", [table, instrument.id, start, end]
        )


@pytest.fixture
def now(db) -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


@pytest.fixture
def moment(now) -> datetime:
    """After the rows were learnt, before the actions were."""
    return now - H


def _bars(model, instrument: Instrument, rows: list[tuple], learnt: datetime, scale: float = 1):
    model.objects.bulk_create(
        model(
            instrument=instrument,
            ts=ts,
            open=o * scale,
            high=h * scale,
            low=lo * scale,
            close=c * scale,
            volume=v,
            known_from=learnt,
        )
        for ts, o, h, lo, c, v in rows
    )


def _ticks(instrument: Instrument, learnt: datetime, price: float) -> None:
    """Trades, three of them at one time (told apart by sequence), and quotes."""
    at = TUESDAY + OPEN
    trades = [(at, 0, "buy"), (at, 1, "sell"), (at, 2, ""), (at + S, 0, "buy"), (at + 3 * S, 0, "")]
    Tick.objects.bulk_create(
        [
            *(
                Tick(
                    instrument=instrument,
                    ts=ts,
                    sequence=sequence,
                    price=price + sequence / 10,
                    size=100 + sequence,
                    side=side,
                    known_from=learnt,
                )
                for ts, sequence, side in trades
            ),
            *(
                Tick(
                    instrument=instrument,
                    ts=at + n * S,
                    sequence=1,
                    kind="quote",
                    bid=price - 0.01 * n,
                    ask=price + 0.01 * n,
                    bid_size=10 * n,
                    ask_size=None if n == 2 else 5.5,
                    known_from=learnt,
                )
                for n in (1, 2)
            ),
        ]
    )


@pytest.fixture
def aapl(partitioned_for, now) -> Instrument:
    """AAPL's bars and ticks (learnt two hours ago), its split and dividend (learnt now), and
    MSFT's rows at the same times."""
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    msft = Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")
    earlier = now - 2 * H
    for instrument, scale in ((aapl, 1), (msft, 4)):
        _bars(MinuteBar, instrument, MINUTES, earlier, scale)
        _bars(DailyBar, instrument, DAYS, earlier, scale)
        _ticks(instrument, earlier, 10.0 * scale)
    state(aapl, "split", EX_SPLIT, ratio=2)
    state(aapl, "cash_dividend", EX_DIVIDEND, amount="1.10")
    return aapl


@pytest.fixture
def api(db):
    return client_of(get_user_model().objects.create_user("quant"))


def same_in_order(table: pa.Table, rows: list[dict]) -> None:
    """``table`` holds the JSON ``rows`` in their order: the same columns and values (times
    compared as moments)."""
    assert rows, "the comparison needs rows"
    assert table.column_names == list(rows[0])
    read = [{k: as_json(v) for k, v in row.items()} for row in table.to_pylist()]
    assert [_moments(r) for r in read] == [_moments(r) for r in rows]


def _moments(row: dict) -> dict:
    return {
        k: datetime.fromisoformat(v.replace("Z", "+00:00"))
        if isinstance(v, str) and v.endswith("Z")
        else v
        for k, v in row.items()
    }


def buckets_json(client, params: dict) -> dict:
    response = client.get(BUCKETS_URL, params)
    assert response.status_code == 200, response.content
    return response.json()


def read(body: bytes, fmt: str, schema: pa.Schema | None = None) -> pa.Table:
    if fmt == "arrow":
        return pa.ipc.open_stream(body).read_all()
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(body))
    options = pa_csv.ConvertOptions(column_types=schema) if schema is not None else None
    return pa_csv.read_csv(io.BytesIO(body), convert_options=options)


def bulk_get(client, url: str, params: dict, fmt: str) -> tuple[bytes, Any]:
    response = client.get(url, {**params, "format": fmt})
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content), response


# --- Ticks -----------------------------------------------------------------------------------
TICKS = {"symbol": "AAPL", **WEEK}


def test_ticks_in_arrow_are_the_json_lists_rows_in_time_and_sequence_order(aapl, api):
    table = bulk_table(api, TICKS_URL, TICKS)
    rows = json_rows(api, TICKS_URL, TICKS)
    same_in_order(table, rows)
    assert table.num_rows == 7
    # Three trades at one time come in sequence order, the quote after them.
    assert [(r["ts"], r["sequence"]) for r in table.slice(0, 4).to_pylist()] == [
        (TUESDAY + OPEN, 0),
        (TUESDAY + OPEN, 1),
        (TUESDAY + OPEN, 2),
        (TUESDAY + OPEN + S, 0),
    ]
    schema = table.schema
    assert schema.field("ts").type == pa.timestamp("us", tz="UTC")
    assert schema.field("sequence").type == pa.int64()
    assert schema.field("kind").type == pa.string()
    assert schema.field("ask_size").type == pa.float64()


def test_ticks_in_parquet_and_csv_are_the_same_rows(aapl, api):
    arrow = bulk_table(api, TICKS_URL, TICKS)
    body, response = bulk_get(api, TICKS_URL, TICKS, "parquet")
    assert read(body, "parquet").equals(arrow)
    body, response = bulk_get(api, TICKS_URL, TICKS, "csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert (
        'filename="tick-20240513T000000Z-20240520T000000Z.csv"' in response["Content-Disposition"]
    )
    assert read(body, "csv", arrow.schema).equals(arrow)


def test_the_ticks_range_and_symbol_narrow_the_rows(aapl, api):
    narrow = {
        "symbol": "AAPL",
        "start": iso(TUESDAY + OPEN + S),
        "end": iso(TUESDAY + OPEN + 3 * S),
    }
    table = bulk_table(api, TICKS_URL, narrow)
    same_in_order(table, json_rows(api, TICKS_URL, narrow))
    assert [(r["ts"], r["sequence"]) for r in table.to_pylist()] == [
        (TUESDAY + OPEN + S, 0),
        (TUESDAY + OPEN + S, 1),
        (TUESDAY + OPEN + 2 * S, 1),
    ]
    msft = bulk_table(api, TICKS_URL, {**TICKS, "symbol": "MSFT"})
    assert min(msft.column("ask").drop_null().to_pylist()) > 39  # MSFT's own rows only


def test_ticks_known_at_a_moment_in_arrow_are_the_jsons(aapl, api, moment):
    delete("marketdata_tick", aapl, TUESDAY + OPEN, TUESDAY + OPEN + S)  # after the moment
    present = bulk_table(api, TICKS_URL, TICKS)
    assert present.num_rows == 4
    known = {**TICKS, "known_at": iso(moment)}
    table = bulk_table(api, TICKS_URL, known)
    same_in_order(table, json_rows(api, TICKS_URL, known))
    assert table.num_rows == 7  # the deleted ticks, as known before


def test_the_tick_revisions_are_not_offered_in_a_bulk_format(aapl, api):
    response = api.get("/api/v1/ticks/revisions/", {**TICKS, "format": "arrow"})
    assert response.status_code == 406
    assert response["Content-Type"] == "application/json"


def test_a_bulk_read_of_ticks_needs_a_range(aapl, api):
    response = api.get(TICKS_URL, {"symbol": "AAPL", "format": "parquet"})
    assert response.status_code == 400
    assert set(response.json()) == {"start", "end"}


def test_ticks_are_read_in_the_stream_not_by_django(aapl, api, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        assert bulk_table(api, TICKS_URL, TICKS).num_rows == 7


# --- Bars adjusted and as known at a moment --------------------------------------------------
@pytest.mark.parametrize("timeframe", ["1m", "1d"])
@pytest.mark.parametrize("adjustment", ["raw", "split", "total_return"])
@pytest.mark.parametrize("known", [False, True])
def test_bars_adjusted_or_known_at_a_moment_in_arrow_are_the_jsons(
    aapl, api, moment, timeframe, adjustment, known
):
    """The adjusted read is a function of the table with parameters (adjustment, moment,
    the range's start): composed as literals, it reads as the JSON's bound ones."""
    delete("marketdata_minutebar", aapl, THURSDAY, THURSDAY + DAY)  # after the moment
    params = {"symbol": "AAPL", "timeframe": timeframe, "adjustment": adjustment, **WEEK}
    if known:
        params["known_at"] = iso(moment)
    table = bulk_table(api, BARS_URL, params)
    rows = json_rows(api, BARS_URL, params)
    same_in_order(table, rows)
    closes = table.column("close").to_pylist()
    # Tuesday's first close: 104 as traded, halved for the split, times 1 - 1.10/55 for the
    # dividend; known at the moment, before the actions were learnt, as traded.
    expected = {"raw": 104, "split": 52, "total_return": 52 * (1 - 1.10 / 55)}
    assert closes[0] == pytest.approx(104 if known else expected[adjustment])
    # Thursday's minute bar was deleted after the moment: there as known then only.
    assert len(closes) == {"1m": 5 + known, "1d": 3}[timeframe]


# --- Buckets ---------------------------------------------------------------------------------
def bucket_params(**params: Any) -> dict:
    return {"symbol": "AAPL", "width": "1h", **WEEK, **params}


BUCKET_CASES = [
    {},
    {"gapfill": "true", "start": iso(TUESDAY), "end": iso(WEDNESDAY)},
    {"width": "90 minutes"},
    {"width": "1d", "adjustment": "split"},
    {"width": "1d", "adjustment": "total_return", "gapfill": "true"},
    {"width": "1mo", "adjustment": "total_return"},
    {"width": "1w", "timeframe": "1d", "adjustment": "split"},
]


@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize("case", BUCKET_CASES)
def test_buckets_in_arrow_are_the_jsons_rows(aapl, api, moment, case, known):
    delete("marketdata_minutebar", aapl, THURSDAY, THURSDAY + DAY)  # after the moment
    params = bucket_params(**case)
    if known:
        params["known_at"] = iso(moment)
    table = bulk_table(api, BUCKETS_URL, params)
    rows = buckets_json(api, params)["buckets"]
    same_in_order(table, rows)
    assert table.column_names == ["bucket", "open", "high", "low", "close", "volume", "bar_count"]


def test_bucket_columns_keep_their_types_and_empty_buckets_count_no_bars(aapl, api):
    params = bucket_params(gapfill="true", start=iso(TUESDAY), end=iso(WEDNESDAY))
    table = bulk_table(api, BUCKETS_URL, params)
    assert table.num_rows == 24
    assert table.schema == pa.schema(
        [
            ("bucket", pa.timestamp("us", tz="UTC")),
            *((name, pa.float64()) for name in ("open", "high", "low", "close", "volume")),
            ("bar_count", pa.int64()),
        ]
    )
    by_hour = {row["bucket"]: row for row in table.to_pylist()}
    assert by_hour[TUESDAY + 14 * H] == {
        "bucket": TUESDAY + 14 * H,
        "open": 100.0,
        "high": 110.0,
        "low": 90.0,
        "close": 102.0,
        "volume": 1500.0,
        "bar_count": 2,
    }
    assert by_hour[TUESDAY + 15 * H] == {
        "bucket": TUESDAY + 15 * H,
        **dict.fromkeys(("open", "high", "low", "close", "volume")),
        "bar_count": 0,
    }
    assert by_hour[TUESDAY + 16 * H]["volume"] is None  # a bar without a volume


def test_buckets_in_parquet_and_csv_are_the_same_rows(aapl, api):
    params = bucket_params(gapfill="true", width="4h")
    arrow = bulk_table(api, BUCKETS_URL, params)
    assert arrow.num_rows == 42
    body, response = bulk_get(api, BUCKETS_URL, params, "parquet")
    assert response["Content-Type"] == "application/vnd.apache.parquet"
    assert read(body, "parquet").equals(arrow)
    body, response = bulk_get(api, BUCKETS_URL, params, "csv")
    assert read(body, "csv", arrow.schema).equals(arrow)
    assert body.startswith(b'"bucket","open","high","low","close","volume","bar_count"\n')
    name = 'filename="buckets-bar-20240513T000000Z-20240520T000000Z.csv"'
    assert name in response["Content-Disposition"]


def test_buckets_may_be_asked_in_a_bulk_format_by_accept(aapl, api):
    response = api.get(
        BUCKETS_URL, bucket_params(), HTTP_ACCEPT="application/vnd.apache.arrow.stream"
    )
    assert response.status_code == 200
    table = pa.ipc.open_stream(b"".join(response.streaming_content)).read_all()
    assert table.num_rows == len(buckets_json(api, bucket_params())["buckets"]) == 4


@pytest.fixture
def aggregated(aapl):
    """The hourly and daily aggregates refreshed over the bars; emptied again afterwards (the
    flush after a transactional test empties model tables only)."""
    refresh_table("marketdata_minutebar", START, START + 7 * DAY)
    yield aapl
    MinuteBar.objects.all().delete()
    refresh_table("marketdata_minutebar", START, START + 7 * DAY)


@pytest.mark.parametrize(
    ("width", "source"),
    [
        ("1h", "marketdata_minutebar_1h"),
        ("2h", "marketdata_minutebar_1h"),
        ("1d", "marketdata_minutebar_1d"),
    ],
)
@pytest.mark.parametrize("gapfill", ["false", "true"])
def test_buckets_from_an_aggregate_in_arrow_are_the_jsons(aggregated, api, width, source, gapfill):
    params = bucket_params(width=width, gapfill=gapfill)
    body = buckets_json(api, params)
    assert body["source"] == source
    same_in_order(bulk_table(api, BUCKETS_URL, params), body["buckets"])


def test_a_bulk_read_of_buckets_is_bounded_as_every_bulk_read(aapl, api, settings):
    settings.QVP_API_BULK_MAX_RANGE = timedelta(days=3)
    assert buckets_json(api, bucket_params())["buckets"]  # JSON: as before
    response = api.get(BUCKETS_URL, {**bucket_params(), "format": "arrow"})
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"end": ["at most 3 days after start (QVP_API_BULK_MAX_DAYS)"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"width": "fortnightly"}, "width"),
        ({"symbol": "NOPE"}, "symbol"),
        ({"adjustment": "dividends"}, "adjustment"),
        ({"known_at": "yesterday"}, "known_at"),
    ],
)
def test_bad_bucket_parameters_in_a_bulk_format_are_a_400_naming_them(aapl, api, params, field):
    response = api.get(BUCKETS_URL, {**bucket_params(**params), "format": "csv"})
    assert response.status_code == 400, response.content
    assert response["Content-Type"] == "application/json"
    assert field in response.json()


def test_the_bar_revisions_are_not_offered_in_a_bulk_format(aapl, api):
    response = api.get("/api/v1/bars/revisions/", {"symbol": "AAPL", **WEEK, "format": "csv"})
    assert response.status_code == 406


def test_nobody_reads_buckets_without_logging_in(aapl, client):
    response = client.get(BUCKETS_URL, {**bucket_params(), "format": "arrow"})
    assert response.status_code in (401, 403)
    assert response["Content-Type"] == "application/json"


def test_buckets_are_read_in_the_stream_not_by_django(aapl, api, django_assert_max_num_queries):
    with django_assert_max_num_queries(12):
        table = bulk_table(api, BUCKETS_URL, bucket_params(adjustment="split", gapfill="true"))
    assert table.num_rows == 7 * 24


# --- As the application's role ---------------------------------------------------------------
@pytest.fixture
def as_app_role(transactional_db, app_role_password):
    """Django's connection as trading_app (the reader mirrors its role), reset afterwards."""
    yield lambda: _set_role(roles.APP_ROLE)
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def _set_role(role: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {role}")


def test_the_app_role_reads_the_same_rows_as_known_and_adjusted(aapl, api, moment, as_app_role):
    """The functions the reads call (as known at a moment, adjusted) are the app role's too."""
    reads = [
        (TICKS_URL, {**TICKS, "known_at": iso(moment)}),
        (BARS_URL, {"symbol": "AAPL", "adjustment": "total_return", **WEEK}),
        (BARS_URL, {"symbol": "AAPL", "adjustment": "split", "known_at": iso(moment), **WEEK}),
        (BUCKETS_URL, bucket_params(width="1d", adjustment="total_return", gapfill="true")),
        (BUCKETS_URL, bucket_params(known_at=iso(moment))),
    ]
    as_owner = [bulk_table(api, url, params) for url, params in reads]
    as_app_role()
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user::text")
        assert cursor.fetchone()[0] == roles.APP_ROLE
    for (url, params), expected in zip(reads, as_owner, strict=True):
        assert expected.num_rows
        assert bulk_table(api, url, params).equals(expected), (url, params)


def test_times_survive_to_the_microsecond(aapl, api):
    Tick.objects.create(
        instrument=aapl,
        ts=datetime(2024, 5, 14, 20, 0, 0, 123457, tzinfo=UTC),
        sequence=9,
        price=11.0,
        size=1,
    )
    table = bulk_table(api, TICKS_URL, TICKS)
    assert table.column("ts").to_pylist()[-1] == datetime(2024, 5, 14, 20, 0, 0, 123457, tzinfo=UTC)
