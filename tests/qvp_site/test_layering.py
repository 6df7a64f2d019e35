"""The project's layering and names.

``qvp_site`` sits under the apps: the site's machinery (database, API kit, loading engine,
admin bases, jobs) imports no app, so that every app may build on it without a cycle and a
newcomer finds shared code in one place. Only the composition roots, which put the apps
together, name them. And no two top-level classes share a name, so that a name found in a
traceback or a review means one thing (a model's nested choices, ``Trade.Side``, are named
through their model)."""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import qvp_site

APPS = frozenset({"marketdata", "trading", "risk", "signals", "vectors", "dashboard"})
SITE = Path(qvp_site.__file__).parent
ROOT = SITE.parent

PACKAGES = ("qvp_site", *sorted(APPS))
# Names Django looks up by convention, one per module.
CONVENTIONAL = frozenset({"Command", "Migration"})

# Modules that compose the apps, and so must import them (paths under the repository).
COMPOSITION_ROOTS = {
    # The REST API's URL map: registers every app's viewsets under /api/v1/.
    "qvp_site/api_urls.py",
}


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """Every module a file imports (at any depth: in functions and TYPE_CHECKING blocks too),
    with its line."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module


def app_imports(path: Path) -> list[str]:
    """``path:line imports module`` for each import of an app by the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    name = path.relative_to(ROOT).as_posix()
    return [
        f"{name}:{line} imports {module}"
        for line, module in imported_modules(tree)
        if module.split(".")[0] in APPS
    ]


def test_qvp_site_imports_no_app_outside_its_composition_roots() -> None:
    modules = sorted(SITE.rglob("*.py"))
    assert len(modules) > 50  # the scan found the package
    found = [
        hit
        for path in modules
        if path.relative_to(ROOT).as_posix() not in COMPOSITION_ROOTS
        for hit in app_imports(path)
    ]
    assert found == []


def test_every_composition_root_exists() -> None:
    # An allow-list entry outliving its file would silently allow nothing: keep it exact.
    assert all((ROOT / name).is_file() for name in COMPOSITION_ROOTS)


def test_no_two_top_level_classes_share_a_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in tree.body:
                if isinstance(node, ast.ClassDef) and node.name not in CONVENTIONAL:
                    where[node.name].append(path.relative_to(ROOT).as_posix())
    assert {name: paths for name, paths in where.items() if len(paths) > 1} == {}
