BEGIN;
--
-- On Citus alone, SQL
--
-- (no-op)
--
-- On Citus alone, SQL
--
-- (no-op)
--
-- On Citus, trading_tca_refresh_pending(timestamptz) defined for Citus
--
-- (no-op)
COMMIT;
