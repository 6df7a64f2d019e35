"""EnforceReference: a reference checked once per statement keeps a foreign key's promises.

Forwards and backwards on models made for the tests, as in test_operations.py; then the two
races a foreign key settles with its row locks, each on two real connections.
"""

from __future__ import annotations

import threading
import time
from functools import partial
from types import SimpleNamespace

import psycopg
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connection, migrations, models, transaction
from django.db.migrations.state import ProjectState

from qvp_site.db.references import EnforceReference
from tests.migration_ops import apply_operation, collect_sql, run_script

APP = "refops"
PARENT, CHILD = "refops_desk", "refops_trade"
RULE = "refops_trade_desk_id_fkey"

pytestmark = pytest.mark.django_db(transaction=True)

OPERATIONS = [
    migrations.CreateModel(
        "Desk",
        [("id", models.BigAutoField(primary_key=True)), ("name", models.CharField(max_length=9))],
    ),
    migrations.CreateModel(
        "Trade",
        [
            ("id", models.BigAutoField(primary_key=True)),
            (
                "desk",
                models.ForeignKey(
                    "refops.Desk", models.PROTECT, null=True, db_constraint=False, db_index=False
                ),
            ),
            ("quantity", models.IntegerField()),
        ],
        options={"indexes": [models.Index(fields=["desk"], name="refops_trade_desk")]},
    ),
]


apply = partial(apply_operation, APP)


@pytest.fixture
def tables():
    """The two tables, the reference enforced, and one desk (id 1) holding no trade."""
    state = ProjectState()
    for operation in OPERATIONS:
        state = apply(state, operation)
    apply(state, EnforceReference("Trade", "desk"))
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {PARENT} (id, name) VALUES (1, 'rates')")
    yield state
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {CHILD}, {PARENT}")


def execute(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def triggers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname FROM pg_trigger WHERE tgrelid IN (%s::regclass, %s::regclass)"
            " AND NOT tgisinternal ORDER BY tgname",
            [PARENT, CHILD],
        )
        return [name for (name,) in cursor.fetchall()]


def test_a_trade_of_an_unknown_desk_is_refused_by_insert_and_by_update(tables):
    refused = rf"(?s){RULE}.*Key \(desk_id\)=\(2\)"
    with pytest.raises(IntegrityError, match=refused), transaction.atomic():
        execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (1, 5), (2, 5), (3, 5)")
    execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (1, 5)")
    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        execute(f"UPDATE {CHILD} SET desk_id = 9")
    execute(f"UPDATE {CHILD} SET quantity = 6")  # the reference untouched: allowed
    execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (NULL, 1)")  # no reference at all


def test_a_referenced_desk_cannot_be_deleted_or_renumbered(tables):
    execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (1, 5)")
    refused = r"Key \(id\)=\(1\) is still referenced"
    with pytest.raises(IntegrityError, match=refused), transaction.atomic():
        execute(f"DELETE FROM {PARENT}")
    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        execute(f"UPDATE {PARENT} SET id = 7")
    execute(f"UPDATE {PARENT} SET name = 'credit'")
    execute(f"DELETE FROM {CHILD}")
    execute(f"DELETE FROM {PARENT}")  # referenced no more


def test_forwards_twice_changes_nothing_and_backwards_removes_the_triggers(tables):
    installed = triggers()
    assert len(installed) == 3
    apply(tables, EnforceReference("Trade", "desk"))
    assert triggers() == installed
    apply(tables, EnforceReference("Trade", "desk"), backwards=True)
    assert triggers() == []
    execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (42, 1)")  # unchecked now


def test_the_sql_sqlmigrate_shows_runs_as_a_script_and_enforces_the_reference(tables):
    """The functions' bodies hold % signs: collected and run as text, they are kept as is."""
    operation = EnforceReference("Trade", "desk")
    installed = triggers()
    run_script(collect_sql(APP, tables, operation, backwards=True))
    assert triggers() == []
    run_script(collect_sql(APP, tables, operation))
    assert triggers() == installed
    with pytest.raises(IntegrityError, match=RULE), transaction.atomic():
        execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (2, 1)")


def test_describe_name_fragment_and_deconstruct():
    operation = EnforceReference("MinuteBar", "instrument")
    assert operation.describe() == "Check MinuteBar.instrument once per statement"
    assert operation.migration_name_fragment == "reference_minutebar_instrument"
    assert operation.deconstruct() == ("EnforceReference", ["MinuteBar", "instrument"], {})


def _connect() -> psycopg.Connection:
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
    )


def _later(target) -> tuple[threading.Thread, list]:
    """Run ``target`` in a thread; the list receives its error, if any."""
    errors: list[BaseException] = []

    def run():
        try:
            target()
        except BaseException as error:  # reported to the test
            errors.append(error)

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(0.5)  # long enough for it to reach the lock it must wait for
    return thread, errors


def test_a_delete_waits_for_a_load_in_progress_and_is_then_refused(tables):
    with _connect() as loader, _connect() as deleter:
        loader.execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (1, 5)")  # not committed

        thread, errors = _later(lambda: deleter.execute(f"DELETE FROM {PARENT} WHERE id = 1"))
        assert thread.is_alive(), "the delete must wait for the load's lock on the desk"
        loader.commit()
        thread.join(10)
    assert [type(e) for e in errors] == [psycopg.errors.ForeignKeyViolation]


def test_a_load_waits_for_a_delete_in_progress_and_fails_when_it_commits(tables):
    with _connect() as loader, _connect() as deleter:
        deleter.execute(f"DELETE FROM {PARENT} WHERE id = 1")  # not committed

        thread, errors = _later(
            lambda: loader.execute(f"INSERT INTO {CHILD} (desk_id, quantity) VALUES (1, 5)")
        )
        assert thread.is_alive(), "the load must wait for the delete of its desk"
        deleter.commit()
        thread.join(10)
    assert [type(e) for e in errors] == [psycopg.errors.ForeignKeyViolation]


def test_a_timescaledb_without_transition_tables_on_hypertables_is_refused(tables, monkeypatch):
    old = SimpleNamespace(timescaledb_version="2.17.2")
    monkeypatch.setattr("qvp_site.db.references.engine.detect", lambda connection: old)
    with pytest.raises(ImproperlyConfigured, match=r"TimescaleDB 2\.17\.2 .* 2\.18 or later"):
        apply(tables, EnforceReference("Trade", "desk"))
