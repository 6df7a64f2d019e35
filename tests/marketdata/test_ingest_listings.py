"""ingest_listings: the security master loaded from a CSV file (marketdata/listings_load.py).

A rename (FB -> META), a ticker reused by another company, a delisting and a relisting, each
resolved as of a date afterwards; a second load changing nothing; every refusal naming its
line; a dry run writing nothing.
"""

from __future__ import annotations

from datetime import date
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from marketdata import security_master
from marketdata.models import Instrument, Listing

HEADER = "valid_from,symbol,name,currency,status,mic,figi,isin,vendor:refinitiv"
META_FIGI, META_ISIN = "BBG000MM2P62", "US30303M1027"
OLD_FIGI, NEW_FIGI, PHX_FIGI = "BBG000AAAAA1", "BBG000BBBBB2", "BBG000CCCCC3"
HISTORY = [
    # Facebook, renamed Meta Platforms (one instrument for life).
    f"2012-05-18,FB,Facebook Inc,USD,listed,XNAS,{META_FIGI},{META_ISIN},FB.O",
    f"2022-06-09,META,Meta Platforms Inc,USD,listed,XNAS,{META_FIGI},{META_ISIN},META.O",
    # XYZ: an old company, delisted, and years later another company under the same ticker.
    f"2000-01-03,XYZ,Old XYZ Corp,USD,listed,XNYS,{OLD_FIGI},,",
    f"2010-03-01,XYZ,Old XYZ Corp,USD,delisted,XNYS,{OLD_FIGI},,",
    f"2015-01-02,XYZ,New XYZ Holdings,USD,listed,XNAS,{NEW_FIGI},,",
    # Phoenix: delisted, then listed again.
    f"2001-01-02,PHX,Phoenix Inc,USD,listed,XNYS,{PHX_FIGI},,",
    f"2009-06-01,PHX,Phoenix Inc,USD,delisted,XNYS,{PHX_FIGI},,",
    f"2012-01-03,PHX,Phoenix Inc,USD,listed,XNYS,{PHX_FIGI},,",
]


