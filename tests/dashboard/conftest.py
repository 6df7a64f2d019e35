"""The demo data, seeded once for the dashboard's tests and emptied after them.

The pages are read by Django's test client (each test in a transaction rolled back after
it) and by a real browser, whose requests go to a server thread on other connections: so the
demo is committed, once for the package (seeding takes seconds), and flushed at its end so that
the rest of the suite starts from empty tables as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min
from django.test import override_settings

from marketdata.models import MinuteBar
from qvp_site.db.aggregates import refresh_table
from trading.models import Account
from trading.querysets import AUDITORS

DEMO_DAYS = 120
PASSWORD = "a-long-test-password"
FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass(frozen=True)
class Demo:
    operator: object  # a superuser: every account
    trader: object  # trades demo-macro only
    auditor: object  # reads everything, changes nothing
    macro: Account
    stat_arb: Account


@pytest.fixture(scope="package")
def demo(django_db_setup, django_db_blocker) -> Demo:
    with django_db_blocker.unblock():
        _refuse_a_database_not_made_for_tests()
        try:
            call_command("seed_demo", days=DEMO_DAYS, stdout=StringIO())
            # The hasher the tests use (tests/conftest.py): a login checks against it.
            with override_settings(PASSWORD_HASHERS=FAST_HASHERS):
                people = _people()
            yield people
        finally:
            _empty()


def _refuse_a_database_not_made_for_tests() -> None:
    """Seeding and flushing are for the test database: never the site's own, whatever the
    order fixtures were set up in (a selection of tests none of which asks for ``db``)."""
    name = connection.settings_dict["NAME"]
    if not str(name).startswith("test_"):
        pytest.fail(f"the demo fixture would seed and flush {name!r}, not a test database")


def _empty() -> None:
    """What the demo left: the bars' buckets in the aggregates first (a flush empties the
    model tables only, and the next instruments would reuse the demo's ids), then the rest."""
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    MinuteBar.objects.all().delete()
    if span["first"] is not None:
        refresh_table("marketdata_minutebar", span["first"], span["last"])
    call_command("flush", interactive=False, verbosity=0)


def _people() -> Demo:
    users = get_user_model()
    macro = Account.objects.get(name="demo-macro")
    desk = macro.groups.get()  # the demo's desk of the account
    trader = users.objects.create_user("trina", password=PASSWORD)
    trader.groups.add(desk)
    auditor = users.objects.create_user("audrey", password=PASSWORD, is_staff=True)
    auditor.groups.add(Group.objects.get_or_create(name=AUDITORS)[0])
    return Demo(
        operator=users.objects.create_superuser("operator", password=PASSWORD),
        trader=trader,
        auditor=auditor,
        macro=macro,
        stat_arb=Account.objects.get(name="demo-stat-arb"),
    )
