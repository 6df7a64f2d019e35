"""The admin of market data's revisions: the four revision lists (view only, for auditors
too), a row's change page showing its own revisions, an Ingest's page counting and linking the
ones its load brought; a bounded number of queries however many revisions; hostile values
escaped."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from marketdata.models import (
    DailyBar,
    DailyBarRevision,
    Ingest,
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    OptionQuote,
    OptionQuoteRevision,
    Tick,
    TickRevision,
)
from qvp_site.auditors import AUDITORS
from tests.marketdata.conftest import START

REVISION_MODELS = ["minutebarrevision", "dailybarrevision", "tickrevision", "optionquoterevision"]
BAR = {"open": 1.0, "high": 2.0, "low": 1.0, "close": 2.0}
HOSTILE = '<script>alert("x")</script>\u202eevil\u202c' + "x" * 100


def _known(minutes: int) -> dict:
    """When a revision's values were current: from START + ``minutes`` for a minute."""
    known_from = START + timedelta(minutes=minutes)
    return {"known_from": known_from, "known_until": known_from + timedelta(minutes=1)}


@pytest.fixture
def revised(instrument, partitioned_for, django_user_model):
    """One row of each kind, each with revisions: two of a load (an Ingest), one deletion."""
    ingest = Ingest.objects.create(file_name="fix.csv", kind=Ingest.Kind.BARS_1M, symbol="AAPL")
    # A load's record starts running, then ends (marketdata/sql/ingests/0010.sql).
    Ingest.objects.filter(pk=ingest.pk).update(updated=2, status="loaded")
    ingest.refresh_from_db()
    other = Ingest.objects.create(file_name="other.csv", kind=Ingest.Kind.BARS_1M, symbol="AAPL")
    bar = MinuteBar.objects.create(instrument=instrument, ts=START, **BAR)
    for i, (load, change) in enumerate(
        [(ingest, "revised"), (ingest, "revised"), (None, "deleted")]
    ):
        MinuteBarRevision.objects.create(
            row_id=bar.pk, instrument=instrument, ts=START, change=change, ingest=load,
            actor="system:ingest_bars", **{**BAR, "close": 1.5 + i / 10}, **_known(i),
        )  # fmt: skip
    # Another row's and another load's revisions, which neither page may show as this one's.
    MinuteBarRevision.objects.create(
        row_id=0, instrument=instrument, ts=START + timedelta(minutes=1), change="revised",
        ingest=other, actor="other", **BAR, **_known(0),
    )  # fmt: skip
    daily = DailyBar.objects.create(instrument=instrument, ts=START, **BAR)
    DailyBarRevision.objects.create(
        row_id=daily.pk, instrument=instrument, ts=START, change="deleted", **BAR, **_known(0)
    )
    tick = Tick.objects.create(instrument=instrument, ts=START, sequence=3, price=1, size=1)
    TickRevision.objects.create(
        row_id=tick.pk, instrument=instrument, ts=START, sequence=3, price=9, size=1,
        change="revised", **_known(0),
    )  # fmt: skip
    contract = {"ts": START, "expiry": date(2024, 6, 21), "strike": 100.5, "right": "C"}
    quote = OptionQuote.objects.create(underlying=instrument, bid=1, ask=2, **contract)
    OptionQuoteRevision.objects.create(
        row_id=quote.pk, underlying=instrument, bid=7, ask=8, change="revised",
        **contract, **_known(0),
    )  # fmt: skip
    return {"bar": bar, "daily": daily, "tick": tick, "quote": quote, "ingest": ingest}


@pytest.fixture
def auditor_client(db, django_user_model) -> Client:
    audrey = django_user_model.objects.create_user("audrey", password="pw-audrey-1234")
    audrey.is_staff = True
    audrey.save()
    audrey.groups.add(Group.objects.get(name=AUDITORS))
    client = Client()
    client.force_login(audrey)
    return client


def _list(model: str, **filters) -> str:
    base = f"/admin/marketdata/{model}/"
    return f"{base}?{urlencode(filters)}" if filters else base


@pytest.mark.parametrize("model", REVISION_MODELS)
def test_revision_lists_open_for_operators_and_auditors(
    admin_client, auditor_client, revised, model
):
    for client in (admin_client, auditor_client):
        response = client.get(_list(model))
        assert response.status_code == 200
        assert b"AAPL" in response.content
        assert client.get(_list(model, change="deleted")).status_code == 200
        assert client.get(_list(model, q="AAPL")).status_code == 200


