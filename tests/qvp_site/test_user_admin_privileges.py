"""A staff user allowed to change users and groups cannot make anyone more powerful: the
superuser flag, staff status, groups, permissions and group permissions are granted by
superusers only, and only a superuser changes (or takes over, by setting a password) another
user."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission

USERS = "/admin/auth/user/"
GROUPS = "/admin/auth/group/"


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", password="pw-root-1234")


@pytest.fixture
def helpdesk(db):
    """Staff with every permission on users and groups, and nothing else."""
    user = get_user_model().objects.create_user("hd", password="pw-hd-1234", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="auth", content_type__model__in=["user", "group"]
        )
    )
    return user


def _user_form(user, **changes) -> dict:
    form = {
        "username": user.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "is_staff": "on" if user.is_staff else "",
        "last_login_0": "",
        "last_login_1": "",
        "date_joined_0": "2026-01-01",
        "date_joined_1": "00:00:00",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v != ""}


def test_staff_cannot_make_themselves_superuser_or_join_groups(client, helpdesk):
    desk = Group.objects.create(name="desk-a")
    client.force_login(helpdesk)
    response = client.post(
        f"{USERS}{helpdesk.pk}/change/",
        _user_form(
            helpdesk,
            is_superuser="on",
            groups=[desk.pk],
            user_permissions=list(Permission.objects.values_list("pk", flat=True)),
        ),
    )
    assert response.status_code in (200, 302)
    helpdesk.refresh_from_db()
    assert not helpdesk.is_superuser
    assert not helpdesk.groups.exists()
    assert helpdesk.user_permissions.count() == 8  # the user and group ones it was given


def test_staff_cannot_change_the_superuser_or_their_password(client, helpdesk, root):
    client.force_login(helpdesk)
    assert client.get(f"{USERS}{root.pk}/change/").status_code in (200, 403)
    response = client.post(
        f"{USERS}{root.pk}/password/",
        {"password1": "taken-over-1234", "password2": "taken-over-1234"},
    )
    assert response.status_code == 403
    assert client.post(f"{USERS}{root.pk}/delete/", {"post": "yes"}).status_code == 403
    root.refresh_from_db()
    assert root.check_password("pw-root-1234")


def test_staff_cannot_widen_a_groups_permissions(client, helpdesk):
    group = Group.objects.create(name="desk-b")
    client.force_login(helpdesk)
    every = list(Permission.objects.values_list("pk", flat=True))
    client.post(f"{GROUPS}{group.pk}/change/", {"name": "desk-b", "permissions": every})
    client.post(f"{GROUPS}add/", {"name": "mighty", "permissions": every})
    assert not group.permissions.exists()
    assert not Permission.objects.filter(group__name="mighty").exists()


def test_the_superuser_still_grants_privileges(client, helpdesk, root):
    desk = Group.objects.create(name="desk-c")
    client.force_login(root)
    client.post(f"{USERS}{helpdesk.pk}/change/", _user_form(helpdesk, groups=[desk.pk]))
    assert list(helpdesk.groups.all()) == [desk]


@pytest.mark.parametrize("target", ["trader", "operator"])
def test_staff_cannot_take_over_another_user_by_password(client, helpdesk, target):
    user = get_user_model().objects.create_user(target, password="pw-original-1234")
    user.groups.add(Group.objects.create(name=f"{target}s-desk"))
    client.force_login(helpdesk)
    form = {"password1": "taken-over-1234", "password2": "taken-over-1234",
            "usable_password": "true"}  # fmt: skip
    assert client.post(f"{USERS}{user.pk}/password/", form).status_code == 403
    assert (
        client.post(
            f"{USERS}{user.pk}/change/", _user_form(user, email="x@evil.example")
        ).status_code
        == 403
    )
    assert client.post(f"{USERS}{user.pk}/delete/", {"post": "yes"}).status_code == 403
    user.refresh_from_db()
    assert user.check_password("pw-original-1234")
    assert user.email == ""


def test_staff_change_their_own_record_but_not_its_privileges(client, helpdesk):
    client.force_login(helpdesk)
    response = client.post(
        f"{USERS}{helpdesk.pk}/change/", _user_form(helpdesk, email="hd@desk.example")
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    helpdesk.refresh_from_db()
    assert helpdesk.email == "hd@desk.example"
