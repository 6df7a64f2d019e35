"""A blank ``?_to_field=`` on an admin record's page: Django looked the record up by a field
named "" (a 500); every registered ModelAdmin finds it by primary key instead."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.urls import reverse

from qvp_site.admin_access import BlankToFieldIsThePk
from trading.models import Account


@pytest.mark.parametrize("page", ["change", "delete"])
def test_a_blank_to_field_finds_the_record_by_its_primary_key(client, db, page):
    account = Account.objects.create(name="alpha")
    client.force_login(get_user_model().objects.create_superuser("root"))
    url = reverse(f"admin:trading_account_{page}", args=[account.pk])
    response = client.get(url, {"_to_field": ""})
    assert response.status_code == 200
    # The change form names its record "original", the delete confirmation "object".
    assert response.context.get("original", response.context.get("object")) == account


def test_every_registered_admin_finds_records_by_primary_key_for_a_blank_to_field():
    missing = [
        model._meta.label
        for model, model_admin in admin.site._registry.items()
        if not isinstance(model_admin, BlankToFieldIsThePk)
    ]
    assert not missing
