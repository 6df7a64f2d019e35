"""The dashboard in headless Chromium (Debian's package, driven by Playwright): log in, open
each page at desktop and phone width and see its charts drawn, switch the timeframe,
acknowledge an alert, and find that an auditor can change nothing."""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings

from dashboard import browser
from risk.models import RiskAlert
from tests.dashboard.conftest import PASSWORD
from trading.models import CashEntry, PortfolioSnapshot

pytestmark = [
    # In CI they must run: a missing browser fails them there rather than hiding them.
    pytest.mark.skipif(
        not browser.chromium_available() and not os.environ.get("CI"),
        reason=f"no Chromium at {browser.CHROMIUM}: `make test` installs Debian's chromium",
    ),
    # The tests read the database too (pytest-django sets up only databases tests ask for);
    # the server's requests commit on connections of their own.
    pytest.mark.django_db,
]

# Pixels whose channels differ widely: the series' colours, not the greys of grid and text.
COLOURED_PIXELS = """el => {
  let n = 0;
  for (const canvas of el.querySelectorAll('canvas')) {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 0; i < d.length; i += 4) {
      const [r, g, b, a] = [d[i], d[i + 1], d[i + 2], d[i + 3]];
      if (a > 128 && Math.max(r, g, b) - Math.min(r, g, b) > 80) n++;
    }
  }
  return n;
}"""


@pytest.fixture(scope="module")
def site(demo):
    """The site served on a loopback port, its static files from the finders."""
    with (
        override_settings(
            ALLOWED_HOSTS=["127.0.0.1"], WHITENOISE_USE_FINDERS=True, WHITENOISE_AUTOREFRESH=True
        ),
        pytest.MonkeyPatch.context() as patch,
    ):
        # Playwright's sync API keeps an event loop in this thread; the ORM calls the tests
        # make beside it are synchronous all the same.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with browser.serve() as url:
            yield url
    _close_connections_of_other_contexts()


def _close_connections_of_other_contexts() -> None:
    """Close the test database's sessions that Django opened for the tests' bodies.

    Once Playwright's sync API runs, the tests' bodies see another contextvars context than
    the fixtures do, so Django (whose connections live in context-local storage) opens them a
    connection of their own, which pytest-django never sees to close; the test database could
    not be dropped at the end. The server's request threads close theirs (browser.serve).
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(scope="module")
def chromium(site):
    with browser.chromium() as found:
        yield found


@pytest.fixture
def errors():
    return []


@pytest.fixture
def contexts(chromium):
    """Browser contexts the test opens, closed after it whatever happens."""
    opened = []
    yield opened
    for context in opened:
        context.close()


@pytest.fixture
def session_of(site, chromium, contexts):
    """A browser context logged in as a user, at a viewport."""

    def open_as(user, viewport=browser.DESKTOP):
        context = browser.logged_in(chromium, site, user, viewport)
        contexts.append(context)
        return context

    return open_as


def watch(page, errors: list[str]):
    """Collect what the page reports as errors: script failures, refused resources (a content
    security policy violation among them)."""
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


def assert_charts_drawn(page) -> int:
    charts = page.locator("[data-chart]")
    assert charts.count() > 0
    total = 0
    for i in range(charts.count()):
        chart = charts.nth(i)
        assert chart.get_attribute("data-drawn") == "true"
        points = int(chart.get_attribute("data-points"))
        assert points > 0
        # The library paints on an animation frame after the data is set: wait for it.
        page.wait_for_function(
            f"el => ({COLOURED_PIXELS})(el) > 100", arg=chart.element_handle(), timeout=10_000
        )
        total += points
    return total


def test_log_in_through_the_form_and_see_the_overview(site, chromium, contexts, demo, errors):
    context = chromium.new_context(viewport=browser.DESKTOP, base_url=site)
    contexts.append(context)
    page = watch(context.new_page(), errors)
    page.goto("/")
    assert "/accounts/login/" in page.url
    page.fill("input[name=username]", "operator")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit], input[type=submit]")
    page.wait_for_url(f"{site}/")
    page.wait_for_function(browser.ALL_CHARTS_DRAWN)
    assert_charts_drawn(page)
    assert page.locator("text=demo-macro").count() > 0
    assert errors == []


@pytest.mark.parametrize("viewport", [browser.DESKTOP, browser.PHONE], ids=["1280px", "phone"])
def test_every_page_draws_its_charts_and_fits_the_screen(session_of, demo, viewport, errors):
    context = session_of(demo.operator, viewport)
    for spec in browser.pages("SPY"):
        page = watch(context.new_page(), errors)
        page.goto(spec.path)
        page.wait_for_function(browser.ALL_CHARTS_DRAWN)
        if spec.name != "system":  # the one page without a chart
            assert_charts_drawn(page)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{spec.name} is wider than the screen by {overflow}px"
        page.close()
    assert errors == []


# Each table's width against the room its card gives it (the card's content box): a table
# wider than that is cut off or scrolled out of sight, whatever the page's own width.
TABLES_WIDER_THAN_THEIR_CARD = """() => [...document.querySelectorAll('main table')].flatMap(t => {
  const card = t.closest('.card') || document.querySelector('main');
  const style = getComputedStyle(card);
  const room = card.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const wide = Math.max(t.scrollWidth, t.getBoundingClientRect().width);
  const title = (card.querySelector('h2') || {}).textContent || '';
  return wide > room + 1 ? [`${title.trim()}: ${Math.round(wide)}px in ${Math.round(room)}px`] : [];
})"""
WIDTHS = {
    "1280px": browser.DESKTOP,
    "1440px": {"width": 1440, "height": 900},
    "1920px": {"width": 1920, "height": 1080},
    "phone": browser.PHONE,
}


@pytest.mark.parametrize("viewport", WIDTHS.values(), ids=WIDTHS.keys())
def test_no_table_is_wider_than_its_card(session_of, demo, viewport):
    """Every column of every table in sight within its card: on a desktop the table fits, on
    a phone each row's cells stack under their headings."""
    context = session_of(demo.operator, viewport)
    clipped = {}
    for spec in browser.pages("SPY"):
        page = browser.open_page(context, spec.path)
        found = page.evaluate(TABLES_WIDER_THAN_THEIR_CARD)
        if found:
            clipped[spec.name] = found
        page.close()
    assert clipped == {}


