"""manage.py delete_market_data: a range of one instrument's rows leaves the present, stays
readable as known before, each row kept as a 'deleted' revision naming the command; the
summaries of the range follow; bad input is refused naming the option, with nothing done."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError, connection

from marketdata.models import (
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    OptionQuote,
    OptionQuoteRevision,
    Tick,
    TickRevision,
)
from qvp_site.db import aggregates, catalog, roles
from qvp_site.db.aggregates import refresh_table
from tests.knowledge import between_commits as _pause
from tests.marketdata.conftest import START

HOURLY = "marketdata_minutebar_1h"
BARS = 120  # two hours of minute bars from START
VALUES = {"open": 1, "high": 2, "low": 1, "close": 2, "volume": 10}


def _bars(instrument: Instrument) -> None:
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=instrument, ts=START + timedelta(minutes=i), **VALUES)
        for i in range(BARS)
    )


def _delete(*args: str, **kwargs) -> str:
    out = StringIO()
    call_command("delete_market_data", *args, stdout=out, **kwargs)
    return out.getvalue()


def _range(symbol: str, kind: str, start: datetime, end: datetime) -> list[str]:
    return ["--symbol", symbol, "--kind", kind, "--start", start.isoformat(), "--end",
            end.isoformat()]  # fmt: skip


def _hourly_counts(instrument: Instrument) -> dict[datetime, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT bucket, bar_count FROM {HOURLY} WHERE instrument_id = %s ORDER BY bucket",
            [instrument.pk],
        )
        return dict(cursor.fetchall())


@pytest.fixture
def summarised(transactional_db, partitioned_for):
    """Two hours of minute bars of one instrument, their hourly summaries refreshed; the
    summaries are emptied again afterwards (a flush empties the model tables only)."""
    instrument = Instrument.objects.create(symbol="DEL", asset_class="equity")
    _bars(instrument)
    refresh_table("marketdata_minutebar", START, START + timedelta(minutes=BARS - 1))
    yield instrument
    MinuteBar.objects.all().delete()
    refresh_table("marketdata_minutebar", START, START + timedelta(minutes=BARS - 1))


@pytest.mark.django_db(transaction=True)
def test_without_yes_it_says_how_many_and_deletes_nothing(summarised):
    out = _delete(*_range("DEL", "1m", START, START + timedelta(minutes=30)))
    assert "Would delete 30 1-minute bars of DEL" in out
    assert "nothing deleted" in out
    assert MinuteBar.objects.count() == BARS
    assert not MinuteBarRevision.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_deleted_bars_leave_the_present_and_stay_readable_as_known_before(summarised):
    assert _hourly_counts(summarised) == {START: 60, START + timedelta(hours=1): 60}
    before = _pause()
    # The second hour from 10 minutes in, up to 10 minutes before its end: [70, 110).
    first, end = START + timedelta(minutes=70), START + timedelta(minutes=110)
    out = _delete(*_range("DEL", "1m", first, end), "--yes")
    after = _pause()

    assert "Deleted 40 1-minute bars of DEL" in out
    assert "stay readable as known before" in out
    bars = MinuteBar.objects.filter(instrument=summarised)
    assert bars.count() == BARS - 40
    assert not bars.filter(ts__gte=first, ts__lt=end).exists()
    assert bars.filter(ts=end).exists()  # the end is not deleted
    # Known before the deletion, the rows are all there, with their values.
    assert bars.known_at(before).count() == BARS
    assert bars.known_at(before).filter(ts__gte=first, ts__lt=end).count() == 40
    assert bars.known_at(after).count() == BARS - 40

    revisions = MinuteBarRevision.objects.filter(instrument=summarised)
    assert revisions.count() == 40
    assert set(revisions.values_list("change", "actor", "ingest_id")) == {
        ("deleted", "system:delete_market_data", None)
    }
    assert all(before < r.known_until < after for r in revisions)
    assert {r.ts for r in revisions} == {first + timedelta(minutes=i) for i in range(40)}

    # The hourly summary was refreshed after the commit: it counts only the bars left.
    assert _hourly_counts(summarised) == {START: 60, START + timedelta(hours=1): 20}


@pytest.mark.django_db(transaction=True)
def test_ticks_and_option_quotes_of_the_underlying_are_deleted_as_revisions(partitioned_for):
    underlying = Instrument.objects.create(symbol="UND", asset_class="equity")
    other = Instrument.objects.create(symbol="OTH", asset_class="equity")
    for who in (underlying, other):
        Tick.objects.create(instrument=who, ts=START, sequence=0, price=1, size=1)
        OptionQuote.objects.create(
            underlying=who, ts=START, expiry=date(2024, 6, 21), strike=1, right="C", bid=1, ask=2
        )
    before = _pause()
    span = _range("UND", "ticks", START, START + timedelta(seconds=1))
    assert "Deleted 1 ticks of UND" in _delete(*span, "--yes")
    span = _range("UND", "options", START, START + timedelta(seconds=1))
    assert "Deleted 1 option quotes of UND" in _delete(*span, "--yes")

    assert list(Tick.objects.values_list("instrument__symbol", flat=True)) == ["OTH"]
    assert list(OptionQuote.objects.values_list("underlying__symbol", flat=True)) == ["OTH"]
    assert OptionQuote.objects.known_at(before).count() == 2
    assert Tick.objects.known_at(before).count() == 2
    assert TickRevision.objects.get().change == "deleted"
    quote = OptionQuoteRevision.objects.get()
    assert (quote.underlying_id, quote.change, quote.bid) == (underlying.pk, "deleted", 1)


@pytest.mark.django_db
def test_the_application_role_deletes_through_the_owners_function(
    instrument, partitioned_for, db_role
):
    """As the served site's role, which may not DELETE market data itself: the owner's
    function deletes and keeps the revisions. (The bar is the owner's: the role may not say
    when a row was learnt, which an insert through the ORM names.)"""
    MinuteBar.objects.create(instrument=instrument, ts=START, **VALUES)
    with db_role(roles.APP_ROLE):
        out = _delete(*_range("AAPL", "1m", START, START + timedelta(minutes=1)), "--yes")
        assert "Deleted 1 1-minute bars of AAPL" in out
        assert not MinuteBar.objects.exists()
        assert MinuteBarRevision.objects.get().actor == "system:delete_market_data"


BAD = [
    (["--symbol", "NOPE"], {}, "--symbol"),
    (["--symbol", "DE\x00L"], {}, "--symbol"),
    ([], {"--start": (START + timedelta(hours=1)).isoformat()}, "--start"),  # start == end
    ([], {"--end": START.isoformat()}, "--start"),  # end before start
    ([], {"--start": "yesterday"}, "--start"),
    ([], {"--end": "2024-13-01"}, "--end"),
    (["--kind", "5m"], {}, "--kind"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("extra", "times", "option"), BAD)
def test_bad_input_is_refused_naming_the_option_and_nothing_is_done(
    summarised, extra, times, option
):
    given = {"--symbol": "DEL", "--kind": "1m", "--start": START.isoformat()}
    given["--end"] = (START + timedelta(hours=1)).isoformat()
    given.update(times)
    given.update(dict(zip(extra[::2], extra[1::2], strict=True)))
    args = [part for pair in given.items() for part in pair]
    with pytest.raises(CommandError, match=option):
        _delete(*args, "--yes")
    assert MinuteBar.objects.count() == BARS
    assert not MinuteBarRevision.objects.exists()
    assert _hourly_counts(summarised) == {START: 60, START + timedelta(hours=1): 60}


@pytest.mark.django_db(transaction=True)
def test_an_empty_range_deletes_nothing_and_says_so(summarised):
    later = START + timedelta(days=1)
    out = _delete(*_range("DEL", "1m", later, later + timedelta(hours=1)), "--yes")
    assert "Deleted 0 1-minute bars" in out
    assert MinuteBar.objects.count() == BARS


@pytest.mark.django_db(transaction=True)
def test_a_refresh_that_fails_after_the_commit_leaves_the_deletion_and_says_so(
    summarised, monkeypatch
):
    """The deletion committed; the summaries' range stays marked for the next ``maintain``."""

    def broken(agg, using="default"):
        raise OperationalError("the server went away")

    monkeypatch.setattr(aggregates, "refresh_pending", broken)
    span = _range("DEL", "1m", START, START + timedelta(minutes=30))
    out = _delete(*span, "--yes")
    assert "Deleted 30 1-minute bars of DEL" in out
    assert "summaries of the range are left to the next maintain: the server went away" in out
    assert MinuteBar.objects.count() == BARS - 30
    assert _hourly_counts(summarised)[START] == 60  # not refreshed yet
    monkeypatch.undo()
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table="marketdata_minutebar")
    for agg in found:  # what the next maintain does
        aggregates.refresh_pending(agg)
    assert _hourly_counts(summarised)[START] == 30
