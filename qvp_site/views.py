"""Site-wide views: the health check and the landing page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from qvp_site.db import engine


@login_not_required
@transaction.non_atomic_requests  # must answer 503, not fail, when the database is down
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 with the engine and extension versions when the database answers, else 503."""
    try:
        info = engine.detect()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return JsonResponse({"status": "unavailable", "error": str(exc).strip()}, status=503)
    return JsonResponse(
        {
            "status": "ok",
            "engine": info.engine,
            "timescaledb": info.timescaledb_version,
            "pgvector": info.pgvector_version,
            "postgresql": info.server_version,
        }
    )


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """The API answers JSON even where no route matches (an id of the wrong form)."""
    if request.path_info.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)
