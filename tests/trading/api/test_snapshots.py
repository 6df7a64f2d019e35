"""/api/v1/portfolio/snapshots/: read-only, filtered."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from qvp_site.db import partitions
from tests.fixtures.trading import T0
from tests.fixtures.trading_api import iso
from trading.models import PortfolioSnapshot

D = Decimal


def test_snapshots_are_read_only_and_filter(alice, desks):
    partitions.prepare_load("trading_portfoliosnapshot", T0, T0 + timedelta(days=3))
    for account in (desks["alpha"], desks["beta"]):
        for day in range(3):
            PortfolioSnapshot.objects.create(
                account=account,
                ts=T0 + timedelta(days=day),
                currency="USD",
                cash=D(100),
                market_value=D(day),
                nav=D(100 + day),
                gross_exposure=D(day),
                net_exposure=D(day),
            )
    url = f"/api/v1/portfolio/snapshots/?account={desks['alpha'].id}&since={iso(T0)}"
    rows = alice.get(url + f"&until={iso(T0 + timedelta(days=2))}").json()["results"]
    assert [D(r["nav"]) for r in rows] == [D(101), D(100)]
    assert alice.post("/api/v1/portfolio/snapshots/", {}, format="json").status_code == 405
