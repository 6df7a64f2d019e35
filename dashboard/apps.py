from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operators' pages: server-rendered views over the other apps' records."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"
