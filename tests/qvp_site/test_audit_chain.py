"""The audit chain: linked by the sealer, anchored by checkpoints signed with a key the database
never holds, compared with the live rows. Each tamper is made as the database's owner (or a
superuser) would make it, and ``verify_audit`` must name it by table, row and entry."""

from __future__ import annotations

import csv
import json
import re
import time
from contextlib import contextmanager, redirect_stdout
from io import StringIO
from itertools import pairwise

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection, transaction
from psycopg import errors

from marketdata.models import Instrument
from qvp_site import audit_offline
from qvp_site.acting import acting_as
from qvp_site.audit_keys import key_id, sign, signing_key
from qvp_site.audit_sealer import Sealer, request_seal
from qvp_site.db import roles
from qvp_site.db.audit import GENESIS
from qvp_site.models import AuditCheckpoint, AuditEntry
from tests.fixtures.trading import fill, make_order
from trading.models import Account, Order

HASH = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def keys(settings, tmp_path):
    """A signing key of the test's own, its keyring and checkpoint file."""
    settings.QVP_AUDIT_SIGNING_KEY = ""
    settings.QVP_AUDIT_SIGNING_KEY_FILE = tmp_path / "secrets" / "audit_signing_key"
    settings.QVP_AUDIT_PUBLIC_KEYS = tmp_path / "audit" / "public_keys.json"
    settings.QVP_AUDIT_CHECKPOINTS = tmp_path / "audit" / "checkpoints.jsonl"
    call_command("audit_key", "--create", stdout=StringIO())
    return settings


def seal() -> str:
    out = StringIO()
    call_command("seal_audit", stdout=out)
    return out.getvalue()


@pytest.fixture
def chain(db, keys) -> list[AuditEntry]:
    """Orders, fills and a cancel by alice, linked and signed; the whole chain, in order."""
    instrument = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    account = Account.objects.create(name="alpha")
    alice = get_user_model().objects.create_user("alice", password="pw-alice-1234")
    with acting_as("test", user=alice):
        for _ in range(3):
            order = make_order(account, instrument, quantity="10")
            fill(order, 4, "100", fee="1")
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
    seal()
    return list(AuditEntry.objects.order_by("seq"))


def books(chain: list[AuditEntry]) -> list[AuditEntry]:
    """The entries of the chain fixture's own trading tables."""
    return [e for e in chain if e.table_name.startswith("trading_")]


def verify(*args: str) -> str:
    out = StringIO()
    call_command("verify_audit", *args, stdout=out)
    return out.getvalue()


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        verify(*args)
    assert caught.value.returncode == 1
    return str(caught.value)


@contextmanager
def tampering():
    """The owner switches the log's protection off, as someone with the owner's password
    could, and back on."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE qvp_site_auditentry DISABLE TRIGGER qvp_audit_append_only")
        yield cursor
        cursor.execute("ALTER TABLE qvp_site_auditentry ENABLE TRIGGER qvp_audit_append_only")


def rehash_from(cursor, seq: int) -> None:
    """What a superuser re-forging the chain would do: recompute every link from ``seq`` on
    with the project's own function, and move the head."""
    cursor.execute(
        """
        DO $$
        DECLARE e record; previous text;
        BEGIN
            SELECT hash INTO previous FROM qvp_site_auditentry WHERE seq = %s - 1;
            previous := coalesce(previous, repeat('0', 64));
            FOR e IN SELECT * FROM qvp_site_auditentry WHERE seq >= %s ORDER BY seq LOOP
                previous := qvp_audit_hash(previous, e.id, e.table_name, e.row_key, e.operation,
                    e.old_row, e.new_row, e.actor, e.db_role, e.at);
                UPDATE qvp_site_auditentry SET prev_hash = (
                    SELECT coalesce((SELECT hash FROM qvp_site_auditentry WHERE seq = e.seq - 1),
                                    repeat('0', 64))), hash = previous WHERE id = e.id;
            END LOOP;
            UPDATE qvp_audit_head SET last_hash = previous;
        END $$
        """.replace("%s", str(seq))
    )


