"""The market-data API: authentication, filters, cursor pages, buckets against hand-computed
values, bad input answered 400 naming the parameter, and a bounded number of queries."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings
from drf_spectacular.drainage import GENERATOR_STATS
from rest_framework.test import APIClient

from marketdata.api import TimeCursorPagination
from marketdata.models import DailyBar, Instrument, MinuteBar, Tick
from qvp_site.db import engine, partitions
from qvp_site.db.intervals import parse_interval
from qvp_site.tokens import create_token
from tests.marketdata.conftest import START

H = timedelta(hours=1)


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def bar(instrument, minutes, o, h, l, c, v):  # noqa: E741 - OHLC
    ts = START + timedelta(minutes=minutes)
    return MinuteBar(instrument=instrument, ts=ts, open=o, high=h, low=l, close=c, volume=v)


@pytest.fixture
def user(django_user_model):
    # No password: hashing one costs half a second a test, and force_login needs none.
    return django_user_model.objects.create_user("quant")


@pytest.fixture
def api(user) -> APIClient:
    """A client authenticated without queries of its own, so that counts are the view's."""
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def symbols(instrument):
    """AAPL and MSFT (equities) and EURUSD (inactive FX): enough for input checks."""
    msft = Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")
    Instrument.objects.create(symbol="EURUSD", asset_class="fx", currency="USD", active=False)
    return instrument, msft


@pytest.fixture
def few_partitions(db):
    """The partitions the market fixture's rows fall in, on the plain engine: a handful rather
    than partitioned_for's year, as each test makes them again inside its transaction."""
    if engine.is_timescaledb():
        return
    for table, width, start, end in [
        ("marketdata_minutebar", "7 days", START, START + timedelta(days=8)),
        ("marketdata_dailybar", "1 year", START - timedelta(days=7), START),
        ("marketdata_tick", "1 day", START, START),
    ]:
        partitions.ensure_partitions(table, parse_interval(width), start, end)


@pytest.fixture
def market(symbols, few_partitions):
    """AAPL minute bars whose buckets are worked out by hand in the tests, a MSFT bar that no
    AAPL query may return, AAPL daily bars and ticks, three of them sharing a timestamp."""
    instrument, msft = symbols
    MinuteBar.objects.bulk_create(
        [
            bar(instrument, 0, 10, 11, 9, 10.5, 100),
            bar(instrument, 1, 10.5, 12, 10, 11, 50),
            bar(instrument, 59, 11, 11.5, 8, 9, 25),
            bar(instrument, 60, 9, 9.5, 8.5, 9.2, 10),
            bar(instrument, 180, 9.2, 10, 9, 9.8, 5),  # hour 2 has no bars
            bar(instrument, 60 * 24 * 7 + 5, 20, 21, 19, 20.5, 7),  # the next Monday
            bar(msft, 0, 400, 401, 399, 400.5, 1000),
        ]
    )
    DailyBar.objects.bulk_create(
        DailyBar(
            instrument=instrument, ts=START - timedelta(days=d), open=5, high=6, low=4, close=5
        )
        for d in (1, 2, 3)
    )
    Tick.objects.bulk_create(
        Tick(instrument=instrument, ts=START + timedelta(seconds=s), sequence=q, price=p, size=1)
        for s, q, p in [(0, 0, 10.0), (0, 1, 10.1), (0, 2, 10.2), (1, 0, 10.3), (2, 0, 10.4)]
    )
    return instrument


ENDPOINTS = [
    "/api/v1/",
    "/api/v1/instruments/",
    "/api/v1/instruments/1/",
    "/api/v1/bars/?symbol=AAPL",
    f"/api/v1/bars/buckets/?symbol=AAPL&width=1h&start={iso(START)}&end={iso(START + H)}",
    "/api/v1/ticks/?symbol=AAPL",
    "/api/v1/options/quotes/?symbol=AAPL",
    "/api/v1/prices/latest/?symbols=AAPL",
    "/api/schema/",
    "/api/docs/",
]


@pytest.mark.parametrize("url", ENDPOINTS)
def test_every_endpoint_refuses_anonymous_users(client, market, url):
    assert client.get(url).status_code in (401, 403)


def test_a_token_authenticates(market, user):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(user, 'api test')[1]}")
    assert client.get("/api/v1/instruments/").status_code == 200
    client.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    # 403 rather than 401: session authentication comes first and sends no challenge.
    assert client.get("/api/v1/instruments/").status_code in (401, 403)


def test_a_session_authenticates(client, market, user):
    client.force_login(user)
    assert client.get("/api/v1/bars/?symbol=AAPL").status_code == 200


