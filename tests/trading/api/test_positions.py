"""/api/v1/positions/: read-only, filtered by account."""

from __future__ import annotations

from decimal import Decimal

from tests.clients import client_of

D = Decimal


def test_positions_are_read_only_and_filter_by_account(wall):
    alice = client_of(wall["alice"])
    rows = alice.get(f"/api/v1/positions/?account={wall['alpha'].id}").json()["results"]
    assert [(r["instrument"], D(r["quantity"])) for r in rows] == [("AAPL", D(50))]
    assert alice.post("/api/v1/positions/", {}, format="json").status_code == 405
    assert alice.delete(f"/api/v1/positions/{rows[0]['id']}/").status_code == 405
