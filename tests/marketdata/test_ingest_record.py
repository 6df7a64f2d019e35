"""A load's record (marketdata_ingest) cannot be rewritten (marketdata 0010): the revisions a
load kept name it, so what it says must stay the load's word.

Each test acts from the side that would break it: trading_app in raw SQL (``connect_as_app``), the
owner deleting, the loads themselves (``ingest_bars``, logged in as trading_app as the served
site is), a user deleted. Every change is in the audit log, with who made it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from psycopg import errors

from marketdata.models import Ingest
from qvp_site.db import roles
from qvp_site.models import AuditEntry
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db(transaction=True)

TABLE = "marketdata_ingest"
HEADER = "timestamp,open,high,low,close,volume"
SHA = "ab" * 32


@pytest.fixture
def alice():
    return get_user_model().objects.create_user("alice", password="pw-alice-1234")


@pytest.fixture
def running(alice) -> Ingest:
    """A load that runs, started by alice through the site (committed: trading_app sees it)."""
    return Ingest.objects.create(
        file_name="run.csv", path="/data/run.csv", kind="bars-1m", symbol="KEPT", user=alice
    )


@pytest.fixture
def finished(alice) -> Ingest:
    """A load that ended, as the pipeline ends one: its outcome filled in, status loaded."""
    ingest = Ingest.objects.create(
        file_name="done.csv", path="/data/done.csv", kind="bars-1m", symbol="KEPT", user=alice
    )
    Ingest.objects.filter(pk=ingest.pk).update(
        status="loaded", rows_read=5, inserted=5, sha256=SHA, finished_at=timezone.now()
    )
    return Ingest.objects.get(pk=ingest.pk)


def _stored(ingest: Ingest) -> dict:
    return Ingest.objects.filter(pk=ingest.pk).values().get()


def _entries(ingest: Ingest, operation: str) -> list[AuditEntry]:
    return list(
        AuditEntry.objects.filter(
            table_name=TABLE, row_key=str(ingest.pk), operation=operation
        ).order_by("id")
    )


# --- trading_app in raw SQL -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignment", "named"),
    [
        ("file_name = 'forged.csv'", "file_name never changes"),
        ("path = '/elsewhere/forged.csv'", "path never changes"),
        ("symbol = 'OTHER', kind = 'bars-1d'", "kind, symbol never changes"),
        ("started_at = started_at - interval '1 day'", "started_at never changes"),
        ("os_user = 'mallory'", "os_user never changes"),
        ("user_id = %(other)s", "user_id never changes"),
        ("inserted = 0, updated = 5", "is loaded: a finished load is final (inserted, updated"),
        ("sha256 = repeat('0', 64)", "is loaded: a finished load is final (sha256"),
        ("status = 'running'", "is loaded: a finished load is final (status"),
        ("error_summary = 'it failed'", "is loaded: a finished load is final (error_summary"),
    ],
)
def test_the_app_role_cannot_rewrite_a_finished_load(connect_as_app, finished, assignment, named):
    """Before marketdata 0010 trading_app could UPDATE every column of a finished load: name
    another file, user or digest, change its counts, or set it running again (merges under it
    are then accepted, marketdata/sql/revisions/0009.sql)."""
    other = get_user_model().objects.create_user("mallory", password="pw-mallory-1234")
    before = _stored(finished)
    message = rf"ingest {finished.pk}\b.*{re.escape(named)}"
    with pytest.raises(errors.CheckViolation, match=message) as raised:
        connect_as_app().execute(
            f"UPDATE {TABLE} SET {assignment} WHERE id = %(id)s",
            {"id": finished.pk, "other": other.pk},
        )
    assert raised.value.diag.constraint_name in {
        "ingest_identity_unchanged",
        "ingest_finished_final",
    }
    assert _stored(finished) == before
    assert len(_entries(finished, "UPDATE")) == 1  # the finish, nothing since


def test_what_identifies_a_running_load_never_changes(connect_as_app, running, alice):
    conn = connect_as_app()
    with pytest.raises(errors.CheckViolation, match="file_name never changes"):
        conn.execute(f"UPDATE {TABLE} SET file_name = 'forged.csv' WHERE id = %s", [running.pk])
    other = get_user_model().objects.create_user("mallory", password="pw-mallory-1234")
    with pytest.raises(errors.CheckViolation, match="user_id never changes"):
        conn.execute(f"UPDATE {TABLE} SET user_id = %s WHERE id = %s", [other.pk, running.pk])
    assert _stored(running)["file_name"] == "run.csv"
    assert _stored(running)["user_id"] == alice.pk


@pytest.mark.parametrize("which", ["running", "finished"])
def test_the_app_role_cannot_delete_a_load(connect_as_app, request, which):
    ingest = request.getfixturevalue(which)
    with pytest.raises(errors.InsufficientPrivilege):
        connect_as_app().execute(f"DELETE FROM {TABLE} WHERE id = %s", [ingest.pk])
    assert Ingest.objects.filter(pk=ingest.pk).exists()


@pytest.mark.parametrize("which", ["running", "finished"])
def test_the_owner_cannot_delete_a_load_either(request, which):
    """Nothing in the product deletes a load: the trigger refuses it to the owner too, naming
    the load (only dropping the trigger, which the catalog shows, would let it through)."""
    ingest = request.getfixturevalue(which)
    with (
        pytest.raises(IntegrityError, match=rf"ingest {ingest.pk} \(\w+\) is the record"),
        transaction.atomic(),
    ):
        Ingest.objects.filter(pk=ingest.pk).delete()
    assert Ingest.objects.filter(pk=ingest.pk).exists()


def test_the_app_role_has_insert_and_update_on_the_loads_but_not_delete(app_role_password):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%(role)s, %(table)s, 'INSERT'),"
            " has_table_privilege(%(role)s, %(table)s, 'UPDATE'),"
            " has_table_privilege(%(role)s, %(table)s, 'DELETE'),"
            " has_table_privilege(%(role)s, %(table)s, 'TRUNCATE')",
            {"role": roles.APP_ROLE, "table": TABLE},
        )
        assert cursor.fetchone() == (True, True, False, False)


def test_a_running_loads_outcome_is_written_and_each_change_audited(connect_as_app, running):
    """While a load runs its counts move and it ends; each change is in the audit log with the
    actor the transaction named (else the role), and once ended it is final."""
    conn = connect_as_app()
    with conn.transaction():
        conn.execute("SELECT set_config('qvp.actor', 'system:ingest_bars', true)")
        conn.execute(f"UPDATE {TABLE} SET rows_read = 10 WHERE id = %s", [running.pk])
    conn.execute(
        f"UPDATE {TABLE} SET rows_read = 20, inserted = 20, sha256 = %s, status = 'loaded'"
        " WHERE id = %s",
        [SHA, running.pk],
    )
    stored = _stored(running)
    assert (stored["status"], stored["rows_read"], stored["inserted"]) == ("loaded", 20, 20)
    first, second = _entries(running, "UPDATE")
    assert (first.actor, first.db_role) == ("system:ingest_bars", roles.APP_ROLE)
    assert (first.old_row["rows_read"], first.new_row["rows_read"]) == (0, 10)
    assert (second.actor, second.db_role) == (roles.APP_ROLE, roles.APP_ROLE)
    assert (second.old_row["status"], second.new_row["status"]) == ("running", "loaded")
    assert second.new_row["sha256"] == SHA
    with pytest.raises(errors.CheckViolation, match="a finished load is final"):
        conn.execute(f"UPDATE {TABLE} SET rows_read = 21 WHERE id = %s", [running.pk])


def test_an_update_that_changes_nothing_passes_on_a_finished_load(connect_as_app, finished):
    """Django's save() writes every column: a finished load saved as it stands is no change."""
    connect_as_app().execute(f"UPDATE {TABLE} SET status = status WHERE id = %s", [finished.pk])
    finished.save()
    assert _stored(finished)["status"] == "loaded"


