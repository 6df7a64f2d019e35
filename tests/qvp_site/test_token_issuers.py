"""Who may make an API token for whom: a user for themselves; for another user, the superuser
alone (a token acts as its user: add_apitoken must not let a staff user act as the superuser)."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from qvp_site.models import ApiToken
from qvp_site.tokens import may_issue

ADD = "/admin/qvp_site/apitoken/add/"


@pytest.fixture
def root(db):
    return get_user_model().objects.create_superuser("root", password="pw-root-1234")


@pytest.fixture
def staff(db):
    """Staff with every permission on tokens."""
    user = get_user_model().objects.create_user("sam", password="pw-sam-1234", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(content_type__model="apitoken"))
    return user


def test_staff_are_not_offered_the_user_field(client, staff):
    client.force_login(staff)
    response = client.get(ADD)
    assert response.status_code == 200
    assert "user" not in response.context["adminform"].form.fields
    assert set(response.context["adminform"].form.fields) == {"name", "expires_at"}


def test_staff_cannot_make_a_token_for_the_superuser(client, staff, root):
    client.force_login(staff)
    response = client.post(ADD, {"user": root.pk, "name": "as-root"}, follow=True)
    assert response.status_code == 200
    # The user posted is not a field of the form: the token is the requester's own.
    assert not ApiToken.objects.filter(user=root).exists()
    assert ApiToken.objects.get(name="as-root").user == staff


def test_the_superuser_makes_a_token_for_another_user(client, staff, root):
    client.force_login(root)
    assert "user" in client.get(ADD).context["adminform"].form.fields
    client.post(ADD, {"user": staff.pk, "name": "for-sam"}, follow=True)
    token = ApiToken.objects.get(name="for-sam")
    assert (token.user, token.created_by) == (staff, "root")


def test_the_rule(staff, root):
    other = get_user_model().objects.create_user("other")
    allowed = [(staff, staff), (root, staff), (root, root)]
    assert all(may_issue(requester, user) for requester, user in allowed)
    assert not any(may_issue(staff, user) for user in (root, other))
    staff.is_active = False
    assert not may_issue(staff, staff)


def test_staff_revoke_their_own_tokens_only(client, staff, root):
    theirs = ApiToken.objects.create(user=root, name="root's", prefix="rrrrrrrr", digest="a" * 64)
    own = ApiToken.objects.create(user=staff, name="sam's", prefix="ssssssss", digest="b" * 64)
    client.force_login(staff)
    client.post(
        "/admin/qvp_site/apitoken/",
        {"action": "revoke_tokens", "_selected_action": [theirs.pk, own.pk]},
    )
    theirs.refresh_from_db()
    own.refresh_from_db()
    assert theirs.revoked_at is None
    assert own.revoked_at is not None
