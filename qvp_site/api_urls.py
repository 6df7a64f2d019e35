"""The REST API's routes under /api/v1/; each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from marketdata import api as marketdata
from marketdata import api_actions as actions
from marketdata import api_listings as listings
from marketdata import api_options as options
from qvp_site import api_audit as audit
from risk import api as risk
from signals import api as signals
from trading import api as trading
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
router.register("accounts", trading.AccountViewSet)
router.register("orders", trading.OrderViewSet)
router.register("executions", trading.ExecutionViewSet)
router.register("positions", trading.PositionViewSet)
router.register("cash", trading.CashViewSet, basename="cashentry")
router.register("portfolio/snapshots", trading.SnapshotViewSet)
router.register("backtests", trading.BacktestViewSet)
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

urlpatterns = router.urls