# --- intact ----------------------------------------------------------------------------------


def test_an_empty_log_is_intact(db, keys):
    with tampering() as cursor:
        cursor.execute("SET LOCAL qvp.allow_audit_truncate = on")
        cursor.execute("TRUNCATE qvp_site_auditentry")
    assert verify("--skip-rows").startswith(f"audit chain intact: 0 entries linked, head {GENESIS}")


def test_the_sealer_links_every_entry_in_order_and_signs_the_head(chain, keys):
    assert chain[0].prev_hash == GENESIS
    assert [e.seq for e in chain] == list(range(1, len(chain) + 1))
    assert all(b.prev_hash == a.hash for a, b in pairwise(chain))
    (checkpoint,) = AuditCheckpoint.objects.all()
    assert (checkpoint.seq, checkpoint.hash) == (chain[-1].seq, chain[-1].hash)
    (line,) = keys.QVP_AUDIT_CHECKPOINTS.read_text().splitlines()
    assert json.loads(line)["hash"] == chain[-1].hash
    printed = verify()
    assert printed.startswith(
        f"audit chain intact: {len(chain)} entries linked, head {chain[-1].hash}"
    )
    assert "1 signed checkpoints; 0 entries not yet signed" in printed


def test_a_round_with_nothing_new_signs_nothing(chain):
    assert seal().strip() == "audit chain: nothing new to sign"
    assert AuditCheckpoint.objects.count() == 1


def test_entries_of_a_transaction_still_open_are_linked_by_a_later_round(chain, connect_as_app):
    """The chain's order is the order of linking: an entry committed after a round joins the
    next one, after what that round linked."""
    Account.objects.create(name="beta")
    seal()
    (beta,) = AuditEntry.objects.filter(table_name="trading_account", new_row__name="beta")
    assert beta.seq == chain[-1].seq + 1
    assert beta.prev_hash == chain[-1].hash
    assert "intact" in verify()


