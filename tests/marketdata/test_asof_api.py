"""``/api/v1/asof/<kind>/`` (marketdata/api_asof.py), from the side that would break it: its
answers equal the psql functions' (marketdata/sql/asof/) called one time at a time, for each
kind, direction, tolerance, exactness and offset, ties on the time included; a quote lookup
takes no trade; the times come back in the order asked; bad input is a 400 naming the
parameter; every logged-in user reads, nobody writes, and the statements are bounded."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from django.db import connection

from marketdata.models import DailyBar, Instrument, MinuteBar, Tick
from tests.clients import client_of
from tests.fixtures.trading_api import iso
from tests.marketdata.conftest import START

T0 = START + timedelta(hours=14)
URL = "/api/v1/asof/{}/"
FUNCTIONS = {
    "quotes": "marketdata_quote",
    "trades": "marketdata_trade",
    "ticks": "marketdata_tick",
    "minute-bars": "marketdata_minutebar",
    "daily-bars": "marketdata_dailybar",
}
TICK_FIELDS = ["ts", "sequence", "kind", "price", "size", "bid", "ask", "bid_size", "ask_size"]
BAR_FIELDS = ["ts", "open", "high", "low", "close", "volume"]
# Times around the rows: before every row, on a row, between rows, on a tie, after all.
OFFSETS_S = [-100, 0, 1, 2, 5, 7, 10, 30, 59, 60, 61, 90, 125, 400, 100_000]


@pytest.fixture
def market(partitioned_for) -> Instrument:
    """AAPL's ticks about T0: quotes and trades interleaved, three ticks at T0 + 5 s (a tie,
    broken by sequence); minute bars at T0 and one minute apart; daily bars on three days."""
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    ticks = [
        Tick(instrument=aapl, ts=T0, sequence=1, kind="quote", bid=99.9, ask=100.1, bid_size=3),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=2), sequence=1, price=100.0, size=10),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=5), sequence=1, kind="quote", bid=100.0,
             ask=100.2),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=5), sequence=2, price=100.15, size=5),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=5), sequence=3, kind="quote", bid=100.1,
             ask=100.3),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=60), sequence=1, price=100.4, size=1),
        Tick(instrument=aapl, ts=T0 + timedelta(seconds=120), sequence=1, kind="quote", bid=100.3,
             ask=100.5),
    ]  # fmt: skip
    Tick.objects.bulk_create(ticks)
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=aapl, ts=T0 + timedelta(minutes=k), open=100 + k, high=101 + k,
                  low=99 + k, close=100.5 + k, volume=10 * k)
        for k in range(3)
    )  # fmt: skip
    DailyBar.objects.bulk_create(
        DailyBar(instrument=aapl, ts=START + timedelta(days=k), open=100 + k, high=102 + k,
                 low=98 + k, close=101 + k, volume=1000)
        for k in (-2, 0, 1)
    )  # fmt: skip
    return aapl


@pytest.fixture
def quant(django_user_model):
    """A logged-in user in no group, with no permission: market data is everyone's to read."""
    return client_of(django_user_model.objects.create_user("quant"))


def ask(client, kind: str, times: list, **options: Any):
    return client.get(
        URL.format(kind), {"symbol": "AAPL", "at": [iso(t) for t in times], **options}
    )


def answered(client, kind: str, times: list, **options: Any) -> list[dict | None]:
    response = ask(client, kind, times, **options)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["at"] for r in body["results"]] == [iso(t) for t in times]
    return [r["match"] for r in body["results"]]


def psql(kind: str, instrument: Instrument, at, options: dict[str, Any]) -> dict | None:
    """What the psql function answers for one time, as a user calls it."""
    direction = options.get("direction", "backward")
    function = f"{FUNCTIONS[kind]}_{'asof' if direction == 'backward' else 'after'}"
    fields = TICK_FIELDS if "bars" not in kind else BAR_FIELDS
    tolerance = options.get("tolerance")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {', '.join(fields)} FROM {function}(%s, %s::timestamptz + %s, %s, %s)",
            [
                instrument.pk,
                at,
                timedelta(seconds=float(options.get("offset", 0))),
                None if tolerance is None else timedelta(seconds=float(tolerance)),
                options.get("allow_exact", "true") == "true",
            ],
        )
        row = cursor.fetchone()
    return None if row is None else dict(zip(fields, row, strict=True))


def same(match: dict | None, row: dict | None) -> bool:
    """An API match and a psql row name the same row, value for value."""
    if match is None or row is None:
        return match is row
    return all(
        match[name] == (iso(value) if name == "ts" else value)
        for name, value in row.items()
        if value is not None
    ) and all(match[name] is None for name, value in row.items() if value is None)


OPTIONS = [
    {},
    {"direction": "forward"},
    {"allow_exact": "false"},
    {"direction": "forward", "allow_exact": "false"},
    {"tolerance": "3"},
    {"tolerance": "0"},
    {"direction": "forward", "tolerance": "30"},
    {"offset": "60"},
    {"offset": "-5", "direction": "forward", "allow_exact": "false"},
]


@pytest.mark.parametrize("kind", list(FUNCTIONS))
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: "&".join(f"{k}={v}" for k, v in o.items()) or "default"
)
def test_the_answers_equal_the_psql_functions(market, quant, kind, options):
    times = [T0 + timedelta(seconds=s) for s in OFFSETS_S]
    if "daily" in kind:
        times += [START + timedelta(days=d, hours=h) for d in (-3, -1, 0, 1, 4) for h in (0, 12)]
    matches = answered(quant, kind, times, **options)
    expected = [psql(kind, market, t, options) for t in times]
    assert any(e is not None for e in expected)
    assert any(e is None for e in expected)
    for at, match, row in zip(times, matches, expected, strict=True):
        assert same(match, row), (at, match, row)


