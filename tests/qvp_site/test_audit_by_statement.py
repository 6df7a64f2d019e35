"""Inserts recorded by statement (qvp_site 0011, qvp_audit_insert): one entry per row, as the
row trigger wrote them, in the rows' order; nothing the application's role can skip; linked by
the sealer and verified; a statement trigger dropped or altered is named by verify_audit."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from psycopg import errors

from qvp_site.db.audit import audit_triggers_by_statement_sql
from qvp_site.models import AuditEntry
from tests.qvp_site.test_audit_chain import keys, refused, seal, verify  # noqa: F401 - fixture

ROWS = 500


def _triggers(cursor, table: str) -> dict[str, tuple[int, str | None]]:
    cursor.execute(
        "SELECT tgname, tgtype, tgnewtable FROM pg_trigger"
        " WHERE tgrelid = %s::regclass AND tgname LIKE 'qvp_audit%%'",
        [table],
    )
    return {name: (kind, transition) for name, kind, transition in cursor.fetchall()}


def _bulk_accounts(cursor) -> list[int]:
    """ROWS accounts in one INSERT, their ids given out of order: the ids in insert order."""
    cursor.execute("SELECT nextval('trading_account_id_seq') + %s", [ROWS])
    (base,) = cursor.fetchone()
    cursor.execute("SELECT setval('trading_account_id_seq', %s)", [base + ROWS])
    # A fixed permutation of 0..ROWS-1 (7 is prime to 500).
    order = [base + (n * 7) % ROWS for n in range(ROWS)]
    cursor.execute(
        "INSERT INTO trading_account (id, name, base_currency, created_at)"
        " SELECT v.id, 'bulk-' || v.id, 'USD', now() FROM unnest(%s::bigint[])"
        " WITH ORDINALITY AS v(id, n) ORDER BY v.n",
        [order],
    )
    return order


def test_every_audited_table_records_inserts_by_statement(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT tgrelid::regclass::text FROM pg_trigger WHERE tgname = 'qvp_audit'"
        )
        tables = [table for (table,) in cursor.fetchall()]
        assert "trading_execution" in tables
        for table in tables:
            assert _triggers(cursor, table) == {
                "qvp_audit": (1 | 8 | 16, None),  # after each row updated or deleted
                "qvp_audit_insert": (4, "inserted"),  # after each INSERT statement
            }, table


def test_a_bulk_insert_writes_one_entry_per_row_in_the_rows_order(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('qvp.actor', 'system:bulk', true)")
        # Rendered in UTC whatever the session's zone, as the row trigger renders them.
        cursor.execute("SET LOCAL TimeZone = 'America/New_York'")
        order = _bulk_accounts(cursor)
        cursor.execute("SET LOCAL TimeZone = 'UTC'")  # the row as the entry renders it
        cursor.execute(
            "SELECT e.row_key::bigint, e.new_row = to_jsonb(a), e.old_row IS NULL, e.operation,"
            " e.actor, e.db_role = session_user, e.new_row ->> 'created_at'"
            " FROM qvp_site_auditentry e JOIN trading_account a ON a.id::text = e.row_key"
            " WHERE e.table_name = 'trading_account' ORDER BY e.id"
        )
        found = cursor.fetchall()
        cursor.execute(
            "SELECT count(DISTINCT at) > 1, bool_and(seq IS NULL) FROM qvp_site_auditentry"
            " WHERE table_name = 'trading_account'"
        )
        at_per_row, unlinked = cursor.fetchone()
    assert [row[0] for row in found] == order
    assert {row[1:6] for row in found} == {(True, True, "INSERT", "system:bulk", True)}
    assert all(row[6].endswith("+00:00") for row in found)
    assert at_per_row
    assert unlinked


def test_columns_left_out_stay_out_of_bulk_inserts(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO auth_user (username, password, last_login, is_superuser, first_name,"
            " last_name, email, is_staff, is_active, date_joined)"
            " SELECT 'user' || n, 'secret', now(), false, '', '', '', false, true, now()"
            " FROM generate_series(1, 20) n"
        )
    recorded = AuditEntry.objects.filter(table_name="auth_user", operation="INSERT")
    assert recorded.count() == 20
    assert all(
        "password" not in e.new_row and "last_login" not in e.new_row and "username" in e.new_row
        for e in recorded
    )


def test_copy_and_upserts_are_recorded(db):
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with connection.cursor() as cursor:
        with cursor.copy("COPY auth_group (name) FROM STDIN") as copy:
            for n in range(5):
                copy.write_row([f"copied-{n}"])
        cursor.execute(
            "INSERT INTO auth_group (name) VALUES ('copied-0'), ('fresh')"
            " ON CONFLICT (name) DO UPDATE SET name = 'renamed'"
        )
    recorded = [
        (e.operation, (e.old_row or {}).get("name"), e.new_row["name"])
        for e in AuditEntry.objects.filter(table_name="auth_group", id__gt=before).order_by("id")
    ]
    assert recorded[:5] == [("INSERT", None, f"copied-{n}") for n in range(5)]
    assert sorted(recorded[5:]) == [("INSERT", None, "fresh"), ("UPDATE", "copied-0", "renamed")]


def test_an_update_that_changes_nothing_still_writes_no_entry(db):
    with connection.cursor() as cursor:
        _bulk_accounts(cursor)
        cursor.execute("UPDATE trading_account SET name = name")
    assert not AuditEntry.objects.filter(table_name="trading_account", operation="UPDATE").exists()


def test_the_application_role_cannot_insert_without_its_entries(connect_as_app):
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    conn = connect_as_app()
    conn.execute("SELECT set_config('qvp.actor', 'system:test', false)")
    for statement in (
        "ALTER TABLE auth_group DISABLE TRIGGER qvp_audit_insert",
        "DROP TRIGGER qvp_audit_insert ON auth_group",
        "SET session_replication_role = replica",
        "SELECT qvp_audit_install('auth_group'::regclass, ARRAY['name'])",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)
        conn.rollback()
    conn.execute("INSERT INTO auth_group (name) SELECT 'g' || n FROM generate_series(1, 50) n")
    conn.commit()
    recorded = AuditEntry.objects.filter(table_name="auth_group", id__gt=before)
    assert {e.operation for e in recorded} == {"INSERT"}
    assert sorted(e.new_row["name"] for e in recorded) == sorted(f"g{n}" for n in range(1, 51))
    assert {e.db_role for e in recorded} == {"trading_app"}


def test_bulk_entries_are_linked_and_verified(db, keys):  # noqa: F811 - the fixture
    with transaction.atomic(), connection.cursor() as cursor:
        _bulk_accounts(cursor)
    seal()
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()
    linked = list(AuditEntry.objects.filter(table_name="trading_account").values_list("id", "seq"))
    assert sorted(linked) == sorted(linked, key=lambda entry: entry[1])  # seq follows id
    assert verify().startswith("audit chain intact: ")


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        ("DROP TRIGGER qvp_audit_insert ON trading_account", "trading_account: its inserts go"),
        (
            "ALTER TABLE trading_account DISABLE TRIGGER qvp_audit_insert",
            "trading_account: its audit trigger qvp_audit_insert is disabled",
        ),
        (
            "CREATE OR REPLACE TRIGGER qvp_audit_insert AFTER INSERT ON trading_account"
            " REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT"
            " EXECUTE FUNCTION qvp_audit_insert('name')",
            "trading_account: its audit trigger qvp_audit_insert keeps name out",
        ),
        (
            "CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT OR UPDATE OR DELETE"
            " ON trading_account FOR EACH ROW EXECUTE FUNCTION qvp_audit_row()",
            "trading_account: its inserts are recorded twice",
        ),
        (
            "CREATE OR REPLACE TRIGGER qvp_audit AFTER UPDATE OR DELETE ON trading_account"
            " FOR EACH ROW WHEN (OLD.name <> 'x') EXECUTE FUNCTION qvp_audit_row()",
            "trading_account: its audit trigger qvp_audit fires only for some rows",
        ),
        (
            "CREATE OR REPLACE TRIGGER qvp_audit_insert AFTER INSERT ON trading_account"
            " FOR EACH ROW EXECUTE FUNCTION qvp_audit_row()",
            "trading_account: its audit trigger qvp_audit_insert calls qvp_audit_row",
        ),
    ],
)
def test_a_statement_trigger_dropped_or_altered_is_named(db, keys, tamper, named):  # noqa: F811
    seal()
    with connection.cursor() as cursor:
        cursor.execute(tamper)
    assert named in refused()


def test_a_partitioned_table_keeps_its_inserts_by_row(db):
    """A statement trigger on a partitioned table does not fire for an insert straight into
    a partition: qvp_audit_install keeps such a table by row, and each partition gets it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE qvp_test_split (id bigint, part int) PARTITION BY LIST (part);"
            " CREATE TABLE qvp_test_split_1 PARTITION OF qvp_test_split FOR VALUES IN (1)"
        )
        for statement in audit_triggers_by_statement_sql("qvp_test_split"):
            cursor.execute(statement)
        assert _triggers(cursor, "qvp_test_split") == {"qvp_audit": (1 | 4 | 8 | 16, None)}
        cursor.execute("INSERT INTO qvp_test_split_1 VALUES (7, 1)")
        cursor.execute("INSERT INTO qvp_test_split VALUES (8, 1)")
    assert sorted(
        AuditEntry.objects.filter(operation="INSERT", table_name="qvp_test_split_1").values_list(
            "row_key", flat=True
        )
    ) == ["7", "8"]


def test_a_hypertable_keeps_its_inserts_by_row(db):
    before = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        if not cursor.fetchone()[0]:
            pytest.skip("TimescaleDB only")
        cursor.execute(
            "CREATE TABLE qvp_test_series (id bigint, ts timestamptz NOT NULL);"
            " SELECT create_hypertable('qvp_test_series', 'ts')"
        )
        for statement in audit_triggers_by_statement_sql("qvp_test_series"):
            cursor.execute(statement)
        assert _triggers(cursor, "qvp_test_series") == {"qvp_audit": (1 | 4 | 8 | 16, None)}
        cursor.execute("INSERT INTO qvp_test_series VALUES (1, now()), (2, now())")
    recorded = AuditEntry.objects.filter(id__gt=before).order_by("id")
    assert [(e.operation, e.row_key) for e in recorded] == [("INSERT", "1"), ("INSERT", "2")]


def test_verify_audit_passes_a_fresh_database(db, keys):  # noqa: F811
    seal()
    assert verify().startswith("audit chain intact: ")
