"""Fields every app's API reads the same way: times, finite numbers, database ids, and
records named by a unique text (a symbol, a name).

Records are passed in by the app that owns them (``marketdata.fields.SymbolField`` is a
``NamedRecordField`` of instruments): qvp_site imports no app.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models
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


class NamedRecordField(serializers.CharField):
    """A record named by a unique text key; validates to the record, refusing unknown names."""

    def __init__(self, *, queryset: models.QuerySet[Any], key: str, noun: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.queryset, self.key, self.noun = queryset, key, noun

    def run_validation(self, data: Any = serializers.empty) -> models.Model:
        # Looked up after CharField's own checks, which refuse NUL characters PostgreSQL can't take.
        name = super().run_validation(data)
        record: models.Model | None = self.queryset.filter(**{self.key: name}).first()
        if record is None:
            raise serializers.ValidationError(f"unknown {self.noun} {name!r}")
        return record


class NamedRecordListField(serializers.CharField):
    """Comma-separated names of records; validates to the records in the order given."""

    def __init__(
        self, *, queryset: models.QuerySet[Any], key: str, noun: str, most: int, **kwargs: Any
    ):
        super().__init__(**kwargs)
        self.queryset, self.key, self.noun, self.most = queryset, key, noun, most

    def run_validation(self, data: Any = serializers.empty) -> list[models.Model]:
        text = super().run_validation(data)
        names = [n for n in dict.fromkeys(s.strip() for s in text.split(",")) if n]
        if not names or len(names) > self.most:
            raise serializers.ValidationError(
                f"give 1 to {self.most} {self.noun}s, comma-separated"
            )
        found = {
            getattr(r, self.key): r for r in self.queryset.filter(**{f"{self.key}__in": names})
        }
        unknown = [n for n in names if n not in found]
        if unknown:
            raise serializers.ValidationError(f"unknown {self.noun}s: {', '.join(unknown)}")
        return [found[n] for n in names]
