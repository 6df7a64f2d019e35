"""The production container files: docker-compose.yml, the Dockerfile and .env.example.

No database, no Docker: docker-compose.yml is checked against the Compose specification's JSON
schema (vendored by check-jsonschema), then for what the schema cannot see (dependency targets
and conditions, healthchecks, volumes, required secrets); .env.example against what settings.py
reads. Runs without the Django plugin: pytest tests/test_compose.py -p no:django
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"
SETTINGS = ROOT / "qvp_site" / "settings.py"

# Variables read outside settings.py: by docker compose, the image or `make run`.
EXTRA_VARIABLES = {"PORT", "POSTGRES_PASSWORD", "GUNICORN_WORKERS", "QVP_ADMIN_PASSWORD"}
REQUIRED_SECRETS = {"POSTGRES_PASSWORD", "DJANGO_SECRET_KEY", "QVP_APP_DB_PASSWORD"}
APP_SERVICES = ("migrate", "web", "scheduler")
# Migrations and maintenance connect as the owner; the web app as trading_app.
OWNER_URL = "postgresql://qvp:${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}@db:5432/qvp"
APP_URL = "postgresql://trading_app:${QVP_APP_DB_PASSWORD:?set QVP_APP_DB_PASSWORD}@db:5432/qvp"
# The web app goes through PgBouncer (transaction pooling), as trading_app.
POOLED_URL = APP_URL.replace("@db:5432/", "@pgbouncer:6432/")
LONG_RUNNING = ("db", "pgbouncer", "web", "scheduler")

SETTINGS_READ = re.compile(r"""\benv\.[a-z_]+\(\s*["']([A-Z][A-Z0-9_]*)["']""")
INTERPOLATION = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:([^@]+)@")


@pytest.fixture(scope="module")
def compose() -> dict:
    return YAML(typ="safe").load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict) -> dict:
    return compose["services"]


def settings_variables() -> set[str]:
    names = set(SETTINGS_READ.findall(SETTINGS.read_text()))
    # Guard against a regex that silently stops matching.
    assert {"DATABASE_URL", "DJANGO_SECRET_KEY", "QVP_PRODUCTION"} <= names
    return names


def env_example_variables() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))


def is_required(value: str, name: str) -> bool:
    return re.fullmatch(rf"\$\{{{name}:\?[^}}]+\}}", value) is not None


