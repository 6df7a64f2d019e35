"""The dashboard's pages as Django renders them: what each shows, to whom, from which source,
in how many queries."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import pytest
from django.db import connection
from django.db.models import Max, Sum

from marketdata.models import DailyBar, Instrument, MinuteBar
from qvp_site.db import engine
from qvp_site.models import JobRun
from risk.models import RiskAlert
from tests.clients import client_of
from trading.models import PortfolioSnapshot, Position
from vectors.search import current_regime

PAGES = ["/", "/instruments/SPY/", "/portfolio/", "/risk/", "/signals/", "/tca/", "/system/"]


def chart_data(response, chart_id: str) -> dict:
    """The JSON a chart is drawn from, as the page carries it."""
    html = response.content.decode()
    start = html.index(f'<script id="{chart_id}" type="application/json">')
    body = html[html.index(">", start) + 1 : html.index("</script>", start)]
    return json.loads(body)


@pytest.fixture
def operator(demo, db):
    return client_of(demo.operator)


@pytest.mark.parametrize("path", PAGES)
def test_pages_need_a_login(client, demo, db, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


# A page's queries do not grow with the data: the demo holds months of minute bars for five
# symbols, thousands of signals and hundreds of snapshots, and every list is bounded. A desk's
# trader costs a query or two more than a superuser (her groups).
@pytest.mark.parametrize("who", ["operator", "trader"])
@pytest.mark.parametrize(
    ("path", "queries"),
    [
        ("/", 16),
        ("/instruments/SPY/?tf=1m", 20),
        ("/instruments/SPY/?tf=1h", 20),
        ("/instruments/SPY/?tf=1d", 20),
        ("/instruments/SPY/?tf=1w", 20),
        ("/portfolio/", 16),
        ("/risk/", 16),
        ("/signals/", 14),
        ("/tca/", 16),
    ],
)
def test_each_page_renders_in_a_bounded_number_of_queries(
    demo, django_assert_max_num_queries, who, path, queries
):
    viewer = client_of(getattr(demo, who))
    if engine.is_citus() and path.startswith("/instruments/"):
        # The page's regime search: on Citus its settings go apart from it, in a savepoint of
        # the request's transaction (vectors/search.py), four statements more.
        queries += 4
    with django_assert_max_num_queries(queries):
        response = viewer.get(path)
    assert response.status_code == 200


def test_the_system_page_reads_the_catalog_in_a_few_queries(
    operator, django_assert_max_num_queries
):
    """All the time-series tables together, however many: chunks or partitions, sizes and
    policies in a handful of catalog queries, never a scan of their rows but one statement
    counting the small tables no ANALYZE has seen (which have no estimate)."""
    with django_assert_max_num_queries(15):
        assert operator.get("/system/").status_code == 200


@pytest.mark.parametrize(
    ("page", "chart"),
    [
        ("/", "chart-nav-usd"),
        ("/instruments/SPY/", "chart-candles"),
        ("/instruments/SPY/", "chart-volatility"),
        ("/portfolio/", "chart-portfolio-nav-usd"),
        ("/risk/", "chart-var"),
        ("/signals/", "chart-fused"),
    ],
)
def test_every_chart_has_data_from_the_demo(operator, page, chart):
    data = chart_data(operator.get(page), chart)
    assert data["points"] > 10
    assert data["points"] == sum(len(s["data"]) for s in data["series"])
    for series in data["series"]:
        times = [point["time"] for point in series["data"]]
        assert times == sorted(set(times)), "the library needs strictly rising times"


def test_the_overview_values_positions_at_the_latest_prices(operator, demo):
    response = operator.get("/")
    spy = Instrument.objects.get(symbol="SPY")
    position = Position.objects.get(account=demo.macro, instrument=spy)
    close = MinuteBar.objects.filter(instrument=spy).order_by("-ts").values_list("close")[0][0]
    market_value = float(position.quantity) * close
    unrealised = float(position.quantity) * (close - float(position.average_cost))
    rows = {v.position.pk: v for v in response.context["positions"]}
    assert float(rows[position.pk].market_value) == pytest.approx(market_value)
    assert float(rows[position.pk].unrealized_pnl) == pytest.approx(unrealised)
    assert f"{market_value:,.2f}".encode() in response.content


def test_the_day_s_pnl_is_added_up_per_currency_never_across(operator, demo):
    response = operator.get("/")
    last = PortfolioSnapshot.objects.aggregate(ts=Max("ts"))["ts"]
    expected = (
        PortfolioSnapshot.objects.filter(ts__date=last.date())
        .values("currency")
        .annotate(total=Sum("daily_pnl"))
    )
    assert response.context["pnl"] == {row["currency"]: row["total"] for row in expected}
    assert set(response.context["pnl"]) == {"USD", "EUR"}  # the demo's two accounts
    assert response.context["pnl_day"] == last.date()


def test_an_account_whose_latest_snapshot_is_older_is_left_out_of_the_day_s_pnl(operator, demo):
    last = PortfolioSnapshot.objects.aggregate(ts=Max("ts"))["ts"]
    PortfolioSnapshot.objects.filter(account=demo.stat_arb, ts__date=last.date()).delete()
    assert set(operator.get("/").context["pnl"]) == {"USD"}


def test_the_open_alert_count_is_not_the_length_of_the_list(operator, demo):
    response = operator.get("/")
    unresolved = RiskAlert.objects.exclude(state="resolved").count()
    assert response.context["alert_count"] == unresolved
    assert len(response.context["alerts"]) == min(unresolved, 10)


def test_the_overview_shows_each_symbol_s_latest_bar(operator):
    freshness = {f.symbol: f for f in operator.get("/").context["freshness"]}
    for instrument in Instrument.objects.all():
        latest = MinuteBar.objects.filter(instrument=instrument).aggregate(ts=Max("ts"))["ts"]
        assert freshness[instrument.symbol].latest_minute == latest
        assert freshness[instrument.symbol].gaps == 0


@pytest.mark.parametrize(
    ("tf", "source", "width"),
    [
        ("1m", "marketdata_minutebar", timedelta(minutes=1)),
        ("1h", "marketdata_minutebar_1h", timedelta(hours=1)),
        ("1d", "marketdata_minutebar_1d", timedelta(days=1)),
        ("1w", "marketdata_minutebar_1d", timedelta(days=7)),
        ("nonsense", "marketdata_minutebar_1d", timedelta(days=1)),
    ],
)
def test_the_timeframe_switch_serves_each_width_from_its_source(operator, tf, source, width):
    response = operator.get(f"/instruments/SPY/?tf={tf}")
    assert response.context["source"] == source
    candles = chart_data(response, "chart-candles")["series"][0]["data"]
    steps = {b["time"] - a["time"] for a, b in pairwise(candles)}
    assert min(steps) == width.total_seconds()
    assert all(step % width.total_seconds() == 0 for step in steps)


def test_hourly_candles_match_the_minute_bars_they_summarise(operator):
    """The chart's candles, recomputed from the minute bars by hand."""
    candles = chart_data(operator.get("/instruments/AAPL/?tf=1h"), "chart-candles")
    ohlc, volume = candles["series"]
    last = ohlc["data"][-1]
    start = datetime.fromtimestamp(last["time"], tz=UTC)
    bars = list(
        MinuteBar.objects.filter(
            instrument__symbol="AAPL", ts__gte=start, ts__lt=start + timedelta(hours=1)
        ).order_by("ts")
    )
    assert last["open"] == pytest.approx(float(bars[0].open))
    assert last["close"] == pytest.approx(float(bars[-1].close))
    assert last["high"] == pytest.approx(max(float(b.high) for b in bars))
    assert last["low"] == pytest.approx(min(float(b.low) for b in bars))
    assert volume["data"][-1]["value"] == pytest.approx(sum(float(b.volume) for b in bars))


