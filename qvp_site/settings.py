"""Settings, all from the environment (see .env.example for every variable).

Without DATABASE_URL the app starts and uses the embedded PostgreSQL server under var/.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from qvp_site.db.intervals import parse_interval as _parse_interval
from qvp_site.environment import Env
from qvp_site.private_files import read_private, write_once

BASE_DIR = Path(__file__).resolve().parent.parent
env = Env()
if (BASE_DIR / ".env").exists():
    env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("QVP_VAR_DIR", default=str(BASE_DIR / "var")))
DEBUG = env.bool("DJANGO_DEBUG", default=False)
PRODUCTION = env.bool("QVP_PRODUCTION", default=False)
# A TLS-terminating reverse proxy in front sets X-Forwarded-Proto and X-Forwarded-For.
BEHIND_PROXY = env.bool("DJANGO_BEHIND_PROXY", default=False)


def _secret_key() -> str:
    """The configured key; outside production, one generated once and kept under var/."""
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("Set DJANGO_SECRET_KEY in production (QVP_PRODUCTION=true)")
    path = VAR_DIR / "secret_key"
    if not path.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        write_once(path, secrets.token_urlsafe(50))
    return read_private(path)


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "csp",
    "drf_spectacular_sidecar",  # the docs' Swagger UI files, served from here, never a CDN
    "axes",  # failed logins, throttled per (user, address): qvp_site/logins.py
    "qvp_site.apps.QvpSiteConfig",
    "marketdata.apps.MarketdataConfig",
    "trading.apps.TradingConfig",
    "risk.apps.RiskConfig",
    "signals.apps.SignalsConfig",
    "vectors.apps.VectorsConfig",
    "dashboard.apps.DashboardConfig",
]

MIDDLEWARE = [
    # First, so that the latency it measures is the whole request's (qvp_site/metrics.py).
    "qvp_site.metrics.RequestMetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "qvp_site.middleware.RequestBodyLimitMiddleware",
    "qvp_site.middleware.UnstorableTextMiddleware",
    # WhiteNoise, minus the manifest of every static file (qvp_site/middleware.py).
    "qvp_site.middleware.StaticFilesMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Turns a locked-out login into its 429 outside the request's transaction, which a 429
    # would roll back with the failure that locked it (qvp_site/logins.py).
    "axes.middleware.AxesMiddleware",
    "qvp_site.acting.ActingUserMiddleware",
    "qvp_site.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "qvp_site.urls"
WSGI_APPLICATION = "qvp_site.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
DATABASE_NAME = env.str("QVP_DATABASE_NAME", default="qvp")
CONN_MAX_AGE = env.int("DJANGO_CONN_MAX_AGE", default=60)

if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
    EMBEDDED_DATABASE = False
    # Passwords `manage.py create_db_roles` gives the application's and the read-only roles.
    QVP_APP_DB_PASSWORD = env.str("QVP_APP_DB_PASSWORD", default="")
    QVP_READONLY_DB_PASSWORD = env.str("QVP_READONLY_DB_PASSWORD", default="")
    # The researchers' role (qvp_research): none by default, and then it cannot log in.
    QVP_RESEARCH_DB_PASSWORD = env.str("QVP_RESEARCH_DB_PASSWORD", default="")
    QVP_RESEARCH_DB_PASSWORD_GENERATED = False
else:
    from qvp_site.db import embedded, roles

    # Nothing starts here: the first connection a process makes starts the server (the
    # backend below, qvp_site/db/embedded_backend). Every connection proves a password
    # (scram-sha-256): each role's is generated once and kept in var/secrets/<role>.
    _host, _port = embedded.address(VAR_DIR)
    _superuser_password = embedded.password(VAR_DIR, embedded.SUPERUSER)
    # What `create_db_roles` sets, and what the app role connects with: the generated ones
    # unless the environment names others.
    QVP_APP_DB_PASSWORD = env.str(
        "QVP_APP_DB_PASSWORD", default=embedded.password(VAR_DIR, roles.APP_ROLE)
    )
    QVP_READONLY_DB_PASSWORD = env.str(
        "QVP_READONLY_DB_PASSWORD", default=embedded.password(VAR_DIR, roles.READONLY_ROLE)
    )
    # The researchers' role: generated unless set, and then printed by create_db_roles when it
    # makes the role (kept in var/secrets/qvp_research besides).
    QVP_RESEARCH_DB_PASSWORD = env.str("QVP_RESEARCH_DB_PASSWORD", default="")
    QVP_RESEARCH_DB_PASSWORD_GENERATED = not QVP_RESEARCH_DB_PASSWORD
    QVP_RESEARCH_DB_PASSWORD = QVP_RESEARCH_DB_PASSWORD or embedded.password(
        VAR_DIR, roles.RESEARCH_ROLE
    )
    # The served site connects as trading_app (qvp_site/serve.py sets "app"); migrations,
    # maintenance and commands run by hand as the owner unless told otherwise.
    _role = env.choice("QVP_DATABASE_ROLE", ("owner", "app"), default="owner")
    DATABASES = {
        "default": {
            "ENGINE": "qvp_site.db.embedded_backend",
            "NAME": DATABASE_NAME,
            "USER": roles.APP_ROLE if _role == "app" else embedded.SUPERUSER,
            "PASSWORD": QVP_APP_DB_PASSWORD if _role == "app" else _superuser_password,
            "HOST": _host,
            "PORT": str(_port),
        }
    }
    EMBEDDED_DATABASE = True

DATABASES["default"].update(
    {
        "CONN_MAX_AGE": CONN_MAX_AGE,
        "CONN_HEALTH_CHECKS": True,
        # One test database per test run, so that two runs on one server (two checkouts, or
        # an editor's test runner beside `make test`) never drop each other's database.
        "TEST": {
            "NAME": env.str("QVP_TEST_DATABASE_NAME", default=f"test_{DATABASE_NAME}_{os.getpid()}")
        },
    }
)
if not EMBEDDED_DATABASE and DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise ImproperlyConfigured(
        "DATABASE_URL must point to PostgreSQL (postgres:// or postgresql://)"
    )

# Read replicas (streaming standbys of the primary), comma-separated URLs: read-only requests
# read from them, everything that writes or must read its own writes the primary (see
# qvp_site/replicas.py). Tests read the primary's test database through them (MIRROR).
for _number, _url in enumerate(u for u in env.list("DATABASE_REPLICA_URLS", default=[]) if u):
    _replica = env.db_url_config(_url)
    if _replica.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(f"DATABASE_REPLICA_URLS: replica {_number} is not PostgreSQL")
    _replica.update(CONN_MAX_AGE=CONN_MAX_AGE, CONN_HEALTH_CHECKS=True, TEST={"MIRROR": "default"})
    if EMBEDDED_DATABASE and not _replica.get("PASSWORD"):
        # A standby of the embedded server has its roles, and so their passwords.
        _replica["PASSWORD"] = {
            embedded.SUPERUSER: _superuser_password,
            roles.APP_ROLE: QVP_APP_DB_PASSWORD,
            roles.READONLY_ROLE: QVP_READONLY_DB_PASSWORD,
            roles.RESEARCH_ROLE: QVP_RESEARCH_DB_PASSWORD,
        }.get(_replica.get("USER", ""), "")
    DATABASES[f"replica_{_number}"] = _replica
# Behind PgBouncer in transaction pooling mode: a server-side cursor (QuerySet.iterator())
# would outlive the transaction that pooled its server connection. Prepared statements are
# off already (Django's psycopg default, prepare_threshold None).
QVP_TRANSACTION_POOLING = env.bool("QVP_TRANSACTION_POOLING", default=False)
for _database in DATABASES.values():
    _database["DISABLE_SERVER_SIDE_CURSORS"] = QVP_TRANSACTION_POOLING
QVP_REPLICA_ALIASES = [alias for alias in DATABASES if alias.startswith("replica_")]
# A replica further behind than this (seconds of replay lag) is passed over until it catches
# up: requests read the primary meanwhile. 0 reads a replica however far behind.
QVP_REPLICA_MAX_LAG_SECONDS = env.int("QVP_REPLICA_MAX_LAG_SECONDS", default=10)
DATABASE_ROUTERS = ["qvp_site.replicas.ReplicaRouter"]

# --- Time limits ---
# How long one statement may keep the database busy (PostgreSQL's statement_timeout), in
# seconds; 0 sets none of QVP's own (the server's default for the role applies). Applied local
# to each transaction, so PgBouncer's transaction pooling never carries one to another client
# (qvp_site/time_limits.py). A request over its limit answers 503 naming it, rolled back.
# Commands run by hand have none by default: an operator watches them, and a first load, an
# archive or a migration on a big table may rightly take long. Scheduled jobs run unattended:
# a statement running an hour is stuck (a lock wait, a runaway plan) and would hold its locks
# until someone looked. A streamed export (the admin's CSV) has its own, for each statement and
# for the whole stream; gunicorn's worker timeout follows from it (qvp_site/gunicorn_conf.py).
from qvp_site import time_limits as _time_limits  # noqa: E402  (also connects its receiver)

QVP_REQUEST_STATEMENT_TIMEOUT = _time_limits.seconds(
    "QVP_REQUEST_STATEMENT_TIMEOUT", env.str("QVP_REQUEST_STATEMENT_TIMEOUT", default="30")
)
QVP_STREAM_STATEMENT_TIMEOUT = _time_limits.seconds(
    "QVP_STREAM_STATEMENT_TIMEOUT", env.str("QVP_STREAM_STATEMENT_TIMEOUT", default="300")
)
QVP_SCHEDULER_STATEMENT_TIMEOUT = _time_limits.seconds(
    "QVP_SCHEDULER_STATEMENT_TIMEOUT", env.str("QVP_SCHEDULER_STATEMENT_TIMEOUT", default="3600")
)
QVP_COMMAND_STATEMENT_TIMEOUT = _time_limits.seconds(
    "QVP_COMMAND_STATEMENT_TIMEOUT", env.str("QVP_COMMAND_STATEMENT_TIMEOUT", default="0")
)
# The researchers' role (qvp_research, SQL from notebooks): set on the role by create_db_roles,
# so they hold for psql, pandas, Polars and ADBC alike. A query over five minutes is a runaway
# join to rewrite; a transaction left open in a notebook would hold back vacuum and queue a
# migration's lock (and every request behind it), so it is ended after ten idle minutes. The
# connection limit keeps a pool of notebooks from taking the server's connections.
QVP_RESEARCH_DB_STATEMENT_TIMEOUT = _time_limits.seconds(
    "QVP_RESEARCH_DB_STATEMENT_TIMEOUT", env.str("QVP_RESEARCH_DB_STATEMENT_TIMEOUT", default="300")
)
QVP_RESEARCH_DB_IDLE_TIMEOUT = _time_limits.seconds(
    "QVP_RESEARCH_DB_IDLE_TIMEOUT", env.str("QVP_RESEARCH_DB_IDLE_TIMEOUT", default="600")
)
QVP_RESEARCH_DB_CONNECTION_LIMIT = env.positive_int("QVP_RESEARCH_DB_CONNECTION_LIMIT", default=10)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The time-series engine (qvp_site/db/engine.py). auto: TimescaleDB where the server offers it,
# Citus where the database has it with workers registered, plain PostgreSQL otherwise; or one
# named, and then required. QVP_TIMESCALEDB (auto/on/off) is its older spelling.
_ENGINE_OF_TIMESCALEDB = {"auto": "auto", "on": "timescaledb", "off": "postgresql"}
QVP_TIMESCALEDB = env.choice("QVP_TIMESCALEDB", ("auto", "on", "off"), default="auto")
QVP_ENGINE = env.choice(
    "QVP_ENGINE", ("auto", "timescaledb", "postgresql", "citus"),
    default=_ENGINE_OF_TIMESCALEDB[QVP_TIMESCALEDB],
)  # fmt: skip


# Citus: the workers ("host:port,...") a new database is prepared on (the extension in it on
# every node, the workers registered on the coordinator) before its migrations run.
def _host_and_port(name: str, value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6 address]:port``."""
    host, _, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ImproperlyConfigured(f"{name}: {value!r}: write an IPv6 address as [address]:port")
    if not host or not port.isdigit():
        raise ImproperlyConfigured(f"{name}: {value!r} is not host:port")
    return host, int(port)


