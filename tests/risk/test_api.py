"""The risk API: validation naming the field, scoping by account (querysets and row-level
security), limits, alerts acknowledged and resolved, volatility and exposures."""

from __future__ import annotations

import pytest

from risk.models import RiskLimit
from tests.clients import client_of
from tests.risk.conftest import day

URLS = [
    "/api/v1/risk/metrics/",
    "/api/v1/risk/limits/",
    "/api/v1/risk/alerts/",
    "/api/v1/risk/exposures/",
]


@pytest.fixture(params=["querysets", "row-level security"])
def wall(request, db_role, books):
    """Scoping tests run as the owner and again as trading_app under row-level security
    (``db_role``: on Citus the books are committed before the role changes)."""
    if request.param == "row-level security":
        request.getfixturevalue("as_app_role")
    return books


def names(wall, response) -> set[str]:
    assert response.status_code == 200, response.content
    ids = {row["account"] for row in response.json()["results"]}
    return {name for name in ("alpha", "beta") if wall[name].id in ids}


@pytest.mark.parametrize("url", [*URLS, "/api/v1/risk/volatility/", "/api/v1/risk/var/"])
def test_anonymous_refused(client, url):
    assert client.get(url).status_code in (401, 403)


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize(
    ("user", "expected"),
    [("alice", {"alpha"}), ("bob", {"beta"}), ("audrey", {"alpha", "beta"})],
)
def test_each_user_sees_their_accounts(wall, url, user, expected):
    assert names(wall, client_of(wall[user]).get(url)) == expected


def test_var_on_demand(wall):
    alice = client_of(wall["alice"])
    response = alice.get(
        "/api/v1/risk/var/",
        {
            "account": wall["alpha"].id,
            "confidence": 0.8,
            "lookback": 5,
            "as_of": day(5).isoformat(),
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    value = body["portfolio_value"]
    assert (body["method"], body["observations"]) == ("historical", 5)
    assert body["var"] == pytest.approx(0.026 * value)
    assert body["cvar"] == pytest.approx(0.05 * value)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": "nan"}, "confidence"),
        ({"lookback": 0}, "lookback"),
        ({"method": "astrology"}, "method"),
        ({"as_of": "yesterday"}, "as_of"),
    ],
)
def test_var_refuses_bad_input_naming_the_field(books, params, field):
    response = client_of(books["alice"]).get(
        "/api/v1/risk/var/", {"account": books["alpha"].id, **params}
    )
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_var_of_an_account_not_yours(wall):
    response = client_of(wall["alice"]).get("/api/v1/risk/var/", {"account": wall["beta"].id})
    assert response.status_code == 400
    assert "no account" in response.json()["account"][0]
    response = client_of(wall["alice"]).get("/api/v1/risk/var/")
    assert list(response.json()) == ["account"]


def test_limits_created_for_your_accounts_only(wall):
    alice = client_of(wall["alice"])
    limit = {"metric": "var_historical", "threshold": 5000, "severity": "warning"}
    created = alice.post("/api/v1/risk/limits/", {"account": wall["alpha"].id, **limit})
    assert created.status_code == 201, created.content
    refused = alice.post("/api/v1/risk/limits/", {"account": wall["beta"].id, **limit})
    assert (refused.status_code, list(refused.json())) == (400, ["account"])
    auditor = client_of(wall["audrey"])
    assert (
        auditor.post("/api/v1/risk/limits/", {"account": wall["alpha"].id, **limit}).status_code
        == 403
    )
    patched = alice.patch(f"/api/v1/risk/limits/{created.json()['id']}/", {"threshold": 6000})
    assert patched.json()["threshold"] == 6000
    assert alice.delete(f"/api/v1/risk/limits/{created.json()['id']}/").status_code == 204


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "luck"}, "metric"),
        ({"threshold": "NaN"}, "threshold"),
        ({"direction": "sideways"}, "direction"),
        ({"severity": "apocalyptic"}, "severity"),
    ],
)
def test_limits_refuse_bad_input(books, change, field):
    body = {"account": books["alpha"].id, "metric": "beta", "threshold": 2, **change}
    response = client_of(books["alice"]).post("/api/v1/risk/limits/", body)
    assert response.status_code == 400
    assert list(response.json()) == [field]


def test_limit_with_alerts_is_deactivated_not_deleted(books):
    limit = RiskLimit.objects.get(account=books["alpha"])
    response = client_of(books["alice"]).delete(f"/api/v1/risk/limits/{limit.id}/")
    assert response.status_code == 409
    assert response.json()["rule"] == "risk_limit_has_alerts"


def test_acknowledge_and_resolve(wall):
    alert = wall["alpha_alert"]  # read before the test's role changed (nobody is declared)
    alice, bob = client_of(wall["alice"]), client_of(wall["bob"])
    url = f"/api/v1/risk/alerts/{alert.id}"
    assert bob.post(f"{url}/acknowledge/").status_code == 404  # not bob's to see
    assert client_of(wall["audrey"]).post(f"{url}/acknowledge/").status_code == 403
    acked = alice.post(f"{url}/acknowledge/")
    assert acked.status_code == 200, acked.content
    assert (acked.json()["state"], acked.json()["acknowledged_by"]) == ("acknowledged", "alice")
    again = alice.post(f"{url}/acknowledge/")
    assert again.status_code == 409
    resolved = alice.post(f"{url}/resolve/", {"resolution": "hedged with SPY puts"})
    assert resolved.status_code == 200
    body = resolved.json()
    assert (body["state"], body["resolved_by"], body["resolution"]) == (
        "resolved",
        "alice",
        "hedged with SPY puts",
    )
    assert body["resolved_at"] is not None
    assert alice.post(f"{url}/resolve/").status_code == 409


def test_alerts_filtered_by_state_and_severity(books, django_assert_max_num_queries):
    audrey = client_of(books["audrey"])
    with django_assert_max_num_queries(8):
        rows = audrey.get("/api/v1/risk/alerts/", {"state": "open", "severity": "critical"}).json()
    assert len(rows["results"]) == 2
    assert audrey.get("/api/v1/risk/alerts/", {"severity": "info"}).json()["results"] == []
    bad = audrey.get("/api/v1/risk/alerts/", {"state": "forgotten"})
    assert (bad.status_code, list(bad.json())) == (400, ["state"])


def test_volatility_and_exposures(books):
    alice = client_of(books["alice"])
    rows = alice.get(
        "/api/v1/risk/volatility/", {"symbol": "HAND", "estimator": "parkinson"}
    ).json()
    assert [(r["symbol"], r["value"]) for r in rows["results"]] == [("HAND", 0.2)]
    bad = alice.get("/api/v1/risk/volatility/", {"symbol": "NOPE"})
    assert (bad.status_code, list(bad.json())) == (400, ["symbol"])
    bad = alice.get("/api/v1/risk/volatility/", {"estimator": "guess"})
    assert (bad.status_code, list(bad.json())) == (400, ["estimator"])
    exposures = alice.get("/api/v1/risk/exposures/", {"factor": "market"}).json()["results"]
    assert [(r["account"], r["exposure"]) for r in exposures] == [(books["alpha"].id, 1.1)]
