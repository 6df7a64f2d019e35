"""Reads adjusted for corporate actions through the doors: the bars list, the buckets and the
latest prices of the API (``adjustment=raw|split|total_return``), with ``known_at``, and the
plan of a one-instrument adjusted read.

AAPL trades 100-110 on Tuesday, splits 2 for 1 on Wednesday (ex-date 2024-05-15) and trades
49-56 then; a cash dividend of 1.10 goes ex on Thursday, after a close of 55. Split-adjusted,
Tuesday's prices are halved (and its volumes doubled); total-return-adjusted, everything
before Thursday is times 1 - 1.10 / 55 = 0.98 besides.

Each test runs in one transaction: the bars are learnt two hours before its start (``now``),
the actions at its start, so ``known_at`` an hour ago sees the bars and no action.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection

from marketdata import adjusting
from marketdata.buckets import BucketRequest, bucketed, serving_aggregate
from marketdata.models import DailyBar, Instrument, MinuteBar
from marketdata.prices import latest_prices
from qvp_site.db import engine
from qvp_site.db.intervals import parse_interval
from tests.clients import client_of
from tests.marketdata.conftest import START

# Every test by both roads of the factors (tests/fixtures/marketdata.py).
pytestmark = pytest.mark.usefixtures("factors_road")

M, H, DAY = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)
TUESDAY, WEDNESDAY, THURSDAY = START + DAY, START + 2 * DAY, START + 3 * DAY
EX_SPLIT, EX_DIVIDEND = date(2024, 5, 15), date(2024, 5, 16)
OPEN = 14 * H + 30 * M  # 14:30 UTC, the US open
TR = 1 - 1.10 / 55  # the dividend's factor: 0.98

# (ts, open, high, low, close, volume): minute bars two days either side of the split.
MINUTES = [
    (TUESDAY + OPEN, 100, 110, 90, 104, 1000),
    (TUESDAY + OPEN + M, 104, 106, 100, 102, 500),
    (WEDNESDAY + OPEN, 52, 53, 49, 50, 3000),
    (WEDNESDAY + OPEN + M, 50, 56, 50, 55, 1000),
    (THURSDAY + OPEN, 54, 61, 54, 60, 2000),
]
DAYS = [
    (TUESDAY, 100, 110, 90, 104, 1500),
    (WEDNESDAY, 52, 56, 49, 55, 4000),
    (THURSDAY, 54, 61, 54, 60, 2000),
]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def state(instrument: Instrument, kind: str, ex_date: date, ratio=None, amount=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            [instrument.id, kind, ex_date, ratio, amount, "USD" if amount else None],
        )


@pytest.fixture
def now(db) -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


@pytest.fixture
def aapl(partitioned_for, now) -> Instrument:
    """AAPL's bars (learnt two hours ago), its split and its dividend (learnt now)."""
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    earlier = now - 2 * H
    for model, rows in ((MinuteBar, MINUTES), (DailyBar, DAYS)):
        model.objects.bulk_create(
            model(
                instrument=aapl,
                ts=ts,
                open=o,
                high=h,
                low=lo,
                close=c,
                volume=v,
                known_from=earlier,
            )
            for ts, o, h, lo, c, v in rows
        )
    state(aapl, "split", EX_SPLIT, ratio=2)
    state(aapl, "cash_dividend", EX_DIVIDEND, amount="1.10")
    return aapl


@pytest.fixture
def api(db):
    return client_of(get_user_model().objects.create_user("quant"))


def get(api, url: str, **params) -> dict:
    response = api.get(url, params)
    assert response.status_code == 200, response.content
    return response.json()


def ohlcv(row: dict) -> tuple:
    return tuple(round(row[k], 9) for k in ("open", "high", "low", "close", "volume"))