# --- Instruments -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["AAPL", "EURUSD", "MSFT"]),
        ("?symbol=MSFT", ["MSFT"]),
        ("?symbol=NOPE", []),
        ("?asset_class=fx", ["EURUSD"]),
        ("?active=false", ["EURUSD"]),
        ("?active=true&asset_class=equity", ["AAPL", "MSFT"]),
    ],
)
def test_instruments_filter(api, symbols, query, expected):
    body = api.get(f"/api/v1/instruments/{query}").json()
    assert [i["symbol"] for i in body["results"]] == expected
    assert body["count"] == len(expected)


def test_an_instrument_by_id_and_no_writes(api, market):
    body = api.get(f"/api/v1/instruments/{market.id}/").json()
    assert (body["symbol"], body["asset_class"], body["exchange"]) == ("AAPL", "equity", "XNAS")
    assert api.post("/api/v1/instruments/", {"symbol": "X", "asset_class": "fx"}).status_code == 405
    assert api.get("/api/v1/instruments/999999/").status_code == 404


# --- Bars ------------------------------------------------------------------------------------
def closes(response) -> list[float]:
    assert response.status_code == 200, response.content
    return [b["close"] for b in response.json()["results"]]


def test_bars_of_a_symbol_in_time_order(api, market):
    response = api.get("/api/v1/bars/?symbol=AAPL")
    assert closes(response) == [10.5, 11, 9, 9.2, 9.8, 20.5]
    first = response.json()["results"][0]
    assert first == {
        "ts": iso(START),
        "open": 10,
        "high": 11,
        "low": 9,
        "close": 10.5,
        "volume": 100,
        "vwap": None,
        "trade_count": None,
    }


def test_bars_between_start_and_end_half_open(api, market):
    url = (
        f"/api/v1/bars/?symbol=AAPL&start={iso(START + timedelta(minutes=1))}&end={iso(START + H)}"
    )
    assert closes(api.get(url)) == [11, 9]


def test_bars_accept_dates_and_offsets(api, market):
    assert closes(api.get("/api/v1/bars/?symbol=AAPL&start=2024-05-20")) == [20.5]
    # 02:00+01:00 is 01:00 UTC; a "+" left unencoded arrives as a space and is still read.
    url = "/api/v1/bars/?symbol=AAPL&start=2024-05-13T02:00:00 01:00"
    assert closes(api.get(url)) == [9.2, 9.8, 20.5]


def test_daily_bars_with_timeframe_1d(api, market):
    response = api.get("/api/v1/bars/?symbol=AAPL&timeframe=1d")
    assert [b["ts"] for b in response.json()["results"]] == [
        iso(START - timedelta(days=d)) for d in (3, 2, 1)
    ]


