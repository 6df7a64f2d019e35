"""Which accounts a user may see or trade, as QuerySet methods.

The same rule is enforced again by the database's row-level security
(``trading/sql/security/0003.sql``): superusers see and trade every
account, the ``auditors`` group reads every account and changes none, everyone else sees and
trades the accounts their groups are granted. An auditor changes nothing, even where a group
would grant it.
"""

from __future__ import annotations

from django.db import models

# The auditors group is the site's (qvp_site/auditors.py), re-exported for this module's readers.
from qvp_site.auditors import AUDITORS, is_auditor
from qvp_site.db.asof import AsOfQuerySetMixin

__all__ = ["AUDITORS", "AccountQuerySet", "AccountScopedQuerySet", "is_auditor", "reads_everything"]


def reads_everything(user) -> bool:
    return user.is_active and (user.is_superuser or is_auditor(user))


class AccountQuerySet(models.QuerySet):
    def visible_to(self, user) -> AccountQuerySet:
        """Accounts ``user`` may read."""
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if reads_everything(user):
            return self.all()
        return self.filter(groups__user=user).distinct()

    def readable_by(self, user) -> AccountQuerySet:
        """``visible_to``'s rule for an active user who is no superuser, in one statement: all
        accounts for an auditor, else those the user's groups are granted; "is the user an
        auditor" asked inside the statement rather than by a query first (the API's lists)."""
        from django.contrib.auth.models import Group

        granted = self.model.groups.through.objects.filter(
            account=models.OuterRef("pk"), group__user=user
        )
        auditor = Group.objects.filter(name=AUDITORS, user=user)
        return self.filter(models.Q(models.Exists(granted)) | models.Q(models.Exists(auditor)))

    def tradable_by(self, user) -> AccountQuerySet:
        """Accounts ``user`` may change (orders, executions, cash): not an auditor's."""
        if not user.is_authenticated or not user.is_active or is_auditor(user):
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(groups__user=user).distinct()


class AccountScopedQuerySet(AsOfQuerySetMixin, models.QuerySet):
    """Records that belong to an account (orders, executions, positions, cash, snapshots);
    ``asof`` joins market data to them as of their times (qvp_site/db/asof.py)."""

    def visible_to(self, user) -> AccountScopedQuerySet:
        if not user.is_authenticated or not user.is_active:
            return self.none()
        if reads_everything(user):
            return self.all()
        from trading.models import Account

        # The user's accounts by their groups as a subquery (one statement, no duplicates
        # where two of the user's groups grant the same account).
        return self.filter(account__in=Account.objects.filter(groups__user=user).values("pk"))

    def for_account(self, account) -> AccountScopedQuerySet:
        return self.filter(account=account)
