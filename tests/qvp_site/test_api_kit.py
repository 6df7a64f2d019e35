"""The site's shared code imports no app: what is an app's (instruments, accounts, conflict
rules) is passed in by the app, so that qvp_site sits below every app."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from django.conf import settings

from qvp_site.admin_access import project_app_labels

SITE = Path(settings.BASE_DIR) / "qvp_site"
SHARED = [
    *sorted((SITE / "api").glob("*.py")),
    SITE / "auditors.py",
    SITE / "refusals.py",
    SITE / "admin_access.py",
]


def imported_packages(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("path", SHARED, ids=lambda p: str(p.relative_to(SITE.parent)))
def test_shared_code_imports_no_app(path):
    apps = set(project_app_labels()) - {"qvp_site"}
    assert apps, "no project apps found"
    assert not imported_packages(path) & apps
