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
    }

    def ready(self) -> None:
        from qvp_site import schema  # noqa: F401  (registers the OpenAPI extensions)
