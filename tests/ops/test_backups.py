"""manage.py backup and restore: a round trip into a new database, checked by row counts and
the audit chain; damaged or mismatching backups refused."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from marketdata.models import MinuteBar
from qvp_site import backups
from qvp_site.db.partitions import prepare_load
from tests.fixtures.trading import fill, make_order


@pytest.fixture
def restored_name():
    name = f"{connection.settings_dict['NAME']}_restored"
    backups.drop_database(name)
    yield name
    backups.drop_database(name)


@pytest.fixture
def books(transactional_db, desks, instrument):
    """Committed data in audited tables and a time-series table spanning several chunks."""
    for name in ("alpha", "beta"):
        order = make_order(desks[name], instrument, quantity="10")
        fill(order, 4, "100", fee="1")
        fill(order, 6, "101")
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(days=30)
    prepare_load("marketdata_minutebar", start, start + timedelta(days=30))
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=instrument, ts=start + timedelta(hours=h), open=1, high=2, low=1,
                  close=2, volume=h)
        for h in range(0, 30 * 24, 5)
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT qvp_audit_link()")  # the sealer's step: the entries chained
    return desks


def connect(dbname: str) -> psycopg.Connection:
    return psycopg.connect(**backups.libpq_params(dbname=dbname), autocommit=True)


def test_round_trip_restores_every_row_and_an_intact_audit_chain(books, tmp_path, restored_name):
    dump = tmp_path / "qvp.dump"
    out = StringIO()
    call_command("backup", "--output", str(dump), stdout=out)
    assert "backed up" in out.getvalue()
    manifest = json.loads(dump.with_suffix(".json").read_text())
    assert manifest["row_counts"]["trading_execution"] == 4
    assert manifest["row_counts"]["marketdata_minutebar"] == 144

    out = StringIO()
    call_command("restore", str(dump), "--database", restored_name, "--jobs", "3", stdout=out)
    assert "row counts match the backup, audit chain intact" in out.getvalue()

    with connect(connection.settings_dict["NAME"]) as source, connect(restored_name) as copy:
        original, restored = backups.row_counts(source), backups.row_counts(copy)
        assert restored == original
        assert restored["qvp_site_auditentry"] > 0
        assert backups.audit_chain_problem(copy) is None
        # The positions the books' triggers kept came across (not recomputed, restored).
        assert copy.execute("SELECT count(*) FROM trading_position").fetchone()[0] == 2
        if backups.timescaledb_version(source):
            # Continuous aggregates' own chunks aside: the restored database's refresh jobs
            # start at once (timescaledb_post_restore) and may materialize more than the
            # source had yet.
            chunks = ("SELECT hypertable_name, range_start, range_end"
                      " FROM timescaledb_information.chunks"
                      " WHERE hypertable_schema = 'public' ORDER BY 1, 2")  # fmt: skip
            assert copy.execute(chunks).fetchall() == source.execute(chunks).fetchall()
            assert copy.execute(
                "SELECT count(*) FROM timescaledb_information.hypertables"
                " WHERE hypertable_name = 'marketdata_minutebar'"
            ).fetchone() == (1,)


def test_a_restore_that_differs_from_the_manifest_is_reported(books, tmp_path, restored_name):
    dump = tmp_path / "qvp.dump"
    call_command("backup", "--output", str(dump), stdout=StringIO())
    manifest_file = dump.with_suffix(".json")
    manifest = json.loads(manifest_file.read_text())
    manifest["row_counts"]["trading_execution"] += 1  # as if rows had been lost on the way
    manifest_file.write_text(json.dumps(manifest))
    err = StringIO()
    with pytest.raises(CommandError, match="does NOT match the backup"):
        call_command("restore", str(dump), "--database", restored_name, stdout=StringIO(),
                     stderr=err)  # fmt: skip
    assert "trading_execution: 5 rows in the backup, 4 restored" in err.getvalue()


def test_a_broken_audit_chain_in_the_restored_database_is_found(books, tmp_path, restored_name):
    dump = tmp_path / "qvp.dump"
    call_command("backup", "--output", str(dump), stdout=StringIO())
    call_command("restore", str(dump), "--database", restored_name, stdout=StringIO())
    with connect(restored_name) as copy:
        copy.execute("ALTER TABLE qvp_site_auditentry DISABLE TRIGGER USER")
        copy.execute("UPDATE qvp_site_auditentry SET actor = 'mallory'"
                     " WHERE id = (SELECT min(id) FROM qvp_site_auditentry)")  # fmt: skip
        assert "audit chain broken at entry" in backups.audit_chain_problem(copy)


def test_a_damaged_file_or_an_existing_database_is_refused(books, tmp_path, restored_name):
    dump = tmp_path / "qvp.dump"
    call_command("backup", "--output", str(dump), stdout=StringIO())
    with pytest.raises(CommandError, match="exists: choose another --output"):
        call_command("backup", "--output", str(dump), stdout=StringIO())
    with pytest.raises(CommandError, match="exists: restore into a new database"):
        call_command("restore", str(dump), "--database", connection.settings_dict["NAME"])
    data = bytearray(dump.read_bytes())
    data[len(data) // 2] ^= 0xFF
    dump.write_bytes(bytes(data))
    with pytest.raises(CommandError, match="SHA-256 does not match"):
        call_command("restore", str(dump), "--database", restored_name)
    with connect("postgres") as admin:
        exists = "SELECT 1 FROM pg_database WHERE datname = %s"
        assert admin.execute(exists, [restored_name]).fetchone() is None


def test_client_programs_match_the_server_version(db):
    major = connection.cursor().connection.info.server_version // 10000
    path = backups.pg_tool("pg_dump", major)
    assert backups.tool_major(path) >= major
    with pytest.raises(backups.BackupError, match="no pg_restore of version 99 or later"):
        backups.pg_tool("pg_restore", 99)
