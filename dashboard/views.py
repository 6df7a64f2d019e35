"""The dashboard's pages: thin views over the modules that gather each page's records.

Every page needs a login (``LoginRequiredMiddleware``) and shows only the accounts the user
may read; the request runs in one transaction that names the user, so row-level security
applies too. Each page costs a fixed number of queries, whatever the data (tested).
"""

from __future__ import annotations

import logging
from datetime import date

from django.contrib import messages
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from dashboard import (
    alerts,
    portfolio,
    regimes,
    risk_history,
    signal_board,
    system_status,
    tca,
    timeframes,
)
from dashboard.charts import candles as candle_series
from dashboard.charts import chart
from dashboard.freshness import freshness
from dashboard.positions import valued_positions
from dashboard.scope import account_scope
from dashboard.volatility import volatility_chart
from marketdata import security_master
from marketdata.models import Instrument
from marketdata.prices import latest_prices
from qvp_site.db import engine
from qvp_site.db.status import table_status
from risk import alerts as risk_alerts
from risk.models import RiskAlert
from trading.models import Account, CashEntry, Execution, Order, PortfolioSnapshot, Position

RECENT = 50


def _resolution_length() -> int:
    length = RiskAlert._meta.get_field("resolution").max_length
    if length is None:
        raise ImproperlyConfigured("RiskAlert.resolution has no max_length")
    return length


RESOLUTION_LENGTH = _resolution_length()
logger = logging.getLogger(__name__)


@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    user = request.user
    snapshots = PortfolioSnapshot.objects.visible_to(user)
    latest = portfolio.latest_snapshots(snapshots)
    unresolved = alerts.unresolved(RiskAlert.objects.visible_to(user))
    pnl_day, pnl = portfolio.day_pnl(latest)
    return render(
        request,
        "dashboard/overview.html",
        {
            "nav": portfolio.nav_charts(
                snapshots, CashEntry.objects.visible_to(user), prefix="chart-nav"
            ),
            "latest": latest,
            "pnl": pnl,
            "pnl_day": pnl_day,
            "positions": valued_positions(Position.objects.visible_to(user)),
            "alerts": alerts.open_alerts(unresolved, limit=10),
            "alert_count": unresolved.count(),
            "freshness": freshness(),
        },
    )


@require_GET
def instruments(request: HttpRequest) -> HttpResponse:
    """The first active instrument's page: the page itself lists the others."""
    first = Instrument.objects.filter(active=True).order_by("symbol").first()
    if first is None:
        return render(request, "dashboard/no_instruments.html")
    return redirect("dashboard:instrument", symbol=first.symbol)


@require_GET
def instrument(request: HttpRequest, symbol: str) -> HttpResponse:
    """The instrument that bore ``symbol`` on ``?on=`` (a date; default today): FB on a date
    in 2020 is the page of the instrument now called META. A symbol no single instrument bore
    then is a 404 naming the symbol, the date and the candidates."""
    try:
        on = _page_date(request.GET.get("on"))
    except ValueError as error:
        return _unknown_symbol(request, symbol, str(error), status=400)
    try:
        found = security_master.resolve(symbol, on)
    except security_master.SymbolNotResolved as error:
        return _unknown_symbol(request, symbol, str(error), status=404)
    tf = timeframes.timeframe(request.GET.get("tf"))
    adjustment = timeframes.adjustment(request.GET.get("adjustment"))
    price = latest_prices([found.pk]).get(found.pk)
    bars = timeframes.candles(found, tf, price, adjustment)
    volatility, window = volatility_chart(found)
    return render(
        request,
        "dashboard/instrument.html",
        {
            "instrument": found,
            "asked": {"symbol": symbol, "on": on} if found.symbol != symbol else None,
            "instruments": Instrument.objects.filter(active=True).order_by("symbol")[:100],
            "price": price,
            "timeframe": tf,
            "timeframes": timeframes.TIMEFRAMES.values(),
            "adjustment": adjustment,
            "adjustments": timeframes.ADJUSTMENTS,
            "candles": chart(
                *candle_series(bars.rows, found.symbol, found.tick_size), intraday=tf.intraday
            ),
            "source": bars.source,
            "volatility": volatility,
            "volatility_window": window,
            "signals": signal_board.instrument_signals(found.pk),
            "regimes": regimes.regimes_like_now(found),
        },
    )


def _page_date(text: str | None) -> date | None:
    """A page's ``?on=`` date (ISO 8601, YYYY-MM-DD); None when not given."""
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"on: {text[:40]!r} is not a date (YYYY-MM-DD)") from None


def _unknown_symbol(request: HttpRequest, symbol: str, problem: str, status: int) -> HttpResponse:
    return render(
        request,
        "dashboard/unknown_symbol.html",
        {"symbol": symbol, "problem": problem},
        status=status,
    )


