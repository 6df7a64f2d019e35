BEGIN;
--
-- On Citus, trading_tca_refresh_pending(timestamptz) defined for Citus
--
DO $qvp$
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'trading_tca_refresh_pending(timestamptz)'::regprocedure::text;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', 'trading_tca_refresh_pending(timestamptz)';
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'trading_tca_refresh_pending(timestamptz)'::regprocedure::text;
END
$qvp$;
--
-- On Citus alone, SQL
--
DROP FUNCTION IF EXISTS trading_tca_gather(timestamptz);
DROP FUNCTION IF EXISTS trading_tca_changed_days(regclass, regclass, timestamptz, timestamptz);
DROP TABLE IF EXISTS trading_tcagathered;
--
-- On Citus alone, SQL
--
DROP INDEX IF EXISTS marketdata_tick_known_from_brin;
DROP INDEX IF EXISTS marketdata_minutebar_known_from_brin;
DROP INDEX IF EXISTS marketdata_tickrevision_known_until_brin;
DROP INDEX IF EXISTS marketdata_minutebarrevision_known_until_brin;
COMMIT;
