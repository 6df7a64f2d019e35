BEGIN;
--
-- On Citus, marketdata_action_factors(text, timestamptz, timestamptz) defined for Citus
--
DO $qvp$
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'marketdata_action_factors(text, timestamptz, timestamptz)'::regprocedure::text;
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', 'marketdata_action_factors(text, timestamptz, timestamptz)';
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE table_name = '(functions)' AND object_name = 'marketdata_action_factors(text, timestamptz, timestamptz)'::regprocedure::text;
END
$qvp$;
COMMIT;