QVP_CITUS_WORKERS = [
    _host_and_port("QVP_CITUS_WORKERS", w) for w in env.list("QVP_CITUS_WORKERS", default=[])
]
# Where the workers reach the coordinator (host:port); default: DATABASE_URL's host and port.
_coordinator = env.str("QVP_CITUS_COORDINATOR", default="")
QVP_CITUS_COORDINATOR = (
    _host_and_port("QVP_CITUS_COORDINATOR", _coordinator) if _coordinator else None
)
# Shards of each distributed table, read when the migration that distributes them runs:
# Citus's 32 by default; a test cluster uses a few, since partitions times shards multiply
# the relations every statement plans over.
QVP_CITUS_SHARD_COUNT = env.int("QVP_CITUS_SHARD_COUNT", default=32)
if not 1 <= QVP_CITUS_SHARD_COUNT <= 64000:
    raise ImproperlyConfigured(
        f"QVP_CITUS_SHARD_COUNT={QVP_CITUS_SHARD_COUNT}: a count of shards from 1 to 64000"
    )

# Retention per time-series table ("table=interval", "off" disables). Counted back from now.
# Market data has none by default: research needs the history.
QVP_RETENTION = env.dict("QVP_RETENTION", default={})

# Signals' time-series policies (the design documents' figures), read when the signals
# migrations run: compression where TimescaleDB is present, and the retention each table
# gets by default (QVP_RETENTION still overrides it per table, applied by `maintain`).
QVP_SIGNALS_COMPRESS_AFTER = env.str("QVP_SIGNALS_COMPRESS_AFTER", default="30 days")
QVP_SYSTEMLOG_COMPRESS_AFTER = env.str("QVP_SYSTEMLOG_COMPRESS_AFTER", default="7 days")
QVP_SYSTEMLOG_RETENTION = env.str("QVP_SYSTEMLOG_RETENTION", default="90 days")
QVP_NEWS_RETENTION = env.str("QVP_NEWS_RETENTION", default="1 year")

