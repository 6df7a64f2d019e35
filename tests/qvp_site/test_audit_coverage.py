"""What the audit chain covers beyond the books: who may see which account and act as whom.
Users (their flags, never their password hash), their groups and permissions, the groups an
account is granted to, API tokens (never their digest), each with the columns that matter only
and no entry per login or per use of a token."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection
from django.test import Client

from qvp_site.db import roles
from qvp_site.models import ApiToken, AuditEntry
from qvp_site.tokens import create_token, revoke
from trading.models import Account

PASSWORD = "pw-bob-12345678"


def entries(table: str, key: object) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(table_name=table, row_key=str(key)).order_by("id"))


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", password=PASSWORD)


def test_a_user_made_superuser_is_recorded_without_the_password_hash(bob):
    bob.is_superuser = True
    bob.is_staff = True
    bob.save()
    inserted, raised = entries("auth_user", bob.pk)
    assert (inserted.operation, raised.operation) == ("INSERT", "UPDATE")
    assert (raised.old_row["is_superuser"], raised.new_row["is_superuser"]) == (False, True)
    assert raised.new_row["is_staff"] is True
    for entry in (inserted, raised):
        assert "password" not in entry.new_row
        assert bob.password not in str(entry.new_row)


def test_a_login_and_a_password_change_write_no_entry(bob):
    before = len(entries("auth_user", bob.pk))
    assert Client().login(username="bob", password=PASSWORD)  # moves last_login
    bob.set_password("another-pw-98765")
    bob.save()
    assert len(entries("auth_user", bob.pk)) == before


def test_a_users_groups_and_permissions_are_recorded(bob):
    desk = Group.objects.create(name="desk")
    bob.groups.add(desk)
    view = Permission.objects.get(codename="view_account")
    bob.user_permissions.add(view)
    desk.permissions.add(view)
    bob.groups.remove(desk)
    (membership,) = {e.row_key for e in AuditEntry.objects.filter(table_name="auth_user_groups")}
    operations = [e.operation for e in entries("auth_user_groups", membership)]
    assert operations == ["INSERT", "DELETE"]
    granted = AuditEntry.objects.get(table_name="auth_user_user_permissions")
    assert granted.new_row == {**granted.new_row, "user_id": bob.pk, "permission_id": view.pk}
    assert AuditEntry.objects.filter(
        table_name="auth_group_permissions", new_row__group_id=desk.pk
    ).exists()


def test_the_groups_an_account_is_granted_to_are_recorded(db):
    desk = Group.objects.create(name="desk")
    account = Account.objects.create(name="alpha")
    account.groups.add(desk)
    account.groups.remove(desk)
    found = AuditEntry.objects.filter(table_name="trading_account_groups").order_by("id")
    assert [(e.operation, (e.new_row or e.old_row)["group_id"]) for e in found] == [
        ("INSERT", desk.pk),
        ("DELETE", desk.pk),
    ]


def test_tokens_made_and_revoked_are_recorded_without_digest_or_use(bob):
    token, _key = create_token(bob, "notebook", created_by="bob")
    ApiToken.objects.filter(pk=token.pk).update(last_used_at="2026-01-02T00:00:00Z")
    revoke(ApiToken.objects.filter(pk=token.pk), by="admin")
    made, revoked = entries("qvp_site_apitoken", token.pk)
    assert (made.operation, revoked.operation) == ("INSERT", "UPDATE")
    assert revoked.new_row["revoked_by"] == "admin"
    for entry in (made, revoked):
        assert "digest" not in entry.new_row
        assert "last_used_at" not in entry.new_row
        assert token.digest not in str(entry.new_row)


def test_the_read_only_role_sees_no_password_hash_or_digest_in_the_log(bob, app_role_password):
    token, _key = create_token(bob, "notebook")
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.READONLY_ROLE}")
        cursor.execute(
            "SELECT new_row::text FROM qvp_site_auditentry"
            " WHERE table_name IN ('auth_user', 'qvp_site_apitoken')"
        )
        rows = [row for (row,) in cursor.fetchall()]
        cursor.execute("RESET ROLE")
    assert len(rows) == 2
    assert not [row for row in rows if bob.password in row or token.digest in row]