def bars(api, timeframe: str, adjustment: str | None, **params) -> list[tuple]:
    query = {"symbol": "AAPL", "timeframe": timeframe, **params}
    if adjustment is not None:
        query["adjustment"] = adjustment
    return [ohlcv(r) for r in get(api, "/api/v1/bars/", **query)["results"]]


def scaled(rows: list[tuple], before: datetime, price: float, volume: float = 1) -> list[tuple]:
    """``rows`` (ts, o, h, l, c, v) as OHLCV, those before ``before`` scaled."""
    return [
        tuple(round(x, 9) for x in (*(p * price for p in r[1:5]), r[5] * volume))
        if r[0] < before
        else tuple(float(x) for x in r[1:])
        for r in rows
    ]


SPLIT_MINUTES = scaled(MINUTES, WEDNESDAY, 0.5, 2)
SPLIT_DAYS = scaled(DAYS, WEDNESDAY, 0.5, 2)


def total_return(rows: list[tuple]) -> list[tuple]:
    """Split-adjusted rows, those before Thursday's ex-date times the dividend's factor."""
    return [
        (*(round(p * TR, 9) for p in r[:4]), r[4]) if i < len(rows) - 1 else r
        for i, r in enumerate(rows)
    ]


# --- Bars ------------------------------------------------------------------------------------
@pytest.mark.parametrize("timeframe", ["1m", "1d"])
def test_bars_with_each_adjustment(api, aapl, timeframe):
    raw = [tuple(float(x) for x in r[1:]) for r in (MINUTES if timeframe == "1m" else DAYS)]
    split = SPLIT_MINUTES if timeframe == "1m" else SPLIT_DAYS
    assert bars(api, timeframe, None) == raw  # the default: as traded
    assert bars(api, timeframe, "raw") == raw
    assert bars(api, timeframe, "split") == split
    assert bars(api, timeframe, "total_return") == total_return(split)


def test_adjusted_bars_page_by_cursor_and_keep_the_range(api, aapl):
    first = get(api, "/api/v1/bars/", symbol="AAPL", adjustment="split", page_size=2)
    assert [ohlcv(r) for r in first["results"]] == SPLIT_MINUTES[:2]
    second = api.get(first["next"]).json()
    assert [ohlcv(r) for r in second["results"]] == SPLIT_MINUTES[2:4]
    assert (
        bars(api, "1m", "split", start=iso(TUESDAY + OPEN + M), end=iso(THURSDAY))
        == (SPLIT_MINUTES[1:4])
    )


def test_bars_known_at_a_moment_are_adjusted_by_the_actions_known_then(api, aapl, now):
    """An hour ago the bars were known and the split not: the split-adjusted read then is the
    raw one; now it is split-adjusted."""
    raw = [tuple(float(x) for x in r[1:]) for r in MINUTES]
    assert bars(api, "1m", "split", known_at=iso(now - H)) == raw
    assert bars(api, "1m", "total_return", known_at=iso(now - H)) == raw
    assert bars(api, "1m", "split", known_at=iso(now)) == SPLIT_MINUTES
    # Before the bars were learnt: nothing, adjusted or not.
    assert bars(api, "1m", "split", known_at=iso(now - 3 * H)) == []


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/api/v1/bars/", {"symbol": "AAPL"}),
        ("/api/v1/bars/buckets/", {"symbol": "AAPL", "width": "1d", "start": iso(START),
                                   "end": iso(START + 7 * DAY)}),
        ("/api/v1/prices/latest/", {"symbols": "AAPL"}),
    ],
)  # fmt: skip
@pytest.mark.parametrize("bad", ["adjusted", "SPLIT", "raw,split", "total return"])
def test_a_bad_adjustment_is_a_400_naming_it(api, aapl, path, params, bad):
    response = api.get(path, {**params, "adjustment": bad})
    assert response.status_code == 400, response.content
    assert "adjustment" in response.json()


