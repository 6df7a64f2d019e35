"""The floor's settings: Django 5.2 and DRF with none of QVP's own work, served by
bench/api_floor.py beside the site to measure what the stack alone costs a request.

``DJANGO_SETTINGS_MODULE=bench.support.floor_site`` and gunicorn's
``django.core.wsgi:get_wsgi_application()``; the views are bench/support/floor_views.py. The
connection is the site's own (``qvp_site.settings``' default database as served: the same
server, role, ``CONN_MAX_AGE`` and health checks), on the bench's throwaway database, whose
``floor_*`` tables bench/api_floor.py makes. Nothing of the product imports this module.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from qvp_site.settings import DATABASES as _SITE_DATABASES
from qvp_site.settings import (  # noqa: F401 - read by qvp_site.time_limits (see below)
    QVP_COMMAND_STATEMENT_TIMEOUT,
    QVP_REQUEST_STATEMENT_TIMEOUT,
    QVP_SCHEDULER_STATEMENT_TIMEOUT,
    QVP_STREAM_STATEMENT_TIMEOUT,
    QVP_TRANSACTION_POOLING,
)

SECRET_KEY = "bench-floor-only"  # noqa: S105 - a throwaway site on 127.0.0.1 for a benchmark
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1"]
USE_TZ = True
# "bench.support" holds the floor's unmanaged models (app label "support").
INSTALLED_APPS = ["rest_framework", "bench.support"]
MIDDLEWARE = ["bench.support.floor_site.ServerTiming"]
ROOT_URLCONF = "bench.support.floor_views"
# Django's own backend: the embedded one (qvp_site/db/embedded_backend) differs only by
# starting the server when a connection fails, which the bench has started already.
DATABASES = {"default": {**_SITE_DATABASES["default"], "ENGINE": "django.db.backends.postgresql"}}
# A request's error to gunicorn's stderr, as the bench shows it (no admins to mail).
LOGGING = {
    "version": 1,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
# The site's gunicorn settings (qvp_site.gunicorn_conf, used as they are) import
# qvp_site.time_limits, whose connection_created handler gives each new connection the
# request's statement_timeout from the settings imported above: once per connection (kept
# CONN_MAX_AGE), as in the site's workers, not once per request.
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REST_FRAMEWORK = {
    # The views name their authentication and permission (floor_views.py): a class of this
    # module's package named here would be imported while DRF's views are.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_THROTTLE_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "UNAUTHENTICATED_USER": None,  # django.contrib.auth is not installed
}


class ServerTiming:
    """The time in Django, from this (the only) middleware to the response, said in a
    ``Server-Timing: app;dur=<ms>`` header as qvp_site/metrics.py says the site's."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        took = (time.perf_counter() - started) * 1000
        response.headers["Server-Timing"] = f"app;dur={took:.2f}"
        return response
