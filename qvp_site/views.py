"""Site-wide views: the health check and the landing page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from qvp_site.db import engine
from qvp_site.metrics import _bearer_token_matches as metrics_token_matches


@login_not_required
@transaction.non_atomic_requests  # must answer 503, not fail, when the database is down
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when the database answers, else 503; the status alone for anyone, and the engine's
    versions (or the error) for staff and for the metrics token (QVP_METRICS_TOKEN).

    Versions tell an attacker which known holes to try, and an error can name hosts and
    roles: a load balancer's probe needs the status only.
    """
    try:
        info = engine.detect()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        body = {"status": "unavailable"}
        if _may_see_details(request):
            body["error"] = str(exc).strip()
        return JsonResponse(body, status=503)
    if not _may_see_details(request):
        return JsonResponse({"status": "ok"})
    return JsonResponse(
        {
            "status": "ok",
            "engine": info.engine,
            "timescaledb": info.timescaledb_version,
            "pgvector": info.pgvector_version,
            "postgresql": info.server_version,
        }
    )


def _may_see_details(request: HttpRequest) -> bool:
    """Staff users, and the scraper holding the metrics token (``Authorization: Bearer``)."""
    if metrics_token_matches(request):
        return True
    try:
        user = getattr(request, "user", None)  # read from the session: the database
        return bool(user is not None and user.is_authenticated and user.is_staff)
    except DatabaseError:  # down: nobody is known to be staff, the token still works
        return False


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The API answers JSON even where no route matches (an id of the wrong form)."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
