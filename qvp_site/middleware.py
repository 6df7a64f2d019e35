"""Every page needs a logged-in user, but the login pages and /healthz; no body beyond the
configured size; no path or query parameter PostgreSQL could not store; static files served
without the manifest that lists them all."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequired
from django.contrib.staticfiles.storage import staticfiles_storage
from django.http import HttpResponse, JsonResponse
from rest_framework.views import APIView
from whitenoise.middleware import WhiteNoiseMiddleware  # type: ignore[import-untyped]

from qvp_site.parsers import REASON, storable, unstorable


class LoginRequiredMiddleware(DjangoLoginRequired):
    """Django's LoginRequiredMiddleware, leaving API views to DRF.

    API clients authenticate with a token that only DRF reads, and want a 401/403 rather than
    a redirect to a login form; DRF's default permission (IsAuthenticated) guards them.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, "cls", None)
        if isinstance(view_class, type) and issubclass(view_class, APIView):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)


MANIFEST = "staticfiles.json"


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, which serves every file of STATIC_ROOT (and of the finders under DEBUG),
    but for the manifest ``collectstatic`` writes there (``staticfiles.json``): a map of every
    static file, the admin's and the API docs' included, to its hashed name, which tells a
    visitor what the site runs and helps nobody load a page. It falls through to a 404."""

    def __init__(self, get_response=None, settings=settings):
        super().__init__(get_response, settings=settings)
        # Django's name for it, and the storage's own should it name it otherwise; their
        # compressed copies too, should a compressing storage ever write them.
        names = {MANIFEST, getattr(staticfiles_storage, "manifest_name", MANIFEST)}
        self.hidden = {
            f"{self.static_prefix}{name}{suffix}" for name in names for suffix in ("", ".gz", ".br")
        }

    def __call__(self, request):
        if request.path_info in self.hidden:
            return self.get_response(request)
        return super().__call__(request)


class RequestBodyLimitMiddleware:
    """Refuses a body larger than QVP_MAX_REQUEST_BODY with a 413 before anything reads it.

    Django checks DATA_UPLOAD_MAX_MEMORY_SIZE only when a form is parsed; DRF's parsers read
    the stream, so the API needs this check of the declared length. A body sent without a
    length (chunked) is not read at all by Django's WSGI request, so it cannot get past.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.QVP_MAX_REQUEST_BODY
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return _refuse(request, 400, "Content-Length is not a number")
        if length > limit:
            return _refuse(request, 413, f"the request body exceeds {limit:,} bytes")
        return self.get_response(request)


class UnstorableTextMiddleware:
    """Refuses with a 400 a path or query parameter holding a NUL or a lone surrogate, which
    any lookup by it would turn into a database error (a 500): a symbol in a page's path, a
    filter in the API's query. Bodies are checked by the API's parsers (qvp_site/parsers.py)
    and by Django's form fields."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not storable(request.path_info):
            return _refuse(request, 400, f"the path {REASON}")
        for path, is_key in unstorable(request.GET):
            if is_key:
                return _refuse(request, 400, f"a query parameter's name {REASON}")
            # The API's refusals name the field: {"symbol": ["holds a NUL ..."]}.
            return _refuse(
                request, 400, f"query parameter {path[0]!r} {REASON}", field=str(path[0])
            )
        return self.get_response(request)


def _refuse(request, status: int, message: str, field: str | None = None) -> HttpResponse:
    if request.path_info.startswith("/api/"):
        body: dict[str, Any] = {field: [REASON]} if field else {"detail": message}
        return JsonResponse(body, status=status)
    return HttpResponse(message, status=status, content_type="text/plain")
