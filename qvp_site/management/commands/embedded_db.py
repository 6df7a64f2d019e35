from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from qvp_site.db import embedded, postmaster


class Command(BaseCommand):
    help = "Start, stop or show the embedded PostgreSQL server under var/ (without DATABASE_URL)."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, **options):
        if not settings.EMBEDDED_DATABASE:
            raise CommandError("DATABASE_URL is set: the embedded server is not in use")
        action = options["action"]
        if action == "stop":
            stopped = embedded.stop(settings.VAR_DIR)
            self.stdout.write("stopped" if stopped else "not running")
            return
        if action == "status" and postmaster.read(embedded.pgdata_path(settings.VAR_DIR)) is None:
            self.stdout.write("not running")
            return
        # start: the server, and the site's database on it, as the first connection would.
        embedded.ensure_running(
            settings.VAR_DIR, settings.DATABASE_NAME, archiving=embedded.site_archiving()
        )
        socket_dir, port = embedded.address(settings.VAR_DIR)
        # Where a client (psql -h <socket> -U postgres) connects, and the password it needs.
        with embedded.start(settings.VAR_DIR).connect() as conn:  # what it was started with
            mode, folder = conn.execute(
                "SELECT current_setting('archive_mode'),"
                " current_setting('basic_archive.archive_directory', true)"
            ).fetchone() or ("off", None)
        self.stdout.write(
            f"running: socket {socket_dir} port {port},"
            f" data {embedded.pgdata_path(settings.VAR_DIR)},"
            f" passwords in {embedded.secrets_path(settings.VAR_DIR)},"
            f" {f'WAL archived into {folder}' if mode == 'on' else 'WAL not archived'}"
        )
