"""Every door that takes a symbol resolves it on a date: the API (start, as_of, else today),
ingest (the rows' dates), the commands (--start, --as-of, else today) and the dashboard
(?on=, else today). A rename (FB -> META on 2022-06-09), a ticker reused by another company, a
delisting and a relisting, each through every door; an unknown or ambiguous symbol is refused
naming the symbol, the date and the candidates, never a 500 and never a second instrument made
silently."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Max, Min
from rest_framework import serializers

from marketdata.fields import ResolvesSymbols, SymbolField, SymbolRelatedField
from marketdata.models import DailyBar, Ingest, Instrument
from marketdata.security_master import Terms, set_terms, today
from qvp_site.db import partitions
from qvp_site.db.aggregates import refresh_table
from signals.models import Agent, Signal
from tests.listings import listed

RENAMED = date(2022, 6, 9)
FB = Terms("FB", "USD", name="Facebook Inc", mic="XNAS")
META = Terms("META", "USD", name="Meta Platforms", mic="XNAS")
BARS = "/api/v1/bars/"


def _terms(symbol: str, status: str = "listed") -> Terms:
    return Terms(symbol, "USD", status=status)


class World:
    """The histories: META (FB until 2022-06-09), XYZ borne by OLD until its delisting in 2015
    and by NEW, another company, from 2018; REL listed, delisted in 2014, relisted in 2016;
    DUP borne by two delisted instruments at once from 2016 (ambiguous)."""

    def __init__(self) -> None:
        self.meta = listed("FB", date(2012, 5, 18), FB)
        set_terms(self.meta.id, RENAMED, None, META)
        self.old = listed("XYZ", date(2010, 1, 1), _terms("XYZ"))
        set_terms(self.old.id, date(2015, 1, 1), None, _terms("XYZ", "delisted"))
        self.new = listed("XYZ", date(2018, 1, 1), _terms("XYZ"))
        self.rel = listed("REL", date(2010, 1, 1), _terms("REL"))
        set_terms(self.rel.id, date(2014, 1, 1), date(2016, 1, 1), _terms("REL", "delisted"))
        self.dup_a = listed("DUP", date(2015, 1, 1), _terms("DUP", "delisted"))
        self.dup_b = listed("DUP", date(2016, 1, 1), _terms("DUP", "delisted"))
        for instrument in (self.meta, self.old, self.new, self.rel, self.dup_a, self.dup_b):
            instrument.refresh_from_db()


@pytest.fixture
def world(db) -> World:
    partitions.prepare_load(
        "marketdata_dailybar", datetime(2009, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)
    )
    return World()


def _bar(instrument: Instrument, day: date, close: float = 10.0) -> DailyBar:
    ts = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return DailyBar.objects.create(
        instrument=instrument, ts=ts, open=close, high=close, low=close, close=close, volume=1
    )


@pytest.fixture
def bars(world) -> World:
    """A bar of each instrument on dates its symbol held."""
    for day in (date(2020, 1, 15), date(2022, 6, 8), date(2022, 6, 10)):
        _bar(world.meta, day, 200.0)
    _bar(world.old, date(2012, 1, 3), 5.0)
    _bar(world.new, date(2019, 1, 3), 50.0)
    for day in (date(2013, 1, 3), date(2015, 1, 5), date(2017, 1, 3)):
        _bar(world.rel, day, 7.0)
    return world


def _days(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return [row["ts"][:10] for row in response.json()["results"]]


# --- API ---------------------------------------------------------------------------------------
def test_a_symbol_resolves_on_start_so_fb_in_2020_reads_meta(admin_client, bars):
    found = admin_client.get(BARS, {"symbol": "FB", "timeframe": "1d", "start": "2020-01-01"})
    assert _days(found) == ["2020-01-15", "2022-06-08", "2022-06-10"]  # past the rename too
    assert _days(
        admin_client.get(BARS, {"symbol": "META", "timeframe": "1d", "start": "2022-06-09"})
    ) == ["2022-06-10"]


def test_a_reused_ticker_reads_each_company_on_its_dates(admin_client, bars):
    then = {"symbol": "XYZ", "timeframe": "1d", "start": "2012-01-01", "end": "2013-01-01"}
    assert _days(admin_client.get(BARS, then)) == ["2012-01-03"]
    later = {"symbol": "XYZ", "timeframe": "1d", "start": "2019-01-01"}
    assert _days(admin_client.get(BARS, later)) == ["2019-01-03"]
    # After its delisting, before the reuse: the delisted company still bears it.
    between = {"symbol": "XYZ", "timeframe": "1d", "start": "2016-01-01", "end": "2017-01-01"}
    assert _days(admin_client.get(BARS, between)) == []
    assert _days(admin_client.get(BARS, {**between, "start": "2011-01-01"})) == ["2012-01-03"]


def test_a_relisted_instrument_is_one_across_its_delisting(admin_client, bars):
    listed, delisted, relisted = "2013-01-03", "2015-01-05", "2017-01-03"
    for start, days in [
        ("2013-01-01", [listed, delisted, relisted]),
        ("2015-01-01", [delisted, relisted]),
        ("2017-01-01", [relisted]),
    ]:
        query = {"symbol": "REL", "timeframe": "1d", "start": start}
        assert _days(admin_client.get(BARS, query)) == days


def test_an_unknown_symbol_on_the_date_is_a_400_naming_it_the_date_and_the_candidates(
    admin_client, bars
):
    response = admin_client.get(BARS, {"symbol": "META", "timeframe": "1d", "start": "2020-01-01"})
    assert response.status_code == 400
    (problem,) = response.json()["symbol"]
    assert "unknown symbol META on 2020-01-01" in problem
    assert f"instrument {bars.meta.id}, now META, from 2022-06-09" in problem
    # No date: today, when FB names nothing.
    response = admin_client.get(BARS, {"symbol": "FB", "timeframe": "1d"})
    assert response.status_code == 400
    assert f"unknown symbol FB on {today()}" in response.json()["symbol"][0]


def test_an_ambiguous_symbol_is_a_400_naming_the_candidates(admin_client, bars):
    response = admin_client.get(BARS, {"symbol": "DUP", "timeframe": "1d", "start": "2017-01-01"})
    assert response.status_code == 400
    (problem,) = response.json()["symbol"]
    assert problem == (
        f"ambiguous symbol DUP on 2017-01-01: borne by instrument {bars.dup_a.id} (now DUP),"
        f" instrument {bars.dup_b.id} (now DUP)"
    )


def test_latest_prices_resolve_on_as_of_and_answer_the_symbol_asked(
    admin_client, bars, django_assert_max_num_queries
):
    query = {"symbols": "FB,XYZ,REL", "as_of": "2020-01-31T00:00:00Z"}
    with django_assert_max_num_queries(8):  # one resolution for the list, not one per symbol
        response = admin_client.get("/api/v1/prices/latest/", query)
    assert response.status_code == 200, response.json()
    prices = {row["symbol"]: row["price"] for row in response.json()["prices"]}
    assert prices == {"FB": 200.0, "XYZ": 50.0, "REL": 7.0}
    refused = admin_client.get("/api/v1/prices/latest/", {**query, "symbols": "FB,META,DUP"})
    assert refused.status_code == 400
    problems = refused.json()["symbols"]
    assert [p.split(" (")[0].split(":")[0] for p in problems] == [
        "unknown symbol META on 2020-01-31",
        "ambiguous symbol DUP on 2020-01-31",
    ]


def test_buckets_and_deletions_answer_the_symbol_asked(admin_client, bars):
    query = {"symbol": "FB", "timeframe": "1d", "width": "1d"}
    query |= {"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"}
    buckets = admin_client.get("/api/v1/bars/buckets/", query)
    assert buckets.status_code == 200, buckets.json()
    assert buckets.json()["symbol"] == "FB"
    body = {"symbol": "FB", "timeframe": "1d"}
    body |= {"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"}
    deleted = admin_client.post("/api/v1/bars/delete/", body, content_type="application/json")
    assert deleted.status_code == 200, deleted.json()
    assert (deleted.json()["symbol"], deleted.json()["deleted"]) == ("FB", 1)
    assert not DailyBar.objects.filter(instrument=bars.meta, ts__year=2020).exists()


def test_a_record_named_by_symbol_is_the_one_listed_under_it_today(world):
    field = SymbolRelatedField(slug_field="symbol", queryset=Instrument.objects.all())
    assert field.to_internal_value("XYZ") == world.new  # not the delisted company
    assert field.to_internal_value("META") == world.meta
    with pytest.raises(serializers.ValidationError) as refused:
        field.to_internal_value("FB")
    assert f"unknown symbol FB on {today()}" in str(refused.value.detail[0])
    with pytest.raises(serializers.ValidationError) as ambiguous:
        field.to_internal_value("DUP")
    assert "ambiguous symbol DUP" in str(ambiguous.value.detail[0])


def test_a_position_filter_by_an_ambiguous_symbol_is_a_400_not_a_500(admin_client, world):
    response = admin_client.get("/api/v1/positions/", {"symbol": "DUP"})
    assert response.status_code == 400
    assert "ambiguous symbol DUP" in response.json()["symbol"][0]


def test_a_symbol_field_outside_a_serializer_with_a_date_is_a_bug_found_at_once():
    class Undated(serializers.Serializer):
        symbol = SymbolField()

    with pytest.raises(TypeError, match="ResolvesSymbols"):
        _ = Undated(data={"symbol": "FB"}).fields

    class Dated(ResolvesSymbols):
        symbol = SymbolField()

    assert "symbol" in Dated().fields


def test_a_batch_of_signals_resolves_each_symbol_on_its_signals_date(admin_client, world):
    Agent.objects.create(name="momentum_agent", kind="momentum")

    def signal(symbol: str, ts: str) -> dict:
        body = {"agent": "momentum_agent", "symbol": symbol, "ts": ts, "strength": 0.4}
        return {**body, "confidence": 0.7, "horizon": "1 00:00:00"}

    batch = [signal("FB", "2020-01-15T15:00:00Z"), signal("XYZ", "2012-01-03T15:00:00Z")]
    batch += [signal("XYZ", "2019-01-03T15:00:00Z"), signal("META", "2023-01-03T15:00:00Z")]
    written = admin_client.post("/api/v1/signals/", batch, content_type="application/json")
    assert written.status_code == 201, written.json()
    assert list(Signal.objects.order_by("ts").values_list("instrument", flat=True)) == [
        world.old.id,
        world.new.id,
        world.meta.id,
        world.meta.id,
    ]
    bad = [signal("META", "2020-01-15T15:00:00Z"), signal("DUP", "2017-01-03T15:00:00Z")]
    refused = admin_client.post("/api/v1/signals/", bad, content_type="application/json")
    assert refused.status_code == 400
    errors = refused.json()
    assert "unknown symbol META on 2020-01-15 (it was borne by" in errors["0"]["symbol"][0]
    assert "ambiguous symbol DUP on 2017-01-03: borne by" in errors["1"]["symbol"][0]


def test_the_doors_resolve_as_the_applications_role(admin_client, bars, as_app_role):
    """As the served site runs: the resolution's statements, the batch's and the page's."""
    query = {"symbol": "FB", "timeframe": "1d", "start": "2020-01-01", "end": "2020-02-01"}
    assert _days(admin_client.get(BARS, query)) == ["2020-01-15"]
    prices = admin_client.get(
        "/api/v1/prices/latest/", {"symbols": "FB,XYZ", "as_of": "2020-02-01"}
    )
    assert [row["price"] for row in prices.json()["prices"]] == [200.0, 50.0]
    bar = {"ts": "2020-01-16T00:00:00Z", "open": 1, "high": 2, "low": 1, "close": 2}
    body = {"symbol": "FB", "timeframe": "1d", "bars": [bar]}
    written = admin_client.post(BARS, body, content_type="application/json")
    assert written.status_code == 201, written.json()
    assert DailyBar.objects.get(ts=bar["ts"]).instrument_id == bars.meta.id
    refused = admin_client.post(BARS, {**body, "symbol": "META"}, content_type="application/json")
    assert refused.status_code == 400
    assert "unknown symbol META on 2020-01-16 (it was borne by" in refused.json()["symbol"][0]
    assert admin_client.get("/instruments/FB/", {"on": "2020-01-15"}).status_code == 200


