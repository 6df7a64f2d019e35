"""The admin on large tables: no full count, a bounded number of queries, raw id fields."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from marketdata.models import DailyBar, MinuteBar, OptionQuote, Tick
from tests.marketdata.conftest import START


@pytest.fixture
def many_bars(instrument, partitioned_for):
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=instrument, ts=START + timedelta(minutes=i), open=1, high=2, low=1, close=2
        )
        for i in range(250)
    )


@pytest.mark.parametrize(
    "model", ["minutebar", "dailybar", "tick", "optionquote", "instrument", "ingest"]
)
def test_changelists_open(admin_client, many_bars, model):
    assert admin_client.get(f"/admin/marketdata/{model}/").status_code == 200


@pytest.mark.committed_on_citus  # the estimate there: the workers' statistics
def test_bar_changelist_counts_nothing_in_full_and_issues_few_queries(
    admin_client, many_bars, monkeypatch
):
    # Past the threshold the paginator takes the planner's estimate instead of COUNT(*).
    monkeypatch.setattr("qvp_site.admin_bases.EstimatedCountPaginator.exact_below", 100)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_minutebar")
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/marketdata/minutebar/")
    assert response.status_code == 200
    statements = [q["sql"] for q in queries.captured_queries]
    bar_counts = [s for s in statements if "COUNT(" in s.upper() and "marketdata_minutebar" in s]
    assert not any("LIMIT" not in s.upper() and "reltuples" not in s for s in bar_counts), (
        bar_counts
    )
    assert len(statements) <= 12, statements
    assert b"AAPL" in response.content  # instrument shown through select_related, not N+1


def test_filtered_bar_changelist_searches_by_exact_symbol(admin_client, many_bars):
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get("/admin/marketdata/minutebar/?q=AAPL")
    assert response.status_code == 200
    assert b"AAPL" in response.content
    searches = [q["sql"] for q in queries.captured_queries if "marketdata_minutebar" in q["sql"]]
    assert searches
    assert all("LIKE" not in s.upper() for s in searches), searches  # the key serves it


# Bars, ticks and option quotes come by loads; the application's role may not UPDATE or
# DELETE them, so the admin views them and refuses any change with a 403, never a 500.
TIME_SERIES = ["minutebar", "dailybar", "tick", "optionquote"]


@pytest.fixture
def one_of_each(instrument, partitioned_for):
    values = {"open": 1, "high": 2, "low": 1, "close": 2}
    return {
        "minutebar": MinuteBar.objects.create(instrument=instrument, ts=START, **values),
        "dailybar": DailyBar.objects.create(instrument=instrument, ts=START, **values),
        "tick": Tick.objects.create(instrument=instrument, ts=START, sequence=0, price=1, size=1),
        "optionquote": OptionQuote.objects.create(
            underlying=instrument, ts=START, expiry=date(2024, 6, 21), strike=1, right="C"
        ),
    }


@pytest.mark.parametrize("model", TIME_SERIES)
def test_market_data_is_viewed_never_changed_in_the_admin(
    admin_client, one_of_each, as_app_role, model
):
    row = one_of_each[model]
    base = f"/admin/marketdata/{model}/"
    page = admin_client.get(f"{base}{row.pk}/change/")
    assert page.status_code == 200
    assert b'name="_save"' not in page.content  # read-only: no form to submit
    assert admin_client.post(f"{base}{row.pk}/change/", {"close": "3"}).status_code == 403
    assert admin_client.get(f"{base}{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"{base}{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.get(f"{base}add/").status_code == 403
    changelist = admin_client.get(base)
    assert changelist.status_code == 200
    assert b"delete_selected" not in changelist.content
    bulk_delete = {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    admin_client.post(base, bulk_delete)
    assert type(row).objects.filter(pk=row.pk).exists()
