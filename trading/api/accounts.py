"""``/api/v1/accounts/``: the accounts the user's groups grant; superusers create them."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from qvp_site.api import PageNumberPagination, RefusalsAsResponses
from trading.models import Account


class SuperusersCreate(permissions.BasePermission):
    message: Any = {"detail": "only superusers create accounts", "rule": "superusers_create"}

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in permissions.SAFE_METHODS or request.user.is_superuser


class AccountSerializer(serializers.ModelSerializer[Account]):
    groups = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        help_text="the groups whose members see and trade the account",
    )
    base_currency = serializers.RegexField(r"^[A-Z]{3}$", max_length=3, default="USD")

    class Meta:
        model = Account
        fields = ["id", "name", "base_currency", "groups", "created_at"]
        read_only_fields = ["id", "created_at"]


@extend_schema_view(list=extend_schema(description="The accounts you may see."))
class AccountViewSet(
    RefusalsAsResponses,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Account],
):
    """Accounts the user's groups grant (every account for superusers and auditors);
    superusers create them."""

    queryset = Account.objects.prefetch_related("groups")
    serializer_class = AccountSerializer
    pagination_class = PageNumberPagination
    permission_classes = [permissions.IsAuthenticated, SuperusersCreate]

    def get_queryset(self) -> QuerySet[Any]:
        # all() first: visible_to() returns the queryset itself to those who read everything,
        # and the class attribute's cache must never be shared between requests.
        return self.queryset.all().visible_to(self.request.user)