# --- Commands ----------------------------------------------------------------------------------
def test_delete_market_data_resolves_on_start(bars):
    span = ["--kind", "1d", "--start", "2020-01-01", "--end", "2020-02-01", "--yes"]
    call_command("delete_market_data", "--symbol", "FB", *span, stdout=StringIO())
    assert not DailyBar.objects.filter(instrument=bars.meta, ts__year=2020).exists()
    assert DailyBar.objects.filter(instrument=bars.meta).count() == 2  # the others kept
    with pytest.raises(CommandError, match=r"--symbol: unknown symbol META on 2020-01-01"):
        call_command("delete_market_data", "--symbol", "META", *span, stdout=StringIO())


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("detect_anomalies", ["--symbol", "FB"], r"--symbol: unknown symbol FB on "),
        ("detect_anomalies", ["--symbol", "DUP"], r"--symbol: ambiguous symbol DUP on "),
        ("build_embeddings", ["--symbol", "FB"], r"--symbol: unknown symbol FB on "),
        (
            "fuse_signals",
            ["--symbols", "XYZ,META", "--as-of", "2020-01-15"],
            r"--symbols: unknown symbol META on 2020-01-15 \(it was borne by instrument",
        ),
    ],
)
def test_commands_refuse_a_symbol_naming_the_problem(world, command, args, message):
    with pytest.raises(CommandError, match=message):
        call_command(command, *args, stdout=StringIO())


