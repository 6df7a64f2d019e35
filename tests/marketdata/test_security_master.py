"""The security master (marketdata/sql/listings/0011.sql): instruments keep their terms over
time, a symbol resolves to the instrument that bore it on a date, a universe of a date keeps
the names delisted since, every change is kept as known when, and no role writes a version but
through the owner's functions."""

from __future__ import annotations

from datetime import date
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import override_settings

from marketdata.models import Instrument, Listing
from marketdata.security_master import (
    SymbolNotResolved,
    Terms,
    resolve,
    resolve_many,
    set_terms,
    today,
)
from qvp_site.db import engine
from tests.knowledge import between_commits
from tests.listings import current_versions, listed

RENAMED = date(2022, 6, 9)
FB = Terms("FB", "USD", name="Facebook Inc", mic="XNAS", isin="US30303M1027", figi="BBG000MM2P62")
META = Terms("META", "USD", name="Meta Platforms", mic="XNAS", isin="US30303M1027")


@pytest.fixture
def meta(db) -> Instrument:
    instrument = listed("FB", date(2012, 5, 18), FB)
    set_terms(instrument.id, RENAMED, None, META)
    instrument.refresh_from_db()
    return instrument


def test_a_new_instrument_starts_its_history_with_its_terms(db):
    instrument = Instrument.objects.create(symbol="NEW", asset_class="equity", exchange="XNYS")
    (version,) = Listing.objects.filter(instrument=instrument)
    assert (version.valid_from, version.valid_until, version.known_until) == (None, None, None)
    assert (version.symbol, version.mic, version.currency, version.status) == (
        "NEW",
        "",
        "USD",
        "listed",
    )


def test_a_rename_keeps_one_instrument_and_both_names(meta):
    assert current_versions(meta) == [
        (date(2012, 5, 18), RENAMED, "FB", "listed"),
        (RENAMED, None, "META", "listed"),
    ]
    assert (meta.symbol, meta.active) == ("META", True)  # today's terms on the row
    assert resolve("FB", date(2020, 1, 1)) == meta
    assert resolve("META", date(2023, 1, 1)) == meta
    with pytest.raises(SymbolNotResolved) as refused:  # every problem named at once
        resolve_many(["FB", "META", "ZZZ"], RENAMED)
    assert [p.split(" (")[0] for p in refused.value.problems] == [
        "unknown symbol FB on 2022-06-09",
        "unknown symbol ZZZ on 2022-06-09",
    ]
    with pytest.raises(SymbolNotResolved, match=r"unknown symbol META on 2020-01-01 .*now META"):
        resolve("META", date(2020, 1, 1))
    with pytest.raises(SymbolNotResolved, match=r"unknown symbol FB on 2011-01-01"):
        resolve("FB", date(2011, 1, 1))  # before its listing: nobody bore it
    assert set_terms(meta.id, RENAMED, None, META) == 0  # known already: nothing written
    assert Listing.objects.filter(instrument=meta).count() == 5


def test_a_ticker_reused_by_another_company_resolves_by_date(db):
    old = listed("XYZ", date(2000, 1, 3), Terms("XYZ", "USD", name="Old Co"))
    set_terms(old.id, date(2010, 3, 1), None, Terms("XYZ", "USD", "delisted", name="Old Co"))
    new = listed("XYZ", date(2015, 6, 1), Terms("XYZ", "USD", name="New Co"))
    old.refresh_from_db()
    assert (old.active, new.active) == (False, True)
    assert resolve("XYZ", date(2005, 1, 1)) == old
    assert resolve("XYZ", date(2012, 1, 1)) == old  # delisted, and nobody else bore it
    assert resolve("XYZ", date(2020, 1, 1)) == new  # the listed bearer before the delisted
    # Two delisted bearers on a day: which one is meant cannot be told.
    set_terms(new.id, date(2021, 1, 4), None, Terms("XYZ", "USD", "delisted", name="New Co"))
    with pytest.raises(SymbolNotResolved, match=r"ambiguous symbol XYZ on 2022-01-03: borne by"):
        resolve("XYZ", date(2022, 1, 3))
    # A ticker names one listed instrument on a day, whoever writes.
    with pytest.raises(IntegrityError, match="listing_one_bearer_a_day"), transaction.atomic():
        set_terms(old.id, date(2016, 1, 4), date(2017, 1, 2), Terms("XYZ", "USD"))


def test_a_universe_of_a_date_keeps_the_names_delisted_since(db):
    gone = listed("GONE", date(2001, 1, 2), Terms("GONE", "USD"))
    set_terms(gone.id, date(2008, 9, 15), None, Terms("GONE", "USD", "delisted"))
    back = listed("BACK", date(2001, 1, 2), Terms("BACK", "USD"))
    set_terms(back.id, date(2009, 1, 2), date(2011, 1, 3), Terms("BACK", "USD", "delisted"))
    members = set(Instrument.objects.universe(date(2008, 9, 12)).values_list("id", flat=True))
    assert {gone.id, back.id} <= members
    later = set(Instrument.objects.universe(date(2010, 1, 4)).values_list("id", flat=True))
    assert gone.id not in later
    assert back.id not in later
    relisted = set(Instrument.objects.universe(date(2012, 1, 3)).values_list("id", flat=True))
    assert back.id in relisted
    assert gone.id not in relisted


