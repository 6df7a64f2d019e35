from django.apps import AppConfig


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading records"
    default_auto_field = "django.db.models.BigAutoField"

    # What the application's database role may do with this app's tables beyond SELECT
    # (`manage.py create_db_roles` applies it). Positions and the execution-driven columns
    # are written by the database's triggers only; executions are never edited.
    app_role_privileges = {
        "trading_account": "INSERT, UPDATE",
        "trading_account_groups": "INSERT, DELETE",
        "trading_order": "INSERT, UPDATE (status, status_reason, updated_at)",
        "trading_execution": "INSERT",
        "trading_position": "",
        "trading_cashentry": "INSERT",
        "trading_portfoliosnapshot": "INSERT, UPDATE, DELETE",
        "trading_backtestrun": "INSERT, UPDATE, DELETE",
        "trading_backtesttrade": "INSERT, DELETE",
    }
