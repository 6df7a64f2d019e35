"""Records scoped by account, for trading's API and risk's: lists hold the accounts the user
may see (``visible_to``), changes need an account the user may trade (``tradable_by``, which no
auditor passes), and the database's row-level security applies the same rule again. An account
the user may not see is refused as unknown, so that none is revealed.
"""

from __future__ import annotations

from typing import Any, cast

from django.db.models import QuerySet
from rest_framework import permissions, serializers
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.views import APIView

from qvp_site.api import (
    MAX_ID,
    PageNumberPagination,
    QueriedViewSet,
    ReadOnlyForAuditors,
    requesting_user,
)
from trading.models import Account
from trading.querysets import AccountScopedQuerySet

# Refusals that conflict with a record's state rather than being bad data: answered 409.
CONFLICT_RULES = frozenset({"order_legal_transition", "execution_superseded_once"})


class VisibleAccountField(serializers.IntegerField):
    """An account id the user may see; refuses others as unknown, so none is revealed."""

    def __init__(self, **kwargs: Any):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def run_validation(self, data: Any = serializers.empty) -> Account:
        pk = super().run_validation(data)
        visible = Account.objects.visible_to(requesting_user(self))
        account: Account | None = visible.filter(pk=pk).first()
        if account is None:
            raise serializers.ValidationError(f"no account {pk} that you may see")
        return account


class TradableAccountField(serializers.PrimaryKeyRelatedField[Account]):
    """An account the user may trade; others are refused as unknown, so none is revealed."""

    default_error_messages = {"does_not_exist": "no account {pk_value} that you may trade"}

    def __init__(self, **kwargs: Any):
        super().__init__(queryset=Account.objects.all(), **kwargs)

    def get_queryset(self) -> QuerySet[Any]:
        return Account.objects.tradable_by(requesting_user(self))


class AccountQuery(serializers.Serializer[Any]):
    account = VisibleAccountField(required=False, help_text="an account id")


class TradesTheAccount(permissions.BasePermission):
    """A change to a record (cancel, bust) needs its account tradable by the user."""

    message = "you may not trade this account"

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        tradable = Account.objects.tradable_by(request.user)
        return tradable.filter(pk=obj.account_id).exists()


class TradesSomeAccount(permissions.BasePermission):
    """A write to account-scoped records needs an account the user may trade: a user whose
    groups grant none (nor an auditor) is refused every write up front, naming no account."""

    message: Any = {"detail": "you may trade no account", "rule": "trades_an_account"}

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        return Account.objects.tradable_by(request.user).exists()


class ScopedViewSet(QueriedViewSet):
    """Records of the accounts the user may see, filtered by a validated query."""

    permission_classes = [
        permissions.IsAuthenticated,
        ReadOnlyForAuditors,
        TradesSomeAccount,
        TradesTheAccount,
    ]
    pagination_class: type[BasePagination] | None = PageNumberPagination
    conflict_rules = CONFLICT_RULES

    def visible(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        user = self.request.user
        if user.is_authenticated and user.is_active and not user.is_superuser:
            # AccountScopedQuerySet.visible_to's rule, with "is the user an auditor" asked
            # inside the list's own statement rather than by a query of its own first.
            return rows.filter(account__in=Account.objects.readable_by(user).values("pk"))
        # Every scoped model's manager is an AccountScopedQuerySet's (trading/models.py).
        scoped: AccountScopedQuerySet = cast(AccountScopedQuerySet, rows)
        return scoped.visible_to(user)
