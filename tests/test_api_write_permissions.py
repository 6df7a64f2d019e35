"""Every unsafe method of every endpoint in the OpenAPI schema refuses a user with no
permission and an auditor, and writes nothing.

The schema is walked as the site serves it: an endpoint added later without a case here fails
``test_every_unsafe_operation_has_a_case``. Each case's request is a real write (the superuser
makes it: ``test_the_cases_are_writes_a_permitted_user_makes``), so that a refusal is the
permission's, not a bad body's. Two users are refused each:

* ``nobody``: logged in, in no group, with no permission: 403 from the model permission (data
  that belongs to no account: market data, signals, news, agents, backtests), from having no
  account to trade (records of an account), or from being no superuser (accounts);
* ``auditor``: in the group ``auditors`` and in a group holding every permission: 403, never a
  write, whatever the permissions say.

"Nothing written" is every table of the project and of ``auth`` unchanged, row for row (a hash
of its rows, so an overwrite counts as well as an insert), but the site's log of the refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from drf_spectacular.generators import SchemaGenerator

from marketdata.models import MinuteBar
from qvp_site.admin_access import project_app_labels
from qvp_site.db import partitions
from risk.models import RiskAlert, RiskLimit
from signals.models import Agent, Signal
from tests.clients import client_of
from tests.fixtures.trading import T0, fill, make_order
from tests.fixtures.trading_api import an_order, backtest, execution, iso
from trading.models import BacktestRun

UNSAFE = ("post", "put", "patch", "delete")
# The rules a refusal of these users names: the permission that refused, not a bad body's.
REFUSALS = {"model_permission", "auditors_read_only", "trades_an_account", "superusers_create"}
# POSTs that read: a similarity search takes its vector in the body; a backtest's rerun
# computes it again and compares. Every reader may search and rerun; neither writes anything
# (test_reads_by_post_write_nothing).
READS_BY_POST = {"vectors_features_search_create", "backtests_rerun_create"}
PARTITIONED = (
    "marketdata_minutebar",
    "marketdata_dailybar",
    "signals_signal",
    "signals_fusedsignal",
    "signals_newsarticle",
    "signals_agentmetric",
)


def _unsafe_operations() -> dict[str, tuple[str, str]]:
    """operationId: (method, path) of every unsafe operation the site serves."""
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return {
        operation["operationId"]: (method, path)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in UNSAFE
    }


OPERATIONS = _unsafe_operations()


@dataclass
class World:
    """The records the cases write to or name."""

    alpha: Any
    order: Any
    booked: Any
    agent: Agent
    limit: RiskLimit
    alert: RiskAlert


# Each case: the path's id and the body, for a write a permitted user makes.
Case = Callable[[World], tuple[int | None, Any]]
T = T0 + timedelta(minutes=5)
LIMIT = {"metric": "var_historical", "threshold": 5000, "severity": "warning"}
BAR = {"ts": iso(T), "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 100}
SIGNAL = {
    "agent": "momentum_agent",
    "symbol": "AAPL",
    "ts": iso(T),
    "strength": 0.4,
    "confidence": 0.7,
    "horizon": "1 00:00:00",
}
ARTICLE = {"ts": iso(T), "source": "Reuters", "headline": "Apple up", "symbols": ["AAPL"]}
METRIC = {"ts": iso(T), "latency_ms": 12.5, "errors": 1, "signals_emitted": 40}
CASES: dict[str, Case] = {
    "accounts_create": lambda w: (None, {"name": "gamma"}),
    "agents_create": lambda w: (None, {"name": "news_agent", "kind": "sentiment"}),
    "agents_update": lambda w: (w.agent.id, {"name": "momentum_agent", "kind": "other"}),
    "agents_partial_update": lambda w: (w.agent.id, {"active": False}),
    "agents_metrics_create": lambda w: (w.agent.id, METRIC),
    "backtests_create": lambda w: (None, backtest()),
    "bars_create": lambda w: (None, {"symbol": "AAPL", "timeframe": "1m", "bars": [BAR]}),
    "bars_delete_create": lambda w: (
        None,
        {"symbol": "AAPL", "timeframe": "1m", "start": iso(T0), "end": iso(T)},
    ),
    "cash_create": lambda w: (None, {"account": w.alpha.id, "kind": "deposit", "amount": "5"}),
    "executions_create": lambda w: (None, execution(w.order, 10, exec_id="x-9")),
    "executions_bust_create": lambda w: (w.booked.id, {}),
    "corporate_actions_create": lambda w: (
        None,
        {"symbol": "AAPL", "kind": "split", "ex_date": "2024-01-02", "ratio": "4:1"},
    ),
    "corporate_actions_withdraw_create": lambda w: (
        None,
        {"symbol": "AAPL", "kind": "cash_dividend", "ex_date": "2024-02-09"},
    ),
    "listings_create": lambda w: (
        None,
        {"symbol": "AAPL", "valid_from": "2024-01-02", "currency": "USD", "name": "Apple Inc"},
    ),
    "news_create": lambda w: (None, [ARTICLE]),
    "orders_create": lambda w: (None, an_order(w.alpha, client_order_id="c-9")),
    "orders_cancel_create": lambda w: (w.order.id, {}),
    "risk_alerts_acknowledge_create": lambda w: (w.alert.id, {}),
    "risk_alerts_resolve_create": lambda w: (w.alert.id, {"resolution": "hedged"}),
    "risk_limits_create": lambda w: (None, {"account": w.alpha.id, **LIMIT}),
    "risk_limits_update": lambda w: (w.limit.id, {"account": w.alpha.id, **LIMIT}),
    "risk_limits_partial_update": lambda w: (w.limit.id, {"threshold": 6000}),
    "risk_limits_destroy": lambda w: (w.limit.id, None),
    "signals_create": lambda w: (None, [SIGNAL]),
    "signals_fused_create": lambda w: (None, {"as_of": iso(T)}),
}


# The site's log, where the refusal itself is logged (a 403 is a warning): not data written.
LOGS = {"signals_systemlog"}


def _tables() -> list[str]:
    labels = {*project_app_labels(), "auth"}
    return sorted(
        model._meta.db_table
        for model in apps.get_models(include_auto_created=True)
        if model._meta.app_label in labels
        and model._meta.managed
        and not model._meta.proxy
        and model._meta.db_table not in LOGS
    )


def _snapshot() -> dict[str, tuple[int, str]]:
    """Each table's row count and a hash of its rows (order-independent)."""
    found = {}
    with connection.cursor() as cursor:
        for table in _tables():
            cursor.execute(
                "SELECT count(*), coalesce(md5(string_agg(md5(t::text), '' ORDER BY "
                f"md5(t::text))), '') FROM \"{table}\" AS t"
            )
            found[table] = cursor.fetchone()
    return found


