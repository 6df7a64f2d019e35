from django.apps import AppConfig


class RiskConfig(AppConfig):
    name = "risk"
    verbose_name = "Risk"
    default_auto_field = "django.db.models.BigAutoField"

    # What the application's database role may do beyond SELECT (see trading/apps.py): an
    # alert's breach is written once, then only its state moves; deliveries are appended. A
    # run's record is written once (what it read and with which code), then only its end and,
    # for a repeat, its verdict.
    app_role_privileges = {
        "risk_riskrun": "INSERT, UPDATE (finished_at, identical)",
        "risk_riskalert": (
            "INSERT, UPDATE (state, acknowledged_by_id, acknowledged_at,"
            " resolved_by_id, resolved_at, resolution)"
        ),
        "risk_alertdelivery": "INSERT",
        # The exchange's sessions the anomaly function reads for gaps: loaded by the owner's
        # detect_anomalies alone, or a login could hide a gap by writing the market shut.
        "risk_tradingcalendar": "",
        "risk_tradingperiod": "",
    }