def test_the_latest_quote_takes_no_trade_and_breaks_a_tie_by_sequence(market, quant):
    at_tie, after_trade = T0 + timedelta(seconds=5), T0 + timedelta(seconds=90)
    quotes = answered(quant, "quotes", [at_tie, after_trade])
    assert [(q["sequence"], q["bid"]) for q in quotes] == [(3, 100.1), (3, 100.1)]
    ticks = answered(quant, "ticks", [at_tie, after_trade])
    assert [(t["kind"], t["sequence"]) for t in ticks] == [("quote", 3), ("trade", 1)]
    forward = answered(quant, "ticks", [T0 + timedelta(seconds=3)], direction="forward")
    assert (forward[0]["kind"], forward[0]["sequence"]) == ("quote", 1)  # the lowest of the tie


def test_times_come_back_in_the_order_asked_with_repeats(market, quant):
    late, early = T0 + timedelta(seconds=121), T0 - timedelta(seconds=1)
    matches = answered(quant, "quotes", [late, early, late])
    assert matches[1] is None
    assert matches[0] == matches[2]
    assert matches[0]["bid"] == 100.3


def test_a_tolerance_in_iso_8601_and_a_markout_offset(market, quant):
    # The quote 5 minutes after each fill-like time, within a minute of it.
    response = ask(quant, "quotes", [T0], direction="forward", offset="PT1M", tolerance="PT1M")
    body = response.json()
    assert (body["offset"], body["tolerance"], body["direction"]) == (60.0, 60.0, "forward")
    assert body["results"][0]["match"]["ts"] == iso(T0 + timedelta(seconds=120))
    stale = answered(quant, "quotes", [T0 + timedelta(seconds=119)], tolerance="PT1M")
    assert stale == [None]  # the quote at T0 + 5 s is 114 s old


def test_bars_answer_their_bar(market, quant):
    (minute,) = answered(quant, "minute-bars", [T0 + timedelta(seconds=90)])
    assert (minute["ts"], minute["close"]) == (iso(T0 + timedelta(minutes=1)), 101.5)
    (daily,) = answered(quant, "daily-bars", [START - timedelta(hours=1)])
    assert daily["ts"] == iso(START - timedelta(days=2))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"symbol": "NOPE", "at": "2024-05-13T14:00:00Z"}, "symbol"),
        ({"at": "2024-05-13T14:00:00Z"}, "symbol"),
        ({"symbol": "AAPL"}, "at"),
        ({"symbol": "AAPL", "at": "yesterday"}, "at"),
        ({"symbol": "AAPL", "at": "9999-12-31T23:59:59Z"}, "at"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "tolerance": "-1"}, "tolerance"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "tolerance": "-PT5M"}, "tolerance"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "tolerance": "NaN"}, "tolerance"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "tolerance": "1e39"}, "tolerance"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "tolerance": "soon"}, "tolerance"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "offset": "P99999999999D"}, "offset"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "direction": "up"}, "direction"),
        ({"symbol": "AAPL", "at": "2024-05-13T14:00:00Z", "allow_exact": "maybe"}, "allow_exact"),
    ],
)
def test_bad_input_is_a_400_naming_the_parameter(market, quant, query, field):
    response = quant.get(URL.format("quotes"), query)
    assert response.status_code == 400, response.content
    assert field in response.json()


def test_more_than_a_hundred_times_are_refused(market, quant):
    times = [T0 + timedelta(seconds=s) for s in range(101)]
    response = ask(quant, "quotes", times)
    assert response.status_code == 400
    assert "at" in response.json()
    assert ask(quant, "quotes", times[:100]).status_code == 200


def test_a_hundred_times_fit_in_the_request_line_gunicorn_reads():
    """gunicorn refuses a request line over 4,094 bytes (limit_request_line): the bound on the
    times keeps a request of UTC times with microseconds, every option given, inside it."""
    at = iso(T0 + timedelta(microseconds=123456))
    query = urlencode(
        {"symbol": "BRK.B", "at": [at] * 100, "direction": "backward", "tolerance": "PT5M",
         "allow_exact": "false", "offset": "P1DT2H3M4.5S"},
        doseq=True,
    )  # fmt: skip
    assert len(f"GET {URL.format('minute-bars')}?{query} HTTP/1.1") < 4094


@pytest.mark.parametrize("kind", list(FUNCTIONS))
def test_a_hundred_times_are_one_statement(market, quant, kind, django_assert_max_num_queries):
    times = [T0 + timedelta(seconds=s) for s in range(100)]
    # The session and user, the symbol's resolution, the declaration, the join itself.
    with django_assert_max_num_queries(8):
        assert len(answered(quant, kind, times)) == 100


def test_anonymous_users_are_refused(market, client):
    for kind in FUNCTIONS:
        query = {"symbol": "AAPL", "at": iso(T0)}
        assert client.get(URL.format(kind), query).status_code in (401, 403)


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nothing_is_written_here(market, quant, method):
    before = Tick.objects.count()
    response = getattr(quant, method)(URL.format("quotes"), {"symbol": "AAPL"}, format="json")
    assert response.status_code == 405, response.content
    assert Tick.objects.count() == before
