"""Which accounts a page shows: those the user may read, narrowed by ``?account=``."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.http import HttpRequest

from trading.models import Account


@dataclass(frozen=True)
class AccountScope:
    choices: list[Account]  # every account the user may read, for the filter's menu
    selected: Account | None  # the one asked for, or None for all of them

    def narrow(self, queryset: QuerySet) -> QuerySet:
        """``queryset`` (account-scoped, already ``visible_to`` the user) to the selection."""
        return queryset if self.selected is None else queryset.filter(account=self.selected)


def account_scope(request: HttpRequest) -> AccountScope:
    """The user's accounts and the one chosen by ``?account=<id>``; an id the user may not read
    (or not a number) selects nothing rather than revealing whether it exists."""
    choices = list(Account.objects.visible_to(request.user).order_by("name"))
    wanted = request.GET.get("account", "")
    selected = next((a for a in choices if str(a.pk) == wanted), None)
    return AccountScope(choices, selected)
