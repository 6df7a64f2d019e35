"""Option quotes in the API (``GET /api/v1/options/quotes/``, marketdata/api_options.py): every
logged-in user reads them, nobody writes them here; the underlying is named by its symbol on
the request's date; expiry, strikes, right and time narrow them; ``known_at`` reads them as
known then; bad parameters are a 400 naming the parameter; pages follow the contract's whole
key, through a chain bigger than DRF's offset cap, in a bounded number of queries; and the
application's database role reads them as the site does."""

from __future__ import annotations

from base64 import b64encode
from datetime import date, datetime, timedelta
from itertools import product
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group, Permission
from django.db import connection
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from marketdata.models import Instrument, OptionQuote, OptionQuoteRevision
from marketdata.security_master import Terms, set_terms
from qvp_site.auditors import AUDITORS
from qvp_site.operators import OPERATORS
from tests.clients import client_of
from tests.clients import user_in as _user
from tests.listings import listed
from tests.marketdata.conftest import START

URL = "/api/v1/options/quotes/"
M = timedelta(minutes=1)
H = timedelta(hours=1)
JUNE, JULY = date(2024, 6, 21), date(2024, 7, 19)
# Each request of a logged-in user: its session and user, and its transaction (a savepoint in
# the test's, its release) which begins by naming who acts (tests/trading/api/test_lists.py).
REQUEST = 5


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def nobody(db):
    return _user("nobody")


@pytest.fixture
def operator(db):
    """Holds the permissions to write market data, option quotes included."""
    return _user("operator", OPERATORS)


@pytest.fixture
def auditor(db):
    user = _user("audrey", AUDITORS, "everything")
    Group.objects.get(name="everything").permissions.set(Permission.objects.all())
    return user


@pytest.fixture
def chain(instrument, partitioned_for):
    """AAPL's quotes at three minutes from START: two expiries, two strikes, calls and puts
    (24 quotes); and one of MSFT's, which no AAPL read may show."""
    OptionQuote.objects.bulk_create(
        OptionQuote(
            underlying=instrument,
            ts=START + n * M,
            expiry=expiry,
            strike=strike,
            right=right,
            bid=1,
            ask=2,
            delta=0.5 if right == "C" else -0.5,
        )
        for n, expiry, strike, right in product(range(3), (JUNE, JULY), (180.0, 190.5), "CP")
    )
    msft = Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")
    OptionQuote.objects.create(underlying=msft, ts=START, expiry=JUNE, strike=400, right="C")
    return instrument


def rows(client: APIClient, query: str) -> list[dict]:
    response = client.get(f"{URL}?{query}")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def keys(client: APIClient, query: str) -> list[tuple]:
    return [(r["ts"], r["expiry"], r["strike"], r["right"]) for r in rows(client, query)]


def in_order(quotes) -> list[tuple]:
    """The quotes' keys as the API writes them, in the key's order."""
    found = sorted((q.ts, q.expiry, q.strike, q.right) for q in quotes)
    return [(iso(ts), expiry.isoformat(), strike, right) for ts, expiry, strike, right in found]


# --- Who reads, and nobody writes -------------------------------------------------------------
@pytest.mark.parametrize("reader", ["nobody", "auditor", "operator"])
def test_every_logged_in_user_reads_an_underlyings_quotes_in_key_order(request, chain, reader):
    client = client_of(request.getfixturevalue(reader))
    found = rows(client, "symbol=AAPL")
    assert len(found) == 24
    assert [tuple(r[k] for k in ("ts", "expiry", "strike", "right")) for r in found] == in_order(
        OptionQuote.objects.filter(underlying=chain)
    )
    assert set(found[0]) == {
        "ts", "expiry", "strike", "right", "bid", "ask", "last",
        "iv", "delta", "gamma", "theta", "vega", "rho",
    }  # fmt: skip
    assert keys(client, "symbol=MSFT") == [(iso(START), "2024-06-21", 400.0, "C")]


def test_anonymous_requests_are_refused(chain):
    response = APIClient().get(f"{URL}?symbol=AAPL")
    assert response.status_code in (401, 403)


@pytest.mark.parametrize("writer", ["operator", "auditor", "nobody"])
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_nobody_writes_quotes_here(request, chain, writer, method):
    """Quotes come from loads: even an operator, who may write them, gets a 405."""
    client = client_of(request.getfixturevalue(writer))
    body = {"symbol": "AAPL", "ts": iso(START), "expiry": "2024-06-21", "strike": 1, "right": "C"}
    response = getattr(client, method)(URL, body, format="json")
    assert response.status_code == 405, response.content
    assert OptionQuote.objects.count() == 25