# --- a user deleted -------------------------------------------------------------------------


def test_deleting_a_user_leaves_their_loads_without_a_user_and_the_log_says_who(
    finished, running, alice
):
    alice_id = alice.pk  # delete() forgets it
    alice.delete()
    for ingest in (finished, running):
        stored = _stored(ingest)
        assert stored["user_id"] is None
        last = _entries(ingest, "UPDATE")[-1]
        assert (last.old_row["user_id"], last.new_row["user_id"]) == (alice_id, None)
    assert _stored(finished)["status"] == "loaded"
    assert _entries(finished, "INSERT")[0].new_row["user_id"] == alice_id


# --- the loads themselves -------------------------------------------------------------------


@pytest.fixture
def as_app_login(app_role_password: str) -> Iterator[Callable[[], None]]:
    """Log Django's connection in as trading_app from the call on, as the served site's is;
    the owner's login comes back before the flush."""
    saved = dict(connection.settings_dict)

    def log_in() -> None:
        connection.close()
        connection.settings_dict.update(USER=roles.APP_ROLE, PASSWORD=app_role_password)

    yield log_in
    connection.close()
    connection.settings_dict.clear()
    connection.settings_dict.update(saved)


def _daily_file(path: Path, days: int, bad_day: int | None = None) -> Path:
    """``days`` daily bars from START; the one of ``bad_day`` has its high below its low."""
    rows = []
    for i in range(days):
        high, low = (90, 110) if i == bad_day else (110, 90)
        day = (START + timedelta(days=i)).strftime("%Y-%m-%d")
        rows.append(f"{day},100,{high},{low},105,{1000 + i}")
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _ingest_daily(path: Path) -> str:
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", "KEPT", "--timeframe", "1d", stdout=out)
    return out.getvalue()


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_ingest_bars_as_the_app_role_still_ends_loaded_or_refused(
    partitioned_for, as_app_login, tmp_path
):
    """The pipeline's own writes pass the rule: created running, finished once with every
    column saved (sha256 filled in at the end), as trading_app."""
    as_app_login()
    good = _daily_file(tmp_path / "good.csv", 5)
    assert "5 rows read, 5 inserted" in _ingest_daily(good)
    bad = _daily_file(tmp_path / "bad.csv", 3, bad_day=1)
    with pytest.raises(CommandError):
        _ingest_daily(bad)
    loaded, refused = Ingest.objects.filter(symbol="KEPT").order_by("started_at")
    assert (loaded.status, loaded.rows_read, loaded.inserted, loaded.sha256) == (
        "loaded",
        5,
        5,
        _sha256(good),
    )
    assert (refused.status, refused.inserted, refused.sha256) == ("refused", 0, _sha256(bad))
    assert refused.rejected >= 1
    assert refused.error_summary
    for ingest in (loaded, refused):
        (finish,) = _entries(ingest, "UPDATE")
        assert finish.db_role == roles.APP_ROLE
        assert (finish.old_row["status"], finish.new_row["status"]) == ("running", ingest.status)


def test_verify_audit_passes_after_loads(partitioned_for, tmp_path):
    _ingest_daily(_daily_file(tmp_path / "good.csv", 3))
    with pytest.raises(CommandError):
        _ingest_daily(_daily_file(tmp_path / "bad.csv", 3, bad_day=0))
    out = StringIO()
    call_command("verify_audit", stdout=out)
    assert out.getvalue().startswith("audit chain intact"), out.getvalue()


def test_verify_audit_names_a_load_rewritten_with_the_triggers_off(partitioned_for, finished):
    """The rule's trigger and the audit trigger dropped together by the owner: the rewrite
    shows as the live row unlike the last state the log records."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        try:
            cursor.execute(f"UPDATE {TABLE} SET inserted = 4 WHERE id = %s", [finished.pk])
        finally:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        call_command("verify_audit", stdout=out)
    assert TABLE in str(raised.value) + out.getvalue()