# --- tampering with entries ------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        "actor = 'mallory'",
        "new_row = jsonb_set(new_row, '{quantity}', '1')",
        "at = at + interval '1 second'",
        "hash = repeat('a', 64)",
    ],
)
def test_a_tampered_entry_is_named(chain, change):
    target = books(chain)[len(books(chain)) // 2]
    with tampering() as cursor:
        cursor.execute(f"UPDATE qvp_site_auditentry SET {change} WHERE id = %s", [target.pk])
    message = refused()
    assert f"audit chain broken at entry {target.pk} (#{target.seq} of the chain" in message
    assert f"{target.table_name} row {target.row_key}" in message
    assert "its hash does not match its content" in message


def test_a_rewritten_and_rehashed_chain_fails_at_the_signed_checkpoint(chain):
    """The superuser's forgery: an entry rewritten, every link after it recomputed with the
    project's own qvp_audit_hash. The links hold; the signature does not."""
    target = books(chain)[3]
    with tampering() as cursor:
        cursor.execute(
            "UPDATE qvp_site_auditentry SET actor = 'mallory' WHERE id = %s", [target.pk]
        )
        rehash_from(cursor, target.seq)
    message = refused("--skip-rows")
    assert "audit chain broken" not in message
    signed = AuditCheckpoint.objects.get()
    assert f"checkpoint {signed.pk} of the database (entry #{signed.seq} of the chain)" in message
    assert "entries up to it were rewritten" in message
    assert "checkpoint on line 1 of" in message


def test_an_entry_removed_from_the_middle_is_named_at_the_next(chain):
    removed, after = chain[5], chain[6]
    with tampering() as cursor:
        cursor.execute("DELETE FROM qvp_site_auditentry WHERE id = %s", [removed.pk])
    message = refused()
    assert f"audit chain broken at entry {after.pk} (#{after.seq} of the chain" in message
    assert "entries before it in the chain are missing" in message


def test_a_truncated_chain_no_longer_reaches_its_checkpoint(chain):
    """The last entries removed and the head moved back to match: only the signed
    checkpoint, in the database and in the file, still knows where the chain ended."""
    keep = chain[-4]
    with tampering() as cursor:
        cursor.execute("DELETE FROM qvp_site_auditentry WHERE seq > %s", [keep.seq])
        cursor.execute(
            "UPDATE qvp_audit_head SET last_seq = %s, last_hash = %s, last_id = %s",
            [keep.seq, keep.hash, keep.pk],
        )
    message = refused("--skip-rows")
    assert f"(entry #{chain[-1].seq} of the chain): the chain no longer reaches it" in message
    assert "checkpoint on line 1 of" in message


# --- tampering with checkpoints --------------------------------------------------------------


def test_a_checkpoint_signed_by_a_key_not_in_the_keyring_is_named(chain):
    forger = Ed25519PrivateKey.generate()
    forged = sign(forger, chain[-1].seq, chain[-1].hash, chain[-1].at)
    AuditCheckpoint.objects.create(
        seq=forged.seq, hash=forged.hash, signed_at=forged.signed_at, key_id=forged.key_id,
        signature=forged.signature,
    )  # fmt: skip
    message = refused("--skip-rows")
    assert f"signed by key {key_id(forger.public_key())}, which is not in the keyring" in message


def test_a_checkpoint_whose_hash_was_changed_no_longer_verifies(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE qvp_site_auditcheckpoint DISABLE TRIGGER qvp_audit_checkpoint_append_only"
        )
        cursor.execute("UPDATE qvp_site_auditcheckpoint SET hash = repeat('b', 64)")
    message = refused("--skip-rows")
    assert f"checkpoint {AuditCheckpoint.objects.get().pk} of the database" in message
    assert "its signature does not verify" in message


def test_an_edited_checkpoint_file_is_named_by_line(chain, keys):
    path = keys.QVP_AUDIT_CHECKPOINTS
    line = json.loads(path.read_text())
    line["seq"] -= 1
    path.write_text(json.dumps(line) + "\n")
    message = refused("--skip-rows")
    assert f"checkpoint on line 1 of {path}" in message
    assert "its signature does not verify" in message


def test_a_checkpoint_removed_from_the_database_is_named_from_the_file(chain, keys):
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE qvp_site_auditcheckpoint DISABLE TRIGGER qvp_audit_checkpoint_append_only"
        )
        cursor.execute("DELETE FROM qvp_site_auditcheckpoint")
    message = refused("--skip-rows")
    assert f"checkpoint on line 1 of {keys.QVP_AUDIT_CHECKPOINTS}" in message
    assert "is not in the database" in message