# --- Filters ---------------------------------------------------------------------------------
def test_filters_narrow_the_quotes(chain, nobody):
    client = client_of(nobody)
    everything = OptionQuote.objects.filter(underlying=chain)

    def expect(query: str, **lookups) -> None:
        assert keys(client, f"symbol=AAPL&{query}") == in_order(everything.filter(**lookups))

    expect("expiry=2024-07-19", expiry=JULY)
    expect("strike_min=190", strike__gte=190)
    expect("strike_max=180", strike__lte=180)
    expect("strike_min=180&strike_max=180", strike=180)
    assert keys(client, "symbol=AAPL&strike_min=185&strike_max=189") == []
    expect("right=C", right="C")
    expect("right=call", right="C")
    expect("right=put", right="P")
    expect(f"start={iso(START + M)}", ts__gte=START + M)
    expect(f"start={iso(START + M)}&end={iso(START + 2 * M)}", ts=START + M)
    expect(f"end={iso(START)}", ts__lt=START)
    expect(
        f"expiry=2024-06-21&right=P&strike_min=190&start={iso(START + 2 * M)}",
        expiry=JUNE,
        right="P",
        strike__gte=190,
        ts__gte=START + 2 * M,
    )


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("", "symbol"),
        ("symbol=NOPE", "symbol"),
        ("symbol=AAPL&right=X", "right"),
        ("symbol=AAPL&right=c", "right"),
        ("symbol=AAPL&strike_min=abc", "strike_min"),
        ("symbol=AAPL&strike_max=NaN", "strike_max"),
        ("symbol=AAPL&strike_min=1e400", "strike_min"),
        ("symbol=AAPL&strike_min=200&strike_max=100", "strike_min"),
        ("symbol=AAPL&expiry=tomorrow", "expiry"),
        ("symbol=AAPL&expiry=2024-02-30", "expiry"),
        ("symbol=AAPL&known_at=soon", "known_at"),
        ("symbol=AAPL&start=2024-06-01&end=2024-05-01", "start"),
        ("symbol=AAPL&since=soon", "since"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(chain, nobody, query, parameter):
    response = client_of(nobody).get(f"{URL}?{query}")
    assert response.status_code == 400, response.content
    assert parameter in response.json()


def test_the_underlying_is_the_instrument_that_bore_the_symbol_on_starts_date(
    partitioned_for, nobody
):
    """Named as every market-data list names it: FB, renamed META in 2022, names META's
    quotes from a start in 2020; FB today names nothing, a 400 naming the symbol."""
    meta = listed("FB", date(2012, 5, 18), Terms("FB", "USD", name="Facebook Inc", mic="XNAS"))
    set_terms(meta.id, date(2022, 6, 9), None, Terms("META", "USD", name="Meta", mic="XNAS"))
    OptionQuote.objects.create(underlying=meta, ts=START, expiry=JUNE, strike=470, right="C")
    client = client_of(nobody)
    expected = [(iso(START), "2024-06-21", 470.0, "C")]
    assert keys(client, "symbol=FB&start=2020-01-01") == expected
    assert keys(client, "symbol=META") == expected
    refused = client.get(f"{URL}?symbol=FB")
    assert refused.status_code == 400
    assert "FB" in str(refused.json()["symbol"])


# --- As known at a moment --------------------------------------------------------------------
@pytest.fixture
def revised(instrument, partitioned_for):
    """A quote learnt two hours ago and revised now (its bid 1.0 then, 1.5 since), and a
    quote learnt only now. T, an hour ago, lies between."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT now()")
        now = cursor.fetchone()[0]
    contract = {"expiry": JUNE, "strike": 180.0, "right": "C"}
    quote = OptionQuote.objects.create(underlying=instrument, ts=START, bid=1.5, ask=2, **contract)
    OptionQuoteRevision.objects.create(
        row_id=quote.pk, underlying=instrument, ts=START, bid=1.0, ask=2, change="revised",
        known_from=now - 2 * H, known_until=now, **contract,
    )  # fmt: skip
    OptionQuote.objects.create(underlying=instrument, ts=START + M, bid=3, ask=4, **contract)
    return now - H


def test_known_at_reads_the_quotes_as_known_then(revised, nobody):
    client = client_of(nobody)
    assert [(r["ts"], r["bid"]) for r in rows(client, "symbol=AAPL")] == [
        (iso(START), 1.5),
        (iso(START + M), 3.0),
    ]
    then = rows(client, f"symbol=AAPL&known_at={iso(revised)}")
    assert [(r["ts"], r["bid"]) for r in then] == [(iso(START), 1.0)]
    assert rows(client, f"symbol=AAPL&known_at={iso(revised - 2 * H)}") == []


def test_the_application_role_reads_quotes_as_known(revised, nobody, as_app_role):
    """As the served site runs: trading_app reads the table, its revisions and the function
    that joins them."""
    client = client_of(nobody)
    assert len(rows(client, "symbol=AAPL")) == 2
    assert [r["bid"] for r in rows(client, f"symbol=AAPL&known_at={iso(revised)}")] == [1.0]


# --- Pages -----------------------------------------------------------------------------------
def walk(client: APIClient, url: str, link: str = "next") -> list[dict]:
    """Every page from ``url`` on, following ``link``."""
    pages = []
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        pages.append(response.json())
        url = pages[-1][link]
    return pages


def test_pages_follow_the_key_forwards_and_back(chain, nobody):
    client = client_of(nobody)
    pages = walk(client, f"{URL}?symbol=AAPL&right=C&page_size=5")
    assert [len(p["results"]) for p in pages] == [5, 5, 2]
    forwards = [(r["ts"], r["expiry"], r["strike"]) for p in pages for r in p["results"]]
    expected = in_order(OptionQuote.objects.filter(underlying=chain, right="C"))
    assert forwards == [key[:3] for key in expected]
    back = walk(client, pages[-1]["previous"], link="previous")
    assert [p["results"] for p in back] == [p["results"] for p in reversed(pages[:-1])]


def test_a_chain_bigger_than_drfs_offset_cap_pages_through(instrument, partitioned_for, nobody):
    """1,200 contracts quoted at one time: DRF's cursor would place pages by an offset past
    the rows of that time, capped at 1,000, and loop; these follow the contract's key."""
    OptionQuote.objects.bulk_create(
        OptionQuote(underlying=instrument, ts=START, expiry=JUNE, strike=s, right=r, bid=1, ask=2)
        for s, r in product(range(1, 601), "CP")
    )
    pages = walk(client_of(nobody), f"{URL}?symbol=AAPL&page_size=250")
    found = [(r["strike"], r["right"]) for p in pages for r in p["results"]]
    assert len(pages) == 5
    assert found == sorted(product(map(float, range(1, 601)), "CP"))


def forged(position: str) -> str:
    """A cursor at ``position``, encoded as DRF encodes the cursors it writes."""
    return b64encode(urlencode({"p": position}).encode()).decode()


@pytest.mark.parametrize(
    "position",
    [
        "garbage",
        "2024-05-13T00:00:00|2024-06-21|180.0|C",  # a time without its offset
        "2024-05-13T00:00:00+00:00|2024-06-31|180.0|C",
        "2024-05-13T00:00:00+00:00|2024-06-21|nan|C",
        "2024-05-13T00:00:00+00:00|2024-06-21|1e400|C",
        "2024-05-13T00:00:00+00:00|2024-06-21|180.0|X",
        "2024-05-13T00:00:00+00:00|2024-06-21|180.0|C|extra",
        "2024-05-13T00:00:00+00:00|2024-06-21",
        "2024-05-13|2024-06-21|180.0|C",
    ],
)
def test_a_cursor_no_page_wrote_is_a_404(chain, nobody, position):
    response = client_of(nobody).get(URL, {"symbol": "AAPL", "cursor": forged(position)})
    assert response.status_code == 404, response.content


@pytest.mark.parametrize(
    ("position", "after"),
    [
        ("9999-12-31T23:59:59-14:00|2024-06-21|180.0|C", 0),  # the calendar's ends
        ("0001-01-01T00:00:00+14:00|2024-06-21|180.0|C", 24),
        ("0001-01-01T00:00:00+14:00", 24),  # a time alone: the rows after it
        (f"{START.isoformat()}", 16),
        (f"{START.isoformat()}|2024-07-19|180.0|P", 2 + 16),
    ],
)
def test_a_position_is_a_key_or_a_time(chain, nobody, position, after):
    """Well formed, however unlikely: the rows after the position (of the 24 AAPL quotes, 8
    at each of three times; at START, JULY's 190.5 call and put follow JULY's 180 put)."""
    query = {"symbol": "AAPL", "page_size": 100, "cursor": forged(position)}
    response = client_of(nobody).get(URL, query)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == after


def test_a_page_takes_a_bounded_number_of_queries(chain, nobody, django_assert_max_num_queries):
    """However many quotes a page holds: the request's own, the symbol resolved, the page
    (no count: a cursor page)."""
    client = client_of(nobody)
    with django_assert_max_num_queries(REQUEST + 2):
        response = client.get(f"{URL}?symbol=AAPL&page_size=20")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 20


# --- Schema ----------------------------------------------------------------------------------
def test_the_schema_documents_the_list_and_no_write():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    operations = schema["paths"]["/api/v1/options/quotes/"]
    assert set(operations) == {"get"}
    parameters = {p["name"]: p for p in operations["get"]["parameters"]}
    assert parameters["symbol"]["required"] is True
    wanted = {"start", "end", "expiry", "strike_min", "strike_max", "right", "known_at", "cursor"}
    assert wanted <= set(parameters)
    assert set(parameters["right"]["schema"]["enum"]) == {"C", "P", "call", "put"}


# --- In bulk formats -----------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_quotes_in_bulk_are_the_pages_rows_in_the_pages_order(chain, nobody):
    from tests.bulk import as_json, bulk_table

    client = client_of(nobody)
    query = {"symbol": "AAPL", "start": iso(START), "end": iso(START + 3 * M), "right": "C"}
    pages = [row for page in walk(client, f"{URL}?{urlencode(query)}") for row in page["results"]]
    table = bulk_table(client, URL, query)
    read = [{k: as_json(v) for k, v in row.items()} for row in table.to_pylist()]
    for row in read:
        row["expiry"] = row["expiry"].isoformat()
    assert len(read) == 12
    assert read == pages
