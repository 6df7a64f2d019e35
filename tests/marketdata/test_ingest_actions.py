"""ingest_actions: corporate actions loaded from a CSV file (marketdata/actions_load.py).

Oracle's splits (3:2 and 2:1, written as ratios people write), a dividend, a spin-off and a
delisting loaded; a symbol read as of the ex-date (a company renamed since); every bad line
refused naming its line and field, and nothing written; a second load changing nothing; a
restatement keeping the version it replaces, closed and readable as known before; the audit
log naming the command.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from marketdata import security_master
from marketdata.models import CorporateAction, Instrument
from qvp_site.models import AuditEntry

HEADER = "symbol,kind,ex_date,ratio,amount,currency,pay_date,new_symbol,cost_fraction,final_price"
ORACLE = [
    "ORCL,split,1999-03-01,3:2,,,,,,",
    "ORCL,split,2000-01-19,2-for-1,,,,,,",
    "ORCL,split,2000-10-13,2,,,,,,",
    "ORCL,cash_dividend,2009-04-07,,0.05,USD,2009-05-01,,,",
    "ORCL,stock_dividend,2010-01-04,0.02,,,,,,",
    "ORCL,spin_off,2011-06-01,0.5,,,,SPUN,0.1,",
    "SPUN,delisting,2013-02-01,,,,,,,12.5",
    "ORCL,split,2014-01-02,1:10,,,,,,",
]


@pytest.fixture
def oracle(db) -> Instrument:
    return Instrument.objects.create(symbol="ORCL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def spun(db) -> Instrument:
    return Instrument.objects.create(symbol="SPUN", asset_class="equity", exchange="XNAS")


def write(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "actions.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def ingest(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("ingest_actions", str(path), *args, stdout=out)
    return out.getvalue()


def refused(path: Path) -> str:
    with pytest.raises(CommandError) as raised:
        ingest(path)
    return str(raised.value)


def stored() -> list[tuple]:
    return list(
        CorporateAction.objects.order_by("id").values_list(
            "id", "instrument__symbol", "kind", "ex_date", "ratio", "known_until"
        )
    )


def test_a_file_of_actions_is_loaded(oracle, spun, tmp_path):
    out = ingest(write(tmp_path, ORACLE))
    assert "actions.csv: 8 rows, 8 inserted, 0 restated, 0 unchanged" in out
    current = CorporateAction.objects.filter(known_until__isnull=True)
    splits = current.filter(kind="split", instrument=oracle).order_by("ex_date")
    assert [a.ratio for a in splits] == [Decimal("1.5"), Decimal(2), Decimal(2), Decimal("0.1")]
    dividend = current.get(kind="cash_dividend")
    assert (dividend.amount, dividend.currency, dividend.pay_date) == (
        Decimal("0.05"),
        "USD",
        date(2009, 5, 1),
    )
    spin_off = current.get(kind="spin_off")
    assert (spin_off.new_instrument, spin_off.cost_fraction) == (spun, Decimal("0.1"))
    assert current.get(kind="delisting").final_price == Decimal("12.5")
    assert current.get(kind="stock_dividend").ratio == Decimal("0.02")


def test_a_symbol_names_the_instrument_that_bore_it_on_the_ex_date(db, tmp_path):
    meta = Instrument.objects.create(symbol="FB", asset_class="equity", exchange="XNAS")
    security_master.set_terms(
        meta.pk, date(2022, 6, 9), None, security_master.Terms(symbol="META", currency="USD")
    )
    ingest(write(tmp_path, ["FB,cash_dividend,2021-03-01,,0.5,USD,,,,"]))
    assert CorporateAction.objects.get().instrument == meta
    message = refused(write(tmp_path, ["FB,cash_dividend,2023-03-01,,0.5,USD,,,,"], name="b.csv"))
    assert "line 2: symbol: unknown symbol FB on 2023-03-01" in message
    assert f"instrument {meta.pk}, now META" in message  # the candidates


def test_an_ambiguous_symbol_is_refused_naming_the_candidates(db, tmp_path):
    first = Instrument.objects.create(symbol="TWIN", asset_class="equity")
    first.active = False
    first.save()  # delisted from today: another may bear TWIN
    second = Instrument.objects.create(symbol="TWIN", asset_class="equity")
    second.active = False
    second.save()
    day = security_master.today().isoformat()
    message = refused(write(tmp_path, [f"TWIN,delisting,{day},,,,,,,1"]))
    assert f"line 2: symbol: ambiguous symbol TWIN on {day}" in message
    assert f"instrument {first.pk}" in message
    assert f"instrument {second.pk}" in message


GOOD = "ORCL,split,1999-03-01,3:2,,,,,,"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("ORCL,merger,2001-01-02,,,,,,,", "kind: unknown kind 'merger'"),
        ("ORCL,split,2001-02-30,2,,,,,,", "ex_date: bad date '2001-02-30'"),
        ("ORCL,split,,2,,,,,,", "ex_date: missing"),
        (",split,2001-01-02,2,,,,,,", "symbol: missing"),
        ("ORCL,split,2001-01-02,,,,,,,", "ratio: a split states its ratio"),
        ("ORCL,split,2001-01-02,1,,,,,,", "ratio: a split of 1 for 1 changes nothing"),
        ("ORCL,split,2001-01-02,0,,,,,,", "ratio: 0 is not positive"),
        ("ORCL,split,2001-01-02,20000:1,,,,,,", "ratio: 20000:1 is out of range"),
        ("ORCL,split,2001-01-02,3:0,,,,,,", "ratio: not a ratio: '3:0'"),
        ("ORCL,split,2001-01-02,NaN,,,,,,", "ratio: not a ratio: 'NaN'"),
        ("ORCL,split,2001-01-02,1.00000000001,,,,,,", "ratio: 1.00000000001 has more than 10"),
        ("ORCL,split,2001-01-02,1e12,,,,,,", "ratio: 1e12 is too large"),
        ("ORCL,split,2001-01-02,2,0.5,,,,,", "amount: a split has no amount"),
        ("ORCL,cash_dividend,2001-01-02,,,USD,,,,", "amount: a cash dividend states its amount"),
        (
            "ORCL,cash_dividend,2001-01-02,,0.5,,,,,",
            "currency: a cash dividend states its currency",
        ),
        ("ORCL,cash_dividend,2001-01-02,,-1,USD,,,,", "amount: -1 is not positive"),
        ("ORCL,cash_dividend,2001-01-02,,1,usd,,,,", "currency: 'usd' is not a currency code"),
        (
            "ORCL,cash_dividend,2001-01-02,,1,EUR,,,,",
            "currency: EUR, but instrument {oracle} (ORCL) trades in USD on 2001-01-02",
        ),
        (
            "ORCL,cash_dividend,2001-01-02,,1,USD,2001-01-01,,,",
            "pay_date: 2001-01-01 is before ex_date 2001-01-02",
        ),
        ("ORCL,stock_dividend,2001-01-02,0.1,,,2001-01-05,,,", "pay_date: a stock dividend has no"),
        ("ORCL,spin_off,2001-01-02,1,,,,,0.2,", "new_symbol: a spin-off states its new_symbol"),
        ("ORCL,spin_off,2001-01-02,1,,,,SPUN,1,", "cost_fraction: 1 is not between 0 and 1"),
        ("ORCL,spin_off,2001-01-02,1,,,,ORCL,0.2,", "new_symbol: instrument {oracle} is the"),
        ("ORCL,spin_off,2001-01-02,1,,,,NOPE,0.2,", "new_symbol: unknown symbol NOPE on 2001"),
        ("ORCL,split,2001-01-02,2,,,,SPUN,,", "new_symbol: a split has no new_symbol"),
        ("ORCL,delisting,2001-01-02,,,,,,,", "final_price: a delisting states its final_price"),
        ("ORCL,delisting,2001-01-02,,,,,,,-3", "final_price: -3 is negative"),
        ("ORCL,delisting,2001-01-02,,,,,,,abc", "final_price: not a number: 'abc'"),
        ("ORCL,split,2001-01-02,2,,,,,,,", "11 fields where the header has 10"),
        (
            "ORCL,split,1999-03-01,2,,,,,,",
            "ex_date: a second split of ORCL (instrument {oracle}) on 1999-03-01: line 2",
        ),
    ],
)
def test_a_bad_line_refuses_the_file_naming_its_line_and_field(oracle, spun, tmp_path, bad, reason):
    message = refused(write(tmp_path, [GOOD, bad]))
    assert "nothing written" in message
    assert f"line 3: {reason.format(oracle=oracle.pk)}" in message
    assert not CorporateAction.objects.exists()


def test_a_repeated_action_names_both_lines(oracle, tmp_path):
    message = refused(write(tmp_path, [GOOD, "ORCL,split,1999-03-01,1.5,,,,,,"]))
    assert "2 bad rows" in message
    assert "line 2: ex_date: a second split of ORCL" in message
    assert "line 3 states it too" in message
    assert "line 3: ex_date: a second split of ORCL" in message
    assert "line 2 states it too" in message


def test_every_reason_of_a_line_is_given(oracle, tmp_path):
    message = refused(write(tmp_path, ["ORCL,cash_dividend,2001-01-02,2,-1,EUR,2000-01-01,,,"]))
    line = next(m for m in message.splitlines() if m.strip().startswith("line 2:"))
    for field in ("ratio:", "amount:", "currency:", "pay_date:"):
        assert field in line


def test_a_header_without_the_required_columns_is_refused(db, tmp_path):
    message = refused(write(tmp_path, ["ORCL,2"], header="ticker,ratio"))
    assert "missing columns symbol (or instrument), kind, ex_date" in message
    assert "unknown column 'ticker'" in message


def test_an_instrument_named_by_id(oracle, tmp_path):
    ingest(write(tmp_path, [f"{oracle.pk},split,2001-01-02,2"], "instrument,kind,ex_date,ratio"))
    assert CorporateAction.objects.get().instrument == oracle
    message = refused(
        write(tmp_path, ["999999,split,2001-01-02,2"], "instrument,kind,ex_date,ratio", "b.csv")
    )
    assert "line 2: instrument: no instrument 999999" in message


def test_loading_the_same_file_again_changes_nothing(oracle, spun, tmp_path):
    path = write(tmp_path, ORACLE)
    ingest(path)
    before = stored()
    out = ingest(path)
    assert "8 rows, 0 inserted, 0 restated, 8 unchanged" in out
    assert stored() == before


def test_a_ratio_of_thirds_is_stored_as_the_column_holds_it_and_reloads_unchanged(oracle, tmp_path):
    path = write(
        tmp_path, ["ORCL,split,2001-01-02,1:3,,,,,,", "ORCL,split,2002-01-02,4 for 3,,,,,,"]
    )
    ingest(path)
    ratios = CorporateAction.objects.order_by("ex_date").values_list("ratio", flat=True)
    assert list(ratios) == [Decimal("0.3333333333"), Decimal("1.3333333333")]
    assert "0 inserted, 0 restated, 2 unchanged" in ingest(path)


def test_a_dry_run_writes_nothing(oracle, spun, tmp_path):
    out = ingest(write(tmp_path, ORACLE), "--dry-run")
    assert "8 inserted" in out
    assert "dry run: nothing written" in out
    assert not CorporateAction.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_restatement_keeps_the_old_terms_readable_as_known_before(tmp_path):
    oracle = Instrument.objects.create(symbol="ORCL", asset_class="equity")
    ingest(write(tmp_path, [GOOD, "ORCL,cash_dividend,2009-04-07,,0.05,USD,,,,"]))
    between = timezone.now()
    restated = [
        "ORCL,split,1999-03-01,2:1,,,,,,",
        "ORCL,cash_dividend,2009-04-07,,0.05,USD,,,,",
    ]
    out = ingest(write(tmp_path, restated, name="restated.csv"))
    assert "2 rows, 0 inserted, 1 restated, 1 unchanged" in out
    splits = CorporateAction.objects.filter(instrument=oracle, kind="split").order_by("id")
    old, new = list(splits)
    assert (old.ratio, new.ratio) == (Decimal("1.5"), Decimal(2))
    assert old.known_until is not None
    assert old.known_until == new.known_from
    assert new.known_until is None

    def known_at(moment) -> list[Decimal]:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT ratio FROM marketdata_actions_known_at(%s) WHERE kind = 'split'", [moment]
            )
            return [row[0] for row in cursor.fetchall()]

    assert known_at(between) == [Decimal("1.5")]
    assert known_at(None) == [Decimal(2)]
    assert known_at(timezone.now()) == [Decimal(2)]


def test_the_audit_log_names_the_command(oracle, tmp_path):
    ingest(write(tmp_path, [GOOD]))
    action = CorporateAction.objects.get()
    entries = AuditEntry.objects.filter(table_name="marketdata_corporateaction")
    assert list(entries.values_list("row_key", "operation", "actor")) == [
        (str(action.pk), "INSERT", "system:ingest_actions")
    ]
