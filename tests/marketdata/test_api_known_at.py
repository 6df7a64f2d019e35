"""Market data read as known at a moment through the API (``known_at`` on bars, ticks, buckets
and latest prices, and ``latest_prices``), the revisions lists, and deletions through the API.

Each test runs in one transaction, whose rows are all known from its start (``now()``): the
rows "loaded before" are stored with an earlier ``known_from``, and ``T`` lies between the two.
Corrections go through the API's POST (the ingest pipeline's merge) or ``ingest_bars``.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.db import connection

from marketdata.buckets import BucketRequest, bucketed, serving_aggregate
from marketdata.models import (
    DailyBar,
    DailyBarRevision,
    Ingest,
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    Tick,
)
from marketdata.prices import (
    LATEST_PRICES_SQL,
    Price,
    latest_prices,
    latest_prices_sql,
)
from qvp_site.db import engine
from qvp_site.db.intervals import parse_interval
from qvp_site.operators import OPERATORS
from tests.clients import client_of
from tests.marketdata.conftest import START

M = timedelta(minutes=1)
H = timedelta(hours=1)
CLOSES = [10.0, 11.0, 12.0]  # the closes first loaded, at START + 0, 1, 2 minutes


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def transaction_start() -> datetime:
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        return cursor.fetchone()[0]


@pytest.fixture
def now(db) -> datetime:
    """When this test's rows are learnt: its transaction's start."""
    return transaction_start()


@pytest.fixture
def moment(now) -> datetime:
    """T: after the first loads, before the corrections."""
    return now - H


@pytest.fixture
def aapl(partitioned_for, now) -> Instrument:
    """AAPL: three minute bars, two daily bars and three ticks, all learnt two hours ago."""
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    earlier = now - 2 * H
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=aapl,
            ts=START + n * M,
            open=c,
            high=c + 1,
            low=c - 1,
            close=c,
            volume=100,
            known_from=earlier,
        )
        for n, c in enumerate(CLOSES)
    )
    DailyBar.objects.bulk_create(
        DailyBar(
            instrument=aapl,
            ts=START - d * timedelta(days=1),
            open=5,
            high=10,
            low=4,
            close=5 + d,
            known_from=earlier,
        )
        for d in (1, 2)
    )
    Tick.objects.bulk_create(
        Tick(instrument=aapl, ts=START + s * M, sequence=0, price=p, size=1, known_from=earlier)
        for s, p in [(0, 10.0), (1, 10.1), (2, 10.2)]
    )
    return aapl


def _user(name: str, *codenames: str, groups: tuple[str, ...] = ()):
    user = get_user_model().objects.create_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    for group in groups:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    return user


@pytest.fixture
def trader(db):
    """An operator (writes bars) who may delete minute bars too."""
    return _user("trader", "delete_minutebar", groups=(OPERATORS,))


@pytest.fixture
def operator(db):
    """An operator without the permission to delete."""
    return _user("operator", groups=(OPERATORS,))


@pytest.fixture
def auditor(db):
    """An auditor whose other group grants every permission."""
    user = _user("auditor", groups=("auditors", "everything"))
    Group.objects.get(name="everything").permissions.set(Permission.objects.all())
    return user


@pytest.fixture
def nobody(db):
    return _user("nobody")


def bar(ts: datetime, close: float) -> dict:
    return {"ts": iso(ts), "open": close, "high": close + 1, "low": close - 1, "close": close}


def correct(user, bars: list[dict], timeframe: str = "1m") -> dict:
    """POST bars through the API as ``user``: the pipeline's merge revises what differs."""
    body = {"symbol": "AAPL", "timeframe": timeframe, "bars": bars}
    response = client_of(user).post("/api/v1/bars/", body, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def get(user, url: str) -> dict:
    response = client_of(user).get(url)
    assert response.status_code == 200, response.content
    return response.json()


def closes(user, url: str) -> list[tuple[str, float]]:
    return [(row["ts"], row["close"]) for row in get(user, url)["results"]]


# --- Bars and ticks as known -----------------------------------------------------------------
def test_bars_read_as_known_at_a_moment_after_a_correction_through_the_api(aapl, trader, moment):
    answer = correct(trader, [bar(START + M, 21.0), bar(START + 3 * M, 13.0)])
    assert (answer["inserted"], answer["updated"]) == (1, 1)
    url = f"/api/v1/bars/?symbol=AAPL&start={iso(START)}"
    assert closes(trader, url) == [
        (iso(START), 10.0),
        (iso(START + M), 21.0),
        (iso(START + 2 * M), 12.0),
        (iso(START + 3 * M), 13.0),
    ]
    # Known at T: the corrected bar as it was, the bar learnt later left out.
    assert closes(trader, f"{url}&known_at={iso(moment)}") == [
        (iso(START + n * M), c) for n, c in enumerate(CLOSES)
    ]
    # Before anything was learnt: nothing.
    assert closes(trader, f"{url}&known_at={iso(moment - 2 * H)}") == []


def test_bars_known_at_page_by_cursor(aapl, trader, moment):
    correct(trader, [bar(START + M, 21.0)])
    url = f"/api/v1/bars/?symbol=AAPL&known_at={iso(moment)}&page_size=2"
    first = get(trader, url)
    assert [r["close"] for r in first["results"]] == CLOSES[:2]
    second = client_of(trader).get(first["next"]).json()
    assert [r["close"] for r in second["results"]] == CLOSES[2:]


def test_daily_bars_read_as_known(aapl, trader, moment):
    correct(trader, [bar(START - timedelta(days=1), 50.0)], timeframe="1d")
    url = "/api/v1/bars/?symbol=AAPL&timeframe=1d"
    assert [c for _, c in closes(trader, url)] == [7.0, 50.0]
    assert [c for _, c in closes(trader, f"{url}&known_at={iso(moment)}")] == [7.0, 6.0]


def test_ticks_read_as_known(aapl, trader, moment):
    Tick.objects.create(instrument=aapl, ts=START + 3 * M, sequence=0, price=10.3, size=1)
    with connection.cursor() as cursor:  # a tick deleted after T
        cursor.execute(
            "SELECT marketdata_delete('marketdata_tick', %s, %s, %s)",
            [aapl.id, START, START + M],
        )
    url = "/api/v1/ticks/?symbol=AAPL"
    present = get(trader, url)["results"]
    assert [t["price"] for t in present] == [10.1, 10.2, 10.3]
    known = get(trader, f"{url}&known_at={iso(moment)}")["results"]
    assert [t["price"] for t in known] == [10.0, 10.1, 10.2]


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/bars/?symbol=AAPL",
        "/api/v1/ticks/?symbol=AAPL",
        f"/api/v1/bars/buckets/?symbol=AAPL&width=1h&start={iso(START)}&end={iso(START + H)}",
        "/api/v1/prices/latest/?symbols=AAPL",
    ],
)
@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00Z", "0001-01-01T00:00:00Z"])
def test_a_bad_known_at_is_a_400_naming_it(aapl, nobody, url, value):
    response = client_of(nobody).get(f"{url}&known_at={value}")
    assert response.status_code == 400, response.content
    assert set(response.json()) == {"known_at"}


