"""The REST API's routes under /api/v1/; each app registers its viewsets here.

A route's format suffix (``bars.csv``, ``bars/buckets.arrow``) is set aside for the content
negotiation (``suffix_aside``): DRF would pass it to the view as a ``format`` argument, which
an action that takes none (``buckets``, ``revisions``, ``latest``...) answers with a 500.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.http import HttpRequest, HttpResponseBase
from django.urls import URLPattern
from rest_framework.routers import DefaultRouter

from marketdata import api as marketdata
from marketdata import api_actions as actions
from marketdata import api_asof as asof
from marketdata import api_listings as listings
from marketdata import api_options as options
from qvp_site import api_audit as audit
from qvp_site.negotiation import FORMAT_SUFFIX
from risk import api as risk
from signals import api as signals
from trading import api as trading
from trading.api import tca
from vectors import api as vectors

router = DefaultRouter()
router.register("instruments", marketdata.InstrumentViewSet)
router.register("bars", marketdata.BarViewSet, basename="bar")
router.register("ticks", marketdata.TickViewSet, basename="tick")
router.register("prices", marketdata.PriceViewSet, basename="price")
router.register("options/quotes", options.OptionQuoteViewSet, basename="optionquote")
router.register(
    r"instruments/(?P<instrument_id>[0-9]+)/listings",
    listings.InstrumentListingViewSet,
    basename="instrumentlisting",
)
router.register("listings", listings.ListingViewSet, basename="listing")
router.register("universe", listings.UniverseViewSet, basename="universe")
router.register("corporate-actions", actions.CorporateActionViewSet, basename="corporateaction")
router.register("asof", asof.AsOfViewSet, basename="asof")
router.register("accounts", trading.AccountViewSet)
router.register("orders", trading.OrderViewSet)
router.register("executions", trading.ExecutionViewSet)
router.register("positions", trading.PositionViewSet)
router.register("cash", trading.CashViewSet, basename="cashentry")
router.register("portfolio/snapshots", trading.SnapshotViewSet)
router.register("backtests", trading.BacktestViewSet)
router.register("tca/executions", tca.ExecutionCostViewSet, basename="executioncost")
router.register("tca/orders", tca.ShortfallViewSet, basename="tcashortfall")
router.register("tca/summary", tca.SummaryViewSet, basename="tcasummary")
# signals/fused and signals/performance before signals, whose detail route would take them.
router.register("signals/fused", signals.FusedSignalViewSet, basename="fusedsignal")
router.register("signals/performance", signals.PerformanceViewSet, basename="signalperformance")
router.register("signals", signals.SignalViewSet, basename="signal")
router.register("news", signals.NewsViewSet, basename="newsarticle")
router.register("sentiment", signals.SocialSentimentViewSet, basename="socialsentiment")
router.register("alternative-data", signals.AlternativeDataViewSet, basename="alternativedata")
router.register("agents", signals.AgentViewSet, basename="agent")
router.register("risk/metrics", risk.MetricViewSet, basename="riskmetric")
router.register("risk/var", risk.VaRViewSet, basename="riskvar")
router.register("risk/limits", risk.LimitViewSet, basename="risklimit")
router.register("risk/alerts", risk.AlertViewSet, basename="riskalert")
router.register("risk/volatility", risk.VolatilityViewSet, basename="volatilityestimate")
router.register("risk/exposures", risk.ExposureViewSet, basename="factorexposure")
router.register("vectors/features", vectors.FeatureViewSet, basename="vectorfeature")
router.register("vectors/regimes", vectors.RegimeViewSet, basename="vectorregime")
router.register("vectors/strategies", vectors.StrategyViewSet, basename="vectorstrategy")
router.register("audit", audit.AuditViewSet, basename="auditentry")


def suffix_aside(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """``view`` with a route's format suffix kept on the request (``FORMAT_SUFFIX``, where the
    content negotiation reads it: ``qvp_site.negotiation``) rather than passed to the view."""

    @wraps(view)  # keeps the viewset's attributes (cls, actions) for the schema and DRF
    def with_suffix_aside(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        suffix = kwargs.pop("format", None)
        if suffix is not None:
            setattr(request, FORMAT_SUFFIX, suffix)
        return view(request, *args, **kwargs)

    return with_suffix_aside


urlpatterns = [
    URLPattern(route.pattern, suffix_aside(route.callback), route.default_args, route.name)
    if isinstance(route, URLPattern)
    else route
    for route in router.urls
]