def test_checkpoints_are_append_only_even_to_the_owner(chain):
    for statement in (
        "UPDATE qvp_site_auditcheckpoint SET seq = 1",
        "DELETE FROM qvp_site_auditcheckpoint",
    ):
        with (
            pytest.raises(ProgrammingError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement)


def test_after_a_rotation_both_keys_checkpoints_verify(chain, keys):
    call_command("audit_key", "--rotate", stdout=StringIO())
    Account.objects.create(name="beta")
    seal()
    assert AuditCheckpoint.objects.values("key_id").distinct().count() == 2
    assert "intact" in verify("--skip-rows")
    keyring = json.loads(keys.QVP_AUDIT_PUBLIC_KEYS.read_text())
    first = AuditCheckpoint.objects.order_by("seq").first().key_id
    del keyring[first]
    keys.QVP_AUDIT_PUBLIC_KEYS.write_text(json.dumps(keyring))
    assert f"signed by key {first}, which is not in the keyring" in refused("--skip-rows")


# --- the window not yet signed ---------------------------------------------------------------


def test_entries_left_unsigned_longer_than_the_window_fail(chain, settings):
    Account.objects.create(name="beta")
    settings.QVP_AUDIT_UNSIGNED_WINDOW = 0
    message = refused("--skip-rows")
    assert "1 entries not yet signed" in message
    assert "QVP_AUDIT_UNSIGNED_WINDOW" in message
    seal()
    settings.QVP_AUDIT_UNSIGNED_WINDOW = 60
    assert "0 entries not yet signed" in verify("--skip-rows")


# --- live rows against the log ---------------------------------------------------------------


@contextmanager
def triggers_off():
    """What a superuser may do: no trigger fires, so nothing is recorded."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")
        yield cursor
        cursor.execute("SET LOCAL session_replication_role = origin")


def test_a_row_changed_with_triggers_off_is_named(chain):
    order = Order.objects.order_by("id").first()
    last = (
        AuditEntry.objects.filter(table_name="trading_order", row_key=str(order.pk))
        .order_by("id")
        .last()
    )
    with transaction.atomic(), triggers_off() as cursor:
        cursor.execute("UPDATE trading_order SET quantity = 999 WHERE id = %s", [order.pk])
    message = refused()
    assert f"trading_order row {order.pk}: differs from entry {last.pk}" in message
    assert "in quantity" in message


def test_a_row_inserted_or_deleted_with_triggers_off_is_named(chain):
    with transaction.atomic(), triggers_off() as cursor:
        cursor.execute("INSERT INTO trading_account (name, base_currency) VALUES ('ghost', 'USD')")
        cursor.execute("SELECT id FROM trading_account WHERE name = 'ghost'")
        (ghost,) = cursor.fetchone()
        cursor.execute("DELETE FROM auth_user WHERE username = 'alice'")
    message = refused()
    assert f"trading_account row {ghost}: not in the audit log" in message
    assert "auth_user row" in message
    assert "missing, but entry" in message


def test_a_disabled_audit_trigger_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # the books' deferred checks first
        cursor.execute("ALTER TABLE trading_order DISABLE TRIGGER qvp_audit")
    assert "trading_order: its audit trigger qvp_audit is disabled" in refused()


# --- the application's role ------------------------------------------------------------------


# The sealer's writes and the owner's snapshot: neither role may make them.
SEALERS_WRITES = (
    "SELECT * FROM qvp_audit_link(10)",
    "INSERT INTO qvp_site_auditcheckpoint (seq, hash, signed_at, key_id, signature)"
    " VALUES (1, repeat('a', 64), now(), repeat('a', 16), repeat('a', 128))",
    "UPDATE qvp_site_auditentry SET seq = NULL",
    "UPDATE qvp_site_auditcheckpoint SET hash = repeat('b', 64)",
    "DELETE FROM qvp_site_auditcheckpoint",
    "UPDATE qvp_audit_head SET last_seq = 0",
    "SELECT qvp_audit_snapshot('trading_order'::regclass)",
)


def test_the_application_role_can_neither_link_nor_sign(chain, connect_as_app):
    """Linking and checkpoints are the sealer's, which runs as the owner: a checkpoint the
    application could write would be one verify_audit must reject for ever."""
    conn = connect_as_app()
    for statement in SEALERS_WRITES:
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)
    assert "intact" in verify()


def test_the_read_only_role_reads_the_checkpoints_and_writes_nothing(chain, app_role_password):
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.READONLY_ROLE}")
        for statement in SEALERS_WRITES:
            with pytest.raises(ProgrammingError, match="permission denied"), transaction.atomic():
                cursor.execute(statement)
        cursor.execute("SELECT count(*) FROM qvp_site_auditcheckpoint")
        assert cursor.fetchone()[0] == 1


# --- bad input to the commands ----------------------------------------------------------------


def test_a_signing_key_not_in_hex_is_refused_naming_the_setting(db, settings):
    settings.QVP_AUDIT_SIGNING_KEY = "not-hex"
    for command in ("audit_key", "seal_audit"):
        with pytest.raises(CommandError, match="QVP_AUDIT_SIGNING_KEY must be"):
            call_command(command, stdout=StringIO())


def test_a_keyring_that_is_not_one_is_refused_naming_the_file(db, keys):
    keys.QVP_AUDIT_PUBLIC_KEYS.write_text('{"abc": "zz"}')
    with pytest.raises(CommandError, match=str(keys.QVP_AUDIT_PUBLIC_KEYS)):
        verify()


def test_sealing_without_a_key_says_how_to_make_one(db, keys):
    keys.QVP_AUDIT_SIGNING_KEY_FILE.unlink()
    with pytest.raises(CommandError, match="audit_key --create"):
        seal()


def test_an_export_into_no_folder_is_refused_naming_it(db, tmp_path):
    with pytest.raises(CommandError, match="no folder"):
        call_command("export_audit", str(tmp_path / "missing" / "a.jsonl"), stdout=StringIO())


# --- attacks found by review: each failed before its fix -------------------------------------


def test_a_field_boundary_moved_to_keep_the_hash_is_named(chain):
    """concat_ws skips NULLs: the table name taking the row key after a 0x1F, the row key made
    NULL, hashes alike. The signed cancel would vanish from its row's history."""
    order = Order.objects.get(status=Order.Status.CANCELLED)
    cancel = AuditEntry.objects.filter(table_name="trading_order", row_key=str(order.pk)).first()
    with tampering() as cursor:
        cursor.execute("ALTER TABLE qvp_site_auditentry ALTER COLUMN row_key DROP NOT NULL")
        cursor.execute(
            "UPDATE qvp_site_auditentry SET table_name = table_name || chr(31) || row_key,"
            " row_key = NULL WHERE id = %s",
            [cancel.pk],
        )
    message = refused("--skip-rows")
    assert f"audit chain broken at entry {cancel.pk} (#{cancel.seq} of the chain" in message
    assert "holds the 0x1F that separates the fields" in message


def test_an_actor_holding_the_separator_is_recorded_without_it(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('qvp.actor', 'ali' || chr(31) || 'ce', true)")
    Account.objects.create(name="alpha")
    assert AuditEntry.objects.get(table_name="trading_account").actor == "alice"


def test_a_trigger_made_to_leave_a_column_out_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "CREATE OR REPLACE TRIGGER qvp_audit AFTER UPDATE OR DELETE ON trading_order"
            " FOR EACH ROW EXECUTE FUNCTION qvp_audit_row('quantity')"
        )
    assert "trading_order: its audit trigger qvp_audit keeps quantity out of the" in refused()


def test_a_trigger_made_replica_only_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("ALTER TABLE trading_order ENABLE REPLICA TRIGGER qvp_audit")
    assert "trading_order: its audit trigger qvp_audit is replica-only" in refused()


def test_a_forged_checkpoint_at_the_head_does_not_stop_the_sealer(chain, keys):
    """A row claiming the head is signed, by the sealer's own key id, in place of the real
    one (and the file emptied): the sealer still signs the head."""
    signed = AuditCheckpoint.objects.get()
    keys.QVP_AUDIT_CHECKPOINTS.write_text("")
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE qvp_site_auditcheckpoint DISABLE TRIGGER qvp_audit_checkpoint_append_only"
        )
        cursor.execute("DELETE FROM qvp_site_auditcheckpoint")
        cursor.execute(
            "INSERT INTO qvp_site_auditcheckpoint (seq, hash, signed_at, key_id, signature)"
            " VALUES (%s, %s, now(), %s, repeat('a', 128))",
            [signed.seq, signed.hash, signed.key_id],
        )
    assert "audit chain signed at entry" in seal()