# --- docker-compose.yml --------------------------------------------------------------------------
def test_compose_matches_the_compose_specification():
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec"]
    result = subprocess.run(
        [*command, str(COMPOSE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_has_no_obsolete_version_key(compose):
    assert "version" not in compose


def test_every_service_has_an_image_or_a_build(services):
    assert set(services) == {"db", "pgbouncer", *APP_SERVICES}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
    for name in APP_SERVICES:
        assert services[name]["build"] == ".", name


def test_db_is_timescaledb_ha_with_its_data_volume(compose, services):
    db = services["db"]
    assert db["image"] == "timescale/timescaledb-ha:pg17"
    assert db["environment"]["POSTGRES_USER"] == "qvp"
    assert db["environment"]["POSTGRES_DB"] == "qvp"
    volume, _, target = db["volumes"][0].partition(":")
    assert target == "/home/postgres/pgdata"
    assert volume in (compose.get("volumes") or {})


def test_named_volumes_are_declared(compose, services):
    declared = set(compose.get("volumes") or {})
    for name, service in services.items():
        for mount in service.get("volumes", []):
            source = mount["source"] if isinstance(mount, dict) else mount.split(":")[0]
            if not source.startswith(("/", ".", "~", "$")):
                assert source in declared, f"{name}: volume {source} is not declared"


def test_depends_on_targets_exist_with_the_right_conditions(services):
    expected = {
        "migrate": {"db": "service_healthy"},
        "web": {
            "db": "service_healthy",
            "migrate": "service_completed_successfully",
            "pgbouncer": "service_started",
        },
        "pgbouncer": {"db": "service_healthy", "migrate": "service_completed_successfully"},
        "scheduler": {"db": "service_healthy", "migrate": "service_completed_successfully"},
    }
    for name, service in services.items():
        depends_on = service.get("depends_on", {})
        assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
        for target in depends_on:
            assert target in services, f"{name} depends on unknown service {target}"
        conditions = {target: spec["condition"] for target, spec in depends_on.items()}
        assert conditions == expected.get(name, {}), name


def test_db_and_web_have_healthchecks(services):
    db_check = services["db"]["healthcheck"]
    assert "pg_isready" in db_check["test"]
    web_check = services["web"]["healthcheck"]
    assert not web_check.get("disable", False)
    assert any("/healthz" in part for part in web_check["test"])


def test_services_without_http_disable_the_image_healthcheck(services):
    for name in ("migrate", "scheduler"):
        assert services[name]["healthcheck"] == {"disable": True}, name


def test_restart_policies(services):
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"].get("restart", "no") == "no"


def test_web_publishes_the_configured_port_and_runs_the_image_command(services):
    assert services["web"]["ports"] == ["${PORT:-8000}:8000"]
    assert "command" not in services["web"]
    assert services["migrate"]["command"] == [
        "sh", "-c", "python manage.py migrate --noinput && python manage.py create_db_roles"
    ]  # fmt: skip
    assert services["scheduler"]["command"] == ["python", "manage.py", "scheduler"]


def test_app_services_run_in_production_mode(services):
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert environment["QVP_PRODUCTION"] == "true", name
        assert environment["QVP_TIMESCALEDB"] == "on", name
        assert environment["DATABASE_URL"] == (OWNER_URL if name != "web" else POOLED_URL), name
        assert environment["DJANGO_ALLOWED_HOSTS"] == "${DJANGO_ALLOWED_HOSTS:-localhost}"
        assert "DJANGO_BEHIND_PROXY" in environment


def test_no_literal_passwords_or_secret_defaults(services):
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if value is None:
                continue
            value = str(value)
            if key in REQUIRED_SECRETS:
                assert is_required(value, key), f"{name}: {key} must be ${{{key}:?...}}"
            elif re.search(r"PASSWORD|SECRET", key):
                pytest.fail(f"{name}: {key} is set in docker-compose.yml")
            for password in URL_PASSWORD.findall(value):
                assert any(is_required(password, secret) for secret in REQUIRED_SECRETS), (
                    f"{name}: {key}"
                )


def test_compose_variables_are_documented(compose):
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    for service in compose["services"].values():
        used |= {k for k, v in (service.get("environment") or {}).items() if v is None}
    assert used - env_example_variables() == set()


def test_pgbouncer_pools_transactions_for_the_web_app_only(services):
    bouncer = services["pgbouncer"]["environment"]
    assert bouncer["POOL_MODE"] == "transaction"
    assert bouncer["DATABASE_URL"] == APP_URL
    assert bouncer["LISTEN_PORT"] == "6432"
    assert bouncer["MAX_PREPARED_STATEMENTS"] == "0"
    # Server-side cursors off for the pooled web app; the scheduler's advisory locks are
    # session-level: it and migrate connect to db directly.
    assert services["web"]["environment"]["QVP_TRANSACTION_POOLING"] == "true"
    for name in ("migrate", "scheduler"):
        assert "@db:5432/" in services[name]["environment"]["DATABASE_URL"], name


# --- Dockerfile ----------------------------------------------------------------------------------
def test_dockerfile_runs_as_non_root_with_static_files_and_a_healthcheck():
    text = DOCKERFILE.read_text()
    final_stage = text.split("\nFROM ")[-1]
    users = re.findall(r"^USER\s+(\S+)", final_stage, re.MULTILINE)
    assert users, "the final stage sets no USER"
    assert users[-1] not in ("root", "0")
    assert "collectstatic --noinput" in final_stage
    assert re.search(r"^EXPOSE 8000$", final_stage, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*/healthz", final_stage, re.MULTILINE | re.DOTALL)
    assert "gunicorn qvp_site.wsgi:application" in final_stage
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


# --- .env.example --------------------------------------------------------------------------------
def test_every_settings_variable_is_in_env_example():
    missing = settings_variables() - env_example_variables()
    assert not missing, f"missing from .env.example: {sorted(missing)}"


def test_env_example_lists_only_variables_something_reads():
    unknown = env_example_variables() - settings_variables() - EXTRA_VARIABLES
    assert not unknown, f"read by nothing: {sorted(unknown)}"
    missing = EXTRA_VARIABLES - env_example_variables()
    assert not missing, f"missing from .env.example: {sorted(missing)}"


def test_env_example_holds_no_secrets():
    for line in ENV_EXAMPLE.read_text().splitlines():
        match = re.match(r"^#?\s*([A-Z0-9_]*(?:PASSWORD|SECRET_KEY))=(.*)$", line)
        if match:
            assert re.fullmatch(r"|<[^>]+>", match.group(2)), line
        for password in URL_PASSWORD.findall(line):
            assert re.fullmatch(r"<[^>]+>", password), line


def test_dockerfile_builds_the_charting_library_from_the_lockfile():
    text = DOCKERFILE.read_text()
    final_stage = text.split("\nFROM ")[-1]
    assert "COPY package.json package-lock.json ./" in text
    assert "RUN npm ci" in text
    dist = "node_modules/lightweight-charts/dist"
    copied = final_stage.index(f"COPY --from=assets /build/{dist} /app/{dist}")
    assert copied < final_stage.index("collectstatic --noinput")
    assert "node_modules" in (ROOT / ".dockerignore").read_text().split()
    assert any(str(path).endswith(dist) for _, path in settings.STATICFILES_DIRS)