@pytest.fixture
def world(desks, instrument) -> World:
    for table in PARTITIONED:
        partitions.prepare_load(table, T0 - timedelta(days=2), T0 + timedelta(days=2))
    # A bar for the deletion to delete.
    MinuteBar.objects.create(instrument=instrument, ts=T0, open=10, high=11, low=9, close=10)
    # A dividend for the withdrawal to withdraw.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'cash_dividend', '2024-02-09', NULL, 0.24, 'USD',"
            " NULL, NULL, NULL, NULL)",
            [instrument.pk],
        )
    order = make_order(desks["alpha"], instrument, quantity="100")
    booked = fill(order, 50, "10.00", exec_id="alpha-x1")
    agent = Agent.objects.create(name="momentum_agent", kind="momentum")
    # A running signal, which a fusion at T turns into a fused one.
    Signal.objects.create(
        agent=agent,
        instrument=instrument,
        ts=T0,
        direction=1,
        strength=0.4,
        confidence=0.7,
        horizon=timedelta(days=1),
    )
    limit = RiskLimit.objects.create(
        account=desks["alpha"], metric="gross_exposure", threshold=10, severity="critical"
    )
    alerted = RiskLimit.objects.create(
        account=desks["alpha"], metric="beta", threshold=1, severity="warning"
    )
    alert = RiskAlert.objects.create(
        limit=alerted,
        account=desks["alpha"],
        metric=alerted.metric,
        value=2,
        threshold=1,
        direction="above",
        severity="warning",
        measured_at=T0,
    )
    return World(desks["alpha"], order, booked, agent, limit, alert)


def _nobody():
    return get_user_model().objects.create_user("nobody", password="pw-nobody-1234")


def _auditor():
    """An auditor (staff, as auditors log into the admin) whose other group grants every
    permission there is."""
    user = get_user_model().objects.create_user(
        "auditor-all", password="pw-auditor-1234", is_staff=True
    )
    everything = Group.objects.create(name="everything")
    everything.permissions.set(Permission.objects.all())
    user.groups.add(Group.objects.get_or_create(name="auditors")[0], everything)
    return user


USERS = {"nobody": _nobody, "auditor": _auditor}


def _send(client, operation: str, world: World):
    method, path = OPERATIONS[operation]
    pk, body = CASES[operation](world)
    url = path.replace("{id}", str(pk)) if pk is not None else path
    return getattr(client, method)(url, body, format="json")


def test_every_unsafe_operation_has_a_case():
    """A new write endpoint must say here how it is refused (and the schema has them all)."""
    assert set(OPERATIONS) == set(CASES) | READS_BY_POST
    assert "bars_create" in OPERATIONS


@pytest.mark.parametrize("who", sorted(USERS))
@pytest.mark.parametrize("operation", sorted(CASES))
def test_unsafe_methods_refuse_users_without_permission_and_auditors(world, operation, who):
    client = client_of(USERS[who]())
    before = _snapshot()
    response = _send(client, operation, world)
    assert response.status_code == 403, (operation, response.content)
    body = response.json()
    assert set(body) == {"detail", "rule"}, body
    assert body["rule"] in REFUSALS, body
    if who == "auditor":
        assert body["rule"] == "auditors_read_only" or operation == "accounts_create", body
    assert _snapshot() == before, operation


@pytest.mark.parametrize("operation", sorted(CASES))
def test_the_cases_are_writes_a_permitted_user_makes(world, operation):
    """The control: the same request by the superuser is a write that lands, so the refusals
    above are the permissions', not a bad request's."""
    root = get_user_model().objects.create_superuser("root", password="pw-root-1234")
    client = client_of(root)
    before = _snapshot()
    response = _send(client, operation, world)
    assert 200 <= response.status_code < 300, (operation, response.content)
    assert _snapshot() != before, operation


@pytest.mark.parametrize("who", sorted(USERS))
@pytest.mark.parametrize("operation", sorted(READS_BY_POST))
def test_reads_by_post_write_nothing(world, operation, who):
    client = client_of(USERS[who]())
    # A run to rerun: one that records no known_at, refused (400) without a write.
    run = BacktestRun.objects.create(strategy="momentum-1h", period_start=T0, period_end=T)
    before = _snapshot()
    method, path = OPERATIONS[operation]
    url = path.replace("{id}", str(run.pk))
    response = getattr(client, method)(url, {"id": 1}, format="json")
    assert response.status_code in (200, 400), response.content
    assert _snapshot() == before
