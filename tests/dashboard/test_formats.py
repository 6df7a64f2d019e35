"""Numbers that mean what they say: a price with its instrument's tick size (EURUSD's five
decimals, not two), a header that leaves out a field the instrument lacks (no "FX · · USD"),
a signal's horizon in words ("2 days", not Python's "2 days, 0:00:00") on the dashboard and
in the admin, while the API keeps its machine format."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest

from marketdata.models import Instrument
from qvp_site.display import duration_text, price_places, price_text
from signals.models import Signal
from tests.clients import client_of


@pytest.mark.parametrize(
    ("tick", "places"),
    [
        (Decimal("0.0100000000"), 2),  # as the column stores it: ten places
        (Decimal("0.0000100000"), 5),
        (Decimal("0.25"), 2),
        (Decimal("1"), 0),
        (Decimal("5"), 0),
        (0.00001, 5),
        (None, None),
        (Decimal("0"), None),
    ],
)
def test_a_tick_size_gives_its_decimals(tick, places):
    assert price_places(tick) == places


@pytest.mark.parametrize(
    ("value", "tick", "extra", "text"),
    [
        (1.08345, Decimal("0.00001"), 0, "1.08345"),
        (1.08, Decimal("0.00001"), 0, "1.08000"),
        (Decimal("190.2300000000"), Decimal("0.01"), 0, "190.23"),
        (60000.5, Decimal("0.01"), 0, "60,000.50"),
        (190.235, Decimal("0.01"), 1, "190.235"),  # a mid on half a tick
        (Decimal("190.2300"), None, 0, "190.23"),  # no tick: its own decimals, two at least
        (Decimal("0.000012345"), None, 0, "0.00001234"),  # eight at most
        (None, Decimal("0.01"), 0, ""),  # empty, so that a default filter applies
    ],
)
def test_prices_read_with_their_tick_sizes_decimals(value, tick, extra, text):
    assert price_text(value, tick, extra) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (timedelta(days=2), "2 days"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=4), "4 hours"),
        (timedelta(minutes=30), "30 minutes"),
        (timedelta(days=1, hours=12), "1 day 12 hours"),
        (timedelta(seconds=90), "1 minute 30 seconds"),
        (timedelta(0), "0 seconds"),
        (-timedelta(hours=1), "-1 hour"),
    ],
)
def test_durations_read_in_words(value, text):
    assert duration_text(value) == text


@pytest.fixture
def operator(demo, db):
    return client_of(demo.operator)


def test_eurusds_page_shows_its_price_with_five_decimals_and_no_empty_field(operator):
    eurusd = Instrument.objects.get(symbol="EURUSD")
    assert (eurusd.exchange, eurusd.tick_size) == ("", Decimal("0.00001"))
    html = operator.get("/instruments/EURUSD/").content.decode()
    assert re.search(r'<span class="muted">FX · USD</span>', html)
    assert "· ·" not in html
    figure = re.search(r'<span class="figure">([^<]*)</span>', html).group(1)
    assert re.fullmatch(r"1\.\d{5}", figure), figure
    # The candles' price scale moves by the tick and shows its decimals.
    assert '"priceFormat": {"type": "price", "precision": 5, "minMove": 1e-05}' in html


def test_an_equitys_page_shows_two_decimals_and_its_exchange(operator):
    html = operator.get("/instruments/AAPL/").content.decode()
    assert '<span class="muted">equity · XNAS · USD</span>' in html
    figure = re.search(r'<span class="figure">([^<]*)</span>', html).group(1)
    assert re.fullmatch(r"\d{1,3}(,\d{3})*\.\d{2}", figure), figure


def test_the_portfolios_fills_show_each_instruments_decimals(operator):
    html = operator.get("/portfolio/").content.decode()
    for symbol, places in (("EURUSD", 5), ("SPY", 2)):
        prices = re.findall(
            rf'<td>{symbol}</td><td>(?:buy|sell)</td><td class="num">[^<]*</td>\s*'
            r'<td class="num">([^<]*)</td>',
            html,
        )
        assert prices, symbol
        assert all(re.fullmatch(rf"[\d,]+\.\d{{{places}}}", p) for p in prices), prices


def test_horizons_read_in_words_on_the_dashboard_and_in_the_admin(operator):
    assert set(Signal.objects.values_list("horizon", flat=True)) == {
        timedelta(days=2),
        timedelta(days=5),
    }
    pages = [
        operator.get("/signals/").content.decode(),
        operator.get("/admin/signals/signal/").content.decode(),
        operator.get(f"/admin/signals/signal/{Signal.objects.first().pk}/change/").content.decode(),
    ]
    for html in pages:
        assert not re.search(r"\d days?, \d+:\d\d:\d\d", html)  # timedelta's str
        assert re.search(r">\s*[25] days\s*<", html)


def test_the_api_keeps_its_machine_format_for_horizons(operator):
    body = operator.get("/api/v1/signals/?limit=1").json()
    row = (body["results"] if isinstance(body, dict) else body)[0]
    assert row["horizon"] in {"2 00:00:00", "5 00:00:00"}
