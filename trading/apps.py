from django.apps import AppConfig
from django.db.models.signals import post_migrate


class TradingConfig(AppConfig):
    name = "trading"
    verbose_name = "Trading records"
    default_auto_field = "django.db.models.BigAutoField"

    # What the application's database role may do with this app's tables beyond SELECT
    # (`manage.py create_db_roles` applies it). Positions, orders' fills and statuses and the
    # cash ledger are written by the owner's functions only (trading/sql/books/0007.sql): the
    # executions' triggers, trading_cancel_order and trading_add_cash, which the role
    # executes; executions are never edited.
    app_role_privileges = {
        "trading_account": "INSERT, UPDATE",
        "trading_account_groups": "INSERT, DELETE",
        "trading_order": "INSERT",
        "trading_execution": "INSERT",
        "trading_position": "",
        "trading_cashentry": "",
        # Taken and taken again (an update keeps the old row in the revisions, by trigger),
        # never deleted by the application.
        "trading_portfoliosnapshot": "INSERT, UPDATE",
        "trading_portfoliosnapshotrevision": "",
        "trading_backtestrun": "INSERT, UPDATE, DELETE",
        "trading_backtesttrade": "INSERT, DELETE",
        "trading_metrics": "",  # a view (trading/migrations/0006_trading_metrics.py)
        # Written by trading_apply_actions alone (trading/sql/actions/0013.sql).
        "trading_actionentry": "",
        # Computed by the owner's refresh (manage.py tca, the scheduler): the application
        # reads the costs, never writes a number of its own (trading/sql/tca/0015.sql).
        "trading_executioncost": "",
    }

    # When a snapshot was stored is the database's to say: one backdated would read as known
    # before it was (trading/sql/snapshots/0012.sql).
    app_role_withheld_columns = {"trading_portfoliosnapshot": ("known_from",)}

    def ready(self) -> None:
        from qvp_site.admin_access import grant_auditors_view

        # After every migrate, for every app (see qvp_site/admin_access.py): auditors can view
        # the models of apps added later, and get their group back after a test flush.
        post_migrate.connect(grant_auditors_view, dispatch_uid="qvp_auditors_view")