# How many new partitions (TimescaleDB: chunks) one load may make: a request or file whose
# rows fall in more intervals that have none yet is refused whole, naming the range, so one
# request cannot flood the catalog with tables. 520 covers a decade of minute bars (7-day
# partitions), a file a desk backfills in one load; `maintain --cover` makes more for a bigger
# backfill, and a lower value bounds what one API request may make.
QVP_MAX_NEW_PARTITIONS_PER_LOAD = env.positive_int("QVP_MAX_NEW_PARTITIONS_PER_LOAD", default=520)

# --- Auth, API ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Logins (django-axes; qvp_site/logins.py) ------------------------------------------------
# Failed logins are counted per user name and address together, so that guessing from one
# address locks that pair only: the user logs in from elsewhere, others from that address.
# From AXES_FAILURE_LIMIT failures on, the pair waits QVP_LOGIN_BACKOFF_SECONDS after its last
# failure, twice that after the next, and so on up to QVP_LOGIN_BACKOFF_MAX_SECONDS; failures
# are forgotten QVP_LOGIN_MEMORY_HOURS after the last one, or at a successful login.
AUTHENTICATION_BACKENDS = [
    "qvp_site.logins.LoginThrottleBackend",  # first: a locked pair's password is not checked
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "qvp_site.logins.BackoffHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = env.positive_int("QVP_LOGIN_FAILURE_LIMIT", default=5)
QVP_LOGIN_BACKOFF = timedelta(seconds=env.positive_int("QVP_LOGIN_BACKOFF_SECONDS", default=60))
QVP_LOGIN_BACKOFF_MAX = timedelta(
    seconds=env.positive_int("QVP_LOGIN_BACKOFF_MAX_SECONDS", default=3600)
)
QVP_LOGIN_MEMORY = timedelta(hours=env.positive_int("QVP_LOGIN_MEMORY_HOURS", default=24))
if QVP_LOGIN_BACKOFF_MAX < QVP_LOGIN_BACKOFF or QVP_LOGIN_MEMORY < QVP_LOGIN_BACKOFF_MAX:
    raise ImproperlyConfigured(
        "Logins: QVP_LOGIN_BACKOFF_SECONDS <= QVP_LOGIN_BACKOFF_MAX_SECONDS <= the memory"
    )
AXES_COOLOFF_TIME = "qvp_site.logins.cool_off"
AXES_LOCKOUT_CALLABLE = "qvp_site.logins.lockout_response"
# The address DRF's throttles count by: never a client's own X-Forwarded-For.
AXES_CLIENT_IP_CALLABLE = "qvp_site.logins.client_address"
AXES_RESET_ON_SUCCESS = True
# Kept out of the failures' copy of the form: the user name is the record's own column, and
# a CSRF token has nothing to tell anyone reading the table.
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
# A refused attempt is not counted: it would only push the time further.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# Only failures are kept (axes_accessattempt), not a row per successful login.
AXES_DISABLE_ACCESS_LOG = True
# The admin's list is registered by qvp_site/logins_admin.py, read-only for auditors.
AXES_ENABLE_ADMIN = False

# The cache holds the API's request counts (throttling). Shared by the web workers of one
# machine as files under var/ by default; set DJANGO_CACHE_URL (e.g. redis://...) to share
# it between machines.
CACHES = {"default": env.cache_url("DJANGO_CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
# Room for a count per user and per address: past MAX_ENTRIES a cache drops entries at random,
# and a flood of addresses would wipe everyone's counts with them (Django's default is 300).
CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 100_000)

# Rows per page of API lists, and the most a client may ask for with ?page_size=.
API_PAGE_SIZE = 500
API_MAX_PAGE_SIZE = 5000
# The longest range a list answers at once in a bulk format (Arrow, Parquet, CSV: no pages,
# qvp_site/api/bulk/): a year of minute bars by default; a month of ticks or option quotes,
# of which a liquid symbol's year would outlast the stream's time limit.
QVP_API_BULK_MAX_RANGE = timedelta(days=env.positive_int("QVP_API_BULK_MAX_DAYS", default=366))
QVP_API_BULK_MAX_TICK_RANGE = timedelta(
    days=env.positive_int("QVP_API_BULK_MAX_TICK_DAYS", default=31)
)

# The largest request body accepted (413 beyond), for the API's JSON as for forms: a batch of
# a few thousand bars or signals fits well within the default.
QVP_MAX_REQUEST_BODY = env.positive_int("QVP_MAX_REQUEST_BODY", default=10 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = QVP_MAX_REQUEST_BODY

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Session (the web login) and API token (programs; qvp_site/tokens.py), each naming
        # the user to the database.
        "qvp_site.acting.ActingSessionAuthentication",
        "qvp_site.acting.ActingTokenAuthentication",
        "qvp_site.throttling.AnonymousRateLimit",  # last: counts whom none of them knew
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies are JSON, and only JSON (415 otherwise), as the schema documents them: no page of
    # the site posts a form to the API. Text PostgreSQL cannot store is a 400
    # (qvp_site/parsers.py). The browsable API keeps its raw JSON form.
    "DEFAULT_PARSER_CLASSES": ["qvp_site.parsers.JSONParser"],
    # APIClient in the tests sends what clients send.
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # Requests per user, and per address for requests without a user (refused anyway, but
    # counted, so that a client guessing keys is slowed down: qvp_site/throttling.py). Kept
    # in the cache below; 429 beyond.
    "DEFAULT_THROTTLE_CLASSES": ["qvp_site.throttling.UserRateThrottle"],
    # An address is the proxy's last X-Forwarded-For entry behind one, else the peer's: a
    # client's own X-Forwarded-For must not choose the address it is counted under.
    "NUM_PROXIES": 1 if BEHIND_PROXY else 0,
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("QVP_API_THROTTLE_ANON", default="60/minute"),
        "user": env.str("QVP_API_THROTTLE_USER", default="3000/minute"),
    },
    # drf-spectacular's, each answer's fields required that it always carries.
    "DEFAULT_SCHEMA_CLASS": "qvp_site.schema.SiteAutoSchema",
    # DRF's negotiation honouring Accept's q-values; a format not offered is a 406 naming it.
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "qvp_site.negotiation.QualityNegotiation",
    # A list without a paginator of its own gets pages of PAGE_SIZE rows, which clients
    # cannot enlarge; the apps' paginators accept ?page_size= up to API_MAX_PAGE_SIZE.
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": API_PAGE_SIZE,
    # Filters are query-parameter serializers in each app's api.py: validated, so bad input
    # is a 400 naming the parameter, and described in the schema. No generic backends.
    "DEFAULT_FILTER_BACKENDS": [],
}

SPECTACULAR_SETTINGS = {
    "TITLE": "QVP API",
    "DESCRIPTION": (
        "Market data, trading records, risk and signals of the QVP desk. Every endpoint needs "
        "an authenticated user: a session (the web login) or `Authorization: Token <key>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schemes a client can log in with (AnonymousRateLimit identifies nobody).
    "AUTHENTICATION_WHITELIST": [
        "qvp_site.acting.ActingSessionAuthentication",
        "qvp_site.acting.ActingTokenAuthentication",
    ],
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # A request's body and the answer are separate components: read-only fields (ids, who
    # acted, when) are in the answer only, so that a generated client does not demand them.
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name across apps get names of their own.
    "ENUM_NAME_OVERRIDES": {
        "RiskMetricEnum": "risk.models.Metric",
        "VectorMetricEnum": "vectors.search.METRIC_CHOICES",
        "ListingStatusEnum": "marketdata.models.Listing.Status",
        "CorporateActionKindEnum": "marketdata.models.ActionKind",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "qvp_site.schema.document_refusals",
        # After the refusals: each bulk read again at its route's suffix (bars.arrow).
        "qvp_site.api.bulk.schema.suffix_operations",
        "qvp_site.schema.blank_matches_once",
    ],  # tags and operation ids from the path after it
    # The schema and its docs need a login like every other page.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # No call to the public validator service: the docs page talks to this site only.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
}

# --- Internationalisation, static files ------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# Times with seconds and their zone wherever Django formats one (the admin): qvp_site/formats/.
FORMAT_MODULE_PATH = ["qvp_site.formats"]

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
# The charting library as npm installed it from package-lock.json (`make` runs `npm ci`).
STATICFILES_DIRS = [
    ("vendor/lightweight-charts", BASE_DIR / "node_modules" / "lightweight-charts" / "dist"),
]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security -------------------------------------------------------------------------------
SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=PRODUCTION)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=31536000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
# The preload directive alone adds nothing to browsers' lists: the domain's owner submits it.
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=PRODUCTION)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Everything from this site only: no inline script or style, no CDN, no framing.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
# The admin's address: another than the well-known one keeps scanners off its login page.
ADMIN_URL = env.str("QVP_ADMIN_URL", default="admin/")
if not ADMIN_URL.endswith("/") or ADMIN_URL.startswith("/") or "//" in ADMIN_URL:
    raise ImproperlyConfigured(
        "QVP_ADMIN_URL is a path like 'ops-admin/': no leading slash, one at the end"
    )
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# --- Risk alerts ----------------------------------------------------------------------------
# Where breached risk limits are sent: by Django's mail (the backend and server below) to
# QVP_RISK_ALERT_EMAILS, and by an HTTP POST to QVP_RISK_ALERT_WEBHOOK_URL whose body is signed
# with HMAC-SHA256 under QVP_RISK_ALERT_WEBHOOK_SECRET (header X-QVP-Signature). Each channel
# is tried QVP_RISK_ALERT_ATTEMPTS times, waiting QVP_RISK_ALERT_BACKOFF_SECONDS, then twice
# that, and so on; every attempt is recorded.
EMAIL_BACKEND = env.str(
    "DJANGO_EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = env.str("DJANGO_EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("DJANGO_EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("DJANGO_EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("DJANGO_EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("DJANGO_EMAIL_USE_TLS", default=False)
EMAIL_TIMEOUT = env.int("DJANGO_EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env.str("DJANGO_DEFAULT_FROM_EMAIL", default="qvp@localhost")
QVP_RISK_ALERT_EMAILS = env.list("QVP_RISK_ALERT_EMAILS", default=[])
QVP_RISK_ALERT_WEBHOOK_URL = env.str("QVP_RISK_ALERT_WEBHOOK_URL", default="")
QVP_RISK_ALERT_WEBHOOK_SECRET = env.str("QVP_RISK_ALERT_WEBHOOK_SECRET", default="")
QVP_RISK_ALERT_WEBHOOK_TIMEOUT = env.positive_int("QVP_RISK_ALERT_WEBHOOK_TIMEOUT", default=10)
QVP_RISK_ALERT_ATTEMPTS = env.positive_int("QVP_RISK_ALERT_ATTEMPTS", default=4)
QVP_RISK_ALERT_BACKOFF_SECONDS = env.float("QVP_RISK_ALERT_BACKOFF_SECONDS", default=2.0)
if QVP_RISK_ALERT_WEBHOOK_URL and not QVP_RISK_ALERT_WEBHOOK_SECRET:
    raise ImproperlyConfigured("QVP_RISK_ALERT_WEBHOOK_URL needs QVP_RISK_ALERT_WEBHOOK_SECRET")
if QVP_RISK_ALERT_BACKOFF_SECONDS < 0:
    raise ImproperlyConfigured("QVP_RISK_ALERT_BACKOFF_SECONDS must not be negative")

# --- Monitoring -----------------------------------------------------------------------------
# GET /metrics answers staff users, and a scraper that sends "Authorization: Bearer <token>".
QVP_METRICS_TOKEN = env.str("QVP_METRICS_TOKEN", default="")

# --- Archives -------------------------------------------------------------------------------
# Where `manage.py archive` writes Parquet files of old time-series rows.
QVP_ARCHIVE_DIR = Path(env.str("QVP_ARCHIVE_DIR", default=str(VAR_DIR / "archive")))

# --- Point-in-time recovery -------------------------------------------------------------------
# The WAL archive: the embedded server archives every WAL segment here (basic_archive), and
# `restore --to-time` replays from it. "off": the embedded server does not archive (`make test`
# and the benchmarks, which write gigabytes of WAL). With DATABASE_URL, off unless set: where
# that server's archive_command puts its segments, for `restore --to-time` to read.
_wal_archive = env.str(
    "QVP_WAL_ARCHIVE_DIR", default=str(VAR_DIR / "wal") if EMBEDDED_DATABASE else "off"
)
QVP_WAL_ARCHIVE_DIR = None if _wal_archive.strip().lower() == "off" else Path(_wal_archive)
# The embedded server hands a segment to the archive at least this often when anything was
# written (archive_timeout): the most a lost disk can take with it. A switched segment is
# still 16 MB in the archive, so not much less than this.
QVP_WAL_ARCHIVE_TIMEOUT = env.int("QVP_WAL_ARCHIVE_TIMEOUT", default=3600)
# Base backups (`manage.py backup --base`, pg_basebackup), one folder each.
QVP_BASE_BACKUP_DIR = Path(env.str("QVP_BASE_BACKUP_DIR", default=str(VAR_DIR / "basebackups")))
# How far back `restore --to-time` must reach: after each base backup, the base backups and
# archived WAL older than needed for that are removed.
try:
    QVP_PITR_WINDOW = _parse_interval(env.str("QVP_PITR_WINDOW", default="7 days")).fixed
except ValueError as _error:
    raise ImproperlyConfigured(f"QVP_PITR_WINDOW: {_error}") from None
if not QVP_PITR_WINDOW:
    raise ImproperlyConfigured("QVP_PITR_WINDOW: a fixed width ('7 days', '36h'), not months")
if QVP_WAL_ARCHIVE_TIMEOUT < 60:
    raise ImproperlyConfigured("QVP_WAL_ARCHIVE_TIMEOUT must be at least 60 (seconds)")
if QVP_WAL_ARCHIVE_DIR is not None and any(c in str(QVP_WAL_ARCHIVE_DIR) for c in "'\"\n"):
    raise ImproperlyConfigured("QVP_WAL_ARCHIVE_DIR must not hold a quote or a line break")

# --- Audit chain ----------------------------------------------------------------------------
# The sealer signs the chain's head with an Ed25519 key the database never holds: the private
# key's raw 32 bytes in hex in QVP_AUDIT_SIGNING_KEY (the environment of the application's
# user), else a PEM file (made by `manage.py audit_key --create`). Auditors verify with the
# public keys alone: the keyring file lists every key ever used, by key id.
QVP_AUDIT_SIGNING_KEY = env.str("QVP_AUDIT_SIGNING_KEY", default="")
QVP_AUDIT_SIGNING_KEY_FILE = Path(
    env.str("QVP_AUDIT_SIGNING_KEY_FILE", default=str(VAR_DIR / "secrets" / "audit_signing_key"))
)
QVP_AUDIT_PUBLIC_KEYS = Path(
    env.str("QVP_AUDIT_PUBLIC_KEYS", default=str(VAR_DIR / "audit" / "public_keys.json"))
)
# Each checkpoint is also appended here, outside the database.
QVP_AUDIT_CHECKPOINTS = Path(
    env.str("QVP_AUDIT_CHECKPOINTS", default=str(VAR_DIR / "audit" / "checkpoints.jsonl"))
)
# The sealer's round every this many seconds (sooner when a batch asks for one), and how old
# an entry may be before verify_audit fails for want of a signature.
QVP_AUDIT_SEAL_SECONDS = env.float("QVP_AUDIT_SEAL_SECONDS", default=5.0)
QVP_AUDIT_UNSIGNED_WINDOW = env.float("QVP_AUDIT_UNSIGNED_WINDOW", default=60.0)
if not 0 < QVP_AUDIT_SEAL_SECONDS < QVP_AUDIT_UNSIGNED_WINDOW:
    raise ImproperlyConfigured(
        "QVP_AUDIT_SEAL_SECONDS must be above 0 and below QVP_AUDIT_UNSIGNED_WINDOW, not"
        f" {QVP_AUDIT_SEAL_SECONDS} and {QVP_AUDIT_UNSIGNED_WINDOW}"
    )

# --- Scheduler ------------------------------------------------------------------------------
# Job timetables as cron expressions; override one with QVP_SCHEDULE="maintain=*/15 * * * *".
QVP_SCHEDULE = env.dict("QVP_SCHEDULE", default={})

# --- Logging --------------------------------------------------------------------------------
LOG_LEVEL = env.choice("QVP_LOG_LEVEL", ("debug", "info", "warning", "error"), default="info")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "qvp": {"level": LOG_LEVEL.upper()},
        "qvp_site": {"level": LOG_LEVEL.upper()},
        "apscheduler": {"level": "WARNING"},
    },
}

# Log records of this level and above are also kept in the database (signals' SystemLog),
# written by a background thread that drops and counts records rather than ever holding up
# the code that logs (signals/systemlog.py); "off" keeps them out of the database.
SYSTEMLOG_LEVEL = env.choice(
    "QVP_SYSTEMLOG_LEVEL", ("debug", "info", "warning", "error", "off"), default="warning"
)
if SYSTEMLOG_LEVEL != "off":
    LOGGING["handlers"]["database"] = {
        "class": "signals.systemlog.DatabaseLogHandler",
        "level": SYSTEMLOG_LEVEL.upper(),
        "capacity": env.positive_int("QVP_SYSTEMLOG_QUEUE", default=10_000),
    }
    LOGGING["root"]["handlers"].append("database")