# --- Dashboard ---------------------------------------------------------------------------------
def test_the_instrument_page_resolves_on_its_date(admin_client, bars):
    page = admin_client.get("/instruments/FB/", {"on": "2020-01-15"})
    assert page.status_code == 200
    assert page.context["instrument"] == bars.meta
    assert b"FB on 2020-01-15 is this instrument, META today." in page.content
    assert admin_client.get("/instruments/XYZ/", {"on": "2012-01-03"}).context["instrument"] == (
        bars.old
    )
    assert admin_client.get("/instruments/XYZ/").context["instrument"] == bars.new
    assert admin_client.get("/instruments/REL/", {"on": "2015-01-05"}).context["instrument"] == (
        bars.rel
    )


def test_the_instrument_page_names_an_unknown_or_ambiguous_symbol(admin_client, world):
    unknown = admin_client.get("/instruments/FB/")
    assert unknown.status_code == 404
    assert f"unknown symbol FB on {today()}".encode() in unknown.content
    ambiguous = admin_client.get("/instruments/DUP/", {"on": "2017-01-01"})
    assert ambiguous.status_code == 404
    assert b"ambiguous symbol DUP on 2017-01-01: borne by instrument" in ambiguous.content
    bad = admin_client.get("/instruments/FB/", {"on": "2020-13-01"})
    assert bad.status_code == 400
    assert b"is not a date" in bad.content