@pytest.mark.parametrize("model", REVISION_MODELS)
def test_nobody_adds_changes_or_deletes_a_revision(admin_client, auditor_client, revised, model):
    row = {
        "minutebarrevision": MinuteBarRevision,
        "dailybarrevision": DailyBarRevision,
        "tickrevision": TickRevision,
        "optionquoterevision": OptionQuoteRevision,
    }[model].objects.first()
    base = _list(model)
    for client in (admin_client, auditor_client):
        page = client.get(f"{base}{row.pk}/change/")
        assert page.status_code == 200
        assert b'name="_save"' not in page.content
        assert client.post(f"{base}{row.pk}/change/", {"close": "3"}).status_code == 403
        assert client.get(f"{base}{row.pk}/delete/").status_code == 403
        assert client.get(f"{base}add/").status_code == 403
        assert b"delete_selected" not in client.get(base).content
        client.post(base, {"action": "delete_selected", "_selected_action": [row.pk], "post": 1})
    assert type(row).objects.filter(pk=row.pk).exists()


def test_the_list_filters_by_change_and_by_exact_symbol_in_index_order(admin_client, revised):
    with CaptureQueriesContext(connection) as queries:
        found = admin_client.get(_list("minutebarrevision", q="AAPL"))
    # Read before the next request: Django empties the queries' log when a request starts.
    listed = [q["sql"] for q in queries.captured_queries if "ORDER BY" in q["sql"]]
    listed = [s for s in listed if "marketdata_minutebarrevision" in s]
    assert len(found.context["cl"].result_list) == 4
    assert not admin_client.get(_list("minutebarrevision", q="AAP")).context["cl"].result_list
    deleted = admin_client.get(_list("minutebarrevision", change="deleted"))
    assert len(deleted.context["cl"].result_list) == 1
    assert listed
    assert all("LIKE" not in s.upper() for s in listed), listed
    # The order of the (instrument, ts) index, not the instrument's symbol.
    assert all(
        'ORDER BY "marketdata_minutebarrevision"."instrument_id" ASC, '
        '"marketdata_minutebarrevision"."ts" ASC' in s
        for s in listed
    ), listed


