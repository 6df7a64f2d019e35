"""The audit log's export, verified without the database: the exact text each hash covers (no
NUMERIC turned into a float, no key re-sorted), the signed checkpoints, one format for
``export_audit`` and the admin; ``verify_audit --file`` and the standalone
``qvp_site/audit_offline.py`` name each tampered line. And the audit log's admin for
auditors: HISTORY leads to the row's audit history, times with seconds and zone, operations
by one name."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse

from marketdata.models import Instrument
from qvp_site import audit_offline
from qvp_site.acting import acting_as
from qvp_site.admin_bases import history_url
from qvp_site.models import AuditCheckpoint, AuditEntry
from tests.fixtures.trading import fill, make_order
from tests.qvp_site.test_audit_chain import keys, seal  # noqa: F401 - fixture
from trading.models import Account

LOG = reverse("admin:qvp_site_auditentry_changelist")
LOG_CSV = reverse("admin:qvp_site_auditentry_export_csv")
NESTED = '{"zeta": {"b": [1.50, null], "a": "ü"}, "alpha": 1}'


@pytest.fixture
def chain(db, keys):  # noqa: F811 - the fixture imported above
    """60+ entries: NUMERIC with trailing zeros, nested JSON, unicode, NULLs; linked, signed."""
    instrument = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    account = Account.objects.create(name="Zürich ☃ désk")
    zoe = get_user_model().objects.create_user("zoë", password="pw-zoe-12345")
    with acting_as("test", user=zoe):
        for n in range(20):
            order = make_order(account, instrument, quantity=f"{n + 1}.50")  # 1.50000000
            fill(order, 1, "100.10", fee="0.50")
        with connection.cursor() as cursor:  # as written, not as Python would encode it
            cursor.execute(
                "SELECT marketdata_listing_set(%s, NULL, NULL, 'AAPL', 'Apple', '', 'USD',"
                " 'listed', '', '', %s::jsonb)",
                [instrument.pk, NESTED],
            )
    seal()
    assert AuditEntry.objects.filter(seq__isnull=False).count() >= 60
    return list(AuditEntry.objects.order_by("seq"))


@pytest.fixture
def export(chain, tmp_path) -> Path:
    path = tmp_path / "audit.csv"
    out = StringIO()
    call_command("export_audit", str(path), stdout=out)
    assert f"{len(chain)} entries (#1 to #{chain[-1].seq}), 1 checkpoints" in out.getvalue()
    return path


def records(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def rewrite(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.DictWriter(file, fieldnames=audit_offline.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def verify_file(path: Path, *args: str) -> str:
    out = StringIO()
    call_command("verify_audit", "--file", str(path), *args, stdout=out)
    return out.getvalue()


def refused(path: Path) -> str:
    with pytest.raises(CommandError) as caught:
        verify_file(path)
    return str(caught.value)


# --- the export: what the chain covers, as the database has it -------------------------------


def test_the_export_holds_the_text_each_hash_covers(export, chain):
    rows = [r for r in records(export) if r["kind"] == "entry"]
    assert [int(r["seq"]) for r in rows] == [e.seq for e in chain]
    for row, entry in zip(rows, chain, strict=True):
        fields = [audit_offline.unescape(row[name]) for name in audit_offline.HASHED]
        assert audit_offline.entry_hash(fields) == row["hash"] == entry.hash
    orders = [r for r in rows if r["table_name"] == "trading_order" and r["operation"] == "INSERT"]
    assert '"quantity": 1.50000000' in orders[0]["new_row"]  # NUMERIC as written, no float
    assert orders[0]["old_row"] == ""  # none: an insert
    assert '"limit_price": null' in orders[0]["new_row"]
    assert orders[0]["actor"] == "zoë"
    listing = next(r for r in rows if '"zeta"' in r["new_row"])
    # jsonb's order (shorter keys first), not Python's sorted one; 1.50 stays 1.50.
    assert (
        '"vendor_ids": {"zeta": {"a": "ü", "b": [1.50, null]}, "alpha": 1}' in (listing["new_row"])
    )
    account = next(r for r in rows if r["table_name"] == "trading_account")
    assert "Zürich ☃ désk" in account["new_row"]
    assert account["at"].endswith("+00:00")
    assert len(account["at"]) == len("2026-01-01T00:00:00.000000+00:00")


def test_the_export_verifies_without_the_database(export, chain, django_assert_num_queries):
    with django_assert_num_queries(0):
        printed = verify_file(export)
    assert f"{len(chain)} entries, 1 signed checkpoints, head {chain[-1].hash}" in printed


def test_verify_audit_file_runs_with_no_database_at_all(export, keys):  # noqa: F811
    """In a process whose database cannot be reached: nothing of it is read."""
    environment = {
        **os.environ,
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "QVP_AUDIT_PUBLIC_KEYS": str(keys.QVP_AUDIT_PUBLIC_KEYS),
    }
    manage = Path(settings.BASE_DIR) / "manage.py"
    done = subprocess.run(
        [sys.executable, str(manage), "verify_audit", "--file", str(export)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "audit export intact" in done.stdout


def test_the_standalone_recipe_verifies_it_with_python_and_the_public_keys(export, keys, tmp_path):  # noqa: F811
    """The script copied alone, out of the project, run by a plain interpreter (-I: no
    project on the path, no environment)."""
    script = tmp_path / "elsewhere" / "audit_offline.py"
    script.parent.mkdir()
    script.write_text(Path(audit_offline.__file__).read_text())
    run = [sys.executable, "-I", str(script), str(export)]
    done = subprocess.run(
        [*run, "--public-keys", str(keys.QVP_AUDIT_PUBLIC_KEYS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "audit export intact" in done.stdout


# --- tampered: each refused, naming the line -------------------------------------------------


def test_a_byte_of_a_value_changed_is_named_by_line(export):
    rows = records(export)
    target = next(i for i, r in enumerate(rows) if '"quantity": 3.50000000' in r["new_row"])
    rows[target]["new_row"] = rows[target]["new_row"].replace("3.50000000", "3.50000001")
    rewrite(export, rows)
    entry = rows[target]
    assert (
        f"line {target + 2} (entry {entry['id']}, #{entry['seq']} of the chain): its hash does"
        " not match its content" in refused(export)
    )


def test_a_hash_changed_is_named_by_line(export):
    rows = records(export)
    first = "1" if rows[10]["hash"][0] == "0" else "0"
    rows[10]["hash"] = first + rows[10]["hash"][1:]
    rewrite(export, rows)
    message = refused(export)
    assert f"line 12 (entry {rows[10]['id']}, #{rows[10]['seq']} of the chain): its hash" in message
    assert (
        f"line 13 (entry {rows[11]['id']}, #{rows[11]['seq']} of the chain): it does not follow"
        in message
    )


def test_a_row_dropped_is_named_by_line(export):
    rows = records(export)
    dropped = rows.pop(20)
    rewrite(export, rows)
    assert (
        f"line 22 (entry {rows[20]['id']}, #{rows[20]['seq']} of the chain): it does not follow"
        f" entry #{int(dropped['seq']) - 1}" in refused(export)
    )


def test_two_rows_swapped_are_named_by_line(export):
    rows = records(export)
    rows[30], rows[31] = rows[31], rows[30]
    rewrite(export, rows)
    message = refused(export)
    assert (
        f"line 32 (entry {rows[30]['id']}, #{rows[30]['seq']} of the chain): it does not follow"
        in message
    )


def test_a_checkpoint_signature_altered_is_named_by_line(export):
    rows = records(export)
    line, checkpoint = next(
        (n, r) for n, r in enumerate(rows, start=2) if r["kind"] == "checkpoint"
    )
    flipped = "1" if checkpoint["signature"][0] == "0" else "0"
    checkpoint["signature"] = flipped + checkpoint["signature"][1:]
    rewrite(export, rows)
    message = refused(export)
    assert (
        f"line {line} (checkpoint at #{checkpoint['seq']}): its signature does not verify"
        in message
    )
    assert "no signed checkpoint falls within the export" in message


def test_the_time_for_people_is_held_to_the_hashed_one(export):
    rows = records(export)
    rows[5]["at"] = "2001-01-01T00:00:00+00:00"
    rewrite(export, rows)
    assert f"line 7 (entry {rows[5]['id']}, #{rows[5]['seq']} of the chain): its time 2001" in (
        refused(export)
    )


def test_a_file_that_is_no_export_is_refused_naming_it(tmp_path, keys):  # noqa: F811
    path = tmp_path / "orders.csv"
    path.write_text("id,quantity\n1,2\n")
    with pytest.raises(CommandError, match=f"--file {path}: cannot be read .* line 1"):
        verify_file(path)
    with pytest.raises(CommandError, match="No such file"):
        verify_file(tmp_path / "missing.csv")


def test_a_formula_in_a_cell_is_kept_as_text_and_still_verifies(db, keys, tmp_path):  # noqa: F811
    actor = "=HYPERLINK(1)"
    account = Account.objects.create(name="+desk")
    with acting_as("test", user=get_user_model().objects.create_user(actor)):
        account.name = "-desk"
        account.save()
    seal()
    path = tmp_path / "formula.csv"
    call_command("export_audit", str(path), stdout=StringIO())
    text = path.read_text(encoding="utf-8")
    assert ",=HYPERLINK" not in text
    assert ",'=HYPERLINK(1)," in text
    assert "intact" in verify_file(path)


# --- the admin -------------------------------------------------------------------------------


def auditor(client, chain):
    audrey = get_user_model().objects.create_user("audrey", is_staff=True)
    audrey.groups.add(Group.objects.get(name="auditors"))
    client.force_login(audrey)
    return audrey


def download(response) -> bytes:
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    return b"".join(response.streaming_content)


def test_an_auditor_downloads_an_export_that_verifies_and_is_the_commands(
    client, chain, export, tmp_path
):
    auditor(client, chain)
    body = download(client.get(LOG_CSV))
    assert body == export.read_bytes()  # one format, one writer
    path = tmp_path / "from-admin.csv"
    path.write_bytes(body)
    assert "intact" in verify_file(path)


def test_a_filtered_export_is_the_signed_stretch_around_the_entries_shown(client, chain, tmp_path):
    Account.objects.create(name="later")
    seal()
    Account.objects.create(name="latest")  # linked, not signed: after the stretch's end
    auditor(client, chain)
    order = AuditEntry.objects.filter(table_name="trading_order").order_by("seq").first()
    body = download(client.get(LOG_CSV, {"table_name": "trading_order", "row_key": order.row_key}))
    path = tmp_path / "row.csv"
    path.write_bytes(body)
    assert "intact" in verify_file(path)
    entries = [r for r in records(path) if r["kind"] == "entry"]
    assert int(entries[0]["seq"]) == 1
    assert int(entries[-1]["seq"]) == chain[-1].seq  # up to the checkpoint after its last entry


def test_without_the_audit_permission_there_is_no_export(client, chain):
    clerk = get_user_model().objects.create_user("clerk", is_staff=True)
    client.force_login(clerk)
    assert client.get(LOG_CSV).status_code == 403
    assert client.get(LOG).status_code == 403


def test_an_entrys_history_button_leads_to_its_rows_audit_history(admin_client, chain):
    entry = next(e for e in chain if e.table_name == "trading_order" and e.operation == "UPDATE")
    history = reverse("admin:qvp_site_auditentry_history", args=[entry.pk])
    response = admin_client.get(history)
    assert response.status_code == 302
    assert response["Location"] == history_url("trading_order", entry.row_key)
    listed = admin_client.get(response["Location"]).context["cl"].result_list
    assert {(e.table_name, e.row_key) for e in listed} == {("trading_order", entry.row_key)}
    assert (
        len(listed)
        == AuditEntry.objects.filter(table_name="trading_order", row_key=entry.row_key).count()
        > 1
    )
    assert (
        admin_client.get(reverse("admin:qvp_site_auditentry_history", args=[10**9])).status_code
        == 302
    )


def test_times_have_seconds_and_zone_and_operations_one_name(admin_client, chain):
    entry = next(e for e in chain if e.operation == "INSERT")
    stamp = entry.at.strftime("%Y-%m-%d %H:%M:%S UTC")
    page = admin_client.get(LOG, {"table_name": entry.table_name}).content.decode()
    assert stamp in page
    assert ">INSERT<" in page
    assert ">insert<" not in page
    change = admin_client.get(reverse("admin:qvp_site_auditentry_change", args=[entry.pk]))
    assert stamp in change.content.decode()
    assert "INSERT" in change.content.decode()
    checkpoints = admin_client.get(reverse("admin:qvp_site_auditcheckpoint_changelist"))
    signed = AuditCheckpoint.objects.get().signed_at.strftime("%Y-%m-%d %H:%M:%S UTC")
    assert signed in checkpoints.content.decode()
    filtered = admin_client.get(LOG, {"operation__exact": "UPDATE"}).context["cl"].result_list
    assert {e.operation for e in filtered} == {"UPDATE"}


# --- what no signature vouches for is refused ---------------------------------------------------


def test_an_export_emptied_of_its_entries_is_refused(export):
    rows = records(export)
    rewrite(export, [r for r in rows if r["kind"] == "checkpoint"])
    assert "the export holds no entry" in refused(export)
    rewrite(export, [])
    assert "the export holds no entry" in refused(export)


def test_an_entry_appended_after_the_last_checkpoint_is_refused(export):
    """Anyone can append an entry and compute its hash: only a signature vouches for it."""
    rows = records(export)
    entries = [r for r in rows if r["kind"] == "entry"]
    forged = dict(entries[-1], seq=str(int(entries[-1]["seq"]) + 1), prev_hash=entries[-1]["hash"])
    forged["actor"] = "mallory"
    forged["hash"] = audit_offline.entry_hash(
        [audit_offline.unescape(forged[name]) for name in audit_offline.HASHED]
    )
    rewrite(export, [*entries, forged, *(r for r in rows if r["kind"] == "checkpoint")])
    assert (
        f"entries #{forged['seq']} to #{forged['seq']} come after the last signed checkpoint"
        in refused(export)
    )


def test_entries_no_checkpoint_signs_yet_are_left_out_of_an_export(chain, tmp_path):
    Account.objects.create(name="unsigned")
    with connection.cursor() as cursor:  # linked as the sealer links, not yet signed
        cursor.execute("SELECT * FROM qvp_audit_link(1000)")
    assert AuditEntry.objects.filter(seq__gt=chain[-1].seq).exists()
    path = tmp_path / "audit.csv"
    call_command("export_audit", str(path), stdout=StringIO())
    assert "intact" in verify_file(path)
    assert max(int(r["seq"]) for r in records(path) if r["kind"] == "entry") == chain[-1].seq