def test_daily_candles_span_the_daily_bars(operator):
    candles = chart_data(operator.get("/instruments/MSFT/?tf=1d"), "chart-candles")
    days = DailyBar.objects.filter(instrument__symbol="MSFT").count()
    assert len(candles["series"][0]["data"]) == days


def test_an_unknown_symbol_is_a_404(operator):
    assert operator.get("/instruments/NOPE/").status_code == 404


def test_a_symbol_with_a_slash_has_its_page(operator):
    Instrument.objects.create(symbol="BRK/B", asset_class="equity")
    assert operator.get("/").status_code == 200  # every symbol's page is linked there
    response = operator.get("/instruments/BRK/B/")
    assert response.status_code == 200
    assert response.context["instrument"].symbol == "BRK/B"


def test_an_instrument_with_daily_bars_only_has_daily_and_weekly_candles(operator):
    fund = Instrument.objects.create(symbol="FUND.D", asset_class="equity")
    days = [datetime(2026, 3, d, tzinfo=UTC) for d in (2, 3, 4, 5, 6, 9, 10)]
    DailyBar.objects.bulk_create(
        DailyBar(instrument=fund, ts=day, open=10, high=20, low=9, close=10 + i, volume=100)
        for i, day in enumerate(days)
    )
    daily = operator.get("/instruments/FUND.D/?tf=1d")
    assert daily.context["source"] == "marketdata_dailybar"
    candles = chart_data(daily, "chart-candles")["series"][0]["data"]
    assert [c["close"] for c in candles] == [10.0 + i for i in range(len(days))]
    weekly = chart_data(operator.get("/instruments/FUND.D/?tf=1w"), "chart-candles")
    assert [c["close"] for c in weekly["series"][0]["data"]] == [14.0, 16.0]
    assert b"No bars" in operator.get("/instruments/FUND.D/?tf=1h").content