def test_a_bars_page_shows_its_revisions_and_links_to_them(admin_client, revised):
    bar = revised["bar"]
    page = admin_client.get(f"/admin/marketdata/minutebar/{bar.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    # Its three revisions, newest first, with the load that brought each; not another row's.
    assert html.index("1.7") < html.index("1.6") < html.index("1.5")
    assert html.count("<td>revised</td>") == 2
    assert html.count("<td>deleted</td>") == 1
    assert f"/admin/marketdata/ingest/{revised['ingest'].pk}/change/" in html
    assert ">other<" not in html
    link = _list(
        "minutebarrevision", instrument__id__exact=bar.instrument_id, ts__exact=START.isoformat()
    )
    assert link.replace("&", "&amp;") in html
    listed = admin_client.get(link)
    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == 3


@pytest.mark.parametrize(
    ("model", "row", "count"),
    [("dailybar", "daily", 1), ("tick", "tick", 1), ("optionquote", "quote", 1)],
)
def test_ticks_quotes_and_daily_bars_show_theirs_too(admin_client, revised, model, row, count):
    page = admin_client.get(f"/admin/marketdata/{model}/{revised[row].pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    link = html.split("all revisions of this row")[0].rsplit('href="', 1)[1].split('"')[0]
    listed = admin_client.get(link.replace("&amp;", "&"))
    assert listed.status_code == 200
    assert len(listed.context["cl"].result_list) == count


def test_a_row_without_revisions_says_so(admin_client, instrument, partitioned_for):
    bar = MinuteBar.objects.create(instrument=instrument, ts=START, **BAR)
    page = admin_client.get(f"/admin/marketdata/minutebar/{bar.pk}/change/")
    assert b"none: as first loaded" in page.content


def test_a_bars_page_reads_its_revisions_in_one_query(
    admin_client, revised, django_assert_max_num_queries
):
    """However many revisions the bar has (the page lists the newest 20), the same queries."""
    bar = revised["bar"]
    url = f"/admin/marketdata/minutebar/{bar.pk}/change/"
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    allowed = len(few.captured_queries)  # read now: the next request empties the log
    MinuteBarRevision.objects.bulk_create(
        MinuteBarRevision(
            row_id=bar.pk,
            instrument_id=bar.instrument_id,
            ts=START,
            change="revised",
            ingest=revised["ingest"],
            **BAR,
            **_known(10 + i),
        )
        for i in range(40)
    )
    with django_assert_max_num_queries(allowed):
        page = admin_client.get(url)
    assert page.content.count(b"<td>revised</td>") == 20


def test_the_ingest_page_counts_and_links_the_revisions_of_its_load(admin_client, revised):
    ingest = revised["ingest"]
    page = admin_client.get(f"/admin/marketdata/ingest/{ingest.pk}/change/")
    assert page.status_code == 200
    link = _list("minutebarrevision", ingest__id__exact=ingest.pk)
    assert f'<a href="{link}">2 revisions</a>' in page.content.decode()
    listed = admin_client.get(link)
    assert listed.status_code == 200
    assert {r.ingest_id for r in listed.context["cl"].result_list} == {ingest.pk}
    assert len(listed.context["cl"].result_list) == 2


def test_the_ingest_list_links_revised_counts_without_a_query_per_row(
    admin_client, revised, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as few:
        admin_client.get("/admin/marketdata/ingest/")
    allowed = len(few.captured_queries)  # read now: the next request empties the log
    Ingest.objects.bulk_create(
        Ingest(file_name=f"f{i}.csv", kind="bars-1d", symbol="AAPL", updated=i) for i in range(30)
    )
    with django_assert_max_num_queries(allowed):
        page = admin_client.get("/admin/marketdata/ingest/")
    link = _list("minutebarrevision", ingest__id__exact=revised["ingest"].pk)
    assert f'<a href="{link.replace("&", "&amp;")}">2</a>' in page.content.decode()


def test_revision_lists_read_few_queries_however_many_rows(
    admin_client, revised, django_assert_max_num_queries
):
    """The instrument comes with each row (a join), the load is a link by its id."""
    url = _list("minutebarrevision")
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    allowed = len(few.captured_queries)  # read now: the next request empties the log
    bar = revised["bar"]
    MinuteBarRevision.objects.bulk_create(
        MinuteBarRevision(
            row_id=bar.pk,
            instrument=Instrument.objects.create(symbol=f"S{i}", asset_class="equity"),
            ts=START + timedelta(minutes=i),
            change="deleted",
            ingest=Ingest.objects.create(file_name=f"{i}.csv", kind="bars-1m", symbol=f"S{i}"),
            **BAR,
            **_known(i),
        )
        for i in range(50)
    )
    with django_assert_max_num_queries(allowed):
        page = admin_client.get(url)
    assert len(page.context["cl"].result_list) == 54


def test_hostile_values_in_revisions_are_escaped(admin_client, auditor_client, revised):
    """The revisions' text comes from the actor's name (a user's, a command's): escaped on
    every page that shows it, never run, never a 500."""
    MinuteBarRevision.objects.filter(row_id=revised["bar"].pk).update(actor=HOSTILE[:150])
    bar = revised["bar"]
    for client in (admin_client, auditor_client):
        for url in [
            f"/admin/marketdata/minutebar/{bar.pk}/change/",
            _list("minutebarrevision"),
            f"/admin/marketdata/minutebarrevision/{MinuteBarRevision.objects.first().pk}/change/",
        ]:
            page = client.get(url)
            assert page.status_code == 200, url
            assert b"<script>alert" not in page.content, url
            assert b"&lt;script&gt;alert" in page.content, url
    for params in [
        {"instrument__id__exact": "x"},
        {"ts__exact": "not a time"},
        {"ingest__id__exact": "\u202e1"},
        {"change": HOSTILE},
        {"q": HOSTILE},
    ]:
        assert admin_client.get(_list("minutebarrevision", **params)).status_code in (200, 302)


@pytest.mark.django_db(transaction=True)
def test_a_correcting_load_is_listed_on_its_ingest_and_on_the_bar(
    partitioned_for, tmp_path, django_user_model
):
    """End to end: ``ingest_bars`` twice, the second file correcting one bar."""
    header = "timestamp,open,high,low,close,volume\n"
    ts = START.strftime("%Y-%m-%d %H:%M:%S")
    for name, close in (("first.csv", "100.2"), ("fixed.csv", "100.7")):
        path = Path(tmp_path / name)
        path.write_text(f"{header}{ts},100.0,101.0,99.0,{close},5\n")
        out = StringIO()
        call_command("ingest_bars", str(path), "--symbol", "REV", "--timeframe", "1m", stdout=out)
    assert "1 revised" in out.getvalue()
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    client = Client()
    client.force_login(root)
    fixed = Ingest.objects.get(file_name="fixed.csv")
    page = client.get(f"/admin/marketdata/ingest/{fixed.pk}/change/").content.decode()
    assert ">1 revision</a>" in page
    bar = MinuteBar.objects.get(instrument=Instrument.objects.get(symbol="REV"))
    page = client.get(f"/admin/marketdata/minutebar/{bar.pk}/change/").content.decode()
    assert "<td>100.2</td>" in page
    assert f"/admin/marketdata/ingest/{fixed.pk}/change/" in page


def test_ingest_bars_says_what_revised_means():
    from marketdata.management.commands.ingest_bars import Command

    assert "revised (stored bars whose values the file changes" in Command.help
    assert "known_at" in Command.help
