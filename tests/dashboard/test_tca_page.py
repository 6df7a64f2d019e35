"""The TCA page (/tca/): markouts, the slippage histogram, the costliest fills and the summary
of the accounts a user may read, from the demo's costs (measured against its quote ticks)."""

from __future__ import annotations

import json
import os

import pytest
from django.db.models import Sum
from django.urls import reverse

from dashboard import browser
from dashboard import tca as page_tca
from tests.clients import client_of
from trading import tca
from trading.models import ExecutionCost

ALL = "/tca/?range=all"
# Every test asks for ``db``: pytest-django sets up the test database only for a selection of
# tests of which one asks for it, and the package's demo would otherwise be seeded into (and
# flushed from) the database the settings name.


def chart_data(response, chart_id: str) -> dict:
    html = response.content.decode()
    start = html.index(f'<script id="{chart_id}" type="application/json">')
    return json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])


def executions_in(curves, dimension: str) -> int:
    return sum(c.executions for c in curves if c.dimension == dimension)


def test_the_page_needs_a_login(client, demo, db):
    response = client.get("/tca/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_trader_sees_her_account_s_fills_and_not_another_desk_s(demo, db):
    response = client_of(demo.trader).get(ALL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "demo-stat-arb" not in html
    mine = ExecutionCost.objects.filter(account=demo.macro)
    assert mine.exists()
    assert ExecutionCost.objects.filter(account=demo.stat_arb).exists()
    curves = response.context["curves"]
    assert executions_in(curves, "side") == mine.count()
    assert executions_in(curves, "venue") == mine.count()
    worst = response.context["worst"]
    assert worst
    assert {f.account_id for f in worst} == {demo.macro.pk}
    assert response.context["bucket_count"] == mine.filter(slippage_bps__isnull=False).count()
    assert sum(row.executions for row in response.context["summary"]) == mine.count()
    # Asking for the other desk's account selects nothing of it.
    other = client_of(demo.trader).get(f"{ALL}&account={demo.stat_arb.pk}")
    assert executions_in(other.context["curves"], "side") == mine.count()
    assert "demo-stat-arb" not in other.content.decode()


def test_an_auditor_sees_every_account(demo, db):
    response = client_of(demo.auditor).get(ALL)
    curves = response.context["curves"]
    assert executions_in(curves, "side") == ExecutionCost.objects.count()
    expected = list(
        ExecutionCost.objects.filter(slippage_bps__isnull=False)
        .order_by("-slippage_bps", "-executed_at")
        .values_list("execution_id", flat=True)[: page_tca.WORST]
    )
    assert [f.execution_id for f in response.context["worst"]] == expected
    html = response.content.decode()
    assert "demo-stat-arb" in html
    assert "demo-macro" in html
    narrowed = client_of(demo.auditor).get(f"{ALL}&account={demo.stat_arb.pk}")
    assert {f.account_id for f in narrowed.context["worst"]} == {demo.stat_arb.pk}


def test_markouts_are_notional_weighted_means_by_side_and_venue(operator_client, demo):
    response = operator_client.get(ALL)
    curves = {(c.dimension, c.group): c for c in response.context["curves"]}
    buys = ExecutionCost.objects.filter(side="buy", markout_5m_bps__isnull=False)
    weighted = sum(c.markout_5m_bps * float(c.notional) for c in buys)
    mean = weighted / float(buys.aggregate(n=Sum("notional"))["n"])
    horizon = {h: (m, n) for h, m, n in curves["side", "buy"].points}
    assert horizon["5m"] == (pytest.approx(mean), buys.count())
    venues = {group for dimension, group in curves if dimension == "venue"}
    assert len(venues) > 1
    drawn = chart_data(response, "chart-tca-markouts")
    assert drawn["horizontal"] == "number"
    assert [s["name"] for s in drawn["series"]] == [f"{d} {g}" for d, g in curves]
    assert [p["time"] for p in drawn["series"][0]["data"]] == [1, 10, 60, 300, 1800, 86400]


def test_the_histogram_counts_every_slippage_once(operator_client):
    response = operator_client.get(ALL)
    bars = chart_data(response, "chart-tca-slippage")["series"][0]["data"]
    assert len(bars) == page_tca.BUCKETS
    assert (
        sum(b["value"] for b in bars)
        == ExecutionCost.objects.filter(slippage_bps__isnull=False).count()
    )
    lowers = [b["time"] for b in bars]
    assert lowers == sorted(set(lowers))


def test_the_costliest_fills_link_to_their_orders(operator_client):
    response = operator_client.get(ALL)
    html = response.content.decode()
    worst = response.context["worst"]
    assert len(worst) == page_tca.WORST
    slippages = [f.slippage_bps for f in worst]
    assert slippages == sorted(slippages, reverse=True)
    for fill in worst:
        assert f'href="{reverse("admin:trading_order_change", args=[fill.order_id])}"' in html
        assert fill.order.client_order_id in html
    target = operator_client.get(reverse("admin:trading_order_change", args=[worst[0].order_id]))
    assert target.status_code == 200


def test_a_trader_s_costliest_fills_link_to_her_orders_in_the_api(demo, db):
    """She cannot open the admin: her links lead to the orders as the API answers them,
    which she may read."""
    trader = client_of(demo.trader)
    response = trader.get(ALL)
    html = response.content.decode()
    worst = response.context["worst"]
    assert worst
    for fill in worst:
        assert f'href="{reverse("order-detail", args=[fill.order_id])}"' in html
    target = trader.get(
        reverse("order-detail", args=[worst[0].order_id]), HTTP_ACCEPT="application/json"
    )
    assert target.status_code == 200
    assert target.json()["id"] == worst[0].order_id


def test_the_summary_groups_by_the_dimension_asked_for(operator_client, demo):
    for by in tca.DIMENSIONS:
        response = operator_client.get(f"{ALL}&by={by}")
        assert response.context["by"] == by
        assert response.context["summary"], by
    bad = operator_client.get(f"{ALL}&by=nonsense&range=nonsense")
    assert (bad.context["by"], bad.context["range"].key) == ("side", page_tca.DEFAULT_RANGE)
    by_side = operator_client.get(f"{ALL}&by=side").context["summary"]
    assert {row.group for row in by_side} == {"buy", "sell"}
    assert sum(row.executions for row in by_side) == ExecutionCost.objects.count()
    slippage = by_side[0].measures["slippage"]
    assert slippage["ci_low"] <= slippage["mean"] <= slippage["ci_high"]


def test_without_costs_the_page_says_what_to_run(operator_client, django_user_model):
    ExecutionCost.objects.all().delete()  # in the test's transaction, rolled back after it
    response = operator_client.get("/tca/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "No execution costs yet" in html
    assert "manage.py tca --refresh" in html
    assert "data-chart" not in html


def test_a_user_without_accounts_sees_the_empty_state(db, demo, django_user_model):
    newcomer = client_of(django_user_model.objects.create_user("newcomer"))
    response = newcomer.get(ALL)
    assert response.status_code == 200
    assert "No execution costs yet" in response.content.decode()


@pytest.mark.parametrize("who", ["operator", "trader", "auditor"])
def test_the_page_renders_in_a_bounded_number_of_queries(
    demo, db, django_assert_max_num_queries, who
):
    viewer = client_of(getattr(demo, who))
    with django_assert_max_num_queries(16):
        response = viewer.get(f"{ALL}&by=instrument")
    assert response.status_code == 200
    assert len(response.context["worst"]) > 1


def test_the_page_reads_the_same_as_the_app_role_under_row_level_security(
    demo, db, request, settings
):
    """As the served site reads (trading_app, row-level security on the costs), a trader's
    page has the same figures as on the owner's connection, the summary's function included."""
    # Sessions in a signed cookie: the app role does not read django_session in this test's
    # transaction (the login is made as the owner).
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    viewer = client_of(demo.trader)
    path = f"{ALL}&by=account"
    owner = viewer.get(path)
    request.getfixturevalue("as_app_role")
    app = viewer.get(path)
    assert app.status_code == 200
    for key in ("curves", "bucket_count"):
        assert app.context[key] == owner.context[key], key
    assert [f.pk for f in app.context["worst"]] == [f.pk for f in owner.context["worst"]]
    assert [r.group for r in app.context["summary"]] == ["demo-macro"]
    (mine,), (theirs,) = app.context["summary"], owner.context["summary"]
    assert mine.executions == theirs.executions
    for measure, found in mine.measures.items():  # sums in another order: equal to rounding
        assert found["n"] == theirs.measures[measure]["n"]
        assert found["mean"] == pytest.approx(theirs.measures[measure]["mean"]), measure


@pytest.fixture
def operator_client(demo, db):
    return client_of(demo.operator)


@pytest.mark.django_db
@pytest.mark.skipif(
    not browser.chromium_available() and not os.environ.get("CI"),
    reason=f"no Chromium at {browser.CHROMIUM}",
)
def test_the_page_draws_its_charts_in_a_browser(demo, settings, monkeypatch):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    errors: list[str] = []
    with (
        browser.serve() as url,
        browser.chromium() as chromium,
        browser.session(chromium, url, demo.operator) as context,
    ):
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto("/tca/?range=all")
        page.wait_for_function(browser.ALL_CHARTS_DRAWN)
        for chart in ("chart-tca-markouts", "chart-tca-slippage"):
            drawn = page.locator(f"[data-chart={chart}]")
            assert drawn.get_attribute("data-drawn") == "true"
            assert int(drawn.get_attribute("data-points")) > 5
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        page.close()
    assert errors == []
