BEGIN;
--
-- On Citus, distribute marketdata_minutebar_1d, marketdata_minutebar_1h beside MinuteBar
--
-- (no-op)
COMMIT;
