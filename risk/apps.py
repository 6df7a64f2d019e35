from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = "Risk"
    default_auto_field = "django.db.models.BigAutoField"
