"""Oracle's real history, 1995-2014: prices stored as traded, read adjusted for its splits and
dividends, and a vendor's split-adjusted file loaded so that a later split adjusts it once.

``yahoo-orcl-daily-1995-2014.csv`` (../shared/data) is Yahoo's download: its Close is adjusted
for Oracle's splits in the file's range, its Adj Close for the dividends as well. The splits
(3 for 2 on 1995-02-23, 1996-04-17, 1997-08-18 and 1999-03-01; 2 for 1 on 2000-01-19 and
2000-10-13) are Oracle's investor relations' table as The Motley Fool quotes it ("Oracle Stock
Split: Will the Tech Giant Ever Split?", fool.com, 2017-01-11), and the same dates and ratios
are in https://www.splithistory.com/orcl/. The file confirms them a third way: undone, every
price before decimalization (2001-03-26 for ORCL) lies on the sixty-fourths of a dollar the
stock traded in (``test_the_prices_as_traded_lie_on_the_fractions_of_the_time``).

The dividends are Oracle's first quarterly ones ($0.05 from 2009-04-06, "First Payout
2009-04-06" at https://valueray.com/symbol/NYSE/ORCL/dividends; $0.06 from 2011; $0.18 on
2012-12-12, three quarters paid early before the 2013 tax change; $0.12 from 2013: the
quarterly table at https://strike.market/stocks/ORCL/dividends). Their ex-dates are where the
file's Adj Close / Close steps; the levels of Adj Close are never compared (Yahoo computed it
later with a history the file does not hold).

The loads go through ``ingest_bars`` and commit in several transactions: ``transaction=True``.
"""

from __future__ import annotations

import csv
import itertools
import math
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from marketdata.models import DailyBar, Ingest, Instrument

YAHOO = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
YAHOO = YAHOO / "yahoo-orcl-daily-1995-2014.csv"

# (ex-date, new shares per old): Oracle's splits in the file's range (see the docstring).
SPLITS = [
    (date(1995, 2, 23), Decimal("1.5")),
    (date(1996, 4, 17), Decimal("1.5")),
    (date(1997, 8, 18), Decimal("1.5")),
    (date(1999, 3, 1), Decimal("1.5")),
    (date(2000, 1, 19), Decimal("2")),
    (date(2000, 10, 13), Decimal("2")),
]
# (ex-date, amount in USD): a handful of Oracle's cash dividends (see the docstring).
DIVIDENDS = [
    (date(2009, 4, 6), Decimal("0.05")),
    (date(2011, 4, 11), Decimal("0.06")),
    (date(2012, 12, 12), Decimal("0.18")),
    (date(2013, 7, 10), Decimal("0.12")),
    (date(2014, 10, 6), Decimal("0.12")),
]
PRICES = ("open", "high", "low", "close")
RELATIVE = 1e-9

pytestmark = pytest.mark.django_db(transaction=True)


@dataclass(frozen=True)
class Row:
    day: date
    values: dict[str, Decimal]  # open, high, low, close, volume


def file_rows() -> list[Row]:
    with YAHOO.open(newline="") as f:
        return [
            Row(
                date.fromisoformat(line["Date"]),
                {
                    "open": Decimal(line["Open"]),
                    "high": Decimal(line["High"]),
                    "low": Decimal(line["Low"]),
                    "close": Decimal(line["Close"]),
                    "volume": Decimal(line["Volume"]),
                },
            )
            for line in csv.DictReader(f)
        ]


def later_ratios(day: date, through: date | None = None) -> Decimal:
    """The product of the ratios of the splits with ex-dates after ``day`` (and on or before
    ``through``): what the vendor divided a price of ``day`` by."""
    product = Decimal(1)
    for ex_date, ratio in SPLITS:
        if ex_date > day and (through is None or ex_date <= through):
            product *= ratio
    return product


def as_traded(row: Row, through: date | None = None) -> dict[str, Decimal]:
    """The row's values as traded, from the vendor's adjusted through ``through`` (None: all
    of SPLITS): prices times the later ratios, volume divided by them. Decimal arithmetic: the
    prices are exact (six decimals times 1.5s and 2s)."""
    product = later_ratios(row.day, through)
    values = {name: row.values[name] * product for name in PRICES}
    values["volume"] = row.values["volume"] / product
    return values


def write_file(path: Path, rows: list[Row], values) -> Path:
    """A Yahoo-like file (no Adj Close) of ``values(row)`` for each row."""
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["Date", "Open", "High", "Low", "Close", "Volume"])
        for row in rows:
            v = values(row)
            writer.writerow([row.day.isoformat(), *(str(v[n]) for n in (*PRICES, "volume"))])
    return path


