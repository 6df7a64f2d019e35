"""The OpenAPI document as the site serves it, and a client generated from it by
openapi-python-client with the configuration shipped in client/, as a user would make one."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from django.conf import settings
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiYamlRenderer

# Live-server tests leave no connection of the server's behind (tests/client/'s fixture).
from tests.client.conftest import no_connection_left  # noqa: F401

CONFIG = Path(settings.BASE_DIR) / "client" / "openapi-python-client.yaml"
PACKAGE = "qvp_api"  # package_name_override of CONFIG
GENERATOR_TIMEOUT = 300


@dataclass(frozen=True)
class Generated:
    """A generator's run: the schema file it read, the package folder it wrote, its exit
    status and all it printed (stdout and stderr)."""

    schema_file: Path
    package: Path
    returncode: int
    output: str


@pytest.fixture(scope="session")
def openapi_yaml(tmp_path_factory) -> Path:
    """The schema as ``manage.py spectacular`` writes it (the same generator and renderer)."""
    document = SchemaGenerator().get_schema(request=None, public=True)
    path = tmp_path_factory.mktemp("openapi") / "schema.yaml"
    path.write_bytes(OpenApiYamlRenderer().render(document, renderer_context={}))
    return path


@pytest.fixture(scope="session")
def openapi_document(openapi_yaml: Path) -> dict[str, Any]:
    """The document the client is generated from, as plain data (what schemathesis reads)."""
    loaded: dict[str, Any] = yaml.safe_load(openapi_yaml.read_text())
    return loaded


@pytest.fixture(scope="session")
def generated(openapi_yaml: Path, tmp_path_factory) -> Generated:
    """openapi-python-client run as the shipped configuration's comment says, with this venv's
    bin first on PATH: its post hooks run ruff, and say "Skipping Integration" without it."""
    package = tmp_path_factory.mktemp("generated") / PACKAGE
    bin_dir = Path(sys.prefix) / "bin"
    command = [
        str(bin_dir / "openapi-python-client"),
        "generate",
        "--path",
        str(openapi_yaml),
        "--config",
        str(CONFIG),
        "--meta",
        "none",
        "--output-path",
        str(package),
    ]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=env, timeout=GENERATOR_TIMEOUT, check=False
    )
    return Generated(openapi_yaml, package, done.returncode, done.stdout + done.stderr)


@pytest.fixture(scope="module")
def qvp_api(generated: Generated) -> Iterator[ModuleType]:
    """The generated package, importable for one module's tests only."""
    assert generated.returncode == 0, f"the generator failed:\n{generated.output}"
    folder = str(generated.package.parent)
    sys.path.insert(0, folder)
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(folder)
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(f"{PACKAGE}.")]:
            del sys.modules[name]
