# syntax=docker/dockerfile:1
# The QVP image: gunicorn serves qvp_site.wsgi; the same image runs `manage.py migrate` and
# `manage.py scheduler` (see docker-compose.yml). Build: docker build -t qvp .

# --- Dependencies ----------------------------------------------------------------------------
# Only pyproject.toml goes in here ([tool.setuptools] packages = [], so `pip install .` installs
# the pinned dependencies and no code): this layer is rebuilt when the pins change, not the code.
FROM python:3.11-slim AS deps
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# README.* may match nothing; pyproject.toml names it as the readme.
COPY pyproject.toml README.* ./
RUN pip install .

# --- Front-end assets ------------------------------------------------------------------------
# The charting library from the npm registry, exactly as package-lock.json pins it.
FROM node:20-slim AS assets
WORKDIR /build
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

# --- Runtime ---------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH \
    QVP_VAR_DIR=/app/var

# A writable home: gunicorn keeps its control socket (for gunicornc) under ~/.gunicorn.
RUN groupadd --system --gid 10001 qvp \
    && useradd --system --uid 10001 --gid qvp --home-dir /home/qvp --create-home \
       --shell /usr/sbin/nologin qvp

COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
# The code stays root-owned, so the app cannot rewrite itself; only var/ is the app's.
COPY . .
# Where settings.STATICFILES_DIRS finds it; collectstatic below copies it into the static root.
COPY --from=assets /build/node_modules/lightweight-charts/dist /app/node_modules/lightweight-charts/dist
# var/audit exists in the image so that compose's audit volume starts owned by qvp.
RUN python -m compileall -q /app \
    && install -d -o qvp -g qvp /app/var /app/var/audit

USER qvp
# Throwaway values, for this step only: settings need a key, and a DATABASE_URL keeps them from
# starting the embedded server. collectstatic does not connect to the database.
RUN DJANGO_SECRET_KEY=build-only-not-a-secret \
    DATABASE_URL=postgresql://collectstatic@localhost:5432/collectstatic \
    python manage.py collectstatic --noinput

EXPOSE 8000

# The request carries the first allowed host (Django answers 400 to any other Host header) and
# X-Forwarded-Proto: https, which gunicorn trusts from 127.0.0.1 (its forwarded_allow_ips
# default), so SECURE_SSL_REDIRECT does not answer 301. http.client, unlike urllib's urlopen,
# follows no redirect: one counts as unhealthy instead of probing the public address.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import http.client, os; h = os.environ.get('DJANGO_ALLOWED_HOSTS', '').split(',')[0].strip().lstrip('.'); h = h if h not in ('', '*') else 'localhost'; c = http.client.HTTPConnection('127.0.0.1', 8000, timeout=4); c.request('GET', '/healthz', headers={'Host': h, 'X-Forwarded-Proto': 'https'}); raise SystemExit(c.getresponse().status != 200)"]

# exec: gunicorn is PID 1 and gets docker stop's SIGTERM (graceful shutdown).
# Heartbeat files on /dev/shm: a disk-backed /tmp can stall workers under I/O load.
# PROMETHEUS_MULTIPROC_DIR: each worker's request counters in a file there, added up by
# GET /metrics (qvp_site/metrics.py); emptied at each start, as counters start from zero.
# qvp_site/gunicorn_conf.py: sync workers, whose timeout follows from the time limits.
CMD ["sh", "-c", "rm -rf /dev/shm/qvp-metrics && mkdir -p /dev/shm/qvp-metrics && PROMETHEUS_MULTIPROC_DIR=/dev/shm/qvp-metrics exec gunicorn qvp_site.wsgi:application -c python:qvp_site.gunicorn_conf --bind 0.0.0.0:8000 --workers \"${GUNICORN_WORKERS:-3}\" --worker-tmp-dir /dev/shm --access-logfile - --error-logfile -"]