def test_similar_regimes_are_history_with_what_followed(operator):
    response = operator.get("/instruments/SPY/")
    view = response.context["regimes"]
    current = current_regime(Instrument.objects.get(symbol="SPY"))
    assert len(view.similar) == 8, "the demo has many regimes a month and more old"
    distances = [r.match.distance for r in view.similar]
    assert distances == sorted(distances)
    for regime in view.similar:
        assert regime.match.regime.period_end <= current.period_end - timedelta(days=28)
    first = view.similar[0].match.regime
    closes = list(
        DailyBar.objects.filter(instrument_id=first.instrument_id, ts__gt=first.period_end)
        .order_by("ts")
        .values_list("close", flat=True)[:5]
    )
    start = (
        DailyBar.objects.filter(instrument_id=first.instrument_id, ts__lte=first.period_end)
        .order_by("-ts")
        .values_list("close", flat=True)[0]
    )
    assert view.similar[0].return_5d == pytest.approx(float(closes[4]) / float(start) - 1)


def test_a_trader_sees_only_her_desk_s_accounts(demo):
    trader = client_of(demo.trader)
    for path in ("/", "/portfolio/", "/risk/", "/signals/", "/instruments/SPY/"):
        html = trader.get(path).content.decode()
        assert "demo-stat-arb" not in html, path
        if path in ("/", "/portfolio/", "/risk/"):
            assert "demo-macro" in html, path
    # Asking for another desk's account selects nothing of it: still only her own.
    response = trader.get(f"/portfolio/?account={demo.stat_arb.pk}")
    assert response.context["scope"].selected is None
    assert "demo-stat-arb" not in response.content.decode()


def test_the_portfolio_narrows_to_the_account_asked_for(operator, demo):
    response = operator.get(f"/portfolio/?account={demo.stat_arb.pk}")
    accounts = {v.position.account.name for v in response.context["positions"]}
    assert accounts == {"demo-stat-arb"}
    assert {o.account.name for o in response.context["orders"]} == {"demo-stat-arb"}
    nav = chart_data(response, f"chart-portfolio-nav-{demo.stat_arb.base_currency.lower()}")
    assert [s["name"] for s in nav["series"]] == ["demo-stat-arb"]