@require_GET
def portfolio_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    scope = account_scope(request)
    snapshots = scope.narrow(PortfolioSnapshot.objects.visible_to(user))
    return render(
        request,
        "dashboard/portfolio.html",
        {
            "scope": scope,
            "nav": portfolio.nav_charts(
                snapshots,
                scope.narrow(CashEntry.objects.visible_to(user)),
                prefix="chart-portfolio-nav",
            ),
            "positions": valued_positions(scope.narrow(Position.objects.visible_to(user))),
            "orders": scope.narrow(Order.objects.visible_to(user))
            .select_related("account", "instrument")
            .order_by("-created_at", "-id")[:RECENT],
            "executions": scope.narrow(Execution.objects.visible_to(user))
            .select_related("account", "instrument")
            .order_by("-executed_at", "-id")[:RECENT],
            "cash": portfolio.cash_balances(scope.narrow(CashEntry.objects.visible_to(user))),
            "snapshots": portfolio.recent_snapshots(snapshots),
        },
    )


@require_GET
def risk_page(request: HttpRequest) -> HttpResponse:
    user = request.user
    scope = account_scope(request)
    account = scope.selected or (scope.choices[0] if scope.choices else None)
    var, limits = risk_history.var_chart(user, account) if account else (chart(), [])
    listed = alerts.open_alerts(RiskAlert.objects.visible_to(user).filter(account=account))
    tradable = set(Account.objects.tradable_by(user).values_list("pk", flat=True))
    return render(
        request,
        "dashboard/risk.html",
        {
            "scope": scope,
            "account": account,
            "var": var,
            "limits": limits,
            "alerts": listed,
            "actionable": {a.pk for a in listed if a.account_id in tradable},
        },
    )


@require_POST
def alert_action(request: HttpRequest, pk: int, action: str) -> HttpResponseRedirect:
    """Acknowledge or resolve an alert of an account the user may trade; auditors and anyone
    who may only read the account get a 403."""
    alert = get_object_or_404(RiskAlert.objects.visible_to(request.user), pk=pk)
    if not Account.objects.tradable_by(request.user).filter(pk=alert.account_id).exists():
        raise PermissionDenied("You may read this account's alerts, not change them.")
    back = HttpResponseRedirect(f"{reverse('dashboard:risk')}?account={alert.account_id}")
    resolution = request.POST.get("resolution", "").strip()
    if len(resolution) > RESOLUTION_LENGTH:
        messages.error(request, f"A resolution is {RESOLUTION_LENGTH} characters at most.")
        return back
    try:
        with transaction.atomic():
            locked = RiskAlert.objects.select_for_update().get(pk=alert.pk)
            if action == "acknowledge":
                risk_alerts.acknowledge(locked, request.user)
            else:
                risk_alerts.resolve(locked, request.user, resolution)
    except risk_alerts.AlertStateError as error:
        messages.error(request, f"Alert {alert.pk} not changed: {error}")
    except DatabaseError:
        logger.exception("alert %s: %s refused by the database", alert.pk, action)
        messages.error(request, f"Alert {alert.pk} not changed: the database refused it.")
    else:
        messages.success(request, f"Alert {alert.pk} {action}d.")
    return back


@require_GET
def signals_page(request: HttpRequest) -> HttpResponse:
    return render(
        request,
        "dashboard/signals.html",
        {
            "signals": signal_board.latest_signals(),
            "fused": signal_board.latest_fused(),
            "fused_chart": signal_board.fused_chart(),
            "performance": signal_board.agent_performance(),
        },
    )


@require_GET
def tca_page(request: HttpRequest) -> HttpResponse:
    """Transaction cost analysis of the accounts the user may read (``?account=``), over a
    range ending now (``?range=``), the summary by ``?by=``."""
    scope = account_scope(request)
    accounts = tca.account_ids(scope)
    chosen = tca.time_range(request.GET.get("range"))
    by = tca.dimension(request.GET.get("by"))
    context: dict = {
        "scope": scope,
        "range": chosen,
        "ranges": tca.RANGES.values(),
        "by": by,
        "dimensions": tca.DIMENSIONS,
        "has_costs": tca.has_costs(accounts),
    }
    if context["has_costs"]:
        span = tca.window(chosen)
        curves = tca.markouts(accounts, span)
        buckets = tca.slippage_histogram(accounts, span)
        context |= {
            "span": span,
            "curves": curves,
            "horizons": list(tca.HORIZON_SECONDS),
            "markout_chart": tca.markout_chart(curves),
            "histogram": tca.histogram_chart(buckets),
            "bucket_count": sum(n for _, _, n in buckets),
            "worst": list(tca.worst_fills(request.user, scope, span)),
            "summary": tca.summary(request.user, scope, by, span),
            "measures": tca.MEASURES,
        }
    return render(request, "dashboard/tca.html", context)


@require_GET
def system(request: HttpRequest) -> HttpResponse:
    """For staff only, as the admin and /metrics are: job output names accounts and their
    figures, failures show server paths."""
    if not request.user.is_staff:
        raise PermissionDenied("The system page is for staff.")
    jobs = system_status.latest_job_runs()
    return render(
        request,
        "dashboard/system.html",
        {
            "engine": engine.detect(),
            "tables": table_status(),
            "aggregates": system_status.aggregates(),
            "jobs": jobs,
            "schedule": system_status.schedule(jobs),
            "ingests": system_status.recent_ingests(),
        },
    )
