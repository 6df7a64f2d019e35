from django.apps import AppConfig


class SignalsConfig(AppConfig):
    name = "signals"
    verbose_name = "Signals"
    default_auto_field = "django.db.models.BigAutoField"

    # What the application's role may do besides SELECT (`manage.py create_db_roles`). A
    # signal and a log record are what was said at the time: added, never edited. Fusion
    # re-run for the same time replaces its row.
    app_role_privileges = {
        "signals_signal": "INSERT",
        "signals_systemlog": "INSERT",
        "signals_fusedsignal": "INSERT, UPDATE",
    }