def test_an_entry_its_column_cannot_take_is_named_not_a_crash(chain):
    order = Order.objects.order_by("id").first()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO qvp_site_auditentry (table_name, row_key, operation, new_row, actor,"
            " db_role, at) VALUES ('trading_order', %s, 'UPDATE', %s, 'x', 'x', now())",
            [str(order.pk), json.dumps({"id": order.pk, "quantity": "abc"})],
        )
    message = refused()
    assert "trading_order: its rows cannot be compared with the log" in message


def test_an_infinite_time_is_named_not_a_crash(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO qvp_site_auditentry (table_name, row_key, operation, new_row, actor,"
            " db_role, at) VALUES ('x', '1', 'INSERT', '{}', 'x', 'x', '-infinity')"
        )
    assert "entries not yet signed, the oldest for inf s" in refused("--skip-rows")


def test_a_silent_sealer_is_named_and_a_round_signs_the_head_again(chain, settings):
    """The sealer signs a head that does not move again (the head's heartbeat) every half
    window, so a long silence shows even if the entries' own times were rewritten."""
    settings.QVP_AUDIT_UNSIGNED_WINDOW = 2
    time.sleep(2.1)
    assert "the sealer last signed the chain" in refused("--skip-rows")
    assert "signed again (heartbeat)" in seal()
    assert AuditCheckpoint.objects.count() == 1  # a heartbeat is not a checkpoint
    assert "intact" in verify("--skip-rows")


def test_a_forged_heartbeat_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_audit_head SET heartbeat = jsonb_set(heartbeat, '{signed_at}',"
            " to_jsonb('2099-01-01T00:00:00+00:00'::text))"
        )
    assert "the chain head's heartbeat" in refused("--skip-rows")


def test_a_missing_checkpoint_file_is_named(chain, keys):
    keys.QVP_AUDIT_CHECKPOINTS.unlink()
    assert f"no checkpoint file at {keys.QVP_AUDIT_CHECKPOINTS}" in refused("--skip-rows")


@pytest.mark.parametrize("line", ['{"seq": "x"}', "[1, 2]", '{"seq": 1, "hash": 5}'])
def test_a_malformed_checkpoint_line_is_named_not_a_crash(chain, keys, line):
    with keys.QVP_AUDIT_CHECKPOINTS.open("a") as out:
        out.write(line + "\n")
    assert f"{keys.QVP_AUDIT_CHECKPOINTS} line 2: not a checkpoint" in refused("--skip-rows")


def test_checkpoints_verify_whatever_the_sessions_time_zone(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Europe/Paris'")
        try:
            assert "intact" in verify("--skip-rows")
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")


# --- offline: an export, the public keys, no database ----------------------------------------


def offline(*args) -> tuple[int, str]:
    out = StringIO()
    with redirect_stdout(out):
        status = audit_offline.main([str(a) for a in args])
    return status, out.getvalue()


@pytest.fixture
def export(chain, keys, tmp_path):
    path = tmp_path / "audit.csv"
    call_command("export_audit", str(path), stdout=StringIO())
    return path


def test_an_export_verifies_offline_with_the_public_keys_alone(export, keys, chain):
    status, printed = offline(
        export,
        "--public-keys",
        keys.QVP_AUDIT_PUBLIC_KEYS,
        "--checkpoints",
        keys.QVP_AUDIT_CHECKPOINTS,
    )
    assert status == 0, printed
    intact = f"{len(chain)} entries, 1 signed checkpoints, head {chain[-1].hash}"
    assert intact in printed


def test_an_edited_export_is_named_by_line(export, keys, chain):
    with export.open(newline="") as file:
        rows = list(csv.DictReader(file))
    rows[3]["actor"] = "mallory"  # the fourth entry's, on line 5
    with export.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=audit_offline.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    status, printed = offline(export, "--public-keys", keys.QVP_AUDIT_PUBLIC_KEYS)
    assert status == 1
    entry = rows[3]
    assert (
        f"line 5 (entry {entry['id']}, #{entry['seq']} of the chain): its hash does not match"
        in printed
    )


def test_an_export_of_a_rehashed_chain_fails_at_the_checkpoint_file(chain, keys, tmp_path):
    with tampering() as cursor:
        cursor.execute("UPDATE qvp_site_auditentry SET actor = 'mallory' WHERE seq = 2")
        rehash_from(cursor, 2)
    path = tmp_path / "audit.csv"
    call_command("export_audit", str(path), stdout=StringIO())
    status, printed = offline(
        path,
        "--public-keys",
        keys.QVP_AUDIT_PUBLIC_KEYS,
        "--checkpoints",
        keys.QVP_AUDIT_CHECKPOINTS,
    )
    assert status == 1
    assert f"{keys.QVP_AUDIT_CHECKPOINTS} line 1 (checkpoint): the export holds hash" in printed


# --- the sealer's thread ---------------------------------------------------------------------


def test_the_sealer_signs_a_batch_as_soon_as_it_asks(transactional_db, keys):
    """A round every minute, yet a batch that asks (NOTIFY at its commit) is signed at once."""
    seal()  # what migrations and flushes wrote
    signed = AuditCheckpoint.objects.count()
    sealer = Sealer(signing_key(), every=60)
    sealer.start()
    try:
        time.sleep(1)  # its first round, with nothing to sign
        with transaction.atomic():
            Account.objects.create(name="batch")
            with connection.cursor() as cursor:
                request_seal(cursor)
        deadline = time.monotonic() + 20
        while AuditCheckpoint.objects.count() == signed and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sealer.stop()
        sealer.join(timeout=10)
    checkpoint = AuditCheckpoint.objects.order_by("seq").last()
    batch = AuditEntry.objects.get(table_name="trading_account", new_row__name="batch")
    assert checkpoint.seq == batch.seq
    assert checkpoint.hash == batch.hash
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()


def test_an_export_nothing_vouches_for_is_refused(chain, keys, tmp_path):
    """A made-up stretch of chain, consistent in itself, from a start no checkpoint signed."""
    previous, rows = "f" * 64, []
    for seq in range(1000, 1003):
        fields = [previous, str(seq), "trading_order", "1", "INSERT", "", "{}", "m", "x", "1.0"]
        previous = audit_offline.entry_hash(fields)
        hashed = dict(zip(audit_offline.HASHED, fields, strict=True))
        at = "1970-01-01T00:00:01+00:00"
        rows.append({**hashed, "kind": "entry", "seq": seq, "hash": previous, "at": at})
    path = tmp_path / "made-up.csv"
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=audit_offline.COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    status, printed = offline(
        path,
        "--public-keys",
        keys.QVP_AUDIT_PUBLIC_KEYS,
        "--checkpoints",
        keys.QVP_AUDIT_CHECKPOINTS,
    )
    assert status == 1
    assert "which neither the chain's start nor a signed checkpoint vouches for" in printed
    assert "no signed checkpoint falls within the export" in printed


def test_an_audit_function_rewritten_is_named(chain):
    """The trigger's function made to leave a column out of every entry: no row compares
    differently (the entries lack the column), but the function is not the file's."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'qvp_audit_row'")
        (body,) = cursor.fetchone()
        forged = body.replace("to_jsonb(NEW) - left_out", "to_jsonb(NEW) - left_out - 'quantity'")
        cursor.execute(
            "CREATE OR REPLACE FUNCTION qvp_audit_row() RETURNS trigger LANGUAGE plpgsql"
            " SECURITY DEFINER SET search_path = public, pg_temp SET TimeZone = 'UTC'"
            f" AS $body${forged}$body$"
        )
    assert "the audit function qvp_audit_row is not as its SQL version defines it" in refused()


def test_a_group_renamed_is_recorded(db):
    """The auditors group is found by its name: renaming a group to it is part of the record."""
    desk = Group.objects.create(name="desk")
    desk.name = "readers"
    desk.save()
    renamed = AuditEntry.objects.filter(table_name="auth_group", row_key=str(desk.pk)).first()
    assert (renamed.old_row["name"], renamed.new_row["name"]) == ("desk", "readers")


def test_the_application_role_cannot_rewrite_what_a_permission_grants(connect_as_app):
    conn = connect_as_app()
    for statement in (
        "UPDATE auth_permission SET codename = 'view_order' WHERE codename = 'change_order'",
        "UPDATE django_content_type SET model = 'order' WHERE model = 'account'",
        "DELETE FROM auth_permission",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_a_trigger_pointed_at_another_function_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            "CREATE OR REPLACE TRIGGER qvp_audit AFTER INSERT ON trading_order"
            " FOR EACH ROW EXECUTE FUNCTION qvp_audit_row()"
        )
    assert "trading_order: its audit trigger qvp_audit is of type 5, not after each" in refused()


# --- a second review ---------------------------------------------------------------------------


def test_a_namesake_in_the_roles_own_schema_cannot_stand_in_for_the_hash(chain):
    """A schema named after the verifying role comes first on the default search_path."""
    target = books(chain)[3]
    role = connection.settings_dict["USER"]
    with tampering() as cursor:
        cursor.execute(f'CREATE SCHEMA "{role}"')
        cursor.execute(
            f'CREATE FUNCTION "{role}".qvp_audit_hash(text, bigint, text, text, text, jsonb,'
            " jsonb, text, text, timestamptz) RETURNS text LANGUAGE sql"
            " AS $$ SELECT hash FROM public.qvp_site_auditentry WHERE id = $2 $$"
        )
        cursor.execute(
            "UPDATE qvp_site_auditentry SET actor = 'mallory' WHERE id = %s", [target.pk]
        )
    message = refused("--skip-rows")
    assert f"audit chain broken at entry {target.pk}" in message
    assert "the audit function qvp_audit_hash has namesakes" in message


def test_an_overload_of_an_audit_function_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION qvp_audit_hash(unused integer) RETURNS text LANGUAGE sql"
            " AS $$ SELECT '' $$"
        )
    assert "the audit function qvp_audit_hash has namesakes (in public, public)" in refused(
        "--skip-rows"
    )


def test_a_trigger_on_the_log_itself_is_named(chain):
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION strip() RETURNS trigger LANGUAGE plpgsql"
            " AS $$ BEGIN NEW.new_row := NEW.new_row - 'name'; RETURN NEW; END $$"
        )
        cursor.execute(
            "CREATE TRIGGER strip BEFORE INSERT ON qvp_site_auditentry"
            " FOR EACH ROW EXECUTE FUNCTION strip()"
        )
    assert "qvp_site_auditentry: unexpected trigger(s) strip" in refused("--skip-rows")


@pytest.mark.parametrize("heartbeat", ["null", "5", '"x"'])
def test_an_odd_heartbeat_is_named_not_a_crash(chain, heartbeat):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE qvp_audit_head SET heartbeat = %s::jsonb", [heartbeat])
    assert "the chain head's heartbeat is not a checkpoint" in refused("--skip-rows")
    assert "audit chain" in seal()  # the sealer signs a new one rather than failing


def test_the_head_row_deleted_is_named_not_a_crash(chain):
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM qvp_audit_head")
    assert "the chain's head row (qvp_audit_head) is gone" in refused("--skip-rows")


def test_a_checkpoint_whose_commit_was_lost_is_stored_by_the_next_round(chain, keys):
    """The file has it, the database does not (the sealer stopped between the two)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE qvp_site_auditcheckpoint DISABLE TRIGGER qvp_audit_checkpoint_append_only"
        )
        cursor.execute("DELETE FROM qvp_site_auditcheckpoint")
        cursor.execute(
            "ALTER TABLE qvp_site_auditcheckpoint ENABLE TRIGGER qvp_audit_checkpoint_append_only"
        )
    assert "is not in the database" in refused("--skip-rows")
    seal()
    assert "intact" in verify("--skip-rows")


def test_an_export_from_a_later_entry_is_vouched_for_by_the_checkpoint_before_it(
    chain, keys, tmp_path
):
    Account.objects.create(name="beta")
    seal()
    first = chain[-1].seq + 1
    path = tmp_path / "later.csv"
    call_command("export_audit", str(path), "--from-seq", str(first), stdout=StringIO())
    status, printed = offline(path, "--public-keys", keys.QVP_AUDIT_PUBLIC_KEYS)
    assert status == 0, printed


def test_the_sealer_listens_again_after_its_connection_is_cut(transactional_db, keys):
    seal()
    sealer = Sealer(signing_key(), every=0.5)
    sealer.start()
    try:
        time.sleep(1)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE query LIKE 'LISTEN %%' AND datname = current_database()"
                " AND pid <> pg_backend_pid()"
            )
        time.sleep(1.5)
        assert sealer.is_alive()
        Account.objects.create(name="after")
        deadline = time.monotonic() + 10
        while AuditEntry.objects.filter(seq__isnull=True).exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        sealer.stop()
        sealer.join(timeout=10)
    assert not AuditEntry.objects.filter(seq__isnull=True).exists()
