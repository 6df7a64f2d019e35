"""Command-line values the signals commands share."""

from __future__ import annotations

from datetime import datetime

from django.core.management.base import CommandError
from django.utils.dateparse import parse_datetime


def parse_as_of(value: str | None) -> datetime | None:
    """``--as-of``: an ISO 8601 time with its zone, or None (now)."""
    if not value:
        return None
    moment = parse_datetime(value)
    if moment is None or moment.tzinfo is None:
        raise CommandError(f"--as-of: {value!r} is not an ISO 8601 time with a zone")
    return moment