def write(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "master.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def ingest(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("ingest_listings", str(path), *args, stdout=out)
    return out.getvalue()


def refused(path: Path) -> str:
    with pytest.raises(CommandError) as raised:
        ingest(path)
    return str(raised.value)


def on(symbol: str, day: date, known_at=None) -> Instrument:
    return security_master.resolve(symbol, day, known_at)


def current(instrument: Instrument) -> list[tuple]:
    return list(
        Listing.objects.filter(instrument=instrument, known_until__isnull=True)
        .order_by("valid_from")
        .values_list("valid_from", "valid_until", "symbol", "status")
    )


def test_a_history_is_loaded_and_resolved_as_of_each_date(db, tmp_path):
    out = ingest(write(tmp_path, HISTORY))
    assert "created" in out

    meta = on("META", date(2023, 1, 2))
    assert on("FB", date(2020, 1, 2)) == meta  # the rename keeps one instrument
    assert meta.symbol == "META"
    assert meta.active
    assert meta.exchange == "XNAS"
    assert current(meta) == [
        (date(2012, 5, 18), date(2022, 6, 9), "FB", "listed"),
        (date(2022, 6, 9), None, "META", "listed"),
    ]
    version = Listing.objects.get(instrument=meta, symbol="META", known_until__isnull=True)
    assert (version.name, version.figi, version.isin) == (
        "Meta Platforms Inc",
        META_FIGI,
        META_ISIN,
    )
    assert version.vendor_ids == {"refinitiv": "META.O"}
    with pytest.raises(security_master.SymbolNotResolved, match="FB on 2011-01-03"):
        on("FB", date(2011, 1, 3))  # before its first listing: no terms

    old, new = on("XYZ", date(2005, 1, 3)), on("XYZ", date(2020, 1, 2))
    assert old != new  # a ticker reused by another company: two histories
    assert not Instrument.objects.get(pk=old.pk).active
    assert on("XYZ", date(2012, 1, 3)) == old  # the delisted bearer, none listed then

    phoenix = on("PHX", date(2005, 1, 3))
    assert on("PHX", date(2013, 1, 2)) == phoenix  # relisted: the same instrument
    assert [s for *_, s in current(phoenix)] == ["listed", "delisted", "listed"]


def test_the_universe_holds_those_listed_then_delisted_since_included(db, tmp_path):
    ingest(write(tmp_path, HISTORY))
    before = Instrument.objects.universe(date(2008, 1, 2))
    assert set(before.values_list("id", flat=True)) == {
        on("XYZ", date(2008, 1, 2)).pk,
        on("PHX", date(2008, 1, 2)).pk,
    }
    between = Instrument.objects.universe(date(2010, 6, 1))
    assert set(between.values_list("id", flat=True)) == set()  # FB not yet, XYZ and PHX gone
    assert between.count() == 0


def test_an_existing_instrument_keeps_its_id(db, tmp_path):
    fb = Instrument.objects.create(symbol="FB", asset_class="equity", exchange="XNAS")
    rows = [f"{r},{fb.pk}" for r in HISTORY[:2]]
    ingest(write(tmp_path, rows, HEADER + ",instrument"))
    fb.refresh_from_db()
    assert fb.symbol == "META"
    assert on("FB", date(2020, 1, 2)) == fb
    # Before the load it was FB since always; as known then, it still is.
    assert Listing.objects.filter(instrument=fb, known_until__isnull=False).exists()


def test_loading_the_same_file_again_changes_nothing(db, tmp_path):
    path = write(tmp_path, HISTORY)
    ingest(path)
    versions = list(Listing.objects.order_by("id").values_list("id", "known_until"))
    out = ingest(path)
    assert "0 versions changed" in out
    assert out.count("unchanged") == 4
    assert list(Listing.objects.order_by("id").values_list("id", "known_until")) == versions
    assert Instrument.objects.count() == 4


def test_a_later_file_corrects_a_history_and_the_old_one_is_known_at_before(db, tmp_path):
    ingest(write(tmp_path, HISTORY[:2]))
    before = timezone.now()
    corrected = [HISTORY[0], HISTORY[1].replace("2022-06-09", "2022-06-10", 1)]
    out = ingest(write(tmp_path, corrected, name="corrected.csv"))
    assert "versions changed" in out
    assert "unchanged" not in out
    meta = on("META", date(2022, 6, 9), known_at=before)
    assert on("FB", date(2022, 6, 9)) == meta  # now: still FB that day
    with pytest.raises(security_master.SymbolNotResolved):
        on("META", date(2022, 6, 9))


def test_two_companies_swapping_symbols_on_a_day(db, tmp_path):
    a_figi, b_figi = "BBG000DDDDD4", "BBG000EEEEE5"
    rows = [
        f"2020-01-02,AAA,Alpha,USD,listed,XNYS,{a_figi},,",
        f"2020-01-02,BBB,Beta,USD,listed,XNYS,{b_figi},,",
    ]
    ingest(write(tmp_path, rows))
    swapped = [
        *rows,
        f"2021-01-04,BBB,Alpha,USD,listed,XNYS,{a_figi},,",
        f"2021-01-04,AAA,Beta,USD,listed,XNYS,{b_figi},,",
    ]
    ingest(write(tmp_path, swapped, name="swapped.csv"))
    alpha = on("AAA", date(2020, 6, 1))
    assert on("BBB", date(2021, 6, 1)) == alpha
    assert on("AAA", date(2021, 6, 1)) == on("BBB", date(2020, 6, 1)) != alpha
    assert current(alpha) == [
        (date(2020, 1, 2), date(2021, 1, 4), "AAA", "listed"),
        (date(2021, 1, 4), None, "BBB", "listed"),
    ]


def test_a_dry_run_writes_nothing(db, tmp_path):
    listings = Listing.objects.count()
    out = ingest(write(tmp_path, HISTORY), "--dry-run")
    assert "dry run: nothing written" in out
    assert "created" in out
    assert Instrument.objects.count() == 0
    assert Listing.objects.count() == listings


GOOD = f"2020-01-02,ABC,Abc Inc,USD,listed,XNAS,{OLD_FIGI},,"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (
            f"2020-13-02,ABC,Abc,USD,listed,XNAS,{NEW_FIGI},,",
            "bad date in valid_from: '2020-13-02'",
        ),
        (f"02/01/2020,ABC,Abc,USD,listed,XNAS,{NEW_FIGI},,", "bad date in valid_from"),
        (f"2021-01-04,ABC,Abc,USD,halted,XNAS,{NEW_FIGI},,", "unknown status 'halted'"),
        (f"2021-01-04,ABC,Abc,usd,listed,XNAS,{NEW_FIGI},,", "bad currency code in currency"),
        (f"2021-01-04,ABC,Abc,USD,listed,NASDAQ,{NEW_FIGI},,", "bad MIC in mic: 'NASDAQ'"),
        ("2021-01-04,ABC,Abc,USD,listed,XNAS,,US0000000000X,", "bad ISIN in isin"),
        ("2021-01-04,ABC,Abc,USD,listed,XNAS,BBX000BBBBB2,,", "bad FIGI in figi"),
        (f"2021-01-04,,Abc,USD,listed,XNAS,{NEW_FIGI},,", "missing symbol"),
        ("2021-01-04,ABC,Abc,USD,listed,XNAS,,,", "names no instrument, figi or isin"),
        (
            f"2020-01-02,ABD,Abc,USD,listed,XNAS,{OLD_FIGI},,",
            "valid_from 2020-01-02 repeats line 2",
        ),
    ],
)
def test_a_bad_line_refuses_the_file_naming_it(db, tmp_path, bad, reason):
    message = refused(write(tmp_path, [GOOD, bad]))
    assert "1 bad row, nothing written" in message or "bad rows" in message
    assert f"line 3: {reason}" in message
    assert Instrument.objects.count() == 0
    assert Listing.objects.count() == 0