# --- Buckets ---------------------------------------------------------------------------------
def buckets(user, known_at: datetime | None = None, width: str = "1h") -> dict:
    url = f"/api/v1/bars/buckets/?symbol=AAPL&width={width}&start={iso(START)}&end={iso(START + H)}"
    return get(user, url if known_at is None else f"{url}&known_at={iso(known_at)}")


def test_buckets_known_at_show_a_bar_corrected_later_as_it_was(aapl, trader, moment):
    correct(trader, [bar(START + 2 * M, 30.0)])  # the hour's close and high
    present = buckets(trader)["buckets"]
    assert [(b["close"], b["high"], b["bar_count"]) for b in present] == [(30.0, 31.0, 3)]
    known = buckets(trader, moment)
    assert [(b["close"], b["high"], b["bar_count"]) for b in known["buckets"]] == [(12.0, 13.0, 3)]
    assert known["source"] == "marketdata_minutebar_known_at"


def test_buckets_known_at_leave_out_a_bar_inserted_later(aapl, trader, moment):
    correct(trader, [bar(START + 5 * M, 40.0)])
    assert [(b["close"], b["bar_count"]) for b in buckets(trader)["buckets"]] == [(40.0, 4)]
    known = buckets(trader, moment)["buckets"]
    assert [(b["open"], b["close"], b["low"], b["bar_count"]) for b in known] == [
        (10.0, 12.0, 9.0, 3)
    ]


