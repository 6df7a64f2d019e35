"""The REST API's routes under /api/v1/; each app registers its viewsets here."""

from rest_framework.routers import DefaultRouter

from marketdata import api as marketdata

router = DefaultRouter()
router.register("instruments", marketdata.InstrumentViewSet)
router.register("bars", marketdata.BarViewSet, basename="bar")
router.register("ticks", marketdata.TickViewSet, basename="tick")
router.register("prices", marketdata.PriceViewSet, basename="price")

urlpatterns = router.urls