@pytest.mark.django_db(transaction=True)
def test_a_history_corrected_reads_as_known_before(meta):
    before = between_commits()
    set_terms(meta.id, date(2022, 6, 1), None, META)  # the rename was a week earlier
    assert resolve("META", date(2022, 6, 3)) == meta
    with pytest.raises(SymbolNotResolved, match="unknown symbol META on 2022-06-03"):
        resolve("META", date(2022, 6, 3), known_at=before)
    assert resolve("FB", date(2022, 6, 3), known_at=before) == meta


def test_an_instrument_renamed_in_place_changes_its_history_from_today(meta):
    meta.symbol = "MVRS"
    meta.save()
    assert current_versions(meta)[-2:] == [
        (RENAMED, today(), "META", "listed"),
        (today(), None, "MVRS", "listed"),
    ]
    assert resolve("META", date(2023, 1, 1)) == meta
    meta.active = False
    meta.save()
    assert current_versions(meta)[-1] == (today(), None, "MVRS", "delisted")


def test_a_version_is_never_edited_nor_deleted(meta):
    with pytest.raises(Exception, match="never edited"), transaction.atomic():
        Listing.objects.filter(instrument=meta).update(symbol="X")
    with (
        pytest.raises(Exception, match="never deleted"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("DELETE FROM marketdata_listing WHERE instrument_id = %s", [meta.id])


@pytest.mark.django_db(transaction=True)
def test_the_app_role_writes_the_history_only_through_the_functions(meta, connect_as_app):
    app = connect_as_app()
    app.autocommit = True
    app.execute("SELECT set_config('qvp.actor', 'system:test', false)")
    refused = [
        ("UPDATE marketdata_listing SET known_until = now()", []),
        ("DELETE FROM marketdata_listing", []),
        (
            "INSERT INTO marketdata_listing (instrument_id, symbol, name, mic, currency, status,"
            " isin, figi, vendor_ids) VALUES (%s, 'X', '', '', 'USD', 'listed', '', '', '{}')",
            [meta.id],
        ),
        ("SELECT marketdata_listing_cut(%s, NULL, NULL, now())", [meta.id]),
        ("SELECT marketdata_listing_sync(%s)", [meta.id]),
    ]
    for statement, params in refused:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(statement, params)
    changed = app.execute(
        "SELECT marketdata_listing_set(%s, %s, NULL, 'META', 'Meta Platforms Inc', 'XNAS',"
        " 'USD', 'listed', 'US30303M1027', '', '{}')",
        [meta.id, RENAMED],
    ).fetchone()
    assert changed == (2,)  # the version it replaced, and its own
    found = app.execute("SELECT marketdata_resolve_symbol('FB', '2020-01-01')").fetchone()
    assert found == (meta.id,)
    with pytest.raises(psycopg.errors.NoDataFound, match="unknown symbol ZZZ on 2020-01-01"):
        app.execute("SELECT marketdata_resolve_symbol('ZZZ', '2020-01-01')")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM qvp_site_auditentry WHERE table_name = 'marketdata_listing'"
            " AND actor = 'system:test'"
        )
        assert cursor.fetchone()[0] >= 2  # the version closed and the one added


def _migrate(target: tuple[str, str]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


@pytest.mark.django_db(transaction=True)
def test_the_migration_makes_each_instrument_the_first_version_of_its_history(
    app_role_password,
):
    """Unapplied, marketdata 0011 takes the migrations that depend on it (risk 0005) and the
    functions it made with it: every app goes back to its newest migration afterwards, and the
    roles get their grants on the functions made again."""
    if engine.is_citus():
        pytest.skip("on Citus marketdata 0017's distribution is not unapplied in place")
    executor = MigrationExecutor(connection)
    leaves = executor.loader.graph.leaf_nodes()
    try:
        _migrate(("marketdata", "0010_ingest_audited"))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO marketdata_instrument (symbol, asset_class, exchange, currency,"
                " multiplier, active) VALUES ('OLD', 'equity', 'NYSE', 'EUR', 1, false),"
                " ('LIVE', 'equity', 'XLON', 'GBP', 1, true)"
            )
        _migrate(("marketdata", "0011_security_master"))
        rows = Listing.objects.order_by("symbol").values_list(
            "instrument__symbol", "valid_from", "valid_until", "symbol", "mic", "currency",
            "status", "known_until",
        )  # fmt: skip
        assert list(rows) == [
            ("LIVE", None, None, "LIVE", "", "GBP", "listed", None),
            ("OLD", None, None, "OLD", "", "EUR", "delisted", None),
        ]
    finally:
        MigrationExecutor(connection).migrate(leaves)
        with override_settings(QVP_APP_DB_PASSWORD=app_role_password):
            call_command("create_db_roles", stdout=StringIO())