# --- Buckets ---------------------------------------------------------------------------------
def buckets(api, adjustment: str, width: str = "1w", **params) -> dict:
    query = {
        "symbol": "AAPL",
        "width": width,
        "start": iso(START),
        "end": iso(START + 7 * DAY),
        "adjustment": adjustment,
        **params,
    }
    return get(api, "/api/v1/bars/buckets/", **query)


def test_a_bucket_spanning_the_ex_date_is_computed_from_the_adjusted_bars(api, aapl):
    """The week holds Tuesday (before the split), Wednesday and Thursday: split-adjusted, its
    open is Tuesday's first adjusted bar's, its high and low the adjusted bars' extremes, its
    volume the adjusted volumes' sum. Not the raw bucket times a factor: that would halve
    Wednesday's low and Thursday's high and close too."""
    raw = buckets(api, "raw")
    assert raw["adjustment"] == "raw"
    assert [ohlcv(b) for b in raw["buckets"]] == [(100, 110, 49, 60, 7500)]
    split = buckets(api, "split")
    assert (split["source"], split["adjustment"]) == ("marketdata_minutebar_adjusted", "split")
    assert [ohlcv(b) for b in split["buckets"]] == [(50, 61, 45, 60, 9000)]
    assert split["buckets"][0]["bar_count"] == 5
    total = buckets(api, "total_return")
    assert [ohlcv(b) for b in total["buckets"]] == [
        (round(50 * TR, 9), 61, round(45 * TR, 9), 60, 9000)
    ]


def test_daily_buckets_of_adjusted_bars_and_gapfill(api, aapl):
    days = buckets(api, "split", width="1d", timeframe="1d", gapfill="true")["buckets"]
    assert [b["bar_count"] for b in days] == [0, 1, 1, 1, 0, 0, 0]
    assert [ohlcv(b) for b in days if b["bar_count"]] == SPLIT_DAYS
    assert days[0]["open"] is None


def test_buckets_known_at_a_moment_and_adjusted(api, aapl, now):
    then = buckets(api, "split", known_at=iso(now - H))
    assert then["source"] == "marketdata_minutebar_adjusted"
    assert [ohlcv(b) for b in then["buckets"]] == [(100, 110, 49, 60, 7500)]


def test_an_adjusted_request_never_reads_an_aggregate(aapl):
    """An aggregate holds prices as traded: no adjusted request is served from it, even one
    aligned on its buckets, and forcing it is refused."""
    aligned = BucketRequest(aapl.id, parse_interval("1d"), START, START + 7 * DAY)
    assert serving_aggregate(aligned) == "marketdata_minutebar_1d"
    for adjustment in ("split", "total_return"):
        adjusted = BucketRequest(
            aapl.id, parse_interval("1d"), START, START + 7 * DAY, adjustment=adjustment
        )
        assert serving_aggregate(adjusted) is None
        with pytest.raises(ValueError, match="no aggregate serves"):
            bucketed(adjusted, source="aggregate")
        assert bucketed(adjusted).source == "marketdata_minutebar_adjusted"


# --- Latest prices ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("as_of", "adjustment", "price"),
    [
        (TUESDAY + H * 20, "raw", 102),
        (TUESDAY + H * 20, "split", 51),
        (TUESDAY + H * 20, "total_return", 51 * TR),
        (WEDNESDAY + H * 20, "raw", 55),
        (WEDNESDAY + H * 20, "split", 55),
        (WEDNESDAY + H * 20, "total_return", 55 * TR),
        (THURSDAY + H * 20, "total_return", 60),
    ],
)
def test_latest_prices_with_each_adjustment(api, aapl, as_of, adjustment, price):
    body = get(api, "/api/v1/prices/latest/", symbols="AAPL", as_of=iso(as_of),
               adjustment=adjustment)  # fmt: skip
    assert body["prices"][0]["price"] == pytest.approx(price, rel=1e-12)
    assert body["prices"][0]["source"] == "minute"
    # Echoed when asked, as known_at is: a raw answer is the one it always was.
    assert body.get("adjustment") == (None if adjustment == "raw" else adjustment)


