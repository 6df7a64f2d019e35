"""The security master's API (marketdata/api_listings.py): an instrument's history, versions
stated by an operator (never by a user without the permission nor an auditor), bad input a
400 naming the field, and the universe of a date, delisted instruments included. Then the
database's rule for the application's role: versions are written by the owner's functions
only, never by INSERT, UPDATE or DELETE.
"""

from __future__ import annotations

from datetime import date

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone
from psycopg import errors

from marketdata import security_master
from marketdata.models import Instrument, Listing
from qvp_site.operators import OPERATORS
from tests.clients import client_of

URL = "/api/v1/listings/"
UNIVERSE = "/api/v1/universe/"


def history_url(instrument: Instrument) -> str:
    return f"/api/v1/instruments/{instrument.pk}/listings/"


def user(name: str, *groups: str):
    made = get_user_model().objects.create_user(name, password=f"pw-{name}-1234")
    made.groups.add(*(Group.objects.get_or_create(name=g)[0] for g in groups))
    return get_user_model().objects.get(pk=made.pk)


@pytest.fixture
def operator(db):
    return client_of(user("olga", OPERATORS))


@pytest.fixture
def fb(db) -> Instrument:
    return Instrument.objects.create(symbol="FB", asset_class="equity", exchange="XNAS")


def rename(fb: Instrument) -> dict:
    return {
        "instrument": fb.pk,
        "valid_from": "2022-06-09",
        "symbol": "META",
        "name": "Meta Platforms Inc",
        "currency": "USD",
        "mic": "XNAS",
        "figi": "BBG000MM2P62",
        "isin": "US30303M1027",
        "vendor_ids": {"refinitiv": "META.O"},
    }


def versions() -> list[tuple]:
    return list(Listing.objects.order_by("id").values_list("id", "known_until"))


