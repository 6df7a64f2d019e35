"""seed_demo adds risk limits that the demo book breaches: the demo shows alerts."""

from __future__ import annotations

from datetime import date
from io import StringIO

from django.core.management import call_command

from risk import demo
from risk.models import RiskAlert, RiskLimit, RiskMetric
from trading.models import PortfolioSnapshot

END = date(2024, 5, 17)


def test_demo_shows_alerts(db):
    out = StringIO()
    call_command("seed_demo", "--days", "30", "--end", END.isoformat(), stdout=out)
    assert "Risk demo: limits for 2 accounts" in out.getvalue()
    last = PortfolioSnapshot.objects.latest("ts").ts
    assert RiskMetric.objects.filter(ts=last, metric="var_historical").count() == 2
    alerts = RiskAlert.objects.all()
    # Each account breaches its three tight limits and keeps within the loose one.
    assert alerts.count() == 6
    assert set(alerts.values_list("severity", flat=True)) == {"critical", "warning", "info"}
    assert not RiskAlert.objects.filter(metric="var_monte_carlo").exists()
    assert RiskLimit.objects.filter(metric="var_monte_carlo").count() == 2
    # Seeding again adds nothing.
    said = []
    demo.seed(said.append)
    assert "nothing added" in said[0]
    assert (RiskAlert.objects.count(), RiskLimit.objects.count()) == (6, 8)
