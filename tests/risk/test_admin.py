"""The risk admin: every page for operators and auditors, alerts filtered by severity and
state and acknowledged/resolved by actions, auditors changing nothing, traders scoped."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.urls import reverse

from risk.models import RiskAlert, RiskLimit

RISK_MODELS = [m._meta.model_name for m in apps.get_app_config("risk").get_models()]


def url(model: str, view: str = "changelist", *args) -> str:
    return reverse(f"admin:risk_{model}_{view}", args=args)


@pytest.fixture
def operator(books, client, django_user_model):
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    client.force_login(root)
    return client


@pytest.fixture
def auditor(books, client):
    audrey = books["audrey"]
    audrey.is_staff = True
    audrey.save()
    client.force_login(audrey)
    return client


@pytest.mark.parametrize("model", RISK_MODELS)
def test_every_list_renders(operator, model):
    assert operator.get(url(model)).status_code == 200


@pytest.mark.parametrize("model", RISK_MODELS)
def test_auditors_read_every_list(auditor, model):
    assert auditor.get(url(model)).status_code == 200


def test_alerts_filter_by_severity_and_state(operator, books):
    page = operator.get(url("riskalert"), {"severity__exact": "critical", "state__exact": "open"})
    assert len(page.context["cl"].result_list) == 2
    page = operator.get(url("riskalert"), {"severity__exact": "info"})
    assert len(page.context["cl"].result_list) == 0


def test_acknowledge_and_resolve_actions(operator, books):
    alert = books["alpha_alert"]
    operator.post(
        url("riskalert"), {"action": "acknowledge_alerts", "_selected_action": [alert.pk]}
    )
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by.username) == ("acknowledged", "root")
    operator.post(url("riskalert"), {"action": "resolve_alerts", "_selected_action": [alert.pk]})
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by.username) == ("resolved", "root")


def test_auditors_change_nothing(auditor, books):
    alert = books["alpha_alert"]
    response = auditor.post(
        url("riskalert"), {"action": "acknowledge_alerts", "_selected_action": [alert.pk]}
    )
    assert response.status_code == 403
    assert RiskAlert.objects.get(pk=alert.pk).state == "open"
    assert auditor.get(url("risklimit", "add")).status_code == 403
    limit = RiskLimit.objects.get(account=books["alpha"])
    response = auditor.post(url("risklimit", "change", limit.pk), {"threshold": 1})
    assert response.status_code == 403


def test_a_trader_sees_only_their_accounts_limits(books, client):
    alice = books["alice"]
    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="risk", codename__startswith="view_"),
        Permission.objects.get(codename="change_risklimit"),
    )
    client.force_login(alice)
    page = client.get(url("risklimit"))
    accounts = {limit.account.name for limit in page.context["cl"].result_list}
    assert accounts == {"alpha"}
    beta_limit = RiskLimit.objects.get(account=books["beta"])
    assert client.get(url("risklimit", "change", beta_limit.pk)).status_code == 302
