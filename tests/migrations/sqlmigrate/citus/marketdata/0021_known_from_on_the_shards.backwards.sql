BEGIN;
--
-- On Citus, known_from of marketdata_minutebar, marketdata_dailybar, marketdata_tick, marketdata_optionquote set on the shards
--
SET LOCAL citus.enable_unsafe_triggers = on;
DROP TRIGGER qvp_set_by_the_database ON "marketdata_minutebar";
DROP TRIGGER qvp_set_by_the_database ON "marketdata_dailybar";
DROP TRIGGER qvp_set_by_the_database ON "marketdata_tick";
DROP TRIGGER qvp_set_by_the_database ON "marketdata_optionquote";
RESET citus.enable_unsafe_triggers;
DROP FUNCTION qvp_known_from_now();
DO $qvp$
BEGIN
IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'trading_app') THEN
    REVOKE INSERT (known_from) ON "marketdata_minutebar" FROM trading_app;
    REVOKE INSERT (known_from) ON "marketdata_dailybar" FROM trading_app;
    REVOKE INSERT (known_from) ON "marketdata_tick" FROM trading_app;
    REVOKE INSERT (known_from) ON "marketdata_optionquote" FROM trading_app;
END IF;
END
$qvp$;
COMMIT;