# --- Ingest ------------------------------------------------------------------------------------
@pytest.fixture
def daily_aggregates_emptied(transactional_db):
    """The flush after a transactional test empties model tables only: recompute the
    aggregates over the daily bars a test loaded once they are gone."""
    yield
    span = DailyBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        DailyBar.objects.all().delete()
        refresh_table("marketdata_dailybar", span["first"], span["last"])


@pytest.fixture
def loaded_world(daily_aggregates_emptied) -> World:
    return World()


def _file(tmp_path: Path, days: list[str]) -> Path:
    path = tmp_path / "bars.csv"
    lines = ["date,open,high,low,close,volume", *(f"{d},10,11,9,10.5,100" for d in days)]
    path.write_text("\n".join(lines) + "\n")
    return path


def _ingest(path: Path, symbol: str) -> str:
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", symbol, "--timeframe", "1d", stdout=out)
    return out.getvalue()


pytest_ingest = pytest.mark.django_db(transaction=True)


@pytest_ingest
def test_ingest_resolves_on_the_rows_dates(loaded_world, tmp_path):
    world = loaded_world
    count = Instrument.objects.count()
    _ingest(_file(tmp_path, ["2020-01-14", "2020-01-15"]), "FB")
    _ingest(_file(tmp_path, ["2012-01-03"]), "XYZ")  # the company that bore it then
    _ingest(_file(tmp_path, ["2016-06-01"]), "XYZ")  # delisted, not yet reused
    _ingest(_file(tmp_path, ["2019-01-03"]), "XYZ")  # the other company
    _ingest(_file(tmp_path, ["2013-01-03", "2015-01-05", "2017-01-03"]), "REL")  # relisted
    assert Instrument.objects.count() == count
    owners = dict(DailyBar.objects.values_list("ts__date", "instrument"))
    assert owners == {
        date(2020, 1, 14): world.meta.id,
        date(2020, 1, 15): world.meta.id,
        date(2012, 1, 3): world.old.id,
        date(2016, 6, 1): world.old.id,
        date(2019, 1, 3): world.new.id,
        date(2013, 1, 3): world.rel.id,
        date(2015, 1, 5): world.rel.id,
        date(2017, 1, 3): world.rel.id,
    }
    assert Ingest.objects.filter(symbol="FB").get().instrument_id == world.meta.id