def test_buckets_known_at_after_a_correction_by_ingest_bars(aapl, moment, tmp_path: Path):
    rows = [f"{(START + M):%Y-%m-%d %H:%M:%S},11,11.5,2,11,100"]
    path = tmp_path / "corrected.csv"
    path.write_text("timestamp,open,high,low,close,volume\n" + "\n".join(rows) + "\n")
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", "AAPL", "--timeframe", "1m", stdout=out)
    assert "1 revised" in out.getvalue()
    request = BucketRequest(aapl.id, parse_interval("1h"), START, START + H)
    assert [b["low"] for b in bucketed(request).rows] == [2.0]
    known = BucketRequest(aapl.id, parse_interval("1h"), START, START + H, known_at=moment)
    assert [b["low"] for b in bucketed(known).rows] == [9.0]


def test_buckets_known_at_never_read_an_aggregate(aapl, moment):
    """The aggregates hold the present (see marketdata/buckets.py)."""
    width = parse_interval("1h")
    assert serving_aggregate(BucketRequest(aapl.id, width, START, START + H)) is not None
    known = BucketRequest(aapl.id, width, START, START + H, known_at=moment)
    assert serving_aggregate(known) is None
    with pytest.raises(ValueError, match="no aggregate serves"):
        bucketed(known, source="aggregate")


def test_gapfilled_buckets_known_at(aapl, trader, moment):
    correct(trader, [bar(START + 2 * M, 30.0)])
    url = (
        f"/api/v1/bars/buckets/?symbol=AAPL&width=1h&start={iso(START)}"
        f"&end={iso(START + 3 * H)}&gapfill=true&known_at={iso(moment)}"
    )
    found = get(trader, url)["buckets"]
    assert [(b["close"], b["bar_count"]) for b in found] == [(12.0, 3), (None, 0), (None, 0)]


# --- Latest prices ---------------------------------------------------------------------------
def test_latest_prices_known_at(aapl, trader, moment, django_assert_num_queries):
    correct(trader, [bar(START + 2 * M, 30.0), bar(START + 4 * M, 31.0)])
    at = START + H
    assert latest_prices([aapl.id], as_of=at)[aapl.id].price == 31.0
    with django_assert_num_queries(1):
        known = latest_prices([aapl.id], as_of=at, known_at=moment)[aapl.id]
    assert (known.ts, known.price, known.source) == (START + 2 * M, 12.0, "minute")
    # The daily bars as known: none learnt by then is no price at all.
    assert latest_prices([aapl.id], as_of=START, known_at=moment - 2 * H) == {}
    before_minutes = latest_prices([aapl.id], as_of=START - M, known_at=moment)[aapl.id]
    assert (before_minutes.price, before_minutes.source) == (6.0, "daily")


def test_the_latest_prices_api_reads_as_known(aapl, trader, moment):
    correct(trader, [bar(START + 2 * M, 30.0)])
    url = f"/api/v1/prices/latest/?symbols=AAPL&as_of={iso(START + H)}"
    assert get(trader, url)["prices"][0]["price"] == 30.0
    assert "known_at" not in get(trader, url)
    known = get(trader, f"{url}&known_at={iso(moment)}")
    assert known["known_at"] == iso(moment)
    assert known["prices"][0]["price"] == 12.0


