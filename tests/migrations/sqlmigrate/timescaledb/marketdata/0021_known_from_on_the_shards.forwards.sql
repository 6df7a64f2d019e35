BEGIN;
--
-- On Citus, known_from of marketdata_minutebar, marketdata_dailybar, marketdata_tick, marketdata_optionquote set on the shards
--
-- (no-op)
COMMIT;
