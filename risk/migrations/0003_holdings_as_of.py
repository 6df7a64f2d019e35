"""risk_holdings from the executions in force at the time, not the current positions: a VaR
(Python's or SQL's calculate_var) as of a past time measures the book of that time."""

from django.db import migrations

from risk.sqlfiles import read

# The definition this migration replaces, restored when it is unapplied.
CURRENT_POSITIONS = """
CREATE OR REPLACE FUNCTION risk_holdings(p_account bigint, p_as_of timestamptz)
RETURNS TABLE (instrument_id bigint, quantity float8, price float8, value float8)
LANGUAGE sql STABLE AS $$
    SELECT p.instrument_id, p.quantity::float8, latest.close::float8,
           (p.quantity * i.multiplier)::float8 * latest.close::float8
    FROM trading_position p
    JOIN marketdata_instrument i ON i.id = p.instrument_id
    CROSS JOIN LATERAL (
        SELECT ts, close FROM (
            (SELECT ts, close FROM marketdata_minutebar
             WHERE instrument_id = p.instrument_id AND ts <= p_as_of ORDER BY ts DESC LIMIT 1)
            UNION ALL
            (SELECT ts, close FROM marketdata_dailybar
             WHERE instrument_id = p.instrument_id AND ts <= p_as_of ORDER BY ts DESC LIMIT 1)
        ) AS candidates
        ORDER BY ts DESC LIMIT 1
    ) AS latest
    WHERE p.account_id = p_account AND p.quantity <> 0
$$;
"""


class Migration(migrations.Migration):
    dependencies = [("risk", "0002_timeseries_security"), ("trading", "0006_trading_metrics")]

    operations = [
        # Every function of the file again (CREATE OR REPLACE): risk_holdings is the one that
        # changed.
        migrations.RunSQL(read("functions.sql"), CURRENT_POSITIONS),
    ]