def test_cursor_pages_cover_every_bar_once(api, market, django_assert_max_num_queries):
    url, seen, pages = "/api/v1/bars/?symbol=AAPL&page_size=2", [], 0
    while url:
        with django_assert_max_num_queries(2):  # the instrument, the page
            body = api.get(url).json()
        seen += [b["ts"] for b in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 3
    assert seen == sorted(set(seen))
    assert len(seen) == 6


def test_cursor_pages_back(api, market):
    first = api.get("/api/v1/bars/?symbol=AAPL&page_size=4").json()
    second = api.get(first["next"]).json()
    assert closes_of(api.get(second["previous"]).json()) == closes_of(first)


def closes_of(body: dict) -> list[float]:
    return [b["close"] for b in body["results"]]


def test_page_size_is_capped(api, market, monkeypatch):
    monkeypatch.setattr(TimeCursorPagination, "max_page_size", 3)
    assert len(api.get("/api/v1/bars/?symbol=AAPL&page_size=1000").json()["results"]) == 3
    assert settings.API_PAGE_SIZE <= settings.API_MAX_PAGE_SIZE


# --- Buckets ---------------------------------------------------------------------------------
def buckets(api, **params) -> dict:
    params = {"symbol": "AAPL", **params}
    response = api.get("/api/v1/bars/buckets/", params)
    assert response.status_code == 200, response.content
    return response.json()


def ohlcv(body: dict) -> list[tuple]:
    return [
        (b["bucket"], b["open"], b["high"], b["low"], b["close"], b["volume"], b["bar_count"])
        for b in body["buckets"]
    ]


def test_hourly_buckets_against_hand_computed_values(api, market):
    body = buckets(api, width="1h", start=iso(START), end=iso(START + timedelta(days=14)))
    assert ohlcv(body) == [
        (iso(START), 10, 12, 8, 9, 175, 3),
        (iso(START + H), 9, 9.5, 8.5, 9.2, 10, 1),
        (iso(START + 3 * H), 9.2, 10, 9, 9.8, 5, 1),
        (iso(START + timedelta(days=7)), 20, 21, 19, 20.5, 7, 1),
    ]
    # The aggregates were never refreshed for these bars: the bars answer.
    assert (body["source"], body["width"]) == ("marketdata_minutebar", "1 hours")


def test_weekly_and_monthly_buckets(api, market):
    end = iso(START + timedelta(days=14))
    assert ohlcv(buckets(api, width="1w", start=iso(START), end=end)) == [
        (iso(START), 10, 12, 8, 9.8, 190, 5),
        (iso(START + timedelta(days=7)), 20, 21, 19, 20.5, 7, 1),
    ]
    assert ohlcv(buckets(api, width="1mo", start=iso(START), end=end)) == [
        ("2024-05-01T00:00:00Z", 10, 21, 8, 20.5, 197, 6)
    ]


def test_buckets_of_an_interval_and_of_a_partial_range(api, market):
    # 90-minute buckets start at 00:00, 01:30, 03:00: the range from 01:00 holds only the
    # 01:00 bar of the first one, which keeps its own start.
    body = buckets(api, width="90 minutes", start=iso(START + H), end=iso(START + 4 * H))
    assert ohlcv(body) == [
        (iso(START), 9, 9.5, 8.5, 9.2, 10, 1),
        (iso(START + 3 * H), 9.2, 10, 9, 9.8, 5, 1),
    ]


def test_gapfill_adds_empty_buckets_for_the_half_open_range(api, market):
    body = buckets(api, width="1h", start=iso(START), end=iso(START + 4 * H), gapfill="true")
    assert ohlcv(body) == [
        (iso(START), 10, 12, 8, 9, 175, 3),
        (iso(START + H), 9, 9.5, 8.5, 9.2, 10, 1),
        (iso(START + 2 * H), None, None, None, None, None, 0),
        (iso(START + 3 * H), 9.2, 10, 9, 9.8, 5, 1),
    ]


def test_buckets_of_daily_bars(api, market):
    body = buckets(
        api, width="1w", timeframe="1d", start=iso(START - timedelta(days=7)), end=iso(START)
    )
    assert (body["source"], ohlcv(body)) == (
        "marketdata_dailybar",
        [(iso(START - timedelta(days=7)), 5, 6, 4, 5, None, 3)],
    )


# --- Ticks and prices ------------------------------------------------------------------------
def test_ticks_sharing_a_timestamp_page_without_loss(api, market):
    url, prices = "/api/v1/ticks/?symbol=AAPL&page_size=2", []
    while url:
        body = api.get(url).json()
        prices += [t["price"] for t in body["results"]]
        url = body["next"]
    assert prices == [10.0, 10.1, 10.2, 10.3, 10.4]


def test_ticks_between(api, market):
    url = f"/api/v1/ticks/?symbol=AAPL&start={iso(START + timedelta(seconds=1))}"
    assert [t["sequence"] for t in api.get(url).json()["results"]] == [0, 0]


def test_latest_prices_as_of_a_time(api, market):
    as_of = iso(START + timedelta(minutes=30))
    body = api.get(f"/api/v1/prices/latest/?symbols=MSFT,AAPL,EURUSD&as_of={as_of}").json()
    assert body == {
        "as_of": as_of,
        "prices": [
            {"symbol": "MSFT", "ts": iso(START), "price": 400.5, "source": "minute"},
            {
                "symbol": "AAPL",
                "ts": iso(START + timedelta(minutes=1)),
                "price": 11,
                "source": "minute",
            },
            {"symbol": "EURUSD", "ts": None, "price": None, "source": None},
        ],
    }


# --- Bad input -------------------------------------------------------------------------------
BUCKET = {"symbol": "AAPL", "width": "1h", "start": iso(START), "end": iso(START + H)}


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("bars", {}, "symbol"),
        ("bars", {"symbol": "NOPE"}, "symbol"),
        ("bars", {"symbol": "A\x00B"}, "symbol"),
        ("bars", {"symbol": "AAPL", "start": "yesterday"}, "start"),
        ("bars", {"symbol": "AAPL", "end": "2024-13-45"}, "end"),
        ("bars", {"symbol": "AAPL", "start": "2024-05-14", "end": "2024-05-13"}, "start"),
        ("bars", {"symbol": "AAPL", "start": "0001-01-01T00:00:00+01:00"}, "start"),
        ("bars", {"symbol": "AAPL", "start": "9999-12-31"}, "start"),
        ("bars", {"symbol": "AAPL", "timeframe": "5m"}, "timeframe"),
        ("bars/buckets", {**BUCKET, "width": "1 fortnight"}, "width"),
        ("bars/buckets", {**BUCKET, "width": "99999999999 days"}, "width"),
        ("bars/buckets", {**BUCKET, "width": "1 second"}, "width"),
        ("bars/buckets", {**BUCKET, "width": "20 years"}, "width"),
        ("bars/buckets", {**BUCKET, "width": "1h", "timeframe": "1d"}, "width"),
        ("bars/buckets", {**BUCKET, "width": "1m", "start": "1990-01-01"}, "width"),
        ("bars/buckets", {k: v for k, v in BUCKET.items() if k != "width"}, "width"),
        ("bars/buckets", {k: v for k, v in BUCKET.items() if k != "start"}, "start"),
        ("bars/buckets", {**BUCKET, "start": iso(START + H)}, "start"),
        ("bars/buckets", {**BUCKET, "gapfill": "perhaps"}, "gapfill"),
        ("bars/buckets", {**BUCKET, "symbol": "NOPE"}, "symbol"),
        ("ticks", {}, "symbol"),
        ("ticks", {"symbol": "AAPL", "end": "soon"}, "end"),
        ("prices/latest", {}, "symbols"),
        ("prices/latest", {"symbols": "AAPL,NOPE"}, "symbols"),
        ("prices/latest", {"symbols": ","}, "symbols"),
        ("prices/latest", {"symbols": "AAPL", "as_of": "noon"}, "as_of"),
        ("instruments", {"asset_class": "bond"}, "asset_class"),
        ("instruments", {"active": "perhaps"}, "active"),
    ],
)
def test_bad_input_answers_400_naming_the_field(api, symbols, path, params, field):
    response = api.get(f"/api/v1/{path}/", params)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/bars/?symbol=AAPL&cursor=not-a-cursor",
        "/api/v1/bars/?symbol=AAPL&page_size=-5",
        "/api/v1/instruments/?page=999",
        "/api/v1/instruments/?page=x",
        "/api/v1/prices/latest/?symbols=" + ",".join(f"S{i}" for i in range(1001)),
    ],
)
def test_odd_input_is_never_a_server_error(api, symbols, url):
    assert api.get(url).status_code < 500