def test_a_group_whose_figi_and_isin_are_two_instruments_is_refused(db, tmp_path):
    ingest(write(tmp_path, [GOOD, f"2020-01-02,DEF,Def,USD,listed,XNAS,,{META_ISIN},"]))
    before = Listing.objects.count()
    message = refused(
        write(
            tmp_path,
            [f"2021-01-04,ABC,Abc,USD,listed,XNAS,{OLD_FIGI},{META_ISIN},"],
            name="both.csv",
        )
    )
    assert "line 2: matches two instruments" in message
    assert f"FIGI {OLD_FIGI} is instrument" in message
    assert f"ISIN {META_ISIN} is instrument" in message
    assert Listing.objects.count() == before


def test_a_symbol_two_listed_instruments_of_the_file_would_bear_names_both_lines(db, tmp_path):
    rows = [GOOD, f"2021-01-04,ABC,Other,USD,listed,XNAS,{NEW_FIGI},,"]
    message = refused(write(tmp_path, rows))
    assert "symbol ABC would be borne by two listed instruments from 2021-01-04: lines 2 and 3" in (
        message
    )
    assert Instrument.objects.count() == 0


def test_a_symbol_an_instrument_outside_the_file_bears_is_refused(db, tmp_path):
    held = Instrument.objects.create(symbol="ABC", asset_class="equity")
    message = refused(write(tmp_path, [GOOD]))
    assert f"line 2: symbol ABC is borne by instrument {held.pk} (now ABC) from always" in message
    assert list(Instrument.objects.all()) == [held]


def test_a_header_without_the_required_columns_is_refused(db, tmp_path):
    message = refused(write(tmp_path, ["ABC,USD"], header="symbol,currency,colour"))
    assert "missing columns valid_from, status" in message
    assert "unknown column 'colour'" in message


def test_the_report_names_each_instrument(db, tmp_path):
    out = ingest(write(tmp_path, HISTORY))
    meta = on("META", date(2023, 1, 2))
    assert f"instrument {meta.pk} META: created," in out
    assert "4 instruments" in out


@pytest.mark.parametrize(
    ("cells", "reason"),
    [
        ("999999,equity", "no instrument 999999"),
        ("x1,equity", "bad instrument id 'x1'"),
        (",bond", "unknown asset_class 'bond'"),
    ],
)
def test_a_bad_instrument_or_asset_class_names_its_line(db, tmp_path, cells, reason):
    header = HEADER + ",instrument,asset_class"
    message = refused(write(tmp_path, [f"{GOOD},{cells}"], header))
    assert f"line 2: {reason}" in message


def test_a_later_file_delists_a_company_and_gives_its_ticker_to_another(db, tmp_path):
    ingest(write(tmp_path, [HISTORY[2]]))  # Old XYZ Corp, listed still
    old = on("XYZ", date(2020, 1, 2))
    ingest(write(tmp_path, HISTORY[2:5], name="reused.csv"))
    new = on("XYZ", date(2020, 1, 2))
    assert new != old
    assert on("XYZ", date(2005, 1, 3)) == old
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.symbol, old.active, new.symbol, new.active) == ("XYZ", False, "XYZ", True)
