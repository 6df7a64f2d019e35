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
        embedded.ensure_running(settings.VAR_DIR, settings.DATABASE_NAME)
        socket_dir, port = embedded.address(settings.VAR_DIR)
        # Where a client (psql -h <socket> -U postgres) connects, and the password it needs.
        self.stdout.write(
            f"running: socket {socket_dir} port {port},"
            f" data {embedded.pgdata_path(settings.VAR_DIR)},"
            f" passwords in {embedded.secrets_path(settings.VAR_DIR)}"
        )