def test_the_risk_chart_draws_var_with_its_limit(operator, demo):
    response = operator.get(f"/risk/?account={demo.macro.pk}")
    var = chart_data(response, "chart-var")
    historical = var["series"][0]
    assert len(historical["data"]) > 10  # the demo's weekly runs
    limit = demo.macro.risk_limits.get(metric="var_historical")
    assert historical["lines"] == [
        {"title": f"limit {limit.threshold:,.0f}", "price": limit.threshold}
    ]


def test_an_operator_acknowledges_then_resolves_an_alert(operator, demo):
    # The newest: the browser tests acknowledge the oldest (their changes are committed).
    alert = RiskAlert.objects.filter(account=demo.macro, state="open").order_by("-id").first()
    response = operator.post(f"/risk/alerts/{alert.pk}/acknowledge/")
    assert response.status_code == 302
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", demo.operator)
    operator.post(f"/risk/alerts/{alert.pk}/resolve/", {"resolution": "hedged"})
    alert.refresh_from_db()
    assert (alert.state, alert.resolution, alert.resolved_by) == (
        "resolved",
        "hedged",
        demo.operator,
    )
    # Acknowledging a resolved alert is refused with a message, and changes nothing.
    response = operator.post(f"/risk/alerts/{alert.pk}/acknowledge/", follow=True)
    assert "not changed" in response.content.decode()
    alert.refresh_from_db()
    assert alert.state == "resolved"


def test_a_resolution_over_its_length_is_refused_with_a_message(operator, demo):
    alert = RiskAlert.objects.filter(account=demo.macro, state="open").order_by("-id").first()
    response = operator.post(
        f"/risk/alerts/{alert.pk}/resolve/", {"resolution": "x" * 501}, follow=True
    )
    assert "500 characters at most" in response.content.decode()
    alert.refresh_from_db()
    assert alert.state == "open"


def test_auditors_and_other_desks_cannot_touch_an_alert(demo):
    alert = RiskAlert.objects.filter(account=demo.stat_arb, state="open").first()
    auditor = client_of(demo.auditor)
    assert auditor.post(f"/risk/alerts/{alert.pk}/acknowledge/").status_code == 403
    assert "read only" in auditor.get(f"/risk/?account={demo.stat_arb.pk}").content.decode()
    assert client_of(demo.trader).post(f"/risk/alerts/{alert.pk}/acknowledge/").status_code == 404
    assert auditor.get(f"/risk/alerts/{alert.pk}/acknowledge/").status_code == 405
    alert.refresh_from_db()
    assert alert.state == "open"


def test_the_system_page_is_for_staff_only(demo):
    trader = client_of(demo.trader)
    assert trader.get("/system/").status_code == 403
    html = trader.get("/").content.decode()
    assert 'href="/system/"' not in html
    assert 'href="/admin/"' not in html
    assert client_of(demo.auditor).get("/system/").status_code == 200  # staff


def test_the_system_page_lists_every_time_series_table(operator):
    response = operator.get("/system/")
    html = response.content.decode()
    with connection.cursor() as cursor:
        cursor.execute("SELECT table_name FROM qvp_timeseries_table")
        tables = [row[0] for row in cursor.fetchall()]
    assert len(tables) > 10
    for table in tables:
        assert f"<code>{table}</code>" in html
    assert "marketdata_minutebar_1h" in html


def test_the_system_page_shows_each_job_s_latest_run(operator):
    start = datetime(2026, 11, 2, 20, tzinfo=UTC)
    for day, (job, status) in enumerate(
        [("maintain", "failed"), ("compute-risk", "succeeded"), ("maintain", "succeeded")]
    ):
        JobRun.objects.create(job=job, status=status, started_at=start + timedelta(days=day))
    jobs = operator.get("/system/").context["jobs"]
    assert [(j.job, j.status, j.started_at) for j in jobs] == [
        ("compute-risk", "succeeded", start + timedelta(days=1)),
        ("maintain", "succeeded", start + timedelta(days=2)),
    ]
