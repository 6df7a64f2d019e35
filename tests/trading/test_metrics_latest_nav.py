"""trading_metrics' nav, daily_pnl and snapshot_at are the account's latest snapshot's, whatever
its day (trading 0019): before the day's 20:05 snapshot they are yesterday's, not NULL. Row-level
security still decides whose: a reader sees the snapshots of the accounts they may see only."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from qvp_site.db.partitions import prepare_load
from trading.models import Account, PortfolioSnapshot

pytestmark = pytest.mark.django_db(transaction=True)

COLUMNS = "account, nav, daily_pnl, snapshot_at"


def snapshot(account: Account, ts: datetime, nav: str, daily_pnl: str | None) -> None:
    PortfolioSnapshot.objects.create(
        account=account, ts=ts, currency="USD", cash=Decimal(nav), market_value=Decimal(0),
        nav=Decimal(nav), gross_exposure=Decimal(0), net_exposure=Decimal(0),
        daily_pnl=None if daily_pnl is None else Decimal(daily_pnl),
    )  # fmt: skip


@pytest.fixture
def snapshots(desks) -> dict:
    """alpha: snapshots of the last two evenings, none today, and one valued an hour from now
    (taken with a later --as-of); beta: yesterday's and one a minute ago; gamma (no desk):
    none. Returns the moments, by name."""
    now = timezone.now()
    evening = now.replace(hour=20, minute=5, second=0, microsecond=0) - timedelta(days=1)
    moments = {
        "alpha": evening,
        "alpha_before": evening - timedelta(days=1),
        "alpha_future": now + timedelta(hours=1),
        "beta_yesterday": evening,
        "beta": now - timedelta(minutes=1),
    }
    prepare_load("trading_portfoliosnapshot", min(moments.values()), max(moments.values()))
    snapshot(desks["alpha"], moments["alpha_before"], "1000.5", None)
    snapshot(desks["alpha"], moments["alpha"], "1012.25", "11.75")
    snapshot(desks["alpha"], moments["alpha_future"], "9999", "8986.75")
    snapshot(desks["beta"], moments["beta_yesterday"], "500", "-3")
    snapshot(desks["beta"], moments["beta"], "480", "-20")
    Account.objects.create(name="gamma")
    return moments


def expected(moments: dict, *names: str) -> list[tuple]:
    latest = {
        "alpha": (Decimal("1012.25"), Decimal("11.75"), moments["alpha"]),
        "beta": (Decimal("480"), Decimal("-20"), moments["beta"]),
        "gamma": (None, None, None),
    }
    return [(name, *latest[name]) for name in names]


def test_nav_is_the_latest_snapshots_whatever_its_day(snapshots):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {COLUMNS} FROM trading_metrics ORDER BY account")
        assert cursor.fetchall() == expected(snapshots, "alpha", "beta", "gamma")


@pytest.mark.parametrize(
    ("user", "accounts"),
    [
        ("alice", ["alpha"]),  # alpha's desk
        ("bob", ["beta"]),  # beta's desk
        ("carol", []),  # no desk: no account, so no snapshot either
        ("audrey", ["alpha", "beta", "gamma"]),  # an auditor sees every account
    ],
)
def test_a_reader_sees_the_snapshots_of_their_accounts_only(
    snapshots, desks, connect_as_app, user, accounts
):
    desks["carol"] = get_user_model().objects.create_user("carol", password="pw-carol-1234")
    conn = connect_as_app()
    with conn.transaction():
        conn.execute("SELECT set_config('qvp.user_id', %s, true)", [str(desks[user].pk)])
        seen = conn.execute(f"SELECT {COLUMNS} FROM trading_metrics ORDER BY account").fetchall()
    assert seen == expected(snapshots, *accounts)


def test_the_read_only_role_sees_every_accounts_nav(snapshots, app_role_password):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL ROLE trading_readonly")
        cursor.execute(f"SELECT {COLUMNS} FROM trading_metrics ORDER BY account")
        seen = cursor.fetchall()
        transaction.set_rollback(True)
    assert seen == expected(snapshots, "alpha", "beta", "gamma")
