BEGIN;
--
-- On Citus, risk_market_anomalies(bigint, timestamptz, timestamptz, double precision) defined for Citus
--
DO $qvp$
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_market_anomalies(bigint, timestamptz, timestamptz, double precision)'::regprocedure::text;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', 'risk_market_anomalies(bigint, timestamptz, timestamptz, double precision)';
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_market_anomalies(bigint, timestamptz, timestamptz, double precision)'::regprocedure::text;
END
$qvp$;
--
-- On Citus, risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text) defined for Citus
--
DO $qvp$
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text)'::regprocedure::text;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', 'risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text)';
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text)'::regprocedure::text;
END
$qvp$;
--
-- On Citus, risk_holdings(bigint, timestamptz, timestamptz) defined for Citus
--
DO $qvp$
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_holdings(bigint, timestamptz, timestamptz)'::regprocedure::text;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', 'risk_holdings(bigint, timestamptz, timestamptz)';
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'risk_holdings(bigint, timestamptz, timestamptz)'::regprocedure::text;
END
$qvp$;
COMMIT;