def _history(aapl: Instrument, now: datetime) -> None:
    """Five days of minute bars, the last day's learnt an hour ago, every third of the first
    days' revised then: enough rows that a sort of them would cost more than a scan."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_minutebar"
            " (instrument_id, ts, open, high, low, close, known_from)"
            " SELECT %(id)s, %(first)s + g * interval '1 minute', 1, 1, 1, 1,"
            "  CASE WHEN g < 5760 THEN %(old)s ELSE %(new)s END"
            " FROM generate_series(0, 7199) AS g",
            {"id": aapl.id, "first": START - timedelta(days=6), "old": now - 3 * H, "new": now - H},
        )
    MinuteBarRevision.objects.bulk_create(
        MinuteBarRevision(
            row_id=g,
            instrument=aapl,
            ts=START - timedelta(days=6) + g * M,
            open=2,
            high=2,
            low=2,
            close=2,
            known_from=now - 4 * H,
            known_until=now - 3 * H,
            change="revised",
            actor="test",
        )
        for g in range(0, 5760, 3)
    )
    with connection.cursor() as cursor:
        for table in ("minutebar", "minutebarrevision", "dailybar", "dailybarrevision"):
            cursor.execute(f"ANALYZE marketdata_{table}")


def test_latest_prices_known_at_scan_the_keys_backward(aapl, now):
    """Each lookup stays a backward scan of the (instrument, ts) keys of the tables and of
    their revisions, stopped at the first bar known then: no sort of the history. On Citus,
    the plan of a shard's."""
    _history(aapl, now)
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN " + latest_prices_sql(known=True),  # this engine's (on Citus, a shard's)
            {"ids": [aapl.id], "as_of": START + H, "known_at": now - 2 * H},
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    citus = engine.is_citus()
    lines = plan.splitlines()
    for number, line in enumerate(lines):
        if re.search(r"\bSort  \(", line):  # a Sort node (not a Merge Append's key)
            below = next(scan for scan in lines[number + 1 :] if " on marketdata_" in scan)
            nodes = [node for node in lines[number + 1 :] if "->" in node]
            if citus and "->  Append" in nodes[0] and "->  Limit" in nodes[1]:
                continue  # the first row of each branch (each a Limit), sorted
            if citus:
                # A shard's planner, with statistics of a few rows, may sort the first row of
                # each branch, the two daily bars, or the revisions closed after the moment
                # (by the BRIN index of trading 0020): never the minute bars' history.
                assert " on marketdata_minutebar_p" not in below, plan
            else:
                # Only the daily revisions, which have no row here, may be sorted (a plan that
                # depends on what the planner guesses of an empty table): never the history.
                assert " on marketdata_dailybarrevision" in below, plan
    backward = ["minutebar"]
    if not (citus and "Bitmap Index Scan on marketdata_minutebarrevision_known_until" in plan):
        backward.append("minutebarrevision")
    for table in backward:
        assert re.search(rf"Index Scan Backward using \w*{table}\w* on marketdata_{table}", plan), (
            table,
            plan,
        )


# The same lookup through the SQL functions <table>_known_at, as a psql user would write it.
THROUGH_THE_FUNCTIONS = LATEST_PRICES_SQL.replace(
    "FROM marketdata_minutebar", "FROM marketdata_minutebar_known_at(%(known_at)s)"
).replace("FROM marketdata_dailybar", "FROM marketdata_dailybar_known_at(%(known_at)s)")


@pytest.mark.parametrize("hours_ago", [5, 3.5, 2, 0.5, 0])
@pytest.mark.parametrize("as_of_minutes", [-60 * 24 * 2, -1, 0, 2, 60])
def test_latest_prices_known_at_agree_with_the_known_at_functions(
    aapl, now, trader, hours_ago, as_of_minutes
):
    _history(aapl, now)
    correct(trader, [bar(START + 2 * M, 30.0)])
    known_at = now - timedelta(hours=hours_ago)
    params = {"ids": [aapl.id], "as_of": START + as_of_minutes * M, "known_at": known_at}
    with connection.cursor() as cursor:
        cursor.execute(THROUGH_THE_FUNCTIONS, params)
        expected = {row[0]: Price(*row) for row in cursor.fetchall()}
    assert THROUGH_THE_FUNCTIONS.count("_known_at(") == 2
    assert latest_prices([aapl.id], params["as_of"], known_at) == expected