def test_latest_prices_known_at_and_adjusted(api, aapl, now):
    as_of = iso(TUESDAY + H * 20)
    then = get(api, "/api/v1/prices/latest/", symbols="AAPL", as_of=as_of,
               adjustment="split", known_at=iso(now - H))  # fmt: skip
    assert (then["prices"][0]["price"], then["known_at"], then["adjustment"]) == (
        102,
        iso(now - H),
        "split",
    )
    assert latest_prices([aapl.id], TUESDAY + H * 20, now, "split")[aapl.id].price == 51


# --- Plans -----------------------------------------------------------------------------------
@pytest.fixture
def crowd(aapl, partitioned_for, now) -> list[Instrument]:
    """Forty other instruments with a day of minute bars and a split each, and a day of AAPL's
    history more, analysed: what makes a scan of every instrument's rows or actions costly."""
    others = Instrument.objects.bulk_create(
        Instrument(symbol=f"X{n:02}", asset_class="equity", exchange="XNAS") for n in range(40)
    )
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=i,
            ts=START + m * M,
            open=1,
            high=1,
            low=1,
            close=1,
            volume=1,
            known_from=now - 2 * H,
        )
        for i in [*others, aapl]
        for m in range(0, 1440, 3)
    )
    for n, other in enumerate(others):
        state(other, "split", EX_SPLIT + timedelta(days=n % 5), ratio=2)
    with connection.cursor() as cursor:
        for table in ("minutebar", "corporateaction"):
            cursor.execute(f"ANALYZE marketdata_{table}")
    return others


def plan(queryset) -> str:
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        return "\n".join(row[0] for row in cursor.fetchall())


@pytest.mark.parametrize("known_at", [None, "an hour ago"])
@pytest.mark.parametrize("by", ["id", "symbol"])
def test_a_one_instrument_adjusted_read_scans_its_key_and_its_actions_only(
    aapl, crowd, now, known_at, by, factors_road, monkeypatch
):
    """The read reaches the bars' (instrument, ts) key, and the factors are computed from the
    instrument's actions only: the instrument's condition reaches the scan of the actions in
    the read, or the statement of the factors computed apart (where the instrument's id is
    known when the read is written: given, or looked up first, as on Citus)."""
    asked = []
    factors = adjusting._factors
    monkeypatch.setattr(
        adjusting, "_factors", lambda *args: asked.append(args[-1]) or factors(*args)
    )
    bars = MinuteBar.objects.known_at(now - H if known_at else None).adjusted("split")
    bars = bars.filter(instrument_id=aapl.id) if by == "id" else bars.for_symbol("AAPL")
    text = plan(bars.between(TUESDAY, THURSDAY).order_by("ts"))
    # A partition of the table (of a shard), or a TimescaleDB chunk (quoted index names).
    minute_scan = (
        r'Index (Only )?Scan (using "?\w+"? )?on (marketdata_minutebar\w*|_hyper_\w+_chunk)'
    )
    assert re.search(minute_scan, text), text
    # The bars' table, not their revisions (few: a scan of them is the planner's choice once
    # analysed, as after tests/marketdata/test_revisions.py).
    assert not re.search(r"Seq Scan on marketdata_minutebar(?!revision)", text), text
    if engine.distributes_market_data():
        assert "Task Count: 1" in text, text
    if factors_road == "factors apart":
        if by == "id" or not engine.inlines_sql_functions_into_queries():
            assert asked == [[aapl.id]]
        return
    scans = re.findall(r"Scan (?:using \w+ )?on marketdata_corporateaction\w*[^\n]*"
                       r"(?:\n\s+(?:Index Cond|Filter|Recheck Cond): [^\n]*)*", text)  # fmt: skip
    assert scans, text
    for scan in scans:
        assert "instrument_id" in scan, text


