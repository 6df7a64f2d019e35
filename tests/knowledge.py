"""Moments between commits, for tests of what was known when: each load's rows are known from
its transaction, so a test notes a moment strictly between two commits to read as known then."""

from __future__ import annotations

import time
from datetime import datetime

from django.utils import timezone


def between_commits() -> datetime:
    """A moment strictly after what committed before the call and before what commits after."""
    time.sleep(0.01)
    moment = timezone.now()
    time.sleep(0.01)
    return moment
