from django.apps import AppConfig


class QvpSiteConfig(AppConfig):
    name = "qvp_site"
    verbose_name = "QVP site and time-series machinery"

    # See qvp_site/db/roles.py: the application reads the audit log and never writes it (its
    # trigger does, as the owner); the chain head only the trigger moves.
    app_role_privileges = {
        "qvp_site_auditentry": "",
        "qvp_audit_head": "",
        "django_migrations": "",
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
