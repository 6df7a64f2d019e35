"""A run records which code ran it: the deployment's name for it, else the checkout's commit."""

from __future__ import annotations

import subprocess

from qvp_site import code_version as module


def test_the_deployments_name_wins(monkeypatch):
    module.code_version.cache_clear()
    monkeypatch.setenv("QVP_CODE_VERSION", "image 2026.12.1")
    try:
        assert module.code_version() == "image 2026.12.1"
    finally:
        module.code_version.cache_clear()


def test_else_the_commit_of_the_checkout(monkeypatch):
    module.code_version.cache_clear()
    monkeypatch.delenv("QVP_CODE_VERSION", raising=False)
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=module.ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    try:
        assert module.code_version().split("+")[0] == head
    finally:
        module.code_version.cache_clear()


def test_without_git_the_package_version(monkeypatch):
    module.code_version.cache_clear()
    monkeypatch.delenv("QVP_CODE_VERSION", raising=False)
    monkeypatch.setattr(module, "_git", lambda *arguments: "")
    try:
        assert module.code_version().startswith("qvp ")
    finally:
        module.code_version.cache_clear()
