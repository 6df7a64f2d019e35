from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from qvp_site import metrics, views
from qvp_site.logins import LoginForm

urlpatterns = [
    path("", include("dashboard.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("metrics", metrics.metrics_view, name="metrics"),
    path(
        "accounts/login/",
        # Its form tells a locked-out (user, address) when to try again (qvp_site/logins.py).
        auth_views.LoginView.as_view(authentication_form=LoginForm),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(settings.ADMIN_URL, admin.site.urls),
    path("api/v1/", include("qvp_site.api_urls")),
    # The OpenAPI schema and its interactive docs, both behind a login (SPECTACULAR_SETTINGS).
    # No Redoc page: its template loads web fonts from Google's CDN.
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: no inline script for the CSP.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
]

handler404 = "qvp_site.views.not_found"