def ingest(path: Path, *args: str) -> str:
    out = StringIO()
    call_command(
        "ingest_bars", str(path), "--symbol", "ORCL", "--timeframe", "1d", *args, stdout=out
    )
    return out.getvalue()


def state(instrument: Instrument, kind: str, ex_date: date, ratio=None, amount=None) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            [instrument.id, kind, ex_date, ratio, amount, "USD" if amount else None],
        )
        return cursor.fetchone()[0]


def state_splits(instrument: Instrument) -> None:
    for ex_date, ratio in SPLITS:
        assert state(instrument, "split", ex_date, ratio=ratio) == "inserted"


def read(adjustment: str, known_at: datetime | None = None) -> dict[date, dict[str, float]]:
    bars = DailyBar.objects.for_symbol("ORCL").known_at(known_at).adjusted(adjustment)
    return {
        ts.date(): dict(zip((*PRICES, "volume"), values, strict=True))
        for ts, *values in bars.order_by("ts").values_list("ts", *PRICES, "volume")
    }


def mismatches(read_rows: dict[date, dict[str, float]], rows: list[Row], expected) -> list:
    """Every (day, field, read, expected) further apart than RELATIVE; every row read."""
    assert sorted(read_rows) == [row.day for row in rows]
    found = []
    for row in rows:
        want = expected(row)
        for name, value in read_rows[row.day].items():
            if not math.isclose(value, float(want[name]), rel_tol=RELATIVE):
                found.append((row.day, name, value, want[name]))
    return found


@pytest.fixture
def rows() -> list[Row]:
    return file_rows()


@pytest.fixture
def orcl(db) -> Instrument:
    """ORCL with its six splits stated (before any bar is loaded: what --adjusted-through
    needs; a load as traded needs them at read time only)."""
    orcl = Instrument.objects.create(symbol="ORCL", asset_class="equity", exchange="XNYS")
    state_splits(orcl)
    return orcl


@pytest.fixture
def loaded_as_traded(orcl, rows, tmp_path) -> Instrument:
    """The file undone to the prices as traded, loaded as such (no flag)."""
    out = ingest(write_file(tmp_path / "orcl-as-traded.csv", rows, as_traded))
    assert "5,036 rows read, 5,036 inserted" in out
    return orcl


def test_the_prices_as_traded_lie_on_the_fractions_of_the_time(rows):
    """Before decimalization ORCL traded in sixty-fourths of a dollar at most: undone with the
    cited splits, every price of 1995 to March 2001 is one (to Yahoo's six decimals times the
    ratios); a wrong ratio or a missed split would put most of them off it."""
    before = [row for row in rows if row.day < date(2001, 3, 26)]
    off = [
        (row.day, name, price)
        for row in before
        for name, price in as_traded(row).items()
        if name != "volume" and abs(price * 64 - round(price * 64)) > Decimal("0.0128")
    ]
    assert len(before) > 1500
    assert off == []


def test_loaded_as_traded_the_split_adjusted_read_is_the_files_close(loaded_as_traded, rows):
    assert mismatches(read("split"), rows, lambda row: row.values) == []
    assert mismatches(read("raw"), rows, as_traded) == []
    first = read("raw")[date(1995, 1, 3)]
    assert first["close"] == 42.875001  # 42 7/8 (2.117284 x 20.25 exactly, a float apart)


def test_a_vendor_adjusted_file_is_stored_as_traded_and_a_later_split_adjusts_it_once(
    orcl, rows, tmp_path
):
    out = ingest(YAHOO, "--adjusted-through", "2014-12-31")
    assert "5,036 rows read, 5,036 inserted" in out
    # Every row before the last split's ex-date was divided back; none after it.
    divided = sum(1 for row in rows if row.day < SPLITS[-1][0])
    assert f"{divided:,} rows divided back to the prices as traded" in out
    load = Ingest.objects.get(file_name=YAHOO.name)
    assert load.adjusted_through == date(2014, 12, 31)
    assert mismatches(read("raw"), rows, as_traded) == []
    assert mismatches(read("split"), rows, lambda row: row.values) == []

    # The same file again: the same values as traded, nothing revised.
    again = ingest(YAHOO, "--adjusted-through", "2014-12-31")
    assert "5,036 rows read, 0 inserted, 0 revised, 5,036 unchanged" in again

    # A split after the data (made up): every row adjusted by it, once.
    assert state(orcl, "split", date(2015, 6, 1), ratio=Decimal(2)) == "inserted"

    def halved(row: Row) -> dict[str, Decimal]:
        return {
            **{name: row.values[name] / 2 for name in PRICES},
            "volume": row.values["volume"] * 2,
        }

    assert mismatches(read("split"), rows, halved) == []
    assert mismatches(read("raw"), rows, as_traded) == []


