from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import connection, transaction

from qvp_site.db import passwords, roles


class Command(BaseCommand):
    help = (
        "Create or update the database roles trading_app (the application: no DDL, no change "
        "to the audit log, subject to row-level security) and trading_readonly (SELECT on the "
        "project's tables, no secret), and apply their grants: each role's allow-list, table by "
        "table, nothing on partitions or TimescaleDB chunks, no default privileges (a table "
        "made later gets its grants at the next run). Idempotent; run as the owner after each "
        "migrate. Passwords come from QVP_APP_DB_PASSWORD and QVP_READONLY_DB_PASSWORD (left "
        "unchanged if unset)."
    )

    def handle(self, *args, **options):
        from django.conf import settings

        specs = [
            roles.RoleSpec(roles.APP_ROLE, settings.QVP_APP_DB_PASSWORD or None),
            roles.RoleSpec(roles.READONLY_ROLE, settings.QVP_READONLY_DB_PASSWORD or None),
        ]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            database, owner = cursor.fetchone()
            for spec in specs:
                created = roles.ensure_role(cursor, spec)
                state = "created" if created else "exists"
                password = "password set" if spec.password else "password unchanged"
                self.stdout.write(f"{spec.name}: {state}, {password}")
            roles.grant(cursor, database, owner)
            # Passwords are sent as verifiers; what earlier versions sent in clear goes.
            forgotten = passwords.forget_clear_passwords(cursor)
        self.stdout.write(f"grants applied on {database} (owner {owner})")
        if forgotten:
            self.stdout.write(f"{forgotten} statements with a password in clear forgotten")