def test_an_adjusted_read_agrees_with_the_instruments_own_factors(aapl, crowd):
    """What the plan computes for AAPL alone is what the whole table's factors give it."""
    one = list(
        MinuteBar.objects.adjusted("split").filter(instrument_id=aapl.id).order_by("ts")
        .values_list("ts", "close")
    )  # fmt: skip
    everyone = list(
        MinuteBar.objects.adjusted("split").order_by("ts").filter(instrument__symbol="AAPL")
        .values_list("ts", "close")
    )  # fmt: skip
    assert one == everyone
    assert dict(one)[TUESDAY + OPEN] == 52
    assert min(ts for ts, _ in one) == START.replace(tzinfo=UTC)


def test_instruments_named_by_a_subquery_are_adjusted_as_by_their_ids(aapl, crowd):
    """A filter by a queryset of instruments names no ids to narrow the factors by: the read
    adjusts by every instrument's factors, the same rows as by the id."""
    by_id = MinuteBar.objects.adjusted("split").filter(instrument_id=aapl.id)
    for named in (
        MinuteBar.objects.adjusted("split").filter(
            instrument__in=Instrument.objects.filter(symbol="AAPL")
        ),
        MinuteBar.objects.adjusted("split").filter(
            instrument_id__in=Instrument.objects.filter(symbol="AAPL").values("id")
        ),
        MinuteBar.objects.adjusted("split").filter(instrument_id__in=[aapl.id, -1]),
    ):
        assert list(named.order_by("ts").values_list("ts", "close")) == list(
            by_id.order_by("ts").values_list("ts", "close")
        )


@pytest.mark.parametrize("adjustment", ["split", "total_return"])
@pytest.mark.parametrize("start", [WEDNESDAY, WEDNESDAY + OPEN, THURSDAY])
def test_a_read_from_a_moment_on_is_the_whole_reads_rows_from_then(aapl, adjustment, start):
    """A read with a lower bound on ts looks up only the actions after it, and its rows are
    the whole history's from then on (the split's ex moment and the bound coinciding included:
    WEDNESDAY is its ex moment)."""
    whole = list(
        MinuteBar.objects.adjusted(adjustment).filter(instrument_id=aapl.id).order_by("ts")
        .values_list("ts", "open", "close", "volume")
    )  # fmt: skip
    for bounded in (
        MinuteBar.objects.adjusted(adjustment).between(start),
        MinuteBar.objects.filter(ts__gt=start - M).adjusted(adjustment),
    ):
        rows = list(
            bounded.filter(instrument_id=aapl.id).order_by("ts")
            .values_list("ts", "open", "close", "volume")
        )  # fmt: skip
        assert rows == [row for row in whole if row[0] >= start]


def test_only_a_bound_every_row_meets_narrows_the_actions(aapl, factors_road, monkeypatch):
    """A bound under OR (or NOT) is no bound of the read: Tuesday's bars, read through an OR,
    are still adjusted by the split and the dividend."""
    from django.db.models import Q

    either = MinuteBar.objects.adjusted("total_return").filter(
        Q(ts__gte=THURSDAY) | Q(ts__lt=WEDNESDAY), instrument_id=aapl.id
    )
    closes = dict(either.values_list("ts", "close"))
    assert float(closes[TUESDAY + OPEN]) == pytest.approx(104 / 2 * TR)
    assert float(closes[THURSDAY + OPEN]) == pytest.approx(60)
    not_before = MinuteBar.objects.adjusted("split").exclude(ts__lt=WEDNESDAY)
    asked = []
    factors = adjusting._factors
    monkeypatch.setattr(
        adjusting, "_factors", lambda *args: asked.append(args[3]) or factors(*args)
    )
    sql, params = not_before.filter(instrument_id=aapl.id).query.sql_with_params()
    if factors_road == "factors apart":
        assert asked == [None], sql  # the factors' p_from
    else:
        assert params[2] is None, sql  # the adjusted function's p_from
