from __future__ import annotations

import os
import secrets

from django.contrib.auth import get_user_model
from django.core.management import call_command, get_commands
from django.core.management.base import BaseCommand

ADMIN = "admin"


class Command(BaseCommand):
    help = (
        "Make the site ready to serve (what `make run` calls): migrate, create the database "
        "roles and their grants, make the audit signing key if there is none, collect static "
        "files, "
        "load demo data into an empty database, and make sure the admin user can log in "
        "(password from QVP_ADMIN_PASSWORD, else generated once and printed)."
    )

    def handle(self, *args, **options):
        call_command("migrate", interactive=False, verbosity=0)
        call_command("create_db_roles", stdout=self.stdout)
        # The audit chain's signing key, made once unless the environment holds it.
        call_command("audit_key", "--create", stdout=self.stdout)
        call_command("collectstatic", interactive=False, verbosity=0)
        if "seed_demo" in get_commands():
            call_command("seed_demo", if_empty=True, stdout=self.stdout)
        self.stdout.write(self._admin_line())

    def _admin_line(self) -> str:
        users = get_user_model()
        password = os.environ.get("QVP_ADMIN_PASSWORD", "")
        user = users.objects.filter(username=ADMIN).first()
        if user is None:
            generated = "" if password else secrets.token_urlsafe(12)
            users.objects.create_superuser(ADMIN, email="", password=password or generated)
            if generated:
                return f"Log in as {ADMIN} with password {generated} (shown once; keep it)."
            return f"Log in as {ADMIN} with the password in QVP_ADMIN_PASSWORD."
        if password:
            user.set_password(password)
            user.save(update_fields=["password"])
            return f"Log in as {ADMIN} with the password in QVP_ADMIN_PASSWORD."
        return (
            f"Log in as {ADMIN} with the password printed when it was created"
            " (or set QVP_ADMIN_PASSWORD and run again)."
        )
