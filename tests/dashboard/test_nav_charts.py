"""The NAV charts: one per currency, never two currencies on one axis, with people's deposits,
withdrawals and adjustments marked where the NAV first includes them."""

from __future__ import annotations

import json
from bisect import bisect_left
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from qvp_site.acting import acting_as
from tests.clients import client_of
from trading import books
from trading.models import CashEntry, PortfolioSnapshot

MOVEMENTS = ["deposit", "withdrawal", "adjustment"]


@pytest.fixture
def operator(demo, db):
    return client_of(demo.operator)


def charts_of(response) -> dict[str, dict]:
    """Each NAV chart of the page by its currency, as the page carries its data."""
    html = response.content.decode()
    found = {}
    for nav in response.context["nav"]:
        start = html.index(f'<script id="{nav["id"]}" type="application/json">')
        body = html[html.index(">", start) + 1 : html.index("</script>", start)]
        found[nav["currency"]] = json.loads(body)
    return found


def test_each_currency_has_a_chart_of_its_own(operator):
    charts = charts_of(operator.get("/"))
    expected: dict[str, set[str]] = {}
    for currency, name in PortfolioSnapshot.objects.values_list("currency", "account__name"):
        expected.setdefault(currency, set()).add(name)
    assert len(expected) == 2  # the demo's USD and EUR accounts
    assert {c: {s["name"] for s in chart["series"]} for c, chart in charts.items()} == expected


def test_deposits_and_withdrawals_are_marked_at_the_first_snapshot_including_them(operator, demo):
    macro = charts_of(operator.get("/"))[demo.macro.base_currency]
    line = next(s for s in macro["series"] if s["name"] == "demo-macro")
    times = [p["time"] for p in line["data"]]
    expected = []
    for kind, amount, currency, at in (
        CashEntry.objects.filter(account=demo.macro, kind__in=MOVEMENTS)
        .order_by("entry_at", "id")
        .values_list("kind", "amount", "currency", "entry_at")
    ):
        expected.append(
            (times[bisect_left(times, at.timestamp())], f"{kind} {amount:+,.0f} {currency}")
        )
    assert len(expected) == 3  # the demo's capital, more of it, a withdrawal
    assert [(m["time"], m["text"]) for m in line["markers"]] == expected
    assert [m["shape"] for m in line["markers"]] == ["arrowUp", "arrowUp", "arrowDown"]


def test_a_movement_after_the_last_snapshot_waits_for_one(operator, demo):
    with acting_as("test", demo.operator):
        books.add_cash(
            demo.macro.pk,
            CashEntry.Kind.DEPOSIT,
            Decimal(1000),
            currency=demo.macro.base_currency,
            entry_at=timezone.now() - timedelta(seconds=1),
            note="after the snapshots",
        )
    macro = charts_of(operator.get("/"))[demo.macro.base_currency]
    line = next(s for s in macro["series"] if s["name"] == "demo-macro")
    assert all("+1,000 " not in m["text"] for m in line["markers"])
    assert len(line["markers"]) == 3


def test_the_portfolio_of_one_account_charts_its_currency_only(operator, demo):
    response = operator.get(f"/portfolio/?account={demo.stat_arb.pk}")
    charts = charts_of(response)
    assert list(charts) == [demo.stat_arb.base_currency]
    assert "NAV in " + demo.stat_arb.base_currency in response.content.decode()
