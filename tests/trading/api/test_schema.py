"""The OpenAPI schema of the trading API."""

from __future__ import annotations

from io import StringIO

from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS


def test_the_schema_generates_without_warnings_and_describes_the_trading_api(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command(
        "spectacular", "--validate", "--fail-on-warn", "--file", str(out), stderr=StringIO()
    )
    text = out.read_text()
    for path in (
        "/api/v1/accounts/",
        "/api/v1/orders/{id}/cancel/",
        "/api/v1/executions/{id}/bust/",
        "/api/v1/positions/",
        "/api/v1/cash/",
        "/api/v1/portfolio/snapshots/",
        "/api/v1/backtests/{id}/trades/",
    ):
        assert f"  {path}:" in text
    assert "ExecutionOrBatch" in text
