"""The floor's views (bench/support/floor_site.py): a token checked by one indexed lookup, a
list of 5 rows by ModelSerializer and a plain ListAPIView, one row inserted by ModelSerializer
and a plain CreateAPIView in a transaction of its own. Tables: bench/api_floor.py's
``FLOOR_TABLES``."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from django.db import connection, models, transaction
from django.http import HttpRequest, HttpResponse
from django.urls import path
from rest_framework import authentication, exceptions, generics, permissions, serializers
from rest_framework.request import Request


@dataclass(frozen=True)
class FloorUser:
    """Who a token names: all a view's IsAuthenticated asks of a user."""

    pk: int
    is_authenticated: bool = True


class FloorTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>``: the key's SHA-256 looked up by primary key, as
    qvp_site/tokens.py keeps keys (digests, never the keys)."""

    def authenticate(self, request: Request) -> tuple[FloorUser, None] | None:
        words = authentication.get_authorization_header(request).split()
        if len(words) != 2 or words[0].lower() != b"token":
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT user_id FROM floor_token WHERE digest = %s",
                [hashlib.sha256(words[1]).hexdigest()],
            )
            row = cursor.fetchone()
        if row is None:
            raise exceptions.AuthenticationFailed("invalid token")
        return FloorUser(row[0]), None

    def authenticate_header(self, request: Request) -> str:
        return "Token"


class Item(models.Model):
    symbol = models.TextField()
    name = models.TextField()
    price = models.DecimalField(max_digits=18, decimal_places=6)
    listed_at = models.DateTimeField()
    # Said, not implied: the type checker's settings (the site's) do not install this app.
    objects: models.Manager[Item] = models.Manager()

    class Meta:
        app_label = "support"
        managed = False
        db_table = "floor_item"

    def __str__(self) -> str:
        return self.symbol


class Fill(models.Model):
    exec_id = models.TextField()
    quantity = models.DecimalField(max_digits=18, decimal_places=6)
    price = models.DecimalField(max_digits=18, decimal_places=6)
    executed_at = models.DateTimeField()

    class Meta:
        app_label = "support"
        managed = False
        db_table = "floor_fill"

    def __str__(self) -> str:
        return self.exec_id


class ItemSerializer(serializers.ModelSerializer[Item]):
    class Meta:
        model = Item
        fields = "__all__"


class FillSerializer(serializers.ModelSerializer[Fill]):
    class Meta:
        model = Fill
        fields = "__all__"


class Items(generics.ListAPIView[Item]):
    authentication_classes = [FloorTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    queryset = Item.objects.order_by("id")[:5]
    serializer_class = ItemSerializer


class Fills(generics.CreateAPIView[Fill]):
    authentication_classes = [FloorTokenAuthentication]
    permission_classes = [permissions.IsAuthenticated]
    serializer_class = FillSerializer

    def perform_create(self, serializer: Any) -> None:
        with transaction.atomic():  # BEGIN, the INSERT, COMMIT (synchronous_commit as served)
            serializer.save()


def healthz(request: HttpRequest) -> HttpResponse:
    """What bench.support.served.wait_healthy asks for."""
    return HttpResponse("ok")


urlpatterns = [
    path("healthz", healthz),
    path("floor/items/", Items.as_view()),
    path("floor/fills/", Fills.as_view()),
]
