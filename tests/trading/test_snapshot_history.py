"""Portfolio snapshots keep their history (trading/sql/snapshots/0012.sql): a snapshot taken
again with other numbers, or deleted, keeps the row it replaces, whoever changes it and through
whichever door; ``trading_portfoliosnapshot_known_at(t)`` reads them as stored at t; no role
but the owner's trigger writes a revision, and no role backdates a snapshot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.contrib.auth.models import Group
from django.db import connection

from qvp_site.db import partitions
from tests.fixtures.trading import T0, fill, make_order
from tests.knowledge import between_commits
from tests.trading.test_snapshots import MINUTE, bar, deposit
from trading.models import PortfolioSnapshot, PortfolioSnapshotRevision
from trading.snapshots import take_snapshots

pytestmark = pytest.mark.django_db(transaction=True)

AT = T0 + 10 * MINUTE
KNOWN_AT_SQL = (
    "SELECT cash, market_value, nav FROM trading_portfoliosnapshot_known_at(%s)"
    " WHERE account_id = %s AND ts = %s"
)


@pytest.fixture(autouse=True)
def _partitions(db):
    for table in ("marketdata_minutebar", "trading_portfoliosnapshot"):
        partitions.prepare_load(table, T0 - timedelta(days=1), T0 + timedelta(days=1))


@pytest.fixture
def restated(account, instrument):
    """A snapshot taken, then taken again after a fill booked late: (first, second, a moment
    between the two)."""
    deposit(account, "1000", T0 - timedelta(hours=1))
    bar(instrument, T0 - MINUTE, "10")
    assert take_snapshots(AT, [account.id]) == 1
    first = PortfolioSnapshot.objects.get(account=account, ts=AT)
    between = between_commits()
    fill(make_order(account, instrument), 5, "10", at=T0 - MINUTE)
    assert take_snapshots(AT, [account.id]) == 1
    second = PortfolioSnapshot.objects.get(account=account, ts=AT)
    return first, second, between


def _known_at(account, moment) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(KNOWN_AT_SQL, [moment, account.id, AT])
        rows = cursor.fetchall()
    assert len(rows) <= 1
    return rows[0] if rows else None


def test_a_snapshot_taken_again_keeps_the_numbers_it_replaces(account, restated):
    first, second, between = restated
    assert (second.cash, second.market_value) == (Decimal(950), Decimal(50))
    assert second.pk == first.pk
    assert second.known_from > first.known_from
    revision = PortfolioSnapshotRevision.objects.get()
    assert revision.row_id == first.pk
    assert (revision.cash, revision.market_value, revision.nav) == (first.cash, 0, first.nav)
    assert (revision.known_at, revision.code_version) == (first.known_at, first.code_version)
    assert revision.known_from == first.known_from
    assert revision.known_until == second.known_from
    assert revision.change == "revised"
    assert revision.actor == "system:snapshot_portfolios"

    # As stored at each moment: not yet, the first numbers, the second.
    assert _known_at(account, first.known_from - timedelta(microseconds=1)) is None
    assert _known_at(account, between) == (first.cash, first.market_value, first.nav)
    assert _known_at(account, second.known_from) == (Decimal(950), Decimal(50), Decimal(1000))
    assert _known_at(account, None) == (Decimal(950), Decimal(50), Decimal(1000))


def test_taking_a_snapshot_again_with_the_same_numbers_changes_nothing(account, instrument):
    deposit(account, "1000", T0 - timedelta(hours=1))
    assert take_snapshots(AT, [account.id]) == 1
    first = PortfolioSnapshot.objects.get(account=account, ts=AT)
    between_commits()
    assert take_snapshots(AT, [account.id]) == 0
    again = PortfolioSnapshot.objects.get(account=account, ts=AT)
    assert (again.known_from, again.known_at) == (first.known_from, first.known_at)
    assert not PortfolioSnapshotRevision.objects.exists()


def test_a_snapshot_deleted_by_the_owner_is_kept_as_deleted(account, restated):
    first, second, between = restated
    PortfolioSnapshot.objects.filter(pk=second.pk).delete()
    gone = PortfolioSnapshotRevision.objects.get(change="deleted")
    assert (gone.cash, gone.known_from) == (Decimal(950), second.known_from)
    assert _known_at(account, None) is None
    assert _known_at(account, between) == (first.cash, first.market_value, first.nav)
    assert _known_at(account, gone.known_until - timedelta(microseconds=1))[0] == Decimal(950)


def test_revisions_are_never_changed_even_by_the_owner(restated):
    with pytest.raises(Exception, match="revisions are never changed"):
        PortfolioSnapshotRevision.objects.update(nav=0)
    with pytest.raises(Exception, match="revisions are never changed"):
        PortfolioSnapshotRevision.objects.all().delete()


def _app(connect_as_app) -> psycopg.Connection:
    app = connect_as_app()
    app.autocommit = True
    # A system actor: row-level security lets the application's jobs write every account.
    app.execute("SELECT set_config('qvp.actor', 'system:attacker', false)")
    return app


def test_the_app_role_cannot_rewrite_a_snapshot_without_leaving_its_old_numbers(
    account, restated, connect_as_app
):
    """An UPDATE in raw SQL, as trading_app: the trigger keeps the old row, stamps the change,
    names the role; known_from cannot be chosen, nor a snapshot deleted, nor a revision
    written, changed or removed."""
    first, second, between = restated
    app = _app(connect_as_app)
    app.execute(
        "UPDATE trading_portfoliosnapshot SET cash = 2000, nav = 2050 WHERE id = %s", [second.pk]
    )
    latest = PortfolioSnapshotRevision.objects.latest("known_until")
    assert (latest.cash, latest.actor) == (Decimal(950), "system:attacker")
    assert latest.db_role == "trading_app"
    assert _known_at(account, between)[0] == first.cash  # the first numbers still read then

    refusals = [
        ("UPDATE trading_portfoliosnapshot SET known_from = %s WHERE id = %s", [T0, second.pk]),
        ("DELETE FROM trading_portfoliosnapshot WHERE id = %s", [second.pk]),
        ("UPDATE trading_portfoliosnapshotrevision SET nav = 0", []),
        ("DELETE FROM trading_portfoliosnapshotrevision", []),
        ("TRUNCATE trading_portfoliosnapshotrevision", []),
        (
            "INSERT INTO trading_portfoliosnapshot (account_id, ts, currency, cash, market_value,"
            " nav, gross_exposure, net_exposure, unpriced, code_version, known_from)"
            " VALUES (%s, %s, 'USD', 1, 0, 1, 0, 0, '[]', '', %s)",
            [account.pk, AT + MINUTE, datetime(2000, 1, 1, tzinfo=UTC)],
        ),
        (
            "INSERT INTO trading_portfoliosnapshotrevision (row_id, account_id, ts, currency,"
            " cash, market_value, nav, gross_exposure, net_exposure, unpriced, code_version,"
            " known_from, known_until, change, actor, db_role)"
            " SELECT id, account_id, ts, currency, 0, 0, 0, 0, 0, '[]', '', %s, %s, 'revised',"
            " 'x', 'x' FROM trading_portfoliosnapshot",
            [T0, T0],
        ),
    ]
    for statement, params in refusals:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app.execute(statement, params)
    assert PortfolioSnapshotRevision.objects.count() == 2


def test_the_app_role_reads_only_the_revisions_of_accounts_it_may_see(
    account, restated, connect_as_app, django_user_model
):
    """Row-level security on the revisions follows the snapshots': a user of none of the
    account's groups reads neither its snapshots nor their old numbers; a member reads both."""
    desk = Group.objects.create(name="desk")
    account.groups.add(desk)
    member = django_user_model.objects.create_user("member", password="pw-member-12")
    member.groups.add(desk)
    outsider = django_user_model.objects.create_user("outsider", password="pw-outsider-1")
    app = connect_as_app()
    app.autocommit = True
    counts = (
        "SELECT (SELECT count(*) FROM trading_portfoliosnapshotrevision),"
        " (SELECT count(*) FROM trading_portfoliosnapshot_known_at(%s))"
    )
    for user, seen in ((outsider, (0, 0)), (member, (1, 1))):
        app.execute("SELECT set_config('qvp.user_id', %s, false)", [str(user.pk)])
        assert app.execute(counts, [restated[2]]).fetchone() == seen, user.username
