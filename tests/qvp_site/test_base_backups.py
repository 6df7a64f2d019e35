"""Retention of base backups and archived WAL (``QVP_PITR_WINDOW``): every moment of the window
stays reachable (the base backups counted inside it, and the newest one before it), nothing
older is kept; and the settings that turn archiving on and off."""

from __future__ import annotations

import json
import os
import pwd
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from qvp_site import base_backups, wal_archive
from qvp_site.db import postmaster
from qvp_site.db.embedded import Archiving, archiving_differs

NOW = datetime(2026, 12, 6, 12, tzinfo=UTC)


def fake_backup(root, days_ago: float, start_wal: str) -> str:
    counted = NOW - timedelta(days=days_ago)
    name = counted.strftime("%Y%m%dT%H%M%SZ")
    folder = root / name
    folder.mkdir(parents=True)
    manifest = {
        "database": "qvp", "started_at": counted.isoformat(), "start_wal": start_wal,
        "counted_at": counted.isoformat(), "counted_lsn": "0/3000028",
        "server_version": "18.6", "timescaledb": None, "row_counts": {},
    }  # fmt: skip
    (folder / base_backups.MANIFEST).write_text(json.dumps(manifest))
    return name


def segment(n: int) -> str:
    return f"00000001{n // 256:08X}{n % 256:08X}"


@pytest.fixture
def window(settings, tmp_path):
    settings.QVP_BASE_BACKUP_DIR = tmp_path / "base"
    settings.QVP_WAL_ARCHIVE_DIR = tmp_path / "wal"
    settings.QVP_PITR_WINDOW = timedelta(days=7)
    settings.QVP_WAL_ARCHIVE_DIR.mkdir()
    for n in range(1, 300):  # across a log file's end (255 -> 256); sparse 16 MB segments
        with (settings.QVP_WAL_ARCHIVE_DIR / segment(n)).open("wb") as out:
            out.truncate(16 * 1024 * 1024)
    return settings


def test_retention_keeps_what_reaches_every_moment_of_the_window(window):
    root = window.QVP_BASE_BACKUP_DIR
    old = fake_backup(root, 10, segment(3))
    edge = fake_backup(root, 8, segment(100))
    inside = fake_backup(root, 1, segment(280))
    (root / ".20261206T000000Z.partial").mkdir()  # a backup being written: not listed
    assert [b.path.name for b in base_backups.listing()] == [old, edge, inside]
    pruned = base_backups.prune(NOW)
    assert pruned.backups == [old]
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == [edge, inside]
    assert pruned.segments == 99  # 1..99: before the oldest kept backup's start
    assert wal_archive.segments(window.QVP_WAL_ARCHIVE_DIR)[0] == segment(100)


def test_a_gap_in_the_archive_is_found_across_a_log_files_end(window):
    archive = window.QVP_WAL_ARCHIVE_DIR
    assert wal_archive.gaps(archive, segment(250)) == []
    (archive / segment(256)).unlink()
    (archive / segment(257)).unlink()
    assert wal_archive.gaps(archive, segment(250)) == [segment(256), segment(257)]


def test_archiving_options_for_the_embedded_server(tmp_path):
    assert Archiving(None).options() == {"archive_mode": "off"}
    on = Archiving(tmp_path / "wal", 600).options()
    assert on["archive_mode"] == "on"
    assert on["archive_library"] == "basic_archive"
    assert on["basic_archive.archive_directory"] == str((tmp_path / "wal").resolve())
    assert on["archive_timeout"] == "600"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("QVP_PITR_WINDOW", "1 month", "QVP_PITR_WINDOW: a fixed width"),
        ("QVP_PITR_WINDOW", "soon", "QVP_PITR_WINDOW: interval 'soon'"),
        ("QVP_WAL_ARCHIVE_TIMEOUT", "5", "QVP_WAL_ARCHIVE_TIMEOUT must be at least 60"),
        ("QVP_WAL_ARCHIVE_DIR", "/srv/it's", "QVP_WAL_ARCHIVE_DIR must not hold a quote"),
    ],
)
def test_bad_settings_are_refused_naming_them(name, value, message):
    done = subprocess.run(
        [sys.executable, "-c", "from django.conf import settings; settings.DEBUG"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "qvp_site.settings", name: value},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr, done.stderr[-500:]


@pytest.mark.skipif(os.geteuid() != 0, reason="as root only does the server run as another user")
def test_an_archive_folder_of_someone_elses_is_refused_unless_empty(tmp_path):
    empty, used = tmp_path / "empty", tmp_path / "used"
    empty.mkdir()
    used.mkdir()
    (used / "notes.txt").write_text("someone's")
    postmaster.owned_folder(empty)  # adopted: the server writes it
    assert empty.stat().st_uid == pwd.getpwnam(postmaster.SERVER_OS_USER).pw_uid
    with pytest.raises(postmaster.ServerError, match="belongs to root and holds files"):
        postmaster.owned_folder(used)
    assert used.stat().st_uid == 0


def test_a_server_started_with_other_archiving_is_said(tmp_path):
    wal = tmp_path / "wal"
    folder = str(wal.resolve())
    assert archiving_differs("on", folder, Archiving(wal)) is None
    assert archiving_differs("off", None, Archiving(None)) is None
    said = archiving_differs("on", folder, Archiving(None))
    assert said.startswith(
        f"the embedded server archives into {folder}, and QVP_WAL_ARCHIVE_DIR is off"
    )
    assert "archives nothing" in archiving_differs("off", None, Archiving(wal))
    assert archiving_differs("on", "/elsewhere", Archiving(wal)) is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["restore", "--to-time", "yesterday"], "--to-time 'yesterday' is not a time"),
        (["restore", "--to-time", "2026-12-05T10:41:07Z", "--port", "80"], "--port 80: a port"),
        (["restore", "x.dump", "--to-time", "2026-12-05T10:41:07Z"], "no dump, no --database"),
        (["restore", "--jobs", "2"], "give the .dump file and --database (or --to-time)"),
        (["backup", "--base", "--output", "x.dump"], "--output names a dump"),
    ],
)
def test_bad_arguments_are_refused_naming_them(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command(*args)


def test_restore_to_a_time_is_refused_without_an_archive(settings, db):
    settings.QVP_WAL_ARCHIVE_DIR = None
    with pytest.raises(CommandError, match="QVP_WAL_ARCHIVE_DIR is off: no WAL archive"):
        call_command("restore", "--to-time", "2026-12-05T10:41:07Z")