def test_switching_the_timeframe_redraws_the_candles(session_of, demo):
    context = session_of(demo.operator)
    page = browser.open_page(context, "/instruments/AAPL/?tf=1d")
    candles = page.locator("[data-chart=chart-candles]")
    daily = int(candles.get_attribute("data-points"))
    page.click("a[data-tf='1h']")
    page.wait_for_url("**tf=1h")
    page.wait_for_function(browser.ALL_CHARTS_DRAWN)
    hourly = int(candles.get_attribute("data-points"))
    assert hourly > daily  # seven trading hours a day, over two months against a year
    assert page.get_attribute("a[data-tf='1h']", "aria-current") == "true"
    assert page.get_attribute("a[data-tf='1d']", "aria-current") is None
    page.click("a[data-tf='1w']")
    page.wait_for_url("**tf=1w")
    page.wait_for_function(browser.ALL_CHARTS_DRAWN)
    assert int(candles.get_attribute("data-points")) < daily


def test_an_operator_acknowledges_an_alert(session_of, demo):
    alert = RiskAlert.objects.filter(account=demo.macro, state="open").order_by("id").first()
    context = session_of(demo.operator)
    page = browser.open_page(context, f"/risk/?account={demo.macro.pk}")
    row = page.locator(f"tr[data-alert='{alert.pk}']")
    row.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"text=Alert {alert.pk} acknowledged.")
    assert (
        "acknowledged by operator"
        in page.locator(f"tr[data-alert='{alert.pk}'] .state").inner_text()
    )
    alert.refresh_from_db()
    assert alert.state == "acknowledged"
    assert alert.acknowledged_by == demo.operator


def test_an_auditor_sees_everything_and_can_change_nothing(site, session_of, demo):
    alert = RiskAlert.objects.filter(account=demo.stat_arb, state="open").first()
    context = session_of(demo.auditor)
    page = browser.open_page(context, f"/risk/?account={demo.stat_arb.pk}")
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    assert page.locator("text=read only").count() > 0
    token = next(c["value"] for c in context.cookies() if c["name"] == "csrftoken")
    refused = page.request.post(
        f"/risk/alerts/{alert.pk}/acknowledge/",
        headers={"X-CSRFToken": token, "Referer": f"{site}/risk/"},
    )
    assert refused.status == 403
    # The admin: the records are there to read, with no way to add or save.
    page.goto("/admin/risk/risklimit/")
    assert page.locator("#result_list tbody tr").count() > 0
    assert page.locator("a.addlink").count() == 0
    page.locator("#result_list tbody tr th a").first.click()
    page.wait_for_load_state()
    assert page.locator("input[name=_save]").count() == 0
    alert.refresh_from_db()
    assert alert.state == "open"


def test_the_nav_is_drawn_per_currency_with_the_cash_movements_marked(session_of, demo, errors):
    """Never two currencies on one axis; a deposit or withdrawal is marked, not a bare cliff."""
    currencies = sorted(set(PortfolioSnapshot.objects.values_list("currency", flat=True)))
    moves = CashEntry.objects.filter(kind__in=["deposit", "withdrawal", "adjustment"])
    context = session_of(demo.operator)
    page = watch(browser.open_page(context, "/"), errors)
    figures = page.locator("figure.nav-chart")
    assert [figures.nth(i).get_attribute("data-currency") for i in range(figures.count())] == (
        currencies
    )
    marked = 0
    for currency in currencies:
        figure = page.locator(f"figure.nav-chart[data-currency='{currency}']")
        assert f"NAV in {currency}" in figure.locator("figcaption").inner_text()
        chart = figure.locator("[data-chart]")
        assert chart.get_attribute("data-drawn") == "true"
        marked += int(chart.get_attribute("data-markers") or 0)
    # Every movement up to the newest snapshot is marked (the demo's all are).
    assert marked == moves.count() > 0
    assert errors == []


# Records what the content security policy refused on the page, from its first script on
# (Playwright's init scripts run whatever the policy).
RECORD_VIOLATIONS = """window.qvpViolations = [];
document.addEventListener('securitypolicyviolation',
  e => window.qvpViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}`));"""


def test_the_api_docs_load_within_the_content_security_policy(session_of, demo, errors):
    context = session_of(demo.operator)
    context.add_init_script(RECORD_VIOLATIONS)
    page = watch(context.new_page(), errors)
    page.goto("/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    assert page.evaluate("window.qvpViolations") == []
    assert [e for e in errors if "Content Security Policy" in e] == []


def test_the_admin_shows_the_site_s_icon(session_of, demo, errors):
    context = session_of(demo.operator)
    context.add_init_script(RECORD_VIOLATIONS)
    page = watch(context.new_page(), errors)
    page.goto(f"/{settings.ADMIN_URL}")
    href = page.locator("link[rel=icon]").get_attribute("href")
    icon = page.request.get(href)
    assert icon.status == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert page.get_by_role("link", name="Alternative data", exact=True).count() == 1
    assert page.evaluate("window.qvpViolations") == []
    assert errors == []