def test_a_vendor_file_loaded_before_its_splits_is_revised_by_loading_it_again(rows):
    """The splits not loaded first: the load warns and stores the file as it is; loaded again
    once they are, the rows before the last split are revised to the prices as traded (the
    vendor's kept as revisions) and the rest left as they are."""
    first = ingest(YAHOO, "--adjusted-through", "2014-12-31")
    assert "0 rows divided back" in first
    assert "No split of ORCL known adjusts these rows" in first
    state_splits(Instrument.objects.get(symbol="ORCL"))
    again = ingest(YAHOO, "--adjusted-through", "2014-12-31")
    divided = sum(1 for row in rows if row.day < SPLITS[-1][0])
    assert (
        f"5,036 rows read, 0 inserted, {divided:,} revised, {5036 - divided:,} unchanged" in again
    )
    assert mismatches(read("raw"), rows, as_traded) == []
    assert mismatches(read("split"), rows, lambda row: row.values) == []


def test_a_file_adjusted_through_a_date_between_splits_keeps_the_later_ones(orcl, rows, tmp_path):
    """A vendor file written in the autumn of 1999 was adjusted for the splits until then, not
    for 2000's: the load divides out the former only, and the reads come out as traded and
    split-adjusted whatever date the vendor adjusted through."""
    through = date(1999, 12, 31)
    window = [row for row in rows if date(1998, 6, 1) <= row.day < date(2000, 12, 31)]

    def vendor_1999(row: Row) -> dict[str, Decimal]:
        traded = as_traded(row)
        product = later_ratios(row.day, through)
        prices = {name: traded[name] / product for name in PRICES}
        return {**prices, "volume": traded["volume"] * product}

    path = write_file(tmp_path / "orcl-1999.csv", window, vendor_1999)
    ingest(path, "--adjusted-through", through.isoformat())
    assert mismatches(read("raw"), window, as_traded) == []
    assert mismatches(read("split"), window, lambda row: row.values) == []


def test_total_return_daily_returns_differ_from_raw_only_across_the_ex_dates(
    loaded_as_traded, rows
):
    """From 2001 (no split since), the total-return read's daily return is the raw one's on
    every day but an ex-date, where it is the close over the close before less the dividend
    (the back-adjustment factor 1 - D / close before, Yahoo's, CRSP's and Lean's):
    close_t / (close_t-1 - D). Returns only, never Yahoo's Adj Close levels."""
    for ex_date, amount in DIVIDENDS:
        assert state(loaded_as_traded, "cash_dividend", ex_date, amount=amount) == "inserted"
    raw, total = read("raw"), read("total_return")
    days = [row.day for row in rows if row.day >= date(2001, 1, 1)]
    dividends = {ex_date: float(amount) for ex_date, amount in DIVIDENDS}
    off, seen = [], []
    for before, day in itertools.pairwise(days):
        got = total[day]["close"] / total[before]["close"]
        if day in dividends:
            seen.append(day)
            want = raw[day]["close"] / (raw[before]["close"] - dividends[day])
        else:
            want = raw[day]["close"] / raw[before]["close"]
        if not math.isclose(got, want, rel_tol=RELATIVE):
            off.append((day, got, want))
    assert off == []
    assert seen == sorted(dividends)  # every ex-date is a trading day of the file
    # Back-adjusted to the latest close; before the first ex-date, by every dividend's factor.
    last = days[-1]
    assert total[last]["close"] == pytest.approx(raw[last]["close"], rel=RELATIVE)
    before_ex = {day: before for before, day in itertools.pairwise(days)}
    factor = math.prod(1 - d / raw[before_ex[ex]]["close"] for ex, d in dividends.items())
    assert total[days[0]]["close"] == pytest.approx(raw[days[0]]["close"] * factor, rel=RELATIVE)


def test_a_split_stated_later_does_not_adjust_a_read_as_known_before(loaded_as_traded, rows):
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        before = cursor.fetchone()[0]
    assert state(loaded_as_traded, "split", date(2015, 6, 1), ratio=Decimal(2)) == "inserted"
    assert mismatches(read("split", known_at=before), rows, lambda row: row.values) == []
    now = read("split")
    assert now[date(2014, 12, 31)]["close"] == pytest.approx(44.970001 / 2, rel=RELATIVE)
    # Known before the load, there were no bars at all.
    assert read("split", known_at=datetime(2000, 1, 1, tzinfo=UTC)) == {}


def test_adjusted_through_refuses_a_future_date_and_a_non_date(orcl, tmp_path):
    with pytest.raises(CommandError, match="--adjusted-through: 2999-01-01 is after today"):
        ingest(YAHOO, "--adjusted-through", "2999-01-01")
    with pytest.raises(CommandError, match=r"adjusted-through.*'last week' is not a date"):
        ingest(YAHOO, "--adjusted-through", "last week")
    assert not DailyBar.objects.exists()