@pytest_ingest
def test_ingest_refuses_rows_that_span_a_tickers_reuse_naming_both(loaded_world, tmp_path):
    world = loaded_world
    with pytest.raises(CommandError) as refused:
        _ingest(_file(tmp_path, ["2012-01-03", "2019-01-03"]), "XYZ")
    assert str(refused.value) == (
        f"XYZ names two instruments over the rows' dates: instrument {world.old.id} (now XYZ)"
        f" on 2012-01-03 and instrument {world.new.id} (now XYZ) on 2019-01-03; load each"
        " one's rows separately"
    )
    assert not DailyBar.objects.exists()
    assert Ingest.objects.get().status == Ingest.Status.REFUSED


@pytest_ingest
def test_ingest_refuses_a_symbol_borne_only_at_other_dates_rather_than_make_a_second(
    loaded_world, tmp_path
):
    world = loaded_world
    count = Instrument.objects.count()
    with pytest.raises(CommandError) as refused:
        _ingest(_file(tmp_path, ["2020-01-14"]), "META")
    assert "unknown symbol META on 2020-01-14 (it was borne by instrument" in str(refused.value)
    assert f"instrument {world.meta.id}, now META, from 2022-06-09 until now" in str(refused.value)
    with pytest.raises(CommandError, match="ambiguous symbol DUP on 2017-01-03"):
        _ingest(_file(tmp_path, ["2017-01-03"]), "DUP")
    assert Instrument.objects.count() == count
    assert not DailyBar.objects.exists()


@pytest_ingest
def test_ingest_of_a_symbol_never_borne_creates_its_instrument(loaded_world, tmp_path):
    out = _ingest(_file(tmp_path, ["2020-01-14"]), "BRANDNEW")
    assert "Created instrument BRANDNEW" in out
    created = Instrument.objects.get(symbol="BRANDNEW")
    assert DailyBar.objects.get().instrument == created


@pytest_ingest
def test_a_batch_of_bars_resolves_on_its_bars_dates_and_never_creates(loaded_world, admin_client):
    world = loaded_world
    partitions.prepare_load(
        "marketdata_dailybar", datetime(2019, 12, 1, tzinfo=UTC), datetime(2020, 3, 1, tzinfo=UTC)
    )
    count = Instrument.objects.count()

    def post(symbol: str, *days: date):
        bars = [
            {"ts": f"{d.isoformat()}T00:00:00Z", "open": 1, "high": 2, "low": 1, "close": 2}
            for d in days
        ]
        body = {"symbol": symbol, "timeframe": "1d", "bars": bars}
        return admin_client.post(BARS, body, content_type="application/json")

    written = post("FB", date(2020, 1, 14), date(2020, 1, 15) + timedelta(days=1))
    assert written.status_code == 201, written.json()
    assert set(DailyBar.objects.values_list("instrument", flat=True)) == {world.meta.id}
    for symbol, problem in [
        ("META", "unknown symbol META on 2020-01-14 (it was borne by instrument"),
        ("NOPE", "unknown symbol NOPE on 2020-01-14"),
    ]:
        refused = post(symbol, date(2020, 1, 14))
        assert refused.status_code == 400
        assert problem in refused.json()["symbol"][0]
    assert Instrument.objects.count() == count