# --- Queries per call ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "most"),
    [
        ("/api/v1/instruments/", 2),  # count, page
        ("/api/v1/instruments/?asset_class=equity&active=true", 2),
        ("/api/v1/bars/?symbol=AAPL", 2),  # instrument, page
        ("/api/v1/bars/?symbol=AAPL&timeframe=1d", 2),
        # instrument; the aggregate's edges, bars outside them (twice at most); the buckets
        (f"/api/v1/bars/buckets/?symbol=AAPL&width=1h&start={iso(START)}&end=2024-06-01", 5),
        (f"/api/v1/bars/buckets/?symbol=AAPL&width=1w&start={iso(START)}&end=2024-06-03", 5),
        ("/api/v1/bars/buckets/?symbol=AAPL&width=15m&start=2024-05-13&end=2024-05-14", 2),
        ("/api/v1/ticks/?symbol=AAPL", 2),
        ("/api/v1/prices/latest/?symbols=AAPL,MSFT,EURUSD", 2),  # instruments, prices
    ],
)
def test_each_call_makes_a_bounded_number_of_queries(
    api, market, django_assert_max_num_queries, url, most
):
    with django_assert_max_num_queries(most):
        assert api.get(url).status_code == 200


# --- Schema and docs -------------------------------------------------------------------------
def test_the_schema_generates_without_warnings_and_validates(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=StringIO()
    )
    text = out.read_text()
    for path in ("/api/v1/bars/", "/api/v1/bars/buckets/", "/api/v1/ticks/", "/api/v1/prices/"):
        assert f"  {path}" in text
    assert "tokenAuth" in text


# The docs render their asset URLs with {% static %}; the manifest storage would need a
# collectstatic run first (prepare_site does it), so the test resolves them plainly.
PLAIN_STATIC = {
    **settings.STORAGES,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}


@override_settings(STORAGES=PLAIN_STATIC)
def test_docs_serve_their_assets_from_this_site_never_a_cdn(client, user):
    client.force_login(user)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 3
    # The page's start-up script is served by the page itself: no inline script for the CSP;
    # its page styles are a file of the site's (templates/drf_spectacular/swagger_ui.html).
    own = ("/static/drf_spectacular_sidecar/", "/api/docs/?script=", "/static/qvp/swagger.css")
    assert all(a.startswith(own) for a in assets), assets
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "an inline script"
    assert "http://" not in html
    assert "https://" not in html
    schema = client.get("/api/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/bars/buckets/" in schema.content