def test_an_operator_renames_an_instrument_and_reads_its_history(operator, fb):
    response = operator.post(URL, rename(fb), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["instrument"] == fb.pk
    assert body["versions_changed"] == 2  # since always closed; kept until, and the new one
    assert [(v["valid_from"], v["symbol"]) for v in body["listings"]] == [
        (None, "FB"),
        ("2022-06-09", "META"),
    ]
    fb.refresh_from_db()
    assert fb.symbol == "META"
    history = operator.get(history_url(fb))
    assert history.status_code == 200
    assert [v["symbol"] for v in history.json()["results"]] == ["FB", "META"]
    assert history.json()["results"][1]["vendor_ids"] == {"refinitiv": "META.O"}
    assert security_master.resolve("FB", date(2020, 1, 2)) == fb


def test_stating_a_known_version_again_changes_nothing(operator, fb):
    operator.post(URL, rename(fb), format="json")
    before = versions()
    response = operator.post(URL, rename(fb), format="json")
    assert response.status_code == 200
    assert response.json()["versions_changed"] == 0
    assert versions() == before


def test_the_history_as_known_before_a_change(operator, fb):
    before = timezone.now()
    operator.post(URL, rename(fb), format="json")
    known = operator.get(history_url(fb), {"known_at": before.isoformat()})
    assert [(v["valid_from"], v["symbol"]) for v in known.json()["results"]] == [(None, "FB")]
    assert operator.get(history_url(fb), {"known_at": "yesterday"}).json().keys() == {"known_at"}


def test_an_unknown_instrument_has_no_history(operator, db):
    assert operator.get("/api/v1/instruments/999999/listings/").status_code == 404


def test_a_symbol_names_the_instrument_it_bore_on_the_date(operator, fb):
    operator.post(URL, rename(fb), format="json")
    delisting = {
        "symbol": "META",
        "valid_from": "2024-03-01",
        "currency": "USD",
        "status": "delisted",
        "name": "Meta Platforms Inc",
    }
    assert operator.post(URL, delisting, format="json").status_code == 201
    fb.refresh_from_db()
    assert not fb.active
    # FB on a date it was FB: the same instrument, by its old symbol.
    relisted = {"symbol": "FB", "on": "2020-01-02", "valid_from": "2024-06-03", "currency": "USD"}
    assert operator.post(URL, relisted, format="json").status_code == 201
    fb.refresh_from_db()
    assert (fb.symbol, fb.active) == ("FB", True)


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"currency": "usd"}, "currency", "not a currency code"),
        ({"mic": "NASDAQ"}, "mic", "not a MIC"),
        ({"isin": "US123"}, "isin", "not a ISIN"),
        ({"figi": "BBX000MM2P62"}, "figi", "not a FIGI"),
        ({"status": "halted"}, "status", "not a valid choice"),
        ({"valid_from": "2022-13-01"}, "valid_from", "Date has wrong format"),
        ({"valid_until": "2022-01-03"}, "valid_until", "must be after valid_from"),
        ({"symbol": ""}, "symbol", "may not be blank"),
        ({"instrument": 999999}, "instrument", "no instrument 999999"),
        ({"vendor_ids": ["a"]}, "vendor_ids", "Expected a dictionary"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(operator, fb, change, field, words):
    before = versions()
    response = operator.post(URL, {**rename(fb), **change}, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert words in str(response.json()[field])
    assert versions() == before


def test_an_unknown_symbol_is_a_400_naming_it_the_date_and_the_candidates(operator, fb):
    operator.post(URL, rename(fb), format="json")
    body = {"symbol": "FB", "valid_from": "2023-01-02", "currency": "USD", "status": "delisted"}
    response = operator.post(URL, body, format="json")
    assert response.status_code == 400
    message = response.json()["symbol"][0]
    assert "unknown symbol FB on 2023-01-02" in message
    assert f"instrument {fb.pk}, now META" in message


def test_a_symbol_another_listed_instrument_bears_is_a_400_naming_it(operator, fb):
    other = Instrument.objects.create(symbol="META", asset_class="equity")
    before = versions()
    response = operator.post(URL, rename(fb), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["rule"] == "listing_one_bearer_a_day"
    assert f"by instrument {other.pk} (now META) from always until now" in body["detail"]
    assert versions() == before


@pytest.mark.parametrize(
    ("groups", "rule"),
    [((), "model_permission"), (("auditors", OPERATORS), "auditors_read_only")],
    ids=["no permission", "auditor"],
)
def test_others_are_refused_and_nothing_is_written(fb, groups, rule):
    before = versions()
    response = client_of(user("eve", *groups)).post(URL, rename(fb), format="json")
    assert response.status_code == 403
    assert response.json()["rule"] == rule
    assert versions() == before


def test_an_operator_writes_as_the_application_role(operator, fb, as_app_role):
    response = operator.post(URL, rename(fb), format="json")
    assert response.status_code == 201, response.content
    assert security_master.resolve("META", date(2023, 1, 2)) == fb


# --- The universe ----------------------------------------------------------------------------
@pytest.fixture
def delisted(operator, fb) -> Instrument:
    """Old Co listed from 2000, delisted on 2010-03-01; FB renamed META in 2022."""
    old = Instrument.objects.create(symbol="OLD", asset_class="equity")
    for valid_from, status in (("2000-01-03", "listed"), ("2010-03-01", "delisted")):
        body = {
            "instrument": old.pk,
            "valid_from": valid_from,
            "symbol": "OLD",
            "name": "Old Co",
            "currency": "USD",
            "status": status,
        }
        assert operator.post(URL, body, format="json").status_code == 201
    operator.post(URL, before_ipo(fb), format="json")
    operator.post(URL, {**rename(fb), "valid_from": "2012-05-18", "symbol": "FB"}, format="json")
    operator.post(URL, rename(fb), format="json")
    return old


def before_ipo(fb: Instrument) -> dict:
    """FB before it was listed: delisted (not in any universe)."""
    return {
        "instrument": fb.pk,
        "valid_until": "2012-05-18",
        "symbol": "FB",
        "currency": "USD",
        "status": "delisted",
    }


def universe(client, **query) -> list[dict]:
    response = client.get(UNIVERSE, query)
    assert response.status_code == 200, response.content
    return response.json()["results"]


def test_the_universe_before_a_delisting_holds_the_name(operator, delisted, fb):
    rows = universe(operator, on="2009-06-01")
    assert rows == [
        {
            "instrument": delisted.pk,
            "symbol": "OLD",
            "name": "Old Co",
            "mic": "",
            "currency": "USD",
            "status": "listed",
            "symbol_now": "OLD",
        }
    ]
    after = universe(operator, on="2013-01-02")
    assert [(r["instrument"], r["symbol"], r["symbol_now"]) for r in after] == [
        (fb.pk, "FB", "META")
    ]


def test_the_universe_as_known_before_a_load(operator, fb):
    before = timezone.now()
    operator.post(URL, before_ipo(fb), format="json")
    assert universe(operator, on="2005-01-03") == []
    then = universe(operator, on="2005-01-03", known_at=before.isoformat())
    assert [r["symbol"] for r in then] == ["FB"]  # since always, as known then


def test_the_universe_is_paged(operator, db):
    for symbol in ("AAA", "BBB", "CCC"):
        Instrument.objects.create(symbol=symbol, asset_class="equity")
    response = operator.get(UNIVERSE, {"page_size": 2, "page": 2})
    assert response.json()["count"] == 3
    assert [r["symbol"] for r in response.json()["results"]] == ["CCC"]


def test_a_bad_date_is_a_400_naming_it(operator, db):
    response = operator.get(UNIVERSE, {"on": "2024-02-30"})
    assert response.status_code == 400
    assert "on" in response.json()


# --- The application's role, in raw SQL ------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_application_role_writes_versions_only_through_the_functions(connect_as_app):
    instrument = Instrument.objects.create(symbol="RAW", asset_class="equity")
    version = Listing.objects.get(instrument=instrument)
    conn = connect_as_app()
    attempts = [
        (
            "INSERT INTO marketdata_listing (instrument_id, symbol, currency, status, name, mic,"
            " isin, figi, vendor_ids) VALUES (%s, 'RAW', 'USD', 'listed', '', '', '', '', '{}')",
            [instrument.pk],
        ),
        ("UPDATE marketdata_listing SET symbol = 'FAKE' WHERE id = %s", [version.pk]),
        ("UPDATE marketdata_listing SET known_until = now() WHERE id = %s", [version.pk]),
        ("DELETE FROM marketdata_listing WHERE id = %s", [version.pk]),
    ]
    for statement, params in attempts:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement, params)
    # Through the owner's function, the same role states a version.
    changed = conn.execute(
        "SELECT marketdata_listing_set(%s, '2024-01-02', NULL, 'RAW', 'Raw Inc', '', 'USD',"
        " 'listed')",
        [instrument.pk],
    ).fetchone()
    assert changed == (2,)
    assert Listing.objects.filter(instrument=instrument, known_until__isnull=True).count() == 2
    assert isinstance(conn, psycopg.Connection)


# --- The admin -------------------------------------------------------------------------------
def test_the_instrument_page_shows_its_history_current_and_closed(admin_client, operator, fb):
    operator.post(URL, rename(fb), format="json")
    page = admin_client.get(f"/admin/marketdata/instrument/{fb.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "security master history" in html.lower()
    assert html.count('<tr class="closed">') == 1  # FB since always, as known before
    assert html.count('<tr class="current">') == 2  # FB until 2022-06-09, META since
    assert "Meta Platforms Inc" in html
    listings = admin_client.get("/admin/marketdata/listing/", {"q": "META"})
    assert listings.status_code == 200
    assert "Meta Platforms Inc" in listings.content.decode()
    assert admin_client.get("/admin/marketdata/listing/add/").status_code == 403