# --- Revisions -------------------------------------------------------------------------------
def revisions_url(start: datetime = START, end: datetime = START + H, **extra) -> str:
    query = "&".join(f"{k}={v}" for k, v in extra.items())
    return f"/api/v1/bars/revisions/?symbol=AAPL&start={iso(start)}&end={iso(end)}&{query}"


def test_the_revisions_of_a_correction_name_the_load_and_the_user(aapl, trader, nobody, now):
    correct(trader, [bar(START + M, 21.0), bar(START + 2 * M, 22.0)])
    load = Ingest.objects.latest("started_at")
    rows = get(nobody, revisions_url())["results"]  # every logged-in user reads them
    assert [(r["ts"], r["close"], r["change"]) for r in rows] == [
        (iso(START + M), 11.0, "revised"),
        (iso(START + 2 * M), 12.0, "revised"),
    ]
    for row in rows:
        assert row["ingest"] == load.id
        assert (row["actor"], row["user"]) == ("trader", trader.id)
        assert row["known_from"] == iso(now - 2 * H)
        # Learnt in this transaction: from its start (or the change's own moment) on.
        assert parse(row["known_until"]) >= now
    # The range is [start, end): the bar at end is not listed.
    assert get(nobody, revisions_url(end=START + M))["results"] == []


def test_the_revisions_of_daily_bars_and_of_ticks(aapl, trader, auditor):
    correct(trader, [bar(START - timedelta(days=1), 50.0)], timeframe="1d")
    day = START - timedelta(days=1)
    rows = get(auditor, revisions_url(day, START, timeframe="1d"))["results"]
    assert [(r["close"], r["change"]) for r in rows] == [(6.0, "revised")]
    assert get(auditor, revisions_url(day, START))["results"] == []  # minute bars: none
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_delete('marketdata_tick', %s, %s, %s)", [aapl.id, START, START + M]
        )
    url = f"/api/v1/ticks/revisions/?symbol=AAPL&start={iso(START)}&end={iso(START + H)}"
    ticks = get(auditor, url)["results"]
    assert [(t["price"], t["sequence"], t["kind"], t["change"]) for t in ticks] == [
        (10.0, 0, "trade", "deleted")
    ]


def test_revisions_page_by_cursor_in_a_bounded_number_of_queries(
    aapl, trader, django_assert_max_num_queries
):
    for close in (20.0, 21.0, 22.0):  # three revisions of each bar
        correct(trader, [bar(START + n * M, close + n) for n in range(3)])
    assert MinuteBarRevision.objects.count() == 9
    client = client_of(trader)
    url, seen = revisions_url(page_size=4), []
    with django_assert_max_num_queries(12):  # the session, the user, the symbol, the page
        page = client.get(url).json()
    seen += page["results"]
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += page["results"]
    assert len(seen) == 9
    order = [(r["ts"], r["known_until"]) for r in seen]
    assert order == sorted(order)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (f"symbol=AAPL&end={iso(START)}", "start"),
        (f"symbol=AAPL&start={iso(START)}", "end"),
        (f"symbol=AAPL&start={iso(START)}&end={iso(START)}", "start"),
        (f"symbol=AAPL&start={iso(START)}&end={iso(START + H)}&timeframe=5m", "timeframe"),
        (f"symbol=NOPE&start={iso(START)}&end={iso(START + H)}", "symbol"),
        (f"start={iso(START)}&end={iso(START + H)}", "symbol"),
    ],
)
@pytest.mark.parametrize("path", ["bars", "ticks"])
def test_bad_revision_queries_are_400s_naming_the_field(aapl, nobody, query, field, path):
    if path == "ticks" and field == "timeframe":
        return  # ticks have no timeframe
    response = client_of(nobody).get(f"/api/v1/{path}/revisions/?{query}")
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


def test_revisions_need_a_login(aapl, client):
    assert client.get(revisions_url()).status_code in (401, 403)


# --- Deletions -------------------------------------------------------------------------------
def delete(user, start: datetime = START, end: datetime = START + 2 * M, timeframe: str = "1m"):
    body = {"symbol": "AAPL", "timeframe": timeframe, "start": iso(start), "end": iso(end)}
    return client_of(user).post("/api/v1/bars/delete/", body, format="json")


