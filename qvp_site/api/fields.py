"""Fields every app's API reads the same way: times, finite numbers and database ids.

Records named by text are the owning app's fields: a symbol names an instrument only on a
date (``marketdata.fields``); qvp_site imports no app.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from rest_framework import serializers
from rest_framework.request import Request

# Database keys are bigint: a larger id in a request is simply not found, never a query error.
MAX_ID = 2**63 - 1
# Times the API accepts: far enough out for any history, never near datetime's limits.
EARLIEST, LATEST = datetime(1800, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time or date, UTC unless it carries an offset."""

    # A "+" left unencoded in a query string arrives as a space: "...T09:30:00 01:00".
    _SPACED_OFFSET = re.compile(r" (\d\d:?\d\d)$")

    def to_internal_value(self, value: Any) -> datetime:
        if isinstance(value, str):
            value = self._SPACED_OFFSET.sub(r"+\1", value.strip())
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment < LATEST:
            raise serializers.ValidationError(
                f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
            )
        return moment


class FiniteFloatField(serializers.FloatField):
    """A float that is a number: NaN and the infinities, which PostgreSQL would store, are
    refused."""

    def to_internal_value(self, data: Any) -> float:
        value = super().to_internal_value(data)
        if not math.isfinite(value):
            raise serializers.ValidationError("must be a finite number")
        return value


def id_field(**kwargs: Any) -> serializers.IntegerField:
    """A database id: a positive bigint."""
    return serializers.IntegerField(min_value=1, max_value=MAX_ID, **kwargs)


def as_id(value: object) -> int | None:
    """A database id from JSON input (a number, or digits), else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def requesting_user(
    field: serializers.Field[Any, Any, Any, Any],
) -> AbstractBaseUser | AnonymousUser:
    """The user a serializer field validates for (from the view's request)."""
    request: Request = field.context["request"]
    return request.user
