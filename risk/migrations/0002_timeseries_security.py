"""Time series, row-level security (risk/sql/security/0002.sql), the audit trail on limits, the
alerts' rules (risk/sql/alerts/0002.sql), and the SQL functions (risk/sql/functions/0002.sql:
calculate_var, calculate_portfolio_metrics)."""

from django.db import migrations

from qvp_site.db.audit import AuditChanges
from qvp_site.db.operations import CreateHypertable
from qvp_site.db.sqlfiles import read_sql

SCOPED = [
    "risk_riskmetric",
    "risk_factorexposure",
    "risk_risklimit",
    "risk_riskalert",
    "risk_alertdelivery",
]

DROP_SECURITY = "".join(
    f'DROP POLICY IF EXISTS account_{name} ON "{table}";'
    for table in SCOPED
    for name in ("read", "insert", "update", "delete")
) + "".join(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY;' for table in SCOPED)

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS calculate_portfolio_metrics();
DROP FUNCTION IF EXISTS calculate_portfolio_metrics(bigint, integer, text, float8, timestamptz);
DROP FUNCTION IF EXISTS risk_snapshot_returns(bigint, timestamptz, integer);
DROP FUNCTION IF EXISTS calculate_var(float8, integer);
DROP FUNCTION IF EXISTS calculate_var(bigint, float8, integer, timestamptz);
DROP FUNCTION IF EXISTS risk_daily_returns(bigint[], timestamptz, integer);
DROP FUNCTION IF EXISTS risk_holdings(bigint, timestamptz);
DROP FUNCTION IF EXISTS risk_norm_ppf(float8);
"""

DROP_ALERT_RULES = """
DROP TRIGGER IF EXISTS risk_alert_legal_change ON risk_riskalert;
DROP TRIGGER IF EXISTS risk_alert_matches_limit ON risk_riskalert;
DROP FUNCTION IF EXISTS risk_alert_legal_change(), risk_alert_matches_limit();
"""


class Migration(migrations.Migration):
    dependencies = [("risk", "0001_initial"), ("trading", "0005_execution_running_state")]

    operations = [
        CreateHypertable("VolatilityEstimate", "ts", "1 year"),
        CreateHypertable("RiskMetric", "ts", "90 days"),
        CreateHypertable("FactorExposure", "ts", "90 days"),
        migrations.RunSQL(read_sql("risk", "security", "0002"), DROP_SECURITY),
        AuditChanges("RiskLimit"),
        migrations.RunSQL(read_sql("risk", "alerts", "0002"), DROP_ALERT_RULES),
        migrations.RunSQL(read_sql("risk", "functions", "0002"), DROP_FUNCTIONS),
    ]
