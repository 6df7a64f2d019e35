from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import InternalError, connection, transaction

from qvp_site.db import passwords, roles

# Roles are the server's, not a database's: two runs at once (a deploy beside a test run, two
# test runs) update the same rows of the roles' catalog, and PostgreSQL fails the later once the
# earlier commits. Run again, the rows are current and the run goes through.
CONCURRENT = "tuple concurrently updated"
ATTEMPTS = 3


class Command(BaseCommand):
    help = (
        "Create or update the database roles trading_app (the application: no DDL, no change "
        "to the audit log, subject to row-level security), trading_readonly (SELECT on the "
        "project's tables, no secret) and qvp_research (researchers' SQL: SELECT on market "
        "data, signals and vectors, never the books of accounts), and apply their grants: each "
        "role's allow-list, table by table, nothing on partitions or TimescaleDB chunks, no "
        "default privileges (a table made later gets its grants at the next run). Idempotent; "
        "run as the owner after each migrate. Passwords come from QVP_APP_DB_PASSWORD, "
        "QVP_READONLY_DB_PASSWORD and QVP_RESEARCH_DB_PASSWORD (left unchanged if unset; on the "
        "embedded server, generated under var/secrets/, qvp_research's printed when the role is "
        "made). qvp_research's limits: QVP_RESEARCH_DB_STATEMENT_TIMEOUT, "
        "QVP_RESEARCH_DB_IDLE_TIMEOUT (seconds) and QVP_RESEARCH_DB_CONNECTION_LIMIT."
    )

    def handle(self, *args, **options):
        from django.conf import settings

        specs = [
            roles.RoleSpec(roles.APP_ROLE, settings.QVP_APP_DB_PASSWORD or None),
            roles.RoleSpec(roles.READONLY_ROLE, settings.QVP_READONLY_DB_PASSWORD or None),
            roles.RoleSpec(
                roles.RESEARCH_ROLE,
                settings.QVP_RESEARCH_DB_PASSWORD or None,
                login_needs_password=True,
            ),
        ]
        for attempt in range(1, ATTEMPTS + 1):
            try:
                lines, database, owner, forgotten = self._apply(specs)
                break
            except InternalError as error:
                if CONCURRENT not in str(error) or attempt == ATTEMPTS:
                    raise
        # Written once committed: a password printed for a role rolled back would open nothing.
        for line in lines:
            self.stdout.write(line)
        self.stdout.write(f"grants applied on {database} (owner {owner})")
        if forgotten:
            self.stdout.write(f"{forgotten} statements with a password in clear forgotten")

    def _apply(self, specs: list[roles.RoleSpec]) -> tuple[list[str], str, str, int]:
        """Make the roles, set their limits and apply the grants, in one transaction; the
        lines to print, the database, the owner, and how many statements were forgotten."""
        from django.conf import settings

        lines = []
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SELECT current_database(), current_user")
            database, owner = cursor.fetchone()
            for spec in specs:
                created = roles.ensure_role(cursor, spec)
                lines.append(self._role_line(spec, created))
            roles.configure_research(
                cursor,
                statement_timeout=settings.QVP_RESEARCH_DB_STATEMENT_TIMEOUT,
                idle_timeout=settings.QVP_RESEARCH_DB_IDLE_TIMEOUT,
                connection_limit=settings.QVP_RESEARCH_DB_CONNECTION_LIMIT,
            )
            if not roles.grant(cursor, database, owner):
                lines.append(
                    f"{owner} is not a superuser: PUBLIC keeps the advisory locks and the writes"
                    " of large objects; a DBA can take them (see the README, SQL for research)"
                )
            # Passwords are sent as verifiers; what earlier versions sent in clear goes.
            forgotten = passwords.forget_clear_passwords(cursor)
        return lines, database, owner, forgotten

    @staticmethod
    def _role_line(spec: roles.RoleSpec, created: bool) -> str:
        from django.conf import settings

        state = "created" if created else "exists"
        if spec.name != roles.RESEARCH_ROLE:
            return f"{spec.name}: {state}, password {'set' if spec.password else 'unchanged'}"
        if not spec.password:
            # DATABASE_URL and no QVP_RESEARCH_DB_PASSWORD: nothing to log in with.
            return (
                f"{spec.name}: {state}, no password given: it cannot log in until"
                " QVP_RESEARCH_DB_PASSWORD is set and create_db_roles runs again"
                if created
                else f"{spec.name}: exists, password unchanged (QVP_RESEARCH_DB_PASSWORD unset)"
            )
        if created and getattr(settings, "QVP_RESEARCH_DB_PASSWORD_GENERATED", False):
            # Like the admin's (prepare_site): shown this once, and kept in var/secrets/.
            return (
                f"{spec.name}: created. Researchers log in as {spec.name} with password"
                f" {spec.password} (shown once; also kept in var/secrets/{spec.name})."
            )
        return f"{spec.name}: {state}, password set"
