from typing import Any

from django.apps import AppConfig
from django.db import connections
from django.db.models.signals import post_migrate, pre_migrate


class QvpSiteConfig(AppConfig):
    name = "qvp_site"
    verbose_name = "QVP site and time-series machinery"

    # See qvp_site/db/roles.py: the application reads the audit log and never writes it (its
    # trigger does, as the owner); the entries' links, the chain head and the checkpoints only
    # the sealer writes, which runs as the owner (the scheduler's process): a checkpoint the
    # application could write would be one more thing verify_audit must reject for ever.
    app_role_privileges = {
        "qvp_site_auditentry": "",
        "qvp_audit_head": "",
        "qvp_site_auditcheckpoint": "",
        # Django's catalog of models and permissions: written by migrations only. A codename
        # the application could swap would change what a permission grants.
        "auth_permission": "",
        "django_content_type": "",
        "django_migrations": "",
        # The time-series catalog: made by migrations; the application records the aggregate
        # ranges it refreshed (plain PostgreSQL) or leaves to the next maintain (TimescaleDB).
        "qvp_timeseries_table": "",
        "qvp_timeseries_aggregate": (
            "UPDATE (refreshed_at, refreshed_from, refreshed_to, pending_from, pending_to)"
        ),
        # The monitoring views (qvp_site/db/monitoring.py): read only.
        "system_health": "",
        "system_table_sizes": "",
        "system_index_usage": "",
        "system_connections": "",
        "system_replication": "",
        "system_slow_statements": "",
    }

    def ready(self) -> None:
        from qvp_site import schema  # noqa: F401  (registers the OpenAPI extensions)
        from qvp_site.operators import grant_operators_permissions

        # After every migrate (see qvp_site/operators.py): the operators group gets the
        # market-data write permissions a fresh database has only after its last migration.
        post_migrate.connect(grant_operators_permissions, dispatch_uid="qvp_operators_write")
        # Before every migrate: on a Citus cluster (QVP_CITUS_WORKERS), the database is made
        # one first, the site's and the test database alike (qvp_site/db/citus.py).
        pre_migrate.connect(_prepare_citus, dispatch_uid="qvp_citus_prepare")
        # After every migrate, once: on Citus, no SQL function that reads a distributed table
        # is left for PostgreSQL to inline unseen by Citus (qvp_site/db/citus_functions.py).
        post_migrate.connect(_readers_uninlined, sender=self, dispatch_uid="qvp_citus_readers")


def _prepare_citus(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from qvp_site.db import citus

    citus.prepare(connections[using])


def _readers_uninlined(sender: AppConfig, using: str = "default", **kwargs: Any) -> None:
    from qvp_site.db import citus_functions

    citus_functions.keep_readers_uninlined(connections[using])
