"""/api/v1/cash/: deposits, and what the cash ledger refuses."""

from __future__ import annotations

from decimal import Decimal

from tests.fixtures.trading_api import post

D = Decimal


def test_a_deposit_and_what_cash_refuses(alice, desks):
    alpha = desks["alpha"]
    deposit = post(
        alice, "/api/v1/cash/", {"account": alpha.id, "kind": "deposit", "amount": "500"}
    )
    assert (deposit["currency"], D(deposit["amount"]), deposit["execution"]) == (
        "USD",
        D(500),
        None,
    )
    refusals = [
        ({"kind": "trade", "amount": "5"}, "kind"),
        ({"kind": "fee", "amount": "-5"}, "kind"),
        ({"kind": "deposit", "amount": "-5"}, "amount"),
        ({"kind": "withdrawal", "amount": "5"}, "amount"),
        ({"kind": "adjustment", "amount": "0"}, "amount"),
        ({"kind": "deposit", "amount": "5", "currency": "usd"}, "currency"),
        ({"kind": "deposit", "amount": "NaN"}, "amount"),
    ]
    for body, field in refusals:
        answer = post(alice, "/api/v1/cash/", {"account": alpha.id, **body}, status=400)
        assert list(answer) == [field], (body, answer)
    listed = alice.get("/api/v1/cash/?kind=deposit").json()["results"]
    assert [D(c["amount"]) for c in listed] == [D(500)]
