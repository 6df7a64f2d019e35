BEGIN;
--
-- On Citus, marketdata_action_factors(text, timestamptz, timestamptz) defined for Citus
--
-- (no-op)
COMMIT;
