BEGIN;
--
-- On Citus, risk_market_anomalies(bigint, timestamptz, timestamptz, double precision) defined for Citus
--
-- (no-op)
--
-- On Citus, risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text) defined for Citus
--
-- (no-op)
--
-- On Citus, risk_holdings(bigint, timestamptz, timestamptz) defined for Citus
--
-- (no-op)
COMMIT;