def test_a_deletion_is_a_revision_of_the_requests_user(
    aapl, trader, moment, now, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        response = delete(trader)
    assert response.status_code == 200, response.content
    assert response.json() == {
        "symbol": "AAPL",
        "timeframe": "1m",
        "start": iso(START),
        "end": iso(START + 2 * M),
        "deleted": 2,
    }
    assert [c for _, c in closes(trader, "/api/v1/bars/?symbol=AAPL")] == [12.0]
    known = closes(trader, f"/api/v1/bars/?symbol=AAPL&known_at={iso(moment)}")
    assert [c for _, c in known] == CLOSES
    kept = MinuteBarRevision.objects.order_by("ts")
    assert [(r.close, r.change, r.actor, r.user_id, r.ingest_id) for r in kept] == [
        (10.0, "deleted", "trader", trader.id, None),
        (11.0, "deleted", "trader", trader.id, None),
    ]
    assert len({r.known_until for r in kept}) == 1  # one deletion, one moment
    assert kept[0].known_until >= now
    # The aggregates of the range: marked pending in the request's transaction, refreshed
    # once it commits.
    assert callbacks
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pending_from, pending_to FROM qvp_timeseries_aggregate"
            " WHERE source_table = 'marketdata_minutebar'"
        )
        marks = cursor.fetchall()
    assert marks
    assert all(lo <= START and hi >= START + 2 * M for lo, hi in marks), marks


def test_deleting_nothing_counts_nothing(aapl, trader, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = delete(trader, START + H, START + 2 * H)
    assert response.json()["deleted"] == 0
    assert not callbacks


@pytest.mark.parametrize(
    ("who", "rule"),
    [("operator", "model_permission"), ("nobody", "model_permission"), ("auditor", None)],
)
def test_a_deletion_needs_the_permission_to_delete_and_is_never_an_auditors(
    aapl, who, rule, request
):
    user = request.getfixturevalue(who)
    response = delete(user)
    assert response.status_code == 403, response.content
    assert response.json()["rule"] == (rule or "auditors_read_only")
    assert MinuteBar.objects.count() == 3
    assert not MinuteBarRevision.objects.exists()


def test_deleting_daily_bars_needs_the_permission_on_daily_bars(aapl, trader):
    response = delete(trader, START - timedelta(days=3), START, timeframe="1d")
    assert response.status_code == 403, response.content
    assert "marketdata.delete_dailybar" in response.json()["detail"]
    trader.user_permissions.add(Permission.objects.get(codename="delete_dailybar"))
    response = delete(
        get_user_model().objects.get(pk=trader.pk), START - timedelta(days=3), START, timeframe="1d"
    )
    assert response.json()["deleted"] == 2
    assert DailyBarRevision.objects.filter(change="deleted").count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"end": iso(START)}, "start"),
        ({"start": iso(START)}, "end"),
        ({"start": iso(START + H), "end": iso(START)}, "start"),
        ({"start": "soon", "end": iso(START)}, "start"),
        ({"start": iso(START), "end": iso(START + H), "timeframe": "1w"}, "timeframe"),
        ({"start": iso(START), "end": iso(START + H), "symbol": "NOPE"}, "symbol"),
    ],
)
def test_bad_deletions_are_400s_naming_the_field(aapl, trader, body, field):
    response = client_of(trader).post(
        "/api/v1/bars/delete/", {"symbol": "AAPL", **body}, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert MinuteBar.objects.count() == 3


def test_a_deletion_through_the_api_as_the_sites_role(aapl, trader, moment, as_app_role):
    """The site's role may not DELETE market data; the API deletes through the owner's
    function, which it may call, and reads the rows back as known before."""
    response = delete(trader)
    assert response.status_code == 200, response.content
    assert response.json()["deleted"] == 2
    known = closes(trader, f"/api/v1/bars/?symbol=AAPL&known_at={iso(moment)}")
    assert [c for _, c in known] == CLOSES
    rows = get(trader, revisions_url())["results"]
    assert [(r["close"], r["change"], r["actor"]) for r in rows] == [
        (10.0, "deleted", "trader"),
        (11.0, "deleted", "trader"),
    ]
