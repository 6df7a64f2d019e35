"""Who writes market data: the group ``operators`` (made by marketdata/0006, its permissions
kept by a post_migrate handler), never a user without the model's permission nor an auditor."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps as global_apps
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection

from marketdata.models import DailyBar, Ingest, MinuteBar
from qvp_site.operators import OPERATORS, codenames, grant_operators_permissions
from tests.clients import client_of

URL = "/api/v1/bars/"
BAR = {"ts": "2024-05-13T14:00:00Z", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5}


def held(group: Group) -> set[str]:
    return set(group.permissions.values_list("codename", flat=True))


def user(name: str, *groups: str, perms: tuple[str, ...] = ()):
    made = get_user_model().objects.create_user(name, password=f"pw-{name}-1234")
    made.groups.add(*(Group.objects.get_or_create(name=g)[0] for g in groups))
    made.user_permissions.add(*Permission.objects.filter(codename__in=perms))
    return made


def post(who, timeframe: str = "1m"):
    body = {"symbol": "AAPL", "timeframe": timeframe, "bars": [BAR]}
    return client_of(who).post(URL, body, format="json")


def written() -> tuple[int, int, int]:
    return MinuteBar.objects.count(), DailyBar.objects.count(), Ingest.objects.count()


def test_the_operators_group_holds_the_market_data_write_permissions(db):
    group = Group.objects.get(name=OPERATORS)
    assert held(group) == set(codenames())
    assert {"add_minutebar", "change_dailybar", "add_instrument", "add_ingest"} <= held(group)
    assert not {c for c in held(group) if c.startswith("delete_")}


def test_post_migrate_gives_the_group_back_after_a_flush(db):
    Group.objects.filter(name=OPERATORS).delete()
    grant_operators_permissions(global_apps.get_app_config("marketdata"))
    assert held(Group.objects.get(name=OPERATORS)) == set(codenames())


def test_the_migration_grants_what_exists(db):
    migration = importlib.import_module("marketdata.migrations.0006_operators_group")
    Group.objects.filter(name=OPERATORS).delete()
    with connection.schema_editor() as editor:
        migration.create_operators(global_apps, editor)
    # The models of its day (listings came later: post_migrate grants those).
    granted = {f"{a}_{m}" for m in migration.MODELS for a in migration.ACTIONS}
    assert held(Group.objects.get(name=OPERATORS)) == granted
    assert granted < set(codenames())


def test_an_operator_writes_bars(instrument, partitioned_for):
    response = post(user("olga", OPERATORS))
    assert response.status_code == 201, response.content
    assert written() == (1, 0, 1)


@pytest.mark.parametrize(
    ("groups", "rule"),
    [((), "model_permission"), (("auditors", OPERATORS), "auditors_read_only")],
    ids=["no group", "auditor and operator"],
)
def test_others_are_refused_and_nothing_is_written(instrument, partitioned_for, groups, rule):
    response = post(user("eve", *groups))
    assert response.status_code == 403
    assert response.json()["rule"] == rule
    assert set(response.json()) == {"detail", "rule"}
    assert written() == (0, 0, 0)


def test_the_permission_is_the_written_tables(instrument, partitioned_for):
    """Minute bars' permissions write minute bars, not daily ones; an upsert overwrites, so
    add alone is not enough."""
    minutes = user("min", perms=("add_minutebar", "change_minutebar", "add_ingest"))
    refused = post(minutes, "1d")
    assert (refused.status_code, written()) == (403, (0, 0, 0))
    assert "marketdata.add_dailybar" in refused.json()["detail"]
    assert post(minutes, "1m").status_code == 201
    adder = user("add", perms=("add_minutebar", "add_ingest"))
    assert post(adder, "1m").status_code == 403
    assert written() == (1, 0, 1)
