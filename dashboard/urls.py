from django.urls import path

from dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("instruments/", views.instruments, name="instruments"),
    # A path: symbols like BRK/B and BTC/USD hold slashes.
    path("instruments/<path:symbol>/", views.instrument, name="instrument"),
    path("portfolio/", views.portfolio_page, name="portfolio"),
    path("risk/", views.risk_page, name="risk"),
    path(
        "risk/alerts/<int:pk>/acknowledge/",
        views.alert_action,
        {"action": "acknowledge"},
        name="alert-acknowledge",
    ),
    path(
        "risk/alerts/<int:pk>/resolve/",
        views.alert_action,
        {"action": "resolve"},
        name="alert-resolve",
    ),
    path("signals/", views.signals_page, name="signals"),
    path("tca/", views.tca_page, name="tca"),
    path("system/", views.system, name="system"),
]
